// One UA session on this VM: the running UA instance, its Output Stream (one encoder, one frame
// pump) and the UC connections using it — one PLAYER (the owner or an invited player) and any
// number of VIEWERs (watchers). Failures stay inside: a UA or encoder failure ends this session
// (session.failed), an error handling one UC's message closes that connection; never the agent.
import {
  CLOSE,
  STREAM_PROTOCOL_VERSION,
  NO_LOSS_SCOPE,
  type ClientMessage,
  type LocalResourceKind,
  type PrepareSessionCommand,
  type ReconnectionMethod,
  type SessionStartTiming,
  type SessionTokenClaims,
  type SnapshotKind,
  type StreamParams,
  type TerminalCapabilities,
  type VmDataSaveTiming,
} from '@uve/protocol';
import { sessionPixelFormat, type EncoderOptions, type VideoEncoder } from '../encoders/encoder';
import { UaUnresponsiveError, type InstalledUa, type UaInstance, type UaRuntime } from '../runtimes/runtime';
import type { Logger } from '../common/log';
import { monotonic, wallClock } from '../common/clock';
import { errorMessage, withTimeout } from '../common/errors';
import { FramePump } from '../stream/frame-pump';
import type { StreamConnection } from '../stream/connection';
import type { VmReport } from '../vmm/link';
import { vmDataHead, type FetchedVmData, type HeldBuffer, type StoredVmData, type VmDataClient } from '../vmm/vm-data';
import { SessionVmData, type RestoreDownload } from './session-vm-data';
import type { PreparedRestore, RestoreAheadKey } from './restores-ahead';
import { SessionResourceBroker } from './resource-broker';

export type SessionState = 'starting' | 'ready' | 'ended';

/** UVE-5 events of a session, minus the ids the session adds itself. */
export type SessionReport = VmReport extends infer R ? (R extends { sessionId: string } ? Omit<R, 'sessionId' | 'userId' | 'uaId' | 'seq'> : never) : never;

export interface SessionDeps {
  runtime: UaRuntime;
  /** the installed package (waits for a deploy in progress) */
  resolveUa: () => Promise<InstalledUa>;
  createEncoder: (codec: StreamParams['codec'], opts: EncoderOptions) => VideoEncoder;
  report: (event: VmReport) => void;
  log: Logger;
  /** the session ended: free its capacity */
  onEnded: (session: Session, reason: string) => void;
  /** stores VM Data with the VMM (UVE-5); absent in tests without a VMM */
  storeVmData?: (sessionId: string, kind: SnapshotKind, data: Uint8Array, timing?: VmDataSaveTiming) => Promise<StoredVmData>;
  /** VM Data as deltas against what a session staged with the VMM (UVE-5); absent without a VMM */
  vmDataDeltas?: Pick<VmDataClient, 'uploadDelta' | 'stage'>;
  /** fetches VM Data to restore (UVE-5 retrieve), its checksum verified; absent without a VMM */
  fetchVmData?: (snapshotId: string, onFirstBytes?: (head: Uint8Array) => void) => Promise<FetchedVmData>;
  /** the VM's kept buffer for VM Data, lent to a save (null while in use); absent: saves allocate their own */
  vmDataBuffer?: () => HeldBuffer | null;
  /** the UA a restore prepared ahead holds for this session (vmdata.prepareRestore), when one fits; absent: none are */
  takeRestoreAhead?: (sessionId: string, key: RestoreAheadKey) => Promise<PreparedRestore | null> | null;
  /** lets go of what this VM prepared ahead for the session, which starts here without taking it */
  dropRestoreAhead?: (sessionId: string, reason: string) => void;
  /** stream measurements for /metrics */
  observer?: { encoded(ms: number): void; inputToFrame(ms: number): void };
}

/** the window the stream's fps is measured over */
const FPS_WINDOW_MS = 5_000;
/** a PLAYER's connection closed for the same user's newer one */
const REPLACED_REASON = 'replaced by a newer connection of this session';

/**
 * how long a session whose PLAYER vanished keeps its slot when session.prepare does not say
 * (the VMM's UVE_RECONNECT_WINDOW_S default)
 */
export const DEFAULT_RECONNECT_WINDOW_MS = 300_000;
export const RECONNECT_WINDOW_EXPIRED = 'reconnect window expired';

/** how long the first picture may take (encoder start included) */
const WARM_UP_TIMEOUT_MS = 20_000;
/** consecutive encoder errors after which the session is given up */
const MAX_ENCODE_ERRORS = 5;

export class Session {
  readonly id: string;
  readonly userId: string;
  readonly uaId: string;
  readonly uaVersion: string;
  readonly terminal: TerminalCapabilities;
  readonly stream: StreamParams;
  readonly reconnectionMethod: ReconnectionMethod;
  readonly restoreSnapshotId: string | null;
  /** that VM Data's head as the VMM kept it (null: none), for the UA to prepare by before the download's first bytes */
  private readonly restoreHead: Uint8Array | null;
  /** how often the UA's FULL state is staged with the VMM (session.prepare; undefined: never) */
  private readonly vmDataStageMs: number | undefined;
  readonly reconnectWindowMs: number;

  state: SessionState = 'starting';
  suspended = false;
  suspendReason: string | null = null;
  /** users the VMM announced (monitoring.notify) as allowed to watch */
  readonly watchers = new Set<string>();
  /** invited PLAYERs the VMM announced (monitoring.notify with PLAY): their input is executed too */
  readonly guests = new Set<string>();
  /** a PLAYER has connected at least once */
  everConnected = false;
  /** the VMM ended it and the VM is saving its data: a socket closing now is no disconnect */
  terminating = false;
  readonly broker: SessionResourceBroker;

  private player: StreamConnection | null = null;
  private readonly viewers = new Set<StreamConnection>();
  /** connections of invited PLAYERs (not the session's user): input interleaved in arrival order */
  private readonly guestPlayers = new Set<StreamConnection>();
  /** when each connection was last told its input is refused (one notice a second is enough) */
  private readonly noticedAt = new WeakMap<StreamConnection, number>();
  private instance: UaInstance | null = null;
  private encoder: VideoEncoder | null = null;
  private pump: FramePump | null = null;
  private lastInputSeq = 0;
  /** when the session user's last input arrived and was applied (wall clock), for `timing` messages */
  private lastInputTimes: { receivedAt: number; appliedAt: number } | null = null;
  private encodeErrors = 0;
  /** UVE-5 order of this session's reports (the VMM applies them in this order) */
  private reportSeq = 0;
  private endReason: string | null = null;
  /** the oldest input not yet in a frame sent out (input-to-frame time) */
  private unservedInput: { seq: number; at: number } | null = null;
  /** send times of the frames of the last FPS_WINDOW_MS */
  private readonly frameTimes: number[] = [];
  /** runs while the PLAYER is away after an unexpected disconnect */
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly vmData: SessionVmData;
  /** the UA is stopped while its PLAYER is away (freezeForReconnect) */
  private frozenForReconnect = false;
  /** where the start went (VMM stamps from the prepare's trace), for a UC asking for timings */
  private readonly startTiming: Omit<SessionStartTiming, 'welcomeAt' | 'helloAt'>;
  private readonly ready: Promise<void>;
  private settleReady!: (error?: Error) => void;
  private readonly log: Logger;

  constructor(cmd: PrepareSessionCommand, private readonly deps: SessionDeps) {
    this.id = cmd.sessionId;
    this.userId = cmd.userId;
    this.uaId = cmd.uaId;
    this.uaVersion = cmd.uaVersion;
    this.terminal = cmd.terminal;
    this.stream = cmd.stream;
    this.reconnectionMethod = cmd.reconnectionMethod;
    this.restoreSnapshotId = cmd.restoreSnapshotId ?? null;
    this.restoreHead = this.restoreSnapshotId ? vmDataHead(cmd.restoreHead) : null;
    this.vmDataStageMs = cmd.vmDataStageMs;
    if (cmd.suspended) {
      // applied as the UA starts (start()), before its first frame
      this.suspended = true;
      this.suspendReason = typeof cmd.suspended.reason === 'string' ? cmd.suspended.reason.slice(0, 500) : null;
    }
    const w = cmd.reconnectWindowMs;
    this.reconnectWindowMs = typeof w === 'number' && Number.isFinite(w) && w >= 0 ? w : DEFAULT_RECONNECT_WINDOW_MS;
    this.log = deps.log.child({ session: this.id });
    this.startTiming = { committedAt: cmd.trace?.committedAt, sentAt: cmd.trace?.sentAt, preparedAt: wallClock() };
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = (e) => (e ? reject(e) : resolve());
    });
    this.ready.catch(() => undefined); // observed by whenReady(); not an unhandled rejection
    this.vmData = new SessionVmData(this.id, deps, this.startTiming, (event) => this.report(event), this.log, cmd.vmDataStaged);
    this.broker = new SessionResourceBroker(this.terminal.localResources ?? [], {
      sendRequest: (id, kind) => {
        if (!this.player?.open) return false;
        this.player.send({ t: 'resourceRequest', id, kind });
        return true;
      },
      expectsPlayer: () => !this.everConnected && this.state !== 'ended',
      reportRequested: (kind: LocalResourceKind) => this.report({ type: 'session.resourceRequested', kind }),
    });
  }

  get ended(): boolean {
    return this.state === 'ended';
  }

  get connections(): number {
    return (this.player ? 1 : 0) + this.viewers.size + this.guestPlayers.size;
  }

  /** the session's user is watched: someone other than an invited PLAYER was announced */
  get watched(): boolean {
    return this.watchers.size > 0;
  }

  get hasPlayer(): boolean {
    return this.player !== null;
  }

  /** frame pump figures (tests, logs) */
  get streamStats(): FramePump['stats'] | null {
    return this.pump?.stats ?? null;
  }

  /**
   * Starts the UA right away and encodes its first picture, so a UC that connects gets a frame
   * without waiting for the UA or the encoder. Failure ends the session with session.failed.
   */
  async start(): Promise<void> {
    // I420 for H264 when the runtime gives it (the WASM one converts in the guest's thread, cheaper than ffmpeg)
    const pixelFormat = sessionPixelFormat(this.stream.codec, this.deps.runtime.pixelFormats, this.stream.width, this.stream.height);
    // a UA this VM restored while the PLAYER was away (vmdata.prepareRestore), if it fits this session
    const fullRestore = this.reconnectionMethod === 'NO_LOSS' ? this.restoreSnapshotId : null;
    const ahead = fullRestore
      ? this.deps.takeRestoreAhead?.(this.id, { snapshotId: fullRestore, uaId: this.uaId, uaVersion: this.uaVersion, width: this.stream.width, height: this.stream.height, pixelFormat }) ?? null
      : null;
    // a UA restored here ahead that this start will not take (a NORMAL reconnection, or one without
    // the VM Data, deleted meanwhile) would otherwise hold the state in memory until its hold ran out
    if (!fullRestore) this.deps.dropRestoreAhead?.(this.id, this.restoreSnapshotId ? 'the session came back NORMAL (its application data only)' : 'the session came back without its VM Data');
    // the VM Data comes while the UA starts (the download does not wait for the instantiation)
    let restoring = this.restoreSnapshotId && !ahead ? this.vmData.download(this.restoreSnapshotId, this.restoreHead) : null;
    try {
      const ua = await this.deps.resolveUa();
      if (this.ended) {
        void ahead?.then((p) => p?.instance.close().catch(() => undefined));
        return;
      }
      const startUa = async (restoreFollows: boolean): Promise<UaInstance> => {
        let started: UaInstance | null = null;
        started = await this.deps.runtime.start({
          ua,
          width: this.stream.width,
          height: this.stream.height,
          pixelFormat,
          resources: this.broker,
          onDamage: () => this.pump?.damage(),
          // an instance given up during a failed restore is not the session's UA
          onExit: (error) => (!started || this.instance === started) && this.onUaExit(error),
          restoreFollows,
        });
        return started;
      };
      let instance: UaInstance;
      const prepared = ahead ? await ahead : null;
      if (prepared) {
        Object.assign(this.startTiming, { restoreAheadStartedAt: prepared.startedAt, restoreAheadFirstByteAt: prepared.firstByteAt, restoreAheadUaStartedAt: prepared.uaStartedAt, restoreAheadFetchedAt: prepared.fetchedAt, restoreAheadReadyAt: prepared.readyAt });
        instance = prepared.bind({ resources: this.broker, onDamage: () => this.pump?.damage(), onExit: (error) => this.instance === instance && this.onUaExit(error) });
        this.vmData.restoredAhead(this.restoreSnapshotId!);
      } else {
        // prepared ahead but not usable after all (logged): restored as usual
        if (ahead && this.restoreSnapshotId) restoring = this.vmData.download(this.restoreSnapshotId, this.restoreHead);
        instance = await this.startRestoring(startUa, restoring);
      }
      if (this.ended) {
        await instance.close().catch(() => undefined);
        return;
      }
      this.instance = instance;
      this.startTiming.uaStartedAt = wallClock();
      if (this.suspended) instance.suspend();
      else if (prepared) instance.resume(); // frozen since it was prepared: its clock goes on from the drop
      this.encoder = this.deps.createEncoder(this.stream.codec, {
        width: instance.width,
        height: instance.height,
        maxFps: this.stream.maxFps,
        bitrateKbps: this.stream.bitrateKbps,
        pixelFormat,
      });
      this.pump = new FramePump({
        source: { capture: () => instance.capture(), captureFull: () => instance.captureFull() },
        encoder: this.encoder,
        maxFps: this.stream.maxFps,
        inputSeq: () => this.lastInputSeq,
        inputTimes: () => this.lastInputTimes,
        onError: (e) => this.onEncodeError(e),
        onFrame: (header, _bytes, sentTo) => this.onFrameSent(header.inputSeq, sentTo),
        // an input that changed nothing (a pointer up) is served by the picture already shown,
        // not by the next change, maybe seconds later
        onUnchanged: (inputSeq) => {
          if (this.unservedInput && inputSeq >= this.unservedInput.seq) this.unservedInput = null;
        },
      });
      if (this.suspended) this.pump.pause();
      const pump = this.pump;
      await withTimeout(this.encoder.ready().then(() => {
        this.startTiming.encoderReadyAt = wallClock();
        return pump.warmUp();
      }), WARM_UP_TIMEOUT_MS, 'first frame');
      if (this.ended) return;
      Object.assign(this.startTiming, pump.warmUpTiming);
      this.state = 'ready';
      this.settleReady();
      // NO_LOSS with a full state that moves to any VM: staged ahead while a PLAYER plays
      if (this.reconnectionMethod === 'NO_LOSS' && NO_LOSS_SCOPE[this.deps.runtime.platform] !== 'SAME_VM_WITHIN_WINDOW') {
        this.vmData.startStaging(() => (this.player && !this.ended ? this.instance : null), this.vmDataStageMs);
      }
      this.log.info('session ready', { ua: this.uaId, codec: this.stream.codec, size: `${instance.width}x${instance.height}`, maxFps: this.stream.maxFps });
    } catch (e) {
      await this.fail(`could not start the session: ${errorMessage(e)}`);
    } finally {
      // restored or not, the download's buffer is free for the next one (restore() released it already when it ran)
      restoring?.fetched.then((d) => d.release(), () => undefined);
    }
  }

  /** The UA started, with the VM Data to restore in it when there is some (a fresh start when it is unusable). */
  private async startRestoring(startUa: (restoreFollows: boolean) => Promise<UaInstance>, restoring: RestoreDownload | null): Promise<UaInstance> {
    // NO_LOSS saves a FULL state, whose restore makes an instance of its own: the UA's own start is skipped
    let instance = await startUa(restoring !== null && this.reconnectionMethod === 'NO_LOSS');
    if (restoring) {
      this.startTiming.uaInstantiatedAt = wallClock();
      // the UA makes room for the state while the rest of it downloads
      const ready = instance;
      void restoring.head.then((head) => !this.ended && ready.prepareRestore?.(head));
    }
    if (this.ended) return instance;
    // seed B.1: the VM Data is in the UA before its first frame; unusable data means a fresh start
    if (this.restoreSnapshotId && restoring && !(await this.vmData.restore(instance, this.restoreSnapshotId, restoring.fetched))) {
      await instance.close().catch(() => undefined);
      if (this.ended) return instance;
      instance = await startUa(false);
    }
    return instance;
  }

  /** Resolves when the first frame is ready; rejects if the session ends first. */
  whenReady(timeoutMs: number): Promise<void> {
    return withTimeout(this.ready, timeoutMs, `start of session ${this.id}`);
  }

  /** Whether this token's holder may join; a reason when not. */
  admits(claims: SessionTokenClaims): string | null {
    if (claims.ua !== this.uaId) return `session token is for UA ${claims.ua}, this session runs ${this.uaId}`;
    // A VIEWER is the session's user or someone the VMM announced with monitoring.notify; a PLAYER
    // is the session's user or an invited PLAYER the VMM announced (privilege PLAY).
    if (claims.sub === this.userId) return null;
    if (claims.role === 'PLAYER' && !this.guests.has(claims.sub)) return `user ${claims.sub} is not an announced PLAYER of session ${this.id}`;
    if (claims.role === 'VIEWER' && !this.watchers.has(claims.sub) && !this.guests.has(claims.sub)) {
      return `user ${claims.sub} is not an announced watcher of session ${this.id}`;
    }
    return null;
  }

  /** A UC passed hello: welcome, decoder configuration and a keyframe follow. */
  attach(conn: StreamConnection, claims: SessionTokenClaims): void {
    const instance = this.instance;
    const pump = this.pump;
    if (this.state !== 'ready' || !instance || !pump) {
      conn.close(CLOSE.ENDED, this.endReason ?? 'session is not running');
      return;
    }
    conn.state = 'attached';
    conn.role = claims.role;
    conn.userId = claims.sub;
    conn.sessionId = this.id;
    const guest = claims.role === 'PLAYER' && claims.sub !== this.userId;
    if (guest) {
      this.guestPlayers.add(conn);
    } else if (claims.role === 'PLAYER') {
      const old = this.player;
      this.player = conn;
      if (old) {
        this.broker.playerGone('player replaced');
        old.close(CLOSE.REPLACED, REPLACED_REASON);
        // the VMM hears of the old connection's end as of any other (its detach is silent now):
        // the user's terminal reconnected before this VM saw the old one go (a network change)
        this.report({ type: 'session.disconnected', reason: REPLACED_REASON, unexpected: false });
      }
      // a new connection numbers its input from 1: frames must not claim its input was applied
      this.lastInputSeq = 0;
      this.lastInputTimes = null;
      this.unservedInput = null;
      this.everConnected = true;
      this.stopReconnectWindow();
      this.thaw();
    } else {
      this.viewers.add(conn);
    }
    this.welcome(conn, claims, instance, pump);
    this.encoder?.clientJoined?.();
    if (claims.role === 'PLAYER' && !guest) this.broker.playerJoined();
    this.log.info('UC connected', { role: claims.role, user: claims.sub, guest, conn: conn.id, remote: conn.remote });
    if (claims.role === 'PLAYER' && !guest) this.report({ type: 'session.connected', role: claims.role });
  }

  /** welcome, then the decoder configuration and the kept keyframe (addSink) */
  private welcome(conn: StreamConnection, claims: SessionTokenClaims, instance: UaInstance, pump: FramePump): void {
    conn.send({
      t: 'welcome',
      v: STREAM_PROTOCOL_VERSION,
      sessionId: this.id,
      role: claims.role,
      codec: this.stream.codec,
      width: instance.width,
      height: instance.height,
      maxFps: this.stream.maxFps,
      suspended: this.suspended,
      ...(this.vmData.outcome ? { vmData: this.vmData.outcome } : {}),
      watched: claims.sub === this.userId && this.watched,
      ...(conn.timings ? { start: { ...this.startTiming, helloAt: conn.helloAt || undefined, welcomeAt: wallClock() } } : {}),
    });
    if (this.suspended) conn.send({ t: 'suspended', reason: this.suspendReason });
    pump.addSink(conn);
  }

  onMessage(conn: StreamConnection, msg: ClientMessage): void {
    switch (msg.t) {
      case 'hello':
        conn.close(CLOSE.BAD_MESSAGE, 'hello was already received');
        return;
      case 'input': {
        if (conn.role !== 'PLAYER') {
          conn.close(CLOSE.FORBIDDEN, 'a VIEWER connection cannot send input');
          return;
        }
        const instance = this.instance;
        const guest = this.guestPlayers.has(conn);
        if (!instance || (conn !== this.player && !guest)) return;
        if (this.suspended) {
          // frozen UA: input is refused, and the UC is told why (at most once a second)
          const last = this.noticedAt.get(conn) ?? -Infinity;
          if (monotonic() - last >= 1000) {
            this.noticedAt.set(conn, monotonic());
            conn.send({ t: 'notice', code: 'SUSPENDED', message: `input refused: the session is suspended${this.suspendReason ? ` (${this.suspendReason})` : ''}` });
          }
          return;
        }
        const receivedAt = wallClock();
        // frames count the session user's input; a guest numbers its own from 1
        if (!guest) {
          this.lastInputSeq = msg.seq;
          this.unservedInput ??= { seq: msg.seq, at: monotonic() };
        }
        try {
          instance.input(msg.ev);
        } catch (e) {
          this.log.warn('UA rejected input', { error: errorMessage(e) });
        }
        if (!guest) this.lastInputTimes = { receivedAt, appliedAt: wallClock() };
        // input applied: capture now rather than on the UA's next damage signal, and let its
        // picture through before the interval ends
        this.pump?.inputApplied();
        return;
      }
      case 'ping':
        conn.send({ t: 'pong', id: msg.id, t0: msg.t0, t1: wallClock() });
        return;
      case 'resource':
        if (conn.role !== 'PLAYER') {
          conn.close(CLOSE.FORBIDDEN, 'a VIEWER connection cannot answer resource requests');
          return;
        }
        this.broker.answer(msg.id, msg.ok ? { ok: true, value: msg.value } : { ok: false, reason: msg.reason });
        return;
      case 'keyframe':
        this.pump?.keyframeFor(conn);
        return;
      case 'bye':
        conn.byeReceived = true;
        conn.close(CLOSE.NORMAL, 'bye');
        return;
    }
  }

  /** The socket closed (either side). */
  detach(conn: StreamConnection, code: number, reason: string): void {
    this.pump?.removeSink(conn);
    if (conn !== this.player) {
      this.viewers.delete(conn);
      this.guestPlayers.delete(conn);
      return;
    }
    this.player = null;
    this.broker.playerGone();
    if (this.ended || this.terminating) return; // the VMM terminated it, or the VM stops
    const why = conn.byeReceived
      ? 'bye'
      : conn.closedByVm
        ? `closed by the VM: ${conn.closedByVm.code} ${conn.closedByVm.reason}`
        : `connection closed: ${code}${reason ? ` ${reason}` : code === 1006 ? ' (lost)' : ''}`;
    this.log.info('player disconnected', { unexpected: !conn.byeReceived, reason: why });
    this.report({ type: 'session.disconnected', reason: why, unexpected: !conn.byeReceived });
    // seed 7.3.1.2.2: on an unexpected disconnect the VM updates the VM Data with the VMM
    if (!conn.byeReceived) void this.saveVmData();
    this.freezeForReconnect();
    // DISCONNECTED either way on the VMM (it counts the slot until the window closes): same here
    this.startReconnectWindow();
  }

  /** whether the slot is held for a PLAYER that may come back (tests, metrics) */
  get awaitingReconnect(): boolean {
    return this.reconnectTimer !== null;
  }

  /**
   * The session keeps its slot for reconnectWindowMs; when no PLAYER is back by then the VM ends it
   * by itself (VM Data saved first, per the method) and frees the slot. The VMM ends it too when the
   * window closes on its side: whichever comes first, the other finds it ended.
   */
  private startReconnectWindow(): void {
    this.stopReconnectWindow();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.ended || this.player || this.terminating) return;
      this.log.info('no PLAYER came back within the reconnect window', { windowMs: this.reconnectWindowMs });
      this.terminating = true;
      void this.saveVmData()
        .then(() => {
          if (this.ended) return;
          this.report({ type: 'session.ended', reason: RECONNECT_WINDOW_EXPIRED });
          return this.end(RECONNECT_WINDOW_EXPIRED);
        })
        .catch((e) => this.log.error('could not end the session after its reconnect window', { error: errorMessage(e) }));
    }, this.reconnectWindowMs);
    this.reconnectTimer.unref();
  }

  /**
   * NO_LOSS where the full state cannot move to another VM (NO_LOSS_SCOPE SAME_VM_WITHIN_WINDOW,
   * LINUX_X11): the UA waits frozen (its processes stopped, its X server kept) for its user to
   * come back to this VM within the window, and continues exactly where it was.
   */
  private freezeForReconnect(): void {
    if (this.frozenForReconnect || this.reconnectionMethod !== 'NO_LOSS' || NO_LOSS_SCOPE[this.deps.runtime.platform] !== 'SAME_VM_WITHIN_WINDOW') return;
    this.frozenForReconnect = true;
    if (!this.suspended) this.instance?.suspend();
    this.log.info('UA frozen until its PLAYER comes back', { windowMs: this.reconnectWindowMs });
  }

  private thaw(): void {
    if (!this.frozenForReconnect) return;
    this.frozenForReconnect = false;
    if (this.suspended) return; // suspended by its controller: stays so
    this.instance?.resume();
    this.pump?.damage();
  }

  /** whether the UA waits frozen for its PLAYER (tests, diagnostics) */
  get frozen(): boolean {
    return this.frozenForReconnect;
  }

  private stopReconnectWindow(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  /** Saves the session's VM Data per its Reconnection Method and stores it with the VMM (never throws). */
  saveVmData(): Promise<StoredVmData | null> {
    return this.vmData.save(this.instance, this.reconnectionMethod);
  }

  /** monitoring.notify: a watcher (VIEW, SUSPEND) or an invited PLAYER (PLAY) may join. */
  addWatcher(userId: string, privileges: readonly string[] = ['VIEW']): void {
    const was = this.watched;
    if (privileges.includes('PLAY')) this.guests.add(userId);
    else this.watchers.add(userId);
    if (!was && this.watched) this.player?.send({ t: 'watched', watched: true });
  }

  /** monitoring.end: the user's access is over; their open connections close with the reason. */
  removeWatcher(userId: string, reason: string): void {
    const was = this.watched;
    this.watchers.delete(userId);
    this.guests.delete(userId);
    for (const c of [...this.viewers, ...this.guestPlayers]) {
      if (c.userId === userId) c.close(CLOSE.FORBIDDEN, reason);
    }
    if (was && !this.watched) this.player?.send({ t: 'watched', watched: false });
  }

  suspend(reason: string | null): void {
    if (this.ended) return;
    const was = this.suspended;
    this.suspended = true;
    this.suspendReason = reason;
    if (!was) {
      this.instance?.suspend();
      this.pump?.pause();
      // a frame captured before goes out first: after `suspended` a UC gets no frame until `resumed`
      void (this.pump?.whenIdle() ?? Promise.resolve()).then(() => {
        if (this.suspended && !this.ended) this.broadcast({ t: 'suspended', reason });
      });
    }
    this.report({ type: 'session.suspended', suspended: true });
  }

  resume(): void {
    if (this.ended) return;
    const was = this.suspended;
    this.suspended = false;
    this.suspendReason = null;
    if (was) {
      if (!this.frozenForReconnect) this.instance?.resume();
      this.pump?.resume();
      this.broadcast({ t: 'resumed' });
      this.pump?.damage();
    }
    this.report({ type: 'session.suspended', suspended: false });
  }

  /**
   * Ends the session: every UC gets `ended` and a close with `code` (ENDED when the VMM terminated
   * it, GOING_AWAY when the VM stops), the UA is closed and the capacity freed.
   */
  async end(reason: string, code: number = CLOSE.ENDED): Promise<void> {
    if (this.ended) return;
    this.state = 'ended';
    this.vmData.stopStaging();
    this.endReason = reason;
    this.stopReconnectWindow();
    this.settleReady(new Error(`session ended: ${reason}`));
    const conns = [...this.viewers, ...this.guestPlayers, ...(this.player ? [this.player] : [])];
    for (const c of conns) {
      c.send({ t: 'ended', reason });
      c.close(code, reason);
    }
    this.broker.close();
    this.pump?.close();
    const instance = this.instance;
    const encoder = this.encoder;
    this.instance = null;
    this.encoder = null;
    await Promise.allSettled([
      instance?.close(),
      encoder?.close(),
    ]).then((results) => {
      for (const r of results) if (r.status === 'rejected') this.log.warn('error while closing the session', { error: errorMessage(r.reason) });
    });
    this.log.info('session ended', { reason });
    this.deps.onEnded(this, reason);
  }

  /** Reports session.failed and ends the session. */
  async fail(error: string): Promise<void> {
    if (this.ended) return;
    this.log.warn('session failed', { error });
    this.report({ type: 'session.failed', error });
    await this.end(error);
  }

  // ---- internals ------------------------------------------------------------------------------

  private report(event: SessionReport): void {
    this.deps.report({ ...event, sessionId: this.id, userId: this.userId, uaId: this.uaId, seq: ++this.reportSeq } as VmReport);
  }

  private broadcast(msg: Parameters<StreamConnection['send']>[0]): void {
    this.player?.send(msg);
    for (const v of [...this.viewers, ...this.guestPlayers]) v.send(msg);
  }

  private onUaExit(error?: Error): void {
    if (error instanceof UaUnresponsiveError) {
      void this.fail(error.message);
      return;
    }
    if (error) {
      void this.fail(`the application stopped: ${error.message}`);
      return;
    }
    if (this.ended) return;
    this.report({ type: 'session.ended', reason: 'the application exited' });
    void this.end('the application exited');
  }

  private onFrameSent(inputSeq: number, sentTo: number): void {
    this.encodeErrors = 0;
    const now = monotonic();
    if (sentTo > 0) this.frameTimes.push(now);
    while (this.frameTimes.length && this.frameTimes[0] < now - FPS_WINDOW_MS) this.frameTimes.shift();
    const obs = this.deps.observer;
    if (!obs) return;
    if (this.pump) obs.encoded(this.pump.stats.lastEncodeMs);
    if (this.unservedInput && inputSeq >= this.unservedInput.seq) {
      obs.inputToFrame(now - this.unservedInput.at);
      this.unservedInput = null;
    }
  }

  /** frames per second sent over the last few seconds */
  streamFps(now = monotonic()): number {
    while (this.frameTimes.length && this.frameTimes[0] < now - FPS_WINDOW_MS) this.frameTimes.shift();
    return this.frameTimes.length / (FPS_WINDOW_MS / 1000);
  }

  private onEncodeError(e: unknown): void {
    this.encodeErrors++;
    this.log.warn('frame not produced', { error: errorMessage(e), consecutive: this.encodeErrors });
    if (this.encodeErrors >= MAX_ENCODE_ERRORS) void this.fail(`video encoding failed: ${errorMessage(e)}`);
  }
}
