// A LINUX_X11 package: a folder with manifest.json naming the command that starts the UA
// (docs/linux-x11.md). Checking it means checking the manifest and finding the executable, so a
// storefront learns at deploy time, not at the first session, that a program is missing.
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { LOCAL_RESOURCE_KINDS, type LocalResourceKind } from '@uve/protocol';

export interface X11Manifest {
  name: string;
  version: string;
  platform: 'LINUX_X11';
  /** argv of the UA; [0] is looked up in the package folder (when it names a path) or on PATH */
  command: string[];
  /** added to the agent's environment (DISPLAY is always set by the runtime) */
  env: Record<string, string>;
  requiredResources: LocalResourceKind[];
  minWidth?: number;
  minHeight?: number;
}

export class X11PackageError extends Error {
  constructor(dir: string, reason: string) {
    super(`invalid LINUX_X11 package ${dir}: ${reason}`);
    this.name = 'X11PackageError';
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 16384;
// the runtime owns these: a package must not point the UA at another display or a cookie
const RESERVED_ENV = new Set(['DISPLAY', 'XAUTHORITY']);

export async function readManifest(dir: string): Promise<X11Manifest> {
  const fail = (reason: string): never => {
    throw new X11PackageError(dir, reason);
  };
  let text: string;
  try {
    text = await readFile(path.join(dir, 'manifest.json'), 'utf8');
  } catch (e) {
    return fail((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'manifest.json not found' : `manifest.json cannot be read: ${(e as Error).message}`);
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return fail('manifest.json is not valid JSON');
  }
  if (!isObj(m)) return fail('manifest.json must be a JSON object');
  if (typeof m.name !== 'string' || m.name === '') fail('manifest "name" must be a non-empty string');
  if (typeof m.version !== 'string' || m.version === '') fail('manifest "version" must be a non-empty string');
  if (m.platform !== 'LINUX_X11') fail(`manifest "platform" must be "LINUX_X11" (got ${JSON.stringify(m.platform)})`);
  const command = m.command;
  if (!Array.isArray(command) || command.length === 0 || !command.every((a) => typeof a === 'string') || command[0] === '') {
    fail('manifest "command" must be a non-empty array of strings, the program first (e.g. ["xterm", "-fa", "DejaVu Sans Mono"])');
  }
  if ((command as string[]).some((a) => a.includes('\0'))) fail('manifest "command" must not contain NUL characters');
  const env: Record<string, string> = {};
  if (m.env !== undefined) {
    if (!isObj(m.env)) fail('manifest "env" must be an object of strings');
    for (const [k, v] of Object.entries(m.env as Record<string, unknown>)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) fail(`manifest "env" has an invalid variable name ${JSON.stringify(k)}`);
      if (RESERVED_ENV.has(k)) fail(`manifest "env" must not set ${k}: the runtime sets it`);
      if (typeof v !== 'string' || v.includes('\0')) fail(`manifest "env.${k}" must be a string`);
      env[k] = v as string;
    }
  }
  const resources = m.requiredResources ?? [];
  if (!Array.isArray(resources)) fail('manifest "requiredResources" must be an array');
  for (const r of resources as unknown[]) {
    if (!(LOCAL_RESOURCE_KINDS as readonly unknown[]).includes(r)) fail(`manifest "requiredResources" has unknown kind ${JSON.stringify(r)} (known: ${LOCAL_RESOURCE_KINDS.join(', ')})`);
  }
  for (const k of ['minWidth', 'minHeight'] as const) {
    if (m[k] !== undefined && !isPositiveInt(m[k])) fail(`manifest "${k}" must be a positive integer of at most 16384`);
  }
  return {
    name: m.name as string,
    version: m.version as string,
    platform: 'LINUX_X11',
    command: [...(command as string[])],
    env,
    requiredResources: [...new Set(resources as LocalResourceKind[])],
    ...(m.minWidth !== undefined ? { minWidth: m.minWidth as number } : {}),
    ...(m.minHeight !== undefined ? { minHeight: m.minHeight as number } : {}),
  };
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    if (!(await stat(file)).isFile()) return false;
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The absolute path of the program `command[0]` names: a name with a slash is a path inside the
 * package folder (`./run.sh`, `bin/app`); a bare name is searched on PATH (the package's own
 * env.PATH when it sets one), then in the package folder. Resolved here because spawn() would
 * search PATH only, not the package folder it runs in.
 */
export async function resolveExecutable(dir: string, manifest: X11Manifest, basePath = process.env.PATH ?? ''): Promise<string> {
  const program = manifest.command[0];
  const root = path.resolve(dir);
  if (program.includes('/')) {
    const file = path.resolve(root, program);
    if (path.isAbsolute(program) || !file.startsWith(root + path.sep)) {
      throw new X11PackageError(dir, `command ${JSON.stringify(program)} must be a bare program name (found on PATH) or a path inside the package`);
    }
    if (await isExecutableFile(file)) return file;
    throw new X11PackageError(dir, `command ${JSON.stringify(program)} is not an executable file in the package`);
  }
  const searchPath = manifest.env.PATH ?? basePath;
  for (const d of [...searchPath.split(path.delimiter).filter(Boolean), root]) {
    const file = path.resolve(root, d, program);
    if (await isExecutableFile(file)) return file;
  }
  throw new X11PackageError(dir, `command ${JSON.stringify(program)} was found neither on PATH (${searchPath || 'empty'}) nor in the package; install it on the VM image or ship it in the package`);
}

export interface X11Package {
  dir: string;
  manifest: X11Manifest;
  executable: string;
}

export async function loadPackage(dir: string): Promise<X11Package> {
  const manifest = await readManifest(dir);
  return { dir, manifest, executable: await resolveExecutable(dir, manifest) };
}
