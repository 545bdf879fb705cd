/**
 * The app clock the host owns and passes to uve_render: milliseconds of running time since the UA
 * started. It stands still while the session is suspended and travels in FULL snapshots, so a
 * restored UA continues from the time it was saved at.
 */
export class AppClock {
  private base = 0;
  /** wall time when the clock last started running; null while stopped */
  private runningSince: number | null;

  constructor(private readonly wall: () => number) {
    this.runningSince = wall();
  }

  now(): number {
    return this.runningSince === null ? this.base : this.base + Math.max(0, this.wall() - this.runningSince);
  }

  stop(): void {
    if (this.runningSince === null) return;
    this.base = this.now();
    this.runningSince = null;
  }

  start(): void {
    if (this.runningSince === null) this.runningSince = this.wall();
  }

  set(ms: number): void {
    this.base = ms;
    if (this.runningSince !== null) this.runningSince = this.wall();
  }
}
