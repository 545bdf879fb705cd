// The authorization matrix: every query, mutation and subscription the gateway serves, called as
// every kind of principal, against the documented outcome (docs/security.md). An operation added
// to the schema without an entry here fails the suite, so nobody ships one whose access rule was
// never decided.
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, markVersionsAvailable, ok, registerUser, startGateway, type GatewayProcess, type GqlError } from '../support/gateway';
import { startFakeVm, type FakeVm } from '../support/fake-vm';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';

const PRINCIPALS = ['anonymous', 'user', 'otherUser', 'watcherNoGrant', 'watcherView', 'storefront', 'disabledStorefront', 'admin'] as const;
type Principal = (typeof PRINCIPALS)[number];

/**
 * - `ok`: authorized and the operation ran on a resource the caller may see (no UNAUTHENTICATED,
 *   FORBIDDEN or NOT_FOUND; a business refusal such as CONFLICT still means "allowed");
 * - `allowed`: authorized (on made-up ids NOT_FOUND is the business answer);
 * - a code: refused with exactly that code (NOT_FOUND hides what the caller may not see);
 * - `null`: answered with null data (the query's documented answer for this caller).
 */
type Outcome = 'ok' | 'allowed' | 'null' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND';
type Row = Record<Principal, Outcome>;

/** a disabled storefront's key counts for nothing: its holder is anonymous */
const row = (fill: Outcome, over: Partial<Row> = {}): Row => {
  const r = { ...Object.fromEntries(PRINCIPALS.map((p) => [p, fill])) as Row, ...over };
  return { ...r, disabledStorefront: r.anonymous };
};
const KEY_ONLY: Partial<Row> = { storefront: 'FORBIDDEN', disabledStorefront: 'FORBIDDEN' };
/** any signed-in user; storefront keys only do UVE-7 */
const signedIn = (o: Outcome = 'allowed', over: Partial<Row> = {}) => row(o, { anonymous: 'UNAUTHENTICATED', ...KEY_ONLY, ...over });
const adminOnly = (o: Outcome = 'allowed') =>
  row('FORBIDDEN', { anonymous: 'UNAUTHENTICATED', admin: o });
/** the session's owner, admins and a watcher monitoring it (watcherView, from the start); others do not learn it exists */
const ownerWatcherOrAdmin = (o: Outcome = 'ok', over: Partial<Row> = {}) =>
  signedIn(o, { otherUser: 'NOT_FOUND', watcherNoGrant: 'NOT_FOUND', ...over });

interface Fixture {
  sessionId: string;
  userId: string;
  uaId: string;
  vmId: string;
  grantId: string;
  storefrontId: string;
  /** a user none of the principals is: invited by the owner */
  guestId: string;
}

/**
 * op name → document (given the fixture) and outcomes. A subscription that is allowed proves it
 * by delivering an event: `trigger` makes one happen, as the caller, once it is subscribed.
 */
const MATRIX: Record<string, { doc: (f: Fixture) => string; expect: Row; trigger?: (p: Principal, f: Fixture) => Promise<unknown> }> = {
  // ---- queries
  me: { doc: () => `{ me { id } }`, expect: row('ok', { anonymous: 'null', storefront: 'null', disabledStorefront: 'null' }) },
  mySessions: { doc: () => `{ mySessions { id } }`, expect: signedIn('ok') },
  mySnapshots: { doc: () => `{ mySnapshots { id } }`, expect: signedIn('ok') },
  myInvitations: { doc: () => `{ myInvitations { id } }`, expect: signedIn('ok') },
  myWatcherGrants: { doc: () => `{ myWatcherGrants { id } }`, expect: signedIn('ok') },
  session: { doc: (f) => `{ session(id: "${f.sessionId}") { id } }`, expect: ownerWatcherOrAdmin('ok') },
  sessions: { doc: () => `{ sessions { id } }`, expect: adminOnly('ok') },
  snapshots: { doc: () => `{ snapshots { id } }`, expect: adminOnly('ok') },
  storefronts: { doc: () => `{ storefronts { id } }`, expect: adminOnly('ok') },
  procurements: { doc: () => `{ procurements { id } }`, expect: adminOnly('ok') },
  ua: { doc: (f) => `{ ua(id: "${f.uaId}") { id } }`, expect: signedIn('ok') },
  uas: { doc: () => `{ uas { id } }`, expect: signedIn('ok') },
  users: { doc: () => `{ users { id } }`, expect: adminOnly('ok') },
  vm: { doc: (f) => `{ vm(id: "${f.vmId}") { id } }`, expect: adminOnly('ok') },
  vms: { doc: () => `{ vms { id } }`, expect: adminOnly('ok') },
  vmPool: { doc: () => `{ vmPool { platform unavailable } }`, expect: adminOnly('ok') },
  watcherGrants: { doc: () => `{ watcherGrants { id } }`, expect: adminOnly('ok') },

  // ---- mutations (made-up ids where a real one would change the fixture for later callers)
  login: { doc: () => `mutation { login(username: "nobody", password: "wrong-password") { token } }`, expect: row('UNAUTHENTICATED') },
  register: { doc: () => `mutation { register(input: { username: "u${randomUUID().slice(0, 8)}", password: "password-123" }) { token } }`, expect: row('ok') },
  logout: { doc: () => `mutation { logout }`, expect: signedIn('ok') },
  issueSubscriptionToken: { doc: () => `mutation { issueSubscriptionToken { token } }`, expect: signedIn('ok') },
  updateEquipment: { doc: () => `mutation { updateEquipment(terminal: { screenWidth: 800, screenHeight: 600, codecs: [H264], localResources: [] }) { id } }`, expect: signedIn('ok') },
  createUser: { doc: () => `mutation { createUser(input: { username: "c${randomUUID().slice(0, 8)}", password: "password-123" }) { id } }`, expect: adminOnly('ok') },
  setUserRole: { doc: () => `mutation { setUserRole(userId: "${randomUUID()}", role: USER) { id } }`, expect: adminOnly() },
  revokeUserTokens: { doc: () => `mutation { revokeUserTokens(userId: "${randomUUID()}") { id } }`, expect: adminOnly() },
  rotateSigningKey: { doc: () => `mutation { rotateSigningKey }`, expect: adminOnly('ok') },
  registerStorefront: { doc: () => `mutation { registerStorefront(name: "s${randomUUID().slice(0, 8)}", baseUrl: "https://s.example") { apiKey } }`, expect: adminOnly('ok') },
  setStorefrontEnabled: { doc: () => `mutation { setStorefrontEnabled(id: "${randomUUID()}", enabled: true) { id } }`, expect: adminOnly() },
  provideApplication: {
    doc: () => `mutation { provideApplication(input: { storefrontAppId: "x", name: "X", version: "1", platform: WASM, packageUrl: "x.tar", sha256: "${'a'.repeat(64)}", sizeBytes: 1 }) { id } }`,
    expect: row('FORBIDDEN', { anonymous: 'UNAUTHENTICATED', storefront: 'allowed' }),
  },
  procureApplication: {
    doc: () => `mutation { procureApplication(storefrontId: "${randomUUID()}", input: { storefrontAppId: "x", name: "X", version: "1", platform: WASM, packageUrl: "x.tar", sha256: "${'a'.repeat(64)}", sizeBytes: 1 }) { id } }`,
    expect: adminOnly(),
  },
  deployUa: { doc: () => `mutation { deployUa(uaId: "${randomUUID()}") { id } }`, expect: adminOnly() },
  updateUa: { doc: () => `mutation { updateUa(uaId: "${randomUUID()}", version: "9") { id } }`, expect: adminOnly() },
  removeUa: { doc: () => `mutation { removeUa(uaId: "${randomUUID()}") { id } }`, expect: adminOnly() },
  provisionVm: { doc: () => `mutation { provisionVm(input: { platform: WASM, capacity: 0 }) { id } }`, expect: adminOnly() },
  drainVm: { doc: () => `mutation { drainVm(id: "${randomUUID()}") { id } }`, expect: adminOnly() },
  enrollVm: { doc: () => `mutation { enrollVm(input: { platform: WASM, capacity: 0 }) { secret } }`, expect: adminOnly() },
  removeVm: { doc: () => `mutation { removeVm(id: "${randomUUID()}") { id } }`, expect: adminOnly() },
  requestApplication: {
    doc: () => `mutation { requestApplication(input: { uaId: "${randomUUID()}", terminal: { screenWidth: 800, screenHeight: 600, codecs: [H264], localResources: [] } }) { id } }`,
    expect: signedIn(),
  },
  endSession: { doc: () => `mutation { endSession(sessionId: "${randomUUID()}") { id } }`, expect: signedIn() },
  // no watcher holds suspend control (watcherView has VIEW only): the owner or an admin suspends
  suspendSession: { doc: (f) => `mutation { suspendSession(sessionId: "${f.sessionId}") { id } }`, expect: ownerWatcherOrAdmin('ok', { watcherView: 'FORBIDDEN' }) },
  // each principal that suspended resumes its own suspension; watcherView finds it ACTIVE (CONFLICT);
  // who may resume someone else's suspension is in watchers.test.ts
  resumeSession: { doc: (f) => `mutation { resumeSession(sessionId: "${f.sessionId}") { id } }`, expect: ownerWatcherOrAdmin('ok') },
  terminateSession: { doc: () => `mutation { terminateSession(sessionId: "${randomUUID()}") { id } }`, expect: adminOnly() },
  deleteSnapshot: { doc: () => `mutation { deleteSnapshot(id: "${randomUUID()}") }`, expect: signedIn() },
  assignWatcher: { doc: () => `mutation { assignWatcher(watcherId: "${randomUUID()}", watcheeId: "${randomUUID()}", privileges: [VIEW]) { id } }`, expect: adminOnly() },
  updateWatcherPrivileges: { doc: () => `mutation { updateWatcherPrivileges(grantId: "${randomUUID()}", privileges: [VIEW]) { id } }`, expect: adminOnly() },
  revokeWatcher: { doc: () => `mutation { revokeWatcher(grantId: "${randomUUID()}") }`, expect: adminOnly() },
  // only a user with a grant over the watchee (watcherView, again: it already monitors)
  requestMonitoring: { doc: (f) => `mutation { requestMonitoring(watcheeId: "${f.userId}") { id } }`, expect: signedIn('FORBIDDEN', { watcherView: 'ok' }) },
  stopMonitoring: { doc: () => `mutation { stopMonitoring(monitoringId: "${randomUUID()}") { id } }`, expect: signedIn() },
  // only the holder of the suspend control (nobody here) or an admin (who releases it)
  transferSuspendControl: { doc: (f) => `mutation { transferSuspendControl(sessionId: "${f.sessionId}") { id } }`, expect: ownerWatcherOrAdmin('FORBIDDEN', { admin: 'ok' }) },
  // only the session's user invites (a second invitation of the same guest is a CONFLICT: still allowed)
  inviteToSession: { doc: (f) => `mutation { inviteToSession(sessionId: "${f.sessionId}", inviteeId: "${f.guestId}") { id } }`, expect: ownerWatcherOrAdmin('FORBIDDEN', { user: 'ok' }) },
  respondToInvitation: { doc: () => `mutation { respondToInvitation(invitationId: "${randomUUID()}", accept: false) { id } }`, expect: signedIn() },
  revokeInvitation: { doc: () => `mutation { revokeInvitation(invitationId: "${randomUUID()}") { id } }`, expect: signedIn() },
  // anyone who sees the session may try; only a guest leaves (others get CONFLICT)
  leaveSession: { doc: (f) => `mutation { leaveSession(sessionId: "${f.sessionId}") }`, expect: ownerWatcherOrAdmin('ok') },

  // ---- subscriptions (over graphql-ws)
  sessionEvents: { doc: (f) => `subscription { sessionEvents(sessionId: "${f.sessionId}", replay: true) { type } }`, expect: ownerWatcherOrAdmin('ok') },
  notifications: {
    doc: () => `subscription { notifications { at } }`,
    expect: signedIn('ok'),
    // a session of their own tells them about itself
    trigger: (p, f) => gql(gw, `mutation { requestApplication(input: { uaId: "${f.uaId}", terminal: { screenWidth: 800, screenHeight: 600, codecs: [H264], localResources: [] } }) { id } }`, {}, auth[p]),
  },
  vmEvents: {
    doc: () => `subscription { vmEvents { type } }`,
    expect: adminOnly('ok'),
    trigger: async () => spare.push(await startFakeVm({ redisUrl: redis.url, prefix: 'matrix', gateway: gw, admin: auth.admin!, heartbeatMs: 300 })),
  },
  procurementUpdates: {
    doc: () => `subscription { procurementUpdates { id } }`,
    expect: adminOnly('ok'),
    trigger: (p, f) => gql(gw, `mutation { procureApplication(storefrontId: "${f.storefrontId}", input: { storefrontAppId: "t${randomUUID().slice(0, 8)}", name: "T", version: "1", platform: WASM, packageUrl: "t.tar", sha256: "${'b'.repeat(64)}", sizeBytes: 1 }) { id } }`, {}, auth[p]),
  },
};

let redis: TestRedis;
let gw: GatewayProcess;
let vm: FakeVm;
const spare: FakeVm[] = [];
let fixture: Fixture;
const auth: Record<Principal, string | undefined> = {} as Record<Principal, string | undefined>;
const clients: Client[] = [];

beforeAll(async () => {
  redis = await startRedis();
  const databaseUrl = await freshDatabase();
  gw = await startGateway({ DATABASE_URL: databaseUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'matrix' });
  auth.admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  const user = await registerUser(gw, 'owner');
  auth.user = user.token;
  auth.otherUser = (await registerUser(gw, 'other')).token;
  auth.watcherNoGrant = (await registerUser(gw, 'curious')).token;
  const watcher = await registerUser(gw, 'watcher');
  auth.watcherView = watcher.token;
  const grant = await ok(gw, `mutation { assignWatcher(watcherId: "${watcher.id}", watcheeId: "${user.id}", privileges: [VIEW]) { id } }`, {}, auth.admin);
  const sf = await ok(gw, `mutation { registerStorefront(name: "Store", baseUrl: "https://store.example") { apiKey storefront { id } } }`, {}, auth.admin);
  auth.storefront = `ApiKey ${sf.registerStorefront.apiKey}`;
  const off = await ok(gw, `mutation { registerStorefront(name: "Closed", baseUrl: "https://closed.example") { apiKey storefront { id } } }`, {}, auth.admin);
  await ok(gw, `mutation { setStorefrontEnabled(id: "${off.registerStorefront.storefront.id}", enabled: false) { id } }`, {}, auth.admin);
  auth.disabledStorefront = `ApiKey ${off.registerStorefront.apiKey}`;

  vm = await startFakeVm({ redisUrl: redis.url, prefix: 'matrix', gateway: gw, admin: auth.admin!, heartbeatMs: 300, capacity: 8 });
  await until('the VM to register', 10_000, async () => (await gql(gw, `{ vm(id: "${vm.id}") { status } }`, {}, auth.admin)).data?.vm?.status === 'IDLE');
  const p = await ok(gw, `mutation($s: ID!, $i: ProvideApplicationInput!) { procureApplication(storefrontId: $s, input: $i) { ua { id } } }`, {
    s: sf.registerStorefront.storefront.id,
    i: { storefrontAppId: 'paint', name: 'Paint', version: '1.0.0', platform: 'WASM', packageUrl: 'paint.tar', sha256: 'd'.repeat(64), sizeBytes: 10 },
  }, auth.admin);
  const uaId = p.procureApplication.ua.id;
  await markVersionsAvailable(databaseUrl, uaId); // the fake VM downloads nothing: as if it had installed it
  const s = await ok(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id } }`, {
    i: { uaId, terminal: { screenWidth: 800, screenHeight: 600, codecs: ['H264'], localResources: [] } },
  }, user.token);
  await vm.report({ type: 'session.connected', sessionId: s.requestApplication.id, userId: user.id, uaId, role: 'PLAYER' });
  await until('the session to be ACTIVE', 10_000, async () => (await ok(gw, `{ session(id: "${s.requestApplication.id}") { state } }`, {}, user.token)).session.state === 'ACTIVE');
  // watcherView monitors the session throughout: it sees the session, not more
  const monitoring = await ok(gw, `mutation { requestMonitoring(watcheeId: "${user.id}") { id } }`, {}, auth.watcherView);
  expect(monitoring.requestMonitoring).toHaveLength(1);
  const guest = await registerUser(gw, 'guest');
  fixture = { sessionId: s.requestApplication.id, userId: user.id, uaId, vmId: vm.id, grantId: grant.assignWatcher.id, storefrontId: sf.registerStorefront.storefront.id, guestId: guest.id };
}, 120_000);

afterAll(async () => {
  for (const c of clients) await c.dispose();
  await vm?.close();
  for (const v of spare) await v.close();
  await gw?.stop();
  await redis?.stop();
});

function judge(outcome: Outcome, errors: readonly GqlError[] | undefined, data: unknown): string | null {
  const code = errors?.[0]?.extensions?.code;
  const what = `got ${code ?? 'no error'}${errors?.length ? ` (${errors[0]!.message})` : ''}`;
  switch (outcome) {
    case 'ok':
      return code && ['UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'INTERNAL_SERVER_ERROR'].includes(code as string) ? what : null;
    case 'allowed':
      return code && ['UNAUTHENTICATED', 'FORBIDDEN', 'INTERNAL_SERVER_ERROR'].includes(code as string) ? what : null;
    case 'null':
      return !errors?.length && data && Object.values(data as object).every((v) => v === null) ? null : `${what}, data ${JSON.stringify(data)}`;
    default:
      return code === outcome ? null : what;
  }
}

/** A subscription's verdict: its first error or its first event (made to happen by `trigger`), bounded. */
async function subscriptionResult(principal: Principal, op: string): Promise<{ errors?: readonly GqlError[]; data?: unknown }> {
  const entry = MATRIX[op]!;
  const token = auth[principal];
  const c = createClient({ url: gw.wsUrl, webSocketImpl: WebSocket, connectionParams: token ? { authorization: token.startsWith('ApiKey ') ? token : `Bearer ${token}` } : {}, retryAttempts: 0, lazy: true });
  clients.push(c);
  let verdict: { errors?: readonly GqlError[]; data?: unknown } | null = null;
  const settled = new Promise<void>((resolve) => {
    c.subscribe({ query: entry.doc(fixture) }, {
      next: (v) => {
        verdict ??= v.errors ? { errors: v.errors as GqlError[] } : { data: v.data };
        resolve();
      },
      error: (e) => {
        // credentials refused at connection_init close the socket with 4403: for the caller, not signed in
        const closed = (e as { code?: number; reason?: string })?.code;
        const socket = closed === 4403 ? { message: `socket closed ${closed}`, extensions: { code: 'UNAUTHENTICATED' } } : { message: String((e as Error)?.message ?? (e as { reason?: string })?.reason ?? e), extensions: { code: 'SOCKET_ERROR' } };
        verdict ??= { errors: Array.isArray(e) ? (e as GqlError[]) : [socket] };
        resolve();
      },
      complete: () => undefined,
    });
  });
  const allowed = !['UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND'].includes(entry.expect[principal]);
  if (allowed && entry.trigger) {
    // the event must come after the subscription is live: sessionEvents replays, the others are
    // triggered again until one arrives (bounded)
    const deadline = Date.now() + 15_000;
    while (!verdict && Date.now() < deadline) {
      await entry.trigger(principal, fixture);
      await Promise.race([settled, new Promise((r) => setTimeout(r, 500).unref())]);
    }
  }
  await Promise.race([settled, new Promise((r) => setTimeout(r, 15_000).unref())]);
  return verdict ?? { errors: [{ message: 'neither an event nor an error within 15 s', extensions: { code: 'TIMEOUT' } }] };
}

describe('authorization matrix', () => {
  it('has an entry for every operation the gateway serves', async () => {
    const { buildUveSchema } = require(path.join(__dirname, '../../apps/gateway/dist/api/schema.js'));
    const schema = await buildUveSchema();
    const served = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap((t) => Object.keys(t?.getFields() ?? {}));
    expect(served.filter((op: string) => !MATRIX[op]).sort()).toEqual([]);
    expect(Object.keys(MATRIX).filter((op) => !served.includes(op)).sort()).toEqual([]);
  });

  // anonymous and keys first, the owner and the admin last: what they do to the fixture cannot
  // change another principal's answer
  for (const principal of PRINCIPALS) {
    it(`answers every operation as documented for ${principal}`, async () => {
      const failures: string[] = [];
      for (const [op, entry] of Object.entries(MATRIX)) {
        // logout would end the principal's token for the rest of its row: it goes last, below
        if (op === 'logout') continue;
        const doc = entry.doc(fixture);
        const expected = entry.expect[principal];
        const r = doc.startsWith('subscription') ? await subscriptionResult(principal, op) : await gql(gw, doc, {}, auth[principal]);
        const problem = judge(expected, r.errors, r.data);
        if (problem) failures.push(`${op}: expected ${expected}, ${problem}`);
      }
      const out = await gql(gw, MATRIX.logout!.doc(fixture), {}, auth[principal]);
      const problem = judge(MATRIX.logout!.expect[principal], out.errors, out.data);
      if (problem) failures.push(`logout: expected ${MATRIX.logout!.expect[principal]}, ${problem}`);
      expect(failures).toEqual([]);
    }, 120_000);
  }
});
