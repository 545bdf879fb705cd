// The browser side of tests/e2e/browser-client.test.ts, bundled with esbuild at test time: a UC page
// built only from the SDK's public browser API (StreamClient with the browser's WebSocket,
// attachCanvas, captureInput, the default UVE-4 providers). It records what the test checks:
// draws, decoder use, errors, and the time from an input event to the pixel change it causes.
import { StreamClient, attachCanvas, captureInput, type CanvasView, type DrawPath } from '@uve/client';
import type { InputEvent } from '@uve/protocol';

export type Rgb = [number, number, number];

/** A condition on the canvas, checked after every draw once its trigger event happened. */
export type WatchSpec =
  | { what: string; trigger: 'pointerdown' | 'keydown'; kind: 'pixel'; x: number; y: number; rgb: Rgb; tol: number }
  /** at least `min` pixels of the rectangle are not white */
  | { what: string; trigger: 'pointerdown' | 'keydown'; kind: 'ink'; x: number; y: number; w: number; h: number; min: number };

export interface WatchResult {
  what: string;
  /** performance.now() of the trigger event, and of the draw that satisfied the condition */
  triggeredAt: number | null;
  matchedAt: number | null;
  latencyMs: number | null;
}

export interface PageReport {
  /** performance.now() when play() was called, when `welcome` came, and of the first draw */
  playAt: number | null;
  welcomeAt: number | null;
  firstDrawAt: number | null;
  codec: { codec: string; mime: string; width: number; height: number } | null;
  draws: number;
  /** capture (VM clock) to draw latency of every drawn frame, ms */
  drawLatencies: number[];
  /** WebCodecs use, recorded by a wrapper around the browser's VideoDecoder */
  videoDecoder: { configs: Array<{ codec: string; codedWidth?: number; codedHeight?: number; optimizeForLatency?: boolean; hardwareAcceleration?: string; description: boolean }>; chunks: number; outputs: number; supported: boolean | null };
  /** createImageBitmap calls */
  bitmaps: number;
  /** ImageDecoder pictures decoded (MJPEG) */
  imageDecodes: number;
  /** the way attachCanvas draws pictures (after them: 'auto' settles on one) */
  drawPath: string | null;
  /** attachCanvas's own counters: pictures decoded, frames skipped waiting for a keyframe, pictures dropped */
  view: { decoded: number; skipped: number; dropped: number } | null;
  errors: string[];
  resourceRequests: string[];
  /** interaction commands captureInput sent, in order */
  sent: Array<{ seq: number; ev: InputEvent }>;
  /** the highest inputSeq of a drawn frame (the VM had applied input up to it) */
  drawnInputSeq: number;
  closes: Array<{ code: number; reason: string }>;
  watches: WatchResult[];
}

export interface UvePage {
  play(target: { url: string; token: string }, draw?: DrawPath): Promise<{ role: string; codec: string; width: number; height: number }>;
  report(): PageReport;
  pixel(x: number, y: number): Rgb;
  /** pixels of the rectangle that are not white (each channel below 255 - tol) */
  ink(x: number, y: number, w: number, h: number, tol?: number): number;
  /** RGBA bytes of a rectangle of the canvas */
  rgba(x: number, y: number, w: number, h: number): number[];
  watch(spec: WatchSpec): number;
  /** mime types VideoDecoder.isConfigSupported accepts */
  supports(codec: string, width: number, height: number): Promise<boolean>;
  stop(): Promise<void>;
}

declare global {
  interface Window {
    uve: UvePage;
  }
}

const canvas = document.getElementById('screen') as HTMLCanvasElement;
const status = document.getElementById('status')!;
const report: PageReport = {
  playAt: null,
  welcomeAt: null,
  firstDrawAt: null,
  codec: null,
  draws: 0,
  drawLatencies: [],
  videoDecoder: { configs: [], chunks: 0, outputs: 0, supported: null },
  bitmaps: 0,
  imageDecodes: 0,
  drawPath: null,
  view: null,
  errors: [],
  resourceRequests: [],
  sent: [],
  drawnInputSeq: 0,
  closes: [],
  watches: [],
};
const watches: Array<{ spec: WatchSpec; result: WatchResult }> = [];

// ---- recording wrappers around the browser APIs the SDK must use --------------------------------

const NativeDecoder = window.VideoDecoder;
if (NativeDecoder) {
  class RecordingVideoDecoder extends NativeDecoder {
    constructor(init: VideoDecoderInit) {
      super({
        output: (frame) => {
          report.videoDecoder.outputs++;
          init.output(frame);
        },
        error: (e) => init.error(e),
      });
    }
    override configure(config: VideoDecoderConfig): void {
      report.videoDecoder.configs.push({
        codec: config.codec,
        codedWidth: config.codedWidth,
        codedHeight: config.codedHeight,
        optimizeForLatency: config.optimizeForLatency,
        hardwareAcceleration: config.hardwareAcceleration,
        description: !!config.description,
      });
      void NativeDecoder.isConfigSupported(config).then(
        (s) => (report.videoDecoder.supported = !!s.supported),
        (e) => report.errors.push(`isConfigSupported: ${String(e)}`),
      );
      super.configure(config);
    }
    override decode(chunk: EncodedVideoChunk): void {
      report.videoDecoder.chunks++;
      super.decode(chunk);
    }
  }
  window.VideoDecoder = RecordingVideoDecoder;
}
const nativeCreateImageBitmap = window.createImageBitmap.bind(window);
window.createImageBitmap = ((...args: Parameters<typeof createImageBitmap>) => {
  report.bitmaps++;
  return nativeCreateImageBitmap(...args);
}) as typeof createImageBitmap;

const NativeImageDecoder = window.ImageDecoder;
if (NativeImageDecoder) {
  class RecordingImageDecoder extends NativeImageDecoder {
    override decode(options?: ImageDecodeOptions): Promise<ImageDecodeResult> {
      report.imageDecodes++;
      return super.decode(options);
    }
  }
  window.ImageDecoder = RecordingImageDecoder;
}

// ---- canvas reading -------------------------------------------------------------------------------

function context(): CanvasRenderingContext2D {
  // the same context attachCanvas made (a canvas has one 2d context)
  return canvas.getContext('2d')!;
}

function pixel(x: number, y: number): Rgb {
  const d = context().getImageData(x, y, 1, 1).data;
  return [d[0]!, d[1]!, d[2]!];
}

function ink(x: number, y: number, w: number, h: number, tol = 40): number {
  const d = context().getImageData(x, y, w, h).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i]! < 255 - tol || d[i + 1]! < 255 - tol || d[i + 2]! < 255 - tol) n++;
  return n;
}

function holds(spec: WatchSpec): boolean {
  if (spec.kind === 'ink') return ink(spec.x, spec.y, spec.w, spec.h) >= spec.min;
  const p = pixel(spec.x, spec.y);
  return p.every((v, i) => Math.abs(v - spec.rgb[i]!) <= spec.tol);
}

for (const type of ['pointerdown', 'keydown'] as const) {
  // capture phase on window: runs before the SDK's listeners on the canvas and its text field
  window.addEventListener(
    type,
    () => {
      const t = performance.now();
      for (const w of watches) if (w.spec.trigger === type && w.result.triggeredAt === null) w.result.triggeredAt = t;
    },
    { capture: true },
  );
}

function checkWatches(now: number): void {
  for (const w of watches) {
    if (w.result.triggeredAt === null || w.result.matchedAt !== null) continue;
    if (holds(w.spec)) {
      w.result.matchedAt = now;
      w.result.latencyMs = now - w.result.triggeredAt;
    }
  }
}

// ---- the UC -------------------------------------------------------------------------------------

let client: StreamClient | null = null;
let view: CanvasView | null = null;
let stopInput: (() => void) | null = null;

window.uve = {
  async play(target, draw) {
    if (client) throw new Error('already playing');
    report.playAt = performance.now();
    status.textContent = 'UVE browser client: connecting';
    const c = new StreamClient({ pingIntervalMs: 1_000 });
    client = c;
    c.on('codec', (cfg) => (report.codec = { codec: cfg.codec, mime: cfg.mime, width: cfg.width, height: cfg.height }));
    c.on('error', (e) => report.errors.push(`client: ${e.message}`));
    c.on('close', (e) => report.closes.push({ code: e.code, reason: e.reason }));
    c.on('resourceRequest', (r) => report.resourceRequests.push(r.kind));
    const sendInput = c.sendInput.bind(c);
    c.sendInput = (ev) => {
      const seq = sendInput(ev);
      report.sent.push({ seq, ev });
      return seq;
    };
    view = attachCanvas(c, canvas, {
      ...(draw ? { draw } : {}),
      onDraw: (header, latencyMs) => {
        const now = performance.now();
        report.draws++;
        report.drawnInputSeq = Math.max(report.drawnInputSeq, header.inputSeq);
        if (report.firstDrawAt === null) report.firstDrawAt = now;
        report.drawLatencies.push(latencyMs);
        checkWatches(now);
      },
      onError: (e) => report.errors.push(`canvas: ${e.message}`),
    });
    stopInput = captureInput(c, canvas);
    const welcome = await c.connect(target);
    report.welcomeAt = performance.now();
    status.textContent = `UVE browser client: ${welcome.role} ${welcome.codec} ${welcome.width}x${welcome.height}`;
    return { role: welcome.role, codec: welcome.codec, width: welcome.width, height: welcome.height };
  },
  report: () => ({
    ...report,
    drawPath: view?.drawPath ?? null,
    view: view && { decoded: view.decoded, skipped: view.skipped, dropped: view.dropped },
    watches: watches.map((w) => ({ ...w.result })),
  }),
  pixel,
  ink,
  rgba: (x, y, w, h) => Array.from(context().getImageData(x, y, w, h).data),
  watch(spec) {
    watches.push({ spec, result: { what: spec.what, triggeredAt: null, matchedAt: null, latencyMs: null } });
    return watches.length - 1;
  },
  async supports(codec, width, height) {
    if (!NativeDecoder) return false;
    return !!(await NativeDecoder.isConfigSupported({ codec, codedWidth: width, codedHeight: height, optimizeForLatency: true })).supported;
  },
  async stop() {
    stopInput?.();
    view?.detach();
    await client?.bye().catch(() => undefined);
    client?.close();
    status.textContent = 'UVE browser client: stopped';
  },
};
status.textContent = 'UVE browser client: ready';
