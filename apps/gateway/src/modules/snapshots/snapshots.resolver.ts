import { Arg, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { currentUser } from '../../common/auth-checker';
import type { Context } from '../../common/context';
import { optional, required } from '../../common/loaders';
import { Session } from '../sessions/sessions.entity';
import { Ua } from '../uas/uas.entity';
import { User } from '../users/users.entity';
import { Vm } from '../vms/vms.entity';
import { VmSnapshot } from './snapshots.entity';

@Resolver(() => VmSnapshot)
export class SnapshotsResolver {
  @Authorized()
  @Query(() => [VmSnapshot])
  mySnapshots(@Ctx() ctx: Context): Promise<VmSnapshot[]> {
    return ctx.services.snapshots.mine(currentUser(ctx).id);
  }

  @Authorized('ADMIN')
  @Query(() => [VmSnapshot])
  snapshots(
    @Arg('userId', () => ID, { nullable: true }) userId: string | null,
    @Arg('uaId', () => ID, { nullable: true }) uaId: string | null,
    @Arg('limit', () => Int, { nullable: true, defaultValue: 50 }) limit: number | null,
    @Arg('offset', () => Int, { nullable: true, defaultValue: 0 }) offset: number | null,
    @Ctx() ctx: Context,
  ): Promise<VmSnapshot[]> {
    return ctx.services.snapshots.list({ userId, uaId }, limit, offset);
  }

  @Authorized()
  @Mutation(() => Boolean)
  deleteSnapshot(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<boolean> {
    return ctx.services.snapshots.delete(currentUser(ctx), id);
  }

  @FieldResolver(() => User)
  user(@Root() s: VmSnapshot, @Ctx() ctx: Context): Promise<User> {
    return required(ctx.loaders.users, 'User', s.userId);
  }

  @FieldResolver(() => Ua)
  ua(@Root() s: VmSnapshot, @Ctx() ctx: Context): Promise<Ua> {
    return required(ctx.loaders.uas, 'UA', s.uaId);
  }

  @FieldResolver(() => Session, { nullable: true })
  session(@Root() s: VmSnapshot, @Ctx() ctx: Context): Promise<Session | null> {
    return s.sessionId ? ctx.services.sessions.findById(s.sessionId) : Promise.resolve(null);
  }

  @FieldResolver(() => Vm, { nullable: true })
  sourceVm(@Root() s: VmSnapshot, @Ctx() ctx: Context): Promise<Vm | null> {
    return optional(ctx.loaders.vms, s.sourceVmId);
  }
}
