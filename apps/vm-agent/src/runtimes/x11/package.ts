// A LINUX_X11 package: a folder with manifest.json naming the command that starts the UA
// (docs/linux-x11.md). Checking it means checking the manifest and finding the executable, so a
// storefront learns at deploy time, not at the first session, that a program is missing.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { isObj, readBaseManifest, type BaseManifest } from '../manifest';

export interface X11Manifest extends BaseManifest<'LINUX_X11'> {
  /** argv of the UA; [0] is looked up in the package folder (when it names a path) or on PATH */
  command: string[];
  /** added to the UA's environment, which is built from scratch (ua-env.ts; DISPLAY is the runtime's) */
  env: Record<string, string>;
}

export class X11PackageError extends Error {
  constructor(dir: string, reason: string) {
    super(`invalid LINUX_X11 package ${dir}: ${reason}`);
    this.name = 'X11PackageError';
  }
}

// the runtime owns these: a package must not point the UA at another display or a cookie
const RESERVED_ENV = new Set(['DISPLAY', 'XAUTHORITY']);

export async function readManifest(dir: string): Promise<X11Manifest> {
  const fail = (reason: string): never => {
    throw new X11PackageError(dir, reason);
  };
  const { base, raw: m } = await readBaseManifest(dir, 'LINUX_X11', fail, true);
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
  return { ...base, command: [...(command as string[])], env };
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
