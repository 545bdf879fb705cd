// The agent's UVE-3 defences on the real agent process: single-use session tokens, a watcher whose
// monitoring.notify comes after its hello, connection caps per session and per VM, message floods,
// the browser origin check, and wss:// with a configured certificate.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { CLOSE, STREAM_PATH, STREAM_PROTOCOL_VERSION, type PrepareSessionCommand, type SessionTokenClaims, type VmRegistered } from '@uve/protocol';
import { StreamClient, StreamCloseError } from '../../packages/client/src';
import { agentTestEnv, fakeVmm, isEvent, prepareCommand, startAgent, startJwks, startRedis, type AgentHandle, type FakeVmm, type JwksHandle, type RedisHandle } from '../support/agent-harness';

jest.setTimeout(60_000);

const VM_ID = `vm-sec-${randomUUID().slice(0, 8)}`;
const TLS_VM_ID = `vm-tls-${randomUUID().slice(0, 8)}`;
const PAINT = 'ua-paint';
const ORIGIN = 'https://play.example.com';

let redis: RedisHandle;
let jwks: JwksHandle;
let vmm: FakeVmm;
let agent: AgentHandle;
let tlsAgent: AgentHandle | null = null;
let registered: VmRegistered;
let prefix: string;
let certDir: string;
const clients: StreamClient[] = [];
const sockets: WebSocket[] = [];

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms)))]).finally(() => clearTimeout(t));
}

const agentEnv = (vmId: string, extra: Record<string, string> = {}) => agentTestEnv({ redis, jwks, vmId, prefix }, extra);

const claimsFor = (cmd: PrepareSessionCommand, over: Partial<SessionTokenClaims> = {}): SessionTokenClaims => ({
  sub: cmd.userId,
  sid: cmd.sessionId,
  vm: VM_ID,
  ua: cmd.uaId,
  role: 'PLAYER',
  ...over,
});

async function prepare(): Promise<PrepareSessionCommand> {
  const cmd = prepareCommand({ uaId: PAINT });
  await vmm.send(VM_ID, cmd);
  return cmd;
}

function newClient(): StreamClient {
  const c = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
  clients.push(c);
  return c;
}

/** how a connection attempt ended: welcomed, or closed with a code and reason */
async function attempt(client: StreamClient, token: string, url = registered.endpoint): Promise<'welcome' | { code: number; reason: string }> {
  try {
    await client.connect({ url, token });
    return 'welcome';
  } catch (e) {
    if (e instanceof StreamCloseError) return { code: e.code, reason: e.reason };
    throw e;
  }
}

/** a raw socket and the close it ends with */
function raw(url: string, opts: WebSocket.ClientOptions = {}): { ws: WebSocket; opened: Promise<void>; closed: Promise<{ code: number; reason: string }> } {
  const ws = new WebSocket(url, opts);
  sockets.push(ws);
  ws.on('error', () => undefined);
  const opened = withTimeout(new Promise<void>((r) => ws.once('open', () => r())), 10_000, 'socket open');
  opened.catch(() => undefined);
  const closed = withTimeout(new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() }))), 15_000, 'socket close');
  closed.catch(() => undefined);
  return { ws, opened, closed };
}

beforeAll(async () => {
  redis = await startRedis();
  jwks = await startJwks();
  prefix = `t${randomUUID().slice(0, 8)}`;
  vmm = fakeVmm(redis.url, prefix);
  agent = startAgent(
    agentEnv(VM_ID, {
      UVE_STREAM_MAX_CONNECTIONS: '6',
      UVE_STREAM_MAX_PER_SESSION: '2',
      UVE_STREAM_MAX_MESSAGES_PER_S: '50',
      UVE_STREAM_ALLOWED_ORIGINS: ORIGIN,
    }),
  );
  registered = (await vmm.events.waitFor((e) => isEvent('vm.register')(e) && e.vmId === VM_ID, 'vm.register', 20_000)) as VmRegistered;
  await vmm.send(VM_ID, { type: 'ua.deploy', uaId: PAINT, version: '1.0.0', platform: 'WASM', packageUrl: 'builtin:paint', sha256: '' });
  await vmm.events.waitFor((e) => e.type === 'deployment.changed' && e.uaId === PAINT && e.status === 'INSTALLED', 'paint installed', 15_000);
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of sockets) s.terminate();
  await tlsAgent?.stop('SIGTERM');
  const r = await agent?.stop('SIGTERM');
  await vmm?.close();
  await jwks?.stop();
  await redis?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
  expect(r).toEqual({ code: 0, signal: null });
});

describe('session tokens', () => {
  it('are single-use: a replay is refused with 4401 and a reason, a fresh token gets in', async () => {
    const cmd = await prepare();
    const token = await jwks.mint(claimsFor(cmd));
    const first = newClient();
    expect(await attempt(first, token)).toBe('welcome');
    first.close();
    expect(await attempt(newClient(), token)).toEqual({ code: CLOSE.UNAUTHORIZED, reason: 'session token already used: ask the VMM for a fresh one' });
    expect(await attempt(newClient(), await jwks.mint(claimsFor(cmd)))).toBe('welcome');
  });

  it('lets a VIEWER whose monitoring.notify arrives after its hello in', async () => {
    const cmd = await prepare();
    expect(await attempt(newClient(), await jwks.mint(claimsFor(cmd)))).toBe('welcome');
    const viewer = newClient();
    const welcomed = viewer.next('welcome');
    const result = attempt(viewer, await jwks.mint(claimsFor(cmd, { sub: 'u-late', role: 'VIEWER' })));
    // the hello is on its way or waiting when the announcement is sent
    await vmm.send(VM_ID, { type: 'monitoring.notify', sessionId: cmd.sessionId, watcherId: 'u-late', privileges: ['VIEW'] });
    expect(await result).toBe('welcome');
    expect((await welcomed).role).toBe('VIEWER');
  });
});

describe('stream limits', () => {
  // each test counts connections: those of earlier tests end first
  beforeEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.bye()));
  });

  it('caps the connections of one session: a VIEWER over the cap is closed with 4429', async () => {
    const cmd = await prepare();
    for (const w of ['u-a', 'u-b']) await vmm.send(VM_ID, { type: 'monitoring.notify', sessionId: cmd.sessionId, watcherId: w, privileges: ['VIEW'] });
    expect(await attempt(newClient(), await jwks.mint(claimsFor(cmd)))).toBe('welcome');
    expect(await attempt(newClient(), await jwks.mint(claimsFor(cmd, { sub: 'u-a', role: 'VIEWER' })))).toBe('welcome');
    const over = await attempt(newClient(), await jwks.mint(claimsFor(cmd, { sub: 'u-b', role: 'VIEWER' })));
    expect(over).toEqual({ code: CLOSE.RATE_LIMITED, reason: `session ${cmd.sessionId} is at its limit of 2 connections` });
  });

  it('closes a connection that floods messages with 4429 and a reason; the agent stays up', async () => {
    const cmd = await prepare();
    const s = raw(registered.endpoint + STREAM_PATH);
    await s.opened;
    const welcome = new Promise<void>((r) => s.ws.on('message', (d, bin) => !bin && d.toString().includes('"welcome"') && r()));
    s.ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token: await jwks.mint(claimsFor(cmd)) }));
    await withTimeout(welcome, 10_000, 'welcome');
    for (let i = 0; i < 300; i++) s.ws.send(JSON.stringify({ t: 'ping', id: i, t0: 1 }));
    expect(await s.closed).toEqual({ code: CLOSE.RATE_LIMITED, reason: 'more than 50 messages per second' });
    expect(await attempt(newClient(), await jwks.mint(claimsFor(cmd)))).toBe('welcome');
  });

  it('refuses a browser from an origin not listed with 4403; a listed origin passes', async () => {
    const evil = raw(registered.endpoint + STREAM_PATH, { origin: 'https://evil.example.com' });
    expect(await evil.closed).toEqual({ code: CLOSE.FORBIDDEN, reason: 'origin https://evil.example.com is not allowed to connect to this VM' });
    const good = raw(registered.endpoint + STREAM_PATH, { origin: ORIGIN });
    await good.opened;
    good.ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token: 'not-a-jwt' }));
    expect(await good.closed).toMatchObject({ code: CLOSE.UNAUTHORIZED });
  });

  it('caps the connections of the VM: one over the cap is closed with 4429', async () => {
    // 7 sockets on a VM that takes 6: at least one is refused
    const socks = Array.from({ length: 7 }, () => raw(registered.endpoint + STREAM_PATH));
    const refused = await withTimeout(Promise.race(socks.map((s) => s.closed.then((c) => (c.code === CLOSE.RATE_LIMITED ? c : new Promise<never>(() => undefined))))), 10_000, 'a refusal');
    expect(refused).toEqual({ code: CLOSE.RATE_LIMITED, reason: 'this VM is at its limit of 6 connections' });
    for (const s of socks) s.ws.close();
  });
});

describe('wss://', () => {
  it('serves UVE-3 over TLS with the configured certificate and registers a wss:// endpoint', async () => {
    certDir = mkdtempSync(join(tmpdir(), 'uve-tls-'));
    const cert = join(certDir, 'cert.pem');
    const key = join(certDir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const from = vmm.events.mark;
    tlsAgent = startAgent(agentEnv(TLS_VM_ID, { UVE_STREAM_TLS_CERT: cert, UVE_STREAM_TLS_KEY: key }));
    const reg = (await vmm.events.waitFor((e) => isEvent('vm.register')(e) && e.vmId === TLS_VM_ID, 'vm.register (TLS)', 20_000, from)) as VmRegistered;
    expect(reg.endpoint).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    // trusted through the configured certificate, and it answers UVE-3
    const s = raw(reg.endpoint + STREAM_PATH, { ca: readFileSync(cert) });
    await s.opened;
    s.ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token: 'not-a-jwt' }));
    expect(await s.closed).toMatchObject({ code: CLOSE.UNAUTHORIZED, reason: expect.stringMatching(/invalid session token/) });
    // plain ws:// on that port gets no UVE-3
    const plain = new WebSocket(reg.endpoint.replace('wss:', 'ws:') + STREAM_PATH);
    sockets.push(plain);
    const failed = await withTimeout(new Promise<boolean>((r) => { plain.once('error', () => r(true)); plain.once('open', () => r(false)); }), 10_000, 'plain ws');
    expect(failed).toBe(true);
    expect(await tlsAgent.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    tlsAgent = null;
  });
});
