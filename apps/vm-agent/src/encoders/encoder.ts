// Video encoders behind one interface: the session's stream pushes pictures in (RGBA, or I420 for
// H264) and sends the access units that come out. MJPEG (sharp, no system packages) and H264
// (ffmpeg/libx264).
import type { DecoderConfig, VideoCodec } from '@uve/protocol';
import { formatOf, pictureBytes, type PixelFormat, type RawFrame } from '../runtimes/runtime';

export interface EncodedFrame {
  /** JPEG bytes (MJPEG) or one H264 access unit in AVCC form (4-byte big-endian NAL lengths) */
  data: Uint8Array;
  keyframe: boolean;
  /** the `ts` given to encode() for the picture this came from */
  ts: number;
}

export type { DecoderConfig } from '@uve/protocol';

export interface EncoderOptions {
  width: number;
  height: number;
  maxFps: number;
  bitrateKbps: number;
  /** JPEG quality 1..100 (MJPEG) */
  quality?: number;
  /** the pictures' format (default rgba); MJPEG takes rgba only, H264 either */
  pixelFormat?: PixelFormat;
}

/** The picture formats an encoder of `codec` takes, the one it takes without converting first. */
export function encoderPixelFormats(codec: VideoCodec): PixelFormat[] {
  return codec === 'H264' ? ['i420', 'rgba'] : ['rgba'];
}

/**
 * The format a session's pictures should come in: the first the encoder takes that the UA's runtime
 * gives (I420 needs even dimensions: else RGBA, which H264 refuses with its own reason).
 */
export function sessionPixelFormat(codec: VideoCodec, offered: readonly PixelFormat[] | undefined, width: number, height: number): PixelFormat {
  const even = width % 2 === 0 && height % 2 === 0;
  return encoderPixelFormats(codec).find((f) => (offered ?? ['rgba']).includes(f) && (f !== 'i420' || even)) ?? 'rgba';
}

/** why `frame` is not a picture of `opts` (an error text), or null */
export function frameMismatch(name: string, opts: EncoderOptions, frame: RawFrame): string | null {
  const { width, height } = opts;
  const format = opts.pixelFormat ?? 'rgba';
  if (frame.width === width && frame.height === height && formatOf(frame) === format && frame.data.byteLength === pictureBytes(format, width, height)) return null;
  return `${name} encoder is ${width}x${height} ${format}; got a ${frame.width}x${frame.height} ${formatOf(frame)} frame of ${frame.data.byteLength} bytes`;
}

export interface VideoEncoder {
  readonly codec: VideoCodec;
  /** resolves once the encoder can take frames (H264: ffmpeg started) */
  ready(): Promise<void>;
  /** decoder configuration, known after the first keyframe for H264 */
  config(): DecoderConfig | null;
  /**
   * Encodes one picture. With keyframe: true the output is an IDR (H264) so a new client can start
   * decoding. Resolves with the encoded frame for that picture (encoders here output one frame per
   * input: no B-frames, no lookahead).
   */
  encode(frame: RawFrame, opts: { keyframe: boolean; ts: number }): Promise<EncodedFrame>;
  /** a UC joined the stream: until one does, nothing asks for a keyframe beyond the first picture */
  clientJoined?(): void;
  close(): Promise<void>;
}
