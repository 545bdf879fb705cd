import { Arg, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import { conflict } from '../../common/errors';
import type { ProcurementPayload } from '../../common/pubsub';
import { currentUser } from '../../common/auth-checker';
import type { Context } from '../../common/context';
import { optional } from '../../common/loaders';
import { ProcurementStatusEnum, type ProcurementStatus } from './procurements.enums';
import { adminOnlyStream } from '../../common/subscriptions';
import { Storefront } from '../storefronts/storefronts.entity';
import { Ua } from '../uas/uas.entity';
import { Vm } from '../vms/vms.entity';
import { ProvideApplicationInput } from './procurements.inputs';
import { Procurement } from './procurements.entity';

@Resolver(() => Procurement)
export class ProcurementsResolver {
  @Authorized('STOREFRONT')
  @Mutation(() => Procurement)
  provideApplication(@Arg('input', () => ProvideApplicationInput) input: ProvideApplicationInput, @Ctx() ctx: Context): Promise<Procurement> {
    if (ctx.principal?.kind !== 'storefront') throw new Error('unreachable: checked by @Authorized');
    return ctx.services.procurements.provide(ctx.principal.storefront, input, null);
  }

  @Authorized('ADMIN')
  @Mutation(() => Procurement, { description: 'admin-initiated procurement of one storefront application (same flow as provideApplication)' })
  async procureApplication(@Arg('storefrontId', () => ID) storefrontId: string, @Arg('input', () => ProvideApplicationInput) input: ProvideApplicationInput, @Ctx() ctx: Context): Promise<Procurement> {
    const storefront = await ctx.services.storefronts.get(storefrontId);
    if (!storefront.enabled) throw conflict(`Storefront ${storefront.name} is disabled; enable it first.`);
    return ctx.services.procurements.provide(storefront, input, currentUser(ctx).id);
  }

  @Authorized('ADMIN')
  @Query(() => [Procurement])
  procurements(
    @Arg('status', () => ProcurementStatusEnum, { nullable: true }) status: ProcurementStatus | null,
    @Arg('limit', () => Int, { nullable: true, defaultValue: 50 }) limit: number | null,
    @Arg('offset', () => Int, { nullable: true, defaultValue: 0 }) offset: number | null,
    @Ctx() ctx: Context,
  ): Promise<Procurement[]> {
    return ctx.services.procurements.list(status, limit, offset);
  }

  @Subscription(() => Procurement, {
    description: 'admin',
    subscribe: ({ context }) => adminOnlyStream(context as Context, 'PROCUREMENT'),
  })
  async procurementUpdates(@Root() p: ProcurementPayload, @Ctx() ctx: Context): Promise<Procurement> {
    const row = await ctx.services.procurements.findById(p.id);
    if (!row) throw new Error(`procurement ${p.id} vanished`);
    return row;
  }

  @FieldResolver(() => Storefront)
  storefront(@Root() p: Procurement, @Ctx() ctx: Context): Promise<Storefront> {
    return ctx.services.storefronts.get(p.storefrontId);
  }

  @FieldResolver(() => Ua, { nullable: true })
  ua(@Root() p: Procurement, @Ctx() ctx: Context): Promise<Ua | null> {
    return optional(ctx.loaders.uas, p.uaId);
  }

  @FieldResolver(() => Vm, { nullable: true })
  vm(@Root() p: Procurement, @Ctx() ctx: Context): Promise<Vm | null> {
    return optional(ctx.loaders.vms, p.vmId);
  }
}
