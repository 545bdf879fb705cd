// Roles declared on resolvers: @Authorized() = any signed-in user, @Authorized('ADMIN'),
// @Authorized('STOREFRONT') = a storefront's API key (UVE-7). Refusals carry the contract's codes.
import type { AuthChecker } from 'type-graphql';
import { forbidden, unauthenticated } from './errors';
import type { Context } from './context';
import { isAdmin } from './access';

export type AuthRole = 'ADMIN' | 'STOREFRONT';

export const authChecker: AuthChecker<Context, AuthRole> = ({ context }, roles) => {
  const p = context.principal;
  if (!p) throw unauthenticated();
  if (roles.includes('STOREFRONT')) {
    if (p.kind !== 'storefront') throw forbidden('Only a storefront (API key from registerStorefront) may call this.');
    if (!p.storefront.enabled) throw forbidden(`Storefront ${p.storefront.name} is disabled; an admin can enable it again.`);
    return true;
  }
  if (p.kind !== 'user') throw keyOnlyForUve7();
  if (roles.includes('ADMIN') && !isAdmin(p.user)) throw forbidden('This needs the ADMIN role.');
  return true;
};

const keyOnlyForUve7 = () => forbidden('A storefront API key can only call UVE-7 operations (provideApplication).');

/** The signed-in user of a resolver that declared @Authorized() (checked before it runs). */
export function currentUser(ctx: Context) {
  if (!ctx.principal) throw unauthenticated();
  if (ctx.principal.kind !== 'user') throw keyOnlyForUve7();
  return ctx.principal.user;
}

/** The signed-in user with the token of this request (logout ends that token). */
export function currentAuth(ctx: Context) {
  if (ctx.principal?.kind !== 'user') throw unauthenticated();
  return { user: ctx.principal.user, token: ctx.principal.token };
}
