// The UVE-5 control plane read as an attacker who can write to Redis would: reports put on the
// VMM's queue by hand, through a real gateway process, PostgreSQL and Redis. Only a VM the VMM
// enrolled or provisioned, signing with its own key, fresh and once, changes anything; every
// refusal is counted in /metrics by reason and logged.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Client as PgClient } from 'pg';
import { reportKey, signReport } from '@uve/queue';
import type { VmEventMessage } from '@uve/protocol';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, ok, procuredPaintUa, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { startFakeVm, type FakeVm } from '../support/fake-vm';

let redis: TestRedis;
let gw: GatewayProcess;
let admin: string;
let user: { token: string; id: string };
let uaId: string;
/** holds the user's session */
let vmB: FakeVm;
/** another enrolled VM, the insider */
let vmA: FakeVm;
let sessionId: string;
let db: PgClient;
const PREFIX = 'cpauth';

async function refusedCount(reason: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const m = new RegExp(`^uve_vm_reports_refused_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** sends `message` and waits until the VMM has refused it for `reason` */
async function expectRefused(reason: string, send: () => Promise<void>): Promise<void> {
  const before = await refusedCount(reason);
  await send();
  await until(`a report refused as ${reason}`, 10_000, async () => (await refusedCount(reason)) > before);
}

const vmState = async (id: string) => (await ok(gw, `{ vm(id: "${id}") { status endpoint lastHeartbeatAt } }`, {}, admin)).vm;
const sessionOf = async (id: string) => (await ok(gw, `{ session(id: "${id}") { state events(last: 50) { type } } }`, {}, admin)).session;

async function idleVm(opts: { capacity?: number } = {}): Promise<FakeVm> {
  const vm = await startFakeVm({ redisUrl: redis.url, prefix: PREFIX, gateway: gw, admin, heartbeatMs: 300, ...opts });
  await until('the VM to register', 10_000, async () => (await vmState(vm.id)).status === 'IDLE');
  return vm;
}

beforeAll(async () => {
  redis = await startRedis();
  const databaseUrl = await freshDatabase();
  db = new PgClient({ connectionString: databaseUrl });
  await db.connect();
  gw = await startGateway({ DATABASE_URL: databaseUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: PREFIX, UVE_VM_HEARTBEAT_TIMEOUT_MS: '20000' });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  user = await registerUser(gw, 'player');
  uaId = await procuredPaintUa(gw, admin, databaseUrl);
  // B first and alone, so the session lands on it; then A
  vmB = await idleVm({ capacity: 2 });
  const r = await ok(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id vm { id } } }`, {
    i: { uaId, terminal: { screenWidth: 800, screenHeight: 600, codecs: ['H264'], localResources: [] } },
  }, user.token);
  expect(r.requestApplication.vm.id).toBe(vmB.id);
  sessionId = r.requestApplication.id;
  vmA = await idleVm();
}, 90_000);

afterAll(async () => {
  await db?.end();
  await vmA?.close();
  await vmB?.close();
  await gw?.stop();
  await redis?.stop();
});

it('refuses vm.register for an id the VMM never provisioned, however well signed: no VM appears', async () => {
  const id = randomUUID();
  const forged = signReport({
    type: 'vm.register', vmId: id, at: new Date().toISOString(), name: 'rogue', platform: 'WASM', provider: 'PROCESS',
    endpoint: 'ws://attacker.example:1', codecs: ['H264'], capacity: 64, agentVersion: 'x', deployed: [],
  } as VmEventMessage, reportKey(randomBytes(32).toString('base64url')));
  await expectRefused('unknown_vm', () => vmA.sendRaw(forged));
  const r = await gql(gw, `{ vm(id: "${id}") { id } }`, {}, admin);
  expect(r.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  const all = (await ok(gw, `{ vms { id endpoint } }`, {}, admin)).vms as { id: string; endpoint: string | null }[];
  expect(all.map((v) => v.endpoint)).not.toContain('ws://attacker.example:1');
  expect(gw.output()).toMatch(/UVE-5 report refused.*unknown_vm/);
});

it("refuses a report that claims an enrolled VM's id without its key (unsigned or tampered): the VM is unchanged", async () => {
  await expectRefused('bad_signature', () => vmA.sendRaw({ type: 'vm.stopping', vmId: vmB.id, at: new Date().toISOString(), reason: 'forged' }));
  // signed by A, claiming to be B
  const asB = { ...vmA.signed({ type: 'vm.stopping', reason: 'forged' }), vmId: vmB.id };
  await expectRefused('bad_signature', () => vmA.sendRaw(asB));
  // B's own report with one field changed after signing
  const tampered = { ...vmB.signed({ type: 'vm.register', name: 'b', platform: 'WASM', provider: 'PROCESS', endpoint: 'ws://b.example:1', codecs: ['H264'], capacity: 2, agentVersion: 't', deployed: [] }), endpoint: 'ws://attacker.example:2' };
  await expectRefused('bad_signature', () => vmB.sendRaw(tampered));
  const b = await vmState(vmB.id);
  expect(b.status).toBe('BUSY');
  expect(b.endpoint).toBe(`ws://127.0.0.1:9/${vmB.id}`);
});

it("refuses VM A's signed report about VM B's session: the session is unchanged and B's own report applies", async () => {
  await expectRefused('not_its_session', () => vmA.report({ type: 'session.ended', sessionId, userId: user.id, uaId, reason: 'forged by A', seq: 1 }));
  expect((await sessionOf(sessionId)).state).toBe('ASSIGNED');
  await vmB.report({ type: 'session.connected', sessionId, userId: user.id, uaId, role: 'PLAYER', seq: 1 });
  const s = await until('B\'s report applied', 10_000, async () => {
    const x = await sessionOf(sessionId);
    return x.state === 'ACTIVE' ? x : null;
  });
  expect(s.events.map((e: { type: string }) => e.type)).not.toContain('ENDED');
});

it("ignores, without counting a refusal, a late report of a VM the session was moved off (its VM Data upload's vmdata.updated)", async () => {
  const vmC = await idleVm();
  // the session's history says a reconnection moved it off C (as reconnectDisconnected records it)
  await db.query(`INSERT INTO session_events (session_id, type, data) VALUES ($1, 'RECONNECTED', $2)`, [sessionId, { sameVm: false, fromVmId: vmC.id, vmId: vmB.id }]);
  const before = await refusedCount('not_its_session');
  await vmC.report({ type: 'vmdata.updated', sessionId, userId: user.id, uaId, snapshotId: randomUUID(), kind: 'FULL', sizeBytes: 1, sha256: '0'.repeat(64), seq: 7 });
  const row = await until('the late report settled', 10_000, async () => {
    const r = await db.query(`SELECT result FROM vm_reports WHERE session_id = $1 AND vm_id = $2 AND applied_at IS NOT NULL`, [sessionId, vmC.id]);
    return r.rows[0] ?? null;
  });
  expect(row.result).toBe('ignored');
  expect(await refusedCount('not_its_session')).toBe(before);
  expect((await sessionOf(sessionId)).state).toBe('ACTIVE');
  // a VM the session was never on is still refused
  await expectRefused('not_its_session', () => vmA.report({ type: 'vmdata.updated', sessionId, userId: user.id, uaId, snapshotId: randomUUID(), kind: 'FULL', sizeBytes: 1, sha256: '0'.repeat(64), seq: 8 }));
  await vmC.close();
});

it('refuses a replayed report and a stale one: they change nothing', async () => {
  const vm = await idleVm();
  vm.silence();
  // heartbeats carry the capacity: each one's effect can be told apart
  const beat = (capacity: number) => vm.signed({ type: 'vm.heartbeat', activeSessions: 0, capacity, codecs: ['H264'], cpuLoad: 0, rssBytes: 0, deployed: [] });
  const capacity = async () => (await ok(gw, `{ vm(id: "${vm.id}") { capacity } }`, {}, admin)).vm.capacity;
  const seven = beat(7);
  await vm.sendRaw(seven);
  await until('the first heartbeat applied', 10_000, async () => (await capacity()) === 7);
  await vm.sendRaw(beat(5));
  await until('the second heartbeat applied', 10_000, async () => (await capacity()) === 5);
  await expectRefused('replay', () => vm.sendRaw(seven));
  expect(await capacity()).toBe(5);
  // signed with the VM's own key, but an hour old: a replay from before the nonces are remembered
  const old = signReport({ type: 'vm.stopping', vmId: vm.id, at: new Date(Date.now() - 3600_000).toISOString(), reason: 'old' } as VmEventMessage, reportKey(vm.secret));
  await expectRefused('stale', () => vm.sendRaw(old));
  expect((await vmState(vm.id)).status).toBe('IDLE');
  await vm.close();
});

it('refuses every report of a removed VM, even signed with its key: it stays OFFLINE', async () => {
  const vm = await idleVm();
  await ok(gw, `mutation { removeVm(id: "${vm.id}") { status } }`, {}, admin);
  await expectRefused('unknown_vm', () => vm.report({ type: 'vm.register', name: 'back', platform: 'WASM', provider: 'PROCESS', endpoint: 'ws://127.0.0.1:9/back', codecs: ['H264'], capacity: 2, agentVersion: 't', deployed: [] }));
  await expectRefused('unknown_vm', () => vm.report({ type: 'vm.heartbeat', activeSessions: 0, capacity: 2, codecs: ['H264'], cpuLoad: 0, rssBytes: 0, deployed: [] }));
  const v = await vmState(vm.id);
  expect(v.status).toBe('OFFLINE');
  expect(v.endpoint).toBeNull();
  await vm.close();
});

describe('VM Data', () => {
  const vmData = (vm: { id: string; secret: string }, pathAndQuery: string, init: RequestInit = {}) =>
    fetch(`${gw.url}/vmm/vm-data/${pathAndQuery}`, { ...init, headers: { 'x-uve-vm-id': vm.id, authorization: `Bearer ${vm.secret}`, ...(init.headers ?? {}) } });

  it('takes a session\'s VM Data only from the VM holding it, and serves it only with its recorded sha256 intact', async () => {
    const bytes = randomBytes(4096);
    expect((await vmData(vmA, `sessions/${sessionId}?kind=APP_DATA`, { method: 'PUT', body: bytes })).status).toBe(404);
    const put = await vmData(vmB, `sessions/${sessionId}?kind=APP_DATA`, { method: 'PUT', body: bytes });
    expect(put.status).toBe(201);
    const saved = (await put.json()) as { snapshotId: string; sha256: string };
    expect(saved.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    // B's session is told to restore it (what a reconnection's session.prepare does)
    await db.query('UPDATE sessions SET restored_from_id = $2 WHERE id = $1', [sessionId, saved.snapshotId]);
    const get = await vmData(vmB, `snapshots/${saved.snapshotId}`);
    expect(get.status).toBe(200);
    expect(Buffer.from(await get.arrayBuffer()).equals(bytes)).toBe(true);
    expect((await vmData(vmA, `snapshots/${saved.snapshotId}`)).status).toBe(404);

    // the bytes change at rest: refused with a reason, not served
    await db.query(`UPDATE vm_data_chunks SET data = $2 WHERE address IN (SELECT address FROM vm_data_manifests WHERE snapshot_id = $1)`, [saved.snapshotId, Buffer.from('tampered')]);
    const bad = await vmData(vmB, `snapshots/${saved.snapshotId}`);
    expect(bad.status).toBe(422);
    const body = (await bad.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('DAMAGED');
    expect(body.error.message).toMatch(/VM Data checksum mismatch: chunk 0 of snapshot/);
    expect(gw.output()).toMatch(/corrupted VM Data refused/);
  });

  it('refuses a removed VM, even with its secret', async () => {
    const vm = await idleVm();
    await ok(gw, `mutation { removeVm(id: "${vm.id}") { status } }`, {}, admin);
    expect((await vmData(vm, `snapshots/${randomUUID()}`)).status).toBe(401);
    await vm.close();
  });
});
