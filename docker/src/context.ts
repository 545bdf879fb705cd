// A layer written out as a folder of a docker build context (hard links where possible).
import fs from 'node:fs';
import path from 'node:path';
import type { Layer } from './layer';

/** folders whose mode is not 0755, in whichever layer writes into them */
export const SPECIAL_DIRS: Record<string, number> = { '/tmp': 0o1777, '/tmp/.X11-unix': 0o1777 };

/**
 * Writes `layer` to `<context>/<layer name>/`, unless the folder was written for the same `hash`
 * (`<layer name>.sha256` beside it). Returns whether it wrote.
 */
export function materialize(layer: Layer, hash: string, context: string): boolean {
  const dir = path.join(context, layer.name);
  const stamp = path.join(context, `${layer.name}.sha256`);
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === hash && fs.existsSync(dir)) return false;
  fs.rmSync(stamp, { force: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const dirs: [string, number][] = [];
  for (const [dest, e] of [...layer.entries].sort(([a], [b]) => a.localeCompare(b))) {
    const out = path.join(dir, dest);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    if (e.kind === 'dir') {
      fs.mkdirSync(out, { recursive: true });
      dirs.push([out, e.mode]);
    } else if (e.kind === 'symlink') {
      fs.symlinkSync(e.target, out);
    } else if (e.kind === 'data') {
      fs.writeFileSync(out, e.data, { mode: e.mode });
      fs.chmodSync(out, e.mode);
    } else {
      // a hard link costs nothing; a copy when linking is not allowed (other file system, not owner)
      let linked = false;
      if ((fs.statSync(e.src).mode & 0o7777) === e.mode) {
        try {
          fs.linkSync(e.src, out);
          linked = true;
        } catch {
          linked = false;
        }
      }
      if (!linked) {
        fs.copyFileSync(e.src, out);
        fs.chmodSync(out, e.mode);
      }
    }
  }
  // folders with a special mode get it in every layer that has files in them (COPY sets the mode
  // of each folder it writes, so a plain 0755 /tmp in an upper layer would hide /tmp's 1777)
  for (const [dest, mode] of Object.entries(SPECIAL_DIRS)) {
    if (fs.existsSync(path.join(dir, dest))) dirs.push([path.join(dir, dest), mode]);
  }
  for (const [out, mode] of dirs) fs.chmodSync(out, mode); // after their content (umask, sticky bit)
  fs.writeFileSync(stamp, hash);
  return true;
}
