// A GET over plain HTTP/1.1 whose body the socket reads straight into one buffer of the announced
// size (net.Socket's `onread`), for VM Data downloads. Through node:http every 64 KiB read is a
// fresh Buffer, then copied into the destination: for a 128 MiB snapshot, 2,048 buffers of garbage,
// and the collector's work on the agent's whole heap while the restore waits. A scratch script with
// an app-sized heap spent 195-436 ms of the client's CPU per 128 MiB that way, 112-116 ms this way
// (docs/performance.md, reconnect, "twelfth pass").
import net from 'node:net';
import { VM_DATA_HEAD_BYTES } from '@uve/protocol';

/** the most the status line and headers may take */
const HEAD_MAX_BYTES = 64 * 1024;
/** the most of a refusal's body that is kept for its message */
const REFUSAL_MAX_BYTES = 4096;
/** what one read may fill of the destination */
const READ_BYTES = 1024 * 1024;
/** the first bytes handed to onFirstBytes (a FULL snapshot's header) once this many are in */
const FIRST_BYTES = VM_DATA_HEAD_BYTES;

/** where a 200's body goes: `data` of the announced size; `release` gives it back when the body falls short */
export interface IntoBuffer {
  data: Uint8Array;
  release(): void;
}

export interface IntoResponse<D extends IntoBuffer> {
  /** 200: what `into` gave, filled with the body */
  taken: D;
  headers: Record<string, string>;
}

export interface IntoOptions<D extends IntoBuffer> {
  /** request headers besides host and connection */
  headers: Record<string, string>;
  timeoutMs: number;
  /** the destination for a 200's body of `size` bytes */
  into: (size: number) => D;
  /** each piece of the body as it lands (a hash) */
  onBytes: (piece: Uint8Array) => void;
  /** the body's first bytes, once min(256, size) are in */
  onFirstBytes?: (head: Uint8Array) => void;
}

export class HttpRefusal extends Error {
  constructor(readonly status: number, readonly body: string) {
    super(`${status} ${body}`);
  }
}

/**
 * GETs `url` (http: only). A status other than 200 is an HttpRefusal with the start of its body; a
 * 200 without a content-length, or with a chunked body, is refused; a body longer or shorter than
 * announced is an error. Times out as a whole after `timeoutMs`.
 */
export function getInto<D extends IntoBuffer>(url: URL, o: IntoOptions<D>): Promise<IntoResponse<D>> {
  if (url.protocol !== 'http:') return Promise.reject(new Error(`getInto speaks plain HTTP only, not ${url.protocol}`));
  return new Promise((resolve, reject) => {
    const scratch = Buffer.allocUnsafe(64 * 1024);
    let head = Buffer.alloc(0);
    let phase: 'head' | 'body' | 'refusal' | 'done' = 'head';
    let status = 0;
    let headers: Record<string, string> = {};
    let size = 0;
    let at = 0;
    let dest: D | null = null;
    let chunked = false;
    let firstSent = false;
    const refusal: Buffer[] = [];
    let refusalBytes = 0;

    const finish = (error: Error | null): void => {
      if (phase === 'done') return;
      const was = phase;
      phase = 'done';
      clearTimeout(timer);
      socket.destroy();
      if (!error && dest) return resolve({ taken: dest, headers });
      dest?.release();
      if (was === 'refusal') {
        const body = Buffer.concat(refusal);
        return reject(new HttpRefusal(status, (chunked ? unchunked(body) : body).toString('utf8')));
      }
      reject(error ?? new Error('the response ended early'));
    };
    const brokeOff = (why: string): Error => new Error(phase === 'body' ? `broke off after ${at} of ${size} bytes: ${why}` : why);

    const first = (): void => {
      if (firstSent || !o.onFirstBytes || at < Math.min(FIRST_BYTES, size)) return;
      firstSent = true;
      o.onFirstBytes(dest!.data.subarray(0, at));
    };
    const bodyBytes = (piece: Uint8Array): void => {
      if (phase === 'refusal') {
        if (refusalBytes < REFUSAL_MAX_BYTES) refusal.push(Buffer.from(piece.subarray(0, REFUSAL_MAX_BYTES - refusalBytes)));
        refusalBytes += piece.byteLength;
        if (refusalBytes >= size || refusalBytes >= REFUSAL_MAX_BYTES) finish(null);
        return;
      }
      o.onBytes(piece);
      at += piece.byteLength;
      first();
      if (at === size) finish(null);
    };
    const headRead = (piece: Buffer): void => {
      head = Buffer.concat([head, piece]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > HEAD_MAX_BYTES) finish(new Error('the response headers are too large'));
        return;
      }
      const [statusLine, ...lines] = head.subarray(0, end).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
      if (!m) return finish(new Error(`not an HTTP response: ${JSON.stringify((statusLine ?? '').slice(0, 80))}`));
      status = Number(m[1]);
      headers = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      chunked = /chunked/i.test(headers['transfer-encoding'] ?? '');
      const sized = /^\d+$/.test(headers['content-length'] ?? '') && !chunked;
      size = sized ? Number(headers['content-length']) : Number.POSITIVE_INFINITY;
      const rest = head.subarray(end + 4);
      head = Buffer.alloc(0);
      if (status !== 200) {
        // its body until the end, whatever its framing (a proxy's error page may come chunked)
        phase = 'refusal';
        if (size === 0) return finish(null);
      } else {
        if (chunked) return finish(new Error('a chunked response where a content-length was expected'));
        if (!sized || !Number.isSafeInteger(size)) return finish(new Error('the response announced no size (content-length)'));
        dest = o.into(size);
        phase = 'body';
        if (rest.length > size) return finish(new Error(`the body is longer than the announced ${size} bytes`));
        dest.data.set(rest, 0);
        if (size === 0) return finish(null);
      }
      if (rest.length) bodyBytes(phase === 'body' ? dest!.data.subarray(0, rest.length) : rest);
    };

    const socket = net.connect({
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'), // an IPv6 literal without its brackets
      port: Number(url.port || 80),
      onread: {
        // the body lands where it belongs; the head, and anything past the body, in the scratch
        buffer: () => (phase === 'body' && at < size ? dest!.data.subarray(at, Math.min(size, at + READ_BYTES)) : scratch),
        callback: (n: number, buf: Uint8Array): boolean => {
          if (phase === 'done') return false;
          if (phase === 'body' && buf === scratch) finish(new Error(`the body is longer than the announced ${size} bytes`));
          else if (phase === 'head') headRead(Buffer.from(buf.buffer, buf.byteOffset, n));
          else bodyBytes(buf.subarray(0, n));
          return true;
        },
      },
    });
    const timer = setTimeout(() => finish(brokeOff(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    socket.on('connect', () => {
      const lines = Object.entries(o.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n${lines}connection: close\r\n\r\n`);
    });
    socket.on('error', (e) => finish(brokeOff(e.message)));
    socket.on('end', () => finish(brokeOff('the connection closed')));
    socket.on('close', () => finish(brokeOff('the connection closed')));
  });
}

/** a chunked body's data (as far as it is whole), for a refusal's message */
function unchunked(b: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', at);
    const n = eol < 0 ? NaN : parseInt(b.subarray(at, eol).toString('latin1'), 16);
    if (!(n > 0) || eol + 2 + n > b.length) break;
    parts.push(b.subarray(eol + 2, eol + 2 + n));
    at = eol + 2 + n + 2;
  }
  return Buffer.concat(parts);
}
