import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { currentUser } from '../../common/auth-checker';
import type { Context } from '../../common/context';
import { required } from '../../common/loaders';
import { InvitationStatusEnum, ParticipantRoleEnum, type InvitationStatus, type ParticipantRole } from './invitations.enums';
import { Session } from '../sessions/sessions.entity';
import { SessionConnection } from '../sessions/sessions.types';
import { User } from '../users/users.entity';
import { Invitation, Participant } from './invitations.entity';

@Resolver(() => Invitation)
export class InvitationsResolver {
  @Authorized()
  @Query(() => [Invitation])
  myInvitations(@Arg('status', () => InvitationStatusEnum, { nullable: true }) status: InvitationStatus | null, @Ctx() ctx: Context): Promise<Invitation[]> {
    return ctx.services.invitations.listFor(currentUser(ctx).id, status);
  }

  @Authorized()
  @Mutation(() => Invitation)
  inviteToSession(@Arg('sessionId', () => ID) sessionId: string, @Arg('inviteeId', () => ID) inviteeId: string, @Arg('role', () => ParticipantRoleEnum, { defaultValue: 'VIEWER' }) role: ParticipantRole, @Ctx() ctx: Context): Promise<Invitation> {
    return ctx.services.invitations.invite(currentUser(ctx), sessionId, inviteeId, role);
  }

  @Authorized()
  @Mutation(() => Invitation)
  respondToInvitation(@Arg('invitationId', () => ID) invitationId: string, @Arg('accept') accept: boolean, @Arg('rejectionReason', () => String, { nullable: true }) reason: string | null, @Ctx() ctx: Context): Promise<Invitation> {
    return ctx.services.invitations.respond(currentUser(ctx), invitationId, accept, reason);
  }

  @Authorized()
  @Mutation(() => Invitation)
  revokeInvitation(@Arg('invitationId', () => ID) invitationId: string, @Ctx() ctx: Context): Promise<Invitation> {
    return ctx.services.invitations.revoke(currentUser(ctx), invitationId);
  }

  @Authorized()
  @Mutation(() => Boolean, { description: 'a guest (accepted invitation) leaves the session; their stream closes' })
  leaveSession(@Arg('sessionId', () => ID) sessionId: string, @Ctx() ctx: Context): Promise<boolean> {
    return ctx.services.invitations.leave(currentUser(ctx), sessionId);
  }

  @FieldResolver(() => Session)
  async session(@Root() i: Invitation, @Ctx() ctx: Context): Promise<Session> {
    // both sides of an invitation see its session, whatever became of it
    const me = currentUser(ctx);
    const own = me.id === i.fromId || me.id === i.toId ? await ctx.services.sessions.findById(i.sessionId) : null;
    return own ?? ctx.services.sessions.getVisible(i.sessionId, me);
  }

  @FieldResolver(() => User)
  from(@Root() i: Invitation, @Ctx() ctx: Context): Promise<User> {
    return required(ctx.loaders.users, 'User', i.fromId);
  }

  @FieldResolver(() => User)
  to(@Root() i: Invitation, @Ctx() ctx: Context): Promise<User> {
    return required(ctx.loaders.users, 'User', i.toId);
  }
}

@Resolver(() => Participant)
export class ParticipantsResolver {
  @FieldResolver(() => User)
  user(@Root() p: Participant, @Ctx() ctx: Context): Promise<User> {
    return required(ctx.loaders.users, 'User', p.userId);
  }

  @FieldResolver(() => SessionConnection, { nullable: true })
  connection(@Root() p: Participant, @Ctx() ctx: Context): Promise<SessionConnection | null> {
    return ctx.services.invitations.connection(p, currentUser(ctx));
  }
}
