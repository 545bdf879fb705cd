// Subscriptions check who may listen when they start and again for every event: a role taken
// away or a grant revoked stops the flow without the client reconnecting.
import { filter, pipe } from '@graphql-yoga/subscription';
import { forbidden } from '../common/errors';
import type { User } from '../modules/users/users.entity';
import { currentUser } from './auth-checker';
import type { Context } from './context';

export function guardedStream<T>(ctx: Context, source: AsyncIterable<T>, allowed: (user: User, payload: T) => boolean | Promise<boolean>): AsyncIterable<T> {
  const user = currentUser(ctx);
  return pipe(
    source,
    filter(async (payload: T) => {
      // fresh from the database: a changed role applies to a long-lived connection (one query for
      // all the subscribers an event reaches in the same tick)
      const now = await ctx.services.users.findFresh(user.id);
      return now !== null && (await allowed(now, payload));
    }),
  );
}

export function adminOnlyStream<T>(ctx: Context, source: AsyncIterable<T>): AsyncIterable<T> {
  const user = currentUser(ctx);
  if (user.role !== 'ADMIN') throw forbidden('This subscription needs the ADMIN role.');
  return guardedStream(ctx, source, (u) => u.role === 'ADMIN');
}

/**
 * Delivers what was recorded before (history), then live events, without a gap: the live
 * subscription starts first, and live events already in the history are skipped.
 */
export async function* withHistory<T extends { id: string }>(live: AsyncIterable<T>, history: () => Promise<T[]>): AsyncGenerator<T> {
  const it = live[Symbol.asyncIterator]();
  const first = it.next(); // starts listening before the history is read
  try {
    const past = await history();
    const seen = new Set(past.map((p) => p.id));
    yield* past;
    for (let r = await first; !r.done; r = await it.next()) {
      if (!seen.has(r.value.id)) yield r.value;
    }
  } finally {
    await it.return?.();
  }
}
