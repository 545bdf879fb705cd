// UVE-7 UA procurement (seed 7.3.1.2.1, 7.3.2.2): a storefront (or an admin on its behalf) provides
// an application; the VMM records UA, version and procurement, selects the ready VMs of the
// platform and directs them over UVE-2 to download the package from the storefront. The VMs'
// deployment reports move the procurement REQUESTED -> VM_SELECTED -> DOWNLOADING -> DEPLOYED or
// FAILED (with the VM's reason), and make the version AVAILABLE in the catalog once one VM has it.
import { In, type DataSource, type EntityManager, type FindOptionsWhere, type Repository } from 'typeorm';
import type { DeploymentChanged } from '@uve/protocol';
import { badInput, conflict } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { UvePubSub } from '../../common/pubsub';
import type { Transactions } from '../../common/unit-of-work';
import type { ProcurementStatus } from './procurements.enums';
import { page } from '../users/users.service';
import type { Storefront } from '../storefronts/storefronts.entity';
import { Ua, UaDeployment, UaVersion, type UaVersionMetadata } from '../uas/uas.entity';
import type { UasService } from '../uas/uas.service';
import type { ProvideApplicationInput } from './procurements.inputs';
import { Procurement } from './procurements.entity';

/** what a VM will download at most (the agent's own cap, fetch-package.ts) */
export const MAX_PACKAGE_BYTES = 256 * 1024 * 1024;
const OPEN: ProcurementStatus[] = ['REQUESTED', 'VM_SELECTED', 'DOWNLOADING'];

/**
 * Resolves a package path against the storefront. Only http(s), and only on the storefront's own
 * origin: a VM downloads from nowhere else (it checks again, redirects included).
 */
export function resolvePackageUrl(packageUrl: string, baseUrl: string): string {
  let u: URL;
  try {
    u = new URL(packageUrl, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  } catch {
    throw badInput('packageUrl is neither a URL nor a path.', 'packageUrl');
  }
  if (!['http:', 'https:'].includes(u.protocol)) throw badInput('packageUrl must be an http(s) URL or a path on the storefront.', 'packageUrl');
  const origin = new URL(baseUrl).origin;
  if (u.origin !== origin) throw badInput(`packageUrl must be on the storefront's origin ${origin} (got ${u.origin}).`, 'packageUrl');
  return u.toString();
}

export class ProcurementsService {
  private readonly repo: Repository<Procurement>;

  constructor(
    private readonly ds: DataSource,
    private readonly txs: Transactions,
    private readonly pubsub: UvePubSub,
    private readonly uas: UasService,
    private readonly log: Logger,
  ) {
    this.repo = ds.getRepository(Procurement);
  }

  async provide(storefront: Storefront, input: ProvideApplicationInput, requestedById: string | null): Promise<Procurement> {
    const packageUrl = resolvePackageUrl(input.packageUrl, storefront.baseUrl);
    if (input.sizeBytes > MAX_PACKAGE_BYTES) throw badInput(`sizeBytes is more than the ${MAX_PACKAGE_BYTES} bytes a VM downloads.`, 'sizeBytes');
    const procurement = await this.txs.run(async (uow) => {
      const { em } = uow;
      const { ua, version, existing } = await this.record(em, storefront, input, packageUrl);
      // the same app and version again: the procurement under way (or done) is the answer
      if (existing) return existing;
      let p = await em.save(em.create(Procurement, {
        storefrontId: storefront.id, storefrontAppId: input.storefrontAppId, version: input.version,
        uaId: ua.id, vmId: null, requestedById, status: 'REQUESTED', error: null,
      }));
      const vms = await this.uas.readyVms(em, ua.platform);
      // none ready: REQUESTED until a VM of the platform joins (deployToNewVm)
      if (vms.length === 0) return p;
      for (const vm of vms) await this.uas.sendPackage(uow, vm.id, 'ua.deploy', ua, version);
      p = em.merge(Procurement, p, { status: 'VM_SELECTED', vmId: vms[0]!.id });
      return em.save(p);
    });
    this.pubsub.publish('PROCUREMENT', { id: procurement.id });
    return procurement;
  }

  /** UA and version rows; a version seen before is checked to be the same package. */
  private async record(em: EntityManager, storefront: Storefront, input: ProvideApplicationInput, packageUrl: string): Promise<{ ua: Ua; version: UaVersion; existing: Procurement | null }> {
    const sha256 = input.sha256.toLowerCase();
    // lock the UA row (if any) so two provides of one app serialise
    let ua = await em.findOne(Ua, { where: { storefrontId: storefront.id, storefrontAppId: input.storefrontAppId }, lock: { mode: 'pessimistic_write' } });
    if (ua && ua.platform !== input.platform) {
      throw conflict(`Application ${input.storefrontAppId} is a ${ua.platform} UA; a ${input.platform} package needs another storefrontAppId.`);
    }
    let version = ua ? await em.findOneBy(UaVersion, { uaId: ua.id, version: input.version }) : null;
    if (version && (version.sha256 !== sha256 || version.sizeBytes !== input.sizeBytes)) {
      throw conflict(`Version ${input.version} of ${input.storefrontAppId} was provided with another package; publish it as a new version.`);
    }
    // the same package at a new URL (a fresh download token): later deployments use the new one
    if (version && version.packageUrl !== packageUrl) {
      await em.update(UaVersion, version.id, { packageUrl });
      version = { ...version, packageUrl };
    }
    if (ua && version && version.status !== 'FAILED') {
      const existing = await em.findOne(Procurement, { where: { uaId: ua.id, version: input.version }, order: { createdAt: 'DESC' } });
      if (existing && existing.status !== 'FAILED') return { ua, version, existing };
    }
    const metadata: UaVersionMetadata = {
      name: input.name,
      requiredResources: [...new Set(input.requiredResources)],
      minScreenWidth: input.minScreenWidth ?? null,
      minScreenHeight: input.minScreenHeight ?? null,
    };
    // an existing UA keeps offering its current version (and how it looks) until this one is
    // deployed somewhere; a removed one comes back with it
    ua = ua
      ? em.merge(Ua, ua, { removedAt: null })
      : em.create(Ua, { storefrontId: storefront.id, storefrontAppId: input.storefrontAppId, platform: input.platform, currentVersion: input.version, removedAt: null, ...metadata });
    ua = await em.save(ua);
    if (version) {
      await em.update(UaVersion, version.id, { status: 'PENDING', error: null, metadata }); // a retry of a failed one
      version = { ...version, status: 'PENDING', error: null, metadata };
    } else {
      version = await em.save(em.create(UaVersion, { uaId: ua.id, version: input.version, packageUrl, sha256, sizeBytes: input.sizeBytes, status: 'PENDING', error: null, metadata }));
    }
    return { ua, version, existing: null };
  }

  /**
   * A VM's deployment report (after vms recorded it): moves the open procurements of that UA
   * version, and the catalog. INSTALLED on one VM makes the version AVAILABLE and, when it is the
   * newest, the one new sessions get; FAILED fails the procurement once no VM is still at it.
   */
  async onDeploymentChanged(m: DeploymentChanged): Promise<void> {
    const changed = await this.txs.run(async (uow) => {
      const { em } = uow;
      const ua = await em.findOne(Ua, { where: { id: m.uaId }, lock: { mode: 'pessimistic_write' } });
      const v = ua ? await em.findOneBy(UaVersion, { uaId: ua.id, version: m.version }) : null;
      if (!ua || !v) return [];
      const open = await em.findBy(Procurement, { uaId: ua.id, version: v.version, status: In(OPEN) });
      const move = async (status: ProcurementStatus, error: string | null): Promise<string[]> => {
        for (const p of open) await em.update(Procurement, p.id, { status, error, vmId: m.vmId });
        return open.map((p) => p.id);
      };
      switch (m.status) {
        case 'DOWNLOADING':
          return move('DOWNLOADING', null).then((ids) => ids.filter((id) => open.find((p) => p.id === id)?.status !== 'DOWNLOADING'));
        case 'INSTALLED': {
          if (v.status === 'FAILED') {
            // cancelled meanwhile (storefront disabled): not offered, and not kept on the VM
            const current = await em.findOneBy(UaVersion, { uaId: ua.id, version: ua.currentVersion, status: 'AVAILABLE' });
            if (current && current.id !== v.id) await this.uas.sendPackage(uow, m.vmId, 'ua.deploy', ua, current);
            else await this.uas.sendRemove(uow, m.vmId, ua.id, v.version);
            return [];
          }
          if (v.status !== 'AVAILABLE') await em.update(UaVersion, v.id, { status: 'AVAILABLE', error: null });
          const current = await em.findOneBy(UaVersion, { uaId: ua.id, version: ua.currentVersion });
          if (!current || current.status !== 'AVAILABLE' || current.createdAt < v.createdAt) await em.update(Ua, ua.id, { currentVersion: v.version, ...(v.metadata ?? {}) });
          return move('DEPLOYED', null);
        }
        case 'FAILED': {
          const reason = (m.error ?? 'the VM gave no reason').slice(0, 1000);
          const others = await em.countBy(UaDeployment, { uaId: ua.id, version: v.version, status: In(['PENDING', 'DOWNLOADING', 'INSTALLED']) });
          if (others > 0 || v.status === 'AVAILABLE') return [];
          await em.update(UaVersion, v.id, { status: 'FAILED', error: reason });
          return move('FAILED', reason);
        }
        default:
          return [];
      }
    });
    for (const id of changed) this.pubsub.publish('PROCUREMENT', { id });
  }

  /** A disabled storefront's procurements under way are cancelled (FAILED with the reason). */
  async cancelForStorefront(storefront: Storefront, reason: string): Promise<string[]> {
    const ids = await this.txs.run(async ({ em }) => {
      const open = await em.find(Procurement, { where: { storefrontId: storefront.id, status: In(OPEN) }, lock: { mode: 'pessimistic_write' } });
      for (const p of open) {
        await em.update(Procurement, p.id, { status: 'FAILED', error: reason });
        if (p.uaId) await em.update(UaVersion, { uaId: p.uaId, version: p.version, status: 'PENDING' }, { status: 'FAILED', error: reason });
      }
      return open.map((p) => p.id);
    });
    for (const id of ids) this.pubsub.publish('PROCUREMENT', { id });
    if (ids.length) this.log.info('procurements cancelled', { storefront: storefront.name, count: ids.length });
    return ids;
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
