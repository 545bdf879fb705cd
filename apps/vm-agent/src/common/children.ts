// Every child process the agent starts (Xvfb, UA programs, ffmpeg), so that no exit path leaves
// one behind: a stop that overran its bound, a crash, or process.exit() from anywhere kills them.
import type { ChildProcess } from 'node:child_process';

interface Tracked {
  proc: ChildProcess;
  /** started detached as its own process group: the whole group goes */
  group: boolean;
}

const live = new Set<Tracked>();

/** Remembers `proc` until it exits; returns it for chaining at the spawn site. */
export function trackChild<T extends ChildProcess>(proc: T, opts: { group?: boolean } = {}): T {
  if (proc.pid === undefined) return proc; // spawn failed: nothing runs
  const t: Tracked = { proc, group: opts.group ?? false };
  live.add(t);
  proc.once('exit', () => live.delete(t));
  return proc;
}

/** the children still running */
export function liveChildren(): number {
  return live.size;
}

/** Signals every child still running (synchronous: safe in a process 'exit' handler). */
export function killChildren(signal: NodeJS.Signals = 'SIGKILL'): number {
  let n = 0;
  for (const { proc, group } of live) {
    if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) continue;
    try {
      if (group) process.kill(-proc.pid, signal);
      else proc.kill(signal);
      n++;
    } catch {
      // already gone
    }
  }
  return n;
}
