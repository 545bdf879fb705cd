// VM Data as a delta (UVE-5 update): a FULL state whose unchanged chunks are named, not sent. While
// a NO_LOSS session runs, its VM stages the UA's state with the VMM now and then (PUT
// <VM_DATA_PATH>/sessions/<id>/staged); its save at a drop or at the end (PUT
// <VM_DATA_PATH>/sessions/<id>) then sends only the chunks that changed since, and names the others
// by their sha256: the VMM takes them from what the session staged. The time from the drop to the
// VM Data stored goes with what changed, not with the size of the state.
//
// Body (content-type VM_DATA_DELTA_CONTENT_TYPE), little-endian:
//   0   4  magic "UVED"
//   4   2  format version 1
//   6   2  0
//   8   8  size of the whole VM Data in bytes (u64)
//   16 32  sha256 of the whole VM Data
//   48  4  N: chunks, ceil(size / VM_DATA_CHUNK_BYTES)
//   52 33N per chunk in order: its sha256 (32), 1 when its bytes follow, 0 when the session staged it
//   ...    the bytes of the chunks marked 1, in order (each VM_DATA_CHUNK_BYTES, the last one the rest)

/** The VM Data store's chunk: a delta names the whole VM Data's bytes in pieces of this size. */
export const VM_DATA_CHUNK_BYTES = 1024 * 1024;
/**
 * A VM Data's head: its first bytes, at most this many (a WASM FULL state's header, which gives
 * its memory's size). The VMM keeps them with the snapshot and sends them in the commands that
 * restore it, so that the UA makes room for the state before the download's first bytes come.
 */
export const VM_DATA_HEAD_BYTES = 256;
export const VM_DATA_DELTA_CONTENT_TYPE = 'application/vnd.uve.vm-data-delta';
const MAGIC = 0x44455655; // "UVED"
const VERSION = 1;
export const VM_DATA_DELTA_HEAD_BYTES = 52;
export const VM_DATA_DELTA_ENTRY_BYTES = 33;

export interface VmDataDeltaHead {
  sizeBytes: number;
  /** of the whole VM Data */
  sha256: Uint8Array;
  chunks: number;
}

export interface VmDataDeltaChunk {
  sha256: Uint8Array;
  /** its bytes follow in the body; else the session's staged chunk of this sha256 */
  sent: boolean;
}

/** chunks of VM Data of `sizeBytes` */
export const vmDataChunkCount = (sizeBytes: number): number => Math.ceil(sizeBytes / VM_DATA_CHUNK_BYTES);
/** bytes of chunk `seq` of VM Data of `sizeBytes` */
export const vmDataChunkLength = (sizeBytes: number, seq: number): number => Math.min(VM_DATA_CHUNK_BYTES, sizeBytes - seq * VM_DATA_CHUNK_BYTES);

/** A delta's head and chunk list (the bytes of the sent chunks follow it). */
export function encodeVmDataDelta(head: Omit<VmDataDeltaHead, 'chunks'>, chunks: VmDataDeltaChunk[]): Uint8Array {
  if (chunks.length !== vmDataChunkCount(head.sizeBytes)) throw new Error(`VM Data of ${head.sizeBytes} bytes has ${vmDataChunkCount(head.sizeBytes)} chunks, not ${chunks.length}`);
  const out = new Uint8Array(VM_DATA_DELTA_HEAD_BYTES + VM_DATA_DELTA_ENTRY_BYTES * chunks.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, VERSION, true);
  view.setBigUint64(8, BigInt(head.sizeBytes), true);
  out.set(head.sha256, 16);
  view.setUint32(48, chunks.length, true);
  chunks.forEach((c, i) => {
    const at = VM_DATA_DELTA_HEAD_BYTES + VM_DATA_DELTA_ENTRY_BYTES * i;
    out.set(c.sha256, at);
    out[at + 32] = c.sent ? 1 : 0;
  });
  return out;
}

/** The head of a delta from its first VM_DATA_DELTA_HEAD_BYTES; throws on anything else. */
export function decodeVmDataDeltaHead(b: Uint8Array, maxBytes: number): VmDataDeltaHead {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.byteLength < VM_DATA_DELTA_HEAD_BYTES || view.getUint32(0, true) !== MAGIC) throw new Error('not a VM Data delta (magic)');
  if (view.getUint16(4, true) !== VERSION) throw new Error(`VM Data delta format ${view.getUint16(4, true)} is not known here`);
  const size = view.getBigUint64(8, true);
  if (size === 0n || size > BigInt(maxBytes)) throw new Error(`VM Data delta announces ${size} bytes (1 to ${maxBytes})`);
  const sizeBytes = Number(size);
  const chunks = view.getUint32(48, true);
  if (chunks !== vmDataChunkCount(sizeBytes)) throw new Error(`VM Data delta announces ${chunks} chunks for ${sizeBytes} bytes`);
  return { sizeBytes, sha256: b.slice(16, 48), chunks };
}

/** The chunk list of a delta, from its VM_DATA_DELTA_ENTRY_BYTES * chunks bytes after the head. */
export function decodeVmDataDeltaChunks(b: Uint8Array, chunks: number): VmDataDeltaChunk[] {
  if (b.byteLength !== VM_DATA_DELTA_ENTRY_BYTES * chunks) throw new Error('VM Data delta chunk list cut short');
  return Array.from({ length: chunks }, (_, i) => {
    const at = VM_DATA_DELTA_ENTRY_BYTES * i;
    const flag = b[at + 32];
    if (flag !== 0 && flag !== 1) throw new Error(`VM Data delta chunk ${i} is neither sent nor staged (${flag})`);
    return { sha256: b.slice(at, at + 32), sent: flag === 1 };
  });
}
