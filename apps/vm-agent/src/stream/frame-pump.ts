// Frame production for one session: the latency-critical path from "the UA's picture changed" to
// "bytes are on every UC socket".
//
// Event-driven, not clocked: a blind capture clock costs half a frame interval on average (see
// notes/streaming.md), so a frame is captured the moment the UA signals damage or input was
// applied, capped at the negotiated maxFps. Damage arriving inside the interval, or while an
// encode is in flight, is coalesced into one capture when the interval ends / the encode is done
// (the latest picture wins). An unchanged picture (capture() -> null) costs nothing.
//
// One encoder per session feeds every socket of the session. A socket that cannot keep up
// (bufferedAmount over the high-water mark) is skipped instead of queueing video seconds behind;
// when its writes drain it gets a keyframe and continues from the current picture.
//
// The picture answering an input may come before the interval ends (inputApplied): waiting for
// the end costs up to a whole interval (33 ms at 30 fps) to a user who types right after the last
// frame. Early pictures spend a credit (a token bucket): it refills at maxFps, holds at most BURST
// pictures, and every changed picture spends one, so the average rate stays within maxFps and
// under steady motion (credit near 0) frames keep their even spacing. Two pictures may go at once
// after a quiet spell, so an input's picture is not held back by the one just before it (a cursor
// blink, the key release's picture, the previous input's). The bucket replaced "early only when
// the last two gaps add up to two intervals", which held a WASM input at 30 fps up to 30 ms behind
// its key release's picture (stream-browser's p95).
//
// A picture answering input that is identical to the last one captured counts as unchanged (not
// encoded, sent, nor paid for with credit): a UA that reports damage for input that changed
// nothing (a button's release, a pointer up on the spot of its down) would otherwise spend the
// credit of the input after it, which at 30 fps then waited for the cadence (stream-browser's
// WASM @30 p95). Pictures without input are not compared: a motion UA's repeated picture keeps
// its place in the cadence (and in fps counts), as before.
import { decodeFrame, encodeFrame, type FrameHeader, type FrameTiming } from '@uve/protocol';
import type { DecoderConfig, EncodedFrame, VideoEncoder } from '../encoders/encoder';
import { formatOf, type RawFrame } from '../runtimes/runtime';
import { monotonic, wallClock } from '../common/clock';

export interface FrameSource {
  capture(): RawFrame | null;
  captureFull(): RawFrame;
}

/** A frame's VM stages up to its encode; the sink adds when it was written (`sentAt`). */
export type FrameStamp = Omit<FrameTiming, 'sentAt'>;

/** One receiver of the stream (a UC socket). */
export interface FrameSink {
  /** bytes queued on the socket and not yet handed to the OS */
  bufferedAmount(): number;
  /** sends one binary frame message; `written` runs once it has left the process (or failed) */
  sendFrame(message: Uint8Array, written: () => void, timing?: FrameStamp): void;
  /** sends the decoder configuration (the `codec` message) */
  sendCodec(config: DecoderConfig): void;
}

export interface FramePumpOptions {
  source: FrameSource;
  encoder: VideoEncoder;
  maxFps: number;
  /** sequence of the last input applied to the UA (goes into each header) */
  inputSeq: () => number;
  /** when the last input applied arrived and was applied (wall clock), for `timing` messages */
  inputTimes?: () => { receivedAt: number; appliedAt: number } | null;
  onError: (error: unknown) => void;
  /** after each frame was handed to the sinks (stats, tests) */
  onFrame?: (header: FrameHeader, bytes: number, sentTo: number) => void;
  /** a capture found the picture unchanged (or the same bytes) with these inputs applied: nothing to show for them */
  onUnchanged?: (inputSeq: number) => void;
  /** smallest high-water mark of a socket, bytes */
  minHighWaterBytes?: number;
  now?: () => number;
  wallClock?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

interface SinkState {
  sink: FrameSink;
  /** the next frame this sink gets must be a keyframe (joined, or skipped frames) */
  needsKeyframe: boolean;
  /** skipped for backpressure; waits for its writes to drain */
  stalled: boolean;
  /** decoder configuration last sent to it */
  configKey: string | null;
}

/** A keyframe message kept while it is the encoder's latest output, so a joining UC gets a picture at once. */
interface CachedKeyframe {
  message: Uint8Array;
  header: FrameHeader;
  config: DecoderConfig | null;
}

/** pictures that may go back to back after a quiet spell (the bucket's size) */
const BURST = 2;

const configKey = (c: DecoderConfig | null): string =>
  c ? `${c.codec}|${c.mime}|${c.width}x${c.height}|${c.description ? Buffer.from(c.description).toString('base64') : ''}` : 'none';

/** same size, format and bytes (a memcmp: ~0.1 ms for a 720p I420 picture, less when it differs early) */
export function samePicture(a: RawFrame, b: RawFrame): boolean {
  if (a.width !== b.width || a.height !== b.height || formatOf(a) !== formatOf(b)) return false;
  return Buffer.compare(a.data, b.data) === 0;
}

export class FramePump {
  private readonly sinks = new Map<FrameSink, SinkState>();
  private readonly interval: number;
  private readonly now: () => number;
  private readonly wall: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly minHighWater: number;

  /** damage signalled and not yet captured */
  private dirty = false;
  /** the next capture is a keyframe even if no sink waits for one (warm-up) */
  private forceKey = false;
  /** the next capture ignores the fps cap (a UC joined and waits for its first picture) */
  private urgent = false;
  private encoding = false;
  private damageQueued = false;
  private timer: unknown = null;
  private paused = false;
  private closed = false;
  private lastCaptureAt = -Infinity;
  /** input was applied and no changed picture captured since: the next one may come early */
  private inputPending = false;
  /** when input was last applied (monotonic): a program's repaint may take several damage reports */
  private lastInputAt = -Infinity;
  /** early pictures left at `creditAt` (refills at maxFps up to BURST; may dip below 0) */
  private credit = BURST;
  private creditAt = -Infinity;
  /** when the pacing timer fires (monotonic), while one is set */
  private timerDue = 0;
  private seq = 0;
  private cached: CachedKeyframe | null = null;
  /**
   * the newest picture captured (RawFrame: its data stays intact until two more captures), to
   * tell an identical one from a change
   */
  private lastPicture: RawFrame | null = null;
  /** resolves warmUp() once its capture is encoded (or turned out unchanged) */
  private afterProduce: (() => void) | null = null;
  /** told when the encode in flight is done (`whenIdle`) */
  private idleWaiters: (() => void)[] = [];
  /** running average of encoded frame sizes, for the high-water mark */
  private avgFrameBytes = 0;

  /** when the warm-up's picture was captured and encoded (VM wall clock), for the session's start timing */
  warmUpTiming: { capturedAt: number; encodedAt: number } | null = null;

  readonly stats = { captured: 0, unchanged: 0, identical: 0, encoded: 0, keyframes: 0, skippedForBackpressure: 0, lastEncodeMs: 0 };

  constructor(private readonly opts: FramePumpOptions) {
    this.interval = 1000 / Math.max(1, opts.maxFps);
    this.now = opts.now ?? monotonic;
    this.wall = opts.wallClock ?? wallClock;
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
    this.minHighWater = opts.minHighWaterBytes ?? 64 * 1024;
  }

  get sinkCount(): number {
    return this.sinks.size;
  }

  /** about four frames of video: more would be latency, not smoothness */
  get highWaterBytes(): number {
    return Math.max(this.minHighWater, Math.round(4 * this.avgFrameBytes));
  }

  /**
   * The UA's picture may have changed (damage, applied input, answered resource). The capture runs
   * at the end of this event-loop turn (setImmediate, after the I/O callbacks already due): input
   * that arrived together (key down + text, down + up, in one or several socket reads) is all
   * applied before it and costs one encode, and a UA calling back from inside input() is not
   * re-entered.
   */
  damage(): void {
    this.dirty = true;
    if (this.damageQueued) return;
    this.damageQueued = true;
    setImmediate(() => {
      this.damageQueued = false;
      this.kick();
    });
  }

  /** Input was applied to the UA: like damage(), and its picture may come before the interval ends. */
  inputApplied(): void {
    this.inputPending = true;
    this.lastInputAt = this.now();
    this.damage();
  }

  /** A keyframe for everyone (e.g. after a decoder configuration change). */
  requestKeyframe(): void {
    for (const st of this.sinks.values()) st.needsKeyframe = true;
    this.kick();
  }

  /**
   * Produces the first frame (a keyframe) with no one connected yet: starts the encoder and keeps
   * the result, so the UC that connects later gets its first picture without waiting for an encode.
   */
  async warmUp(): Promise<void> {
    await this.opts.encoder.ready();
    if (this.encoding || this.closed) return;
    this.forceKey = true;
    await new Promise<void>((resolve) => {
      this.afterProduce = resolve;
      this.produce(true);
    });
  }

  addSink(sink: FrameSink): void {
    const st: SinkState = { sink, needsKeyframe: true, stalled: false, configKey: null };
    this.sinks.set(sink, st);
    this.giveKeyframe(st, true);
  }

  removeSink(sink: FrameSink): void {
    this.sinks.delete(sink);
  }

  /** The sink asked for a keyframe (decoder lost, `keyframe` message). */
  keyframeFor(sink: FrameSink): void {
    const st = this.sinks.get(sink);
    if (!st) return;
    st.needsKeyframe = true;
    this.giveKeyframe(st, false);
  }

  /** Suspended session: damage is held back until resume; joining UCs still get the frozen picture. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.kick();
  }

  /** Resolves once no encode is in flight: a frame captured before a pause has gone out. */
  whenIdle(): Promise<void> {
    if (!this.encoding) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    this.sinks.clear();
    this.cached = null;
  }

  // ---- internals ------------------------------------------------------------------------------

  /** Sends the cached keyframe when it is still the encoder's latest output, else asks for one. */
  private giveKeyframe(st: SinkState, urgent: boolean): void {
    if (st.stalled) return; // it gets one when it drains
    if (this.cached) {
      this.sendTo(st, this.withInputSeq(this.cached.message), this.cached.config, true);
      this.kick(); // damage held while nobody watched follows now
      return;
    }
    if (urgent) this.urgent = true;
    this.kick();
  }

  /**
   * The kept keyframe with the current input sequence: a new PLAYER numbers its input from 1, so
   * the value from the time of capture would claim inputs it has not sent yet.
   */
  private withInputSeq(message: Uint8Array): Uint8Array {
    const seq = this.opts.inputSeq() >>> 0;
    const { header, payload } = decodeFrame(message);
    return header.inputSeq === seq ? message : encodeFrame({ ...header, inputSeq: seq }, payload);
  }

  /** some connected sink can only continue from a keyframe */
  private needKey(): boolean {
    if (this.forceKey) return true;
    for (const st of this.sinks.values()) if (st.needsKeyframe && !st.stalled) return true;
    return false;
  }

  private wantsFrame(): boolean {
    if (this.closed) return false;
    // a waiting UC gets the (frozen) picture even while the session is suspended
    if (this.needKey() && (this.sinks.size > 0 || this.forceKey)) return true;
    if (this.paused || this.sinks.size === 0) return false;
    return this.dirty;
  }

  /** the earliest time (monotonic) the next capture may run */
  private nextCaptureAt(): number {
    if (this.urgent) return -Infinity;
    const paced = this.lastCaptureAt + this.interval;
    // input since the last picture, or within the last interval (an X program's repaint may come
    // in more than one damage report, and a blink may take the first): early, as far as the credit goes
    if (!this.inputPending && this.now() - this.lastInputAt >= this.interval) return paced;
    return Math.min(paced, this.creditAt + (1 - this.credit) * this.interval);
  }

  private kick(): void {
    if (this.encoding || !this.wantsFrame()) return;
    const due = this.nextCaptureAt();
    if (this.timer !== null) {
      // an input may make the pending capture due sooner
      if (due >= this.timerDue) return;
      this.clearTimer(this.timer);
      this.timer = null;
    }
    const wait = due - this.now();
    if (wait > 0) {
      this.timerDue = due;
      this.timer = this.setTimer(() => {
        this.timer = null;
        if (!this.encoding && this.wantsFrame()) this.produce(false);
      }, wait);
      return;
    }
    this.produce(false);
  }

  private produce(warmUp: boolean): void {
    const key = this.needKey();
    let frame: RawFrame | null;
    try {
      frame = key ? this.opts.source.captureFull() : this.opts.source.capture();
    } catch (e) {
      this.opts.onError(e);
      this.finishProduce();
      return;
    }
    this.dirty = false;
    this.stats.captured++;
    // only a picture answering input (early, on credit) is compared: a paced one keeps the stream's
    // cadence as before, and a keyframe is wanted even when the picture is the same
    const identical = frame !== null && !key && this.inputPending && this.lastPicture !== null && samePicture(frame, this.lastPicture);
    // the newest buffer stands for the picture: an older one may be rewritten by the next captures
    if (frame) this.lastPicture = frame;
    if (!frame || identical) {
      // unchanged picture: nothing to encode or send
      this.stats.unchanged++;
      if (identical) this.stats.identical++;
      this.opts.onUnchanged?.(this.opts.inputSeq());
      this.finishProduce();
      return;
    }
    this.forceKey = false;
    this.urgent = false;
    this.inputPending = false;
    const now = this.now();
    this.credit = Math.min(BURST, this.credit + (now - this.creditAt) / this.interval) - 1;
    this.creditAt = now;
    // the capture's place on the fps cadence: one a little late (timer granularity, a busy event
    // loop) does not push every later one back, which held 30 fps requested at ~28
    const paced = this.lastCaptureAt + this.interval;
    this.lastCaptureAt = now >= paced && now - paced < this.interval / 2 ? paced : now;
    const header: FrameHeader = {
      seq: (this.seq = (this.seq + 1) >>> 0),
      captureTs: this.wall(),
      inputSeq: this.opts.inputSeq(),
      keyframe: key,
      width: frame.width,
      height: frame.height,
    };
    const input = header.inputSeq ? this.opts.inputTimes?.() ?? null : null;
    this.encoding = true;
    const t0 = this.now();
    let encoded: Promise<EncodedFrame>;
    try {
      encoded = this.opts.encoder.encode(frame, { keyframe: key, ts: header.captureTs });
    } catch (e) {
      encoded = Promise.reject(e);
    }
    encoded.then(
      (out) => {
        this.stats.lastEncodeMs = this.now() - t0;
        const timing = { seq: header.seq, inputSeq: header.inputSeq, inputReceivedAt: input?.receivedAt ?? null, inputAppliedAt: input?.appliedAt ?? null, capturedAt: header.captureTs, encodedAt: this.wall() };
        if (warmUp) this.warmUpTiming = { capturedAt: timing.capturedAt, encodedAt: timing.encodedAt };
        if (!this.closed) this.deliver(header, out, warmUp, timing);
      },
      (e) => {
        // The picture is lost and the encoder's reference state is unknown: everyone restarts
        // from a keyframe.
        for (const st of this.sinks.values()) st.needsKeyframe = true;
        this.cached = null;
        if (!this.closed) this.opts.onError(e);
      },
    ).finally(() => {
      this.encoding = false;
      this.finishProduce();
      for (const w of this.idleWaiters.splice(0)) w();
      this.kick();
    });
  }

  private finishProduce(): void {
    const done = this.afterProduce;
    if (done && !this.encoding) {
      this.afterProduce = null;
      done();
    }
  }

  private deliver(header: FrameHeader, out: EncodedFrame, warmUp: boolean, timing: FrameStamp): void {
    header.keyframe = out.keyframe;
    const message = encodeFrame(header, out.data);
    const config = this.opts.encoder.config();
    this.stats.encoded++;
    if (out.keyframe) this.stats.keyframes++;
    this.avgFrameBytes = this.avgFrameBytes === 0 ? out.data.byteLength : this.avgFrameBytes * 0.9 + out.data.byteLength * 0.1;
    // A delta frame makes a kept keyframe useless to a joining decoder (it would miss this delta).
    this.cached = out.keyframe ? { message, header, config } : null;

    let sentTo = 0;
    const highWater = this.highWaterBytes;
    for (const st of this.sinks.values()) {
      if (st.stalled) continue;
      if (st.sink.bufferedAmount() > highWater) {
        st.stalled = true;
        st.needsKeyframe = true;
        this.stats.skippedForBackpressure++;
        continue;
      }
      if (st.needsKeyframe && !out.keyframe) continue;
      this.sendTo(st, message, config, out.keyframe, timing);
      sentTo++;
    }
    if (!warmUp) this.opts.onFrame?.(header, out.data.byteLength, sentTo);
  }

  private sendTo(st: SinkState, message: Uint8Array, config: DecoderConfig | null, keyframe: boolean, timing?: FrameStamp): void {
    if (keyframe) {
      const k = configKey(config);
      if (config && st.configKey !== k) {
        st.sink.sendCodec(config);
        st.configKey = k;
      }
      st.needsKeyframe = false;
    }
    st.sink.sendFrame(message, () => this.written(st), timing);
  }

  /** A write of this sink left the process: a stalled sink that drained gets a keyframe. */
  private written(st: SinkState): void {
    if (!st.stalled || this.closed || !this.sinks.has(st.sink)) return;
    if (st.sink.bufferedAmount() > this.highWaterBytes / 2) return;
    st.stalled = false;
    this.giveKeyframe(st, false);
  }
}
