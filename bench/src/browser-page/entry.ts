// The browser side of bench/stream-browser, bundled with esbuild at run time: a UC page built from
// the SDK's public browser API (StreamClient with the browser's WebSocket and `timings`,
// attachCanvas with WebCodecs), which measures in the page itself, so that the
// DevTools round trip of the driver is not in any figure. Every time is on one clock: the machine's
// (performance.timeOrigin + performance.now(), the VM agent's wallClock on the same host).
import { StreamClient, attachCanvas, prepareCanvas, type CanvasView, type CanvasViewOptions, type DrawTimes } from '@uve/client';
import type { FrameHeader, FrameTiming, InputEvent, SessionStartTiming } from '@uve/protocol';
import { centreOf, nextPaint, now, sleep, waitIn } from './page';
import { playRaw, type RawFirstPicture } from './raw-h264';

/** One input's way to the screen: each stage's time, ms since epoch. */
export interface RoundTrip {
  sentAt: number;
  /** the VM's stages of the frame that showed it (null when its `timing` did not come) */
  vm: FrameTiming | null;
  receivedAt: number;
  decodedAt: number;
  drawnAt: number;
  /** the first animation frame after the draw (the compositor takes the canvas then) */
  paintedAt: number;
}

/** The session's first picture in the page, ms since epoch (bench/session's browser client). */
export interface FirstFrame {
  /** play() entered (after the driver's hop into the page) */
  calledAt: number;
  welcomeAt: number;
  /** the `codec` message handled (the VideoDecoder configured) */
  codecAt: number;
  receivedAt: number;
  decodedAt: number;
  drawnAt: number;
  /** the VMM's and the VM's stages, from the welcome (asked for with `timings`) */
  start?: SessionStartTiming;
}

export interface Motion {
  ms: number;
  /** pictures drawn */
  frames: number;
  /** frames received from the VM (any codec), of them keyframes */
  received: number;
  keyframes: number;
  /** the VM's frame numbers first..last received in the window: how many it sent in all */
  seqSpan: number;
  /** pictures out of the decoder; frames not given to it (waiting for a keyframe) */
  decoded: number;
  skipped: number;
  /** the decoder's queue (H264 frames given and not yet out), largest seen at each frame's arrival */
  maxQueued: number;
  /** requestAnimationFrame callbacks in the window (the page's display rate) */
  animationFrames: number;
  bytes: number;
  /** capture (VM) -> drawn (page) of each drawn frame */
  captureToDraw: number[];
}

export interface BenchPage {
  /** prepareCanvas for a stream of this size, as a player page does before its user presses Start */
  prepare(width: number, height: number): Promise<void>;
  /** `client`: attachCanvas's drawing options (the bench compares the SDK's default with the old path) */
  play(target: { url: string; token: string }, client?: Pick<CanvasViewOptions, 'draw' | 'jpeg' | 'drawEveryFrame'>): Promise<{ codec: string; width: number; height: number; maxFps: number; first: FirstFrame }>;
  /** bench/session's baseline: a bare H264 relay's first picture, decoded and drawn without the SDK (raw-h264.ts) */
  playRaw(url: string, timeoutMs: number): Promise<RawFirstPicture>;
  /** pictures the SDK dropped (overtaken before drawn) and the draw path it uses */
  view(): { dropped: number; drawPath: string };
  /**
   * Sends `events` (after a random wait of `phaseMs`, against any frame clock) and resolves with the
   * stages of the first drawn frame that shows them: for `seq`, the first whose inputSeq covers the
   * input; for `centre`, the first whose centre pixel changed (an X program repaints in its own time).
   */
  roundTrip(events: InputEvent[], until: 'seq' | 'centre', phaseMs: number, timeoutMs: number): Promise<RoundTrip>;
  /** draws and bytes over `ms`, pressing `keys` in turn every `everyMs` (a game keeps moving) */
  motion(ms: number, keys: string[], everyMs: number): Promise<Motion>;
  errors(): string[];
  stop(): Promise<void>;
}

declare global {
  interface Window {
    bench: BenchPage;
  }
}

const canvas = document.getElementById('screen') as HTMLCanvasElement;
const errors: string[] = [];
const timings = new Map<number, FrameTiming>();
let client: StreamClient | null = null;
let ctx: CanvasRenderingContext2D | null = null;
let view: CanvasView | null = null;
let bytes = 0;
/** frames received and their last header (the motion window's counters) */
const received = { frames: 0, keyframes: 0, lastSeq: 0, maxQueued: 0 };
type Draw = { header: FrameHeader; latencyMs: number; times: DrawTimes };
const drawWaiters = new Set<(d: Draw) => void>();

const centre = (): number => centreOf(ctx!);

/** resolves with the first draw `test` accepts, or rejects after `timeoutMs` */
const waitDraw = (test: (d: Draw) => boolean, timeoutMs: number, what: string): Promise<Draw> => waitIn(drawWaiters, test, timeoutMs, `no drawn frame ${what} within ${timeoutMs} ms`);

window.bench = {
  prepare: (width, height) => prepareCanvas(canvas, width, height),

  async play(target, drawing = {}) {
    const calledAt = now();
    const c = new StreamClient({ browserResources: false, timings: true });
    client = c;
    let codecAt = NaN;
    c.on('codec', () => (codecAt = Number.isNaN(codecAt) ? now() : codecAt));
    c.on('error', (e) => errors.push(e.message));
    c.on('frame', (f) => {
      bytes += f.payload.byteLength;
      received.frames++;
      if (f.header.keyframe) received.keyframes++;
      received.lastSeq = f.header.seq;
      received.maxQueued = Math.max(received.maxQueued, view?.queued ?? 0);
    });
    c.on('timing', (t) => {
      timings.set(t.seq, t);
      if (timings.size > 512) timings.delete(timings.keys().next().value!);
    });
    view = attachCanvas(c, canvas, {
      ...drawing,
      onDraw: (header, latencyMs, times) => {
        for (const w of [...drawWaiters]) w({ header, latencyMs, times });
      },
      onError: (e) => errors.push(e.message),
    });
    ctx = canvas.getContext('2d');
    const first = waitDraw(() => true, 30_000, 'at all');
    const welcome = await c.connect(target);
    const welcomeAt = now();
    const { times } = await first;
    return { codec: welcome.codec, width: welcome.width, height: welcome.height, maxFps: welcome.maxFps, first: { calledAt, welcomeAt, codecAt, ...times, start: welcome.start } };
  },

  async roundTrip(events, until, phaseMs, timeoutMs) {
    const c = client!;
    await sleep(Math.random() * phaseMs);
    const before = until === 'centre' ? centre() : 0;
    const sentAt = now();
    const seq = c.sendInput(events[0]!);
    for (const ev of events.slice(1)) c.sendInput(ev);
    const shows = until === 'seq' ? (d: Draw) => d.header.inputSeq >= seq : () => Math.abs(centre() - before) > 60;
    const d = await waitDraw(shows, timeoutMs, `showing input ${seq}`);
    const paintedAt = await nextPaint();
    // the timing message follows its frame's write; give it the same frame's time to arrive
    let vm = timings.get(d.header.seq) ?? null;
    for (let i = 0; !vm && i < 20; i++) {
      await sleep(5);
      vm = timings.get(d.header.seq) ?? null;
    }
    return { sentAt, vm, receivedAt: d.times.receivedAt, decodedAt: d.times.decodedAt, drawnAt: d.times.drawnAt, paintedAt };
  },

  async motion(ms, keys, everyMs) {
    const c = client!;
    const captureToDraw: number[] = [];
    const count = (d: Draw): boolean => {
      captureToDraw.push(d.times.drawnAt - d.header.captureTs);
      return false;
    };
    drawWaiters.add(count);
    let animationFrames = 0;
    let animating = true;
    const onAnimationFrame = (): void => {
      animationFrames++;
      if (animating) requestAnimationFrame(onAnimationFrame);
    };
    requestAnimationFrame(onAnimationFrame);
    const bytes0 = bytes;
    const r0 = { ...received, maxQueued: 0 };
    received.maxQueued = 0;
    const v0 = { decoded: view!.decoded, skipped: view!.skipped };
    const t0 = now();
    for (let i = 0; now() - t0 < ms; i++) {
      const key = keys[i % keys.length]!;
      c.sendInput({ kind: 'key', type: 'down', code: key, key });
      c.sendInput({ kind: 'key', type: 'up', code: key, key });
      await sleep(everyMs);
    }
    drawWaiters.delete(count);
    animating = false;
    return {
      ms: now() - t0,
      frames: captureToDraw.length,
      received: received.frames - r0.frames,
      keyframes: received.keyframes - r0.keyframes,
      seqSpan: received.lastSeq - r0.lastSeq,
      decoded: view!.decoded - v0.decoded,
      skipped: view!.skipped - v0.skipped,
      maxQueued: received.maxQueued,
      animationFrames,
      bytes: bytes - bytes0,
      captureToDraw,
    };
  },

  playRaw: (url, timeoutMs) => playRaw(url, canvas, timeoutMs),

  view: () => ({ dropped: view?.dropped ?? 0, drawPath: view?.drawPath ?? '' }),

  errors: () => [...errors],

  async stop() {
    await client?.bye().catch(() => undefined);
    client?.close();
  },
};
