// Unpacking a downloaded UA package into a folder. Two forms are accepted (docs/vm-agent.md):
//   - a tar archive (plain or gzip-compressed) of the package folder;
//   - a JSON bundle {"format":"uve-ua-bundle/1","files":{"<relative path>":"<base64>"}}.
// Only regular files and folders are written, never outside the target (no absolute paths, no
// `..`, no links). A storefront issue will harden this (signatures, quotas).
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const MAX_PACKAGE_FILES = 10_000;
export const MAX_UNPACKED_BYTES = 512 * 1024 * 1024;

export interface PackageFile {
  path: string;
  data: Uint8Array;
}

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
    if (type !== '0' && type !== '7') throw new Error(`package entry ${JSON.stringify(name)} is not a regular file (tar type ${type}); links and devices are not allowed`);
    files.push({ path: name, data });
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
  const tar = format === 'tar.gz' ? gunzipSync(bytes, { maxOutputLength: MAX_UNPACKED_BYTES }) : bytes;
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
    return { path: safeRelativePath(f.path), data: f.data };
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
    await writeFile(target, e.data);
  }
}
