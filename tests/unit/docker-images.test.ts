// The image builders (docker/src, run by docker/build-images.js and docker/build-stack-images.js):
// the parts whose output decides whether an image is rebuilt (layer hashes, the hash cache), how a
// layer is written to the build context, the command lines, and the entry scripts' message when
// docker/dist was not built. Real files in a temporary folder; no Docker engine.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs as parseAgentArgs } from '../../docker/src/agent-images/cli';
import { materialize } from '../../docker/src/context';
import { HashCache, layerHash } from '../../docker/src/hashing';
import { Layer } from '../../docker/src/layer';
import { parseLdd } from '../../docker/src/libraries';
import { BuildError } from '../../docker/src/log';
import { prunable } from '../../docker/src/node-modules';
import { parseArgs as parseStackArgs } from '../../docker/src/stack-images/cli';

const ROOT = path.resolve(__dirname, '../..');
let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-docker-images-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string, mode: number): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content);
  fs.chmodSync(p, mode);
  return p;
}

it('hashes a layer as the images already built were hashed (a change rebuilds every image: bump FORMAT instead)', () => {
  const layer = new Layer('t');
  layer.file('/usr/bin/run', write('run.sh', '#!/bin/sh\necho hi\n', 0o755));
  layer.file('/etc/a.txt', write('a.txt', 'hello\n', 0o644), 0o600);
  layer.data('/etc/passwd', 'root:x:0:0::/root:/bin/sh\n');
  layer.dir('/tmp', 0o1777);
  layer.dir('/home/uve');
  layer.symlink('/lib', 'usr/lib');
  const cache = new HashCache(path.join(dir, 'cache.json'));
  // the values docker/build-images.js computed before it became TypeScript
  expect(layerHash(layer, cache)).toBe('78ffb747953cbf570a9fb00b19369b00a9e97046783094bb5f62f2be6363e467');
  expect(layerHash(new Layer('e'), cache)).toBe('9bfb89bd286f530c48ef6d6a903a42dc894d627eb1e26335c44da207ee2c548f');
});

it('reuses a file hash while the file keeps its inode, size and mtime, and drops entries no longer used', () => {
  const file = write('f', 'aaaa', 0o644);
  const other = write('g', 'x', 0o644);
  const cacheFile = path.join(dir, 'cache.json');
  const mtime = 1_700_000_000; // whole seconds: utimes sets them exactly
  fs.utimesSync(file, mtime, mtime);
  const first = new HashCache(cacheFile);
  const h = first.fileHash(file);
  first.fileHash(other);
  first.save();
  // same inode, size and mtime, other content: the cache answers without reading it
  fs.writeFileSync(file, 'bbbb');
  fs.utimesSync(file, mtime, mtime);
  const second = new HashCache(cacheFile);
  expect(second.fileHash(file)).toBe(h);
  second.save();
  expect(Object.keys(JSON.parse(fs.readFileSync(cacheFile, 'utf8')))).toEqual([file]);
  // a new mtime: hashed again
  fs.utimesSync(file, mtime, mtime + 5);
  expect(new HashCache(cacheFile).fileHash(file)).not.toBe(h);
});

it('writes a layer to the build context with its modes, once per hash', () => {
  const layer = new Layer('base');
  layer.file('/usr/bin/run', write('run.sh', '#!/bin/sh\n', 0o755));
  layer.file('/etc/key', write('key', 'k', 0o644), 0o600); // another mode than the source's: a copy
  layer.data('/etc/passwd', 'root:x:0:0::/root:/bin/sh\n', 0o640);
  layer.file('/tmp/.X11-unix/README', write('readme', 'r', 0o644)); // in special folders, no dir entry
  layer.symlink('/lib', 'usr/lib');
  const context = path.join(dir, 'context');
  expect(materialize(layer, 'h1', context)).toBe(true);
  const out = path.join(context, 'base');
  const mode = (p: string) => fs.statSync(path.join(out, p)).mode & 0o7777;
  expect(mode('usr/bin/run')).toBe(0o755);
  expect(fs.statSync(path.join(out, 'usr/bin/run')).ino).toBe(fs.statSync(path.join(dir, 'run.sh')).ino); // hard link
  expect(mode('etc/key')).toBe(0o600);
  expect(fs.statSync(path.join(out, 'etc/key')).ino).not.toBe(fs.statSync(path.join(dir, 'key')).ino);
  expect(mode('etc/passwd')).toBe(0o640);
  expect(mode('tmp')).toBe(0o1777);
  expect(mode('tmp/.X11-unix')).toBe(0o1777);
  expect(fs.readlinkSync(path.join(out, 'lib'))).toBe('usr/lib');
  expect(fs.readFileSync(path.join(context, 'base.sha256'), 'utf8')).toBe('h1');
  expect(materialize(layer, 'h1', context)).toBe(false);
  // another hash: the folder is written again from scratch
  fs.writeFileSync(path.join(out, 'stale'), '');
  expect(materialize(layer, 'h2', context)).toBe(true);
  expect(fs.existsSync(path.join(out, 'stale'))).toBe(false);
});

it('refuses two sources for one path of a layer', () => {
  const layer = new Layer('t');
  layer.file('/x', write('a', 'a', 0o644));
  layer.file('/x', path.join(dir, 'a')); // the same source again is fine
  expect(() => layer.file('/x', write('b', 'b', 0o644))).toThrow(BuildError);
});

it('reads ldd: libraries by the name the loader looks for, the loader itself, and names what is missing', () => {
  const out = [
    '\tlinux-vdso.so.1 (0x00007ffd5a1f2000)',
    '\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f2c1a000000)',
    '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2c19e1f000)',
    '\t/lib64/ld-linux-x86-64.so.2 (0x00007f2c1a5a6000)',
  ].join('\n');
  expect(parseLdd('/usr/bin/node', out)).toEqual([
    { name: 'libstdc++.so.6', path: '/lib/x86_64-linux-gnu/libstdc++.so.6' },
    { name: 'libc.so.6', path: '/lib/x86_64-linux-gnu/libc.so.6' },
    { name: 'ld-linux-x86-64.so.2', path: '/lib64/ld-linux-x86-64.so.2', loader: true },
  ]);
  expect(() => parseLdd('/usr/bin/x', `${out}\n\tlibfoo.so.1 => not found\n\tlibbar.so.2 => not found`)).toThrow('/usr/bin/x needs libfoo.so.1, libbar.so.2, not found on this machine');
});

it('leaves out of node_modules what does not run: declarations, sources, maps, docs, musl addons; keeps licenses', () => {
  const ent = (name: string, isDir = false) => ({ name, isDirectory: () => isDir }) as fs.Dirent;
  for (const n of ['index.d.ts', 'a.d.mts', 'src.ts', 'index.js.map', 'README.md', 'node.napi.musl.node', 'addon-musl.node']) expect(prunable('', ent(n))).toBe(true);
  for (const n of ['index.js', 'LICENSE.md', 'licence.markdown', 'sharp-linux-x64.node', 'package.json']) expect(prunable('', ent(n))).toBe(false);
  expect(prunable('', ent('node_modules', true))).toBe(true);
  expect(prunable('', ent('dist', true))).toBe(false);
});

it('reads the command lines of both builders', () => {
  const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'apps/vm-agent/package.json'), 'utf8')).version;
  expect(parseAgentArgs([])).toEqual({ platforms: ['wasm', 'x11'], force: false, contextOnly: false, quiet: false, images: { wasm: `uve/vm-agent-wasm:${version}`, x11: `uve/vm-agent-x11:${version}` } });
  expect(parseAgentArgs(['--platform', 'X11', '-q', '--x11-image', 'me/x11:t', '--force'])).toMatchObject({ platforms: ['x11'], quiet: true, force: true, images: { x11: 'me/x11:t' } });
  expect(parseAgentArgs(['--platform', 'all']).platforms).toEqual(['wasm', 'x11']);
  expect(() => parseAgentArgs(['--platform', 'wasm,arm'])).toThrow('unknown platform arm (wasm, x11, all)');
  expect(() => parseAgentArgs(['--wasm-image'])).toThrow('--wasm-image needs a value');
  expect(() => parseAgentArgs(['--prefix', 'x'])).toThrow('unknown option --prefix (try --help)');
  expect(parseStackArgs(['--only', 'redis, proxy', '--prefix', 'p/', '--tag', 't'])).toMatchObject({ only: ['redis', 'proxy'], prefix: 'p/', tag: 't' });
  expect(() => parseStackArgs(['--only', 'gateway,agent'])).toThrow('unknown image agent (postgres, redis, proxy, gateway, console)');
});

it('says to run the build when docker/dist is missing, from the command line and from require()', () => {
  // the entry scripts as they are, beside no dist/
  for (const f of ['build-images.js', 'build-stack-images.js', 'compiled.js']) fs.copyFileSync(path.join(ROOT, 'docker', f), path.join(dir, f));
  const r = spawnSync(process.execPath, [path.join(dir, 'build-images.js'), '--help'], { encoding: 'utf8' });
  expect(r.status).toBe(1);
  expect(r.stderr.trim()).toBe('[docker:images] docker/dist/agent-images/cli.js is missing: run npm run build first (the image builders are TypeScript, in docker/src)');
  expect(r.stdout).toBe('');
  expect(() => require(path.join(dir, 'build-stack-images.js'))).toThrow('[docker:stack-images] docker/dist/stack-images/cli.js is missing: run npm run build first');
});

it('prints its usage with --help (the built entry scripts)', () => {
  for (const [script, first] of [
    ['build-images.js', 'Builds the VM agent images uve/vm-agent-wasm:<version>'],
    ['build-stack-images.js', 'Builds the images docker/stack.yml runs, FROM scratch'],
  ] as const) {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'docker', script), '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.startsWith(first)).toBe(true);
    expect(r.stdout).toContain(`node docker/${script} [`);
  }
});
