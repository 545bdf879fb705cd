// Decoders for Node clients (tests, the `uve` CLI, benchmarks): a frame message's payload in, an
// RGBA picture out. Browsers use WebCodecs instead. H264 needs ffmpeg on PATH; MJPEG uses sharp.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { DecoderFactory } from '../stream-client';
import { H264Decoder, spawnH264Decoder } from './h264';
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

/** `h264Process`: an ffmpeg spawnH264Decoder started before the configuration was known */
export function createNodeDecoder(config: NodeDecoderConfig, h264Process?: ChildProcessWithoutNullStreams): FrameDecoder {
  switch (config.codec) {
    case 'MJPEG':
      return new MjpegDecoder();
    case 'H264':
      if (!config.description) throw new Error('an H264 decoder needs the avcC record (description)');
      return new H264Decoder(config.width, config.height, config.description, config.fps ?? 60, h264Process);
    default:
      throw new Error(`no Node decoder for codec ${String((config as { codec: unknown }).codec)}`);
  }
}

/**
 * StreamClient's `decoder` for Node (the CLI, tests, benches): with `prepare` the H264 decoder's
 * ffmpeg starts when the stream opens, while the VM starts the session, instead of when the `codec`
 * message comes (a native client opens its decoder with the stream; a browser's WebCodecs decoder
 * starts in milliseconds). `codecs` without H264 (MJPEG only) prepares nothing.
 */
export function nodeDecoderFactory(opts: { fps?: number; codecs?: readonly string[] } = {}): DecoderFactory {
  let prepared: ChildProcessWithoutNullStreams | null = null;
  // one that exited already (its 'close' may have passed) can neither be handed on nor killed
  const running = (p: ChildProcessWithoutNullStreams | null): p is ChildProcessWithoutNullStreams => !!p && p.exitCode === null && p.signalCode === null;
  const release = (): void => {
    if (running(prepared)) prepared.kill('SIGKILL');
    prepared = null;
  };
  const factory: DecoderFactory = (cfg) => {
    const take = cfg.codec === 'H264' && running(prepared) ? prepared : undefined;
    if (take) prepared = null;
    return createNodeDecoder({ codec: cfg.codec === 'H264' ? 'H264' : 'MJPEG', width: cfg.width, height: cfg.height, description: cfg.description, fps: opts.fps }, take);
  };
  factory.prepare = () => {
    if (prepared || (opts.codecs && !opts.codecs.includes('H264'))) return;
    const p = (prepared = spawnH264Decoder(opts.fps ?? 60));
    // until a decoder takes it: a failed start is the decoder's to report, and it is never waited on
    p.on('error', () => undefined);
    p.stdin.on('error', () => undefined);
  };
  factory.release = release;
  return factory;
}

export { H264Decoder, avccToAnnexB, h264DecoderArgs, spawnH264Decoder } from './h264';
export { MjpegDecoder } from './mjpeg';
