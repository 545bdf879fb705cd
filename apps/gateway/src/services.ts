// The services of one gateway process, built once and handed to resolvers through the context.
import path from 'node:path';
import type { DataSource } from 'typeorm';
import type { Redis } from 'ioredis';
import type { MessageBus } from '@uve/queue';
import type { GatewayConfig } from './config';
import type { Logger } from './common/logger';
import type { UvePubSub } from './common/pubsub';
import { Transactions } from './common/unit-of-work';
import { KeysService } from './modules/auth/keys.service';
import { setScryptCost } from './modules/auth/passwords';
import { RateLimits } from './modules/auth/rate-limits';
import { MetricsService } from './modules/metrics/metrics.service';
import { InvitationsService } from './modules/invitations/invitations.service';
import { ProcurementsService } from './modules/procurements/procurements.service';
import { SessionsService } from './modules/sessions/sessions.service';
import { SnapshotsService, snapshotSavedData } from './modules/snapshots/snapshots.service';
import { VmDataStore, type ChunkStore } from './modules/snapshots/vm-data-store';
import { PostgresChunkStore } from './modules/snapshots/vm-data-store.postgres';
import { FsChunkStore } from './modules/snapshots/vm-data-store.fs';
import { StorefrontsService } from './modules/storefronts/storefronts.service';
import { UasService } from './modules/uas/uas.service';
import { UsersService } from './modules/users/users.service';
import { VmsService } from './modules/vms/vms.service';
import { VmCommandsService } from './modules/vmm/vm-commands.service';
import { VmReportsService } from './modules/vmm/vm-reports.service';
import { VmReportGuard } from './modules/vmm/report-guard';
import { WatchersService } from './modules/watchers/watchers.service';

export interface Services {
  config: GatewayConfig;
  log: Logger;
  ds: DataSource;
  bus: MessageBus;
  pubsub: UvePubSub;
  /** answers when Redis does (readiness) */
  redisPing: () => Promise<unknown>;
  /** transactions whose events and UVE-2 commands leave after the commit */
  txs: Transactions;
  /** UVE-2 outbox and its relay */
  commands: VmCommandsService;
  /** UVE-5 session-report inbox */
  reports: VmReportsService;
  /** UVE-5: only signed, fresh reports of provisioned VMs pass */
  reportGuard: VmReportGuard;
  /** state of the gateway's own server for a dependency: up, restarting, failed ('up' when external) */
  privateState: (dependency: 'database' | 'redis') => string;
  keys: KeysService;
  limits: RateLimits;
  users: UsersService;
  storefronts: StorefrontsService;
  uas: UasService;
  procurements: ProcurementsService;
  vms: VmsService;
  sessions: SessionsService;
  watchers: WatchersService;
  invitations: InvitationsService;
  snapshots: SnapshotsService;
  /** `/metrics`; `metrics.registerGauge` adds a gauge collected at each scrape */
  metrics: MetricsService;
}

export async function createServices(deps: {
  config: GatewayConfig;
  log: Logger;
  ds: DataSource;
  bus: MessageBus;
  pubsub: UvePubSub;
  redisPing: () => Promise<unknown>;
  /** a Redis connection that fails fast (no offline queue): rate-limit counts */
  redis: Redis;
  privateState: (dependency: 'database' | 'redis') => string;
  redisUrl: string;
  publicUrl: () => string;
}): Promise<Services> {
  const { config, log, ds, bus, pubsub } = deps;
  const keys = await KeysService.load(ds);
  setScryptCost(config.passwordScryptN);
  const limits = new RateLimits(deps.redis, config.queuePrefix, {
    loginPerMin: config.loginRatePerMin, registerPerMin: config.registerRatePerMin, requestPerMin: config.requestRatePerMin,
  });
  const users = new UsersService(ds, keys, limits, { accessTokenTtlSec: config.accessTokenTtlSec, registration: config.registration });
  const commands = new VmCommandsService(ds, bus, log);
  const txs = new Transactions(ds, pubsub, commands, log);
  const vms = new VmsService(ds, bus, txs, commands, pubsub, log, {
    heartbeatTimeoutMs: config.vmHeartbeatTimeoutMs,
    defaultProvider: config.vmProvider,
    gatewayUrl: deps.publicUrl,
    redisUrl: deps.redisUrl,
    queuePrefix: config.queuePrefix,
    retentionMs: config.vmRetentionSec * 1000,
  });
  const uas = new UasService(ds, txs, log, {
    heartbeatTimeoutMs: config.vmHeartbeatTimeoutMs,
    downloadTimeoutMs: config.packageDownloadTimeoutSec * 1000,
  });
  const sessions = new SessionsService(ds, txs, keys, limits, uas, log, {
    heartbeatTimeoutMs: config.vmHeartbeatTimeoutMs,
    sessionTokenTtlSec: config.sessionTokenTtlSec,
    reconnectWindowMs: config.reconnectWindowSec * 1000,
    // staged VM Data lives in PostgreSQL beside the chunks (the fs store has none)
    vmDataStageMs: config.vmDataStore === 'postgres' ? config.vmDataStageSec * 1000 : 0,
    maxOpenSessionsPerUser: config.maxOpenSessionsPerUser,
    requestWaitMs: config.requestWaitMs,
    vmCpuHigh: config.vmCpuHigh,
    restoreAhead: config.restoreAhead,
  });
  const snapshots = new SnapshotsService(ds, new VmDataStore(vmDataChunks(config, ds), config.vmDataKey), config.vmDataKeep);
  sessions.vmData = snapshots;
  snapshots.onDeleted = (snapshot) => sessions.dropRestoreAheadOf(snapshot);
  // before its sessions are disconnected: what they staged is their VM Data when they reconnect
  // (a failure here must not keep them from being disconnected: logged, not thrown)
  vms.onVmLost(async (vmId) => {
    try {
      for (const k of await snapshots.keepStagedOf(vmId)) {
        await sessions.recordEvent(k.snapshot.sessionId!, 'SNAPSHOT_SAVED', snapshotSavedData(k.snapshot, { chunks: k.chunks, chunksSent: 0, chunksWritten: 0 }, { staged: true, stagedAt: k.stagedAt.toISOString() }));
      }
    } catch (e) {
      log.warn('the staged VM Data of a lost VM\'s sessions was not kept', { vmId, error: (e as Error).message });
    }
  });
  vms.onVmLost((vmId, reason) => sessions.onVmLost(vmId, reason));
  // a drop and its save commit in either order: after each, the restore ahead may be prepared
  if (config.restoreAhead) {
    txs.onCommitted((uow) => {
      for (const ev of uow.events) {
        if (ev.type !== 'DISCONNECTED' && ev.type !== 'SNAPSHOT_SAVED') continue;
        // (a commit just before the gateway stops finds the database closing: nothing to say then)
        sessions.prepareRestoreAhead(ev.sessionId).catch((e: Error) => ds.isInitialized && log.warn('restore ahead not prepared', { sessionId: ev.sessionId, error: e.message }));
      }
    });
  }
  const procurements = new ProcurementsService(ds, txs, pubsub, uas, log);
  vms.onDeploymentReported((m) => procurements.onDeploymentChanged(m));
  vms.onJoined((m) => uas.deployToNewVm(m.vmId, m.platform, m.deployed));
  const storefronts = new StorefrontsService(ds);
  storefronts.onDisabled((s) => procurements.cancelForStorefront(s, `cancelled: storefront ${s.name} was disabled`).then(() => undefined));
  const reports = new VmReportsService(ds, log, sessions);
  const metrics = new MetricsService(ds, bus, log);
  const reportGuard = new VmReportGuard(vms, deps.redis, config.queuePrefix, config.vmReportMaxAgeSec * 1000, log, (reason) => metrics.vmReportsRefused.inc({ reason }));
  reports.onNotItsSession((m) => reportGuard.notItsSession(m));
  metrics.registerGauge('uve_outbox_commands', 'UVE-2 commands in the outbox not yet acknowledged by their VM, and the age of the oldest (seconds).', ['kind'], async () => {
    const b = await commands.backlog();
    return [{ labels: { kind: 'pending' }, value: b.pending }, { labels: { kind: 'oldest_age_seconds' }, value: b.oldestAgeSec }];
  });
  metrics.registerGauge('uve_report_lag', 'UVE-5 session reports received but not applied yet (pending), those whose application failed and waits for a retry (failing), and how long the oldest has waited (seconds).', ['kind'], async () => {
    const l = await reports.lag();
    return [{ labels: { kind: 'pending' }, value: l.pending }, { labels: { kind: 'failing' }, value: l.failing }, { labels: { kind: 'oldest_age_seconds' }, value: l.oldestAgeSec }];
  });
  return {
    config, log, ds, bus, pubsub, txs, commands, reports, reportGuard, keys, limits, users, vms, sessions,
    redisPing: deps.redisPing,
    privateState: deps.privateState,
    storefronts,
    uas,
    procurements,
    watchers: new WatchersService(ds, txs, users, sessions),
    invitations: new InvitationsService(ds, txs, users, sessions, { ttlMs: config.invitationTtlSec * 1000 }),
    snapshots,
    metrics,
  };
}

/** the VM Data store UVE_VM_DATA_STORE names */
function vmDataChunks(config: GatewayConfig, ds: DataSource): ChunkStore {
  if (config.vmDataStore === 'fs') return new FsChunkStore(config.vmDataDir ?? path.join(config.dataDir, 'vm-data'));
  return new PostgresChunkStore((ds.options as { url: string }).url, config.dbTimeoutMs, config.vmDataReaders, config.vmDataWriters);
}
