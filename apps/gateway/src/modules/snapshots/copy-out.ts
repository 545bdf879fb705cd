// A binary `COPY ... TO STDOUT` read straight off a node-postgres connection's socket, as rows.
// pg-copy-streams (which this replaced) handed its consumer the socket's bytes through two Readable
// buffers, each `read()` concatenating what was queued, and the rows were cut out of that with one
// more copy: 0.9-1.6 ms of the gateway's CPU per MiB read, against 0.5-1.1 this way
// (bench/scripts/vm-data-read-cost.js; docs/performance.md, reconnect, sixteenth pass). Here the
// socket's pieces are parsed as they come: each field's bytes are copied once, the large ones into
// buffers reused from row to row.
import net from 'node:net';
import type { PoolClient } from 'pg';

/** a row's fields in order (null: SQL NULL) */
export type CopyRow = (Buffer | null)[];

/**
 * Fields longer than this are copied into buffers that are reused: valid until the consumer has
 * taken REUSED_AFTER more rows (a buffer still being written to a socket is not overwritten).
 */
export const LARGE_FIELD_BYTES = 64 * 1024;
export const REUSED_AFTER = 3;

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** the messages a COPY out is made of, and those the server may put between them */
const COPY_DATA = 0x64; // d
const COPY_DONE = 0x63; // c
const IN_COPY = new Set([COPY_DATA, COPY_DONE, 0x48 /* H: CopyOutResponse */, 0x4e /* N: notice */, 0x53 /* S: parameter status */, 0x41 /* A: notification */]);

/** node-postgres's connection, as far as this reads it */
interface PgConnection {
  stream: NodeJS.EventEmitter & { pause(): void; resume(): void; [SINK]?: Sink | null };
  query(text: string): void;
}

/** where a copyOutSocket's pieces go during a COPY out (each valid only during the call) */
type Sink = (piece: Buffer) => void;
const SINK = Symbol('copyOutSink');
/** what one read of a copyOutSocket may take */
const SOCKET_READ_BYTES = 256 * 1024;

/**
 * A socket for node-postgres connections that read COPYs out (the `stream` option of their pool;
 * not for TLS, which needs a socket of its own kind): it reads into one buffer of its own instead
 * of a new Buffer per read (64 KiB each, 16 of garbage per MiB, and the collections they bring on
 * the gateway's whole heap). During a COPY out each piece goes to its reader as it is (copied
 * once, into the rows); otherwise a copy of it goes to node-postgres, as 'data'.
 */
export function copyOutSocket(): net.Socket {
  const buffer = Buffer.allocUnsafeSlow(SOCKET_READ_BYTES);
  // (onread is a constructor option since Node 12, missing from @types/node's constructor options)
  const socket: net.Socket & { [SINK]?: Sink | null } = new net.Socket({
    onread: {
      buffer,
      callback: (n: number) => {
        const piece = buffer.subarray(0, n);
        const sink = socket[SINK];
        if (sink) sink(piece);
        else socket.emit('data', Buffer.from(piece));
        return true; // a sink that wants no more pauses the socket itself
      },
    },
  } as net.SocketConstructorOpts);
  socket[SINK] = null;
  return socket;
}

/**
 * The rows of `sql` (a `COPY (...) TO STDOUT (FORMAT binary)`) on `client`, read as the consumer
 * takes them: the socket is paused while a complete row waits. Ending the iteration early leaves
 * the connection in the middle of the COPY: release it with an error (it is not reusable).
 */
export async function* copyOutRows(client: PoolClient, sql: string): AsyncGenerator<CopyRow> {
  const q = new CopyOut(sql);
  client.query(q as never);
  for (;;) {
    const row = await q.next();
    if (!row) return;
    yield row;
  }
}

/** A node-postgres Submittable: it takes the connection's socket over from the COPY's start to its end. */
class CopyOut {
  private connection: PgConnection | null = null;
  private pgOnData: ((piece: Buffer) => void) | null = null;
  private readonly rows: CopyRow[] = [];
  private readonly parser: BinaryRows;
  /** the 5 bytes of a message's code and length, as they come */
  private readonly head = Buffer.alloc(5);
  private headLen = 0;
  private code = 0;
  /** bytes of the current message still to come; -1 between messages */
  private remaining = -1;
  private detached = false;
  private ended = false;
  private error: Error | null = null;
  private waiting: (() => void) | null = null;
  private taken = 0;

  constructor(private readonly text: string) {
    this.parser = new BinaryRows((row) => this.rows.push(row));
  }

  submit(connection: PgConnection): void {
    this.connection = connection;
    const stream = connection.stream;
    if (SINK in stream) {
      // a copyOutSocket: its pieces come here until the COPY is over, node-postgres keeps its listener
      stream[SINK] = this.onData;
    } else {
      const listeners = stream.listeners('data') as ((piece: Buffer) => void)[];
      if (listeners.length !== 1) throw new Error(`a COPY out expects one data listener on the connection, not ${listeners.length}`);
      this.pgOnData = listeners[0]!;
      stream.removeListener('data', this.pgOnData);
      stream.on('data', this.onData);
    }
    stream.once('close', this.onClose);
    connection.query(this.text);
  }

  // what node-postgres tells its active query once the socket is its own again
  handleError(e: Error): void {
    this.fail(e);
  }
  handleCommandComplete(): void {}
  handleReadyForQuery(): void {
    this.ended = true;
    this.wake();
  }
  handleEmptyQuery(): void {}
  handleRowDescription(): void {
    this.fail(new Error('not a COPY: the statement returned rows'));
  }
  handleDataRow(): void {}
  handleCopyInResponse(): void {
    this.fail(new Error('not a COPY out: the server expects data in'));
  }
  handleCopyData(): void {}
  handlePortalSuspended(): void {}

  /** the next row, null after the last; the rows that came whole before an error, then the error */
  async next(): Promise<CopyRow | null> {
    for (;;) {
      const row = this.rows.shift();
      if (row) {
        this.parser.taken(++this.taken);
        if (this.rows.length === 0 && !this.detached && !this.error) this.connection!.stream.resume();
        return row;
      }
      if (this.error) throw this.error;
      if (this.ended) {
        if (!this.parser.complete) throw new Error('the COPY ended before its trailer');
        return null;
      }
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  private readonly onData = (piece: Buffer): void => {
    try {
      let at = 0;
      while (at < piece.byteLength) {
        if (this.remaining < 0) {
          if (this.headLen === 0 && !IN_COPY.has(piece[at]!)) {
            // an ErrorResponse, or the COPY's end without CopyDone: node-postgres reads it
            return this.detach(piece.subarray(at));
          }
          const n = Math.min(5 - this.headLen, piece.byteLength - at);
          piece.copy(this.head, this.headLen, at, at + n);
          this.headLen += n;
          at += n;
          if (this.headLen < 5) break;
          this.headLen = 0;
          this.code = this.head[0]!;
          this.remaining = this.head.readInt32BE(1) - 4;
        }
        const n = Math.min(this.remaining, piece.byteLength - at);
        if (this.code === COPY_DATA) this.parser.push(piece, at, at + n);
        at += n;
        this.remaining -= n;
        if (this.remaining > 0) break;
        this.remaining = -1;
        if (this.code === COPY_DONE) return this.detach(piece.subarray(at));
      }
      if (this.rows.length) {
        this.connection!.stream.pause();
        this.wake();
      }
    } catch (e) {
      this.fail(e as Error);
      this.connection!.stream.pause();
    }
  };

  private readonly onClose = (): void => this.fail(new Error('the connection closed during the COPY'));

  /** node-postgres reads the rest (CommandComplete, ReadyForQuery, or an error) */
  private detach(rest: Buffer): void {
    this.detached = true;
    const stream = this.connection!.stream;
    stream.removeListener('close', this.onClose);
    if (SINK in stream) {
      stream[SINK] = null;
      // the piece is the socket's own buffer: node-postgres gets a copy, as it does of every piece
      if (rest.byteLength) stream.emit('data', Buffer.from(rest));
    } else {
      stream.removeListener('data', this.onData);
      stream.on('data', this.pgOnData!);
      if (rest.byteLength) this.pgOnData!(rest);
    }
    stream.resume();
    this.wake();
  }

  private fail(e: Error): void {
    this.error ??= e;
    this.wake();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }
}

/**
 * The rows of a binary COPY's data (the CopyData messages' contents, one byte stream), fed in
 * pieces of any size. Fields longer than LARGE_FIELD_BYTES land in reused buffers (see REUSED_AFTER).
 */
export class BinaryRows {
  /** 'head': signature, flags, extension length; 'skip': the extension; 'count': a row's field count; 'len'; 'field' */
  private state: 'head' | 'skip' | 'count' | 'len' | 'field' | 'end' = 'head';
  private readonly scratch = Buffer.alloc(19);
  private need = 19;
  private filled = 0;
  private fieldsLeft = 0;
  private row: CopyRow = [];
  private field: Buffer = this.scratch;
  private rowsMade = 0;
  /** large field buffers with the row they went out in; reusable once that row is old enough */
  private readonly lent: { buffer: Buffer; row: number }[] = [];
  private readonly free: Buffer[] = [];

  constructor(private readonly onRow: (row: CopyRow) => void) {}

  /** true once the trailer came */
  get complete(): boolean {
    return this.state === 'end';
  }

  /** the consumer has taken `n` rows: the large fields of rows `REUSED_AFTER` older are free again */
  taken(n: number): void {
    while (this.lent.length && this.lent[0]!.row <= n - 1 - REUSED_AFTER) this.free.push(this.lent.shift()!.buffer);
  }

  push(piece: Buffer, from: number, to: number): void {
    while (from < to) {
      if (this.state === 'end') throw new Error('bytes past the COPY trailer');
      const n = Math.min(this.need - this.filled, to - from);
      if (this.state !== 'skip') piece.copy(this.field, this.filled, from, from + n);
      this.filled += n;
      from += n;
      if (this.filled === this.need) this.step();
    }
  }

  /** the bytes the state waited for are in */
  private step(): void {
    const s = this.scratch;
    switch (this.state) {
      case 'head': {
        if (!s.subarray(0, 11).equals(SIGNATURE)) throw new Error('not a binary COPY stream');
        const extension = s.readUInt32BE(15);
        return extension ? this.expect('skip', extension) : this.expect('count', 2);
      }
      case 'skip':
        return this.expect('count', 2);
      case 'count': {
        const fields = s.readInt16BE(0);
        if (fields === -1) return this.expect('end', 0);
        this.row = [];
        this.fieldsLeft = fields;
        return fields ? this.expect('len', 4) : this.rowDone();
      }
      case 'len': {
        const len = s.readInt32BE(0);
        if (len < 0) {
          this.row.push(null);
          return this.fieldDone();
        }
        this.state = 'field';
        this.need = len;
        this.filled = 0;
        this.field = len > LARGE_FIELD_BYTES ? this.lend(len) : Buffer.allocUnsafe(len);
        return len ? undefined : this.keepField();
      }
      case 'field':
        return this.keepField();
    }
  }

  private keepField(): void {
    this.row.push(this.field);
    this.field = this.scratch;
    this.fieldDone();
  }

  private fieldDone(): void {
    if (--this.fieldsLeft > 0) return this.expect('len', 4);
    this.rowDone();
  }

  private rowDone(): void {
    this.rowsMade++;
    this.onRow(this.row);
    this.expect('count', 2);
  }

  private expect(state: BinaryRows['state'], need: number): void {
    this.state = state;
    this.need = need;
    this.filled = 0;
    this.field = this.scratch;
  }

  /** a buffer of `len` bytes for a large field of the row being made: a free one when it is large enough */
  private lend(len: number): Buffer {
    const i = this.free.findIndex((b) => b.byteLength >= len);
    const buffer = i >= 0 ? this.free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(len);
    this.lent.push({ buffer, row: this.rowsMade });
    return buffer.subarray(0, len);
  }
}
