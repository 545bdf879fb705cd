// Encoder selection for a session's stream.
import type { VideoCodec } from '@uve/protocol';
import type { EncoderOptions, VideoEncoder } from './encoder';
import { ffmpegAvailable, H264Encoder, type WarmX264 } from './h264';
import { MjpegEncoder } from './mjpeg';

export type { DecoderConfig, EncodedFrame, EncoderOptions, VideoEncoder } from './encoder';
export { encoderPixelFormats, sessionPixelFormat } from './encoder';
export { ffmpegAvailable, H264Encoder, WarmX264 } from './h264';
export { MjpegEncoder } from './mjpeg';

/**
 * Creates an encoder; H264 needs ffmpeg with libx264 (check availableCodecs() first), else its
 * ready() rejects. `warm`: the VM's primed H264 process for the next session, if it keeps one.
 */
export function createEncoder(codec: VideoCodec, opts: EncoderOptions, warm: WarmX264 | null = null): VideoEncoder {
  switch (codec) {
    case 'MJPEG':
      return new MjpegEncoder(opts);
    case 'H264':
      return new H264Encoder(opts, warm);
    default:
      throw new Error(`no encoder for codec ${codec} in this agent (supported: H264, MJPEG)`);
  }
}

/**
 * Codecs this VM can encode, preferred first: H264 when ffmpeg has libx264, MJPEG always.
 * `libx264` known (true/false: the agent image records it) skips the probe, an ffmpeg start.
 */
export async function availableCodecs(libx264: 'probe' | 'true' | 'false' = 'probe'): Promise<VideoCodec[]> {
  return (await ffmpegAvailable(libx264 === 'probe' ? undefined : libx264 === 'true')) ? ['H264', 'MJPEG'] : ['MJPEG'];
}
