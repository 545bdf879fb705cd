// A subscription event is executed once for the subscriptions of one viewer (same document,
// variables, user and role), never shared between users; ending a subscription does not wait for
// its next event. graphql-js with a real schema and a real event source (no server needed).
import { buildSchema, parse, type ExecutionResult } from 'graphql';
import { sharedSubscribe } from '../../apps/gateway/src/api/shared-execution';

const schema = buildSchema('type Event { n: Int!, viewer: String!, run: Int! } type Query { ok: Boolean } type Subscription { events: Event! }');
const document = parse('subscription { events { n viewer run } }');

/** A source every subscriber listens to; `emit` hands the same payload object to all of them. */
function source() {
  const listeners = new Set<(p: object) => void>();
  let returned = 0;
  const subscribe = (): AsyncIterableIterator<object> => {
    const queue: object[] = [];
    let wake: ((r: IteratorResult<object>) => void) | null = null;
    const push = (p: object) => (wake ? (wake({ done: false, value: p }), (wake = null)) : queue.push(p));
    listeners.add(push);
    const it: AsyncIterableIterator<object> = {
      [Symbol.asyncIterator]: () => it,
      next: () => (queue.length ? Promise.resolve({ done: false, value: queue.shift()! }) : new Promise((r) => (wake = r))),
      return: async () => {
        listeners.delete(push);
        returned++;
        wake?.({ done: true, value: undefined });
        return { done: true, value: undefined };
      },
    };
    return it;
  };
  return { subscribe, emit: (p: object) => listeners.forEach((l) => l(p)), returned: () => returned };
}

describe('shared subscription execution', () => {
  it('executes an event once per viewer and gives each viewer its own result', async () => {
    const events = source();
    let runs = 0;
    const rootValue = {};
    const fieldResolver = (root: Record<string, unknown>, _a: unknown, ctx: { principal: { user: { id: string } } }, info: { fieldName: string; parentType: { name: string } }) => {
      if (info.parentType.name === 'Subscription') return root;
      if (info.fieldName === 'viewer') return ctx.principal.user.id;
      if (info.fieldName === 'run') return (runs += 1);
      return root[info.fieldName];
    };
    const ctx = (id: string, role = 'USER') => ({ principal: { kind: 'user', user: { id, role }, token: {} } });
    const open = async (c: object) => {
      const it = await sharedSubscribe({ schema, document, rootValue, contextValue: c, fieldResolver, subscribeFieldResolver: () => events.subscribe() } as never);
      return it as AsyncIterableIterator<ExecutionResult>;
    };
    const [a1, a2, b, aAdmin] = await Promise.all([open(ctx('alice')), open(ctx('alice')), open(ctx('bob')), open(ctx('alice', 'ADMIN'))]);
    const next = Promise.all([a1.next(), a2.next(), b.next(), aAdmin.next()]);
    events.emit({ n: 1 });
    const [r1, r2, rb, rAdmin] = (await next).map((r) => r.value as ExecutionResult<{ events: { n: number; viewer: string; run: number } }>);
    expect(r1!.data!.events).toMatchObject({ n: 1, viewer: 'alice' });
    // alice's two subscriptions: one execution, the same result
    expect(r2).toBe(r1);
    // bob, and alice under another role, each their own execution
    expect(rb!.data!.events.viewer).toBe('bob');
    expect(rb).not.toBe(r1);
    expect(rAdmin).not.toBe(r1);
    expect(runs).toBe(3);

    // a new event is executed anew
    const again = Promise.all([a1.next(), a2.next()]);
    events.emit({ n: 2 });
    const [s1, s2] = (await again).map((r) => r.value as ExecutionResult<{ events: { n: number } }>);
    expect(s1!.data!.events.n).toBe(2);
    expect(s2).toBe(s1);

    // ending a subscription waiting for its next event ends it now (bob first takes event 2)
    expect(((await b.next()).value as ExecutionResult<{ events: { n: number } }>).data!.events.n).toBe(2);
    const waiting = b.next();
    await b.return!();
    await expect(waiting).resolves.toMatchObject({ done: true });
    expect(events.returned()).toBe(1);
    await Promise.all([a1.return!(), a2.return!(), aAdmin.return!()]);
  });
});
