// Real services for one test suite: a fresh database on the run's PostgreSQL, a private Redis.
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import type { ChildProcess } from 'node:child_process';
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
export async function startRedis(): Promise<TestRedis> {
  const { startPrivateRedis } = require(path.join(__dirname, '../../apps/gateway/dist/infra/redis.js'));
  const { createLogger } = require(path.join(__dirname, '../../apps/gateway/dist/common/logger.js'));
  const redis: TestRedis = await startPrivateRedis(null, createLogger('warn'));
  // every VM of a test talks to a Redis of the run: the leak check knows them by it
  recordForLeakCheck('REDIS_URL', redis.url);
  return redis;
}

// ---- what the run started (tests/support/global-teardown.js fails the run if any is left) -------

/** The env entry every process a test starts carries (set by the global setup), or {}. */
export function testRunEnv(): Record<string, string> {
  return process.env.UVE_TEST_RUN ? { UVE_TEST_RUN: process.env.UVE_TEST_RUN } : {};
}

/**
 * Records an env entry (`REDIS_URL=…`, `UVE_GATEWAY_URL=…`) that marks processes of this run the
 * tests did not spawn themselves: VMs a gateway starts get only the env it gives them.
 */
export function recordForLeakCheck(name: 'REDIS_URL' | 'UVE_GATEWAY_URL', value: string): void {
  const dir = process.env.UVE_TEST_RUN_DIR;
  if (dir) fs.appendFileSync(path.join(dir, 'markers'), `${name}=${value}\n`);
}

/** pids of the live descendants of `pid`, found through /proc/<pid>/stat parent links */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  for (let queue = [pid]; queue.length; ) {
    const next = children.get(queue.shift()!) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

/** SIGKILL to a process and every descendant (found first, so none is left as an orphan). */
export function killTree(pid: number): void {
  for (const p of [pid, ...descendants(pid)]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/**
 * Stops a child process: SIGTERM (it stops what it started), then after `graceMs` SIGKILL to it
 * and its descendants. Resolves once it exited.
 */
export async function stopChild(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.pid && killTree(child.pid), graceMs);
  await exited;
  clearTimeout(timer);
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

/** Waits for `pred` over values pushed later (or already pushed), failing after `timeoutMs`. */
export class Collector<T> {
  readonly items: T[] = [];
  private waiters: Array<{ pred: (t: T) => boolean; resolve: (t: T) => void }> = [];

  push(item: T): void {
    this.items.push(item);
    for (const w of [...this.waiters]) {
      if (w.pred(item)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(item);
      }
    }
  }

  /** the first item (from `from` on) matching `pred` */
  waitFor(pred: (t: T) => boolean, what: string, timeoutMs = 15_000, from = 0): Promise<T> {
    const found = this.items.slice(from).find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<T>((resolve, reject) => {
      const w = {
        pred,
        resolve: (t: T) => {
          clearTimeout(timer);
          resolve(t);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  get mark(): number {
    return this.items.length;
  }
}
