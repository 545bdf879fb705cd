// VM Data chunks in PostgreSQL (`vm_data_chunks`), the default store: every gateway serves any VM.
// Writes are one INSERT per chunk inside the caller's transaction, the next chunk filled while the
// last one is on its way (one in flight). Reads are one `COPY ... TO STDOUT (FORMAT binary)`:
// node-postgres gives `bytea` results only as hex text (twice the bytes, decoded in JS, strings
// for the collector), COPY gives the raw bytes as a stream that stops reading the socket when the
// consumer is behind, so the read-ahead is bounded (READ_AHEAD_BYTES).
import { Client } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { EntityManager } from 'typeorm';
import type { ChunkStore, StoredChunk } from './vm-data-store';
import { VmDataStoreError } from './vm-data-store';

/** how far the COPY stream reads ahead of the consumer (two chunks and a little) */
const READ_AHEAD_BYTES = 2 * 1024 * 1024 + 64 * 1024;

export class PostgresChunkStore implements ChunkStore {
  readonly storageKey = 'postgres:vm_data_chunks';

  /** `url`: the database; reads use a connection of their own (a COPY outlives the pool's query timeout) */
  constructor(private readonly url: string, private readonly connectTimeoutMs: number) {}

  async write(em: EntityManager, snapshotId: string, chunks: AsyncIterable<StoredChunk>): Promise<void> {
    let inFlight: Promise<unknown> | null = null;
    try {
      for await (const c of chunks) {
        await inFlight;
        inFlight = em.query(`INSERT INTO vm_data_chunks (snapshot_id, seq, data, nonce, sha256) VALUES ($1, $2, $3, $4, $5)`, [snapshotId, c.seq, c.data, c.nonce, c.sha256]);
      }
    } finally {
      // never leave an insert running unobserved (the transaction rolls back on the error anyway)
      await inFlight?.catch(() => undefined);
    }
    await inFlight;
  }

  async *read(snapshotId: string): AsyncGenerator<StoredChunk> {
    const client = new Client({ connectionString: this.url, connectionTimeoutMillis: this.connectTimeoutMs });
    client.on('error', () => undefined); // surfaces through the stream
    await client.connect();
    let complete = false;
    try {
      const stream = client.query(copyTo(
        // the id is a uuid checked by the caller; COPY takes no parameters
        `COPY (SELECT seq, data, nonce, sha256 FROM vm_data_chunks WHERE snapshot_id = '${uuid(snapshotId)}' ORDER BY seq) TO STDOUT (FORMAT binary)`,
        { highWaterMark: READ_AHEAD_BYTES },
      ));
      const rows = new CopyBinaryRows();
      for await (const piece of stream as AsyncIterable<Buffer>) {
        rows.push(piece);
        for (let row = rows.next(); row; row = rows.next()) {
          const [seq, data, nonce, sha256] = row;
          if (!seq || !data || !sha256) throw new VmDataStoreError(422, 'DAMAGED', `VM Data snapshot ${snapshotId} has a chunk without its bytes.`);
          yield { seq: seq.readInt32BE(0), data, nonce, sha256 };
        }
      }
      complete = true;
    } finally {
      // a COPY left half read cannot go on: the connection is dropped, not reused
      if (complete) await client.end().catch(() => undefined);
      else (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    }
  }

  /** the rows go with their snapshot (ON DELETE CASCADE) */
  async remove(): Promise<void> {}

  /** the rows were written in the transaction that rolled back */
  async discard(): Promise<void> {}
}

function uuid(id: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw new Error(`not a snapshot id: ${id}`);
  return id;
}

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * Rows of PostgreSQL's binary COPY format as their fields' raw bytes (null for NULL), from pieces
 * as they come off the socket: each field is copied once, out of the pieces it spans.
 */
export class CopyBinaryRows {
  private pieces: Buffer[] = [];
  private size = 0;
  private headerRead = false;
  private ended = false;
  /** bytes the row being assembled needs at least (not walked again before they are here) */
  private need = 0;

  push(piece: Buffer): void {
    this.pieces.push(piece);
    this.size += piece.byteLength;
  }

  /** the next complete row, null until more bytes came (or after the trailer) */
  next(): (Buffer | null)[] | null {
    if (this.ended) return null;
    if (!this.headerRead) {
      if (this.size < 19) return null;
      const head = this.peek(19);
      if (!head.subarray(0, 11).equals(SIGNATURE)) throw new Error('not a binary COPY stream');
      const extension = head.readUInt32BE(15);
      if (this.size < 19 + extension) return null;
      this.take(19 + extension);
      this.headerRead = true;
    }
    if (this.size < Math.max(2, this.need)) return null;
    const fields = this.peek(2).readInt16BE(0);
    if (fields === -1) {
      this.ended = true;
      return null;
    }
    // walk the row's lengths first: nothing is taken until the whole row is there
    let at = 2;
    for (let i = 0; i < fields; i++) {
      this.need = at + 4;
      if (this.size < this.need) return null;
      const len = this.peekAt(at, 4).readInt32BE(0);
      at += 4 + Math.max(len, 0);
      this.need = at;
      if (this.size < at) return null;
    }
    this.need = 0;
    this.take(2);
    const row: (Buffer | null)[] = [];
    for (let i = 0; i < fields; i++) {
      const len = this.take(4).readInt32BE(0);
      row.push(len < 0 ? null : this.take(len));
    }
    return row;
  }

  private peek(n: number): Buffer {
    return this.peekAt(0, n);
  }

  /** n bytes at `offset` without taking them (copied only when they span pieces) */
  private peekAt(offset: number, n: number): Buffer {
    let skip = offset;
    let i = 0;
    while (skip >= this.pieces[i]!.byteLength) skip -= this.pieces[i++]!.byteLength;
    const first = this.pieces[i]!;
    if (skip + n <= first.byteLength) return first.subarray(skip, skip + n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (let p = skip; filled < n; i++, p = 0) {
      const piece = this.pieces[i]!;
      filled += piece.copy(out, filled, p, Math.min(piece.byteLength, p + n - filled));
    }
    return out;
  }

  private take(n: number): Buffer {
    const out = this.peekAt(0, n);
    this.size -= n;
    let whole = 0;
    while (n > 0 && n >= this.pieces[whole]!.byteLength) n -= this.pieces[whole++]!.byteLength;
    this.pieces.splice(0, whole);
    if (n > 0) this.pieces[0] = this.pieces[0]!.subarray(n);
    return out;
  }
}
