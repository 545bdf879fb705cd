// The FULL state blob (NO_LOSS reconnection): header, pending UVE-4 requests, mutable globals,
// then the whole linear memory, deflated. Layout in docs/wasm-abi.md ("FULL snapshots").
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
const FORMAT_VERSION = 1;
const HEADER_BYTES = 80;
const PENDING_BYTES = 8;
const GLOBAL_BYTES = 16;
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

export async function encodeFullState(s: FullState): Promise<Uint8Array> {
  const packed = await deflateAsync(s.memory, DEFLATE_OPTIONS);
  const size = HEADER_BYTES + s.pending.length * PENDING_BYTES + s.globals.length * GLOBAL_BYTES + packed.length;
  const out = Buffer.alloc(size);
  let o = 0;
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
  o = out.writeUInt32LE(s.memory.length / PAGE_BYTES, o);
  o = out.writeUInt32LE(packed.length, o);
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
  packed.copy(out, o);
  return out;
}

/** `maxPages`: the most memory the restoring host allows; a larger snapshot is refused before it is inflated */
export async function decodeFullState(data: Uint8Array, maxPages = Number.POSITIVE_INFINITY): Promise<FullState> {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < HEADER_BYTES || b.readUInt32LE(0) !== MAGIC) throw new SnapshotError('not a WASM FULL snapshot');
  if (b.readUInt16LE(4) !== FORMAT_VERSION) throw new SnapshotError(`snapshot format ${b.readUInt16LE(4)} is not supported`);
  if (b.readUInt16LE(6) !== ABI_VERSION) throw new SnapshotError(`snapshot is for ABI version ${b.readUInt16LE(6)}`);
  const pendingCount = b.readUInt32LE(64);
  const globalCount = b.readUInt32LE(68);
  const pages = b.readUInt32LE(72);
  const packedLength = b.readUInt32LE(76);
  if (b.length !== HEADER_BYTES + pendingCount * PENDING_BYTES + globalCount * GLOBAL_BYTES + packedLength) throw new SnapshotError('snapshot length does not match its header');
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
  let memory: Uint8Array;
  try {
    memory = await inflateAsync(b.subarray(o), { chunkSize: Math.max(64, pages * PAGE_BYTES), maxOutputLength: Math.max(1, pages * PAGE_BYTES) });
  } catch (e) {
    throw new SnapshotError(`snapshot memory is corrupt: ${(e as Error).message}`);
  }
  if (memory.length !== pages * PAGE_BYTES) throw new SnapshotError('snapshot memory size does not match its header');
  return {
    moduleSha256: Buffer.from(b.subarray(8, 40)),
    width: b.readUInt32LE(40),
    height: b.readUInt32LE(44),
    framebuffer: b.readUInt32LE(48),
    nextRequestId: b.readUInt32LE(52),
    appClockMs: b.readDoubleLE(56),
    pending,
    globals,
    memory,
  };
}
