// UVE-2, the one path: every command to a VM is written to the outbox (`vm_commands`) inside the
// transaction of the change that needs it, sent right after the commit, and re-sent with backoff
// until the VM acknowledges it (`command.ack`) or it expires. Any gateway relays any command.
import type { DataSource, EntityManager } from 'typeorm';
import { uve, type MessageBus } from '@uve/queue';
import type { CommandAck, VmCommand } from '@uve/protocol';
import type { Logger } from '../../common/logger';
import type { QueuedCommand } from '../../common/unit-of-work';
import { isUuid } from '../../common/errors';
import { COMMAND_OUTCOMES, VmCommandRecord, type CommandOutcome } from './vm-commands.entity';

/** How long a command stays worth delivering; past it the VM must not act on it any more. */
export const COMMAND_TTL_MS: Record<VmCommand['type'], number> = {
  // a UC waits seconds for its session, not minutes
  'session.prepare': 60_000,
  'session.suspend': 5 * 60_000,
  'session.resume': 5 * 60_000,
  'monitoring.notify': 5 * 60_000,
  // closing a revoked watcher's stream matters as long as the session may still run
  'monitoring.end': 60 * 60_000,
  'session.terminate': 60 * 60_000,
  // a restore prepared late is of no use: the user may be back within seconds
  'vmdata.prepareRestore': 60_000,
  'vmdata.dropRestore': 60 * 60_000,
  'ua.deploy': 60 * 60_000,
  'ua.update': 60 * 60_000,
  'ua.remove': 60 * 60_000,
  'vm.drain': 60 * 60_000,
  'vm.shutdown': 10 * 60_000,
};

export interface VmCommandsOptions {
  /** first re-send when no ack came; doubles per attempt up to maxResendMs */
  resendMs: number;
  maxResendMs: number;
  /** how often the relay looks for due commands */
  relayIntervalMs: number;
}

export const DEFAULT_COMMAND_OPTIONS: VmCommandsOptions = { resendMs: 5_000, maxResendMs: 60_000, relayIntervalMs: 500 };

interface DueRow {
  id: string;
  vm_id: string;
  command: VmCommand;
  expires_at: Date;
  created_at: Date;
}

/** TypeORM hands back `[rows, count]` for UPDATE ... RETURNING and plain rows otherwise. */
export function returnedRows<T>(raw: unknown): T[] {
  const r = raw as unknown[];
  return r.length === 2 && Array.isArray(r[0]) && typeof r[1] === 'number' ? (r[0] as T[]) : (r as T[]);
}

export class VmCommandsService {
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<void> | null = null;

  constructor(
    private readonly ds: DataSource,
    private readonly bus: MessageBus,
    private readonly log: Logger,
    private readonly options: VmCommandsOptions = DEFAULT_COMMAND_OPTIONS,
  ) {}

  /**
   * Writes a command inside the caller's transaction, already counted as sent once (its first
   * re-send is due after `resendMs`): `flush` sends it after the commit with no second statement.
   * Not sent then (the process died, Redis is down), the relay sends it when that re-send is due.
   */
  async enqueue(em: EntityManager, vmId: string, command: VmCommand, sessionId: string | null = null): Promise<QueuedCommand> {
    const now = Date.now();
    const expiresAt = new Date(now + COMMAND_TTL_MS[command.type]);
    const row = await em.save(em.create(VmCommandRecord, {
      vmId, sessionId, type: command.type, command,
      expiresAt, nextAttemptAt: new Date(now + this.options.resendMs),
      attempts: 1, lastSentAt: new Date(now), outcome: null, settledAt: null, error: null,
    }));
    return { id: row.id, vmId, command, expiresAt };
  }

  /** Sends commands committed by `enqueue` now, in the order they were written (the latency of a request). */
  async flush(queued: QueuedCommand[], committedAt?: number): Promise<void> {
    for (const q of queued) await this.send(q.id, q.vmId, q.command, q.expiresAt, committedAt);
  }

  /** The VM took the command (or dropped it as expired): stop re-sending. Only the addressed VM may ack. */
  async onAck(m: CommandAck): Promise<void> {
    if (!isUuid(m.commandId) || !(COMMAND_OUTCOMES as readonly string[]).includes(m.outcome)) {
      this.log.warn('malformed command.ack ignored', { vmId: m.vmId, commandId: String(m.commandId).slice(0, 64) });
      return;
    }
    await this.ds.query(
      `UPDATE vm_commands SET outcome = $3, settled_at = now(), error = $4 WHERE id = $1 AND vm_id = $2 AND outcome IS NULL`,
      [m.commandId, m.vmId, m.outcome, m.error?.slice(0, 1024) ?? null],
    );
    if (m.outcome === 'failed') this.log.warn('VM could not carry out a command', { vmId: m.vmId, commandId: m.commandId, error: m.error ?? null });
  }

  /** A VM that is gone will never ack: its pending commands are settled as cancelled. */
  async cancelForVm(vmId: string, reason: string): Promise<void> {
    await this.settle(`vm_id = $1`, [vmId], 'cancelled', reason);
  }

  /** Pending commands (not acknowledged, not expired): the outbox backlog. */
  async backlog(): Promise<{ pending: number; oldestAgeSec: number }> {
    const [row] = await this.ds.query(
      `SELECT count(*)::int AS pending, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS age FROM vm_commands WHERE outcome IS NULL`,
    );
    return { pending: row.pending, oldestAgeSec: row.age };
  }

  startRelay(): void {
    this.timer = setInterval(() => this.relayOnce(), this.options.relayIntervalMs);
    this.timer.unref();
  }

  async stopRelay(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.pass;
  }

  /** One pass: settle what expired, send what is due. Never overlaps itself; errors are logged. */
  relayOnce(): Promise<void> {
    this.pass ??= (async () => {
      await this.settle(`expires_at <= now()`, [], 'expired', 'not acknowledged before it expired');
      await this.sendDue('c.next_attempt_at <= now()', []);
    })()
      .catch((e: Error) => this.log.warn('UVE-2 relay pass failed; retrying', { error: e.message }))
      .finally(() => (this.pass = null));
    return this.pass;
  }

  private async settle(where: string, params: unknown[], outcome: CommandOutcome, error: string): Promise<void> {
    const rows = returnedRows<{ id: string; vm_id: string; type: string }>(await this.ds.query(
      `UPDATE vm_commands SET outcome = $${params.length + 1}, settled_at = now(), error = $${params.length + 2}
        WHERE outcome IS NULL AND ${where} RETURNING id, vm_id, type`,
      [...params, outcome, error],
    ));
    for (const r of rows) {
      this.log.warn(`UVE-2 command ${outcome}`, { vmId: r.vm_id, commandId: r.id, type: r.type });
    }
  }

  /**
   * Claims due commands (SKIP LOCKED: several gateways never send one twice at once), moves their
   * next attempt out by the backoff, then sends them in the order they were written.
   */
  private async sendDue(where: string, params: unknown[]): Promise<void> {
    const { resendMs, maxResendMs } = this.options;
    const claimed = returnedRows<DueRow>(await this.ds.query(
      `WITH due AS (
         SELECT c.id FROM vm_commands c
          WHERE c.outcome IS NULL AND c.expires_at > now() AND ${where}
          ORDER BY c.created_at LIMIT 200 FOR UPDATE SKIP LOCKED)
       UPDATE vm_commands c
          SET attempts = c.attempts + 1, last_sent_at = now(),
              next_attempt_at = now() + make_interval(secs => LEAST($${params.length + 2}::float8, $${params.length + 1}::float8 * power(2, c.attempts)) / 1000)
         FROM due WHERE c.id = due.id
       RETURNING c.id, c.vm_id, c.command, c.expires_at, c.created_at`,
      [...params, resendMs, maxResendMs],
    ));
    claimed.sort((a, b) => +new Date(a.created_at) - +new Date(b.created_at));
    for (const row of claimed) await this.send(row.id, row.vm_id, row.command, new Date(row.expires_at));
  }

  private async send(id: string, vmId: string, stored: VmCommand, expiresAt: Date, committedAt?: number): Promise<void> {
    const command = { ...stored, commandId: id, expiresAt: expiresAt.toISOString(), trace: { ...(committedAt ? { committedAt } : {}), sentAt: Date.now() } } as VmCommand;
    try {
      await uve.sendToVm(this.bus, vmId, command);
    } catch (e) {
      // Redis is down: the command stays pending and goes at a later pass
      await this.ds.query(`UPDATE vm_commands SET error = $2, next_attempt_at = now() + interval '1 second' WHERE id = $1`, [id, (e as Error).message.slice(0, 1024)])
        .catch(() => undefined);
      this.log.warn('UVE-2 command not sent yet', { vmId, type: command.type, error: (e as Error).message });
    }
  }
}
