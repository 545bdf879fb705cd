// Video encoders behind one interface: the session's stream pushes RGBA frames in and sends the
// access units that come out. MJPEG (sharp, no system packages) and H264 (ffmpeg/libx264).
import type { VideoCodec } from '@uve/protocol';
import type { RawFrame } from '../runtimes/runtime';

export interface EncodedFrame {
  /** JPEG bytes (MJPEG) or one H264 access unit in AVCC form (4-byte big-endian NAL lengths) */
  data: Uint8Array;
  keyframe: boolean;
  /** the `ts` given to encode() for the picture this came from */
  ts: number;
}

export interface DecoderConfig {
  codec: VideoCodec;
  /** WebCodecs codec string, e.g. 'avc1.42C01F', or 'image/jpeg' for MJPEG */
  mime: string;
  width: number;
  height: number;
  /** avcC record for H264 (AVCDecoderConfigurationRecord), none for MJPEG */
  description?: Uint8Array;
}

export interface EncoderOptions {
  width: number;
  height: number;
  maxFps: number;
  bitrateKbps: number;
  /** JPEG quality 1..100 (MJPEG) */
  quality?: number;
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
