// UVE-1 sessions against two real gateway processes on one PostgreSQL and Redis, with VMs that
// speak UVE-2/UVE-5 over the real queue: selection, tokens, the state machine, events, liveness.
import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, markVersionsAvailable, ok, refusal, registerUser, startGateway, subscribe, subscribeLive, wsClient, type GatewayProcess } from '../support/gateway';
import { startFakeVm, type FakeVm } from '../support/fake-vm';
import type { Client } from 'graphql-ws';

let redis: TestRedis;
let gwA: GatewayProcess;
let gwB: GatewayProcess;
let adminToken: string;
let user: { token: string; id: string };
let uaId: string;
const vms: FakeVm[] = [];
const clients: Client[] = [];
const PREFIX = 'sess';

const REQUEST = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) {
  id state uaVersion reconnectionMethod vm { id } terminal { screenWidth codecs }
  connection { vmId url token expiresAt } stream { codec width height maxFps bitrateKbps } } }`;
const terminal = (codecs: string[] = ['H264', 'MJPEG']) => ({ screenWidth: 1280, screenHeight: 720, codecs, localResources: ['GEOLOCATION'] });
const request = (token: string, codecs?: string[], method = 'NORMAL') => gql(gwA, REQUEST, { i: { uaId, terminal: terminal(codecs), reconnectionMethod: method } }, token);

async function newVm(opts: Partial<Parameters<typeof startFakeVm>[0]> = {}): Promise<FakeVm> {
  const vm = await startFakeVm({ redisUrl: redis.url, prefix: PREFIX, gateway: gwA, admin: adminToken, heartbeatMs: 300, ...opts });
  vms.push(vm);
  // registration travels through the queue; the VMM shows the VM once it has taken it
  await until('the VM to register', 10_000, async () => (await gql(gwA, `{ vm(id: "${vm.id}") { status } }`, {}, adminToken)).data?.vm?.status === 'IDLE');
  return vm;
}

beforeAll(async () => {
  redis = await startRedis();
  // fake VMs beat every 300 ms against a 6 s timeout: only a VM that really went silent misses 20 beats
  const databaseUrl = await freshDatabase();
  const env = { DATABASE_URL: databaseUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: PREFIX, UVE_VM_HEARTBEAT_TIMEOUT_MS: '6000' };
  gwA = await startGateway(env);
  gwB = await startGateway(env);
  adminToken = (await login(gwA, ADMIN.username, ADMIN.password)).token;
  user = await registerUser(gwA, 'player1');
  const sf = await ok(gwA, `mutation { registerStorefront(name: "S", baseUrl: "https://s.example") { storefront { id } } }`, {}, adminToken);
  const p = await ok(gwA, `mutation($s: ID!, $i: ProvideApplicationInput!) { procureApplication(storefrontId: $s, input: $i) { ua { id } } }`, {
    s: sf.registerStorefront.storefront.id,
    i: { storefrontAppId: 'paint', name: 'Paint', version: '1.0.0', platform: 'WASM', packageUrl: 'paint.tar', sha256: 'd'.repeat(64), sizeBytes: 10, minScreenWidth: 320, minScreenHeight: 240 },
  }, adminToken);
  uaId = p.procureApplication.ua.id;
  await markVersionsAvailable(databaseUrl, uaId);
});

afterAll(async () => {
  for (const c of clients) await c.dispose();
  for (const vm of vms) await vm.close();
  await gwA?.stop();
  await gwB?.stop();
  await redis?.stop();
});

it('refuses a UA request with UNAVAILABLE and a reason when no VM can serve it, writing no session', async () => {
  const r = await request(user.token);
  expect(r.errors?.[0]?.extensions?.code).toBe('UNAVAILABLE');
  expect(r.errors?.[0]?.message).toMatch(/no WASM VM is running/);
  const mine = await ok(gwA, `{ mySessions { id } }`, {}, user.token);
  expect(mine.mySessions).toEqual([]);
});

it('selects a VM, returns a signed session token, and tells the VM over UVE-2', async () => {
  const vm = await newVm({ codecs: ['MJPEG'], capacity: 2 });
  const r = await request(user.token, ['H264', 'MJPEG']);
  expect(r.errors).toBeUndefined();
  const s = r.data!.requestApplication;
  expect(s).toMatchObject({ state: 'ASSIGNED', uaVersion: '1.0.0', reconnectionMethod: 'NORMAL', vm: { id: vm.id } });
  expect(s.connection.url).toBe(`ws://127.0.0.1:9/${vm.id}/uve3`);

  // the VM verifies the token with the gateway's public key (JWKS), as the agent does
  const jwks = createRemoteJWKSet(new URL(`${gwB.url}/.well-known/jwks.json`));
  const { payload } = await jwtVerify(s.connection.token, jwks, { audience: 'uve-vm', issuer: 'uve-vmm' });
  expect(payload).toMatchObject({ sub: user.id, sid: s.id, vm: vm.id, ua: uaId, role: 'PLAYER' });
  expect((payload.exp! - payload.iat!)).toBeLessThanOrEqual(600);

  const deploy = await vm.nextCommand('ua.deploy');
  expect(deploy).toMatchObject({ uaId, version: '1.0.0', packageUrl: 'https://s.example/paint.tar', sha256: 'd'.repeat(64) });
  const prepare = await vm.nextCommand('session.prepare', (c) => c.type === 'session.prepare' && c.sessionId === s.id);
  expect(prepare).toMatchObject({ userId: user.id, uaId, stream: { codec: 'MJPEG', width: 1280, height: 720 } });
  // the UC is told the same Output Stream before it connects
  expect(s.stream).toEqual((prepare as Extract<typeof prepare, { type: 'session.prepare' }>).stream);
  await ok(gwA, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
});

it('refuses terminals the UA or the VMs cannot serve', async () => {
  const vp8 = await request(user.token, ['VP8']);
  expect(vp8.errors?.[0]?.extensions?.code).toBe('UNAVAILABLE');
  expect(vp8.errors?.[0]?.message).toMatch(/encodes any of VP8/);
  const small = await gql(gwA, REQUEST, { i: { uaId, terminal: { ...terminal(), screenWidth: 200, screenHeight: 200 } } }, user.token);
  expect(small.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  const noCodecs = await gql(gwA, REQUEST, { i: { uaId, terminal: terminal([]) } }, user.token);
  expect(noCodecs.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  const unknownUa = await gql(gwA, REQUEST, { i: { uaId: '00000000-0000-4000-8000-000000000000', terminal: terminal() } }, user.token);
  expect(unknownUa.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
});

it("applies a session.connected that names no user (a user deleted meanwhile) without that actor, instead of holding the session's reports back", async () => {
  const vm = vms[0]!;
  const s = (await request(user.token)).data!.requestApplication;
  const nobody = randomUUID();
  await vm.report({ type: 'session.connected', sessionId: s.id, userId: nobody, uaId, role: 'PLAYER' } as never);
  const connected = await until('the session ACTIVE', 15_000, async () => {
    const now = (await ok(gwA, `{ session(id: "${s.id}") { state events(last: 10) { type actor { id } data } } }`, {}, user.token)).session;
    return now.state === 'ACTIVE' ? now.events.find((e: { type: string }) => e.type === 'CONNECTED') : null;
  }, 100);
  expect(connected).toMatchObject({ actor: null, data: { role: 'PLAYER', userId: nobody } });
  await ok(gwA, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
});

it('runs the state machine, delivering events to a subscriber on the other gateway', async () => {
  const vm = vms[0]!;
  const s = (await request(user.token)).data!.requestApplication;
  const sub = wsClient(gwB, user.token);
  clients.push(sub);
  // notifications have no replay: subscribed first on the same socket, they register without a
  // database round trip, while `events` is acknowledged only after its replay query answered
  const notes = subscribe(sub, `subscription { notifications { sessionEvent { type sessionId } } }`);
  const events = await subscribeLive(sub, `subscription($id: ID!) { sessionEvents(sessionId: $id, replay: true) { type sessionId actor { id } data } }`, { id: s.id });
  await events.next((e) => e.data?.sessionEvents?.type === 'ASSIGNED');
  expect(events.items.map((e) => e.data?.sessionEvents?.type)).toEqual(['REQUESTED', 'ASSIGNED']);

  // UVE-5: the VM reports the UC connected
  await vm.report({ type: 'session.connected', sessionId: s.id, userId: user.id, uaId, role: 'PLAYER' } as never);
  await events.next((e) => e.data?.sessionEvents?.type === 'CONNECTED');

  const q = (m: string) => gql(gwA, `mutation { ${m}(sessionId: "${s.id}") { state } }`, {}, user.token);
  expect((await q('resumeSession')).errors?.[0]?.extensions?.code).toBe('CONFLICT');
  expect((await q('suspendSession')).data?.suspendSession.state).toBe('SUSPENDED');
  await vm.nextCommand('session.suspend', (c) => c.type === 'session.suspend' && c.sessionId === s.id);
  expect((await q('suspendSession')).errors?.[0]?.extensions?.code).toBe('CONFLICT');
  expect((await q('resumeSession')).data?.resumeSession.state).toBe('ACTIVE');
  await vm.nextCommand('session.resume', (c) => c.type === 'session.resume' && c.sessionId === s.id);

  const ended = await ok(gwA, `mutation { endSession(sessionId: "${s.id}") { state endedAt connection { token } } }`, {}, user.token);
  expect(ended.endSession.state).toBe('ENDED');
  expect(ended.endSession.connection).toBeNull();
  const end = await events.next((e) => e.data?.sessionEvents?.type === 'ENDED');
  expect(end.data!.sessionEvents.actor.id).toBe(user.id);
  await vm.nextCommand('session.terminate', (c) => c.type === 'session.terminate' && c.sessionId === s.id);
  expect((await q('endSession')).errors?.[0]?.extensions?.code).toBe('CONFLICT');
  await notes.next((n) => n.data?.notifications?.sessionEvent?.type === 'ENDED' && n.data.notifications.sessionEvent.sessionId === s.id);

  // a late report from the VM cannot move a finished session
  await vm.report({ type: 'session.connected', sessionId: s.id, userId: user.id, uaId, role: 'PLAYER' } as never);
  const hist = await ok(gwB, `{ session(id: "${s.id}") { state events { type } } }`, {}, user.token);
  expect(hist.session.state).toBe('ENDED');
  expect(hist.session.events.map((e: { type: string }) => e.type)).toEqual(['REQUESTED', 'ASSIGNED', 'CONNECTED', 'SUSPENDED', 'RESUMED', 'ENDED']);
  events.dispose();
  notes.dispose();
});

it('ends a session normally when the VM reports that the UA quit by itself', async () => {
  const vm = vms[0]!;
  const s = (await request(user.token)).data!.requestApplication;
  await vm.report({ type: 'session.connected', sessionId: s.id, userId: user.id, uaId, role: 'PLAYER' } as never);
  await vm.report({ type: 'session.ended', sessionId: s.id, userId: user.id, uaId, reason: 'the application exited' } as never);
  const c = wsClient(gwB, user.token);
  clients.push(c);
  const events = subscribe(c, `subscription($id: ID!) { sessionEvents(sessionId: $id, replay: true) { type data } }`, { id: s.id });
  const ended = await events.next((e) => e.data?.sessionEvents?.type === 'ENDED');
  expect(ended.data!.sessionEvents.data).toMatchObject({ reason: 'the application exited' });
  events.dispose();
});

it("keeps a session private to its user and admins", async () => {
  const s = (await request(user.token)).data!.requestApplication;
  const other = await registerUser(gwA, 'snoop');
  expect((await refusal(gwA, `{ session(id: "${s.id}") { id } }`, {}, other.token)).extensions?.code).toBe('NOT_FOUND');
  expect((await refusal(gwA, `mutation { endSession(sessionId: "${s.id}") { id } }`, {}, other.token)).extensions?.code).toBe('NOT_FOUND');
  const c = wsClient(gwA, other.token);
  clients.push(c);
  const snoop = subscribe(c, `subscription($id: ID!) { sessionEvents(sessionId: $id) { type } }`, { id: s.id });
  await expect(snoop.next((x) => (x.errors?.length ?? 0) > 0 || !!snoop.failure(), 10_000).catch(() => null)).resolves.toBeTruthy();
  const firstError = (snoop.items[0]?.errors?.[0] ?? (snoop.failure() as { 0?: { extensions?: { code?: string } } })?.[0]) as { extensions?: { code?: string } } | undefined;
  expect(firstError?.extensions?.code).toBe('NOT_FOUND');
  const admin = await ok(gwA, `mutation { terminateSession(sessionId: "${s.id}", reason: "maintenance") { state } }`, {}, adminToken);
  expect(admin.terminateSession.state).toBe('ENDED');
});

it("lists sessions for admins by state, user, UA and VM, newest first, with each row's relations and last events", async () => {
  const vm = vms[0]!;
  const lister = await registerUser(gwA, 'lister');
  const first = (await request(lister.token)).data!.requestApplication;
  await ok(gwA, `mutation { endSession(sessionId: "${first.id}") { id } }`, {}, lister.token);
  const open = (await request(lister.token, ['MJPEG'])).data!.requestApplication;
  const fields = `id state uaVersion createdAt terminal { screenWidth codecs localResources } user { id username } ua { id name } vm { id codecs } events(last: 2) { type actor { id } }`;
  const list = async (args: string) => (await ok(gwB, `{ sessions(${args}) { ${fields} } }`, {}, adminToken)).sessions as { id: string; state: string; createdAt: string; terminal: { codecs: string[]; localResources: string[] }; user: { id: string }; ua: { id: string }; vm: { id: string; codecs: string[] } | null; events: { type: string; actor: { id: string } | null }[] }[];

  const mine = await list(`userId: "${lister.id}"`);
  expect(mine.map((s) => s.id)).toEqual([open.id, first.id]);
  expect(mine[1]).toMatchObject({ state: 'ENDED', terminal: { codecs: ['H264', 'MJPEG'], localResources: ['GEOLOCATION'] }, user: { id: lister.id }, ua: { id: uaId }, vm: { id: vm.id, codecs: ['MJPEG'] } });
  expect(mine[1]!.events.map((e) => e.type)).toEqual(['ASSIGNED', 'ENDED']);
  expect(mine[1]!.events[1]!.actor?.id).toBe(lister.id);
  expect(new Date(mine[0]!.createdAt).getTime()).toBeGreaterThanOrEqual(new Date(mine[1]!.createdAt).getTime());
  expect((await list(`userId: "${lister.id}", state: ENDED`)).map((s) => s.id)).toEqual([first.id]);
  expect((await list(`userId: "${lister.id}", uaId: "${uaId}", vmId: "${vm.id}", limit: 1, offset: 1`)).map((s) => s.id)).toEqual([first.id]);
  expect((await list(`vmId: "${vm.id}", limit: 200`)).every((s) => s.vm?.id === vm.id)).toBe(true);
  expect(await list(`userId: "not-a-uuid"`)).toEqual([]);
  expect((await refusal(gwA, `{ sessions(limit: 201) { id } }`, {}, adminToken)).extensions?.code).toBe('BAD_USER_INPUT');
  await ok(gwA, `mutation { endSession(sessionId: "${open.id}") { id } }`, {}, lister.token);
});

it('fills a VM to capacity, then refuses with UNAVAILABLE', async () => {
  const a = (await request(user.token)).data!.requestApplication;
  const b = (await request(user.token)).data!.requestApplication;
  expect(a.vm.id).toBe(vms[0]!.id);
  expect(b.vm.id).toBe(vms[0]!.id);
  const full = await request(user.token);
  expect(full.errors?.[0]?.extensions?.code).toBe('UNAVAILABLE');
  expect(full.errors?.[0]?.message).toMatch(/full/);
  const vm = await ok(gwA, `{ vm(id: "${vms[0]!.id}") { status activeSessions capacity } }`, {}, adminToken);
  expect(vm.vm).toEqual({ status: 'BUSY', activeSessions: 2, capacity: 2 });
  for (const s of [a, b]) await ok(gwA, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
});

it('places concurrent requests of many users through both gateways on free slots only, never over a VM capacity', async () => {
  // only the chosen VM is locked per placement: this is what keeps two placements off one last slot
  const second = await newVm({ codecs: ['H264', 'MJPEG'], capacity: 1 });
  const users = await Promise.all(Array.from({ length: 6 }, (_, i) => registerUser(gwA, `crowd${i}`)));
  const answers = await Promise.all(users.map((u, i) => gql(i % 2 ? gwB : gwA, REQUEST, { i: { uaId, terminal: terminal() } }, u.token)));
  const placed = answers.filter((r) => !r.errors).map((r) => r.data!.requestApplication);
  const refused = answers.filter((r) => r.errors);
  expect(placed).toHaveLength(3); // vms[0] takes 2, the second 1
  expect(refused.map((r) => r.errors![0]!.extensions?.code)).toEqual(['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE']);
  expect(placed.filter((s) => s.vm.id === vms[0]!.id)).toHaveLength(2);
  expect(placed.filter((s) => s.vm.id === second.id)).toHaveLength(1);
  for (const v of [vms[0]!, second]) {
    const row = await ok(gwA, `{ vm(id: "${v.id}") { activeSessions capacity } }`, {}, adminToken);
    expect(row.vm.activeSessions).toBe(row.vm.capacity);
  }
  for (const s of placed) {
    const owner = users[answers.findIndex((r) => r.data?.requestApplication?.id === s.id)]!;
    await ok(gwA, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, owner.token);
  }
  await second.close();
  vms.splice(vms.indexOf(second), 1);
  await until('the second VM to be gone', 15_000, async () => (await gql(gwA, `{ vm(id: "${second.id}") { status } }`, {}, adminToken)).data?.vm?.status !== 'IDLE');
});

it('marks a silent VM OFFLINE, disconnects its sessions with an event, and sends new requests elsewhere', async () => {
  const dying = vms[0]!;
  const s = (await request(user.token)).data!.requestApplication;
  expect(s.vm.id).toBe(dying.id);
  const c = wsClient(gwB, user.token);
  clients.push(c);
  const events = await subscribeLive(c, `subscription($id: ID!) { sessionEvents(sessionId: $id, replay: true) { type data } }`, { id: s.id });
  const admin = wsClient(gwB, adminToken);
  clients.push(admin);
  // vmEvents has no replay: live once a deployment report of this VM comes through it
  const vmEvents = await subscribeLive(admin, `subscription { vmEvents { type vm { id status } } }`, {}, {
    poke: () => dying.report({ type: 'deployment.changed', uaId, version: '1.0.0', status: 'INSTALLED', error: null } as never),
    ack: (e) => e.data?.vmEvents?.type === 'DEPLOYMENT_CHANGED' && e.data.vmEvents.vm.id === dying.id,
  });
  await events.next((e) => e.data?.sessionEvents?.type === 'ASSIGNED');

  dying.silence();
  const lost = await vmEvents.next((e) => e.data?.vmEvents?.type === 'HEARTBEAT_LOST' && e.data.vmEvents.vm.id === dying.id, 30_000);
  expect(lost.data!.vmEvents.vm.status).toBe('OFFLINE');
  const disc = await events.next((e) => e.data?.sessionEvents?.type === 'DISCONNECTED');
  expect(disc.data!.sessionEvents.data).toMatchObject({ reason: 'VM heartbeat lost', unexpected: true, userId: user.id, uaId });

  const other = await newVm({ codecs: ['H264', 'MJPEG'] });
  const next = (await request(user.token)).data!.requestApplication;
  expect(next.vm.id).toBe(other.id);
  const prep = await other.nextCommand('session.prepare', (x) => x.type === 'session.prepare' && x.sessionId === next.id);
  expect(prep).toMatchObject({ stream: { codec: 'H264' } });
});

it('keeps an enrolled VM found silent (its operator runs it, the VMM cannot stop it): its next heartbeat brings it back, endpoint and all', async () => {
  const vm = await newVm();
  const state = async () => (await ok(gwA, `{ vm(id: "${vm.id}") { status statusReason endpoint } }`, {}, adminToken)).vm;
  vm.silence();
  const lost = await until('the silent VM to go OFFLINE', 30_000, async () => ((await state()).status === 'OFFLINE' ? state() : null), 100);
  expect(lost).toMatchObject({ statusReason: 'heartbeat lost', endpoint: `ws://127.0.0.1:9/${vm.id}` });
  // the watchdog's reaper runs right after its sweep: had it destroyed this VM, its secret would
  // be gone and this heartbeat refused as from an unknown VM
  await vm.report({ type: 'vm.heartbeat', activeSessions: 0, capacity: 2, codecs: ['H264', 'MJPEG'], cpuLoad: 0, rssBytes: 0, deployed: [] });
  const back = await until('the VM back with its heartbeat', 10_000, async () => ((await state()).status === 'IDLE' ? state() : null), 100);
  expect(back).toEqual({ status: 'IDLE', statusReason: null, endpoint: `ws://127.0.0.1:9/${vm.id}` });
  await vm.close();
  vms.splice(vms.indexOf(vm), 1);
});
