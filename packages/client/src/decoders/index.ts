// Decoders for Node clients (tests, the `uve` CLI, benchmarks): a frame message's payload in, an
// RGBA picture out. Browsers use WebCodecs instead. H264 needs ffmpeg on PATH; MJPEG uses sharp.
import { H264Decoder } from './h264';
import { MjpegDecoder } from './mjpeg';

/** One RGBA picture, rows tightly packed (stride = width * 4); same shape as the agent's RawFrame. */
export interface DecodedFrame {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface FrameDecoder {
  /**
   * Decodes one payload: a JPEG image or one H264 access unit in AVCC form. Results settle in call
   * order, one per call. H264 must start at a keyframe.
   */
  decode(payload: Uint8Array, keyframe: boolean): Promise<DecodedFrame>;
  close(): Promise<void>;
}

export interface NodeDecoderConfig {
  codec: 'H264' | 'MJPEG';
  width: number;
  height: number;
  /** avcC record (the `codec` message's description, base64-decoded); required for H264 */
  description?: Uint8Array;
  /** nominal frame rate of the stream; only labels timestamps inside ffmpeg (default 60) */
  fps?: number;
}

export function createNodeDecoder(config: NodeDecoderConfig): FrameDecoder {
  switch (config.codec) {
    case 'MJPEG':
      return new MjpegDecoder();
    case 'H264':
      if (!config.description) throw new Error('an H264 decoder needs the avcC record (description)');
      return new H264Decoder(config.width, config.height, config.description, config.fps ?? 60);
    default:
      throw new Error(`no Node decoder for codec ${String((config as { codec: unknown }).codec)}`);
  }
}

export { H264Decoder, avccToAnnexB } from './h264';
export { MjpegDecoder } from './mjpeg';
