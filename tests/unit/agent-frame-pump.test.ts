// Frame pacing of the VM agent's stream: event-driven capture, fps cap with damage coalescing,
// early pictures for input (a credit: maxFps on average, two back to back), unchanged and identical pictures, one encode in flight, keyframes for joining UCs, backpressure.
import { decodeFrame, type VideoCodec } from '@uve/protocol';
import { FramePump, type FrameSink } from '../../apps/vm-agent/src/stream/frame-pump';
import type { DecoderConfig, EncodedFrame, VideoEncoder } from '../../apps/vm-agent/src/encoders/encoder';
import type { RawFrame } from '../../apps/vm-agent/src/runtimes/runtime';

/** lets queued work run: promise reactions and the pump's end-of-turn capture (setImmediate) */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 10; j++) await Promise.resolve();
    await new Promise<void>((r) => setImmediate(r));
  }
};

/** Manual clock and timers. */
class Clock {
  t = 1000;
  private timers: Array<{ at: number; fn: () => void }> = [];
  now = (): number => this.t;
  setTimer = (fn: () => void, ms: number): unknown => {
    const h = { at: this.t + ms, fn };
    this.timers.push(h);
    return h;
  };
  clearTimer = (h: unknown): void => {
    this.timers = this.timers.filter((x) => x !== h);
  };
  get pending(): number {
    return this.timers.length;
  }
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.t = next.at;
      this.timers = this.timers.filter((x) => x !== next);
      next.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

/**
 * A UA picture source: `changed` decides whether capture() has a picture, `repeat` whether that
 * picture has the last one's bytes (a UA that redrew the same); `ring` writes pictures into three
 * buffers in turn (the RawFrame contract) instead of a new one each time.
 */
class Source {
  changed = true;
  repeat = false;
  ring: Uint8Array[] | null = null;
  private next = 0;
  version = 0;
  captures = 0;
  fullCaptures = 0;
  capture = (): RawFrame | null => {
    this.captures++;
    if (!this.changed) return null;
    this.changed = false;
    return this.picture();
  };
  captureFull = (): RawFrame => {
    this.fullCaptures++;
    this.changed = false;
    return this.picture();
  };
  private picture(): RawFrame {
    const fill = this.repeat ? this.version : ++this.version;
    const data = this.ring ? this.ring[this.next++ % this.ring.length]! : new Uint8Array(32);
    return { width: 4, height: 2, data: data.fill(fill) };
  }
}

/** Encoder double: every output carries the picture's fill value; H264-like unless `mjpeg`. */
class Encoder implements VideoEncoder {
  calls: Array<{ version: number; keyframe: boolean }> = [];
  hold = false;
  private held: Array<() => void> = [];
  failNext = false;
  cfg: DecoderConfig = { codec: 'H264', mime: 'avc1.42C01F', width: 4, height: 2, description: new Uint8Array([1, 2, 3]) };
  constructor(readonly codec: VideoCodec = 'H264') {}
  async ready(): Promise<void> {}
  config(): DecoderConfig | null {
    return this.cfg;
  }
  encode(frame: RawFrame, opts: { keyframe: boolean; ts: number }): Promise<EncodedFrame> {
    const version = frame.data[0];
    this.calls.push({ version, keyframe: opts.keyframe });
    const out = (): EncodedFrame => ({ data: new Uint8Array([version, 0, 0]), keyframe: opts.keyframe || this.codec === 'MJPEG', ts: opts.ts });
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error('encoder broke'));
    }
    if (!this.hold) return Promise.resolve(out());
    return new Promise((resolve) => this.held.push(() => resolve(out())));
  }
  release(): void {
    for (const r of this.held.splice(0)) r();
  }
  async close(): Promise<void> {}
}

class Sink implements FrameSink {
  frames: Array<{ seq: number; version: number; keyframe: boolean; inputSeq: number; captureTs: number }> = [];
  codecs: DecoderConfig[] = [];
  buffered = 0;
  private writes: Array<() => void> = [];
  autoWrite = true;
  bufferedAmount(): number {
    return this.buffered;
  }
  sendFrame(message: Uint8Array, written: () => void): void {
    const { header, payload } = decodeFrame(message);
    this.frames.push({ seq: header.seq, version: payload[0], keyframe: header.keyframe, inputSeq: header.inputSeq, captureTs: header.captureTs });
    if (this.autoWrite) written();
    else this.writes.push(written);
  }
  sendCodec(config: DecoderConfig): void {
    this.codecs.push(config);
  }
  drain(): void {
    this.buffered = 0;
    for (const w of this.writes.splice(0)) w();
  }
}

function setup(opts: { maxFps?: number; codec?: VideoCodec } = {}) {
  const clock = new Clock();
  const source = new Source();
  const encoder = new Encoder(opts.codec);
  const errors: unknown[] = [];
  /** inputSeq of each capture that found nothing new to send */
  const unchanged: number[] = [];
  let inputSeq = 0;
  const pump = new FramePump({
    source,
    encoder,
    maxFps: opts.maxFps ?? 30,
    inputSeq: () => inputSeq,
    onError: (e) => errors.push(e),
    onUnchanged: (seq) => unchanged.push(seq),
    now: clock.now,
    wallClock: () => 1_700_000_000_000 + clock.t + 0.25,
    setTimer: (fn, ms) => clock.setTimer(fn, ms),
    clearTimer: clock.clearTimer,
    minHighWaterBytes: 1000,
  });
  return { clock, source, encoder, pump, errors, unchanged, setInput: (n: number) => (inputSeq = n) };
}

/** A pump with one sink that already got its first keyframe. */
async function running(opts: { maxFps?: number; codec?: VideoCodec } = {}) {
  const s = setup(opts);
  await s.pump.warmUp();
  const sink = new Sink();
  s.pump.addSink(sink);
  await s.clock.advance(100);
  return { ...s, sink };
}

/** Runs `each` once a millisecond for `ms` (a UA changing its picture); when the sink got a frame. */
async function frameTimes(p: { sink: Sink; clock: Clock }, ms: number, each: () => void): Promise<number[]> {
  const times: number[] = [];
  const before = p.sink.frames.length;
  for (let i = 0; i < ms; i++) {
    each();
    await flush();
    while (p.sink.frames.length > before + times.length) times.push(p.clock.t);
    await p.clock.advance(1);
  }
  return times;
}

describe('FramePump', () => {
  it('captures and sends right away on damage, with the header the UC needs', async () => {
    const { pump, source, sink, setInput, clock, encoder } = await running();
    expect(sink.frames).toHaveLength(1); // the warm-up keyframe
    setInput(7);
    source.changed = true;
    pump.damage();
    await flush(); // no timer involved
    expect(sink.frames).toHaveLength(2);
    expect(sink.frames[1]).toMatchObject({ seq: 2, inputSeq: 7, keyframe: false, version: 2, captureTs: 1_700_000_000_000 + clock.t + 0.25 });
    expect(encoder.calls).toEqual([{ version: 1, keyframe: true }, { version: 2, keyframe: false }]);
  });

  it('caps the rate at maxFps and coalesces damage inside the interval into one frame', async () => {
    const { pump, source, sink, clock } = await running({ maxFps: 30 });
    source.changed = true;
    pump.damage();
    await flush();
    expect(sink.frames).toHaveLength(2);
    // five damages within the next 20 ms: nothing yet, one frame when the 33.3 ms interval ends
    for (let i = 0; i < 5; i++) {
      await clock.advance(4);
      source.changed = true;
      pump.damage();
      await flush();
    }
    expect(sink.frames).toHaveLength(2);
    await clock.advance(33.3 - 20 - 0.5);
    expect(sink.frames).toHaveLength(2);
    await clock.advance(1);
    expect(sink.frames).toHaveLength(3);
    expect(sink.frames[2].version).toBe(3); // the latest picture, captured once
    expect(clock.pending).toBe(0);
  });

  it('keeps the fps cadence when its timer fires late: 30 pictures a second at 30 fps, never two within half an interval', async () => {
    const p = await running({ maxFps: 30 });
    // a steadily animating UA, and every pacing timer 1.5 ms late (timer granularity, a busy loop)
    const late = p.clock.setTimer;
    (p.clock as { setTimer: typeof late }).setTimer = (fn, ms) => late(fn, ms + 1.5);
    const times = await frameTimes(p, 300, () => {
      p.source.changed = true;
      p.pump.damage();
    });
    const s = (times[times.length - 1] - times[0]) / 1000;
    expect((times.length - 1) / s).toBeGreaterThan(29.5); // 1.5 ms late each time would give 28.7
    expect((times.length - 1) / s).toBeLessThanOrEqual(30.01);
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(1000 / 30 / 2);
  });

  it("lets an input's picture through before the interval ends, as far as the credit goes (two back to back after a quiet spell)", async () => {
    const { pump, source, sink, clock } = await running({ maxFps: 30 });
    const I = 1000 / 30;
    const change = async (input: boolean): Promise<void> => {
      source.changed = true;
      if (input) pump.inputApplied();
      else pump.damage();
      await flush();
    };
    // a frame (the credit, full after the quiet spell, goes from 2 to 1), input 10 ms later: at once
    await change(false);
    await clock.advance(10);
    await change(true);
    expect(sink.frames).toHaveLength(3);
    // input 10 ms after that: the credit (0.6) reaches 1 at 0.7 intervals after the last picture,
    // before the plain interval would end
    await clock.advance(10);
    await change(true);
    expect(sink.frames).toHaveLength(3);
    await clock.advance(0.7 * I - 10 - 0.5);
    expect(sink.frames).toHaveLength(3);
    await clock.advance(1);
    expect(sink.frames).toHaveLength(4);
    // damage alone, the input over an interval old: the plain interval after the last picture
    await clock.advance(20); // 34.1 ms after the input
    await change(false);
    expect(sink.frames).toHaveLength(4);
    await clock.advance(1100 + 0.7 * I + 10 + I - clock.t - 0.5);
    expect(sink.frames).toHaveLength(4);
    await clock.advance(1);
    expect(sink.frames).toHaveLength(5);
    expect(sink.frames[4].captureTs - sink.frames[3].captureTs).toBeCloseTo(I, 2);
    // after a quiet spell: a blink's picture, then an input 5 ms later goes at once, and its key
    // release's picture 1 ms after that waits for the credit (0.15 + 1 ms worth, short of 1)
    await clock.advance(200);
    await change(false);
    await clock.advance(5);
    await change(true);
    expect(sink.frames).toHaveLength(7);
    await clock.advance(1);
    await change(true);
    expect(sink.frames).toHaveLength(7);
    await clock.advance(I - 6 - 0.5);
    expect(sink.frames).toHaveLength(7);
    await clock.advance(1);
    expect(sink.frames).toHaveLength(8);
  });

  it('takes a damage report shortly after input as its picture (an X program repaints after the input, maybe in several reports)', async () => {
    const { pump, source, sink, clock } = await running({ maxFps: 30 });
    source.changed = true;
    pump.damage();
    await flush();
    expect(sink.frames).toHaveLength(2);
    // input 5 ms later, nothing changed yet (capture() -> null); the program's repaint 3 ms after
    await clock.advance(5);
    pump.inputApplied();
    await flush();
    expect(sink.frames).toHaveLength(2);
    await clock.advance(3);
    source.changed = true;
    pump.damage();
    await flush();
    expect(sink.frames).toHaveLength(3);
    // a second report of the same repaint 20 ms later: the credit allows it at 1 interval after the
    // first picture (not 1 interval after the last); past the interval after input it is plain damage
    await clock.advance(20);
    source.changed = true;
    pump.damage();
    await flush();
    expect(sink.frames).toHaveLength(3);
    await clock.advance(1000 / 30 - 28 - 0.5);
    expect(sink.frames).toHaveLength(3);
    await clock.advance(1);
    expect(sink.frames).toHaveLength(4);
  });

  it('never sends more than maxFps pictures a second plus the burst, whatever the input rate', async () => {
    for (const maxFps of [30, 60]) {
      const p = await running({ maxFps });
      // a changed picture for every input, one input a millisecond, for a second
      const times = await frameTimes(p, 1000, () => {
        p.source.changed = true;
        p.pump.inputApplied();
      });
      expect(times.length).toBeLessThanOrEqual(maxFps + 2);
      expect(times.length).toBeGreaterThanOrEqual(maxFps - 1);
      // at most two pictures within any interval
      for (let i = 2; i < times.length; i++) expect(times[i] - times[i - 2]).toBeGreaterThanOrEqual(1000 / maxFps - 1);
      p.pump.close();
    }
  });

  it('an input pulls forward a capture already waiting for the interval, and keeps the rate under steady damage', async () => {
    const { pump, source, sink, clock } = await running({ maxFps: 30 });
    source.changed = true;
    pump.damage();
    await flush();
    await clock.advance(5);
    source.changed = true;
    pump.damage(); // waits for the interval's end (33.3 ms after the last capture)
    await flush();
    expect(sink.frames).toHaveLength(2);
    pump.inputApplied();
    await flush();
    expect(sink.frames).toHaveLength(3);
    // under damage and input every 4 ms for a second, no more than 30 frames (+1 for the window's edges)
    const before = sink.frames.length;
    for (let t = 0; t < 1000; t += 4) {
      source.changed = true;
      if (t % 8 === 0) pump.inputApplied();
      else pump.damage();
      await clock.advance(4);
    }
    expect(sink.frames.length - before).toBeLessThanOrEqual(31);
    expect(sink.frames.length - before).toBeGreaterThanOrEqual(28);
  });

  it('does not encode or send an unchanged picture', async () => {
    const { pump, source, sink, encoder } = await running();
    const calls = encoder.calls.length;
    source.changed = false;
    pump.damage();
    await flush();
    expect(source.captures).toBeGreaterThan(0);
    expect(encoder.calls.length).toBe(calls);
    expect(sink.frames).toHaveLength(1);
    expect(pump.stats.unchanged).toBe(1);
  });

  it("does not encode, send nor spend credit on a picture answering input that is identical to the last (a pointer up where it went down)", async () => {
    const { pump, source, sink, encoder, clock, unchanged, setInput } = await running({ maxFps: 30 });
    const input = async (repeat: boolean): Promise<void> => {
      setInput(sink.frames.length + (repeat ? 1 : 0));
      source.changed = true;
      source.repeat = repeat;
      pump.inputApplied();
      await flush();
    };
    const calls = encoder.calls.length;
    await input(false); // pointer down: a stroke's dot (credit 2 -> 1)
    await clock.advance(1);
    await input(true); // pointer up on the same spot: redrawn, the same bytes
    expect(sink.frames).toHaveLength(2);
    expect(encoder.calls.length).toBe(calls + 1);
    expect(pump.stats.identical).toBe(1);
    expect(unchanged).toEqual([3]); // the session counts the release as answered by the picture shown
    // the next input 15 ms later still finds credit (had the release's picture spent it, the
    // credit would be 0.48 and this picture would wait ~17 ms for it)
    await clock.advance(14);
    await input(false);
    expect(sink.frames).toHaveLength(3);
    expect(sink.frames[2].version).toBe(source.version);
  });

  it('codes a keyframe asked for even when the picture is identical', async () => {
    const { pump, source, sink, encoder, clock } = await running({ maxFps: 30 });
    source.repeat = true;
    pump.keyframeFor(sink);
    await clock.advance(40);
    expect(sink.frames).toHaveLength(2);
    expect(sink.frames[1].keyframe).toBe(true);
    expect(encoder.calls.at(-1)).toEqual({ version: source.version, keyframe: true });
  });

  it('sends a repeated picture that does not answer input, in the cadence as before (a motion UA)', async () => {
    const { pump, source, sink, clock } = await running({ maxFps: 30 });
    source.repeat = true;
    for (let i = 0; i < 3; i++) {
      source.changed = true;
      pump.damage();
      await clock.advance(40);
    }
    expect(sink.frames).toHaveLength(4);
    expect(pump.stats.identical).toBe(0);
  });

  it('compares with the newest picture: a change written into the buffer of an older, identical one is sent', async () => {
    const { pump, source, sink, clock } = await running({ maxFps: 1000 });
    source.ring = [new Uint8Array(32), new Uint8Array(32), new Uint8Array(32)];
    const change = async (repeat: boolean): Promise<void> => {
      source.changed = true;
      source.repeat = repeat;
      pump.inputApplied();
      await clock.advance(5);
    };
    await change(false); // buffer 0, sent
    await change(true); // buffer 1, identical
    await change(true); // buffer 2, identical
    await change(false); // buffer 0 again, rewritten with a new picture
    expect(pump.stats.identical).toBe(2);
    expect(sink.frames.map((f) => f.version)).toEqual([1, source.version - 1, source.version]);
  });

  it('keeps one encode in flight; damage meanwhile gives exactly one more frame with the latest picture', async () => {
    const { pump, source, sink, encoder, clock } = await running({ maxFps: 1000 });
    encoder.hold = true;
    source.changed = true;
    pump.damage();
    await flush();
    expect(encoder.calls).toHaveLength(2);
    for (let i = 0; i < 3; i++) {
      source.changed = true;
      pump.damage();
      await flush();
    }
    expect(encoder.calls).toHaveLength(2); // still the one in flight
    encoder.release();
    await flush();
    await clock.advance(1);
    expect(encoder.calls).toHaveLength(3);
    encoder.release();
    await flush();
    expect(sink.frames.map((f) => f.version)).toEqual([1, 2, 3]);
  });

  it('does not encode at all while nobody watches, and a joining UC gets the kept keyframe without an encode', async () => {
    const { pump, source, encoder, clock } = setup();
    await pump.warmUp();
    expect(encoder.calls).toEqual([{ version: 1, keyframe: true }]);
    source.changed = true;
    pump.damage();
    await clock.advance(100);
    expect(encoder.calls).toHaveLength(1);
    const sink = new Sink();
    pump.addSink(sink);
    expect(sink.codecs).toHaveLength(1); // decoder configuration before the keyframe
    expect(sink.frames).toEqual([expect.objectContaining({ seq: 1, keyframe: true, version: 1 })]);
    // the pending damage then follows as a delta the new decoder can use
    await clock.advance(50);
    expect(sink.frames.map((f) => [f.version, f.keyframe])).toEqual([[1, true], [2, false]]);
  });

  it('forces a keyframe for a UC joining after deltas, at once (not paced), and gives it no delta first', async () => {
    const { pump, source, sink, encoder, clock } = await running({ maxFps: 10 });
    source.changed = true;
    pump.damage();
    await flush();
    expect(sink.frames.at(-1)).toMatchObject({ keyframe: false });
    const joiner = new Sink();
    pump.addSink(joiner);
    await flush();
    expect(encoder.calls.at(-1)).toEqual({ version: 3, keyframe: true });
    expect(source.fullCaptures).toBe(2); // warm-up and now
    expect(joiner.frames).toEqual([expect.objectContaining({ keyframe: true, version: 3 })]);
    expect(joiner.codecs).toHaveLength(1);
    // the old sink got the keyframe too, without a second codec message
    expect(sink.frames.at(-1)).toMatchObject({ keyframe: true, version: 3 });
    expect(sink.codecs).toHaveLength(1);
    void clock;
  });

  it('gives a joining UC the kept keyframe with the current input sequence', async () => {
    const { pump, setInput } = setup({ codec: 'MJPEG' });
    setInput(40);
    await pump.warmUp();
    setInput(0); // a new PLAYER: its input starts at 1
    const sink = new Sink();
    pump.addSink(sink);
    expect(sink.frames).toEqual([expect.objectContaining({ seq: 1, keyframe: true, inputSeq: 0 })]);
  });

  it('answers a `keyframe` request from one UC within the fps cap', async () => {
    const { pump, source, sink, clock } = await running({ maxFps: 10 });
    source.changed = true;
    pump.damage();
    await flush();
    pump.keyframeFor(sink);
    await flush();
    expect(sink.frames.at(-1)!.keyframe).toBe(false); // paced: the interval has not ended
    await clock.advance(100);
    expect(sink.frames.at(-1)!.keyframe).toBe(true);
  });

  it('skips a socket over its high-water mark and gives it a keyframe when it drained', async () => {
    const { pump, source, sink, clock } = await running({ maxFps: 1000 });
    const slow = new Sink();
    slow.autoWrite = false; // its writes stay in flight until drain()
    pump.addSink(slow);
    await clock.advance(5);
    expect(slow.frames).toHaveLength(1);
    slow.buffered = 5000; // over the 1000-byte minimum high-water mark of this test
    for (let i = 0; i < 3; i++) {
      source.changed = true;
      pump.damage();
      await clock.advance(5);
    }
    expect(slow.frames).toHaveLength(1); // nothing queued behind the backlog
    expect(sink.frames.slice(-3).map((f) => f.keyframe)).toEqual([false, false, false]); // others unaffected
    expect(pump.stats.skippedForBackpressure).toBe(1); // marked stalled once, then left alone
    // the socket drains: its write callbacks fire and a keyframe of the current picture follows
    slow.drain();
    await clock.advance(5);
    expect(slow.frames).toHaveLength(2);
    expect(slow.frames[1]).toMatchObject({ keyframe: true, version: sink.frames.at(-1)!.version });
  });

  it('holds damage while paused; a UC joining then still gets the frozen picture', async () => {
    const { pump, source, sink, encoder, clock } = await running({ codec: 'MJPEG' });
    pump.pause();
    source.changed = true;
    pump.damage();
    await clock.advance(100);
    expect(sink.frames).toHaveLength(1);
    const calls = encoder.calls.length;
    const joiner = new Sink();
    pump.addSink(joiner); // MJPEG: the kept frame is current
    expect(joiner.frames).toHaveLength(1);
    expect(encoder.calls.length).toBe(calls);
    pump.resume();
    await clock.advance(1);
    expect(sink.frames).toHaveLength(2);
  });

  it('reports an encoder error and restarts every UC from a keyframe', async () => {
    const { pump, source, sink, encoder, errors, clock } = await running({ maxFps: 1000 });
    encoder.failNext = true;
    source.changed = true;
    pump.damage();
    await flush();
    expect(errors).toHaveLength(1);
    await clock.advance(5); // the retry keeps to the fps cap
    expect(encoder.calls.at(-1)).toEqual({ version: 3, keyframe: true });
    expect(sink.frames.at(-1)).toMatchObject({ keyframe: true, version: 3 });
  });
});
