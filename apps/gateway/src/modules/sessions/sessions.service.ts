// UVE-1 application sessions: request (VM selection, session token), the state machine, and the
// VM's UVE-5 reports about them. Events are recorded in the same transaction as the change and
// published once it has committed.
import { In, type DataSource, type EntityManager, type FindOptionsWhere, type Repository } from 'typeorm';
import { uve, type MessageBus } from '@uve/queue';
import type { SessionConnected, SessionDisconnected, SessionEnded, SessionFailed, SessionResourceRequested, StreamRole, VmCommand } from '@uve/protocol';
import { badInput, checkText, conflict, forbidden, isUuid, notFound, unavailable } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { SessionEventPayload, UvePubSub } from '../../common/pubsub';
import type { SessionEventType, SessionState } from '../../graphql/enums';
import type { KeysService } from '../auth/keys.service';
import { Ua, UaDeployment, UaVersion } from '../uas/uas.entity';
import type { User } from '../users/users.entity';
import { terminalData } from '../users/terminal.types';
import { page } from '../users/users.service';
import { selectVm } from '../vms/vm-selection';
import type { RequestApplicationInput } from './sessions.inputs';
import { Session, SessionEvent } from './sessions.entity';
import { LIVE_STATES, OPEN_STATES, assertTransition, canTransition, eventFor } from './session-state';
import { negotiateStream, pickCodec } from './stream-params';

export interface SessionConnection {
  vmId: string;
  url: string;
  token: string;
  expiresAt: Date;
}

/** A recorded event as it travels through pub/sub (with the owner, for per-event authorization). */
export function sessionEventPayload(ev: SessionEvent, ownerId: string): SessionEventPayload {
  return { id: ev.id, sessionId: ev.sessionId, type: ev.type, actorId: ev.actorId, at: ev.at.toISOString(), data: ev.data, ownerId };
}

/** What a transaction leaves to do after it commits: publish events, send UVE-2 commands. */
class Outbox {
  readonly events: SessionEventPayload[] = [];
  readonly commands: { vmId: string; command: VmCommand }[] = [];
}

export interface SessionsServiceOptions {
  heartbeatTimeoutMs: number;
  sessionTokenTtlSec: number;
}

export class SessionsService {
  private readonly repo: Repository<Session>;
  /** told after a change that may move VM load (the pool manager listens) */
  onChange: () => void = () => undefined;

  constructor(
    private readonly ds: DataSource,
    private readonly bus: MessageBus,
    private readonly pubsub: UvePubSub,
    private readonly keys: KeysService,
    private readonly log: Logger,
    private readonly options: SessionsServiceOptions,
  ) {
    this.repo = ds.getRepository(Session);
  }

  // ---- reading ---------------------------------------------------------------------------------

  findById(id: string): Promise<Session | null> {
    return isUuid(id) ? this.repo.findOneBy({ id }) : Promise.resolve(null);
  }

  /** Owner and admins; watchers and participants join with their issues. */
  canView(session: Session, user: User): boolean {
    return session.userId === user.id || user.role === 'ADMIN';
  }

  async getVisible(id: string, user: User): Promise<Session> {
    const s = await this.findById(id);
    if (!s || !this.canView(s, user)) throw notFound('Session', id);
    return s;
  }

  listForUser(userId: string, active: boolean | null | undefined): Promise<Session[]> {
    const where: FindOptionsWhere<Session> = { userId };
    if (active === true) where.state = In([...OPEN_STATES]);
    const rows = this.repo.find({ where, order: { createdAt: 'DESC' }, take: 200 });
    if (active !== false) return rows;
    return rows.then((r) => r.filter((s) => !OPEN_STATES.includes(s.state)));
  }

  list(filter: { state?: SessionState | null; userId?: string | null }, limit: number | null, offset: number | null): Promise<Session[]> {
    const { take, skip } = page(limit, offset);
    const where: FindOptionsWhere<Session> = {};
    if (filter.state) where.state = filter.state;
    if (filter.userId) {
      if (!isUuid(filter.userId)) return Promise.resolve([]);
      where.userId = filter.userId;
    }
    return this.repo.find({ where, order: { createdAt: 'DESC' }, take, skip });
  }

  events(sessionId: string, lastOrDefault: number | null): Promise<SessionEvent[]> {
    const last = lastOrDefault ?? 50;
    if (!Number.isInteger(last) || last < 1 || last > 500) throw badInput('last must be from 1 to 500.', 'last');
    return this.ds
      .getRepository(SessionEvent)
      .find({ where: { sessionId }, order: { seq: 'DESC' }, take: last })
      .then((rows) => rows.reverse());
  }

  /** A fresh UVE-3 token for the session's user; none once the session is over or has no VM. */
  async connection(session: Session, role: StreamRole = 'PLAYER'): Promise<SessionConnection | null> {
    if (!session.vmId || !OPEN_STATES.includes(session.state)) return null;
    // a VM that is gone gives no connection: the UC requests the UA again (seed B.1 step 4)
    const vm = await this.ds.query(`SELECT endpoint FROM vms WHERE id = $1 AND status IN ('IDLE', 'DRAINING')`, [session.vmId]);
    const endpoint: string | null = vm[0]?.endpoint ?? null;
    if (!endpoint) return null;
    const { token, expiresAt } = await this.keys.signSessionToken(
      { sub: session.userId, sid: session.id, vm: session.vmId, ua: session.uaId, role },
      this.options.sessionTokenTtlSec,
    );
    return { vmId: session.vmId, url: `${endpoint.replace(/\/$/, '')}/uve3`, token, expiresAt };
  }

  // ---- UVE-1: UA request -----------------------------------------------------------------------

  async requestApplication(user: User, input: RequestApplicationInput): Promise<Session> {
    const ua = isUuid(input.uaId) ? await this.ds.getRepository(Ua).findOneBy({ id: input.uaId }) : null;
    if (!ua) throw notFound('UA', input.uaId);
    const terminal = terminalData(input.terminal);
    if ((ua.minScreenWidth && terminal.screenWidth < ua.minScreenWidth) || (ua.minScreenHeight && terminal.screenHeight < ua.minScreenHeight)) {
      throw badInput(`${ua.name} needs a screen of at least ${ua.minScreenWidth ?? 0}x${ua.minScreenHeight ?? 0}; this terminal has ${terminal.screenWidth}x${terminal.screenHeight}.`, 'terminal');
    }
    const version = await this.ds.getRepository(UaVersion).findOneBy({ uaId: ua.id, version: ua.currentVersion });
    if (!version) throw unavailable(`${ua.name} has no installable version ${ua.currentVersion}.`);

    const session = await this.tx(async (em, out) => {
      const selection = await selectVm(em, ua, terminal.codecs, this.options.heartbeatTimeoutMs);
      if (!selection.vm) throw unavailable(`No VM can serve ${ua.name} now: ${selection.reason}. Try again shortly.`, { reason: selection.reason });
      const vm = selection.vm;
      const codec = pickCodec(terminal.codecs, vm.codecs)!;
      const stream = negotiateStream(terminal, codec);
      let s = em.create(Session, {
        userId: user.id, uaId: ua.id, uaVersion: ua.currentVersion, vmId: null, state: 'REQUESTED',
        reconnectionMethod: input.reconnectionMethod, terminal, stream, reconnections: 0,
        suspendControllerId: null, suspendedById: null, restoredFromId: null, endReason: null,
        startedAt: null, lastDisconnectAt: null, endedAt: null,
      });
      s = await em.save(s);
      await this.record(em, out, s, 'REQUESTED', user.id, { uaVersion: ua.currentVersion, reconnectionMethod: input.reconnectionMethod });
      s = await this.move(em, out, s, 'ASSIGNED', 'assign the session', user.id, { vmId: vm.id }, { vmId: vm.id, codec, width: stream.width, height: stream.height, maxFps: stream.maxFps });
      if (!vm.deployed) {
        await em.upsert(UaDeployment, { uaId: ua.id, vmId: vm.id, version: ua.currentVersion, status: 'PENDING', error: null }, ['uaId', 'vmId']);
        out.commands.push({ vmId: vm.id, command: { type: 'ua.deploy', uaId: ua.id, version: ua.currentVersion, platform: ua.platform, packageUrl: version.packageUrl, sha256: version.sha256, storefrontId: ua.storefrontId } });
      }
      out.commands.push({
        vmId: vm.id,
        command: { type: 'session.prepare', sessionId: s.id, userId: user.id, uaId: ua.id, uaVersion: ua.currentVersion, reconnectionMethod: input.reconnectionMethod, terminal, stream, restoreSnapshotId: null },
      });
      return s;
    });
    return session;
  }

  // ---- UVE-1: end, suspend, resume; management: terminate ----------------------------------------

  async endSession(user: User, id: string): Promise<Session> {
    const session = await this.getVisible(id, user);
    return this.end(session.id, user.id, 'ended by the user');
  }

  async terminate(admin: User, id: string, reason: string | null | undefined): Promise<Session> {
    checkText(reason, 'reason', 500);
    const session = await this.findById(id);
    if (!session) throw notFound('Session', id);
    return this.end(session.id, admin.id, reason ? `terminated by an admin: ${reason}` : 'terminated by an admin');
  }

  private end(id: string, actorId: string, reason: string): Promise<Session> {
    return this.tx(async (em, out) => {
      const s = await this.lock(em, id);
      assertTransition(s.state, 'ENDED', 'end the session');
      const vmId = s.vmId;
      const ended = await this.move(em, out, s, 'ENDED', 'end the session', actorId, { endedAt: new Date(), endReason: reason }, { reason });
      if (vmId) out.commands.push({ vmId, command: { type: 'session.terminate', sessionId: id, reason, saveVmData: true } });
      return ended;
    });
  }

  async suspend(user: User, id: string, reason: string | null | undefined): Promise<Session> {
    checkText(reason, 'reason', 500);
    const session = await this.getVisible(id, user);
    if (session.userId !== user.id && user.role !== 'ADMIN') throw forbidden('Only the session owner or an admin may suspend it.');
    return this.tx(async (em, out) => {
      const s = await this.lock(em, session.id);
      assertTransition(s.state, 'SUSPENDED', 'suspend the session');
      const next = await this.move(em, out, s, 'SUSPENDED', 'suspend the session', user.id, { suspendedById: user.id }, { reason: reason ?? null });
      out.commands.push({ vmId: s.vmId!, command: { type: 'session.suspend', sessionId: s.id, byUserId: user.id, reason: reason ?? null } });
      return next;
    });
  }

  async resume(user: User, id: string): Promise<Session> {
    const session = await this.getVisible(id, user);
    return this.tx(async (em, out) => {
      const s = await this.lock(em, session.id);
      if (s.state !== 'SUSPENDED') throw conflict(`Cannot resume the session: it is ${s.state}, not SUSPENDED.`, { state: s.state });
      const next = await this.move(em, out, s, 'ACTIVE', 'resume the session', user.id, { suspendedById: null });
      out.commands.push({ vmId: s.vmId!, command: { type: 'session.resume', sessionId: s.id, byUserId: user.id } });
      return next;
    });
  }

  // ---- UVE-5: what the VM reports -----------------------------------------------------------------

  async onConnected(m: SessionConnected): Promise<void> {
    await this.fromVm(m.sessionId, m.vmId, async (em, out, s) => {
      if (s.state === 'ACTIVE' || s.state === 'SUSPENDED' || !canTransition(s.state, 'ACTIVE')) return;
      const patch: Partial<Session> = { startedAt: s.startedAt ?? new Date() };
      if (s.state === 'DISCONNECTED') patch.reconnections = s.reconnections + 1;
      await this.move(em, out, s, 'ACTIVE', 'connect', m.userId, patch, { role: m.role });
    });
  }

  /** Seed B.1 step 2: the exception notice of an unexpected disconnect. */
  async onDisconnected(m: SessionDisconnected): Promise<void> {
    await this.fromVm(m.sessionId, m.vmId, async (em, out, s) => {
      if (!canTransition(s.state, 'DISCONNECTED')) return;
      await this.move(em, out, s, 'DISCONNECTED', 'disconnect', null, { lastDisconnectAt: new Date() }, { reason: m.reason, unexpected: m.unexpected, userId: m.userId, uaId: m.uaId });
    });
  }

  async onFailed(m: SessionFailed): Promise<void> {
    await this.fromVm(m.sessionId, m.vmId, async (em, out, s) => {
      if (!canTransition(s.state, 'FAILED')) return;
      await this.move(em, out, s, 'FAILED', 'fail', null, { endedAt: new Date(), endReason: m.error.slice(0, 500) }, { error: m.error.slice(0, 500) });
    });
  }

  /** The UA quit by itself: the session is over, normally. */
  async onEndedByUa(m: SessionEnded): Promise<void> {
    await this.fromVm(m.sessionId, m.vmId, async (em, out, s) => {
      if (!canTransition(s.state, 'ENDED')) return;
      await this.move(em, out, s, 'ENDED', 'end', null, { endedAt: new Date(), endReason: m.reason.slice(0, 500) }, { reason: m.reason.slice(0, 500) });
    });
  }

  async onResourceRequested(m: SessionResourceRequested): Promise<void> {
    await this.fromVm(m.sessionId, m.vmId, async (em, out, s) => {
      await this.record(em, out, s, 'RESOURCE_REQUESTED', null, { kind: m.kind });
    });
  }

  /** The VM went away: every session it held is disconnected (the UC reconnects with a new request). */
  async onVmLost(vmId: string, reason: string): Promise<void> {
    const held = await this.repo.find({ where: { vmId, state: In([...LIVE_STATES]) }, select: { id: true } });
    for (const { id } of held) {
      await this.tx(async (em, out) => {
        const s = await this.lock(em, id);
        if (s.vmId !== vmId || !canTransition(s.state, 'DISCONNECTED')) return;
        await this.move(em, out, s, 'DISCONNECTED', 'disconnect', null, { lastDisconnectAt: new Date() }, { reason, unexpected: true, userId: s.userId, uaId: s.uaId });
      });
    }
  }

  private async fromVm(sessionId: string, vmId: string, fn: (em: EntityManager, out: Outbox, s: Session) => Promise<void>): Promise<void> {
    if (!isUuid(sessionId)) return;
    await this.tx(async (em, out) => {
      const s = await em.findOne(Session, { where: { id: sessionId }, lock: { mode: 'pessimistic_write' } });
      // a VM only speaks for the sessions it holds
      if (!s || s.vmId !== vmId) {
        this.log.warn('VM report about a session it does not hold ignored', { sessionId, vmId });
        return;
      }
      await fn(em, out, s);
    });
  }

  /** Records an event that changes no state (VM Data saved, a resource asked for) and publishes it. */
  async recordEvent(sessionId: string, type: SessionEventType, data: Record<string, unknown>): Promise<void> {
    await this.tx(async (em, out) => {
      const s = await this.lock(em, sessionId);
      await this.record(em, out, s, type, null, data);
    });
  }

  // ---- the machinery -------------------------------------------------------------------------------

  private async lock(em: EntityManager, id: string): Promise<Session> {
    const s = await em.findOne(Session, { where: { id }, lock: { mode: 'pessimistic_write' } });
    if (!s) throw notFound('Session', id);
    return s;
  }

  private async move(em: EntityManager, out: Outbox, s: Session, to: SessionState, action: string, actorId: string | null, patch: Partial<Session> = {}, data: Record<string, unknown> | null = null): Promise<Session> {
    const from = s.state;
    assertTransition(from, to, action);
    Object.assign(s, patch, { state: to });
    await em.update(Session, s.id, { ...patch, state: to });
    await this.record(em, out, s, eventFor(from, to), actorId, { from, ...data });
    return s;
  }

  private async record(em: EntityManager, out: Outbox, s: Session, type: SessionEventType, actorId: string | null, data: Record<string, unknown> | null): Promise<void> {
    const ev = await em.save(em.create(SessionEvent, { sessionId: s.id, type, actorId, data }));
    out.events.push(sessionEventPayload(ev, s.userId));
  }

  /** Runs fn in a transaction; publishes its events and sends its commands after the commit. */
  private async tx<T>(fn: (em: EntityManager, out: Outbox) => Promise<T>): Promise<T> {
    const out = new Outbox();
    const result = await this.ds.transaction((em) => fn(em, out));
    for (const ev of out.events) {
      this.pubsub.publish('SESSION_EVENT', ev.sessionId, ev);
      this.pubsub.publish('NOTIFICATION', ev.ownerId, { at: ev.at, sessionEvent: ev, invitationId: null });
    }
    for (const { vmId, command } of out.commands) {
      await uve.sendToVm(this.bus, vmId, command).catch((e: Error) => this.log.error('UVE-2 command not sent', { vmId, type: command.type, error: e.message }));
    }
    if (out.events.length) this.onChange();
    return result;
  }
}
