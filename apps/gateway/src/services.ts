// The services of one gateway process, built once and handed to resolvers through the context.
import type { DataSource } from 'typeorm';
import type { MessageBus } from '@uve/queue';
import type { GatewayConfig } from './config';
import type { Logger } from './common/logger';
import type { UvePubSub } from './common/pubsub';
import { KeysService } from './modules/auth/keys.service';
import { MetricsService } from './modules/metrics/metrics.service';
import { InvitationsService } from './modules/invitations/invitations.service';
import { ProcurementsService } from './modules/procurements/procurements.service';
import { SessionsService } from './modules/sessions/sessions.service';
import { SnapshotsService } from './modules/snapshots/snapshots.service';
import { StorefrontsService } from './modules/storefronts/storefronts.service';
import { UasService } from './modules/uas/uas.service';
import { UsersService } from './modules/users/users.service';
import { VmsService } from './modules/vms/vms.service';
import { WatchersService } from './modules/watchers/watchers.service';

export interface Services {
  config: GatewayConfig;
  log: Logger;
  ds: DataSource;
  bus: MessageBus;
  pubsub: UvePubSub;
  /** answers when Redis does (readiness) */
  redisPing: () => Promise<unknown>;
  /** state of the gateway's own server for a dependency: up, restarting, failed ('up' when external) */
  privateState: (dependency: 'database' | 'redis') => string;
  keys: KeysService;
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
  privateState: (dependency: 'database' | 'redis') => string;
  redisUrl: string;
  publicUrl: () => string;
}): Promise<Services> {
  const { config, log, ds, bus, pubsub } = deps;
  const keys = await KeysService.load(ds);
  const users = new UsersService(ds, keys, config.accessTokenTtlSec);
  const vms = new VmsService(ds, bus, pubsub, log, {
    heartbeatTimeoutMs: config.vmHeartbeatTimeoutMs,
    defaultProvider: config.vmProvider,
    gatewayUrl: deps.publicUrl,
    redisUrl: deps.redisUrl,
    queuePrefix: config.queuePrefix,
  });
  const sessions = new SessionsService(ds, bus, pubsub, keys, log, { heartbeatTimeoutMs: config.vmHeartbeatTimeoutMs, sessionTokenTtlSec: config.sessionTokenTtlSec });
  vms.onVmLost((vmId, reason) => sessions.onVmLost(vmId, reason));
  return {
    config, log, ds, bus, pubsub, keys, users, vms, sessions,
    redisPing: deps.redisPing,
    privateState: deps.privateState,
    storefronts: new StorefrontsService(ds),
    uas: new UasService(ds, bus),
    procurements: new ProcurementsService(ds, pubsub),
    watchers: new WatchersService(ds, users),
    invitations: new InvitationsService(ds),
    snapshots: new SnapshotsService(ds),
    metrics: new MetricsService(ds, bus, log),
  };
}
