// UVE-1 application sessions: request (VM selection, session token), the state machine, and the
// VM's UVE-5 reports about them. Events are recorded in the same transaction as the change and
// published once it has committed.
import { In, type DataSource, type EntityManager, type FindOptionsWhere, type Repository } from 'typeorm';
import { NO_LOSS_SCOPE, type Platform, type StreamRole } from '@uve/protocol';
import { badInput, checkText, clipText, conflict, isUuid, notFound, unavailable, UveError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { SessionEventPayload } from '../../common/pubsub';
import type { Transactions, UnitOfWork } from '../../common/unit-of-work';
import type { SessionReport, SessionReportTarget } from '../vmm/vm-reports.service';
import type { SessionEventType, SessionState } from './sessions.enums';
import type { KeysService } from '../auth/keys.service';
import type { RateLimits } from '../auth/rate-limits';
import { Ua, UaDeployment, type UaVersion } from '../uas/uas.entity';
import type { UasService } from '../uas/uas.service';
import { User } from '../users/users.entity';
import { terminalData } from '../users/terminal.types';
import { page } from '../users/users.service';
import { selectVm, type SelectionOptions, type VmCandidate } from '../vms/vm-selection';
import type { TerminalCapabilities } from '../users/terminal.types';
import type { RequestApplicationInput } from './sessions.inputs';
import { Session, SessionEvent } from './sessions.entity';
import { VmSnapshot } from '../snapshots/snapshots.entity';
import { LIVE_STATES, OPEN_STATES, assertTransition, canTransition, eventFor } from './session-state';
import { negotiateStream, pickCodec } from './stream-params';
import { ownsOrAdmin } from '../../common/access';

export interface SessionConnection {
  vmId: string;
  url: string;
  token: string;
  expiresAt: Date;
}

interface PlacementRequest {
  user: User;
  ua: Ua;
  version: UaVersion;
  terminal: TerminalCapabilities;
  input: RequestApplicationInput;
}

/** A recorded event as it travels through pub/sub (with the owner, for per-event authorization). */
export function sessionEventPayload(ev: SessionEvent, ownerId: string): SessionEventPayload {
  return { id: ev.id, sessionId: ev.sessionId, type: ev.type, actorId: ev.actorId, at: ev.at.toISOString(), data: ev.data, ownerId };
}

export interface SessionsServiceOptions {
  heartbeatTimeoutMs: number;
  sessionTokenTtlSec: number;
  /** a DISCONNECTED session keeps its VM slot this long, then ends */
  reconnectWindowMs: number;
  /** NO_LOSS sessions' VMs stage the FULL state this often (0: never; session.prepare's vmDataStageMs) */
  vmDataStageMs?: number;
  maxOpenSessionsPerUser: number;
  /** how long a request waits for a VM started for it; 0: none is started, the request is refused */
  requestWaitMs: number;
  /** CPU load from which a VM gets new sessions only when no other has headroom (UVE_VM_CPU_HIGH) */
  vmCpuHigh: number;
  /** a DISCONNECTED NO_LOSS session's FULL VM Data is restored ahead on the VM its reconnection will go to (UVE_RESTORE_AHEAD) */
  restoreAhead?: boolean;
}

/** Where VMs come from when none is free (the pool manager). */
export interface VmSupply {
  /**
   * null when a VM of the platform is starting or can be started now; else why not. Reads through
   * the caller's transaction (a second pool connection per waiting request would starve the pool).
   */
  cannotStart(platform: Platform, em: EntityManager): Promise<string | null>;
  /** asks for a pass soon (a request is waiting) */
  nudge(): void;
}

/** What placing a session with VM Data to restore asks of the VM Data records (SnapshotsService). */
export interface RestoringVmData {
  /** inside the placement's transaction: the snapshot staged as the session's (the sha256s its VM names), and its head */
  restoring(em: EntityManager, sessionId: string, snapshotId: string): Promise<{ staged: string[] | null; head: string | null }>;
  /** the snapshot's head (base64), for the VM to prepare by before its download's first bytes; null: none kept */
  headOf(snapshot: VmSnapshot): string | null;
}

export class SessionsService implements SessionReportTarget {
  private readonly repo: Repository<Session>;
  private readonly selection = (excludeVmId: string | null = null, preferVmId: string | null = null): SelectionOptions => ({ heartbeatTimeoutMs: this.options.heartbeatTimeoutMs, cpuHigh: this.options.vmCpuHigh, excludeVmId, preferVmId });
  /** set when this gateway runs a pool that can start VMs on demand */
  vmSupply: VmSupply | null = null;
  /**
   * told inside the transaction that put a session on a VM (after its prepare): watchers and
   * guests are announced to that VM (modules/watchers, modules/invitations). `created`: the session
   * was inserted by this very transaction, so no other row (monitoring, participant) refers to it yet.
   */
  readonly assignedHooks: ((uow: UnitOfWork, s: Session, created: boolean) => Promise<void>)[] = [];
  /** the VM Data records, for what the commands that restore a snapshot carry (SnapshotsService) */
  vmData: RestoringVmData | null = null;

  constructor(
    private readonly ds: DataSource,
    private readonly txs: Transactions,
    private readonly keys: KeysService,
    private readonly limits: RateLimits,
    private readonly uas: UasService,
    private readonly log: Logger,
    private readonly options: SessionsServiceOptions,
  ) {
    this.repo = ds.getRepository(Session);
  }

  // ---- reading ---------------------------------------------------------------------------------

  findById(id: string): Promise<Session | null> {
    return isUuid(id) ? this.repo.findOneBy({ id }) : Promise.resolve(null);
  }

  /** Owner and admins; a watcher while monitoring it, a guest while in it, an invitee while invited. */
  async canView(session: Pick<Session, 'id' | 'userId'>, user: User, em: EntityManager = this.ds.manager): Promise<boolean> {
    if (ownsOrAdmin(user, session.userId)) return true;
    const [row] = await em.query(
      `SELECT EXISTS (SELECT 1 FROM monitorings WHERE session_id = $1 AND watcher_id = $2 AND ended_at IS NULL)
           OR EXISTS (SELECT 1 FROM participants WHERE session_id = $1 AND user_id = $2 AND left_at IS NULL)
           OR EXISTS (SELECT 1 FROM invitations WHERE session_id = $1 AND to_id = $2 AND status = 'PENDING') AS ok`,
      [session.id, user.id],
    );
    return row.ok === true;
  }

  async getVisible(id: string, user: User): Promise<Session> {
    const s = await this.findById(id);
    if (!s || !(await this.canView(s, user))) throw notFound('Session', id);
    return s;
  }

  listForUser(userId: string, active: boolean | null | undefined): Promise<Session[]> {
    const where: FindOptionsWhere<Session> = { userId };
    if (active === true) where.state = In([...OPEN_STATES]);
    const rows = this.repo.find({ where, order: { createdAt: 'DESC' }, take: 200 });
    if (active !== false) return rows;
    return rows.then((r) => r.filter((s) => !OPEN_STATES.includes(s.state)));
  }

  list(filter: { state?: SessionState | null; userId?: string | null; uaId?: string | null; vmId?: string | null }, limit: number | null, offset: number | null): Promise<Session[]> {
    const { take, skip } = page(limit, offset);
    const where: FindOptionsWhere<Session> = {};
    if (filter.state) where.state = filter.state;
    for (const key of ['userId', 'uaId', 'vmId'] as const) {
      const id = filter[key];
      if (!id) continue;
      // an id that cannot exist matches nothing (rather than a database error)
      if (!isUuid(id)) return Promise.resolve([]);
      where[key] = id;
    }
    return this.repo.find({ where, order: { createdAt: 'DESC' }, take, skip });
  }

  events(sessionId: string, lastOrDefault: number | null): Promise<SessionEvent[]> {
    return this.lastEventsOf([sessionId], lastOrDefault).then((m) => m.get(sessionId) ?? []);
  }

  /** The last `last` events of each session, oldest first, in one query (a list of sessions asks for all at once). */
  async lastEventsOf(sessionIds: string[], lastOrDefault: number | null): Promise<Map<string, SessionEvent[]>> {
    const last = lastOrDefault ?? 50;
    if (!Number.isInteger(last) || last < 1 || last > 500) throw badInput('last must be from 1 to 500.', 'last');
    const ids = sessionIds.filter(isUuid);
    const out = new Map<string, SessionEvent[]>(ids.map((id) => [id, []]));
    if (!ids.length) return out;
    const rows = await this.ds
      .getRepository(SessionEvent)
      .createQueryBuilder('e')
      .where('e.id IN (SELECT x.id FROM unnest(CAST(:ids AS uuid[])) AS s(id) CROSS JOIN LATERAL (SELECT id FROM session_events WHERE session_id = s.id ORDER BY seq DESC LIMIT :last) x)', { ids, last })
      .orderBy('e.seq', 'ASC')
      .getMany();
    for (const e of rows) out.get(e.sessionId)!.push(e);
    return out;
  }

  /**
   * A fresh UVE-3 token in the caller's own name: the session's user plays (PLAYER); anyone else
   * allowed to open it (an admin) watches (VIEWER), announced to the VM first (UVE-2 monitoring
   * notification) so it admits them. None once the session is over or has no VM.
   */
  async connection(session: Session, caller: User): Promise<SessionConnection | null> {
    const role: StreamRole = caller.id === session.userId ? 'PLAYER' : 'VIEWER';
    if (role === 'VIEWER' && session.vmId && OPEN_STATES.includes(session.state)) {
      const vmId = session.vmId;
      await this.txs.run((uow) => uow.command(vmId, { type: 'monitoring.notify', sessionId: session.id, watcherId: caller.id, privileges: ['VIEW'] }, session.id));
    }
    return this.mintConnection(session, caller.id, role);
  }

  /**
   * A UVE-3 token for `userId` in `role`, for a VM that already admits them (the owner, or a user
   * announced with monitoring.notify: watchers, guests). None once the session is over or has no VM.
   */
  async mintConnection(session: Session, userId: string, role: StreamRole): Promise<SessionConnection | null> {
    if (!session.vmId || !OPEN_STATES.includes(session.state)) return null;
    // a VM that is gone gives no connection: the UC requests the UA again (seed B.1 step 4)
    const vm = await this.ds.query(`SELECT endpoint FROM vms WHERE id = $1 AND status IN ('IDLE', 'DRAINING')`, [session.vmId]);
    const endpoint: string | null = vm[0]?.endpoint ?? null;
    if (!endpoint) return null;
    const { token, expiresAt } = await this.keys.signSessionToken(
      { sub: userId, sid: session.id, vm: session.vmId, ua: session.uaId, role },
      this.options.sessionTokenTtlSec,
    );
    return { vmId: session.vmId, url: `${endpoint.replace(/\/$/, '')}/uve3`, token, expiresAt };
  }

  // ---- UVE-1: UA request -----------------------------------------------------------------------

  async requestApplication(user: User, input: RequestApplicationInput): Promise<Session> {
    await this.limits.consume('request-user', user.id);
    const ua = isUuid(input.uaId) ? await this.ds.getRepository(Ua).findOneBy({ id: input.uaId }) : null;
    if (!ua) throw notFound('UA', input.uaId);
    const terminal = terminalData(input.terminal);
    if ((ua.minScreenWidth && terminal.screenWidth < ua.minScreenWidth) || (ua.minScreenHeight && terminal.screenHeight < ua.minScreenHeight)) {
      throw badInput(`${ua.name} needs a screen of at least ${ua.minScreenWidth ?? 0}x${ua.minScreenHeight ?? 0}; this terminal has ${terminal.screenWidth}x${terminal.screenHeight}.`, 'terminal');
    }
    // catalog truth: only a version some VM installed (or every VM can) is offered
    const version = await this.uas.requestable(ua);

    const request = { user, ua, version, terminal, input };
    const placed = await this.txs.run(async (uow) => {
      // one user's requests are counted one at a time, so parallel ones cannot pass the limit together
      await uow.em.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`open-sessions:${user.id}`]);
      // the session the terminal was in, looked up once: live on its VM, its drop has not reached
      // the VMM yet and it goes on there; DISCONNECTED, it is the one that continues
      const named = await this.namedSession(uow, request);
      if (named && (await this.continuesLive(uow, request, named))) return { session: named, waitFor: null };
      // seed B.1: the user's DISCONNECTED session of this UA continues (unless a fresh start is asked)
      const resumed = await this.reconnectDisconnected(uow, request, named);
      if (resumed) return { session: resumed, waitFor: null };
      const open = await uow.em.count(Session, { where: { userId: user.id, state: In([...OPEN_STATES]) } });
      if (open >= this.options.maxOpenSessionsPerUser) {
        throw conflict(`You have ${open} open sessions, the most allowed; end one (endSession) before starting another.`, { reason: 'SESSION_LIMIT', limit: this.options.maxOpenSessionsPerUser });
      }
      // after an endSession or a closed window: the user's latest VM Data of this UA, unless fresh
      const restore = input.fresh ? null : await this.latestSnapshot(uow.em, user.id, ua.id);
      // written before the VM is locked: placements on one VM wait for that lock, held to the commit,
      // so it covers as few statements as possible (issue 13: under load they queued on it)
      const requested = await this.insertRequested(request, uow, restore);
      const selection = await selectVm(uow.em, ua, terminal.codecs, this.selection());
      await this.recordRequested(uow, requested, request, selection.vm ? null : selection.reason, restore);
      if (selection.vm) return { session: await this.assign(uow, requested, request, selection.vm, {}, true), waitFor: null };
      // nothing free now: wait for a VM the pool starts, when it can, or say why not
      const cannot = this.options.requestWaitMs > 0 && this.vmSupply ? await this.vmSupply.cannotStart(ua.platform, uow.em) : 'no VM is started on demand here';
      if (cannot) throw unavailable(`No VM can serve ${ua.name} now: ${selection.reason}; ${cannot}. Try again shortly.`, { reason: selection.reason });
      return { session: requested, waitFor: selection.reason };
    });
    if (!placed.waitFor) return placed.session;
    return this.waitForVm(placed.session, request, placed.waitFor);
  }

  /**
   * A request that found no free VM: its session stays REQUESTED (the REQUESTED event says it waits
   * and why, for a client watching its notifications) while the pool starts a VM for it; assigned as
   * soon as one is free, FAILED with the reason if none is within UVE_REQUEST_WAIT_MS.
   */
  private async waitForVm(session: Session, request: PlacementRequest, reason: string): Promise<Session> {
    const deadline = Date.now() + this.options.requestWaitMs;
    this.vmSupply?.nudge();
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      const done = await this.txs.run(async (uow) => {
        const s = await this.lock(uow.em, session.id);
        if (s.state !== 'REQUESTED') return s; // ended by the user meanwhile
        const selection = await selectVm(uow.em, request.ua, request.terminal.codecs, this.selection());
        return selection.vm ? this.assign(uow, s, request, selection.vm) : null;
      });
      if (done) return done;
    }
    const why = `no ${request.ua.platform} VM could be started for ${request.ua.name} within ${Math.round(this.options.requestWaitMs / 1000)} s (${reason})`;
    await this.txs.run(async (uow) => {
      const s = await this.lock(uow.em, session.id);
      if (canTransition(s.state, 'FAILED') && s.state === 'REQUESTED') {
        await this.move(uow, s, 'FAILED', 'fail', null, { endedAt: new Date(), endReason: why }, { error: why });
      }
    });
    throw unavailable(`No VM can serve ${request.ua.name} now: ${why}. Try again shortly.`, { reason, sessionId: session.id });
  }

  /** The newest VM Data of a user's UA (of any kind), or null. */
  private async latestSnapshot(em: EntityManager, userId: string, uaId: string): Promise<VmSnapshot | null> {
    return em.findOne(VmSnapshot, { where: { userId, uaId }, order: { createdAt: 'DESC' } });
  }

  /**
   * A reconnecting terminal that names its session (input.sessionId) before the VMM has heard of
   * its drop: the VM's report comes by the queue, and a connection that went silent (a network
   * change) is noticed by the VM only when its pings go unanswered. Without the name, asking for
   * the UA again then found no DISCONNECTED session and started a second one beside it, the first
   * left to its reconnect window. The session is handed back as it is: the new connection
   * replaces the old one on its VM, whose reports then say DISCONNECTED and RECONNECTED. False when
   * the session is not live on a VM that is up (the request goes on as without the name).
   */
  private async continuesLive(uow: UnitOfWork, r: PlacementRequest, s: Session): Promise<boolean> {
    if (!LIVE_STATES.includes(s.state) || !s.vmId || !(await this.vmUp(uow.em, s.vmId))) return false;
    this.assertDecodesKept(r, s, 'it goes on where it runs');
    return true;
  }

  /** input.sessionId's session, locked: the caller's, of this UA (refused otherwise); none with a fresh start. */
  private async namedSession(uow: UnitOfWork, r: PlacementRequest): Promise<Session | null> {
    const id = r.input.sessionId;
    if (!id || r.input.fresh) return null;
    const s = isUuid(id) ? await uow.em.findOne(Session, { where: { id }, lock: { mode: 'pessimistic_write' } }) : null;
    if (!s || s.userId !== r.user.id) throw notFound('Session', id);
    if (s.uaId !== r.ua.id) throw badInput(`Session ${id} is not a session of ${r.ua.name}: name this UA's session, or none.`, 'sessionId');
    return s;
  }

  /** Whether a VM takes sessions' connections: up, and its heartbeat recent. */
  private async vmUp(em: EntityManager, vmId: string): Promise<boolean> {
    const rows: unknown[] = await em.query(
      `SELECT 1 FROM vms WHERE id = $1 AND status IN ('IDLE', 'DRAINING') AND last_heartbeat_at > now() - make_interval(secs => $2::float8 / 1000)`,
      [vmId, this.options.heartbeatTimeoutMs],
    );
    return rows.length > 0;
  }

  /**
   * Back on its VM a session keeps the stream it had (codec, size, rate): the VM does not change a
   * running session's encoder. A terminal that cannot decode that codec is refused with the reason
   * instead of being handed a stream it cannot show.
   */
  private assertDecodesKept(r: PlacementRequest, s: Session, why: string): void {
    const kept = s.stream?.codec;
    if (kept && !r.terminal.codecs.includes(kept)) {
      throw badInput(`Cannot reconnect: your session of ${r.ua.name} streams ${kept}, which this terminal does not decode (it offers ${r.terminal.codecs.join(', ')}), and ${why}. Reconnect from a terminal that decodes ${kept}, or ask for a fresh start (fresh: true).`, 'terminal.codecs');
    }
  }

  /**
   * Annex B.1: the user asks again for a UA whose session is DISCONNECTED (its reconnect window
   * open). The session moves to a suitable VM other than the one it was on, which restores the VM
   * Data saved at the disconnect before its first frame; the old VM is told to free the session.
   * With no other VM free (or no VM Data saved yet) the user goes back to the old VM, where the UA
   * still runs, if that VM is alive. A fresh start ends the DISCONNECTED session instead.
   */
  private async reconnectDisconnected(uow: UnitOfWork, r: PlacementRequest, named: Session | null): Promise<Session | null> {
    // the session the terminal names, else the user's latest disconnected one of this UA
    const old = named?.state === 'DISCONNECTED'
      ? named
      : await uow.em.findOne(Session, { where: { userId: r.user.id, uaId: r.ua.id, state: 'DISCONNECTED' }, order: { lastDisconnectAt: 'DESC' }, lock: { mode: 'pessimistic_write' } });
    if (!old) return null;
    const oldVmId = old.vmId;
    if (r.input.fresh) {
      await this.move(uow, old, 'ENDED', 'end the session', r.user.id, { endedAt: new Date(), endReason: 'replaced by a fresh start' }, { reason: 'replaced by a fresh start' });
      if (oldVmId) await uow.command(oldVmId, { type: 'session.terminate', sessionId: old.id, reason: 'replaced by a fresh start', saveVmData: false }, old.id);
      return null;
    }
    // only VM Data of this very session (saved at its disconnect), never an older session's
    const snapshot = await uow.em.findOne(VmSnapshot, { where: { sessionId: old.id }, order: { createdAt: 'DESC' } });
    const oldAlive = !!oldVmId && (await this.vmUp(uow.em, oldVmId));
    // the RECONNECTED event says which happened and why (`sameVm`, `why`, `reason`): clients, tests
    // and benches tell a deliberate return from a fallback
    const backToOldVm = (why: 'NO_LOSS_ON_ITS_VM' | 'NO_VM_DATA' | 'NO_OTHER_VM', reason: string): Promise<Session> => {
      // refused, the session stays DISCONNECTED (the user may come back from a terminal that can,
      // or ask for a fresh start); moving to another VM with VM Data negotiates the stream afresh
      this.assertDecodesKept(r, old, `it can only continue on the VM it runs on (${reason})`);
      return this.move(uow, old, 'ASSIGNED', 'reconnect the session', r.user.id, { reconnections: old.reconnections + 1 }, { vmId: oldVmId, sameVm: true, why, reason });
    };
    if (oldAlive) {
      // NO_LOSS without a FULL snapshot: the UA on its VM is the exact state, so the user goes back
      // to it by policy (LINUX_X11, NO_LOSS_SCOPE SAME_VM_WITHIN_WINDOW: frozen there, no VM Data
      // saved; a WASM UA whose full state could not be captured: app data only)
      const scope = NO_LOSS_SCOPE[r.ua.platform];
      if (old.reconnectionMethod === 'NO_LOSS' && snapshot?.kind !== 'FULL' && (snapshot || scope === 'SAME_VM_WITHIN_WINDOW')) {
        return backToOldVm('NO_LOSS_ON_ITS_VM', `NO_LOSS on ${r.ua.platform} (${scope}) without a FULL snapshot: the UA waits on its VM with its exact state`);
      }
      // nothing saved to move: the UA still running on its VM is all there is
      if (!snapshot) return backToOldVm('NO_VM_DATA', 'no VM Data of the session was saved: the UA still runs on its VM');
    }
    // VM Data to restore (WASM NO_LOSS: the FULL state, NO_LOSS_SCOPE ANY_VM): another VM by policy,
    // so the old one (which may be what failed) is left and the restore is what the user gets
    // the VM the restore was prepared ahead on, when it still has room (restoreAhead below)
    const elsewhere = await selectVm(uow.em, r.ua, r.terminal.codecs, this.selection(oldVmId, old.restoreAheadVmId));
    if (elsewhere.vm) {
      if (oldVmId) await uow.command(oldVmId, { type: 'session.terminate', sessionId: old.id, reason: 'reconnected on another VM', saveVmData: false, moved: true }, old.id);
      const preparedAhead = !!snapshot && elsewhere.vm.id === old.restoreAheadVmId && snapshot.id === old.restoreAheadSnapshotId;
      // the new VM numbers this session's reports from 1 again; with no VM Data the UA starts fresh
      return this.assign(uow, old, r, elsewhere.vm, { reconnections: old.reconnections + 1, restoredFromId: snapshot?.id ?? null, lastReportSeq: 0 }, false, { sameVm: false, fromVmId: oldVmId, preparedAhead });
    }
    if (oldAlive) return backToOldVm('NO_OTHER_VM', `no other VM could take the session: ${elsewhere.reason}`);
    throw unavailable(`Your disconnected session of ${r.ua.name} cannot continue now: ${elsewhere.reason}. Try again shortly, or ask for a fresh start.`, { reason: elsewhere.reason, sessionId: old.id });
  }

  /** The REQUESTED session row; its REQUESTED event follows once the VM selection says whether it waits. */
  private insertRequested(r: PlacementRequest, uow: UnitOfWork, restore: VmSnapshot | null): Promise<Session> {
    return uow.em.save(uow.em.create(Session, {
      userId: r.user.id, uaId: r.ua.id, uaVersion: r.ua.currentVersion, vmId: null, state: 'REQUESTED',
      reconnectionMethod: r.input.reconnectionMethod, terminal: r.terminal, stream: null, reconnections: 0, lastReportSeq: 0,
      suspendControllerId: null, suspendedById: null, restoredFromId: restore?.id ?? null, endReason: null,
      startedAt: null, lastDisconnectAt: null, endedAt: null,
    }));
  }

  private async recordRequested(uow: UnitOfWork, s: Session, r: PlacementRequest, waitingBecause: string | null, restore: VmSnapshot | null): Promise<void> {
    await this.record(uow, s, 'REQUESTED', r.user.id, {
      uaVersion: r.ua.currentVersion, reconnectionMethod: r.input.reconnectionMethod,
      ...(waitingBecause ? { waitingForVm: true, reason: waitingBecause } : {}),
      ...(restore ? { restoreSnapshotId: restore.id, restoreKind: restore.kind } : {}),
    });
  }

  /**
   * REQUESTED (or DISCONNECTED) → ASSIGNED on the selected VM: stream negotiated, UA deployed if
   * need be, VM told (with the VM Data to restore, `restoredFromId`, if any).
   */
  private async assign(uow: UnitOfWork, s: Session, r: PlacementRequest, vm: VmCandidate, patch: Partial<Session> = {}, created = false, eventData: Record<string, unknown> = {}): Promise<Session> {
    const codec = pickCodec(r.terminal.codecs, vm.codecs)!;
    const stream = negotiateStream(r.terminal, codec);
    const restoreSnapshotId = patch.restoredFromId !== undefined ? patch.restoredFromId : s.restoredFromId;
    s = await this.move(uow, s, 'ASSIGNED', 'assign the session', r.user.id, { ...patch, vmId: vm.id, stream }, { ...eventData, vmId: vm.id, codec, width: stream.width, height: stream.height, maxFps: stream.maxFps, restoreSnapshotId });
    await this.deployIfNeeded(uow, vm, r.ua, r.version);
    const noLoss = r.input.reconnectionMethod === 'NO_LOSS';
    const restoring = noLoss && restoreSnapshotId && this.vmData ? await this.vmData.restoring(uow.em, s.id, restoreSnapshotId) : null;
    // a watcher's suspension follows the session to its new VM: the UA starts suspended there
    const suspended = s.suspendedById ? { byUserId: s.suspendedById, reason: await this.suspendReason(uow.em, s.id) } : null;
    await uow.command(vm.id, {
      type: 'session.prepare', sessionId: s.id, userId: r.user.id, uaId: r.ua.id, uaVersion: r.ua.currentVersion,
      reconnectionMethod: r.input.reconnectionMethod, terminal: r.terminal, stream, restoreSnapshotId, reconnectWindowMs: this.options.reconnectWindowMs,
      ...(noLoss && this.options.vmDataStageMs ? { vmDataStageMs: this.options.vmDataStageMs } : {}),
      ...(restoring?.staged ? { vmDataStaged: restoring.staged } : {}),
      ...(restoring?.head ? { restoreHead: restoring.head } : {}),
      ...(suspended ? { suspended } : {}),
    }, s.id);
    for (const hook of this.assignedHooks) await hook(uow, s, created);
    return s;
  }

  /** The UA's package to the VM unless it is there, or on its way: sent before the command that needs it, in the same outbox. */
  private async deployIfNeeded(uow: UnitOfWork, vm: VmCandidate, ua: Ua, version: UaVersion): Promise<void> {
    if (vm.deployed) return;
    // a deploy already on its way (an earlier request to this VM wrote it; the outbox sends it before
    // this prepare) is not sent again: a second one would supersede the first behind the prepares
    const underway = await uow.em.existsBy(UaDeployment, { uaId: ua.id, vmId: vm.id, version: version.version, status: In(['PENDING', 'DOWNLOADING']) });
    if (!underway) await this.uas.sendPackage(uow, vm.id, 'ua.deploy', ua, version);
  }

  // ---- UVE-1: end, suspend, resume; management: terminate ----------------------------------------

  async endSession(user: User, id: string): Promise<Session> {
    if (!isUuid(id)) throw notFound('Session', id);
    // one read: the row is locked first and its visibility checked on it (not read, then locked)
    return this.end(id, user.id, 'ended by the user', true, user);
  }

  async terminate(admin: User, id: string, reason: string | null | undefined): Promise<Session> {
    checkText(reason, 'reason', 500);
    const session = await this.findById(id);
    if (!session) throw notFound('Session', id);
    return this.end(session.id, admin.id, reason ? `terminated by an admin: ${reason}` : 'terminated by an admin');
  }

  private end(id: string, actorId: string | null, reason: string, saveVmData = true, visibleTo: User | null = null): Promise<Session> {
    return this.txs.run(async (uow) => {
      const s = await this.lock(uow.em, id);
      if (visibleTo && !(await this.canView(s, visibleTo, uow.em))) throw notFound('Session', id);
      assertTransition(s.state, 'ENDED', 'end the session');
      const vmId = s.vmId;
      const ended = await this.move(uow, s, 'ENDED', 'end the session', actorId, { endedAt: new Date(), endReason: reason }, { reason });
      if (vmId) await uow.command(vmId, { type: 'session.terminate', sessionId: id, reason, saveVmData }, id);
      return ended;
    });
  }

  // ---- UVE-5: what the VM reports (through the inbox, in the VM's order) --------------------------

  /** The inbox's way in: one locked session, one report applied in the same transaction. */
  async withLockedSession<T>(
    sessionId: string,
    step: (em: EntityManager, s: { vmId: string | null; lastReportSeq: number }, apply: (m: SessionReport) => Promise<void>) => Promise<T>,
  ): Promise<T | null> {
    return this.txs.run(async (uow) => {
      const s = await uow.em.findOne(Session, { where: { id: sessionId }, lock: { mode: 'pessimistic_write' } });
      if (!s) return null;
      return step(uow.em, s, (m) => this.applyReport(uow, s, m));
    });
  }

  async movedOff(em: EntityManager, sessionId: string, vmId: string): Promise<boolean> {
    const rows: unknown[] = await em.query(
      `SELECT 1 FROM session_events WHERE session_id = $1 AND type = 'RECONNECTED' AND data->>'fromVmId' = $2 LIMIT 1`,
      [sessionId, vmId],
    );
    return rows.length > 0;
  }

  /** One report of the VM holding the session. Reports that no longer fit the state change nothing. */
  private async applyReport(uow: UnitOfWork, s: Session, m: SessionReport): Promise<void> {
    switch (m.type) {
      case 'session.connected': {
        if (s.state === 'ACTIVE' || s.state === 'SUSPENDED' || !canTransition(s.state, 'ACTIVE')) return;
        const patch: Partial<Session> = { startedAt: s.startedAt ?? new Date() };
        if (s.state === 'DISCONNECTED') patch.reconnections = s.reconnections + 1;
        // the actor is a user's id as the VM read it from a stream token: one that names no user (a
        // user deleted meanwhile) is left out, not a foreign key the inbox would retry for ever
        const actor = m.userId === s.userId || (await uow.em.existsBy(User, { id: m.userId })) ? m.userId : null;
        const connected = await this.move(uow, s, 'ACTIVE', 'connect', actor, patch, { role: m.role, ...(actor ? {} : { userId: m.userId }) });
        // a watcher's suspension outlives a drop: the VM kept it (or, moved, was told with its
        // prepare), so the reconnected session is SUSPENDED again, as its VM holds it
        if (connected.suspendedById) {
          await this.move(uow, connected, 'SUSPENDED', 'keep the session suspended', null, {}, { reason: await this.suspendReason(uow.em, s.id), byUserId: connected.suspendedById, kept: true });
        }
        return;
      }
      case 'session.disconnected':
        // seed B.1 step 2: the exception notice of an unexpected disconnect
        if (!canTransition(s.state, 'DISCONNECTED')) return;
        await this.move(uow, s, 'DISCONNECTED', 'disconnect', null, { lastDisconnectAt: new Date() }, { reason: m.reason, unexpected: m.unexpected, userId: m.userId, uaId: m.uaId });
        return;
      case 'session.failed':
        if (!canTransition(s.state, 'FAILED')) return;
        await this.move(uow, s, 'FAILED', 'fail', null, { endedAt: new Date(), endReason: clipText(m.error, 500) }, { error: clipText(m.error, 500) });
        return;
      case 'session.ended':
        // the UA quit by itself (or the VM closed the reconnect window): over, normally
        if (!canTransition(s.state, 'ENDED')) return;
        await this.move(uow, s, 'ENDED', 'end', null, { endedAt: new Date(), endReason: clipText(m.reason, 500) }, { reason: clipText(m.reason, 500) });
        return;
      case 'session.resourceRequested':
        await this.record(uow, s, 'RESOURCE_REQUESTED', null, { kind: m.kind });
        return;
      case 'vmdata.restored':
        // the VM says, before the first frame, whether the VM Data it was given is in the UA
        if (m.snapshotId !== s.restoredFromId) return;
        if (m.restored) {
          await uow.em.update(VmSnapshot, m.snapshotId, { lastRestoredAt: new Date() });
          await this.record(uow, s, 'SNAPSHOT_RESTORED', null, { snapshotId: m.snapshotId, kind: m.kind, vmId: s.vmId });
        } else {
          const reason = String(m.reason ?? 'unknown').slice(0, 500);
          await uow.em.update(Session, s.id, { restoredFromId: null });
          s.restoredFromId = null;
          await this.record(uow, s, 'SNAPSHOT_RESTORE_FAILED', null, { snapshotId: m.snapshotId, reason, freshStart: true });
        }
        return;
      case 'session.suspended':
      case 'vmdata.updated':
        // the VMM moved the session when it sent the command; VM Data is recorded by its HTTP upload
        return;
    }
  }

  /** The VM went away: every session it held is disconnected (the UC reconnects with a new request). */
  async onVmLost(vmId: string, reason: string): Promise<void> {
    const held = await this.repo.find({ where: { vmId, state: In([...LIVE_STATES]) }, select: { id: true } });
    for (const { id } of held) {
      await this.txs.run(async (uow) => {
        const s = await this.lock(uow.em, id);
        if (s.vmId !== vmId || !canTransition(s.state, 'DISCONNECTED')) return;
        await this.move(uow, s, 'DISCONNECTED', 'disconnect', null, { lastDisconnectAt: new Date() }, { reason, unexpected: true, userId: s.userId, uaId: s.uaId });
      });
    }
  }

  /**
   * Restore ahead: a DISCONNECTED NO_LOSS session whose FULL VM Data is saved has it restored, while
   * its PLAYER is away, on the VM its reconnection would be placed on now (another than the one it
   * was on, the session's codec; the UA deployed there first if need be), which that reconnection then prefers: its first
   * frame waits for neither the download nor the restore. Called after each commit that may make it
   * possible (the drop, the save: they come in either order); once per snapshot. A hint: the VM
   * gives the state up at the window's end, and a reconnection placed elsewhere drops it (move()).
   */
  async prepareRestoreAhead(sessionId: string): Promise<void> {
    if (!this.options.restoreAhead || !isUuid(sessionId)) return;
    // most commits that call this are of no such session: told apart without a transaction
    const candidate = (x: Session | null): x is Session & { stream: NonNullable<Session['stream']> } =>
      !!x && x.state === 'DISCONNECTED' && x.reconnectionMethod === 'NO_LOSS' && !!x.stream;
    const seen = await this.repo.findOneBy({ id: sessionId });
    if (!candidate(seen)) return;
    const ua = await this.ds.getRepository(Ua).findOneBy({ id: seen.uaId });
    if (!ua || NO_LOSS_SCOPE[ua.platform] !== 'ANY_VM') return;
    const version = await this.uas.requestable(ua).catch(() => null);
    if (!version) return; // removed meanwhile: the reconnection says why
    await this.txs.run(async (uow) => {
      const s = await uow.em.findOne(Session, { where: { id: sessionId }, lock: { mode: 'pessimistic_write' } });
      if (!candidate(s)) return;
      // what reconnectDisconnected restores: the newest VM Data of this very session, if it was saved
      // since the session last came back from a drop. An older one is not the state at this drop
      // (the one it was restored from, or one its own VM kept it from needing): a drop committed
      // before its save, or a PLAYER's connection replaced (which saves nothing), would have another
      // VM download and restore that old state, for nothing
      const snapshot = await uow.em.createQueryBuilder(VmSnapshot, 'v')
        .where('v.session_id = :id', { id: s.id })
        .andWhere(`v.created_at > COALESCE((SELECT max(e.at) FROM session_events e WHERE e.session_id = :id AND e.type = 'RECONNECTED'), '-infinity')`)
        .orderBy('v.created_at', 'DESC')
        .getOne();
      if (!snapshot || snapshot.kind !== 'FULL' || snapshot.id === s.restoreAheadSnapshotId) return;
      const windowLeftMs = this.options.reconnectWindowMs - (Date.now() - (s.lastDisconnectAt ?? new Date()).getTime());
      if (windowLeftMs <= 0) return;
      const { vm } = await selectVm(uow.em, ua, [s.stream.codec], this.selection(s.vmId, s.restoreAheadVmId));
      if (!vm) return;
      await this.deployIfNeeded(uow, vm, ua, version);
      if (s.restoreAheadVmId && s.restoreAheadVmId !== vm.id) {
        await uow.command(s.restoreAheadVmId, { type: 'vmdata.dropRestore', sessionId: s.id, reason: 'a newer snapshot is prepared on another VM' }, s.id);
      }
      await uow.em.update(Session, s.id, { restoreAheadVmId: vm.id, restoreAheadSnapshotId: snapshot.id });
      const { width, height, codec } = s.stream;
      const head = this.vmData?.headOf(snapshot);
      await uow.command(vm.id, { type: 'vmdata.prepareRestore', sessionId: s.id, snapshotId: snapshot.id, uaId: ua.id, uaVersion: version.version, width, height, codec, holdMs: windowLeftMs, ...(head ? { head } : {}) }, s.id);
      // `head`: the VM was given the snapshot's head, and prepares its UA for the state before the first bytes
      await this.record(uow, s, 'RESTORE_AHEAD', null, { vmId: vm.id, snapshotId: snapshot.id, head: !!head });
    });
  }

  /**
   * VM Data deleted (deleteSnapshot): a VM that restored it ahead lets that UA go now, not at the
   * end of the reconnect window (the state would stay in its memory until then), and the session's
   * reconnection no longer prefers that VM.
   */
  async dropRestoreAheadOf(snapshot: { id: string; sessionId: string | null }): Promise<void> {
    // only the session's own VM Data is ever restored ahead
    const { sessionId } = snapshot;
    if (!sessionId || !(await this.repo.existsBy({ id: sessionId, restoreAheadSnapshotId: snapshot.id }))) return;
    await this.txs.run(async (uow) => {
      const s = await this.lock(uow.em, sessionId);
      if (s.restoreAheadSnapshotId !== snapshot.id || !s.restoreAheadVmId) return;
      await uow.command(s.restoreAheadVmId, { type: 'vmdata.dropRestore', sessionId: s.id, reason: 'its VM Data was deleted' }, s.id);
      await uow.em.update(Session, s.id, { restoreAheadVmId: null, restoreAheadSnapshotId: null });
    });
  }

  /**
   * Closes reconnect windows: a session DISCONNECTED for longer than the window ends, and its VM is
   * told to free what it held. Returns the ids it ended.
   */
  async closeReconnectWindows(): Promise<string[]> {
    const windowS = Math.round(this.options.reconnectWindowMs / 1000);
    const due: { id: string }[] = await this.ds.query(
      `SELECT id FROM sessions WHERE state = 'DISCONNECTED' AND last_disconnect_at < now() - make_interval(secs => $1::float8 / 1000) LIMIT 200`,
      [this.options.reconnectWindowMs],
    );
    const ended: string[] = [];
    for (const { id } of due) {
      // VM Data was saved at the disconnect; a second save now would only repeat it
      const s = await this.end(id, null, `reconnect window of ${windowS} s expired`, false).catch((e: Error) => {
        if (e instanceof UveError && e.code === 'CONFLICT') return null; // reconnected meanwhile
        throw e;
      });
      if (s) ended.push(id);
    }
    return ended;
  }

  /** Records an event that changes no state (VM Data saved, a resource asked for) and publishes it. */
  async recordEvent(sessionId: string, type: SessionEventType, data: Record<string, unknown>): Promise<void> {
    await this.txs.run(async (uow) => {
      const s = await this.lock(uow.em, sessionId);
      await this.record(uow, s, type, null, data);
    });
  }

  // ---- the machinery -------------------------------------------------------------------------------

  /** The session row, locked for the transaction (every change of a session starts here). */
  async lock(em: EntityManager, id: string): Promise<Session> {
    const s = await em.findOne(Session, { where: { id }, lock: { mode: 'pessimistic_write' } });
    if (!s) throw notFound('Session', id);
    return s;
  }

  async move(uow: UnitOfWork, s: Session, to: SessionState, action: string, actorId: string | null, patch: Partial<Session> = {}, data: Record<string, unknown> | null = null): Promise<Session> {
    const from = s.state;
    assertTransition(from, to, action);
    // a restore prepared ahead is taken by a reconnection placed on its VM, else of no more use
    if (from === 'DISCONNECTED' && s.restoreAheadVmId) {
      if (!(to === 'ASSIGNED' && patch.vmId === s.restoreAheadVmId)) {
        await uow.command(s.restoreAheadVmId, { type: 'vmdata.dropRestore', sessionId: s.id, reason: to === 'ASSIGNED' ? 'the reconnection went to another VM' : `the session is ${to}` }, s.id);
      }
      patch = { ...patch, restoreAheadVmId: null, restoreAheadSnapshotId: null };
    }
    Object.assign(s, patch, { state: to });
    await uow.em.update(Session, s.id, { ...patch, state: to });
    await this.record(uow, s, eventFor(from, to), actorId, { from, ...data });
    return s;
  }

  /** The reason given with the session's latest suspension (null when none was given). */
  async suspendReason(em: EntityManager, sessionId: string): Promise<string | null> {
    const ev = await em.findOne(SessionEvent, { where: { sessionId, type: 'SUSPENDED' }, order: { seq: 'DESC' } });
    const reason = (ev?.data as { reason?: unknown } | null)?.reason;
    return typeof reason === 'string' ? reason : null;
  }

  /** Records an event in the transaction; published (to subscribers and the owner) after the commit. */
  async record(uow: UnitOfWork, s: Session, type: SessionEventType, actorId: string | null, data: Record<string, unknown> | null): Promise<SessionEventPayload> {
    const ev = await uow.em.save(uow.em.create(SessionEvent, { sessionId: s.id, type, actorId, data }));
    const payload = sessionEventPayload(ev, s.userId);
    uow.events.push(payload);
    return payload;
  }
}
