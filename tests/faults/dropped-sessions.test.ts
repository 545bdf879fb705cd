// Four users drop their connection without a goodbye on a capacity-4 VM (a real agent of the
// PROCESS pool, real streams): the VMM and the VM count those sessions alike while their reconnect
// window is open, a fifth user is still served (the pool adds a VM instead of sending them to a VM
// that would refuse), and once the window has closed the four are ENDED and the VM's slots free.
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { openStream, requestUa, uaId } from '../support/stream';

// long enough that a loaded machine gets from the drops to the fifth request inside it
const WINDOW_S = 25;
let redis: TestRedis;
let gw: GatewayProcess;
let admin: string;

beforeAll(async () => {
  redis = await startRedis();
  gw = await startGateway({
    DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'dropped', UVE_SAMPLE_UAS: 'true',
    // WASM only: a warm LINUX_X11 VM would take the second VM allowed
    UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM', UVE_VM_CAPACITY: '4', UVE_MAX_VMS: '2', UVE_RECONNECT_WINDOW_S: String(WINDOW_S),
  });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await redis?.stop();
});

const vmHealth = async (endpoint: string) => (await fetch(`${endpoint.replace(/^ws/, 'http')}/healthz`)).json() as Promise<{ sessions: number; capacity: number }>;

it('serves a fifth user after four dropped connections, and frees the slots when the window closes', async () => {
  const first = await until('a warm WASM VM', 30_000, async () => (await gql(gw, `{ vms(status: IDLE, platform: WASM) { id endpoint } }`, {}, admin)).data?.vms?.[0]);
  const users = await Promise.all([1, 2, 3, 4].map((i) => registerUser(gw, `dropper${i}`)));
  const paint = await uaId(gw, users[0]!.token, 'paint');

  const dropped: string[] = [];
  for (const u of users) {
    const s = await requestUa(gw, u.token, paint, { codec: 'MJPEG' });
    expect(s.vm.id).toBe(first.id);
    const stream = await openStream(s.connection);
    await stream.frame(() => true, 'at all');
    stream.client.close(); // no bye: an unexpected disconnect
    dropped.push(s.id);
  }
  await until('the four sessions to be DISCONNECTED', 15_000, async () => {
    const states = await Promise.all(dropped.map(async (id) => (await ok(gw, `{ session(id: "${id}") { state } }`, {}, admin)).session.state));
    return states.every((st) => st === 'DISCONNECTED');
  });
  // the VM holds all four for their window, and the VMM knows it
  expect(await vmHealth(first.endpoint)).toMatchObject({ sessions: 4, capacity: 4 });

  const fifth = await registerUser(gw, 'fifth');
  const served = await until('the fifth user to be served', 40_000, async () => {
    const r = await gql(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id vm { id } connection { url token } } }`, {
      i: { uaId: paint, terminal: { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] } },
    }, fifth.token);
    if (r.errors) {
      expect(r.errors[0]!.extensions?.code).toBe('UNAVAILABLE'); // never sent to the full VM
      return null;
    }
    return r.data!.requestApplication as { id: string; vm: { id: string }; connection: { url: string; token: string } };
  }, 250);
  expect(served.vm.id).not.toBe(first.id);
  const stream = await openStream(served.connection);
  try {
    await stream.frame(() => true, 'for the fifth user');
  } finally {
    await stream.close();
  }

  const ended = await until('the windows to close', (WINDOW_S + 20) * 1000, async () => {
    const all = await Promise.all(dropped.map(async (id) => (await ok(gw, `{ session(id: "${id}") { state events(last: 5) { type data } } }`, {}, admin)).session));
    return all.every((s) => s.state === 'ENDED') ? all : null;
  });
  // closed by the VMM or by the VM itself, whichever counted to the end first (a SNAPSHOT_SAVED of
  // the VM Data the VM keeps at the end may come after the ENDED)
  for (const s of ended) expect(s.events.find((e: { type: string }) => e.type === 'ENDED')?.data.reason).toMatch(/reconnect window (of \d+ s )?expired/);
  await until('the VM to free its slots', 15_000, async () => (await vmHealth(first.endpoint)).sessions === 0);
});
