// VM Data records (seed 7.2). Storing and restoring the bytes arrives with the reconnection issue.
import type { DataSource, FindOptionsWhere, Repository } from 'typeorm';
import { isUuid, notFound } from '../../common/errors';
import type { User } from '../users/users.entity';
import { page } from '../users/users.service';
import { VmSnapshot } from './snapshots.entity';

export class SnapshotsService {
  private readonly repo: Repository<VmSnapshot>;

  constructor(ds: DataSource) {
    this.repo = ds.getRepository(VmSnapshot);
  }

  findById(id: string): Promise<VmSnapshot | null> {
    return isUuid(id) ? this.repo.findOneBy({ id }) : Promise.resolve(null);
  }

  ofSession(sessionId: string): Promise<VmSnapshot[]> {
    return this.repo.find({ where: { sessionId }, order: { createdAt: 'DESC' } });
  }

  mine(userId: string): Promise<VmSnapshot[]> {
    return this.repo.find({ where: { userId }, order: { createdAt: 'DESC' }, take: 200 });
  }

  list(filter: { userId?: string | null; uaId?: string | null }, limit: number | null, offset: number | null): Promise<VmSnapshot[]> {
    const { take, skip } = page(limit, offset);
    const where: FindOptionsWhere<VmSnapshot> = {};
    for (const key of ['userId', 'uaId'] as const) {
      const v = filter[key];
      if (v) {
        if (!isUuid(v)) return Promise.resolve([]);
        where[key] = v;
      }
    }
    return this.repo.find({ where, order: { createdAt: 'DESC' }, take, skip });
  }

  async delete(user: User, id: string): Promise<boolean> {
    const s = await this.findById(id);
    if (!s || (s.userId !== user.id && user.role !== 'ADMIN')) throw notFound('Snapshot', id);
    await this.repo.delete(s.id);
    return true;
  }
}
