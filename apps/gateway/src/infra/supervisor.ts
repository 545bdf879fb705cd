// Keeps a private server (Redis, embedded PostgreSQL) of the gateway running: when it exits on its
// own it is started again, on the same port, a bounded number of times; past that the gateway is
// told (onFatal) and exits with a clear message rather than run half-alive.
import type { ChildProcess } from 'node:child_process';
import type { Logger } from '../common/logger';

export type SupervisedState = 'up' | 'restarting' | 'failed' | 'stopped';

export interface SupervisionOptions {
  /** true once the gateway stops: an exit then is expected, not restarted */
  isStopping: () => boolean;
  /** the server cannot be kept up; the gateway should stop */
  onFatal: (error: Error) => void;
  /** most restarts within `windowMs` (default 5 in 60 s) */
  maxRestarts?: number;
  windowMs?: number;
}

export class Supervisor {
  state: SupervisedState = 'up';
  private child: ChildProcess | null = null;
  private readonly restarts: number[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly name: string,
    private readonly log: Logger,
    /** starts the server and resolves once it accepts connections */
    private readonly start: () => Promise<ChildProcess>,
    private readonly options: SupervisionOptions | null,
  ) {}

  get current(): ChildProcess | null {
    return this.child;
  }

  watch(child: ChildProcess): void {
    this.child = child;
    this.state = 'up';
    child.once('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = null;
      if (this.state === 'stopped' || !this.options || this.options.isStopping()) return;
      this.crashed(`${this.name} exited (${signal ?? `code ${code}`})`);
    });
  }

  private crashed(why: string): void {
    const opts = this.options!;
    const now = Date.now();
    const windowMs = opts.windowMs ?? 60_000;
    const max = opts.maxRestarts ?? 5;
    while (this.restarts.length && this.restarts[0]! < now - windowMs) this.restarts.shift();
    if (this.restarts.length >= max) {
      this.state = 'failed';
      const e = new Error(`${why}; it was restarted ${this.restarts.length} times in ${Math.round(windowMs / 1000)} s and is given up`);
      this.log.error(`${this.name} failed for good`, { error: e.message });
      opts.onFatal(e);
      return;
    }
    this.restarts.push(now);
    this.state = 'restarting';
    // backoff: 0.5 s, 1 s, 2 s, ... (also lets a signal to the whole group reach the gateway first)
    const delay = 500 * 2 ** (this.restarts.length - 1);
    this.timer = setTimeout(() => {
      this.timer = null;
      // a Ctrl-C reaches the whole group: the server may exit before the gateway hears it stops
      if (this.state === 'stopped' || opts.isStopping()) return;
      this.log.error(`${this.name} exited; restarting`, { reason: why, attempt: this.restarts.length, afterMs: delay });
      this.start().then(
        (c) => {
          if (this.state === 'stopped' || opts.isStopping()) {
            c.kill('SIGTERM');
            return;
          }
          this.log.warn(`${this.name} restarted`);
          this.watch(c);
        },
        (e: Error) => this.crashed(`${this.name} did not restart: ${e.message}`),
      );
    }, delay);
    this.timer.unref();
  }

  /** Stops watching and the server: SIGTERM (or `sig`), SIGKILL after `graceMs`; resolves once it exited. */
  stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    this.state = 'stopped';
    if (this.timer) clearTimeout(this.timer);
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill(sig);
    });
  }
}
