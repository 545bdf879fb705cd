// Reconnection across gateways (Annex B.1 with more than one VMM process): the VM Data of a dropped
// session is stored through gateway A (by a VM that A launched and that knows only A), and the
// user's reconnecting request goes to gateway B, whose own VM fetches the snapshot through B. Both
// gateways share one PostgreSQL and one Redis, as a real deployment does.
import fs from 'node:fs';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { agentPid, near, openStream, pixel, uaId } from '../support/stream';

let redis: TestRedis;
let gwA: GatewayProcess;
let gwB: GatewayProcess | undefined;
let env: Record<string, string>;
const RED = { r: 255, g: 0, b: 0 };
const WHITE = { r: 255, g: 255, b: 255 };

beforeAll(async () => {
  redis = await startRedis();
  // A may run one VM only, so the VM that takes over after the drop is one B launched
  env = { DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'rc2gw', UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: 'WASM', UVE_VM_CAPACITY: '1' };
  gwA = await startGateway({ ...env, UVE_WARM_VMS: '1', UVE_MAX_VMS: '1' });
}, 90_000);

afterAll(async () => {
  await gwB?.stop();
  await gwA?.stop();
  await redis?.stop();
});

const REQUEST = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id reconnections vm { id } restoredFrom { id kind } connection { url token } } }`;
type Requested = { id: string; reconnections: number; vm: { id: string }; restoredFrom: { id: string; kind: string } | null; connection: { url: string; token: string } };
const terminal = { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] };

/** the gateway a VM agent talks to for VM Data (what its provider told it) */
function gatewayOf(vmId: string): string {
  const env = fs.readFileSync(`/proc/${agentPid(vmId)}/environ`, 'utf8').split('\0');
  return env.find((e) => e.startsWith('UVE_GATEWAY_URL='))!.slice('UVE_GATEWAY_URL='.length);
}

it('a snapshot stored through gateway A is restored through gateway B', async () => {
  const admin = (await login(gwA, ADMIN.username, ADMIN.password)).token;
  const idleVms = async (g: GatewayProcess) => (await ok(g, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, admin)).vms as { id: string }[];
  const [vmA] = await until('A to launch its WASM VM', 60_000, async () => ((await idleVms(gwA)).length === 1 ? idleVms(gwA) : null), 100);
  expect(gatewayOf(vmA!.id)).toBe(gwA.url);

  const user = await registerUser(gwA, 'rc-two-gateways');
  const paint = await uaId(gwA, user.token, 'paint');
  const s = (await ok(gwA, REQUEST, { i: { uaId: paint, reconnectionMethod: 'NO_LOSS', terminal } }, user.token)).requestApplication as Requested;
  expect(s.vm.id).toBe(vmA!.id);
  const stream = await openStream(s.connection);
  expect(near(pixel(await stream.frame(() => true, 'at all'), 200, 150), WHITE)).toBe(true);
  const drawn = await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 200, y: 150, button: 0 }, 'after painting');
  expect(near(pixel(drawn, 200, 150), RED)).toBe(true);
  stream.client.close(); // no bye: an unexpected disconnect
  const saved = await until('the VM Data saved through A', 20_000, async () => {
    const x = (await ok(gwA, `{ session(id: "${s.id}") { state events(last: 20) { type data } } }`, {}, admin)).session as { state: string; events: { type: string; data: { snapshotId: string; kind: string } }[] };
    return x.state === 'DISCONNECTED' ? x.events.find((e) => e.type === 'SNAPSHOT_SAVED')?.data ?? null : null;
  });
  expect(saved.kind).toBe('FULL');

  // B joins; its pool launches the VM the session moves to (A may not launch another)
  gwB = await startGateway({ ...env, UVE_WARM_VMS: '1', UVE_MAX_VMS: '3' });
  const [vmB] = await until('B to launch a WASM VM', 60_000, async () => ((await idleVms(gwB!)).length === 1 ? idleVms(gwB!) : null), 100);
  expect(vmB!.id).not.toBe(vmA!.id);
  expect(gatewayOf(vmB!.id)).toBe(gwB.url);

  const again = (await ok(gwB, REQUEST, { i: { uaId: paint, reconnectionMethod: 'NO_LOSS', terminal } }, user.token)).requestApplication as Requested;
  expect(again).toMatchObject({ id: s.id, reconnections: 1, vm: { id: vmB!.id }, restoredFrom: { id: saved.snapshotId, kind: 'FULL' } });
  const next = await openStream(again.connection);
  try {
    const first = await next.frame(() => true, 'after the restore through B');
    expect(near(pixel(first, 200, 150), RED)).toBe(true);
    expect(near(pixel(first, 400, 300), WHITE)).toBe(true);
    const restored = await until('SNAPSHOT_RESTORED', 15_000, async () => {
      const x = (await ok(gwB!, `{ session(id: "${s.id}") { events(last: 20) { type data } } }`, {}, admin)).session as { events: { type: string; data: Record<string, unknown> }[] };
      return x.events.find((e) => e.type === 'SNAPSHOT_RESTORED') ?? null;
    });
    expect(restored.data).toMatchObject({ snapshotId: saved.snapshotId, kind: 'FULL', vmId: vmB!.id });
  } finally {
    await next.close();
  }
  await ok(gwB, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
}, 180_000);
