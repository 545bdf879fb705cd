// UVE-7 entry: a storefront (or an admin on its behalf) asks for one of its applications to be
// provided as a UA. This records the UA, its version and the procurement in one transaction; the
// download/deploy flow (VMM picks a VM, the VM fetches from the storefront) is the procurement issue.
import type { DataSource, EntityManager, FindOptionsWhere, Repository } from 'typeorm';
import { badInput, conflict } from '../../common/errors';
import type { UvePubSub } from '../../common/pubsub';
import type { ProcurementStatus } from '../../graphql/enums';
import { page } from '../users/users.service';
import type { Storefront } from '../storefronts/storefronts.entity';
import { Ua, UaVersion } from '../uas/uas.entity';
import type { ProvideApplicationInput } from './procurements.inputs';
import { Procurement } from './procurements.entity';

/** Resolves a package path against the storefront; only http(s) packages are accepted. */
export function resolvePackageUrl(packageUrl: string, baseUrl: string): string {
  let u: URL;
  try {
    u = new URL(packageUrl, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  } catch {
    throw badInput('packageUrl is neither a URL nor a path.', 'packageUrl');
  }
  if (!['http:', 'https:'].includes(u.protocol)) throw badInput('packageUrl must be an http(s) URL or a path on the storefront.', 'packageUrl');
  return u.toString();
}

export class ProcurementsService {
  private readonly repo: Repository<Procurement>;

  constructor(private readonly ds: DataSource, private readonly pubsub: UvePubSub) {
    this.repo = ds.getRepository(Procurement);
  }

  async provide(storefront: Storefront, input: ProvideApplicationInput, requestedById: string | null): Promise<Procurement> {
    const packageUrl = resolvePackageUrl(input.packageUrl, storefront.baseUrl);
    const procurement = await this.ds.transaction((em) => this.record(em, storefront, input, packageUrl, requestedById));
    this.pubsub.publish('PROCUREMENT', { id: procurement.id });
    return procurement;
  }

  private async record(em: EntityManager, storefront: Storefront, input: ProvideApplicationInput, packageUrl: string, requestedById: string | null): Promise<Procurement> {
    const sha256 = input.sha256.toLowerCase();
    // lock the UA row (if any) so two provides of one app serialise
    let ua = await em.findOne(Ua, { where: { storefrontId: storefront.id, storefrontAppId: input.storefrontAppId }, lock: { mode: 'pessimistic_write' } });
    if (ua && ua.platform !== input.platform) {
      throw conflict(`Application ${input.storefrontAppId} is a ${ua.platform} UA; a ${input.platform} package needs another storefrontAppId.`);
    }
    if (ua) {
      const existing = await em.findOneBy(UaVersion, { uaId: ua.id, version: input.version });
      if (existing && (existing.sha256 !== sha256 || existing.packageUrl !== packageUrl)) {
        throw conflict(`Version ${input.version} of ${input.storefrontAppId} was provided with another package; publish it as a new version.`);
      }
    }
    ua = em.merge(Ua, ua ?? em.create(Ua, { storefrontId: storefront.id, storefrontAppId: input.storefrontAppId, platform: input.platform }), {
      name: input.name,
      currentVersion: input.version,
      requiredResources: [...new Set(input.requiredResources)],
      minScreenWidth: input.minScreenWidth ?? null,
      minScreenHeight: input.minScreenHeight ?? null,
    });
    ua = await em.save(ua);
    await em.createQueryBuilder().insert().into(UaVersion)
      .values({ uaId: ua.id, version: input.version, packageUrl, sha256, sizeBytes: input.sizeBytes })
      .orIgnore().execute();
    return em.save(em.create(Procurement, {
      storefrontId: storefront.id,
      storefrontAppId: input.storefrontAppId,
      version: input.version,
      uaId: ua.id,
      vmId: null,
      requestedById,
      status: 'REQUESTED',
      error: null,
    }));
  }

  list(status: ProcurementStatus | null | undefined, limit: number | null, offset: number | null): Promise<Procurement[]> {
    const { take, skip } = page(limit, offset);
    const where: FindOptionsWhere<Procurement> = status ? { status } : {};
    return this.repo.find({ where, order: { createdAt: 'DESC' }, take, skip });
  }

  listForStorefront(storefrontId: string): Promise<Procurement[]> {
    return this.repo.find({ where: { storefrontId }, order: { createdAt: 'DESC' }, take: 200 });
  }

  findById(id: string): Promise<Procurement | null> {
    return this.repo.findOneBy({ id });
  }
}
