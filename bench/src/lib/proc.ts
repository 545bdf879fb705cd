// CPU of a process tree from /proc (the VM agent's one stat reader), for "CPU per stream" figures.
import path from 'node:path';
import { ROOT } from './services';

/** clock ticks per second of /proc/<pid>/stat on Linux (USER_HZ) */
const TICKS_PER_S = 100;

interface ProcStat { pid: number; ppid: number; ticks: number }

/** utime + stime of `root` and every process below it now, seconds (processes that ended are not counted). */
export function treeCpuSeconds(root: number): number {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { allProcStats } = require(path.join(ROOT, 'apps/vm-agent/dist/common/procfs.js')) as { allProcStats: () => ProcStat[] };
  const stats = allProcStats();
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  let ticks = stats.find((s) => s.pid === root)?.ticks ?? 0;
  for (let todo = [...(children.get(root) ?? [])]; todo.length; ) {
    const s = todo.pop()!;
    ticks += s.ticks;
    todo.push(...(children.get(s.pid) ?? []));
  }
  return ticks / TICKS_PER_S;
}
