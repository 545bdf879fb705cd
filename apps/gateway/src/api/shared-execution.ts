// Subscriptions executed once per event for every subscriber that would get the same answer:
// graphql-js runs each event through the selection set once per subscription, so 5,000
// subscriptions of one session's events made 5,000 identical executions per event (issue 13's
// fan-out bench). An event's result is shared by the subscriptions with the same document (shared
// by query text, limits.ts), variables and operation, in the name of the same user with the same
// role: fields may depend on who asks, so nothing is shared between users.
import { createSourceEventStream, execute, type DocumentNode, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Context } from '../common/context';

type Result = ExecutionResult | Promise<ExecutionResult>;

/** event payload -> document -> viewer, variables and operation -> its result */
const shared = new WeakMap<object, WeakMap<DocumentNode, Map<string, Result>>>();

/** The viewer part of the key; null: not shared (no user behind the connection). */
function viewerKey(ctx: Context | undefined): string | null {
  const p = ctx?.principal;
  return p?.kind === 'user' ? `${p.user.id}:${p.user.role}` : null;
}

function executeShared(args: ExecutionArgs, key: string | null, payload: unknown): Result {
  if (key === null || typeof payload !== 'object' || payload === null) return execute({ ...args, rootValue: payload });
  let byDocument = shared.get(payload);
  if (!byDocument) shared.set(payload, (byDocument = new WeakMap()));
  let byKey = byDocument.get(args.document);
  if (!byKey) byDocument.set(args.document, (byKey = new Map()));
  let result = byKey.get(key);
  if (!result) byKey.set(key, (result = execute({ ...args, rootValue: payload })));
  return result;
}

/** graphql-ws's `subscribe`: graphql-js's, with each event's execution shared as above. */
export async function sharedSubscribe(args: ExecutionArgs): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const stream = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in stream)) return stream;
  const it = stream[Symbol.asyncIterator]();
  const viewer = viewerKey(args.contextValue as Context | undefined);
  const key = viewer === null ? null : `${viewer}|${args.operationName ?? ''}|${JSON.stringify(args.variableValues ?? {})}`;
  // an iterator object, not an async generator: return() must end a subscription waiting for its next event
  const mapped: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]: () => mapped,
    next: async () => {
      const r = await it.next();
      return r.done ? r : { done: false, value: await executeShared(args, key, r.value) };
    },
    return: async () => (it.return ? ((await it.return()) as IteratorResult<ExecutionResult>) : { done: true, value: undefined }),
    throw: async (e: unknown) => {
      if (it.throw) return (await it.throw(e)) as IteratorResult<ExecutionResult>;
      throw e;
    },
  };
  return mapped;
}
