#!/usr/bin/env node
'use strict';
// Builds the VM agent images uve/vm-agent-wasm:<version> and uve/vm-agent-x11:<version> FROM scratch,
// from this machine's files only (no image registry, no download): see docs/docker.md.
//
//   node docker/build-images.js [--platform wasm|x11|all] [--force] [--context-only] [--quiet]
//                               [--wasm-image NAME:TAG] [--x11-image NAME:TAG]
//
// 1. Lists every file of every layer (docker/agent.Dockerfile): the Node binary running this
//    script and its shared libraries (ldd), ffmpeg (H264 encoder) and its libraries, for LINUX_X11
//    also Xvfb, xkbcomp, xterm, X data files and fonts, the agent's production node_modules
//    (dependency closure of apps/vm-agent/package.json, with the libraries their native addons
//    need), the built agent, packages/*/dist and the sample UAs (uas/*/build, uas-x11/*).
// 2. Hashes those inputs (content, mode, place in the image). An image whose `uve.inputs.sha256`
//    label has that hash is up to date: nothing is built.
// 3. Otherwise writes the layer folders of the build context (docker/.build/context; hard links
//    where possible) and runs `docker build` with docker/agent.Dockerfile; the image it replaces
//    is removed.
// Prerequisites: `npm ci && npm run build`, the Debian packages ffmpeg, xvfb, xterm, docker.io,
// and a running Docker engine.
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const BUILD_DIR = path.join(__dirname, '.build');
const CONTEXT = path.join(BUILD_DIR, 'context');
const HASH_CACHE = path.join(BUILD_DIR, 'hash-cache.json');
const DOCKERFILE = path.join(__dirname, 'agent.Dockerfile');
const HEALTHCHECK = path.join(__dirname, 'healthcheck.js');
const AGENT_DIR = path.join(ROOT, 'apps', 'vm-agent');
/** the app's place in the image: the repository layout is kept below it */
const APP_ROOT = '/app';
/** uid/gid the agent runs as (docker/agent.Dockerfile USER) */
const UVE_UID = 10001;
/** bump to rebuild every image after a change of this script's output */
const FORMAT = 3;
/** folders whose mode is not 0755, in whichever layer writes into them */
const SPECIAL_DIRS = { '/tmp': 0o1777, '/tmp/.X11-unix': 0o1777 };

const PLATFORMS = {
  wasm: { platform: 'WASM', layers: ['base', 'home', 'media', 'modules', 'app'] },
  x11: { platform: 'LINUX_X11', layers: ['base', 'home', 'media', 'x11', 'modules', 'app'] },
};
const LAYERS = ['base', 'home', 'media', 'x11', 'modules', 'app'];

/** programs of the LINUX_X11 image; required ones fail the build when missing */
const X11_PROGRAMS = { required: ['Xvfb', 'xkbcomp', 'xterm'], optional: ['xauth', 'xdpyinfo', 'xwininfo', 'xprop', 'xsetroot', 'xclock', 'xeyes', 'xcalc', 'xlogo'] };
/** X data: [host path, required] (folders copied whole; symlinks dereferenced) */
const X11_DATA = [
  ['/usr/share/X11/xkb', true],
  ['/usr/share/X11/locale', false],
  ['/usr/share/X11/XErrorDB', false],
  ['/usr/share/X11/rgb.txt', false],
  ['/usr/lib/xorg/protocol.txt', false],
  ['/etc/X11/app-defaults', false],
  ['/usr/share/fonts/X11/misc', false],
  ['/usr/share/fonts/X11/encodings', false],
  ['/usr/share/fonts/truetype/dejavu', false],
  ['/etc/fonts', false],
  // LANG=C.UTF-8 (the xterm sample UA): glibc loads this locale from files (libc-bin)
  ['/usr/lib/locale/C.utf8', false],
];

// ---- small helpers --------------------------------------------------------------------------------

let quiet = false;
const log = (...a) => {
  if (!quiet) console.log('[docker:images]', ...a);
};

class BuildError extends Error {}

function which(cmd) {
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

function walk(dir, onFile, skip = () => false) {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (skip(p, ent)) continue;
    if (ent.isDirectory()) walk(p, onFile, skip);
    else onFile(p, ent);
  }
}

// ---- the file list --------------------------------------------------------------------------------

/**
 * The files of one layer, by their path in the image:
 *   { kind: 'file', src, mode } | { kind: 'data', data: Buffer, mode } | { kind: 'dir', mode } | { kind: 'symlink', target }
 */
class Layer {
  constructor(name) {
    this.name = name;
    this.entries = new Map();
  }

  file(dest, src, mode) {
    const real = fs.realpathSync(src);
    const st = fs.statSync(real);
    const prev = this.entries.get(dest);
    if (prev && prev.kind === 'file' && prev.src !== real) throw new BuildError(`${dest}: two different sources (${prev.src}, ${real})`);
    this.entries.set(dest, { kind: 'file', src: real, mode: mode ?? st.mode & 0o1777 });
  }

  data(dest, text, mode = 0o644) {
    this.entries.set(dest, { kind: 'data', data: Buffer.from(text), mode });
  }

  dir(dest, mode = 0o755) {
    this.entries.set(dest, { kind: 'dir', mode });
  }

  symlink(dest, target) {
    this.entries.set(dest, { kind: 'symlink', target });
  }

  /** a host folder (or file) copied whole to the same place; symlinks are followed */
  tree(hostPath, dest = hostPath, skip = () => false) {
    const st = fs.statSync(hostPath);
    if (!st.isDirectory()) return this.file(dest, hostPath);
    walk(
      hostPath,
      (p) => {
        let s;
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

  has(dest) {
    return this.entries.has(dest);
  }
}

/** the shared libraries `file` needs: [{ name, path }] as the loader resolves them now; throws on "not found" */
function ldd(file) {
  const r = spawnSync('ldd', [file], { encoding: 'utf8' });
  const out = `${r.stdout || ''}${r.stderr || ''}`;
  if (r.error) throw new BuildError(`ldd could not run (${r.error.message}); it comes with libc-bin`);
  if (/not a dynamic executable|statically linked/.test(out)) return [];
  if (r.status !== 0) throw new BuildError(`ldd ${file} failed: ${out.trim()}`);
  const libs = [];
  const missing = [];
  for (const line of out.split('\n')) {
    let m = /^\s*(\S+) => not found/.exec(line);
    if (m) {
      missing.push(m[1]);
      continue;
    }
    m = /^\s*(\S+) => (\/\S+) \(0x[0-9a-f]+\)/.exec(line);
    if (m) {
      libs.push({ name: m[1], path: m[2] });
      continue;
    }
    m = /^\s*(\/\S+) \(0x[0-9a-f]+\)/.exec(line); // the dynamic loader
    if (m) libs.push({ name: path.basename(m[1]), path: m[1], loader: true });
  }
  if (missing.length) throw new BuildError(`${file} needs ${missing.join(', ')}, not found on this machine`);
  return libs;
}

let multiarchDir = null;
/** where a library goes in the image: its loader path (kept as is), or the default library folder */
function libDest(lib) {
  const dir = fs.realpathSync(path.dirname(lib.path));
  if (lib.loader) return path.join(dir, path.basename(lib.path)); // PT_INTERP: the exact path
  // Flattened into the multiarch folder (a default search folder of the loader): no ld.so.cache
  // is needed to find libraries that live in sub-folders on this machine (alternatives, RUNPATH).
  return path.join(multiarchDir, lib.name);
}

/** adds the libraries of `files` to `layer`, except those the `below` layers have; skips libraries inside `skipUnder` */
function addLibraries(layer, files, below = [], skipUnder = null) {
  let count = 0;
  for (const f of files) {
    let libs;
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

/** a program on PATH at its canonical place in the image (e.g. /bin/sh -> /usr/bin/sh on merged /usr) */
function addProgram(layer, name, required = true) {
  const p = which(name);
  if (!p) {
    if (required) throw new BuildError(`${name} is not installed (Debian: apt-get install ${debianPackage(name)})`);
    return null;
  }
  const dest = path.join(fs.realpathSync(path.dirname(p)), path.basename(p));
  layer.file(dest, p);
  return p;
}

function debianPackage(cmd) {
  return { ffmpeg: 'ffmpeg', Xvfb: 'xvfb', xkbcomp: 'x11-xkb-utils', xterm: 'xterm', sh: 'dash' }[cmd] || cmd;
}

// ---- node_modules closure ---------------------------------------------------------------------------

function readJson(p) {
  return JSON.parse(fs.readFileSync(p, 'utf8'));
}

/** Node's lookup of `name` from `fromDir` (node_modules folders upwards, not above ROOT) */
function findPackage(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const cand = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(cand, 'package.json'))) return cand;
    if (dir === ROOT || path.dirname(dir) === dir) return null;
  }
}

/**
 * The runtime dependency closure of an app (default the agent), less the packages `skip(name)`
 * names: { packages: [{ realPath, workspace }], links }. Paths are
 * relative to ROOT so the image keeps the repository's layout under /app (Node then resolves
 * exactly as it does here).
 */
function dependencyClosure(appDir = AGENT_DIR, skip = () => false) {
  const seen = new Map(); // realPath -> entry
  const links = new Map(); // linkPath -> realPath (workspace symlinks in node_modules)
  const queue = [appDir];
  while (queue.length) {
    const dir = queue.shift();
    const pkg = readJson(path.join(dir, 'package.json'));
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

/**
 * Adds the runtime node_modules of an app (its dependency closure less `skip`), in the repository's
 * layout under /app, and the system libraries their native addons need (those not in `below`).
 */
function addModules(layer, appDir, below, skip = () => false) {
  const closure = dependencyClosure(appDir, skip);
  const native = [];
  closure.nativeNames = new Set();
  for (const pkg of closure.packages.filter((p) => !p.workspace)) {
    walk(
      pkg.realPath,
      (p, ent) => {
        if (!ent.isFile() && !ent.isSymbolicLink()) return;
        let st;
        try {
          st = fs.statSync(p);
        } catch {
          return;
        }
        if (!st.isFile()) return;
        layer.file(path.posix.join(APP_ROOT, path.relative(ROOT, p)), p);
        if (/\.node$|\.so(\.\d+)*$/.test(ent.name)) {
          native.push(p);
          closure.nativeNames.add(readJson(path.join(pkg.realPath, 'package.json')).name);
        }
      },
      prunable,
    );
  }
  addLibraries(layer, native, below, path.join(ROOT, 'node_modules'));
  return closure;
}

/** not needed at run time: type declarations, sources, maps, docs (license files are kept) */
function prunable(p, ent) {
  if (ent.isDirectory()) return ent.name === 'node_modules' || ent.name === '.github';
  const n = ent.name;
  if (/[.-]musl\.node$/.test(n)) return true; // addons built for musl libc: the image has glibc
  return /\.(d\.[cm]?ts|[cm]?ts|map|tsbuildinfo|md|markdown)$/i.test(n) && !/^licen[cs]e/i.test(n);
}

// ---- the layers -----------------------------------------------------------------------------------

/**
 * What every image of this repository starts from: the merged-/usr links, the Node binary running
 * this script and its shared libraries, /bin/sh, /tmp, /etc/passwd and /etc/group with root,
 * nobody and `users` ([name, uid, home, shell, description]).
 */
function addNodeBase(layer, users) {
  for (const top of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    try {
      if (fs.lstatSync(`/${top}`).isSymbolicLink()) layer.symlink(`/${top}`, fs.readlinkSync(`/${top}`));
    } catch {
      // absent
    }
  }
  const node = fs.realpathSync(process.execPath);
  const nodeLibs = ldd(node);
  const libc = nodeLibs.find((l) => /^libc\.so/.test(l.name));
  if (!libc) throw new BuildError(`${node} does not link libc dynamically; use a glibc build of Node`);
  multiarchDir = fs.realpathSync(path.dirname(libc.path));
  layer.file('/usr/bin/node', node, 0o755);
  const sh = addProgram(layer, 'sh');
  addLibraries(layer, [node, sh]);
  layer.dir('/tmp', 0o1777);
  layer.dir('/etc');
  const passwd = users.map(([name, uid, home, shell, what]) => `${name}:x:${uid}:${uid}:${what}:${home}:${shell}\n`).join('');
  layer.data('/etc/passwd', `root:x:0:0:root:/root:/bin/sh\n${passwd}nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`);
  layer.data('/etc/group', `root:x:0:\n${users.map(([name, uid]) => `${name}:x:${uid}:\n`).join('')}nogroup:x:65534:\n`);
  layer.data('/etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n');
}

/** where the image's agent bundle goes; beside dist/main.js's folder depth, so its __dirname-relative paths (AGENT_ROOT) hold */
const BUNDLE = 'apps/vm-agent/dist/bundle/main.js';
/** optional packages the agent's dependencies try to load (ws); absent here, absent in the image */
const OPTIONAL_EXTERNALS = ['bufferutil', 'utf-8-validate'];

/**
 * The agent (dist/main.js and everything it requires, less native addons) bundled into one file,
 * with its source map (through the tsc maps to src/*.ts, no sources inlined): [[dest, Buffer], ...].
 * Node loads one file instead of resolving and reading ~hundreds of modules: 0.1-0.2 s less of a
 * cold DOCKER VM's start (docs/performance.md). Packages with native addons stay in node_modules
 * (they find their .node files relative to themselves).
 */
function agentBundle(nativeNames) {
  let esbuild;
  try {
    esbuild = require('esbuild');
  } catch {
    throw new BuildError('esbuild is not installed (a devDependency of the repository): run npm ci');
  }
  const outfile = path.join(ROOT, BUNDLE);
  const r = esbuild.buildSync({
    entryPoints: [path.join(AGENT_DIR, 'dist', 'main.js')],
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${process.versions.node.split('.')[0]}`,
    external: [...nativeNames, ...OPTIONAL_EXTERNALS],
    sourcemap: 'linked',
    sourcesContent: false,
    outfile,
    write: false,
    logLevel: 'silent',
  });
  return r.outputFiles.map((f) => [path.posix.join(APP_ROOT, path.relative(ROOT, f.path)), Buffer.from(f.contents)]);
}

/** "true" when this machine's ffmpeg (the one the image gets) has libx264: the agent then skips its `ffmpeg -encoders` probe at start */
function ffmpegHasLibx264() {
  const r = spawnSync(which('ffmpeg') || 'ffmpeg', ['-hide_banner', '-nostdin', '-encoders'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return r.status === 0 && /^\s*V\S*\s+libx264\s/m.test(r.stdout) ? 'true' : 'false';
}

function collectLayers(platforms) {
  for (const [p, hint] of [
    [path.join(AGENT_DIR, 'dist', 'main.js'), 'npm run build'],
    [path.join(ROOT, 'packages', 'protocol', 'dist', 'index.js'), 'npm run build'],
    [path.join(ROOT, 'packages', 'queue', 'dist', 'index.js'), 'npm run build'],
    [path.join(ROOT, 'node_modules'), 'npm ci'],
  ]) {
    if (!fs.existsSync(p)) throw new BuildError(`${path.relative(ROOT, p)} is missing: run ${hint} first`);
  }
  const L = Object.fromEntries(LAYERS.map((n) => [n, new Layer(n)]));

  // base: the merged-/usr links, Node and its libraries, a shell (Xvfb runs xkbcomp through
  // /bin/sh, xterm starts one), users, /tmp, the health check
  addNodeBase(L.base, [['uve', UVE_UID, '/home/uve', '/bin/sh', 'UVE VM agent']]);
  L.base.file('/uve/healthcheck.js', HEALTHCHECK, 0o644);
  // home: folders the agent's user writes (COPY --chown)
  L.home.dir('/home/uve', 0o755);
  L.home.dir('/var/lib/xkb', 0o755);

  // media: ffmpeg with libx264 (the H264 encoder; x11grab for LINUX_X11)
  const ffmpeg = addProgram(L.media, 'ffmpeg');
  addLibraries(L.media, [ffmpeg], [L.base]);

  // x11: the X server, its keymap compiler, xterm, a few X clients, data and fonts
  if (platforms.includes('x11')) {
    const progs = [];
    for (const name of X11_PROGRAMS.required) progs.push(addProgram(L.x11, name, true));
    for (const name of X11_PROGRAMS.optional) {
      const p = addProgram(L.x11, name, false);
      if (p) progs.push(p);
    }
    addLibraries(L.x11, progs, [L.base, L.media]);
    for (const [p, required] of X11_DATA) {
      if (fs.existsSync(p)) L.x11.tree(p);
      else if (required) throw new BuildError(`${p} is missing (Debian: apt-get install xkb-data)`);
    }
    // X sockets' folder: Xvfb (not root) cannot create it with the sticky bit itself
    L.x11.dir('/tmp/.X11-unix', 0o1777);
    // fontconfig cache is machine-specific; the image builds its own on first use (if ever)
    L.x11.dir('/var/cache/fontconfig', 0o1777);
  }

  // modules: the agent's runtime node_modules, and the system libraries of their native addons
  const { packages, links, nativeNames } = addModules(L.modules, AGENT_DIR, [L.base, L.media]);

  // app: the agent, the workspace packages it uses, the sample UA builds
  const appFiles = (dir, sub) => {
    if (!fs.existsSync(path.join(dir, sub))) return;
    walk(path.join(dir, sub), (p, ent) => {
      if (ent.isFile() && !/\.(map|d\.ts|tsbuildinfo)$/.test(ent.name)) L.app.file(path.posix.join(APP_ROOT, path.relative(ROOT, p)), p);
    });
  };
  for (const dir of [AGENT_DIR, ...packages.filter((p) => p.workspace).map((p) => p.realPath)]) {
    L.app.file(path.posix.join(APP_ROOT, path.relative(ROOT, dir), 'package.json'), path.join(dir, 'package.json'));
    appFiles(dir, 'dist');
  }
  for (const [link, real] of links) {
    L.app.symlink(path.posix.join(APP_ROOT, link), path.relative(path.dirname(path.join(ROOT, link)), real));
  }
  // the agent as one file, which the image runs (ENTRYPOINT): no module resolution at start
  for (const [dest, data] of agentBundle(nativeNames)) L.app.data(dest, data);
  // sample UAs: WASM ones as built (uas/<name>/build), LINUX_X11 ones as they are (uas-x11/<name>)
  const uasDir = path.join(AGENT_DIR, 'uas');
  let uas = 0;
  for (const ent of fs.existsSync(uasDir) ? fs.readdirSync(uasDir, { withFileTypes: true }) : []) {
    if (ent.isDirectory() && fs.existsSync(path.join(uasDir, ent.name, 'build', 'manifest.json'))) {
      appFiles(path.join(uasDir, ent.name), 'build');
      uas++;
    }
  }
  if (uas === 0) log('warning: no sample UA builds in apps/vm-agent/uas/*/build (node apps/vm-agent/scripts/build-uas.js)');
  const x11UasDir = path.join(AGENT_DIR, 'uas-x11');
  for (const ent of fs.existsSync(x11UasDir) ? fs.readdirSync(x11UasDir, { withFileTypes: true }) : []) {
    if (ent.isDirectory() && !ent.name.startsWith('.') && fs.existsSync(path.join(x11UasDir, ent.name, 'manifest.json'))) {
      walk(path.join(x11UasDir, ent.name), (p, e) => {
        if (e.isFile()) L.app.file(path.posix.join(APP_ROOT, path.relative(ROOT, p)), p);
      });
    }
  }
  return L;
}

// ---- hashing ----------------------------------------------------------------------------------------

let hashCache = {};
let usedHashes = {}; // written back: entries of files no longer used drop out
function fileHash(src) {
  const st = fs.statSync(src);
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  const hit = hashCache[src];
  const h = hit && hit[0] === key ? hit[1] : crypto.createHash('sha256').update(fs.readFileSync(src)).digest('hex');
  usedHashes[src] = [key, h];
  return h;
}

/** file hashes are kept between runs by (device, inode, size, mtime): most runs read no file */
function openHashCache(file) {
  try {
    hashCache = readJson(file);
  } catch {
    hashCache = {};
  }
  usedHashes = {};
}

function saveHashCache(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(usedHashes));
}

function layerHash(layer) {
  const h = crypto.createHash('sha256').update(`format ${FORMAT}\0${JSON.stringify(SPECIAL_DIRS)}\n`);
  for (const dest of [...layer.entries.keys()].sort()) {
    const e = layer.entries.get(dest);
    h.update(`${dest}\0${e.kind}\0`);
    if (e.kind === 'file') h.update(`${e.mode.toString(8)}\0${fileHash(e.src)}\n`);
    else if (e.kind === 'data') h.update(`${e.mode.toString(8)}\0${crypto.createHash('sha256').update(e.data).digest('hex')}\n`);
    else if (e.kind === 'dir') h.update(`${e.mode.toString(8)}\n`);
    else h.update(`${e.target}\n`);
  }
  return h.digest('hex');
}

// ---- the build context ------------------------------------------------------------------------------

function materialize(layer, hash, context = CONTEXT) {
  const dir = path.join(context, layer.name);
  const stamp = path.join(context, `${layer.name}.sha256`);
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === hash && fs.existsSync(dir)) return false;
  fs.rmSync(stamp, { force: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const dirs = [];
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

// ---- docker -----------------------------------------------------------------------------------------

function docker(args, opts = {}) {
  return spawnSync('docker', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
}

function imageLabel(image, label) {
  const r = docker(['image', 'inspect', '--format', `{{ index .Config.Labels "${label}" }}`, image]);
  return r.status === 0 ? r.stdout.trim() : null;
}

function agentVersion() {
  return readJson(path.join(AGENT_DIR, 'package.json')).version;
}

/** default image names, as the gateway's DockerProvider expects them */
function imageNames(version = agentVersion()) {
  return { wasm: `uve/vm-agent-wasm:${version}`, x11: `uve/vm-agent-x11:${version}` };
}

function parseArgs(argv) {
  const opts = { platforms: ['wasm', 'x11'], force: false, contextOnly: false, quiet: false, images: imageNames() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new BuildError(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--platform') {
      const v = value();
      opts.platforms = v === 'all' ? ['wasm', 'x11'] : v.split(',').map((s) => s.trim().toLowerCase());
      for (const p of opts.platforms) if (!PLATFORMS[p]) throw new BuildError(`unknown platform ${p} (wasm, x11, all)`);
    } else if (a === '--force') opts.force = true;
    else if (a === '--context-only') opts.contextOnly = true;
    else if (a === '--quiet' || a === '-q') opts.quiet = true;
    else if (a === '--wasm-image') opts.images.wasm = value();
    else if (a === '--x11-image') opts.images.x11 = value();
    else if (a === '-h' || a === '--help') {
      const lines = fs.readFileSync(__filename, 'utf8').split('\n').slice(2);
      process.stdout.write(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
      process.exit(0);
    } else throw new BuildError(`unknown option ${a} (try --help)`);
  }
  return opts;
}

/**
 * Builds the images that are missing or out of date. Returns { [platform]: { image, hash, built, seconds } }.
 * Usable from scripts: await require('./docker/build-images.js').buildImages({ platforms: ['wasm'] }).
 */
async function buildImages(options = {}) {
  const opts = { platforms: ['wasm', 'x11'], force: false, contextOnly: false, images: imageNames(), ...options };
  quiet = Boolean(opts.quiet);
  const t0 = Date.now();
  if (!opts.contextOnly) {
    const r = docker(['version', '--format', '{{.Server.Version}}']);
    if (r.error) throw new BuildError(`the docker CLI is not installed (${r.error.message}); Debian: apt-get install docker.io`);
    if (r.status !== 0) throw new BuildError(`no Docker engine answers (${(r.stderr || '').trim()}); start one, e.g. dockerd --iptables=false --bridge=none`);
  }
  openHashCache(HASH_CACHE);
  const L = collectLayers(opts.platforms);
  const libx264 = ffmpegHasLibx264();
  const dockerfile = Buffer.concat([fs.readFileSync(DOCKERFILE), Buffer.from(`\0libx264=${libx264}`)]);
  const hashes = {};
  for (const name of LAYERS) hashes[name] = layerHash(L[name]);
  saveHashCache(HASH_CACHE);
  log(`inputs listed and hashed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const result = {};
  const jobs = [];
  let systemWritten = false;
  for (const platform of opts.platforms) {
    const spec = PLATFORMS[platform];
    const image = opts.images[platform];
    const h = crypto.createHash('sha256').update(`format ${FORMAT}\0`).update(dockerfile);
    for (const name of spec.layers) h.update(`${name}\0${hashes[name]}\n`);
    const hash = h.digest('hex');
    if (!opts.force && !opts.contextOnly && imageLabel(image, 'uve.inputs.sha256') === hash) {
      log(`${image} is up to date (inputs ${hash.slice(0, 12)})`);
      result[platform] = { image, hash, built: false, seconds: 0 };
      continue;
    }
    for (const name of spec.layers) {
      if (materialize(L[name], hashes[name])) {
        log(`context ${name}/ written (${L[name].entries.size} entries)`);
        if (name !== 'modules' && name !== 'app') systemWritten = true;
      }
    }
    result[platform] = { image, hash, built: false, seconds: 0 };
    if (!opts.contextOnly) jobs.push({ platform, spec, image, hash });
  }
  // a layer the Dockerfile copies but a platform does not use must still exist
  for (const name of LAYERS) fs.mkdirSync(path.join(CONTEXT, name), { recursive: true });

  // Both images at once when only their upper layers changed (most of the time goes into sending
  // the context); one after the other when the shared lower layers are new, so that the second
  // build finds them in the cache.
  const parallel = !systemWritten;
  const run = async (job) => {
    const started = Date.now();
    log(`building ${job.image} (inputs ${job.hash.slice(0, 12)})`);
    const previous = docker(['image', 'inspect', '--format', '{{.Id}}', job.image]);
    await dockerBuild([
      'build', '--quiet',
      '--file', DOCKERFILE,
      '--tag', job.image,
      '--build-arg', `PLATFORM=${job.platform}`,
      '--build-arg', `UVE_VM_PLATFORM=${job.spec.platform}`,
      '--build-arg', `VERSION=${agentVersion()}`,
      '--build-arg', `INPUTS_SHA256=${job.hash}`,
      '--build-arg', `FFMPEG_LIBX264=${libx264}`,
      CONTEXT,
    ], job.image);
    // the replaced image would stay behind untagged: remove it unless a container still uses it or
    // another name still tags it (the same build under another name, e.g. a test suite's own images)
    const oldId = previous.status === 0 ? previous.stdout.trim() : '';
    const untagged = () => docker(['image', 'inspect', '--format', '{{len .RepoTags}}', oldId]).stdout.trim() === '0';
    if (oldId && docker(['image', 'inspect', '--format', '{{.Id}}', job.image]).stdout.trim() !== oldId && untagged()) docker(['image', 'rm', oldId]);
    const seconds = (Date.now() - started) / 1000;
    const size = docker(['image', 'inspect', '--format', '{{.Size}}', job.image]).stdout.trim();
    log(`${job.image} built in ${seconds.toFixed(1)} s, ${(Number(size) / 1024 / 1024).toFixed(0)} MiB`);
    result[job.platform] = { image: job.image, hash: job.hash, built: true, seconds };
  };
  if (parallel) await Promise.all(jobs.map(run));
  else for (const job of jobs) await run(job);
  log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}

/** `docker build` (BuildKit when the CLI has buildx, else the classic builder: the Dockerfile suits both) */
function dockerBuild(args, image) {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { DOCKER_CLI_HINTS: 'false', ...process.env } });
    let out = '';
    const keep = (d) => (out = (out + d.toString()).slice(-100_000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (e) => reject(new BuildError(`docker could not run: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new BuildError(`docker build of ${image} failed (exit ${code}):\n${out.trim()}`))));
  });
}

module.exports = {
  buildImages, imageNames, BuildError,
  // for docker/build-stack-images.js
  ROOT, BUILD_DIR, APP_ROOT, FORMAT, Layer, log, setQuiet: (q) => (quiet = q), walk, which, ldd, addLibraries, addProgram, addNodeBase,
  readJson, dependencyClosure, addModules, prunable, openHashCache, saveHashCache, layerHash, materialize, docker, imageLabel, dockerBuild,
};

if (require.main === module) {
  Promise.resolve()
    .then(() => buildImages(parseArgs(process.argv.slice(2))))
    .catch((e) => {
      console.error(`[docker:images] ${e instanceof BuildError ? e.message : e.stack || e}`);
      process.exit(1);
    });
}
