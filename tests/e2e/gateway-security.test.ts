// The gateway read as an attacker would, through its public interfaces (GraphQL over HTTP and
// graphql-ws) on a real gateway process, PostgreSQL and Redis: document limits on both paths,
// rate limits, introspection in production, token revocation and rotation, password upgrades.
import { Client as PgClient } from 'pg';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader } from 'jose';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, markVersionsAvailable, ok, refusal, registerUser, startGateway, subscribe, wsClient, type GatewayProcess } from '../support/gateway';
import { startFakeVm, type FakeVm } from '../support/fake-vm';
import type { Client } from 'graphql-ws';

let redis: TestRedis;
let databaseUrl: string;
let gw: GatewayProcess;
let db: PgClient;
let admin: string;
/** a gateway as deployed for real: production mode, closed registration, the default password cost */
let prodGateway: Promise<GatewayProcess> | null = null;
const production = () => (prodGateway ??= gateway({ NODE_ENV: 'production', UVE_REGISTRATION: 'closed', UVE_PASSWORD_SCRYPT_N: '' }));
const clients: Client[] = [];
const vms: FakeVm[] = [];
const started: GatewayProcess[] = [];
const PREFIX = 'sec';

async function gateway(env: Record<string, string> = {}): Promise<GatewayProcess> {
  const g = await startGateway({ DATABASE_URL: databaseUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: PREFIX, ...env });
  started.push(g);
  return g;
}

const aliasedLogins = (n: number) =>
  `mutation { ${Array.from({ length: n }, (_, i) => `a${i}: login(username: "admin", password: "guess${i}") { token }`).join(' ')} }`;

beforeAll(async () => {
  redis = await startRedis();
  databaseUrl = await freshDatabase();
  gw = await gateway({ UVE_MAX_OPEN_SESSIONS: '2' });
  db = new PgClient({ connectionString: databaseUrl });
  await db.connect();
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
});

afterAll(async () => {
  for (const c of clients) await c.dispose();
  for (const vm of vms) await vm.close();
  await db?.end();
  for (const g of started) await g.stop();
  await redis?.stop();
});

describe('document limits', () => {
  it('refuses a request of many aliased logins on HTTP with BAD_USER_INPUT, before any password is checked', async () => {
    const e = await refusal(gw, aliasedLogins(50));
    expect(e.extensions?.code).toBe('BAD_USER_INPUT');
    expect(e.message).toMatch(/aliases/i);
  });

  it('refuses the same on graphql-ws', async () => {
    const c = wsClient(gw, admin);
    clients.push(c);
    const result = await new Promise<{ errors?: readonly { message: string; extensions?: Record<string, unknown> }[] }>((resolve) => {
      c.subscribe({ query: aliasedLogins(50) }, { next: (v) => resolve(v as never), error: (e) => resolve({ errors: e as never }), complete: () => undefined });
    });
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.message).toMatch(/aliases/i);
  });

  it('refuses a query nested deeper than the limit on HTTP and graphql-ws', async () => {
    // UA → deployments → VM → deployments → UA …: the schema has cycles through field resolvers
    const nested = `{ uas { deployments { vm { deployments { ua { deployments { vm { deployments { ua { deployments { vm { id } } } } } } } } } } } }`;
    const e = await refusal(gw, nested, {}, admin);
    expect(e.extensions?.code).toBe('BAD_USER_INPUT');
    expect(e.message).toMatch(/depth/i);
    const c = wsClient(gw, admin);
    clients.push(c);
    const result = await new Promise<{ errors?: readonly { message: string; extensions?: Record<string, unknown> }[] }>((resolve) => {
      c.subscribe({ query: nested }, { next: (v) => resolve(v as never), error: (err) => resolve({ errors: err as never }), complete: () => undefined });
    });
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.message).toMatch(/depth/i);
  });

  it('refuses introspection and hides field suggestions in production mode', async () => {
    const prod = await production();
    const e = await refusal(prod, `{ __schema { types { name } } }`);
    expect(e.extensions?.code).toBe('BAD_USER_INPUT');
    expect(e.message).toMatch(/introspection/i);
    const typo = await refusal(prod, `{ uass { id } }`, {}, admin);
    expect(typo.message).not.toMatch(/Did you mean/);
    // the development default still answers it
    expect((await gql(gw, `{ __schema { queryType { name } } }`)).data?.__schema.queryType.name).toBe('Query');
    expect((await refusal(gw, `{ uass { id } }`, {}, admin)).message).toMatch(/Did you mean "uas"/);
  });
});

describe('rate limits', () => {
  // counts are per deployment (queue prefix): these gateways count apart from the others of this file
  const limited = () => gateway({ UVE_QUEUE_PREFIX: 'rl', UVE_LOGIN_RATE_PER_MIN: '10' });

  it('refuses the 11th sign-in attempt in a minute from one address with a clear reason and a retry time', async () => {
    const g = await limited();
    const name = `victim${Date.now()}`;
    await registerUser(gw, name);
    const answers = [];
    for (let i = 0; i < 11; i++) answers.push(await gql(g, `mutation { login(username: "${name}", password: "wrong-${i}") { token } }`));
    for (const a of answers.slice(0, 10)) expect(a.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const last = answers[10]!.errors![0]!;
    expect(last.extensions).toMatchObject({ code: 'UNAVAILABLE', reason: 'RATE_LIMITED' });
    expect(last.extensions!.retryAfterSec).toBeGreaterThan(0);
    expect(last.extensions!.retryAfterSec).toBeLessThanOrEqual(60);
    expect(last.message).toMatch(/try again in \d+ s/);
  });

  it('shares the count between gateways (it is kept in Redis)', async () => {
    const other = await limited();
    // the same address already spent its attempts on the first gateway
    const r = await gql(other, `mutation { login(username: "anyone", password: "x") { token } }`);
    expect(r.errors?.[0]?.extensions?.reason).toBe('RATE_LIMITED');
  });

  it('limits the open sessions of one user', async () => {
    const vm = await startFakeVm({ redisUrl: redis.url, prefix: PREFIX, gateway: gw, admin, heartbeatMs: 300, capacity: 10 });
    vms.push(vm);
    await until('the VM to register', 10_000, async () => (await gql(gw, `{ vm(id: "${vm.id}") { status } }`, {}, admin)).data?.vm?.status === 'IDLE');
    const sf = await ok(gw, `mutation { registerStorefront(name: "S", baseUrl: "https://s.example") { storefront { id } } }`, {}, admin);
    const p = await ok(gw, `mutation($s: ID!, $i: ProvideApplicationInput!) { procureApplication(storefrontId: $s, input: $i) { ua { id } } }`, {
      s: sf.registerStorefront.storefront.id,
      i: { storefrontAppId: 'paint', name: 'Paint', version: '1.0.0', platform: 'WASM', packageUrl: 'paint.tar', sha256: 'd'.repeat(64), sizeBytes: 10 },
    }, admin);
    await markVersionsAvailable(databaseUrl, p.procureApplication.ua.id);
    const user = await registerUser(gw, 'greedy');
    const req = () => gql(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id } }`, {
      i: { uaId: p.procureApplication.ua.id, terminal: { screenWidth: 640, screenHeight: 480, codecs: ['H264'], localResources: [] } },
    }, user.token);
    expect((await req()).errors).toBeUndefined();
    expect((await req()).errors).toBeUndefined();
    const third = await req();
    expect(third.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', reason: 'SESSION_LIMIT', limit: 2 });
    const count = await db.query(`SELECT count(*)::int AS n FROM sessions WHERE user_id = $1`, [user.id]);
    expect(count.rows[0].n).toBe(2);
  });

  it('refuses self-registration when it is closed', async () => {
    const closed = await production();
    const e = await refusal(closed, `mutation { register(input: { username: "newbie", password: "password-123" }) { token } }`);
    expect(e.extensions?.code).toBe('FORBIDDEN');
    expect(e.message).toMatch(/closed/);
  });
});

describe('tokens', () => {
  it('ends a login token at logout, on every gateway, and closes the subscription it opened', async () => {
    const u = await registerUser(gw, 'leaver');
    const c = wsClient(gw, u.token);
    clients.push(c);
    const closed = new Promise<{ code: number; reason: string }>((resolve) => c.on('closed', (e) => resolve(e as { code: number; reason: string })));
    // the server acknowledged the connection (its token checked and recorded) before the logout
    const connected = new Promise<void>((resolve) => c.on('connected', () => resolve()));
    subscribe(c, `subscription { notifications { at } }`);
    await connected;
    expect((await ok(gw, `mutation { logout }`, {}, u.token)).logout).toBe(true);
    expect((await closed)).toMatchObject({ code: 4403, reason: 'login token revoked' });
    const other = await gateway();
    expect((await gql(other, `{ me { id } }`, {}, u.token)).data?.me).toBeNull();
    expect((await refusal(gw, `{ mySessions { id } }`, {}, u.token)).extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('lets an admin revoke every token of a user at once', async () => {
    const u = await registerUser(gw, 'stolen');
    const second = (await login(gw, 'stolen', 'password-123')).token;
    await ok(gw, `mutation { revokeUserTokens(userId: "${u.id}") { id } }`, {}, admin);
    expect((await gql(gw, `{ me { id } }`, {}, u.token)).data?.me).toBeNull();
    expect((await gql(gw, `{ me { id } }`, {}, second)).data?.me).toBeNull();
    const fresh = (await login(gw, 'stolen', 'password-123')).token;
    expect((await ok(gw, `{ me { id } }`, {}, fresh)).me.id).toBe(u.id);
    expect((await refusal(gw, `mutation { revokeUserTokens(userId: "${u.id}") { id } }`, {}, fresh)).extensions?.code).toBe('FORBIDDEN');
  });

  it('closes a subscription when its login token expires', async () => {
    const short = await gateway({ UVE_ACCESS_TOKEN_TTL: '12' });
    const u = await registerUser(short, 'brief');
    const c = wsClient(short, u.token);
    clients.push(c);
    const closed = new Promise<{ code: number; reason: string }>((resolve) => c.on('closed', (e) => resolve(e as { code: number; reason: string })));
    subscribe(c, `subscription { notifications { at } }`);
    const exp = decodeJwt(u.token).exp! * 1000;
    const e = await closed;
    expect(e).toMatchObject({ code: 4401, reason: 'login token expired' });
    expect(Date.now()).toBeGreaterThanOrEqual(exp - 1000);
  }, 90_000);

  it('rotates the signing key: JWKS serves the new and the previous key, tokens of the previous verify, older ones stop', async () => {
    const before = (await login(gw, ADMIN.username, ADMIN.password)).token;
    const oldKid = decodeProtectedHeader(before).kid;
    const kid1 = (await ok(gw, `mutation { rotateSigningKey }`, {}, before)).rotateSigningKey as string;
    expect(kid1).not.toBe(oldKid);
    const jwks = await (await fetch(`${gw.url}/.well-known/jwks.json`)).json() as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual([oldKid, kid1].sort());
    const after = (await login(gw, ADMIN.username, ADMIN.password)).token;
    expect(decodeProtectedHeader(after).kid).toBe(kid1);
    // another gateway learns the new key from the database when it meets it
    const other = started.find((g) => g !== gw)!;
    expect((await ok(other, `{ me { username } }`, {}, after)).me.username).toBe('admin');
    expect((await ok(gw, `{ me { username } }`, {}, before)).me.username).toBe('admin');
    await ok(gw, `mutation { rotateSigningKey }`, {}, after);
    expect((await gql(gw, `{ me { id } }`, {}, before)).data?.me).toBeNull();
    expect((await ok(gw, `{ me { username } }`, {}, after)).me.username).toBe('admin');
    // VMs verify session tokens against the same JWKS
    const set = createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`));
    expect(set).toBeDefined();
    admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  });

  it('stores password hashes with their cost and upgrades a weaker one at the next sign-in', async () => {
    const u = await registerUser(gw, 'upgrader');
    const hashOf = async () => (await db.query(`SELECT password_hash FROM users WHERE id = $1`, [u.id])).rows[0].password_hash as string;
    expect((await hashOf()).split('$')[1]).toBe('16384');
    const stronger = await gateway({ UVE_PASSWORD_SCRYPT_N: '32768' });
    await login(stronger, 'upgrader', 'password-123');
    expect((await hashOf()).split('$')[1]).toBe('32768');
    await login(gw, 'upgrader', 'password-123'); // verifies with the stored parameters, never downgrades
    expect((await hashOf()).split('$')[1]).toBe('32768');
  });

  it('hashes with N = 2^17 by default', async () => {
    const prod = await production();
    const created = await ok(prod, `mutation { createUser(input: { username: "defaultcost", password: "password-123" }) { id } }`, {}, admin);
    const h = (await db.query(`SELECT password_hash FROM users WHERE id = $1`, [created.createUser.id])).rows[0].password_hash as string;
    expect(h.split('$').slice(0, 4)).toEqual(['scrypt', '131072', '8', '1']);
  });
});

describe('session tokens', () => {
  it('gives an admin opening someone else\'s session a VIEWER token in the admin\'s own name, announced to the VM', async () => {
    const vm = vms[0]!;
    const owner = await login(gw, 'greedy', 'password-123');
    const mine = await ok(gw, `{ mySessions(active: true) { id connection { token } } }`, {}, owner.token);
    const s = mine.mySessions[0];
    expect(decodeJwt(s.connection.token)).toMatchObject({ sub: owner.id, role: 'PLAYER', sid: s.id });
    const adminId = (await ok(gw, `{ me { id } }`, {}, admin)).me.id;
    const seen = await ok(gw, `{ session(id: "${s.id}") { connection { token } } }`, {}, admin);
    const claims = decodeJwt(seen.session.connection.token);
    expect(claims).toMatchObject({ sub: adminId, role: 'VIEWER', sid: s.id });
    expect(typeof claims.jti).toBe('string');
    const notice = await vm.nextCommand('monitoring.notify', (c) => c.type === 'monitoring.notify' && c.sessionId === s.id);
    expect(notice).toMatchObject({ watcherId: adminId, privileges: ['VIEW'] });
  });
});
