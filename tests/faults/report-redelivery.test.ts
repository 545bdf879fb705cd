// A gateway killed (SIGKILL) while it handles UVE-5 reports: the queue hands them to another
// gateway, whose report guard admits them (the same queue messages: no replay), and they are
// applied once. The same signed reports sent again as new messages are still refused as replays.
// Real gateway processes, PostgreSQL and Redis; the kill lands during handling because the test
// holds the locks the handlers need (the inbox's table, the VM's row) from its own connection.
import fs from 'node:fs';
import { Client as PgClient } from 'pg';
import { REDELIVERY_MS } from '@uve/queue';
import { startGroupGateway, tempDir, type GroupGateway } from './support';
import { ADMIN, login, metricSample, ok, procuredPaintUa, registerUser } from '../support/gateway';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { startFakeVm, type FakeVm } from '../support/fake-vm';

const PREFIX = 'redeliver';
const dirs: string[] = [];
const gateways: GroupGateway[] = [];
const fakes: FakeVm[] = [];
let redis: TestRedis;
/** looks; `locker` holds the locks (a transaction sees pg_stat_activity as it was at its start) */
let db: PgClient;
let locker: PgClient;
let lockerPid: number;
afterAll(async () => {
  for (const f of fakes) await f.close().catch(() => undefined);
  gateways.forEach((g) => g.kill());
  await locker?.end();
  await db?.end();
  await redis?.stop();
  dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
});

/** the backends waiting on a lock `locker` holds, with what they run */
const blockedByTest = async () =>
  (await db.query<{ pid: number; query: string }>(`SELECT pid, query FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, [lockerPid])).rows;
const INSERT_INTO_INBOX = /^\s*INSERT INTO vm_reports/;
const UPDATE_VMS = /^UPDATE "vms"/;

it('a gateway killed while it handles reports: another gateway applies them once; the same reports sent again are replays', async () => {
  redis = await startRedis();
  const databaseUrl = await freshDatabase();
  [db, locker] = [new PgClient({ connectionString: databaseUrl }), new PgClient({ connectionString: databaseUrl })];
  await db.connect();
  await locker.connect();
  lockerPid = (await locker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const env = (name: string) => {
    const dir = tempDir(name);
    dirs.push(dir);
    // a blocked statement is not given up before the kill; no VM here is judged silent meanwhile
    return { UVE_DATA_DIR: dir, DATABASE_URL: databaseUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: PREFIX, UVE_DB_TIMEOUT_MS: '120000', UVE_VM_HEARTBEAT_TIMEOUT_MS: '120000' };
  };
  const a = await startGroupGateway(env('redeliver-a'));
  gateways.push(a);
  const admin = (await login(a, ADMIN.username, ADMIN.password)).token;
  const user = await registerUser(a, 'redelivered');
  const uaId = await procuredPaintUa(a, admin, databaseUrl);
  const fakeVm = async () => {
    const vm = await startFakeVm({ redisUrl: redis.url, prefix: PREFIX, gateway: a, admin, heartbeatMs: 300 });
    fakes.push(vm);
    await until('the VM to register', 10_000, async () => (await ok(a, `{ vm(id: "${vm.id}") { status } }`, {}, admin)).vm.status === 'IDLE');
    return vm;
  };
  // the session lands on the only VM there is; the other one is the one that says it stops
  const holder = await fakeVm();
  const r = await ok(a, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id vm { id } } }`, {
    i: { uaId, terminal: { screenWidth: 800, screenHeight: 600, codecs: ['H264'], localResources: [] } },
  }, user.token);
  expect(r.requestApplication.vm.id).toBe(holder.id);
  const sessionId: string = r.requestApplication.id;
  const stopper = await fakeVm();
  stopper.silence(); // its heartbeats would wait on its locked row too

  // a session report (stored in the inbox, then applied) and a VM report (an update of the VM)
  const connected = holder.signed({ type: 'session.connected', sessionId, userId: user.id, uaId, role: 'PLAYER', seq: 1 });
  const stopping = stopper.signed({ type: 'vm.stopping', reason: 'said before the kill' });
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE vm_reports IN SHARE MODE'); // no insert; reads go on
  await locker.query('SELECT 1 FROM vms WHERE id = $1 FOR UPDATE', [stopper.id]);
  await holder.sendRaw(connected);
  await stopper.sendRaw(stopping);
  // each past the report guard (its nonce claimed) and waiting in its handler
  let blocked: { query: string }[] = [];
  await until('both handlers to wait on the test\'s locks', 20_000, async () => {
    blocked = await blockedByTest();
    return blocked.some((b) => INSERT_INTO_INBOX.test(b.query)) && blocked.some((b) => UPDATE_VMS.test(b.query));
  }, 100).catch((e: Error) => {
    throw new Error(`${e.message}; waiting: ${JSON.stringify(blocked.map((x) => x.query.slice(0, 80)))}\n${a.output().slice(-3000)}`);
  });

  // another gateway runs when the first is killed
  const b = await startGroupGateway(env('redeliver-b'));
  gateways.push(b);
  a.kill();
  expect((await a.exited(10_000)).signal).toBe('SIGKILL');
  const killedAt = Date.now();
  // PostgreSQL would run the killed gateway's waiting statements once the locks go (it finds a dead
  // client only when it next reads from it): end them, as a lost client's, so whatever lands now is
  // b's work. b cannot have taken the reports yet (a's locks on them in the queue outlive the kill
  // by 15 s at least): the waiting statements are all a's.
  const left = (await blockedByTest()).filter((x) => INSERT_INTO_INBOX.test(x.query) || UPDATE_VMS.test(x.query));
  expect(left).toHaveLength(2);
  for (const x of left) await db.query('SELECT pg_terminate_backend($1)', [x.pid]);
  await until('the killed gateway\'s statements to be gone', 10_000, async () => (await blockedByTest()).every((x) => !left.some((l) => l.pid === x.pid)));
  // nothing of either report was written
  expect((await db.query('SELECT 1 FROM vm_reports WHERE session_id = $1', [sessionId])).rowCount).toBe(0);
  expect((await db.query('SELECT status FROM vms WHERE id = $1', [stopper.id])).rows[0].status).toBe('IDLE');
  await locker.query('COMMIT');

  const session = async () => (await ok(b, `{ session(id: "${sessionId}") { state events(last: 50) { type } } }`, {}, admin)).session;
  const stopperVm = async () => (await ok(b, `{ vm(id: "${stopper.id}") { status statusReason } }`, {}, admin)).vm;
  // handed over within the bound after the kill (b is running), plus the time to handle them
  await until('both reports applied by the other gateway', REDELIVERY_MS + 20_000, async () => (await session()).state === 'ACTIVE' && (await stopperVm()).status === 'OFFLINE', 250);
  expect(Date.now() - killedAt).toBeLessThan(REDELIVERY_MS + 10_000);
  expect(await stopperVm()).toEqual({ status: 'OFFLINE', statusReason: 'VM stopping: said before the kill' });
  const once = async () => {
    const events = ((await session()).events as { type: string }[]).map((e) => e.type);
    expect(events.filter((t) => t === 'CONNECTED')).toHaveLength(1);
    const rows = await db.query('SELECT seq, result FROM vm_reports WHERE session_id = $1', [sessionId]);
    expect(rows.rows).toEqual([{ seq: 1, result: 'applied' }]);
  };
  await once();
  const replays = async () => metricSample(await (await fetch(`${b.url}/metrics`)).text(), 'uve_vm_reports_refused_total{reason="replay"}') ?? 0;
  // the redeliveries were admitted, not refused
  expect(await replays()).toBe(0);
  expect(b.output()).not.toMatch(/UVE-5 report refused/);

  // the very same signed reports as new messages: replays, refused, nothing changes
  await holder.sendRaw(connected);
  await stopper.sendRaw(stopping);
  await until('both copies refused as replays', 10_000, async () => (await replays()) === 2);
  await once();
  expect(await stopperVm()).toEqual({ status: 'OFFLINE', statusReason: 'VM stopping: said before the kill' });
}, REDELIVERY_MS + 180_000);
