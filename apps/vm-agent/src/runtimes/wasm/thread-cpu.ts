// How much CPU one thread of this process has had, from Linux's /proc: when a call into a guest
// overruns its budget, it tells a guest busy in its own code (its thread runs flat out: an endless
// loop) from one the machine did not run (a loaded host), which is given more time.
import fs from 'node:fs';

/** clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux the agent runs on) */
const USER_HZ = 100;

/** a call over its budget waits on while its thread is starved, up to this many budgets in all */
export const STARVED_MAX_BUDGETS = 5;

/** CPU ms (user + system) thread `tid` of this process has used so far; null where /proc does not say */
export function threadCpuMs(tid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'latin1');
    // after "pid (comm) ": state is field 3, utime 14 and stime 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / USER_HZ : null;
  } catch {
    return null;
  }
}

/**
 * Whether an overrunning call's thread was starved over a stretch of `wallMs`, in which it got
 * `cpuMs` of CPU: less than half of it. A thread that ran for more is busy in its own code.
 */
export function starvedOver(cpuMs: number | null, wallMs: number): boolean {
  return cpuMs !== null && cpuMs < wallMs / 2;
}
