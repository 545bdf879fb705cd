// /proc/<pid>/stat, read once for every purpose the agent has (a UA's processes, the VM's load).
import { readdirSync, readFileSync } from 'node:fs';

/** clock ticks per second of the CPU times in stat (Linux's USER_HZ: 100 on every architecture Node runs on; sysconf is not reachable from Node) */
export const TICKS_PER_SECOND = 100;

export interface ProcStat {
  pid: number;
  /** R, S, D, Z, T, ... */
  state: string;
  ppid: number;
  /** session id */
  sid: number;
  /** utime + stime, clock ticks */
  ticks: number;
  rssPages: number;
}

/** Parses one stat line ("pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses). */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const pid = Number(text.slice(0, text.indexOf(' ')));
  // fields after ')': state(3) ppid(4) pgrp(5) session(6) ... utime(14) stime(15) ... rss(24)
  const f = text.slice(close + 2).split(' ');
  const at = (n: number): number => Number(f[n - 3]);
  return { pid, state: f[0]!, ppid: at(4), sid: at(6), ticks: at(14) + at(15), rssPages: at(24) };
}

/** One process's stat, null when it is gone. */
export function procStat(pid: number): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return null;
  }
}

/** The stat of one thread of this process (`tid`: its Linux id), null when it is gone or /proc does not say. */
export function threadStat(tid: number): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/self/task/${tid}/stat`, 'latin1'));
  } catch {
    return null;
  }
}

/** Every process's stat (those that end while being read are left out). */
export function allProcStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = procStat(Number(entry));
    if (s) out.push(s);
  }
  return out;
}
