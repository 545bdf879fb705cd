// How much CPU one thread of this process has had, from Linux's /proc: when a call into a guest
// overruns its budget, it tells a guest busy in its own code (its thread runs flat out: an endless
// loop) from one the machine did not run (a loaded host), which is given more time.
import { threadStat, TICKS_PER_SECOND } from '../../common/procfs';

/** a call over its budget waits on while its thread is starved, up to this many budgets in all */
export const STARVED_MAX_BUDGETS = 5;

/** CPU ms (user + system) thread `tid` of this process has used so far; null where /proc does not say */
export function threadCpuMs(tid: number): number | null {
  const ticks = threadStat(tid)?.ticks;
  return ticks !== undefined && Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_SECOND : null;
}

/**
 * Whether an overrunning call's thread was starved over a stretch of `wallMs`, in which it got
 * `cpuMs` of CPU: less than half of it. A thread that ran for more is busy in its own code.
 */
export function starvedOver(cpuMs: number | null, wallMs: number): boolean {
  return cpuMs !== null && cpuMs < wallMs / 2;
}
