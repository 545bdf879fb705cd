// One running WASM UA. The guest runs on its own worker thread (guest-worker.ts); every call into
// it has a time budget. A trap (or an abort) ends the UA; a guest that does not answer within its
// budget (an endless loop) has its thread terminated. Either way onExit reports it, nothing is
// thrown into the session's code paths, and the other sessions of the VM never wait on it for
// longer than that budget.
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { TextEchoFilter } from '../text-echo';
import type { InputEvent, LocalResourceKind, VmDataSaveTiming } from '@uve/protocol';
import { blackPicture, UaUnresponsiveError, type RawFrame, type ResourceAnswer, type UaInstance, type UaStartOptions } from '../runtime';
import {
  answerValues, encodeInput, GLOBAL_EXPORT_PREFIX, REFUSAL, refusalCode, RENDER_ANIMATING,
  RESOURCE_KIND_BY_CODE, RESOURCE_KIND_CODE,
} from './abi';
import { AppClock } from './clock';
import { wallClock } from '../../common/clock';
import { guestWorkerMain, type GuestReply, type GuestRequest, type GuestWorkerData } from './guest-worker';
import { I420_STAGE_ROWS, i420Module } from './i420';
import type { WasmPackage } from './package';
import { announcedMemoryBytes, decodeFullState, encodeFullStateInPlace, frontBytes, frontLayout, SnapshotError } from './snapshot';
import { PAGE_BYTES } from './webassembly';
import { STARVED_MAX_BUDGETS, starvedOver, threadCpuMs } from './thread-cpu';

export interface InstanceConfig {
  /** monotonic wall clock in ms, drives the app clock */
  wallClock: () => number;
  /** delay between animation frames requested by the guest */
  frameIntervalMs: number;
  /** most time one call into the guest may take (input, a frame, a resource answer) */
  callBudgetMs: number;
  /** most time the start (instantiation + uve_init) and bulk calls (app data, FULL state) may take */
  startBudgetMs: number;
  /** the addon the guest's thread advises a restored memory onto huge pages with (huge-pages.ts); null: none */
  hugePagesAddon?: string | null;
  /** a guest thread kept by the runtime (startGuestThread) to run the guest on; null: start one */
  takeThread?: () => Worker | null;
  /** takes back the thread of a UA that was closed (not failed): its UA is cut off, the thread kept for the next */
  releaseThread?: (thread: Worker) => void;
}

/** The guest trapped or aborted. */
export class UaTrapError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UaTrapError';
  }
}

interface PendingRequest {
  id: number;
  kind: LocalResourceKind;
  /** set when the answer came while suspended; delivered on resume */
  answer?: ResourceAnswer;
}

interface AsyncCall {
  resolve: (r: GuestReply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const TRAPPED = Symbol('trapped');
/**
 * The source every guest thread runs (the same guestWorkerMain in the built agent and under the
 * TypeScript tests). A thread serves one UA at a time and may serve several in turn (WasmRuntime
 * keeps released threads for the next UAs: a Node worker's start is the largest part of a WASM
 * UA's start). `attach` carries a UA's workerData and runs guestWorkerMain for it anew: its own
 * WebAssembly instance, memory, frame buffers and state, nothing kept from an earlier UA.
 * guestWorkerMain gets a parentPort of its own (on, postMessage) that this loop forwards to, so
 * that `release` can cut that UA off: its port is closed, its closure dropped, unreachable (its
 * memory is collected with it), and `released` answers after every reply of that UA.
 */
const THREAD_SOURCE = `
const wt = require('node:worker_threads');
const real = wt.parentPort;
let current = null;
real.on('message', (m) => {
  if (m && m.attach) {
    const ua = (current = { handlers: [], port: m.attach.port });
    wt.workerData = m.attach;
    wt.parentPort = {
      on(ev, fn) { if (ev === 'message') ua.handlers.push(fn); return this; },
      postMessage(msg, transfer) { if (current === ua) real.postMessage(msg, transfer); },
    };
    try {
      (${guestWorkerMain.toString()})();
    } finally {
      wt.parentPort = real;
      wt.workerData = null;
    }
  } else if (m && m.release) {
    if (current) current.port.close();
    current = null;
    real.postMessage({ released: m.release });
  } else if (current) {
    for (const fn of current.handlers) fn(m);
  }
});`;

/** A guest thread with no UA yet (unref'd until an instance attaches one). */
export function startGuestThread(): Worker {
  const w = new Worker(THREAD_SOURCE, { eval: true });
  w.unref();
  return w;
}

/** a request as composed here; the id is added when it is sent */
type Op = GuestRequest extends infer R ? (R extends GuestRequest ? Omit<R, 'id'> : never) : never;

export class WasmInstance implements UaInstance {
  private readonly echo = new TextEchoFilter();
  readonly width: number;
  readonly height: number;
  private readonly pixelFormat: 'rgba' | 'i420';
  /** the guest's thread; null once it was released or terminated */
  private worker: Worker | null = null;
  /** the guest thread's id (tests, diagnostics: a thread serves several UAs in turn) */
  threadId = -1;
  private port!: MessagePort;
  /** [0]: id of the last synchronous request the worker answered; [1]: its thread's Linux id */
  private ctl!: Int32Array;
  private syncSeq = 0;
  private asyncSeq = 0;
  private readonly asyncCalls = new Map<number, AsyncCall>();
  private framebuffer = 0;
  private suspended = false;
  private ended = false;
  /** the last picture, for captureFull() once the guest is gone */
  private lastFrame: RawFrame | null = null;
  /** the next capture returns a picture even when the guest says nothing changed (start, restore) */
  private forceFrame = true;
  private frameTimer: NodeJS.Timeout | null = null;
  /**
   * The picture of the start's render, while nothing has been asked of the guest since: the
   * session's first capture takes it instead of rendering and copying the 720p picture again.
   */
  private startFrame: { data: Uint8Array; flags: number } | null = null;
  private readonly pending = new Map<number, PendingRequest>();
  private readonly clock: AppClock;
  /** a FULL restore was asked of the guest's thread: a later prepareRestore would only hold memory */
  private restoreSent = false;
  /** the guest runs the UA (its own start or a FULL restore done); not yet when started for a restore */
  private begun = false;

  private constructor(
    private readonly pkg: WasmPackage,
    private readonly opts: UaStartOptions,
    private readonly config: InstanceConfig,
  ) {
    this.width = opts.width;
    this.height = opts.height;
    this.pixelFormat = opts.pixelFormat ?? 'rgba';
    this.clock = new AppClock(config.wallClock);
  }

  static async start(pkg: WasmPackage, opts: UaStartOptions, config: InstanceConfig): Promise<WasmInstance> {
    const inst = new WasmInstance(pkg, opts, config);
    try {
      await inst.spawn();
      // a FULL restore makes an instance of its own: the UA's start would be thrown away
      if (!opts.restoreFollows) await inst.begin();
    } catch (e) {
      inst.end();
      throw inst.startError(e);
    }
    return inst;
  }

  /** The UA's own start: instantiation, uve_init and its first picture. */
  private async begin(): Promise<void> {
    const { config } = this;
    const r = await this.callAsync({ op: 'init' }, config.startBudgetMs);
    if (r.trap) throw r.trap.abort ? new UaTrapError(r.trap.message) : new UaTrapError(`UA failed to start: ${r.trap.message}`);
    this.framebuffer = r.framebuffer!;
    if (!this.framebufferFits(this.framebuffer, r.memoryBytes!)) {
      throw new UaTrapError(`uve_init returned a framebuffer (${this.framebuffer}) that is not inside the UA memory`);
    }
    this.issueAll(r.requests);
    this.begun = true;
    await this.firstPicture();
  }

  /**
   * The first picture under the start budget: compiling the render path and first touching the
   * framebuffer are the start's cost, not a frame's (a frame has the 1 s call budget, which a
   * first render on a busy machine overran).
   */
  private async firstPicture(): Promise<void> {
    const first = await this.callAsync({ op: 'render', clock: this.clock.now(), frame: 'always' }, this.config.startBudgetMs);
    if (first.trap) throw new UaTrapError(first.trap.abort ? first.trap.message : `UA trapped: ${first.trap.message}`);
    this.issueAll(first.requests);
    if (first.frame) this.startFrame = { data: first.frame, flags: first.flags ?? 0 };
  }

  private startError(e: unknown): Error {
    return e instanceof UaTrapError || e instanceof UaUnresponsiveError ? e : new UaTrapError(`UA failed to start: ${(e as Error).message}`, { cause: e });
  }

  // ---- UaInstance --------------------------------------------------------------------------------

  input(ev: InputEvent): void {
    if (this.ended || this.suspended || !this.echo.keep(ev)) return;
    let delivered = false;
    for (const call of encodeInput(ev)) {
      if (!this.pkg.compiled.exportNames.has(call.fn)) break;
      if (this.callSync({ op: 'call', fn: call.fn, args: call.args }) === TRAPPED) return;
      delivered = true;
    }
    if (delivered) this.damage();
  }

  capture(): RawFrame | null {
    if (this.ended || this.suspended) return null;
    const start = this.takeStartFrame();
    if (start) return start;
    const r = this.render(this.forceFrame ? 'always' : 'changed');
    if (r === TRAPPED || !r.frame) return null;
    return this.frame(r.frame);
  }

  captureFull(): RawFrame {
    if (!this.ended && !this.suspended) {
      const start = this.takeStartFrame();
      if (start) return start;
      const r = this.render('always');
      if (r !== TRAPPED && r.frame) return this.frame(r.frame);
    } else if (!this.ended) {
      const r = this.callSync({ op: 'frame' });
      if (r !== TRAPPED && r.frame) return this.frame(r.frame);
    }
    // the guest is gone: its last picture (or black) stands for it
    return this.lastFrame ?? this.blackFrame();
  }

  async saveAppData(): Promise<Uint8Array> {
    this.assertLive('saved');
    if (!this.pkg.compiled.hasAppData) return new Uint8Array(0);
    const r = await this.guestAsync({ op: 'appDataSave' });
    if (r.error) throw new Error(r.error);
    return r.data!;
  }

  async restoreAppData(data: Uint8Array): Promise<void> {
    this.assertLive('restored');
    // a UA without app-data exports has nothing to restore into; empty data means "none saved"
    if (!this.begun) await this.begin().catch((e: unknown) => Promise.reject(this.startError(e)));
    if (!this.pkg.compiled.hasAppData || data.length === 0) return;
    const r = await this.guestAsync({ op: 'appDataLoad', data: Uint8Array.from(data) });
    if (r.error) throw new Error(r.error);
    if (r.status !== 0) throw new Error(`the UA rejected its app data (code ${r.status})`);
    this.forceFrame = true;
    this.damage();
  }

  async saveFullState(timing?: Pick<VmDataSaveTiming, 'capturedAt'>, into?: Uint8Array): Promise<Uint8Array> {
    this.assertLive('captured');
    const { pkg } = this;
    const appClockMs = this.clock.now();
    // answers that arrived while suspended were not delivered: the restored UA asks again
    const pending = [...this.pending.values()].map((r): [number, number] => [r.id, RESOURCE_KIND_CODE[r.kind]]);
    // a shared buffer only: the guest's thread writes the memory into it (an unshared one would be copied)
    const shared = into?.buffer instanceof SharedArrayBuffer ? into : null;
    const front = frontLayout(pending.length, pkg.compiled.globals.length);
    const r = await this.guestAsync({ op: 'saveFull', into: shared, front });
    if (timing) timing.capturedAt = wallClock(); // epoch ms, as the other stamps (config.wallClock is monotonic)
    this.fullStateBytes = frontBytes(front, r.memoryBytes!) + r.memoryBytes!; // the front, then the memory
    const byIndex = new Map(r.globals!.map((g) => [g.index, g.value]));
    return encodeFullStateInPlace({
      moduleSha256: pkg.compiled.sha256,
      width: this.width,
      height: this.height,
      framebuffer: this.framebuffer,
      nextRequestId: r.nextRequestId!,
      appClockMs,
      pending,
      globals: pkg.compiled.globals.map((g) => ({ index: g.index, type: g.type, value: byIndex.get(g.index)! })),
    }, r.memory ?? shared!, r.memoryBytes!);
  }

  /** what the last FULL save needed in `into` (saveFullState) */
  fullStateBytes: number | undefined;

  prepareRestore(head: Uint8Array): void {
    const bytes = announcedMemoryBytes(head, this.pkg.compiled.maxMemoryPages);
    if (this.ended || this.restoreSent || bytes === null) return;
    // the answer does not matter: restoreFull instantiates by itself when nothing was prepared
    this.callAsync({ op: 'prepareRestore', memoryBytes: bytes }, this.config.startBudgetMs).catch(() => undefined);
  }

  async restoreFullState(data: Uint8Array): Promise<void> {
    this.assertLive('restored');
    const s = await decodeFullState(data, this.pkg.compiled.maxMemoryPages);
    if (!s.moduleSha256.equals(this.pkg.compiled.sha256)) throw new SnapshotError('snapshot was taken from a different WASM module (sha256 mismatch)');
    if (s.width !== this.width || s.height !== this.height) throw new SnapshotError(`snapshot is for a ${s.width}x${s.height} screen, this UA runs at ${this.width}x${this.height}`);
    if (!this.framebufferFits(s.framebuffer, s.memoryBytes)) throw new SnapshotError('snapshot framebuffer is not inside its memory');
    const saved = new Map(s.globals.map((g) => [g.index, g]));
    if (saved.size !== this.pkg.compiled.globals.length) throw new SnapshotError('snapshot globals do not match the module');
    for (const g of this.pkg.compiled.globals) {
      const v = saved.get(g.index);
      if (!v || v.type !== g.type) throw new SnapshotError(`snapshot has no value of type ${g.type} for global ${g.index}`);
    }
    this.assertLive('restored');
    // the pieces are views into the downloaded blob (format 1: into its inflated memory): their
    // buffer moves to the guest's thread rather than being copied, when it is theirs alone
    // (the blob is spent then: a Buffer of Node's shared pool never is)
    const own = (u: Uint8Array): boolean => u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && u.buffer instanceof ArrayBuffer;
    const transfer = new Set([data, ...s.pieces.map((p) => p.bytes)].filter(own).map((u) => u.buffer as ArrayBuffer));
    this.restoreSent = true;
    const r = await this.guestAsync(
      { op: 'restoreFull', memoryBytes: s.memoryBytes, pieces: s.pieces, globals: s.globals.map((g) => ({ index: g.index, value: g.value })), framebuffer: s.framebuffer, nextRequestId: s.nextRequestId },
      [...transfer],
    );
    if (r.error) throw new SnapshotError(r.error);

    this.clearFrameTimer();
    this.framebuffer = s.framebuffer;
    this.clock.set(s.appClockMs);
    // answers to the old requests are dropped (answered() checks identity); the requests the
    // snapshot still waited for go to this session's terminal under their original ids
    this.pending.clear();
    for (const [id, code] of s.pending) {
      const kind = RESOURCE_KIND_BY_CODE[code];
      if (kind) this.issue(id, kind);
    }
    this.forceFrame = true;
    // started for this restore: the render path is compiled by its first picture, under the start's budget
    if (!this.begun) {
      this.begun = true;
      await this.firstPicture();
    }
    this.damage();
  }

  suspend(): void {
    if (this.ended || this.suspended) return;
    this.suspended = true;
    this.clock.stop();
    this.clearFrameTimer();
  }

  resume(): void {
    if (this.ended || !this.suspended) return;
    this.suspended = false;
    this.clock.start();
    for (const req of [...this.pending.values()]) {
      if (req.answer && !this.ended) this.deliver(req);
    }
    this.damage(); // one for the resume and the answers delivered with it
  }

  async close(): Promise<void> {
    // a UA closed in order leaves its thread to the next UA; a failed one's thread is terminated
    this.end(true);
  }

  /** app clock in ms (diagnostics, tests) */
  get appTimeMs(): number {
    return this.clock.now();
  }

  // ---- the guest's thread ------------------------------------------------------------------------

  private async spawn(): Promise<void> {
    // [0]: id of the last synchronous request answered; [1]: the guest thread's Linux id (0: unknown)
    const ctl = new SharedArrayBuffer(8);
    this.ctl = new Int32Array(ctl);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const workerData: GuestWorkerData = {
      module: this.pkg.compiled.module,
      ctl,
      port: port2,
      width: this.width,
      height: this.height,
      globals: this.pkg.compiled.globals.map((g) => ({ index: g.index, name: `${GLOBAL_EXPORT_PREFIX}${g.index}` })),
      kindCodes: Object.values(RESOURCE_KIND_CODE),
      pageBytes: PAGE_BYTES,
      pixelFormat: this.pixelFormat,
      i420: this.pixelFormat === 'i420' ? { module: i420Module(), stageRows: I420_STAGE_ROWS } : undefined,
      hugePagesAddon: this.config.hugePagesAddon ?? null,
    };
    const kept = this.config.takeThread?.() ?? null;
    const worker = (this.worker = kept ?? startGuestThread());
    this.threadId = worker.threadId;
    worker.ref();
    worker.postMessage({ attach: workerData }, [port2]);
    worker.on('message', this.onReply);
    worker.on('error', this.onThreadError);
    worker.on('exit', this.onThreadExit);
    if (kept) return; // started already (or its failure comes as 'error'/'exit' above)
    await new Promise<void>((resolve, reject) => {
      worker.once('online', resolve);
      worker.once('error', reject);
    });
  }

  private readonly onReply = (r: GuestReply): void => {
    const call = this.asyncCalls.get(r.id);
    if (!call) return;
    this.asyncCalls.delete(r.id);
    clearTimeout(call.timer);
    call.resolve(r);
  };

  private readonly onThreadError = (e: Error): void => {
    this.fail(new UaTrapError(`the UA's thread failed: ${e.message}`, { cause: e }));
  };

  private readonly onThreadExit = (code: number): void => {
    if (!this.ended) this.fail(new UaTrapError(`the UA's thread exited (code ${code})`));
  };

  /**
   * One call the caller needs the answer of now (input, a frame): the worker answers through the
   * shared counter, this thread waits at most the call budget, then gives the guest up.
   */
  private callSync(req: Op): GuestReply | typeof TRAPPED {
    if (this.ended) return TRAPPED;
    this.startFrame = null; // the guest may change its picture
    const id = ++this.syncSeq;
    this.port.postMessage({ ...req, id });
    const budget = this.config.callBudgetMs;
    Atomics.wait(this.ctl, 0, id - 1, budget);
    if (Atomics.load(this.ctl, 0) !== id && !this.answeredWhenScheduled(id, budget)) {
      this.fail(new UaUnresponsiveError(`the application did not respond within ${budget} ms`));
      return TRAPPED;
    }
    let got = receiveMessageOnPort(this.port);
    // the answer is posted before the counter moves; this only guards against a late hand-over
    for (let i = 0; !got && i < 100; i++) {
      Atomics.wait(this.ctl, 0, id, 1);
      got = receiveMessageOnPort(this.port);
    }
    if (!got) {
      this.fail(new UaTrapError('the UA thread answered without a message'));
      return TRAPPED;
    }
    const r = got.message as GuestReply;
    if (r.trap) {
      this.fail(r.trap.abort ? new UaTrapError(r.trap.message) : new UaTrapError(`UA trapped: ${r.trap.message}`));
      return TRAPPED;
    }
    this.issueAll(r.requests);
    return r;
  }

  /**
   * A call over its budget on a loaded machine may be one whose guest thread was hardly run. This
   * waits on in slices for as long as the thread gets less than half of each slice's time (starved,
   * not looping), up to STARVED_MAX_BUDGETS budgets in all; true when the answer came meanwhile.
   * A guest that runs flat out is given up after one slice more.
   */
  private answeredWhenScheduled(id: number, budget: number): boolean {
    const tid = Atomics.load(this.ctl, 1);
    if (!tid) return false;
    const slice = Math.max(20, Math.floor(budget / 4));
    const until = performance.now() + budget * (STARVED_MAX_BUDGETS - 1);
    while (performance.now() < until) {
      const cpu0 = threadCpuMs(tid);
      const t0 = performance.now();
      Atomics.wait(this.ctl, 0, id - 1, slice);
      if (Atomics.load(this.ctl, 0) === id) return true;
      const cpu1 = threadCpuMs(tid);
      if (!starvedOver(cpu0 === null || cpu1 === null ? null : cpu1 - cpu0, performance.now() - t0)) return false;
    }
    return false;
  }

  /** A bulk call (start, app data, FULL state) with the start budget; this thread does not wait. */
  private callAsync(req: Op, budget: number, transfer: ArrayBuffer[] = []): Promise<GuestReply> {
    if (this.ended) return Promise.reject(new Error('the UA has ended'));
    this.startFrame = null; // the guest may change its picture
    const id = ++this.asyncSeq;
    return new Promise<GuestReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.asyncCalls.delete(id);
        const e = new UaUnresponsiveError(`the application did not respond within ${budget} ms`);
        this.fail(e);
        reject(e);
      }, budget);
      this.asyncCalls.set(id, { resolve, reject, timer });
      this.worker!.postMessage({ ...req, id }, transfer);
    });
  }

  /** callAsync for a live guest: a trap ends the UA (onExit) and also rejects the caller */
  private async guestAsync(req: Op, transfer: ArrayBuffer[] = []): Promise<GuestReply> {
    const r = await this.callAsync(req, this.config.startBudgetMs, transfer);
    if (r.trap) throw this.fail(r.trap.abort ? new UaTrapError(r.trap.message) : new UaTrapError(`UA trapped: ${r.trap.message}`));
    this.issueAll(r.requests);
    return r;
  }

  private framebufferFits(ptr: number, memoryBytes: number): boolean {
    return ptr !== 0 && ptr + this.width * this.height * 4 <= memoryBytes;
  }

  private fail(error: Error): Error {
    if (!this.ended) {
      this.end();
      // not from inside the session's own call (capture, input) into us
      queueMicrotask(() => this.opts.onExit(error));
    }
    return error;
  }

  private end(release = false): void {
    this.ended = true;
    this.clearFrameTimer();
    this.pending.clear();
    for (const [id, call] of this.asyncCalls) {
      clearTimeout(call.timer);
      call.reject(new Error('the UA has ended'));
      this.asyncCalls.delete(id);
    }
    this.port?.close();
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    worker.off('message', this.onReply);
    worker.off('error', this.onThreadError);
    worker.off('exit', this.onThreadExit);
    if (release && this.config.releaseThread) this.config.releaseThread(worker);
    else void worker.terminate().catch(() => undefined);
  }

  private assertLive(what: string): void {
    if (this.ended) throw new Error(`the UA has ended; its state cannot be ${what}`);
  }

  private render(frame: 'changed' | 'always'): GuestReply | typeof TRAPPED {
    const asked = this.config.wallClock();
    const r = this.callSync({ op: 'render', clock: this.clock.now(), frame });
    if (r === TRAPPED) return TRAPPED;
    if (r.flags! & RENDER_ANIMATING) this.armFrameTimer(asked);
    else this.clearFrameTimer();
    return r;
  }

  private takeStartFrame(): RawFrame | null {
    const f = this.startFrame;
    if (!f) return null;
    this.startFrame = null;
    if (f.flags & RENDER_ANIMATING) this.armFrameTimer();
    return this.frame(f.data);
  }

  /** the picture the worker copied out (owned by the caller) */
  private frame(data: Uint8Array): RawFrame {
    this.forceFrame = false;
    this.lastFrame = { width: this.width, height: this.height, data, format: this.pixelFormat };
    return this.lastFrame;
  }

  /** a black picture, for a keyframe asked before the UA gave one */
  private blackFrame(): RawFrame {
    return blackPicture(this.pixelFormat, this.width, this.height);
  }

  private damage(): void {
    if (!this.ended && !this.suspended) this.opts.onDamage();
  }

  /**
   * one frame after `since` (the render's call) the session is told to capture again; armed by each
   * animating render only. Counted from the call, not its return: the render and the picture's copy
   * (an I420 conversion: ~1 ms at 720p) would otherwise stretch every frame's interval (56 fps at 60)
   */
  private armFrameTimer(since = this.config.wallClock()): void {
    if (this.frameTimer || this.ended || this.suspended) return;
    this.frameTimer = setTimeout(() => {
      this.frameTimer = null;
      this.damage();
    }, Math.max(0, this.config.frameIntervalMs - (this.config.wallClock() - since)));
    this.frameTimer.unref?.();
  }

  private clearFrameTimer(): void {
    if (this.frameTimer) clearTimeout(this.frameTimer);
    this.frameTimer = null;
  }

  // ---- UVE-4 -------------------------------------------------------------------------------------

  /** the requests the guest made during a call (its thread numbered them) */
  private issueAll(requests: Array<[number, number]>): void {
    for (const [id, code] of requests) {
      const kind = RESOURCE_KIND_BY_CODE[code];
      if (kind && !this.ended) this.issue(id, kind);
    }
  }

  private issue(id: number, kind: LocalResourceKind): void {
    const req: PendingRequest = { id, kind };
    this.pending.set(id, req);
    let answer: Promise<ResourceAnswer>;
    try {
      answer = this.opts.resources.request(kind);
    } catch (e) {
      answer = Promise.reject(e);
    }
    answer.then(
      (a) => this.answered(req, a),
      (e: unknown) => this.answered(req, { ok: false, reason: `request failed: ${e instanceof Error ? e.message : String(e)}` }),
    );
  }

  private answered(req: PendingRequest, answer: ResourceAnswer): void {
    // stale: the UA ended, or a restore replaced the requests
    if (this.ended || this.pending.get(req.id) !== req) return;
    req.answer = answer;
    if (!this.suspended && this.deliver(req)) this.damage();
  }

  /** hands one answer to the guest; false when the guest trapped */
  private deliver(req: PendingRequest): boolean {
    this.pending.delete(req.id);
    const a = req.answer!;
    const code = RESOURCE_KIND_CODE[req.kind];
    const ok = a.ok && a.value.kind === req.kind;
    const { v, text } = ok && a.ok ? answerValues(a.value) : { v: [0, 0, 0], text: undefined };
    const refusal = a.ok ? REFUSAL.BAD_ANSWER : refusalCode(a.reason);
    return this.callSync({ op: 'answer', reqId: req.id, code, ok, v, text: text ?? null, refusal }) !== TRAPPED;
  }
}
