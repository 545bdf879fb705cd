// Composes one gateway process: storage (embedded or configured), migrations, services, the
// GraphQL server, the UVE-5 consumer and the VM watchdog.
import 'reflect-metadata';
import IORedis from 'ioredis';
import { createMessageBus } from '@uve/queue';
import type { GatewayConfig } from './config';
import { createLogger, type Logger } from './common/logger';
import { createUvePubSub } from './common/pubsub';
import { createDataSource } from './db/data-source';
import { startEmbeddedPostgres } from './infra/postgres';
import { assertRedisServerOnPath, startPrivateRedis } from './infra/redis';
import { buildUveSchema } from './graphql/schema';
import { startHttpServer } from './graphql/server';
import { createServices, type Services } from './services';
import { consumeVmReports, startVmWatchdog } from './modules/vmm/uve5.consumer';
import { createProviders } from './modules/vms/providers';
import { VmPool } from './modules/vms/vm-pool';
import { registerSampleUas } from './modules/uas/samples';
import type { DataSource } from 'typeorm';

export interface RunningGateway {
  url: string;
  services: Services;
  stop(): Promise<void>;
}

const MIGRATION_LOCK = 7_426_001;

/** Several gateways may start at once on a fresh database: one migrates, the others wait. */
async function migrate(ds: DataSource, log: Logger): Promise<void> {
  const qr = ds.createQueryRunner();
  await qr.connect();
  try {
    await qr.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    const done = await ds.runMigrations();
    if (done.length) log.info('migrations applied', { migrations: done.map((m) => m.name) });
  } finally {
    await qr.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await qr.release();
  }
}

export async function startGateway(config: GatewayConfig): Promise<RunningGateway> {
  const log = createLogger(config.logLevel);
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((e: Error) => log.warn('stop step failed', { error: e.message }));
  };
  try {
    if (!config.redisUrl) assertRedisServerOnPath();
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      const pg = await startEmbeddedPostgres(config.dataDir, log);
      stops.push(pg.stop);
      databaseUrl = pg.url;
    }
    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      const redis = await startPrivateRedis(config.dataDir, log);
      stops.push(redis.stop);
      redisUrl = redis.url;
    }

    const ds = createDataSource(databaseUrl);
    await ds.initialize();
    stops.push(() => ds.destroy());
    await migrate(ds, log);

    const bus = createMessageBus({ redisUrl, prefix: config.queuePrefix, onError: (e) => log.warn('queue error', { error: e.message }) });
    stops.push(() => bus.close());
    const pubsub = createUvePubSub(redisUrl, config.queuePrefix);
    stops.push(() => pubsub.close());
    const pinger = new IORedis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    pinger.on('error', () => undefined); // readiness reports it
    stops.push(async () => pinger.disconnect());

    let publicUrl = config.publicUrl ?? '';
    const services = await createServices({ config, log, ds, bus, pubsub, redisUrl, redis: pinger, redisPing: () => pinger.ping(), publicUrl: () => publicUrl });
    services.keys.startRotationSchedule(config.signingKeyMaxAgeDays * 86400_000, log);
    stops.push(async () => services.keys.stopRotationSchedule());
    await services.users.ensureFirstAdmin(config.adminUsername, config.adminPassword, log);
    if (config.registerSampleUas) await registerSampleUas(ds, log);
    for (const provider of await createProviders(config, log)) services.vms.addProvider(provider);

    const schema = await buildUveSchema();
    const http = await startHttpServer(schema, services, config.host, config.port);
    stops.push(() => new Promise<void>((resolve) => http.server.close(() => resolve())));
    stops.push(http.stop);
    const address = http.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    publicUrl ||= url;

    const reports = consumeVmReports(services);
    stops.push(() => reports.close());
    services.reports.startSweeper();
    stops.push(() => services.reports.stopSweeper());
    services.commands.startRelay();
    stops.push(() => services.commands.stopRelay());
    const watchdog = startVmWatchdog(services);
    stops.push(() => watchdog.stop());
    stops.push(() => services.vms.closeProviders());
    await services.vms.reconcile();
    if (config.warmVmsPerPlatform > 0 || config.requestWaitMs > 0) {
      const pool = new VmPool(ds, services.vms, log, {
        platforms: config.poolPlatforms, warm: config.warmVmsPerPlatform, max: config.maxVms, capacity: config.vmCapacity,
        provider: config.vmProvider, idleRetireMs: config.idleRetireMs, intervalMs: 2000,
        cannotRun: (platform) => services.vms.cannotRun(config.vmProvider, platform),
      });
      services.sessions.vmSupply = pool;
      services.txs.onCommitted((uow) => {
        if (uow.events.length) pool.nudge();
      });
      services.vms.onVmLost(async () => pool.nudge());
      pool.start();
      stops.push(() => pool.stop());
    }

    log.info('gateway ready', { url: `${url}/graphql` });
    return { url, services, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
