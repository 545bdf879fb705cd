// The VM Data store: a snapshot's bytes as numbered chunks of at most CHUNK_BYTES, never whole in a
// gateway's memory (one chunk at a time plus a bounded read-ahead, in both directions). Two places
// keep the chunks behind one interface (UVE_VM_DATA_STORE): PostgreSQL (vm-data-store.postgres.ts,
// the default: any gateway serves any VM) and a folder (vm-data-store.fs.ts, single-host setups).
// Each chunk keeps the sha256 of its stored bytes, checked on every read before the chunk goes
// out; with a key configured (UVE_VM_DATA_KEY) each chunk is sealed with AES-256-GCM under its own
// random nonce, bound to its snapshot and position (a chunk moved elsewhere does not open).
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { EntityManager } from 'typeorm';

export const CHUNK_BYTES = 1024 * 1024;
export const NONCE_BYTES = 12;
/** chunk buffers an upload fills in turn: one being filled, one in flight, one just handed over */
const RING = 3;
const TAG_BYTES = 16;

/** The store refused the bytes; `status` is the HTTP answer to a VM (413: too large, 422: damaged, 500: unreadable here). */
export class VmDataStoreError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export interface StoredBytes {
  sizeBytes: number;
  sha256: string;
}

/** The encryption key at rest: 32 bytes, given as 64 hex digits or base64. */
export interface VmDataKey {
  /** names the key in each snapshot record without revealing it */
  id: string;
  key: Buffer;
}

export function parseVmDataKey(raw: string): VmDataKey | null {
  const key = /^[0-9a-f]{64}$/i.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
  if (key.length !== 32) return null;
  return { id: createHash('sha256').update('uve-vm-data-key\0').update(key).digest('hex').slice(0, 16), key };
}

/** One chunk as kept: its stored bytes (sealed or clear), the nonce when sealed, the sha256 of `data`. */
export interface StoredChunk {
  seq: number;
  data: Buffer;
  nonce: Buffer | null;
  sha256: Buffer;
}

/** What a store needs to know of a snapshot to give its bytes back. */
export interface SnapshotRef {
  id: string;
  sizeBytes: number;
  encryptionKeyId: string | null;
}

/** Where the chunks are kept; the sealing, checksums and limits are the same for every kind (VmDataStore). */
export interface ChunkStore {
  /** recorded as the snapshot's storageKey */
  readonly storageKey: string;
  /**
   * Keeps `chunks` (in order) as snapshot `snapshotId`, inside the caller's transaction where the
   * store has one; resolves once all are durable. Reads the next chunk only once the store can take
   * it (backpressure), with at most one earlier chunk still in flight then: a chunk's buffer is
   * filled again two chunks later.
   */
  write(em: EntityManager, snapshotId: string, chunks: AsyncIterable<StoredChunk>): Promise<void>;
  /** the stored chunks in order, read ahead by a bounded amount at most */
  read(snapshotId: string): AsyncGenerator<StoredChunk>;
  /** forgets the bytes of snapshots whose records are gone (after the commit that removed them) */
  remove(snapshotIds: string[]): Promise<void>;
  /** undoes a write whose transaction did not commit */
  discard(snapshotId: string): Promise<void>;
  /** removes bytes of snapshots that have no record any more (`existing`: those of `ids` that do) */
  sweep?(existing: (ids: string[]) => Promise<Set<string>>): Promise<number>;
}

/** What binds a sealed chunk to its place: another snapshot's chunk, or another position, fails to open. */
const aad = (snapshotId: string, seq: number) => Buffer.from(`${snapshotId}/${seq}`);

export class VmDataStore {
  constructor(readonly chunks: ChunkStore, private readonly key: VmDataKey | null) {}

  /** the key id new snapshots are sealed with (null: stored in clear) */
  get keyId(): string | null {
    return this.key?.id ?? null;
  }

  get storageKey(): string {
    return this.chunks.storageKey;
  }

  /**
   * Writes `source` as the chunks of `snapshotId`, reading on only as the store takes them
   * (backpressure). Refuses more than `maxBytes` and nothing at all.
   */
  async write(em: EntityManager, snapshotId: string, source: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StoredBytes> {
    const whole = createHash('sha256');
    let size = 0;
    const sealed = async function* (this: VmDataStore): AsyncGenerator<StoredChunk> {
      // a few buffers in turn, not a new one per chunk (garbage the collector is late for): a store
      // has at most one chunk in flight while it asks for the next (ChunkStore.write)
      const ring = Array.from({ length: RING }, () => Buffer.allocUnsafe(CHUNK_BYTES));
      let chunk = ring[0]!;
      let filled = 0;
      let seq = 0;
      for await (const piece of source) {
        size += piece.byteLength;
        if (size > maxBytes) throw new VmDataStoreError(413, 'TOO_LARGE', `VM Data must be at most ${maxBytes} bytes (UVE_VM_DATA_MAX_MB); this upload is larger.`);
        whole.update(piece);
        for (let at = 0; at < piece.byteLength;) {
          const n = Math.min(CHUNK_BYTES - filled, piece.byteLength - at);
          chunk.set(piece.subarray(at, at + n), filled);
          filled += n;
          at += n;
          if (filled === CHUNK_BYTES) {
            yield this.seal(snapshotId, seq++, chunk);
            chunk = ring[seq % RING]!;
            filled = 0;
          }
        }
      }
      if (size === 0) throw new VmDataStoreError(400, 'BAD_USER_INPUT', 'VM Data is empty.');
      if (filled > 0) yield this.seal(snapshotId, seq, chunk.subarray(0, filled));
    };
    try {
      await this.chunks.write(em, snapshotId, sealed.call(this));
    } catch (e) {
      await this.chunks.discard(snapshotId).catch(() => undefined);
      throw e;
    }
    return { sizeBytes: size, sha256: whole.digest('hex') };
  }

  private seal(snapshotId: string, seq: number, plain: Buffer): StoredChunk {
    let data = plain;
    let nonce: Buffer | null = null;
    if (this.key) {
      nonce = randomBytes(NONCE_BYTES);
      const c = createCipheriv('aes-256-gcm', this.key.key, nonce).setAAD(aad(snapshotId, seq));
      data = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    }
    return { seq, data, nonce, sha256: createHash('sha256').update(data).digest() };
  }

  /**
   * The snapshot's bytes in order, each chunk checked against its sha256 (and opened when sealed)
   * before it is given out. Resolves once the first chunk passed, so a snapshot damaged from its
   * start, or sealed with a key this gateway has not, is refused before a byte goes out; a later
   * damaged chunk ends the iteration with a VmDataStoreError (the reader then has fewer bytes than
   * announced).
   */
  async open(snapshot: SnapshotRef): Promise<AsyncGenerator<Buffer>> {
    if (snapshot.encryptionKeyId !== null && snapshot.encryptionKeyId !== this.key?.id) {
      throw new VmDataStoreError(500, 'KEY_UNAVAILABLE', `VM Data snapshot ${snapshot.id} is encrypted with key ${snapshot.encryptionKeyId}, which this gateway is not configured with (UVE_VM_DATA_KEY).`);
    }
    const checked = this.checked(snapshot);
    const first = await checked.next().catch(async (e: unknown) => {
      await checked.return(undefined);
      throw e;
    });
    return (async function* () {
      if (first.done) return;
      yield first.value;
      yield* checked;
    })();
  }

  private async *checked(snapshot: SnapshotRef): AsyncGenerator<Buffer> {
    let expected = 0;
    let size = 0;
    for await (const chunk of this.chunks.read(snapshot.id)) {
      if (chunk.seq !== expected) throw damaged(`VM Data snapshot ${snapshot.id} lacks chunk ${expected}.`);
      if (!createHash('sha256').update(chunk.data).digest().equals(chunk.sha256)) {
        throw damaged(`VM Data checksum mismatch: chunk ${chunk.seq} of snapshot ${snapshot.id} is not what was stored.`);
      }
      const plain = this.open_(snapshot, chunk);
      size += plain.byteLength;
      expected++;
      yield plain;
    }
    if (size !== snapshot.sizeBytes) throw damaged(`VM Data snapshot ${snapshot.id} holds ${size} bytes, ${snapshot.sizeBytes} were stored.`);
  }

  /** a stored chunk as plain bytes: unsealed when sealed, refused when it does not open */
  private open_(snapshot: SnapshotRef, chunk: StoredChunk): Buffer {
    if (!chunk.nonce) return chunk.data;
    if (!this.key || snapshot.encryptionKeyId !== this.key.id) throw new VmDataStoreError(500, 'KEY_UNAVAILABLE', `VM Data chunk ${chunk.seq} of ${snapshot.id} is encrypted and this gateway has not its key.`);
    const sealed = chunk.data;
    const d = createDecipheriv('aes-256-gcm', this.key.key, chunk.nonce).setAAD(aad(snapshot.id, chunk.seq));
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]);
    } catch {
      throw damaged(`VM Data chunk ${chunk.seq} of ${snapshot.id} does not open with its key (tampered with or misplaced).`);
    }
  }
}

const damaged = (message: string) => new VmDataStoreError(422, 'DAMAGED', message);
