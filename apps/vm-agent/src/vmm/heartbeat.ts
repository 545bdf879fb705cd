// Load figures for vm.heartbeat: the agent process's CPU time over the interval as a share of the
// machine's cores (child processes such as ffmpeg encoders are not included), and its RSS.
import { availableParallelism } from 'node:os';

export class CpuSampler {
  private last = process.cpuUsage();
  private lastAt = process.hrtime.bigint();

  /** 0..1 share of all cores used by this process since the previous call */
  sample(): number {
    const now = process.hrtime.bigint();
    const usage = process.cpuUsage(this.last);
    const elapsedUs = Number(now - this.lastAt) / 1000;
    this.last = process.cpuUsage();
    this.lastAt = now;
    if (elapsedUs <= 0) return 0;
    const load = (usage.user + usage.system) / (elapsedUs * availableParallelism());
    return Math.min(1, Math.max(0, Math.round(load * 1000) / 1000));
  }
}
