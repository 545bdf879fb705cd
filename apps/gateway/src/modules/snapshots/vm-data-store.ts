// The VM Data store: a snapshot's bytes as numbered chunks of at most CHUNK_BYTES, never whole in a
// gateway's memory (one chunk at a time plus a bounded read-ahead, in both directions). Two places
// keep the chunks behind one interface (UVE_VM_DATA_STORE): PostgreSQL (vm-data-store.postgres.ts,
// the default: any gateway serves any VM) and a folder (vm-data-store.fs.ts, single-host setups).
// Chunks are content-addressed: a chunk's address is the sha256 of its plain bytes, or with a key
// configured (UVE_VM_DATA_KEY) an HMAC under the key (equal plain bytes do not show across keys),
// so the PostgreSQL store keeps a chunk once however many snapshots hold it. Each chunk keeps the
// sha256 of its stored bytes, checked on every read before the chunk goes out; sealed chunks are
// AES-256-GCM under a nonce derived from their address (the same bytes seal the same way, which is
// what lets them be shared), bound to that address (bytes moved to another address do not open).
// A snapshot's order of chunks (its manifest) is checked at the end of a read by the sha256 of its
// chunks' addresses in order (each address binds its chunk's plain bytes: a clear chunk's is their
// sha256, checked; a sealed chunk opens only under its own): the same guarantee as the whole
// snapshot's sha256 without a second hash pass over every byte. Snapshots stored before that
// digest was kept are checked by their whole sha256.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import {
  VM_DATA_CHUNK_BYTES, VM_DATA_DELTA_ENTRY_BYTES, VM_DATA_DELTA_HEAD_BYTES, VM_DATA_HEAD_BYTES, decodeVmDataDeltaChunks, decodeVmDataDeltaHead, vmDataChunkLength,
  type VmDataDeltaChunk, type VmDataDeltaHead,
} from '@uve/protocol';

/** a delta names the same pieces (@uve/protocol vm-data-delta.ts) */
export const CHUNK_BYTES = VM_DATA_CHUNK_BYTES;
export const NONCE_BYTES = 12;
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
  /** manifestSha256() of its chunks */
  manifestSha256: string;
  /** chunks of the snapshot, and of those the ones the store did not hold yet (written now) */
  chunks: number;
  written: number;
  /** chunks whose bytes came with the upload (fewer than `chunks` for a delta: the rest were staged) */
  sent: number;
  /** its head as the record keeps it (VmSnapshot.head): sealed when its chunks are; null when its first chunk was staged, not sent */
  head: Buffer | null;
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

/**
 * One chunk as kept: its address, its stored bytes (sealed or clear), the nonce when sealed, the
 * sha256 of `data`; `aad` only for sealed chunks bound to something else than their address
 * (chunks stored before content addressing: their snapshot and position).
 */
export interface StoredChunk {
  seq: number;
  address: Buffer;
  data: Buffer;
  nonce: Buffer | null;
  aad: Buffer | null;
  sha256: Buffer;
}

/** A chunk on its way in: its address first, its stored form only if the store lacks it (sealing costs). */
export interface NewChunk {
  seq: number;
  address: Buffer;
  /**
   * a chunk a delta names as staged: the store holds it (a staged row refers to it), it has no
   * bytes here; a store may lock such chunks together, and refuses the write when one is gone
   */
  staged?: boolean;
  /** valid until the store asks for the chunk after the next one (the buffers are reused) */
  stored(): StoredChunk;
}

/** A VM as its request names it: its id and the sha256 (hex) of the secret it sent, not checked yet. */
export interface VmCredential {
  vmId: string;
  secretSha256: string;
}

/** A snapshot's read, started early (VmDataStore.prepareRead): opened once its record is at hand, or cancelled. */
export interface PreparedRead {
  /** VmDataStore.open() over the chunks read so far */
  open(snapshot: SnapshotRef): Promise<AsyncGenerator<Buffer>>;
  /** the read is not wanted (a refusal): what it holds is released */
  cancel(): Promise<void>;
}

/** What a store needs to know of a snapshot to give its bytes back. */
export interface SnapshotRef {
  id: string;
  sizeBytes: number;
  /** of the whole snapshot (hex): checked once the last chunk went out when it has no manifestSha256 */
  sha256: string;
  /** of its addresses in order (hex, manifestSha256()): checked instead, once the last chunk went out */
  manifestSha256?: string | null;
  encryptionKeyId: string | null;
}

/** What a snapshot's chunk order is checked by: the sha256 of its chunks' addresses in order (hex). */
export function manifestSha256(): { add(address: Buffer): void; digest(): string } {
  const h = createHash('sha256').update('uve-vm-data-manifest\0');
  return { add: (address) => void h.update(address), digest: () => h.digest('hex') };
}

/** Where the chunks are kept; the sealing, checksums and limits are the same for every kind (VmDataStore). */
export interface ChunkStore {
  /** recorded as the snapshot's storageKey */
  readonly storageKey: string;
  /** chunks write() may still hold while it asks for the next one (default 1) */
  readonly inFlight?: number;
  /**
   * Keeps `chunks` (in order) as snapshot `snapshotId`, inside the caller's transaction where the
   * store has one; resolves once all are durable, with the number of chunks it wrote (those it
   * did not hold already). Reads the next chunk only once the store can take it (backpressure),
   * with at most `inFlight` earlier chunks still in flight then: a chunk's buffer is filled again
   * `inFlight` + 1 chunks later.
   */
  write(em: EntityManager, snapshotId: string, chunks: AsyncIterable<NewChunk>): Promise<number>;
  /**
   * the stored chunks in order, read ahead by a bounded amount at most; a chunk's buffers may be
   * the store's again once the consumer took a few more (PostgreSQL: copy-out.ts REUSED_AFTER)
   */
  read(snapshotId: string): AsyncGenerator<StoredChunk>;
  /**
   * read(), but giving no chunk at all unless `reader` is a VM the store knows with that secret:
   * a read that can start before the route has authenticated the VM (see VmDataStore.prepareRead).
   * Stores without it start reading only once the VM is authenticated.
   */
  readFor?(snapshotId: string, reader: VmCredential): AsyncGenerator<StoredChunk>;
  /**
   * What remove() needs to forget the bytes of `snapshotIds`, read inside the transaction that
   * deletes their records (before the delete).
   */
  held(em: EntityManager, snapshotIds: string[]): Promise<ChunkRefs>;
  /** forgets the bytes of snapshots whose records are gone (after the commit that removed them) */
  remove(refs: ChunkRefs): Promise<void>;
  /** undoes a write whose transaction did not commit */
  discard(snapshotId: string): Promise<void>;
  /** removes bytes that no snapshot record refers to any more (`existing`: those of `ids` that have one) */
  sweep?(existing: (ids: string[]) => Promise<Set<string>>): Promise<number>;
  /** closes the store's own connections (after the transfers drained) */
  close?(): Promise<void>;
  /**
   * Staging (stores that have it): a live session's FULL state kept chunk by chunk ahead of its
   * save. `staged`: the chunks the session staged, by the sha256 of their plain bytes (hex).
   */
  staged?(em: EntityManager, sessionId: string): Promise<StagedChunks>;
  /**
   * Keeps `chunks` as the session's staged state (replacing what it staged before), inside the
   * caller's transaction; `plainSha256(seq)` is known for every chunk once `chunks` ended. The
   * addresses no longer staged are collected by the caller after the commit.
   */
  stage?(em: EntityManager, sessionId: string, chunks: AsyncIterable<NewChunk>, plainSha256: (seq: number) => Buffer, whole: () => { sizeBytes: number; sha256: string }): Promise<{ written: number; unstaged: Buffer[] }>;
  /**
   * Makes a stored snapshot the session's staged state (replacing what it staged before), inside
   * the caller's transaction, as staged at `at`; the sha256s of its chunks' plain bytes in order.
   * Null when a chunk is sealed: its plain sha256 is not kept, so a VM could not name it.
   */
  stageSnapshot?(em: EntityManager, sessionId: string, snapshot: { id: string; sizeBytes: number; sha256: string; at: Date }): Promise<Buffer[] | null>;
}

/** a session's staged chunks: the sha256 of their plain bytes (hex) -> address */
export type StagedChunks = Map<string, Buffer>;

/** the snapshots whose bytes go, and the chunk addresses they referred to (content-addressed stores) */
export interface ChunkRefs {
  snapshotIds: string[];
  addresses: Buffer[];
}

/** What sealed chunks stored before content addressing are bound to: their snapshot and position. */
export const legacyAad = (snapshotId: string, seq: number) => Buffer.from(`${snapshotId}/${seq}`);

export class VmDataStore {
  /** keys derived from the configured one: for addresses, and for the nonces derived from them */
  private readonly derived: { address: Buffer; nonce: Buffer } | null;

  constructor(readonly chunks: ChunkStore, private readonly key: VmDataKey | null) {
    const derive = (label: string) => createHmac('sha256', key!.key).update(label).digest();
    this.derived = key && { address: derive('uve-vm-data-address'), nonce: derive('uve-vm-data-nonce') };
  }

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
    const manifest = manifestSha256();
    let size = 0;
    let first: Buffer | null = null;
    const addressed = (seq: number, plain: Buffer): NewChunk => {
      if (seq === 0) first = firstBytesOf(plain);
      const c = this.addressed(seq, plain);
      manifest.add(c.address);
      return c;
    };
    const sealed = async function* (this: VmDataStore): AsyncGenerator<NewChunk> {
      const ring = this.ring();
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
            yield addressed(seq++, chunk);
            chunk = ring[seq % ring.length]!;
            filled = 0;
          }
        }
      }
      if (size === 0) throw new VmDataStoreError(400, 'BAD_USER_INPUT', 'VM Data is empty.');
      if (filled > 0) yield addressed(seq++, chunk.subarray(0, filled));
      chunks = seq;
    };
    let chunks = 0;
    const written = await this.writeChunks(em, snapshotId, sealed.call(this));
    return { sizeBytes: size, sha256: whole.digest('hex'), manifestSha256: manifest.digest(), chunks, written, sent: chunks, head: this.sealHead(snapshotId, first) };
  }

  /** ChunkStore.write, its bytes undone when it fails (nothing half-written stays) */
  private async writeChunks(em: EntityManager, snapshotId: string, chunks: AsyncIterable<NewChunk>): Promise<number> {
    try {
      return await this.chunks.write(em, snapshotId, chunks);
    } catch (e) {
      await this.chunks.discard(snapshotId).catch(() => undefined);
      throw e;
    }
  }

  /**
   * A few chunk buffers to fill in turn, not a new one per chunk (garbage the collector is late
   * for): a store has at most `inFlight` chunks in flight while it asks for the next
   * (ChunkStore.write); one more is being filled, one just handed over.
   */
  private ring(): Buffer[] {
    return Array.from({ length: (this.chunks.inFlight ?? 1) + 2 }, () => Buffer.allocUnsafe(CHUNK_BYTES));
  }

  /**
   * A chunk's address: sha256 of its plain bytes (`sha256` when the caller has it already), or
   * their HMAC under the key when sealed.
   */
  private addressed(seq: number, plain: Buffer, sha256?: Buffer): NewChunk {
    const address = this.derived ? createHmac('sha256', this.derived.address).update(plain).digest() : (sha256 ?? createHash('sha256').update(plain).digest());
    return { seq, address, stored: () => this.seal(seq, address, plain) };
  }

  /**
   * Writes a delta (@uve/protocol vm-data-delta.ts) as the chunks of `snapshotId`: the chunks it
   * sends, each checked against the sha256 it names, and the ones it names as staged, taken from
   * `staged`. Its size and whole sha256 are the VM's word (the VMM never holds all the bytes): a
   * restoring VM checks the whole sha256, and every read checks each chunk and their order.
   */
  async writeDelta(em: EntityManager, snapshotId: string, source: AsyncIterable<Uint8Array>, staged: StagedChunks, maxBytes: number): Promise<StoredBytes> {
    const delta = new DeltaChunks();
    const written = await this.writeChunks(em, snapshotId, this.deltaChunks(source, staged, maxBytes, delta));
    const manifest = manifestSha256();
    delta.addresses.forEach((a) => manifest.add(a));
    const head = delta.head!;
    return { sizeBytes: head.sizeBytes, sha256: Buffer.from(head.sha256).toString('hex'), manifestSha256: manifest.digest(), chunks: head.chunks, written, sent: delta.sent, head: this.sealHead(snapshotId, delta.first) };
  }

  /** Keeps a delta as the session's staged state (ChunkStore.stage); refused by a store that cannot stage. */
  async stage(em: EntityManager, sessionId: string, source: AsyncIterable<Uint8Array>, maxBytes: number): Promise<{ chunks: number; sent: number; written: number; unstaged: Buffer[] }> {
    if (!this.chunks.stage || !this.chunks.staged) throw new VmDataStoreError(409, 'NOT_STAGED', `The ${this.storageKey} VM Data store keeps no staged state; send the VM Data whole at the save.`);
    const delta = new DeltaChunks();
    const staged = await this.chunks.staged(em, sessionId);
    const r = await this.chunks.stage(em, sessionId, this.deltaChunks(source, staged, maxBytes, delta), (seq) => delta.plain[seq]!, () => ({
      sizeBytes: delta.head!.sizeBytes,
      sha256: Buffer.from(delta.head!.sha256).toString('hex'),
    }));
    return { chunks: delta.head!.chunks, sent: delta.sent, ...r };
  }

  /** the session's staged chunks (none where the store keeps no staged state) */
  staged(em: EntityManager, sessionId: string): Promise<StagedChunks> {
    return this.chunks.staged?.(em, sessionId) ?? Promise.resolve(new Map());
  }

  /** the chunks of a delta in order, checked; `into` learns its head, plain sha256s and addresses as they come */
  private async *deltaChunks(source: AsyncIterable<Uint8Array>, staged: StagedChunks, maxBytes: number, into: DeltaChunks): AsyncGenerator<NewChunk> {
    const reader = new ExactReader(source);
    let list: VmDataDeltaChunk[];
    try {
      into.head = decodeVmDataDeltaHead(await reader.read(VM_DATA_DELTA_HEAD_BYTES), maxBytes);
      list = decodeVmDataDeltaChunks(await reader.read(VM_DATA_DELTA_ENTRY_BYTES * into.head.chunks), into.head.chunks);
    } catch (e) {
      if (e instanceof VmDataStoreError) throw e;
      throw new VmDataStoreError(400, 'BAD_USER_INPUT', `VM Data delta refused: ${(e as Error).message}.`);
    }
    const ring = this.ring();
    for (const [seq, entry] of list.entries()) {
      const claimed = Buffer.from(entry.sha256);
      into.plain.push(claimed);
      if (!entry.sent) {
        const address = staged.get(claimed.toString('hex'));
        const gone = () => new VmDataStoreError(409, 'NOT_STAGED', `VM Data delta names chunk ${seq} (sha256 ${claimed.toString('hex')}) as staged, and this session holds no such staged chunk; send it whole.`);
        if (!address) throw gone();
        into.addresses.push(address);
        // locked by the store (held), never written: a staged chunk gone meanwhile fails the write
        yield { seq, address, staged: true, stored: () => { throw gone(); } };
        continue;
      }
      const plain = await reader.read(vmDataChunkLength(into.head.sizeBytes, seq), ring[seq % ring.length]);
      into.sent++;
      if (seq === 0) into.first = firstBytesOf(plain);
      const sum = createHash('sha256').update(plain).digest();
      if (!sum.equals(claimed)) throw damaged(`VM Data delta chunk ${seq} is not what its sha256 says (${sum.toString('hex')}, named ${claimed.toString('hex')}).`);
      const c = this.addressed(seq, plain, sum);
      into.addresses.push(c.address);
      yield c;
    }
    if (!(await reader.atEnd())) throw new VmDataStoreError(400, 'BAD_USER_INPUT', 'VM Data delta refused: bytes past its last chunk.');
  }

  /**
   * The record's head of a snapshot whose first bytes are `head` (null: none came with the upload),
   * sealed when chunks are (AES-256-GCM under a random nonce, bound to the snapshot: nonce, then
   * the sealed bytes, then the tag). openHead() gives it back.
   */
  private sealHead(snapshotId: string, head: Buffer | null): Buffer | null {
    if (!head || !this.key) return head;
    const nonce = randomBytes(NONCE_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key.key, nonce).setAAD(headAad(snapshotId));
    return Buffer.concat([nonce, c.update(head), c.final(), c.getAuthTag()]);
  }

  /**
   * A snapshot's head as plain bytes, for the commands that restore it; null when it has none, or
   * it is sealed with a key this gateway has not or does not open (a hint: the VM then prepares by
   * the download's first bytes).
   */
  openHead(snapshot: { id: string; head: Buffer | null; encryptionKeyId: string | null }): Buffer | null {
    const h = snapshot.head;
    if (!h || snapshot.encryptionKeyId === null) return h;
    if (!this.key || snapshot.encryptionKeyId !== this.key.id || h.length < NONCE_BYTES + TAG_BYTES) return null;
    const d = createDecipheriv('aes-256-gcm', this.key.key, h.subarray(0, NONCE_BYTES)).setAAD(headAad(snapshot.id));
    d.setAuthTag(h.subarray(h.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(h.subarray(NONCE_BYTES, h.length - TAG_BYTES)), d.final()]);
    } catch {
      return null;
    }
  }

  private seal(seq: number, address: Buffer, plain: Buffer): StoredChunk {
    if (!this.key || !this.derived) return { seq, address, data: plain, nonce: null, aad: null, sha256: address };
    // the nonce follows from the address: only the same plain bytes under the same key share one
    const nonce = createHmac('sha256', this.derived.nonce).update(address).digest().subarray(0, NONCE_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key.key, nonce).setAAD(address);
    const data = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    return { seq, address, data, nonce, aad: null, sha256: createHash('sha256').update(data).digest() };
  }

  /**
   * The snapshot's bytes in order, each chunk checked against its sha256 (and opened when sealed)
   * before it is given out. Resolves once the first chunk passed, so a snapshot damaged from its
   * start, or sealed with a key this gateway has not, is refused before a byte goes out; a later
   * damaged chunk ends the iteration with a VmDataStoreError (the reader then has fewer bytes than
   * announced). The last chunk is given out only after the whole snapshot's sha256 matched, so a
   * reader never gets all the bytes of a snapshot whose chunks are in another order.
   */
  open(snapshot: SnapshotRef): Promise<AsyncGenerator<Buffer>> {
    return this.openFrom(snapshot, this.chunks.read(snapshot.id));
  }

  /**
   * Starts reading snapshot `snapshotId` for the VM `reader` names before the route has checked
   * that VM and looked the snapshot up (those round trips and the read's first chunk then overlap,
   * on the way to a restore's first byte). Only where the store checks the VM in the read itself
   * (readFor: no chunk for a VM that is not who it says); elsewhere the read starts at open().
   */
  prepareRead(snapshotId: string, reader: VmCredential): PreparedRead {
    if (!this.chunks.readFor) return { open: (snapshot) => this.open(snapshot), cancel: async () => undefined };
    const rows = this.chunks.readFor(snapshotId, reader);
    const first = rows.next();
    first.catch(() => undefined); // seen by open(), or moot after cancel()
    const started = async function* (): AsyncGenerator<StoredChunk> {
      try {
        const r = await first;
        if (r.done) return;
        yield r.value;
        yield* rows;
      } finally {
        await rows.return(undefined); // released however the consumer left
      }
    };
    const cancel = async () => {
      await first.catch(() => undefined);
      await rows.return(undefined);
    };
    return {
      open: async (snapshot) => {
        try {
          if (snapshot.id !== snapshotId) throw new Error(`a read prepared for ${snapshotId} opened as ${snapshot.id}`);
          return await this.openFrom(snapshot, started());
        } catch (e) {
          await cancel();
          throw e;
        }
      },
      cancel,
    };
  }

  /** open() over `chunks` (a read not started yet, or started by prepareRead) */
  private async openFrom(snapshot: SnapshotRef, chunks: AsyncGenerator<StoredChunk>): Promise<AsyncGenerator<Buffer>> {
    if (snapshot.encryptionKeyId !== null && snapshot.encryptionKeyId !== this.key?.id) {
      throw new VmDataStoreError(500, 'KEY_UNAVAILABLE', `VM Data snapshot ${snapshot.id} is encrypted with key ${snapshot.encryptionKeyId}, which this gateway is not configured with (UVE_VM_DATA_KEY).`);
    }
    const checked = this.checked(snapshot, chunks);
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

  private async *checked(snapshot: SnapshotRef, chunks: AsyncGenerator<StoredChunk>): AsyncGenerator<Buffer> {
    let expected = 0;
    let size = 0;
    // the order by the addresses when the snapshot has their digest, else by every byte
    const manifest = snapshot.manifestSha256 ? manifestSha256() : null;
    const whole = manifest ? null : createHash('sha256');
    let held: Buffer | null = null;
    for await (const chunk of chunks) {
      if (chunk.seq !== expected) throw damaged(`VM Data snapshot ${snapshot.id} lacks chunk ${expected}.`);
      const sum = createHash('sha256').update(chunk.data).digest();
      // a clear chunk's address is its checksum
      if (!sum.equals(chunk.sha256) || (!chunk.nonce && !sum.equals(chunk.address))) {
        throw damaged(`VM Data checksum mismatch: chunk ${chunk.seq} of snapshot ${snapshot.id} is not what was stored.`);
      }
      const plain = this.open_(snapshot, chunk);
      size += plain.byteLength;
      manifest?.add(chunk.address);
      whole?.update(plain);
      expected++;
      // every chunk goes out as soon as it checked out, but the last: that one only once the whole
      // snapshot did (size and order), so that a VM never gets all the bytes of one that did not
      if (size < snapshot.sizeBytes) yield plain;
      else if (held) throw damaged(`VM Data snapshot ${snapshot.id} holds more than the ${snapshot.sizeBytes} bytes stored.`);
      else held = plain;
    }
    if (size !== snapshot.sizeBytes) throw damaged(`VM Data snapshot ${snapshot.id} holds ${size} bytes, ${snapshot.sizeBytes} were stored.`);
    // every chunk was whole; this catches them in another order (a manifest tampered with)
    if (manifest ? manifest.digest() !== snapshot.manifestSha256 : whole!.digest('hex') !== snapshot.sha256) {
      throw damaged(`VM Data checksum mismatch: snapshot ${snapshot.id} does not add up to the ${manifest ? 'chunk order' : 'sha256'} it was stored with.`);
    }
    if (held) yield held;
  }

  /** a stored chunk as plain bytes: unsealed when sealed, refused when it does not open */
  private open_(snapshot: SnapshotRef, chunk: StoredChunk): Buffer {
    if (!chunk.nonce) return chunk.data;
    if (!this.key || snapshot.encryptionKeyId !== this.key.id) throw new VmDataStoreError(500, 'KEY_UNAVAILABLE', `VM Data chunk ${chunk.seq} of ${snapshot.id} is encrypted and this gateway has not its key.`);
    const sealed = chunk.data;
    const d = createDecipheriv('aes-256-gcm', this.key.key, chunk.nonce).setAAD(chunk.aad ?? chunk.address);
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]);
    } catch {
      throw damaged(`VM Data chunk ${chunk.seq} of ${snapshot.id} does not open with its key (tampered with or misplaced).`);
    }
  }
}

const damaged = (message: string) => new VmDataStoreError(422, 'DAMAGED', message);

/** what a sealed head is bound to: its snapshot */
const headAad = (snapshotId: string) => Buffer.from(`uve-vm-data-head\0${snapshotId}`);

/** a chunk's first VM_DATA_HEAD_BYTES, copied (the chunk's buffer is reused): the state's head when it is the first */
const firstBytesOf = (plain: Buffer): Buffer => Buffer.from(plain.subarray(0, VM_DATA_HEAD_BYTES));

/** what a delta told as it was read */
class DeltaChunks {
  head: VmDataDeltaHead | null = null;
  /** the state's first bytes, when its first chunk came with the delta */
  first: Buffer | null = null;
  /** the sha256 of each chunk's plain bytes, by seq */
  plain: Buffer[] = [];
  addresses: Buffer[] = [];
  sent = 0;
}

/** Reads exact lengths out of a stream of pieces of any size. */
class ExactReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private rest: Buffer = Buffer.alloc(0);

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** the next `n` bytes (into `buffer` when given, which must hold them); throws when the stream ends first */
  async read(n: number, buffer?: Buffer): Promise<Buffer> {
    const out = buffer ? buffer.subarray(0, n) : Buffer.allocUnsafe(n);
    let filled = 0;
    for (;;) {
      const take = Math.min(n - filled, this.rest.byteLength);
      this.rest.copy(out, filled, 0, take);
      this.rest = this.rest.subarray(take);
      filled += take;
      if (filled === n) return out;
      const next = await this.it.next();
      if (next.done) throw new VmDataStoreError(400, 'BAD_USER_INPUT', `VM Data delta refused: it ends ${n - filled} bytes short.`);
      this.rest = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    }
  }

  /** true when no byte is left */
  async atEnd(): Promise<boolean> {
    while (this.rest.byteLength === 0) {
      const next = await this.it.next();
      if (next.done) return true;
      this.rest = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    }
    return false;
  }
}
