// The UVE-3 endpoint: HTTP server with the WebSocket at STREAM_PATH (docs/protocol.md).
// A connection goes hello -> token check -> attached to its session; every text message passes
// parseClientMessage, anything malformed closes the socket with a reason the UC can show.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
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
  closeReason,
  parseClientMessage,
  type ClientMessage,
} from '@uve/protocol';
import type { Logger } from '../common/log';
import { errorMessage } from '../common/errors';
import { wallClock } from '../common/clock';
import { AuthError, TokenReplayGuard, type TokenVerifier } from './auth';
import type { StreamLimits } from '../config';
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
  /** `issuedAt`: the UC's token's iat (s), which tells a session that came back here after it moved away from one that did not */
  awaitSession: (sessionId: string, issuedAt?: number) => Promise<SessionArrival | null>;
  log: Logger;
  /** live figures for GET /healthz */
  health?: () => Record<string, unknown>;
  /** GET /metrics (Prometheus text format) */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  helloTimeoutMs?: number;
  /** connection caps, message rates, allowed origins (defaults: DEFAULT_STREAM_LIMITS) */
  limits?: Partial<StreamLimits>;
  /** PEM certificate and key: the server speaks wss:// */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * Resolves true once the VMM announced this watcher (monitoring.notify) for the session, false
   * after `timeoutMs`: the announcement travels the bus like a prepare and may come after the UC.
   */
  awaitWatcher?: (sessionId: string, userId: string, timeoutMs: number) => Promise<boolean>;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  maxConnections: 64,
  maxConnectionsPerSession: 8,
  maxMessagesPerSec: 300,
  keyframeIntervalMs: 1000,
  allowedOrigins: null,
};
/** how long a VIEWER's hello waits for its monitoring.notify (like PREPARE_WAIT_MS for a prepare) */
export const WATCHER_WAIT_MS = 3_000;

export class StreamServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<StreamConnection>();
  private keepalive: NodeJS.Timeout | null = null;
  private readonly replays = new TokenReplayGuard();
  private readonly limits: StreamLimits;

  constructor(private readonly opts: StreamServerOptions) {
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...opts.limits };
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_CLIENT_MESSAGE_BYTES,
      perMessageDeflate: false, // video does not compress; deflate would only add latency
      WebSocket: UveSocket,
    });
    const handler = (req: IncomingMessage, res: import('node:http').ServerResponse): void => {
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
    };
    this.http = opts.tls ? createTlsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : createServer(handler);
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
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // refusals after the upgrade, so a browser's script sees the code and the reason
      const origin = req.headers.origin;
      const allowed = this.limits.allowedOrigins;
      if (origin !== undefined && allowed && !allowed.includes(origin)) {
        ws.close(CLOSE.FORBIDDEN, closeReason(`origin ${origin} is not allowed to connect to this VM`));
        return;
      }
      if (this.conns.size >= this.limits.maxConnections) {
        ws.close(CLOSE.RATE_LIMITED, closeReason(`this VM is at its limit of ${this.limits.maxConnections} connections`));
        return;
      }
      this.accept(ws, req);
    });
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const conn = new StreamConnection(ws, remote, this.limits.maxMessagesPerSec);
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
      if (conn.keyframeTimer) clearTimeout(conn.keyframeTimer);
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
        conn.timings = msg.timings === true;
        conn.helloAt = wallClock();
        void this.authenticate(conn, msg.v, msg.token);
        return;
      case 'authenticating':
        if (conn.backlog.length >= MAX_BACKLOG) conn.close(CLOSE.BAD_MESSAGE, 'too many messages before welcome');
        else conn.backlog.push(msg);
        return;
      case 'attached': {
        const session = conn.sessionId ? this.opts.findSession(conn.sessionId) : undefined;
        if (!session) conn.close(CLOSE.ENDED, 'session ended');
        else if (!conn.rate.take(Date.now())) conn.close(CLOSE.RATE_LIMITED, `more than ${this.limits.maxMessagesPerSec} messages per second`);
        else if (msg.t === 'keyframe') this.keyframe(conn);
        else session.onMessage(conn, msg);
        return;
      }
    }
  }

  /**
   * A keyframe restarts the H264 encoder's GOP for everyone: one connection gets at most one per
   * interval; a request within it is served when the interval ends (coalesced), never dropped.
   */
  private keyframe(conn: StreamConnection): void {
    const serve = (): void => {
      conn.keyframeTimer = null;
      conn.lastKeyframeAt = Date.now();
      const session = conn.sessionId ? this.opts.findSession(conn.sessionId) : undefined;
      if (conn.state === 'attached' && !conn.closedByVm) session?.onMessage(conn, { t: 'keyframe' });
    };
    if (conn.keyframeTimer) return;
    const wait = conn.lastKeyframeAt + this.limits.keyframeIntervalMs - Date.now();
    if (wait <= 0) serve();
    else conn.keyframeTimer = setTimeout(serve, wait);
  }

  private async authenticate(conn: StreamConnection, version: number, token: string): Promise<void> {
    const log = this.opts.log.child({ conn: conn.id });
    try {
      if (version !== STREAM_PROTOCOL_VERSION) {
        throw new AuthError(CLOSE.UNSUPPORTED_VERSION, `protocol version ${version} is not supported; this VM speaks version ${STREAM_PROTOCOL_VERSION}`);
      }
      const claims = await this.opts.verifier.verify(token);
      // single use: a token seen before (a replay, or a UC reusing one) is refused
      this.replays.use(claims);
      conn.claimedSession = claims.sid;
      const arrival = await this.opts.awaitSession(claims.sid, claims.iat);
      if (arrival && 'error' in arrival) throw new AuthError(CLOSE.ENDED, `session ${claims.sid}: ${arrival.error}`);
      const session = arrival?.session;
      if (!session || session.state === 'ended') throw new AuthError(CLOSE.NOT_FOUND, `session ${claims.sid} is not prepared on this VM`);
      let refusal = session.admits(claims);
      // a watcher's monitoring.notify may still be on its way (sent with the token)
      if (refusal && (claims.role === 'VIEWER' || claims.sub !== session.userId) && this.opts.awaitWatcher && (await this.opts.awaitWatcher(claims.sid, claims.sub, WATCHER_WAIT_MS))) {
        refusal = session.admits(claims);
      }
      if (refusal) throw new AuthError(CLOSE.UNAUTHORIZED, refusal);
      // the user's PLAYER replaces the previous one, so only VIEWERs and guests can fill a session up
      if (claims.role === 'VIEWER' || claims.sub !== session.userId) {
        const others = [...this.conns].filter((c) => c !== conn && c.state !== 'closed' && (c.sessionId ?? c.claimedSession) === claims.sid).length;
        if (others >= this.limits.maxConnectionsPerSession) {
          throw new AuthError(CLOSE.RATE_LIMITED, `session ${claims.sid} is at its limit of ${this.limits.maxConnectionsPerSession} connections`);
        }
      }
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
