// Browser side of a UC: drawing the Output Stream to a canvas and capturing interaction from it.
// H264 goes through WebCodecs (hardware decoding where there is one, each frame output at once:
// the stream is Constrained Baseline without reordering); MJPEG through createImageBitmap.
import type { FrameHeader, InputEvent } from '@uve/protocol';
import type { CodecConfig, FrameEvent, StreamClient } from './stream-client';

/** When a drawn frame passed the UC's stages (local clock, ms since epoch). */
export interface DrawTimes {
  receivedAt: number;
  /** the decoder gave the picture (VideoDecoder output, or the JPEG's ImageBitmap) */
  decodedAt: number;
  /** drawImage into the canvas returned */
  drawnAt: number;
}

export interface CanvasViewOptions {
  /** after a picture was drawn: its header, capture-to-draw latency (VM clock, ms) and stage times */
  onDraw?: (header: FrameHeader, latencyMs: number, times: DrawTimes) => void;
  onError?: (error: Error) => void;
}

export interface CanvasView {
  /** frames waiting in the decoder */
  readonly queued: number;
  detach(): void;
}

/** H264 frames allowed to wait in the decoder before deltas are dropped for a fresh keyframe. */
const MAX_DECODE_QUEUE = 4;

/** Draws every frame of `client` into `canvas` (sized to the stream). */
export function attachCanvas(client: StreamClient, canvas: HTMLCanvasElement, options: CanvasViewOptions = {}): CanvasView {
  const ctx = canvas.getContext('2d', { alpha: false, desynchronized: true });
  if (!ctx) throw new Error('canvas has no 2d context');
  let decoder: VideoDecoder | null = null;
  let waitingForKey = true;
  let lastDrawnSeq = -1;
  let pendingBitmaps = 0;
  /** decoders replaced since the last picture came out; a decoder that keeps failing is given up */
  let recoveries = 0;
  const headers = new Map<number, { header: FrameHeader; receivedAt: number }>();
  const fail = (e: unknown): void => options.onError?.(e instanceof Error ? e : new Error(String(e)));
  const now = (): number => performance.timeOrigin + performance.now();

  const drawn = (f: { header: FrameHeader; receivedAt: number } | undefined, decodedAt: number): void => {
    if (f) options.onDraw?.(f.header, client.latencyOf(f.header), { receivedAt: f.receivedAt, decodedAt, drawnAt: now() });
  };

  const configure = (cfg: CodecConfig): void => {
    canvas.width = cfg.width;
    canvas.height = cfg.height;
    if (decoder && decoder.state !== 'closed') decoder.close();
    decoder = null;
    waitingForKey = true;
    headers.clear();
    if (cfg.codec !== 'H264') return;
    if (typeof VideoDecoder === 'undefined') {
      fail(new Error('this browser has no WebCodecs VideoDecoder (needs a secure context)'));
      return;
    }
    const d = new VideoDecoder({
      output: (frame) => {
        const decodedAt = now();
        const seq = Math.round(frame.timestamp / 1000);
        ctx.drawImage(frame, 0, 0, canvas.width, canvas.height);
        frame.close();
        recoveries = 0;
        const h = headers.get(seq);
        headers.delete(seq);
        drawn(h, decodedAt);
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

  const onFrame = (f: FrameEvent): void => {
    const cfg = client.codec;
    if (!cfg) return;
    if (cfg.codec === 'MJPEG') {
      // decodes may finish out of order: never draw an older picture over a newer one
      pendingBitmaps++;
      createImageBitmap(new Blob([f.payload as Uint8Array<ArrayBuffer>], { type: 'image/jpeg' }))
        .then((bmp) => {
          const decodedAt = now();
          if (f.header.seq > lastDrawnSeq || f.header.keyframe) {
            lastDrawnSeq = f.header.seq;
            ctx.drawImage(bmp, 0, 0, canvas.width, canvas.height);
            drawn(f, decodedAt);
          }
          bmp.close();
        }, fail)
        .finally(() => pendingBitmaps--);
      return;
    }
    const d = decoder;
    if (!d || d.state !== 'configured') return;
    if (waitingForKey && !f.header.keyframe) return;
    if (!f.header.keyframe && d.decodeQueueSize > MAX_DECODE_QUEUE) {
      // the decoder falls behind: skip to a fresh keyframe instead of showing old pictures late
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
      return (decoder?.decodeQueueSize ?? 0) + pendingBitmaps;
    },
    detach() {
      for (const off of offs) off();
      if (decoder && decoder.state !== 'closed') decoder.close();
      decoder = null;
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
