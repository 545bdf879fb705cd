import { randomBytes } from 'node:crypto';
import DataLoader from 'dataloader';
import { ILike, In, type DataSource, type Repository } from 'typeorm';
import { badInput, conflict, forbidden, notFound, isUuid, unauthenticated, UveError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { Role } from './users.enums';
import type { AccessClaims, KeysService } from '../auth/keys.service';
import { burnPasswordCheck, hashPassword, needsRehash, verifyPassword } from '../auth/passwords';
import type { RateLimits } from '../auth/rate-limits';
import { terminalData, type TerminalCapabilitiesInput } from './terminal.types';
import type { RegisterInput } from './users.inputs';
import { User } from './users.entity';

export interface AuthPayload {
  token: string;
  expiresAt: Date;
  user: User;
}

/** Validates paging arguments (null = the contract's defaults) and returns TypeORM's take/skip. */
export function page(limit: number | null, offset: number | null): { take: number; skip: number } {
  const take = limit ?? 50;
  const skip = offset ?? 0;
  if (!Number.isInteger(take) || take < 1 || take > 200) throw badInput('limit must be from 1 to 200.', 'limit');
  if (!Number.isInteger(skip) || skip < 0) throw badInput('offset must be 0 or more.', 'offset');
  return { take, skip };
}

export interface UsersServiceOptions {
  accessTokenTtlSec: number;
  registration: 'open' | 'closed';
}

/** A signed-in user and the token they signed in with. */
export interface Authenticated {
  user: User;
  token: AccessClaims;
}

/** Lifetime of a token handed to a browser for its graphql-ws connection (it only has to open it). */
export const SUBSCRIPTION_TOKEN_TTL_SEC = 300;

export class UsersService {
  private readonly repo: Repository<User>;
  /** told when tokens stop being valid before their expiry (open subscriptions are closed) */
  onTokensRevoked: (userId: string, jti: string | null) => void = () => undefined;
  /**
   * Reads of the moment batched across callers (never cached): an event fanned out to thousands
   * of subscriptions re-checks each subscriber in one query instead of one query per subscriber.
   */
  private readonly fresh = new DataLoader<string, User | null>(
    async (ids) => {
      const rows = await this.repo.findBy({ id: In([...new Set(ids)]) });
      const found = new Map(rows.map((u) => [u.id, u]));
      return ids.map((id) => found.get(id) ?? null);
    },
    { cache: false, maxBatchSize: 1000 },
  );
  /**
   * A login token's user and whether the token is revoked, read now, batched as `fresh`: one
   * statement for both (every request checks its token). Keys: `${userId} ${jti}`.
   */
  private readonly tokenCheck = new DataLoader<string, { user: User | null; revoked: boolean }>(
    async (keys) => {
      const pairs = keys.map((k) => k.split(' ') as [string, string]);
      const { entities, raw } = await this.repo
        .createQueryBuilder('u')
        .addSelect('ARRAY(SELECT r.jti::text FROM revoked_tokens r WHERE r.user_id = u.id AND r.jti = ANY(CAST(:jtis AS uuid[])))', 'revoked_jtis')
        .where('u.id IN (:...ids)', { ids: [...new Set(pairs.map(([id]) => id))], jtis: [...new Set(pairs.map(([, jti]) => jti))] })
        .getRawAndEntities<{ u_id: string; revoked_jtis: string[] }>();
      const revoked = new Set(raw.flatMap((r) => r.revoked_jtis.map((jti) => `${r.u_id} ${jti}`)));
      const users = new Map(entities.map((u) => [u.id, u]));
      return keys.map((k, i) => ({ user: users.get(pairs[i]![0]) ?? null, revoked: revoked.has(k) }));
    },
    { cache: false, maxBatchSize: 1000 },
  );

  constructor(
    private readonly ds: DataSource,
    private readonly keys: KeysService,
    private readonly limits: RateLimits,
    private readonly options: UsersServiceOptions,
  ) {
    this.repo = ds.getRepository(User);
  }

  async get(id: string): Promise<User> {
    const user = isUuid(id) ? await this.repo.findOneBy({ id }) : null;
    if (!user) throw notFound('User', id);
    return user;
  }

  findById(id: string): Promise<User | null> {
    return isUuid(id) ? this.repo.findOneBy({ id }) : Promise.resolve(null);
  }

  /** As findById, read now, but in one query with the other reads of this tick. */
  findFresh(id: string): Promise<User | null> {
    return isUuid(id) ? this.fresh.load(id) : Promise.resolve(null);
  }

  async create(input: RegisterInput, role: Role): Promise<User> {
    const username = input.username.toLowerCase();
    if (await this.repo.existsBy({ username })) throw conflict(`The username ${username} is taken; choose another.`, { field: 'username' });
    const user = this.repo.create({ username, displayName: input.displayName ?? null, role, passwordHash: await hashPassword(input.password), tokenGeneration: 0, equipment: null });
    try {
      return await this.repo.save(user);
    } catch (e) {
      // two registrations racing for one name: the unique index decides
      if ((e as { code?: string }).code === '23505') throw conflict(`The username ${username} is taken; choose another.`, { field: 'username' });
      throw e;
    }
  }

  async register(input: RegisterInput, clientIp: string): Promise<AuthPayload> {
    if (this.options.registration === 'closed') throw forbidden('Registration is closed on this platform; ask an administrator for an account.');
    await this.limits.consume('register-ip', clientIp);
    return this.issue(await this.create(input, 'USER'));
  }

  async login(username: string, password: string, clientIp: string): Promise<AuthPayload> {
    if (username.length > 64 || password.length > 256) throw unauthenticated('Wrong username or password.');
    const name = username.toLowerCase();
    // before the (deliberately slow) hash: a flood is refused without costing scrypt time
    await this.limits.consume('login-ip', clientIp);
    await this.limits.consume('login-user', name);
    const user = await this.repo.findOneBy({ username: name });
    if (!user) {
      await burnPasswordCheck(password);
      throw unauthenticated('Wrong username or password.');
    }
    if (!(await verifyPassword(password, user.passwordHash))) throw unauthenticated('Wrong username or password.');
    await this.limits.reset('login-user', name);
    if (needsRehash(user.passwordHash)) {
      user.passwordHash = await hashPassword(password);
      await this.repo.update(user.id, { passwordHash: user.passwordHash });
    }
    return this.issue(user);
  }

  /** A short-lived token for a signed-in user, so a web page can open a subscription without the login token. */
  issueSubscriptionToken(user: User): Promise<AuthPayload> {
    return this.issue(user, SUBSCRIPTION_TOKEN_TTL_SEC);
  }

  private async issue(user: User, ttlSec = this.options.accessTokenTtlSec): Promise<AuthPayload> {
    const { token, expiresAt } = await this.keys.signAccessToken(user.id, user.tokenGeneration, ttlSec);
    return { token, expiresAt, user };
  }

  /**
   * The user behind a login token and its claims: the token must verify, be of the user's current
   * generation and not logged out; the role is read fresh so a changed role applies at once.
   */
  async authenticate(token: string): Promise<Authenticated | null> {
    const claims = await this.keys.verifyAccessToken(token);
    if (!claims || !isUuid(claims.sub) || !isUuid(claims.jti)) return null;
    // read now (a revocation or a new token generation applies at once), in one query per tick for
    // all the requests arriving together
    const { user, revoked } = await this.tokenCheck.load(`${claims.sub} ${claims.jti}`);
    if (!user || revoked || claims.gen !== user.tokenGeneration) return null;
    return { user, token: claims };
  }

  async fromAccessToken(token: string): Promise<User | null> {
    return (await this.authenticate(token))?.user ?? null;
  }

  /** Ends the token the caller signed in with, at once, on every gateway. */
  async logout(auth: Authenticated): Promise<boolean> {
    await this.ds.query(
      `INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, to_timestamp($3)) ON CONFLICT DO NOTHING`,
      [auth.token.jti, auth.user.id, auth.token.exp],
    );
    await this.ds.query(`DELETE FROM revoked_tokens WHERE expires_at < now()`);
    this.onTokensRevoked(auth.user.id, auth.token.jti);
    return true;
  }

  /** Ends every token the user holds (admin: a stolen laptop, a leaver). */
  async revokeAllTokens(userId: string): Promise<User> {
    const user = await this.get(userId);
    await this.repo.increment({ id: user.id }, 'tokenGeneration', 1);
    this.onTokensRevoked(user.id, null);
    return this.get(userId);
  }

  async setRole(userId: string, role: Role): Promise<User> {
    const user = await this.get(userId);
    user.role = role;
    return this.repo.save(user);
  }

  async updateEquipment(user: User, terminal: TerminalCapabilitiesInput): Promise<User> {
    user.equipment = terminalData(terminal);
    await this.repo.update(user.id, { equipment: user.equipment });
    return user;
  }

  list(search: string | null | undefined, limit: number | null, offset: number | null): Promise<User[]> {
    const { take, skip } = page(limit, offset);
    if (search && search.length > 64) throw badInput('search is longer than 64 characters.', 'search');
    const like = search ? `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
    return this.repo.find({
      where: like ? [{ username: ILike(like) }, { displayName: ILike(like) }] : {},
      order: { createdAt: 'ASC' },
      take,
      skip,
    });
  }

  /** The first admin: from UVE_ADMIN_USERNAME/UVE_ADMIN_PASSWORD, or a random password printed once. */
  async ensureFirstAdmin(username: string, password: string | null, log: Logger): Promise<void> {
    if (await this.repo.existsBy({ role: 'ADMIN' })) return;
    const generated = password === null;
    const pw = password ?? randomBytes(12).toString('base64url');
    try {
      await this.create({ username, password: pw, displayName: 'Administrator' }, 'ADMIN');
    } catch (e) {
      if (e instanceof UveError && e.code === 'CONFLICT') return; // another gateway created it
      throw e;
    }
    if (generated) process.stdout.write(`\nFirst admin created: username "${username}", password "${pw}" (shown once; set UVE_ADMIN_PASSWORD to choose it)\n\n`);
    log.info('first admin created', { username });
  }
}
