// The sessions of this VM: capacity, draining, and the UVE-2 session commands.
import { CLOSE, type PrepareSessionCommand, type VideoCodec } from '@uve/protocol';
import type { Logger } from '../common/log';
import { errorMessage } from '../common/errors';
import type { VmReport } from '../vmm/link';
import type { UaStore } from '../uas/ua-store';
import type { UaRuntime } from '../runtimes/runtime';
import type { EncoderOptions, VideoEncoder } from '../encoders/encoder';
import { Session, type SessionDeps } from './session';
import type { RestoresAhead } from './restores-ahead';

/** how long a prepare may wait for the UA's deployment to finish */
export const DEPLOY_WAIT_MS = 180_000;
/** a prepared session no UC connected to within this time is given up (the UC will not come) */
export const FIRST_CONNECT_TIMEOUT_MS = 120_000;
/**
 * A UC may say hello before its session.prepare arrived: the VMM hands out the connection and
 * sends the command at the same time, and the bus is not faster than the UC. A UC with a valid
 * token waits this long for the prepare.
 */
export const PREPARE_WAIT_MS = 3_000;
const RECENTLY_ENDED = 1_000;

/** What a UC waiting for its session learns: the session, or why there is none. */
export type SessionArrival = { session: Session } | { error: string };

export interface SessionManagerOptions {
  capacity: number;
  codecs: VideoCodec[];
  runtime: UaRuntime;
  uas: UaStore;
  createEncoder: (codec: VideoCodec, opts: EncoderOptions) => VideoEncoder;
  report: (event: VmReport) => void;
  log: Logger;
  firstConnectTimeoutMs?: number;
  storeVmData?: SessionDeps['storeVmData'];
  fetchVmData?: SessionDeps['fetchVmData'];
  vmDataDeltas?: SessionDeps['vmDataDeltas'];
  vmDataBuffer?: SessionDeps['vmDataBuffer'];
  observer?: SessionDeps['observer'];
  /** restores prepared ahead on this VM (vmdata.prepareRestore) */
  restoresAhead?: RestoresAhead;
}

export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private readonly arrivals = new Map<string, Set<(a: SessionArrival) => void>>();
  /**
   * why recent sessions ended, so a late (re)connect is told at once instead of waiting; `movedAt`:
   * it moved to another VM (session.terminate `moved`), and may come back here
   */
  private readonly ended = new Map<string, { why: string; movedAt: number | null }>();
  /** sessions terminated because they moved to another VM, until they ended here */
  private readonly movingAway = new Set<string>();
  /** terminated sessions whose slot is free but whose UA is still saving/closing */
  private readonly closing = new Set<Session>();
  private draining = false;

  constructor(private readonly opts: SessionManagerOptions) {}

  get(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  /** sessions holding a slot: exactly the sessions this VM holds (SLOT_SESSION_STATES on the VMM) */
  get active(): number {
    return this.sessions.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  all(): Session[] {
    return [...this.sessions.values()];
  }

  /**
   * The session, once prepared (or refused); null when no prepare comes within `timeoutMs`. A
   * session that ended here is told at once, unless it moved to another VM and the UC's token was
   * issued after that (`issuedAt`, s): the VMM brought it back, and its prepare is on its way.
   */
  waitFor(id: string, issuedAt?: number, timeoutMs = PREPARE_WAIT_MS): Promise<SessionArrival | null> {
    const s = this.sessions.get(id);
    if (s) return Promise.resolve({ session: s });
    const ended = this.ended.get(id);
    // iat is in whole seconds: a token of the same second as the move waits too
    const cameBack = ended?.movedAt != null && issuedAt !== undefined && issuedAt * 1000 >= Math.floor(ended.movedAt / 1000) * 1000;
    if (ended && !cameBack) return Promise.resolve({ error: `it ended: ${ended.why}` });
    return new Promise((resolve) => {
      let set = this.arrivals.get(id);
      if (!set) this.arrivals.set(id, (set = new Set()));
      const done = (a: SessionArrival | null): void => {
        clearTimeout(timer);
        set!.delete(done);
        if (set!.size === 0 && this.arrivals.get(id) === set) this.arrivals.delete(id);
        resolve(a);
      };
      const timer = setTimeout(() => done(null), timeoutMs);
      set.add(done);
    });
  }

  private remember(id: string, why: string, moved = false): void {
    this.ended.set(id, { why, movedAt: moved ? Date.now() : null });
    if (this.ended.size > RECENTLY_ENDED) this.ended.delete(this.ended.keys().next().value!);
  }

  private arrived(id: string, a: SessionArrival): void {
    for (const fn of [...(this.arrivals.get(id) ?? [])]) fn(a);
  }

  /** vm.drain: running sessions continue, new prepares are refused. */
  drain(): void {
    this.draining = true;
  }

  /**
   * session.prepare: checks what can be checked at once, then starts the UA in the background (the
   * command queue must not wait for a download or an encoder start).
   */
  prepare(cmd: PrepareSessionCommand): void {
    const log = this.opts.log.child({ session: cmd.sessionId });
    if (this.sessions.has(cmd.sessionId)) {
      log.info('session already prepared; repeated command ignored');
      return;
    }
    // a re-sent prepare of a session that already ended must not start it again; one that moved
    // away may come back (a re-send has the same commandId, which the command gate ran once)
    const ended = this.ended.get(cmd.sessionId);
    if (ended && !(ended.movedAt !== null && cmd.commandId)) {
      log.info('prepare for a session that already ended ignored');
      return;
    }
    if (ended) {
      log.info('the session comes back to this VM');
      this.ended.delete(cmd.sessionId);
    }
    const refuse = (error: string): void => {
      log.warn('session refused', { error });
      this.remember(cmd.sessionId, `refused: ${error}`);
      this.opts.restoresAhead?.drop(cmd.sessionId, 'its session.prepare was refused');
      // refused before the session existed: its first and only report
      this.opts.report({ type: 'session.failed', sessionId: cmd.sessionId, userId: cmd.userId, uaId: cmd.uaId, seq: 1, error });
      this.arrived(cmd.sessionId, { error });
    };
    if (this.draining) return refuse('VM is draining and accepts no new sessions');
    if (this.sessions.size >= this.opts.capacity) return refuse(`VM is at capacity (${this.opts.capacity} sessions)`);
    if (!this.opts.codecs.includes(cmd.stream.codec)) return refuse(`codec ${cmd.stream.codec} is not available on this VM (${this.opts.codecs.join(', ')})`);
    const bad = validStream(cmd);
    if (bad) return refuse(bad);
    const ua = this.opts.uas.get(cmd.uaId);
    const missing = ua ? null : 'not installed';
    const session = new Session(cmd, {
      runtime: this.opts.runtime,
      resolveUa: () => this.opts.uas.resolve(cmd.uaId, cmd.uaVersion, DEPLOY_WAIT_MS),
      createEncoder: this.opts.createEncoder,
      report: this.opts.report,
      log: this.opts.log,
      storeVmData: this.opts.storeVmData,
      fetchVmData: this.opts.fetchVmData,
      vmDataDeltas: this.opts.vmDataDeltas,
      vmDataBuffer: this.opts.vmDataBuffer,
      observer: this.opts.observer,
      takeRestoreAhead: this.opts.restoresAhead ? (id, key) => this.opts.restoresAhead!.take(id, key) : undefined,
      dropRestoreAhead: (id, reason) => this.opts.restoresAhead?.drop(id, reason),
      onEnded: (s, reason) => {
        if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
        this.remember(s.id, reason, this.movingAway.delete(s.id));
      },
    });
    this.sessions.set(cmd.sessionId, session);
    log.info('preparing session', { user: cmd.userId, ua: cmd.uaId, version: cmd.uaVersion, codec: cmd.stream.codec, waitsForDeploy: missing !== null });
    this.arrived(cmd.sessionId, { session });
    void session.start().then(() => this.expireIfNobodyComes(session));
  }

  /**
   * session.terminate: the slot is free at once (the VMM counts it free from now on); the VM Data
   * save and the UA's end follow. The returned promise settles when the session has ended.
   */
  terminate(sessionId: string, reason: string, saveVmData = false, moved = false): Promise<void> {
    const s = this.sessions.get(sessionId);
    if (!s) {
      this.opts.log.info('terminate for a session not on this VM', { session: sessionId });
      return Promise.resolve();
    }
    this.sessions.delete(sessionId);
    if (moved) this.movingAway.add(sessionId);
    // a socket closing from here on is no disconnect
    s.terminating = true;
    this.closing.add(s);
    return (async () => {
      // the user finished: VM Data is updated before the UA goes away (seed 7.3.1.2.2)
      if (saveVmData) await s.saveVmData();
      await s.end(reason || 'terminated', CLOSE.ENDED);
    })().finally(() => this.closing.delete(s));
  }

  /** The VM stops: every session ends, UCs are told the VM is going away. */
  async endAll(reason: string): Promise<void> {
    await Promise.allSettled([...this.all(), ...this.closing].map((s) => s.end(reason, CLOSE.GOING_AWAY)));
  }

  private expireIfNobodyComes(session: Session): void {
    if (session.state !== 'ready') return;
    const t = setTimeout(() => {
      if (session.state === 'ready' && !session.everConnected) {
        void session.fail(`no UC connected within ${Math.round((this.opts.firstConnectTimeoutMs ?? FIRST_CONNECT_TIMEOUT_MS) / 1000)} s`).catch((e) =>
          this.opts.log.error('could not expire a session', { error: errorMessage(e) }),
        );
      }
    }, this.opts.firstConnectTimeoutMs ?? FIRST_CONNECT_TIMEOUT_MS);
    t.unref();
  }
}

function validStream(cmd: PrepareSessionCommand): string | null {
  const s = cmd.stream;
  if (!s || typeof s !== 'object') return 'session.prepare has no stream parameters';
  if (!Number.isInteger(s.width) || !Number.isInteger(s.height) || s.width < 16 || s.height < 16 || s.width > 4096 || s.height > 4096) {
    return `stream size ${s.width}x${s.height} is out of range (16..4096)`;
  }
  if (s.codec === 'H264' && (s.width % 2 !== 0 || s.height % 2 !== 0)) return `H264 needs an even stream size, got ${s.width}x${s.height}`;
  if (!(s.maxFps > 0 && s.maxFps <= 120)) return `maxFps ${s.maxFps} is out of range (1..120)`;
  return null;
}
