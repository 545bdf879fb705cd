// Watcher management (seed 7.3.1.2.1): standing grants given by admins. Monitoring itself (view-only
// streams, the single suspend controller) arrives with the watchers issue.
import { IsNull, type DataSource, type FindOptionsWhere, type Repository } from 'typeorm';
import { badInput, conflict, isUuid, notFound } from '../../common/errors';
import { WATCHER_PRIVILEGES, type WatcherPrivilege } from '../../graphql/enums';
import type { UsersService } from '../users/users.service';
import { Monitoring, WatcherGrant } from './watchers.entity';

function checkPrivileges(privileges: WatcherPrivilege[]): WatcherPrivilege[] {
  const set = [...new Set(privileges)];
  if (set.length === 0) throw badInput('privileges must name at least one privilege; use revokeWatcher to take all away.', 'privileges');
  if (set.some((p) => !WATCHER_PRIVILEGES.includes(p))) throw badInput(`privileges must be among ${WATCHER_PRIVILEGES.join(', ')}.`, 'privileges');
  return set;
}

export class WatchersService {
  private readonly grants: Repository<WatcherGrant>;

  constructor(private readonly ds: DataSource, private readonly users: UsersService) {
    this.grants = ds.getRepository(WatcherGrant);
  }

  async getGrant(id: string): Promise<WatcherGrant> {
    const g = isUuid(id) ? await this.grants.findOneBy({ id }) : null;
    if (!g) throw notFound('Watcher grant', id);
    return g;
  }

  async assign(watcherId: string, watcheeId: string, privileges: WatcherPrivilege[]): Promise<WatcherGrant> {
    const list = checkPrivileges(privileges);
    await this.users.get(watcherId);
    await this.users.get(watcheeId);
    if (watcherId === watcheeId) throw badInput('A user cannot watch themselves.', 'watcherId');
    if (await this.grants.existsBy({ watcherId, watcheeId })) throw conflict('This watcher already has a grant for this watchee; use updateWatcherPrivileges.');
    return this.grants.save(this.grants.create({ watcherId, watcheeId, privileges: list }));
  }

  async updatePrivileges(grantId: string, privileges: WatcherPrivilege[]): Promise<WatcherGrant> {
    const list = checkPrivileges(privileges);
    const g = await this.getGrant(grantId);
    g.privileges = list;
    return this.grants.save(g);
  }

  async revoke(grantId: string): Promise<boolean> {
    const g = await this.getGrant(grantId);
    await this.grants.delete(g.id);
    return true;
  }

  list(filter: { watcheeId?: string | null; watcherId?: string | null }): Promise<WatcherGrant[]> {
    const where: FindOptionsWhere<WatcherGrant> = {};
    for (const key of ['watcheeId', 'watcherId'] as const) {
      const v = filter[key];
      if (v) {
        if (!isUuid(v)) return Promise.resolve([]);
        where[key] = v;
      }
    }
    return this.grants.find({ where, order: { createdAt: 'ASC' } });
  }

  monitoringsOf(sessionId: string): Promise<Monitoring[]> {
    return this.ds.getRepository(Monitoring).find({ where: { sessionId, endedAt: IsNull() }, order: { startedAt: 'ASC' } });
  }
}
