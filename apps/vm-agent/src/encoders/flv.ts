// Incremental FLV tag reader for what `ffmpeg -c:v libx264 -f flv pipe:1` writes: the AVC sequence
// header tag carries the avcC record and every other video tag is exactly one access unit, so
// there is no need to look for the next start code (which would hold each frame back by one).
// Spec: Adobe FLV v10.1, annex E (FLV header, tags, VIDEODATA, AVCVIDEOPACKET).

const FLV_HEADER_MIN = 9;
const TAG_HEADER = 11;
const PREV_TAG_SIZE = 4;
const TAG_VIDEO = 9;
const CODEC_AVC = 7;
const FRAME_TYPE_KEY = 1;
const AVC_SEQUENCE_HEADER = 0;
const AVC_NALU = 1;

export type FlvEvent =
  /** AVCDecoderConfigurationRecord from the AVC sequence header tag */
  | { type: 'config'; avcC: Uint8Array }
  /** one access unit, NAL units with the length prefixes of the avcC (4 bytes from ffmpeg) */
  | { type: 'video'; keyframe: boolean; data: Uint8Array; dts: number; cts: number };

export class FlvParser {
  private buf: Uint8Array = new Uint8Array(0);
  private headerDone = false;

  /** Feeds bytes as they come off the pipe; returns the events completed by them, in order. */
  push(chunk: Uint8Array): FlvEvent[] {
    this.buf = this.buf.byteLength === 0 ? chunk : concat(this.buf, chunk);
    const events: FlvEvent[] = [];
    let pos = 0;
    if (!this.headerDone) {
      if (this.buf.byteLength < FLV_HEADER_MIN) return events;
      if (this.buf[0] !== 0x46 || this.buf[1] !== 0x4c || this.buf[2] !== 0x56) throw new Error('FLV: stream does not start with "FLV"');
      const dataOffset = readU32(this.buf, 5);
      if (this.buf.byteLength < dataOffset + PREV_TAG_SIZE) return events;
      pos = dataOffset + PREV_TAG_SIZE;
      this.headerDone = true;
    }
    while (this.buf.byteLength - pos >= TAG_HEADER) {
      const b = this.buf;
      const tagType = b[pos] & 0x1f; // upper bits: reserved + filter flag
      const size = (b[pos + 1] << 16) | (b[pos + 2] << 8) | b[pos + 3];
      const end = pos + TAG_HEADER + size + PREV_TAG_SIZE;
      if (b.byteLength < end) break;
      if (tagType === TAG_VIDEO && size >= 5) {
        const dts = ((b[pos + 7] << 24) | (b[pos + 4] << 16) | (b[pos + 5] << 8) | b[pos + 6]) >> 0;
        const ev = parseVideoTag(b.subarray(pos + TAG_HEADER, pos + TAG_HEADER + size), dts);
        if (ev) events.push(ev);
      }
      pos = end;
    }
    // keep the tail; copy so that a small remainder does not pin a large chunk
    this.buf = pos === 0 ? this.buf : this.buf.slice(pos);
    return events;
  }
}

function parseVideoTag(d: Uint8Array, dts: number): FlvEvent | null {
  if ((d[0] & 0x0f) !== CODEC_AVC) return null;
  const packetType = d[1];
  const cts = ((d[2] << 16) | (d[3] << 8) | d[4]) << 8 >> 8; // signed 24 bit
  // copies: the parser's buffer is reused and callers keep these past the next push
  if (packetType === AVC_SEQUENCE_HEADER) return { type: 'config', avcC: d.slice(5) };
  if (packetType === AVC_NALU) return { type: 'video', keyframe: d[0] >> 4 === FRAME_TYPE_KEY, data: d.slice(5), dts, cts };
  return null; // AVC end of sequence
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) >>> 0) + (b[at + 1] << 16) + (b[at + 2] << 8) + b[at + 3];
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

/** Fields of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) that users of the stream need. */
export interface AvcConfig {
  profileIdc: number;
  constraintFlags: number;
  levelIdc: number;
  nalLengthSize: number;
  sps: Uint8Array[];
  pps: Uint8Array[];
}

export function parseAvcC(avcC: Uint8Array): AvcConfig {
  if (avcC.byteLength < 7 || avcC[0] !== 1) throw new Error('avcC: not an AVCDecoderConfigurationRecord version 1');
  let pos = 5;
  const take = (count: number): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      if (pos + 2 > avcC.byteLength) throw new Error('avcC: truncated');
      const len = (avcC[pos] << 8) | avcC[pos + 1];
      if (pos + 2 + len > avcC.byteLength) throw new Error('avcC: truncated');
      out.push(avcC.subarray(pos + 2, pos + 2 + len));
      pos += 2 + len;
    }
    return out;
  };
  const sps = take(avcC[pos++] & 0x1f);
  if (pos >= avcC.byteLength) throw new Error('avcC: truncated');
  const pps = take(avcC[pos++]);
  return { profileIdc: avcC[1], constraintFlags: avcC[2], levelIdc: avcC[3], nalLengthSize: (avcC[4] & 3) + 1, sps, pps };
}

/** WebCodecs codec string (RFC 6381 'avc1.PPCCLL') for an avcC record. */
export function avcCodecString(avcC: Uint8Array): string {
  const { profileIdc, constraintFlags, levelIdc } = parseAvcC(avcC);
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');
  return `avc1.${hex(profileIdc)}${hex(constraintFlags)}${hex(levelIdc)}`;
}
