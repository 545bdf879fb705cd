// Real services for one test suite: a fresh database on the run's PostgreSQL, a private Redis.
import path from 'node:path';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A fresh, empty database; the gateway migrates it. */
export async function freshDatabase(): Promise<string> {
  const base = process.env.UVE_TEST_PG_URL;
  if (!base) throw new Error('UVE_TEST_PG_URL is not set: run through jest with tests/jest.config.js');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

export interface TestRedis {
  url: string;
  stop(): Promise<void>;
}

/** A private, non-persistent redis-server, started the way the gateway starts its own. */
export function startRedis(): Promise<TestRedis> {
  const { startPrivateRedis } = require(path.join(__dirname, '../../apps/gateway/dist/infra/redis.js'));
  const { createLogger } = require(path.join(__dirname, '../../apps/gateway/dist/common/logger.js'));
  return startPrivateRedis(null, createLogger('warn'));
}

/** Resolves with the first value that satisfies `pick`, or rejects after `ms` with `what`. */
export function waitFor<T>(what: string, ms: number, subscribe: (done: (v: T) => void) => void | (() => void)): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup: void | (() => void);
    const timer = setTimeout(() => {
      if (cleanup) cleanup();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    cleanup = subscribe((v) => {
      clearTimeout(timer);
      if (cleanup) cleanup();
      resolve(v);
    });
  });
}

/** Polls an async condition until it holds (bounded); for state only observable by asking. */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | null | undefined | false>, everyMs = 50): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
