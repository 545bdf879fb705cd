// What the Output Stream of a session will be, from the terminal's capabilities and access network.
import type { StreamParams, VideoCodec } from '@uve/protocol';
import type { TerminalCapabilities } from '../users/terminal.types';

/** Lower bandwidth first; VP8 is in the contract but no VM encodes it yet. */
const CODEC_PREFERENCE: VideoCodec[] = ['H264', 'VP8', 'MJPEG'];

const NETWORK_KBPS: Record<string, number> = {
  ETHERNET: 8000, WIFI: 6000, CELLULAR_5G: 6000, CELLULAR_4G: 3000, CELLULAR_3G: 800, UNKNOWN: 3000,
};

export function pickCodec(terminal: VideoCodec[], vm: VideoCodec[]): VideoCodec | null {
  return CODEC_PREFERENCE.find((c) => terminal.includes(c) && vm.includes(c)) ?? null;
}

const even = (n: number) => Math.max(2, Math.floor(n / 2) * 2);

export function negotiateStream(t: TerminalCapabilities, codec: VideoCodec): StreamParams {
  // render at the terminal's size, at most 1080p, even sizes for 4:2:0 chroma
  const scale = Math.min(1, 1920 / Math.max(t.screenWidth, t.screenHeight), 1080 / Math.min(t.screenWidth, t.screenHeight));
  const width = even(t.screenWidth * scale);
  const height = even(t.screenHeight * scale);
  const net = t.network?.type ?? 'UNKNOWN';
  let bitrateKbps = NETWORK_KBPS[net] ?? 3000;
  if (t.network?.downlinkKbps) bitrateKbps = Math.min(bitrateKbps, Math.floor(t.network.downlinkKbps * 0.7));
  let maxFps = Math.min(t.maxFrameRate ?? 60, 60);
  if (net === 'CELLULAR_3G' || bitrateKbps < 1000) maxFps = Math.min(maxFps, 20);
  return { codec, width, height, maxFps, bitrateKbps: Math.max(200, bitrateKbps) };
}
