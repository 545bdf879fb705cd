// The PostgreSQL VM Data store reads chunks as PostgreSQL's binary COPY format off the socket
// (vm-data-store.postgres.ts): rows must come out whole and byte for byte however the stream is cut.
import { randomBytes } from 'node:crypto';
import { CopyBinaryRows } from '../../apps/gateway/src/modules/snapshots/vm-data-store.postgres';

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

it('gives every row whole, fields byte for byte and NULL as null, whatever the pieces', () => {
  const rows = [
    [seq(0), randomBytes(300_000), null, randomBytes(32)],
    [seq(1), randomBytes(70_000), randomBytes(12), randomBytes(32)],
    [seq(2), randomBytes(1), null, randomBytes(32)],
  ];
  const stream = copyStream(rows, Buffer.from('ext'));
  for (const cut of [1, 7, 4096, 65_536, stream.length]) {
    const parser = new CopyBinaryRows();
    const out: (Buffer | null)[][] = [];
    for (let at = 0; at < stream.length; at += cut) {
      parser.push(stream.subarray(at, at + cut));
      for (let r = parser.next(); r; r = parser.next()) out.push(r);
    }
    const hex = (rs: (Buffer | null)[][]) => rs.map((r) => r.map((f) => f?.toString('hex') ?? null));
    expect(hex(out)).toEqual(hex(rows));
    expect(parser.next()).toBeNull(); // after the trailer
  }
});

it('refuses what is not a binary COPY stream', () => {
  const parser = new CopyBinaryRows();
  parser.push(Buffer.from('seq,data\n0,\\x00\n and more text'));
  expect(() => parser.next()).toThrow('not a binary COPY stream');
});
