// Processes by identity, from /proc (Linux): a pid alone can be reused by an unrelated process
// after a crash, so every process the gateway may have to kill later is known by its pid AND its
// start time (field 22 of /proc/<pid>/stat, clock ticks since boot).
import fs from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

interface Stat {
  ppid: number;
  pgid: number;
  startTime: string;
  state: string;
}

function readStat(pid: number): Stat | null {
  let raw: string;
  try {
    raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // the command name (field 2) is in parentheses and may itself contain spaces or parentheses
  const fields = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state)
  return { state: fields[0]!, ppid: Number(fields[1]), pgid: Number(fields[2]), startTime: fields[19]! };
}

/** The identity of a running process, or null when there is none with this pid. */
export function identify(pid: number): ProcessIdentity | null {
  const s = readStat(pid);
  return s ? { pid, startTime: s.startTime } : null;
}

/** True when this very process (same pid, same start time) still runs; a zombie does not count. */
export function isRunning(id: ProcessIdentity): boolean {
  const s = readStat(id.pid);
  return !!s && s.startTime === id.startTime && s.state !== 'Z';
}

/** The command line of a process ('' when gone). */
export function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Every living descendant of `pid` (children first found, then theirs), from /proc. */
export function descendants(pid: number): ProcessIdentity[] {
  const children = new Map<number, number[]>();
  const starts = new Map<number, string>();
  for (const name of fs.readdirSync('/proc')) {
    const p = Number(name);
    if (!Number.isInteger(p)) continue;
    const s = readStat(p);
    if (!s || s.state === 'Z') continue;
    starts.set(p, s.startTime);
    const list = children.get(s.ppid) ?? [];
    list.push(p);
    children.set(s.ppid, list);
  }
  const out: ProcessIdentity[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length) {
    const p = queue.shift()!;
    out.push({ pid: p, startTime: starts.get(p)! });
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Sends a signal to this very process only (never to a process that reused its pid). */
export function signal(id: ProcessIdentity, sig: NodeJS.Signals): boolean {
  if (!isRunning(id)) return false;
  try {
    process.kill(id.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Resolves true once the process is gone, false when it still runs after `ms`. */
export async function waitGone(id: ProcessIdentity, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (isRunning(id)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** `first` (SIGTERM by default), then SIGKILL after the grace time; resolves once it is gone. */
export async function terminate(id: ProcessIdentity, graceMs: number, first: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!signal(id, first)) return;
  if (await waitGone(id, graceMs)) return;
  signal(id, 'SIGKILL');
  await waitGone(id, 2000);
}
