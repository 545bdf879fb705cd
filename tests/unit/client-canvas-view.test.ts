// attachCanvas's H264 counters (the SDK's web client, packages/client/src/browser.ts) with WebCodecs
// and the canvas stubbed: what a bench or an app reads to tell "the VM sent it", "the page decoded
// it" and "it was drawn" apart (stream-browser's motion rows).
import { attachCanvas } from '../../packages/client/src/browser';
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
  /** the oldest chunk given comes out as a picture */
  output(): void {
    const c = this.chunks.shift()!;
    this.init.output({ timestamp: c.timestamp, close: () => undefined });
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
