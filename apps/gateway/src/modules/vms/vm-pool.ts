// The pool manager: keeps a number of idle VMs warm per platform (a request never waits for a VM to
// boot while the pool keeps up), provisions as sessions fill them or their CPU runs hot, retires
// idle surplus, finishes drains, and replaces VMs that died. One gateway at a time acts (advisory
// lock). Each VM it starts or retires says why (`startReason`, `statusReason`).
import type { DataSource, EntityManager } from 'typeorm';
import type { Platform, VmProvider } from '@uve/protocol';
import type { Logger } from '../../common/logger';
import { PLATFORMS, SLOT_SESSION_STATES } from '@uve/protocol';
import type { VmsService } from './vms.service';
import { isHot } from './vm-selection';

export interface VmPoolOptions {
  /** platforms kept warm (`warm` idle VMs each), or 'auto': those of the registered UAs; any runnable platform is started on demand */
  platforms: Platform[] | 'auto';
  /** why this host's provider cannot run a platform (null: it can) */
  cannotRun: (platform: Platform) => string | null;
  warm: number;
  max: number;
  capacity: number;
  /** CPU load from which a VM's free slots do not count (UVE_VM_CPU_HIGH) */
  cpuHigh: number;
  provider: VmProvider;
  /** an idle VM beyond the warm count is retired after this long without sessions */
  idleRetireMs: number;
  intervalMs: number;
}

export interface PoolRow {
  id: string;
  platform: Platform;
  status: string;
  provider: VmProvider;
  provider_ref: string | null;
  capacity: number;
  active: number;
  cpu: number | null;
  idle_since: Date;
  /** a DISCONNECTED session's restore is prepared on it (restore ahead): its reconnection comes here */
  holds_ahead: boolean;
}

const POOL_LOCK = 7_426_002;
/**
 * Passes start at most this often: every commit with session events nudges the pool, and under load
 * a pass per commit (a pooled connection and four queries each) was ~9 of the ~55 queries of a
 * requestApplication + endSession (issue 13). A VM start takes a second or more; 250 ms is not felt.
 */
const MIN_PASS_GAP_MS = 250;

export class VmPool {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private lastPassAt = -Infinity;
  /** a nudge that came within MIN_PASS_GAP_MS of the last pass: the pass it asked for */
  private deferred: NodeJS.Timeout | null = null;
  /** consecutive launch failures per platform, and when the next try is allowed */
  private readonly failures = new Map<Platform, { count: number; retryAt: number }>();

  constructor(private readonly ds: DataSource, private readonly vms: VmsService, private readonly log: Logger, private readonly options: VmPoolOptions) {}

  start(): void {
    this.timer = setInterval(() => this.nudge(), this.options.intervalMs);
    this.timer.unref();
    this.nudge();
  }

  /** Asks for a pass soon (a session was assigned, a VM went away). */
  nudge(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    const wait = this.lastPassAt + MIN_PASS_GAP_MS - Date.now();
    if (wait > 0) {
      this.deferred ??= setTimeout(() => {
        this.deferred = null;
        this.nudge();
      }, wait);
      return;
    }
    this.lastPassAt = Date.now();
    this.running = this.tick()
      .catch((e: Error) => this.log.error('VM pool pass failed', { error: e.message }))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.nudge();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.deferred) clearTimeout(this.deferred);
    this.deferred = null;
    await this.running;
  }

  private async tick(): Promise<void> {
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    try {
      const [{ locked }] = await qr.query('SELECT pg_try_advisory_lock($1) AS locked', [POOL_LOCK]);
      if (!locked) return; // another gateway runs the pool now
      try {
        await this.pass();
      } finally {
        await qr.query('SELECT pg_advisory_unlock($1)', [POOL_LOCK]);
      }
    } finally {
      await qr.release();
    }
  }

  private mayLaunch(platform: Platform): boolean {
    const f = this.failures.get(platform);
    return !f || Date.now() >= f.retryAt;
  }

  /** A failing launch is retried after 2 s, 4 s, 8 s ... up to 5 min, not every pass. */
  private launchFailed(platform: Platform, e: Error): void {
    const count = (this.failures.get(platform)?.count ?? 0) + 1;
    const delayMs = Math.min(300_000, 1000 * 2 ** count);
    this.failures.set(platform, { count, retryAt: Date.now() + delayMs });
    this.log.error('VM pool could not launch a VM; backing off', { platform, failures: count, retryInMs: delayMs, error: e.message });
  }

  /**
   * Whether a request that found no VM may wait for one: null when a VM of the platform is starting
   * or could be started now, else the true reason why not.
   */
  async cannotStart(platform: Platform, em: EntityManager = this.ds.manager): Promise<string | null> {
    const why = this.options.cannotRun(platform);
    if (why) return why;
    const [row] = await em.query(
      `SELECT count(*) FILTER (WHERE status IN ('PROVISIONING', 'IDLE'))::int AS total,
              count(*) FILTER (WHERE status = 'PROVISIONING' AND platform = $1)::int AS booting
         FROM vms`,
      [platform],
    );
    if (row.booting > 0) return null;
    if (row.total >= this.options.max) return `all ${this.options.max} VMs the pool may run (UVE_MAX_VMS) are in use`;
    const f = this.failures.get(platform);
    if (f && Date.now() < f.retryAt) return `starting a ${platform} VM failed ${f.count} time(s) in a row; the next try is in ${Math.ceil((f.retryAt - Date.now()) / 1000)} s`;
    return null;
  }

  /** What the pool sees and would do per platform now (the pass acts on it; the `vmPool` query shows it). */
  private async survey(): Promise<{ rows: PoolRow[]; plans: PlatformPlan[] }> {
    // requests waiting for a VM (REQUESTED, none assigned yet), per platform: the demand
    const waiting: { platform: Platform; n: number }[] = await this.ds.query(
      `SELECT u.platform, count(*)::int AS n FROM sessions s JOIN uas u ON u.id = s.ua_id
        WHERE s.state = 'REQUESTED' AND s.vm_id IS NULL GROUP BY u.platform`,
    );
    const rows: PoolRow[] = await this.ds.query(
      `SELECT v.id, v.platform, v.status, v.provider, v.provider_ref, v.capacity, (v.load->>'cpuLoad')::float8 AS cpu,
              (SELECT count(*)::int FROM sessions s WHERE s.vm_id = v.id AND s.state = ANY($1::session_state[])) AS active,
              COALESCE((SELECT max(s.ended_at) FROM sessions s WHERE s.vm_id = v.id), v.created_at) AS idle_since,
              EXISTS (SELECT 1 FROM sessions s WHERE s.restore_ahead_vm_id = v.id AND s.state = 'DISCONNECTED') AS holds_ahead
         FROM vms v WHERE v.status IN ('PROVISIONING', 'IDLE', 'DRAINING')`,
      [SLOT_SESSION_STATES],
    );
    const warmPlatforms: Platform[] = this.options.platforms === 'auto'
      ? (await this.ds.query(`SELECT DISTINCT platform FROM uas`)).map((r: { platform: Platform }) => r.platform)
      : this.options.platforms;
    // warm platforms, platforms with waiting requests, and those with VMs (whose idle surplus retires)
    const platforms = new Set([...warmPlatforms, ...waiting.map((w) => w.platform), ...rows.map((r) => r.platform)]);
    const plans = [...platforms].map((platform) =>
      this.plan(platform, warmPlatforms.includes(platform) ? this.options.warm : 0, rows.filter((r) => r.platform === platform), waiting.find((w) => w.platform === platform)?.n ?? 0));
    return { rows, plans };
  }

  private plan(platform: Platform, warm: number, mine: PoolRow[], demand: number): PlatformPlan {
    const idle = mine.filter((r) => r.status === 'IDLE' && r.active === 0);
    const booting = mine.filter((r) => r.status === 'PROVISIONING');
    const ready = mine.filter((r) => r.status === 'IDLE');
    // a hot VM's free slots are not headroom: selection takes it only when nothing else is free
    // (only VMs with sessions: an idle VM busy with itself, say installing a package, is not demand)
    const hot = ready.filter((r) => r.active > 0 && isHot(r.cpu, this.options.cpuHigh));
    const freeSlots = ready.filter((r) => !hot.includes(r)).reduce((n, r) => n + Math.max(0, r.capacity - r.active), 0);
    // VMs for the requests that wait beyond the free slots (those booting count as coming)
    const forDemand = Math.ceil(Math.max(0, demand - freeSlots) / this.options.capacity);
    // keep `warm` idle VMs, and never let the free slots of a warm platform (or one whose sessions
    // run its VMs hot) run out while a VM could still be added
    const noHeadroom = (warm > 0 || hot.length > 0) && freeSlots === 0 ? 1 : 0;
    const want = Math.max(warm - idle.length, noHeadroom, forDemand) - booting.length;
    const why = forDemand > 0
      ? `${demand} request(s) waiting for a ${platform} VM`
      : warm - idle.length > 0
        ? `warm pool: keeps ${warm} idle ${platform} VM(s)`
        : hot.length > 0
          ? `no headroom: ${hot.length} ${platform} VM(s) at CPU >= ${this.options.cpuHigh}, the others full`
          : `no headroom: every ${platform} VM is full`;
    const surplus = retirable(idle, { warm, demand, hot: hot.length, idleRetireMs: this.options.idleRetireMs, now: Date.now() });
    return { platform, warm, demand, idle: idle.length, booting: booting.length, ready: ready.length, hot: hot.length, freeSlots, want, why, surplus };
  }

  /** The pool per platform, for admins (`vmPool` query): what runs, what is wanted and why, what stops it. */
  async status(): Promise<PoolPlatformStatus[]> {
    const { plans } = await this.survey();
    return PLATFORMS.map((platform) => {
      const p = plans.find((x) => x.platform === platform) ?? this.plan(platform, 0, [], 0);
      const f = this.failures.get(platform);
      const blocked = this.options.cannotRun(platform)
        ?? (f && Date.now() < f.retryAt ? `starting a ${platform} VM failed ${f.count} time(s) in a row; the next try is in ${Math.ceil((f.retryAt - Date.now()) / 1000)} s` : null);
      return {
        platform, warmTarget: p.warm, idleVms: p.idle, busyVms: p.ready - p.idle, startingVms: p.booting, hotVms: p.hot,
        freeSlots: p.freeSlots, waitingRequests: p.demand, wantsMore: Math.max(0, p.want), reason: p.want > 0 ? p.why : null, unavailable: blocked,
      };
    });
  }

  private async pass(): Promise<void> {
    const { rows, plans } = await this.survey();
    // a drain ends when the last session has
    // once stopping, a pass under way starts no more launches or removals (those begun finish:
    // the stop waits for removals in VmsService.closeProviders)
    for (const r of rows.filter((r) => r.status === 'DRAINING' && r.active === 0 && r.provider_ref)) {
      if (this.stopped) return;
      this.log.info('drained VM removed', { vmId: r.id });
      await this.vms.remove(r.id, 'drained: its last session ended');
    }
    let total = rows.filter((r) => r.status !== 'DRAINING').length;
    for (const plan of plans) {
      const { platform } = plan;
      if (this.options.cannotRun(platform)) continue;
      let want = plan.want;
      while (want > 0 && total < this.options.max && this.mayLaunch(platform) && !this.stopped) {
        try {
          await this.vms.provision({ platform, provider: this.options.provider, capacity: this.options.capacity }, `pool: ${plan.why}`);
          this.failures.delete(platform);
        } catch (e) {
          this.launchFailed(platform, e as Error);
          break;
        }
        want--;
        total++;
      }
      for (const r of plan.surplus) {
        if (this.stopped) return;
        this.log.info('idle VM retired', { vmId: r.id, platform });
        await this.vms.remove(r.id, `retired by the pool: idle ${Math.round((Date.now() - new Date(r.idle_since).getTime()) / 1000)} s (UVE_VM_IDLE_RETIRE_MS ${this.options.idleRetireMs} ms) beyond the ${plan.warm} kept warm`);
      }
    }
  }
}

/**
 * The idle VMs of a platform to retire now: the surplus that has been idle longest, only VMs this
 * VMM provisioned (they have a provider handle), and never while requests wait for a VM of the
 * platform (a VM that just booted for them is idle until they take it), nor one holding a restore
 * prepared ahead for a user who may be back any moment (the reconnection would lose it). While
 * sessions run VMs hot, one idle VM stays as their headroom (else it would come and go).
 */
export function retirable<R extends Pick<PoolRow, 'provider_ref' | 'idle_since' | 'holds_ahead'>>(
  idle: R[], o: { warm: number; demand: number; hot: number; idleRetireMs: number; now: number },
): R[] {
  if (o.demand > 0) return [];
  return idle
    .filter((r) => r.provider_ref && !r.holds_ahead && o.now - new Date(r.idle_since).getTime() > o.idleRetireMs)
    .sort((a, b) => new Date(a.idle_since).getTime() - new Date(b.idle_since).getTime())
    .slice(0, Math.max(0, idle.length - Math.max(o.warm, o.hot > 0 ? 1 : 0)));
}

interface PlatformPlan {
  platform: Platform;
  warm: number;
  /** requests waiting for a VM of the platform */
  demand: number;
  idle: number;
  booting: number;
  ready: number;
  hot: number;
  freeSlots: number;
  /** VMs to start now (may be <= 0) */
  want: number;
  /** why they would be started */
  why: string;
  /** idle VMs to retire now */
  surplus: PoolRow[];
}

export interface PoolPlatformStatus {
  platform: Platform;
  warmTarget: number;
  idleVms: number;
  busyVms: number;
  startingVms: number;
  hotVms: number;
  freeSlots: number;
  waitingRequests: number;
  wantsMore: number;
  reason: string | null;
  unavailable: string | null;
}
