// attachCanvas's H264 counters (the SDK's web client, packages/client/src/browser.ts) with WebCodecs
// and the canvas stubbed: what a bench or an app reads to tell "the VM sent it", "the page decoded
// it" and "it was drawn" apart (stream-browser's motion rows).
import { attachCanvas, prepareCanvas } from '../../packages/client/src/browser';
import type { CodecConfig, FrameEvent, StreamClient } from '../../packages/client/src/stream-client';

/** A VideoDecoder whose outputs the test releases (decodeQueueSize: chunks given, not yet out). */
class StubDecoder {
  static last: StubDecoder | null = null;
  state = 'unconfigured';
  readonly chunks: { type: string; timestamp: number }[] = [];
  constructor(private readonly init: { output: (frame: unknown) => void; error: (e: Error) => void }) {
    StubDecoder.last = this;
  }
  get decodeQueueSize(): number {
    return this.chunks.length;
  }
  configure(): void {
    this.state = 'configured';
  }
  decode(chunk: { type: string; timestamp: number }): void {
    this.chunks.push(chunk);
  }
  /** the oldest chunk given comes out as a picture (`picture`: what comes out, given its timestamp) */
  output(picture?: (timestamp: number) => unknown): void {
    const c = this.chunks.shift()!;
    this.init.output(picture ? picture(c.timestamp) : { timestamp: c.timestamp, close: () => undefined });
  }
  close(): void {
    this.state = 'closed';
  }
}

const globals = globalThis as Record<string, unknown>;
beforeAll(() => {
  globals.VideoDecoder = StubDecoder;
  globals.EncodedVideoChunk = class {
    readonly type: string;
    readonly timestamp: number;
    constructor(init: { type: string; timestamp: number }) {
      this.type = init.type;
      this.timestamp = init.timestamp;
    }
  };
});
afterAll(() => {
  delete globals.VideoDecoder;
  delete globals.EncodedVideoChunk;
});

const config: CodecConfig = { codec: 'H264', mime: 'avc1.42C01F', width: 64, height: 48, description: new Uint8Array([1]) } as CodecConfig;

function setup() {
  const listeners: Record<string, ((x: never) => void)[]> = {};
  let keyframesAsked = 0;
  const client = {
    codec: config,
    on: (name: string, fn: (x: never) => void) => {
      (listeners[name] ??= []).push(fn);
      return () => undefined;
    },
    latencyOf: () => 0,
    requestKeyframe: () => void keyframesAsked++,
  } as unknown as StreamClient;
  const drawn: number[] = [];
  const canvas = { width: 0, height: 0, getContext: () => ({ drawImage: () => undefined, putImageData: () => undefined }) } as unknown as HTMLCanvasElement;
  const view = attachCanvas(client, canvas, { onDraw: (h) => drawn.push(h.seq) });
  let seq = 0;
  const send = (keyframe: boolean): void => {
    seq++;
    const f: FrameEvent = { header: { seq, keyframe, captureTs: 0, inputSeq: 0, width: 64, height: 48 }, payload: new Uint8Array([seq]), receivedAt: 0 } as FrameEvent;
    for (const fn of listeners.frame ?? []) fn(f as never);
  };
  return { view, send, drawn, decoder: StubDecoder.last!, keyframesAsked: () => keyframesAsked };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('attachCanvas counters (H264)', () => {
  it('counts every picture out of the decoder and every frame held back waiting for a keyframe', async () => {
    const { view, send, drawn, decoder } = setup();
    send(false); // before the first keyframe: nothing to decode from
    send(true);
    send(false);
    expect(view.skipped).toBe(1);
    expect(decoder.chunks.map((c) => c.type)).toEqual(['key', 'delta']);
    decoder.output();
    await turn();
    decoder.output();
    await turn();
    expect(view.decoded).toBe(2);
    expect(drawn).toEqual([2, 3]);
    expect(view.dropped).toBe(0);
  });

  it('a decoder falling behind skips to a fresh keyframe, and every frame skipped is counted', async () => {
    const { view, send, decoder, keyframesAsked } = setup();
    send(true);
    for (let i = 0; i < 4; i++) send(false); // 5 in the decoder's queue: over MAX_DECODE_QUEUE (4)
    expect(view.skipped).toBe(0);
    send(false);
    send(false);
    expect(keyframesAsked()).toBe(1);
    expect(view.skipped).toBe(2);
    expect(decoder.chunks).toHaveLength(5);
    send(true); // the keyframe asked for resumes decoding
    expect(decoder.chunks).toHaveLength(6);
    expect(view.skipped).toBe(2);
    for (let i = 0; i < 6; i++) decoder.output();
    await turn();
    expect(view.decoded).toBe(6);
  });
});

describe('prepareCanvas readies the canvas before the session', () => {
  /** what happened, in order: canvas resizes, puts (with the buffer's number), conversions */
  let log: string[];
  let warmUp: (() => void) | null;
  let images: StubImageData[];
  class StubImageData {
    readonly data: Uint8ClampedArray;
    constructor(readonly width: number, readonly height: number) {
      this.data = new Uint8ClampedArray(width * height * 4);
      images.push(this);
    }
  }
  class StubVideoFrame {
    readonly visibleRect: { width: number; height: number };
    constructor(_data: unknown, readonly init: { codedWidth: number; codedHeight: number; timestamp: number }) {
      this.visibleRect = { width: init.codedWidth, height: init.codedHeight };
    }
    get timestamp(): number {
      return this.init.timestamp;
    }
    copyTo(): Promise<void> {
      // the blank frame's conversion (timestamp 0) finishes when the test says; pictures at once
      if (this.init.timestamp !== 0) return Promise.resolve(void log.push(`copy ${this.init.timestamp / 1000}`));
      log.push('warm-up started');
      return new Promise((resolve) => (warmUp = () => resolve(void log.push('warm-up done'))));
    }
    close(): void {}
  }
  beforeEach(() => {
    log = [];
    images = [];
    warmUp = null;
    globals.ImageData = StubImageData;
    globals.VideoFrame = StubVideoFrame;
  });
  afterEach(() => {
    delete globals.ImageData;
    delete globals.VideoFrame;
  });

  function canvasAndClient() {
    const listeners: Record<string, ((x: never) => void)[]> = {};
    let width = 0;
    let height = 0;
    const ctx = {
      drawImage: () => log.push('drawImage'),
      putImageData: (img: StubImageData) => log.push(`put #${images.indexOf(img)} ${img.width}x${img.height} ${[...img.data.subarray(0, 4)].join(',')}`),
    };
    const canvas = {
      get width() { return width; },
      set width(v: number) { width = v; log.push(`width ${v}`); },
      get height() { return height; },
      set height(v: number) { height = v; log.push(`height ${v}`); },
      getContext: () => ctx,
    } as unknown as HTMLCanvasElement;
    const client = {
      codec: null as CodecConfig | null,
      on: (name: string, fn: (x: never) => void) => {
        (listeners[name] ??= []).push(fn);
        return () => undefined;
      },
      latencyOf: () => 0,
      requestKeyframe: () => undefined,
    };
    const emit = (name: string, x: unknown): void => {
      if (name === 'codec') client.codec = x as CodecConfig;
      for (const fn of listeners[name] ?? []) fn(x as never);
    };
    const frame = (seq: number): void => emit('frame', { header: { seq, keyframe: true, captureTs: 0, inputSeq: 0, width: 64, height: 48 }, payload: new Uint8Array([seq]), receivedAt: 0 });
    return { canvas, client: client as unknown as StreamClient, emit, frame };
  }
  const picture = (timestamp: number) => new StubVideoFrame(null, { codedWidth: 64, codedHeight: 48, timestamp });

  it('sizes the canvas, paints it opaque black and converts one blank frame, and the stream of that size keeps the canvas', async () => {
    const { canvas, client, emit } = canvasAndClient();
    const done = prepareCanvas(canvas, 64, 48);
    expect(log).toEqual(['width 64', 'height 48', 'put #0 64x48 0,0,0,255', 'warm-up started']);
    warmUp!();
    await done;
    attachCanvas(client, canvas, {});
    emit('codec', config);
    expect(log).toEqual(['width 64', 'height 48', 'put #0 64x48 0,0,0,255', 'warm-up started', 'warm-up done']);
  });

  it('draws the first picture through the prepared buffer once its warm-up conversion is done', async () => {
    const { canvas, client, emit, frame } = canvasAndClient();
    void prepareCanvas(canvas, 64, 48);
    const drawn: number[] = [];
    attachCanvas(client, canvas, { draw: 'copyTo', onDraw: (h) => drawn.push(h.seq) });
    emit('codec', config);
    frame(1);
    StubDecoder.last!.output(picture);
    await turn();
    expect(drawn).toEqual([]);
    warmUp!();
    await turn();
    expect(log.slice(-3)).toEqual(['warm-up done', 'copy 1', 'put #0 64x48 0,0,0,255']);
    expect(images).toHaveLength(1);
    expect(drawn).toEqual([1]);
  });

  it('does without it for a stream of another size', async () => {
    const { canvas, client, emit, frame } = canvasAndClient();
    const done = prepareCanvas(canvas, 32, 16);
    warmUp!();
    await done;
    attachCanvas(client, canvas, { draw: 'copyTo' });
    emit('codec', config);
    frame(1);
    StubDecoder.last!.output(picture);
    await turn();
    await turn();
    expect(log).toEqual(expect.arrayContaining(['width 64', 'height 48']));
    expect(log.slice(-2)).toEqual(['copy 1', 'put #1 64x48 0,0,0,0']);
    expect(images).toHaveLength(2);
  });
});
