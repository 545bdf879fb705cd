// UA management (seed 7.3.1.2.1, 7.3.2.2): the catalogue as users may use it, and deploy / update /
// remove on VMs over UVE-2 (the outbox). What VMs report back is reconciled in onDeploymentChanged
// (procurements) and when a VM joins (deployToNewVm).
import { In, IsNull, type DataSource, type EntityManager, type Repository } from 'typeorm';
import { SLOT_SESSION_STATES, type DeployUaCommand, type DeployedUa, type Platform, type UpdateUaCommand } from '@uve/protocol';
import type { Transactions, UnitOfWork } from '../../common/unit-of-work';
import { badInput, conflict, isUuid, notFound, unavailable } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { Vm } from '../vms/vms.entity';
import { Ua, UaDeployment, UaVersion } from './uas.entity';

/** Packages shipped with the agent: every VM of the platform can install them, nothing is downloaded. */
export const isBuiltin = (v: Pick<UaVersion, 'packageUrl'>): boolean => v.packageUrl.startsWith('builtin:');

export interface UasServiceOptions {
  heartbeatTimeoutMs: number;
  /** how long a VM may take to download a package */
  downloadTimeoutMs: number;
}

export class UasService {
  private readonly repo: Repository<Ua>;

  constructor(private readonly ds: DataSource, private readonly txs: Transactions, private readonly log: Logger, private readonly options: UasServiceOptions) {
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

  /**
   * Catalog truth: users see what they can start (not removed, its current version AVAILABLE);
   * admins see every UA, removed and pending ones included.
   */
  list(platform: Platform | null | undefined, everything: boolean): Promise<Ua[]> {
    const q = this.repo.createQueryBuilder('ua').orderBy('ua.name', 'ASC');
    if (platform) q.andWhere('ua.platform = :platform', { platform });
    if (!everything) {
      q.andWhere('ua.removed_at IS NULL').andWhere(
        `EXISTS (SELECT 1 FROM ua_versions v WHERE v.ua_id = ua.id AND v.version = ua.current_version AND v.status = 'AVAILABLE')`,
      );
    }
    return q.getMany();
  }

  /** What a session request needs: the UA's current version, if it can be started; else why not. */
  async requestable(ua: Ua): Promise<UaVersion> {
    if (ua.removedAt) throw unavailable(`${ua.name} was removed from this platform; it takes no new sessions.`, { reason: 'removed' });
    const v = await this.ds.getRepository(UaVersion).findOneBy({ uaId: ua.id, version: ua.currentVersion });
    if (!v) throw unavailable(`${ua.name} has no installable version ${ua.currentVersion}.`);
    if (v.status !== 'AVAILABLE') {
      const why = v.status === 'FAILED' ? `its procurement failed: ${v.error ?? 'unknown reason'}` : 'it is not deployed on any VM yet; try again once its procurement is DEPLOYED';
      throw unavailable(`${ua.name} ${v.version} cannot be requested: ${why}.`, { reason: v.status === 'FAILED' ? 'failed' : 'not_deployed' });
    }
    return v;
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

  /** VMs that hear commands now: registered, heartbeating, not draining. */
  readyVms(em: EntityManager, platform: Platform): Promise<Vm[]> {
    return em.getRepository(Vm).createQueryBuilder('v')
      .where('v.platform = :platform AND v.status = :status AND v.endpoint IS NOT NULL', { platform, status: 'IDLE' })
      .andWhere('v.last_heartbeat_at > now() - make_interval(secs => :ms::float8 / 1000)', { ms: this.options.heartbeatTimeoutMs })
      .orderBy('v.created_at', 'ASC')
      .getMany();
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

  /** Records the deployment as PENDING and writes the UVE-2 command, in the caller's transaction. */
  async sendPackage(uow: UnitOfWork, vmId: string, type: 'ua.deploy' | 'ua.update', ua: Ua, v: UaVersion): Promise<void> {
    await supersede(uow, vmId, ua.id);
    await uow.em.upsert(UaDeployment, { uaId: ua.id, vmId, version: v.version, status: 'PENDING', error: null }, ['uaId', 'vmId']);
    await uow.command(vmId, packageCommand(type, ua, v, this.options.downloadTimeoutMs));
  }

  /** Writes ua.remove (the deployment goes REMOVING), in the caller's transaction. */
  async sendRemove(uow: UnitOfWork, vmId: string, uaId: string, version?: string): Promise<void> {
    await supersede(uow, vmId, uaId);
    if (version !== undefined) await uow.em.upsert(UaDeployment, { uaId, vmId, version, status: 'REMOVING', error: null }, ['uaId', 'vmId']);
    else await uow.em.update(UaDeployment, { uaId, vmId }, { status: 'REMOVING' });
    await uow.command(vmId, { type: 'ua.remove', uaId });
  }

  async deploy(uaId: string, vmId: string | null | undefined, version: string | null | undefined): Promise<UaDeployment[]> {
    const ua = await this.get(uaId);
    if (ua.removedAt) throw conflict(`${ua.name} was removed; provide it again to bring it back.`);
    const v = await this.version(ua, version ?? ua.currentVersion);
    const vms = await this.targets(ua, vmId);
    await this.txs.run(async (uow) => {
      for (const vm of vms) await this.sendPackage(uow, vm.id, 'ua.deploy', ua, v);
    });
    const repo = this.ds.getRepository(UaDeployment);
    return repo.findBy({ uaId: ua.id, vmId: In(vms.map((vm) => vm.id)) });
  }

  /**
   * Moves the VMs to `version` (all running VMs of the platform when none has the UA yet). New
   * sessions get it once it is AVAILABLE (at once when it is already); running sessions keep the
   * version they started with until they end.
   */
  async update(uaId: string, version: string): Promise<UaDeployment[]> {
    const ua = await this.get(uaId);
    if (ua.removedAt) throw conflict(`${ua.name} was removed; provide it again to bring it back.`);
    const v = await this.version(ua, version);
    if (v.status === 'FAILED') throw conflict(`${ua.name} ${v.version} failed to deploy (${v.error ?? 'unknown reason'}); provide a corrected version.`);
    await this.txs.run(async (uow) => {
      const { em } = uow;
      if (v.status === 'AVAILABLE') await em.update(Ua, ua.id, { currentVersion: v.version, ...(v.metadata ?? {}) });
      const deployed = await em.findBy(UaDeployment, { uaId: ua.id, status: In(['INSTALLED', 'PENDING', 'DOWNLOADING']) });
      const vmIds = deployed.length ? deployed.map((d) => d.vmId) : (await this.readyVms(em, ua.platform)).map((vm) => vm.id);
      for (const id of vmIds) await this.sendPackage(uow, id, 'ua.update', ua, v);
    });
    return this.ds.getRepository(UaDeployment).findBy({ uaId: ua.id });
  }

  /**
   * With a VM: removes the UA from that VM now. Without: the UA takes no new sessions at once and
   * each VM drops it once it runs no session of it (sweepRemovals).
   */
  async remove(uaId: string, vmId: string | null | undefined): Promise<UaDeployment[]> {
    const ua = await this.get(uaId);
    const repo = this.ds.getRepository(UaDeployment);
    if (vmId && !isUuid(vmId)) throw notFound('VM', vmId);
    if (vmId) {
      const deployments = (await repo.findBy({ uaId: ua.id, vmId })).filter((d) => d.status !== 'REMOVED');
      await this.txs.run(async (uow) => {
        for (const d of deployments) await this.sendRemove(uow, d.vmId, ua.id);
      });
      return repo.findBy({ id: In(deployments.map((d) => d.id)) });
    }
    await this.repo.update({ id: ua.id, removedAt: IsNull() }, { removedAt: new Date() });
    await this.sweepRemovals(ua.id);
    return repo.findBy({ uaId: ua.id });
  }

  /** Removed UAs leave each VM that no longer runs a session of them. Returns the VMs told. */
  async sweepRemovals(uaId?: string): Promise<string[]> {
    const due: { id: string; ua_id: string; vm_id: string }[] = await this.ds.query(
      `SELECT d.id, d.ua_id, d.vm_id FROM ua_deployments d JOIN uas u ON u.id = d.ua_id JOIN vms v ON v.id = d.vm_id
        WHERE u.removed_at IS NOT NULL AND d.status NOT IN ('REMOVING', 'REMOVED') AND v.status IN ('IDLE', 'DRAINING')
          AND ($1::uuid IS NULL OR d.ua_id = $1)
          AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.vm_id = d.vm_id AND s.ua_id = d.ua_id AND s.state = ANY($2::session_state[]))
        LIMIT 200`,
      [uaId ?? null, SLOT_SESSION_STATES],
    );
    for (const d of due) {
      await this.txs.run(async (uow) => {
        // the conditional update keeps two gateways (or two passes) from sending it twice
        const res = await uow.em.update(UaDeployment, { id: d.id, status: In(['PENDING', 'DOWNLOADING', 'INSTALLED', 'FAILED']) }, { status: 'REMOVING' });
        if (res.affected) await this.sendRemove(uow, d.vm_id, d.ua_id);
      });
    }
    if (due.length) this.log.info('removed UAs leave idle VMs', { count: due.length });
    return due.map((d) => d.vm_id);
  }

  /**
   * A VM joined (or came back): it gets its platform's downloaded UAs at the version new sessions
   * get, or the version a procurement is waiting for; what it still has of removed UAs goes.
   * Builtin packages are on every VM's disk already and deploy with their first session.
   */
  async deployToNewVm(vmId: string, platform: Platform, installed: DeployedUa[]): Promise<void> {
    const has = new Map(installed.map((d) => [d.uaId, d.version]));
    const rows: { ua_id: string; version_id: string; removed: boolean }[] = await this.ds.query(
      `SELECT u.id AS ua_id, u.removed_at IS NOT NULL AS removed,
              COALESCE(
                (SELECT v.id FROM ua_versions v WHERE v.ua_id = u.id AND v.status = 'PENDING'
                   AND EXISTS (SELECT 1 FROM procurements p WHERE p.ua_id = u.id AND p.version = v.version AND p.status IN ('REQUESTED', 'VM_SELECTED', 'DOWNLOADING'))
                   ORDER BY v.created_at DESC LIMIT 1),
                (SELECT v.id FROM ua_versions v WHERE v.ua_id = u.id AND v.version = u.current_version AND v.status = 'AVAILABLE')) AS version_id
         FROM uas u WHERE u.platform = $1`,
      [platform],
    );
    const sends: { ua: Ua; v: UaVersion }[] = [];
    const removals: string[] = [];
    for (const r of rows) {
      if (r.removed) {
        if (has.has(r.ua_id)) removals.push(r.ua_id);
        continue;
      }
      if (!r.version_id) continue;
      const v = await this.ds.getRepository(UaVersion).findOneByOrFail({ id: r.version_id });
      if (isBuiltin(v) || has.get(r.ua_id) === v.version) continue;
      sends.push({ ua: await this.repo.findOneByOrFail({ id: r.ua_id }), v });
    }
    if (!sends.length && !removals.length) return;
    await this.txs.run(async (uow) => {
      for (const { ua, v } of sends) await this.sendPackage(uow, vmId, 'ua.deploy', ua, v);
      for (const uaId of removals) await this.sendRemove(uow, vmId, uaId, has.get(uaId)!);
    });
    this.log.info('VM joined: UAs of its platform sent', { vmId, deploy: sends.length, remove: removals.length });
  }
}

/**
 * A newer package command for a UA makes the older ones still pending for that VM pointless (and
 * harmful: a deploy re-sent after a remove would bring the UA back), so they are settled.
 */
async function supersede(uow: UnitOfWork, vmId: string, uaId: string): Promise<void> {
  await uow.em.query(
    `UPDATE vm_commands SET outcome = 'cancelled', settled_at = now(), error = 'superseded by a newer command for this UA'
      WHERE vm_id = $1 AND outcome IS NULL AND type IN ('ua.deploy', 'ua.update', 'ua.remove') AND command->>'uaId' = $2`,
    [vmId, uaId],
  );
}

/** UVE-2 deploy/update of one UA version (the VM downloads the package itself, from its origin only). */
export function packageCommand(type: 'ua.deploy' | 'ua.update', ua: Ua, v: UaVersion, downloadTimeoutMs: number): DeployUaCommand | UpdateUaCommand {
  const download = isBuiltin(v) ? {} : { sizeBytes: v.sizeBytes, allowedOrigin: new URL(v.packageUrl).origin, downloadTimeoutMs };
  return { type, uaId: ua.id, version: v.version, platform: ua.platform, packageUrl: v.packageUrl, sha256: v.sha256, storefrontId: ua.storefrontId, ...download };
}
