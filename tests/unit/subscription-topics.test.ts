// One topic's subscriptions share one pub/sub listener; every event is re-checked once per user
// (the user read fresh) and a user who may no longer see it gets nothing from that event on; the
// history comes first with no event twice; a subscription left behind ends with an error. A stub
// pub/sub and user store (no server needed).
import { guardedStream, type Rule } from '../../apps/gateway/src/common/subscriptions';

type Payload = { id: string; n: number };

function services() {
  const listeners = new Map<string, Set<(p: Payload) => void>>();
  let listening = 0;
  const allowed = new Set<string>();
  const fresh: string[] = [];
  const pubsub = {
    subscribe: (topic: string, id?: string): AsyncIterableIterator<Payload> => {
      const key = `${topic}:${id}`;
      const queue: Payload[] = [];
      let wake: ((r: IteratorResult<Payload>) => void) | null = null;
      const push = (p: Payload) => (wake ? (wake({ done: false, value: p }), (wake = null)) : queue.push(p));
      if (!listeners.has(key)) listeners.set(key, new Set());
      listeners.get(key)!.add(push);
      listening++;
      const it: AsyncIterableIterator<Payload> = {
        [Symbol.asyncIterator]: () => it,
        next: () => (queue.length ? Promise.resolve({ done: false, value: queue.shift()! }) : new Promise((r) => (wake = r))),
        return: async () => {
          listeners.get(key)!.delete(push);
          listening--;
          wake?.({ done: true, value: undefined });
          return { done: true, value: undefined };
        },
      };
      return it;
    },
  };
  const users = {
    findFresh: async (id: string) => {
      fresh.push(id);
      return allowed.has(id) ? { id, role: 'USER' } : null;
    },
  };
  const s = { pubsub, users };
  return {
    services: s,
    ctx: (userId: string) => ({ principal: { kind: 'user', user: { id: userId, role: 'USER' }, token: {} }, services: s }) as never,
    emit: (topic: string, id: string, p: Payload) => listeners.get(`${topic}:${id}`)?.forEach((l) => l(p)),
    listening: () => listening,
    allowed,
    fresh,
  };
}

type Stream = AsyncIterableIterator<Payload> & { withHistory(history: () => Promise<Payload[]>): AsyncIterableIterator<Payload> };
const open = (ctx: never, rule: Rule<Payload>, topic: string, id: string) => guardedStream(ctx, rule as never, topic as never, id) as unknown as Stream;
const everyone: Rule<Payload> = () => true;
const event = (n: number): Payload => ({ id: `e${n}`, n });
/** Next value, or 'nothing' if none comes within the microtasks of a few event-loop turns. */
async function nextOrNothing(it: AsyncIterator<Payload>): Promise<Payload | 'nothing' | 'done'> {
  const r = it.next().then((x) => (x.done ? 'done' : x.value));
  const nothing = new Promise<'nothing'>((resolve) => setTimeout(() => resolve('nothing'), 50));
  return Promise.race([r, nothing]);
}

describe('subscriptions by topic', () => {
  it('listens once per topic, checks each user once per event and delivers to every subscription in order', async () => {
    const s = services();
    s.allowed.add('alice').add('bob');
    const subs = [...Array.from({ length: 3 }, () => open(s.ctx('alice'), everyone, 'SESSION_EVENT', 's1')), open(s.ctx('bob'), everyone, 'SESSION_EVENT', 's1')];
    const other = open(s.ctx('alice'), everyone, 'SESSION_EVENT', 's2');
    expect(s.listening()).toBe(2);
    const firsts = subs.map((it) => it.next());
    s.emit('SESSION_EVENT', 's1', event(1));
    s.emit('SESSION_EVENT', 's1', event(2));
    expect((await Promise.all(firsts)).map((r) => (r.value as Payload).n)).toEqual([1, 1, 1, 1]);
    expect((await Promise.all(subs.map((it) => it.next()))).map((r) => (r.value as Payload).n)).toEqual([2, 2, 2, 2]);
    // one fresh read per user per event, not per subscription
    expect([...s.fresh].sort()).toEqual(['alice', 'alice', 'bob', 'bob']);
    expect(await nextOrNothing(other)).toBe('nothing');
    // the topic's listener goes with its last subscription
    await Promise.all(subs.map((it) => it.return!()));
    expect(s.listening()).toBe(1);
    await other.return!();
    expect(s.listening()).toBe(0);
  });

  it('stops delivering to a user at the first event after they lost the right to it', async () => {
    const s = services();
    s.allowed.add('alice').add('bob');
    const rule: Rule<Payload> = (user) => user.id !== 'mallory';
    const alice = open(s.ctx('alice'), rule, 'NOTIFICATION', 'u');
    const bob = open(s.ctx('bob'), rule, 'NOTIFICATION', 'u');
    s.emit('NOTIFICATION', 'u', event(1));
    expect([(await alice.next()).value, (await bob.next()).value]).toEqual([event(1), event(1)]);
    s.allowed.delete('bob'); // e.g. the user was removed: findFresh reads null
    s.emit('NOTIFICATION', 'u', event(2));
    expect((await alice.next()).value).toEqual(event(2));
    expect(await nextOrNothing(bob)).toBe('nothing');
  });

  it('delivers the history first, then the live events, none twice', async () => {
    const s = services();
    s.allowed.add('alice');
    let readHistory!: (p: Payload[]) => void;
    const it = open(s.ctx('alice'), everyone, 'SESSION_EVENT', 's1').withHistory(() => new Promise((r) => (readHistory = r)));
    const got: number[] = [];
    const all = (async () => {
      for (let i = 0; i < 4; i++) got.push(((await it.next()).value as Payload).n);
    })();
    s.emit('SESSION_EVENT', 's1', event(2)); // live, before the history is read: also in it
    s.emit('SESSION_EVENT', 's1', event(3)); // live, not in it
    await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual([]);
    readHistory([event(1), event(2)]);
    await new Promise((r) => setTimeout(r, 10));
    s.emit('SESSION_EVENT', 's1', event(4));
    await all;
    expect(got).toEqual([1, 2, 3, 4]);
  });

  it('ends a subscription that falls 1,000 events behind, with an error, and keeps the others', async () => {
    const s = services();
    s.allowed.add('alice');
    const slow = open(s.ctx('alice'), everyone, 'SESSION_EVENT', 's1');
    const fast = open(s.ctx('alice'), everyone, 'SESSION_EVENT', 's1');
    for (let n = 1; n <= 1001; n++) {
      const got = fast.next();
      s.emit('SESSION_EVENT', 's1', event(n));
      expect(((await got).value as Payload).n).toBe(n);
    }
    await expect(slow.next()).rejects.toThrow(/fell 1000 events behind/);
    expect(await slow.next()).toEqual({ done: true, value: undefined });
  });
});
