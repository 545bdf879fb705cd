// The files of the agent images' layers (docker/agent.Dockerfile), listed from this machine.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { addNodeBase } from '../base-layer';
import { Layer, walk } from '../layer';
import { addLibraries, addProgram, which } from '../libraries';
import { BuildError, log } from '../log';
import { addBuiltFiles, addLinks, addModules } from '../node-modules';
import { AGENT_DIR, appPath, DOCKER_DIR, ROOT } from '../paths';
import { agentBundle } from './bundle';

export const LAYERS = ['base', 'home', 'media', 'x11', 'modules', 'app'] as const;
export type LayerName = (typeof LAYERS)[number];
export type Layers = Record<LayerName, Layer>;

/** uid/gid the agent runs as (docker/agent.Dockerfile USER) */
const UVE_UID = 10001;
const HEALTHCHECK = path.join(DOCKER_DIR, 'healthcheck.js');

/** programs of the LINUX_X11 image; required ones fail the build when missing */
const X11_PROGRAMS = { required: ['Xvfb', 'xkbcomp', 'xterm'], optional: ['xauth', 'xdpyinfo', 'xwininfo', 'xprop', 'xsetroot', 'xclock', 'xeyes', 'xcalc', 'xlogo'] };
/** X data: [host path, required] (folders copied whole; symlinks dereferenced) */
const X11_DATA: [string, boolean][] = [
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

/** "true" when this machine's ffmpeg (the one the image gets) has libx264: the agent then skips its `ffmpeg -encoders` probe at start */
export function ffmpegHasLibx264(): 'true' | 'false' {
  const r = spawnSync(which('ffmpeg') || 'ffmpeg', ['-hide_banner', '-nostdin', '-encoders'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return r.status === 0 && /^\s*V\S*\s+libx264\s/m.test(r.stdout) ? 'true' : 'false';
}

/** every layer's files; the x11 layer stays empty unless `withX11` */
export function collectLayers(withX11: boolean): Layers {
  for (const [p, hint] of [
    [path.join(AGENT_DIR, 'dist', 'main.js'), 'npm run build'],
    [path.join(ROOT, 'packages', 'protocol', 'dist', 'index.js'), 'npm run build'],
    [path.join(ROOT, 'packages', 'queue', 'dist', 'index.js'), 'npm run build'],
    [path.join(ROOT, 'node_modules'), 'npm ci'],
  ] as const) {
    if (!fs.existsSync(p)) throw new BuildError(`${path.relative(ROOT, p)} is missing: run ${hint} first`);
  }
  const L = Object.fromEntries(LAYERS.map((n) => [n, new Layer(n)])) as Layers;

  // base: the merged-/usr links, Node and its libraries, a shell (Xvfb runs xkbcomp through
  // /bin/sh, xterm starts one), users, /tmp, the health check
  addNodeBase(L.base, [{ name: 'uve', uid: UVE_UID, home: '/home/uve', shell: '/bin/sh', description: 'UVE VM agent' }]);
  L.base.file('/uve/healthcheck.js', HEALTHCHECK, 0o644);
  // home: folders the agent's user writes (COPY --chown)
  L.home.dir('/home/uve', 0o755);
  L.home.dir('/var/lib/xkb', 0o755);

  // media: ffmpeg with libx264 (the H264 encoder; x11grab for LINUX_X11)
  const ffmpeg = addProgram(L.media, 'ffmpeg');
  addLibraries(L.media, [ffmpeg], [L.base]);

  if (withX11) addX11(L.x11, [L.base, L.media]);

  // modules: the agent's runtime node_modules, and the system libraries of their native addons
  const { workspaces, links, nativeNames } = addModules(L.modules, AGENT_DIR, [L.base, L.media]);

  // app: the agent, the workspace packages it uses, the sample UA builds
  for (const dir of [AGENT_DIR, ...workspaces]) {
    L.app.file(appPath(path.join(dir, 'package.json')), path.join(dir, 'package.json'));
    if (fs.existsSync(path.join(dir, 'dist'))) addBuiltFiles(L.app, path.join(dir, 'dist'));
  }
  addLinks(L.app, links);
  // the agent as one file, which the image runs (ENTRYPOINT): no module resolution at start
  for (const [dest, data] of agentBundle(nativeNames)) L.app.data(dest, data);
  addSampleUas(L.app);
  return L;
}

/** the X server, its keymap compiler, xterm, a few X clients, data and fonts */
function addX11(layer: Layer, below: Layer[]): void {
  const progs: string[] = [];
  for (const name of X11_PROGRAMS.required) progs.push(addProgram(layer, name, true));
  for (const name of X11_PROGRAMS.optional) {
    const p = addProgram(layer, name, false);
    if (p) progs.push(p);
  }
  addLibraries(layer, progs, below);
  for (const [p, required] of X11_DATA) {
    if (fs.existsSync(p)) layer.tree(p);
    else if (required) throw new BuildError(`${p} is missing (Debian: apt-get install xkb-data)`);
  }
  // X sockets' folder: Xvfb (not root) cannot create it with the sticky bit itself
  layer.dir('/tmp/.X11-unix', 0o1777);
  // fontconfig cache is machine-specific; the image builds its own on first use (if ever)
  layer.dir('/var/cache/fontconfig', 0o1777);
}

/** sample UAs: WASM ones as built (uas/<name>/build), LINUX_X11 ones as they are (uas-x11/<name>) */
function addSampleUas(layer: Layer): void {
  const subfolders = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()) : []);
  const uasDir = path.join(AGENT_DIR, 'uas');
  let uas = 0;
  for (const ent of subfolders(uasDir)) {
    const build = path.join(uasDir, ent.name, 'build');
    if (fs.existsSync(path.join(build, 'manifest.json'))) {
      addBuiltFiles(layer, build);
      uas++;
    }
  }
  if (uas === 0) log('warning: no sample UA builds in apps/vm-agent/uas/*/build (node apps/vm-agent/scripts/build-uas.js)');
  const x11UasDir = path.join(AGENT_DIR, 'uas-x11');
  for (const ent of subfolders(x11UasDir)) {
    if (!ent.name.startsWith('.') && fs.existsSync(path.join(x11UasDir, ent.name, 'manifest.json'))) {
      walk(path.join(x11UasDir, ent.name), (p, e) => {
        if (e.isFile()) layer.file(appPath(p), p);
      });
    }
  }
}
