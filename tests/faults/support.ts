// Fault tests run the real gateway the way an operator does: its own process group (like a
// terminal's foreground job), its own data folder, real processes killed. Processes are known by
// pid AND start time (/proc), so "nothing left" means none of the very processes seen before.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import IORedis from 'ioredis';
import { ADMIN, GATEWAY_MAIN, ROOT, gatewayTestEnv, login, ok } from '../support/gateway';
import { until } from '../support/services';

export interface ProcessIdentity {
  pid: number;
  startTime: string;
}
const proc = require(path.join(ROOT, 'apps/gateway/dist/infra/proc.js')) as {
  identify(pid: number): ProcessIdentity | null;
  isRunning(id: ProcessIdentity): boolean;
  descendants(pid: number): ProcessIdentity[];
  commandLine(pid: number): string;
};
export const { identify, isRunning, descendants, commandLine } = proc;

/** Every process of a process group now (from /proc). */
export function groupMembers(pgid: number): ProcessIdentity[] {
  const out: ProcessIdentity[] = [];
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid && f[0] !== 'Z') out.push({ pid, startTime: f[19]! });
  }
  return out;
}

/** The gateway, its descendants and its group: what must all be gone after it stopped. */
export function platformProcesses(gatewayPid: number): ProcessIdentity[] {
  const all = new Map<number, ProcessIdentity>();
  for (const p of [identify(gatewayPid), ...descendants(gatewayPid), ...groupMembers(gatewayPid)]) if (p) all.set(p.pid, p);
  return [...all.values()];
}

export const running = (ids: ProcessIdentity[]) => ids.filter((p) => isRunning(p));

/** The parent's pid (0 when gone). */
export function parentPid(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/**
 * The processes whose command line has `what`, without the forks of such a process (a
 * redis-server forks for its background saves, and the child keeps the parent's command line for
 * a moment): the servers themselves.
 */
export function serversOf(ids: ProcessIdentity[], what: string): ProcessIdentity[] {
  const is = (pid: number) => commandLine(pid).includes(what);
  return ids.filter((p) => is(p.pid) && !is(parentPid(p.pid)));
}
/** An environment variable of a running process (null when it is gone or has none). */
export function envOf(pid: number, name: string): string | null {
  try {
    const entry = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((e) => e.startsWith(`${name}=`));
    return entry ? entry.slice(name.length + 1) : null;
  } catch {
    return null;
  }
}

export const describe_ = (ids: ProcessIdentity[]) => ids.map((p) => `${p.pid} ${commandLine(p.pid).slice(0, 120)}`).join('\n');

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `uve-fault-${prefix}-`));
}

export interface GroupGateway {
  pid: number;
  child: ChildProcess;
  url: string;
  graphqlUrl: string;
  wsUrl: string;
  output(): string;
  /** resolves with how it ended (bounded) */
  exited(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** last resort for the test's own cleanup: SIGKILL to the gateway's whole tree and group */
  kill(): void;
}

/** `node apps/gateway/dist/main.js` as the leader of its own process group, on embedded defaults unless `env` says otherwise. */
export async function startGroupGateway(env: Record<string, string>): Promise<GroupGateway> {
  const child = spawn(process.execPath, [GATEWAY_MAIN], {
    cwd: ROOT,
    detached: true,
    env: gatewayTestEnv({ UVE_DOCKER: 'off', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const kill = () => {
    const all = child.pid ? platformProcesses(child.pid) : [];
    for (const p of all) if (isRunning(p)) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  };
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`gateway did not start in 90 s:\n${out}`));
    }, 90_000);
    const onData = () => {
      const m = /listening on (http:\/\/\S+)\/graphql/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    void exit.then((e) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${e.code ?? e.signal}) while starting:\n${out}`));
    });
  });
  return {
    pid: child.pid!,
    child,
    url,
    graphqlUrl: `${url}/graphql`,
    wsUrl: `${url.replace(/^http/, 'ws')}/graphql`,
    output: () => out,
    exited: (ms) =>
      Promise.race([exit, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`gateway did not exit in ${ms} ms:\n${out.slice(-3000)}`)), ms).unref())]),
    kill,
  };
}

/** An admin token and, once the pool has one, the id of an IDLE VM of the platform. */
export async function adminWithVm(g: { graphqlUrl: string }, platform = 'WASM', ms = 60_000): Promise<{ token: string; vmId: string }> {
  const { token } = await login(g, ADMIN.username, ADMIN.password);
  let seen: { id: string; status: string; platform: string }[] = [];
  const vm = await until(`an IDLE ${platform} VM`, ms, async () => {
    const d = await ok<{ vms: { id: string; status: string; platform: string }[] }>(g, `{ vms { id status platform statusReason startReason createdAt } }`, {}, token);
    seen = d.vms;
    return d.vms.find((v) => v.platform === platform && v.status === 'IDLE');
  }, 250).catch((e: Error) => {
    // what the pool was doing (a VM it waits for, one that failed) says why none was IDLE
    throw new Error(`${e.message}; the VMs were: ${JSON.stringify(seen)}`);
  });
  return { token, vmId: vm.id };
}

export const REQUEST_APPLICATION = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id state vm { id } } }`;

/** A session of the sample paint UA for the caller (the gateway must run with UVE_SAMPLE_UAS=true). */
export async function requestPaint(g: { graphqlUrl: string }, token: string): Promise<{ id: string; state: string; vmId: string }> {
  const uas = await ok<{ uas: { id: string; name: string }[] }>(g, `{ uas { id name } }`, {}, token);
  const paint = uas.uas.find((u) => u.name.toLowerCase().includes('paint'));
  if (!paint) throw new Error(`no paint sample UA among ${JSON.stringify(uas.uas)}`);
  const d = await ok<{ requestApplication: { id: string; state: string; vm: { id: string } } }>(g, REQUEST_APPLICATION, {
    i: { uaId: paint.id, terminal: { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] } },
  }, token);
  return { id: d.requestApplication.id, state: d.requestApplication.state, vmId: d.requestApplication.vm.id };
}

export interface TestPostgres {
  url: string;
  port: number;
  /** fast shutdown; resolves once the server is gone */
  stop(): Promise<void>;
}

/** A PostgreSQL cluster of the test's own in `dir` (on `port` to start it again where it was). */
export async function startTestPostgres(dir: string, port?: number): Promise<TestPostgres> {
  const child = spawn(process.execPath, [path.join(__dirname, 'pg-server.js'), dir, ...(port ? [String(port)] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const started = await new Promise<{ url: string; port: number }>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`test PostgreSQL exited with ${code}:\n${out}`)));
  });
  return {
    ...started,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

// ---- Redis made unreachable (a test's own Redis)

/** The pid of the redis-server behind `url` (it says so itself). */
export async function redisPid(url: string): Promise<number> {
  const r = new IORedis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await r.connect();
    const info = await r.info('server');
    const m = /process_id:(\d+)/.exec(info);
    if (!m) throw new Error(`redis at ${url} did not say its process id`);
    return Number(m[1]);
  } finally {
    r.disconnect();
  }
}

/**
 * Makes Redis unreachable the nasty way: connections stay open and nothing answers (a network
 * partition, a frozen host). Returns the function that brings it back.
 */
export async function freezeRedis(url: string): Promise<() => void> {
  const pid = await redisPid(url);
  process.kill(pid, 'SIGSTOP');
  let thawed = false;
  return () => {
    if (thawed) return;
    thawed = true;
    process.kill(pid, 'SIGCONT');
  };
}
