// The FULL state blob (NO_LOSS reconnection): header, pending UVE-4 requests, mutable globals,
// then the linear memory in 1 MiB pieces, each empty (all zero), raw or deflated. Format 3 stores
// the raw pieces first, then the deflated ones: the VM Data store cuts a blob into 1 MiB chunks at
// fixed offsets and keeps each chunk once (content-addressed), so a raw piece must not move when a
// piece before it shrinks or grows (format 2 kept the pieces in memory order: the first deflated
// piece that changed its length shifted every chunk after it, and none of them deduplicated).
// Formats 2 and 1 (the whole memory deflated as one stream) are still read. Layout in
// docs/wasm-abi.md ("FULL snapshots").
import { promisify } from 'node:util';
import { deflate, inflate } from 'node:zlib';
import { ABI_VERSION } from './abi';
import type { ValType } from './binary';
import { PAGE_BYTES } from './webassembly';

const deflateAsync = promisify(deflate);
const inflateAsync = promisify(inflate);
/**
 * zlib's default 16 KiB output pieces cost a thread-pool round trip each (8,192 for 128 MiB, plus
 * a copy to join them): the memory is inflated into one piece of its known size and deflated in
 * 1 MiB pieces. Level 1: most of a memory is either near-empty or incompressible, where a
 * deeper match search only costs time (16 MiB of random bytes: 0.5-0.9 s at the default level 6).
 */
const DEFLATE_OPTIONS = { level: 1, chunkSize: 1024 * 1024 };

const MAGIC = 0x57455655; // 'UVEW' little-endian
const FORMAT_VERSION = 3;
/** pieces in memory order */
const MEMORY_ORDER_FORMAT = 2;
const WHOLE_DEFLATED_FORMAT = 1;
const READ_FORMATS: readonly number[] = [FORMAT_VERSION, MEMORY_ORDER_FORMAT, WHOLE_DEFLATED_FORMAT];
const HEADER_BYTES = 80;
const PENDING_BYTES = 8;
const GLOBAL_BYTES = 16;
const PIECE_ENTRY_BYTES = 8;
/** memory per piece (16 pages): small enough that zero and incompressible stretches are caught */
export const PIECE_BYTES = 1024 * 1024;
/**
 * A piece whose first 64 KiB do not shrink is stored raw without deflating the rest: random-like
 * memory deflates at ~30 MB/s here and gains nothing (at worst a mixed piece is stored larger).
 */
const PROBE_BYTES = 64 * 1024;
/**
 * The deflate probe's windows, spread over the piece: a piece can be compressible where it starts
 * and noise after (the UA's own data, then a buffer it filled), and deflate crawls through noise
 * (~20 ms per MiB at level 1 here, against 1-2 for compressible bytes) to save almost nothing: one
 * such piece was most of a 16 MiB save's encoding (21 of 27 ms, to save 180 KB).
 */
const PROBE_WINDOWS = 4;
const PROBE_WINDOW_BYTES = PROBE_BYTES / PROBE_WINDOWS;
const PIECE_KIND = ['zero', 'raw', 'deflate'] as const;
export type PieceKind = (typeof PIECE_KIND)[number];
const TYPE_CODE: Readonly<Record<string, number>> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c };

export interface SnapshotGlobal {
  index: number;
  type: ValType;
  value: number | bigint;
}

export interface FullState {
  moduleSha256: Buffer;
  width: number;
  height: number;
  framebuffer: number;
  nextRequestId: number;
  appClockMs: number;
  /** UVE-4 requests not yet answered to the guest: [requestId, kind code] */
  pending: Array<[number, number]>;
  globals: SnapshotGlobal[];
  memory: Uint8Array;
}

export class SnapshotError extends Error {}


/** One piece of a decoded memory: where it goes, and its bytes as stored (a view into the blob) */
export interface MemoryPiece {
  offset: number;
  length: number;
  kind: PieceKind;
  /** empty for 'zero'; `length` bytes for 'raw'; a zlib stream that inflates to `length` for 'deflate' */
  bytes: Uint8Array;
}

/** A decoded blob: the memory stays in its pieces, written into the guest's memory by the guest worker */
export interface DecodedFullState extends Omit<FullState, 'memory'> {
  memoryBytes: number;
  pieces: MemoryPiece[];
}

const EMPTY = Buffer.alloc(0);
let zeros: Buffer | undefined;

/**
 * A piece whose sampled bytes look like noise is stored raw without even the probe: the probe
 * costs a thread-pool round trip and 1-6 ms of deflate per piece (16 MiB of random memory: 37-100
 * ms here, in every save and staging), where 16 Ki samples cost ~0.03 ms. Noise measures
 * 7.98-7.99 bits per byte on 16 Ki samples; code, text, pointers and pixels far less. What it can
 * miss is noise that repeats (a random block copied over and over), stored raw instead of deflated.
 */
const NOISE_BITS_PER_BYTE = 7.95;
const NOISE_SAMPLES = 16 * 1024;
const histogram = new Uint32Array(256);

/** order-0 entropy (bits per byte) of every 4th byte of the piece's first 64 KiB */
function sampledEntropy(raw: Uint8Array): number {
  histogram.fill(0);
  const n = Math.min(NOISE_SAMPLES, raw.length >> 2);
  for (let i = 0; i < n; i++) histogram[raw[i << 2]!]!++;
  let bits = 0;
  for (const c of histogram) if (c) bits -= (c / n) * Math.log2(c / n);
  return bits;
}

async function packPiece(raw: Buffer): Promise<[PieceKind, Buffer]> {
  zeros ??= Buffer.alloc(PIECE_BYTES);
  if (raw.equals(zeros.subarray(0, raw.length))) return ['zero', EMPTY];
  if (raw.length > PROBE_BYTES && sampledEntropy(raw) >= NOISE_BITS_PER_BYTE) return ['raw', raw];
  if (raw.length > PROBE_BYTES) {
    // raw as soon as one window does not shrink: that part is noise
    const stride = (raw.length - PROBE_WINDOW_BYTES) / (PROBE_WINDOWS - 1);
    const probes = await Promise.all(Array.from({ length: PROBE_WINDOWS }, (_, w) => {
      const at = Math.floor(w * stride);
      return deflateAsync(raw.subarray(at, at + PROBE_WINDOW_BYTES), { level: DEFLATE_OPTIONS.level, chunkSize: 2 * PROBE_WINDOW_BYTES });
    }));
    if (probes.some((p) => p.length >= PROBE_WINDOW_BYTES)) return ['raw', raw];
  }
  const packed = await deflateAsync(raw, DEFLATE_OPTIONS);
  return packed.length < raw.length ? ['deflate', packed] : ['raw', raw];
}

/** The state besides its memory: what a blob's front holds. */
export type FullStateFront = Omit<FullState, 'memory'>;

/**
 * Where a blob's memory goes for encodeFullStateInPlace: after `fixed` bytes and `perPiece` for
 * each piece of `pieceBytes` (the piece table), i.e. frontBytes. For the guest's thread, which
 * writes the memory there without this module.
 */
export interface FrontLayout {
  fixed: number;
  perPiece: number;
  pieceBytes: number;
}

export function frontLayout(pending: number, globals: number): FrontLayout {
  return { fixed: HEADER_BYTES + pending * PENDING_BYTES + globals * GLOBAL_BYTES, perPiece: PIECE_ENTRY_BYTES, pieceBytes: PIECE_BYTES };
}

/** the bytes of a blob before its pieces (header, pending requests, globals, piece table) */
export function frontBytes(f: FrontLayout, memoryBytes: number): number {
  return f.fixed + f.perPiece * Math.ceil(memoryBytes / f.pieceBytes);
}

export async function encodeFullState(s: FullState): Promise<Uint8Array> {
  const at = frontBytes(frontLayout(s.pending.length, s.globals.length), s.memory.byteLength);
  const buf = Buffer.allocUnsafe(at + s.memory.byteLength);
  buf.set(s.memory, at);
  return encodeFullStateInPlace(s, buf, s.memory.byteLength);
}

/**
 * Encodes, in place, a state whose memory (`memoryBytes`) lies in `buf` right after the room its
 * front takes (frontBytes): the blob is `buf`'s beginning, returned as a view of it. The memory is
 * thus written once, where the guest's thread copies it out (the agent's kept, already touched
 * buffer), and packed where it lies: no fresh buffers of the memory's size, whose first touch
 * costs ~3 ms per MiB on this kind of machine (docs/performance.md).
 */
export async function encodeFullStateInPlace(s: FullStateFront, buf: Uint8Array, memoryBytes: number): Promise<Buffer> {
  const out = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const front = frontBytes(frontLayout(s.pending.length, s.globals.length), memoryBytes);
  if (out.length < front + memoryBytes) throw new SnapshotError('the buffer does not hold the memory after the front');
  const ranges: Buffer[] = [];
  for (let at = 0; at < memoryBytes; at += PIECE_BYTES) ranges.push(out.subarray(front + at, front + Math.min(at + PIECE_BYTES, memoryBytes)));
  // every piece is packed before any moves: a deflate reads its piece where it lies
  const pieces = await Promise.all(ranges.map(packPiece));
  const tableBytes = pieces.length * PIECE_ENTRY_BYTES;
  const memoryPart = tableBytes + pieces.reduce((n, [, b]) => n + b.length, 0);
  // raw pieces first (each exactly a piece long: where one is stays put while deflated pieces
  // change), moved down in memory order: a piece's new place never reaches a piece not yet moved
  let o = front;
  for (const [kind, bytes] of pieces) {
    if (kind !== 'raw') continue;
    const from = bytes.byteOffset - out.byteOffset;
    if (from !== o) out.copyWithin(o, from, from + bytes.length);
    o += bytes.length;
  }
  for (const [kind, bytes] of pieces) if (kind !== 'raw') o += bytes.copy(out, o);
  // the front (with its padding) last: it lies below the memory, which it never overlapped
  out.fill(0, 0, front);
  o = 0;
  o = out.writeUInt32LE(MAGIC, o);
  o = out.writeUInt16LE(FORMAT_VERSION, o);
  o = out.writeUInt16LE(ABI_VERSION, o);
  o += s.moduleSha256.copy(out, o);
  o = out.writeUInt32LE(s.width, o);
  o = out.writeUInt32LE(s.height, o);
  o = out.writeUInt32LE(s.framebuffer, o);
  o = out.writeUInt32LE(s.nextRequestId, o);
  o = out.writeDoubleLE(s.appClockMs, o);
  o = out.writeUInt32LE(s.pending.length, o);
  o = out.writeUInt32LE(s.globals.length, o);
  o = out.writeUInt32LE(memoryBytes / PAGE_BYTES, o);
  o = out.writeUInt32LE(memoryPart, o);
  for (const [id, kind] of s.pending) {
    o = out.writeUInt32LE(id, o);
    o = out.writeUInt32LE(kind, o);
  }
  for (const g of s.globals) {
    o = out.writeUInt32LE(g.index, o);
    out.writeUInt8(TYPE_CODE[g.type], o);
    o += 4;
    switch (g.type) {
      case 'i32': out.writeInt32LE(Number(g.value), o); break;
      case 'i64': out.writeBigInt64LE(BigInt(g.value), o); break;
      case 'f32': out.writeFloatLE(Number(g.value), o); break;
      case 'f64': out.writeDoubleLE(Number(g.value), o); break;
      default: throw new SnapshotError(`global ${g.index} of type ${g.type} cannot be saved`);
    }
    o += 8;
  }
  for (const [kind, bytes] of pieces) {
    out.writeUInt8(PIECE_KIND.indexOf(kind), o);
    out.writeUInt32LE(bytes.length, o + 4);
    o += PIECE_ENTRY_BYTES;
  }
  return out.subarray(0, front - tableBytes + memoryPart);
}

/**
 * The memory size a snapshot's header (its first HEADER_BYTES) announces, before the rest has come;
 * null when `head` is no FULL snapshot this host reads or its memory is over `maxPages`.
 */
export function announcedMemoryBytes(head: Uint8Array, maxPages: number): number | null {
  if (head.byteLength < HEADER_BYTES) return null;
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const format = b.readUInt16LE(4);
  if (b.readUInt32LE(0) !== MAGIC || !READ_FORMATS.includes(format) || b.readUInt16LE(6) !== ABI_VERSION) return null;
  const pages = b.readUInt32LE(72);
  return pages <= maxPages ? pages * PAGE_BYTES : null;
}

/**
 * `maxPages`: the most memory the restoring host allows; a larger snapshot is refused before
 * anything of its size is allocated. Format 2 pieces stay views into `data` (nothing inflated
 * here); a format 1 memory is inflated into one raw piece.
 */
export async function decodeFullState(data: Uint8Array, maxPages = Number.POSITIVE_INFINITY): Promise<DecodedFullState> {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < HEADER_BYTES || b.readUInt32LE(0) !== MAGIC) throw new SnapshotError('not a WASM FULL snapshot');
  const format = b.readUInt16LE(4);
  if (!READ_FORMATS.includes(format)) throw new SnapshotError(`snapshot format ${format} is not supported`);
  if (b.readUInt16LE(6) !== ABI_VERSION) throw new SnapshotError(`snapshot is for ABI version ${b.readUInt16LE(6)}`);
  const pendingCount = b.readUInt32LE(64);
  const globalCount = b.readUInt32LE(68);
  const pages = b.readUInt32LE(72);
  const memoryPart = b.readUInt32LE(76);
  if (b.length !== HEADER_BYTES + pendingCount * PENDING_BYTES + globalCount * GLOBAL_BYTES + memoryPart) throw new SnapshotError('snapshot length does not match its header');
  if (pages > maxPages) throw new SnapshotError(`snapshot memory (${pages} pages of 64 KiB) does not fit this host's limit of ${maxPages}`);
  let o = HEADER_BYTES;
  const pending: Array<[number, number]> = [];
  for (let i = 0; i < pendingCount; i++, o += PENDING_BYTES) pending.push([b.readUInt32LE(o), b.readUInt32LE(o + 4)]);
  const globals: SnapshotGlobal[] = [];
  for (let i = 0; i < globalCount; i++, o += GLOBAL_BYTES) {
    const index = b.readUInt32LE(o);
    const code = b.readUInt8(o + 4);
    const v = o + 8;
    switch (code) {
      case TYPE_CODE.i32: globals.push({ index, type: 'i32', value: b.readInt32LE(v) }); break;
      case TYPE_CODE.i64: globals.push({ index, type: 'i64', value: b.readBigInt64LE(v) }); break;
      case TYPE_CODE.f32: globals.push({ index, type: 'f32', value: b.readFloatLE(v) }); break;
      case TYPE_CODE.f64: globals.push({ index, type: 'f64', value: b.readDoubleLE(v) }); break;
      default: throw new SnapshotError(`global ${index} has unknown type code ${code}`);
    }
  }
  const memoryBytes = pages * PAGE_BYTES;
  const pieces = format === WHOLE_DEFLATED_FORMAT ? [{ offset: 0, length: memoryBytes, kind: 'raw' as const, bytes: await inflateWhole(b.subarray(o), memoryBytes) }] : readPieces(b.subarray(o), memoryBytes, format === FORMAT_VERSION);
  return {
    moduleSha256: Buffer.from(b.subarray(8, 40)),
    width: b.readUInt32LE(40),
    height: b.readUInt32LE(44),
    framebuffer: b.readUInt32LE(48),
    nextRequestId: b.readUInt32LE(52),
    appClockMs: b.readDoubleLE(56),
    pending,
    globals,
    memoryBytes,
    pieces,
  };
}

/** format 1: the whole memory as one zlib stream, inflated into one buffer of the size the header gives */
async function inflateWhole(packed: Buffer, memoryBytes: number): Promise<Buffer> {
  let memory: Buffer;
  try {
    memory = await inflateAsync(packed, { chunkSize: Math.max(64, memoryBytes), maxOutputLength: Math.max(1, memoryBytes) });
  } catch (e) {
    throw new SnapshotError(`snapshot memory is corrupt: ${(e as Error).message}`);
  }
  if (memory.length !== memoryBytes) throw new SnapshotError('snapshot memory size does not match its header');
  return memory;
}

/**
 * Formats 2 and 3: the piece table, checked against the memory size and the bytes that follow it;
 * `rawFirst` (format 3): the raw pieces' bytes come first, then the others', each in memory order.
 */
function readPieces(part: Buffer, memoryBytes: number, rawFirst: boolean): MemoryPiece[] {
  const count = Math.ceil(memoryBytes / PIECE_BYTES);
  const tableBytes = count * PIECE_ENTRY_BYTES;
  if (part.length < tableBytes) throw new SnapshotError('snapshot memory is corrupt: its piece table is cut short');
  const entries: Array<{ i: number; kind: PieceKind; stored: number; offset: number; length: number }> = [];
  for (let i = 0; i < count; i++) {
    const e = i * PIECE_ENTRY_BYTES;
    const kind = PIECE_KIND[part.readUInt8(e)];
    const stored = part.readUInt32LE(e + 4);
    const offset = i * PIECE_BYTES;
    const length = Math.min(PIECE_BYTES, memoryBytes - offset);
    if (!kind) throw new SnapshotError(`snapshot memory is corrupt: piece ${i} has unknown kind ${part.readUInt8(e)}`);
    const fits = kind === 'zero' ? stored === 0 : kind === 'raw' ? stored === length : stored > 0;
    if (!fits) throw new SnapshotError(`snapshot memory is corrupt: piece ${i} (${kind}) has a wrong length ${stored}`);
    entries.push({ i, kind, stored, offset, length });
  }
  const inBlobOrder = rawFirst ? [...entries.filter((p) => p.kind === 'raw'), ...entries.filter((p) => p.kind !== 'raw')] : entries;
  const pieces: MemoryPiece[] = new Array(count);
  let at = tableBytes;
  for (const { i, kind, stored, offset, length } of inBlobOrder) {
    if (at + stored > part.length) throw new SnapshotError(`snapshot memory is corrupt: piece ${i} (${kind}) has a wrong length ${stored}`);
    pieces[i] = { offset, length, kind, bytes: part.subarray(at, at + stored) };
    at += stored;
  }
  if (at !== part.length) throw new SnapshotError('snapshot memory is corrupt: its pieces do not fill its length');
  return pieces;
}
