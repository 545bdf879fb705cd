// The UC's side of UVE-3/UVE-4 (docs/protocol.md): one WebSocket to the VM, the Output Stream in,
// interaction commands out, local resources answered. Runs in Node (package `ws`) and in browsers
// (the global WebSocket); the choice is made at run time.
import {
  CLOSE,
  STREAM_PATH,
  STREAM_PROTOCOL_VERSION,
  decodeFrame,
  type ClientMessage,
  type DecoderConfig,
  type FrameHeader,
  type FrameTiming,
  type InputEvent,
  type LocalResourceKind,
  type ServerMessage,
  type SnapshotKind,
  type StreamRole,
} from '@uve/protocol';
import { ClockSync, localNow, type ClockSample } from './clock-sync';
export type { ClockSample } from './clock-sync';
import { Emitter } from './events';
import { browserResourceProviders, provideResource, type ResourceProviders } from './resources';

/** The part of the WebSocket API both the browser and `ws` implement. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type WelcomeMessage = Extract<ServerMessage, { t: 'welcome' }>;

/** Decoder configuration from the `codec` message, description base64-decoded. */
export type CodecConfig = DecoderConfig;

export interface DecodedPicture {
  width: number;
  height: number;
  data: Uint8Array;
}

/** What StreamClient needs of a decoder (createNodeDecoder from './decoders' is one). */
export interface FrameDecoderLike {
  decode(payload: Uint8Array, keyframe: boolean): Promise<DecodedPicture>;
  close(): Promise<void>;
}
export type DecoderFactory = ((config: CodecConfig) => FrameDecoderLike) & {
  /**
   * Called when the stream opens, before the `codec` message: a decoder that takes long to start
   * (a process) starts now, beside the VM's start of the session, and the factory hands it out.
   */
  prepare?: () => void;
  /** The connection is over: whatever `prepare` started and no decoder took is released. */
  release?: () => void;
};

export interface FrameEvent {
  header: FrameHeader;
  payload: Uint8Array;
  /** the picture, when connect() was given a decoder */
  decoded?: DecodedPicture;
  /** local clock (ms since epoch) when the message arrived */
  receivedAt: number;
}


export interface StreamClientEvents {
  welcome: WelcomeMessage;
  codec: CodecConfig;
  frame: FrameEvent;
  suspended: { reason: string | null };
  resumed: Record<string, never>;
  /** to the session's user: whether watchers are announced for the session */
  watched: { watched: boolean };
  /** the VM did not act on something this UC sent (input while suspended) */
  notice: { code: string; message: string };
  ended: { reason: string };
  /** every socket close; `reconnecting` tells whether the client will try again */
  close: { code: number; reason: string; reconnecting: boolean };
  resourceRequest: { id: number; kind: LocalResourceKind };
  reconnecting: { attempt: number; delayMs: number };
  /** the stream is back after a drop (the same session, on the same VM or another) */
  reconnected: { sessionId: string; attempts: number };
  /** the session's VM Data was restored into the UA before its first frame (seed B.1) */
  /** `preparedAhead`: the VM had restored it while the user was away (the reconnection waited for neither download nor restore) */
  restored: { sessionId: string; snapshotId: string; kind: SnapshotKind; preparedAhead: boolean };
  /** the session's VM Data could not be restored: the UA started afresh */
  fresh: { sessionId: string; snapshotId: string; reason: string };
  /** every change of `state` */
  state: { state: StreamState; previous: StreamState };
  clock: ClockSample;
  /** the VM's stages of a frame (VM clock), when `timings` was asked for */
  timing: FrameTiming;
  error: Error;
}

/**
 * Where the connection stands, for a UI to show: `connecting` (first connection), `live` (frames
 * flow), `reconnecting` (dropped, trying again with backoff), `ended` (over: ended by the VM, closed
 * by the app, refused for good, or given up). The `reconnected`, `restored` and `fresh` events say
 * how a connection came back.
 */
export type StreamState = 'idle' | 'connecting' | 'live' | 'reconnecting' | 'ended';

export interface ConnectTarget {
  url: string;
  token: string;
}

export interface ConnectOptions extends ConnectTarget {
  decoder?: DecoderFactory;
}

export interface StreamClientOptions {
  /** WebSocket implementation; default: `ws` in Node, the global WebSocket in browsers */
  WebSocket?: WebSocketConstructor;
  /** local-resource providers by kind; merged over the browser defaults */
  resources?: ResourceProviders;
  /** use navigator.geolocation / DeviceMotionEvent / ... when in a browser (default true) */
  browserResources?: boolean;
  /**
   * Called after an unexpected close to get a fresh connection target: the app requests the UA
   * again (seed B.1 step 4). Without it the client does not reconnect.
   */
  reconnect?: () => Promise<ConnectTarget>;
  /** bounded exponential backoff of reconnection attempts */
  backoff?: { initialMs?: number; maxMs?: number; maxAttempts?: number };
  /** clock sync pings after welcome, ms between them (0 = only the first burst) */
  pingIntervalMs?: number;
  /** ask the VM for a `timing` event after each frame: where its time went (benchmarks, diagnostics) */
  timings?: boolean;
}

/** A close after which reconnecting cannot help or is not wanted. */
const FINAL_CLOSES = new Set<number>([CLOSE.ENDED, CLOSE.REPLACED, CLOSE.UNAUTHORIZED, CLOSE.UNSUPPORTED_VERSION]);

export class StreamCloseError extends Error {
  constructor(readonly code: number, readonly reason: string) {
    super(`stream closed (${code}${reason ? `: ${reason}` : ''})`);
    this.name = 'StreamCloseError';
  }
}


function defaultWebSocket(): WebSocketConstructor {
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  if (isNode) return require('ws') as WebSocketConstructor;
  const G = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!G) throw new Error('no WebSocket implementation available');
  return G;
}

/** `ws://host:port` (a VM endpoint) becomes `ws://host:port/uve3`; full URLs are kept. */
export function streamUrl(url: string): string {
  const u = new URL(url);
  if (u.pathname === '' || u.pathname === '/') u.pathname = STREAM_PATH;
  return u.toString();
}

function base64ToBytes(b64: string): Uint8Array {
  if (typeof Buffer !== 'undefined') return new Uint8Array(Buffer.from(b64, 'base64'));
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export class StreamClient extends Emitter<StreamClientEvents> {
  private ws: WebSocketLike | null = null;
  private target: ConnectOptions | null = null;
  private inputSeq = 0;
  private readonly clockSync = new ClockSync((m) => this.send(m), (best) => this.emit('clock', best));
  private decoder: FrameDecoderLike | null = null;
  private decodeChain: Promise<void> = Promise.resolve();
  private waitingForKeyframe = true;
  private userClosed = false;
  private endedByVm = false;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly providers: ResourceProviders;

  welcome: WelcomeMessage | null = null;
  codec: CodecConfig | null = null;
  suspended = false;
  private currentState: StreamState = 'idle';
  /** snapshots whose outcome was announced (a welcome on the same VM repeats it) */
  private readonly announcedVmData = new Set<string>();
  /** the session's user is being watched */
  watched = false;

  constructor(private readonly options: StreamClientOptions = {}) {
    super();
    this.providers = { ...(options.browserResources === false ? {} : browserResourceProviders()), ...options.resources };
  }

  get state(): StreamState {
    return this.currentState;
  }

  private setState(state: StreamState): void {
    const previous = this.currentState;
    if (previous === state) return;
    this.currentState = state;
    this.emit('state', { state, previous });
  }

  get role(): StreamRole | null {
    return this.welcome?.role ?? null;
  }

  get connected(): boolean {
    return this.ws !== null && this.ws.readyState === 1 && this.welcome !== null;
  }

  /** Resource kinds this terminal can answer: declare these as `localResources` in the UA request. */
  offeredKinds(): LocalResourceKind[] {
    return Object.keys(this.providers) as LocalResourceKind[];
  }

  /** The best clock sample (smallest round trip of the recent ones), or null before the first pong. */
  get clock(): ClockSample | null {
    return this.clockSync.best;
  }

  /** The VM's clock now, estimated (local clock when no sample yet). */
  serverNow(): number {
    return localNow() + (this.clock?.offsetMs ?? 0);
  }

  /** Capture-to-now latency of a frame, ms, using the clock offset. */
  latencyOf(header: FrameHeader): number {
    return this.serverNow() - header.captureTs;
  }

  /** Opens the session connection; resolves on `welcome`, rejects with StreamCloseError if refused. */
  connect(options: ConnectOptions): Promise<WelcomeMessage> {
    this.target = options;
    this.userClosed = false;
    this.endedByVm = false;
    this.setState('connecting');
    return this.open();
  }

  /**
   * Sends one interaction command; returns its seq (frames carry the last applied seq). The count
   * goes on across reconnections, so it keeps increasing for the VM.
   */
  sendInput(ev: InputEvent): number {
    if (this.role === 'VIEWER') throw new Error('a VIEWER connection cannot send input');
    const seq = ++this.inputSeq;
    this.send({ t: 'input', seq, ev });
    return seq;
  }

  requestKeyframe(): void {
    this.send({ t: 'keyframe' });
  }

  /** One clock sample: round trip and VM-minus-local offset. */
  ping(timeoutMs = 5_000): Promise<ClockSample> {
    return this.clockSync.ping(timeoutMs);
  }

  /** Ends the connection the expected way (the VM reports it as not unexpected). */
  bye(): Promise<void> {
    this.userClosed = true;
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return Promise.resolve();
    const closed = this.next('close').then(() => undefined);
    this.send({ t: 'bye' });
    return closed;
  }

  /** Closes the socket without `bye` (for the VM an unexpected disconnect) and stops reconnecting. */
  close(code = 1000, reason = ''): void {
    this.userClosed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.ws?.close(code, reason);
    this.setState('ended');
    // the decoder too (drain() waits for it): a socket that was never open may not report its close
    void this.closeDecoder();
  }

  // ---- internals ------------------------------------------------------------------------------

  private send(m: ClientMessage): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) throw new Error('not connected');
    ws.send(JSON.stringify(m));
  }

  private open(): Promise<WelcomeMessage> {
    const target = this.target!;
    const WS = this.options.WebSocket ?? defaultWebSocket();
    const ws = new WS(streamUrl(target.url));
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.welcome = null;
    this.codec = null;
    this.waitingForKeyframe = true;
    this.clockSync.reset();
    return new Promise<WelcomeMessage>((resolve, reject) => {
      let welcomed = false;
      ws.onopen = () => {
        ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token: target.token, ...(this.options.timings ? { timings: true } : {}) } satisfies ClientMessage));
        // after the hello has left: the decoder starts while the VM checks the token and starts the session
        target.decoder?.prepare?.();
      };
      ws.onerror = () => undefined; // the close event follows with the code
      ws.onmessage = (ev) => {
        if (typeof ev.data === 'string') {
          let m: ServerMessage;
          try {
            m = JSON.parse(ev.data) as ServerMessage;
          } catch {
            this.emit('error', new Error('VM sent a message that is not JSON'));
            return;
          }
          if (m.t === 'welcome' && !welcomed) {
            welcomed = true;
            this.onWelcome(m);
            resolve(m);
          } else {
            this.onControl(m);
          }
        } else {
          this.onFrame(ev.data as ArrayBuffer);
        }
      };
      ws.onclose = (ev) => {
        if (this.ws === ws) this.ws = null;
        this.clockSync.stop();
        const code = ev.code;
        const reason = ev.reason ?? '';
        const reconnecting = this.shouldReconnect(code);
        this.emit('close', { code, reason, reconnecting });
        if (!welcomed) reject(new StreamCloseError(code, reason));
        if (reconnecting) this.scheduleReconnect();
        else {
          this.setState('ended');
          void this.closeDecoder();
        }
      };
    });
  }

  private shouldReconnect(code: number): boolean {
    return !!this.options.reconnect && !this.userClosed && !this.endedByVm && !FINAL_CLOSES.has(code);
  }

  private scheduleReconnect(): void {
    const b = this.options.backoff ?? {};
    const max = b.maxAttempts ?? 6;
    if (this.attempt >= max) {
      this.setState('ended');
      this.emit('error', new Error(`gave up reconnecting after ${max} attempts`));
      return;
    }
    this.setState('reconnecting');
    this.attempt++;
    const base = Math.min(b.maxMs ?? 10_000, (b.initialMs ?? 250) * 2 ** (this.attempt - 1));
    const delayMs = Math.round(base * (0.8 + Math.random() * 0.4));
    this.emit('reconnecting', { attempt: this.attempt, delayMs });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.userClosed) return;
      this.options.reconnect!()
        .then((t) => {
          if (this.userClosed) return undefined;
          this.target = { ...this.target!, url: t.url, token: t.token };
          return this.open();
        })
        .catch((e) => {
          // a refused open already went through onclose (and scheduled the next attempt)
          if (!(e instanceof StreamCloseError)) {
            this.emit('error', e instanceof Error ? e : new Error(String(e)));
            this.scheduleReconnect();
          }
        });
    }, delayMs);
  }

  private onWelcome(m: WelcomeMessage): void {
    this.welcome = m;
    this.suspended = m.suspended;
    const attempts = this.attempt;
    this.watched = m.watched ?? false;
    this.attempt = 0;
    this.emit('welcome', m);
    this.setState('live');
    if (attempts > 0) this.emit('reconnected', { sessionId: m.sessionId, attempts });
    const d = m.vmData;
    if (d && !this.announcedVmData.has(d.snapshotId)) {
      this.announcedVmData.add(d.snapshotId);
      if (d.restored) this.emit('restored', { sessionId: m.sessionId, snapshotId: d.snapshotId, kind: d.kind, preparedAhead: d.preparedAhead === true });
      else this.emit('fresh', { sessionId: m.sessionId, snapshotId: d.snapshotId, reason: d.reason });
    }
    this.clockSync.start(this.options.pingIntervalMs ?? 2_000, () => this.connected);
  }


  private onControl(m: ServerMessage): void {
    switch (m.t) {
      case 'codec': {
        const cfg: CodecConfig = { codec: m.codec, mime: m.mime, width: m.width, height: m.height, ...(m.description ? { description: base64ToBytes(m.description) } : {}) };
        this.codec = cfg;
        this.waitingForKeyframe = true;
        const factory = this.target?.decoder;
        if (factory) {
          const old = this.decoder;
          this.decodeChain = this.decodeChain.then(() => old?.close()).catch(() => undefined);
          try {
            this.decoder = factory(cfg);
          } catch (e) {
            this.decoder = null;
            this.emit('error', e instanceof Error ? e : new Error(String(e)));
          }
        }
        this.emit('codec', cfg);
        return;
      }
      case 'pong':
        this.clockSync.onPong(m);
        return;
      case 'resourceRequest':
        this.emit('resourceRequest', { id: m.id, kind: m.kind });
        void provideResource(this.providers, m.kind).then((a) => {
          try {
            this.send(a.ok ? { t: 'resource', id: m.id, ok: true, value: a.value } : { t: 'resource', id: m.id, ok: false, reason: a.reason });
          } catch {
            // disconnected meanwhile: the VM refuses the request itself
          }
        });
        return;
      case 'suspended':
        this.suspended = true;
        this.emit('suspended', { reason: m.reason });
        return;
      case 'resumed':
        this.suspended = false;
        this.emit('resumed', {});
        return;
      case 'watched':
        this.watched = m.watched;
        this.emit('watched', { watched: m.watched });
        return;
      case 'notice':
        this.emit('notice', { code: m.code, message: m.message });
        return;
      case 'ended':
        this.endedByVm = true;
        this.emit('ended', { reason: m.reason });
        return;
      case 'timing': {
        const { t: _t, ...timing } = m;
        this.emit('timing', timing);
        return;
      }
      case 'welcome':
        return;
    }
  }

  private onFrame(data: ArrayBuffer): void {
    const receivedAt = localNow();
    let f: ReturnType<typeof decodeFrame>;
    try {
      f = decodeFrame(data);
    } catch (e) {
      this.emit('error', new Error(`bad frame: ${(e as Error).message}`));
      return;
    }
    const decoder = this.decoder;
    if (!decoder) {
      // decoding was asked for: nothing to show until the `codec` message made a decoder
      if (!this.target?.decoder) this.emit('frame', { header: f.header, payload: f.payload, receivedAt });
      return;
    }
    // a decoder can only start at a keyframe (after `codec`, or after it lost a frame)
    if (this.waitingForKeyframe && !f.header.keyframe) return;
    this.waitingForKeyframe = false;
    // decode() is called at once, in arrival order (a decoder may need the next frame before it
    // returns this one); results are emitted in the same order.
    const decoding = decoder.decode(f.payload, f.header.keyframe);
    decoding.catch(() => undefined);
    this.decodeChain = this.decodeChain.then(async () => {
      try {
        const decoded = await decoding;
        if (this.decoder === decoder) this.emit('frame', { header: f.header, payload: f.payload, decoded, receivedAt });
      } catch (e) {
        if (this.decoder !== decoder) return;
        this.emit('error', new Error(`decode failed: ${(e as Error).message}`));
        this.waitingForKeyframe = true;
        try {
          this.requestKeyframe();
        } catch {
          // closed
        }
      }
    });
  }

  private closeDecoder(): Promise<void> {
    this.target?.decoder?.release?.();
    const d = this.decoder;
    this.decoder = null;
    this.decodeChain = this.decodeChain.then(() => d?.close()).catch(() => undefined);
    return this.decodeChain;
  }

  /** Waits until every frame received so far was decoded, and releases the decoder. */
  async drain(): Promise<void> {
    await this.decodeChain;
  }
}
