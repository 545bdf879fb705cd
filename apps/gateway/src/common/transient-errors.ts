// Which failures may pass if the same work is tried again: a dependency that is down (PostgreSQL,
// Redis) or a transaction PostgreSQL gave up on because of others running beside it. Anything else
// (a bug, data a constraint refuses) fails the same way every time. The API says UNAVAILABLE for
// the first kind (api/format-error.ts); the UVE-5 consumer lets the queue retry only this kind.

/** PostgreSQL SQLSTATE classes and codes that mean "the server is not there right now". */
const PG_UNAVAILABLE = /^(08|57P0[1-3]|53300)/;
/**
 * PostgreSQL codes of a transaction that lost to concurrent ones or ran out of time:
 * serialization_failure, deadlock_detected, lock_not_available, query_canceled (statement_timeout).
 */
const PG_TRANSIENT = new Set(['40001', '40P01', '55P03', '57014']);
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND']);
const UNAVAILABLE_MESSAGES = [
  /Connection terminated/i, // pg: server went away mid-query
  /timeout exceeded when trying to connect/i, // pg pool: UVE_DB_TIMEOUT_MS
  /Query read timeout/i, // pg: query_timeout
  /Connection is closed/i, // ioredis
  /Stream isn't writeable/i, // ioredis, offline queue disabled
  /Reached the max retries per request limit/i, // ioredis
  /Redis did not answer/i, // @uve/queue send timeout
];

type ErrorLike = Record<string, unknown>;

/** The error and what it wraps (TypeORM's driverError, GraphQL's originalError, `cause`), a few deep. */
function* chain(error: unknown): Generator<ErrorLike> {
  for (let e = error as ErrorLike | undefined, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    yield e;
    e = (e.driverError ?? e.originalError ?? e.cause) as ErrorLike | undefined;
  }
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Which dependency a failure came from when it means that dependency is down, else null. */
export function unavailableDependency(error: unknown): 'database' | 'redis' | null {
  for (const e of chain(error)) {
    const code = text(e.code);
    const message = text(e.message);
    const isRedis = e.name === 'MaxRetriesPerRequestError' || /Redis|Stream isn't writeable|Connection is closed/i.test(message);
    if (PG_UNAVAILABLE.test(code) || NET_CODES.has(code) || UNAVAILABLE_MESSAGES.some((m) => m.test(message)) || e.name === 'MaxRetriesPerRequestError') {
      return isRedis ? 'redis' : 'database';
    }
  }
  return null;
}

/** Whether the same work, tried again a little later, may succeed. */
export function mayPassOnRetry(error: unknown): boolean {
  if (unavailableDependency(error)) return true;
  for (const e of chain(error)) if (PG_TRANSIENT.has(text(e.code))) return true;
  return false;
}
