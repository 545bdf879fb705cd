// The contract's error model: every refusal is a UveError with one of these codes and a message a
// person can act on. A domain error, not a GraphQL one: the API's edge maps it (api/format-error.ts
// to the GraphQL `extensions.code`, httpStatusOf for an HTTP route), so services know no transport.

export type ErrorCode = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND' | 'BAD_USER_INPUT' | 'CONFLICT' | 'UNAVAILABLE';

export class UveError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** what a client may act on besides the code (`field`, `state`, `reason`, ids): the GraphQL error's other extensions */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'UveError';
  }
}

/** The HTTP status of a refusal, for routes outside GraphQL. */
export function httpStatusOf(code: ErrorCode): number {
  return { UNAUTHENTICATED: 401, FORBIDDEN: 403, NOT_FOUND: 404, BAD_USER_INPUT: 400, CONFLICT: 409, UNAVAILABLE: 503 }[code];
}

export const unauthenticated = (msg = 'Sign in first: send "Authorization: Bearer <token>" from login or register.') => new UveError('UNAUTHENTICATED', msg);
export const forbidden = (msg: string) => new UveError('FORBIDDEN', msg);
export const notFound = (what: string, id: string) => new UveError('NOT_FOUND', `${what} ${id} does not exist or is not visible to you.`, { id });
export const badInput = (msg: string, field?: string) => new UveError('BAD_USER_INPUT', msg, field ? { field } : {});
export const conflict = (msg: string, extra?: Record<string, unknown>) => new UveError('CONFLICT', msg, extra);
export const unavailable = (msg: string, extra?: Record<string, unknown>) => new UveError('UNAVAILABLE', msg, extra);

// clipText: a report's text cut for its event must stay storable (a report whose event PostgreSQL refused would be retried for ever)
export { clipText, isUuid } from '@uve/protocol';

/** Checks a free-text argument that has no input class to carry validators. */
export function checkText(value: string | null | undefined, field: string, maxLength: number): void {
  if (value != null && value.length > maxLength) throw badInput(`${field} is longer than ${maxLength} characters.`, field);
}


/** A contract operation whose flow this gateway version does not run yet. */
export const notOffered = (what: string) => unavailable(`${what} is not offered by this gateway version yet.`, { notImplemented: true });
