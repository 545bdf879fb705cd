// Faults around one real VM agent process (real Redis bus, UVE-3 over WebSocket), the test playing
// the VMM over the bus: UVE-2 delivery (acks, repeats, expiry), the reconnect window that frees the
// slots of vanished players, /metrics, a bounded stop with Redis already gone, and an agent that
// stops by itself when its VMM is lost (health check gone, parent process gone).
// Build first: npm run build -w @uve/vm-agent.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { decodeFrame, STREAM_PATH, STREAM_PROTOCOL_VERSION, type PrepareSessionCommand, type VmCommand, type VmEventMessage, type VmRegistered } from '@uve/protocol';
import {
  agentTestEnv,
  AGENT_MAIN,
  fakeVmm,
  isEvent,
  prepareCommand,
  startAgent,
  startJwks,
  startRedis,
  type AgentHandle,
  type FakeVmm,
  type JwksHandle,
  type RedisHandle,
} from '../support/agent-harness';
import { until } from '../support/services';

jest.setTimeout(60_000);

const sessionReports = (vmm: FakeVmm, sessionId: string) =>
  vmm.events.items.filter((e) => (e as { sessionId?: string }).sessionId === sessionId) as Array<VmEventMessage & { seq: number }>;

interface Running {
  vmId: string;
  agent: AgentHandle;
  vmm: FakeVmm;
  registered: VmRegistered;
  redis: RedisHandle;
  jwks: JwksHandle;
}

async function run(env: Record<string, string> = {}, redisIn?: RedisHandle): Promise<Running> {
  const redis = redisIn ?? (await startRedis());
  const jwks = await startJwks();
  const prefix = `t${randomUUID().slice(0, 8)}`;
  const vmId = `vm-life-${randomUUID().slice(0, 8)}`;
  const vmm = fakeVmm(redis.url, prefix);
  const agent = startAgent(agentTestEnv({ redis, jwks, vmId, prefix }, env));
  const registered = (await vmm.events.waitFor(isEvent('vm.register'), 'vm.register', 20_000)) as VmRegistered;
  return { vmId, agent, vmm, registered, redis, jwks };
}

async function shutdown(r: Running | undefined, ownRedis = true): Promise<void> {
  if (!r) return;
  await r.agent.stop('SIGTERM');
  await r.vmm.close().catch(() => undefined);
  await r.jwks.stop();
  if (ownRedis) await r.redis.stop();
}

async function deployPaint(r: Running, commandId?: string): Promise<void> {
  const from = r.vmm.events.mark;
  await r.vmm.send(r.vmId, { type: 'ua.deploy', uaId: 'ua-paint', version: '1.0.0', platform: 'WASM', packageUrl: 'builtin:paint', sha256: '', commandId });
  await r.vmm.events.waitFor((e) => e.type === 'deployment.changed' && e.uaId === 'ua-paint' && e.status === 'INSTALLED', 'paint installed', 15_000, from);
}

/** A PLAYER over a raw socket, so the test can drop it without a goodbye. */
async function rawPlayer(r: Running, cmd: PrepareSessionCommand): Promise<WebSocket> {
  const token = await r.jwks.mint({ sub: cmd.userId, sid: cmd.sessionId, vm: r.vmId, ua: cmd.uaId, role: 'PLAYER' });
  const ws = new WebSocket(r.registered.endpoint + STREAM_PATH);
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token })));
    ws.on('message', (d, bin) => !bin && d.toString().includes('"welcome"') && resolve());
    ws.once('close', (code, reason) => reject(new Error(`closed ${code} ${reason.toString()} before welcome`)));
  });
  return ws;
}

const health = async (r: Running): Promise<{ sessions: number }> => (await fetch(r.registered.endpoint.replace('ws:', 'http:') + '/healthz')).json() as Promise<{ sessions: number }>;

describe('UVE-2 delivery, the reconnect window and /metrics', () => {
  let r: Running;
  beforeAll(async () => {
    r = await run({ UVE_VM_CAPACITY: '2' });
    await deployPaint(r, 'cmd-deploy-1');
  });
  afterAll(() => shutdown(r));

  it('acknowledges each command once: done, a repeat not acted on, an expired one dropped, a failing one failed', async () => {
    const ack = (id: string) => r.vmm.events.waitFor((e) => e.type === 'command.ack' && e.commandId === id, `ack of ${id}`, 10_000);
    expect(await ack('cmd-deploy-1')).toMatchObject({ outcome: 'done', vmId: r.vmId });

    const from = r.vmm.events.mark;
    await r.vmm.send(r.vmId, { type: 'ua.deploy', uaId: 'ua-paint', version: '1.0.0', platform: 'WASM', packageUrl: 'builtin:paint', sha256: '', commandId: 'cmd-deploy-1' });
    await r.vmm.send(r.vmId, { type: 'ua.deploy', uaId: 'ua-game', version: '1.0.0', platform: 'WASM', packageUrl: 'builtin:game', sha256: '', commandId: 'cmd-stale', expiresAt: new Date(Date.now() - 1000).toISOString() });
    await r.vmm.send(r.vmId, { type: 'vm.reboot', commandId: 'cmd-unknown' } as unknown as VmCommand);
    const acks = await Promise.all(['cmd-stale', 'cmd-unknown'].map(ack));
    expect(acks.map((a) => (a as { outcome?: string }).outcome)).toEqual(['expired', 'failed']);
    expect(acks[1]).toMatchObject({ error: 'unknown command type "vm.reboot"' });
    // commands are handled in order: by now the repeat was handled too, and not acted on
    const since = r.vmm.events.items.slice(from);
    expect(since.filter((e) => e.type === 'command.ack' && e.commandId === 'cmd-deploy-1').map((e) => (e as { outcome: string }).outcome)).toEqual(['done']);
    expect(since.filter((e) => e.type === 'deployment.changed')).toEqual([]);
  });

  it('dropped players keep their slots for the window, then the VM ends their sessions and the slots are free again', async () => {
    const window = 1500;
    const cmds = [0, 1].map(() => prepareCommand({ uaId: 'ua-paint', reconnectWindowMs: window }));
    const players: WebSocket[] = [];
    for (const c of cmds) {
      await r.vmm.send(r.vmId, c);
      players.push(await rawPlayer(r, c));
    }
    for (const p of players) p.terminate(); // no goodbye
    for (const c of cmds) await r.vmm.events.waitFor(isEvent('session.disconnected', c.sessionId), 'session.disconnected');
    expect(r.vmm.events.items.find(isEvent('session.disconnected', cmds[0].sessionId))).toMatchObject({ unexpected: true, userId: cmds[0].userId, uaId: 'ua-paint' });

    // both slots are still held: a third session is refused
    const third = prepareCommand({ uaId: 'ua-paint' });
    await r.vmm.send(r.vmId, third);
    const refused = await r.vmm.events.waitFor(isEvent('session.failed', third.sessionId), 'refusal of the third session');
    expect(refused).toMatchObject({ seq: 1, error: 'VM is at capacity (2 sessions)' });

    for (const c of cmds) {
      const ended = await r.vmm.events.waitFor(isEvent('session.ended', c.sessionId), 'session.ended after the window', 10_000);
      expect(ended).toMatchObject({ reason: 'reconnect window expired' });
      // every report of the session in order, numbered from 1 without a gap
      const seqs = sessionReports(r.vmm, c.sessionId).map((e) => e.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      expect(sessionReports(r.vmm, c.sessionId).map((e) => e.type)).toEqual(['session.connected', 'session.disconnected', 'session.ended']);
    }
    await until('the slots to be free', 5_000, async () => (await health(r)).sessions === 0);
    const fourth = prepareCommand({ uaId: 'ua-paint' });
    await r.vmm.send(r.vmId, fourth);
    const p = await rawPlayer(r, fourth);
    expect(await health(r)).toMatchObject({ sessions: 1 });
    p.close();
    await r.vmm.send(r.vmId, { type: 'session.terminate', sessionId: fourth.sessionId, reason: 'test done', saveVmData: false });
    await until('the slot to be free', 5_000, async () => (await health(r)).sessions === 0);
  });

  it('a PLAYER back within the window keeps the session; a terminate frees the slot at once', async () => {
    const cmd = prepareCommand({ uaId: 'ua-paint', reconnectWindowMs: 1500 });
    await r.vmm.send(r.vmId, cmd);
    (await rawPlayer(r, cmd)).terminate();
    const gone = await r.vmm.events.waitFor(isEvent('session.disconnected', cmd.sessionId), 'session.disconnected');
    const back = await rawPlayer(r, cmd);
    // heartbeats (every 2 s) tell the time on the VM: wait for one well after the window closed
    const after = Date.parse(gone.at) + 1500 + 2000;
    const hb = await r.vmm.events.waitFor((e) => e.type === 'vm.heartbeat' && Date.parse(e.at) > after, 'a heartbeat after the window', 15_000);
    expect(hb).toMatchObject({ activeSessions: 1 });
    expect(r.vmm.events.items.some(isEvent('session.ended', cmd.sessionId))).toBe(false);

    // capacity 2: one held, one more fits; the terminate of the first lets a third in right behind it
    const second = prepareCommand({ uaId: 'ua-paint' });
    await r.vmm.send(r.vmId, second);
    await r.vmm.send(r.vmId, { type: 'session.terminate', sessionId: cmd.sessionId, reason: 'user ended it', saveVmData: true, commandId: 'cmd-term' });
    const third = prepareCommand({ uaId: 'ua-paint' });
    await r.vmm.send(r.vmId, third);
    const closed = new Promise<number>((resolve) => back.once('close', (code) => resolve(code)));
    const p3 = await rawPlayer(r, third);
    expect(await closed).toBe(4410);
    expect(r.vmm.events.items.some(isEvent('session.failed', third.sessionId))).toBe(false);
    await r.vmm.events.waitFor((e) => e.type === 'command.ack' && e.commandId === 'cmd-term' && e.outcome === 'done', 'ack of the terminate');
    p3.close();
    for (const s of [second, third]) await r.vmm.send(r.vmId, { type: 'session.terminate', sessionId: s.sessionId, reason: 'test done', saveVmData: false });
    await until('the slots to be free', 5_000, async () => (await health(r)).sessions === 0);
  });

  it('serves the documented /metrics series, with the figures of a played session', async () => {
    const cmd = prepareCommand({ uaId: 'ua-paint' });
    await r.vmm.send(r.vmId, cmd);
    const ws = await rawPlayer(r, cmd);
    // input until a frame carries it back (inputSeq in the binary header), twice
    for (let seq = 1; seq <= 2; seq++) {
      const got = new Promise<void>((resolve) => {
        const on = (d: Buffer, bin: boolean): void => {
          if (bin && decodeFrame(new Uint8Array(d)).header.inputSeq >= seq) {
            ws.off('message', on);
            resolve();
          }
        };
        ws.on('message', on);
      });
      ws.send(JSON.stringify({ t: 'input', seq, ev: { kind: 'pointer', type: 'down', x: 40 + seq * 20, y: 40, button: 0 } }));
      await got;
    }
    const res = await fetch(r.registered.endpoint.replace('ws:', 'http:') + '/metrics');
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    const doc = readFileSync(require.resolve('../../docs/vm-agent.md'), 'utf8');
    const documented = [...doc.matchAll(/^\| `(uve_vm_[a-z_]+)[{`]/gm)].map((m) => m[1]);
    expect(documented.length).toBeGreaterThanOrEqual(8);
    for (const name of documented) expect(text).toContain(`# TYPE ${name} `);
    const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    expect(value('uve_vm_sessions')).toBe(1);
    expect(value('uve_vm_capacity')).toBe(2);
    expect(value('uve_vm_connections{role="PLAYER"}')).toBe(1);
    expect(value(`uve_vm_session_stream_fps{session="${cmd.sessionId}"}`)).toBeGreaterThan(0);
    expect(value('uve_vm_input_to_frame_seconds_count')).toBeGreaterThanOrEqual(2);
    expect(value('uve_vm_frame_encode_seconds_count')).toBeGreaterThanOrEqual(2);
    expect(value('uve_vm_reports_pending')).toBeGreaterThanOrEqual(0);
    ws.close();
    await r.vmm.send(r.vmId, { type: 'session.terminate', sessionId: cmd.sessionId, reason: 'test done', saveVmData: false });
  });
});

/** pids of the direct children of `pid` */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('stopping', () => {
  it('SIGTERM with Redis already gone: the agent exits within its bound and leaves no child process', async () => {
    const r = await run(); // the default bound, 10 s
    try {
      await deployPaint(r);
      const cmd = prepareCommand({ uaId: 'ua-paint', stream: { codec: 'H264', width: 320, height: 240, maxFps: 30, bitrateKbps: 1000 } });
      await r.vmm.send(r.vmId, cmd);
      const ws = await rawPlayer(r, cmd); // the session runs: its ffmpeg encoder is a child of the agent
      const children = await until('the encoder process', 10_000, async () => {
        const c = childrenOf(r.agent.proc.pid!);
        return c.length ? c : null;
      });
      ws.terminate();
      await r.vmm.close();
      await r.redis.stop();
      const t0 = Date.now();
      r.agent.proc.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([r.agent.exited, new Promise<null>((res) => (timer = setTimeout(() => res(null), 14_000)))]);
      clearTimeout(timer);
      expect(exit).not.toBeNull(); // not left to the harness's SIGKILL
      // the stop's steps are bounded (UVE_STOP_TIMEOUT_MS): it finishes on its own, status 0
      expect(exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(14_000);
      await until('the children to be gone', 5_000, async () => children.every((p) => !alive(p)));
    } finally {
      await r.agent.stop('SIGKILL');
      await r.jwks.stop();
    }
  });

  it('stops by itself when its VMM does not answer its health check for UVE_VMM_LOST_EXIT_MS, its temporary data folder removed', async () => {
    // a folder given as this run's only (as the PROCESS provider gives): the agent removes it as it
    // goes, since the gateway that would have is gone
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'uve-vm-life-'));
    const r = await run({ UVE_VMM_LOST_EXIT_MS: '1500', UVE_VM_DATA_DIR: dataDir, UVE_VM_DATA_TEMPORARY: 'true' });
    try {
      expect(existsSync(dataDir)).toBe(true);
      await r.jwks.stop(); // the "VMM" is gone; Redis stays
      const stopping = await r.vmm.events.waitFor(isEvent('vm.stopping'), 'vm.stopping', 15_000);
      expect(stopping).toMatchObject({ reason: expect.stringMatching(/^VMM lost: the VMM did not answer its health check for \d+ s$/) });
      expect(await r.agent.exited).toEqual({ code: 0, signal: null });
      expect(existsSync(dataDir)).toBe(false);
    } finally {
      await r.agent.stop('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
      await r.vmm.close();
      await r.redis.stop();
    }
  });

  it('a PROCESS VM started by a gateway that is gone before it registers exits 1 without registering', async () => {
    const redis = await startRedis();
    const jwks = await startJwks();
    const prefix = `t${randomUUID().slice(0, 8)}`;
    const vmm = fakeVmm(redis.url, prefix);
    // the gateway that started it: a process already gone (its pid is what UVE_PARENT_PID names)
    const gone = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    const gonePid = gone.pid!;
    await new Promise((r) => gone.once('exit', r));
    const agent = spawn(process.execPath, [AGENT_MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: redis.url,
        UVE_GATEWAY_URL: jwks.url,
        UVE_VM_ID: `vm-orphan-${randomUUID().slice(0, 8)}`,
        UVE_VM_SECRET: 'secret',
        UVE_QUEUE_PREFIX: prefix,
        UVE_VM_PROVIDER: 'PROCESS',
        UVE_PARENT_PID: String(gonePid),
        UVE_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    agent.stderr!.on('data', (d: Buffer) => (stderr += d));
    try {
      const code = await new Promise<number | null>((resolve) => agent.once('exit', (c) => resolve(c)));
      expect(code).toBe(1);
      expect(stderr).toMatch(new RegExp(`the gateway that started this VM \\(pid ${gonePid}\\) is gone: not registering`));
      // its reports went through the same Redis: none of them is a registration
      expect(vmm.events.items.filter(isEvent('vm.register'))).toEqual([]);
    } finally {
      if (agent.exitCode === null) agent.kill('SIGKILL');
      await vmm.close();
      await jwks.stop();
      await redis.stop();
    }
  });

  it('a PROCESS VM whose parent was killed -9 stops by itself', async () => {
    const redis = await startRedis();
    const jwks = await startJwks();
    const prefix = `t${randomUUID().slice(0, 8)}`;
    const vmId = `vm-orphan-${randomUUID().slice(0, 8)}`;
    const vmm = fakeVmm(redis.url, prefix);
    // a stand-in for the gateway: starts the agent like the PROCESS provider (stderr piped to it)
    const parentScript = `
      const { spawn } = require('node:child_process');
      const a = spawn(process.execPath, [${JSON.stringify(AGENT_MAIN)}], { stdio: ['ignore', 'ignore', 'pipe'] });
      a.stderr.on('data', () => undefined);
      process.stdout.write(String(a.pid) + '\\n');
      setInterval(() => undefined, 1000);`;
    const parent = spawn(process.execPath, ['-e', parentScript], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: redis.url,
        UVE_GATEWAY_URL: jwks.url,
        UVE_VM_ID: vmId,
        UVE_VM_SECRET: 'secret',
        UVE_QUEUE_PREFIX: prefix,
        UVE_VM_PROVIDER: 'PROCESS',
        UVE_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let agentPid = 0;
    try {
      agentPid = await new Promise<number>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      await vmm.events.waitFor(isEvent('vm.register'), 'vm.register', 20_000);
      parent.kill('SIGKILL');
      const stopping = await vmm.events.waitFor(isEvent('vm.stopping'), 'vm.stopping', 15_000);
      expect(stopping).toMatchObject({ reason: 'VMM lost: the process that started this VM is gone' });
      await until('the orphaned agent to exit', 10_000, async () => !alive(agentPid));
    } finally {
      parent.kill('SIGKILL');
      if (agentPid && alive(agentPid)) process.kill(agentPid, 'SIGKILL');
      await vmm.close();
      await jwks.stop();
      await redis.stop();
    }
  });
});
