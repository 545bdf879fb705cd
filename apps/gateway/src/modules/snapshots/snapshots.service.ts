// VM Data records (seed 7.2): stored by the VM holding a session, read back by the VM told to restore them.
import { In, type DataSource, type EntityManager, type FindOptionsWhere, type Repository } from 'typeorm';
import { SLOT_SESSION_STATES, type SnapshotKind } from '@uve/protocol';
import { COMMAND_TTL_MS } from '../vmm/vm-commands.service';
import { Session } from '../sessions/sessions.entity';
import type { Vm } from '../vms/vms.entity';
import { isUuid, notFound } from '../../common/errors';
import type { User } from '../users/users.entity';
import { page } from '../users/users.service';
import { VmSnapshot, type VmDataStaging } from './snapshots.entity';
import { manifestSha256, type ChunkRefs, type PreparedRead, type VmCredential, type VmDataStore } from './vm-data-store';
import { ownsOrAdmin } from '../../common/access';

/**
 * A session's VM Data is saved while the session is open or as it ends (the user's end reaches the
 * VM as a terminate, which may come as late as its expiry): past that, no VM may write it.
 */
const SAVE_AFTER_END_MS = COMMAND_TTL_MS['session.terminate'];

/** A snapshot just stored, and how many of its chunks the store did not hold yet (content addressing) */
export interface StoredSnapshot {
  snapshot: VmSnapshot;
  chunks: number;
  chunksWritten: number;
  /** chunks whose bytes came with the upload (a delta names the others, staged before) */
  chunksSent: number;
}

/** a session a VM may still save or stage VM Data for */
const isOpen = (session: Session) => session.state === 'REQUESTED' || (SLOT_SESSION_STATES as readonly string[]).includes(session.state);

/**
 * SNAPSHOT_SAVED's data: the snapshot, its chunks, how many crossed the wire (`chunksSent`: a delta
 * names the ones staged before) and how many the store did not hold yet (`chunksWritten`), plus
 * where it came from (`timing` of an upload, `staged` for a lost VM's staged state).
 */
export function snapshotSavedData(s: VmSnapshot, chunks: { chunks: number; chunksSent: number; chunksWritten: number }, more: Record<string, unknown>): Record<string, unknown> {
  return { snapshotId: s.id, kind: s.kind, sizeBytes: s.sizeBytes, sha256: s.sha256, ...chunks, ...more };
}

export class SnapshotsService {
  private readonly repo: Repository<VmSnapshot>;
  /** VM Data uploads and downloads running now (a stop lets them finish before the database goes) */
  private readonly transfers = new Set<Promise<unknown>>();

  /** `keep`: snapshots kept per user, UA and kind (UVE_VM_DATA_KEEP), the newest */
  constructor(private readonly ds: DataSource, private readonly store_: VmDataStore, private readonly keep = 1) {
    this.repo = ds.getRepository(VmSnapshot);
  }

  /** runs one VM Data transfer, counted until it settles */
  transfer<T>(work: () => Promise<T>): Promise<T> {
    const p = work();
    const tracked = p.catch(() => undefined).finally(() => this.transfers.delete(tracked));
    this.transfers.add(tracked);
    return p;
  }

  /** VM Data transfers running now */
  get running(): number {
    return this.transfers.size;
  }

  /** resolves once the transfers running now have settled, or after `ms` */
  async drain(ms: number): Promise<number> {
    const left = this.transfers.size;
    if (left === 0) return 0;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([...this.transfers]), new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
    return this.transfers.size;
  }

  /** closes the store's own connections (once the transfers drained) */
  async close(): Promise<void> {
    await this.store_.chunks.close?.();
  }

  findById(id: string): Promise<VmSnapshot | null> {
    return isUuid(id) ? this.repo.findOneBy({ id }) : Promise.resolve(null);
  }

  ofSession(sessionId: string): Promise<VmSnapshot[]> {
    return this.repo.find({ where: { sessionId }, order: { createdAt: 'DESC' } });
  }

  /**
   * A NO_LOSS session placed with VM Data to restore (a reconnection, or the user's latest VM
   * Data), inside the placement's transaction. `staged`: that FULL snapshot becomes what the
   * session has staged, so the new VM's first staging, and a save before it, send only what changed
   * since the restore rather than the whole state again: the sha256s (hex) of its chunks, for the
   * VM to name; null when the store stages nothing, the snapshot is not FULL, or its chunks are
   * sealed (encryption at rest keeps no plain sha256 of a stored chunk). `head`: headOf().
   */
  async restoring(em: EntityManager, sessionId: string, snapshotId: string): Promise<{ staged: string[] | null; head: string | null }> {
    const snap = await em.findOneBy(VmSnapshot, { id: snapshotId });
    if (!snap || snap.kind !== 'FULL') return { staged: null, head: null };
    // as staged when it was saved: a lost VM's staged state is then this snapshot itself (keepStagedOf)
    const sha256s = await this.store_.chunks.stageSnapshot?.(em, sessionId, { id: snap.id, sizeBytes: snap.sizeBytes, sha256: snap.sha256, at: snap.createdAt });
    return { staged: sha256s?.map((b) => b.toString('hex')) ?? null, head: this.headOf(snap) };
  }

  /** the snapshot's head (base64) for the commands that restore it (VmDataStore.openHead); null: none kept */
  headOf(snapshot: VmSnapshot): string | null {
    return this.store_.openHead(snapshot)?.toString('base64') ?? null;
  }

  /** what the session staged ahead of its save (null: nothing) */
  async stagedOf(sessionId: string): Promise<VmDataStaging | null> {
    const [row]: { at: Date | null; n: number }[] = await this.ds.query(`SELECT max(staged_at) AS at, count(*)::int AS n FROM vm_data_staged WHERE session_id = $1`, [sessionId]);
    return row?.at ? { stagedAt: row.at, chunks: row.n } : null;
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
   * the store chunk by chunk (never whole in memory). Of the same user, UA and kind only the newest
   * `keep` snapshots stay (seed B.1: "the" VM Data is the newest). Null when the VM holds no such
   * session; a VmDataStoreError when the bytes are refused (too large, empty).
   */
  async store(vm: Vm, sessionId: string, kind: SnapshotKind, body: AsyncIterable<Uint8Array>, maxBytes: number, delta = false): Promise<StoredSnapshot | null> {
    if (!isUuid(sessionId)) return null;
    let written: string | null = null;
    const dropped: ChunkRefs = { snapshotIds: [], addresses: [] };
    let snap: StoredSnapshot | null;
    try {
      snap = await this.storeInTransaction(vm, sessionId, kind, body, maxBytes, delta, (id) => (written = id), (refs) => {
        dropped.snapshotIds.push(...refs.snapshotIds);
        dropped.addresses.push(...refs.addresses);
      });
    } catch (e) {
      // bytes kept outside the database go with the transaction that did not commit
      if (written) await this.store_.chunks.discard(written).catch(() => undefined);
      throw e;
    }
    // chunks the new snapshot shares with the replaced ones stay (the store only collects the unreferenced)
    if (dropped.snapshotIds.length || dropped.addresses.length) await this.store_.chunks.remove(dropped).catch(() => undefined);
    return snap;
  }

  /**
   * Stages a live session's FULL state ahead of its save (a delta, @uve/protocol vm-data-delta.ts),
   * replacing what it staged before; only the VM that holds the session, while it is open. Null
   * when the VM holds no such open session.
   */
  async stage(vm: Vm, sessionId: string, body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<{ chunks: number; chunksSent: number; chunksWritten: number } | null> {
    if (!isUuid(sessionId)) return null;
    const staged = await this.ds.transaction(async (em) => {
      const session = await em.findOneBy(Session, { id: sessionId });
      if (!session || session.vmId !== vm.id || !isOpen(session)) return null;
      return this.store_.stage(em, sessionId, body, maxBytes);
    });
    if (!staged) return null;
    // what the session no longer stages goes unless a snapshot holds it
    if (staged.unstaged.length) await this.store_.chunks.remove({ snapshotIds: [], addresses: staged.unstaged }).catch(() => undefined);
    return { chunks: staged.chunks, chunksSent: staged.sent, chunksWritten: staged.written };
  }

  /**
   * A VM lost without its save (killed, crashed, silent): each open session it held keeps what it
   * staged last as its VM Data, a FULL snapshot as of that staging (its chunks held already), unless
   * a save of the session landed after it. Their reconnections then restore it. Returns them.
   */
  async keepStagedOf(vmId: string): Promise<{ snapshot: VmSnapshot; chunks: number; stagedAt: Date }[]> {
    if (!this.store_.chunks.stage) return [];
    const held: { session_id: string }[] = await this.ds.query(
      `SELECT DISTINCT st.session_id FROM vm_data_staged st JOIN sessions x ON x.id = st.session_id WHERE x.vm_id = $1 AND x.state = ANY($2::session_state[])`,
      [vmId, ['REQUESTED', ...SLOT_SESSION_STATES]],
    );
    const kept = [];
    for (const { session_id: sessionId } of held) {
      const k = await this.ds.transaction(async (em) => {
        const session = await em.findOneBy(Session, { id: sessionId });
        const rows: { state_bytes: number; state_sha256: string; staged_at: Date; n: number }[] = await em.query(
          `SELECT state_bytes, state_sha256, max(staged_at) AS staged_at, count(*)::int AS n FROM vm_data_staged WHERE session_id = $1 GROUP BY state_bytes, state_sha256`,
          [sessionId],
        );
        const staged = rows.length === 1 ? rows[0]! : null; // one staging's rows, whole
        if (!session || !staged) return null;
        const newer = await em.query(`SELECT 1 FROM vm_snapshots WHERE session_id = $1 AND kind = 'FULL' AND created_at >= $2 LIMIT 1`, [sessionId, staged.staged_at]);
        if (newer.length) return null;
        const addresses: { address: Buffer }[] = await em.query(`SELECT address FROM vm_data_staged WHERE session_id = $1 ORDER BY seq`, [sessionId]);
        const manifest = manifestSha256();
        addresses.forEach((a) => manifest.add(a.address));
        const snapshot = await this.newRecord(em, session, vmId, { kind: 'FULL', sessionId, sizeBytes: staged.state_bytes, sha256: staged.state_sha256, manifestSha256: manifest.digest() });
        await em.query(`INSERT INTO vm_data_manifests (snapshot_id, seq, address) SELECT $1, seq, address FROM vm_data_staged WHERE session_id = $2`, [snapshot.id, sessionId]);
        return { snapshot, chunks: staged.n, stagedAt: staged.staged_at };
      });
      if (k) kept.push(k);
    }
    return kept;
  }

  /** a snapshot record of `session`'s user and UA, saved by VM `vmId` into this gateway's store */
  private newRecord(em: EntityManager, session: Session, vmId: string, fields: Pick<VmSnapshot, 'kind' | 'sessionId' | 'sizeBytes' | 'sha256' | 'manifestSha256'>): Promise<VmSnapshot> {
    return em.save(em.create(VmSnapshot, {
      ...fields, head: null, userId: session.userId, uaId: session.uaId, sourceVmId: vmId, storageKey: this.store_.storageKey, encryptionKeyId: this.store_.keyId, lastRestoredAt: null,
    }));
  }

  private storeInTransaction(
    vm: Vm, sessionId: string, kind: SnapshotKind, body: AsyncIterable<Uint8Array>, maxBytes: number, delta: boolean,
    writing: (id: string) => void, replaced: (refs: ChunkRefs) => void,
  ): Promise<StoredSnapshot | null> {
    return this.ds.transaction(async (em) => {
      const session = await em.findOneBy(Session, { id: sessionId });
      if (!session || session.vmId !== vm.id) return null;
      const open = isOpen(session);
      if (!open && !(session.endedAt && Date.now() - session.endedAt.getTime() < SAVE_AFTER_END_MS)) return null;
      // the record first (its id names the chunks), its size and checksum once all bytes are in;
      // its session only then: a row referring to the session locks it against FOR UPDATE (every
      // change of the session's state) for as long as the upload would run
      const snap = await this.newRecord(em, session, vm.id, { kind, sessionId: null, sizeBytes: 0, sha256: '0'.repeat(64), manifestSha256: null });
      writing(snap.id);
      const { sizeBytes, sha256, manifestSha256, head: first, chunks, written: chunksWritten, sent: chunksSent } = delta
        ? await this.store_.writeDelta(em, snap.id, body, await this.store_.staged(em, sessionId), maxBytes)
        : await this.store_.write(em, snap.id, body, maxBytes);
      // only a FULL restore prepares its UA by the head (an APP_DATA one starts the UA afresh)
      const head = kind === 'FULL' ? first : null;
      await em.update(VmSnapshot, snap.id, { sizeBytes, sha256, manifestSha256, head, sessionId });
      // the session's last save: what it staged is of no more use (its chunks stay where this snapshot holds them)
      if (!open) {
        const unstaged: { address: Buffer }[] = await em.query(`DELETE FROM vm_data_staged WHERE session_id = $1 RETURNING address`, [sessionId]);
        replaced({ snapshotIds: [], addresses: unstaged.map((r) => r.address) });
      }
      // beyond the newest `keep` by when their save began (an upload begun earlier and committed
      // later is not newer), never this one, nor one an open session still needs: the VM Data of a
      // DISCONNECTED session (its reconnection restores it) or one a session placed on a VM is
      // restoring (REQUESTED, ASSIGNED: its VM downloads it before the first frame). Another
      // session's save of the same UA committing after a drop deleted that session's VM Data: its
      // reconnection then went back to the old VM, or (deleted after the placement) restored
      // nothing and started the UA fresh (bench/reconnect, docs/performance.md).
      const older: { id: string }[] = await em.query(
        `SELECT id FROM (SELECT o.id, o.session_id, row_number() OVER (ORDER BY o.created_at DESC, o.id DESC) AS n
                           FROM vm_snapshots o WHERE o.user_id = $1 AND o.ua_id = $2 AND o.kind = $3) r
          WHERE r.n > $5 AND r.id <> $4
            AND NOT EXISTS (SELECT 1 FROM sessions x WHERE (x.id = r.session_id AND x.state = 'DISCONNECTED')
                                                       OR (x.restored_from_id = r.id AND x.state IN ('REQUESTED', 'ASSIGNED')))`,
        [session.userId, session.uaId, kind, snap.id, this.keep],
      );
      if (older.length) {
        const ids = older.map((o) => o.id);
        replaced(await this.store_.chunks.held(em, ids));
        await em.delete(VmSnapshot, { id: In(ids) });
      }
      return { snapshot: Object.assign(snap, { sizeBytes, sha256, manifestSha256, head, sessionId }), chunks, chunksWritten, chunksSent };
    });
  }

  /**
   * The snapshot, only for a VM that holds an open session told to restore this very snapshot
   * (UVE-5 retrieve): a VM cannot read other users' state. Its bytes are checked on every read
   * (open(): each chunk against its sha256 before a byte goes out).
   */
  async load(vmId: string, snapshotId: string): Promise<VmSnapshot | null> {
    if (!isUuid(vmId) || !isUuid(snapshotId)) return null;
    // one round trip (it is on the way to a restore's first byte)
    return this.repo
      .createQueryBuilder('s')
      .where('s.id = :snapshotId', { snapshotId })
      .andWhere(
        `EXISTS (SELECT 1 FROM sessions x WHERE x.user_id = s.user_id AND x.ua_id = s.ua_id
          AND ((x.vm_id = :vmId AND x.restored_from_id = s.id AND x.state IN ('REQUESTED', 'ASSIGNED', 'ACTIVE', 'SUSPENDED', 'DISCONNECTED'))
            -- or the VM told to restore it ahead for the DISCONNECTED session it was saved for (vmdata.prepareRestore)
            OR (x.restore_ahead_vm_id = :vmId AND x.restore_ahead_snapshot_id = s.id AND x.state = 'DISCONNECTED')))`,
        { vmId },
      )
      .getOne();
  }

  /**
   * The snapshot's bytes in order, one chunk at a time, each checked against its checksum before it
   * goes out (resolves once the first one passed: see VmDataStore.open).
   */
  open(snapshot: VmSnapshot): Promise<AsyncGenerator<Buffer>> {
    return this.store_.open(snapshot);
  }

  /** open(), its read started before the VM is authenticated and the snapshot looked up (VmDataStore.prepareRead) */
  prepareRead(snapshotId: string, reader: VmCredential): PreparedRead {
    return this.store_.prepareRead(snapshotId, reader);
  }

  /** told once a snapshot was deleted (deleteSnapshot): what holds it elsewhere lets it go (sessions' restores ahead) */
  onDeleted: ((snapshot: VmSnapshot) => Promise<void>) | null = null;

  async delete(user: User, id: string): Promise<boolean> {
    const s = await this.findById(id);
    if (!s || !ownsOrAdmin(user, s.userId)) throw notFound('Snapshot', id);
    const refs = await this.ds.transaction(async (em) => {
      const held = await this.store_.chunks.held(em, [s.id]);
      await em.delete(VmSnapshot, s.id);
      return held;
    });
    // the record is gone: bytes a busy store could not collect now go with the hourly sweep
    await this.store_.chunks.remove(refs).catch(() => undefined);
    // deleted all the same when this fails: a restore ahead still held then goes at its hold's end
    await this.onDeleted?.(s).catch(() => undefined);
    return true;
  }

  /**
   * Removes stored bytes no snapshot record refers to any more (their user or UA was deleted), and
   * what sessions that ended without a last save staged.
   */
  async sweep(): Promise<number> {
    const chunks = this.store_.chunks;
    if (!chunks.sweep) return 0;
    if (chunks.stage) await this.ds.query(`DELETE FROM vm_data_staged s USING sessions x WHERE x.id = s.session_id AND x.state IN ('ENDED', 'FAILED')`);
    return chunks.sweep(async (ids) => {
      if (ids.length === 0) return new Set();
      const rows: { id: string }[] = await this.ds.query(`SELECT id::text FROM vm_snapshots WHERE id = ANY($1::uuid[])`, [ids.filter(isUuid)]);
      return new Set(rows.map((r) => r.id));
    });
  }
}
