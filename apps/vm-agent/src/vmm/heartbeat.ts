// Load figures for vm.heartbeat: what the whole VM uses, not the agent alone. The encoders (ffmpeg),
// the X servers and the UA programs are most of a VM's CPU, and the VMM picks VMs and scales the
// pool on this figure (docs/operations.md, "Load").
//
// - In a container (DOCKER/SWARM VMs) the container's cgroup counts everything in it: CPU time
//   against the container's CPU limit (or the host's cores without one) and its memory.
// - As a process (PROCESS VMs) the agent's process tree: itself, its children, and the processes of
//   every session they lead (a UA's shell may make its own session but stays in the UA's).
//   CPU time of a process that started and ended between two samples is not seen.
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { allProcStats, TICKS_PER_SECOND, type ProcStat } from '../common/procfs';

export { parseProcStat } from '../common/procfs';

export interface LoadSample {
  /** 0..1 share of the VM's CPU budget used since the previous sample */
  cpuLoad: number;
  rssBytes: number;
  /** where the figures come from */
  source: 'cgroup' | 'process-tree';
}

export interface LoadSampler {
  sample(): LoadSample;
}

/** in [0, 1]; a reading that is not a number (a cgroup file that did not parse) counts as 0, not as a heartbeat the VMM refuses */
const clamp01 = (x: number): number => (Number.isFinite(x) ? Math.min(1, Math.max(0, Math.round(x * 1000) / 1000)) : 0);
/** bytes as the VMM takes them (finite, not negative); else 0, as above */
const bytes = (x: number): number => (Number.isFinite(x) && x >= 0 ? x : 0);

/** Picks the cgroup when the agent is the only thing in its container's cgroup, else the process tree. */
export function createLoadSampler(inContainer: boolean, root = '/sys/fs/cgroup'): LoadSampler {
  if (inContainer) {
    const cg = CgroupSampler.open(root);
    if (cg) return cg;
  }
  return new ProcessTreeSampler(process.pid);
}

// ---- process tree ---------------------------------------------------------------------------------

const PAGE_BYTES = 4096;

/** The processes that belong to `rootPid`: descendants, and members of the sessions they lead. */
export function treeOf(rootPid: number, all: ProcStat[]): ProcStat[] {
  const children = new Map<number, ProcStat[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const mine = new Map<number, ProcStat>();
  const visit = (pid: number): void => {
    for (const c of children.get(pid) ?? []) {
      if (mine.has(c.pid)) continue;
      mine.set(c.pid, c);
      visit(c.pid);
    }
  };
  const self = all.find((p) => p.pid === rootPid);
  if (self) mine.set(self.pid, self);
  visit(rootPid);
  // a daemonised UA process is re-parented to init but keeps the session of the UA that started it
  const sessions = new Set([...mine.values()].filter((p) => p.sid === p.pid && p.pid !== rootPid).map((p) => p.pid));
  for (const p of all) {
    if (!mine.has(p.pid) && sessions.has(p.sid)) {
      mine.set(p.pid, p);
      visit(p.pid);
    }
  }
  return [...mine.values()];
}

export class ProcessTreeSampler implements LoadSampler {
  private last = new Map<number, number>();
  private lastAt = process.hrtime.bigint();
  private readonly cores = availableParallelism();

  constructor(private readonly rootPid: number) {
    this.sample();
  }

  sample(): LoadSample {
    const now = process.hrtime.bigint();
    const tree = treeOf(this.rootPid, allProcStats());
    let ticks = 0;
    let rssPages = 0;
    const seen = new Map<number, number>();
    for (const p of tree) {
      // a pid seen for the first time counts from its start (it began within the interval or before
      // the first sample, which primes `last`)
      ticks += p.ticks - (this.last.get(p.pid) ?? 0);
      seen.set(p.pid, p.ticks);
      rssPages += p.rssPages;
    }
    const elapsedS = Number(now - this.lastAt) / 1e9;
    this.last = seen;
    this.lastAt = now;
    const cpu = elapsedS > 0 ? ticks / TICKS_PER_SECOND / (elapsedS * this.cores) : 0;
    return { cpuLoad: clamp01(cpu), rssBytes: bytes(rssPages * PAGE_BYTES), source: 'process-tree' };
  }
}

// ---- cgroup -----------------------------------------------------------------------------------------

interface CgroupFiles {
  /** cumulative CPU time in seconds */
  cpuSeconds: () => number;
  memoryBytes: () => number;
  /** cores the cgroup may use (its quota), null without a limit */
  coreLimit: () => number | null;
}

function readNumber(file: string): number {
  return Number(readFileSync(file, 'utf8').trim());
}

/** cgroup v2 (unified) or v1 (cpuacct + memory controllers), as mounted inside a container. */
function cgroupFiles(root: string): CgroupFiles | null {
  try {
    readFileSync(`${root}/cpu.stat`, 'utf8');
    return {
      cpuSeconds: () => Number(/usage_usec (\d+)/.exec(readFileSync(`${root}/cpu.stat`, 'utf8'))?.[1] ?? 0) / 1e6,
      memoryBytes: () => readNumber(`${root}/memory.current`),
      coreLimit: () => {
        const [quota, period] = readFileSync(`${root}/cpu.max`, 'utf8').trim().split(' ');
        return quota === 'max' ? null : Number(quota) / Number(period);
      },
    };
  } catch {
    /* not v2 */
  }
  for (const cpuDir of [`${root}/cpuacct`, `${root}/cpu,cpuacct`]) {
    try {
      readNumber(`${cpuDir}/cpuacct.usage`);
      const cpuCtl = [`${root}/cpu`, `${root}/cpu,cpuacct`].find((d) => {
        try {
          readNumber(`${d}/cpu.cfs_quota_us`);
          return true;
        } catch {
          return false;
        }
      });
      return {
        cpuSeconds: () => readNumber(`${cpuDir}/cpuacct.usage`) / 1e9,
        memoryBytes: () => readNumber(`${root}/memory/memory.usage_in_bytes`),
        coreLimit: () => {
          if (!cpuCtl) return null;
          const quota = readNumber(`${cpuCtl}/cpu.cfs_quota_us`);
          return quota > 0 ? quota / readNumber(`${cpuCtl}/cpu.cfs_period_us`) : null;
        },
      };
    } catch {
      /* not this layout */
    }
  }
  return null;
}

export class CgroupSampler implements LoadSampler {
  private lastCpu: number;
  private lastAt = process.hrtime.bigint();

  private constructor(private readonly files: CgroupFiles) {
    this.lastCpu = files.cpuSeconds();
  }

  static open(root: string): CgroupSampler | null {
    const files = cgroupFiles(root);
    if (!files) return null;
    try {
      files.cpuSeconds();
      files.memoryBytes();
      return new CgroupSampler(files);
    } catch {
      return null;
    }
  }

  sample(): LoadSample {
    const now = process.hrtime.bigint();
    const cpu = this.files.cpuSeconds();
    const elapsedS = Number(now - this.lastAt) / 1e9;
    const cores = this.files.coreLimit() ?? availableParallelism();
    const load = elapsedS > 0 ? (cpu - this.lastCpu) / (elapsedS * cores) : 0;
    this.lastCpu = cpu;
    this.lastAt = now;
    let rssBytes = 0;
    try {
      rssBytes = this.files.memoryBytes();
    } catch {
      rssBytes = process.memoryUsage.rss();
    }
    return { cpuLoad: clamp01(load), rssBytes: bytes(rssBytes), source: 'cgroup' };
  }
}
