// Failures that mean "a dependency is down" leave as UNAVAILABLE naming it; anything else stays masked.
import path from 'node:path';

const { formatError } = require(path.resolve(__dirname, '../../apps/gateway/dist/api/format-error.js'));
const { unavailableDependency } = require(path.resolve(__dirname, '../../apps/gateway/dist/common/transient-errors.js'));
const quiet = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

it.each([
  ['a refused connection to PostgreSQL', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), 'database'],
  ['TypeORM wrapping a server shutdown', { name: 'QueryFailedError', message: 'terminating connection due to administrator command', driverError: { code: '57P01' } }, 'database'],
  ['the pool timing out (UVE_DB_TIMEOUT_MS)', new Error('timeout exceeded when trying to connect'), 'database'],
  ['a closed Redis connection', new Error('Connection is closed.'), 'redis'],
  ['a bus send timing out', new Error('sending session.prepare to uve-vm-x: Redis did not answer in 5000 ms'), 'redis'],
  ['a bug', new TypeError("Cannot read properties of undefined (reading 'id')"), null],
  ['a constraint violation', { name: 'QueryFailedError', message: 'duplicate key', driverError: { code: '23505' } }, null],
])('%s', (_what, error, expected) => {
  expect(unavailableDependency(error)).toBe(expected);
  const out = formatError(quiet)({ message: (error as Error).message, path: ['x'], extensions: { code: 'INTERNAL_SERVER_ERROR' } }, { originalError: error });
  expect(out.extensions.code).toBe(expected ? 'UNAVAILABLE' : 'INTERNAL_SERVER_ERROR');
  if (expected) expect(out.extensions.dependency).toBe(expected);
});

// graphql-ws sends a GraphQLError as it is (message, extensions): the WebSocket path formats its
// errors with the same rule, so a subscription cannot leak what HTTP masks.
describe('errors on the WebSocket path', () => {
  const { GraphQLError } = require('graphql') as typeof import('graphql');
  const { formatErrors } = require(path.resolve(__dirname, '../../apps/gateway/dist/api/format-error.js'));
  const { notFound } = require(path.resolve(__dirname, '../../apps/gateway/dist/common/errors.js'));
  const format = formatErrors(quiet, { introspection: false });

  it('masks an unexpected error and keeps its path', () => {
    const located = new GraphQLError('relation "vm_secrets" does not exist', { path: ['sessionEvents', 'actor'], originalError: new Error('relation "vm_secrets" does not exist') });
    const [out] = format([located]);
    expect(out.extensions.code).toBe('INTERNAL_SERVER_ERROR');
    expect(out.message).not.toMatch(/vm_secrets/);
    expect(out.path).toEqual(['sessionEvents', 'actor']);
  });

  it('keeps a contract error as it is', () => {
    const e = notFound('Session', '6b1f0c1e-0000-4000-8000-000000000000');
    const [out] = format([new GraphQLError(e.message, { path: ['sessionEvents'], originalError: e })]);
    expect(out.extensions).toEqual({ code: 'NOT_FOUND', id: '6b1f0c1e-0000-4000-8000-000000000000' });
    expect(out.message).toBe(e.message);
    expect(out.path).toEqual(['sessionEvents']);
  });

  it('maps a service refusal, which knows no GraphQL, at the edge: its code and details as extensions, its HTTP status', () => {
    const { conflict, httpStatusOf, UveError } = require(path.resolve(__dirname, '../../apps/gateway/dist/common/errors.js'));
    const e = conflict('Cannot resume the session: it is ACTIVE, not SUSPENDED.', { state: 'ACTIVE' });
    expect(e).toBeInstanceOf(UveError);
    expect(e).not.toBeInstanceOf(GraphQLError);
    // a detail named `code` cannot take the contract code's place
    const odd = new UveError('FORBIDDEN', 'no', { code: 'SOMETHING_ELSE' });
    const [a, b] = format([new GraphQLError(e.message, { originalError: e }), new GraphQLError(odd.message, { originalError: odd })]);
    expect(a.extensions).toEqual({ code: 'CONFLICT', state: 'ACTIVE' });
    expect(b.extensions.code).toBe('FORBIDDEN');
    expect([e, odd].map((x: { code: string }) => httpStatusOf(x.code))).toEqual([409, 403]);
  });

  it('names a dependency that is down', () => {
    const down = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const [out] = format([new GraphQLError(down.message, { originalError: down })]);
    expect(out.extensions).toMatchObject({ code: 'UNAVAILABLE', dependency: 'database' });
  });
});
