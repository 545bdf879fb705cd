// One running WASM UA. All guest calls go through guestCall(): a trap (or an abort) ends the UA
// and is reported through onExit, never thrown into the session's code paths.
import { TextEchoFilter } from '../text-echo';
import type { InputEvent, LocalResourceKind } from '@uve/protocol';
import type { RawFrame, ResourceAnswer, UaInstance, UaStartOptions } from '../runtime';
import {
  answerValues, encodeInput, GLOBAL_EXPORT_PREFIX, REFUSAL, refusalCode, RENDER_ANIMATING, RENDER_CHANGED,
  RESOURCE_KIND_BY_CODE, RESOURCE_KIND_CODE, type GuestExports,
} from './abi';
import { AppClock } from './clock';
import type { WasmPackage } from './package';
import { decodeFullState, encodeFullState, SnapshotError } from './snapshot';
import { PAGE_BYTES, WA, type WasmGlobal, type WasmMemory } from './webassembly';

export interface InstanceConfig {
  /** monotonic wall clock in ms, drives the app clock */
  wallClock: () => number;
  /** delay between animation frames requested by the guest */
  frameIntervalMs: number;
}

/** The guest trapped or aborted. */
export class UaTrapError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UaTrapError';
  }
}

interface Guest {
  exports: GuestExports;
  memory: WasmMemory;
  globals: Map<number, WasmGlobal>;
  /** request_resource only acts once the guest is live (not during a restore's start function) */
  gate: { open: boolean };
}

interface PendingRequest {
  id: number;
  kind: LocalResourceKind;
  /** set when the answer came while suspended; delivered on resume */
  answer?: ResourceAnswer;
}

const TRAPPED = Symbol('trapped');
const MAX_REQUEST_ID = 0x7fffffff;

/** Reads an AssemblyScript string (UTF-16LE, byte length in the 4 bytes before it) for abort messages. */
function readGuestString(memory: WasmMemory | undefined, ptr: number): string {
  if (!memory || ptr < 4) return '?';
  const buf = Buffer.from(memory.buffer);
  if (ptr > buf.length) return '?';
  const len = Math.min(buf.readUInt32LE(ptr - 4), 1024, buf.length - ptr) & ~1;
  return buf.toString('utf16le', ptr, ptr + len);
}

export class WasmInstance implements UaInstance {
  private readonly echo = new TextEchoFilter();
  readonly width: number;
  readonly height: number;
  private guest!: Guest;
  private framebuffer = 0;
  private suspended = false;
  private ended = false;
  /** the next capture returns a picture even when the guest says nothing changed (start, restore) */
  private forceFrame = true;
  private frameTimer: NodeJS.Timeout | null = null;
  private readonly pending = new Map<number, PendingRequest>();
  private nextRequestId = 1;
  private readonly clock: AppClock;

  private constructor(
    private readonly pkg: WasmPackage,
    private readonly opts: UaStartOptions,
    private readonly config: InstanceConfig,
  ) {
    this.width = opts.width;
    this.height = opts.height;
    this.clock = new AppClock(config.wallClock);
  }

  static async start(pkg: WasmPackage, opts: UaStartOptions, config: InstanceConfig): Promise<WasmInstance> {
    const inst = new WasmInstance(pkg, opts, config);
    try {
      inst.guest = await inst.instantiate();
      inst.guest.gate.open = true;
      inst.framebuffer = inst.guest.exports.uve_init(inst.width, inst.height) >>> 0;
      if (!inst.framebufferFits(inst.framebuffer, inst.guest.memory.buffer.byteLength)) {
        throw new UaTrapError(`uve_init returned a framebuffer (${inst.framebuffer}) that is not inside the UA memory`);
      }
    } catch (e) {
      inst.end();
      throw e instanceof UaTrapError ? e : new UaTrapError(`UA failed to start: ${(e as Error).message}`, { cause: e });
    }
    return inst;
  }

  // ---- UaInstance --------------------------------------------------------------------------------

  input(ev: InputEvent): void {
    if (this.ended || this.suspended || !this.echo.keep(ev)) return;
    let delivered = false;
    for (const call of encodeInput(ev)) {
      const fn = this.guest.exports[call.fn] as ((...args: number[]) => void) | undefined;
      if (!fn) break;
      if (this.guestCall(() => fn(...call.args)) === TRAPPED) return;
      delivered = true;
    }
    if (delivered) this.damage();
  }

  capture(): RawFrame | null {
    if (this.ended || this.suspended) return null;
    const flags = this.render();
    if (flags === TRAPPED || (!(flags & RENDER_CHANGED) && !this.forceFrame)) return null;
    return this.frame();
  }

  captureFull(): RawFrame {
    if (!this.ended && !this.suspended) this.render();
    return this.frame();
  }

  async saveAppData(): Promise<Uint8Array> {
    this.assertLive('saved');
    const save = this.guest.exports.uve_app_data_save;
    if (!save) return new Uint8Array(0);
    const ptr = this.guestCallOrThrow(save) >>> 0;
    const mem = Buffer.from(this.guest.memory.buffer);
    const len = ptr + 4 <= mem.length ? mem.readUInt32LE(ptr) : -1;
    if (len < 0 || ptr + 4 + len > mem.length) throw new Error('uve_app_data_save returned a buffer outside the UA memory');
    return Uint8Array.from(mem.subarray(ptr + 4, ptr + 4 + len));
  }

  async restoreAppData(data: Uint8Array): Promise<void> {
    this.assertLive('restored');
    const { uve_app_data_alloc: alloc, uve_app_data_load: load } = this.guest.exports;
    // a UA without app-data exports has nothing to restore into; empty data means "none saved"
    if (!alloc || !load || data.length === 0) return;
    const ptr = this.guestCallOrThrow(() => alloc(data.length)) >>> 0;
    if (ptr === 0) throw new Error(`the UA refused ${data.length} bytes of app data`);
    if (ptr + data.length > this.guest.memory.buffer.byteLength) throw new Error('uve_app_data_alloc returned a buffer outside the UA memory');
    new Uint8Array(this.guest.memory.buffer, ptr, data.length).set(data);
    const status = this.guestCallOrThrow(() => load(data.length));
    if (status !== 0) throw new Error(`the UA rejected its app data (code ${status})`);
    this.forceFrame = true;
    this.damage();
  }

  async saveFullState(): Promise<Uint8Array> {
    this.assertLive('captured');
    const { guest, pkg } = this;
    return encodeFullState({
      moduleSha256: pkg.compiled.sha256,
      width: this.width,
      height: this.height,
      framebuffer: this.framebuffer,
      nextRequestId: this.nextRequestId,
      appClockMs: this.clock.now(),
      // answers that arrived while suspended were not delivered: the restored UA asks again
      pending: [...this.pending.values()].map((r): [number, number] => [r.id, RESOURCE_KIND_CODE[r.kind]]),
      globals: pkg.compiled.globals.map((g) => ({ index: g.index, type: g.type, value: guest.globals.get(g.index)!.value })),
      memory: new Uint8Array(guest.memory.buffer).slice(),
    });
  }

  async restoreFullState(data: Uint8Array): Promise<void> {
    this.assertLive('restored');
    const s = await decodeFullState(data);
    if (!s.moduleSha256.equals(this.pkg.compiled.sha256)) throw new SnapshotError('snapshot was taken from a different WASM module (sha256 mismatch)');
    if (s.width !== this.width || s.height !== this.height) throw new SnapshotError(`snapshot is for a ${s.width}x${s.height} screen, this UA runs at ${this.width}x${this.height}`);
    if (!this.framebufferFits(s.framebuffer, s.memory.length)) throw new SnapshotError('snapshot framebuffer is not inside its memory');
    // a fresh instantiation has the module's initial memory, never more than a snapshot of it
    const guest = await this.instantiate();
    this.assertLive('restored');
    const have = guest.memory.buffer.byteLength;
    if (have > s.memory.length) throw new SnapshotError('snapshot memory is smaller than the module starts with');
    try {
      if (have < s.memory.length) guest.memory.grow((s.memory.length - have) / PAGE_BYTES);
    } catch (e) {
      throw new SnapshotError(`snapshot memory does not fit this host's limit: ${(e as Error).message}`);
    }
    new Uint8Array(guest.memory.buffer).set(s.memory);
    const saved = new Map(s.globals.map((g) => [g.index, g]));
    if (saved.size !== this.pkg.compiled.globals.length) throw new SnapshotError('snapshot globals do not match the module');
    for (const g of this.pkg.compiled.globals) {
      const v = saved.get(g.index);
      if (!v || v.type !== g.type) throw new SnapshotError(`snapshot has no value of type ${g.type} for global ${g.index}`);
      guest.globals.get(g.index)!.value = v.value;
    }

    this.clearFrameTimer();
    this.guest = guest;
    guest.gate.open = true;
    this.framebuffer = s.framebuffer;
    this.clock.set(s.appClockMs);
    this.nextRequestId = s.nextRequestId;
    // answers to the old requests are dropped (answered() checks identity); the requests the
    // snapshot still waited for go to this session's terminal under their original ids
    this.pending.clear();
    for (const [id, code] of s.pending) {
      const kind = RESOURCE_KIND_BY_CODE[code];
      if (kind) this.issue(id, kind);
    }
    this.forceFrame = true;
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
    this.end();
  }

  /** app clock in ms (diagnostics, tests) */
  get appTimeMs(): number {
    return this.clock.now();
  }

  // ---- guest plumbing ----------------------------------------------------------------------------

  private async instantiate(): Promise<Guest> {
    const gate = { open: false };
    let memory: WasmMemory | undefined;
    const instance = await WA.instantiate(this.pkg.compiled.module, {
      uve: { request_resource: (kind) => (gate.open ? this.requestResource(kind) : 0) },
      env: {
        abort: (msg, file, line, col) => {
          throw new UaTrapError(`UA aborted: ${readGuestString(memory, msg)} at ${readGuestString(memory, file)}:${line}:${col}`);
        },
      },
    });
    memory = instance.exports.memory as WasmMemory;
    const globals = new Map(this.pkg.compiled.globals.map((g) => [g.index, instance.exports[`${GLOBAL_EXPORT_PREFIX}${g.index}`] as WasmGlobal]));
    return { exports: instance.exports as unknown as GuestExports, memory, globals, gate };
  }

  private framebufferFits(ptr: number, memoryBytes: number): boolean {
    return ptr !== 0 && ptr + this.width * this.height * 4 <= memoryBytes;
  }

  private guestCall<T>(f: () => T): T | typeof TRAPPED {
    try {
      return f();
    } catch (e) {
      this.fail(e);
      return TRAPPED;
    }
  }

  /** for the async API: the trap ends the UA (onExit) and also rejects the caller's promise */
  private guestCallOrThrow<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw this.fail(e);
    }
  }

  private fail(e: unknown): Error {
    const error = e instanceof UaTrapError ? e : new UaTrapError(`UA trapped: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    if (!this.ended) {
      this.end();
      // not from inside the session's own call (capture, input) into us
      queueMicrotask(() => this.opts.onExit(error));
    }
    return error;
  }

  private end(): void {
    this.ended = true;
    this.clearFrameTimer();
    this.pending.clear();
  }

  private assertLive(what: string): void {
    if (this.ended) throw new Error(`the UA has ended; its state cannot be ${what}`);
  }

  private render(): number | typeof TRAPPED {
    const flags = this.guestCall(() => this.guest.exports.uve_render(this.clock.now()));
    if (flags === TRAPPED) return TRAPPED;
    if (flags & RENDER_ANIMATING) this.armFrameTimer();
    else this.clearFrameTimer();
    return flags;
  }

  /** a copy, owned by the caller */
  private frame(): RawFrame {
    this.forceFrame = false;
    const len = this.width * this.height * 4;
    return { width: this.width, height: this.height, data: new Uint8Array(this.guest.memory.buffer, this.framebuffer, len).slice() };
  }

  private damage(): void {
    if (!this.ended && !this.suspended) this.opts.onDamage();
  }

  /** one frame later the session is told to capture again; armed by each animating render only */
  private armFrameTimer(): void {
    if (this.frameTimer || this.ended || this.suspended) return;
    this.frameTimer = setTimeout(() => {
      this.frameTimer = null;
      this.damage();
    }, this.config.frameIntervalMs);
    this.frameTimer.unref?.();
  }

  private clearFrameTimer(): void {
    if (this.frameTimer) clearTimeout(this.frameTimer);
    this.frameTimer = null;
  }

  // ---- UVE-4 -------------------------------------------------------------------------------------

  private requestResource(code: number): number {
    const kind = RESOURCE_KIND_BY_CODE[code];
    if (this.ended || kind === undefined) return 0;
    const id = this.nextRequestId;
    this.nextRequestId = id >= MAX_REQUEST_ID ? 1 : id + 1;
    this.issue(id, kind);
    return id;
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
    const ex = this.guest.exports;
    const code = RESOURCE_KIND_CODE[req.kind];
    const result = this.guestCall(() => {
      if (a.ok && a.value.kind === req.kind) {
        const { v, text } = answerValues(a.value);
        if (text && ex.uve_resource_text) for (const cp of text) ex.uve_resource_text(req.id, cp);
        ex.uve_resource_answer?.(req.id, code, v[0], v[1], v[2]);
      } else {
        ex.uve_resource_refused?.(req.id, code, a.ok ? REFUSAL.BAD_ANSWER : refusalCode(a.reason));
      }
    });
    return result !== TRAPPED;
  }
}
