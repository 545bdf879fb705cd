// A gateway that stops running for longer than the heartbeat timeout (its process stopped here; in
// production a long GC pause, a host that pauses the machine, CPU starvation) while its VMs keep
// heartbeating into the queue. When it runs again, those heartbeats are still queued: it must hear
// them before it judges anyone silent. Before, its watchdog ran first and found every VM silent,
// took them OFFLINE and disconnected all their sessions (seen once in bench/reconnect at 128 MiB on
// a busy machine: both VMs "heartbeat lost" at the same instant).
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, login, ok, startGateway, type GatewayProcess } from '../support/gateway';
import { startFakeVm, type FakeVm } from '../support/fake-vm';

const TIMEOUT_MS = 1500;
let redis: TestRedis;
let gw: GatewayProcess;
let admin: string;
const vms: FakeVm[] = [];

beforeAll(async () => {
  redis = await startRedis();
  gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'stall', UVE_VM_HEARTBEAT_TIMEOUT_MS: String(TIMEOUT_MS) });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
});

afterAll(async () => {
  for (const vm of vms) await vm.close();
  await gw?.stop();
  await redis?.stop();
});

const vmOf = async (id: string) => (await ok(gw, `{ vm(id: "${id}") { status lastHeartbeatAt } }`, {}, admin)).vm as { status: string; lastHeartbeatAt: string | null };

it('a gateway stopped for twice the heartbeat timeout finds its VMs alive when it runs again (the heartbeats queued meanwhile count), and the one that died meanwhile silent', async () => {
  for (let i = 0; i < 3; i++) vms.push(await startFakeVm({ redisUrl: redis.url, prefix: 'stall', gateway: gw, admin, heartbeatMs: 200 }));
  for (const vm of vms) await until('the VM to register', 10_000, async () => (await vmOf(vm.id)).status === 'IDLE');
  const [dead, ...alive] = vms;
  const pid = gw.child.pid!;
  process.kill(pid, 'SIGSTOP');
  await dead!.close(); // its heartbeats end while the gateway is stopped
  // the stall itself is the fault: its length is what the test is about, nothing waits on it
  await new Promise((r) => setTimeout(r, 2 * TIMEOUT_MS));
  process.kill(pid, 'SIGCONT');
  const resumedAt = Date.now();
  // the gateway has run for a whole timeout since (its watchdog judged several times meanwhile)
  for (const vm of alive) {
    await until('a heartbeat recorded a whole timeout after the resume', 15_000, async () => {
      const at = (await vmOf(vm.id)).lastHeartbeatAt;
      return at !== null && Date.parse(at) > resumedAt + TIMEOUT_MS;
    });
  }
  for (const vm of alive) expect((await vmOf(vm.id)).status).toBe('IDLE');
  expect(gw.output()).toMatch(/the gateway did not run for a while/);
  // silence is still judged: the VM that stopped heartbeating goes OFFLINE, and only that one
  await until('the dead VM found silent', 15_000, async () => (await vmOf(dead!.id)).status === 'OFFLINE');
  const lost = gw.output().split('\n').filter((l) => l.includes('VM heartbeat lost'));
  expect(lost).toHaveLength(1);
  expect(lost[0]).toContain(dead!.id);
}, 60_000);
