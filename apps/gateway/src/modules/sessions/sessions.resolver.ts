import { Arg, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { currentUser } from '../../common/auth-checker';
import type { Context } from '../../common/context';
import { lastEventsKey, optional, required } from '../../common/loaders';
import { SessionStateEnum, type SessionState } from './sessions.enums';
import { Participant } from '../invitations/invitations.entity';
import { VmDataStaging, VmSnapshot } from '../snapshots/snapshots.entity';
import { Ua } from '../uas/uas.entity';
import { User } from '../users/users.entity';
import { Vm } from '../vms/vms.entity';
import { Monitoring } from '../watchers/watchers.entity';
import { RequestApplicationInput } from './sessions.inputs';
import { Session, SessionEvent } from './sessions.entity';
import { SessionConnection } from './sessions.types';
import { ownsOrAdmin } from '../../common/access';

@Resolver(() => Session)
export class SessionsResolver {
  @Authorized()
  @Query(() => Session, { nullable: true })
  session(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Session> {
    return ctx.services.sessions.getVisible(id, currentUser(ctx));
  }

  @Authorized()
  @Query(() => [Session])
  mySessions(@Arg('active', () => Boolean, { nullable: true }) active: boolean | null, @Ctx() ctx: Context): Promise<Session[]> {
    return ctx.services.sessions.listForUser(currentUser(ctx).id, active);
  }

  @Authorized('ADMIN')
  @Query(() => [Session])
  sessions(
    @Arg('state', () => SessionStateEnum, { nullable: true }) state: SessionState | null,
    @Arg('userId', () => ID, { nullable: true }) userId: string | null,
    @Arg('uaId', () => ID, { nullable: true }) uaId: string | null,
    @Arg('vmId', () => ID, { nullable: true }) vmId: string | null,
    @Arg('limit', () => Int, { nullable: true, defaultValue: 50 }) limit: number | null,
    @Arg('offset', () => Int, { nullable: true, defaultValue: 0 }) offset: number | null,
    @Ctx() ctx: Context,
  ): Promise<Session[]> {
    return ctx.services.sessions.list({ state, userId, uaId, vmId }, limit, offset);
  }

  @Authorized()
  @Mutation(() => Session, { description: 'UA request: VMM selects a VM (restoring VM Data of an earlier disconnected session of this user and UA, if any) and returns where to connect' })
  requestApplication(@Arg('input', () => RequestApplicationInput) input: RequestApplicationInput, @Ctx() ctx: Context): Promise<Session> {
    return ctx.services.sessions.requestApplication(currentUser(ctx), input);
  }

  @Authorized()
  @Mutation(() => Session, { description: 'the user finished: VM Data is updated per the reconnection method and the VM released' })
  endSession(@Arg('sessionId', () => ID) sessionId: string, @Ctx() ctx: Context): Promise<Session> {
    return ctx.services.sessions.endSession(currentUser(ctx), sessionId);
  }

  @Authorized()
  @Mutation(() => Session)
  suspendSession(@Arg('sessionId', () => ID) sessionId: string, @Arg('reason', () => String, { nullable: true }) reason: string | null, @Ctx() ctx: Context): Promise<Session> {
    return ctx.services.watchers.suspend(currentUser(ctx), sessionId, reason);
  }

  @Authorized()
  @Mutation(() => Session)
  resumeSession(@Arg('sessionId', () => ID) sessionId: string, @Ctx() ctx: Context): Promise<Session> {
    return ctx.services.watchers.resume(currentUser(ctx), sessionId);
  }

  @Authorized('ADMIN')
  @Mutation(() => Session)
  terminateSession(@Arg('sessionId', () => ID) sessionId: string, @Arg('reason', () => String, { nullable: true }) reason: string | null, @Ctx() ctx: Context): Promise<Session> {
    return ctx.services.sessions.terminate(currentUser(ctx), sessionId, reason);
  }

  // ---- fields ----

  @FieldResolver(() => User)
  user(@Root() s: Session, @Ctx() ctx: Context): Promise<User> {
    return required(ctx.loaders.users, 'User', s.userId);
  }

  @FieldResolver(() => Ua)
  ua(@Root() s: Session, @Ctx() ctx: Context): Promise<Ua> {
    return required(ctx.loaders.uas, 'UA', s.uaId);
  }

  @FieldResolver(() => Vm, { nullable: true })
  vm(@Root() s: Session, @Ctx() ctx: Context): Promise<Vm | null> {
    return optional(ctx.loaders.vms, s.vmId);
  }

  @FieldResolver(() => SessionConnection, { nullable: true, description: "only for the session's user (and admins); null after the session ended" })
  connection(@Root() s: Session, @Ctx() ctx: Context): Promise<SessionConnection | null> {
    const viewer = currentUser(ctx);
    if (!ownsOrAdmin(viewer, s.userId)) return Promise.resolve(null);
    return ctx.services.sessions.connection(s, viewer);
  }

  @FieldResolver(() => [Monitoring])
  watchers(@Root() s: Session, @Ctx() ctx: Context): Promise<Monitoring[]> {
    return ctx.services.watchers.monitoringsOf(s.id);
  }

  @FieldResolver(() => [Participant])
  participants(@Root() s: Session, @Ctx() ctx: Context): Promise<Participant[]> {
    return ctx.services.invitations.participantsOf(s.id);
  }

  @FieldResolver(() => User, { nullable: true, description: 'the watcher that alone may suspend this session now' })
  suspendController(@Root() s: Session, @Ctx() ctx: Context): Promise<User | null> {
    return optional(ctx.loaders.users, s.suspendControllerId);
  }

  @FieldResolver(() => User, { nullable: true })
  suspendedBy(@Root() s: Session, @Ctx() ctx: Context): Promise<User | null> {
    return optional(ctx.loaders.users, s.suspendedById);
  }

  @FieldResolver(() => VmSnapshot, { nullable: true, description: 'snapshot restored into the current VM, if any' })
  restoredFrom(@Root() s: Session, @Ctx() ctx: Context): Promise<VmSnapshot | null> {
    return optional(ctx.loaders.snapshots, s.restoredFromId);
  }

  @FieldResolver(() => VmDataStaging, { nullable: true, description: 'NO_LOSS where the VMM keeps staged VM Data: the state as last staged while the session runs; null when none is' })
  vmDataStaged(@Root() s: Session, @Ctx() ctx: Context): Promise<VmDataStaging | null> {
    return ctx.services.snapshots.stagedOf(s.id);
  }

  @FieldResolver(() => [VmSnapshot])
  snapshots(@Root() s: Session, @Ctx() ctx: Context): Promise<VmSnapshot[]> {
    return ctx.services.snapshots.ofSession(s.id);
  }

  @FieldResolver(() => [SessionEvent])
  events(@Root() s: Session, @Arg('last', () => Int, { nullable: true, defaultValue: 50 }) last: number | null, @Ctx() ctx: Context): Promise<SessionEvent[]> {
    return ctx.loaders.lastEvents.load(lastEventsKey(s.id, last));
  }
}

@Resolver(() => SessionEvent)
export class SessionEventsResolver {
  @FieldResolver(() => User, { nullable: true })
  actor(@Root() e: SessionEvent, @Ctx() ctx: Context): Promise<User | null> {
    return optional(ctx.loaders.users, e.actorId);
  }
}
