// The UA package manifest (docs/packages.md): `manifest.json` at the root of every UA package. One
// definition for everyone who reads one: the VM before it installs a package, the VMM for the
// samples it registers, `uve pack` before it builds an archive. Pure: no file system here.
import { LOCAL_RESOURCE_KINDS, PLATFORMS, type LocalResourceKind, type Platform } from './enums';

export const MANIFEST_FILE = 'manifest.json';

export interface UaManifest<P extends Platform = Platform> {
  /** the storefront's id for the application (reverse-DNS style), optional */
  id?: string;
  name: string;
  version: string;
  platform: P;
  /** WASM: the module to load, relative to the package root */
  entry?: string;
  /** LINUX_X11: argv of the program */
  command?: string[];
  /** LINUX_X11: extra environment of the program */
  env?: Record<string, string>;
  requiredResources: LocalResourceKind[];
  /** smallest screen the UA can be used on */
  minWidth?: number;
  minHeight?: number;
  /** files or folders (relative) holding the UA's persistent data (VM Data, NORMAL reconnection) */
  dataPaths?: string[];
}

export const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScreenSize = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 16384;
/** versions as the VMM accepts them (ProvideApplicationInput) */
export const VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;

/** A relative path that stays inside the package (no absolute path, no `..`), or null. */
export function insidePackage(p: string): boolean {
  if (p === '' || p.includes('\0') || p.startsWith('/') || p.includes('\\') || /^[a-zA-Z]:/.test(p)) return false;
  return !p.split('/').some((seg) => seg === '..');
}

export interface ManifestCheckOptions {
  /** the platform the reader expects (a VM checks its own) */
  platform?: Platform;
  /** samples may leave requiredResources out (none) */
  resourcesOptional?: boolean;
}

/**
 * Checks a parsed manifest: returns it typed, or throws an Error whose message names the field and
 * what is wrong (a storefront acts on it). Platform-specific fields are checked for shape here; the
 * VM's runtime checks what only it can (the module's ABI, the program on PATH).
 */
export function checkManifest(m: unknown, opts: ManifestCheckOptions = {}): UaManifest {
  const fail = (reason: string): never => {
    throw new Error(reason);
  };
  if (!isPlainObject(m)) return fail('manifest.json must be a JSON object');
  if (m.id !== undefined && (typeof m.id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$/.test(m.id))) fail('manifest "id" must be 1 to 256 letters, digits, dots, dashes or underscores');
  if (typeof m.name !== 'string' || m.name === '' || m.name.length > 128) fail('manifest "name" must be a non-empty string of at most 128 characters');
  if (typeof m.version !== 'string' || !VERSION_PATTERN.test(m.version)) fail('manifest "version" must be 1 to 64 letters, digits, dots, pluses, dashes or underscores');
  if (opts.platform && m.platform !== opts.platform) fail(`manifest "platform" must be "${opts.platform}" (got ${JSON.stringify(m.platform)})`);
  if (!(PLATFORMS as readonly unknown[]).includes(m.platform)) fail(`manifest "platform" must be one of ${PLATFORMS.join(', ')} (got ${JSON.stringify(m.platform)})`);
  const platform = m.platform as Platform;
  const resources = m.requiredResources ?? (opts.resourcesOptional || platform === 'LINUX_X11' ? [] : undefined);
  if (!Array.isArray(resources)) return fail('manifest "requiredResources" must be an array');
  for (const r of resources as unknown[]) {
    if (!(LOCAL_RESOURCE_KINDS as readonly unknown[]).includes(r)) fail(`manifest "requiredResources" has unknown kind ${JSON.stringify(r)} (known: ${LOCAL_RESOURCE_KINDS.join(', ')})`);
  }
  for (const k of ['minWidth', 'minHeight'] as const) {
    if (m[k] !== undefined && !isScreenSize(m[k])) fail(`manifest "${k}" must be a positive integer of at most 16384`);
  }
  if (platform === 'WASM') {
    if (typeof m.entry !== 'string' || m.entry === '') fail('manifest "entry" must name the .wasm file');
    if (!insidePackage(m.entry as string)) fail(`manifest "entry" must be a path inside the package (got ${JSON.stringify(m.entry)})`);
  } else {
    const c = m.command;
    if (!Array.isArray(c) || c.length === 0 || !c.every((a) => typeof a === 'string') || c[0] === '') {
      fail('manifest "command" must be a non-empty array of strings, the program first (e.g. ["xterm", "-fa", "DejaVu Sans Mono"])');
    }
    if ((c as string[]).some((a) => a.includes('\0'))) fail('manifest "command" must not contain NUL characters');
  }
  if (m.dataPaths !== undefined) {
    if (!Array.isArray(m.dataPaths) || !m.dataPaths.every((p) => typeof p === 'string' && insidePackage(p))) fail('manifest "dataPaths" must be an array of relative paths inside the package');
  }
  return {
    ...(m.id !== undefined ? { id: m.id as string } : {}),
    name: m.name as string,
    version: m.version as string,
    platform,
    ...(m.entry !== undefined ? { entry: m.entry as string } : {}),
    ...(m.command !== undefined ? { command: [...(m.command as string[])] } : {}),
    ...(isPlainObject(m.env) ? { env: m.env as Record<string, string> } : {}),
    requiredResources: [...new Set(resources as LocalResourceKind[])],
    ...(m.minWidth !== undefined ? { minWidth: m.minWidth as number } : {}),
    ...(m.minHeight !== undefined ? { minHeight: m.minHeight as number } : {}),
    ...(m.dataPaths !== undefined ? { dataPaths: [...(m.dataPaths as string[])] } : {}),
  };
}
