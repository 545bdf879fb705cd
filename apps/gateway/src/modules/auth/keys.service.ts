// Token signing for the VMM: login tokens (UVE-1) and short-lived session tokens that VMs verify
// (UVE-3) with the public key served as JWKS. One key pair in the database serves every gateway.
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK, type KeyLike } from 'jose';
import type { DataSource } from 'typeorm';
import { SESSION_TOKEN_AUDIENCE, SESSION_TOKEN_ISSUER, type SessionTokenClaims } from '@uve/protocol';
import { SigningKey } from './signing-key.entity';

const ALG = 'ES256';
const ACCESS_AUDIENCE = 'uve-api';

export interface AccessClaims {
  sub: string;
}

export class KeysService {
  private constructor(
    private readonly kid: string,
    private readonly privateKey: KeyLike | Uint8Array,
    private readonly publicKey: KeyLike | Uint8Array,
    private readonly publicJwk: JWK,
  ) {}

  /** Loads the key pair, creating it on the first start; concurrent first starts agree on one. */
  static async load(ds: DataSource): Promise<KeysService> {
    const repo = ds.getRepository(SigningKey);
    let row = await repo.findOne({ where: {}, order: { createdAt: 'ASC' } });
    if (!row) {
      const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
      const kid = randomUUID();
      await ds.query(
        `INSERT INTO signing_keys (kid, private_jwk, public_jwk) SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)`,
        [kid, await exportJWK(privateKey), await exportJWK(publicKey)],
      );
      row = await repo.findOneOrFail({ where: {}, order: { createdAt: 'ASC' } });
    }
    const publicJwk = { ...(row.publicJwk), kid: row.kid, alg: ALG, use: 'sig' };
    return new KeysService(row.kid, await importJWK(row.privateJwk, ALG), await importJWK(publicJwk, ALG), publicJwk);
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] };
  }

  async signAccessToken(userId: string, ttlSec: number): Promise<{ token: string; expiresAt: Date }> {
    const expiresAt = new Date(Date.now() + ttlSec * 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: ALG, kid: this.kid })
      .setSubject(userId)
      .setAudience(ACCESS_AUDIENCE)
      .setIssuer(SESSION_TOKEN_ISSUER)
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.privateKey);
    return { token, expiresAt };
  }

  /** Returns the user id, or null for any token that is not a valid, unexpired access token. */
  async verifyAccessToken(token: string): Promise<string | null> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, { audience: ACCESS_AUDIENCE, issuer: SESSION_TOKEN_ISSUER, algorithms: [ALG] });
      return typeof payload.sub === 'string' ? payload.sub : null;
    } catch {
      return null;
    }
  }

  async signSessionToken(claims: SessionTokenClaims, ttlSec: number): Promise<{ token: string; expiresAt: Date }> {
    const expiresAt = new Date(Date.now() + ttlSec * 1000);
    const { sub, ...rest } = claims;
    const token = await new SignJWT({ ...rest })
      .setProtectedHeader({ alg: ALG, kid: this.kid })
      .setSubject(sub)
      .setAudience(SESSION_TOKEN_AUDIENCE)
      .setIssuer(SESSION_TOKEN_ISSUER)
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.privateKey);
    return { token, expiresAt };
  }
}
