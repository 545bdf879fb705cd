// Session tokens (UVE-3 hello): ES256 JWTs minted by the VMM, checked against the VMM's JWKS.
import { createRemoteJWKSet, jwtVerify, errors as joseErrors } from 'jose';
import { CLOSE, SESSION_TOKEN_AUDIENCE, SESSION_TOKEN_ISSUER, STREAM_ROLES, type SessionTokenClaims, type StreamRole } from '@uve/protocol';

export class AuthError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface TokenVerifier {
  verify(token: string): Promise<SessionTokenClaims>;
  /** fetches the keys ahead of the first UC, so its hello does not wait for them */
  warm?(): Promise<void>;
}

// jose errors that mean "this token is not acceptable" (as opposed to "cannot check now")
const TOKEN_ERRORS = new Set([
  'ERR_JWT_EXPIRED', 'ERR_JWT_CLAIM_VALIDATION_FAILED', 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'ERR_JWS_INVALID',
  'ERR_JWT_INVALID', 'ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWKS_MULTIPLE_MATCHING_KEYS', 'ERR_JOSE_ALG_NOT_ALLOWED', 'ERR_JOSE_NOT_SUPPORTED',
]);

export function checkClaims(payload: Record<string, unknown>, vmId: string): SessionTokenClaims {
  const s = (k: string): string => {
    const v = payload[k];
    if (typeof v !== 'string' || v === '') throw new AuthError(CLOSE.UNAUTHORIZED, `session token has no ${k} claim`);
    return v;
  };
  const claims = { sub: s('sub'), sid: s('sid'), vm: s('vm'), ua: s('ua'), role: s('role') as StreamRole };
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
