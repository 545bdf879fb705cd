// Token signing for the VMM: login tokens (UVE-1) and short-lived session tokens that VMs verify
// (UVE-3) with the public keys served as JWKS. The key pairs live in the database so every gateway
// signs and verifies alike. Keys rotate: the newest signs, the newest two verify (so tokens signed
// just before a rotation stay good), JWKS serves both; a gateway that meets a key id it does not
// know reloads the keys (another gateway rotated).
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK, type JWTHeaderParameters, type KeyLike } from 'jose';
import type { DataSource } from 'typeorm';
import { SESSION_TOKEN_AUDIENCE, SESSION_TOKEN_ISSUER, type SessionTokenClaims } from '@uve/protocol';
import type { Logger } from '../../common/logger';
import { SigningKey } from './signing-key.entity';

const ALG = 'ES256';
const ACCESS_AUDIENCE = 'uve-api';
/** how many of the newest keys verify (and are published) */
const LIVE_KEYS = 2;
const ROTATION_LOCK = 7_426_003;
/** access tokens remembered as verified (the ECDSA check is a request's costliest step after the database) */
const VERIFIED_CACHE_SIZE = 10_000;

export interface AccessClaims {
  sub: string;
  /** token id, for logout */
  jti: string;
  /** the user's token generation when issued: revoking all of a user's tokens bumps it */
  gen: number;
  /** seconds since the epoch */
  exp: number;
}

interface LoadedKey {
  kid: string;
  privateKey: KeyLike | Uint8Array;
  publicKey: KeyLike | Uint8Array;
  publicJwk: JWK;
  createdAt: Date;
}

export class KeysService {
  private keys: LoadedKey[] = [];
  private reloading: Promise<void> | null = null;
  private lastReload = 0;
  /** token -> its claims and key id, for tokens whose signature verified (oldest dropped first) */
  private readonly verified = new Map<string, { claims: AccessClaims; kid: string }>();
  private timer: NodeJS.Timeout | null = null;

  private constructor(private readonly ds: DataSource) {}

  /** Loads the key pairs, creating the first on the first start; concurrent first starts agree on one. */
  static async load(ds: DataSource): Promise<KeysService> {
    const k = new KeysService(ds);
    if (!(await ds.getRepository(SigningKey).exists())) {
      await k.insertKey(`WHERE NOT EXISTS (SELECT 1 FROM signing_keys)`);
    }
    await k.reload();
    return k;
  }

  private async insertKey(condition: string): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
    await this.ds.query(
      `INSERT INTO signing_keys (kid, private_jwk, public_jwk) SELECT $1, $2, $3 ${condition}`,
      [randomUUID(), await exportJWK(privateKey), await exportJWK(publicKey)],
    );
  }

  /** Reads the newest keys again (after a rotation here or on another gateway). */
  reload(): Promise<void> {
    this.reloading ??= (async () => {
      const rows = await this.ds.getRepository(SigningKey).find({ order: { createdAt: 'DESC' }, take: LIVE_KEYS });
      this.keys = await Promise.all(rows.map(async (row) => {
        const publicJwk = { ...row.publicJwk, kid: row.kid, alg: ALG, use: 'sig' };
        return { kid: row.kid, privateKey: await importJWK(row.privateJwk, ALG), publicKey: await importJWK(publicJwk, ALG), publicJwk, createdAt: row.createdAt };
      }));
      this.lastReload = Date.now();
    })().finally(() => (this.reloading = null));
    return this.reloading;
  }

  private get current(): LoadedKey {
    return this.keys[0]!;
  }

  get currentKid(): string {
    return this.current.kid;
  }

  jwks(): { keys: JWK[] } {
    return { keys: this.keys.map((k) => k.publicJwk) };
  }

  /**
   * A new signing key; the previous one keeps verifying until the next rotation. Older keys are
   * deleted, so tokens signed with them stop verifying everywhere. Returns the new key id.
   */
  async rotate(): Promise<string> {
    await this.insertKey('');
    await this.ds.query(
      `DELETE FROM signing_keys WHERE kid NOT IN (SELECT kid FROM signing_keys ORDER BY created_at DESC LIMIT ${LIVE_KEYS})`,
    );
    await this.reload();
    return this.currentKid;
  }

  /** Rotates when the newest key is older than `maxAgeMs`; one gateway at a time decides. */
  async rotateIfDue(maxAgeMs: number, log: Logger): Promise<void> {
    await this.reload();
    if (Date.now() - this.current.createdAt.getTime() < maxAgeMs) return;
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    try {
      const [{ locked }] = await qr.query('SELECT pg_try_advisory_lock($1) AS locked', [ROTATION_LOCK]);
      if (!locked) return;
      try {
        await this.reload();
        if (Date.now() - this.current.createdAt.getTime() < maxAgeMs) return;
        log.info('signing key rotated on schedule', { kid: await this.rotate() });
      } finally {
        await qr.query('SELECT pg_advisory_unlock($1)', [ROTATION_LOCK]);
      }
    } finally {
      await qr.release();
    }
  }

  /** Checks for a due rotation now and every hour. */
  startRotationSchedule(maxAgeMs: number, log: Logger): void {
    const check = () => this.rotateIfDue(maxAgeMs, log).catch((e: Error) => log.warn('signing key rotation check failed', { error: e.message }));
    void check();
    this.timer = setInterval(check, 3600_000);
    this.timer.unref();
  }

  stopRotationSchedule(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async keyFor(header: JWTHeaderParameters): Promise<KeyLike | Uint8Array> {
    let key = this.keys.find((k) => k.kid === header.kid);
    // a key id we do not know: another gateway may have rotated. Reloaded at most once a second, so
    // forged key ids cannot hammer the database (a token signed in the second after a rotation
    // elsewhere is refused once; 5 s refused admins' fresh tokens on a second gateway in tests)
    if (!key && Date.now() - this.lastReload > 1_000) {
      await this.reload();
      key = this.keys.find((k) => k.kid === header.kid);
    }
    if (!key) throw new Error('unknown signing key');
    return key.publicKey;
  }

  async signAccessToken(userId: string, generation: number, ttlSec: number): Promise<{ token: string; expiresAt: Date; jti: string }> {
    const expiresAt = new Date(Date.now() + ttlSec * 1000);
    const jti = randomUUID();
    const token = await new SignJWT({ gen: generation })
      .setProtectedHeader({ alg: ALG, kid: this.current.kid })
      .setSubject(userId)
      .setJti(jti)
      .setAudience(ACCESS_AUDIENCE)
      .setIssuer(SESSION_TOKEN_ISSUER)
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.current.privateKey);
    return { token, expiresAt, jti };
  }

  /** The claims of a valid, unexpired access token signed by a live key; null for anything else. */
  async verifyAccessToken(token: string): Promise<AccessClaims | null> {
    const known = this.verified.get(token);
    if (known) {
      // good until it expires or its key is rotated out; user and revocation are read per request regardless
      if (known.claims.exp * 1000 > Date.now() && this.keys.some((k) => k.kid === known.kid)) return known.claims;
      this.verified.delete(token);
    }
    try {
      const { payload, protectedHeader } = await jwtVerify(token, (h) => this.keyFor(h), { audience: ACCESS_AUDIENCE, issuer: SESSION_TOKEN_ISSUER, algorithms: [ALG] });
      if (typeof payload.sub !== 'string' || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return null;
      const claims = { sub: payload.sub, jti: payload.jti, gen: typeof payload.gen === 'number' ? payload.gen : 0, exp: payload.exp };
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { claims, kid: protectedHeader.kid! });
      return claims;
    } catch {
      return null;
    }
  }

  async signSessionToken(claims: SessionTokenClaims, ttlSec: number): Promise<{ token: string; expiresAt: Date }> {
    const expiresAt = new Date(Date.now() + ttlSec * 1000);
    const { sub, ...rest } = claims;
    const token = await new SignJWT({ ...rest })
      .setProtectedHeader({ alg: ALG, kid: this.current.kid })
      .setSubject(sub)
      // single use: the VM remembers the id until the token expires
      .setJti(randomUUID())
      .setAudience(SESSION_TOKEN_AUDIENCE)
      .setIssuer(SESSION_TOKEN_ISSUER)
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.current.privateKey);
    return { token, expiresAt };
  }
}
