// An app's runtime node_modules: the dependency closure of its package.json, resolved as Node
// resolves it, in the repository's layout under /app (Node then resolves exactly as it does here).
import fs from 'node:fs';
import path from 'node:path';
import type { Layer, Skip } from './layer';
import { walk } from './layer';
import { addLibraries } from './libraries';
import { BuildError } from './log';
import { appPath, readJson, ROOT } from './paths';

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

export function readPackage(dir: string): PackageJson {
  return readJson<PackageJson>(path.join(dir, 'package.json'));
}

export interface Closure {
  /** installed packages (real paths); workspace ones are the repository's own */
  packages: { realPath: string; workspace: boolean }[];
  /** workspace symlinks in node_modules: link path -> real path (both relative to ROOT) */
  links: Map<string, string>;
}

/** Node's lookup of `name` from `fromDir` (node_modules folders upwards, not above ROOT) */
function findPackage(name: string, fromDir: string): string | null {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const cand = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(cand, 'package.json'))) return cand;
    if (dir === ROOT || path.dirname(dir) === dir) return null;
  }
}

/** the runtime dependency closure of the app in `appDir`, less the packages `skip(name)` names */
export function dependencyClosure(appDir: string, skip: (name: string) => boolean = () => false): Closure {
  const seen = new Map<string, { realPath: string; workspace: boolean }>();
  const links = new Map<string, string>();
  const queue = [appDir];
  while (queue.length) {
    const dir = queue.shift()!;
    const pkg = readPackage(dir);
    // optional peers (bullmq's pg, ws's bufferutil) are only used when the app installs them itself
    const peers = Object.keys(pkg.peerDependencies || {}).filter((n) => !(pkg.peerDependenciesMeta || {})[n]?.optional);
    const deps = [...new Set([...Object.keys(pkg.dependencies || {}), ...Object.keys(pkg.optionalDependencies || {}), ...peers])];
    const optional = new Set([...Object.keys(pkg.optionalDependencies || {}), ...peers]);
    for (const name of deps) {
      if (skip(name)) continue;
      const found = findPackage(name, dir);
      if (!found) {
        if (optional.has(name)) continue; // an optional or peer dependency that is not installed
        throw new BuildError(`${name} (needed by ${path.relative(ROOT, dir) || 'the root'}) is not installed: run npm ci`);
      }
      const real = fs.realpathSync(found);
      if (real !== found) links.set(path.relative(ROOT, found), real);
      if (seen.has(real)) continue;
      const workspace = !real.split(path.sep).includes('node_modules');
      seen.set(real, { realPath: real, workspace });
      queue.push(real);
    }
  }
  return { packages: [...seen.values()], links };
}

/** not needed at run time: type declarations, sources, maps, docs (license files are kept) */
export const prunable: Skip = (_p, ent) => {
  if (ent.isDirectory()) return ent.name === 'node_modules' || ent.name === '.github';
  const n = ent.name;
  if (/[.-]musl\.node$/.test(n)) return true; // addons built for musl libc: the image has glibc
  return /\.(d\.[cm]?ts|[cm]?ts|map|tsbuildinfo|md|markdown)$/i.test(n) && !/^licen[cs]e/i.test(n);
};

export interface AppModules extends Closure {
  /** the workspace packages the app uses (real paths) */
  workspaces: string[];
  /** names of the packages with native addons (.node, .so files) */
  nativeNames: Set<string>;
}

/**
 * Adds the runtime node_modules of an app (its dependency closure less `skip`), in the repository's
 * layout under /app, and the system libraries their native addons need (those not in `below`).
 */
export function addModules(layer: Layer, appDir: string, below: Layer[], skip?: (name: string) => boolean): AppModules {
  const closure = dependencyClosure(appDir, skip);
  const native: string[] = [];
  const nativeNames = new Set<string>();
  for (const pkg of closure.packages.filter((p) => !p.workspace)) {
    walk(
      pkg.realPath,
      (p, ent) => {
        if (!ent.isFile() && !ent.isSymbolicLink()) return;
        let st: fs.Stats;
        try {
          st = fs.statSync(p);
        } catch {
          return;
        }
        if (!st.isFile()) return;
        layer.file(appPath(p), p);
        if (/\.node$|\.so(\.\d+)*$/.test(ent.name)) {
          native.push(p);
          nativeNames.add(readPackage(pkg.realPath).name);
        }
      },
      prunable,
    );
  }
  addLibraries(layer, native, below, path.join(ROOT, 'node_modules'));
  return { ...closure, workspaces: closure.packages.filter((p) => p.workspace).map((p) => p.realPath), nativeNames };
}

/** the built files of `dir` (no maps, declarations, build info) at their place under /app */
export function addBuiltFiles(layer: Layer, dir: string, skip?: Skip): void {
  walk(
    dir,
    (p, ent) => {
      if (ent.isFile() && !/\.(map|d\.ts|tsbuildinfo)$/.test(ent.name)) layer.file(appPath(p), p);
    },
    skip,
  );
}

/** the workspace symlinks of node_modules, as relative links under /app */
export function addLinks(layer: Layer, links: Map<string, string>): void {
  for (const [link, real] of links) layer.symlink(appPath(path.join(ROOT, link)), path.relative(path.dirname(path.join(ROOT, link)), real));
}
