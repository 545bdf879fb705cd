import type { LocalResourceKind, VideoCodec } from './enums';

/** Terminal capabilities as sent with a UA request (seed 7.3.2.1) and handed to the VM. */
export interface TerminalCapabilities {
  screenWidth: number;
  screenHeight: number;
  pixelRatio?: number | null;
  codecs: VideoCodec[];
  maxFrameRate?: number | null;
  localResources: LocalResourceKind[];
  touch?: boolean | null;
  platform?: string | null;
  network?: { type: string; downlinkKbps?: number | null; rttMs?: number | null } | null;
}

/** What the VMM negotiated for one session's Output Stream. */
export interface StreamParams {
  codec: VideoCodec;
  width: number;
  height: number;
  maxFps: number;
  /** target bitrate for codecs that take one, kbit/s */
  bitrateKbps: number;
}
