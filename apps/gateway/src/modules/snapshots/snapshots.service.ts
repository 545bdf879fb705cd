// VM Data records (seed 7.2): stored by the VM holding a session, read back by the VM told to restore them.
import { createHash } from 'node:crypto';
import { Not, type DataSource, type FindOptionsWhere, type Repository } from 'typeorm';
import { SLOT_SESSION_STATES, type SnapshotKind } from '@uve/protocol';
import { COMMAND_TTL_MS } from '../vmm/vm-commands.service';
import { Session } from '../sessions/sessions.entity';
import type { Vm } from '../vms/vms.entity';
import { isUuid, notFound } from '../../common/errors';
import type { User } from '../users/users.entity';
import { page } from '../users/users.service';
import { VmDataBlob, VmSnapshot } from './snapshots.entity';

/**
 * A session's VM Data is saved while the session is open or as it ends (the user's end reaches the
 * VM as a terminate, which may come as late as its expiry): past that, no VM may write it.
 */
const SAVE_AFTER_END_MS = COMMAND_TTL_MS['session.terminate'];

/** VM Data whose bytes no longer hash to what was recorded: never served */
export class VmDataCorrupted extends Error {}

export class SnapshotsService {
  private readonly repo: Repository<VmSnapshot>;

  constructor(private readonly ds: DataSource) {
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
   * UVE-5 VM Data update: the VM that holds the session stores the session's state. The newest
   * snapshot of a kind replaces the older ones of the same user and UA (seed B.1: "the" VM Data).
   */
  async store(vm: Vm, sessionId: string, kind: SnapshotKind, data: Buffer): Promise<VmSnapshot | null> {
    if (!isUuid(sessionId)) return null;
    return this.ds.transaction(async (em) => {
      const session = await em.findOneBy(Session, { id: sessionId });
      if (!session || session.vmId !== vm.id) return null;
      const open = session.state === 'REQUESTED' || (SLOT_SESSION_STATES as readonly string[]).includes(session.state);
      if (!open && !(session.endedAt && Date.now() - session.endedAt.getTime() < SAVE_AFTER_END_MS)) return null;
      const sha256 = createHash('sha256').update(data).digest('hex');
      const snap = await em.save(em.create(VmSnapshot, {
        userId: session.userId, uaId: session.uaId, sessionId, kind, sizeBytes: data.byteLength, sha256,
        sourceVmId: vm.id, storageKey: 'postgres:vm_data_blobs', lastRestoredAt: null,
      }));
      await em.insert(VmDataBlob, { snapshotId: snap.id, data });
      await em.delete(VmSnapshot, { userId: session.userId, uaId: session.uaId, kind, id: Not(snap.id) });
      return snap;
    });
  }

  /**
   * The bytes, only for a VM that holds an open session told to restore this very snapshot
   * (UVE-5 retrieve): a VM cannot read other users' state. Throws VmDataCorrupted when the bytes
   * do not match their recorded sha256.
   */
  async load(vm: Vm, snapshotId: string): Promise<{ snapshot: VmSnapshot; data: Buffer } | null> {
    const snapshot = await this.findById(snapshotId);
    if (!snapshot) return null;
    const [holder] = await this.ds.query(
      `SELECT 1 FROM sessions WHERE vm_id = $1 AND restored_from_id = $2 AND user_id = $3 AND ua_id = $4
          AND state IN ('REQUESTED', 'ASSIGNED', 'ACTIVE', 'SUSPENDED', 'DISCONNECTED') LIMIT 1`,
      [vm.id, snapshot.id, snapshot.userId, snapshot.uaId],
    );
    if (!holder) return null;
    const blob = await this.ds.getRepository(VmDataBlob).findOneBy({ snapshotId });
    if (!blob) return null;
    // checked on every read: bytes changed at rest are refused here, not restored into a UA
    const actual = createHash('sha256').update(blob.data).digest('hex');
    // (worded as the agent's own check words it, so a restore event reads the same from either side)
    if (actual !== snapshot.sha256) throw new VmDataCorrupted(`VM Data checksum mismatch: expected sha256 ${snapshot.sha256}, got ${actual} (snapshot ${snapshot.id}, as stored on the VMM)`);
    return { snapshot, data: blob.data };
  }

  async delete(user: User, id: string): Promise<boolean> {
    const s = await this.findById(id);
    if (!s || (s.userId !== user.id && user.role !== 'ADMIN')) throw notFound('Snapshot', id);
    await this.repo.delete(s.id);
    return true;
  }
}
