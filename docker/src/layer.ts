// The files of one image layer, by their path in the image, before anything is written.
import fs from 'node:fs';
import path from 'node:path';
import { BuildError } from './log';

export type Entry =
  | { kind: 'file'; src: string; mode: number }
  | { kind: 'data'; data: Buffer; mode: number }
  | { kind: 'dir'; mode: number }
  | { kind: 'symlink'; target: string };

/** entries a walk passes over (and does not descend into) */
export type Skip = (p: string, ent: fs.Dirent) => boolean;

export function walk(dir: string, onFile: (p: string, ent: fs.Dirent) => void, skip: Skip = () => false): void {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (skip(p, ent)) continue;
    if (ent.isDirectory()) walk(p, onFile, skip);
    else onFile(p, ent);
  }
}

export class Layer {
  readonly entries = new Map<string, Entry>();

  constructor(readonly name: string) {}

  /** a host file (symlinks resolved) with its own mode unless `mode` says */
  file(dest: string, src: string, mode?: number): void {
    const real = fs.realpathSync(src);
    const st = fs.statSync(real);
    const prev = this.entries.get(dest);
    if (prev && prev.kind === 'file' && prev.src !== real) throw new BuildError(`${dest}: two different sources (${prev.src}, ${real})`);
    this.entries.set(dest, { kind: 'file', src: real, mode: mode ?? st.mode & 0o1777 });
  }

  data(dest: string, content: string | Buffer, mode = 0o644): void {
    this.entries.set(dest, { kind: 'data', data: typeof content === 'string' ? Buffer.from(content) : content, mode });
  }

  dir(dest: string, mode = 0o755): void {
    this.entries.set(dest, { kind: 'dir', mode });
  }

  symlink(dest: string, target: string): void {
    this.entries.set(dest, { kind: 'symlink', target });
  }

  /** a host folder (or file) copied whole to the same place; symlinks are followed */
  tree(hostPath: string, dest = hostPath, skip: Skip = () => false): void {
    const st = fs.statSync(hostPath);
    if (!st.isDirectory()) return this.file(dest, hostPath);
    walk(
      hostPath,
      (p) => {
        let s: fs.Stats;
        try {
          s = fs.statSync(p);
        } catch {
          return; // dangling symlink
        }
        if (s.isDirectory()) return this.tree(p, path.join(dest, path.relative(hostPath, p)), skip);
        if (s.isFile()) this.file(path.join(dest, path.relative(hostPath, p)), p);
      },
      skip,
    );
  }

  has(dest: string): boolean {
    return this.entries.has(dest);
  }
}
