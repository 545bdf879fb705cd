// `uve pack`: a UA folder -> one package (docs/packages.md): a gzip-compressed ustar archive with
// manifest.json at its root and the UA's files, regular files and folders only. The archive is
// reproducible (sorted entries, zero times and owners), so the same folder gives the same sha256.
// Node only (not in the browser bundle).
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import { checkManifest, MANIFEST_FILE, type UaManifest } from '@uve/protocol';

export interface TarEntry {
  path: string;
  /** tar type flag: '0' file (default), '5' folder; others only to build hostile test archives */
  type?: string;
  data?: Uint8Array;
  mode?: number;
  linkname?: string;
}

export interface PackResult {
  manifest: UaManifest;
  sha256: string;
  sizeBytes: number;
  files: number;
}

const MAX_FILES = 10_000;

function field(h: Buffer, off: number, len: number, value: string): void {
  const b = Buffer.from(value, 'utf8');
  if (b.length > len) throw new Error(`tar field too long: ${value}`);
  b.copy(h, off);
}
const octal = (n: number, len: number): string => n.toString(8).padStart(len - 1, '0');

function header(e: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  let name = e.path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`path too long for a package: ${name}`);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  field(h, 0, 100, name);
  field(h, 100, 8, octal(e.mode ?? (e.type === '5' ? 0o755 : 0o644), 8));
  field(h, 108, 8, octal(0, 8));
  field(h, 116, 8, octal(0, 8));
  field(h, 124, 12, octal(size, 12));
  field(h, 136, 12, octal(0, 12));
  h.fill(0x20, 148, 156); // checksum counts as spaces
  field(h, 156, 1, e.type ?? '0');
  field(h, 157, 100, e.linkname ?? '');
  field(h, 257, 6, 'ustar');
  field(h, 263, 2, '00');
  field(h, 345, 155, prefix);
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

/** A ustar archive of these entries, in this order. */
export function writeTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? new Uint8Array());
    parts.push(header(e, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

async function walk(root: string, dir: string, out: TarEntry[]): Promise<void> {
  for (const name of (await readdir(dir)).sort()) {
    const full = join(dir, name);
    const rel = relative(root, full).split(sep).join(posix.sep);
    const st = await lstat(full);
    if (st.isSymbolicLink()) throw new Error(`${rel} is a symbolic link: packages hold only regular files and folders`);
    if (st.isDirectory()) {
      out.push({ path: `${rel}/`, type: '5' });
      await walk(root, full, out);
    } else if (st.isFile()) {
      if (out.length >= MAX_FILES) throw new Error(`more than ${MAX_FILES} files`);
      out.push({ path: rel, data: await readFile(full), mode: st.mode & 0o100 ? 0o755 : 0o644 });
    } else {
      throw new Error(`${rel} is not a regular file or folder`);
    }
  }
}

/** Checks the folder's manifest and files, writes the package to `out`, returns its sha256 and size. */
export async function packUa(folder: string, out: string): Promise<PackResult> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(folder, MANIFEST_FILE), 'utf8'));
  } catch (e) {
    throw new Error((e as NodeJS.ErrnoException).code === 'ENOENT' ? `${folder} has no ${MANIFEST_FILE}` : `${MANIFEST_FILE} is not valid JSON: ${(e as Error).message}`);
  }
  const manifest = checkManifest(raw);
  const entries: TarEntry[] = [];
  await walk(folder, folder, entries);
  if (manifest.entry && !entries.some((e) => e.path === manifest.entry && e.type !== '5')) throw new Error(`manifest "entry" names ${manifest.entry}, which is not in ${folder}`);
  const archive = gzipSync(writeTar(entries), { level: 9 });
  await writeFile(out, archive);
  return { manifest, sha256: createHash('sha256').update(archive).digest('hex'), sizeBytes: archive.length, files: entries.filter((e) => e.type !== '5').length };
}
