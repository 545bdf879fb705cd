// H264 for Node clients through one persistent ffmpeg: Annex B on stdin, raw RGBA on stdout.
//
// Latency: ffmpeg's raw h264 demuxer only knows an access unit is complete when it sees the first
// NAL unit of the next one, which would hold every picture back by one frame. Each access unit is
// therefore followed by an access unit delimiter (the legal first NAL of the next access unit), so
// the parser closes the picture at once. Frame threads delay output by a frame per thread, in the
// h264 decoder and (less obviously) in the rawvideo encoder behind it: both get one thread. With
// both measures a 720p picture is back in JS ~5-6 ms (p50) after its access unit was written;
// without them it came two input frames later. (An end-of-sequence NAL instead of the delimiter
// did not help; `-fflags nobuffer` made this ffmpeg 5.1 output no picture at all.)
// The first picture: no stream probing (`-nofind_stream_info`). Probing decoded the first keyframe
// with a decoder of its own before the real one decoded it again (bench decoder: first picture
// ~62 against ~74-80 ms without); the raw h264 input then has a stream whose size is not known
// until the first picture, so it is mapped by hand (`-map 0:v:0`) and the rawvideo output takes the
// input's time base (`-enc_time_base -1`; else it guesses 25 fps and logs non-monotonic timestamps).
// The stream's SPS size must be the configured width x height: output is cut every width*height*4.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { DecodedFrame, FrameDecoder } from './index';

const START_CODE = Uint8Array.of(0, 0, 0, 1);
/** access unit delimiter, primary_pic_type 7 (any slice type) */
const AUD = Uint8Array.of(0, 0, 0, 1, 0x09, 0xf0);
const STDERR_TAIL = 2_000;

/** SPS and PPS of an avcC record as Annex B, and the NAL length size it declares. */
function parameterSets(avcC: Uint8Array): { annexB: Uint8Array; nalLengthSize: number } {
  if (avcC.byteLength < 7 || avcC[0] !== 1) throw new Error('description is not an avcC record');
  const parts: Uint8Array[] = [];
  let pos = 5;
  // two lists (SPS, then PPS), each a count and 16-bit length-prefixed units
  for (const countMask of [0x1f, 0xff]) {
    const count = avcC[pos++] & countMask;
    for (let i = 0; i < count; i++) {
      const len = (avcC[pos] << 8) | avcC[pos + 1];
      if (pos + 2 + len > avcC.byteLength) throw new Error('avcC record is truncated');
      parts.push(START_CODE, avcC.subarray(pos + 2, pos + 2 + len));
      pos += 2 + len;
    }
  }
  return { annexB: concat(parts), nalLengthSize: (avcC[4] & 3) + 1 };
}

/** Rewrites one AVCC access unit (length-prefixed NAL units) with Annex B start codes. */
export function avccToAnnexB(au: Uint8Array, nalLengthSize = 4): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let pos = 0; pos < au.byteLength; ) {
    if (pos + nalLengthSize > au.byteLength) throw new Error('access unit is truncated');
    let len = 0;
    for (let i = 0; i < nalLengthSize; i++) len = len * 256 + au[pos + i];
    pos += nalLengthSize;
    if (len === 0 || pos + len > au.byteLength) throw new Error('access unit has a bad NAL unit length');
    parts.push(START_CODE, au.subarray(pos, pos + len));
    pos += len;
  }
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export function h264DecoderArgs(fps: number): string[] {
  return [
    '-hide_banner', '-nostdin', '-nostats', '-loglevel', 'error',
    // no `-fflags nobuffer`: see above
    '-probesize', '32', '-analyzeduration', '0', '-nofind_stream_info', '-flags', 'low_delay', '-threads', '1',
    '-f', 'h264', '-framerate', String(fps), '-i', 'pipe:0', '-map', '0:v:0',
    // the rawvideo encoder is frame-threaded by default, which holds each picture back by one
    '-threads', '1', '-fps_mode', 'passthrough', '-enc_time_base', '-1', '-flush_packets', '1', '-f', 'rawvideo', '-pix_fmt', 'rgba', 'pipe:1',
  ];
}

/**
 * An ffmpeg H264 decoder process. It needs none of the stream's parameters (the picture size comes
 * in-band, in the SPS), so it can start before they are known: its start (exec, loading libavcodec)
 * took 0.3-0.4 s on 2 busy cores, the whole of a warm session's time to first frame.
 */
export function spawnH264Decoder(fps = 60): ChildProcessWithoutNullStreams {
  return spawn('ffmpeg', h264DecoderArgs(fps), { stdio: ['pipe', 'pipe', 'pipe'] });
}

interface Pending {
  resolve: (f: DecodedFrame) => void;
  reject: (e: Error) => void;
}

export class H264Decoder implements FrameDecoder {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly closed: Promise<void>;
  private readonly paramSets: Uint8Array;
  private readonly nalLengthSize: number;
  private readonly frameBytes: number;
  private readonly pending: Pending[] = [];
  private out: Uint8Array;
  private filled = 0;
  private sawKeyframe = false;
  private failure: Error | null = null;
  private ending: string | null = null;
  private stderrTail = '';

  /** `child`: a process spawnH264Decoder started earlier (else one starts now) */
  constructor(private readonly width: number, private readonly height: number, avcC: Uint8Array, fps: number, child?: ChildProcessWithoutNullStreams) {
    ({ annexB: this.paramSets, nalLengthSize: this.nalLengthSize } = parameterSets(avcC));
    this.frameBytes = width * height * 4;
    this.out = new Uint8Array(this.frameBytes);
    this.child = child ?? spawnH264Decoder(fps);
    this.child.stdin.on('error', () => undefined); // EPIPE when ffmpeg died; reported via 'close'
    this.child.stdout.on('data', (d: Buffer) => this.onData(d));
    this.child.stderr.on('data', (d: Buffer) => (this.stderrTail = (this.stderrTail + d.toString()).slice(-STDERR_TAIL)));
    this.child.on('error', (e) => this.fail(new Error(`ffmpeg could not be started: ${e.message}`)));
    this.closed = new Promise((res) => this.child.on('close', (code, signal) => {
      this.fail(new Error(this.ending ?? `ffmpeg (h264 decoder) exited (code ${code}, signal ${signal})${this.stderrTail ? `: ${this.stderrTail.trim()}` : ''}`));
      res();
    }));
  }

  decode(payload: Uint8Array, keyframe: boolean): Promise<DecodedFrame> {
    if (this.failure) return Promise.reject(this.failure);
    // ffmpeg silently skips pictures it cannot decode, which would break the one-in-one-out pairing
    if (!keyframe && !this.sawKeyframe) return Promise.reject(new Error('H264 decoding must start at a keyframe'));
    let au: Uint8Array;
    try {
      au = avccToAnnexB(payload, this.nalLengthSize);
    } catch (e) {
      return Promise.reject(e);
    }
    this.sawKeyframe = true;
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      // SPS/PPS before every keyframe so that decoding can start at any of them
      this.child.stdin.write(concat(keyframe ? [this.paramSets, au, AUD] : [au, AUD]));
    });
  }

  async close(): Promise<void> {
    this.ending ??= 'H264 decoder closed';
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.closed;
  }

  private onData(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.byteLength) {
      const n = Math.min(chunk.byteLength - at, this.frameBytes - this.filled);
      this.out.set(chunk.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      if (this.filled === this.frameBytes) {
        const p = this.pending.shift();
        if (!p) {
          this.fail(new Error('ffmpeg produced a picture nobody asked for'));
          this.child.kill('SIGKILL');
          return;
        }
        p.resolve({ width: this.width, height: this.height, data: this.out });
        this.out = new Uint8Array(this.frameBytes);
        this.filled = 0;
      }
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.splice(0)) p.reject(this.failure);
  }
}
