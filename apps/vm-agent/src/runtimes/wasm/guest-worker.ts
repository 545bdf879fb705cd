// The thread a WASM guest runs on (one worker per instance): it owns the guest's instance and
// memory and does what the host asks, one request at a time. The host waits for each answer with
// a time budget and terminates this thread when the guest does not come back (an endless loop),
// so a hung guest ends its own session and nothing else.
//
// Two channels: `port` (workerData) for the per-frame calls the host waits on synchronously
// (Atomics.wait on `ctl`, then receiveMessageOnPort: no event-loop turn on either side), and
// parentPort for the bulk, asynchronous ones (start, app data, FULL state).
//
// guestWorkerMain runs in the worker from its source text (Function.prototype.toString), so the
// same code serves the built agent and the TypeScript tests: it must not use anything from
// outside its own body (no imports, no helpers of this module).

import type { FrontLayout } from './snapshot';

/** What the host sends. `id` orders the answers; sync ids and async ids are counted apart. */
export type GuestRequest =
  | { op: 'init'; id: number }
  | { op: 'call'; id: number; fn: string; args: number[] }
  | { op: 'render'; id: number; clock: number; frame: 'changed' | 'always' }
  | { op: 'frame'; id: number }
  | { op: 'answer'; id: number; reqId: number; code: number; ok: boolean; v: number[]; text: number[] | null; refusal: number }
  | { op: 'appDataSave'; id: number }
  | { op: 'appDataLoad'; id: number; data: Uint8Array }
  /**
   * the memory, written after the room its blob's front takes (snapshot.ts FrontLayout): into
   * `into` (the host's shared buffer) when it fits, else into a buffer of its own, moved to the host
   */
  | { op: 'saveFull'; id: number; into: Uint8Array | null; front: FrontLayout }
  /** a restore of `memoryBytes` follows: instantiate, grow and touch its memory now (while the snapshot downloads) */
  | { op: 'prepareRestore'; id: number; memoryBytes: number }
  | { op: 'restoreFull'; id: number; memoryBytes: number; pieces: RestorePiece[]; globals: Array<{ index: number; value: number | bigint }>; framebuffer: number; nextRequestId: number };

/** A FULL snapshot's memory piece (snapshot.ts MemoryPiece): written straight into the guest's memory */
export interface RestorePiece {
  offset: number;
  length: number;
  kind: 'zero' | 'raw' | 'deflate';
  bytes: Uint8Array;
}

export interface GuestReply {
  id: number;
  /** UVE-4 requests the guest made during this request: [requestId, kind code] */
  requests: Array<[number, number]>;
  /** the guest trapped (or aborted: `abort` is then true and `message` says where) */
  trap?: { message: string; abort: boolean };
  /** a host-side problem (not the guest's fault), e.g. a snapshot that does not fit */
  error?: string;
  framebuffer?: number;
  memoryBytes?: number;
  flags?: number;
  frame?: Uint8Array;
  present?: boolean;
  data?: Uint8Array;
  status?: number;
  memory?: Uint8Array;
  globals?: Array<{ index: number; value: number | bigint }>;
  nextRequestId?: number;
}

export interface GuestWorkerData {
  module: unknown;
  /** Int32Array over it: [0] = id of the last sync request answered, [1] = this thread's Linux id (0: unknown) */
  ctl: SharedArrayBuffer;
  port: unknown;
  width: number;
  height: number;
  /** export names of the mutable globals a FULL snapshot carries, by global index */
  globals: Array<{ index: number; name: string }>;
  /** resource kind codes the host knows */
  kindCodes: number[];
  pageBytes: number;
  /** what the pictures are given as (rgba: the guest's framebuffer as it is) */
  pixelFormat: 'rgba' | 'i420';
  /** i420: the converter (i420.ts, a WebAssembly.Module) and how many rows it takes per call */
  i420?: { module: unknown; stageRows: number };
  /** the addon whose adviseHugePages puts a memory a restore writes on huge pages (huge-pages.ts); null: none */
  hugePagesAddon: string | null;
}

export function guestWorkerMain(): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { parentPort, workerData } = require('node:worker_threads');
  const zlib = require('node:zlib');
  const data = workerData as GuestWorkerData;
  const WA = (globalThis as unknown as { WebAssembly: any }).WebAssembly;
  const done = new Int32Array(data.ctl);
  // this thread's Linux id, for the host to see how much CPU it gets when a call overruns
  try {
    done[1] = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()) || 0;
  } catch {
    done[1] = 0; // not Linux: an overrun is judged on the wall clock alone
  }
  const port = data.port as any;
  const frameBytes = data.width * data.height * 4;
  const MAX_REQUEST_ID = 0x7fffffff;

  let instance: any = null;
  let gateOpen = false;
  let framebuffer = 0;
  let nextRequestId = 1;
  let issued: Array<[number, number]> = [];
  /** a fresh instance with its memory grown to `memoryBytes` and touched (prepareRestore), for the restore that follows */
  let prepared: { instance: any; have: number; memoryBytes: number } | null = null;

  const memoryOf = (inst: any): any => inst.exports.memory;

  /** the addon's madvise, when the host gave one (a failure to load or to advise only costs speed) */
  const adviseHugePages = ((): ((b: ArrayBuffer) => void) | null => {
    if (!data.hugePagesAddon) return null;
    try {
      const addon = require(data.hugePagesAddon);
      return (b) => {
        try {
          addon.adviseHugePages(b);
        } catch {
          // e.g. EINVAL from a kernel without transparent huge pages: 4 KiB pages, as without the addon
        }
      };
    } catch {
      return null;
    }
  })();

  /** an AssemblyScript string (UTF-16LE, byte length in the 4 bytes before it), for abort messages */
  const readString = (memory: any, ptr: number): string => {
    if (!memory || ptr < 4) return '?';
    const buf = Buffer.from(memory.buffer);
    if (ptr > buf.length) return '?';
    const len = Math.min(buf.readUInt32LE(ptr - 4), 1024, buf.length - ptr) & ~1;
    return buf.toString('utf16le', ptr, ptr + len);
  };

  const instantiate = (): any => {
    let created: any = null;
    const inst = new WA.Instance(data.module, {
      uve: {
        request_resource: (kind: number): number => {
          if (!gateOpen || !data.kindCodes.includes(kind)) return 0;
          const id = nextRequestId;
          nextRequestId = id >= MAX_REQUEST_ID ? 1 : id + 1;
          issued.push([id, kind]);
          return id;
        },
      },
      env: {
        abort: (msg: number, file: number, line: number, col: number): never => {
          const m = created ? memoryOf(created) : null;
          const e = new Error(`UA aborted: ${readString(m, msg)} at ${readString(m, file)}:${line}:${col}`) as Error & { uveAbort?: boolean };
          e.uveAbort = true;
          throw e;
        },
      },
    });
    created = inst;
    return inst;
  };

  /**
   * A fresh instance (its start function kept from the terminal) with its memory grown to
   * `memoryBytes`; `have`: its memory before growing (what lies past it is zero). An error text
   * when the snapshot's memory does not fit.
   */
  const freshInstance = (memoryBytes: number): { fresh: any; have: number } | string => {
    // a fresh instantiation has the module's initial memory, never more than a snapshot of it
    const wasOpen = gateOpen;
    gateOpen = false; // a restore's start function must not reach the terminal
    let fresh: any;
    try {
      fresh = instantiate();
    } finally {
      gateOpen = wasOpen;
    }
    const memory = memoryOf(fresh);
    const have = memory.buffer.byteLength;
    if (have > memoryBytes) return 'snapshot memory is smaller than the module starts with';
    try {
      if (have < memoryBytes) memory.grow((memoryBytes - have) / data.pageBytes);
    } catch (e) {
      return `snapshot memory does not fit this host's limit: ${(e as Error).message}`;
    }
    // before anything writes it: each 2 MiB is then one page fault instead of 512
    adviseHugePages?.(memory.buffer);
    return { fresh, have };
  };

  // Pictures leave through a ring of shared buffers, written in turn: the host reads them in place
  // (I420 ones converted on the way, i420.ts).
  // A fresh 3.6 MB buffer per 720p picture (slice + transfer) cost ~2.5 ms of page faults and the
  // collection of 100 MB/s of garbage, against ~0.3 ms for a copy into memory touched before.
  // A picture stays as it is until FRAME_SLOTS - 1 more have been taken (RawFrame).
  const FRAME_SLOTS = 3;
  const slots: Uint8Array[] = [];
  let nextSlot = 0;
  /** i420: converts the guest's picture into a slot (the slots are in the converter's shared memory) */
  let toI420: ((slot: Uint8Array) => void) | null = null;
  const makeSlots = (): void => {
    if (!data.i420) {
      for (let i = 0; i < FRAME_SLOTS; i++) slots.push(new Uint8Array(new SharedArrayBuffer(frameBytes)));
      return;
    }
    // [staging rows of RGBA][slot 0][slot 1][slot 2]; the memory never grows, so the views hold
    const { width: w, height: h } = data;
    const { module, stageRows } = data.i420;
    const rowBytes = w * 4;
    const stageBytes = rowBytes * stageRows;
    const lumaBytes = w * h;
    const chromaBytes = (w / 2) * (h / 2);
    const pictureBytes = lumaBytes + 2 * chromaBytes;
    const pages = Math.ceil((stageBytes + FRAME_SLOTS * pictureBytes) / data.pageBytes);
    const memory = new WA.Memory({ initial: pages, maximum: pages, shared: true });
    const convert = new WA.Instance(module, { env: { memory } }).exports.rgba_to_i420;
    const stage = new Uint8Array(memory.buffer, 0, stageBytes);
    for (let i = 0; i < FRAME_SLOTS; i++) slots.push(new Uint8Array(memory.buffer, stageBytes + i * pictureBytes, pictureBytes));
    toI420 = (slot) => {
      const src = new Uint8Array(memoryOf(instance).buffer, framebuffer, frameBytes);
      for (let row = 0; row < h; row += stageRows) {
        const rows = Math.min(stageRows, h - row);
        stage.set(src.subarray(row * rowBytes, (row + rows) * rowBytes));
        const u = slot.byteOffset + lumaBytes + (row / 2) * (w / 2);
        convert(0, slot.byteOffset + row * w, u, u + chromaBytes, w, rows);
      }
    };
  };
  const copyFrame = (): Uint8Array => {
    if (slots.length === 0) makeSlots();
    const slot = slots[nextSlot];
    nextSlot = (nextSlot + 1) % FRAME_SLOTS;
    if (toI420) toI420(slot);
    else slot.set(new Uint8Array(memoryOf(instance).buffer, framebuffer, frameBytes));
    return slot;
  };

  const handle = (m: GuestRequest): { reply: GuestReply; transfer: ArrayBuffer[] } => {
    issued = [];
    const reply: GuestReply = { id: m.id, requests: issued };
    const transfer: ArrayBuffer[] = [];
    try {
      switch (m.op) {
        case 'init': {
          instance = instantiate();
          gateOpen = true;
          framebuffer = instance.exports.uve_init(data.width, data.height) >>> 0;
          reply.framebuffer = framebuffer;
          reply.memoryBytes = memoryOf(instance).buffer.byteLength;
          break;
        }
        case 'call': {
          const fn = instance.exports[m.fn];
          reply.present = typeof fn === 'function';
          if (reply.present) fn(...m.args);
          break;
        }
        case 'render': {
          const flags = instance.exports.uve_render(m.clock);
          reply.flags = flags;
          if (m.frame === 'always' || flags & 1) reply.frame = copyFrame();
          break;
        }
        case 'frame': {
          reply.frame = copyFrame();
          break;
        }
        case 'answer': {
          const ex = instance.exports;
          if (m.ok) {
            if (m.text && ex.uve_resource_text) for (const cp of m.text) ex.uve_resource_text(m.reqId, cp);
            ex.uve_resource_answer?.(m.reqId, m.code, m.v[0], m.v[1], m.v[2]);
          } else {
            ex.uve_resource_refused?.(m.reqId, m.code, m.refusal);
          }
          break;
        }
        case 'appDataSave': {
          const ptr = instance.exports.uve_app_data_save() >>> 0;
          const mem = Buffer.from(memoryOf(instance).buffer);
          const len = ptr + 4 <= mem.length ? mem.readUInt32LE(ptr) : -1;
          if (len < 0 || ptr + 4 + len > mem.length) {
            reply.error = 'uve_app_data_save returned a buffer outside the UA memory';
            break;
          }
          reply.data = Uint8Array.from(mem.subarray(ptr + 4, ptr + 4 + len));
          transfer.push(reply.data.buffer as ArrayBuffer);
          break;
        }
        case 'appDataLoad': {
          const { uve_app_data_alloc: alloc, uve_app_data_load: load } = instance.exports;
          const ptr = alloc(m.data.length) >>> 0;
          if (ptr === 0) {
            reply.error = `the UA refused ${m.data.length} bytes of app data`;
            break;
          }
          if (ptr + m.data.length > memoryOf(instance).buffer.byteLength) {
            reply.error = 'uve_app_data_alloc returned a buffer outside the UA memory';
            break;
          }
          new Uint8Array(memoryOf(instance).buffer, ptr, m.data.length).set(m.data);
          reply.status = load(m.data.length);
          break;
        }
        case 'saveFull': {
          const memory = new Uint8Array(memoryOf(instance).buffer);
          const at = m.front.fixed + m.front.perPiece * Math.ceil(memory.length / m.front.pieceBytes);
          const into = m.into && at + memory.length <= m.into.length ? m.into : null;
          const target = into ?? new Uint8Array(at + memory.length);
          target.set(memory, at);
          if (!into) {
            reply.memory = target;
            transfer.push(target.buffer as ArrayBuffer);
          }
          reply.memoryBytes = memory.length;
          reply.globals = data.globals.map((g) => ({ index: g.index, value: instance.exports[g.name].value }));
          reply.nextRequestId = nextRequestId;
          break;
        }
        case 'prepareRestore': {
          prepared = null;
          const made = freshInstance(m.memoryBytes);
          if (typeof made === 'string') {
            reply.error = made;
            break;
          }
          // one write per 4 KiB page: the page faults of the grown memory are taken now, not in the restore
          const grown = new Uint8Array(memoryOf(made.fresh).buffer);
          for (let at = made.have; at < grown.length; at += 4096) grown[at] = 0;
          prepared = { instance: made.fresh, have: made.have, memoryBytes: m.memoryBytes };
          break;
        }
        case 'restoreFull': {
          const ready = prepared?.memoryBytes === m.memoryBytes ? prepared : null;
          prepared = null;
          const made = ready ? { fresh: ready.instance, have: ready.have } : freshInstance(m.memoryBytes);
          if (typeof made === 'string') {
            reply.error = made;
            break;
          }
          const { fresh, have } = made;
          const memory = memoryOf(fresh);
          // memory grown past the module's initial size is zero already: zero pieces there cost nothing
          const target = new Uint8Array(memory.buffer);
          for (const p of m.pieces) {
            if (p.kind === 'raw') target.set(p.bytes, p.offset);
            else if (p.kind === 'zero') {
              if (p.offset < have) target.fill(0, p.offset, p.offset + p.length);
            } else {
              let out: Uint8Array;
              try {
                out = zlib.inflateSync(p.bytes, { chunkSize: Math.max(64, p.length), maxOutputLength: p.length });
              } catch (e) {
                reply.error = `snapshot memory is corrupt: piece at ${p.offset}: ${(e as Error).message}`;
                break;
              }
              if (out.length !== p.length) {
                reply.error = `snapshot memory is corrupt: piece at ${p.offset} inflates to ${out.length} bytes, not ${p.length}`;
                break;
              }
              target.set(out, p.offset);
            }
          }
          if (reply.error) break;
          for (const g of m.globals) {
            const name = data.globals.find((x) => x.index === g.index)?.name;
            if (name) fresh.exports[name].value = g.value;
          }
          instance = fresh;
          gateOpen = true;
          framebuffer = m.framebuffer;
          nextRequestId = m.nextRequestId;
          break;
        }
      }
    } catch (e) {
      const err = e as Error & { uveAbort?: boolean };
      reply.trap = { message: err?.message ?? String(e), abort: err?.uveAbort === true };
    }
    return { reply, transfer };
  };

  port.on('message', (m: GuestRequest) => {
    const { reply, transfer } = handle(m);
    port.postMessage(reply, transfer);
    // the answer is queued on the host's port before the host is woken up to take it
    Atomics.store(done, 0, m.id);
    Atomics.notify(done, 0);
  });
  parentPort.on('message', (m: GuestRequest) => {
    const { reply, transfer } = handle(m);
    parentPort.postMessage(reply, transfer);
  });
}
