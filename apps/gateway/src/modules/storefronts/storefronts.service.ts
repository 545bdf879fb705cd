import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { DataSource, Repository } from 'typeorm';
import { badInput, conflict, isUuid, notFound } from '../../common/errors';
import { Storefront } from './storefronts.entity';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** API keys look like `sfk.<storefront id>.<secret>`: the id finds the row, only the secret's hash is stored. */
function parseApiKey(key: string): { id: string; secret: string } | null {
  const [tag, id, secret] = key.split('.');
  return tag === 'sfk' && id && secret && isUuid(id) && secret.length <= 128 ? { id, secret } : null;
}

export function checkBaseUrl(baseUrl: string): string {
  let u: URL;
  try {
    u = new URL(baseUrl);
  } catch {
    throw badInput('baseUrl must be an absolute http(s) URL.', 'baseUrl');
  }
  if (!['http:', 'https:'].includes(u.protocol) || baseUrl.length > 2048) throw badInput('baseUrl must be an http(s) URL of at most 2048 characters.', 'baseUrl');
  return u.toString();
}

export class StorefrontsService {
  private readonly repo: Repository<Storefront>;
  private readonly disabledListeners: ((s: Storefront) => Promise<void>)[] = [];

  constructor(ds: DataSource) {
    this.repo = ds.getRepository(Storefront);
  }

  async get(id: string): Promise<Storefront> {
    const s = isUuid(id) ? await this.repo.findOneBy({ id }) : null;
    if (!s) throw notFound('Storefront', id);
    return s;
  }

  findById(id: string): Promise<Storefront | null> {
    return isUuid(id) ? this.repo.findOneBy({ id }) : Promise.resolve(null);
  }

  async register(name: string, baseUrl: string): Promise<{ storefront: Storefront; apiKey: string }> {
    const trimmed = name.trim();
    if (trimmed.length < 1 || trimmed.length > 128) throw badInput('name must have 1 to 128 characters.', 'name');
    const url = checkBaseUrl(baseUrl);
    if (await this.repo.existsBy({ name: trimmed })) throw conflict(`A storefront named ${trimmed} exists already.`, { field: 'name' });
    const id = randomUUID();
    const secret = randomBytes(32).toString('base64url');
    const storefront = await this.repo.save(this.repo.create({ id, name: trimmed, baseUrl: url, enabled: true, apiKeyHash: sha256(secret) }));
    return { storefront, apiKey: `sfk.${id}.${secret}` };
  }

  /** told when an admin disables a storefront (its procurements under way are cancelled) */
  onDisabled(listener: (s: Storefront) => Promise<void>): void {
    this.disabledListeners.push(listener);
  }

  /** The enabled storefront the key belongs to; a disabled storefront's key stops working at once. */
  async fromApiKey(key: string): Promise<Storefront | null> {
    const parsed = parseApiKey(key);
    if (!parsed) return null;
    const s = await this.repo.findOneBy({ id: parsed.id });
    if (!s) return null;
    const ok = timingSafeEqual(Buffer.from(s.apiKeyHash, 'hex'), Buffer.from(sha256(parsed.secret), 'hex'));
    return ok && s.enabled ? s : null;
  }

  async setEnabled(id: string, enabled: boolean): Promise<Storefront> {
    const s = await this.get(id);
    const was = s.enabled;
    s.enabled = enabled;
    const saved = await this.repo.save(s);
    if (was && !enabled) for (const l of this.disabledListeners) await l(saved);
    return saved;
  }

  list(): Promise<Storefront[]> {
    return this.repo.find({ order: { createdAt: 'ASC' } });
  }
}
