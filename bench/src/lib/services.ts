// The real services a bench runs against: an embedded PostgreSQL (the gateway's own starter, so a
// baseline can read the very rows the gateway serves) and the built gateway as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../..');
export const ADMIN = { username: 'admin', password: 'bench-admin-password' };

/** Where a bench keeps its files: BENCH_DATA_DIR (default /tmp/bench), one folder per run. */
export function dataDir(name: string): string {
  const base = process.env.BENCH_DATA_DIR ?? '/tmp/bench';
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, `${name}-`));
}

export interface Postgres {
  url: string;
  stop(): Promise<void>;
}

export async function startPostgres(dir: string): Promise<Postgres> {
  const { startEmbeddedPostgres } = require(path.join(ROOT, 'apps/gateway/dist/infra/postgres.js'));
  const { createLogger } = require(path.join(ROOT, 'apps/gateway/dist/common/logger.js'));
  return startEmbeddedPostgres(dir, createLogger('warn'));
}

export interface Gateway {
  url: string;
  graphqlUrl: string;
  wsUrl: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** the gateway's own allocator as `npm start` gives it (scripts/start.js; UVE_GLIBC_TUNABLES=off: none) */
export function gatewayAllocatorEnv(): Record<string, string> {
  const { allocatorEnv } = require(path.join(ROOT, 'apps/gateway/dist/infra/allocator.js'));
  return allocatorEnv(process.env.UVE_GLIBC_TUNABLES);
}

/**
 * The built gateway with limits that protect a deployment lifted (a bench is one client hammering
 * it) and `env` on top. `nodeArgs` go to node (e.g. --cpu-prof). Port: BENCH_PORT or any free one.
 * BENCH_GATEWAY_MAIN: another build's main.js (a copy of apps/gateway/dist before a change), to
 * measure before and after in turns on the same machine.
 */
export async function startGateway(dir: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Gateway> {
  const child = spawn(process.execPath, [...nodeArgs, process.env.BENCH_GATEWAY_MAIN ?? path.join(ROOT, 'apps/gateway/dist/main.js')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...gatewayAllocatorEnv(),
      ...(process.env.UVE_GLIBC_TUNABLES && { UVE_GLIBC_TUNABLES: process.env.UVE_GLIBC_TUNABLES }),
      UVE_HOST: '127.0.0.1',
      UVE_PORT: process.env.BENCH_PORT ?? '0',
      UVE_DATA_DIR: path.join(dir, 'gateway'),
      UVE_ADMIN_USERNAME: ADMIN.username,
      UVE_ADMIN_PASSWORD: ADMIN.password,
      // BENCH_GATEWAY_LOG=<file>: the gateway's info log (timestamped JSON lines) appended there, to time a start by stage
      UVE_LOG_LEVEL: process.env.BENCH_GATEWAY_LOG ? 'info' : 'warn',
      UVE_DOCKER: 'off',
      // the cheapest hash the gateway allows: a bench registers hundreds of users, it does not measure scrypt
      UVE_PASSWORD_SCRYPT_N: '1024',
      UVE_LOGIN_RATE_PER_MIN: '100000',
      UVE_REGISTER_RATE_PER_MIN: '100000',
      UVE_REQUEST_RATE_PER_MIN: '100000',
      UVE_MAX_OPEN_SESSIONS: '1000',
      // agent images of another build (docker/build-images.js --wasm-image), to compare builds in turns
      ...(process.env.UVE_VM_IMAGE_WASM ? { UVE_VM_IMAGE_WASM: process.env.UVE_VM_IMAGE_WASM } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr!.on('data', (b: Buffer) => (out += b));
  if (process.env.BENCH_GATEWAY_LOG) child.stderr!.pipe(fs.createWriteStream(process.env.BENCH_GATEWAY_LOG, { flags: 'a' }));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start in 90 s:\n${out}`)), 90_000);
    child.stdout!.on('data', (b: Buffer) => {
      out += b;
      const m = /listening on (http:\/\/\S+)\/graphql/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}:\n${out}`));
    });
  }).catch(async (e) => {
    await stopChild(child);
    throw e;
  });
  return { url, graphqlUrl: `${url}/graphql`, wsUrl: `${url.replace(/^http/, 'ws')}/graphql`, child, stop: () => stopChild(child) };
}

/** SIGTERM (the gateway stops its VMs in order), SIGKILL after 20 s. */
export async function stopChild(child: ChildProcess, graceMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

/** One GraphQL request over HTTP that must succeed. */
export async function gql<T = any>(graphqlUrl: string, query: string, variables: Record<string, unknown> = {}, token?: string): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(graphqlUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: T; errors?: { message: string }[] };
  if (body.errors?.length || !body.data) throw new Error(`GraphQL request failed: ${JSON.stringify(body.errors ?? body).slice(0, 500)}`);
  return body.data;
}

export async function login(graphqlUrl: string, username = ADMIN.username, password = ADMIN.password): Promise<{ token: string; id: string }> {
  const d = await gql(graphqlUrl, `mutation($u:String!,$p:String!){ login(username:$u,password:$p){ token user { id } } }`, { u: username, p: password });
  return { token: d.login.token, id: d.login.user.id };
}

/** Polls `probe` every 100 ms until it returns something, bounded. */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms${last ? ` (${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A baseline server of bench/dist/baseline/ as its own process; resolves with the URL it prints ("listening on <url>"). */
export async function startBaseline(script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'bench/dist/baseline', script)], { env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b;
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (c) => reject(new Error(`${script} exited with ${c}`)));
  });
  return { url, child };
}

