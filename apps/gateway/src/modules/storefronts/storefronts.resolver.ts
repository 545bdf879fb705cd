import { Arg, Authorized, Ctx, Field, FieldResolver, ID, Mutation, ObjectType, Query, Resolver, Root } from 'type-graphql';
import { forbidden } from '../../common/errors';
import type { Context } from '../../common/context';
import { Procurement } from '../procurements/procurements.entity';
import { Storefront } from './storefronts.entity';
import { isAdmin } from '../../common/access';

@ObjectType({ description: 'Returned once, when a storefront is registered: the API key is not stored in clear.' })
class StorefrontCredentials {
  @Field(() => Storefront) storefront!: Storefront;
  @Field() apiKey!: string;
}

@Resolver(() => Storefront)
export class StorefrontsResolver {
  @Authorized('ADMIN')
  @Query(() => [Storefront])
  storefronts(@Ctx() ctx: Context): Promise<Storefront[]> {
    return ctx.services.storefronts.list();
  }

  @Authorized('ADMIN')
  @Mutation(() => StorefrontCredentials)
  registerStorefront(@Arg('name') name: string, @Arg('baseUrl') baseUrl: string, @Ctx() ctx: Context): Promise<StorefrontCredentials> {
    return ctx.services.storefronts.register(name, baseUrl);
  }

  @Authorized('ADMIN')
  @Mutation(() => Storefront)
  setStorefrontEnabled(@Arg('id', () => ID) id: string, @Arg('enabled') enabled: boolean, @Ctx() ctx: Context): Promise<Storefront> {
    return ctx.services.storefronts.setEnabled(id, enabled);
  }

  @FieldResolver(() => [Procurement])
  procurements(@Root() storefront: Storefront, @Ctx() ctx: Context): Promise<Procurement[]> {
    const p = ctx.principal;
    const allowed = (p?.kind === 'user' && isAdmin(p.user)) || (p?.kind === 'storefront' && p.storefront.id === storefront.id);
    if (!allowed) throw forbidden("Only admins and the storefront itself see a storefront's procurements.");
    return ctx.services.procurements.listForStorefront(storefront.id);
  }
}
