// Which failures may pass on a retry (apps/gateway/src/common/transient-errors.ts): the UVE-5
// consumer lets the queue hand a report over again only for these. The errors are built with the
// drivers' own classes, as pg, TypeORM and ioredis throw them.
import { DatabaseError } from 'pg';
import { QueryFailedError } from 'typeorm';
import { MaxRetriesPerRequestError } from 'ioredis/built/errors';
import { mayPassOnRetry, unavailableDependency } from '../../apps/gateway/src/common/transient-errors';

/** an error as pg reports a refusal by the server */
function pgError(code: string, message = `a PostgreSQL error ${code}`): DatabaseError {
  return Object.assign(new DatabaseError(message, 0, 'error'), { code });
}
/** the same as TypeORM throws it from a repository or a query */
const viaTypeorm = (e: DatabaseError) => new QueryFailedError('UPDATE vms SET status = $1', ['IDLE'], e);

describe('PostgreSQL codes that may pass', () => {
  it.each([
    ['40001', 'serialization_failure'],
    ['40P01', 'deadlock_detected'],
    ['55P03', 'lock_not_available'],
    ['57014', 'query_canceled (statement_timeout)'],
    ['57P01', 'admin_shutdown'],
    ['57P03', 'cannot_connect_now (starting up)'],
    ['53300', 'too_many_connections'],
    ['08006', 'connection_failure'],
  ])('%s %s, as pg and as TypeORM throw it', (code) => {
    expect(mayPassOnRetry(pgError(code))).toBe(true);
    expect(mayPassOnRetry(viaTypeorm(pgError(code)))).toBe(true);
  });

  it('only the server-gone ones say a dependency is down; a lost transaction does not', () => {
    expect(unavailableDependency(viaTypeorm(pgError('57P01')))).toBe('database');
    expect(unavailableDependency(viaTypeorm(pgError('40P01')))).toBeNull();
  });
});

describe('PostgreSQL codes that fail the same way every time', () => {
  it.each([
    ['22P02', 'invalid_text_representation (not a uuid)'],
    ['22003', 'numeric_value_out_of_range'],
    ['22001', 'string_data_right_truncation'],
    ['23505', 'unique_violation'],
    ['23503', 'foreign_key_violation'],
    ['42703', 'undefined_column (a bug)'],
  ])('%s %s', (code) => {
    expect(mayPassOnRetry(pgError(code))).toBe(false);
    expect(mayPassOnRetry(viaTypeorm(pgError(code)))).toBe(false);
  });
});

it.each([
  ['a refused connection to PostgreSQL', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
  ['pg: the server went away mid-query', new Error('Connection terminated unexpectedly')],
  ['the pool timing out (UVE_DB_TIMEOUT_MS)', new Error('timeout exceeded when trying to connect')],
  ['ioredis: a closed connection', new Error('Connection is closed.')],
  ['ioredis: offline queue disabled', new Error("Stream isn't writeable and enableOfflineQueue options is false")],
  ['ioredis: out of retries', new MaxRetriesPerRequestError(1)],
  ['@uve/queue: a send timing out', new Error('sending session.prepare to uve-vm-x: Redis did not answer in 5000 ms')],
  ['a dependency failure given as the cause', new Error('the report guard could not answer', { cause: new Error('Connection is closed.') })],
])('%s may pass', (_what, error) => {
  expect(mayPassOnRetry(error)).toBe(true);
});

it.each([
  ['a bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
  ['a plain error', new Error('something else')],
  ['something thrown that is not an error', 'a string'],
  ['nothing', undefined],
])('%s does not', (_what, error) => {
  expect(mayPassOnRetry(error)).toBe(false);
});
