// The inputs' hash: an image whose `uve.inputs.sha256` label has it is up to date. A change here
// that changes the hash rebuilds every image; bump FORMAT when the output changes and the hash would not.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SPECIAL_DIRS } from './context';
import type { Layer } from './layer';
import { readJson } from './paths';

/** bump to rebuild every image after a change of the builders' output */
export const FORMAT = 3;

export const sha256 = (data: string | Buffer): string => crypto.createHash('sha256').update(data).digest('hex');

/** src -> [dev:ino:size:mtime, sha256 of its content] */
type Hashes = Record<string, [string, string]>;

/** File hashes kept between runs by (device, inode, size, mtime): most runs read no file. */
export class HashCache {
  private readonly known: Hashes;
  /** written back: entries of files no longer used drop out */
  private readonly used: Hashes = {};

  constructor(private readonly file: string) {
    let known: Hashes = {};
    try {
      known = readJson<Hashes>(file);
    } catch {
      // none yet, or unreadable: hash every file again
    }
    this.known = known;
  }

  fileHash(src: string): string {
    const st = fs.statSync(src);
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    const hit = this.known[src];
    const h = hit && hit[0] === key ? hit[1] : sha256(fs.readFileSync(src));
    this.used[src] = [key, h];
    return h;
  }

  save(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    fs.writeFileSync(this.file, JSON.stringify(this.used));
  }
}

/** every entry's path in the image, kind, mode and content */
export function layerHash(layer: Layer, cache: HashCache): string {
  const h = crypto.createHash('sha256').update(`format ${FORMAT}\0${JSON.stringify(SPECIAL_DIRS)}\n`);
  for (const dest of [...layer.entries.keys()].sort()) {
    const e = layer.entries.get(dest)!;
    h.update(`${dest}\0${e.kind}\0`);
    if (e.kind === 'file') h.update(`${e.mode.toString(8)}\0${cache.fileHash(e.src)}\n`);
    else if (e.kind === 'data') h.update(`${e.mode.toString(8)}\0${sha256(e.data)}\n`);
    else if (e.kind === 'dir') h.update(`${e.mode.toString(8)}\n`);
    else h.update(`${e.target}\n`);
  }
  return h.digest('hex');
}
