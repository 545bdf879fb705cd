// UVE-1 push: session events to whoever may see the session, and per-user notifications.
import { Arg, Ctx, Field, ID, ObjectType, Resolver, Root, Subscription } from 'type-graphql';
import type { NotificationPayload, SessionEventPayload } from '../../common/pubsub';
import type { Context } from '../../common/context';
import type { SessionEventType } from '../sessions/sessions.enums';
import { currentUser } from '../../common/auth-checker';
import { guardedStream, type Rule } from '../../common/subscriptions';
import { Invitation } from '../invitations/invitations.entity';
import { SessionEvent } from '../sessions/sessions.entity';
import { sessionEventPayload } from '../sessions/sessions.service';

@ObjectType({ description: 'What a user is told about: invitations to them, monitoring of them, their sessions\' changes.' })
class Notification {
  @Field() at!: Date;
  @Field(() => Invitation, { nullable: true }) invitation!: Invitation | null;
  @Field(() => SessionEvent, { nullable: true }) sessionEvent!: SessionEvent | null;
}

function toSessionEvent(p: SessionEventPayload): SessionEvent {
  return Object.assign(new SessionEvent(), { id: p.id, sessionId: p.sessionId, type: p.type as SessionEventType, actorId: p.actorId, at: new Date(p.at), data: p.data });
}

/** The session's owner (carried by the event), its watchers and participants, admins: as at the subscription's start. */
const mayViewSession: Rule<SessionEventPayload> = (user, p, services) => services.sessions.canView({ id: p.sessionId, userId: p.ownerId }, user);
/** a user's own notifications: being that user is enough */
const always: Rule<NotificationPayload> = () => true;

@Resolver()
export class NotificationsResolver {
  @Subscription(() => SessionEvent, {
    description: 'owner, its watchers and participants, admins',
    subscribe: async ({ args, context }) => {
      const ctx = context as Context;
      const session = await ctx.services.sessions.getVisible(args.sessionId as string, currentUser(ctx));
      const live = guardedStream(ctx, mayViewSession, 'SESSION_EVENT', session.id);
      if (!args.replay) return live;
      return live.withHistory(async () => (await ctx.services.sessions.events(session.id, 500)).map((e) => sessionEventPayload(e, session.userId)));
    },
  })
  sessionEvents(
    @Arg('sessionId', () => ID) _sessionId: string,
    @Arg('replay', () => Boolean, { nullable: true, defaultValue: false, description: 'first deliver the events recorded so far (up to 500), then live ones, with no gap' }) _replay: boolean | null,
    @Root() ev: SessionEventPayload,
  ): SessionEvent {
    return toSessionEvent(ev);
  }

  @Subscription(() => Notification, {
    description: 'invitations to me and events of my own sessions',
    subscribe: ({ context }) => {
      const ctx = context as Context;
      const me = currentUser(ctx);
      return guardedStream(ctx, always, 'NOTIFICATION', me.id);
    },
  })
  async notifications(@Root() n: NotificationPayload, @Ctx() ctx: Context): Promise<Notification> {
    const invitation = n.invitationId ? await ctx.services.invitations.findById(n.invitationId) : null;
    return { at: new Date(n.at), invitation, sessionEvent: n.sessionEvent ? toSessionEvent(n.sessionEvent) : null };
  }
}
