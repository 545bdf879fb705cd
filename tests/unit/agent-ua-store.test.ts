// UA packages on the VM agent: builtin and downloaded packages (tar, tar.gz, JSON bundle), sha256
// checked before use, unsafe archives refused, deployment.changed reports, prepare waiting for a deploy.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { relative } from 'node:path';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { DeployUaCommand } from '@uve/protocol';
import { silentLogger } from '../../apps/vm-agent/src/common/log';
import type { UaRuntime } from '../../apps/vm-agent/src/runtimes/runtime';
import { UaStore, builtinPackageDir, type DeploymentReport } from '../../apps/vm-agent/src/uas/ua-store';
import { readPackage, safeRelativePath } from '../../apps/vm-agent/src/uas/unpack';

/** A minimal ustar writer (enough to build test archives, including hostile ones). */
function tar(entries: Array<{ name: string; data?: string | Uint8Array; type?: string }>): Uint8Array {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write(e.type ?? '0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** every file below `dir`, relative to it */
const filesUnder = (dir: string): string[] =>
  existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => !e.isDirectory()).map((e) => relative(dir, join(e.parentPath, e.name))) : [];

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const manifest = (version: string) => JSON.stringify({ name: 'demo', version, platform: 'WASM', entry: 'app.wasm', requiredResources: [] });
const MANIFEST = manifest('1.0.0');

/** Accepts a folder with manifest.json, like a runtime would. */
const runtime: UaRuntime = {
  platform: 'WASM',
  async validatePackage(dir) {
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { entry: string };
    if (!existsSync(join(dir, m.entry))) throw new Error(`entry ${m.entry} missing`);
    return { requiredResources: ['GEOLOCATION'] };
  },
  start: () => Promise.reject(new Error('not in this test')),
};

let server: Server;
let base: string;
const files = new Map<string, Uint8Array>();
let dataDir: string;
let builtinRoot: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const body = files.get(req.url ?? '');
    if (!body) res.writeHead(404).end();
    else res.writeHead(200, { 'content-length': body.length }).end(Buffer.from(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  builtinRoot = await mkdtemp(join(tmpdir(), 'uve-builtin-'));
  await mkdir(join(builtinRoot, 'uas', 'demo', 'build'), { recursive: true });
  await writeFile(join(builtinRoot, 'uas', 'demo', 'build', 'manifest.json'), MANIFEST);
  await writeFile(join(builtinRoot, 'uas', 'demo', 'build', 'app.wasm'), 'wasm');
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await rm(builtinRoot, { recursive: true, force: true });
});
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'uve-data-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

function store(): { s: UaStore; reports: DeploymentReport[] } {
  const reports: DeploymentReport[] = [];
  const s = new UaStore({ dataDir, platform: 'WASM', runtime, report: (r) => reports.push(r), log: silentLogger, builtinRoot });
  return { s, reports };
}

const deployCmd = (packageUrl: string, sha256 = '', over: Partial<DeployUaCommand> = {}): DeployUaCommand => ({ type: 'ua.deploy', uaId: 'ua-1', version: '1.0.0', platform: 'WASM', packageUrl, sha256, ...over });

describe('UA packages', () => {
  it('installs a builtin package in place', async () => {
    const { s, reports } = store();
    await s.deploy(deployCmd('builtin:demo'));
    expect(reports.map((r) => r.status)).toEqual(['DOWNLOADING', 'INSTALLED']);
    expect(s.get('ua-1')).toMatchObject({ dir: join(builtinRoot, 'uas', 'demo', 'build'), builtin: true, requiredResources: ['GEOLOCATION'] });
    expect(s.deployed()).toEqual([{ uaId: 'ua-1', version: '1.0.0' }]);
  });

  it.each([
    ['tar', () => tar([{ name: './manifest.json', data: MANIFEST }, { name: './app.wasm', data: 'wasm' }])],
    ['tar with a top folder', () => tar([{ name: 'demo/', type: '5' }, { name: 'demo/manifest.json', data: MANIFEST }, { name: 'demo/app.wasm', data: 'wasm' }])],
    ['tar.gz', () => gzipSync(tar([{ name: 'manifest.json', data: MANIFEST }, { name: 'app.wasm', data: 'wasm' }]))],
    ['JSON bundle', () => Buffer.from(JSON.stringify({ format: 'uve-ua-bundle/1', files: { 'manifest.json': Buffer.from(MANIFEST).toString('base64'), 'app.wasm': Buffer.from('wasm').toString('base64') } }))],
  ])('downloads, verifies and unpacks a %s', async (_name, make) => {
    const body = make();
    files.set('/pkg', body);
    const { s, reports } = store();
    await s.deploy(deployCmd(`${base}/pkg`, sha(body).toUpperCase()));
    expect(reports.map((r) => [r.status, r.error])).toEqual([['DOWNLOADING', null], ['INSTALLED', null]]);
    const dir = s.get('ua-1')!.dir;
    expect(dir.startsWith(dataDir)).toBe(true);
    expect(await readFile(join(dir, 'app.wasm'), 'utf8')).toBe('wasm');
  });

  it('refuses a download whose sha256 does not match, and keeps nothing of it', async () => {
    const body = tar([{ name: 'manifest.json', data: MANIFEST }, { name: 'app.wasm', data: 'wasm' }]);
    files.set('/bad', body);
    const { s, reports } = store();
    await s.deploy(deployCmd(`${base}/bad`, 'a'.repeat(64)));
    expect(reports.at(-1)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/sha256 mismatch/) });
    expect(s.get('ua-1')).toBeUndefined();
    expect(existsSync(join(dataDir, 'uas', 'ua-1')) ? readdirSync(join(dataDir, 'uas', 'ua-1')) : []).toEqual([]);
  });

  // Each hostile archive is otherwise a valid package (manifest.json and its entry), so only the
  // unpacking guards can refuse it; nothing may be written where the entry points.
  const valid = [{ name: 'manifest.json', data: MANIFEST }, { name: 'app.wasm', data: 'wasm' }];
  it.each([
    ['a path outside the package', () => tar([...valid, { name: '../evil', data: 'x' }]), /package path "\.\.\/evil" points outside the package/],
    ['a path that climbs out through a folder', () => tar([...valid, { name: 'sub/../../evil', data: 'x' }]), /package path "sub\/\.\.\/\.\.\/evil" points outside the package/],
    ['an absolute path', () => tar([...valid, { name: '/tmp/evil', data: 'x' }]), /package path "\/tmp\/evil" points outside the package/],
    ['a JSON bundle path outside the package', () => Buffer.from(JSON.stringify({ format: 'uve-ua-bundle/1', files: { 'manifest.json': Buffer.from(MANIFEST).toString('base64'), 'app.wasm': Buffer.from('wasm').toString('base64'), '../evil': Buffer.from('x').toString('base64') } })), /package path "\.\.\/evil" points outside the package/],
    ['a symbolic link', () => tar([...valid, { name: 'link', type: '2' }]), /package entry "link" is a symbolic link; packages hold only regular files and folders \(no links, no devices\)/],
  ])('refuses an archive with %s, and writes nothing of it', async (_name, make, message) => {
    const body = make();
    files.set('/evil', body);
    const { s, reports } = store();
    await s.deploy(deployCmd(`${base}/evil`, sha(body)));
    expect(reports.map((r) => [r.status, r.error])).toEqual([['DOWNLOADING', null], ['FAILED', expect.stringMatching(message)]]);
    expect(s.get('ua-1')).toBeUndefined();
    // where the entries would land: the package is unpacked in dataDir/uas/ua-1/.<tag>.staging, so
    // `../evil` lands in dataDir/uas/ua-1/evil, and `/tmp/evil` in the staging folder
    expect(filesUnder(dataDir).filter((f) => f.endsWith('evil'))).toEqual([]);
    expect(existsSync(join(dataDir, 'uas', 'ua-1', 'evil'))).toBe(false);
    expect(existsSync(join(dataDir, 'uas', 'evil'))).toBe(false);
  });

  it('reports FAILED for HTTP errors, unknown schemes, the wrong platform and packages the runtime rejects', async () => {
    const { s, reports } = store();
    await s.deploy(deployCmd(`${base}/missing`, 'a'.repeat(64)));
    await s.deploy(deployCmd('ftp://x/y', 'a'.repeat(64), { uaId: 'ua-2' }));
    await s.deploy(deployCmd('builtin:demo', '', { uaId: 'ua-3', platform: 'LINUX_X11' }));
    const noEntry = tar([{ name: 'manifest.json', data: MANIFEST }]);
    files.set('/noentry', noEntry);
    await s.deploy(deployCmd(`${base}/noentry`, sha(noEntry), { uaId: 'ua-4' }));
    const failed = reports.filter((r) => r.status === 'FAILED').map((r) => [r.uaId, r.error]);
    expect(failed).toEqual([
      ['ua-1', expect.stringMatching(/HTTP 404/)],
      ['ua-2', expect.stringMatching(/unsupported packageUrl/)],
      ['ua-3', expect.stringMatching(/hosts WASM UAs/)],
      ['ua-4', expect.stringMatching(/entry app.wasm missing/)],
    ]);
  });

  it('lets a session wait for the deployment in progress, and insists on the version', async () => {
    const { s } = store();
    const deploying = s.deploy(deployCmd('builtin:demo'));
    const resolved = s.resolve('ua-1', '1.0.0', 5_000);
    await deploying;
    await expect(resolved).resolves.toMatchObject({ uaId: 'ua-1', version: '1.0.0' });
    await expect(s.resolve('ua-1', '2.0.0', 100)).rejects.toThrow(/version 1.0.0 on this VM, not 2.0.0/);
    await expect(s.resolve('ua-x', '1', 100)).rejects.toThrow(/not deployed/);
  });

  it('lets a prepare that overtook its deploy (relayed by another gateway) wait for the deploy to arrive', async () => {
    const { s } = store();
    const resolved = s.resolve('ua-late', '1.0.0', 5_000);
    let settled = false;
    void resolved.then(() => (settled = true), () => (settled = true));
    await new Promise<void>((r) => setImmediate(r));
    expect(settled).toBe(false);
    await s.deploy(deployCmd('builtin:demo', '', { uaId: 'ua-late' }));
    await expect(resolved).resolves.toMatchObject({ uaId: 'ua-late', version: '1.0.0' });
  });

  it('updates to a new version and removes; an agent restarted on the same data dir keeps what it had', async () => {
    const v2 = tar([{ name: 'manifest.json', data: manifest('2.0.0') }, { name: 'app.wasm', data: 'wasm2' }]);
    files.set('/v2', v2);
    const { s, reports } = store();
    await s.deploy(deployCmd('builtin:demo'));
    await s.deploy({ ...deployCmd(`${base}/v2`, sha(v2)), type: 'ua.update', version: '2.0.0' });
    expect(s.deployed()).toEqual([{ uaId: 'ua-1', version: '2.0.0' }]);
    await s.deploy(deployCmd('builtin:demo', '', { uaId: 'ua-b' }));

    const again = store();
    await again.s.load();
    expect(again.s.deployed()).toEqual([{ uaId: 'ua-1', version: '2.0.0' }, { uaId: 'ua-b', version: '1.0.0' }]);

    const dir = s.get('ua-1')!.dir;
    await s.remove('ua-1');
    expect(reports.slice(-2).map((r) => r.status)).toEqual(['REMOVING', 'REMOVED']);
    expect(existsSync(dir)).toBe(false);
    expect(s.deployed()).toEqual([{ uaId: 'ua-b', version: '1.0.0' }]);
  });

  it('finds builtin packages per platform in the agent folder', () => {
    expect(builtinPackageDir('builtin:paint', 'WASM', '/a')).toBe('/a/uas/paint/build');
    expect(builtinPackageDir('builtin:xterm', 'LINUX_X11', '/a')).toBe('/a/uas-x11/xterm');
    expect(() => builtinPackageDir('builtin:../x', 'WASM')).toThrow(/invalid builtin package name/);
    expect(existsSync(builtinPackageDir('builtin:paint', 'WASM'))).toBe(true); // the agent's own samples (built)
  });

  it('normalises package paths and reads bundles', () => {
    expect(safeRelativePath('./a/b/../c')).toBe('a/c');
    expect(() => safeRelativePath('a/../../b')).toThrow(/outside/);
    expect(() => readPackage(Buffer.from('hello'))).toThrow(/unknown package format/);
    expect(() => readPackage(Buffer.from('{"files":[]}'))).toThrow(/"files" object/);
  });
});
