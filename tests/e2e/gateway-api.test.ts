// The gateway's API through HTTP: auth, roles, storefront keys, the error model, the contract
// (docs/api/uve.graphql); the migrations check opens the gateway's own data source (apps/gateway/dist).
import fs from 'node:fs';
import path from 'node:path';
import { buildClientSchema, buildSchema, findBreakingChanges, getIntrospectionQuery, lexicographicSortSchema, printSchema, type IntrospectionQuery } from 'graphql';
import { freshDatabase, startRedis, type TestRedis } from '../support/services';
import { ADMIN, ROOT, gql, login, ok, refusal, registerUser, startGateway, type GatewayProcess } from '../support/gateway';

/** the public API contract (never broken; additions are fine) */
const CONTRACT = path.join(ROOT, 'docs/api/uve.graphql');

let redis: TestRedis;
let gw: GatewayProcess;
let adminToken: string;
let databaseUrl: string;

const PROVIDE = `mutation($i: ProvideApplicationInput!) { provideApplication(input: $i) { id status storefrontAppId version ua { id name platform currentVersion requiredResources } } }`;
const app = (over: Record<string, unknown> = {}) => ({
  storefrontAppId: 'com.example.paint', name: 'Paint', version: '1.0.0', platform: 'WASM',
  packageUrl: 'packages/paint-1.0.0.tar', sha256: 'a'.repeat(64), sizeBytes: 1234, requiredResources: ['GEOLOCATION'], ...over,
});

beforeAll(async () => {
  redis = await startRedis();
  databaseUrl = await freshDatabase();
  gw = await startGateway({ DATABASE_URL: databaseUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'api' });
  adminToken = (await login(gw, ADMIN.username, ADMIN.password)).token;
});

afterAll(async () => {
  await gw?.stop();
  await redis?.stop();
});

describe('users and auth', () => {
  it('registers, logs in, and refuses a wrong password', async () => {
    const reg = await ok(gw, `mutation { register(input: {username: "Alice", password: "correct-horse", displayName: "Alice A."}) { token expiresAt user { id username role displayName } } }`);
    expect(reg.register.user).toMatchObject({ username: 'alice', role: 'USER', displayName: 'Alice A.' });
    expect(new Date(reg.register.expiresAt).getTime()).toBeGreaterThan(Date.now());
    const me = await ok(gw, `{ me { id username } }`, {}, reg.register.token);
    expect(me.me.id).toBe(reg.register.user.id);

    const again = await login(gw, 'ALICE', 'correct-horse'); // usernames are case-insensitive
    expect(again.id).toBe(reg.register.user.id);

    const bad = await refusal(gw, `mutation { login(username: "alice", password: "wrong-horse") { token } }`);
    expect(bad.extensions?.code).toBe('UNAUTHENTICATED');
    expect(bad.message).toMatch(/wrong username or password/i);
    const nobody = await refusal(gw, `mutation { login(username: "nobody", password: "wrong-horse") { token } }`);
    expect(nobody.message).toBe(bad.message); // no hint whether the user exists

    const dup = await refusal(gw, `mutation { register(input: {username: "alice", password: "another-pass"}) { token } }`);
    expect(dup.extensions?.code).toBe('CONFLICT');
  });

  it('answers without a token as anonymous, and refuses a forged one', async () => {
    expect((await ok(gw, `{ me { id } }`)).me).toBeNull();
    const forged = await refusal(gw, `{ mySessions { id } }`, {}, 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln');
    expect(forged.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('keeps equipment information with the user', async () => {
    const u = await registerUser(gw, 'equipped');
    const terminal = { screenWidth: 1280, screenHeight: 720, codecs: ['H264', 'MJPEG'], localResources: ['GEOLOCATION'], touch: true, network: { type: 'WIFI', downlinkKbps: 50000 } };
    await ok(gw, `mutation($t: TerminalCapabilitiesInput!) { updateEquipment(terminal: $t) { id } }`, { t: terminal }, u.token);
    const me = await ok(gw, `{ me { equipment { screenWidth codecs touch network { type downlinkKbps } } } }`, {}, u.token);
    expect(me.me.equipment).toEqual({ screenWidth: 1280, codecs: ['H264', 'MJPEG'], touch: true, network: { type: 'WIFI', downlinkKbps: 50000 } });
  });
});

describe('roles', () => {
  it('refuses admin operations to a USER with FORBIDDEN and allows them to an ADMIN', async () => {
    const u = await registerUser(gw, 'plainuser');
    for (const q of [
      `mutation { registerStorefront(name: "x", baseUrl: "https://x.example") { apiKey } }`,
      `mutation { setUserRole(userId: "${u.id}", role: ADMIN) { id } }`,
      `{ users { id } }`,
      `{ vms { id } }`,
    ]) {
      expect((await refusal(gw, q, {}, u.token)).extensions?.code).toBe('FORBIDDEN');
    }
    const anon = await refusal(gw, `{ users { id } }`);
    expect(anon.extensions?.code).toBe('UNAUTHENTICATED');

    await ok(gw, `mutation { setUserRole(userId: "${u.id}", role: ADMIN) { role } }`, {}, adminToken);
    // the role is read per request: the same token now passes
    const users = await ok(gw, `{ users(search: "plain") { username role } }`, {}, u.token);
    expect(users.users).toEqual([{ username: 'plainuser', role: 'ADMIN' }]);
  });

  it('lets an admin create users with a role', async () => {
    const d = await ok(gw, `mutation { createUser(input: {username: "operator2", password: "op-password"}, role: ADMIN) { username role } }`, {}, adminToken);
    expect(d.createUser).toEqual({ username: 'operator2', role: 'ADMIN' });
  });
});

describe('storefronts (UVE-7)', () => {
  it('authenticates a storefront by API key and records the procurement, UA and version', async () => {
    const reg = await ok(gw, `mutation { registerStorefront(name: "Acme Store", baseUrl: "https://store.example/apps/") { apiKey storefront { id name enabled } } }`, {}, adminToken);
    const key = `ApiKey ${reg.registerStorefront.apiKey}`;
    const d = await ok(gw, PROVIDE, { i: app() }, key);
    expect(d.provideApplication).toMatchObject({ status: 'REQUESTED', storefrontAppId: 'com.example.paint', version: '1.0.0', ua: { name: 'Paint', platform: 'WASM', currentVersion: '1.0.0', requiredResources: ['GEOLOCATION'] } });

    // a new version of the same app belongs to the UA but is not offered before a VM installed it
    // (no VM here); the same version with another package is a conflict
    const v2 = await ok(gw, PROVIDE, { i: app({ version: '1.1.0', sha256: 'b'.repeat(64) }) }, key);
    expect(v2.provideApplication.ua.id).toBe(d.provideApplication.ua.id);
    expect(v2.provideApplication.ua.currentVersion).toBe('1.0.0');
    const clash = await refusal(gw, PROVIDE, { i: app({ version: '1.1.0', sha256: 'c'.repeat(64) }) }, key);
    expect(clash.extensions?.code).toBe('CONFLICT');

    const ua = await ok(gw, `{ ua(id: "${d.provideApplication.ua.id}") { versions { version sha256 sizeBytes } storefront { name } } }`, {}, adminToken);
    expect(ua.ua.versions.map((v: { version: string }) => v.version).sort()).toEqual(['1.0.0', '1.1.0']);
    expect(ua.ua.storefront.name).toBe('Acme Store');

    // a storefront key is no user token, a user token is no storefront key
    expect((await refusal(gw, `{ mySessions { id } }`, {}, key)).extensions?.code).toBe('FORBIDDEN');
    expect((await refusal(gw, PROVIDE, { i: app() }, adminToken)).extensions?.code).toBe('FORBIDDEN');
    expect((await refusal(gw, PROVIDE, { i: app() }, 'ApiKey sfk.00000000-0000-0000-0000-000000000000.nope')).extensions?.code).toBe('UNAUTHENTICATED');
    const tampered = reg.registerStorefront.apiKey.slice(0, -2) + 'xx';
    expect((await refusal(gw, PROVIDE, { i: app() }, `ApiKey ${tampered}`)).extensions?.code).toBe('UNAUTHENTICATED');

    // a disabled storefront's key stops working at once
    await ok(gw, `mutation { setStorefrontEnabled(id: "${reg.registerStorefront.storefront.id}", enabled: false) { enabled } }`, {}, adminToken);
    expect((await refusal(gw, PROVIDE, { i: app({ version: '2.0.0' }) }, key)).extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('lets an admin procure an application for a storefront', async () => {
    const reg = await ok(gw, `mutation { registerStorefront(name: "Admin Store", baseUrl: "https://admin-store.example") { storefront { id } } }`, {}, adminToken);
    const d = await ok(gw, `mutation($s: ID!, $i: ProvideApplicationInput!) { procureApplication(storefrontId: $s, input: $i) { status ua { name } storefront { name } } }`,
      { s: reg.registerStorefront.storefront.id, i: app({ storefrontAppId: 'com.example.notes', name: 'Notes' }) }, adminToken);
    expect(d.procureApplication).toEqual({ status: 'REQUESTED', ua: { name: 'Notes' }, storefront: { name: 'Admin Store' } });
    const list = await ok(gw, `{ procurements(status: REQUESTED) { storefrontAppId } }`, {}, adminToken);
    expect(list.procurements.map((p: { storefrontAppId: string }) => p.storefrontAppId)).toContain('com.example.notes');
  });
});

describe('bad input', () => {
  it('gives BAD_USER_INPUT for wrong types and oversize strings, NOT_FOUND for unknown ids, and writes nothing', async () => {
    const before = (await ok(gw, `{ users(limit: 200) { id } }`, {}, adminToken)).users.length;
    const wrongType = await gql(gw, `mutation { register(input: {username: 42, password: "password-1"}) { token } }`);
    expect(wrongType.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const wrongVar = await gql(gw, `mutation($i: RegisterInput!) { register(input: $i) { token } }`, { i: { username: ['x'], password: 1 } });
    expect(wrongVar.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const oversize = await refusal(gw, `mutation($i: RegisterInput!) { register(input: $i) { token } }`, { i: { username: 'longname', password: 'password-1', displayName: 'x'.repeat(5000) } });
    expect(oversize.extensions?.code).toBe('BAD_USER_INPUT');
    expect(oversize.message).toMatch(/displayName/);
    const unknownField = await gql(gw, `{ nope }`);
    expect(unknownField.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const syntax = await gql(gw, `{ me { id `);
    expect(syntax.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect((await ok(gw, `{ users(limit: 200) { id } }`, {}, adminToken)).users.length).toBe(before);

    for (const id of ['not-a-uuid', '00000000-0000-0000-0000-000000000000']) {
      expect((await refusal(gw, `{ ua(id: "${id}") { id } }`, {}, adminToken)).extensions?.code).toBe('NOT_FOUND');
      expect((await refusal(gw, `mutation { setUserRole(userId: "${id}", role: ADMIN) { id } }`, {}, adminToken)).extensions?.code).toBe('NOT_FOUND');
      expect((await refusal(gw, `mutation { endSession(sessionId: "${id}") { id } }`, {}, adminToken)).extensions?.code).toBe('NOT_FOUND');
    }
    const badPage = await refusal(gw, `{ users(limit: 100000) { id } }`, {}, adminToken);
    expect(badPage.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('refuses a bad provideApplication as a whole: no UA, version or procurement is half-written', async () => {
    const reg = await ok(gw, `mutation { registerStorefront(name: "Strict Store", baseUrl: "https://strict.example") { apiKey storefront { id } } }`, {}, adminToken);
    const key = `ApiKey ${reg.registerStorefront.apiKey}`;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ sha256: 'xyz' }, /sha256/],
      [{ sizeBytes: 0 }, /sizeBytes/],
      [{ version: 'has space' }, /version/],
      [{ name: 'n'.repeat(500) }, /name/],
      [{ packageUrl: 'file:///etc/passwd' }, /packageUrl/],
      [{ packageUrl: 'javascript:alert(1)' }, /packageUrl/],
      [{ packageUrl: 'https://elsewhere.example/p.tar.gz' }, /storefront's origin/],
    ];
    for (const [over, msg] of cases) {
      const e = await refusal(gw, PROVIDE, { i: app({ storefrontAppId: 'com.example.bad', ...over }) }, key);
      expect(e.extensions?.code).toBe('BAD_USER_INPUT');
      expect(e.message).toMatch(msg);
    }
    const uas = await ok(gw, `{ uas { storefrontAppId } }`, {}, adminToken);
    expect(uas.uas.map((u: { storefrontAppId: string }) => u.storefrontAppId)).not.toContain('com.example.bad');
    const sf = await ok(gw, `{ storefronts { id procurements { id } } }`, {}, adminToken);
    expect(sf.storefronts.find((s: { id: string }) => s.id === reg.registerStorefront.storefront.id).procurements).toEqual([]);
  });
});

describe('schema', () => {
  it('serves a schema with no breaking change against the contract', async () => {
    const contract = buildSchema(fs.readFileSync(CONTRACT, 'utf8'));
    const intro = await ok<IntrospectionQuery>(gw, getIntrospectionQuery({ specifiedByUrl: true, inputValueDeprecation: true }));
    const served = buildClientSchema(intro);
    expect(findBreakingChanges(contract, served)).toEqual([]);
  });

  it('matches the committed apps/gateway/schema.graphql', async () => {
    const intro = await ok<IntrospectionQuery>(gw, getIntrospectionQuery({ specifiedByUrl: true, inputValueDeprecation: true }));
    const served = printSchema(lexicographicSortSchema(buildClientSchema(intro)));
    const committed = printSchema(lexicographicSortSchema(buildSchema(fs.readFileSync(path.join(ROOT, 'apps/gateway/schema.graphql'), 'utf8'))));
    expect(served).toBe(committed);
  });

  it('has reviewed migrations that produce exactly the schema the entities describe', async () => {
    // the gateway migrated this database at start (synchronize is off everywhere)
    const { createDataSource } = require(path.join(ROOT, 'apps/gateway/dist/db/data-source.js'));
    const ds = createDataSource(databaseUrl);
    await ds.initialize();
    // TypeORM's schema reader (PostgresQueryRunner.loadTables) sends a table's queries all at once
    // on its one connection, which node-postgres deprecates (pg 9 refuses it): they take turns here
    const createQueryRunner = ds.createQueryRunner.bind(ds);
    ds.createQueryRunner = (...args: unknown[]) => {
      const runner = createQueryRunner(...args);
      const query = runner.query.bind(runner);
      let turn: Promise<unknown> = Promise.resolve();
      runner.query = (...q: unknown[]) => {
        const next = turn.then(() => query(...q));
        turn = next.catch(() => undefined);
        return next;
      };
      return runner;
    };
    try {
      const pending = await ds.driver.createSchemaBuilder().log();
      expect(pending.upQueries.map((q: { query: string }) => q.query)).toEqual([]);
      expect(ds.options.synchronize).toBe(false);
    } finally {
      await ds.destroy();
    }
  });

  it('has the contract in the repository (docs/api/uve.graphql), with the API the README shows', () => {
    // read from the repository itself: a clone has it, and its absence fails here rather than passing
    const contract = buildSchema(fs.readFileSync(CONTRACT, 'utf8'));
    expect(Object.keys(contract.getQueryType()!.getFields())).toEqual(expect.arrayContaining(['me', 'uas', 'mySessions']));
    expect(Object.keys(contract.getMutationType()!.getFields())).toEqual(expect.arrayContaining(['login', 'register', 'requestApplication', 'endSession', 'provideApplication']));
    expect(Object.keys(contract.getSubscriptionType()!.getFields())).toEqual(expect.arrayContaining(['sessionEvents', 'vmEvents']));
  });
});
