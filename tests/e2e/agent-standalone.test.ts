// The VM agent on its own: the built agent process, a real Redis bus, a JWKS server; the test
// plays the VMM over the bus (UVE-2/UVE-5) and the UC over UVE-3/UVE-4 with the SDK's StreamClient.
// Build first: npm run build -w @uve/protocol -w @uve/queue && npx tsc -p apps/vm-agent/tsconfig.json
//              && node apps/vm-agent/scripts/build-uas.js
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import {
  CLOSE,
  HELLO_TIMEOUT_MS,
  MAX_CLIENT_MESSAGE_BYTES,
  STREAM_PATH,
  STREAM_PROTOCOL_VERSION,
  type DeploymentChanged,
  type FrameTiming,
  type PrepareSessionCommand,
  type SessionTokenClaims,
  type VmEventMessage,
  type VmRegistered,
} from '@uve/protocol';
import { StreamClient, StreamCloseError, createNodeDecoder, type FrameEvent, type StreamClientOptions } from '../../packages/client/src';
import {
  agentTestEnv,
  Collector,
  fakeVmm,
  pixel,
  prepareCommand,
  startAgent,
  startJwks,
  startRedis,
  type AgentHandle,
  type FakeVmm,
  type JwksHandle,
  type RedisHandle,
} from '../support/agent-harness';

jest.setTimeout(60_000);

const VM_ID = `vm-e2e-${randomUUID().slice(0, 8)}`;
const PAINT = 'ua-paint';
const SENSORS = 'ua-sensors';

let redis: RedisHandle;
let jwks: JwksHandle;
let agent: AgentHandle;
let vmm: FakeVmm;
let registered: VmRegistered;
let prefix: string;
const clients: StreamClient[] = [];
const measured: Record<string, number[]> = {};
const note = (k: string, v: number): void => void (measured[k] ??= []).push(v);

const isEvent =
  <T extends VmEventMessage['type']>(type: T, sessionId?: string) =>
  (e: VmEventMessage): e is Extract<VmEventMessage, { type: T }> =>
    e.type === type && (sessionId === undefined || (e as { sessionId?: string }).sessionId === sessionId);

async function deploy(uaId: string, name: string): Promise<DeploymentChanged> {
  const from = vmm.events.mark;
  await vmm.send(VM_ID, { type: 'ua.deploy', uaId, version: '1.0.0', platform: 'WASM', packageUrl: `builtin:${name}`, sha256: '' });
  const done = await vmm.events.waitFor(
    (e) => e.type === 'deployment.changed' && e.uaId === uaId && (e.status === 'INSTALLED' || e.status === 'FAILED'),
    `deployment of ${uaId}`,
    15_000,
    from,
  );
  return done as DeploymentChanged;
}

async function prepare(over: Partial<PrepareSessionCommand> & { uaId: string }): Promise<PrepareSessionCommand> {
  const cmd = prepareCommand(over);
  await vmm.send(VM_ID, cmd);
  return cmd;
}

/** Resolves once the agent handled every command sent before (the command queue is ordered). */
async function barrier(): Promise<void> {
  const from = vmm.events.mark;
  // a codec no VM encodes fails at once (a UA the VM never heard of would wait for its deploy)
  const marker = await prepare({ uaId: PAINT, stream: { codec: 'VP8', width: 64, height: 64, maxFps: 1, bitrateKbps: 100 } });
  await vmm.events.waitFor(isEvent('session.failed', marker.sessionId), 'barrier', 10_000, from);
}

function claimsFor(cmd: PrepareSessionCommand, over: Partial<SessionTokenClaims> = {}): SessionTokenClaims {
  return { sub: cmd.userId, sid: cmd.sessionId, vm: VM_ID, ua: cmd.uaId, role: 'PLAYER', ...over };
}

function newClient(opts: StreamClientOptions = {}): StreamClient {
  const c = new StreamClient({ browserResources: false, pingIntervalMs: 0, ...opts });
  clients.push(c);
  return c;
}

const epochNow = (): number => performance.timeOrigin + performance.now();

/**
 * Connects with a decoder; resolves with the first decoded frame, the time until it arrived
 * (`receivedMs`, before decoding) and until it was decoded (`ms`).
 */
async function connectAndFirstFrame(
  client: StreamClient,
  cmd: PrepareSessionCommand,
  claims = claimsFor(cmd),
): Promise<{ frame: FrameEvent; ms: number; receivedMs: number; welcomeMs: number }> {
  const token = await jwks.mint(claims);
  const t0 = epochNow();
  const first = client.next('frame');
  await client.connect({
    url: registered.endpoint,
    token,
    decoder: (cfg) => createNodeDecoder({ codec: cfg.codec as 'H264' | 'MJPEG', width: cfg.width, height: cfg.height, description: cfg.description }),
  });
  const welcomeMs = epochNow() - t0;
  const frame = await withTimeout(first, 15_000, 'first frame');
  return { frame, ms: epochNow() - t0, receivedMs: frame.receivedAt - t0, welcomeMs };
}

/** Sends input; resolves with the first decoded frame that includes it (header.inputSeq). */
async function inputToFrame(client: StreamClient, evs: Parameters<StreamClient['sendInput']>[0][]): Promise<{ frame: FrameEvent; ms: number; receivedMs: number }> {
  let seq = 0;
  const got = new Promise<FrameEvent>((resolve) => {
    const off = client.on('frame', (f) => {
      if (seq && f.header.inputSeq >= seq) {
        off();
        resolve(f);
      }
    });
  });
  const t0 = epochNow();
  for (const ev of evs) seq = client.sendInput(ev);
  const frame = await withTimeout(got, 10_000, `frame after input ${seq}`);
  return { frame, ms: epochNow() - t0, receivedMs: frame.receivedAt - t0 };
}

/** Idle time, only to measure input latency outside the fps cap's interval (not to synchronise). */
const idle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms)))]).finally(() => clearTimeout(t));
}

/** A raw UVE-3 socket (for what the SDK would never send). */
function rawSocket(): { ws: WebSocket; opened: Promise<void>; closed: Promise<{ code: number; reason: string }>; messages: string[] } {
  const ws = new WebSocket(registered.endpoint + STREAM_PATH);
  const opened = withTimeout(new Promise<void>((r) => ws.once('open', () => r())), 10_000, 'socket open');
  opened.catch(() => undefined);
  const messages: string[] = [];
  ws.on('message', (d, bin) => {
    if (!bin) messages.push(d.toString());
  });
  const closed = withTimeout(
    new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() }))),
    10_000,
    'socket close',
  );
  closed.catch(() => undefined);
  ws.on('error', () => undefined);
  return { ws, opened, closed, messages };
}

async function rawWelcomed(cmd: PrepareSessionCommand, claims = claimsFor(cmd)): Promise<ReturnType<typeof rawSocket>> {
  const token = await jwks.mint(claims);
  const s = rawSocket();
  await s.opened;
  const welcome = withTimeout(
    new Promise<void>((r, rej) => {
      s.ws.on('message', (d, bin) => !bin && d.toString().includes('"welcome"') && r());
      s.ws.once('close', (code, reason) => rej(new Error(`closed ${code} ${reason.toString()} before welcome`)));
    }),
    10_000,
    'welcome',
  );
  s.ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token }));
  await welcome;
  return s;
}

beforeAll(async () => {
  redis = await startRedis();
  jwks = await startJwks();
  prefix = `t${randomUUID().slice(0, 8)}`;
  vmm = fakeVmm(redis.url, prefix);
  agent = startAgent(agentTestEnv({ redis, jwks, vmId: VM_ID, prefix }, {
    UVE_VM_NAME: 'e2e-vm',
    UVE_VM_CAPACITY: '16',
  }));
  agent.exited.then((r) => {
    if (r.code !== 0) process.stderr.write(`agent exited ${JSON.stringify(r)}\n${agent.output()}\n`);
  });
  registered = (await vmm.events.waitFor(isEvent('vm.register'), 'vm.register', 20_000)) as VmRegistered;
  const paint = await deploy(PAINT, 'paint');
  expect(paint.status).toBe('INSTALLED');
});

afterAll(async () => {
  for (const c of clients) c.close();
  const r = await agent?.stop('SIGTERM');
  if (process.env.UVE_TEST_AGENT_LOG_FILE) writeFileSync(process.env.UVE_TEST_AGENT_LOG_FILE, agent.output());
  if (r) expect(r).toEqual({ code: 0, signal: null });
  await vmm?.events.waitFor(isEvent('vm.stopping'), 'vm.stopping', 5_000).catch(() => undefined);
  await vmm?.close();
  await jwks?.stop();
  await redis?.stop();
  const med = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const summary = Object.entries(measured).map(([k, v]) => `${k}: ${v.length > 1 ? `median ${med(v).toFixed(1)} of ` : ''}${v.map((x) => x.toFixed(1)).join(', ')} ms`);
  if (summary.length) process.stdout.write(`\nagent-standalone measurements (loopback)\n  ${summary.join('\n  ')}\n`);
});

describe('VM agent standalone', () => {
  it('registers its endpoint, codecs and capacity over UVE-5', () => {
    expect(registered.vmId).toBe(VM_ID);
    expect(registered.name).toBe('e2e-vm');
    expect(registered.platform).toBe('WASM');
    expect(registered.provider).toBe('PROCESS');
    expect(registered.endpoint).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    expect(registered.capacity).toBe(16);
    expect(registered.codecs).toEqual(expect.arrayContaining(['MJPEG', 'H264']));
  });

  it('deploys a builtin UA: DOWNLOADING then INSTALLED, listed in heartbeats', async () => {
    const statuses = vmm.events.items.filter((e): e is DeploymentChanged => e.type === 'deployment.changed' && e.uaId === PAINT).map((e) => e.status);
    expect(statuses).toEqual(['DOWNLOADING', 'INSTALLED']);
    const hb = await vmm.events.waitFor((e) => e.type === 'vm.heartbeat' && e.deployed.some((d) => d.uaId === PAINT), 'heartbeat listing paint', 10_000);
    expect(hb).toMatchObject({ activeSessions: expect.any(Number), capacity: 16 });
  });

  it('reports FAILED for a package it cannot get', async () => {
    const from = vmm.events.mark;
    await vmm.send(VM_ID, { type: 'ua.deploy', uaId: 'ua-nope', version: '1', platform: 'WASM', packageUrl: 'builtin:does-not-exist', sha256: '' });
    const failed = await vmm.events.waitFor((e) => e.type === 'deployment.changed' && e.uaId === 'ua-nope' && e.status === 'FAILED', 'FAILED', 10_000, from);
    expect((failed as DeploymentChanged).error).toMatch(/not found/);
  });

  it.each(['MJPEG', 'H264'] as const)('%s: first frame decodes, a pointer down paints the brush colour', async (codec) => {
    const cmd = await prepare({ uaId: PAINT, stream: { codec, width: 640, height: 360, maxFps: 30, bitrateKbps: 2000 } });
    const client = newClient();
    const codecMsg = client.next('codec');
    // connects right after the prepare, as a UC does after requestApplication (session still warming up)
    const first = await connectAndFirstFrame(client, cmd);
    note(`${codec} cold: connect -> welcome`, first.welcomeMs);
    note(`${codec} cold: connect -> first frame received`, first.receivedMs);
    note(`${codec} cold: connect -> first frame decoded`, first.ms);
    const cfg = await codecMsg;
    expect(cfg.codec).toBe(codec);
    if (codec === 'H264') {
      expect(cfg.mime).toMatch(/^avc1\./);
      expect(cfg.description?.[0]).toBe(1); // avcC configurationVersion
    }
    expect(first.frame.header.keyframe).toBe(true);
    expect(first.frame.decoded).toMatchObject({ width: 640, height: 360 });
    const [r0, g0, b0] = pixel(first.frame.decoded!, 200, 150);
    expect(r0 + g0 + b0).toBeGreaterThan(600); // white canvas before

    const connected = await vmm.events.waitFor(isEvent('session.connected', cmd.sessionId), 'session.connected');
    expect(connected).toMatchObject({ userId: cmd.userId, uaId: PAINT, role: 'PLAYER' });

    // a few rounds for a latency figure, each stroke at a new place; rounds are further apart
    // than 1/maxFps, so the cap does not hold the measured frame back
    for (let i = 0; i < 8; i++) {
      const x = 100 + i * 50;
      await idle(50);
      const { frame, ms, receivedMs } = await inputToFrame(client, [{ kind: 'pointer', type: 'down', x, y: 150, button: 0 }]);
      note(`${codec} input -> frame received`, receivedMs);
      note(`${codec} input -> frame decoded`, ms);
      const [r, g, b] = pixel(frame.decoded!, x, 150);
      expect(r).toBeGreaterThan(180);
      expect(g).toBeLessThan(90);
      expect(b).toBeLessThan(90);
      // the release draws nothing new: no frame of its own (protocol.md, "When frames are sent")
      client.sendInput({ kind: 'pointer', type: 'up', x, y: 150, button: 0 });
    }
    // a UC joining the running session gets its keyframe without waiting for an encode
    const late = newClient();
    const again = await connectAndFirstFrame(late, cmd);
    note(`${codec} ready session: connect -> first frame received`, again.receivedMs);
    expect(pixel(again.frame.decoded!, 100, 150)[0]).toBeGreaterThan(180);
    await late.bye();
    await client.drain();
    // the late PLAYER replaced the first one (reported as its disconnect), then said bye
    const byBye = (e: VmEventMessage) => isEvent('session.disconnected', cmd.sessionId)(e) && e.reason === 'bye';
    const disc = await vmm.events.waitFor(byBye, 'session.disconnected (bye)');
    expect(disc).toMatchObject({ unexpected: false, reason: 'bye', userId: cmd.userId, uaId: PAINT });
    expect(vmm.events.items.filter(isEvent('session.disconnected', cmd.sessionId)).map((e) => e.reason)).toEqual(['replaced by a newer connection of this session', 'bye']);
  });

  it('tells a UC that asked for timings where each frame\'s time went on the VM, in stage order', async () => {
    const cmd = await prepare({ uaId: PAINT, stream: { codec: 'MJPEG', width: 640, height: 360, maxFps: 30, bitrateKbps: 2000 } });
    // a UC that did not ask gets none
    const plain = newClient();
    const extra: unknown[] = [];
    plain.on('timing', (x) => extra.push(x));
    await connectAndFirstFrame(plain, cmd);
    await inputToFrame(plain, [{ kind: 'pointer', type: 'down', x: 100, y: 100, button: 0 }]);
    await plain.ping();
    expect(extra).toEqual([]);
    plain.close();

    const client = newClient({ timings: true });
    const timings = new Collector<FrameTiming>();
    client.on('timing', (t) => timings.push(t));
    await connectAndFirstFrame(client, cmd);
    const sent = performance.timeOrigin + performance.now();
    const seq = client.sendInput({ kind: 'pointer', type: 'down', x: 300, y: 200, button: 0 });
    const t = await timings.waitFor((x) => x.inputSeq >= seq, 'the timing of the stroke frame', 10_000);
    expect(t.inputSeq).toBe(seq);
    // one machine, one clock: each stage at or after the one before it (1 ms of clock slack)
    const stages = [sent, t.inputReceivedAt, t.inputAppliedAt, t.capturedAt, t.encodedAt, t.sentAt];
    expect(stages.every((x) => typeof x === 'number')).toBe(true);
    expect(stages.slice(1).map((x, i) => x! - stages[i]!).filter((d) => d < -1)).toEqual([]);
    client.close();
  });

  it('sends no frame while the picture does not change', async () => {
    const cmd = await prepare({ uaId: PAINT });
    const client = newClient();
    await connectAndFirstFrame(client, cmd);
    const frames = new Collector<FrameEvent>();
    client.on('frame', (f) => frames.push(f));
    // input that paints nothing (pointer moves with no button down) must not produce frames
    client.sendInput({ kind: 'pointer', type: 'move', x: 10, y: 10, button: 0 });
    const lastMove = client.sendInput({ kind: 'pointer', type: 'move', x: 12, y: 12, button: 0 });
    await client.ping(); // the moves were handled (and a capture asked for) before the pong
    // a later marker: a stroke's frame; frames leave in order, so one the moves caused comes first
    const stroke = client.sendInput({ kind: 'pointer', type: 'down', x: 500, y: 300, button: 0 });
    const marker = await frames.waitFor((f) => f.header.inputSeq >= stroke, 'the stroke frame', 10_000);
    expect(pixel(marker.decoded!, 500, 300)[0]).toBeGreaterThan(180);
    expect(frames.items.map((f) => f.header.inputSeq)).toEqual([stroke]);
    expect(lastMove).toBeLessThan(stroke);
    client.close();
  });

  it('refuses a token signed by another key, for another VM, or with the wrong audience (4401)', async () => {
    const cmd = await prepare({ uaId: PAINT });
    for (const [token, why] of [
      [await jwks.mint(claimsFor(cmd), { key: jwks.foreignKey }), /invalid session token/],
      [await jwks.mint(claimsFor(cmd, { vm: 'vm-other' })), /for VM vm-other/],
      [await jwks.mint(claimsFor(cmd), { audience: 'someone-else' }), /aud/],
      ['not-a-jwt', /invalid session token/],
    ] as const) {
      const client = newClient();
      const err = await client.connect({ url: registered.endpoint, token }).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(StreamCloseError);
      expect((err as StreamCloseError).code).toBe(CLOSE.UNAUTHORIZED);
      expect((err as StreamCloseError).reason).toMatch(why);
    }
  });

  it('refuses a session that is not prepared here (4404) and an old protocol version (4426)', async () => {
    const cmd = prepareCommand({ uaId: PAINT }); // never sent
    const client = newClient();
    const err = (await client.connect({ url: registered.endpoint, token: await jwks.mint(claimsFor(cmd)) }).catch((e: unknown) => e)) as StreamCloseError;
    expect(err.code).toBe(CLOSE.NOT_FOUND);
    expect(err.reason).toMatch(/not prepared/);

    const s = rawSocket();
    await s.opened;
    s.ws.send(JSON.stringify({ t: 'hello', v: 0, token: 'x' }));
    const c = await s.closed;
    expect(c.code).toBe(CLOSE.UNSUPPORTED_VERSION);
    expect(c.reason).toMatch(/version/);
  });

  it('closes 4400 on a bad message, binary input and a message before hello', async () => {
    const cmd = await prepare({ uaId: PAINT });
    const a = await rawWelcomed(cmd);
    a.ws.send('{"t":"input","seq":1,"ev":{"kind":"pointer","type":"down","x":"a","y":1}}');
    const ca = await a.closed;
    expect(ca.code).toBe(CLOSE.BAD_MESSAGE);
    expect(ca.reason).toMatch(/x must be/);

    const b = await rawWelcomed(cmd);
    b.ws.send(Buffer.from([1, 2, 3]));
    expect((await b.closed).code).toBe(CLOSE.BAD_MESSAGE);

    const c = rawSocket();
    await c.opened;
    c.ws.send('{"t":"keyframe"}');
    const cc = await c.closed;
    expect(cc).toEqual({ code: CLOSE.BAD_MESSAGE, reason: 'the first message must be hello' });
  });

  it('closes 4408 when no hello comes in time', async () => {
    const s = rawSocket();
    await s.opened;
    const t0 = Date.now();
    const c = await s.closed;
    expect(c).toEqual({ code: CLOSE.HELLO_TIMEOUT, reason: `no hello within ${HELLO_TIMEOUT_MS} ms` });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(HELLO_TIMEOUT_MS - 100);
  });

  it('closes 1009 with a reason on an oversize message', async () => {
    const cmd = await prepare({ uaId: PAINT });
    const s = await rawWelcomed(cmd);
    s.ws.send(JSON.stringify({ t: 'input', seq: 1, ev: { kind: 'text', text: 'x'.repeat(MAX_CLIENT_MESSAGE_BYTES) } }));
    const c = await s.closed;
    expect(c.code).toBe(CLOSE.TOO_BIG);
    expect(c.reason).toMatch(/larger than 16384 bytes/);
  });

  it('a session prepared suspended (a suspended session moved here) starts so: the UC is told, its input is refused until session.resume', async () => {
    const cmd = await prepare({ uaId: PAINT, suspended: { byUserId: 'u-watcher', reason: 'bedtime' } });
    const client = newClient();
    const { frame } = await connectAndFirstFrame(client, cmd); // the picture as it is, frozen
    expect(client.suspended).toBe(true);
    const notice = client.next('notice');
    client.sendInput({ kind: 'pointer', type: 'down', x: 100, y: 150, button: 0 });
    expect(await withTimeout(notice, 10_000, 'a notice')).toMatchObject({ code: 'SUSPENDED' });
    const resumed = client.next('resumed');
    await vmm.send(VM_ID, { type: 'session.resume', sessionId: cmd.sessionId, byUserId: 'u-watcher' });
    await withTimeout(resumed, 10_000, 'resumed');
    const after = await inputToFrame(client, [{ kind: 'pointer', type: 'down', x: 100, y: 150, button: 0 }]);
    expect(pixel(frame.decoded!, 100, 150).every((v: number) => v > 200)).toBe(true); // white: nothing drawn yet
    const [r, g, b] = pixel(after.frame.decoded!, 100, 150);
    expect([r > 180, g < 90, b < 90]).toEqual([true, true, true]); // paint's red, once resumed
    await client.bye();
  });

  it('reports an unexpected disconnect with session, user and UA ids when the socket closes without bye', async () => {
    const cmd = await prepare({ uaId: PAINT, userId: 'u-bob' });
    const client = newClient();
    await connectAndFirstFrame(client, cmd);
    const from = vmm.events.mark;
    client.close(4000, 'gone');
    const disc = await vmm.events.waitFor(isEvent('session.disconnected', cmd.sessionId), 'session.disconnected', 10_000, from);
    expect(disc).toMatchObject({ vmId: VM_ID, sessionId: cmd.sessionId, userId: 'u-bob', uaId: PAINT, unexpected: true });
    expect((disc as { reason: string }).reason).toMatch(/4000/);
  });

  it('a second PLAYER replaces the first (4409); session.terminate ends with 4410 and the reason', async () => {
    const cmd = await prepare({ uaId: PAINT });
    const one = newClient();
    await connectAndFirstFrame(one, cmd);
    const oneClosed = one.next('close');
    const replacedFrom = vmm.events.mark;
    const two = newClient();
    await connectAndFirstFrame(two, cmd);
    expect(await oneClosed).toMatchObject({ code: CLOSE.REPLACED, reconnecting: false });
    // the VMM hears of it: the old connection's end, then the new one's start, in that order
    await vmm.events.waitFor(isEvent('session.connected', cmd.sessionId), 'session.connected', 10_000, replacedFrom);
    const reported = vmm.events.items.slice(replacedFrom).filter((e) => isEvent('session.disconnected', cmd.sessionId)(e) || isEvent('session.connected', cmd.sessionId)(e));
    expect(reported).toMatchObject([
      { type: 'session.disconnected', unexpected: false, reason: 'replaced by a newer connection of this session' },
      { type: 'session.connected', role: 'PLAYER' },
    ]);

    const ended = two.next('ended');
    const closed = two.next('close');
    const from = vmm.events.mark;
    await vmm.send(VM_ID, { type: 'session.terminate', sessionId: cmd.sessionId, reason: 'admin ended it', saveVmData: false });
    expect(await ended).toEqual({ reason: 'admin ended it' });
    expect(await closed).toMatchObject({ code: CLOSE.ENDED, reason: 'admin ended it' });
    // terminated by the VMM: no disconnect report follows
    await barrier();
    expect(vmm.events.items.slice(from).some(isEvent('session.disconnected', cmd.sessionId))).toBe(false);
    // a late reconnect to the ended session is told so at once
    const late = newClient();
    const err = (await late.connect({ url: registered.endpoint, token: await jwks.mint(claimsFor(cmd)) }).catch((e: unknown) => e)) as StreamCloseError;
    expect(err).toMatchObject({ code: CLOSE.ENDED, reason: expect.stringMatching(/ended: admin ended it/) });
  });

  it('reports session.failed for a prepare it cannot satisfy', async () => {
    const cmd = await prepare({ uaId: 'ua-missing' });
    // after OVERTAKEN_DEPLOY_WAIT_MS (10 s): a deploy relayed late by another gateway could still come
    const failed = await vmm.events.waitFor(isEvent('session.failed', cmd.sessionId), 'session.failed', 30_000);
    expect(failed).toMatchObject({ userId: cmd.userId, uaId: 'ua-missing', error: expect.stringMatching(/not deployed/) });
    const bad = await prepare({ uaId: PAINT, stream: { codec: 'VP8', width: 640, height: 360, maxFps: 30, bitrateKbps: 1000 } });
    expect(await vmm.events.waitFor(isEvent('session.failed', bad.sessionId), 'session.failed VP8')).toMatchObject({ error: expect.stringMatching(/VP8/) });
  });

  it('suspends and resumes: UCs are told, frames stop while suspended, input then is dropped', async () => {
    const cmd = await prepare({ uaId: PAINT });
    const client = newClient();
    await connectAndFirstFrame(client, cmd);
    const frames = new Collector<FrameEvent>();
    client.on('frame', (f) => frames.push(f));
    const suspended = client.next('suspended');
    await vmm.send(VM_ID, { type: 'session.suspend', sessionId: cmd.sessionId, byUserId: 'u-watcher', reason: 'homework time' });
    expect(await suspended).toEqual({ reason: 'homework time' });
    await vmm.events.waitFor((e) => isEvent('session.suspended', cmd.sessionId)(e) && e.suspended, 'session.suspended true');
    const fromSuspended = frames.mark;
    // a stroke that would paint (100, 100) red if the frozen UA took it
    client.sendInput({ kind: 'pointer', type: 'down', x: 100, y: 100, button: 0 });
    client.sendInput({ kind: 'pointer', type: 'up', x: 100, y: 100, button: 0 });
    await client.ping();
    // bounded wait for absence: a frame for that stroke leaves within a few frame intervals (30 fps)
    await expect(frames.waitFor(() => true, 'a frame while suspended', 1_500, fromSuspended)).rejects.toThrow(/timed out/);
    const resumed = client.next('resumed');
    await vmm.send(VM_ID, { type: 'session.resume', sessionId: cmd.sessionId, byUserId: 'u-watcher' });
    await resumed;
    // nothing came before the resumed message (frames and messages share one ordered socket)
    expect(frames.items.slice(fromSuspended)).toEqual([]);
    const { frame } = await inputToFrame(client, [{ kind: 'pointer', type: 'down', x: 300, y: 100, button: 0 }]);
    expect(pixel(frame.decoded!, 300, 100)[0]).toBeGreaterThan(180);
    // the stroke sent while suspended was dropped: (100, 100) is still white
    const [r, g, b] = pixel(frame.decoded!, 100, 100);
    expect(r + g + b).toBeGreaterThan(600);
    client.close();
  });

  it('lets an announced watcher VIEW, closes it 4403 on input; refuses an unannounced viewer', async () => {
    const cmd = await prepare({ uaId: PAINT });
    const stranger = newClient();
    const err = (await stranger.connect({ url: registered.endpoint, token: await jwks.mint(claimsFor(cmd, { sub: 'u-eve', role: 'VIEWER' })) }).catch((e: unknown) => e)) as StreamCloseError;
    expect(err.code).toBe(CLOSE.UNAUTHORIZED);

    await vmm.send(VM_ID, { type: 'monitoring.notify', sessionId: cmd.sessionId, watcherId: 'u-mum', privileges: ['VIEW'] });
    await barrier();
    const player = newClient();
    await connectAndFirstFrame(player, cmd);
    const viewer = newClient();
    const { frame } = await connectAndFirstFrame(viewer, cmd, claimsFor(cmd, { sub: 'u-mum', role: 'VIEWER' }));
    expect(viewer.role).toBe('VIEWER');
    expect(frame.header.keyframe).toBe(true);
    // the viewer sees the player's strokes
    const seen = new Promise<FrameEvent>((r) => viewer.on('frame', (f) => f.header.inputSeq >= 1 && r(f)));
    player.sendInput({ kind: 'pointer', type: 'down', x: 120, y: 120, button: 0 });
    expect(pixel((await withTimeout(seen, 10_000, 'viewer frame')).decoded!, 120, 120)[0]).toBeGreaterThan(180);
    expect(() => viewer.sendInput({ kind: 'pointer', type: 'down', x: 1, y: 1, button: 0 })).toThrow(/VIEWER/);
    const s = await rawWelcomed(cmd, claimsFor(cmd, { sub: 'u-mum', role: 'VIEWER' }));
    s.ws.send(JSON.stringify({ t: 'input', seq: 1, ev: { kind: 'pointer', type: 'down', x: 60, y: 300, button: 0 } }));
    expect(await s.closed).toMatchObject({ code: CLOSE.FORBIDDEN });
    // the viewer's stroke was not applied: the player's next picture is white where it pointed
    const { frame: after } = await inputToFrame(player, [{ kind: 'pointer', type: 'up', x: 120, y: 120, button: 0 }, { kind: 'pointer', type: 'down', x: 400, y: 300, button: 0 }]);
    expect(pixel(after.decoded!, 400, 300)[0]).toBeGreaterThan(180);
    const [r, g, b] = pixel(after.decoded!, 60, 300);
    expect(r + g + b).toBeGreaterThan(600);
    player.close();
    viewer.close();
  });

  it('UVE-4: answers from the terminal reach the UA; kinds the terminal did not offer are refused', async () => {
    expect((await deploy(SENSORS, 'sensors')).status).toBe('INSTALLED');
    const cmd = await prepare({
      uaId: SENSORS,
      terminal: { screenWidth: 640, screenHeight: 360, codecs: ['MJPEG'], localResources: ['GEOLOCATION'] },
    });
    const requests: string[] = [];
    const client = newClient({
      resources: { GEOLOCATION: async () => ({ kind: 'GEOLOCATION', latitude: 45, longitude: 7, accuracy: 10 }) },
    });
    client.on('resourceRequest', (r) => requests.push(r.kind));
    const from = vmm.events.mark;
    // watched from the first frame on: the answer can be painted before connectAndFirstFrame
    // returns, and a picture that does not change again is not sent again
    const answered = new Promise<FrameEvent>((resolve) => {
      const check = (f: FrameEvent): void => {
        const geo = pixel(f.decoded!, 8, 8);
        const acc = pixel(f.decoded!, 28, 8);
        if (geo[1] > 150 && geo[0] < 80 && acc[0] > 150 && acc[1] < 80) resolve(f);
      };
      client.on('frame', check);
    });
    // the UA asked at start (before the UC came): the geolocation request was held for the player
    await connectAndFirstFrame(client, cmd);
    const f = await withTimeout(answered, 15_000, 'green geolocation and red accelerometer squares');
    expect(requests).toEqual(['GEOLOCATION']);
    // latitude 45 -> blue band up to x = (45 + 90) * 640 / 180 = 480
    expect(pixel(f.decoded!, 470, 28)[2]).toBeGreaterThan(180);
    expect(pixel(f.decoded!, 490, 28)[2]).toBeLessThan(120);
    const req = await vmm.events.waitFor(isEvent('session.resourceRequested', cmd.sessionId), 'session.resourceRequested', 10_000, from);
    expect(req).toMatchObject({ kind: 'GEOLOCATION', userId: cmd.userId, uaId: SENSORS });

    // a refusal by the terminal reaches the UA as a refusal (red square)
    const refusing = newClient({ resources: { GEOLOCATION: async () => ({ refused: 'user said no' }) } });
    const cmd2 = await prepare({ uaId: SENSORS, terminal: { screenWidth: 640, screenHeight: 360, codecs: ['MJPEG'], localResources: ['GEOLOCATION'] } });
    const red = new Promise<void>((resolve) => refusing.on('frame', (fr) => pixel(fr.decoded!, 8, 8)[0] > 150 && pixel(fr.decoded!, 8, 8)[1] < 80 && resolve()));
    await connectAndFirstFrame(refusing, cmd2);
    await withTimeout(red, 15_000, 'red geolocation square');
    client.close();
    refusing.close();
  });

  it('stops on vm.shutdown: vm.stopping, exit 0', async () => {
    const id = `vm-e2e-${randomUUID().slice(0, 8)}`;
    const from = vmm.events.mark;
    const other = startAgent({ REDIS_URL: redis.url, UVE_GATEWAY_URL: jwks.url, UVE_VM_ID: id, UVE_VM_SECRET: 's', UVE_QUEUE_PREFIX: prefix, UVE_VM_CODECS: 'MJPEG', UVE_LOG_LEVEL: 'warn' });
    try {
      const reg = await vmm.events.waitFor((e) => e.type === 'vm.register' && e.vmId === id, 'second vm.register', 20_000, from);
      expect(reg).toMatchObject({ codecs: ['MJPEG'], capacity: 4 });
      await vmm.send(id, { type: 'vm.shutdown' });
      expect(await withTimeout(other.exited, 15_000, 'exit after vm.shutdown')).toEqual({ code: 0, signal: null });
      expect(vmm.events.items.slice(from).find((e) => e.type === 'vm.stopping' && e.vmId === id)).toMatchObject({ reason: 'vm.shutdown command' });
    } finally {
      await other.stop();
    }
  });

  let keeper: StreamClient;

  it('vm.drain: running sessions continue, new prepares are refused', async () => {
    const running = await prepare({ uaId: PAINT });
    keeper = newClient();
    await connectAndFirstFrame(keeper, running);
    await vmm.send(VM_ID, { type: 'vm.drain' });
    const cmd = await prepare({ uaId: PAINT });
    const failed = await vmm.events.waitFor(isEvent('session.failed', cmd.sessionId), 'session.failed (draining)');
    expect(failed).toMatchObject({ error: expect.stringMatching(/draining/) });
    const { frame } = await inputToFrame(keeper, [{ kind: 'pointer', type: 'down', x: 50, y: 50, button: 0 }]);
    expect(pixel(frame.decoded!, 50, 50)[0]).toBeGreaterThan(180);
  });

  it('on SIGTERM: vm.stopping, UCs closed with 1001, exit 0', async () => {
    const from = vmm.events.mark;
    const closed = keeper.next('close');
    const r = await agent.stop('SIGTERM');
    expect(r).toEqual({ code: 0, signal: null });
    expect(await closed).toMatchObject({ code: CLOSE.GOING_AWAY, reason: expect.stringMatching(/shutting down/) });
    const stopping = await vmm.events.waitFor(isEvent('vm.stopping'), 'vm.stopping', 5_000, from);
    expect(stopping).toMatchObject({ vmId: VM_ID, reason: 'SIGTERM' });
  });
});
