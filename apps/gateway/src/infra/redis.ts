// The embedded default for Redis: without REDIS_URL the gateway starts a private redis-server
// from PATH on a free loopback port, with its files in the data folder.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort } from './free-port';
import { ConfigError } from '../config';
import type { Logger } from '../common/logger';

export interface RunningRedis {
  url: string;
  stop(): Promise<void>;
}

export const REDIS_MISSING_HELP =
  'redis-server was not found on PATH. Install it (Debian/Ubuntu: sudo apt-get install redis-server) or set REDIS_URL to a running Redis.';

/** Checked before anything starts, so a missing redis-server fails fast. */
export function assertRedisServerOnPath(): void {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).error) throw new ConfigError(REDIS_MISSING_HELP);
}

/** With a data folder, queued messages survive a restart (append-only file); without, nothing is written. */
export async function startPrivateRedis(dataDir: string | null, log: Logger): Promise<RunningRedis> {
  assertRedisServerOnPath();
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--protected-mode', 'yes'];
  if (dataDir) {
    const dir = path.join(dataDir, 'redis');
    fs.mkdirSync(dir, { recursive: true });
    args.push('--dir', dir, '--appendonly', 'yes');
  } else args.push('--appendonly', 'no');
  const child: ChildProcess = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out.slice(-500)}`)));
    setTimeout(() => reject(new Error(`redis-server did not get ready in 10 s: ${out.slice(-500)}`)), 10_000).unref();
  });
  child.stdout?.resume();
  child.stderr?.resume();
  log.info('private Redis started', { port });
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
