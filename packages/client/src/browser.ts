// Browser side of a UC: drawing the Output Stream to a canvas and capturing interaction from it.
// H264 goes through WebCodecs (hardware decoding where there is one, each frame output at once:
// the stream is Constrained Baseline without reordering); MJPEG through WebCodecs' ImageDecoder
// (createImageBitmap where there is none). Only the newest picture is drawn: one that a newer one
// overtook before it reached the canvas is dropped, so a slow page skips pictures instead of
// showing them late (H264 still decodes every frame: each delta needs the one before).
import type { FrameHeader, InputEvent } from '@uve/protocol';
import type { CodecConfig, FrameEvent, StreamClient } from './stream-client';

/** When a drawn frame passed the UC's stages (local clock, ms since epoch). */
export interface DrawTimes {
  receivedAt: number;
  /** the decoder gave the picture (VideoDecoder or ImageDecoder output, or the JPEG's ImageBitmap) */
  decodedAt: number;
  /** the picture is in the canvas (drawImage or putImageData returned) */
  drawnAt: number;
}

/**
 * How a decoded picture reaches the canvas. `drawImage`: the 2D context converts the YUV picture
 * (with a GPU, on it; without, in software: ~20 ms per 720p picture in Chromium). `copyTo`: the
 * VideoFrame converts itself to RGBA (libyuv, ~1 ms at 720p) and putImageData copies it in; slower
 * where the picture lives on a GPU. `auto` (default): both on the first pictures, then the faster.
 */
export type DrawPath = 'auto' | 'drawImage' | 'copyTo';

export interface CanvasViewOptions {
  /** after a picture was drawn: its header, capture-to-draw latency (VM clock, ms) and stage times */
  onDraw?: (header: FrameHeader, latencyMs: number, times: DrawTimes) => void;
  onError?: (error: Error) => void;
  /** how pictures reach the canvas (default 'auto') */
  draw?: DrawPath;
  /** the JPEG decoder of MJPEG (default 'auto': ImageDecoder where the browser has it) */
  jpeg?: 'auto' | 'ImageDecoder' | 'createImageBitmap';
  /** draw every picture in order even when newer ones wait (default false: the newest only) */
  drawEveryFrame?: boolean;
}

export interface CanvasView {
  /** frames waiting in the decoder or for the canvas */
  readonly queued: number;
  /** pictures decoded but overtaken by a newer one before they could be drawn */
  readonly dropped: number;
  /** pictures that came out of the decoder */
  readonly decoded: number;
  /** H264 frames received but not decoded: waiting for a keyframe (start, decoder behind, lost) */
  readonly skipped: number;
  /** the draw path in use ('auto' while it is still measuring) */
  readonly drawPath: DrawPath;
  detach(): void;
}

/** H264 frames allowed to wait in the decoder before deltas are dropped for a fresh keyframe. */
const MAX_DECODE_QUEUE = 4;
/** pictures drawn each way before `auto` picks the faster */
const PROBES = 3;

type Stamp = { header: FrameHeader; receivedAt: number };
/** a decoded picture waiting for the canvas */
interface Picture {
  image: VideoFrame | ImageBitmap;
  stamp: Stamp;
  decodedAt: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? Infinity;

/** A canvas's copy buffer made ready by prepareCanvas, and its warm-up conversion. */
const prepared = new WeakMap<HTMLCanvasElement, { image: ImageData; ready: Promise<void> }>();

/**
 * Makes `canvas` ready to show a `width` x `height` stream, ahead of the session: call it when the
 * page knows the size it will ask for (the player is shown), not on the way to the first picture.
 *
 * The first picture drawn pays, in a software canvas, costs the later ones do not: the canvas's own
 * memory (3.6 MB at 720p, allocated and touched by its first draw: 22–56 ms here), the RGBA buffer
 * the picture is copied into (as much again) and VideoFrame.copyTo's first conversion (~25 ms). This
 * pays them now: the canvas sized and painted opaque black, the buffer filled, one blank frame
 * converted into it. Done on the way to the first picture, the same work delayed the page's hello
 * to the VM by ~75 ms (bench session, Chromium). A stream of another size does without it.
 */
export async function prepareCanvas(canvas: HTMLCanvasElement, width: number, height: number): Promise<void> {
  const ctx = canvas.getContext('2d', { alpha: false, desynchronized: true });
  if (!ctx || typeof ImageData === 'undefined') return;
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const image = new ImageData(width, height);
  new Uint32Array(image.data.buffer).fill(0xff000000);
  ctx.putImageData(image, 0, 0);
  let ready = Promise.resolve();
  if (typeof VideoFrame !== 'undefined' && width % 2 === 0 && height % 2 === 0) {
    const blank = new VideoFrame(new Uint8Array((width * height * 3) / 2), { format: 'I420', codedWidth: width, codedHeight: height, timestamp: 0 });
    ready = blank.copyTo(image.data, { format: 'RGBA', colorSpace: 'srgb' }).then(() => undefined, () => undefined).finally(() => blank.close());
  }
  prepared.set(canvas, { image, ready });
  await ready;
}

/** The buffer prepareCanvas made for this canvas and size, once its warm-up conversion is done (it writes into it). */
async function preparedImage(canvas: HTMLCanvasElement, width: number, height: number): Promise<ImageData | null> {
  const p = prepared.get(canvas);
  if (!p || p.image.width !== width || p.image.height !== height) return null;
  prepared.delete(canvas);
  await p.ready;
  return p.image;
}

/** Draws the frames of `client` into `canvas` (sized to the stream), the newest first. */
export function attachCanvas(client: StreamClient, canvas: HTMLCanvasElement, options: CanvasViewOptions = {}): CanvasView {
  const ctx = canvas.getContext('2d', { alpha: false, desynchronized: true });
  if (!ctx) throw new Error('canvas has no 2d context');
  const useImageDecoder = options.jpeg !== 'createImageBitmap' && typeof ImageDecoder !== 'undefined';
  let decoder: VideoDecoder | null = null;
  let waitingForKey = true;
  let detached = false;
  /** decoders replaced since the last picture came out; a decoder that keeps failing is given up */
  let recoveries = 0;
  const headers = new Map<number, Stamp>();
  const fail = (e: unknown): void => options.onError?.(e instanceof Error ? e : new Error(String(e)));
  const now = (): number => performance.timeOrigin + performance.now();

  // ---- the canvas side: one picture drawn at a time, the newest waiting one next ----
  let path: DrawPath = options.draw ?? 'auto';
  const probes: Record<'drawImage' | 'copyTo', number[]> = { drawImage: [], copyTo: [] };
  let rgba: ImageData | null = null;
  let drawing = false;
  let waiting: Picture[] = [];
  let dropped = 0;
  let decoded = 0;
  let skipped = 0;
  let lastDrawnSeq = -1;

  const release = (p: Picture): void => p.image.close();

  /** copyTo: the frame converts itself to RGBA; false when it cannot (no RGBA support, size) */
  const copyIn = async (frame: VideoFrame): Promise<boolean> => {
    const r = frame.visibleRect;
    if (!r || r.width !== canvas.width || r.height !== canvas.height) return false;
    if (!rgba || rgba.width !== r.width || rgba.height !== r.height) rgba = (await preparedImage(canvas, r.width, r.height)) ?? new ImageData(r.width, r.height);
    const img = rgba;
    try {
      await frame.copyTo(img.data, { format: 'RGBA', colorSpace: 'srgb' });
    } catch {
      return false;
    }
    ctx.putImageData(img, 0, 0);
    return true;
  };

  const paint = async (p: Picture): Promise<void> => {
    const img = p.image;
    if (typeof VideoFrame === 'undefined' || !(img instanceof VideoFrame)) {
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      return;
    }
    // auto: alternate the two ways on the first pictures, then keep the faster
    let way: 'drawImage' | 'copyTo' = path === 'auto' ? (probes.copyTo.length <= probes.drawImage.length ? 'copyTo' : 'drawImage') : path;
    const t0 = performance.now();
    if (way === 'copyTo' && !(await copyIn(img))) {
      path = 'drawImage';
      way = 'drawImage';
      probes.copyTo.length = 0;
    }
    if (way === 'drawImage') ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    if (path === 'auto') {
      probes[way].push(performance.now() - t0);
      if (probes.drawImage.length >= PROBES && probes.copyTo.length >= PROBES) path = median(probes.copyTo) < median(probes.drawImage) ? 'copyTo' : 'drawImage';
    }
  };

  const pump = async (): Promise<void> => {
    if (drawing) return;
    drawing = true;
    try {
      for (let p = waiting.shift(); p; p = waiting.shift()) {
        try {
          // a keyframe after a reconfiguration may carry a lower seq: it is newer all the same
          if (detached || (p.stamp.header.seq <= lastDrawnSeq && !p.stamp.header.keyframe)) {
            dropped++;
            continue;
          }
          await paint(p);
          lastDrawnSeq = p.stamp.header.seq;
          options.onDraw?.(p.stamp.header, client.latencyOf(p.stamp.header), { receivedAt: p.stamp.receivedAt, decodedAt: p.decodedAt, drawnAt: now() });
        } catch (e) {
          fail(e);
        } finally {
          release(p);
        }
      }
    } finally {
      drawing = false;
    }
  };

  const show = (p: Picture): void => {
    if (detached) {
      release(p);
      return;
    }
    if (!options.drawEveryFrame) {
      // the picture being drawn finishes; older waiting ones would only be shown late
      dropped += waiting.length;
      for (const w of waiting) release(w);
      waiting = [];
    }
    waiting.push(p);
    void pump();
  };

  // ---- H264: WebCodecs VideoDecoder ----
  const configure = (cfg: CodecConfig): void => {
    // the same size keeps the canvas: its memory (prepareCanvas), and the last picture until the
    // next one on a reconnection
    if (canvas.width !== cfg.width) canvas.width = cfg.width;
    if (canvas.height !== cfg.height) canvas.height = cfg.height;
    if (decoder && decoder.state !== 'closed') decoder.close();
    decoder = null;
    waitingForKey = true;
    headers.clear();
    lastDrawnSeq = -1;
    if (cfg.codec !== 'H264') return;
    if (typeof VideoDecoder === 'undefined') {
      fail(new Error('this browser has no WebCodecs VideoDecoder (needs a secure context)'));
      return;
    }
    const d = new VideoDecoder({
      output: (frame) => {
        const decodedAt = now();
        decoded++;
        const seq = Math.round(frame.timestamp / 1000);
        recoveries = 0;
        const stamp = headers.get(seq);
        headers.delete(seq);
        if (!stamp || decoder !== d) {
          frame.close();
          return;
        }
        show({ image: frame, stamp, decodedAt });
      },
      error: (e) => {
        fail(e);
        // WebCodecs closes a decoder after an error: a new one resumes at the next keyframe
        if (decoder !== d || recoveries >= 3 || !client.codec) return;
        recoveries++;
        configure(client.codec);
        try {
          client.requestKeyframe();
        } catch {
          /* closed */
        }
      },
    });
    d.configure({
      codec: cfg.mime,
      codedWidth: cfg.width,
      codedHeight: cfg.height,
      ...(cfg.description ? { description: cfg.description } : {}),
      optimizeForLatency: true,
      // no hardwareAcceleration: the default uses a hardware decoder where there is one, while
      // Chromium refuses 'prefer-hardware' outright ("Unsupported configuration") without one
    });
    decoder = d;
  };

  // ---- MJPEG: one JPEG decoding at a time, the newest arrived one next ----
  let jpegBusy = false;
  let jpegNext: FrameEvent | null = null;
  const decodeJpeg = async (f: FrameEvent): Promise<Picture> => {
    const data = f.payload as Uint8Array<ArrayBuffer>;
    const stamp = { header: f.header, receivedAt: f.receivedAt };
    if (useImageDecoder) {
      const dec = new ImageDecoder({ type: 'image/jpeg', data });
      try {
        const { image } = await dec.decode();
        decoded++;
        return { image, stamp, decodedAt: now() };
      } finally {
        dec.close();
      }
    }
    const image = await createImageBitmap(new Blob([data], { type: 'image/jpeg' }));
    decoded++;
    return { image, stamp, decodedAt: now() };
  };
  const jpegLoop = async (): Promise<void> => {
    jpegBusy = true;
    try {
      while (jpegNext && !detached) {
        const f = jpegNext;
        jpegNext = null;
        try {
          show(await decodeJpeg(f));
        } catch (e) {
          fail(e);
        }
      }
    } finally {
      jpegBusy = false;
    }
  };

  let pendingBitmaps = 0;
  const onFrame = (f: FrameEvent): void => {
    const cfg = client.codec;
    if (!cfg) return;
    if (cfg.codec === 'MJPEG') {
      if (options.drawEveryFrame) {
        // every JPEG decoded at once, concurrently; show() keeps them in seq order
        pendingBitmaps++;
        decodeJpeg(f).then(show, fail).finally(() => pendingBitmaps--);
        return;
      }
      // a JPEG that a newer one overtook before its decode began is never decoded
      if (jpegNext) dropped++;
      jpegNext = f;
      if (!jpegBusy) void jpegLoop();
      return;
    }
    const d = decoder;
    if (!d || d.state !== 'configured') return;
    if (waitingForKey && !f.header.keyframe) {
      skipped++;
      return;
    }
    if (!f.header.keyframe && d.decodeQueueSize > MAX_DECODE_QUEUE) {
      // the decoder falls behind: skip to a fresh keyframe instead of showing old pictures late
      skipped++;
      waitingForKey = true;
      client.requestKeyframe();
      return;
    }
    waitingForKey = false;
    headers.set(f.header.seq, { header: f.header, receivedAt: f.receivedAt });
    d.decode(new EncodedVideoChunk({ type: f.header.keyframe ? 'key' : 'delta', timestamp: f.header.seq * 1000, data: f.payload as Uint8Array<ArrayBuffer> }));
  };

  if (client.codec) configure(client.codec);
  const offs = [client.on('codec', configure), client.on('frame', onFrame)];
  return {
    get queued() {
      return (decoder?.decodeQueueSize ?? 0) + pendingBitmaps + (jpegBusy ? 1 : 0) + (jpegNext ? 1 : 0) + waiting.length;
    },
    get dropped() {
      return dropped;
    },
    get decoded() {
      return decoded;
    },
    get skipped() {
      return skipped;
    },
    get drawPath() {
      return path;
    },
    detach() {
      detached = true;
      for (const off of offs) off();
      if (decoder && decoder.state !== 'closed') decoder.close();
      decoder = null;
      for (const w of waiting) release(w);
      waiting = [];
    },
  };
}

export interface InputCaptureOptions {
  /** capture keyboard and text (default true) */
  keyboard?: boolean;
}

/** Maps a point in CSS pixels of the page to stream pixels (handles object-fit: contain letterboxing). */
export function toStreamPoint(canvas: HTMLCanvasElement, clientX: number, clientY: number, streamW: number, streamH: number): { x: number; y: number } {
  const r = canvas.getBoundingClientRect();
  let left = r.left;
  let top = r.top;
  let w = r.width;
  let h = r.height;
  if (getComputedStyle(canvas).objectFit === 'contain' && w > 0 && h > 0) {
    const scale = Math.min(w / streamW, h / streamH);
    left += (w - streamW * scale) / 2;
    top += (h - streamH * scale) / 2;
    w = streamW * scale;
    h = streamH * scale;
  }
  const x = w > 0 ? ((clientX - left) * streamW) / w : 0;
  const y = h > 0 ? ((clientY - top) * streamH) / h : 0;
  return { x: Math.round(Math.min(streamW - 1, Math.max(0, x))), y: Math.round(Math.min(streamH - 1, Math.max(0, y))) };
}

/**
 * Sends pointer, touch, wheel, key and text input from `canvas` to the VM. Keys travel as key
 * events (physical code + key); typed text (including IME composition and other non-ASCII input)
 * travels as text events from a hidden textarea's `beforeinput`/`compositionend`, so a UA can use
 * keys for control and text for typing. Returns a function that stops capturing.
 */
export function captureInput(client: StreamClient, canvas: HTMLCanvasElement, options: InputCaptureOptions = {}): () => void {
  const cleanups: Array<() => void> = [];
  const listen = <K extends keyof HTMLElementEventMap>(el: HTMLElement, type: K, fn: (e: HTMLElementEventMap[K]) => void, opts?: AddEventListenerOptions): void => {
    el.addEventListener(type, fn as EventListener, opts);
    cleanups.push(() => el.removeEventListener(type, fn as EventListener, opts));
  };
  const send = (ev: InputEvent): void => {
    if (!client.connected || client.role !== 'PLAYER' || client.suspended) return;
    try {
      client.sendInput(ev);
    } catch {
      /* disconnected */
    }
  };
  const size = (): { w: number; h: number } => ({ w: client.codec?.width ?? client.welcome?.width ?? canvas.width, h: client.codec?.height ?? client.welcome?.height ?? canvas.height });
  const point = (e: { clientX: number; clientY: number }): { x: number; y: number } => {
    const { w, h } = size();
    return toStreamPoint(canvas, e.clientX, e.clientY, w, h);
  };

  canvas.style.touchAction = 'none'; // the page must not scroll or zoom on touches meant for the UA
  if (canvas.tabIndex < 0) canvas.tabIndex = 0;

  // one hidden, focusable text field receives key and text input (a canvas cannot host an IME)
  let sink: HTMLTextAreaElement | null = null;
  if (options.keyboard !== false && typeof document !== 'undefined') {
    sink = document.createElement('textarea');
    sink.setAttribute('autocapitalize', 'off');
    sink.setAttribute('autocomplete', 'off');
    sink.setAttribute('spellcheck', 'false');
    sink.setAttribute('aria-label', 'application input');
    Object.assign(sink.style, { position: 'fixed', left: '0', top: '0', width: '1px', height: '1px', opacity: '0', pointerEvents: 'none', border: '0', padding: '0' });
    document.body.appendChild(sink);
    const s = sink;
    cleanups.push(() => s.remove());
    const keyEvent = (type: 'down' | 'up') => (e: KeyboardEvent) => {
      if (e.isComposing || e.key === 'Process' || e.key === 'Dead') return;
      send({ kind: 'key', type, code: e.code.slice(0, 32), key: e.key.slice(0, 32) });
      // keys the page would act on (scrolling, focus moves) belong to the UA
      if (e.key.length > 1 && e.key !== 'Unidentified') e.preventDefault();
    };
    listen(s, 'keydown', keyEvent('down'));
    listen(s, 'keyup', keyEvent('up'));
    listen(s, 'beforeinput', (e: InputEvent_) => {
      if (e.inputType === 'insertText' && e.data) send({ kind: 'text', text: e.data.slice(0, 1024) });
      if (e.inputType !== 'insertCompositionText') {
        e.preventDefault();
        s.value = '';
      }
    });
    listen(s, 'compositionend', (e: CompositionEvent) => {
      if (e.data) send({ kind: 'text', text: e.data.slice(0, 1024) });
      s.value = '';
    });
  }

  const focusSink = (): void => (sink ?? canvas).focus({ preventScroll: true });
  listen(canvas, 'pointerdown', (e: PointerEvent) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    focusSink();
    const p = point(e);
    if (e.pointerType === 'touch') send({ kind: 'touch', type: 'start', id: e.pointerId & 0xfffff, ...p });
    else send({ kind: 'pointer', type: 'down', button: Math.min(15, Math.max(0, e.button)), ...p });
  });
  listen(canvas, 'pointermove', (e: PointerEvent) => {
    const p = point(e);
    if (e.pointerType === 'touch') send({ kind: 'touch', type: 'move', id: e.pointerId & 0xfffff, ...p });
    else send({ kind: 'pointer', type: 'move', button: 0, ...p });
  });
  const up = (e: PointerEvent): void => {
    const p = point(e);
    if (e.pointerType === 'touch') send({ kind: 'touch', type: 'end', id: e.pointerId & 0xfffff, ...p });
    else send({ kind: 'pointer', type: 'up', button: Math.min(15, Math.max(0, e.button)), ...p });
  };
  listen(canvas, 'pointerup', up);
  listen(canvas, 'pointercancel', up);
  listen(canvas, 'contextmenu', (e: MouseEvent) => e.preventDefault());
  listen(
    canvas,
    'wheel',
    (e: WheelEvent) => {
      e.preventDefault();
      // lines and pages become pixels so the UA sees one unit
      const k = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? canvas.clientHeight : 1;
      send({ kind: 'wheel', dx: e.deltaX * k, dy: e.deltaY * k, ...point(e) });
    },
    { passive: false },
  );

  return () => {
    for (const c of cleanups.splice(0)) c();
  };
}

// the DOM's InputEvent (the protocol has its own InputEvent type)
type InputEvent_ = globalThis.InputEvent;
