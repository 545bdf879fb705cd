// The WASM platform end to end: the gateway (with its warm pool of PROCESS VMs running the real
// vm-agent), UVE-1 over GraphQL, UVE-3/UVE-4 over the VM's WebSocket. To kill an agent from
// outside, a test finds its pid in /proc/<pid>/environ (tests/support/stream.ts agentPid).
import fs from 'node:fs';
import WebSocket from 'ws';
import { CLOSE, MAX_CLIENT_MESSAGE_BYTES, STREAM_PROTOCOL_VERSION } from '@uve/protocol';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, idleVms as idleVmsOf, login, ok, refusal, registerUser, startGateway, subscribeLive, wsClient, type GatewayProcess } from '../support/gateway';
import { agentPid, near, openStream, pixel, requestUa, uaId } from '../support/stream';
import type { Client } from 'graphql-ws';

let redis: TestRedis;
let gw: GatewayProcess;
let admin: string;
let user: { token: string; id: string };
const clients: Client[] = [];
const WHITE = { r: 255, g: 255, b: 255 };
const RED = { r: 255, g: 0, b: 0 };

const idleVms = (n: number): Promise<string[]> => idleVmsOf(gw, admin, n);

/** so long that a VM seen OFFLINE within a test was seen by the provider's exit listener, not the heartbeat sweep */
const HEARTBEAT_TIMEOUT_MS = 120_000;

beforeAll(async () => {
  redis = await startRedis();
  gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'wasm', UVE_SAMPLE_UAS: 'true', UVE_WARM_VMS: '2', UVE_VM_CAPACITY: '4', UVE_VM_HEARTBEAT_TIMEOUT_MS: String(HEARTBEAT_TIMEOUT_MS) });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  user = await registerUser(gw, 'wasmuser');
  await idleVms(2);
}, 90_000);

afterAll(async () => {
  for (const c of clients) await c.dispose();
  await gw?.stop();
  await redis?.stop();
});

describe.each(['MJPEG', 'H264'])('paint over %s', (codec) => {
  it('decodes the first frame, and a pointer press paints the pixel under it', async () => {
    const s = await requestUa(gw, user.token, await uaId(gw, user.token, 'paint'), { codec });
    const stream = await openStream(s.connection);
    try {
      expect(stream.welcome).toMatchObject({ codec, width: 640, height: 480, role: 'PLAYER' });
      const first = await stream.frame(() => true, 'at all');
      expect(first.header.keyframe).toBe(true);
      expect(first.decoded).toMatchObject({ width: 640, height: 480 });
      expect(near(pixel(first, 200, 150), WHITE)).toBe(true);

      const after = await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 200, y: 150, button: 0 }, 'after the press');
      expect(near(pixel(after, 200, 150), RED)).toBe(true);
      expect(near(pixel(after, 400, 300), WHITE)).toBe(true);
      await stream.client.sendInput({ kind: 'pointer', type: 'up', x: 200, y: 150, button: 0 });
      // UVE-5 told the VMM the UC connected
      // (the report travels the queue: it may land a moment after the frames)
      const state = await until('the session ACTIVE', 10_000, async () => {
        const st = (await ok(gw, `{ session(id: "${s.id}") { state } }`, {}, user.token)).session.state as string;
        return st === 'ASSIGNED' ? null : st;
      }, 100);
      expect(state).toBe('ACTIVE');
    } finally {
      await stream.close();
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
    }
  });
});

it('a new session on the VM of an ended one starts fresh: the last user\'s stroke is not in its picture (its guest thread is reused)', async () => {
  const paint = await uaId(gw, user.token, 'paint');
  const end = (id: string, token: string) => ok(gw, `mutation { endSession(sessionId: "${id}") { state } }`, {}, token);
  const a = await requestUa(gw, user.token, paint, { codec: 'MJPEG' });
  const sa = await openStream(a.connection);
  try {
    await sa.frame(() => true, 'at all');
    const painted = await sa.inputAndFrame({ kind: 'pointer', type: 'down', x: 300, y: 200, button: 0 }, 'after the press');
    expect(near(pixel(painted, 300, 200), RED)).toBe(true);
    await sa.client.sendInput({ kind: 'pointer', type: 'up', x: 300, y: 200, button: 0 });
  } finally {
    await sa.close();
    await end(a.id, user.token);
  }
  // another user's session on that VM (sessions placed elsewhere are ended; a few tries at most)
  const other = await registerUser(gw, 'wasmuser-next');
  let b: Awaited<ReturnType<typeof requestUa>> | null = null;
  for (let i = 0; i < 6 && !b; i++) {
    const s = await requestUa(gw, other.token, paint, { codec: 'MJPEG' });
    if (s.vm.id === a.vm.id) b = s;
    else await end(s.id, other.token);
  }
  expect(b?.vm.id).toBe(a.vm.id);
  const sb = await openStream(b!.connection);
  try {
    const first = await sb.frame(() => true, 'at all');
    expect(near(pixel(first, 300, 200), WHITE)).toBe(true);
    // and it ran on a thread an earlier UA of that VM had run on (UVE_WASM_IDLE_THREADS)
    const metrics = await (await fetch(b!.connection.url.replace(/^ws/, 'http').replace(/^(https?:\/\/[^/]+).*$/, '$1/metrics'))).text();
    expect(Number(/^uve_vm_wasm_guest_threads\{kind="reused"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
  } finally {
    await sb.close();
    await end(b!.id, other.token);
  }
});

describe('local resources (UVE-4) with the sensors UA', () => {
  const sensors = async (answer: boolean) => {
    const s = await requestUa(gw, user.token, await uaId(gw, user.token, 'sensors'), { codec: 'MJPEG', resources: ['GEOLOCATION', 'ACCELEROMETER'] });
    const asked: string[] = [];
    const stream = await openStream(s.connection, {
      GEOLOCATION: async (kind) => {
        asked.push(kind);
        return answer ? { kind: 'GEOLOCATION', latitude: 45, longitude: 7, accuracy: 5 } : { refused: 'user said no' };
      },
      ACCELEROMETER: async () => ({ kind: 'ACCELEROMETER', x: 0, y: 0, z: 9.81 }),
    });
    return { s, stream, asked };
  };

  it('delivers an answer to the UA, which shows it', async () => {
    const { s, stream, asked } = await sensors(true);
    try {
      const f = await stream.frame((fr) => near(pixel(fr, 8, 8), { r: 0, g: 200, b: 0 }), 'with the geolocation square green');
      expect(asked).toContain('GEOLOCATION');
      // the latitude band: 45° → x < (45 + 90) · 640 / 180 = 480 is blue
      expect(near(pixel(f, 470, 28), { r: 0, g: 0, b: 255 })).toBe(true);
      expect(near(pixel(f, 490, 28), { r: 60, g: 60, b: 60 })).toBe(true);
      // the VM's report of the request travels the queue: recorded soon after, not before the frame
      const kinds = async () => ((await ok(gw, `{ session(id: "${s.id}") { events { type data } } }`, {}, user.token)).session.events as { type: string; data: { kind: string } }[])
        .filter((e) => e.type === 'RESOURCE_REQUESTED').map((e) => e.data.kind);
      expect(await until('the RESOURCE_REQUESTED event', 10_000, async () => ((await kinds()).length ? kinds() : null), 100)).toContain('GEOLOCATION');
    } finally {
      await stream.close();
    }
  });

  it('delivers a refusal to the UA, which handles it', async () => {
    const { stream } = await sensors(false);
    try {
      await stream.frame((fr) => near(pixel(fr, 8, 8), { r: 200, g: 0, b: 0 }), 'with the geolocation square red');
    } finally {
      await stream.close();
    }
  });
});

describe('UVE-3 refusals', () => {
  const closeOf = (ws: WebSocket) => new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const open = (url: string) => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });

  it('closes with a code and reason on a bad token, a bad message and an oversize message', async () => {
    const s = await requestUa(gw, user.token, await uaId(gw, user.token, 'paint'), { codec: 'MJPEG' });
    try {
      let ws = await open(s.connection.url);
      let closed = closeOf(ws);
      ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token: s.connection.token.slice(0, -4) + 'AAAA' }));
      let c = await closed;
      expect(c.code).toBe(CLOSE.UNAUTHORIZED);
      expect(c.reason.length).toBeGreaterThan(0);

      ws = await open(s.connection.url);
      closed = closeOf(ws);
      ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token: s.connection.token }));
      ws.send('{"t":"input","seq":1,"ev":{"kind":"pointer","type":"sideways","x":1,"y":1}}');
      c = await closed;
      expect(c.code).toBe(CLOSE.BAD_MESSAGE);
      expect(c.reason).toMatch(/pointer.type/);

      ws = await open(s.connection.url);
      closed = closeOf(ws);
      ws.send('x'.repeat(MAX_CLIENT_MESSAGE_BYTES + 1));
      c = await closed;
      expect(c.code).toBe(CLOSE.TOO_BIG);
      expect(c.reason.length).toBeGreaterThan(0);
    } finally {
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
    }
  });
});

it('sees a killed agent: its VM goes OFFLINE, its session DISCONNECTED with an event, and the client reconnects to another VM', async () => {
  const paint = await uaId(gw, user.token, 'paint');
  const s = await requestUa(gw, user.token, paint, { codec: 'MJPEG' });
  // the SDK's automatic reconnect requests the UA again (seed B.1 step 4)
  const again: { id: string; vm: { id: string } }[] = [];
  // the SDK reconnects at once; it waits until the test has seen the session DISCONNECTED (a
  // reconnection would end it and continue in a new one)
  let looked!: () => void;
  const sessionLookedAt = new Promise<void>((resolve) => (looked = resolve));
  const stream = await openStream(s.connection, {}, async () => {
    await sessionLookedAt;
    const next = await requestUa(gw, user.token, paint, { codec: 'MJPEG' });
    again.push(next);
    return next.connection;
  });
  await stream.frame(() => true, 'at all');
  const c = wsClient(gw, user.token);
  clients.push(c);
  const events = await subscribeLive(c, `subscription($id: ID!) { sessionEvents(sessionId: $id, replay: true) { type data } }`, { id: s.id });
  await events.next((e) => e.data?.sessionEvents?.type === 'CONNECTED');

  const before = stream.frames.length;
  const killedAt = Date.now();
  process.kill(agentPid(s.vm.id), 'SIGKILL');
  // seen at once: the reason is the PROCESS provider's exit listener, never the heartbeat sweep
  const disc = await events.next((e) => e.data?.sessionEvents?.type === 'DISCONNECTED');
  expect(disc.data!.sessionEvents.data).toMatchObject({ unexpected: true, userId: user.id, uaId: paint, reason: expect.stringMatching(/^VM process exited \(SIGKILL\)/) });
  expect(Date.now() - killedAt).toBeLessThan(HEARTBEAT_TIMEOUT_MS);
  expect((await ok(gw, `{ vm(id: "${s.vm.id}") { status } }`, {}, admin)).vm.status).toBe('OFFLINE');
  const gone = await ok(gw, `{ session(id: "${s.id}") { state connection { url } } }`, {}, user.token).finally(looked);
  expect(gone.session).toEqual({ state: 'DISCONNECTED', connection: null });

  try {
    // a keyframe from the new VM arrives on the same client
    await stream.frame((f, i = stream.frames.indexOf(f)) => i >= before && f.header.keyframe, 'from the new VM after reconnecting', 30_000);
    expect(again.length).toBeGreaterThan(0);
    expect(again.at(-1)!.vm.id).not.toBe(s.vm.id);
  } finally {
    await stream.close();
  }
});

describe('VM management (admin)', () => {
  const vmQuery = (id: string) => gql(gw, `{ vm(id: "${id}") { status endpoint provider capacity } }`, {}, admin);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('provisions a PROCESS VM that registers, drains it, and removes it with its process', async () => {
    const d = await ok(gw, `mutation { provisionVm(input: { platform: WASM, provider: PROCESS, capacity: 2, name: "extra-vm" }) { id name status provider capacity } }`, {}, admin);
    expect(d.provisionVm).toMatchObject({ name: 'extra-vm', status: 'PROVISIONING', provider: 'PROCESS', capacity: 2 });
    const id = d.provisionVm.id as string;
    const vm = await until('the VM to register', 20_000, async () => ((await vmQuery(id)).data?.vm?.status === 'IDLE' ? (await vmQuery(id)).data!.vm : null));
    expect(vm.endpoint).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    const pid = agentPid(id);

    const drained = await ok(gw, `mutation { drainVm(id: "${id}") { status } }`, {}, admin);
    expect(drained.drainVm.status).toBe('DRAINING');
    // a draining VM takes no new sessions
    const paint = await uaId(gw, user.token, 'paint');
    for (let i = 0; i < 3; i++) {
      const s = await requestUa(gw, user.token, paint, { codec: 'MJPEG' });
      expect(s.vm.id).not.toBe(id);
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
    }

    const removed = await ok(gw, `mutation { removeVm(id: "${id}") { status endpoint } }`, {}, admin);
    expect(removed.removeVm).toEqual({ status: 'OFFLINE', endpoint: null });
    await until('the agent process to exit', 10_000, async () => !alive(pid));
    expect((await refusal(gw, `mutation { drainVm(id: "${id}") { status } }`, {}, admin)).extensions?.code).toBe('CONFLICT');
  });

  it('refuses bad provisioning input and unknown VMs', async () => {
    expect((await refusal(gw, `mutation { provisionVm(input: { platform: WASM, capacity: 0 }) { id } }`, {}, admin)).extensions?.code).toBe('BAD_USER_INPUT');
    expect((await refusal(gw, `mutation { removeVm(id: "nope") { id } }`, {}, admin)).extensions?.code).toBe('NOT_FOUND');
    expect((await refusal(gw, `mutation { provisionVm(input: { platform: WASM }) { id } }`, {}, user.token)).extensions?.code).toBe('FORBIDDEN');
  });
});

describe('VM Data (UVE-5 over HTTP)', () => {
  const SNAPSHOTS = `{ mySnapshots { id kind sizeBytes sha256 session { id } ua { name } sourceVm { id } } }`;

  // a user of its own per test: other tests' sessions save VM Data of the shared user in the background
  let owner: { token: string; id: string };
  let n = 0;
  beforeEach(async () => {
    owner = await registerUser(gw, `vmdata${++n}`);
  });

  async function paintAndLeave(method: 'NORMAL' | 'NO_LOSS', leave: 'end' | 'drop') {
    const user = owner;
    const paint = await uaId(gw, user.token, 'paint');
    const d = await ok(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id vm { id } connection { url token } } }`, {
      i: { uaId: paint, reconnectionMethod: method, terminal: { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] } },
    }, user.token);
    const s = d.requestApplication;
    const stream = await openStream(s.connection);
    await stream.frame(() => true, 'at all');
    await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 50, y: 50, button: 0 }, 'after painting');
    const c = wsClient(gw, user.token);
    clients.push(c);
    const events = await subscribeLive(c, `subscription($id: ID!) { sessionEvents(sessionId: $id, replay: true) { type data } }`, { id: s.id });
    if (leave === 'end') {
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
      stream.client.close();
    } else {
      stream.client.close(); // no bye: an unexpected disconnect
    }
    const saved = await events.next((e) => e.data?.sessionEvents?.type === 'SNAPSHOT_SAVED', 20_000);
    events.dispose();
    return { s, saved: saved.data!.sessionEvents.data as { snapshotId: string; kind: string; sizeBytes: number; sha256: string } };
  }

  it('stores the application data of a NORMAL session when the user ends it', async () => {
    const { s, saved } = await paintAndLeave('NORMAL', 'end');
    expect(saved).toMatchObject({ kind: 'APP_DATA' });
    expect(saved.sizeBytes).toBeGreaterThan(0);
    const mine = (await ok(gw, SNAPSHOTS, {}, owner.token)).mySnapshots;
    expect(mine).toContainEqual({ id: saved.snapshotId, kind: 'APP_DATA', sizeBytes: saved.sizeBytes, sha256: saved.sha256, session: { id: s.id }, ua: { name: 'paint' }, sourceVm: { id: s.vm.id } });
  });

  it('stores the full state of a NO_LOSS session on an unexpected disconnect, and serves it only to a VM told to restore it', async () => {
    const { s, saved } = await paintAndLeave('NO_LOSS', 'drop');
    expect(saved.kind).toBe('FULL');
    const url = `${gw.url}/vmm/vm-data/snapshots/${saved.snapshotId}`;
    // the agent's environment names its secret file, never the secret
    const env = fs.readFileSync(`/proc/${agentPid(s.vm.id)}/environ`, 'utf8').split('\0');
    expect(env.some((e) => e.startsWith('UVE_VM_SECRET='))).toBe(false);
    const secretFile = env.find((e) => e.startsWith('UVE_VM_SECRET_FILE='))!.slice('UVE_VM_SECRET_FILE='.length);
    expect(fs.statSync(secretFile).mode & 0o777).toBe(0o600);
    const secret = fs.readFileSync(secretFile, 'utf8');
    // even the VM that saved it may not read it back: only a VM whose session restores it
    // (session.prepare's restoreSnapshotId; tests/e2e/reconnect-vmdata.test.ts restores it)
    const res = await fetch(url, { headers: { 'x-uve-vm-id': s.vm.id, authorization: `Bearer ${secret}` } });
    expect(res.status).toBe(404);
    expect(saved.sha256).toMatch(/^[0-9a-f]{64}$/);
    const wrong = await fetch(url, { headers: { 'x-uve-vm-id': s.vm.id, authorization: 'Bearer not-the-secret' } });
    expect(wrong.status).toBe(401);
    const forged = await fetch(`${gw.url}/vmm/vm-data/sessions/${s.id}?kind=FULL`, { method: 'PUT', headers: { 'x-uve-vm-id': s.vm.id, authorization: 'Bearer nope' }, body: 'x' });
    expect(forged.status).toBe(401);
    // a later FULL snapshot of the same user and UA replaces this one; nothing else was written
    const fulls = (await ok(gw, SNAPSHOTS, {}, owner.token)).mySnapshots.filter((x: { kind: string }) => x.kind === 'FULL');
    expect(fulls.map((x: { id: string }) => x.id)).toEqual([saved.snapshotId]);
  });
});
