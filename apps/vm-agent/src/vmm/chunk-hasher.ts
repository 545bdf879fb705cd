// The sha256 of each chunk of VM Data in shared memory, on a thread of its own. A delta (a save or a
// staging against what the VMM holds) hashes the state twice: each chunk, for its address, and the
// whole, for the snapshot's checksum. On the agent's main thread, one after the other, that was
// ~180 of a 128 MiB save's ~260 ms (docs/performance.md, reconnect, "thirteenth pass"); here the
// chunks' pass runs while the main thread does the whole's. State in memory of its own (not shared)
// is hashed on the main thread as before: copying it over would cost what it saves.
//
// A download's sha256 goes there too (stream()), piece by piece as the pieces land in shared
// memory: on the main thread, the hashing between socket reads held the agent's event loop for
// most of a download, and what else the agent had to do waited for it (a 16 MiB restore's UA start,
// its other sessions' frames; docs/performance.md, reconnect, "seventeenth pass").
import { Worker } from 'node:worker_threads';

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const streams = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'begin') return void streams.set(m.id, { hash: createHash('sha256'), buffer: m.buffer });
  if (m.op === 'update') {
    const s = streams.get(m.id);
    return void s?.hash.update(new Uint8Array(s.buffer, m.offset, m.length));
  }
  if (m.op === 'abort') return void streams.delete(m.id);
  if (m.op === 'end') {
    const s = streams.get(m.id);
    streams.delete(m.id);
    const digest = s.hash.digest();
    return void parentPort.postMessage({ id: m.id, digests: digest.buffer.slice(digest.byteOffset, digest.byteOffset + 32) });
  }
  const { id, buffer, offset, length, chunkBytes } = m;
  const view = new Uint8Array(buffer, offset, length);
  const n = Math.ceil(length / chunkBytes);
  const digests = new Uint8Array(n * 32);
  for (let i = 0; i < n; i++) digests.set(createHash('sha256').update(view.subarray(i * chunkBytes, Math.min(length, (i + 1) * chunkBytes))).digest(), i * 32);
  parentPort.postMessage({ id, digests: digests.buffer }, [digests.buffer]);
});`;

interface Call {
  resolve: (digests: Buffer[]) => void;
  reject: (e: Error) => void;
}

/** the sha256 of a buffer's pieces, taken on the hasher's thread in the order they are named */
export interface StreamedHash {
  /** `piece`: a view into the buffer given to stream(), filled (it must not change until digest() settled) */
  update(piece: Uint8Array): void;
  /** the sha256 of the pieces named so far */
  digest(): Promise<Buffer>;
  /** given up: the thread forgets it (digest() is refused) */
  abort(): void;
}

export class ChunkHasher {
  private worker: Worker | null = null;
  private seq = 0;
  private readonly calls = new Map<number, Call>();

  /**
   * The sha256 of each `chunkBytes` of `data` (the last one shorter), or null when `data` is not in
   * shared memory (the caller hashes it itself).
   */
  hash(data: Uint8Array, chunkBytes: number): Promise<Buffer[]> | null {
    if (!(data.buffer instanceof SharedArrayBuffer)) return null;
    const worker = this.thread();
    const id = ++this.seq;
    return new Promise<Buffer[]>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      if (this.calls.size === 1) worker.ref(); // an answer owed keeps the process up
      worker.postMessage({ id, buffer: data.buffer, offset: data.byteOffset, length: data.byteLength, chunkBytes });
    });
  }

  /**
   * A sha256 of pieces of `data`'s shared memory, taken on the thread as they are named; null when
   * `data` is not in shared memory (the caller hashes it itself).
   */
  stream(data: Uint8Array): StreamedHash | null {
    if (!(data.buffer instanceof SharedArrayBuffer)) return null;
    const worker = this.thread();
    const buffer = data.buffer;
    const id = ++this.seq;
    let settled = false;
    const digest = new Promise<Buffer[]>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      if (this.calls.size === 1) worker.ref();
    });
    digest.catch(() => undefined); // seen by digest(), or moot after abort()
    worker.postMessage({ op: 'begin', id, buffer });
    return {
      update: (piece) => {
        if (piece.buffer !== buffer) throw new Error('a streamed hash takes pieces of its own buffer');
        if (!settled) worker.postMessage({ op: 'update', id, offset: piece.byteOffset, length: piece.byteLength });
      },
      digest: () => {
        if (!settled) worker.postMessage({ op: 'end', id });
        settled = true;
        return digest.then(([d]) => d!);
      },
      abort: () => {
        if (settled) return;
        settled = true;
        worker.postMessage({ op: 'abort', id });
        this.settle(id, (c) => c.reject(new Error('the streamed hash was given up')));
      },
    };
  }

  /** the thread ends; hashes still owed are refused */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    this.fail(new Error('the chunk hasher was closed'));
    await w?.terminate();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(SOURCE, { eval: true });
    w.unref();
    w.on('message', ({ id, digests }: { id: number; digests: ArrayBuffer }) => {
      const all = Buffer.from(digests);
      this.settle(id, (call) => call.resolve(Array.from({ length: all.length / 32 }, (_, i) => all.subarray(i * 32, i * 32 + 32))));
    });
    // a thread that failed is replaced by the next call; what it owed is refused
    const gone = (e: Error) => {
      if (this.worker !== w) return; // closed, or replaced already
      this.worker = null;
      this.fail(e);
    };
    w.on('error', gone);
    w.on('exit', (code) => gone(new Error(`the chunk hasher's thread exited (${code})`)));
    this.worker = w;
    return w;
  }

  /** call `id` is answered (or given up): the thread no longer keeps the process up for it */
  private settle(id: number, how: (call: Call) => void): void {
    const call = this.calls.get(id);
    if (!call) return;
    this.calls.delete(id);
    if (this.calls.size === 0) this.worker?.unref();
    how(call);
  }

  private fail(e: Error): void {
    for (const call of this.calls.values()) call.reject(e);
    this.calls.clear();
  }
}
