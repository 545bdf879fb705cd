import { randomBytes } from 'node:crypto';
import { ILike, type DataSource, type Repository } from 'typeorm';
import { badInput, conflict, notFound, isUuid, unauthenticated } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { Role } from '../../graphql/enums';
import type { KeysService } from '../auth/keys.service';
import { burnPasswordCheck, hashPassword, verifyPassword } from '../auth/passwords';
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

/** Lifetime of a token handed to a browser for its graphql-ws connection (it only has to open it). */
export const SUBSCRIPTION_TOKEN_TTL_SEC = 300;

export class UsersService {
  private readonly repo: Repository<User>;

  constructor(
    ds: DataSource,
    private readonly keys: KeysService,
    private readonly accessTokenTtlSec: number,
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

  async create(input: RegisterInput, role: Role): Promise<User> {
    const username = input.username.toLowerCase();
    if (await this.repo.existsBy({ username })) throw conflict(`The username ${username} is taken; choose another.`, { field: 'username' });
    const user = this.repo.create({ username, displayName: input.displayName ?? null, role, passwordHash: await hashPassword(input.password), equipment: null });
    try {
      return await this.repo.save(user);
    } catch (e) {
      // two registrations racing for one name: the unique index decides
      if ((e as { code?: string }).code === '23505') throw conflict(`The username ${username} is taken; choose another.`, { field: 'username' });
      throw e;
    }
  }

  async register(input: RegisterInput): Promise<AuthPayload> {
    return this.issue(await this.create(input, 'USER'));
  }

  async login(username: string, password: string): Promise<AuthPayload> {
    if (username.length > 64 || password.length > 256) throw unauthenticated('Wrong username or password.');
    const user = await this.repo.findOneBy({ username: username.toLowerCase() });
    if (!user) {
      await burnPasswordCheck(password);
      throw unauthenticated('Wrong username or password.');
    }
    if (!(await verifyPassword(password, user.passwordHash))) throw unauthenticated('Wrong username or password.');
    return this.issue(user);
  }

  /** A short-lived token for a signed-in user, so a web page can open a subscription without the login token. */
  issueSubscriptionToken(user: User): Promise<AuthPayload> {
    return this.issue(user, SUBSCRIPTION_TOKEN_TTL_SEC);
  }

  private async issue(user: User, ttlSec = this.accessTokenTtlSec): Promise<AuthPayload> {
    const { token, expiresAt } = await this.keys.signAccessToken(user.id, ttlSec);
    return { token, expiresAt, user };
  }

  /** The user behind a login token; the role is read fresh so a changed role applies at once. */
  async fromAccessToken(token: string): Promise<User | null> {
    const id = await this.keys.verifyAccessToken(token);
    return id ? this.findById(id) : null;
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
      if ((e as { extensions?: { code?: string } }).extensions?.code === 'CONFLICT') return; // another gateway created it
      throw e;
    }
    if (generated) process.stdout.write(`\nFirst admin created: username "${username}", password "${pw}" (shown once; set UVE_ADMIN_PASSWORD to choose it)\n\n`);
    log.info('first admin created', { username });
  }
}
