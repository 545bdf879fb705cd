// Two gateway replicas behind one address: a real HAProxy (Debian's haproxy) balancing every HTTP
// request and every WebSocket round robin over two gateway processes that share PostgreSQL and
// Redis, with UVE_PUBLIC_URL = the proxy, so VMs reach "the gateway" through it too. One client's
// HTTP requests and its subscription land on different gateways (the proxy names the one in a
// response header), and sessions, subscriptions, the pool lock and VM Data behave as with one.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { freePort, freshDatabase, recordForLeakCheck, startRedis, stopChild, until, type TestRedis } from '../support/services';
import { ADMIN, login, ok, registerUser, startGateway, subscribe, type GatewayProcess } from '../support/gateway';
import { near, openStream, pixel, uaId } from '../support/stream';
import { HAPROXY_DEFAULTS, startHaproxy } from '../support/haproxy';

const RED = { r: 255, g: 0, b: 0 };
let redis: TestRedis;
let gateways: GatewayProcess[] = [];
let proxy: ChildProcess | undefined;
let proxyUrl: string;
let admin: string;
let dir: string;
const clients: Client[] = [];

/** HAProxy in front of the gateways: round robin per request, the chosen server named in X-Uve-Gateway */
function startProxy(port: number, backends: { name: string; port: number }[]): Promise<ChildProcess> {
  return startHaproxy(dir, [
    ...HAPROXY_DEFAULTS,
    // the server side of every request is closed after it: each request is balanced on its own
    '  option http-server-close',
    'frontend uve', `  bind 127.0.0.1:${port}`, '  default_backend gateways',
    'backend gateways', '  balance roundrobin', '  http-response set-header X-Uve-Gateway %s',
    ...backends.map((b) => `  server ${b.name} 127.0.0.1:${b.port}`),
  ], () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok));
}

/** GraphQL over HTTP through the proxy; which gateway answered */
async function viaProxy(query: string, variables: Record<string, unknown>, token: string): Promise<{ data: Record<string, any>; gateway: string }> {
  const res = await fetch(`${proxyUrl}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: Record<string, any>; errors?: unknown[] };
  if (body.errors?.length || !body.data) throw new Error(`GraphQL error through the proxy: ${JSON.stringify(body.errors)}`);
  return { data: body.data, gateway: res.headers.get('x-uve-gateway') ?? '?' };
}

/** a graphql-ws client through the proxy that records which gateway took its WebSocket */
function wsViaProxy(token: string): { client: Client; gateway: () => string | null } {
  let gateway: string | null = null;
  class Recording extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      this.on('upgrade', (res) => (gateway = String(res.headers['x-uve-gateway'] ?? '?')));
    }
  }
  const client = createClient({ url: `${proxyUrl.replace(/^http/, 'ws')}/graphql`, webSocketImpl: Recording, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0, lazy: true });
  clients.push(client);
  return { client, gateway: () => gateway };
}

const vmCount = async () => ((await ok(proxyGw(), `{ vms(platform: WASM) { id } }`, {}, admin)).vms as unknown[]).length;
const proxyGw = () => ({ graphqlUrl: `${proxyUrl}/graphql` });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-replicas-'));
  redis = await startRedis();
  const [proxyPort, portA, portB] = [await freePort(), await freePort(), await freePort()];
  proxyUrl = `http://127.0.0.1:${proxyPort}`;
  recordForLeakCheck('UVE_GATEWAY_URL', proxyUrl); // the VMs are told the proxy's address
  const env = {
    DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'replicas', UVE_PUBLIC_URL: proxyUrl,
    UVE_SAMPLE_UAS: 'true', UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM', UVE_VM_CAPACITY: '4', UVE_REQUEST_WAIT_MS: '30000',
  };
  // started together on an empty database: without the pool lock each would warm a VM of its own
  gateways = await Promise.all([startGateway({ ...env, UVE_PORT: String(portA) }), startGateway({ ...env, UVE_PORT: String(portB) })]);
  proxy = await startProxy(proxyPort, [{ name: 'gw-a', port: portA }, { name: 'gw-b', port: portB }]);
  admin = (await login(proxyGw(), ADMIN.username, ADMIN.password)).token;
  await until('the pool to warm a WASM VM', 60_000, async () => ((await ok(proxyGw(), `{ vms(status: IDLE, platform: WASM) { id } }`, {}, admin)).vms.length ? true : null), 100);
}, 180_000);

afterAll(async () => {
  for (const c of clients) await c.dispose();
  if (proxy) await stopChild(proxy, 10_000);
  for (const g of gateways) await g.stop();
  await redis?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it('balances one client over both gateways: its session, subscription, VM Data and the pool work as with one gateway', async () => {
  const user = await registerUser(proxyGw(), 'replica-user');
  const paint = await uaId(proxyGw() as GatewayProcess, user.token, 'paint');
  // the proxy takes turns: over a few requests both gateways answer
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) seen.add((await viaProxy(`{ me { id } }`, {}, user.token)).gateway);
  expect(seen).toEqual(new Set(['gw-a', 'gw-b']));

  const REQUEST = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id state vm { id } restoredFrom { id kind } connection { url token } } }`;
  const input = { uaId: paint, reconnectionMethod: 'NO_LOSS', terminal: { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] } };
  const requested = await viaProxy(REQUEST, { i: input }, user.token);
  const s = requested.data.requestApplication as { id: string; vm: { id: string }; connection: { url: string; token: string } };

  // the session's events through a WebSocket on the other gateway than the one that made the session
  let ws = wsViaProxy(user.token);
  let events = subscribe(ws.client, `subscription($s: ID!) { sessionEvents(sessionId: $s, replay: true) { type data } }`, { s: s.id });
  await events.next((e) => e.data?.sessionEvents?.type === 'ASSIGNED', 20_000);
  if (ws.gateway() === requested.gateway) {
    // round robin sent it to the same one: the next connection goes to the other
    events.dispose();
    ws = wsViaProxy(user.token);
    events = subscribe(ws.client, `subscription($s: ID!) { sessionEvents(sessionId: $s, replay: true) { type data } }`, { s: s.id });
    await events.next((e) => e.data?.sessionEvents?.type === 'ASSIGNED', 20_000);
  }
  expect(ws.gateway()).not.toBe(requested.gateway);
  expect(['gw-a', 'gw-b']).toContain(ws.gateway());

  // live events made by whichever gateway consumes the VM's reports reach this subscription
  const stream = await openStream(s.connection);
  await stream.frame(() => true, 'at all');
  const drawn = await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 200, y: 150, button: 0 }, 'after painting');
  expect(near(pixel(drawn, 200, 150), RED)).toBe(true);
  await events.next((e) => e.data?.sessionEvents?.type === 'CONNECTED', 20_000);

  // the pool lock: the warm VM got busy, so one more is warmed, by one gateway only (both run the
  // pool every 2 s; without the lock each would have started one)
  const idleOther = async () => ((await ok(proxyGw(), `{ vms(status: IDLE, platform: WASM) { id } }`, {}, admin)).vms as { id: string }[]).filter((v) => v.id !== s.vm.id);
  await until('the pool to warm another VM', 60_000, async () => ((await idleOther()).length ? true : null), 100);
  const all = (await ok(proxyGw(), `{ vms(platform: WASM) { id name status statusReason createdAt } }`, {}, admin)).vms;
  expect(all).toHaveLength(2);

  stream.client.close(); // dropped without a goodbye: the VM saves its VM Data through the proxy
  const saved = await events.next((e) => e.data?.sessionEvents?.type === 'SNAPSHOT_SAVED', 30_000);
  expect(saved.data!.sessionEvents.data).toMatchObject({ kind: 'FULL' });

  // asked again (through either gateway): the same session, restored from that VM Data
  const again = (await viaProxy(REQUEST, { i: input }, user.token)).data.requestApplication as { id: string; restoredFrom: { id: string; kind: string }; connection: { url: string; token: string } };
  expect(again).toMatchObject({ id: s.id, restoredFrom: { id: (saved.data!.sessionEvents.data as { snapshotId: string }).snapshotId, kind: 'FULL' } });
  const back = await openStream(again.connection);
  try {
    const first = await back.frame(() => true, 'after the restore');
    expect(near(pixel(first, 200, 150), RED)).toBe(true);
    await events.next((e) => e.data?.sessionEvents?.type === 'SNAPSHOT_RESTORED', 20_000);
  } finally {
    await back.close();
  }
  await viaProxy(`mutation($s: ID!) { endSession(sessionId: $s) { state } }`, { s: s.id }, user.token);
  await events.next((e) => e.data?.sessionEvents?.type === 'ENDED', 20_000);
}, 180_000);
