// The agent's side of "no orphans": a VM whose VMM is gone (a kill -9'd gateway, a network cut, a
// Redis that never comes back) stops by itself after a bound instead of running UAs for nobody.
// Watched: GET /healthz of the VMM, the age of the oldest report Redis has not taken, and for the
// PROCESS provider the parent process (the gateway that started it).
import type { Logger } from '../common/log';
import { errorMessage } from '../common/errors';

export interface VmmSignals {
  now: number;
  /** the last time /healthz answered 200 (the start counts as healthy) */
  lastHealthyAt: number;
  /** how long the oldest report not taken by Redis has waited */
  reportBacklogMs: number;
  /** the PROCESS provider's parent is no longer our parent */
  parentGone: boolean;
  lostAfterMs: number;
}

/** Why the VMM counts as lost, or null while it does not. */
export function vmmLostReason(s: VmmSignals): string | null {
  if (s.parentGone) return 'the process that started this VM is gone';
  const seconds = (ms: number): string => `${Math.round(ms / 1000)} s`;
  if (s.now - s.lastHealthyAt >= s.lostAfterMs) return `the VMM did not answer its health check for ${seconds(s.now - s.lastHealthyAt)}`;
  if (s.reportBacklogMs >= s.lostAfterMs) return `Redis has not taken a report for ${seconds(s.reportBacklogMs)}`;
  return null;
}

export interface VmmWatchOptions {
  /** GET this; any 2xx means the VMM is there */
  healthUrl: string;
  lostAfterMs: number;
  reportBacklogMs: () => number;
  /** the parent pid to watch (PROCESS provider); null = do not watch it */
  parentPid: number | null;
  onLost: (reason: string) => void;
  log: Logger;
}

export class VmmWatch {
  private timer: NodeJS.Timeout | null = null;
  private lastHealthyAt = Date.now();
  private probing = false;
  private lost = false;
  private readonly intervalMs: number;

  constructor(private readonly opts: VmmWatchOptions) {
    this.intervalMs = Math.max(200, Math.min(5_000, Math.floor(opts.lostAfterMs / 4)));
  }

  /** the PROCESS provider's gateway is no longer this agent's parent (reparented: it is gone) */
  parentGone(): boolean {
    return this.opts.parentPid !== null && process.ppid !== this.opts.parentPid;
  }

  start(): void {
    if (this.opts.lostAfterMs <= 0) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async tick(): Promise<void> {
    if (this.lost) return;
    if (!this.probing) {
      this.probing = true;
      try {
        const res = await fetch(this.opts.healthUrl, { signal: AbortSignal.timeout(Math.min(3_000, this.intervalMs * 2)) });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) this.lastHealthyAt = Date.now();
        else this.opts.log.debug('VMM health check refused', { status: res.status });
      } catch (e) {
        this.opts.log.debug('VMM health check failed', { error: errorMessage(e) });
      } finally {
        this.probing = false;
      }
    }
    const reason = vmmLostReason({
      now: Date.now(),
      lastHealthyAt: this.lastHealthyAt,
      reportBacklogMs: this.opts.reportBacklogMs(),
      parentGone: this.parentGone(),
      lostAfterMs: this.opts.lostAfterMs,
    });
    if (reason && !this.lost) {
      this.lost = true;
      this.stop();
      this.opts.onLost(reason);
    }
  }
}
