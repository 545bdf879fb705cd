// The VMM's control plane under faults, through the real gateway process, PostgreSQL and Redis,
// with VMs that speak UVE-2/UVE-5 over the real queue: reports duplicated, reordered or forged,
// commands not acknowledged, concurrent requests racing for one VM, reconnect windows closing.
import { Client as PgClient } from 'pg';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, ok, procuredPaintUa, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { startFakeVm, type FakeVm } from '../support/fake-vm';
import { freezeRedis } from './support';

let redis: TestRedis;
let gw: GatewayProcess;
let db: PgClient;
let admin: string;
let user: { token: string; id: string };
let uaId: string;
const vms: FakeVm[] = [];
const PREFIX = 'faults';
const WINDOW_S = 3;

const REQUEST = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id state vm { id } } }`;
// fresh: a test's session of the same user and UA, left DISCONNECTED inside its reconnect window,
// would otherwise be continued by the next test's request (seen in CI: a test waited on a session
// that earlier tests had moved across three VMs)
const request = (token: string) =>
  gql(gw, REQUEST, { i: { uaId, terminal: { screenWidth: 1280, screenHeight: 720, codecs: ['H264'], localResources: [] }, reconnectionMethod: 'NORMAL', fresh: true } }, token);
const sessionOf = async (id: string) =>
  (await ok(gw, `{ session(id: "${id}") { state reconnections events(last: 100) { type data } } }`, {}, admin)).session;

/** A fresh VM that is the only running one, so each test owns the placement. */
async function onlyVm(opts: Partial<Parameters<typeof startFakeVm>[0]> = {}): Promise<FakeVm> {
  for (const old of vms.splice(0)) {
    await ok(gw, `mutation { removeVm(id: "${old.id}") { status } }`, {}, admin);
    await old.close();
  }
  const vm = await startFakeVm({ redisUrl: redis.url, prefix: PREFIX, gateway: gw, admin, heartbeatMs: 300, ...opts });
  vms.push(vm);
  await until('the VM to register', 10_000, async () => (await gql(gw, `{ vm(id: "${vm.id}") { status } }`, {}, admin)).data?.vm?.status === 'IDLE');
  return vm;
}

async function assigned(vm: FakeVm): Promise<string> {
  const r = await request(user.token);
  expect(r.errors).toBeUndefined();
  const id: string = r.data!.requestApplication.id;
  expect(r.data!.requestApplication.vm.id).toBe(vm.id);
  await vm.nextCommand('session.prepare', (c) => c.type === 'session.prepare' && c.sessionId === id);
  return id;
}

const ref = (id: string) => ({ sessionId: id, userId: user.id, uaId });

beforeAll(async () => {
  redis = await startRedis();
  const databaseUrl = await freshDatabase();
  gw = await startGateway({ DATABASE_URL: databaseUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: PREFIX, UVE_VM_HEARTBEAT_TIMEOUT_MS: '20000', UVE_RECONNECT_WINDOW_S: String(WINDOW_S) });
  db = new PgClient({ connectionString: databaseUrl });
  await db.connect();
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  user = await registerUser(gw, 'faulty');
  uaId = await procuredPaintUa(gw, admin, databaseUrl);
});

afterAll(async () => {
  for (const vm of vms) await vm.close();
  await db?.end();
  await gw?.stop();
  await redis?.stop();
});

it('applies UVE-5 reports delivered twice and out of order exactly once, in the order the VM sent them', async () => {
  const vm = await onlyVm({ capacity: 4 });
  const id = await assigned(vm);
  const connected = { type: 'session.connected' as const, ...ref(id), role: 'PLAYER' as const };
  const disconnected = { type: 'session.disconnected' as const, ...ref(id), reason: 'lost', unexpected: true };
  const ended = { type: 'session.ended' as const, ...ref(id), reason: 'the application exited' };
  // the VM emitted: 1 connected, 2 disconnected, 3 connected again, 4 ended; the queue hands them
  // over last first, with copies
  for (const [m, seq] of [[ended, 4], [disconnected, 2], [disconnected, 2], [connected, 3], [connected, 1], [connected, 3], [connected, 1]] as const) {
    await vm.report({ ...m, seq });
  }
  const s = await until('the session to end', 15_000, async () => {
    const x = await sessionOf(id);
    return x.state === 'ENDED' ? x : null;
  });
  const types = s.events.map((e: { type: string }) => e.type);
  expect(types).toEqual(['REQUESTED', 'ASSIGNED', 'CONNECTED', 'DISCONNECTED', 'RECONNECTED', 'ENDED']);
  expect(s.reconnections).toBe(1);
  // every copy is in the inbox once, applied or recognised as a duplicate; none left pending
  const rows = await db.query(`SELECT seq, result FROM vm_reports WHERE session_id = $1 ORDER BY seq`, [id]);
  expect(rows.rows.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
  expect(rows.rows.every((r) => r.result === 'applied')).toBe(true);
});

it('holds a report back until the one before it arrives', async () => {
  const vm = await onlyVm({ capacity: 4 });
  const id = await assigned(vm);
  await vm.report({ type: 'session.disconnected', ...ref(id), reason: 'lost', unexpected: true, seq: 2 });
  await until('the early report to be stored', 10_000, async () => (await db.query(`SELECT 1 FROM vm_reports WHERE session_id = $1 AND seq = 2`, [id])).rowCount === 1);
  expect((await sessionOf(id)).state).toBe('ASSIGNED');
  await vm.report({ type: 'session.connected', ...ref(id), role: 'PLAYER', seq: 1 });
  const s = await until('both reports applied', 10_000, async () => {
    const x = await sessionOf(id);
    return x.state === 'DISCONNECTED' ? x : null;
  });
  expect(s.events.map((e: { type: string }) => e.type)).toEqual(['REQUESTED', 'ASSIGNED', 'CONNECTED', 'DISCONNECTED']);
});

it('ignores a report about a session from a VM that does not hold it', async () => {
  const vm = await onlyVm({ capacity: 4 });
  const id = await assigned(vm);
  const intruder = await startFakeVm({ redisUrl: redis.url, prefix: PREFIX, gateway: gw, admin, heartbeatMs: 300 });
  vms.push(intruder);
  await intruder.report({ type: 'session.ended', ...ref(id), reason: 'forged', seq: 1 });
  await until('the forged report to be settled', 10_000, async () =>
    (await db.query(`SELECT 1 FROM vm_reports WHERE session_id = $1 AND vm_id = $2 AND result = 'ignored'`, [id, intruder.id])).rowCount === 1);
  await vm.report({ type: 'session.connected', ...ref(id), role: 'PLAYER', seq: 1 });
  const s = await until('the real report applied', 10_000, async () => {
    const x = await sessionOf(id);
    return x.state === 'ACTIVE' ? x : null;
  });
  expect(s.events.map((e: { type: string }) => e.type)).not.toContain('ENDED');
});

it('places never more than a VM holds when 20 requests race for it', async () => {
  await onlyVm({ capacity: 4 });
  const users = await Promise.all(Array.from({ length: 20 }, (_, i) => registerUser(gw, `racer${i}`)));
  const results = await Promise.all(users.map((u) => request(u.token)));
  const placed = results.filter((r) => !r.errors);
  const refused = results.filter((r) => r.errors);
  expect(placed).toHaveLength(4);
  expect(refused.map((r) => r.errors![0]!.extensions?.code)).toEqual(Array(16).fill('UNAVAILABLE'));
  expect(refused[0]!.errors![0]!.message).toMatch(/full/);
  const count = await db.query(`SELECT count(*)::int AS n FROM sessions WHERE vm_id = $1 AND state = 'ASSIGNED'`, [vms[0]!.id]);
  expect(count.rows[0].n).toBe(4);
});

it('keeps a DISCONNECTED session its slot for the reconnect window, then ends it and frees the VM', async () => {
  const vm = await onlyVm({ capacity: 1 });
  const id = await assigned(vm);
  await vm.report({ type: 'session.connected', ...ref(id), role: 'PLAYER' });
  await vm.report({ type: 'session.disconnected', ...ref(id), reason: 'connection closed: 1006 (lost)', unexpected: true });
  await until('the session to be DISCONNECTED', 20_000, async () => (await sessionOf(id)).state === 'DISCONNECTED').catch(async (e: Error) => {
    // what the inbox did with the VM's reports, to tell a slow machine from a refused report
    const rows = (await db.query(`SELECT seq, type, result FROM vm_reports WHERE session_id = $1 ORDER BY seq`, [id])).rows;
    throw new Error(`${e.message}; session ${JSON.stringify(await sessionOf(id))}; inbox ${JSON.stringify(rows)}`);
  });
  // the VM still holds it (and would refuse a second session): so does the VMM (another user's:
  // the same user's request for the UA would continue the DISCONNECTED session)
  const full = await request((await registerUser(gw, 'second-on-full')).token);
  expect(full.errors?.[0]?.extensions?.code).toBe('UNAVAILABLE');
  expect(full.errors?.[0]?.message).toMatch(/full/);

  const terminate = await vm.nextCommand('session.terminate', (c) => c.type === 'session.terminate' && c.sessionId === id, (WINDOW_S + 10) * 1000);
  expect(terminate).toMatchObject({ reason: `reconnect window of ${WINDOW_S} s expired`, saveVmData: false });
  const s = await sessionOf(id);
  expect(s.state).toBe('ENDED');
  expect(s.events.at(-1)).toMatchObject({ type: 'ENDED', data: { reason: `reconnect window of ${WINDOW_S} s expired` } });
  const again = await request(user.token);
  expect(again.errors).toBeUndefined();
});

it('re-sends a UVE-2 command the VM did not acknowledge, with the same id, and stops once it does', async () => {
  const vm = await onlyVm({ capacity: 4, ackCommands: false });
  const r = await request(user.token);
  const id: string = r.data!.requestApplication.id;
  const first = await vm.nextCommand('session.prepare', (c) => c.type === 'session.prepare' && c.sessionId === id);
  expect(first.commandId).toMatch(/^[0-9a-f-]{36}$/);
  expect(Date.parse(first.expiresAt!)).toBeGreaterThan(Date.now());
  const again = await vm.nextCommand('session.prepare', (c) => c !== first && c.type === 'session.prepare' && c.sessionId === id, 20_000);
  expect(again.commandId).toBe(first.commandId);
  await vm.report({ type: 'command.ack', commandId: first.commandId!, outcome: 'done' });
  await until('the command to be settled', 10_000, async () =>
    (await db.query(`SELECT outcome FROM vm_commands WHERE id = $1`, [first.commandId])).rows[0]?.outcome === 'done');
});

it('keeps a command written while Redis is unreachable and delivers it once Redis is back', async () => {
  const vm = await onlyVm({ capacity: 4 });
  const id = await assigned(vm);
  await vm.report({ type: 'session.connected', ...ref(id), role: 'PLAYER' });
  await until('the session to be ACTIVE', 10_000, async () => (await sessionOf(id)).state === 'ACTIVE');
  const thaw = await freezeRedis(redis.url);
  try {
    // the state change is committed whatever Redis does; the command waits in the outbox
    const r = await gql(gw, `mutation { suspendSession(sessionId: "${id}", reason: "break") { state } }`, {}, user.token);
    expect(r.data?.suspendSession?.state).toBe('SUSPENDED');
    const [row] = (await db.query(`SELECT outcome FROM vm_commands WHERE session_id = $1 AND type = 'session.suspend'`, [id])).rows;
    expect(row.outcome).toBeNull();
  } finally {
    thaw();
  }
  const c = await vm.nextCommand('session.suspend', (x) => x.type === 'session.suspend' && x.sessionId === id, 30_000);
  expect(c).toMatchObject({ reason: 'break' });
});
