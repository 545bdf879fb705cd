// The UVE-3 endpoint: HTTP server with the WebSocket at STREAM_PATH (docs/protocol.md).
// A connection goes hello -> token check -> attached to its session; every text message passes
// parseClientMessage, anything malformed closes the socket with a reason the UC can show.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import {
  CLOSE,
  HELLO_TIMEOUT_MS,
  MAX_CLIENT_MESSAGE_BYTES,
  STREAM_PATH,
  STREAM_PROTOCOL_VERSION,
  ProtocolError,
  parseClientMessage,
  type ClientMessage,
} from '@uve/protocol';
import type { Logger } from '../common/log';
import { errorMessage } from '../common/errors';
import { AuthError, type TokenVerifier } from './auth';
import { StreamConnection } from './connection';
import type { Session } from '../sessions/session';
import type { SessionArrival } from '../sessions/session-manager';

/** how long an authenticated UC may wait for its session's first frame */
export const SESSION_READY_WAIT_MS = 30_000;
/** WebSocket pings find UCs that vanished without a close (half-open TCP) */
export const KEEPALIVE_INTERVAL_MS = 15_000;
/** messages a UC may send between hello and welcome */
const MAX_BACKLOG = 64;

export const TOO_BIG_REASON = `message larger than ${MAX_CLIENT_MESSAGE_BYTES} bytes`;

/**
 * ws closes an oversize message with 1009 and no reason (receiverOnError calls close(1009)).
 * This subclass gives that close a reason, so the UC can tell what it did wrong.
 */
export class UveSocket extends WebSocket {
  override close(code?: number, data?: string | Buffer): void {
    if (code === CLOSE.TOO_BIG && (data === undefined || data.length === 0)) data = TOO_BIG_REASON;
    super.close(code, data);
  }
}

export interface StreamServerOptions {
  host: string;
  port: number;
  verifier: TokenVerifier;
  findSession: (sessionId: string) => Session | undefined;
  /** a session whose prepare may still be on its way (see PREPARE_WAIT_MS) */
  awaitSession: (sessionId: string) => Promise<SessionArrival | null>;
  log: Logger;
  /** live figures for GET /healthz */
  health?: () => Record<string, unknown>;
  /** GET /metrics (Prometheus text format) */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  helloTimeoutMs?: number;
}

export class StreamServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<StreamConnection>();
  private keepalive: NodeJS.Timeout | null = null;

  constructor(private readonly opts: StreamServerOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_CLIENT_MESSAGE_BYTES,
      perMessageDeflate: false, // video does not compress; deflate would only add latency
      WebSocket: UveSocket,
    });
    this.http = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, ...this.opts.health?.() }));
        return;
      }
      const metrics = this.opts.metrics;
      if (req.method === 'GET' && req.url === '/metrics' && metrics) {
        metrics().then(
          (m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.body),
          (e) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${errorMessage(e)}\n`),
        );
        return;
      }
      res.writeHead(req.url?.split('?')[0] === STREAM_PATH ? 426 : 404, { 'content-type': 'text/plain' }).end(
        req.url?.split('?')[0] === STREAM_PATH ? 'UVE-3 needs a WebSocket upgrade\n' : 'not found\n',
      );
    });
    this.http.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.http.on('clientError', (_e, socket) => socket.destroy());
  }

  /** Listens; resolves with the bound port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.keepalive = setInterval(() => this.checkAlive(), KEEPALIVE_INTERVAL_MS);
    this.keepalive.unref();
    return (this.http.address() as AddressInfo).port;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Closes every socket (those of sessions were closed by their sessions already) and the server. */
  async close(): Promise<void> {
    if (this.keepalive) clearInterval(this.keepalive);
    for (const c of this.conns) c.close(CLOSE.GOING_AWAY, 'VM shutting down');
    // give close frames a moment to leave, then cut whatever still hangs
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 500);
      t.unref();
      if (this.conns.size === 0) resolve();
      else for (const ws of this.wss.clients) ws.once('close', () => this.conns.size === 0 && resolve());
    });
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '/').split('?')[0];
    // STREAM_PATH is the endpoint; `/` is accepted too so a UC given the bare VM endpoint works
    if (path !== STREAM_PATH && path !== '/') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const conn = new StreamConnection(ws, remote);
    this.conns.add(conn);
    const log = this.opts.log.child({ conn: conn.id });
    const helloTimer = setTimeout(() => {
      if (conn.state === 'hello') conn.close(CLOSE.HELLO_TIMEOUT, `no hello within ${this.opts.helloTimeoutMs ?? HELLO_TIMEOUT_MS} ms`);
    }, this.opts.helloTimeoutMs ?? HELLO_TIMEOUT_MS);

    ws.on('pong', () => (conn.alive = true));
    ws.on('error', (e) => log.debug('socket error', { error: e.message }));
    ws.on('message', (data, isBinary) => {
      try {
        this.onMessage(conn, data, isBinary);
      } catch (e) {
        // a bug in one session's handling must not reach the server, nor other sessions
        log.error('error handling a UC message', { error: errorMessage(e), stack: (e as Error).stack });
        conn.close(CLOSE.INTERNAL, 'internal error');
      }
    });
    ws.on('close', (code, reasonBuf) => {
      clearTimeout(helloTimer);
      this.conns.delete(conn);
      const wasAttached = conn.state === 'attached';
      conn.state = 'closed';
      const reason = reasonBuf.toString();
      log.debug('socket closed', { code, reason });
      if (!wasAttached || !conn.sessionId) return;
      try {
        this.opts.findSession(conn.sessionId)?.detach(conn, code, reason);
      } catch (e) {
        log.error('error detaching a UC', { error: errorMessage(e) });
      }
    });
  }

  private onMessage(conn: StreamConnection, data: WebSocket.RawData, isBinary: boolean): void {
    if (conn.state === 'closed' || conn.closedByVm) return;
    if (isBinary) {
      conn.close(CLOSE.BAD_MESSAGE, 'binary messages are not accepted from a UC');
      return;
    }
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as Buffer).toString('utf8'));
    } catch (e) {
      conn.close(CLOSE.BAD_MESSAGE, e instanceof ProtocolError ? e.message : 'message could not be read');
      return;
    }
    switch (conn.state) {
      case 'hello':
        if (msg.t !== 'hello') {
          conn.close(CLOSE.BAD_MESSAGE, 'the first message must be hello');
          return;
        }
        conn.state = 'authenticating';
        void this.authenticate(conn, msg.v, msg.token);
        return;
      case 'authenticating':
        if (conn.backlog.length >= MAX_BACKLOG) conn.close(CLOSE.BAD_MESSAGE, 'too many messages before welcome');
        else conn.backlog.push(msg);
        return;
      case 'attached': {
        const session = conn.sessionId ? this.opts.findSession(conn.sessionId) : undefined;
        if (!session) conn.close(CLOSE.ENDED, 'session ended');
        else session.onMessage(conn, msg);
        return;
      }
    }
  }

  private async authenticate(conn: StreamConnection, version: number, token: string): Promise<void> {
    const log = this.opts.log.child({ conn: conn.id });
    try {
      if (version !== STREAM_PROTOCOL_VERSION) {
        throw new AuthError(CLOSE.UNSUPPORTED_VERSION, `protocol version ${version} is not supported; this VM speaks version ${STREAM_PROTOCOL_VERSION}`);
      }
      const claims = await this.opts.verifier.verify(token);
      const arrival = await this.opts.awaitSession(claims.sid);
      if (arrival && 'error' in arrival) throw new AuthError(CLOSE.ENDED, `session ${claims.sid}: ${arrival.error}`);
      const session = arrival?.session;
      if (!session || session.state === 'ended') throw new AuthError(CLOSE.NOT_FOUND, `session ${claims.sid} is not prepared on this VM`);
      const refusal = session.admits(claims);
      if (refusal) throw new AuthError(CLOSE.UNAUTHORIZED, refusal);
      try {
        await session.whenReady(SESSION_READY_WAIT_MS);
      } catch (e) {
        throw new AuthError(CLOSE.ENDED, `session ${claims.sid} could not start: ${errorMessage(e)}`);
      }
      if (conn.state !== 'authenticating' || !conn.open) return; // the UC left meanwhile
      session.attach(conn, claims);
      for (const m of conn.backlog.splice(0)) {
        if ((conn.state as string) !== 'attached' || conn.closedByVm) break;
        session.onMessage(conn, m);
      }
    } catch (e) {
      if (e instanceof AuthError) {
        log.info('UC refused', { code: e.code, reason: e.message });
        conn.close(e.code, e.message);
      } else {
        log.error('error admitting a UC', { error: errorMessage(e), stack: (e as Error).stack });
        conn.close(CLOSE.INTERNAL, 'internal error');
      }
    }
  }

  private checkAlive(): void {
    for (const c of this.conns) {
      if (!c.alive) {
        c.terminate();
        continue;
      }
      c.alive = false;
      c.ping();
    }
  }
}
