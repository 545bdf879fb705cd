// The WASM platform: UAs are WebAssembly modules speaking the UVE WASM ABI (docs/wasm-abi.md),
// run on Node's built-in WebAssembly engine, each on its own worker thread with a time budget per call.
import { performance } from 'node:perf_hooks';
import type { LocalResourceKind } from '@uve/protocol';
import type { PixelFormat, UaInstance, UaRuntime, UaStartOptions } from '../runtime';
import { i420Unsupported } from './i420';
import { loadPackage, type CompiledModule } from './package';
import type { Worker } from 'node:worker_threads';
import { startSpareThread, WasmInstance } from './wasm-instance';

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
}

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
  /** the guest thread kept started for the next UA */
  private spare: Worker | null = null;
  private closed = false;

  constructor(options: WasmRuntimeOptions = {}) {
    this.clock = options.clock ?? (() => performance.now());
    this.frameIntervalMs = options.frameIntervalMs ?? Math.floor(1000 / 60);
    this.maxMemoryPages = options.maxMemoryPages ?? 4096;
    this.callBudgetMs = options.callBudgetMs ?? DEFAULT_WASM_CALL_BUDGET_MS;
    this.startBudgetMs = options.startBudgetMs ?? DEFAULT_WASM_START_BUDGET_MS;
    this.warmThread = options.warmThread ?? false;
    this.warmThreadDelayMs = options.warmThreadDelayMs ?? 1_000;
    if (this.warmThread) this.keepThread();
  }

  /** whether a guest thread is kept started (tests, diagnostics) */
  get hasSpareThread(): boolean {
    return this.spare !== null;
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.spare;
    this.spare = null;
    await w?.terminate();
  }

  private keepThread(): void {
    if (this.spare || this.closed) return;
    const w = (this.spare = startSpareThread());
    const drop = (): void => {
      if (this.spare === w) this.spare = null;
    };
    w.on('error', drop);
    w.on('exit', drop);
  }

  private takeThread(): Worker | null {
    const w = this.spare;
    this.spare = null;
    return w;
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
        takeThread: () => this.takeThread(),
      });
    } finally {
      // the next UA's thread starts once this session has its first picture, not beside it
      if (this.warmThread) setTimeout(() => this.keepThread(), this.warmThreadDelayMs).unref();
    }
  }
}
