// H264 (Constrained Baseline) through the ffmpeg CLI and libx264: raw pictures on stdin (I420 from
// a WASM UA, which x264 takes as it is; RGBA from X11, which ffmpeg's swscale converts), FLV on stdout.
// FLV gives access-unit boundaries and the avcC record as they are written, so each picture comes
// out as soon as x264 has coded it (ultrafast + zerolatency: no B-frames, no lookahead, one out per
// one in). Outputs are matched to inputs in FIFO order.
//
// Keyframes on demand: the CLI cannot be told at run time to code an IDR, so a spare ffmpeg with
// the same parameters (hence the same SPS/PPS and avcC) is kept started and primed; forcing a
// keyframe sends the picture to the spare, whose next output is an IDR, retires the old process and
// starts a new spare once the keyframe is out.
// Measured at 1280x720 (UI-like picture, 2 cores, encode() call to output): P frame 6-6.5 ms p50;
// IDR within one process ~8 ms; forced keyframe via the spare 10-11 ms p50 (max ~21-27 ms), and
// the next ~5 frames 8-9 ms p50 (p95 ~15 ms) while the new spare starts. Spawning an ffmpeg on
// demand instead takes 85-110 ms to its first IDR.
//
// Frames are read asynchronously: the caller must not change frame.data until encode() resolves.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { pictureBytes, type RawFrame } from '../runtimes/runtime';
import { trackChild } from '../common/children';
import { frameMismatch, type DecoderConfig, type EncodedFrame, type EncoderOptions, type VideoEncoder } from './encoder';
import { avcCodecString, FlvParser, parseAvcC } from './flv';

const FFMPEG = 'ffmpeg';
/**
 * how long after a session's first picture its spare and the VM's next warm process start: beside
 * the first picture, the UC's first input and its decoder's start (2 cores) they doubled those
 */
export const BACKGROUND_START_DELAY_MS = 1_000;
/** how long a retired process may take to flush and exit before it is killed */
const RETIRE_TIMEOUT_MS = 2_000;
const STDERR_TAIL = 2_000;

let available: Promise<boolean> | undefined;

/**
 * True when `ffmpeg` is on PATH and has the libx264 encoder (checked once per process). `known`:
 * the answer recorded elsewhere (the agent image, at its build), taken instead of the probe.
 */
export function ffmpegAvailable(known?: boolean): Promise<boolean> {
  if (known !== undefined) available ??= Promise.resolve(known);
  available ??= new Promise<boolean>((resolve) => {
    let out = '';
    const p = trackChild(spawn(FFMPEG, ['-hide_banner', '-nostdin', '-encoders'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', () => resolve(false));
    p.on('close', (code) => resolve(code === 0 && /^\s*V\S*\s+libx264\s/m.test(out)));
  });
  return available;
}

/** ffmpeg numbers input frames at this rate; the FLV timestamps tell which input an output is. */
const frameRate = (o: EncoderOptions): number => Math.min(500, Math.max(1, Math.round(o.maxFps)));

export function x264Args(o: EncoderOptions, primeFrames: number): string[] {
  const fps = frameRate(o);
  const kbps = Math.max(100, Math.round(o.bitrateKbps));
  return [
    '-hide_banner', '-nostdin', '-nostats', '-loglevel', 'error',
    // rawvideo has every parameter up front: do not wait for data to "probe" it
    '-probesize', '32', '-analyzeduration', '0',
    // yuv420p in: no swscale conversion (BT.601 limited range, as swscale makes it from rgba)
    '-f', 'rawvideo', '-pix_fmt', o.pixelFormat === 'i420' ? 'yuv420p' : 'rgba', '-s', `${o.width}x${o.height}`, '-framerate', String(fps), '-i', 'pipe:0',
    '-an', '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p',
    // IDRs only when asked for: no GOP limit, no scene-cut keyframes
    '-x264-params', 'keyint=infinite:scenecut=0:bframes=0',
    // the priming frames and the first real picture are IDRs (see X264Process)
    '-force_key_frames', `expr:lte(n,${primeFrames})`, '-forced-idr', '1',
    // quality-targeted, capped at the session's bitrate; half a second of VBV lets an IDR through
    '-crf', '23', '-maxrate', `${kbps}k`, '-bufsize', `${Math.round(kbps / 2)}k`,
    // frames arrive on damage, not on a clock: never duplicate or drop to make a rate
    '-fps_mode', 'passthrough',
    '-flush_packets', '1',
    '-f', 'flv', '-flvflags', 'no_duration_filesize', 'pipe:1',
  ];
}

interface Pending {
  /** index of the input picture in this process, priming pictures included */
  n: number;
  ts: number;
  resolve: (f: EncodedFrame) => void;
  reject: (e: Error) => void;
}

/**
 * One ffmpeg/x264 process. It is primed with `primeFrames` black pictures whose outputs are dropped:
 * that opens the encoder (ffmpeg opens it on the first frame; start-up to the first output is
 * ~100 ms we do not want on a forced keyframe) and yields the avcC. The first real picture is an IDR. The number of priming
 * frames alternates between processes so that x264's idr_pic_id (0, 1, 0, ...) differs between
 * the IDRs of two consecutive processes, as H.264 7.4.3 requires for back-to-back IDRs.
 */
class X264Process {
  readonly child: ChildProcessWithoutNullStreams;
  /** resolves once the priming outputs (and the avcC) came out */
  readonly primed: Promise<void>;
  /** resolves once the process exited and its pipes closed */
  readonly closed: Promise<void>;
  avcC: Uint8Array | null = null;
  /** true until a real picture was sent: the next output is an IDR */
  fresh = true;
  private readonly parser = new FlvParser();
  private readonly pending: Pending[] = [];
  private toDiscard: number;
  private nextInput: number;
  private readonly fps: number;
  private stderrTail = '';
  private ending: string | null = null;
  private failure: Error | null = null;
  private primedResolve!: () => void;
  private primedReject!: (e: Error) => void;

  constructor(
    opts: EncoderOptions,
    /** black pictures coded and dropped before the first real one (1 or 2: see above) */
    readonly primeFrames: number,
    /** told when the process dies on its own; whoever holds the process (a warm slot, a session's encoder) */
    public onUnexpectedExit: (p: X264Process, e: Error) => void,
  ) {
    this.toDiscard = this.nextInput = primeFrames;
    this.fps = frameRate(opts);
    this.primed = new Promise((res, rej) => {
      this.primedResolve = res;
      this.primedReject = rej;
    });
    this.primed.catch(() => undefined); // observed by whoever awaits it
    this.child = trackChild(spawn(FFMPEG, x264Args(opts, primeFrames), { stdio: ['pipe', 'pipe', 'pipe'] }));
    this.child.stdin.on('error', () => undefined); // EPIPE when ffmpeg died; reported via 'close'
    this.child.stdout.on('data', (d: Buffer) => this.onData(d));
    this.child.stderr.on('data', (d: Buffer) => (this.stderrTail = (this.stderrTail + d.toString()).slice(-STDERR_TAIL)));
    this.child.on('error', (e) => this.fail(new Error(`ffmpeg could not be started: ${e.message}`)));
    this.closed = new Promise((res) => this.child.on('close', (code, signal) => {
      if (this.ending === null || this.pending.length > 0 || this.toDiscard > 0) {
        const why = this.ending ?? `ffmpeg (libx264) exited unexpectedly (code ${code}, signal ${signal})${this.stderrTail ? `: ${this.stderrTail.trim()}` : ''}`;
        this.fail(new Error(why));
      }
      res();
    }));
    const black = new Uint8Array(pictureBytes(opts.pixelFormat ?? 'rgba', opts.width, opts.height));
    for (let i = 0; i < primeFrames; i++) this.child.stdin.write(black);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  submit(data: Uint8Array, ts: number): Promise<EncodedFrame> {
    if (this.failure) return Promise.reject(this.failure);
    this.fresh = false;
    return new Promise((resolve, reject) => {
      this.pending.push({ n: this.nextInput++, ts, resolve, reject });
      this.child.stdin.write(data);
    });
  }

  /** Closes stdin so ffmpeg codes what it has and exits; kills it if that takes too long. */
  async retire(): Promise<void> {
    this.ending ??= 'H264 encoder process retired';
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), RETIRE_TIMEOUT_MS);
    await this.closed;
    clearTimeout(timer);
  }

  async kill(reason: string): Promise<void> {
    this.ending ??= reason;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.closed;
  }

  private onData(chunk: Buffer): void {
    let events;
    try {
      events = this.parser.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (e) {
      this.fail(e as Error);
      this.child.kill('SIGKILL');
      return;
    }
    for (const ev of events) {
      if (ev.type === 'config') {
        this.avcC = ev.avcC;
      } else if (this.toDiscard > 0) {
        if (--this.toDiscard === 0) {
          if (this.avcC) this.primedResolve();
          else this.fail(new Error('ffmpeg wrote video before the AVC sequence header'));
        }
      } else {
        // outputs pair with inputs in order; the timestamp (input index / fps) checks the pairing
        // so that a dropped picture fails its own encode() instead of shifting all later ones
        const n = Math.round((ev.dts * this.fps) / 1000);
        while (this.pending.length > 0 && this.pending[0].n < n) this.pending.shift()!.reject(new Error('ffmpeg dropped this picture'));
        const p = this.pending.shift();
        if (!p || p.n !== n) {
          this.fail(new Error(`ffmpeg produced a picture nobody asked for (input #${n})`));
          this.child.kill('SIGKILL');
          return;
        }
        p.resolve({ data: ev.data, keyframe: ev.keyframe, ts: p.ts });
      }
    }
  }

  private fail(e: Error): void {
    const first = this.failure === null;
    this.failure ??= e;
    this.primedReject(this.failure);
    for (const p of this.pending.splice(0)) p.reject(this.failure);
    if (first && this.ending === null) this.onUnexpectedExit(this, this.failure);
  }
}

export class H264Encoder implements VideoEncoder {
  readonly codec = 'H264' as const;
  private active: X264Process | null = null;
  private spare: X264Process | null = null;
  private readonly retiring = new Set<X264Process>();
  private generation = 0;
  private cfg: DecoderConfig | null = null;
  private starting: Promise<void> | null = null;
  private failure: Error | null = null;
  private closing = false;
  /** the spare and the next warm process were started (BACKGROUND_START_DELAY_MS after the first output) */
  private backgroundStarted = false;
  /**
   * a UC joined the stream: only then is a spare worth its start (it serves forced keyframes, which
   * only UCs ask for); a session that ends before any UC came costs no spare
   */
  private joined = false;
  private backgroundTimer: NodeJS.Timeout | null = null;
  /** serialises submissions (a forced keyframe may wait for the spare) without waiting for outputs */
  private submitChain: Promise<unknown> = Promise.resolve();
  /** settles after the previous encode(): results settle in call order even across a process switch */
  private lastResult: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly opts: EncoderOptions,
    /** the VM's primed encoder kept ready for the next session (WarmX264) */
    private readonly warm: WarmX264 | null = null,
    private readonly backgroundDelayMs = BACKGROUND_START_DELAY_MS,
  ) {
    if (!(opts.width > 0 && opts.height > 0) || opts.width % 2 || opts.height % 2) {
      throw new Error(`H264 needs even, positive dimensions (4:2:0), got ${opts.width}x${opts.height}`);
    }
  }

  ready(): Promise<void> {
    this.starting ??= this.start();
    return this.starting;
  }

  config(): DecoderConfig | null {
    return this.cfg;
  }

  /** ffmpeg process ids (active, spare), for monitoring */
  pids(): { active?: number; spare?: number } {
    return { active: this.active?.pid, spare: this.spare?.pid };
  }

  encode(frame: RawFrame, opts: { keyframe: boolean; ts: number }): Promise<EncodedFrame> {
    const mismatch = frameMismatch('H264', this.opts, frame);
    if (mismatch) return Promise.reject(new Error(mismatch));
    const submitted = this.submitChain.then(() => this.submit(frame.data, opts.keyframe, opts.ts));
    this.submitChain = submitted.catch(() => undefined);
    const prev = this.lastResult;
    const result = (async () => {
      try {
        return await (await submitted).result;
      } finally {
        await prev;
      }
    })();
    this.lastResult = result.catch(() => undefined);
    return result;
  }

  clientJoined(): void {
    if (this.joined) return;
    this.joined = true;
    // the spare was held back at the background start: it follows a while after this join
    if (this.backgroundStarted && !this.spare && !this.closing && !this.failure) {
      setTimeout(() => {
        if (!this.closing && !this.spare && !this.failure) this.spare = this.spawn();
      }, this.backgroundDelayMs).unref();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    // an unused spare (primed, no picture coded) is the VM's next warm process when it has none
    if (this.spare && this.warm?.adopt(this.opts, this.spare)) this.spare = null;
    // a session that ended before its first picture still leaves the VM a warm process
    this.startBackground();
    const procs = [this.active, this.spare, ...this.retiring].filter((p): p is X264Process => p !== null);
    this.active = this.spare = null;
    await Promise.all(procs.map((p) => p.kill('H264 encoder closed')));
  }

  private async start(): Promise<void> {
    if (!(await ffmpegAvailable())) throw new Error('H264 needs ffmpeg with libx264 on PATH (apt-get install ffmpeg)');
    if (this.closing) throw new Error('H264 encoder closed');
    // a process the VM primed before the session came saves its start (~100-300 ms) on the first frame
    const warm = this.warm?.take(this.opts) ?? null;
    if (warm) {
      this.generation = warm.primeFrames; // the spare must differ from it in idr_pic_id
      warm.onUnexpectedExit = this.processDied;
    }
    this.active = warm ?? this.spawn();
    await this.active.primed;
    this.cfg = this.configFor(this.active);
  }

  /**
   * The spare (for forced keyframes) and the VM's next warm process start a while after the first
   * picture is out: each is an ffmpeg start plus a primed 720p picture, which on 2 cores took the
   * first keyframe from ~10 ms to ~140 ms when they ran beside it (the first picture is an IDR
   * anyway), and the UC's first input after it. A forced keyframe before then starts the spare.
   */
  private startBackground(): void {
    if (this.backgroundTimer) clearTimeout(this.backgroundTimer);
    this.backgroundTimer = null;
    if (this.backgroundStarted) return;
    this.backgroundStarted = true;
    if (this.joined && !this.closing && !this.spare && !this.failure) this.spare = this.spawn();
    this.warm?.keep(this.opts);
  }

  // wrapped in an object so that the submit chain does not wait for the output
  private async submit(data: Uint8Array, keyframe: boolean, ts: number): Promise<{ result: Promise<EncodedFrame> }> {
    if (this.closing) throw new Error('H264 encoder closed');
    await this.ready();
    if (this.closing) throw new Error('H264 encoder closed');
    if (this.failure) throw this.failure;
    if (!keyframe || this.active!.fresh) {
      const result = this.active!.submit(data, ts);
      if (!this.backgroundStarted && !this.backgroundTimer) {
        void result.catch(() => undefined).then(() => {
          if (this.backgroundStarted || this.backgroundTimer) return;
          this.backgroundTimer = setTimeout(() => this.startBackground(), this.backgroundDelayMs);
          this.backgroundTimer.unref();
        });
      }
      return { result };
    }
    const old = this.active!;
    const result = (await this.switchToSpare()).submit(data, ts);
    // retire the old process and start the next spare once the keyframe is out and its receiver
    // has run: both would compete with it for the CPU, and spawn() blocks the event loop ~5 ms
    void result.catch(() => undefined).then(() => setImmediate(() => {
      void old.retire().finally(() => this.retiring.delete(old));
      if (!this.closing && !this.spare) this.spare = this.spawn();
    }));
    return { result };
  }

  private async switchToSpare(): Promise<X264Process> {
    // stays in this.spare while priming so that close() can find and kill it
    const next = (this.spare ??= this.spawn());
    try {
      await next.primed;
    } catch (e) {
      // leave the active process in place; the next forced keyframe starts another spare
      if (this.spare === next) this.spare = null;
      void next.kill('spare failed');
      throw new Error(`could not force a keyframe: ${(e as Error).message}`);
    }
    if (this.closing) throw new Error('H264 encoder closed');
    this.spare = null;
    this.retiring.add(this.active!);
    this.active = next;
    // same parameters give the same avcC; should a different ffmpeg ever disagree, follow it
    const cfg = this.configFor(next);
    if (!this.cfg || !sameBytes(this.cfg.description!, cfg.description!)) this.cfg = cfg;
    return next;
  }

  private spawn(): X264Process {
    const primeFrames = 1 + (this.generation++ % 2);
    return new X264Process(this.opts, primeFrames, this.processDied);
  }

  private readonly processDied = (p: X264Process, e: Error): void => {
    if (p === this.active) this.failure ??= e;
    if (p === this.spare) this.spare = null;
  };

  private configFor(p: X264Process): DecoderConfig {
    const avcC = p.avcC!;
    const { nalLengthSize } = parseAvcC(avcC);
    // the stream format promises 4-byte NAL lengths; ffmpeg's FLV muxer always writes 4
    if (nalLengthSize !== 4) throw new Error(`ffmpeg wrote ${nalLengthSize}-byte NAL lengths; 4 expected`);
    return { codec: 'H264', mime: avcCodecString(avcC), width: this.opts.width, height: this.opts.height, description: avcC };
  }
}

/**
 * One primed ffmpeg kept ready per VM for the next session's stream parameters (those of the VM's
 * last session, at first the usual 1280x720 in the pictures of the VM's platform), so that a session's first frame does not wait for an
 * encoder to start. A session with other parameters starts its own, as without it.
 */
export class WarmX264 {
  private ready: { key: string; proc: X264Process } | null = null;
  private closed = false;

  constructor(initial: EncoderOptions | null) {
    if (initial) this.keep(initial);
  }

  /** the primed process for these parameters, once; null when there is none */
  take(opts: EncoderOptions): X264Process | null {
    const r = this.ready;
    if (!r || r.key !== keyOf(opts)) return null;
    this.ready = null;
    return r.proc;
  }

  /**
   * Takes a session's unused spare (primed, no real picture sent: its next output is an IDR) as the
   * kept process when there is none; false: the caller keeps it (and kills it).
   */
  adopt(opts: EncoderOptions, proc: X264Process): boolean {
    if (this.closed || this.ready || !proc.fresh) return false;
    const r = (this.ready = { key: keyOf(opts), proc });
    proc.onUnexpectedExit = () => {
      if (this.ready === r) this.ready = null;
    };
    return true;
  }

  /** keeps a primed process for these parameters (replacing one for others) */
  keep(opts: EncoderOptions): void {
    if (this.closed || this.ready?.key === keyOf(opts)) return;
    void ffmpegAvailable().then((ok) => {
      if (!ok || this.closed || this.ready?.key === keyOf(opts)) return;
      const old = this.ready;
      const proc = new X264Process(opts, 1, (p) => {
        if (this.ready?.proc === p) this.ready = null;
      });
      this.ready = { key: keyOf(opts), proc };
      if (old) void old.proc.kill('warm encoder replaced');
    });
  }

  /** pid of the kept process (monitoring, tests) */
  pid(): number | undefined {
    return this.ready?.proc.pid;
  }

  async close(): Promise<void> {
    this.closed = true;
    const r = this.ready;
    this.ready = null;
    if (r) await r.proc.kill('warm encoder closed');
  }
}

const keyOf = (o: EncoderOptions): string => `${o.width}x${o.height}@${frameRate(o)}/${Math.max(100, Math.round(o.bitrateKbps))}/${o.pixelFormat ?? 'rgba'}`;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);
}
