// UVE-5 VM Data over HTTP: uploads of a session's state and downloads of a snapshot to restore,
// authenticated with this VM's secret. Large state never goes through Redis.
import { createHash, type Hash } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { HttpRefusal, getInto, type IntoResponse } from './http-into';
import { ChunkHasher, type StreamedHash } from './chunk-hasher';
import {
  VM_DATA_CHUNK_BYTES, VM_DATA_DELTA_CONTENT_TYPE, VM_DATA_HEAD_BYTES, VM_DATA_SAVE_TIMING_HEADER, encodeVmDataDelta, vmDataChunkCount, vmDataChunkLength,
  type SnapshotKind, type VmDataSaveTiming,
} from '@uve/protocol';

const TIMEOUT_MS = 60_000;

/**
 * A command's VM Data head (restoreHead, head: base64 of VM_DATA_HEAD_BYTES at most) as bytes;
 * null when absent or not one. A hint: what the UA prepares by is checked again on the bytes.
 */
export function vmDataHead(b64: unknown): Uint8Array | null {
  if (typeof b64 !== 'string' || b64.length === 0 || b64.length > Math.ceil(VM_DATA_HEAD_BYTES / 3) * 4) return null;
  const bytes = Buffer.from(b64, 'base64');
  return bytes.length > 0 && bytes.length <= VM_DATA_HEAD_BYTES ? bytes : null;
}

/** the download's first bytes, copied to outlive the piece (a Buffer's slice() would be a view of it), for the UA to prepare by */
export const firstBytesOf = (piece: Uint8Array): Uint8Array => new Uint8Array(piece.subarray(0, VM_DATA_HEAD_BYTES));

export interface StoredVmData {
  snapshotId: string;
  kind: SnapshotKind;
  sizeBytes: number;
  sha256: string;
}

/** Downloaded VM Data; `release()` once restored (its buffer may be the kept one, DownloadBuffer). */
export interface FetchedVmData {
  kind: SnapshotKind;
  data: Uint8Array;
  release(): void;
}

/**
 * The buffer VM Data goes through, kept from one transfer to the next and touched ahead of time on
 * a warm VM: writing a freshly allocated buffer costs its page faults (50-400 ms per 16 MiB on this
 * Firecracker VM, docs/performance.md), a touched one a plain copy. Shared memory, so that the
 * guest's thread reads a FULL snapshot's pieces out of it, or writes its memory into it for a save,
 * with neither a copy nor a transfer. One download or save at a time has it; another one at the
 * same time gets a buffer of its own. A larger state (up to `growBytes`) makes it grow to its size,
 * faulted in once rather than at every staging: a 128 MiB state's copy out into a fresh buffer held
 * its UA for 250-400 ms at each staging (bench/reconnect --hitch). Grown past `keepBytes`, it is let
 * go after GROWN_IDLE_MS unused.
 */
export class VmDataBuffer {
  private kept: SharedArrayBuffer | null = null;
  private busy = false;
  private shrink: NodeJS.Timeout | null = null;

  constructor(private readonly keepBytes: number, private readonly growBytes = keepBytes) {}

  /** the largest buffer kept */
  private get limit(): number {
    return Math.max(this.keepBytes, this.growBytes);
  }

  /** allocates and touches `bytes` (at most keepBytes) now, while the VM is idle */
  warm(bytes = this.keepBytes): void {
    if (this.busy || bytes <= 0 || (this.kept && this.kept.byteLength >= bytes)) return;
    this.kept = touched(new SharedArrayBuffer(Math.min(bytes, this.keepBytes)));
  }

  take(size: number): HeldBuffer {
    if (this.busy || size > this.limit) return { data: new Uint8Array(size), release: () => undefined, outgrown: () => undefined };
    if (!this.kept || this.kept.byteLength < size) this.kept = new SharedArrayBuffer(size);
    return this.hold(size);
  }

  /** the whole kept buffer (keepBytes, or more once grown), for a save whose size is known only once it is written; null while in use or when none is kept */
  takeKept(): HeldBuffer | null {
    if (this.busy || this.limit <= 0) return null;
    if (!this.kept || this.kept.byteLength < this.keepBytes) this.kept = new SharedArrayBuffer(this.keepBytes);
    return this.hold(this.kept.byteLength);
  }

  private hold(size: number): HeldBuffer {
    this.busy = true;
    if (this.shrink) clearTimeout(this.shrink);
    this.shrink = null;
    let released = false;
    let wanted = 0;
    return {
      data: new Uint8Array(this.kept!, 0, size),
      outgrown: (bytes) => {
        wanted = Math.max(wanted, bytes);
      },
      release: () => {
        if (released) return;
        released = true;
        this.busy = false;
        // allocated now and faulted in by the next transfer that uses it (touching it here would hold this thread as long)
        if (wanted > (this.kept?.byteLength ?? 0) && wanted <= this.limit) this.kept = new SharedArrayBuffer(wanted);
        if ((this.kept?.byteLength ?? 0) > this.keepBytes) {
          this.shrink = setTimeout(() => {
            this.shrink = null;
            if (!this.busy) this.kept = null;
          }, GROWN_IDLE_MS);
          this.shrink.unref();
        }
      },
    };
  }
}

/** a buffer grown past keepBytes goes after this long unused */
export const GROWN_IDLE_MS = 5 * 60_000;

/** a buffer lent out until `release()` (twice is once) */
export interface HeldBuffer {
  data: Uint8Array;
  /** what was to go through it did not fit: `bytes` would have (the kept buffer grows to it once released) */
  outgrown(bytes: number): void;
  release(): void;
}

/** one write per 4 KiB page faults the buffer in */
function touched(b: SharedArrayBuffer): SharedArrayBuffer {
  const u = new Uint8Array(b);
  for (let at = 0; at < u.length; at += 4096) u[at] = 0;
  return b;
}

export class VmDataClient {
  /** each chunk's sha256 of a delta, beside the whole state's */
  private readonly hasher = new ChunkHasher();

  constructor(private readonly baseUrl: string, private readonly vmId: string, private readonly secret: string, private readonly buffer = new VmDataBuffer(0)) {}

  /** the VM stops: the hashing thread ends */
  close(): Promise<void> {
    return this.hasher.close();
  }

  private headers(): Record<string, string> {
    return { 'x-uve-vm-id': this.vmId, authorization: `Bearer ${this.secret}` };
  }

  /** UVE-5 store; `timing`: the save's stages so far, recorded with the VM Data (SNAPSHOT_SAVED) */
  async upload(sessionId: string, kind: SnapshotKind, data: Uint8Array, timing?: VmDataSaveTiming): Promise<StoredVmData> {
    return this.put(`/sessions/${encodeURIComponent(sessionId)}?kind=${kind}`, {
      'content-type': 'application/octet-stream',
      'content-length': String(data.byteLength),
      ...(timing && { [VM_DATA_SAVE_TIMING_HEADER]: JSON.stringify(timing) }),
    }, data, 201, 'VM Data upload');
  }

  /**
   * UVE-5 update as a delta: the chunks of `data` whose sha256 is not in `staged` (what the session
   * staged with the VMM) are sent, the others named (@uve/protocol vm-data-delta.ts). Throws when
   * the VMM refuses it (a staged chunk gone, say): the caller then sends the whole.
   */
  async uploadDelta(sessionId: string, kind: SnapshotKind, data: Uint8Array, staged: StagedHashes, timing?: VmDataSaveTiming): Promise<StoredVmData> {
    const { body } = await delta(data, staged, this.hasher);
    return this.put(`/sessions/${encodeURIComponent(sessionId)}?kind=${kind}`, {
      ...deltaHeaders(body),
      ...(timing && { [VM_DATA_SAVE_TIMING_HEADER]: JSON.stringify(timing) }),
    }, body, 201, 'VM Data delta');
  }

  /**
   * Stages the session's FULL state with the VMM ahead of its save, sending only the chunks not in
   * `staged` (what it staged before); the chunks now staged, or an error. `signal` gives it up.
   */
  async stage(sessionId: string, data: Uint8Array, staged: StagedHashes, signal?: AbortSignal): Promise<{ staged: StagedHashes; sent: number; chunks: number }> {
    const { body, hashes, sent } = await delta(data, staged, this.hasher);
    await this.put(`/sessions/${encodeURIComponent(sessionId)}/staged`, deltaHeaders(body), body, 200, 'VM Data staging', signal);
    return { staged: new Set(hashes), sent, chunks: hashes.length };
  }

  /** PUT of VM Data under this VM's credentials: the VMM's JSON answer, or an error naming `what` unless it answers `expected` */
  private async put<T>(path: string, headers: Record<string, string>, body: Uint8Array | Uint8Array[], expected: number, what: string, signal?: AbortSignal): Promise<T> {
    const res = await send(`${this.baseUrl}${path}`, 'PUT', { ...this.headers(), ...headers }, body, signal);
    const answer = await text(res);
    if (res.statusCode !== expected) throw new Error(`${what} refused: ${res.statusCode} ${answer.slice(0, 300)}`);
    return JSON.parse(answer) as T;
  }

  /**
   * UVE-5 retrieve: the snapshot's bytes, refused unless they match the sha256 the VMM recorded.
   * `onFirstBytes` gets the first bytes that arrive (a snapshot's header), before the rest.
   */
  async download(snapshotId: string, onFirstBytes?: (head: Uint8Array) => void): Promise<FetchedVmData> {
    const url = new URL(`${this.baseUrl}/snapshots/${encodeURIComponent(snapshotId)}`);
    if (url.protocol === 'http:') return this.downloadInto(url, onFirstBytes);
    const res = await send(url.href, 'GET', this.headers());
    if (res.statusCode !== 200) throw new Error(`VM Data download refused: ${res.statusCode} ${(await text(res)).slice(0, 300)}`);
    const kind = res.headers['x-uve-snapshot-kind'] as SnapshotKind;
    const hash = createHash('sha256');
    const size = Number(res.headers['content-length']);
    if (!Number.isSafeInteger(size) || size < 0) {
      res.destroy();
      throw new Error('VM Data download announced no size (content-length)');
    }
    const into = this.buffer.take(size);
    try {
      const data = await readAnnounced(res, hash, into.data, onFirstBytes);
      verifyVmData(hash, String(res.headers['x-uve-sha256'] ?? '') || null);
      return { kind, data, release: into.release };
    } catch (e) {
      into.release();
      res.destroy();
      throw e;
    }
  }

  /**
   * download() over plain HTTP: the socket reads the body into the buffer itself (http-into.ts),
   * hashed on the hasher's thread as the pieces land when the buffer is shared (here when not)
   */
  private async downloadInto(url: URL, onFirstBytes?: (head: Uint8Array) => void): Promise<FetchedVmData> {
    let onThread: StreamedHash | null = null;
    const here = createHash('sha256');
    let got: IntoResponse<HeldBuffer>;
    try {
      got = await getInto(url, {
        headers: this.headers(),
        timeoutMs: TIMEOUT_MS,
        into: (size) => {
          const held = this.buffer.take(size);
          onThread = this.hasher.stream(held.data);
          return held;
        },
        onBytes: (piece) => (onThread ? onThread.update(piece) : here.update(piece)),
        onFirstBytes,
      });
    } catch (e) {
      (onThread as StreamedHash | null)?.abort();
      if (e instanceof HttpRefusal) throw new Error(`VM Data download refused: ${e.status} ${e.body.slice(0, 300)}`);
      throw new Error(`VM Data download ${(e as Error).message}`);
    }
    const { taken: held, headers } = got;
    try {
      const streamed = onThread as StreamedHash | null;
      verifyVmData(streamed ? { digested: await streamed.digest() } : here, headers['x-uve-sha256'] || null);
    } catch (e) {
      held.release();
      throw e;
    }
    return { kind: headers['x-uve-snapshot-kind'] as SnapshotKind, data: held.data, release: held.release };
  }
}

/**
 * A request with node:http(s) rather than fetch: a snapshot comes as Buffers off the socket without a
 * web stream around each piece (a 16 MiB download took 2-3x as long through fetch on this
 * machine), and `body` goes out as it is (fetch copies a Uint8Array body into a fresh buffer
 * first, as large as the state). Times out as a whole after TIMEOUT_MS.
 */
function send(url: string, method: 'GET' | 'PUT', headers: Record<string, string>, body?: Uint8Array | Uint8Array[], signal?: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const timeout = AbortSignal.timeout(TIMEOUT_MS);
    const req = (url.startsWith('https:') ? https : http).request(url, { method, headers, signal: signal ? AbortSignal.any([signal, timeout]) : timeout }, resolve);
    req.on('error', reject);
    if (Array.isArray(body)) {
      for (const piece of body) req.write(piece);
      req.end();
    } else req.end(body);
  });
}

/** sha256s (hex) of the chunks a session staged with the VMM */
export type StagedHashes = ReadonlySet<string>;

/**
 * `data` as a delta against `staged`: its head and chunk list, then the chunks not staged (views
 * into `data`, not copies); every chunk's sha256 (hex) in order; how many are sent. The hashing
 * gives the event loop back after each chunk: done in one go, it held the VM's main thread for
 * 165 ms and more per 128 MiB (two sha256 passes), and every session's frames waited behind it (a
 * 128 MiB state's staging froze its picture for ~390 ms: bench/reconnect --hitch).
 */
async function delta(data: Uint8Array, staged: StagedHashes, hasher?: ChunkHasher): Promise<{ body: Uint8Array[]; hashes: string[]; sent: number }> {
  const entries: { sha256: Buffer; sent: boolean }[] = [];
  const hashes: string[] = [];
  const body: Uint8Array[] = [];
  const whole = createHash('sha256');
  const count = vmDataChunkCount(data.byteLength);
  const chunk = (seq: number) => data.subarray(seq * VM_DATA_CHUNK_BYTES, seq * VM_DATA_CHUNK_BYTES + vmDataChunkLength(data.byteLength, seq));
  const hashHere = (seq: number) => createHash('sha256').update(chunk(seq)).digest();
  // each chunk's hash on the hasher's thread (shared memory) while this one hashes the whole
  const onThread = hasher?.hash(data, VM_DATA_CHUNK_BYTES) ?? null;
  onThread?.catch(() => undefined); // awaited below
  const own: Buffer[] = [];
  for (let seq = 0; seq < count; seq++) {
    if (seq > 0) await new Promise(setImmediate);
    whole.update(chunk(seq));
    if (!onThread) own.push(hashHere(seq));
  }
  const digests = onThread ? await onThread.catch(() => Array.from({ length: count }, (_, seq) => hashHere(seq))) : own;
  for (let seq = 0; seq < count; seq++) {
    const sha256 = digests[seq]!;
    const hex = sha256.toString('hex');
    const sent = !staged.has(hex);
    entries.push({ sha256, sent });
    hashes.push(hex);
    if (sent) body.push(chunk(seq));
  }
  const head = encodeVmDataDelta({ sizeBytes: data.byteLength, sha256: whole.digest() }, entries);
  return { body: [head, ...body], hashes, sent: body.length };
}

function deltaHeaders(body: Uint8Array[]): Record<string, string> {
  return { 'content-type': VM_DATA_DELTA_CONTENT_TYPE, 'content-length': String(body.reduce((n, b) => n + b.byteLength, 0)) };
}

async function text(res: IncomingMessage): Promise<string> {
  let s = '';
  for await (const piece of res) s += String(piece);
  return s;
}

/**
 * The body read straight into `data`, a buffer of the announced size (no second copy of a large
 * snapshot), hashed piece by piece as it comes (the hash overlaps the download instead of
 * following it); a body longer or shorter than announced is refused.
 */
async function readAnnounced(res: IncomingMessage, hash: Hash, data: Uint8Array, onFirstBytes?: (head: Uint8Array) => void): Promise<Uint8Array> {
  const size = data.byteLength;
  let at = 0;
  try {
    for await (const piece of res as AsyncIterable<Buffer>) {
      if (at + piece.byteLength > size) throw new Error(`VM Data download is longer than the announced ${size} bytes`);
      if (at === 0) onFirstBytes?.(piece);
      data.set(piece, at);
      hash.update(piece);
      at += piece.byteLength;
    }
  } catch (e) {
    throw new Error(`VM Data download broke off after ${at} of ${size} bytes: ${(e as Error).message}`);
  }
  if (at !== size) throw new Error(`VM Data download broke off after ${at} of ${size} bytes`);
  return data;
}

/**
 * Throws unless `data` (its bytes, what a Hash took, or a digest taken elsewhere) gives `sha256`
 * (hex), so corrupted VM Data is never restored.
 */
export function verifyVmData(data: Uint8Array | Hash | { digested: Buffer }, sha256: string | null): void {
  const actual = 'digested' in data ? data.digested.toString('hex') : (data instanceof Uint8Array ? createHash('sha256').update(data) : data).digest('hex');
  if (!sha256 || actual !== sha256.toLowerCase()) {
    throw new Error(`VM Data checksum mismatch: expected sha256 ${sha256 ?? '(none)'}, got ${actual}`);
  }
}
