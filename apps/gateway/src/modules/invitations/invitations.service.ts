// Invitations (seed: invitation request and rejection): a session's user invites another user as a
// VIEWER (watches) or a PLAYER (their input is executed too, interleaved in arrival order). The
// invitee answers through their notifications; a rejection's reason reaches the inviter the same
// way. Accepted guests are announced to the VM with the UVE-2 monitoring notification (PLAY for a
// PLAYER); revoking or leaving closes their stream. Unanswered invitations expire; an invitation
// to a session that is over lapses.
import { IsNull, type DataSource } from 'typeorm';
import { badInput, checkText, conflict, forbidden, isUuid, notFound } from '../../common/errors';
import type { Transactions, UnitOfWork } from '../../common/unit-of-work';
import type { InvitationStatus, ParticipantRole } from './invitations.enums';
import { LIVE_STATES, OPEN_STATES } from '../sessions/session-state';
import type { Session } from '../sessions/sessions.entity';
import type { SessionConnection, SessionsService } from '../sessions/sessions.service';
import type { User } from '../users/users.entity';
import type { UsersService } from '../users/users.service';
import { Invitation, Participant } from './invitations.entity';
import { ownsOrAdmin } from '../../common/access';

export interface InvitationsOptions {
  /** a PENDING invitation expires this long after it was sent */
  ttlMs: number;
}

const privilegesOf = (role: ParticipantRole): string[] => (role === 'PLAYER' ? ['PLAY'] : ['VIEW']);

export class InvitationsService {
  constructor(
    private readonly ds: DataSource,
    private readonly txs: Transactions,
    private readonly users: UsersService,
    private readonly sessions: SessionsService,
    private readonly options: InvitationsOptions,
  ) {
    // guests follow a reconnected session to its new VM
    sessions.assignedHooks.push((uow, s, created) => this.onSessionAssigned(uow, s, created));
  }

  participantsOf(sessionId: string): Promise<Participant[]> {
    return this.ds.getRepository(Participant).find({ where: { sessionId, leftAt: IsNull() }, order: { joinedAt: 'ASC' } });
  }

  listFor(userId: string, status: InvitationStatus | null | undefined): Promise<Invitation[]> {
    return this.ds.getRepository(Invitation).find({ where: status ? { toId: userId, status } : { toId: userId }, order: { createdAt: 'DESC' }, take: 200 });
  }

  findById(id: string): Promise<Invitation | null> {
    return isUuid(id) ? this.ds.getRepository(Invitation).findOneBy({ id }) : Promise.resolve(null);
  }

  async invite(user: User, sessionId: string, inviteeId: string, role: ParticipantRole): Promise<Invitation> {
    const visible = await this.sessions.getVisible(sessionId, user);
    if (visible.userId !== user.id) throw forbidden("Only the session's user can invite others to it.");
    const invitee = await this.users.get(inviteeId);
    if (invitee.id === user.id) throw badInput('You cannot invite yourself.', 'inviteeId');
    return this.txs.run(async (uow) => {
      const s = await this.sessions.lock(uow.em, visible.id);
      if (!OPEN_STATES.includes(s.state)) throw conflict(`Cannot invite to the session: it is ${s.state}.`, { state: s.state });
      if (await uow.em.existsBy(Participant, { sessionId: s.id, userId: invitee.id, leftAt: IsNull() })) throw conflict(`${invitee.username} is already in this session.`);
      if (await uow.em.existsBy(Invitation, { sessionId: s.id, toId: invitee.id, status: 'PENDING' })) throw conflict(`${invitee.username} already has a pending invitation to this session.`);
      const inv = await uow.em.save(uow.em.create(Invitation, { sessionId: s.id, fromId: user.id, toId: invitee.id, role, status: 'PENDING', rejectionReason: null, respondedAt: null }));
      await this.sessions.record(uow, s, 'INVITATION_SENT', user.id, { invitationId: inv.id, toId: invitee.id, role });
      uow.notify(invitee.id, { invitationId: inv.id });
      return inv;
    });
  }

  async respond(user: User, invitationId: string, accept: boolean, reason: string | null | undefined): Promise<Invitation> {
    checkText(reason, 'rejectionReason', 500);
    const found = await this.findById(invitationId);
    if (!found || found.toId !== user.id) throw notFound('Invitation', invitationId);
    const outcome = await this.txs.run(async (uow) => {
      const s = await this.sessions.lock(uow.em, found.sessionId);
      const inv = (await uow.em.findOne(Invitation, { where: { id: found.id }, lock: { mode: 'pessimistic_write' } }))!;
      if (inv.status !== 'PENDING') return { inv, refusal: `The invitation is ${inv.status}; only a PENDING one can be answered.` };
      const lapsed = this.lapseReason(inv, s);
      if (lapsed) {
        await this.close(uow, s, inv, 'EXPIRED', null);
        return { inv, refusal: `The invitation has expired: ${lapsed}.` };
      }
      if (!accept) {
        await this.close(uow, s, inv, 'REJECTED', user.id, reason ?? null);
        return { inv, refusal: null };
      }
      inv.status = 'ACCEPTED';
      inv.respondedAt = new Date();
      await uow.em.update(Invitation, inv.id, { status: inv.status, respondedAt: inv.respondedAt });
      await uow.em.save(uow.em.create(Participant, { sessionId: s.id, userId: user.id, invitationId: inv.id, role: inv.role, leftAt: null }));
      await this.sessions.record(uow, s, 'INVITATION_ACCEPTED', user.id, { invitationId: inv.id, userId: user.id, role: inv.role });
      await this.sessions.record(uow, s, 'PARTICIPANT_JOINED', user.id, { userId: user.id, role: inv.role });
      if (s.vmId && LIVE_STATES.includes(s.state)) await uow.command(s.vmId, { type: 'monitoring.notify', sessionId: s.id, watcherId: user.id, privileges: privilegesOf(inv.role) }, s.id);
      uow.notify(inv.fromId, { invitationId: inv.id });
      return { inv, refusal: null };
    });
    // an expiry found here is committed before the refusal is given
    if (outcome.refusal) throw conflict(outcome.refusal, { status: outcome.inv.status });
    return outcome.inv;
  }

  /** The inviter (or an admin) takes an invitation back; an accepted one's guest leaves the session. */
  async revoke(user: User, invitationId: string): Promise<Invitation> {
    const found = await this.findById(invitationId);
    if (!found || !ownsOrAdmin(user, found.fromId)) throw notFound('Invitation', invitationId);
    return this.txs.run(async (uow) => {
      const s = await this.sessions.lock(uow.em, found.sessionId);
      const inv = (await uow.em.findOne(Invitation, { where: { id: found.id }, lock: { mode: 'pessimistic_write' } }))!;
      if (inv.status !== 'PENDING' && inv.status !== 'ACCEPTED') throw conflict(`The invitation is ${inv.status}; only a PENDING or ACCEPTED one can be revoked.`, { status: inv.status });
      if (inv.status === 'ACCEPTED') await this.leaveIn(uow, s, inv.toId, user.id, 'the invitation was revoked');
      await this.close(uow, s, inv, 'REVOKED', user.id);
      return inv;
    });
  }

  /** A guest leaves the session they were invited to. */
  async leave(user: User, sessionId: string): Promise<boolean> {
    const visible = await this.sessions.getVisible(sessionId, user);
    return this.txs.run(async (uow) => {
      const s = await this.sessions.lock(uow.em, visible.id);
      if (!(await this.leaveIn(uow, s, user.id, user.id, 'the guest left'))) throw conflict('You are not a guest of this session.');
      return true;
    });
  }

  /** The guest's own connection in their role (null for anyone else, or once they left). */
  async connection(p: Participant, caller: User): Promise<SessionConnection | null> {
    if (p.userId !== caller.id || p.leftAt) return null;
    const s = await this.sessions.findById(p.sessionId);
    return s ? this.sessions.mintConnection(s, caller.id, p.role) : null;
  }

  /** Unanswered invitations past their time and those to sessions that are over expire; guests of those leave. */
  async sweep(): Promise<void> {
    await this.ds.query(
      `UPDATE invitations i SET status = 'EXPIRED', responded_at = now() FROM sessions s
        WHERE i.session_id = s.id AND i.status = 'PENDING'
          AND (i.created_at < now() - make_interval(secs => $1::float8 / 1000) OR s.state IN ('ENDED', 'FAILED'))`,
      [this.options.ttlMs],
    );
    await this.ds.query(`UPDATE participants p SET left_at = now() FROM sessions s WHERE p.session_id = s.id AND p.left_at IS NULL AND s.state IN ('ENDED', 'FAILED')`);
  }

  private lapseReason(inv: Invitation, s: Session): string | null {
    if (!OPEN_STATES.includes(s.state)) return `the session is ${s.state}`;
    if (Date.now() - inv.createdAt.getTime() > this.options.ttlMs) return `it was not answered within ${Math.round(this.options.ttlMs / 1000)} s`;
    return null;
  }

  /** PENDING/ACCEPTED → a final status; the other side is told through their notifications. */
  private async close(uow: UnitOfWork, s: Session, inv: Invitation, status: InvitationStatus, actorId: string | null, reason: string | null = null): Promise<void> {
    inv.status = status;
    inv.respondedAt = new Date();
    inv.rejectionReason = status === 'REJECTED' ? reason : inv.rejectionReason;
    await uow.em.update(Invitation, inv.id, { status, respondedAt: inv.respondedAt, rejectionReason: inv.rejectionReason });
    if (status === 'REJECTED') await this.sessions.record(uow, s, 'INVITATION_REJECTED', actorId, { invitationId: inv.id, userId: inv.toId, reason });
    uow.notify(actorId === inv.toId ? inv.fromId : inv.toId, { invitationId: inv.id });
  }

  private async leaveIn(uow: UnitOfWork, s: Session, userId: string, actorId: string, reason: string): Promise<boolean> {
    const p = await uow.em.findOneBy(Participant, { sessionId: s.id, userId, leftAt: IsNull() });
    if (!p) return false;
    await uow.em.update(Participant, p.id, { leftAt: new Date() });
    await this.sessions.record(uow, s, 'PARTICIPANT_LEFT', actorId, { userId, role: p.role, reason });
    if (s.vmId && LIVE_STATES.includes(s.state)) await uow.command(s.vmId, { type: 'monitoring.end', sessionId: s.id, watcherId: userId, reason }, s.id);
    return true;
  }

  private async onSessionAssigned(uow: UnitOfWork, s: Session, created: boolean): Promise<void> {
    // a session just created has no guests yet (nothing could invite to it before its commit)
    if (created) return;
    const guests = await uow.em.find(Participant, { where: { sessionId: s.id, leftAt: IsNull() } });
    for (const p of guests) await uow.command(s.vmId!, { type: 'monitoring.notify', sessionId: s.id, watcherId: p.userId, privileges: privilegesOf(p.role) }, s.id);
  }
}
