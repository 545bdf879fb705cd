// Unpacking a downloaded UA package into a folder. Two forms are accepted (docs/vm-agent.md):
//   - a tar archive (plain or gzip-compressed) of the package folder;
//   - a JSON bundle {"format":"uve-ua-bundle/1","files":{"<relative path>":"<base64>"}}.
// Only regular files and folders are written, never outside the target (no absolute paths, no
// `..`, no links of any kind, no devices), within a file count and a size budget; a gzip stream
// may not expand past that budget either (docs/packages.md).
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const MAX_PACKAGE_FILES = 10_000;
export const MAX_UNPACKED_BYTES = 512 * 1024 * 1024;
/**
 * A gzip bomb guard: a package may expand to at most this many times its compressed size (beyond
 * a small floor); real UAs (code, images) stay far below it.
 */
export const MAX_EXPANSION_RATIO = 100;
const EXPANSION_FLOOR_BYTES = 32 * 1024 * 1024;

/** How far a compressed package of this size may expand. */
export const unpackBudget = (compressedBytes: number): number =>
  Math.min(MAX_UNPACKED_BYTES, Math.max(EXPANSION_FLOOR_BYTES, compressedBytes * MAX_EXPANSION_RATIO));

export interface PackageFile {
  path: string;
  data: Uint8Array;
  /** executable by its owner in the archive (LINUX_X11 programs) */
  executable?: boolean;
}

const TAR_TYPES: Record<string, string> = {
  '1': 'a hard link', '2': 'a symbolic link', '3': 'a character device', '4': 'a block device', '6': 'a FIFO',
};

export type PackageFormat = 'tar' | 'tar.gz' | 'json';

export function detectFormat(bytes: Uint8Array): PackageFormat {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) return 'tar.gz';
  if (bytes.length >= 262 && Buffer.from(bytes.subarray(257, 262)).toString('latin1') === 'ustar') return 'tar';
  const first = bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09 && b !== 0xef && b !== 0xbb && b !== 0xbf);
  if (first === 0x7b /* { */) return 'json';
  throw new Error('unknown package format: expected a tar archive (optionally gzip) or a JSON bundle');
}

/** A relative path inside the package, normalised; throws on anything that could escape it. */
export function safeRelativePath(p: string): string {
  const n = posix.normalize(p.replace(/\\/g, '/')).replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (n === '' || n === '.') return '';
  if (n.startsWith('/') || /^[a-zA-Z]:/.test(n) || n === '..' || n.startsWith('../') || n.includes('/../') || n.includes('\0')) {
    throw new Error(`package path ${JSON.stringify(p)} points outside the package`);
  }
  return n;
}

const octal = (b: Uint8Array, off: number, len: number): number => {
  const s = Buffer.from(b.subarray(off, off + len)).toString('latin1').replace(/\0.*$/s, '').trim();
  return s ? parseInt(s, 8) : 0;
};
const cstr = (b: Uint8Array, off: number, len: number): string => Buffer.from(b.subarray(off, off + len)).toString('utf8').replace(/\0.*$/s, '');

/** Reads a tar archive (ustar, pax path headers, GNU long names). */
export function readTar(bytes: Uint8Array): PackageFile[] {
  const files: PackageFile[] = [];
  let off = 0;
  let longName: string | null = null;
  let paxPath: string | null = null;
  while (off + 512 <= bytes.length) {
    const h = bytes.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break; // end of archive
    const size = octal(h, 124, 12);
    const type = String.fromCharCode(h[156] || 0x30);
    const prefix = cstr(h, 345, 155);
    const name = paxPath ?? longName ?? (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
    const dataStart = off + 512;
    if (dataStart + size > bytes.length) throw new Error('tar archive is truncated');
    const data = bytes.subarray(dataStart, dataStart + size);
    off = dataStart + Math.ceil(size / 512) * 512;
    if (type === 'L') { longName = cstr(data, 0, data.length); continue; }
    if (type === 'x') { paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(Buffer.from(data).toString('utf8'))?.[1] ?? null; continue; }
    if (type === 'g') continue;
    longName = null;
    paxPath = null;
    if (type === '5') continue; // folders are created for the files in them
    if (type !== '0' && type !== '7') {
      throw new Error(`package entry ${JSON.stringify(name)} is ${TAR_TYPES[type] ?? `of tar type ${JSON.stringify(type)}`}; packages hold only regular files and folders (no links, no devices)`);
    }
    if (files.length >= MAX_PACKAGE_FILES) throw new Error(`package has more than ${MAX_PACKAGE_FILES} files`);
    files.push({ path: name, data, executable: (octal(h, 100, 8) & 0o100) !== 0 });
  }
  return files;
}

export function readJsonBundle(bytes: Uint8Array): PackageFile[] {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8').replace(/^\uFEFF/, ''));
  } catch (e) {
    throw new Error(`JSON bundle is not valid JSON: ${(e as Error).message}`);
  }
  const files = (doc as { files?: unknown } | null)?.files;
  if (typeof files !== 'object' || files === null || Array.isArray(files)) throw new Error('JSON bundle must have a "files" object mapping paths to base64 contents');
  return Object.entries(files).map(([path, b64]) => {
    if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/=\s]*$/.test(b64)) throw new Error(`JSON bundle entry ${JSON.stringify(path)} must be a base64 string`);
    return { path, data: Buffer.from(b64, 'base64') };
  });
}

export function readPackage(bytes: Uint8Array): PackageFile[] {
  const format = detectFormat(bytes);
  if (format === 'json') return readJsonBundle(bytes);
  if (format === 'tar') return readTar(bytes);
  const budget = unpackBudget(bytes.byteLength);
  let tar: Buffer;
  try {
    tar = gunzipSync(bytes, { maxOutputLength: budget });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new Error(`package expands to more than ${budget} bytes from ${bytes.byteLength} compressed (gzip bomb guard)`);
    }
    throw new Error(`package is not a valid gzip stream: ${(e as Error).message}`);
  }
  return readTar(tar);
}

/**
 * Writes the files under `dir`. When everything sits in one top folder (`paint/manifest.json`, a
 * common way to tar a folder), that folder becomes the package root.
 */
export async function writePackage(files: PackageFile[], dir: string): Promise<void> {
  if (files.length === 0) throw new Error('package is empty');
  if (files.length > MAX_PACKAGE_FILES) throw new Error(`package has more than ${MAX_PACKAGE_FILES} files`);
  let total = 0;
  const entries = files.map((f) => {
    total += f.data.byteLength;
    return { ...f, path: safeRelativePath(f.path) };
  }).filter((f) => f.path !== '');
  if (total > MAX_UNPACKED_BYTES) throw new Error(`package unpacks to more than ${MAX_UNPACKED_BYTES} bytes`);
  const tops = new Set(entries.map((e) => e.path.split('/')[0]));
  const strip = tops.size === 1 && entries.every((e) => e.path.includes('/')) ? `${[...tops][0]}/` : '';
  const seen = new Set<string>();
  for (const e of entries) {
    const rel = strip ? e.path.slice(strip.length) : e.path;
    if (seen.has(rel)) throw new Error(`package has ${JSON.stringify(rel)} twice`);
    seen.add(rel);
    const target = join(dir, ...rel.split('/'));
    await mkdir(dirname(target), { recursive: true });
    // flag 'wx': never through something already there (a link planted by an earlier entry)
    await writeFile(target, e.data, { flag: 'wx' });
    if (e.executable) await chmod(target, 0o755);
  }
}
