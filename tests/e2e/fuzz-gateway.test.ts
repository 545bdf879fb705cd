// Fuzzing the real gateway's GraphQL with fast-check (fixed seeds, bounded runs): random documents,
// mutated operations of the contract and random variables, anonymous and signed in. Every answer is
// JSON whose errors each carry a message and an extensions.code; the gateway stays up.
import fc from 'fast-check';
import { freshDatabase, startRedis, type TestRedis } from '../support/services';
import { gql, registerUser, startGateway, type GatewayProcess, type GqlResult } from '../support/gateway';

jest.setTimeout(180_000);

const SEED = 20261202;
let redis: TestRedis;
let gw: GatewayProcess;
let token: string;

beforeAll(async () => {
  redis = await startRedis();
  // generous rate limits: the fuzzer is one client address making many calls
  gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'fuzz', UVE_DOCKER: 'off', UVE_WARM_VMS: '0', UVE_LOGIN_RATE_PER_MIN: '100000', UVE_REGISTER_RATE_PER_MIN: '100000' });
  token = (await registerUser(gw, 'fuzzer')).token;
});

afterAll(async () => {
  await gw?.stop();
  await redis?.stop();
});

function expectExplained(r: GqlResult): void {
  // an answer with data and no errors is fine too; whatever failed says what and how
  for (const e of r.errors ?? []) {
    expect(typeof e.message).toBe('string');
    expect(e.message.length).toBeGreaterThan(0);
    expect(typeof e.extensions?.code).toBe('string');
  }
  expect(r.status).toBeLessThan(500);
}

// operations of the contract, their variables to be randomized
const OPERATIONS = [
  'mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }',
  'mutation($u: String!, $p: String!) { register(username: $u, password: $p) { token } }',
  'mutation($id: ID!) { requestApplication(input: { uaId: $id }) { id state } }',
  'query($id: ID!) { session(id: $id) { id state connection { url } } }',
  'query($id: ID!) { ua(id: $id) { id name } }',
  'mutation($id: ID!) { endSession(sessionId: $id) { state } }',
  'query { uas { id name versions { version } } }',
];
const scalar = fc.oneof(fc.string({ maxLength: 100 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.uuid(), fc.jsonValue({ maxDepth: 3 }));
const variables = fc.record({ u: scalar, p: scalar, id: scalar }, { requiredKeys: [] });

it('answers random documents with errors that carry a code', async () => {
  const doc = fc.oneof(
    fc.string({ maxLength: 300 }),
    // fragments of the contract's syntax in random order
    fc.array(fc.constantFrom('{', '}', '(', ')', 'query', 'mutation', 'subscription', 'login', 'uas', 'id', '$x', ':', '...', 'fragment', 'on', '@skip', 'a:', '"s"', '[', ']', '!', 'ID', '__schema'), { maxLength: 60 }).map((t) => t.join(' ')),
    // a contract operation with a slice cut out
    fc.tuple(fc.constantFrom(...OPERATIONS), fc.nat(), fc.nat(20)).map(([op, at, len]) => op.slice(0, at % op.length) + op.slice((at % op.length) + len)),
  );
  await fc.assert(
    fc.asyncProperty(doc, fc.boolean(), async (query, signedIn) => {
      expectExplained(await gql(gw, query, {}, signedIn ? token : undefined));
    }),
    { seed: SEED, numRuns: 150 },
  );
});

it('answers contract operations with random variables with data or errors that carry a code', async () => {
  const codes = new Set<string>();
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...OPERATIONS), variables, fc.boolean(), async (query, vars, signedIn) => {
      const r = await gql(gw, query, vars, signedIn ? token : undefined);
      expectExplained(r);
      for (const e of r.errors ?? []) codes.add(e.extensions!.code!);
      if (!r.errors) codes.add('(data)');
    }),
    { seed: SEED + 1, numRuns: 150 },
  );
  // the inputs reached the resolvers, not only the validation of variables
  expect([...codes]).toEqual(expect.arrayContaining(['(data)', 'BAD_USER_INPUT', 'NOT_FOUND', 'UNAUTHENTICATED']));
  // still up, still answering
  const res = await fetch(`${gw.url}/healthz`);
  expect(res.status).toBe(200);
  expect(gw.child.exitCode).toBeNull();
});
