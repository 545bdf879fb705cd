// Subscriptions check who may listen when they start and again for every event: a role taken
// away or a grant revoked stops the flow without the client reconnecting.
//
// One topic's subscriptions share one listener (issue 13's fan-out): an event is taken from the
// pub/sub once, its authorization re-checked once per distinct user and rule (the users read fresh
// in one query), and handed to each allowed subscription's queue directly, instead of a Repeater
// chain per subscription (pub/sub listener, filter, history) with its promises per event.
import { forbidden } from './errors';
import { fanoutTrace } from './fanout-trace';
import type { Topics } from './pubsub';
import type { User } from '../modules/users/users.entity';
import type { Services } from '../services';
import { currentUser } from './auth-checker';
import type { Context } from './context';
import { isAdmin } from './access';

/**
 * Who may get an event. Must depend only on the user and the event: it is asked once per user per
 * event for all of that user's subscriptions with the same rule (a function made once, not per call).
 */
export type Rule<T> = (user: User, payload: T, services: Services) => boolean | Promise<boolean>;

/** A topic's payload type. */
export type PayloadOf<K extends keyof Topics> = Topics[K] extends [infer P] | [string, infer P] ? P : never;

/** Events a subscription may fall behind by (its socket not draining) before it is ended. */
const MAX_QUEUED = 1000;

/** How long the ids of a replayed history are kept to skip their live copies. */
const SEEN_MS = 30_000;

/** One subscription's queue: what the topic handed it, waiting for graphql-ws to pull. */
class Subscriber<T> implements AsyncIterableIterator<T> {
  private queue: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | null = null;
  private failed: ((e: Error) => void) | null = null;
  private error: Error | null = null;
  private done = false;
  /** until the history is read: live events held back; then the ids it had, not delivered twice */
  private held: T[] | null = null;
  private seen: Set<string> | null = null;

  constructor(
    readonly userId: string,
    readonly rule: Rule<T>,
    private readonly leave: (s: Subscriber<T>) => void,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Delivers `history` first, then the live events (listened to since before it was read), without a gap or repeat. */
  withHistory(history: () => Promise<(T & { id: string })[]>): this {
    this.held = [];
    history().then(
      (past) => {
        const held = this.held ?? [];
        this.held = null;
        for (const e of past) this.push(e);
        this.seen = new Set(past.map((p) => p.id));
        for (const e of held) this.push(e);
        // an event read in the history comes live within moments, if at all: its ids are not kept for hours
        setTimeout(() => (this.seen = null), SEEN_MS).unref();
      },
      (e: Error) => this.fail(e),
    );
    return this;
  }

  push(value: T): void {
    if (this.done || this.error) return;
    if (this.held) {
      this.held.push(value);
      return;
    }
    const id = (value as { id?: unknown }).id;
    if (this.seen && typeof id === 'string' && this.seen.has(id)) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = this.failed = null;
      w({ done: false, value });
    } else if (this.queue.length >= MAX_QUEUED) {
      this.fail(new Error(`The subscription fell ${MAX_QUEUED} events behind and was ended; subscribe again (replay: true catches up).`));
    } else {
      this.queue.push(value);
    }
  }

  fail(e: Error): void {
    if (this.done) return;
    this.queue = [];
    const f = this.failed;
    if (!f) {
      this.error = e; // told at the next pull; no more events meanwhile
      this.leave(this);
      return;
    }
    this.waiting = this.failed = null;
    f(e);
    this.end();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.queue.length) return Promise.resolve({ done: false, value: this.queue.shift()! });
    if (this.error) {
      const e = this.error;
      this.error = null;
      this.end();
      return Promise.reject(e);
    }
    if (this.done) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failed = reject;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.end();
    return Promise.resolve({ done: true, value: undefined });
  }

  private end(): void {
    if (this.done) return;
    this.done = true;
    this.queue = [];
    this.held = this.seen = null;
    this.leave(this);
    const w = this.waiting;
    this.waiting = this.failed = null;
    w?.({ done: true, value: undefined });
  }
}

/** The subscriptions of one topic and its one pub/sub listener. */
class Topic<T> {
  readonly subscribers = new Set<Subscriber<T>>();
  private readonly source: AsyncIterator<T>;

  constructor(
    source: AsyncIterable<T>,
    private readonly services: Services,
    private readonly close: () => void,
  ) {
    this.source = source[Symbol.asyncIterator]();
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      // events in order: the next one is taken once this one is handed out
      for (let r = await this.source.next(); !r.done; r = await this.source.next()) await this.deliver(r.value);
      for (const s of [...this.subscribers]) void s.return();
    } catch (e) {
      for (const s of [...this.subscribers]) s.fail(e as Error);
    } finally {
      this.close(); // a new subscription listens afresh
    }
  }

  private async deliver(payload: T): Promise<void> {
    const id = (payload as { id?: unknown }).id;
    if (fanoutTrace && typeof id === 'string') fanoutTrace.received(id);
    const subscribers = [...this.subscribers];
    // one verdict per (rule, user); the users of all of them read fresh in one query
    const index = new Map<Rule<T>, Map<string, number>>();
    const checks: Promise<boolean>[] = [];
    for (const s of subscribers) {
      let byUser = index.get(s.rule);
      if (!byUser) index.set(s.rule, (byUser = new Map()));
      if (byUser.has(s.userId)) continue;
      byUser.set(s.userId, checks.length);
      checks.push(this.services.users.findFresh(s.userId).then((now) => now !== null && s.rule(now, payload, this.services)));
    }
    const verdicts = await Promise.allSettled(checks);
    if (fanoutTrace && typeof id === 'string') fanoutTrace.checked(id);
    for (const s of subscribers) {
      const v = verdicts[index.get(s.rule)!.get(s.userId)!]!;
      if (v.status === 'rejected') s.fail(v.reason as Error);
      else if (v.value) s.push(payload);
    }
  }

  leave(s: Subscriber<T>): void {
    this.subscribers.delete(s);
    if (this.subscribers.size === 0) {
      this.close();
      void this.source.return?.();
    }
  }
}

const fanouts = new WeakMap<Services, Map<string, Topic<unknown>>>();

/**
 * A subscription to `topic` (and `id`, its entity) for the caller, re-checked by `rule` for every
 * event with the user read fresh from the database.
 */
export function guardedStream<K extends keyof Topics>(ctx: Context, rule: Rule<PayloadOf<K>>, topic: K, id?: string): AsyncIterableIterator<PayloadOf<K>> & { withHistory(history: () => Promise<(PayloadOf<K> & { id: string })[]>): AsyncIterableIterator<PayloadOf<K>> } {
  type P = PayloadOf<K>;
  const user = currentUser(ctx);
  const services = ctx.services;
  let topics = fanouts.get(services);
  if (!topics) fanouts.set(services, (topics = new Map()));
  const key = id === undefined ? topic : `${topic}:${id}`;
  let t = topics.get(key) as Topic<P> | undefined;
  if (!t) {
    const source = (services.pubsub.subscribe as unknown as (t: string, i?: string) => AsyncIterable<P>)(topic, id);
    const created: Topic<P> = new Topic<P>(source, services, () => topics!.get(key) === created && topics!.delete(key));
    topics.set(key, created as Topic<unknown>);
    t = created;
  }
  const joined = t;
  const s = new Subscriber<P>(user.id, rule, (x) => joined.leave(x));
  joined.subscribers.add(s);
  return s;
}

export function adminOnlyStream<K extends 'VM_EVENT' | 'PROCUREMENT'>(ctx: Context, topic: K) {
  const user = currentUser(ctx);
  if (!isAdmin(user)) throw forbidden('This subscription needs the ADMIN role.');
  // re-checked per event: a user demoted meanwhile gets no more events
  return guardedStream(ctx, isAdmin, topic);
}
