// VM Data chunks in a folder (UVE_VM_DATA_STORE=fs, UVE_VM_DATA_STORE_DIR), for single-host setups: one
// file per snapshot, written to a temporary name, fsync'd, renamed into place (and the folder
// fsync'd), so a snapshot file is either whole or absent. Each chunk is a fixed header (seq,
// length, nonce, sha256 of the stored bytes, address) followed by its bytes; reads go one chunk
// ahead. Not deduplicated: a snapshot is one file (chunks are addressed and sealed as in every
// store, so a file's chunks open the same way); files of the first format (no address, sealed
// chunks bound to their snapshot and position) are still read.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { EntityManager } from 'typeorm';
import { NONCE_BYTES, VmDataStoreError, legacyAad, type ChunkRefs, type ChunkStore, type NewChunk, type StoredChunk } from './vm-data-store';

const MAGIC_V1 = Buffer.from('UVEVMD1\n');
const MAGIC = Buffer.from('UVEVMD2\n');
/** seq u32, length u32, sealed u8, nonce, sha256 (v1 ends here), address */
const HEADER_V1_BYTES = 4 + 4 + 1 + NONCE_BYTES + 32;
const HEADER_BYTES = HEADER_V1_BYTES + 32;
const SUFFIX = '.vmd';
/** a file this old belongs to no write still running (a temporary one: a crashed gateway's) */
const SETTLED_MS = 3600_000;

export class FsChunkStore implements ChunkStore {
  readonly storageKey: string;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.storageKey = `fs:${dir}`;
  }

  private file(snapshotId: string): string {
    if (!/^[0-9a-f-]{36}$/i.test(snapshotId)) throw new Error(`not a snapshot id: ${snapshotId}`);
    return path.join(this.dir, snapshotId + SUFFIX);
  }

  async write(_em: EntityManager, snapshotId: string, chunks: AsyncIterable<NewChunk>): Promise<number> {
    const final = this.file(snapshotId);
    const tmp = `${final}.tmp-${randomBytes(4).toString('hex')}`;
    const fh = await open(tmp, 'wx', 0o600);
    let done = false;
    let written = 0;
    try {
      let at = 0;
      const put = async (bufs: Buffer[]) => {
        const { bytesWritten } = await fh.writev(bufs, at);
        const want = bufs.reduce((n, b) => n + b.byteLength, 0);
        if (bytesWritten !== want) throw new Error(`short write to ${tmp}`);
        at += want;
      };
      await put([MAGIC]);
      for await (const n of chunks) {
        const c = n.stored();
        await put([header(c), c.data]);
        written++;
      }
      await fh.sync();
      done = true;
    } finally {
      await fh.close();
      if (!done) await unlink(tmp).catch(() => undefined);
    }
    await rename(tmp, final);
    await syncDir(this.dir);
    return written;
  }

  async *read(snapshotId: string): AsyncGenerator<StoredChunk> {
    let fh: FileHandle;
    try {
      fh = await open(this.file(snapshotId), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new VmDataStoreError(422, 'DAMAGED', `VM Data snapshot ${snapshotId} has no file in the store (${this.dir}).`);
      throw e;
    }
    try {
      const magic = await readExactly(fh, 0, MAGIC.length);
      const v1 = !!magic?.equals(MAGIC_V1);
      if (!v1 && !magic?.equals(MAGIC)) throw new VmDataStoreError(422, 'DAMAGED', `VM Data snapshot ${snapshotId}: its file is not a VM Data file.`);
      const headerBytes = v1 ? HEADER_V1_BYTES : HEADER_BYTES;
      let at = MAGIC.length;
      const readChunk = async (): Promise<StoredChunk | null> => {
        const h = await readExactly(fh, at, headerBytes);
        if (!h) return null;
        const len = h.readUInt32BE(4);
        const data = await readExactly(fh, at + headerBytes, len);
        if (!data) throw new VmDataStoreError(422, 'DAMAGED', `VM Data snapshot ${snapshotId}: its file ends inside a chunk.`);
        at += headerBytes + len;
        const seq = h.readUInt32BE(0);
        const sealed = h[8] !== 0;
        const sha256 = Buffer.from(h.subarray(9 + NONCE_BYTES, HEADER_V1_BYTES));
        return {
          seq, data, sha256,
          nonce: sealed ? Buffer.from(h.subarray(9, 9 + NONCE_BYTES)) : null,
          // a v1 chunk has no address: a clear one's is its checksum, a sealed one is bound to its place
          address: v1 ? sha256 : Buffer.from(h.subarray(HEADER_V1_BYTES)),
          aad: v1 && sealed ? legacyAad(snapshotId, seq) : null,
        };
      };
      // one chunk ahead: the disk works while the last chunk goes out
      let next = readChunk();
      for (;;) {
        const chunk = await next;
        if (!chunk) return;
        next = readChunk();
        next.catch(() => undefined); // observed at the next turn
        yield chunk;
      }
    } finally {
      await fh.close();
    }
  }

  async held(_em: EntityManager, snapshotIds: string[]): Promise<ChunkRefs> {
    return { snapshotIds, addresses: [] };
  }

  async remove(refs: ChunkRefs): Promise<void> {
    await Promise.all(refs.snapshotIds.map((id) => unlink(this.file(id)).catch(ignoreMissing)));
  }

  async discard(snapshotId: string): Promise<void> {
    await this.remove({ snapshotIds: [snapshotId], addresses: [] });
  }

  /**
   * Removes the files of snapshots that have no record any more (their user or UA was deleted:
   * the records go by cascade, the files stay) and temporary files a crashed write left.
   */
  async sweep(existing: (ids: string[]) => Promise<Set<string>>): Promise<number> {
    // only files no running write can own: a snapshot's file is renamed into place before the
    // transaction that records it commits
    const old = async (name: string) => {
      const s = await stat(path.join(this.dir, name)).catch(() => null);
      return s !== null && Date.now() - s.mtimeMs > SETTLED_MS;
    };
    const names = await readdir(this.dir);
    const ids: string[] = [];
    for (const n of names) if (n.endsWith(SUFFIX) && (await old(n))) ids.push(n.slice(0, -SUFFIX.length));
    const keep = await existing(ids);
    let removed = 0;
    for (const n of [...ids.filter((id) => !keep.has(id)).map((id) => id + SUFFIX), ...names.filter((x) => x.includes(`${SUFFIX}.tmp-`))]) {
      if (!n.endsWith(SUFFIX) && !(await old(n))) continue;
      await unlink(path.join(this.dir, n)).catch(ignoreMissing);
      removed++;
    }
    return removed;
  }
}

function header(c: StoredChunk): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32BE(c.seq, 0);
  h.writeUInt32BE(c.data.byteLength, 4);
  if (c.nonce) {
    h[8] = 1;
    c.nonce.copy(h, 9);
  }
  c.sha256.copy(h, 9 + NONCE_BYTES);
  c.address.copy(h, HEADER_V1_BYTES);
  return h;
}

/** `n` bytes at `at`; null at the end of the file; throws when the file ends part-way */
async function readExactly(fh: FileHandle, at: number, n: number): Promise<Buffer | null> {
  const buf = Buffer.allocUnsafe(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, at + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  if (got === 0 && n > 0) return null;
  if (got < n) throw new VmDataStoreError(422, 'DAMAGED', `a VM Data file ends part-way (${got} of ${n} bytes at ${at}).`);
  return buf;
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

function ignoreMissing(e: NodeJS.ErrnoException): void {
  if (e.code !== 'ENOENT') throw e;
}
