// UVE-5 session reports, exactly once in effect and in order: each report is stored in the inbox
// (`vm_reports`, unique per session, VM and seq, so a redelivered copy is a no-op), then the
// session's pending reports are applied one transaction each, in the VM's seq order. A report
// ahead of a missing one waits for it (bounded, then the gap is skipped and logged); one whose
// application fails is retried with backoff and keeps its error where operators see it.
import type { DataSource, EntityManager } from 'typeorm';
import type { VmEventMessage } from '@uve/protocol';
import { isUuid } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { VmReportRecord } from './vm-reports.entity';

/** Reports about one session (they carry `seq`). */
export type SessionReport = Extract<VmEventMessage, { sessionId: string }>;

export const isSessionReport = (m: VmEventMessage): m is SessionReport => 'sessionId' in m;

export interface VmReportsOptions {
  /** how long a report waits for an earlier one that has not arrived */
  gapWaitMs: number;
  /** first retry of a report whose application failed; doubles up to a minute */
  retryMs: number;
  sweepIntervalMs: number;
}

export const DEFAULT_REPORT_OPTIONS: VmReportsOptions = { gapWaitMs: 10_000, retryMs: 500, sweepIntervalMs: 1_000 };

/** What the owner of sessions does with one report, inside the inbox's transaction. */
export interface SessionReportTarget {
  /**
   * Locks the session, hands over its current VM and the last applied seq, and lets `step` apply
   * at most one report; returns what step returned (null when the session does not exist).
   */
  withLockedSession<T>(sessionId: string, step: (em: EntityManager, s: { vmId: string | null; lastReportSeq: number }, apply: (m: SessionReport) => Promise<void>) => Promise<T>): Promise<T | null>;
  /** whether the session was moved off VM `vmId` (a reconnection placed it elsewhere) */
  movedOff(em: EntityManager, sessionId: string, vmId: string): Promise<boolean>;
}

type Outcome = 'applied' | 'none' | 'waiting';

export class VmReportsService {
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  /** sessions being drained in this process: a second drain would only wait on the row lock */
  private readonly draining = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private notItsSession: (m: VmReportRecord) => void = () => undefined;

  constructor(
    private readonly ds: DataSource,
    private readonly log: Logger,
    private readonly target: SessionReportTarget,
    private readonly options: VmReportsOptions = DEFAULT_REPORT_OPTIONS,
  ) {}

  /** told when a report about a session comes from a VM that does not hold it */
  onNotItsSession(listener: (m: { type: string; vmId: string; sessionId: string }) => void): void {
    this.notItsSession = listener;
  }

  /** Stores the report (once) and applies what is ready for its session. */
  async receive(m: SessionReport): Promise<void> {
    if (!isUuid(m.sessionId) || !Number.isInteger(m.seq) || m.seq < 1) {
      this.log.warn('UVE-5 session report without a valid session id or seq refused', { type: m.type, vmId: m.vmId, sessionId: String(m.sessionId).slice(0, 64) });
      return;
    }
    await this.ds.query(
      `INSERT INTO vm_reports (session_id, vm_id, seq, type, message) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT ON CONSTRAINT uq_vm_reports_session_vm_seq DO NOTHING`,
      [m.sessionId, m.vmId, m.seq, m.type, m],
    );
    await this.drain(m.sessionId);
  }

  /** Applies the session's ready reports in order; concurrent calls for one session coalesce. */
  drain(sessionId: string): Promise<void> {
    const running = this.draining.get(sessionId);
    if (running) {
      this.again.add(sessionId);
      return running;
    }
    const p = (async () => {
      do {
        this.again.delete(sessionId);
        while ((await this.applyNext(sessionId)) === 'applied');
      } while (this.again.has(sessionId));
    })().finally(() => this.draining.delete(sessionId));
    this.draining.set(sessionId, p);
    return p;
  }

  private async applyNext(sessionId: string): Promise<Outcome> {
    let failed: { id: string; error: Error } | null = null;
    const outcome = await this.target.withLockedSession<Outcome>(sessionId, async (em, s, apply) => {
      const next = await em
        .createQueryBuilder(VmReportRecord, 'r')
        .where('r.session_id = :sessionId AND r.applied_at IS NULL', { sessionId })
        .orderBy('r.seq', 'ASC')
        .addOrderBy('r.received_at', 'ASC')
        .getOne();
      if (!next) return 'none';
      // a report that failed waits for its retry, and everything after it waits with it
      if (next.nextAttemptAt && next.nextAttemptAt.getTime() > Date.now()) return 'waiting';
      // a VM speaks only for the sessions it holds; a late report of a previous VM changes nothing.
      // Only one that never held the session is a refusal: the VM a session moved off reports what
      // it did before it heard (its VM Data upload's vmdata.updated races the reconnection)
      if (next.vmId !== s.vmId) {
        if (await this.target.movedOff(em, sessionId, next.vmId)) {
          this.log.info('UVE-5 report of the session\'s previous VM ignored (the session moved)', { type: next.type, vmId: next.vmId, sessionId });
        } else {
          this.notItsSession(next);
        }
        return this.settle(em, next, 'ignored');
      }
      if (next.seq <= s.lastReportSeq) return this.settle(em, next, 'ignored');
      if (next.seq > s.lastReportSeq + 1) {
        if (Date.now() - next.receivedAt.getTime() < this.options.gapWaitMs) return 'waiting';
        this.log.warn('UVE-5 reports missing; applying the next one anyway', { sessionId, vmId: next.vmId, missing: `${s.lastReportSeq + 1}..${next.seq - 1}` });
      }
      try {
        await em.query('SAVEPOINT report');
        await apply(next.message);
        await em.query('RELEASE SAVEPOINT report');
      } catch (e) {
        await em.query('ROLLBACK TO SAVEPOINT report');
        failed = { id: next.id, error: e as Error };
        return 'waiting';
      }
      await em.query('UPDATE sessions SET last_report_seq = $2 WHERE id = $1', [sessionId, next.seq]);
      return this.settle(em, next, next.seq > s.lastReportSeq + 1 ? 'after-gap' : 'applied');
    });
    if (failed) await this.retryLater(failed);
    if (outcome === null) {
      // no such session (a forged or very late report): nothing can ever apply it
      await this.ds.query(`UPDATE vm_reports SET applied_at = now(), result = 'ignored', error = 'no such session' WHERE session_id = $1 AND applied_at IS NULL`, [sessionId]);
      return 'none';
    }
    return outcome;
  }

  private async settle(em: EntityManager, r: VmReportRecord, result: 'applied' | 'ignored' | 'after-gap'): Promise<Outcome> {
    await em.update(VmReportRecord, r.id, { appliedAt: new Date(), result, error: null });
    return 'applied';
  }

  private async retryLater(failed: { id: string; error: Error }): Promise<void> {
    const { retryMs } = this.options;
    this.log.error('UVE-5 report could not be applied; will retry', { reportId: failed.id, error: failed.error.message });
    await this.ds.query(
      `UPDATE vm_reports SET attempts = attempts + 1, error = $2,
              next_attempt_at = now() + make_interval(secs => LEAST(60000, $3::float8 * power(2, attempts)) / 1000)
        WHERE id = $1`,
      [failed.id, failed.error.message.slice(0, 1024), retryMs],
    );
  }

  /** Pending reports (not yet applied) and how long the oldest has waited: the report lag. */
  async lag(): Promise<{ pending: number; failing: number; oldestAgeSec: number }> {
    const [row] = await this.ds.query(
      `SELECT count(*)::int AS pending, count(*) FILTER (WHERE error IS NOT NULL)::int AS failing,
              COALESCE(EXTRACT(EPOCH FROM now() - min(received_at)), 0)::float8 AS age
         FROM vm_reports WHERE applied_at IS NULL`,
    );
    return { pending: row.pending, failing: row.failing, oldestAgeSec: row.age };
  }

  /** Retries failed reports and gives up waiting on gaps, on a short interval. */
  startSweeper(): void {
    this.timer = setInterval(() => {
      this.sweeping ??= this.sweepOnce()
        .catch((e: Error) => this.log.warn('UVE-5 inbox sweep failed', { error: e.message }))
        .finally(() => (this.sweeping = null));
    }, this.options.sweepIntervalMs);
    this.timer.unref();
  }

  async stopSweeper(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping;
    await Promise.allSettled([...this.draining.values()]);
  }

  async sweepOnce(): Promise<void> {
    const rows: { session_id: string }[] = await this.ds.query(
      `SELECT DISTINCT session_id FROM vm_reports
        WHERE applied_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now()) LIMIT 500`,
    );
    for (const { session_id } of rows) await this.drain(session_id);
  }

  /** Applied reports are kept a while for inspection, then removed. */
  async prune(olderThanMs: number): Promise<void> {
    await this.ds.query(`DELETE FROM vm_reports WHERE applied_at IS NOT NULL AND applied_at < now() - make_interval(secs => $1::float8 / 1000)`, [olderThanMs]);
  }
}
