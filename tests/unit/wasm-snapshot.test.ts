// The FULL snapshot format (apps/vm-agent/src/runtimes/wasm/snapshot.ts): format 3's memory
// pieces (zero, raw, deflated; the raw ones first, so that unchanged memory keeps its place in the
// store's 1 MiB chunks), formats 2 and 1 still read, and damaged or oversized blobs refused.
import { createHash, randomBytes } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import { decodeFullState, encodeFullState, encodeFullStateInPlace, frontBytes, frontLayout, PIECE_BYTES, SnapshotError, type DecodedFullState, type FullState } from '../../apps/vm-agent/src/runtimes/wasm/snapshot';

const MiB = 1024 * 1024;

/** a memory of 4 MiB + 64 KiB: zero, random, text-like, zero again, and a short last piece of random */
function mixedMemory(): Buffer {
  const m = Buffer.alloc(4 * MiB + 65536);
  randomBytes(MiB).copy(m, MiB);
  m.fill('the quick brown fox jumps over the lazy dog. ', 2 * MiB, 3 * MiB);
  randomBytes(65536).copy(m, 4 * MiB);
  return m;
}

function state(memory: Uint8Array): FullState {
  return {
    moduleSha256: Buffer.alloc(32, 7),
    width: 320,
    height: 240,
    framebuffer: 1024,
    nextRequestId: 5,
    appClockMs: 1234.5,
    pending: [[3, 1]],
    globals: [{ index: 0, type: 'i32', value: -2 }, { index: 2, type: 'i64', value: 1n << 40n }, { index: 3, type: 'f64', value: 0.25 }],
    memory,
  };
}

/** the memory a decoded state describes, pieces applied as the guest worker applies them */
function memoryOf(s: DecodedFullState): Buffer {
  const m = Buffer.alloc(s.memoryBytes);
  for (const p of s.pieces) {
    if (p.kind === 'raw') m.set(p.bytes, p.offset);
    else if (p.kind === 'deflate') m.set(inflateSync(p.bytes), p.offset);
  }
  return m;
}

/** a format 1 blob of the same state: the whole memory as one zlib stream */
function formatOne(s: FullState, v2: Uint8Array): Buffer {
  const front = Buffer.from(v2.subarray(0, 80 + 8 * s.pending.length + 16 * s.globals.length));
  const packed = deflateSync(s.memory);
  front.writeUInt16LE(1, 4);
  front.writeUInt32LE(packed.length, 76);
  return Buffer.concat([front, packed]);
}

/** the same blob in format 2: the pieces' bytes in memory order */
function formatTwo(v3: Uint8Array, d: DecodedFullState): Buffer {
  const b = Buffer.from(v3);
  const tableEnd = 80 + 8 * d.pending.length + 16 * d.globals.length + 8 * d.pieces.length;
  b.writeUInt16LE(2, 4);
  return Buffer.concat([b.subarray(0, tableEnd), ...d.pieces.map((p) => Buffer.from(p.bytes))]);
}

/** the addresses of a blob's 1 MiB chunks, as the VM Data store cuts and keeps them */
const chunkAddresses = (blob: Uint8Array): string[] => {
  const out: string[] = [];
  for (let at = 0; at < blob.length; at += MiB) out.push(createHash('sha256').update(blob.subarray(at, at + MiB)).digest('hex'));
  return out;
};

describe('FULL snapshot format', () => {
  it('stores zero pieces as nothing, incompressible ones raw, the rest deflated, and reads them back', async () => {
    const s = state(mixedMemory());
    const blob = await encodeFullState(s);
    const d = await decodeFullState(blob);
    expect(d.pieces.map((p) => p.kind)).toEqual(['zero', 'raw', 'deflate', 'zero', 'raw']);
    expect(d.pieces.map((p) => p.length)).toEqual([MiB, MiB, MiB, MiB, 65536]);
    expect(d.pieces[0].bytes.length).toBe(0);
    // the raw pieces are views into the blob: nothing is copied on decode
    expect(d.pieces[1].bytes.buffer).toBe(blob.buffer);
    expect(memoryOf(d).equals(Buffer.from(s.memory))).toBe(true);
    expect(blob.length).toBeLessThan(MiB + 65536 + 64 * 1024);
    const { memory: _m, ...rest } = s;
    expect(d).toMatchObject({ ...rest, memoryBytes: s.memory.length });
    // encoding is deterministic (a restored UA saves the same bytes again)
    expect(Buffer.from(await encodeFullState(s)).equals(Buffer.from(blob))).toBe(true);
  });

  it('stores noise raw without deflating it, and still deflates structured memory whose bytes span the whole range (pixels, text)', async () => {
    const pixels = Buffer.alloc(MiB);
    for (let i = 0; i < MiB; i += 4) pixels.set([i & 255, (i >> 8) & 255, (i >> 16) & 255, 255], i);
    const text = Buffer.from('The quick brown fox jumps over the lazy dog. 0123456789 {"k":[1,2,3]}\n'.repeat(MiB / 64).slice(0, MiB));
    const memory = Buffer.concat([randomBytes(MiB), pixels, text]);
    const d = await decodeFullState(await encodeFullState(state(memory)));
    expect(d.pieces.map((p) => p.kind)).toEqual(['raw', 'deflate', 'deflate']);
    expect(memoryOf(d).equals(memory)).toBe(true);
  });

  it('stores raw a piece that is compressible where it starts and noise after (deflate would crawl through the noise to save little)', async () => {
    const mixed = Buffer.concat([Buffer.alloc(256 * 1024, 'uve '), randomBytes(MiB - 256 * 1024)]);
    const text = Buffer.from('The quick brown fox jumps over the lazy dog.\n'.repeat(MiB / 32).slice(0, MiB));
    const memory = Buffer.concat([mixed, text]);
    const d = await decodeFullState(await encodeFullState(state(memory)));
    expect(d.pieces.map((p) => p.kind)).toEqual(['raw', 'deflate']);
    expect(memoryOf(d).equals(memory)).toBe(true);
  });

  it('encodes in place in a shared buffer the memory was written into after the front: the blob is a view of it, the same bytes', async () => {
    const s = state(mixedMemory());
    const at = frontBytes(frontLayout(s.pending.length, s.globals.length), s.memory.length);
    // room past the memory too, as in the agent's kept buffer; stale bytes in front of it
    const shared = new Uint8Array(new SharedArrayBuffer(at + s.memory.length + MiB)).fill(0xa5);
    shared.set(s.memory, at);
    const blob = await encodeFullStateInPlace(s, shared, s.memory.length);
    expect(blob.buffer).toBe(shared.buffer);
    expect(blob.byteOffset).toBe(0);
    // the raw pieces moved down over the zero and deflated ones before them
    const d = await decodeFullState(blob);
    expect(d.pieces.map((p) => p.kind)).toEqual(['zero', 'raw', 'deflate', 'zero', 'raw']);
    expect(memoryOf(d).equals(Buffer.from(s.memory))).toBe(true);
    expect(Buffer.from(blob).equals(Buffer.from(await encodeFullState(s)))).toBe(true);
    await expect(encodeFullStateInPlace(s, shared.subarray(0, at + s.memory.length - 1), s.memory.length)).rejects.toThrow(SnapshotError);
  });

  it('keeps the raw pieces in place when a deflated piece before them changes its length: only the chunks around the front and the tail are new', async () => {
    const memory = Buffer.alloc(8 * MiB);
    memory.fill('the quick brown fox jumps over the lazy dog. ', 0, MiB);
    randomBytes(6 * MiB).copy(memory, MiB);
    memory.fill('lorem ipsum dolor sit amet ', 7 * MiB);
    const before = await encodeFullState(state(memory));
    // the app wrote into its compressible memory: piece 0 deflates to another length
    randomBytes(4096).copy(memory, 1000);
    const after = await encodeFullState(state(memory));
    const d = await decodeFullState(after);
    expect(d.pieces.map((p) => p.kind)).toEqual(['deflate', 'raw', 'raw', 'raw', 'raw', 'raw', 'raw', 'deflate']);
    expect(memoryOf(d).equals(memory)).toBe(true);
    const kept = new Set(chunkAddresses(before));
    const fresh = (blob: Uint8Array) => chunkAddresses(blob).filter((a) => !kept.has(a)).length;
    // chunk 0 (header, piece table) and the last (the end of the raw pieces and the deflated ones)
    expect(fresh(after)).toBe(2);
    expect(chunkAddresses(after)).toHaveLength(7);
    // format 2 (memory order): the changed length shifts every chunk after it
    const kept2 = new Set(chunkAddresses(formatTwo(before, await decodeFullState(before))));
    expect(chunkAddresses(formatTwo(after, d)).filter((a) => !kept2.has(a)).length).toBe(7);
  });

  it('still reads format 2 (the pieces in memory order)', async () => {
    const s = state(mixedMemory());
    const v3 = await encodeFullState(s);
    const d2 = await decodeFullState(formatTwo(v3, await decodeFullState(v3)));
    expect(d2.pieces.map((p) => p.kind)).toEqual(['zero', 'raw', 'deflate', 'zero', 'raw']);
    expect(memoryOf(d2).equals(Buffer.from(s.memory))).toBe(true);
    expect(d2.globals).toEqual(s.globals);
  });

  it('still reads format 1 (the whole memory deflated as one stream)', async () => {
    const s = state(mixedMemory());
    const old = formatOne(s, await encodeFullState(s));
    const d = await decodeFullState(old);
    expect(d.pieces).toHaveLength(1);
    expect(d.pieces[0]).toMatchObject({ offset: 0, length: s.memory.length, kind: 'raw' });
    expect(memoryOf(d).equals(Buffer.from(s.memory))).toBe(true);
    expect(d.globals).toEqual(s.globals);
  });

  it('refuses corrupt piece tables and lengths with a SnapshotError', async () => {
    const s = state(mixedMemory());
    const blob = Buffer.from(await encodeFullState(s));
    const table = 80 + 8 + 16 * 3;
    const damaged = (edit: (b: Buffer) => void): Buffer => {
      const b = Buffer.from(blob);
      edit(b);
      return b;
    };
    const cases: Array<[Buffer, RegExp]> = [
      [damaged((b) => b.writeUInt8(9, table)), /piece 0 has unknown kind 9/],
      [damaged((b) => b.writeUInt32LE(1, table + 4)), /piece 0 \(zero\) has a wrong length/],
      [damaged((b) => b.writeUInt32LE(MiB - 1, table + 8 + 4)), /piece 1 \(raw\) has a wrong length/],
      [damaged((b) => b.writeUInt32LE(0, table + 16 + 4)), /piece 2 \(deflate\) has a wrong length/],
      [damaged((b) => b.writeUInt32LE(b.readUInt32LE(table + 16 + 4) + 1, table + 16 + 4)), /wrong length|do not fill/],
      [damaged((b) => b.writeUInt8(0, table + 8)), /wrong length|do not fill/],
    ];
    for (const [b, message] of cases) {
      const e = await decodeFullState(b).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(SnapshotError);
      expect((e as Error).message).toMatch(message);
    }
    // a table cut short: the memory part claims less than the table needs
    const short = Buffer.concat([blob.subarray(0, table), Buffer.alloc(8)]);
    short.writeUInt32LE(8, 76);
    await expect(decodeFullState(short)).rejects.toThrow(/piece table is cut short/);
  });

  it('enforces the host limit from the header, before anything of the claimed size is allocated', async () => {
    const s = state(Buffer.alloc(2 * PIECE_BYTES));
    const blob = Buffer.from(await encodeFullState(s));
    await expect(decodeFullState(blob, 31)).rejects.toThrow(/32 pages of 64 KiB\) does not fit this host's limit of 31/);
    // a header claiming 64 GiB: refused from the header alone (the blob is a few hundred bytes)
    blob.writeUInt32LE(1 << 20, 72);
    await expect(decodeFullState(blob, 4096)).rejects.toThrow(/does not fit this host's limit of 4096/);
    expect(blob.length).toBeLessThan(1024);
  });
});
