// Programs and the shared libraries they need, as the loader resolves them on this machine, at
// their place in the image.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Layer } from './layer';
import { BuildError, log } from './log';
import { ROOT } from './paths';

export interface Library {
  /** the name the loader looks for (DT_NEEDED) */
  name: string;
  path: string;
  /** the dynamic loader itself (PT_INTERP) */
  loader?: boolean;
}

/** the libraries in `ldd`'s output for `file`; throws on "not found" */
export function parseLdd(file: string, out: string): Library[] {
  const libs: Library[] = [];
  const missing: string[] = [];
  for (const line of out.split('\n')) {
    let m = /^\s*(\S+) => not found/.exec(line);
    if (m) {
      missing.push(m[1]!);
      continue;
    }
    m = /^\s*(\S+) => (\/\S+) \(0x[0-9a-f]+\)/.exec(line);
    if (m) {
      libs.push({ name: m[1]!, path: m[2]! });
      continue;
    }
    m = /^\s*(\/\S+) \(0x[0-9a-f]+\)/.exec(line); // the dynamic loader
    if (m) libs.push({ name: path.basename(m[1]!), path: m[1]!, loader: true });
  }
  if (missing.length) throw new BuildError(`${file} needs ${missing.join(', ')}, not found on this machine`);
  return libs;
}

/** the shared libraries `file` needs, as the loader resolves them now; throws on "not found" */
export function ldd(file: string): Library[] {
  const r = spawnSync('ldd', [file], { encoding: 'utf8' });
  const out = `${r.stdout || ''}${r.stderr || ''}`;
  if (r.error) throw new BuildError(`ldd could not run (${r.error.message}); it comes with libc-bin`);
  if (/not a dynamic executable|statically linked/.test(out)) return [];
  if (r.status !== 0) throw new BuildError(`ldd ${file} failed: ${out.trim()}`);
  return parseLdd(file, out);
}

let libraryFolder: string | null = null;

/** the loader's default library folder (where libc is, e.g. /usr/lib/x86_64-linux-gnu), from the Node binary running this */
export function multiarchDir(): string {
  if (libraryFolder === null) {
    const node = fs.realpathSync(process.execPath);
    const libc = ldd(node).find((l) => /^libc\.so/.test(l.name));
    if (!libc) throw new BuildError(`${node} does not link libc dynamically; use a glibc build of Node`);
    libraryFolder = fs.realpathSync(path.dirname(libc.path));
  }
  return libraryFolder;
}

/** where a library goes in the image: its loader path (kept as is), or the default library folder */
function libDest(lib: Library): string {
  const dir = fs.realpathSync(path.dirname(lib.path));
  if (lib.loader) return path.join(dir, path.basename(lib.path)); // PT_INTERP: the exact path
  // Flattened into the multiarch folder (a default search folder of the loader): no ld.so.cache
  // is needed to find libraries that live in sub-folders on this machine (alternatives, RUNPATH).
  return path.join(multiarchDir(), lib.name);
}

/**
 * Adds the libraries of `files` to `layer`, except those the `below` layers have. With `skipUnder`
 * (a package folder), libraries inside it are left out and files that do not load here are passed over.
 */
export function addLibraries(layer: Layer, files: string[], below: Layer[] = [], skipUnder: string | null = null): number {
  let count = 0;
  for (const f of files) {
    let libs: Library[];
    try {
      libs = ldd(f);
    } catch (e) {
      if (!skipUnder) throw e;
      // a native addon of a package that this machine cannot load (another libc, CPU): Node
      // would not load it either; the package picks the build that loads (node-gyp-build)
      log(`note: ${path.relative(ROOT, f)} is not loadable here, its libraries are not added`);
      continue;
    }
    for (const lib of libs) {
      const real = fs.realpathSync(lib.path);
      if (skipUnder && real.startsWith(skipUnder + path.sep)) continue; // shipped with its package (RUNPATH $ORIGIN)
      const dest = libDest(lib);
      if (below.some((l) => l.has(dest)) || layer.has(dest)) continue;
      layer.file(dest, lib.path);
      count++;
    }
  }
  return count;
}

export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH || '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

const DEBIAN_PACKAGES: Record<string, string> = { ffmpeg: 'ffmpeg', Xvfb: 'xvfb', xkbcomp: 'x11-xkb-utils', xterm: 'xterm', sh: 'dash' };

/** a program on PATH at its canonical place in the image (e.g. /bin/sh -> /usr/bin/sh on merged /usr); its host path */
export function addProgram(layer: Layer, name: string, required: false): string | null;
export function addProgram(layer: Layer, name: string, required?: true): string;
export function addProgram(layer: Layer, name: string, required = true): string | null {
  const p = which(name);
  if (!p) {
    if (required) throw new BuildError(`${name} is not installed (Debian: apt-get install ${DEBIAN_PACKAGES[name] ?? name})`);
    return null;
  }
  const dest = path.join(fs.realpathSync(path.dirname(p)), path.basename(p));
  layer.file(dest, p);
  return p;
}
