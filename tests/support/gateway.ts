// The real gateway as a child process (node apps/gateway/dist/main.js), and clients that talk to
// it the way users do: GraphQL over HTTP and graphql-ws over WebSocket.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { Collector, freshDatabase, recordForLeakCheck, startRedis, stopChild, testRunEnv, until, type TestRedis } from './services';

export const ROOT = path.resolve(__dirname, '../..');
export const GATEWAY_MAIN = path.join(ROOT, 'apps/gateway/dist/main.js');
export const ADMIN = { username: 'admin', password: 'admin-password-1' };

/** where a gateway (or a proxy in front of several) answers */
export interface GatewayAddress {
  url: string;
  graphqlUrl: string;
  wsUrl: string;
}

/** a gateway address from its base URL (http://host:port) */
export const gatewayAddress = (url: string): GatewayAddress => ({ url, graphqlUrl: `${url}/graphql`, wsUrl: `${url.replace(/^http/, 'ws')}/graphql` });

export interface GatewayProcess extends GatewayAddress {
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/** The environment every test gateway starts from (a suite adds or overrides what it is about). */
export function gatewayTestEnv(env: Record<string, string>): Record<string, string | undefined> {
  return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      UVE_HOST: '127.0.0.1',
      UVE_PORT: '0',
      UVE_ADMIN_USERNAME: ADMIN.username,
      UVE_ADMIN_PASSWORD: ADMIN.password,
      UVE_SAMPLE_UAS: 'false',
      UVE_WARM_VMS: '0',
      UVE_LOG_LEVEL: process.env.UVE_TEST_GATEWAY_LOG ?? 'warn',
      // limits that protect a real deployment are tested by their own suite; elsewhere they must
      // not be what a test trips over (and the production scrypt cost would make users slow to create)
      UVE_PASSWORD_SCRYPT_N: '16384',
      UVE_LOGIN_RATE_PER_MIN: '10000',
      UVE_REGISTER_RATE_PER_MIN: '10000',
      UVE_REQUEST_RATE_PER_MIN: '10000',
      UVE_MAX_OPEN_SESSIONS: '1000',
      // no VM started on demand unless a test asks: a refusal is then immediate and no agent appears
      UVE_REQUEST_WAIT_MS: '0',
      ...testRunEnv(),
      ...env,
  };
}

/** Runs the built gateway; a gateway that fails or times out starting is stopped (with what it started). */
export async function startGateway(env: Record<string, string>, opts: { startTimeoutMs?: number } = {}): Promise<GatewayProcess> {
  // (a deprecation's stack in its output: failOnWarnings names the code that caused it)
  const child = spawn(process.execPath, ['--trace-deprecation', GATEWAY_MAIN], {
    cwd: ROOT,
    env: gatewayTestEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const startMs = opts.startTimeoutMs ?? 60_000;
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway did not start in ${startMs / 1000} s:\n${out}`)), startMs);
      const onData = () => {
        const m = /listening on (http:\/\/\S+)\/graphql/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      child.stdout!.on('data', onData);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`gateway exited with ${code}:\n${out}`));
      });
    });
  } catch (e) {
    // half started: its PostgreSQL, Redis and VMs go with it
    await stopChild(child, 10_000);
    throw e;
  }
  // VMs it provisions are told this URL (UVE_GATEWAY_URL): how the leak check knows them
  recordForLeakCheck('UVE_GATEWAY_URL', url);
  return {
    ...gatewayAddress(url),
    child,
    output: () => out,
    stop: async () => {
      await stopChild(child, 20_000);
      failOnWarnings('the gateway', out);
    },
  };
}

/**
 * Throws when a process's output has a warning the tests fail on (tests/support/leak-check-env.js
 * does it for the test file's own process): node-postgres's second query on a busy connection.
 */
export function failOnWarnings(who: string, output: string): void {
  const at = output.search(/DeprecationWarning: Calling client\.query\(\) when the client is already executing a query/);
  if (at >= 0) throw new Error(`${who} warned:\n${output.slice(at, at + 3000)}`);
}

/** The value of one series in /metrics text (`name{label="value",...}`, labels in the order the gateway wrote them), or undefined. */
export function metricSample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

export interface GqlError {
  message: string;
  extensions?: { code?: string; [k: string]: unknown };
}
export interface GqlResult<T = Record<string, any>> {
  data?: T | null;
  errors?: GqlError[];
  status: number;
}

/** One GraphQL request over HTTP; `auth` is a bearer token or `ApiKey …`. */
export async function gql<T = Record<string, any>>(g: { graphqlUrl: string }, query: string, variables: Record<string, unknown> = {}, auth?: string): Promise<GqlResult<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (auth) headers.authorization = auth.startsWith('ApiKey ') ? auth : `Bearer ${auth}`;
  const res = await fetch(g.graphqlUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as Omit<GqlResult<T>, 'status'>;
  return { ...body, status: res.status };
}

/** The data of a request that must succeed. */
export async function ok<T = Record<string, any>>(g: { graphqlUrl: string }, query: string, variables: Record<string, unknown> = {}, auth?: string): Promise<T> {
  const r = await gql<T>(g, query, variables, auth);
  if (r.errors?.length || !r.data) throw new Error(`GraphQL request failed: ${JSON.stringify(r.errors ?? r)}`);
  return r.data;
}

/** The code of a request that must be refused. */
export async function refusal(g: { graphqlUrl: string }, query: string, variables: Record<string, unknown> = {}, auth?: string): Promise<GqlError> {
  const r = await gql(g, query, variables, auth);
  if (!r.errors?.length) throw new Error(`expected a refusal, got ${JSON.stringify(r.data)}`);
  return r.errors[0]!;
}

/**
 * A gateway on a fresh database and a Redis of its own, its admin logged in, and `idleWasm` WASM
 * VMs up (UVE_WARM_VMS); `stop` ends both.
 */
export async function startWasmStack(env: Record<string, string>, idleWasm: number): Promise<{ gw: GatewayProcess; redis: TestRedis; admin: string; stop(): Promise<void> }> {
  const redis = await startRedis();
  const gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_SAMPLE_UAS: 'true', UVE_WARM_VMS: String(idleWasm), ...env }).catch(async (e) => {
    await redis.stop();
    throw e;
  });
  const admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  await idleVms(gw, admin, idleWasm);
  return { gw, redis, admin, stop: async () => { await gw.stop(); await redis.stop(); } };
}

/** The ids of at least `n` IDLE VMs of `platform` (a bounded wait: the pool warms them). */
export function idleVms(g: GatewayAddress, admin: string, n: number, platform = 'WASM', ms = 30_000): Promise<string[]> {
  return until(`${n} idle ${platform} VMs`, ms, async () => {
    const d = await gql(g, `query($p: Platform) { vms(status: IDLE, platform: $p) { id } }`, { p: platform }, admin);
    const ids = (d.data?.vms ?? []).map((v: { id: string }) => v.id);
    return ids.length >= n ? ids : null;
  }, 100);
}

export async function login(g: { graphqlUrl: string }, username: string, password: string): Promise<{ token: string; id: string }> {
  const d = await ok<{ login: { token: string; user: { id: string } } }>(g, `mutation($u:String!,$p:String!){ login(username:$u,password:$p){ token user { id } } }`, { u: username, p: password });
  return { token: d.login.token, id: d.login.user.id };
}

export async function registerUser(g: { graphqlUrl: string }, username: string, password = 'password-123'): Promise<{ token: string; id: string }> {
  const d = await ok<{ register: { token: string; user: { id: string } } }>(g, `mutation($i:RegisterInput!){ register(input:$i){ token user { id } } }`, { i: { username, password } });
  return { token: d.register.token, id: d.register.user.id };
}

export function wsClient(g: { wsUrl: string }, token?: string): Client {
  return createClient({
    url: g.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
}

type SubscriptionItem<T> = { data?: T | null; errors?: readonly GqlError[] };

/** Collects a subscription's results; `next(pred)` waits (bounded) for one that matches. */
export function subscribe<T = Record<string, any>>(client: Client, query: string, variables: Record<string, unknown> = {}) {
  const results = new Collector<SubscriptionItem<T>>();
  let failure: unknown = null;
  const dispose = client.subscribe<T>({ query, variables }, {
    next: (v) => results.push(v as SubscriptionItem<T>),
    error: (e) => (failure = e),
    complete: () => undefined,
  });
  return {
    items: results.items,
    failure: () => failure,
    dispose,
    next: (pred: (x: SubscriptionItem<T>) => boolean, ms = 15_000) =>
      results.waitFor(pred, `a matching subscription result (got ${JSON.stringify(results.items).slice(0, 500)}${failure ? `, error ${JSON.stringify(failure)}` : ''})`, ms),
  };
}

export type Subscription<T = Record<string, any>> = ReturnType<typeof subscribe<T>>;

/**
 * Like `subscribe`, but resolves only once the server has acknowledged the subscription, so that
 * what the test does next cannot be missed. graphql-ws sends nothing when a subscription starts, so
 * the acknowledgement is a result: the first one (a replayed event, e.g. `sessionEvents(…, replay:
 * true)` replays at least REQUESTED), or, for a stream with no replay, one caused by `poke` (called
 * again every `everyMs` until a result matching `ack` arrives, bounded by `ms`).
 */
export async function subscribeLive<T = Record<string, any>>(
  client: Client,
  query: string,
  variables: Record<string, unknown> = {},
  opts: { ack?: (x: SubscriptionItem<T>) => boolean; poke?: () => Promise<unknown>; everyMs?: number; ms?: number } = {},
): Promise<Subscription<T>> {
  const sub = subscribe<T>(client, query, variables);
  const ack = opts.ack ?? (() => true);
  const ms = opts.ms ?? 15_000;
  try {
    if (!opts.poke) {
      await sub.next(ack, ms);
      return sub;
    }
    const end = Date.now() + ms;
    for (;;) {
      await opts.poke();
      try {
        await sub.next(ack, Math.min(opts.everyMs ?? 1_000, Math.max(1, end - Date.now())));
        return sub;
      } catch (e) {
        if (Date.now() >= end) throw e;
      }
    }
  } catch (e) {
    sub.dispose();
    throw e;
  }
}

/**
 * For suites whose VMs are fakes that never download a package: makes every version of the UA
 * AVAILABLE, as the INSTALLED report of a real VM would (catalog truth, modules/uas).
 */
export async function markVersionsAvailable(databaseUrl: string, uaId: string): Promise<void> {
  const { Client } = require('pg') as typeof import('pg');
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    await db.query(`UPDATE ua_versions SET status = 'AVAILABLE' WHERE ua_id = $1`, [uaId]);
  } finally {
    await db.end();
  }
}

/**
 * A WASM UA a storefront provided and that fake VMs "installed" (its versions marked AVAILABLE):
 * what the control-plane suites request sessions of. Returns its id.
 */
export async function procuredPaintUa(g: { graphqlUrl: string }, adminToken: string, databaseUrl: string): Promise<string> {
  const sf = await ok(g, `mutation { registerStorefront(name: "S", baseUrl: "https://s.example") { storefront { id } } }`, {}, adminToken);
  const p = await ok(g, `mutation($s: ID!, $i: ProvideApplicationInput!) { procureApplication(storefrontId: $s, input: $i) { ua { id } } }`, {
    s: sf.registerStorefront.storefront.id,
    i: { storefrontAppId: 'paint', name: 'Paint', version: '1.0.0', platform: 'WASM', packageUrl: 'paint.tar', sha256: 'd'.repeat(64), sizeBytes: 10 },
  }, adminToken);
  const uaId: string = p.procureApplication.ua.id;
  await markVersionsAvailable(databaseUrl, uaId);
  return uaId;
}
