// Every refusal leaves with one of the contract's codes and a message a person can act on;
// anything unexpected is logged and masked.
import type { GraphQLError, GraphQLFormattedError } from 'graphql';
import type { Logger } from '../common/logger';
import { UveError } from '../common/errors';
import { unavailableDependency } from '../common/transient-errors';
import { withoutSuggestions, type GraphqlLimits } from './limits';

const CONTRACT_CODES = new Set(['UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'BAD_USER_INPUT', 'CONFLICT', 'UNAVAILABLE']);
/** Apollo's own codes for requests that never reached a resolver: all bad input from the client. */
const CLIENT_CODES = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST', 'PERSISTED_QUERY_NOT_SUPPORTED', 'OPERATION_RESOLUTION_FAILURE']);

interface ValidationErrorLike {
  property: string;
  constraints?: Record<string, string>;
  children?: ValidationErrorLike[];
}

function flatten(errors: ValidationErrorLike[], prefix = ''): string[] {
  return errors.flatMap((e) => {
    const path = prefix ? `${prefix}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => `${path}: ${m}`);
    return own.concat(flatten(e.children ?? [], path));
  });
}

/** What a client is told when a dependency is down (a GraphQL error's message, a WebSocket close reason). */
export function unavailableMessage(down: 'database' | 'redis'): string {
  return `${down === 'database' ? 'The database (PostgreSQL)' : 'The message broker (Redis)'} is unavailable right now; try again shortly.`;
}

export function formatError(log: Logger, limits: Pick<GraphqlLimits, 'introspection'>) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    // a service's refusal, wrapped by graphql-js (or Apollo's context creation) on its way here
    const refusal = domainError(error);
    if (refusal) return { message: refusal.message, ...(formatted.locations ? { locations: formatted.locations } : {}), ...(formatted.path ? { path: formatted.path } : {}), extensions: { ...refusal.details, code: refusal.code } };
    const code = String(formatted.extensions?.code ?? '');
    const validationErrors = formatted.extensions?.validationErrors as ValidationErrorLike[] | undefined;
    if (validationErrors) {
      const problems = flatten(validationErrors);
      return { ...formatted, message: `Invalid input: ${problems.join('; ')}`, extensions: { code: 'BAD_USER_INPUT', problems } };
    }
    if (CONTRACT_CODES.has(code)) return formatted;
    if (CLIENT_CODES.has(code)) {
      return { ...formatted, message: withoutSuggestions(formatted.message, limits), extensions: { ...formatted.extensions, code: 'BAD_USER_INPUT', reason: code } };
    }
    const down = unavailableDependency(error);
    if (down) {
      log.warn('request failed: a dependency is unavailable', { dependency: down, path: formatted.path, error: formatted.message });
      return { message: unavailableMessage(down), path: formatted.path, extensions: { code: 'UNAVAILABLE', dependency: down } };
    }
    log.error('unexpected error in a resolver', { message: formatted.message, path: formatted.path, stack: (error as { originalError?: Error })?.originalError?.stack });
    return { message: 'Internal error; it was logged. Try again, and tell the operator if it persists.', path: formatted.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}

/** The UveError a GraphQL error carries (graphql-js keeps a resolver's thrown error as originalError). */
function domainError(error: unknown): UveError | null {
  for (let e = error, depth = 0; e && depth < 4; e = (e as { originalError?: unknown }).originalError, depth++) {
    if (e instanceof UveError) return e;
  }
  return null;
}

/**
 * The same rule on the WebSocket path, where graphql-ws would send each GraphQLError as it is: for
 * its onError (a refused subscribe) and onNext (errors in an event's result).
 */
export function formatErrors(log: Logger, limits: Pick<GraphqlLimits, 'introspection'>) {
  const format = formatError(log, limits);
  return (errors: readonly GraphQLError[]): GraphQLFormattedError[] => errors.map((e) => format(e.toJSON(), e));
}
