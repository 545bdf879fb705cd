// The sha256 of each chunk of VM Data in shared memory, on a thread of its own. A delta (a save or a
// staging against what the VMM holds) hashes the state twice: each chunk, for its address, and the
// whole, for the snapshot's checksum. On the agent's main thread, one after the other, that was
// ~180 of a 128 MiB save's ~260 ms (docs/performance.md, reconnect, "thirteenth pass"); here the
// chunks' pass runs while the main thread does the whole's. State in memory of its own (not shared)
// is hashed on the main thread as before: copying it over would cost what it saves.
import { Worker } from 'node:worker_threads';

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, buffer, offset, length, chunkBytes }) => {
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
      const call = this.calls.get(id);
      if (!call) return;
      this.calls.delete(id);
      if (this.calls.size === 0) w.unref();
      const all = Buffer.from(digests);
      call.resolve(Array.from({ length: all.length / 32 }, (_, i) => all.subarray(i * 32, i * 32 + 32)));
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

  private fail(e: Error): void {
    for (const call of this.calls.values()) call.reject(e);
    this.calls.clear();
  }
}
