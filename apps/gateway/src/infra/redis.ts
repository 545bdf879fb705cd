// The embedded default for Redis: without REDIS_URL the gateway starts a private redis-server
// from PATH on a free loopback port, with its files in the data folder, and keeps it running.
// It always has a password (who can write to Redis could otherwise flood the VMs' queues): kept
// in the data folder (0600) and handed to redis-server in a config file, never on its command
// line (which every local user can read in /proc).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort } from './free-port';
import { commandLine, identify, isRunning, terminate, type ProcessIdentity } from './proc';
import { Supervisor, type SupervisedState, type SupervisionOptions } from './supervisor';
import { ConfigError } from '../config';
import type { Logger } from '../common/logger';

export interface RunningRedis {
  url: string;
  /** up, restarting (exited on its own, being started again), failed or stopped */
  state(): SupervisedState;
  stop(): Promise<void>;
}

export const REDIS_MISSING_HELP =
  'redis-server was not found on PATH. Install it (Debian/Ubuntu: sudo apt-get install redis-server) or set REDIS_URL to a running Redis.';

/** Checked before anything starts, so a missing redis-server fails fast. */
export function assertRedisServerOnPath(): void {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).error) throw new ConfigError(REDIS_MISSING_HELP);
}

function spawnRedis(args: string[]): Promise<ChildProcess> {
  const child: ChildProcess = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise<ChildProcess>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server did not get ready in 10 s: ${out.slice(-500)}`));
    }, 10_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(child);
      }
    };
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}: ${out.slice(-500)}`));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', onExit);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** A private Redis an earlier run of this gateway left running (it was killed): stopped before a new one starts. */
async function stopLeftover(ownerFile: string, log: Logger): Promise<void> {
  let owner: ProcessIdentity;
  try {
    owner = JSON.parse(fs.readFileSync(ownerFile, 'utf8')) as ProcessIdentity;
  } catch {
    return;
  }
  if (isRunning(owner) && commandLine(owner.pid).includes('redis-server')) {
    log.warn('stopping the private Redis an earlier run left running', { pid: owner.pid });
    await terminate(owner, 5000);
  }
  fs.rmSync(ownerFile, { force: true });
}

/** The private Redis's password: the one kept in `dir` (so a restart keeps the URL), else a new one stored there 0600. */
function passwordIn(dir: string): string {
  const file = path.join(dir, 'password');
  try {
    const kept = fs.readFileSync(file, 'utf8').trim();
    if (/^[A-Za-z0-9_-]{32,}$/.test(kept)) {
      fs.chmodSync(file, 0o600);
      return kept;
    }
  } catch {
    // none yet
  }
  const password = randomBytes(32).toString('base64url');
  fs.writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return password;
}

/**
 * With a data folder, queued messages survive a restart (append-only file) and the server is
 * tracked there (pid and start time), so the next start stops one a crashed run left behind.
 * With `supervise`, a server that exits on its own is started again on the same port.
 */
export async function startPrivateRedis(
  dataDir: string | null,
  log: Logger,
  options: { port?: number; supervise?: SupervisionOptions; /** instead of the kept or a new one */ password?: string } = {},
): Promise<RunningRedis> {
  assertRedisServerOnPath();
  const port = options.port ?? (await freePort());
  // without a data folder the password and config live in a private temporary folder
  const dir = dataDir ? path.join(dataDir, 'redis') : fs.mkdtempSync(path.join(os.tmpdir(), 'uve-redis-'));
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o700);
  const password = options.password ?? passwordIn(dir);
  const configFile = path.join(dir, 'redis.conf');
  // set-proc-title no: redis-server rewrites its title over its environment by default, which hid
  // it from anything that finds a process by what it inherited (the tests' leak check looks for
  // UVE_TEST_RUN there, and missed two Redis servers a killed test worker left behind)
  fs.writeFileSync(configFile, `requirepass ${password}\nset-proc-title no\n`, { mode: 0o600 });
  fs.chmodSync(configFile, 0o600);
  const args = [configFile, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--protected-mode', 'yes'];
  let ownerFile: string | null = null;
  if (dataDir) {
    ownerFile = path.join(dir, 'owner.json');
    await stopLeftover(ownerFile, log);
    args.push('--dir', dir, '--appendonly', 'yes');
  } else args.push('--appendonly', 'no');
  const start = async () => {
    const child = await spawnRedis(args);
    if (ownerFile) fs.writeFileSync(ownerFile, JSON.stringify(identify(child.pid!)));
    return child;
  };
  const supervisor = new Supervisor('private Redis', log, start, options.supervise ?? null);
  supervisor.watch(await start());
  log.info('private Redis started', { port });
  return {
    url: `redis://:${password}@127.0.0.1:${port}`,
    state: () => supervisor.state,
    stop: async () => {
      await supervisor.stop();
      if (ownerFile) fs.rmSync(ownerFile, { force: true });
      if (!dataDir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
