// The WASM platform: UAs are WebAssembly modules speaking the UVE WASM ABI (docs/wasm-abi.md),
// run on Node's built-in WebAssembly engine, each on its own worker thread with a time budget per call.
// A thread outlives its UA: a UA closed in order leaves it to the next UA (a few are kept idle), so
// that a session does not pay a Node worker's start; each UA still gets a WebAssembly instance and
// memory of its own (wasm-instance.ts, THREAD_SOURCE). A UA that failed takes its thread with it.
import { performance } from 'node:perf_hooks';
import type { LocalResourceKind } from '@uve/protocol';
import type { PixelFormat, UaInstance, UaRuntime, UaStartOptions } from '../runtime';
import { i420Unsupported } from './i420';
import { loadPackage, type CompiledModule } from './package';
import type { Worker } from 'node:worker_threads';
import { startGuestThread, WasmInstance } from './wasm-instance';

export interface WasmRuntimeOptions {
  /** monotonic wall clock in ms that drives the app clocks (default performance.now) */
  clock?: () => number;
  /**
   * delay between the frames of an animating UA (default 16 ms: a little under 1/60 s, so that at
   * 60 fps the frame pump's pacing sets the rate; 17 ms plus the timer's lateness held it at ~55)
   */
  frameIntervalMs?: number;
  /** most linear memory one UA may have, in 64 KiB pages (default 4096 = 256 MiB) */
  maxMemoryPages?: number;
  /** most time one call into a guest may take (input, a frame); over it the UA is given up */
  callBudgetMs?: number;
  /** most time a guest's start and its bulk calls (app data, FULL state) may take */
  startBudgetMs?: number;
  /** keep a guest thread started for the next UA (a warm VM, UVE_WARM_START) */
  warmThread?: boolean;
  /** how long after a UA's start the next thread starts (default 1 s: not beside the session's first picture and input) */
  warmThreadDelayMs?: number;
  /** most guest threads kept idle for the next UAs, those of closed UAs included (default 2; 0: a thread ends with its UA) */
  idleThreads?: number;
  /** an idle thread past the first unused this long ends (default 60 s: a burst's threads and memory are given back) */
  idleThreadTtlMs?: number;
  /** the addon that puts a restored guest memory on huge pages (huge-pages.ts guestHugePages); absent or null: none */
  hugePagesAddon?: string | null;
}

export const DEFAULT_WASM_IDLE_THREADS = 2;
export const DEFAULT_WASM_IDLE_THREAD_TTL_MS = 60_000;

export const DEFAULT_WASM_CALL_BUDGET_MS = 1_000;
export const DEFAULT_WASM_START_BUDGET_MS = 5_000;

export class WasmRuntime implements UaRuntime {
  readonly platform = 'WASM' as const;
  /** i420: converted in the guest's thread (i420.ts), for an encoder that takes it */
  readonly pixelFormats: readonly PixelFormat[] = ['rgba', 'i420'];
  private readonly clock: () => number;
  private readonly frameIntervalMs: number;
  private readonly maxMemoryPages: number;
  private readonly callBudgetMs: number;
  private readonly startBudgetMs: number;
  /** compiled modules by sha256 of the module bytes */
  private readonly modules = new Map<string, Promise<CompiledModule>>();
  private readonly warmThread: boolean;
  private readonly warmThreadDelayMs: number;
  private readonly maxIdle: number;
  private readonly idleTtlMs: number;
  private readonly hugePagesAddon: string | null;
  /** guest threads with no UA, kept for the next UAs; each with its listener that drops it when it dies, and its expiry */
  private readonly idle = new Map<Worker, { drop: () => void; expiry: NodeJS.Timeout }>();
  /** threads released by their UA, not yet confirmed free (`released`) */
  private readonly releasing = new Set<Worker>();
  private releaseSeq = 0;
  /** threads that ran a UA before (for the counts) */
  private readonly served = new WeakSet<Worker>();
  private started = 0;
  private reused = 0;
  private closed = false;

  constructor(options: WasmRuntimeOptions = {}) {
    this.clock = options.clock ?? (() => performance.now());
    this.frameIntervalMs = options.frameIntervalMs ?? Math.floor(1000 / 60);
    this.maxMemoryPages = options.maxMemoryPages ?? 4096;
    this.callBudgetMs = options.callBudgetMs ?? DEFAULT_WASM_CALL_BUDGET_MS;
    this.startBudgetMs = options.startBudgetMs ?? DEFAULT_WASM_START_BUDGET_MS;
    this.warmThread = options.warmThread ?? false;
    this.warmThreadDelayMs = options.warmThreadDelayMs ?? 1_000;
    this.maxIdle = options.idleThreads ?? DEFAULT_WASM_IDLE_THREADS;
    this.idleTtlMs = options.idleThreadTtlMs ?? DEFAULT_WASM_IDLE_THREAD_TTL_MS;
    this.hugePagesAddon = options.hugePagesAddon ?? null;
    if (this.warmThread) this.keepThread();
  }

  /** whether a guest thread is kept started (tests, diagnostics) */
  get hasSpareThread(): boolean {
    return this.idle.size > 0;
  }

  /** guest threads kept with no UA (tests, diagnostics) */
  get idleThreads(): number {
    return this.idle.size;
  }

  guestThreads(): { started: number; reused: number; idle: number } {
    return { started: this.started, reused: this.reused, idle: this.idle.size };
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = [...this.idle.keys(), ...this.releasing];
    for (const { expiry } of this.idle.values()) clearTimeout(expiry);
    this.idle.clear();
    this.releasing.clear();
    await Promise.all(threads.map((w) => w.terminate()));
  }

  /**
   * A warm VM keeps one thread started for its next UA (at least one: the max applies to released
   * ones); not while a closed UA's thread is on its way back (under churn that started a thread for
   * nearly every session, and the released ones past the max were ended).
   */
  private keepThread(): void {
    if (this.idle.size > 0 || this.releasing.size > 0 || this.closed) return;
    this.started++;
    this.addIdle(startGuestThread(), true);
  }

  private addIdle(w: Worker, started = false): void {
    if (this.closed || (!started && this.idle.size >= this.maxIdle)) {
      void w.terminate().catch(() => undefined);
      return;
    }
    w.unref();
    const drop = (): void => {
      clearTimeout(this.idle.get(w)?.expiry);
      this.idle.delete(w);
    };
    // one idle thread stays for the next UA; the others end when no UA came for them a while
    const expiry = setTimeout(() => {
      if (this.idle.size <= 1 || !this.takeIdle(w)) return;
      void w.terminate().catch(() => undefined);
    }, this.idleTtlMs);
    expiry.unref();
    w.on('error', drop);
    w.on('exit', drop);
    this.idle.set(w, { drop, expiry });
  }

  private takeThread(): Worker | null {
    const w = this.idle.keys().next().value;
    return w && this.takeIdle(w) ? w : null;
  }

  /** takes `w` out of the idle threads (false: it is not one) */
  private takeIdle(w: Worker): boolean {
    const kept = this.idle.get(w);
    if (!kept) return false;
    this.idle.delete(w);
    clearTimeout(kept.expiry);
    w.off('error', kept.drop);
    w.off('exit', kept.drop);
    return true;
  }

  /**
   * A closed UA's thread: it cuts the UA off (`release`) and answers once every reply of that UA
   * was sent; then it waits for the next UA. One that does not answer within the start budget (a
   * guest still running a long call) is terminated.
   */
  private releaseThread(w: Worker): void {
    if (this.closed || this.idle.size >= this.maxIdle) {
      void w.terminate().catch(() => undefined);
      return;
    }
    w.unref();
    const token = ++this.releaseSeq;
    this.releasing.add(w);
    const done = (keep: boolean): void => {
      clearTimeout(timer);
      w.off('message', onMessage);
      w.off('error', onGone);
      w.off('exit', onGone);
      if (!this.releasing.delete(w)) return; // the runtime closed meanwhile
      if (keep) {
        this.served.add(w);
        this.addIdle(w);
      } else void w.terminate().catch(() => undefined);
    };
    const onMessage = (m: { released?: number }): void => {
      if (m?.released === token) done(true);
    };
    const onGone = (): void => done(false);
    const timer = setTimeout(() => done(false), this.startBudgetMs);
    timer.unref();
    w.on('message', onMessage);
    w.on('error', onGone);
    w.on('exit', onGone);
    w.postMessage({ release: token });
  }

  async validatePackage(dir: string): Promise<{ requiredResources: LocalResourceKind[]; minWidth?: number; minHeight?: number }> {
    const { manifest } = await loadPackage(dir, this.maxMemoryPages, this.modules, this.startBudgetMs);
    return { requiredResources: manifest.requiredResources, minWidth: manifest.minWidth, minHeight: manifest.minHeight };
  }

  async start(opts: UaStartOptions): Promise<UaInstance> {
    const { width, height } = opts;
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new Error(`invalid screen size ${width}x${height}`);
    const unsupported = opts.pixelFormat === 'i420' ? i420Unsupported(width, height) : null;
    if (unsupported) throw new Error(unsupported);
    const pkg = await loadPackage(opts.ua.dir, this.maxMemoryPages, this.modules, this.startBudgetMs);
    const { minWidth = 1, minHeight = 1, name } = pkg.manifest;
    if (width < minWidth || height < minHeight) throw new Error(`${name} needs a screen of at least ${minWidth}x${minHeight}, got ${width}x${height}`);
    try {
      return await WasmInstance.start(pkg, opts, {
        wallClock: this.clock,
        frameIntervalMs: this.frameIntervalMs,
        callBudgetMs: this.callBudgetMs,
        startBudgetMs: this.startBudgetMs,
        hugePagesAddon: this.hugePagesAddon,
        takeThread: () => {
          const kept = this.takeThread();
          if (!kept) this.started++;
          else if (this.served.has(kept)) this.reused++;
          return kept;
        },
        releaseThread: (w) => this.releaseThread(w),
      });
    } finally {
      // the next UA's thread starts once this session has its first picture, not beside it
      if (this.warmThread) setTimeout(() => this.keepThread(), this.warmThreadDelayMs).unref();
    }
  }
}
