// UA management (seed 7.3.1.2.1): the catalogue, and deploy/update/remove on VMs over UVE-2.
import { In, type DataSource, type Repository } from 'typeorm';
import type { DeployUaCommand, Platform } from '@uve/protocol';
import type { Transactions } from '../../common/unit-of-work';
import { badInput, conflict, isUuid, notFound } from '../../common/errors';
import { Vm } from '../vms/vms.entity';
import { Ua, UaDeployment, UaVersion } from './uas.entity';

export class UasService {
  private readonly repo: Repository<Ua>;

  constructor(private readonly ds: DataSource, private readonly txs: Transactions) {
    this.repo = ds.getRepository(Ua);
  }

  async get(id: string): Promise<Ua> {
    const ua = isUuid(id) ? await this.repo.findOneBy({ id }) : null;
    if (!ua) throw notFound('UA', id);
    return ua;
  }

  findById(id: string): Promise<Ua | null> {
    return isUuid(id) ? this.repo.findOneBy({ id }) : Promise.resolve(null);
  }

  list(platform: Platform | null | undefined): Promise<Ua[]> {
    return this.repo.find({ where: platform ? { platform } : {}, order: { name: 'ASC' } });
  }

  versions(uaId: string): Promise<UaVersion[]> {
    return this.ds.getRepository(UaVersion).find({ where: { uaId }, order: { createdAt: 'DESC' } });
  }

  deploymentsOf(uaId: string): Promise<UaDeployment[]> {
    return this.ds.getRepository(UaDeployment).find({ where: { uaId }, order: { updatedAt: 'DESC' } });
  }

  private async version(ua: Ua, version: string): Promise<UaVersion> {
    const v = await this.ds.getRepository(UaVersion).findOneBy({ uaId: ua.id, version });
    if (!v) throw notFound(`Version of ${ua.name}`, version);
    return v;
  }

  /** Target VMs: the one named (it must run the UA's platform) or every running VM of the platform. */
  private async targets(ua: Ua, vmId: string | null | undefined): Promise<Vm[]> {
    const repo = this.ds.getRepository(Vm);
    if (vmId) {
      const vm = isUuid(vmId) ? await repo.findOneBy({ id: vmId }) : null;
      if (!vm) throw notFound('VM', vmId);
      if (vm.platform !== ua.platform) throw badInput(`VM ${vm.name} runs ${vm.platform}; ${ua.name} needs ${ua.platform}.`, 'vmId');
      if (vm.status === 'OFFLINE' || vm.status === 'FAILED') throw conflict(`VM ${vm.name} is ${vm.status}.`);
      return [vm];
    }
    return repo.findBy({ platform: ua.platform, status: In(['IDLE', 'DRAINING']) });
  }

  async deploy(uaId: string, vmId: string | null | undefined, version: string | null | undefined): Promise<UaDeployment[]> {
    const ua = await this.get(uaId);
    const v = await this.version(ua, version ?? ua.currentVersion);
    const vms = await this.targets(ua, vmId);
    await this.txs.run(async (uow) => {
      for (const vm of vms) {
        await uow.em.upsert(UaDeployment, { uaId: ua.id, vmId: vm.id, version: v.version, status: 'PENDING', error: null }, ['uaId', 'vmId']);
        await uow.command(vm.id, packageCommand('ua.deploy', ua, v));
      }
    });
    const repo = this.ds.getRepository(UaDeployment);
    return repo.findBy({ uaId: ua.id, vmId: In(vms.map((vm) => vm.id)) });
  }

  /** Makes `version` the one new sessions get and moves every VM that has the UA to it. */
  async update(uaId: string, version: string): Promise<UaDeployment[]> {
    const ua = await this.get(uaId);
    const v = await this.version(ua, version);
    await this.txs.run(async (uow) => {
      const { em } = uow;
      await em.update(Ua, ua.id, { currentVersion: v.version });
      const deployed = await em.findBy(UaDeployment, { uaId: ua.id, status: In(['INSTALLED', 'PENDING', 'DOWNLOADING']) });
      for (const d of deployed) {
        await em.update(UaDeployment, d.id, { version: v.version, status: 'PENDING', error: null });
        await uow.command(d.vmId, packageCommand('ua.update', ua, v));
      }
    });
    return this.ds.getRepository(UaDeployment).findBy({ uaId: ua.id });
  }

  async remove(uaId: string, vmId: string | null | undefined): Promise<UaDeployment[]> {
    const ua = await this.get(uaId);
    const repo = this.ds.getRepository(UaDeployment);
    const where = vmId ? { uaId: ua.id, vmId } : { uaId: ua.id };
    if (vmId && !isUuid(vmId)) throw notFound('VM', vmId);
    const deployments = (await repo.findBy(where)).filter((d) => d.status !== 'REMOVED');
    await this.txs.run(async (uow) => {
      for (const d of deployments) {
        await uow.em.update(UaDeployment, d.id, { status: 'REMOVING' });
        await uow.command(d.vmId, { type: 'ua.remove', uaId: ua.id });
      }
    });
    return repo.findBy({ id: In(deployments.map((d) => d.id)) });
  }
}

/** UVE-2 deploy/update of one UA version (the VM downloads the package itself). */
export function packageCommand(type: 'ua.deploy' | 'ua.update', ua: Ua, v: UaVersion): DeployUaCommand | (Omit<DeployUaCommand, 'type'> & { type: 'ua.update' }) {
  return { type, uaId: ua.id, version: v.version, platform: ua.platform, packageUrl: v.packageUrl, sha256: v.sha256, storefrontId: ua.storefrontId };
}
