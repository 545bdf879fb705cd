// VM Data in PostgreSQL, the default store: every gateway serves any VM. Content-addressed: a
// chunk is one row of `vm_data_chunks` keyed by its address, kept once however many snapshots hold
// it; a snapshot is its manifest, rows of `vm_data_manifests` (snapshot, seq -> address), whose
// foreign key to the chunk makes PostgreSQL itself refuse to drop a chunk a manifest refers to.
// A write looks each chunk up inside the caller's transaction and locks the ones it holds (FOR KEY
// SHARE, until the commit, so the collector cannot take them away meanwhile). New chunks are
// inserted on connections of their own (UVE_VM_DATA_WRITERS at once, each insert committed by
// itself, ON CONFLICT DO NOTHING: two gateways storing the same bytes at once), then locked the
// same way from the transaction, which writes the manifest. A chunk committed before its manifest
// is an orphan the collector may take before the lock: it is inserted again. One row per
// transaction is what makes two uploads of the same new chunks in opposite order unable to
// deadlock (each would wait for a row the other inserted and had not committed). Reads are
// one `COPY ... TO STDOUT (FORMAT binary)`: node-postgres gives `bytea` results only as hex text
// (twice the bytes, decoded in JS, strings for the collector), COPY gives the raw bytes, read off the
// socket as rows (copy-out.ts), which pauses while a row waits for the consumer, so the read-ahead
// is about one chunk; at most UVE_VM_DATA_READERS of them at once, on connections of their own.
import net from 'node:net';
import { Pool, type PoolClient, type PoolConfig } from 'pg';
import type { EntityManager } from 'typeorm';
import type { ChunkRefs, ChunkStore, NewChunk, StoredChunk, VmCredential } from './vm-data-store';
import { VmDataStoreError } from './vm-data-store';
import { copyOutRows, copyOutSocket } from './copy-out';

/** a new chunk lost twice in a row to a collector removing it as it was found: give up */
const WRITE_ATTEMPTS = 3;
/** a collection that met a chunk a store took meanwhile (the foreign key refused it) is tried again */
const COLLECT_ATTEMPTS = 3;

export class PostgresChunkStore implements ChunkStore {
  readonly storageKey = 'postgres:vm_data_chunks';
  /** one chunk per writer connection in flight at most */
  readonly inFlight: number;
  /** reads only: a COPY outlives the main pool's query timeout, and downloads are bounded apart */
  private readonly readers: Pool;
  /** inserts of new chunks, each committed by itself */
  private readonly writers: Pool;

  /**
   * `url`: the database; `timeoutMs`: bound on connecting and on each chunk insert (UVE_DB_TIMEOUT_MS);
   * `readers`: downloads served at once (more wait for a connection); `writers`: chunk inserts at once
   */
  constructor(url: string, timeoutMs: number, readers: number, writers = 1) {
    // Connections are kept once opened, never closed for being idle: a PostgreSQL backend's first
    // writes and reads are 2-3x slower than its later ones (it first-touches its memory and the
    // shared buffers it maps, costly on a VM), and saves come one per user disconnect, so with an
    // idle timeout nearly every save met a new backend (docs/performance.md, reconnect, eighth
    // pass). TCP keepalive keeps a quiet connection through NATs and firewalls and finds a dead
    // one; one closed by the server (a restart) leaves the pool at once ('error' below) and the
    // next transfer opens another.
    const kept = { connectionString: url, connectionTimeoutMillis: timeoutMs, idleTimeoutMillis: 0, keepAlive: true, keepAliveInitialDelayMillis: 30_000 };
    // node-postgres calls `stream` with its connection's settings, and makes a TLS socket itself
    const stream = (c: { ssl?: unknown }) => (c.ssl ? new net.Socket() : copyOutSocket());
    this.readers = new Pool({ ...kept, max: readers, application_name: 'uve-vm-data-reader', stream: stream as unknown as PoolConfig['stream'] });
    this.readers.on('error', () => undefined); // an idle connection that died is replaced
    // chunk inserts commit without waiting for their WAL flush (synchronous_commit off): the
    // upload's own transaction, which writes the manifest and commits synchronously after them,
    // flushes the WAL up to its commit, theirs included (the WAL is one sequence). A crash before
    // that loses only chunks no manifest refers to yet, of an upload that did not succeed. Each
    // insert is bounded like the main pool's queries: a connection that died unseen fails the
    // save instead of holding it for TCP's own timeout (the connection is dropped, not reused).
    this.writers = new Pool({ ...kept, max: writers, application_name: 'uve-vm-data-writer', query_timeout: timeoutMs, options: '-c synchronous_commit=off' });
    this.writers.on('error', () => undefined);
    this.inFlight = writers;
  }

  async write(em: EntityManager, snapshotId: string, chunks: AsyncIterable<NewChunk>): Promise<number> {
    const { addresses, written } = await this.keepAll(em, snapshotId, chunks);
    await em.query(
      `INSERT INTO vm_data_manifests (snapshot_id, seq, address) SELECT $1, m.ord - 1, m.address FROM unnest($2::bytea[]) WITH ORDINALITY AS m(address, ord)`,
      [snapshotId, addresses],
    );
    return written;
  }

  /** the session's staged chunks by the sha256 of their plain bytes (hex) */
  async staged(em: EntityManager, sessionId: string): Promise<Map<string, Buffer>> {
    const rows: { plain_sha256: Buffer; address: Buffer }[] = await em.query(`SELECT plain_sha256, address FROM vm_data_staged WHERE session_id = $1`, [sessionId]);
    return new Map(rows.map((r) => [r.plain_sha256.toString('hex'), r.address]));
  }

  async stage(em: EntityManager, sessionId: string, chunks: AsyncIterable<NewChunk>, plainSha256: (seq: number) => Buffer, whole: () => { sizeBytes: number; sha256: string }): Promise<{ written: number; unstaged: Buffer[] }> {
    const { addresses, written } = await this.keepAll(em, `staged for ${sessionId}`, chunks);
    const before: { address: Buffer }[] = await em.query(`DELETE FROM vm_data_staged WHERE session_id = $1 RETURNING address`, [sessionId]);
    const { sizeBytes, sha256 } = whole();
    await em.query(
      `INSERT INTO vm_data_staged (session_id, seq, address, plain_sha256, state_bytes, state_sha256, staged_at)
         SELECT $1, m.ord - 1, m.address, m.sha, $4, $5, now() FROM unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS m(address, sha, ord)`,
      [sessionId, addresses, addresses.map((_, seq) => plainSha256(seq)), sizeBytes, sha256],
    );
    return { written, unstaged: before.map((r) => r.address) };
  }

  async stageSnapshot(em: EntityManager, sessionId: string, snapshot: { id: string; sizeBytes: number; sha256: string; at: Date }): Promise<Buffer[] | null> {
    // a clear chunk's address is the sha256 of its plain bytes; a sealed one's is keyed
    const rows: { address: Buffer; sealed: boolean }[] = await em.query(
      `SELECT m.address, c.nonce IS NOT NULL AS sealed FROM vm_data_manifests m JOIN vm_data_chunks c ON c.address = m.address WHERE m.snapshot_id = $1 ORDER BY m.seq FOR KEY SHARE OF c`,
      [snapshot.id],
    );
    if (rows.length === 0 || rows.some((r) => r.sealed)) return null;
    // what the session staged before goes to the sweep unless a snapshot holds it
    await em.query(`DELETE FROM vm_data_staged WHERE session_id = $1`, [sessionId]);
    const addresses = rows.map((r) => r.address);
    await em.query(
      `INSERT INTO vm_data_staged (session_id, seq, address, plain_sha256, state_bytes, state_sha256, staged_at)
         SELECT $1, m.ord - 1, m.address, m.address, $3, $4, $5 FROM unnest($2::bytea[]) WITH ORDINALITY AS m(address, ord)`,
      [sessionId, addresses, snapshot.sizeBytes, snapshot.sha256, snapshot.at],
    );
    return addresses;
  }

  /**
   * Keeps `chunks` (the new ones inserted, every one locked by the caller's transaction until it
   * commits); their addresses in order, and how many the store did not hold. `what` names them in errors.
   */
  private async keepAll(em: EntityManager, what: string, chunks: AsyncIterable<NewChunk>): Promise<{ addresses: Buffer[]; written: number }> {
    // the chunks not kept yet, oldest first: at most inFlight when the next is asked for (their buffers are reused after)
    const pending: Promise<void>[] = [];
    const addresses: Buffer[] = [];
    /** chunks named as staged: locked together at the end */
    const staged: Buffer[] = [];
    /** the new chunks this write committed: collected again when it fails (nothing half-written stays) */
    const inserted: Buffer[] = [];
    let written = 0;
    // the transaction is one connection, which runs one statement at a time: the chunks in flight
    // take turns on it (node-postgres queues a second query itself, deprecated; pg 9 refuses it)
    let turn: Promise<unknown> = Promise.resolve();
    const inTransaction = <T>(sql: string, params: unknown[]): Promise<T> => {
      const q = turn.then(() => em.query(sql, params) as Promise<T>);
      turn = q.catch(() => undefined);
      return q;
    };
    /** the chunk held by this transaction (locked) once it returns true */
    const lock = async (c: NewChunk) => (await inTransaction<unknown[]>(`SELECT 1 FROM vm_data_chunks WHERE address = $1 FOR KEY SHARE`, [c.address])).length > 0;
    const keep = async (c: NewChunk) => {
      if (await lock(c)) return;
      for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        const s = c.stored();
        const { rowCount } = await this.writers.query(
          `INSERT INTO vm_data_chunks (address, data, nonce, sha256) VALUES ($1, $2, $3, $4) ON CONFLICT (address) DO NOTHING`,
          [s.address, s.data, s.nonce, s.sha256],
        );
        if (rowCount) {
          written++;
          inserted.push(c.address);
        }
        // committed (by this insert or another store's): locked now, unless a collector took it as an orphan meanwhile
        if (await lock(c)) return;
      }
      throw new VmDataStoreError(500, 'STORE_BUSY', `VM Data chunk ${c.seq} of ${what} was removed ${WRITE_ATTEMPTS} times as it was stored; try again.`);
    };
    // rolled back to when the write fails: the locks it took go, so its own new chunks can be collected
    await em.query('SAVEPOINT vm_data_write');
    try {
      for await (const c of chunks) {
        addresses.push(c.address);
        if (c.staged) {
          staged.push(c.address);
          continue;
        }
        const kept = keep(c);
        kept.catch(() => undefined); // observed below, in order
        pending.push(kept);
        if (pending.length > this.inFlight) await pending.shift();
      }
      while (pending.length) await pending.shift();
      // the chunks a delta named as staged, locked in one statement rather than one round trip each
      if (staged.length) {
        const held: unknown[] = await inTransaction(`SELECT 1 FROM vm_data_chunks WHERE address = ANY($1::bytea[]) FOR KEY SHARE`, [staged]);
        if (held.length < new Set(staged.map((a) => a.toString('hex'))).size) {
          throw new VmDataStoreError(409, 'NOT_STAGED', `VM Data of ${what} names staged chunks the store no longer holds; send it whole.`);
        }
      }
    } catch (e) {
      // never leave a statement running unobserved (the transaction rolls back on the error anyway);
      // the chunks committed for it go again unless another store took them meanwhile (then locked:
      // skipped). A transaction that fails after this returns leaves its new chunks to the sweep.
      await Promise.allSettled(pending);
      await em.query('ROLLBACK TO SAVEPOINT vm_data_write').catch(() => undefined);
      if (inserted.length) await this.collect(`c.address = ANY($1::bytea[])`, [inserted]).catch(() => undefined);
      throw e;
    }
    return { addresses, written };
  }

  read(snapshotId: string): AsyncGenerator<StoredChunk> {
    return this.copyOut(snapshotId, '');
  }

  readFor(snapshotId: string, reader: VmCredential): AsyncGenerator<StoredChunk> {
    // checked in the statement (COPY takes no parameters: a uuid and 64 hex digits, checked here),
    // once, before any chunk is read: a VM that is not who it says reads no chunk
    if (!/^[0-9a-f]{64}$/.test(reader.secretSha256)) throw new Error('not a sha256');
    return this.copyOut(snapshotId, `AND EXISTS (SELECT 1 FROM vms v WHERE v.id = '${uuid(reader.vmId)}' AND v.secret_hash = '${reader.secretSha256}' AND v.destroyed_at IS NULL)`);
  }

  private async *copyOut(snapshotId: string, andWhere: string): AsyncGenerator<StoredChunk> {
    let client: PoolClient;
    try {
      client = await this.readers.connect();
    } catch (e) {
      throw new VmDataStoreError(500, 'STORE_BUSY', `VM Data readers are all busy or the database is unreachable (UVE_VM_DATA_READERS): ${(e as Error).message}`);
    }
    let complete = false;
    // a checked-out client has no listener of the pool's: a connection lost while the reader waits
    // for its consumer (between two chunks, or after the last before it hands the client back)
    // would be an unhandled 'error' event, which ends the process
    let lost: Error | null = null;
    const onLost = (e: Error) => (lost = e);
    client.on('error', onLost);
    try {
      // the id is a uuid checked by the caller; COPY takes no parameters
      const rows = copyOutRows(client, `COPY (SELECT m.seq, c.address, c.data, c.nonce, c.aad, c.sha256 FROM vm_data_manifests m JOIN vm_data_chunks c ON c.address = m.address
                WHERE m.snapshot_id = '${uuid(snapshotId)}' ${andWhere} ORDER BY m.seq) TO STDOUT (FORMAT binary)`);
      for await (const [seq, address, data, nonce, aad, sha256] of rows) {
        if (!seq || !address || !data || !sha256) throw new VmDataStoreError(422, 'DAMAGED', `VM Data snapshot ${snapshotId} has a chunk without its bytes.`);
        yield { seq: seq.readInt32BE(0), address, data, nonce: nonce ?? null, aad: aad ?? null, sha256 };
      }
      complete = true;
    } finally {
      client.off('error', onLost);
      // a COPY left half read cannot go on, nor a lost connection: either is dropped, not reused
      client.release(lost ?? (complete ? undefined : new Error('VM Data read left part-way')));
    }
  }

  /** the addresses the snapshots' manifests refer to (the manifests go with their records: ON DELETE CASCADE) */
  async held(em: EntityManager, snapshotIds: string[]): Promise<ChunkRefs> {
    const rows: { address: Buffer }[] = snapshotIds.length
      ? await em.query(`SELECT DISTINCT address FROM vm_data_manifests WHERE snapshot_id = ANY($1::uuid[])`, [snapshotIds])
      : [];
    return { snapshotIds, addresses: rows.map((r) => r.address) };
  }

  /** collects the chunks of `refs` that no manifest or staged row refers to any more */
  async remove(refs: ChunkRefs): Promise<void> {
    if (refs.addresses.length) await this.collect(`c.address = ANY($1::bytea[])`, [refs.addresses]);
  }

  /** the rows were written in the transaction that rolled back */
  async discard(): Promise<void> {}

  /** collects every chunk no manifest refers to (their snapshots went with a user or UA) */
  async sweep(): Promise<number> {
    return this.collect('true', []);
  }

  /**
   * Deletes the chunks matching `where` that no manifest or staged row refers to. A chunk a store is writing a
   * manifest for is locked (FOR KEY SHARE) and skipped; one whose manifest committed after this
   * statement began makes the foreign key refuse the delete, and the statement runs again.
   */
  private async collect(where: string, params: unknown[]): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { rowCount } = await this.readers.query(
          `DELETE FROM vm_data_chunks WHERE address IN (
             SELECT c.address FROM vm_data_chunks c WHERE ${where} AND NOT EXISTS (SELECT 1 FROM vm_data_manifests m WHERE m.address = c.address)
                AND NOT EXISTS (SELECT 1 FROM vm_data_staged s WHERE s.address = c.address)
             FOR UPDATE SKIP LOCKED)`,
          params,
        );
        return rowCount ?? 0;
      } catch (e) {
        if ((e as { code?: string }).code !== '23503' || attempt >= COLLECT_ATTEMPTS) throw e;
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.readers.end(), this.writers.end()]);
  }
}

function uuid(id: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw new Error(`not a snapshot id: ${id}`);
  return id;
}
