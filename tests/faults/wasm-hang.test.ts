// Fault: a WASM guest that loops for ever. Two sessions on one real agent process (real Redis bus,
// UVE-3 over WebSocket): the `hang` UA spins on a key press, `paint` keeps being played. Only the
// hung session ends, with its reason; the other keeps delivering frames that follow its input and
// the VM keeps heartbeating. Build first: npm run build -w @uve/vm-agent.
import { randomUUID } from 'node:crypto';
import type { DeploymentChanged, PrepareSessionCommand, SessionTokenClaims, VmEventMessage, VmRegistered } from '@uve/protocol';
import { StreamClient, createNodeDecoder, type FrameEvent } from '../../packages/client/src';
import { agentTestEnv, fakeVmm, isEvent, pixel, prepareCommand, startAgent, startJwks, startRedis, type AgentHandle, type FakeVmm, type JwksHandle, type RedisHandle } from '../support/agent-harness';

jest.setTimeout(60_000);

const VM_ID = `vm-hang-${randomUUID().slice(0, 8)}`;
const BUDGET_MS = 500;

let redis: RedisHandle;
let jwks: JwksHandle;
let agent: AgentHandle;
let vmm: FakeVmm;
let registered: VmRegistered;
const clients: StreamClient[] = [];

async function deploy(uaId: string, name: string): Promise<void> {
  const from = vmm.events.mark;
  await vmm.send(VM_ID, { type: 'ua.deploy', uaId, version: '1.0.0', platform: 'WASM', packageUrl: `builtin:${name}`, sha256: '' });
  const done = (await vmm.events.waitFor((e) => e.type === 'deployment.changed' && e.uaId === uaId && e.status !== 'DOWNLOADING', `deployment of ${uaId}`, 15_000, from)) as DeploymentChanged;
  expect(done.status).toBe('INSTALLED');
}

async function play(uaId: string): Promise<{ cmd: PrepareSessionCommand; client: StreamClient; first: FrameEvent }> {
  const cmd = prepareCommand({ uaId, stream: { codec: 'MJPEG', width: 320, height: 240, maxFps: 30, bitrateKbps: 1000 } });
  await vmm.send(VM_ID, cmd);
  const claims: SessionTokenClaims = { sub: cmd.userId, sid: cmd.sessionId, vm: VM_ID, ua: uaId, role: 'PLAYER' };
  const client = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
  clients.push(client);
  const first = client.next('frame');
  await client.connect({
    url: registered.endpoint,
    token: await jwks.mint(claims),
    decoder: (cfg) => createNodeDecoder({ codec: cfg.codec as 'MJPEG', width: cfg.width, height: cfg.height, description: cfg.description }),
  });
  return { cmd, client, first: await first };
}

/** the first decoded frame that includes input `seq` */
function frameWith(client: StreamClient, seq: () => number, what: string): Promise<FrameEvent> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10_000);
    const off = client.on('frame', (f) => {
      if (seq() && f.header.inputSeq >= seq() && f.decoded) {
        clearTimeout(t);
        off();
        resolve(f);
      }
    });
  });
}

beforeAll(async () => {
  redis = await startRedis();
  jwks = await startJwks();
  const prefix = `t${randomUUID().slice(0, 8)}`;
  vmm = fakeVmm(redis.url, prefix);
  agent = startAgent(agentTestEnv({ redis, jwks, vmId: VM_ID, prefix }, {
    UVE_VM_CAPACITY: '4',
    UVE_WASM_CALL_BUDGET_MS: String(BUDGET_MS),
  }));
  registered = (await vmm.events.waitFor(isEvent('vm.register'), 'vm.register', 20_000)) as VmRegistered;
  await deploy('ua-paint', 'paint');
  await deploy('ua-hang', 'hang');
});

afterAll(async () => {
  for (const c of clients) c.close();
  const r = await agent?.stop('SIGTERM');
  if (r && r.code !== 0) process.stderr.write(agent.output());
  await vmm?.close();
  await jwks?.stop();
  await redis?.stop();
});

it('a guest in an endless loop ends only its own session, with the reason; the other keeps streaming what its player does', async () => {
  const paint = await play('ua-paint');
  const hang = await play('ua-hang');
  expect(pixel(paint.first.decoded!, 100, 100).slice(0, 3).every((c) => c > 230)).toBe(true); // white canvas
  expect(pixel(hang.first.decoded!, 10, 10)[1]).toBeLessThan(160); // grey

  // the hang UA follows input until it spins
  let hangSeq = 0;
  const green = frameWith(hang.client, () => hangSeq, 'the hang UA to turn green');
  hangSeq = hang.client.sendInput({ kind: 'pointer', type: 'down', x: 10, y: 10, button: 0 });
  expect(pixel((await green).decoded!, 10, 10)[1]).toBeGreaterThan(180);

  const from = vmm.events.mark;
  const ended = hang.client.next('ended');
  hang.client.sendInput({ kind: 'key', type: 'down', code: 'KeyH', key: 'h' });
  const failed = await vmm.events.waitFor(isEvent('session.failed', hang.cmd.sessionId), 'session.failed of the hung session', 15_000, from);
  expect(failed).toMatchObject({ userId: hang.cmd.userId, uaId: 'ua-hang', error: `the application did not respond within ${BUDGET_MS} ms` });
  expect((await ended).reason).toBe(`the application did not respond within ${BUDGET_MS} ms`);

  // the other session still plays: each pointer down paints, and the frame that includes it shows it
  for (const [x, y] of [[60, 60], [200, 120]]) {
    let seq = 0;
    const shown = frameWith(paint.client, () => seq, `paint frame with input at ${x},${y}`);
    seq = paint.client.sendInput({ kind: 'pointer', type: 'down', x, y, button: 0 });
    paint.client.sendInput({ kind: 'pointer', type: 'up', x, y, button: 0 });
    const [r, g, b] = pixel((await shown).decoded!, x, y);
    expect([r > 200, g < 60, b < 60]).toEqual([true, true, true]);
  }
  // and the VM goes on: heartbeats after the failure, counting one session
  const hb = await vmm.events.waitFor((e) => e.type === 'vm.heartbeat' && vmm.events.items.indexOf(e) > vmm.events.items.indexOf(failed), 'a heartbeat after the failure', 10_000);
  expect(hb).toMatchObject({ activeSessions: 1 });
  expect(vmm.events.items.some(isEvent('session.failed', paint.cmd.sessionId))).toBe(false);
});
