// Session tokens (UVE-3 hello): ES256 JWTs minted by the VMM, checked against the VMM's JWKS.
import { createRemoteJWKSet, jwtVerify, errors as joseErrors } from 'jose';
import { CLOSE, SESSION_TOKEN_AUDIENCE, SESSION_TOKEN_ISSUER, STREAM_ROLES, type SessionTokenClaims, type StreamRole } from '@uve/protocol';

export class AuthError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = 'AuthError';
  }
}

/** Claims of a verified token: its id and expiry make it single-use (TokenReplayGuard). */
export interface VerifiedClaims extends SessionTokenClaims {
  jti: string;
  /** expiry, seconds since epoch */
  exp: number;
  /** issued at, seconds since epoch (absent when the token does not say) */
  iat?: number;
}

export interface TokenVerifier {
  verify(token: string): Promise<VerifiedClaims>;
  /** fetches the keys ahead of the first UC, so its hello does not wait for them */
  warm?(): Promise<void>;
}

// jose errors that mean "this token is not acceptable" (as opposed to "cannot check now")
const TOKEN_ERRORS = new Set([
  'ERR_JWT_EXPIRED', 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'ERR_JWS_INVALID',
  'ERR_JWT_INVALID', 'ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWKS_MULTIPLE_MATCHING_KEYS', 'ERR_JOSE_ALG_NOT_ALLOWED', 'ERR_JOSE_NOT_SUPPORTED',
]);

export function checkClaims(payload: Record<string, unknown>, vmId: string): VerifiedClaims {
  const s = (k: string): string => {
    const v = payload[k];
    if (typeof v !== 'string' || v === '') throw new AuthError(CLOSE.UNAUTHORIZED, `session token has no ${k} claim`);
    return v;
  };
  // a token without an id could be replayed unnoticed: refused
  if (typeof payload.exp !== 'number') throw new AuthError(CLOSE.UNAUTHORIZED, 'session token has no exp claim');
  const claims = { sub: s('sub'), sid: s('sid'), vm: s('vm'), ua: s('ua'), role: s('role') as StreamRole, jti: s('jti'), exp: payload.exp, ...(typeof payload.iat === 'number' ? { iat: payload.iat } : {}) };
  if (!STREAM_ROLES.includes(claims.role)) throw new AuthError(CLOSE.UNAUTHORIZED, `session token role must be one of ${STREAM_ROLES.join(', ')}`);
  if (claims.vm !== vmId) throw new AuthError(CLOSE.UNAUTHORIZED, `session token is for VM ${claims.vm}, not this VM`);
  return claims;
}

export function createTokenVerifier(jwksUrl: string, vmId: string): TokenVerifier {
  const jwks = createRemoteJWKSet(new URL(jwksUrl), { timeoutDuration: 5_000, cooldownDuration: 10_000, cacheMaxAge: 10 * 60_000 });
  return {
    async verify(token) {
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(token, jwks, { audience: SESSION_TOKEN_AUDIENCE, issuer: SESSION_TOKEN_ISSUER, algorithms: ['ES256'] }));
      } catch (e) {
        const code = (e as { code?: string }).code ?? '';
        if (e instanceof joseErrors.JOSEError && TOKEN_ERRORS.has(code)) throw new AuthError(CLOSE.UNAUTHORIZED, `invalid session token: ${e.message}`);
        // The keys could not be fetched: not the UC's fault, it may try again.
        throw new AuthError(CLOSE.INTERNAL, `cannot verify the session token now: ${(e as Error).message}`);
      }
      return checkClaims(payload, vmId);
    },
    warm: () => jwks.reload(),
  };
}

/**
 * Session tokens are single-use: each token's `jti` is remembered until the token expires, and a
 * second hello with it is refused. Expired ids are swept as new ones come, so memory follows the
 * number of tokens alive (bounded by the token lifetime times the connect rate).
 */
export class TokenReplayGuard {
  private readonly seen = new Map<string, number>();
  private nextSweep = 0;

  /** Records the use of a token; throws AuthError when it was used before. */
  use(claims: Pick<VerifiedClaims, 'jti' | 'exp'>, now = Date.now()): void {
    if (now >= this.nextSweep) {
      for (const [jti, until] of this.seen) if (until <= now) this.seen.delete(jti);
      this.nextSweep = now + 10_000;
    }
    if (this.seen.has(claims.jti)) throw new AuthError(CLOSE.UNAUTHORIZED, 'session token already used: ask the VMM for a fresh one');
    this.seen.set(claims.jti, claims.exp * 1000);
  }

  get size(): number {
    return this.seen.size;
  }
}
