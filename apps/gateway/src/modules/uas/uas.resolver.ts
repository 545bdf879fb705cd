import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { NO_LOSS_SCOPE, type NoLossScope, type Platform } from '@uve/protocol';
import { forbidden } from '../../common/errors';
import { currentUser } from '../../common/auth-checker';
import type { Context } from '../../common/context';
import { required } from '../../common/loaders';
import { NoLossScopeEnum, PlatformEnum } from '../../common/enums';
import { Storefront } from '../storefronts/storefronts.entity';
import { Vm } from '../vms/vms.entity';
import { Ua, UaDeployment, UaVersion } from './uas.entity';
import { isAdmin } from '../../common/access';

@Resolver(() => Ua)
export class UasResolver {
  @Authorized()
  @Query(() => [Ua], { description: 'applications a user may request (admins: every UA, pending and removed ones too)' })
  uas(@Arg('platform', () => PlatformEnum, { nullable: true }) platform: Platform | null, @Ctx() ctx: Context): Promise<Ua[]> {
    return ctx.services.uas.list(platform, isAdmin(currentUser(ctx)));
  }

  @Authorized()
  @Query(() => Ua, { nullable: true })
  ua(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Ua> {
    return ctx.services.uas.get(id);
  }

  @Authorized('ADMIN')
  @Mutation(() => [UaDeployment])
  deployUa(@Arg('uaId', () => ID) uaId: string, @Arg('vmId', () => ID, { nullable: true }) vmId: string | null, @Arg('version', () => String, { nullable: true }) version: string | null, @Ctx() ctx: Context): Promise<UaDeployment[]> {
    return ctx.services.uas.deploy(uaId, vmId, version);
  }

  @Authorized('ADMIN')
  @Mutation(() => [UaDeployment])
  updateUa(@Arg('uaId', () => ID) uaId: string, @Arg('version') version: string, @Ctx() ctx: Context): Promise<UaDeployment[]> {
    return ctx.services.uas.update(uaId, version);
  }

  @Authorized('ADMIN')
  @Mutation(() => [UaDeployment])
  removeUa(@Arg('uaId', () => ID) uaId: string, @Arg('vmId', () => ID, { nullable: true }) vmId: string | null, @Ctx() ctx: Context): Promise<UaDeployment[]> {
    return ctx.services.uas.remove(uaId, vmId);
  }

  @FieldResolver(() => NoLossScopeEnum, { description: 'what NO_LOSS reconnection gives for this UA (its platform decides)' })
  noLoss(@Root() ua: Ua): NoLossScope {
    return NO_LOSS_SCOPE[ua.platform];
  }

  @FieldResolver(() => [UaVersion])
  versions(@Root() ua: Ua, @Ctx() ctx: Context): Promise<UaVersion[]> {
    return ctx.services.uas.versions(ua.id);
  }

  @FieldResolver(() => Storefront, { nullable: true })
  storefront(@Root() ua: Ua, @Ctx() ctx: Context): Promise<Storefront | null> {
    return ua.storefrontId ? ctx.services.storefronts.findById(ua.storefrontId) : Promise.resolve(null);
  }

  @FieldResolver(() => [UaDeployment])
  deployments(@Root() ua: Ua, @Ctx() ctx: Context): Promise<UaDeployment[]> {
    if (!isAdmin(currentUser(ctx))) throw forbidden('Deployments are visible to admins.');
    return ctx.services.uas.deploymentsOf(ua.id);
  }
}

@Resolver(() => UaDeployment)
export class UaDeploymentsResolver {
  @FieldResolver(() => Ua)
  ua(@Root() d: UaDeployment, @Ctx() ctx: Context): Promise<Ua> {
    return required(ctx.loaders.uas, 'UA', d.uaId);
  }

  @FieldResolver(() => Vm)
  vm(@Root() d: UaDeployment, @Ctx() ctx: Context): Promise<Vm> {
    return required(ctx.loaders.vms, 'VM', d.vmId);
  }
}
