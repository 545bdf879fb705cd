// Watcher management and monitoring (seed 7.3.1.2.1): standing grants given by admins; a watcher
// monitors a watchee's live sessions through view-only streams (the VM is told with the UVE-2
// monitoring notification); among a session's watchers one alone may suspend it (the suspend
// controller). Every decision about control is taken with the session row locked, so two
// concurrent requests are ordered by the database: one wins, never two.
import { In, IsNull, Not, type DataSource, type FindOptionsWhere, type Repository } from 'typeorm';
import { badInput, checkText, conflict, forbidden, isUuid, notFound } from '../../common/errors';
import type { Transactions, UnitOfWork } from '../../common/unit-of-work';
import { WATCHER_PRIVILEGES, type WatcherPrivilege } from './watchers.enums';
import { LIVE_STATES, assertTransition } from '../sessions/session-state';
import { Session } from '../sessions/sessions.entity';
import type { SessionConnection, SessionsService } from '../sessions/sessions.service';
import type { User } from '../users/users.entity';
import type { UsersService } from '../users/users.service';
import { Monitoring, WatcherGrant } from './watchers.entity';
import { ownsOrAdmin } from '../../common/access';

function checkPrivileges(privileges: WatcherPrivilege[]): WatcherPrivilege[] {
  const set = [...new Set(privileges)];
  if (set.length === 0) throw badInput('privileges must name at least one privilege; use revokeWatcher to take all away.', 'privileges');
  if (set.some((p) => !WATCHER_PRIVILEGES.includes(p))) throw badInput(`privileges must be among ${WATCHER_PRIVILEGES.join(', ')}.`, 'privileges');
  return set;
}

const canSuspend = (privileges: readonly string[]): boolean => privileges.includes('SUSPEND');

export class WatchersService {
  private readonly grants: Repository<WatcherGrant>;
  private readonly monitorings: Repository<Monitoring>;

  constructor(
    private readonly ds: DataSource,
    private readonly txs: Transactions,
    private readonly users: UsersService,
    private readonly sessions: SessionsService,
  ) {
    this.grants = ds.getRepository(WatcherGrant);
    this.monitorings = ds.getRepository(Monitoring);
    // watchers monitoring the watchee follow its sessions onto their VMs (new ones, reconnections)
    sessions.assignedHooks.push((uow, s, created) => this.onSessionAssigned(uow, s, created));
  }

  // ---- grants (admins) ---------------------------------------------------------------------------

  async getGrant(id: string): Promise<WatcherGrant> {
    const g = isUuid(id) ? await this.grants.findOneBy({ id }) : null;
    if (!g) throw notFound('Watcher grant', id);
    return g;
  }

  async assign(watcherId: string, watcheeId: string, privileges: WatcherPrivilege[]): Promise<WatcherGrant> {
    const list = checkPrivileges(privileges);
    await this.users.get(watcherId);
    await this.users.get(watcheeId);
    if (watcherId === watcheeId) throw badInput('A user cannot watch themselves.', 'watcherId');
    if (await this.grants.existsBy({ watcherId, watcheeId })) throw conflict('This watcher already has a grant for this watchee; use updateWatcherPrivileges.');
    return this.grants.save(this.grants.create({ watcherId, watcheeId, privileges: list, monitoringSince: null }));
  }

  /** Takes effect at once: open monitorings get the new privileges; losing SUSPEND hands control on. */
  async updatePrivileges(grantId: string, privileges: WatcherPrivilege[]): Promise<WatcherGrant> {
    const list = checkPrivileges(privileges);
    const g = await this.getGrant(grantId);
    return this.txs.run(async (uow) => {
      await uow.em.update(WatcherGrant, g.id, { privileges: list });
      for (const m of await this.openOfGrant(g.id)) {
        const s = await this.sessions.lock(uow.em, m.sessionId);
        await uow.em.update(Monitoring, m.id, { privileges: list });
        if (!canSuspend(list) && s.suspendControllerId === m.watcherId) await this.handOver(uow, s, m.watcherId, 'the holder lost the SUSPEND privilege');
        if (canSuspend(list) && !s.suspendControllerId) await this.giveControl(uow, s, m.watcherId, null, 'the watcher was given the SUSPEND privilege');
      }
      return (await uow.em.findOneBy(WatcherGrant, { id: g.id }))!;
    });
  }

  /** Takes effect at once: the watcher's monitorings end and the VMs close their streams. */
  async revoke(grantId: string): Promise<boolean> {
    const g = await this.getGrant(grantId);
    await this.txs.run(async (uow) => {
      for (const m of await this.openOfGrant(g.id)) await this.end(uow, m, null, 'the watcher grant was revoked');
      await uow.em.delete(WatcherGrant, g.id);
    });
    return true;
  }

  list(filter: { watcheeId?: string | null; watcherId?: string | null }): Promise<WatcherGrant[]> {
    const where: FindOptionsWhere<WatcherGrant> = {};
    for (const key of ['watcheeId', 'watcherId'] as const) {
      const v = filter[key];
      if (v) {
        if (!isUuid(v)) return Promise.resolve([]);
        where[key] = v;
      }
    }
    return this.grants.find({ where, order: { createdAt: 'ASC' } });
  }

  monitoringsOf(sessionId: string): Promise<Monitoring[]> {
    return this.monitorings.find({ where: { sessionId, endedAt: IsNull() }, order: { startedAt: 'ASC' } });
  }

  private openOfGrant(grantId: string): Promise<Monitoring[]> {
    return this.monitorings.find({ where: { grantId, endedAt: IsNull() }, order: { startedAt: 'ASC' } });
  }

  // ---- monitoring (UVE-1 monitoring request) ------------------------------------------------------

  /** Starts monitoring each live session of the watchee; later sessions are offered as they start. */
  async requestMonitoring(watcher: User, watcheeId: string): Promise<Monitoring[]> {
    const grant = isUuid(watcheeId) ? await this.grants.findOneBy({ watcherId: watcher.id, watcheeId }) : null;
    if (!grant) throw forbidden(`You are not a watcher of user ${watcheeId}: an admin assigns watchers (assignWatcher).`);
    const live = await this.sessions.listForUser(watcheeId, true);
    return this.txs.run(async (uow) => {
      await uow.em.update(WatcherGrant, grant.id, { monitoringSince: grant.monitoringSince ?? new Date() });
      const started: Monitoring[] = [];
      for (const s of live) {
        const m = await this.startOn(uow, s.id, grant);
        if (m) started.push(m);
      }
      return started;
    });
  }

  async stopMonitoring(caller: User, monitoringId: string): Promise<Monitoring> {
    const m = isUuid(monitoringId) ? await this.monitorings.findOneBy({ id: monitoringId }) : null;
    if (!m || !ownsOrAdmin(caller, m.watcherId)) throw notFound('Monitoring', monitoringId);
    if (m.endedAt) throw conflict('This monitoring has already ended.');
    return this.txs.run(async (uow) => {
      const ended = await this.end(uow, m, caller.id, caller.id === m.watcherId ? 'the watcher stopped monitoring' : 'stopped by an admin');
      // no session of the watchee left under watch: later ones are not offered any more
      const s = await this.sessions.lock(uow.em, m.sessionId);
      const stillWatching = await uow.em.createQueryBuilder(Monitoring, 'm').innerJoin('m.session', 's')
        .where('m.watcher_id = :w AND m.ended_at IS NULL AND s.user_id = :u', { w: m.watcherId, u: s.userId }).getExists();
      if (!stillWatching) await uow.em.update(WatcherGrant, { watcherId: m.watcherId, watcheeId: s.userId }, { monitoringSince: null });
      return ended;
    });
  }

  /** The watcher's own view-only connection to the monitored session (null for anyone else, or once ended). */
  async connection(m: Monitoring, caller: User): Promise<SessionConnection | null> {
    if (m.watcherId !== caller.id || m.endedAt) return null;
    const s = await this.sessions.findById(m.sessionId);
    return s ? this.sessions.mintConnection(s, caller.id, 'VIEWER') : null;
  }

  /**
   * One watcher on one session (locked here): the monitoring row, the MONITORING_STARTED event (the
   * watchee hears of it through their notifications), the UVE-2 monitoring notification so the VM
   * admits the watcher, and suspend control for the first watcher with SUSPEND.
   */
  private async startOn(uow: UnitOfWork, sessionId: string, grant: WatcherGrant): Promise<Monitoring | null> {
    const s = await this.sessions.lock(uow.em, sessionId);
    if (!LIVE_STATES.includes(s.state) || !s.vmId) return null;
    let m = await uow.em.findOneBy(Monitoring, { sessionId: s.id, watcherId: grant.watcherId, endedAt: IsNull() });
    if (!m) {
      m = await uow.em.save(uow.em.create(Monitoring, { sessionId: s.id, watcherId: grant.watcherId, grantId: grant.id, privileges: grant.privileges, endedAt: null }));
      const ev = await this.sessions.record(uow, s, 'MONITORING_STARTED', grant.watcherId, { monitoringId: m.id, watcherId: grant.watcherId, privileges: grant.privileges });
      uow.notify(grant.watcherId, { sessionEvent: ev });
      if (canSuspend(grant.privileges) && !s.suspendControllerId) await this.giveControl(uow, s, grant.watcherId, null, 'first watcher with the SUSPEND privilege');
    }
    // sent again for a monitoring already open: harmless, and a VM that lost it learns it again
    await uow.command(s.vmId, { type: 'monitoring.notify', sessionId: s.id, watcherId: grant.watcherId, privileges: m.privileges }, s.id);
    return m;
  }

  /** Ends a monitoring (its session locked here): event, the VM closes the stream, control moves on. */
  private async end(uow: UnitOfWork, m: Monitoring, actorId: string | null, reason: string): Promise<Monitoring> {
    const s = await this.sessions.lock(uow.em, m.sessionId);
    m.endedAt = new Date();
    await uow.em.update(Monitoring, m.id, { endedAt: m.endedAt });
    const ev = await this.sessions.record(uow, s, 'MONITORING_ENDED', actorId, { monitoringId: m.id, watcherId: m.watcherId, reason });
    uow.notify(m.watcherId, { sessionEvent: ev });
    if (s.vmId && LIVE_STATES.includes(s.state)) await uow.command(s.vmId, { type: 'monitoring.end', sessionId: s.id, watcherId: m.watcherId, reason }, s.id);
    if (s.suspendControllerId === m.watcherId) await this.handOver(uow, s, m.watcherId, `the holder left: ${reason}`);
    return m;
  }

  /** A session of a watchee went onto a VM: watchers monitoring the watchee are announced there. */
  private async onSessionAssigned(uow: UnitOfWork, s: Session, created: boolean): Promise<void> {
    const watching = await uow.em.find(WatcherGrant, { where: { watcheeId: s.userId, monitoringSince: Not(IsNull()) }, order: { monitoringSince: 'ASC' } });
    for (const g of watching) await this.startOn(uow, s.id, g);
    // watchers of a reconnected session follow it to its new VM (a session just created has none)
    if (created) return;
    const open = await uow.em.find(Monitoring, { where: { sessionId: s.id, endedAt: IsNull(), watcherId: Not(In(watching.map((g) => g.watcherId).concat(s.userId))) } });
    for (const m of open) await uow.command(s.vmId!, { type: 'monitoring.notify', sessionId: s.id, watcherId: m.watcherId, privileges: m.privileges }, s.id);
  }

  /** Monitorings of sessions that are over are closed (the watchdog's pass). */
  async sweep(): Promise<void> {
    await this.ds.query(`UPDATE monitorings m SET ended_at = now() FROM sessions s WHERE m.session_id = s.id AND m.ended_at IS NULL AND s.state IN ('ENDED', 'FAILED')`);
  }

  // ---- the suspend controller ---------------------------------------------------------------------

  private async giveControl(uow: UnitOfWork, s: Session, to: string | null, actorId: string | null, reason: string): Promise<void> {
    const from = s.suspendControllerId;
    if (from === to) return;
    s.suspendControllerId = to;
    await uow.em.update(Session, s.id, { suspendControllerId: to });
    await this.sessions.record(uow, s, 'SUSPEND_CONTROL_CHANGED', actorId, { from, to, reason });
  }

  /** The holder leaves or loses SUSPEND: the next eligible watcher in arrival order holds control. */
  private async handOver(uow: UnitOfWork, s: Session, leaving: string, reason: string): Promise<void> {
    const open = await uow.em.find(Monitoring, { where: { sessionId: s.id, endedAt: IsNull() }, order: { startedAt: 'ASC' } });
    const next = open.find((m) => m.watcherId !== leaving && canSuspend(m.privileges));
    await this.giveControl(uow, s, next?.watcherId ?? null, null, reason);
  }

  async transferControl(caller: User, sessionId: string, toWatcherId: string | null): Promise<Session> {
    const visible = await this.sessions.getVisible(sessionId, caller);
    return this.txs.run(async (uow) => {
      const s = await this.sessions.lock(uow.em, visible.id);
      if (!ownsOrAdmin(caller, s.suspendControllerId)) throw forbidden(await this.holderMessage(s, 'transfer it'));
      if (toWatcherId === null) {
        await this.giveControl(uow, s, null, caller.id, 'released');
        return s;
      }
      const target = isUuid(toWatcherId) ? await uow.em.findOneBy(Monitoring, { sessionId: s.id, watcherId: toWatcherId, endedAt: IsNull() }) : null;
      if (!target || !canSuspend(target.privileges)) throw badInput(`User ${toWatcherId} does not monitor this session with the SUSPEND privilege.`, 'toWatcherId');
      await this.giveControl(uow, s, toWatcherId, caller.id, 'transferred');
      return s;
    });
  }

  private async holderMessage(s: Session, what: string): Promise<string> {
    if (!s.suspendControllerId) return `No watcher holds the suspend control of this session; only its holder may ${what}.`;
    const holder = await this.users.findById(s.suspendControllerId);
    return `The suspend control of this session is held by ${holder?.username ?? s.suspendControllerId} (user ${s.suspendControllerId}); only they may ${what}.`;
  }

  // ---- suspend and resume (UVE-1 session suspend/resume requests) -----------------------------------

  /**
   * The suspend controller alone may suspend; with no controller the session's user (or an admin)
   * may. Decided with the session locked: of two concurrent requests one wins, never two.
   */
  async suspend(user: User, id: string, reason: string | null | undefined): Promise<Session> {
    checkText(reason, 'reason', 500);
    const visible = await this.sessions.getVisible(id, user);
    return this.txs.run(async (uow) => {
      const s = await this.sessions.lock(uow.em, visible.id);
      const allowed = s.suspendControllerId ? s.suspendControllerId === user.id : ownsOrAdmin(user, s.userId);
      if (!allowed) throw forbidden(await this.holderMessage(s, 'suspend it'));
      assertTransition(s.state, 'SUSPENDED', 'suspend the session');
      const next = await this.sessions.move(uow, s, 'SUSPENDED', 'suspend the session', user.id, { suspendedById: user.id }, { reason: reason ?? null });
      await uow.command(s.vmId!, { type: 'session.suspend', sessionId: s.id, byUserId: user.id, reason: reason ?? null }, s.id);
      return next;
    });
  }

  /**
   * Whoever suspended it may resume; anyone else needs the SUSPEND privilege over the session's user
   * (so the user cannot undo a watcher's suspension), or to be an admin.
   */
  async resume(user: User, id: string): Promise<Session> {
    const visible = await this.sessions.getVisible(id, user);
    return this.txs.run(async (uow) => {
      const s = await this.sessions.lock(uow.em, visible.id);
      if (s.state !== 'SUSPENDED') throw conflict(`Cannot resume the session: it is ${s.state}, not SUSPENDED.`, { state: s.state });
      if (!ownsOrAdmin(user, s.suspendedById)) {
        const grant = await uow.em.findOneBy(WatcherGrant, { watcherId: user.id, watcheeId: s.userId });
        if (!grant || !canSuspend(grant.privileges)) {
          const by = s.suspendedById ? await this.users.findById(s.suspendedById) : null;
          throw forbidden(`Only ${by?.username ?? 'the one who suspended it'}, a watcher with the SUSPEND privilege over its user, or an admin may resume this session.`);
        }
      }
      const next = await this.sessions.move(uow, s, 'ACTIVE', 'resume the session', user.id, { suspendedById: null });
      await uow.command(s.vmId!, { type: 'session.resume', sessionId: s.id, byUserId: user.id }, s.id);
      return next;
    });
  }
}
