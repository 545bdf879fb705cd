// One UC's WebSocket as the session and the frame pump see it.
import type { WebSocket } from 'ws';
import { closeReason, type ClientMessage, type ServerMessage, type StreamRole } from '@uve/protocol';
import { wallClock } from '../common/clock';
import type { DecoderConfig } from '../encoders/encoder';
import type { FrameSink, FrameStamp } from './frame-pump';

let nextId = 1;

export type ConnectionState = 'hello' | 'authenticating' | 'attached' | 'closed';

export class StreamConnection implements FrameSink {
  readonly id = nextId++;
  state: ConnectionState = 'hello';
  role: StreamRole | null = null;
  userId: string | null = null;
  sessionId: string | null = null;
  /** the UC said `bye`: its close is an expected one */
  byeReceived = false;
  /** set when the VM closed the socket, so the close handler knows why */
  closedByVm: { code: number; reason: string } | null = null;
  /** messages that arrived while the token was being verified */
  readonly backlog: ClientMessage[] = [];
  /** answered the last keepalive ping */
  alive = true;
  /** the session its token names, from the token check on (sessionId is set once attached) */
  claimedSession: string | null = null;
  /** messages per second after the welcome */
  readonly rate: TokenBucket;
  /** the UC's hello asked for a `timing` message after each frame (and its welcome for the start's) */
  timings = false;
  /** when its hello arrived (VM wall clock) */
  helloAt = 0;
  lastKeyframeAt = 0;
  keyframeTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ws: WebSocket,
    readonly remote: string,
    messagesPerSec = 300,
  ) {
    this.rate = new TokenBucket(messagesPerSec, messagesPerSec);
  }

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  send(msg: ServerMessage): void {
    if (this.open) this.ws.send(JSON.stringify(msg));
  }

  sendFrame(message: Uint8Array, written: () => void, timing?: FrameStamp): void {
    if (!this.open) return;
    const stamp = this.timings ? timing : undefined;
    this.ws.send(message, { binary: true, compress: false }, (e) => {
      written();
      if (stamp && !e) this.send({ t: 'timing', ...stamp, sentAt: wallClock() });
    });
  }

  sendCodec(c: DecoderConfig): void {
    this.send({
      t: 'codec',
      codec: c.codec,
      mime: c.mime,
      width: c.width,
      height: c.height,
      ...(c.description ? { description: Buffer.from(c.description).toString('base64') } : {}),
    });
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Closes with an application code and a reason that fits a close frame. */
  close(code: number, reason: string): void {
    if (this.state === 'closed' || this.closedByVm) return;
    this.closedByVm = { code, reason };
    this.ws.close(code, closeReason(reason));
  }

  ping(): void {
    if (this.open) this.ws.ping();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** `perSec` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private at = 0;

  constructor(
    private readonly perSec: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Takes one token; false when none is left. */
  take(now: number): boolean {
    if (this.at) this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSec);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
