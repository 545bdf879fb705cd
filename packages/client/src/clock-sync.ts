// The VM's clock as seen from this terminal: ping/pong samples (round trip, offset), the best of the
// recent ones as the estimate, a short burst after each welcome for a good first estimate, then a
// slow refresh that follows drift. Frame latency (capture on the VM -> now here) needs it.
import type { ClientMessage } from '@uve/protocol';

export interface ClockSample {
  rttMs: number;
  /** VM clock minus local clock, ms */
  offsetMs: number;
}

export const localNow = (): number => (typeof performance !== 'undefined' && performance.timeOrigin ? performance.timeOrigin + performance.now() : Date.now());

/** samples kept: the estimate is the smallest round trip among them */
const KEPT_SAMPLES = 16;
/** after a welcome: pings at once and at these delays, then every `intervalMs` */
const BURST_MS = [50, 150];

export class ClockSync {
  private pingId = 0;
  private readonly pings = new Map<number, { t0: number; resolve: (s: ClockSample) => void; reject: (e: Error) => void }>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly samples: ClockSample[] = [];
  private pingTimer: ReturnType<typeof setInterval> | null = null;

  /** `send` throws when the connection is closed; `onSample` gets the estimate after each pong */
  constructor(
    private readonly send: (m: ClientMessage) => void,
    private readonly onSample: (best: ClockSample) => void,
  ) {}

  /** The best clock sample (smallest round trip of the recent ones), or null before the first pong. */
  get best(): ClockSample | null {
    if (!this.samples.length) return null;
    return this.samples.reduce((a, b) => (b.rttMs < a.rttMs ? b : a));
  }

  /** Forgets the samples: a reconnection may land on another VM with another clock. */
  reset(): void {
    this.samples.length = 0;
  }

  /** One sample: round trip and VM-minus-local offset. */
  ping(timeoutMs = 5_000): Promise<ClockSample> {
    const id = ++this.pingId;
    const t0 = localNow();
    return new Promise<ClockSample>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.timers.delete(timer);
        this.pings.delete(id);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error('no pong'));
      }, timeoutMs);
      this.timers.add(timer);
      this.pings.set(id, {
        t0,
        resolve: (s) => {
          done();
          resolve(s);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      try {
        this.send({ t: 'ping', id, t0 });
      } catch (e) {
        done();
        reject(e as Error);
      }
    });
  }

  /** A pong came: its sample is kept and the ping that asked for it resolved. */
  onPong(m: { id: number; t0: number; t1: number }): void {
    const p = this.pings.get(m.id);
    if (!p) return;
    const t2 = localNow();
    const s: ClockSample = { rttMs: t2 - m.t0, offsetMs: m.t1 - (m.t0 + t2) / 2 };
    this.samples.push(s);
    if (this.samples.length > KEPT_SAMPLES) this.samples.shift();
    p.resolve(s);
    this.onSample(this.best!);
  }

  /** After a welcome: a burst, then a ping every `intervalMs` (0: none) while `connected()`. */
  start(intervalMs: number, connected: () => boolean): void {
    const sample = (): void => void this.ping().catch(() => undefined);
    sample();
    for (const ms of BURST_MS) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (connected()) sample();
      }, ms);
      this.timers.add(t);
    }
    if (intervalMs > 0) {
      this.pingTimer = setInterval(sample, intervalMs);
      (this.pingTimer as { unref?: () => void }).unref?.();
    }
  }

  /** The connection closed: pings in flight fail, no more are sent. */
  stop(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    for (const p of [...this.pings.values()]) p.reject(new Error('connection closed'));
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
