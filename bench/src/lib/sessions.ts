// What the benches share beyond lib/report: a UA session requested through the gateway (waiting out
// a pool that is still starting its first VM of the platform), and the CPU a process (tree) used.
import fs from 'node:fs';
import path from 'node:path';
import type { GatewayClient, SessionInfo } from '@uve/client';
import type { VideoCodec } from '@uve/protocol';
import { ROOT } from './services';

export interface SessionRequest {
  ua: string;
  codec: VideoCodec;
  width: number;
  height: number;
  fps: number;
  /**
   * a new session even when the user has a DISCONNECTED one of this UA: that one would be resumed
   * with the stream it was negotiated with (its codec and fps, not these)
   */
  fresh?: boolean;
}

/** requestApplication for the UA named `r.ua`; retried for up to 60 s while no VM of its platform is up yet. */
export async function requestSession(gw: GatewayClient, r: SessionRequest): Promise<SessionInfo & { connection: NonNullable<SessionInfo['connection']> }> {
  const uaInfo = (await gw.uas()).find((u) => u.name === r.ua);
  if (!uaInfo) throw new Error(`no UA named ${r.ua}`);
  const request = () => gw.requestApplication({ uaId: uaInfo.id, terminal: { screenWidth: r.width, screenHeight: r.height, codecs: [r.codec], localResources: [], maxFrameRate: r.fps }, ...(r.fresh ? { fresh: true } : {}) });
  const deadline = Date.now() + 60_000;
  let session = await request().catch((e: Error) => e);
  while (session instanceof Error && /UNAVAILABLE|not deployed|no VM/i.test(session.message) && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 200));
    session = await request().catch((e: Error) => e);
  }
  if (session instanceof Error) throw session;
  if (!session.connection) throw new Error(`session ${session.id} has no connection (state ${session.state})`);
  return session as SessionInfo & { connection: NonNullable<SessionInfo['connection']> };
}

const TICKS_PER_S = 100; // USER_HZ on Linux

interface ProcStat { pid: number; ppid: number; ticks: number }

/** utime + stime (ticks) of the `roots` and (withChildren) every process below them, by pid. */
function treeTicks(roots: ReadonlySet<number>, withChildren: boolean): Map<number, number> {
  // the VM agent's one /proc stat reader (the agent is built before any bench runs)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { allProcStats } = require(path.join(ROOT, 'apps/vm-agent/dist/common/procfs.js')) as { allProcStats: () => ProcStat[] };
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const s of allProcStats()) {
    parent.set(s.pid, s.ppid);
    ticks.set(s.pid, s.ticks);
  }
  const inTree = (pid: number): boolean => {
    if (!withChildren) return roots.has(pid);
    for (let p: number | undefined = pid, n = 0; p && n < 64; p = parent.get(p), n++) if (roots.has(p)) return true;
    return false;
  };
  return new Map([...ticks].filter(([pid]) => inTree(pid)));
}

/**
 * CPU of a process, or of several together (withChildren: and every process below them) over a
 * window: call once at the start, the result at the end, in cores (1.0 = one core busy) and CPU
 * seconds. Processes that started or ended inside the window count for the part seen.
 */
export function cpuOfTree(root: number | readonly number[], withChildren = true): () => { cores: number; seconds: number } {
  const roots = new Set(typeof root === 'number' ? [root] : root);
  const start = treeTicks(roots, withChildren);
  const t0 = performance.now();
  return () => {
    let used = 0;
    for (const [pid, t] of treeTicks(roots, withChildren)) used += t - (start.get(pid) ?? 0);
    const seconds = used / TICKS_PER_S;
    return { cores: seconds / ((performance.now() - t0) / 1000), seconds };
  };
}

/** Busy share of the whole machine (all cores) over a window, from /proc/stat: call at the start, the result at the end. */
export function machineBusy(): () => number {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  return () => {
    const b = read();
    return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
  };
}

interface TreeProc { pid: number; ppid: number; comm: string; ticks: number; reapedTicks: number }

/** Every process below (and with) `root`: its comm, own ticks and its ended children's (cutime + cstime). */
function treeProcs(root: number): TreeProc[] {
  const all: TreeProc[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; // ended while read
    }
    const open = text.indexOf('(');
    const close = text.lastIndexOf(')');
    const f = text.slice(close + 2).split(' ');
    const at = (n: number): number => Number(f[n - 3]);
    all.push({ pid: Number(entry), ppid: at(4), comm: text.slice(open + 1, close), ticks: at(14) + at(15), reapedTicks: at(16) + at(17) });
  }
  const parent = new Map(all.map((p) => [p.pid, p.ppid]));
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid, n = 0; p && n < 64; p = parent.get(p), n++) if (p === root) return true;
    return false;
  };
  return all.filter((p) => inTree(p.pid));
}

/**
 * CPU seconds of every process below `root` over a window, summed by `label(pid, comm)`; processes
 * that ended inside the window (an encoder per session) count through their parent's reaped-children
 * ticks, under "<parent's label>: ended children". Call at the start, the result at the end.
 */
export function cpuByRole(root: number, label: (pid: number, comm: string) => string): () => Map<string, number> {
  const start = new Map(treeProcs(root).map((p) => [p.pid, p]));
  return () => {
    const out = new Map<string, number>();
    const add = (k: string, ticks: number) => ticks > 0 && out.set(k, (out.get(k) ?? 0) + ticks / TICKS_PER_S);
    for (const p of treeProcs(root)) {
      const s = start.get(p.pid);
      const name = label(p.pid, p.comm);
      add(name, p.ticks - (s?.ticks ?? 0));
      add(`${name}: ended children`, p.reapedTicks - (s?.reapedTicks ?? 0));
    }
    return out;
  };
}

/**
 * A process's main thread over a window, from /proc/<pid>/schedstat: ms on a core and ms runnable
 * but waiting for one (the run queue). A thread that waits for a core is not CPU-bound itself:
 * the machine is. Call at the start, the result at the end.
 */
export function runQueueWait(pid: number): () => { runMs: number; waitMs: number } {
  const read = (): [number, number] => {
    try {
      const [run, wait] = fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      return [run! / 1e6, wait! / 1e6];
    } catch {
      return [0, 0];
    }
  };
  const [run0, wait0] = read();
  return () => {
    const [run1, wait1] = read();
    return { runMs: run1 - run0, waitMs: wait1 - wait0 };
  };
}
