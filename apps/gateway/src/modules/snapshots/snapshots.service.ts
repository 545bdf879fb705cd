// VM Data records (seed 7.2): stored by the VM holding a session, read back by the VM told to restore them.
import { Not, type DataSource, type FindOptionsWhere, type Repository } from 'typeorm';
import { SLOT_SESSION_STATES, type SnapshotKind } from '@uve/protocol';
import { COMMAND_TTL_MS } from '../vmm/vm-commands.service';
import { Session } from '../sessions/sessions.entity';
import type { Vm } from '../vms/vms.entity';
import { isUuid, notFound } from '../../common/errors';
import type { User } from '../users/users.entity';
import { page } from '../users/users.service';
import { VmSnapshot } from './snapshots.entity';
import type { VmDataStore } from './vm-data-store';

const STORAGE_KEY = 'postgres:vm_data_chunks';

/**
 * A session's VM Data is saved while the session is open or as it ends (the user's end reaches the
 * VM as a terminate, which may come as late as its expiry): past that, no VM may write it.
 */
const SAVE_AFTER_END_MS = COMMAND_TTL_MS['session.terminate'];

export class SnapshotsService {
  private readonly repo: Repository<VmSnapshot>;

  constructor(private readonly ds: DataSource, private readonly store_: VmDataStore) {
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

  /**
   * UVE-5 VM Data update: the VM that holds the session stores the session's state, streamed into
   * the store chunk by chunk (never whole in memory). The newest snapshot of a kind replaces the
   * older ones of the same user and UA (seed B.1: "the" VM Data). Null when the VM holds no such
   * session; a VmDataStoreError when the bytes are refused (too large, empty).
   */
  async store(vm: Vm, sessionId: string, kind: SnapshotKind, body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<VmSnapshot | null> {
    if (!isUuid(sessionId)) return null;
    return this.ds.transaction(async (em) => {
      const session = await em.findOneBy(Session, { id: sessionId });
      if (!session || session.vmId !== vm.id) return null;
      const open = session.state === 'REQUESTED' || (SLOT_SESSION_STATES as readonly string[]).includes(session.state);
      if (!open && !(session.endedAt && Date.now() - session.endedAt.getTime() < SAVE_AFTER_END_MS)) return null;
      // the record first (its id names the chunks), its size and checksum once all bytes are in
      const snap = await em.save(em.create(VmSnapshot, {
        userId: session.userId, uaId: session.uaId, sessionId, kind, sizeBytes: 0, sha256: '0'.repeat(64),
        sourceVmId: vm.id, storageKey: STORAGE_KEY, encryptionKeyId: this.store_.keyId, lastRestoredAt: null,
      }));
      const { sizeBytes, sha256 } = await this.store_.write(em, snap.id, body, maxBytes);
      await em.update(VmSnapshot, snap.id, { sizeBytes, sha256 });
      await em.delete(VmSnapshot, { userId: session.userId, uaId: session.uaId, kind, id: Not(snap.id) });
      return Object.assign(snap, { sizeBytes, sha256 });
    });
  }

  /**
   * The snapshot, only for a VM that holds an open session told to restore this very snapshot
   * (UVE-5 retrieve): a VM cannot read other users' state. Its bytes are checked on every read
   * (open(): each chunk against its sha256 before a byte goes out).
   */
  async load(vm: Vm, snapshotId: string): Promise<VmSnapshot | null> {
    const snapshot = await this.findById(snapshotId);
    if (!snapshot) return null;
    const [holder] = await this.ds.query(
      `SELECT 1 FROM sessions WHERE vm_id = $1 AND restored_from_id = $2 AND user_id = $3 AND ua_id = $4
          AND state IN ('REQUESTED', 'ASSIGNED', 'ACTIVE', 'SUSPENDED', 'DISCONNECTED') LIMIT 1`,
      [vm.id, snapshot.id, snapshot.userId, snapshot.uaId],
    );
    return holder ? snapshot : null;
  }

  /**
   * The snapshot's bytes in order, one chunk at a time, once every stored chunk was checked against
   * its checksum (a damaged snapshot is refused before a byte goes out).
   */
  async open(snapshot: VmSnapshot): Promise<AsyncGenerator<Buffer>> {
    const chunks = await this.store_.verify(this.ds.manager, snapshot.id, snapshot.encryptionKeyId);
    return this.store_.read(this.ds.manager, snapshot.id, chunks, snapshot.encryptionKeyId);
  }

  async delete(user: User, id: string): Promise<boolean> {
    const s = await this.findById(id);
    if (!s || (s.userId !== user.id && user.role !== 'ADMIN')) throw notFound('Snapshot', id);
    await this.repo.delete(s.id);
    return true;
  }
}
