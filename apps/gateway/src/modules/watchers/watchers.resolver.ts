import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { currentUser } from '../../common/auth-checker';
import type { Context } from '../../common/context';
import { WatcherPrivilegeEnum, type WatcherPrivilege } from './watchers.enums';
import { Session } from '../sessions/sessions.entity';
import { SessionConnection } from '../sessions/sessions.types';
import { User } from '../users/users.entity';
import { Monitoring, WatcherGrant } from './watchers.entity';

@Resolver(() => WatcherGrant)
export class WatcherGrantsResolver {
  @Authorized()
  @Query(() => [WatcherGrant])
  myWatcherGrants(@Ctx() ctx: Context): Promise<WatcherGrant[]> {
    return ctx.services.watchers.list({ watcherId: currentUser(ctx).id });
  }

  @Authorized('ADMIN')
  @Query(() => [WatcherGrant])
  watcherGrants(@Arg('watcheeId', () => ID, { nullable: true }) watcheeId: string | null, @Arg('watcherId', () => ID, { nullable: true }) watcherId: string | null, @Ctx() ctx: Context): Promise<WatcherGrant[]> {
    return ctx.services.watchers.list({ watcheeId, watcherId });
  }

  @Authorized('ADMIN')
  @Mutation(() => WatcherGrant)
  assignWatcher(@Arg('watcherId', () => ID) watcherId: string, @Arg('watcheeId', () => ID) watcheeId: string, @Arg('privileges', () => [WatcherPrivilegeEnum]) privileges: WatcherPrivilege[], @Ctx() ctx: Context): Promise<WatcherGrant> {
    return ctx.services.watchers.assign(watcherId, watcheeId, privileges);
  }

  @Authorized('ADMIN')
  @Mutation(() => WatcherGrant)
  updateWatcherPrivileges(@Arg('grantId', () => ID) grantId: string, @Arg('privileges', () => [WatcherPrivilegeEnum]) privileges: WatcherPrivilege[], @Ctx() ctx: Context): Promise<WatcherGrant> {
    return ctx.services.watchers.updatePrivileges(grantId, privileges);
  }

  @Authorized('ADMIN')
  @Mutation(() => Boolean)
  revokeWatcher(@Arg('grantId', () => ID) grantId: string, @Ctx() ctx: Context): Promise<boolean> {
    return ctx.services.watchers.revoke(grantId);
  }

  @FieldResolver(() => User)
  watcher(@Root() g: WatcherGrant, @Ctx() ctx: Context): Promise<User> {
    return ctx.services.users.get(g.watcherId);
  }

  @FieldResolver(() => User)
  watchee(@Root() g: WatcherGrant, @Ctx() ctx: Context): Promise<User> {
    return ctx.services.users.get(g.watcheeId);
  }
}

@Resolver(() => Monitoring)
export class MonitoringResolver {
  @Authorized()
  @Mutation(() => [Monitoring], { description: "Monitoring request for a watchee (a user); starts monitoring of each of the watchee's active sessions the grant allows" })
  requestMonitoring(@Arg('watcheeId', () => ID) watcheeId: string, @Ctx() ctx: Context): Promise<Monitoring[]> {
    return ctx.services.watchers.requestMonitoring(currentUser(ctx), watcheeId);
  }

  @Authorized()
  @Mutation(() => Monitoring)
  stopMonitoring(@Arg('monitoringId', () => ID) monitoringId: string, @Ctx() ctx: Context): Promise<Monitoring> {
    return ctx.services.watchers.stopMonitoring(currentUser(ctx), monitoringId);
  }

  @Authorized()
  @Mutation(() => Session, { description: 'pass the suspend control of a session to another watcher (or release it with toWatcherId null)' })
  transferSuspendControl(@Arg('sessionId', () => ID) sessionId: string, @Arg('toWatcherId', () => ID, { nullable: true }) toWatcherId: string | null, @Ctx() ctx: Context): Promise<Session> {
    return ctx.services.watchers.transferControl(currentUser(ctx), sessionId, toWatcherId ?? null);
  }

  @FieldResolver(() => Session)
  async session(@Root() m: Monitoring, @Ctx() ctx: Context): Promise<Session> {
    // the watcher keeps seeing the session of their own (ended) monitoring
    const own = m.watcherId === currentUser(ctx).id ? await ctx.services.sessions.findById(m.sessionId) : null;
    return own ?? ctx.services.sessions.getVisible(m.sessionId, currentUser(ctx));
  }

  @FieldResolver(() => User)
  watcher(@Root() m: Monitoring, @Ctx() ctx: Context): Promise<User> {
    return ctx.services.users.get(m.watcherId);
  }

  @FieldResolver(() => SessionConnection, { nullable: true, description: 'view-only UVE-3 connection for the watcher' })
  connection(@Root() m: Monitoring, @Ctx() ctx: Context): Promise<SessionConnection | null> {
    return ctx.services.watchers.connection(m, currentUser(ctx));
  }
}
