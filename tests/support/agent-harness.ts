// Everything a test needs to run the VM agent on its own, without the gateway: a private
// redis-server, a JWKS server with a test signing key, the built agent as a child process, and a
// fake VMM end of the message bus (UVE-2 out, UVE-5 in).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type KeyLike } from 'jose';
import {
  JWKS_PATH,
  SESSION_TOKEN_AUDIENCE,
  SESSION_TOKEN_ISSUER,
  type PrepareSessionCommand,
  type SessionTokenClaims,
  type VmCommand,
  type VmEventMessage,
} from '@uve/protocol';
import { createMessageBus, uve, type Consumer, type MessageBus } from '@uve/queue';

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const AGENT_MAIN = join(REPO_ROOT, 'apps', 'vm-agent', 'dist', 'main.js');

// the same real services as the gateway suites
import { Collector, killTree, testRunEnv } from './services';
export { Collector, freePort, startRedis, type TestRedis as RedisHandle } from './services';


export interface JwksHandle {
  /** base URL to give the agent as UVE_GATEWAY_URL */
  url: string;
  kid: string;
  /** a token for `claims`, signed with the served key (or `key`, e.g. a foreign one) */
  /** a fresh token (new `jti`) each call, unless `jti` is given (null: none) */
  mint(claims: SessionTokenClaims, opts?: { key?: KeyLike; kid?: string; audience?: string; expiresIn?: string; jti?: string | null }): Promise<string>;
  /** a key the agent does not know */
  foreignKey: KeyLike;
  stop(): Promise<void>;
}

/** An HTTP server that serves a JWKS for an ES256 key generated here, like the gateway does. */
export async function startJwks(): Promise<JwksHandle> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const foreign = await generateKeyPair('ES256');
  const kid = `test-${randomUUID().slice(0, 8)}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const server: Server = createHttpServer((req, res) => {
    if (req.url === JWKS_PATH) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    // the agent watches its VMM's health (UVE_VMM_LOST_EXIT_MS): this server stands for the VMM
    else if (req.url === '/healthz') res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    kid,
    foreignKey: foreign.privateKey,
    mint: (claims, opts = {}) =>
      new SignJWT({ sid: claims.sid, vm: claims.vm, ua: claims.ua, role: claims.role, ...(opts.jti === null ? {} : { jti: opts.jti ?? randomUUID() }) })
        .setProtectedHeader({ alg: 'ES256', kid: opts.kid ?? kid })
        .setSubject(claims.sub)
        .setAudience(opts.audience ?? SESSION_TOKEN_AUDIENCE)
        .setIssuer(SESSION_TOKEN_ISSUER)
        .setIssuedAt()
        .setExpirationTime(opts.expiresIn ?? '5m')
        .sign(opts.key ?? privateKey),
    // gone like a VMM that stops: its open connections too (close() alone keeps serving a
    // keep-alive connection that was busy at that moment, and the agent's health checks, one every
    // few hundred ms, kept it busy for ever on a loaded machine)
    stop: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}

export interface AgentHandle {
  proc: ChildProcess;
  vmId: string;
  /** stderr and stdout so far (for failure messages) */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs the built agent (`node apps/vm-agent/dist/main.js`). */
/** The environment of an agent under test: its Redis, the stand-in VMM, its id and queue prefix. */
export function agentTestEnv(a: { redis: { url: string }; jwks: { url: string }; vmId: string; prefix: string }, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: a.redis.url,
    UVE_GATEWAY_URL: a.jwks.url,
    UVE_VM_ID: a.vmId,
    UVE_VM_SECRET: 'secret',
    UVE_QUEUE_PREFIX: a.prefix,
    UVE_LOG_LEVEL: process.env.UVE_TEST_AGENT_LOG ?? 'warn',
    ...extra,
  };
}

export function startAgent(env: Record<string, string>): AgentHandle {
  // a data folder of the test's own, removed when the agent exits: one a test kills (-9) is not
  // left in the temp dir, as the gateway's PROCESS provider does for its agents
  const dataDir = env.UVE_VM_DATA_DIR ? null : mkdtempSync(join(tmpdir(), 'uve-vm-test-'));
  const proc = spawn(process.execPath, [AGENT_MAIN], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...testRunEnv(), ...(dataDir ? { UVE_VM_DATA_DIR: dataDir } : {}), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (dataDir) proc.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  proc.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  return {
    proc,
    vmId: env.UVE_VM_ID,
    output: () => out,
    exited,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      // with its Xvfb and encoders, which a SIGKILLed agent would leave behind
      const t = setTimeout(() => proc.pid && killTree(proc.pid), 15_000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

export interface FakeVmm {
  bus: MessageBus;
  events: Collector<VmEventMessage>;
  send(vmId: string, c: VmCommand): Promise<void>;
  close(): Promise<void>;
}

/** The VMM's end of the bus: records every UVE-5 event, sends UVE-2 commands. */
export function fakeVmm(redisUrl: string, prefix: string): FakeVmm {
  const bus = createMessageBus({ redisUrl, prefix });
  const events = new Collector<VmEventMessage>();
  const consumer: Consumer = uve.consumeVmEvents(bus, async (e) => events.push(e));
  return {
    bus,
    events,
    send: (vmId, c) => uve.sendToVm(bus, vmId, c),
    async close() {
      await consumer.close();
      await bus.close();
    },
  };
}

/** A predicate for UVE-5 events of one type (and one session), narrowing the type. */
export const isEvent =
  <T extends VmEventMessage['type']>(type: T, sessionId?: string) =>
  (e: VmEventMessage): e is Extract<VmEventMessage, { type: T }> =>
    e.type === type && (sessionId === undefined || (e as { sessionId?: string }).sessionId === sessionId);

export function prepareCommand(over: Partial<PrepareSessionCommand> & Pick<PrepareSessionCommand, 'uaId'>): PrepareSessionCommand {
  return {
    type: 'session.prepare',
    sessionId: `s-${randomUUID()}`,
    userId: 'u-alice',
    uaVersion: '1.0.0',
    reconnectionMethod: 'NORMAL',
    terminal: { screenWidth: 640, screenHeight: 360, codecs: ['MJPEG', 'H264'], localResources: [] },
    stream: { codec: 'MJPEG', width: 640, height: 360, maxFps: 30, bitrateKbps: 2000 },
    ...over,
  };
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
  await done;
  clearTimeout(t);
}

/** RGBA at (x, y) of a decoded picture */
export function pixel(p: { width: number; data: Uint8Array }, x: number, y: number): [number, number, number, number] {
  const i = (y * p.width + x) * 4;
  return [p.data[i], p.data[i + 1], p.data[i + 2], p.data[i + 3]];
}
