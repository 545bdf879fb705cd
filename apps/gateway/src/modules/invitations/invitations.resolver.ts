import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { notOffered } from '../../common/errors';
import { currentUser } from '../../graphql/auth-checker';
import type { Context } from '../../graphql/context';
import { required } from '../../graphql/loaders';
import { InvitationStatusEnum, ParticipantRoleEnum, type InvitationStatus, type ParticipantRole } from '../../graphql/enums';
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
  inviteToSession(@Arg('sessionId', () => ID) _sessionId: string, @Arg('inviteeId', () => ID) _inviteeId: string, @Arg('role', () => ParticipantRoleEnum, { defaultValue: 'VIEWER' }) _role: ParticipantRole): Invitation {
    throw notOffered('Invitations');
  }

  @Authorized()
  @Mutation(() => Invitation)
  respondToInvitation(@Arg('invitationId', () => ID) _invitationId: string, @Arg('accept') _accept: boolean, @Arg('rejectionReason', () => String, { nullable: true }) _reason: string | null): Invitation {
    throw notOffered('Invitations');
  }

  @Authorized()
  @Mutation(() => Invitation)
  revokeInvitation(@Arg('invitationId', () => ID) _invitationId: string): Invitation {
    throw notOffered('Invitations');
  }

  @FieldResolver(() => Session)
  session(@Root() i: Invitation, @Ctx() ctx: Context): Promise<Session> {
    return ctx.services.sessions.getVisible(i.sessionId, currentUser(ctx));
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
  connection(): SessionConnection | null {
    return null;
  }
}
