// The VM Data store: a snapshot's bytes as numbered chunks of at most CHUNK_BYTES in PostgreSQL, so
// every gateway serves any VM and no gateway ever holds a whole snapshot (one chunk at a time, in
// both directions). Each chunk keeps the sha256 of its stored bytes, checked by PostgreSQL before a
// snapshot is served; with a key configured (UVE_VM_DATA_KEY) each chunk is sealed with AES-256-GCM
// under its own random nonce, bound to its snapshot and position (a chunk moved elsewhere does not open).
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { EntityManager } from 'typeorm';

export const CHUNK_BYTES = 1024 * 1024;
const NONCE_BYTES = 12;
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

/** What binds a sealed chunk to its place: another snapshot's chunk, or another position, fails to open. */
const aad = (snapshotId: string, seq: number) => Buffer.from(`${snapshotId}/${seq}`);

export class VmDataStore {
  constructor(private readonly key: VmDataKey | null) {}

  /** the key id new snapshots are sealed with (null: stored in clear) */
  get keyId(): string | null {
    return this.key?.id ?? null;
  }

  /**
   * Writes `source` as the chunks of `snapshotId` inside the caller's transaction, reading on only
   * once a chunk is stored (backpressure). Refuses more than `maxBytes` and nothing at all.
   */
  async write(em: EntityManager, snapshotId: string, source: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StoredBytes> {
    const whole = createHash('sha256');
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    let filled = 0;
    let seq = 0;
    let size = 0;
    const flush = async () => {
      if (filled === 0) return;
      await this.insert(em, snapshotId, seq++, chunk.subarray(0, filled));
      filled = 0;
    };
    for await (const piece of source) {
      size += piece.byteLength;
      if (size > maxBytes) throw new VmDataStoreError(413, 'TOO_LARGE', `VM Data must be at most ${maxBytes} bytes (UVE_VM_DATA_MAX_MB); this upload is larger.`);
      whole.update(piece);
      for (let at = 0; at < piece.byteLength;) {
        const n = Math.min(CHUNK_BYTES - filled, piece.byteLength - at);
        chunk.set(piece.subarray(at, at + n), filled);
        filled += n;
        at += n;
        if (filled === CHUNK_BYTES) await flush();
      }
    }
    await flush();
    if (size === 0) throw new VmDataStoreError(400, 'BAD_USER_INPUT', 'VM Data is empty.');
    return { sizeBytes: size, sha256: whole.digest('hex') };
  }

  private async insert(em: EntityManager, snapshotId: string, seq: number, plain: Buffer): Promise<void> {
    let data = plain;
    let nonce: Buffer | null = null;
    if (this.key) {
      nonce = randomBytes(NONCE_BYTES);
      const c = createCipheriv('aes-256-gcm', this.key.key, nonce).setAAD(aad(snapshotId, seq));
      data = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    }
    const sha256 = createHash('sha256').update(data).digest();
    await em.query(`INSERT INTO vm_data_chunks (snapshot_id, seq, data, nonce, sha256) VALUES ($1, $2, $3, $4, $5)`, [snapshotId, seq, data, nonce, sha256]);
  }

  /**
   * Throws unless every stored chunk still hashes to the sha256 recorded when it was written (the
   * database hashes them: nothing crosses the network) and the chunks are complete and in order.
   */
  async verify(em: EntityManager, snapshotId: string, keyId: string | null): Promise<number> {
    if (keyId !== null && keyId !== this.key?.id) {
      throw new VmDataStoreError(500, 'KEY_UNAVAILABLE', `VM Data snapshot ${snapshotId} is encrypted with key ${keyId}, which this gateway is not configured with (UVE_VM_DATA_KEY).`);
    }
    const rows: { seq: number; ok: boolean }[] = await em.query(
      `SELECT seq, sha256(data) = sha256 AS ok FROM vm_data_chunks WHERE snapshot_id = $1 ORDER BY seq`,
      [snapshotId],
    );
    rows.forEach((r, i) => {
      if (r.seq !== i) throw new VmDataStoreError(422, 'DAMAGED', `VM Data snapshot ${snapshotId} lacks chunk ${i}.`);
      if (!r.ok) throw new VmDataStoreError(422, 'DAMAGED', `VM Data checksum mismatch: chunk ${i} of snapshot ${snapshotId} is not what was stored.`);
    });
    return rows.length;
  }

  /** The snapshot's bytes in order, one chunk in memory at a time (call `verify` first for `chunks`). */
  async *read(em: EntityManager, snapshotId: string, chunks: number, keyId: string | null): AsyncGenerator<Buffer> {
    for (let seq = 0; seq < chunks; seq++) {
      const [row]: { data: Buffer; nonce: Buffer | null }[] = await em.query(`SELECT data, nonce FROM vm_data_chunks WHERE snapshot_id = $1 AND seq = $2`, [snapshotId, seq]);
      if (!row) throw new VmDataStoreError(422, 'DAMAGED', `VM Data snapshot ${snapshotId} lost chunk ${seq} while being read.`);
      yield this.open(snapshotId, seq, keyId, row);
    }
  }

  /** a stored chunk as plain bytes: unsealed when sealed, refused when it does not open */
  private open(snapshotId: string, seq: number, keyId: string | null, row: { data: Buffer; nonce: Buffer | null }): Buffer {
    if (!row.nonce) return row.data;
    if (!this.key || keyId !== this.key.id) throw new VmDataStoreError(500, 'KEY_UNAVAILABLE', `VM Data chunk ${seq} of ${snapshotId} is encrypted and this gateway has not its key.`);
    const sealed = row.data;
    const d = createDecipheriv('aes-256-gcm', this.key.key, row.nonce).setAAD(aad(snapshotId, seq));
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]);
    } catch {
      throw new VmDataStoreError(422, 'DAMAGED', `VM Data chunk ${seq} of ${snapshotId} does not open with its key (tampered with or misplaced).`);
    }
  }
}
