// UVE-2 delivery rules on the VM side (packages/protocol CommandMeta): the VMM's outbox re-sends a
// command until the VM acknowledges it, so the VM must act on each commandId once, and must not act
// on a command whose expiry passed while it waited (a stale terminate or prepare is worse than none).
import type { CommandAck, VmCommand } from '@uve/protocol';

export type CommandOutcome = CommandAck['outcome'];

/** handled ids without an expiry are remembered this long (the outbox gives up well before) */
export const DEFAULT_REMEMBER_MS = 60 * 60_000;
/** most ids remembered at once; the oldest are forgotten first */
export const MAX_REMEMBERED = 10_000;

export type Admission =
  | { action: 'run' }
  /** seen before: not acted on again; `outcome` is the first handling's (undefined while it runs) */
  | { action: 'duplicate'; outcome: CommandOutcome | undefined; error?: string | null }
  | { action: 'expired' };

interface Remembered {
  until: number;
  outcome?: CommandOutcome;
  error?: string | null;
}

export class CommandGate {
  /** insertion order = order handled: the first entries are the oldest */
  private readonly seen = new Map<string, Remembered>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly max = MAX_REMEMBERED,
  ) {}

  get remembered(): number {
    return this.seen.size;
  }

  /** Decides what to do with a command; a command to run is remembered from now on. */
  admit(c: VmCommand): Admission {
    const now = this.now();
    this.prune(now);
    const id = c.commandId;
    const expiresAt = c.expiresAt ? Date.parse(c.expiresAt) : NaN;
    if (id) {
      const prior = this.seen.get(id);
      if (prior) return { action: 'duplicate', outcome: prior.outcome, error: prior.error };
    }
    if (Number.isFinite(expiresAt) && expiresAt <= now) {
      if (id) this.remember(id, Math.max(expiresAt, now) + DEFAULT_REMEMBER_MS, 'expired');
      return { action: 'expired' };
    }
    // remembered until the VMM stops re-sending it (its expiry), never less than a grace period
    if (id) this.remember(id, Number.isFinite(expiresAt) ? Math.max(expiresAt, now + 60_000) : now + DEFAULT_REMEMBER_MS);
    return { action: 'run' };
  }

  /** records how a command ended, so a repeat is acknowledged the same way */
  settle(id: string, outcome: CommandOutcome, error?: string | null): void {
    const r = this.seen.get(id);
    if (r) {
      r.outcome = outcome;
      r.error = error ?? null;
    }
  }

  private remember(id: string, until: number, outcome?: CommandOutcome): void {
    this.seen.set(id, { until, outcome });
    while (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value!);
  }

  private prune(now: number): void {
    // entries are in handling order, not expiry order: a full pass, bounded by `max`, only when due
    if (this.seen.size === 0) return;
    for (const [id, r] of this.seen) if (r.until <= now) this.seen.delete(id);
  }
}
