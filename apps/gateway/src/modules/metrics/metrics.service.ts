// Operators' view of the VMM: `/metrics` in the Prometheus text format. One registry per gateway;
// the platform gauges are read from PostgreSQL and Redis when scraped (collect on scrape), so
// every gateway process of a deployment reports the same, current numbers. The series are listed
// in docs/operations.md.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { DataSource } from 'typeorm';
import { PLATFORMS, SESSION_STATES, SLOT_SESSION_STATES, VMM_QUEUE } from '@uve/protocol';
import type { MessageBus } from '@uve/queue';
import type { Logger } from '../../common/logger';
import { VM_STATUSES } from '../vms/vms.enums';

export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

/** How long one gauge may take to collect; a slow or down dependency leaves it empty, not the scrape hanging. */
const COLLECT_MS = 3000;

export class MetricsService {
  readonly registry = new Registry();

  constructor(
    private readonly ds: DataSource,
    private readonly bus: MessageBus,
    private readonly log: Logger,
  ) {
    collectDefaultMetrics({ register: this.registry });
    this.registerGauge('uve_sessions', 'Sessions by state.', ['state'], () => this.sessions());
    this.registerGauge('uve_vms', 'VMs by status (BUSY: ready with sessions), platform and provider.', ['status', 'platform', 'provider'], () => this.vms());
    this.registerGauge('uve_vm_slots', 'Session slots of the VMs that take sessions (IDLE or BUSY), by platform: capacity, used (sessions occupying a slot) and free.', ['platform', 'kind'], () => this.slots());
    this.registerGauge('uve_queue_messages', 'UVE-5 messages in the VMM queue by state (BullMQ job counts).', ['queue', 'state'], () => this.queueDepth());
  }

  /**
   * Adds a gauge whose samples `collect` returns at each scrape (e.g. outbox backlog, report lag).
   * A collect that fails or takes longer than 3 s leaves the gauge without samples for that scrape
   * and counts in `uve_metrics_collect_errors_total`.
   */
  registerGauge(name: string, help: string, labelNames: string[], collect: () => Promise<Sample[]>): void {
    const errors = this.collectErrors;
    const log = this.log;
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        this.reset();
        let timer: NodeJS.Timeout | undefined;
        try {
          const samples = await Promise.race([
            collect(),
            new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${COLLECT_MS} ms`)), COLLECT_MS))),
          ]);
          for (const s of samples) this.set(s.labels ?? {}, s.value);
        } catch (e) {
          errors.inc({ gauge: name });
          log.debug('metric not collected', { gauge: name, error: (e as Error).message });
        } finally {
          clearTimeout(timer);
        }
      },
    });
  }

  private readonly collectErrors = new Counter({
    name: 'uve_metrics_collect_errors_total',
    help: 'Scrapes in which a gauge could not be collected (its dependency down or slow), by gauge.',
    labelNames: ['gauge'],
    registers: [this.registry],
  });

  /** UVE-5 reports refused by the control plane's checks (modules/vmm/report-guard.ts), by reason. */
  readonly vmReportsRefused = new Counter({
    name: 'uve_vm_reports_refused_total',
    help: 'UVE-5 reports refused: from a VM not provisioned or removed (unknown_vm), wrongly signed (bad_signature), outside the time window (stale), received before (replay), about a session the VM does not hold (not_its_session).',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  /** UVE-5 reports this gateway took but could not handle (uve5.consumer.ts), by type and whether the queue hands them over again. */
  readonly vmReportsFailed = new Counter({
    name: 'uve_vm_reports_failed_total',
    help: 'UVE-5 reports this gateway could not handle, by type; retried="true" when the queue hands the report over again (a dependency down, say: up to 9 times from 0.5 s doubling, never a heartbeat), "false" when it does not (a failure that cannot pass, or the last hand-over).',
    labelNames: ['type', 'retried'],
    registers: [this.registry],
  });

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async sessions(): Promise<Sample[]> {
    const rows: { state: string; n: string }[] = await this.ds.query('SELECT state, count(*) AS n FROM sessions GROUP BY state');
    const by = new Map(rows.map((r) => [r.state, Number(r.n)]));
    return SESSION_STATES.map((state) => ({ labels: { state }, value: by.get(state) ?? 0 }));
  }

  private async vms(): Promise<Sample[]> {
    const rows: { status: string; platform: string; provider: string; n: string }[] = await this.ds.query(
      `SELECT CASE WHEN v.status = 'IDLE' AND EXISTS (SELECT 1 FROM sessions s WHERE s.vm_id = v.id AND s.state = ANY($1::session_state[]))
                   THEN 'BUSY' ELSE v.status::text END AS status,
              v.platform, v.provider, count(*) AS n
         FROM vms v GROUP BY 1, 2, 3`,
      [SLOT_SESSION_STATES],
    );
    const samples = rows.map((r) => ({ labels: { status: r.status, platform: r.platform, provider: r.provider }, value: Number(r.n) }));
    // every status appears, so a dashboard sees 0 rather than no series
    for (const status of VM_STATUSES) if (!rows.some((r) => r.status === status)) samples.push({ labels: { status, platform: '', provider: '' }, value: 0 });
    return samples;
  }

  private async slots(): Promise<Sample[]> {
    const rows: { platform: string; capacity: string; used: string }[] = await this.ds.query(
      `SELECT v.platform, sum(v.capacity) AS capacity, sum(LEAST(v.capacity, o.n)) AS used
         FROM vms v
         CROSS JOIN LATERAL (SELECT count(*) AS n FROM sessions s WHERE s.vm_id = v.id AND s.state = ANY($1::session_state[])) o
        WHERE v.status = 'IDLE'
        GROUP BY v.platform`,
      [SLOT_SESSION_STATES],
    );
    const by = new Map(rows.map((r) => [r.platform, { capacity: Number(r.capacity), used: Number(r.used) }]));
    return PLATFORMS.flatMap((platform) => {
      const { capacity, used } = by.get(platform) ?? { capacity: 0, used: 0 };
      return [
        { labels: { platform, kind: 'capacity' }, value: capacity },
        { labels: { platform, kind: 'used' }, value: used },
        { labels: { platform, kind: 'free' }, value: capacity - used },
      ];
    });
  }

  private async queueDepth(): Promise<Sample[]> {
    const counts = await this.bus.counts(VMM_QUEUE);
    return Object.entries(counts).map(([state, value]) => ({ labels: { queue: VMM_QUEUE, state }, value }));
  }
}
