// The PostgreSQL VM Data store reads chunks as PostgreSQL's binary COPY format off the socket
// (copy-out.ts): rows must come out whole and byte for byte however the stream is cut, and a large
// field's buffer is reused only once the consumer is REUSED_AFTER rows past it.
import { randomBytes } from 'node:crypto';
import { BinaryRows, LARGE_FIELD_BYTES, REUSED_AFTER, type CopyRow } from '../../apps/gateway/src/modules/snapshots/copy-out';

/** a binary COPY stream of `rows` (null fields as length -1), as PostgreSQL writes it */
function copyStream(rows: (Buffer | null)[][], extension = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(19);
  Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1').copy(head);
  head.writeUInt32BE(extension.length, 15);
  const parts: Buffer[] = [head, extension];
  for (const row of rows) {
    const n = Buffer.alloc(2);
    n.writeInt16BE(row.length);
    parts.push(n);
    for (const f of row) {
      const len = Buffer.alloc(4);
      len.writeInt32BE(f ? f.length : -1);
      parts.push(len, ...(f ? [f] : []));
    }
  }
  parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

const seq = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

/** the rows of `stream` fed in pieces of `cut` bytes (at offsets into larger buffers, as off a socket) */
function parse(stream: Buffer, cut: number, parser = (onRow: (r: CopyRow) => void) => new BinaryRows(onRow)): { rows: CopyRow[]; parser: BinaryRows } {
  const rows: CopyRow[] = [];
  const p = parser((r) => rows.push(r));
  for (let at = 0; at < stream.length; at += cut) {
    const piece = Buffer.concat([Buffer.alloc(3), stream.subarray(at, at + cut), Buffer.alloc(5)]);
    p.push(piece, 3, piece.length - 5);
  }
  return { rows, parser: p };
}
const hex = (rs: CopyRow[]) => rs.map((r) => r.map((f) => f?.toString('hex') ?? null));

it('gives every row whole, fields byte for byte and NULL as null, whatever the pieces', () => {
  const rows = [
    [seq(0), randomBytes(300_000), null, randomBytes(32)],
    [seq(1), randomBytes(70_000), randomBytes(12), randomBytes(32)],
    [seq(2), randomBytes(1), null, randomBytes(32)],
    [seq(3), Buffer.alloc(0), null, randomBytes(32)],
  ];
  const stream = copyStream(rows, Buffer.from('ext'));
  for (const cut of [1, 7, 4096, 65_536, stream.length]) {
    const { rows: out, parser } = parse(stream, cut);
    expect(hex(out)).toEqual(hex(rows));
    expect(parser.complete).toBe(true); // the trailer came
  }
});

it('reuses a large field\'s buffer only once the consumer took REUSED_AFTER more rows', () => {
  const rows = Array.from({ length: 10 }, (_, i) => [seq(i), randomBytes(LARGE_FIELD_BYTES + 1000 - 10 * i)]);
  const out: CopyRow[] = [];
  const copies: string[] = [];
  const parser = new BinaryRows((r) => {
    out.push(r);
    copies.push(r[1]!.toString('hex'));
    // the consumer takes each row as it comes; what it took in the last REUSED_AFTER rows is intact
    parser.taken(out.length);
    for (let k = Math.max(0, out.length - 1 - REUSED_AFTER); k < out.length; k++) expect(out[k]![1]!.toString('hex')).toBe(copies[k]);
  });
  const stream = copyStream(rows);
  parser.push(stream, 0, stream.length);
  expect(copies).toEqual(rows.map((r) => r[1]!.toString('hex')));
  // and it was reused: ten rows did not take ten buffers
  expect(new Set(out.map((r) => r[1]!.buffer)).size).toBeLessThanOrEqual(REUSED_AFTER + 2);
});

it('refuses what is not a binary COPY stream, and bytes past its trailer', () => {
  const text = Buffer.from('seq,data\n0,\\x00\n and more text');
  expect(() => new BinaryRows(() => undefined).push(text, 0, text.length)).toThrow('not a binary COPY stream');
  const stream = Buffer.concat([copyStream([[seq(0)]]), Buffer.from('x')]);
  expect(() => new BinaryRows(() => undefined).push(stream, 0, stream.length)).toThrow('past the COPY trailer');
});
