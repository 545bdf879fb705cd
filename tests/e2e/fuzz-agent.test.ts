// Fuzzing the real agent's UVE-3 endpoint with fast-check (fixed seeds, bounded runs): random and
// mutated messages before and after the welcome, binary and oversize frames, floods. Every bad
// message gets a close code with a reason, a good one an answer; the agent stays up, its memory bounded.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import WebSocket from 'ws';
import { CLOSE, MAX_CLIENT_MESSAGE_BYTES, STREAM_PATH, STREAM_PROTOCOL_VERSION, type PrepareSessionCommand, type VmRegistered } from '@uve/protocol';
import { fakeVmm, isEvent, prepareCommand, startAgent, startJwks, startRedis, type AgentHandle, type FakeVmm, type JwksHandle, type RedisHandle } from '../support/agent-harness';

jest.setTimeout(120_000);

const VM_ID = `vm-fuzz-${randomUUID().slice(0, 8)}`;
const SEED = 20261202;
let redis: RedisHandle;
let jwks: JwksHandle;
let vmm: FakeVmm;
let agent: AgentHandle;
let registered: VmRegistered;
let session: PrepareSessionCommand;

type Outcome = { closed: { code: number; reason: string } } | { answered: true };

/** Opens a socket, optionally gets a welcome, sends `messages`, then a ping: how it ended. */
async function exchange(messages: (string | Buffer)[], welcomed: boolean): Promise<Outcome> {
  const ws = new WebSocket(registered.endpoint + STREAM_PATH);
  ws.on('error', () => undefined);
  const closed = new Promise<Outcome>((r) => ws.on('close', (code, reason) => r({ closed: { code, reason: reason.toString() } })));
  await new Promise<void>((r, rej) => {
    ws.once('open', () => r());
    ws.once('error', rej);
  });
  const texts: string[] = [];
  let notify = (): void => undefined;
  ws.on('message', (d, bin) => {
    if (!bin) texts.push(d.toString());
    notify();
  });
  const seen = (what: string): Promise<boolean> =>
    new Promise((r) => {
      const check = (): void => void (texts.some((t) => t.includes(what)) && r(true));
      notify = check;
      check();
      void closed.then(() => r(false));
    });
  if (welcomed) {
    ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token: await jwks.mint({ sub: session.userId, sid: session.sessionId, vm: VM_ID, ua: session.uaId, role: 'PLAYER' }) }));
    if (!(await seen('"welcome"'))) return closed;
  }
  for (const m of messages) if (ws.readyState === WebSocket.OPEN) ws.send(m);
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ t: 'ping', id: 424242, t0: 1 }));
  const timeout = new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no answer and no close after ${JSON.stringify(messages.map(String).map((m) => m.slice(0, 80)))}`)), 10_000).unref());
  const outcome = await Promise.race([closed, seen('"id":424242').then((ok) => (ok ? ({ answered: true } as const) : closed)), timeout]);
  ws.terminate();
  return outcome;
}

/** A close the VM gave a reason for (1009 is ws's own close, given a reason by UveSocket). */
function expectExplainedClose(o: Outcome, codes: number[]): void {
  if (!('closed' in o)) throw new Error('expected a close');
  expect(codes).toContain(o.closed.code);
  expect(o.closed.reason.length).toBeGreaterThan(0);
}

const rssKb = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.proc.pid}/status`, 'utf8'))![1]);

// valid messages, to be mutated
const VALID: Record<string, unknown>[] = [
  { t: 'input', seq: 1, ev: { kind: 'pointer', type: 'down', x: 10, y: 10, button: 0 } },
  { t: 'input', seq: 2, ev: { kind: 'key', type: 'down', key: 'a', code: 'KeyA' } },
  { t: 'ping', id: 1, t0: 1 },
  { t: 'resource', id: 1, ok: false, reason: 'no' },
  { t: 'keyframe' },
];
const jsonValue = fc.jsonValue({ maxDepth: 4 });
/** a valid message with one field replaced, removed, or nested deeper */
const mutated = fc
  .tuple(fc.constantFrom(...VALID), fc.constantFrom('replace', 'remove', 'nest'), jsonValue, fc.nat())
  .map(([msg, how, value, i]) => {
    const copy = JSON.parse(JSON.stringify(msg)) as Record<string, any>;
    const target = copy.ev && i % 2 ? copy.ev : copy;
    const keys = Object.keys(target);
    const key = keys[i % keys.length];
    if (how === 'remove') delete target[key];
    else if (how === 'nest') target[key] = { deeper: target[key], more: value };
    else target[key] = value;
    return JSON.stringify(copy);
  });

beforeAll(async () => {
  redis = await startRedis();
  jwks = await startJwks();
  const prefix = `t${randomUUID().slice(0, 8)}`;
  vmm = fakeVmm(redis.url, prefix);
  agent = startAgent({ REDIS_URL: redis.url, UVE_GATEWAY_URL: jwks.url, UVE_VM_ID: VM_ID, UVE_VM_SECRET: 'secret', UVE_QUEUE_PREFIX: prefix, UVE_LOG_LEVEL: 'error' });
  registered = (await vmm.events.waitFor(isEvent('vm.register'), 'vm.register', 20_000)) as VmRegistered;
  await vmm.send(VM_ID, { type: 'ua.deploy', uaId: 'ua-paint', version: '1.0.0', platform: 'WASM', packageUrl: 'builtin:paint', sha256: '' });
  await vmm.events.waitFor((e) => e.type === 'deployment.changed' && e.status === 'INSTALLED', 'paint installed', 15_000);
  session = prepareCommand({ uaId: 'ua-paint' });
  await vmm.send(VM_ID, session);
});

afterAll(async () => {
  const r = await agent?.stop('SIGTERM');
  await vmm?.close();
  await jwks?.stop();
  await redis?.stop();
  expect(r).toEqual({ code: 0, signal: null });
});

it('closes with a code and a reason on any first message that is not a valid hello', async () => {
  const first = fc.oneof(
    fc.string({ maxLength: 200 }),
    jsonValue.map((v) => JSON.stringify(v)),
    mutated,
    fc.record({ t: fc.constant('hello'), v: fc.oneof(fc.integer(), fc.string()), token: fc.oneof(fc.string({ maxLength: 300 }), fc.integer()) }).map((m) => JSON.stringify(m)),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Buffer.from(b)),
  );
  await fc.assert(
    fc.asyncProperty(first, async (m) => {
      expectExplainedClose(await exchange([m], false), [CLOSE.BAD_MESSAGE, CLOSE.UNAUTHORIZED, CLOSE.UNSUPPORTED_VERSION]);
    }),
    { seed: SEED, numRuns: 60 },
  );
});

it('answers or closes with a code and a reason on random and mutated messages after the welcome', async () => {
  const afterWelcome = fc.array(fc.oneof(mutated, fc.string({ maxLength: 100 }), jsonValue.map((v) => JSON.stringify(v))), { minLength: 1, maxLength: 5 });
  const seen = new Set<number>();
  await fc.assert(
    fc.asyncProperty(afterWelcome, async (msgs) => {
      const o = await exchange(msgs, true);
      if ('closed' in o) {
        expectExplainedClose(o, [CLOSE.BAD_MESSAGE, CLOSE.FORBIDDEN]);
        seen.add(o.closed.code);
      }
    }),
    { seed: SEED + 1, numRuns: 40 },
  );
  expect(seen.has(CLOSE.BAD_MESSAGE)).toBe(true);
});

it('closes oversize and binary frames and floods with a code and a reason; stays up with bounded memory', async () => {
  const before = rssKb();
  for (let i = 0; i < 3; i++) {
    expectExplainedClose(await exchange(['x'.repeat(MAX_CLIENT_MESSAGE_BYTES + 1 + i * 100_000)], i % 2 === 0), [CLOSE.TOO_BIG]);
    expectExplainedClose(await exchange([Buffer.alloc(100, i)], true), [CLOSE.BAD_MESSAGE]);
    // a flood of valid messages after the welcome
    expectExplainedClose(await exchange(Array.from({ length: 2_000 }, (_, n) => JSON.stringify({ t: 'ping', id: n, t0: 1 })), true), [CLOSE.RATE_LIMITED]);
    // a flood before the token is checked
    const preHello = Array.from({ length: 500 }, () => JSON.stringify({ t: 'ping', id: 1, t0: 1 }));
    expectExplainedClose(await exchange([JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token: 'x'.repeat(400) }), ...preHello], false), [CLOSE.BAD_MESSAGE, CLOSE.UNAUTHORIZED]);
  }
  const res = await fetch(registered.endpoint.replace('ws:', 'http:') + '/healthz');
  expect(res.status).toBe(200);
  expect(agent.proc.exitCode).toBeNull();
  // a leak per connection would show over these hundreds of sockets; 64 MiB is far above noise
  expect(rssKb() - before).toBeLessThan(64 * 1024);
});
