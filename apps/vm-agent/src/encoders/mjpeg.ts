// MJPEG: every frame a JPEG (so every frame is a keyframe), encoded by sharp/libvips on the libuv
// thread pool. No system packages; 20-300x the bitrate of H264 (see /work/shared/notes/streaming.md).
//
// sharp settings, measured at 1280x720 q75 on 2 cores (p50 of 150 frames, ~6.3-7.3 ms either way):
// - sharp.cache(false): the libvips operation cache never hits for fresh raw frames and only holds
//   memory; turning it off made no measurable difference in speed, so it is off.
// - sharp.concurrency(): left at sharp's default (1 on glibc without jemalloc, else the core count).
//   JPEG encoding is serial in libjpeg, so 2 threads per image gained nothing measurable, and
//   parallelism across sessions comes from the thread pool. It is process-wide, so not ours to set.
// Frames are read asynchronously: the caller must not change frame.data until encode() resolves.
import sharp from 'sharp';
import type { RawFrame } from '../runtimes/runtime';
import { frameMismatch, type DecoderConfig, type EncodedFrame, type EncoderOptions, type VideoEncoder } from './encoder';

const DEFAULT_QUALITY = 75;

export class MjpegEncoder implements VideoEncoder {
  readonly codec = 'MJPEG' as const;
  private readonly quality: number;
  private closed = false;

  constructor(private readonly opts: EncoderOptions) {
    if (!(opts.width > 0 && opts.height > 0)) throw new Error(`MJPEG needs positive dimensions, got ${opts.width}x${opts.height}`);
    if ((opts.pixelFormat ?? 'rgba') !== 'rgba') throw new Error(`MJPEG takes RGBA pictures, not ${opts.pixelFormat}`);
    this.quality = Math.min(100, Math.max(1, Math.round(opts.quality ?? DEFAULT_QUALITY)));
    sharp.cache(false);
  }

  async ready(): Promise<void> {}

  config(): DecoderConfig {
    return { codec: 'MJPEG', mime: 'image/jpeg', width: this.opts.width, height: this.opts.height };
  }

  async encode(frame: RawFrame, opts: { keyframe: boolean; ts: number }): Promise<EncodedFrame> {
    if (this.closed) throw new Error('MJPEG encoder closed');
    const { width, height } = this.opts;
    const mismatch = frameMismatch('MJPEG', this.opts, frame);
    if (mismatch) throw new Error(mismatch);
    const jpeg = await sharp(frame.data, { raw: { width, height, channels: 4 } })
      .jpeg({ quality: this.quality, chromaSubsampling: '4:2:0', mozjpeg: false })
      .toBuffer();
    return { data: new Uint8Array(jpeg.buffer, jpeg.byteOffset, jpeg.byteLength), keyframe: true, ts: opts.ts };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
