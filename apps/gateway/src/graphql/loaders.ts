// Per-request batching of the relations field resolvers follow (session.user, event.actor, …): a
// list of 100 sessions costs one query per relation instead of one per row. Made fresh for each
// HTTP request; a subscription gets loaders that batch but do not cache (it lives for hours, the
// rows it would cache do not stay true that long). Authorization stays in the field resolvers.
import DataLoader from 'dataloader';
import { In, type ObjectLiteral, type Repository } from 'typeorm';
import { isUuid, notFound } from '../common/errors';
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

export function createLoaders(services: Services, opts: { cache: boolean } = { cache: true }): Loaders {
  const repo = <T extends ObjectLiteral>(e: new () => T) => services.ds.getRepository(e);
  return {
    users: byId(repo(User), opts.cache),
    uas: byId(repo(Ua), opts.cache),
    vms: byId(repo(Vm), opts.cache),
    snapshots: byId(repo(VmSnapshot), opts.cache),
    lastEvents: new DataLoader<string, SessionEvent[]>(
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
      { cache: opts.cache },
    ),
  };
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
