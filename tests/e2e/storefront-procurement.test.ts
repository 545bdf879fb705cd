// Storefront procurement (UVE-7) and the UA lifecycle on VMs, end to end on real parts: the
// gateway with its warm pool of PROCESS VMs (the real vm-agent), the reference storefront
// (apps/storefront) serving packages built by `uve pack`, UVE-1 over GraphQL, UVE-3 over the VM's
// WebSocket. The VM's disk is checked after installs, removals and hostile packages. One VM
// (UVE_MAX_VMS=1), so the disk looked at is the disk that matters.
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { writeTar, type TarEntry } from '@uve/client/dist/pack';
import { freePort, freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, ok, refusal, registerUser, ROOT, startGateway, subscribe, type GatewayProcess } from '../support/gateway';
import { near, openStream, pixel, requestUa } from '../support/stream';

// the storefront as its operator runs it (built by npm run build)
const { Storefront, provideApplication, ProvideError } = require(path.join(ROOT, 'apps/storefront/dist/index.js')) as typeof import('../../apps/storefront/src/index');
type CatalogEntry = import('../../apps/storefront/src/index').CatalogEntry;

const PAINT = path.join(ROOT, 'apps/vm-agent/uas/paint/build');
const RED = { r: 255, g: 0, b: 0 };
const WHITE = { r: 255, g: 255, b: 255 };
const DOWNLOAD_TIMEOUT_S = 3;
const TERMINAL = { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] };

let redis: TestRedis;
let gw: GatewayProcess;
let admin: string;
let user: { token: string; id: string };
let store: InstanceType<typeof Storefront>;
let storefrontId: string;
let apiKey: string;
let updates: ReturnType<typeof subscribe<Record<string, any>>>;
const clients: Client[] = [];
let closed = '';
/** the VM's data folder (found from the first UA it installed) */
let vmDataDir: string;

const PROCUREMENT_FIELDS = `id status error version storefrontAppId ua { id name currentVersion } vm { id }`;

async function provide(entry: CatalogEntry, key = apiKey) {
  return provideApplication(gw.url, key, entry, store.downloadUrl(entry.file));
}

/** the procurement as procurementUpdates last reported it in `status` */
async function settled(id: string, status: 'DEPLOYED' | 'FAILED', ms = 30_000) {
  const item = await updates.next((x) => x.data?.procurementUpdates?.id === id && x.data.procurementUpdates.status === status, ms).catch((e) => {
    throw new Error(`${(e as Error).message}; socket closed: ${closed}; gateway says: ${gw.output().slice(-1500)}`);
  });
  return item.data!.procurementUpdates as { id: string; status: string; error: string | null; ua: { id: string; currentVersion: string }; vm: { id: string } | null };
}

async function userCatalog(): Promise<string[]> {
  return (await ok(gw, `{ uas { name } }`, {}, user.token)).uas.map((u: { name: string }) => u.name);
}

async function deployment(uaId: string) {
  const d = await ok(gw, `{ ua(id: "${uaId}") { deployments { status version error vm { id } } } }`, {}, admin);
  return d.ua.deployments[0] as { status: string; version: string; error: string | null } | undefined;
}

/** the uve-vm-* folder that holds uas/<uaId> (the agent's temporary data folder) */
function findVmDataDir(uaId: string): string | null {
  for (const name of fs.readdirSync(os.tmpdir())) {
    const dir = path.join(os.tmpdir(), name);
    if (name.startsWith('uve-vm-') && fs.existsSync(path.join(dir, 'uas', uaId))) return dir;
  }
  return null;
}

/** every path under dir, relative */
function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map(String);
}

beforeAll(async () => {
  redis = await startRedis();
  gw = await startGateway({
    DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'store',
    UVE_WARM_VMS: '1', UVE_MAX_VMS: '1', UVE_POOL_PLATFORMS: 'WASM', UVE_VM_CAPACITY: '4', UVE_VM_HEARTBEAT_TIMEOUT_MS: '3000',
    UVE_PACKAGE_DOWNLOAD_TIMEOUT_S: String(DOWNLOAD_TIMEOUT_S),
  });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  user = await registerUser(gw, 'shopper');
  // downloads need a short-lived token: the VMs get URLs that carry one
  store = new Storefront({ tokenSecret: randomBytes(16).toString('hex'), tokenTtlSec: 300 });
  await store.start();
  const reg = await ok(gw, `mutation($u: String!) { registerStorefront(name: "Acme", baseUrl: $u) { apiKey storefront { id } } }`, { u: store.url }, admin);
  apiKey = reg.registerStorefront.apiKey;
  storefrontId = reg.registerStorefront.storefront.id;
  const c = createClient({
    url: gw.wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${admin}` }, retryAttempts: 0, lazy: true,
    on: { closed: (e) => (closed = `${(e as { code?: number }).code} ${(e as { reason?: string }).reason}`) },
  });
  clients.push(c);
  updates = subscribe(c, `subscription { procurementUpdates { ${PROCUREMENT_FIELDS} } }`);
  await until('an idle WASM VM', 30_000, async () => {
    const d = await gql(gw, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, admin);
    return (d.data?.vms ?? []).length >= 1;
  }, 100);
}, 90_000);

afterAll(async () => {
  for (const c of clients) await c.dispose();
  await gw?.stop();
  await store?.stop();
  await redis?.stop();
});

describe('a WASM UA from the reference storefront', () => {
  let uaId: string;

  it('is downloaded with a token, reaches DEPLOYED, only then enters the catalog, and streams frames that follow input', async () => {
    // without the token the storefront refuses the download
    const entry = await store.publishFolder(PAINT, 'acme.paint', { name: 'Acme Paint', version: '1.0.0' });
    expect((await fetch(new URL(`packages/${entry.file}`, store.url))).status).toBe(403);

    const p = await provide(entry);
    expect(['REQUESTED', 'VM_SELECTED']).toContain(p.status);
    const done = await settled(p.id, 'DEPLOYED');
    uaId = done.ua.id;
    expect(done).toMatchObject({ error: null, ua: { currentVersion: '1.0.0' }, vm: { id: expect.any(String) } });
    expect(await deployment(uaId)).toMatchObject({ status: 'INSTALLED', version: '1.0.0', error: null });
    vmDataDir = findVmDataDir(uaId)!;
    expect(vmDataDir).toBeTruthy();
    expect(listTree(path.join(vmDataDir, 'uas', uaId)).some((f) => f.endsWith('app.wasm'))).toBe(true);
    expect(await userCatalog()).toContain('Acme Paint');

    // the same app and version again: the same procurement, nothing new
    const again = await provide(entry);
    expect(again).toMatchObject({ id: p.id, status: 'DEPLOYED' });

    const s = await requestUa(gw, user.token, uaId, { codec: 'MJPEG' });
    const stream = await openStream(s.connection);
    try {
      const first = await stream.frame(() => true, 'at all');
      expect(near(pixel(first, 200, 150), WHITE)).toBe(true);
      const after = await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 200, y: 150, button: 0 }, 'after the press');
      expect(near(pixel(after, 200, 150), RED)).toBe(true);
    } finally {
      await stream.close();
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
    }
  });

  it('updates to a second version: new sessions run it, a running session keeps its own until it ends', async () => {
    const old = await requestUa(gw, user.token, uaId, { codec: 'MJPEG' });
    const oldStream = await openStream(old.connection);
    const fresh = { id: '' };
    try {
      await oldStream.frame(() => true, 'of the old version');
      const v2 = await store.publishFolder(PAINT, 'acme.paint', { name: 'Acme Paint', version: '1.1.0' });
      const done = await settled((await provide(v2)).id, 'DEPLOYED');
      expect(done.ua.currentVersion).toBe('1.1.0');

      const s2 = await requestUa(gw, user.token, uaId, { codec: 'MJPEG' });
      fresh.id = s2.id;
      const versions = await ok(gw, `{ a: session(id: "${old.id}") { uaVersion state } b: session(id: "${s2.id}") { uaVersion } }`, {}, user.token);
      expect(versions).toEqual({ a: { uaVersion: '1.0.0', state: 'ACTIVE' }, b: { uaVersion: '1.1.0' } });
      const newStream = await openStream(s2.connection);
      try {
        const painted = await newStream.inputAndFrame({ kind: 'pointer', type: 'down', x: 100, y: 100, button: 0 }, 'of the new version after a press');
        expect(near(pixel(painted, 100, 100), RED)).toBe(true);
      } finally {
        await newStream.close();
      }
      // the old session still runs its code and follows input
      const still = await oldStream.inputAndFrame({ kind: 'pointer', type: 'down', x: 300, y: 200, button: 0 }, 'of the old version after the update');
      expect(near(pixel(still, 300, 200), RED)).toBe(true);
    } finally {
      await oldStream.close();
      await ok(gw, `mutation { endSession(sessionId: "${old.id}") { state } }`, {}, user.token);
      if (fresh.id) await ok(gw, `mutation { endSession(sessionId: "${fresh.id}") { state } }`, {}, user.token);
    }
    const versions = await ok(gw, `{ ua(id: "${uaId}") { versions { version status } } }`, {}, admin);
    expect(versions.ua.versions).toEqual(expect.arrayContaining([{ version: '1.0.0', status: 'AVAILABLE' }, { version: '1.1.0', status: 'AVAILABLE' }]));
  });

  it('is removed: no new sessions at once, and gone from the VM disk once its last session ended', async () => {
    const s = await requestUa(gw, user.token, uaId, { codec: 'MJPEG' });
    const stream = await openStream(s.connection);
    try {
      await stream.frame(() => true, 'before the removal');
      await ok(gw, `mutation { removeUa(uaId: "${uaId}") { status } }`, {}, admin);
      expect(await userCatalog()).not.toContain('Acme Paint');
      const refused = await refusal(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id } }`, {
        i: { uaId, terminal: TERMINAL },
      }, user.token);
      expect(refused.extensions?.code).toBe('UNAVAILABLE');
      expect(refused.message).toMatch(/removed/);
      // a session still runs it: the VM keeps it
      expect((await deployment(uaId))?.status).toBe('INSTALLED');
      expect(fs.existsSync(path.join(vmDataDir, 'uas', uaId))).toBe(true);
      const painted = await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 50, y: 60, button: 0 }, 'after the removal');
      expect(near(pixel(painted, 50, 60), RED)).toBe(true);
    } finally {
      await stream.close();
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
    }
    await until('the VM to report the UA removed', 15_000, async () => (await deployment(uaId))?.status === 'REMOVED');
    expect(fs.existsSync(path.join(vmDataDir, 'uas', uaId))).toBe(false);
    const mine = await ok(gw, `{ mySessions { id } }`, {}, user.token);
    expect(mine.mySessions).toHaveLength(4);
  });
});

describe('hostile packages', () => {
  let hostile: http.Server;
  let hostileUrl: string;
  const strays = [`uve-stray-${randomBytes(4).toString('hex')}.txt`];

  const manifest = (version: string, extra: Record<string, unknown> = {}) =>
    Buffer.from(JSON.stringify({ name: 'evil', version, platform: 'WASM', entry: 'app.wasm', requiredResources: [], ...extra }));
  const wasm = fs.readFileSync(path.join(PAINT, 'app.wasm'));
  const tarGz = (version: string, more: TarEntry[], m = manifest(version)) =>
    gzipSync(writeTar([{ path: 'manifest.json', data: m }, { path: 'app.wasm', data: wasm }, ...more]));
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

  async function publish(name: string, bytes: Buffer, declare: Partial<CatalogEntry> = {}): Promise<CatalogEntry> {
    return store.publishBytes({
      storefrontAppId: `evil.${name}`, name: `Evil ${name}`, version: '1.0.0', platform: 'WASM', file: `evil-${name}.tar.gz`,
      sha256: sha(bytes), sizeBytes: bytes.length, requiredResources: [], ...declare,
    }, bytes);
  }

  beforeAll(async () => {
    // an origin that misbehaves the ways a storefront (or someone in between) could
    hostile = http.createServer((req, res) => {
      if (req.url === '/slow.tar.gz') {
        res.writeHead(200, { 'content-type': 'application/gzip' });
        res.write(Buffer.alloc(10)); // then nothing until the VM gives up
        return;
      }
      if (req.url === '/redirect.tar.gz') {
        res.writeHead(302, { location: store.downloadUrl('acme.paint-1.0.0.tar.gz') }).end();
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', () => r()));
    hostileUrl = `http://127.0.0.1:${(hostile.address() as { port: number }).port}/`;
  });

  afterAll(async () => {
    hostile.closeAllConnections();
    await new Promise<void>((r) => hostile.close(() => r()));
  });

  it('rejects each with a clear FAILED reason, offers none, and leaves nothing on the VM disk', async () => {
    const good = tarGz('1.0.0', []);
    const bomb = gzipSync(writeTar([{ path: 'manifest.json', data: manifest('1.0.0') }, { path: 'app.wasm', data: wasm }, { path: 'zeros.bin', data: Buffer.alloc(40 * 1024 * 1024) }]), { level: 9 }); // past the 32 MiB floor, 1000 times its size
    const entries: [CatalogEntry, RegExp][] = [
      [await publish('sha', good, { sha256: 'e'.repeat(64) }), /sha256 mismatch/],
      [await publish('size', good, { sizeBytes: good.length - 100 }), /larger than the \d+ declared/],
      [await publish('bomb', bomb), /gzip bomb/],
      [await publish('traversal', tarGz('1.0.0', [{ path: `../${strays[0]}`, data: Buffer.from('x') }])), /points outside the package/],
      [await publish('absolute', tarGz('1.0.0', [{ path: path.join(os.tmpdir(), strays[0]!), data: Buffer.from('x') }])), /points outside the package/],
      [await publish('symlink', tarGz('1.0.0', [{ path: 'passwd', type: '2', linkname: '/etc/passwd' }])), /symbolic link/],
      [await publish('hardlink', tarGz('1.0.0', [{ path: 'again.json', type: '1', linkname: 'manifest.json' }])), /hard link/],
      [await publish('device', tarGz('1.0.0', [{ path: 'null', type: '3' }])), /character device/],
      [await publish('platform', tarGz('1.0.0', [], manifest('1.0.0', { platform: 'LINUX_X11', command: ['xterm'] }))), /manifest "platform" is LINUX_X11 but the UA was provided as WASM/],
    ];
    const procurements = await Promise.all(entries.map(async ([e, reason]) => ({ p: await provide(e), reason, name: e.name })));

    // three more that only another origin can show: unreachable, too slow, redirected away
    const origins: [string, string, RegExp][] = [
      ['Gone', `http://127.0.0.1:${await freePort()}/`, /ECONNREFUSED/],
      ['Slow', hostileUrl, new RegExp(`did not finish within ${DOWNLOAD_TIMEOUT_S} s`)],
      ['Redirecting', hostileUrl, /redirected to another origin/],
    ];
    for (const [name, baseUrl, reason] of origins) {
      const reg = await ok(gw, `mutation($n: String!, $u: String!) { registerStorefront(name: $n, baseUrl: $u) { storefront { id } } }`, { n: name, u: baseUrl }, admin);
      const file = name === 'Slow' ? 'slow.tar.gz' : name === 'Redirecting' ? 'redirect.tar.gz' : 'gone.tar.gz';
      // an admin procures from a registered storefront's catalog: the same flow
      const d = await ok(gw, `mutation($s: ID!, $i: ProvideApplicationInput!) { procureApplication(storefrontId: $s, input: $i) { id status } }`, {
        s: reg.registerStorefront.storefront.id,
        i: { storefrontAppId: `evil.${name}`, name: `Evil ${name}`, version: '1.0.0', platform: 'WASM', packageUrl: file, sha256: sha(good), sizeBytes: good.length },
      }, admin);
      procurements.push({ p: { ...d.procureApplication, error: null, ua: null }, reason, name: `Evil ${name}` });
    }

    for (const { p, reason, name } of procurements) {
      const failed = await settled(p.id, 'FAILED', 30_000).catch((e) => {
        throw new Error(`${name}: ${(e as Error).message}`);
      });
      expect({ name, error: failed.error }).toEqual({ name, error: expect.stringMatching(reason) });
      const d = await deployment(failed.ua.id);
      expect(d).toMatchObject({ status: 'FAILED', error: expect.stringMatching(reason) });
      expect(failed.ua.currentVersion).toBe('1.0.0');
      const refused = await refusal(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id } }`, {
        i: { uaId: failed.ua.id, terminal: TERMINAL },
      }, user.token);
      expect(refused.extensions?.code).toBe('UNAVAILABLE');
      expect(refused.message).toMatch(/procurement failed/);
      expect(fs.existsSync(path.join(vmDataDir, 'uas', failed.ua.id))).toBe(false);
    }
    const catalog = await userCatalog();
    expect(catalog.filter((n) => n.startsWith('Evil'))).toEqual([]);
    // nothing half-written anywhere: no staging or download files, no file outside the VM's folder
    expect(listTree(path.join(vmDataDir, 'uas')).filter((f) => /staging|download|stray/.test(f))).toEqual([]);
    expect(fs.existsSync(path.join(vmDataDir, strays[0]!))).toBe(false);
    expect(fs.existsSync(path.join(os.tmpdir(), strays[0]!))).toBe(false);
    const mine = await ok(gw, `{ mySessions { id } }`, {}, user.token);
    expect(mine.mySessions).toHaveLength(4); // none written by the refusals
  }, 120_000);
});

describe('who may procure', () => {
  it('refuses a wrong API key (UNAUTHENTICATED) and a USER calling procureApplication (FORBIDDEN)', async () => {
    const entry = store.catalog()[0]!;
    const wrong = await provide(entry, `${apiKey.slice(0, -4)}AAAA`).catch((e) => e);
    expect(wrong).toBeInstanceOf(ProvideError);
    expect(wrong.code).toBe('UNAUTHENTICATED');
    const byUser = await refusal(gw, `mutation($s: ID!, $i: ProvideApplicationInput!) { procureApplication(storefrontId: $s, input: $i) { id } }`, {
      s: storefrontId,
      i: { storefrontAppId: 'x', name: 'X', version: '1.0.0', platform: 'WASM', packageUrl: entry.file, sha256: entry.sha256, sizeBytes: entry.sizeBytes },
    }, user.token);
    expect(byUser.extensions?.code).toBe('FORBIDDEN');
  });

  it('keeps an undeployed UA out of the catalog; disabling its storefront cancels the procurement and stops the key at once', async () => {
    const reg = await ok(gw, `mutation($u: String!) { registerStorefront(name: "Acme X", baseUrl: $u) { apiKey storefront { id } } }`, { u: store.url }, admin);
    const key = reg.registerStorefront.apiKey;
    // no LINUX_X11 VM runs here: the procurement waits for one
    const xterm = await store.publishFolder(path.join(ROOT, 'apps/vm-agent/uas-x11/xterm'), 'acme.xterm', { name: 'Acme Term', version: '2.0.0' });
    const p = await provide(xterm, key);
    expect(p.status).toBe('REQUESTED');
    expect(await userCatalog()).not.toContain('Acme Term');
    const refused = await refusal(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id } }`, {
      i: { uaId: p.ua!.id, terminal: TERMINAL },
    }, user.token);
    expect(refused.extensions?.code).toBe('UNAVAILABLE');
    expect(refused.message).toMatch(/not deployed on any VM yet/);
    expect((await ok(gw, `{ mySessions { id } }`, {}, user.token)).mySessions).toHaveLength(4);
    const all = await ok(gw, `{ uas { name versions { version status } } }`, {}, admin);
    expect(all.uas.find((u: { name: string }) => u.name === 'Acme Term')).toEqual({ name: 'Acme Term', versions: [{ version: '2.0.0', status: 'PENDING' }] });

    await ok(gw, `mutation { setStorefrontEnabled(id: "${reg.registerStorefront.storefront.id}", enabled: false) { enabled } }`, {}, admin);
    const cancelled = await settled(p.id, 'FAILED');
    expect(cancelled.error).toMatch(/cancelled: storefront Acme X was disabled/);
    const stopped = await provide(xterm, key).catch((e) => e);
    expect(stopped.code).toBe('UNAUTHENTICATED');
  });
});

describe('a LINUX_X11 UA, and a VM that joins later', () => {
  it('waits REQUESTED for a VM of its platform; the VM that joins gets it, and a user plays it', async () => {
    // the probe as a storefront would ship it: self-contained, with the one library it needs
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-probe-pkg-'));
    let entry: CatalogEntry;
    try {
      fs.copyFileSync(path.join(ROOT, 'apps/vm-agent/uas-x11/probe/probe.js'), path.join(folder, 'probe.js'));
      fs.writeFileSync(path.join(folder, 'manifest.json'), JSON.stringify({ id: 'acme.probe', name: 'Acme Probe', version: '1.0.0', platform: 'LINUX_X11', command: ['node', 'probe.js'], requiredResources: [] }));
      const x11 = path.dirname(require.resolve('x11/package.json'));
      fs.mkdirSync(path.join(folder, 'node_modules/x11'), { recursive: true });
      fs.copyFileSync(path.join(x11, 'package.json'), path.join(folder, 'node_modules/x11/package.json'));
      fs.cpSync(path.join(x11, 'lib'), path.join(folder, 'node_modules/x11/lib'), { recursive: true });
      entry = await store.publishFolder(folder, 'acme.probe');
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
    const p = await provide(entry);
    expect(p.status).toBe('REQUESTED'); // no LINUX_X11 VM yet

    const vm = await ok(gw, `mutation { provisionVm(input: { platform: LINUX_X11, capacity: 2 }) { id } }`, {}, admin);
    const done = await settled(p.id, 'DEPLOYED', 60_000);
    expect(done.vm?.id).toBe(vm.provisionVm.id);
    expect(await userCatalog()).toContain('Acme Probe');

    const s = await requestUa(gw, user.token, done.ua.id, { codec: 'MJPEG' });
    expect(s.vm.id).toBe(vm.provisionVm.id);
    const stream = await openStream(s.connection);
    try {
      const first = await stream.frame(() => true, 'at all');
      expect(near(pixel(first, 320, 240), { r: 32, g: 32, b: 32 })).toBe(true);
      const key = stream.client.sendInput({ kind: 'key', type: 'down', code: 'KeyA', key: 'a' });
      await stream.frame((f) => f.header.inputSeq >= key && near(pixel(f, 320, 240), { r: 0, g: 0, b: 255 }), 'turned blue by a key');
    } finally {
      await stream.close();
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
    }
  }, 120_000);
});

describe('the storefront command line', () => {
  it('publishes a UA folder and provides it to the VMM with its API key', async () => {
    const port = await freePort();
    const reg = await ok(gw, `mutation($u: String!) { registerStorefront(name: "CLI", baseUrl: $u) { apiKey } }`, { u: `http://127.0.0.1:${port}/` }, admin);
    const child = spawn(process.execPath, [path.join(ROOT, 'apps/storefront/dist/main.js'), '--folder', PAINT, '--port', String(port), '--gateway', gw.url], {
      env: { PATH: process.env.PATH, UVE_STOREFRONT_API_KEY: reg.registerStorefront.apiKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    try {
      const line = await until('the storefront to provide its catalog', 20_000, async () => /provided uve\.sample\.paint 1\.0\.0: procurement (\S+) (\S+)/.exec(out));
      expect(line[2]).toMatch(/^(REQUESTED|VM_SELECTED)$/);
      expect(out).toMatch(/published uve\.sample\.paint 1\.0\.0 \(WASM\) \d+ bytes sha256 [0-9a-f]{64}/);
      const done = await settled(line[1]!, 'DEPLOYED');
      expect(done.ua.currentVersion).toBe('1.0.0');
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    }
  });
});
