import type { StreamRole } from './enums';

/** Audience and issuer of the short-lived session token the VMM mints and the VM verifies (ES256). */
export const SESSION_TOKEN_AUDIENCE = 'uve-vm';
export const SESSION_TOKEN_ISSUER = 'uve-vmm';
/** Path under the gateway's base URL where VMs fetch the public keys (JWKS) that verify session tokens. */
export const JWKS_PATH = '/.well-known/jwks.json';

/** Claims of a session token (JWT). `sub` is the user id. */
export interface SessionTokenClaims {
  sub: string;
  /** session id */
  sid: string;
  /** VM id the token is valid on */
  vm: string;
  /** UA id */
  ua: string;
  role: StreamRole;
}
