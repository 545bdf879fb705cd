import type { User } from '../modules/users/users.entity';
import type { AccessClaims } from '../modules/auth/keys.service';
import type { Storefront } from '../modules/storefronts/storefronts.entity';
import type { Services } from '../services';
import type { Loaders } from './loaders';

/** Who is calling: a user (token from login/register) or a storefront (API key, UVE-7). */
export type Principal = { kind: 'user'; user: User; token: AccessClaims } | { kind: 'storefront'; storefront: Storefront };

export interface Context {
  principal: Principal | null;
  services: Services;
  /** the caller's address, for per-address rate limits */
  clientIp: string;
  /** relations batched per request (common/loaders.ts) */
  loaders: Loaders;
}

/** Resolves the caller from an Authorization header value ("Bearer <jwt>" or "ApiKey <key>"). */
export async function resolvePrincipal(services: Services, authorization: string | undefined | null): Promise<Principal | null> {
  if (!authorization) return null;
  const [scheme, value] = authorization.trim().split(/\s+/, 2);
  if (!value) return null;
  if (/^bearer$/i.test(scheme!)) {
    const auth = await services.users.authenticate(value);
    return auth ? { kind: 'user', ...auth } : null;
  }
  if (/^apikey$/i.test(scheme!)) {
    const storefront = await services.storefronts.fromApiKey(value);
    return storefront ? { kind: 'storefront', storefront } : null;
  }
  return null;
}
