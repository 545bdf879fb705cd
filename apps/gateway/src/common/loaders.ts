// Per-request batching of the relations field resolvers follow (session.user, event.actor, …): a
// list of 100 sessions costs one query per relation instead of one per row. Made fresh for each
// HTTP request; a subscription gets loaders that batch but do not cache (it lives for hours, the
// rows it would cache do not stay true that long). Authorization stays in the field resolvers.
import DataLoader from 'dataloader';
import { In, type ObjectLiteral, type Repository } from 'typeorm';
import { isUuid, notFound } from './errors';
import { SessionEvent } from '../modules/sessions/sessions.entity';
import { Ua } from '../modules/uas/uas.entity';
import { User } from '../modules/users/users.entity';
import { Vm } from '../modules/vms/vms.entity';
import { VmSnapshot } from '../modules/snapshots/snapshots.entity';
import type { Services } from '../services';

export interface Loaders {
  users: DataLoader<string, User | null>;
  uas: DataLoader<string, Ua | null>;
  vms: DataLoader<string, Vm | null>;
  snapshots: DataLoader<string, VmSnapshot | null>;
  /** key: `${sessionId}:${last}` (the events field's argument is part of what is loaded) */
  lastEvents: DataLoader<string, SessionEvent[]>;
}

function byId<T extends ObjectLiteral & { id: string }>(repo: Repository<T>, cache: boolean): DataLoader<string, T | null> {
  return new DataLoader<string, T | null>(
    async (ids) => {
      const valid = ids.filter(isUuid);
      const rows = valid.length ? await repo.findBy({ id: In(valid) } as never) : [];
      const found = new Map(rows.map((r) => [r.id, r]));
      return ids.map((id) => found.get(id) ?? null);
    },
    { cache },
  );
}

/**
 * Each loader is made on first use: most operations need one or two of them, and a subscription
 * keeps its context for hours (thousands of them at once on a busy session). Getters on the
 * prototype, so an unused loader costs one empty field.
 */
class LazyLoaders implements Loaders {
  private u?: Loaders['users'];
  private a?: Loaders['uas'];
  private v?: Loaders['vms'];
  private s?: Loaders['snapshots'];
  private e?: Loaders['lastEvents'];

  constructor(
    private readonly services: Services,
    private readonly cache: boolean,
  ) {}

  get users() {
    return (this.u ??= byId(this.services.ds.getRepository(User), this.cache));
  }
  get uas() {
    return (this.a ??= byId(this.services.ds.getRepository(Ua), this.cache));
  }
  get vms() {
    return (this.v ??= byId(this.services.ds.getRepository(Vm), this.cache));
  }
  get snapshots() {
    return (this.s ??= byId(this.services.ds.getRepository(VmSnapshot), this.cache));
  }
  get lastEvents() {
    return (this.e ??= lastEventsLoader(this.services, this.cache));
  }
}

export function createLoaders(services: Services, opts: { cache: boolean } = { cache: true }): Loaders {
  return new LazyLoaders(services, opts.cache);
}

function lastEventsLoader(services: Services, cache: boolean): DataLoader<string, SessionEvent[]> {
  return new DataLoader<string, SessionEvent[]>(
    async (keys) => {
      // one query per distinct `last` (in practice one per request)
      const byLast = new Map<number, string[]>();
      for (const k of keys) {
        const [id, last] = k.split(':');
        byLast.set(Number(last), [...(byLast.get(Number(last)) ?? []), id!]);
      }
      const out = new Map<string, SessionEvent[] | Error>();
      for (const [last, ids] of byLast) {
        // a wrong `last` fails the fields that asked for it, not the whole batch
        const events = await services.sessions.lastEventsOf(ids, last).catch((e: Error) => e);
        for (const id of ids) out.set(`${id}:${last}`, events instanceof Error ? events : (events.get(id) ?? []));
      }
      return keys.map((k) => out.get(k) ?? []);
    },
    { cache },
  );
}

/** A relation that must exist (a foreign key): NOT_FOUND as the services' get() says it. */
export async function required<T>(loader: DataLoader<string, T | null>, what: string, id: string): Promise<T> {
  const row = await loader.load(id);
  if (!row) throw notFound(what, id);
  return row;
}

/** The lastEvents key of a session's events(last:) field. */
export const lastEventsKey = (sessionId: string, last: number | null) => `${sessionId}:${last ?? 50}`;

/** A nullable relation: null without a query when the row has no id. */
export function optional<T>(loader: DataLoader<string, T | null>, id: string | null): Promise<T | null> {
  return id ? loader.load(id) : Promise.resolve(null);
}
