// The VMM's view of its VMs: records kept from UVE-5 reports (register, heartbeat, deployments),
// liveness, and provisioning through the providers.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { In, IsNull, LessThan, Not, type DataSource, type FindOptionsWhere, type Repository } from 'typeorm';
import type { MessageBus } from '@uve/queue';
import { PLATFORMS, SLOT_SESSION_STATES, vmCommandQueue, type DeploymentChanged, type Platform, type VmHeartbeat, type VmProvider, type VmRegistered, type VmStopping } from '@uve/protocol';
import { badInput, conflict, isUuid, notFound, unavailable } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { UvePubSub } from '../../common/pubsub';
import type { VmEventType, VmStatus } from './vms.enums';
import type { Transactions } from '../../common/unit-of-work';
import type { VmCommandsService } from '../vmm/vm-commands.service';
import { Session } from '../sessions/sessions.entity';
import { Ua, UaDeployment } from '../uas/uas.entity';
import type { VmProviderDriver } from './providers/vm-provider';
import type { PoolPlatformStatus } from './vm-pool';
import { Vm, type StoredVmStatus } from './vms.entity';
import { HEARTBEAT_LOST_REASON, heartbeatRevives, sentSinceOffline } from './vm-liveness';

export interface VmRecordInput { platform: Platform; provider?: VmProvider | null; capacity?: number | null; name?: string | null }

export interface VmsServiceOptions {
  heartbeatTimeoutMs: number;
  defaultProvider: VmProvider;
  gatewayUrl: () => string;
  redisUrl: string;
  queuePrefix: string;
  /** OFFLINE and FAILED records are kept this long after their VM was destroyed */
  retentionMs: number;
}

/** how long after its record a VM's launch may still be under way (reconcile leaves it alone) */
const LAUNCH_GRACE_MS = 30_000;

export class VmsService {
  private readonly repo: Repository<Vm>;
  private readonly providers = new Map<VmProvider, VmProviderDriver>();
  private closing = false;
  /** the liveness sweep said it holds back (once per episode) */
  private toldDeaf = false;
  /** when a heartbeat or registration last arrived and could not be recorded (PostgreSQL down) */
  private unrecordedAt = 0;
  /**
   * Removals and destroys under way (a pool retirement, removeVm, the reaper), by provider: the
   * stop lets them finish before it closes their provider. A retirement cut by the stop left its
   * container stopped and never removed (the pool's stop step gives up after 4 s; a container's
   * stop alone may take 5).
   */
  private readonly underWay = new Map<VmProvider, Set<Promise<unknown>>>();
  private readonly vmLostListeners: ((vmId: string, reason: string) => Promise<void>)[] = [];
  private readonly deploymentListeners: ((m: DeploymentChanged) => Promise<void>)[] = [];
  private readonly joinListeners: ((m: VmRegistered) => Promise<void>)[] = [];

  constructor(
    private readonly ds: DataSource,
    private readonly bus: MessageBus,
    private readonly txs: Transactions,
    private readonly commands: VmCommandsService,
    private readonly pubsub: UvePubSub,
    private readonly log: Logger,
    private readonly options: VmsServiceOptions,
  ) {
    this.repo = ds.getRepository(Vm);
  }

  /** Called when a VM stops serving (heartbeat lost, stopping, removed): its sessions are disconnected. */
  onVmLost(listener: (vmId: string, reason: string) => Promise<void>): void {
    this.vmLostListeners.push(listener);
  }

  private async vmLost(vmId: string, reason: string): Promise<void> {
    for (const l of this.vmLostListeners) await l(vmId, reason);
  }

  addProvider(driver: VmProviderDriver): void {
    this.providers.set(driver.kind, driver);
    driver.onVmExit?.((vmId, reason) => {
      this.markLost(vmId, reason).catch((e: Error) => this.log.error('VM exit not recorded', { vmId, error: e.message }));
    });
  }

  /** OFFLINE now (not after the heartbeat timeout) and its sessions disconnected; once, whoever notices first. */
  private async markLost(vmId: string, reason: string, atClose = false): Promise<void> {
    if (this.closing && !atClose) return; // closeProviders records the VMs it stopped itself
    const res = await this.repo.update({ id: vmId, status: In(['PROVISIONING', 'IDLE', 'DRAINING']) }, { status: 'OFFLINE', statusReason: reason.slice(0, 500) });
    if (!res.affected) return;
    this.publish(vmId, 'STATUS_CHANGED', { status: 'OFFLINE', reason });
    this.log.warn('VM lost', { vmId, reason });
    await this.vmLost(vmId, reason);
  }

  /**
   * At start: records of VMs a provider no longer runs are OFFLINE; VMs it runs without a record are
   * stopped. `stopped`: VMs known to run no more (the agents a killed run of this gateway left, just
   * stopped): OFFLINE however recently they were heard from or launched.
   */
  async reconcile(stopped: readonly string[] = []): Promise<void> {
    for (const id of stopped.filter(isUuid)) await this.markLost(id, 'its agent, left by an earlier run of the gateway that was killed, was stopped at start');
    for (const driver of this.providers.values()) {
      if (!driver.running) continue;
      const running = new Set(await driver.running());
      const live = await this.repo.findBy({ provider: driver.kind, status: In(['PROVISIONING', 'IDLE', 'DRAINING']) });
      // a VM that still heartbeats is alive whoever launched it (another gateway's PROCESS VM, an
      // agent started by hand), and so is one launched too recently to have been heard from yet
      // (another gateway's pool, starting at the same time): only a silent one that the provider
      // does not run is lost
      const silentSince = Date.now() - this.options.heartbeatTimeoutMs;
      // a provider that sees every VM may not see one yet whose launch another gateway has just
      // begun (record first, then the service: two stack replicas starting together); one that
      // never comes up is FAILED by the sweep
      const launchingSince = Date.now() - LAUNCH_GRACE_MS;
      for (const vm of live) {
        const heard = vm.lastHeartbeatAt ?? vm.createdAt;
        if (running.has(vm.id) || (!driver.seesAllVms && heard && heard.getTime() > silentSince)) continue;
        if (vm.status === 'PROVISIONING' && vm.createdAt && vm.createdAt.getTime() > launchingSince) continue;
        await this.markLost(vm.id, `${driver.kind} provider no longer runs it`);
      }
      const known = new Set((await this.repo.findBy({ provider: driver.kind })).map((v) => v.id));
      for (const id of running) {
        const vm = known.has(id) ? await this.repo.findOneBy({ id }) : null;
        if (!vm || vm.status === 'OFFLINE' || vm.status === 'FAILED') await driver.destroy(id, vm?.providerRef ?? null);
      }
    }
  }

  async get(id: string): Promise<Vm> {
    const vm = isUuid(id) ? await this.repo.findOneBy({ id }) : null;
    if (!vm) throw notFound('VM', id);
    return vm;
  }

  /** set when this gateway runs the pool manager (app.ts) */
  pool: { status(): Promise<PoolPlatformStatus[]> } | null = null;

  /** The pool per platform; without a pool manager, why none runs. */
  async poolStatus(): Promise<PoolPlatformStatus[]> {
    if (this.pool) return this.pool.status();
    return PLATFORMS.map((platform) => ({
      platform, warmTarget: 0, idleVms: 0, busyVms: 0, startingVms: 0, hotVms: 0, freeSlots: 0, waitingRequests: 0, wantsMore: 0, reason: null,
      unavailable: 'no pool manager runs on this gateway (UVE_WARM_VMS=0 and UVE_REQUEST_WAIT_MS=0): VMs come only from provisionVm',
    }));
  }

  findById(id: string): Promise<Vm | null> {
    return isUuid(id) ? this.repo.findOneBy({ id }) : Promise.resolve(null);
  }

  /** The VM presenting this secret (its VM Data credential), or null. */
  async authenticate(vmId: string, secret: string): Promise<Vm | null> {
    const vm = await this.findById(vmId);
    if (!vm?.secretHash || vm.destroyedAt || !secret) return null;
    const given = createHash('sha256').update(secret).digest();
    return timingSafeEqual(given, Buffer.from(vm.secretHash, 'hex')) ? vm : null;
  }

  activeSessions(vmId: string): Promise<number> {
    return this.ds.getRepository(Session).countBy({ vmId, state: In([...SLOT_SESSION_STATES]) });
  }

  /** BUSY is IDLE with sessions: derived, so it can never disagree with the sessions. */
  async status(vm: Vm): Promise<VmStatus> {
    if (vm.status !== 'IDLE') return vm.status;
    return (await this.activeSessions(vm.id)) > 0 ? 'BUSY' : 'IDLE';
  }

  async list(status: VmStatus | null | undefined, platform: Platform | null | undefined): Promise<Vm[]> {
    const where: FindOptionsWhere<Vm> = {};
    if (platform) where.platform = platform;
    if (status) where.status = status === 'BUSY' ? 'IDLE' : status;
    const vms = await this.repo.find({ where, order: { createdAt: 'ASC' } });
    if (status !== 'BUSY' && status !== 'IDLE') return vms;
    const statuses = await Promise.all(vms.map((vm) => this.status(vm)));
    return vms.filter((_, i) => statuses[i] === status);
  }

  deployments(vmId: string): Promise<UaDeployment[]> {
    return this.ds.getRepository(UaDeployment).find({ where: { vmId }, order: { updatedAt: 'DESC' } });
  }

  publish(vmId: string, type: VmEventType, data: Record<string, unknown> | null = null): void {
    this.pubsub.publish('VM_EVENT', { vmId, type, at: new Date().toISOString(), data });
  }

  private async setStatus(vmId: string, status: StoredVmStatus, extra: Partial<Vm> = {}): Promise<void> {
    const res = await this.repo.update({ id: vmId, status: Not(status) }, { statusReason: null, ...extra, status });
    if (res.affected) this.publish(vmId, 'STATUS_CHANGED', { status });
  }

  // ---- UVE-5 reports ---------------------------------------------------------------------------

  async onRegister(m: VmRegistered): Promise<void> {
    if (!isUuid(m.vmId)) {
      this.log.warn('VM registration with an id that is not a UUID ignored', { vmId: m.vmId });
      return;
    }
    const existing = await this.repo.findOneBy({ id: m.vmId });
    // only a VM this VMM provisioned or enrolled has a record (the report guard refused others)
    if (!existing) return;
    if (existing.status === 'FAILED' || existing.platform !== m.platform) {
      this.log.warn('registration of a failed or mismatched VM refused', { vmId: m.vmId });
      await this.txs.run((uow) => uow.command(m.vmId, { type: 'vm.shutdown' }));
      return;
    }
    // as a heartbeat: one sent before the VM was found gone (queued while the gateway that started
    // it was killed, its agent since stopped) is no sign of life
    if (existing.status === 'OFFLINE' && !sentSinceOffline(existing, m.at)) {
      this.log.warn('registration sent before the VM went OFFLINE ignored', { vmId: m.vmId, at: m.at });
      return;
    }
    const fields = {
      name: m.name.slice(0, 128),
      platform: m.platform,
      endpoint: m.endpoint,
      codecs: m.codecs,
      capacity: m.capacity,
      lastHeartbeatAt: new Date(),
      status: (existing.status === 'DRAINING' ? 'DRAINING' : 'IDLE') as StoredVmStatus,
      statusReason: null,
      destroyedAt: null,
    };
    await this.repo.update(m.vmId, fields);
    await this.syncDeployments(m.vmId, m.deployed);
    this.publish(m.vmId, 'STATUS_CHANGED', { status: fields.status, endpoint: m.endpoint });
    this.log.info('VM registered', { vmId: m.vmId, endpoint: m.endpoint, codecs: m.codecs });
    for (const l of this.joinListeners) await l(m);
  }

  /** A heartbeat also brings back a VM that was marked OFFLINE for its silence alone (a network hiccup): vm-liveness.ts. */
  async onHeartbeat(m: VmHeartbeat): Promise<void> {
    const vm = await this.findById(m.vmId);
    if (!vm || vm.status === 'FAILED' || vm.destroyedAt) return;
    // from a VM gone for good (its provider saw it go, it said it was stopping) or sent before it
    // was found silent: nothing of it is recorded, its record keeps the last heartbeat it had alive
    const revives = heartbeatRevives(vm, m.at);
    if (vm.status === 'OFFLINE' && !revives) return;
    await this.repo.update(m.vmId, { lastHeartbeatAt: new Date(), codecs: m.codecs, capacity: m.capacity, load: { cpuLoad: m.cpuLoad, rssBytes: m.rssBytes, source: m.loadSource ?? null } });
    // conditional: the reaper may be destroying it meanwhile, and what it records wins
    if (revives) {
      const res = await this.repo.update({ id: m.vmId, status: 'OFFLINE', statusReason: HEARTBEAT_LOST_REASON, destroyedAt: IsNull() }, { status: 'IDLE', statusReason: null });
      if (res.affected) this.publish(m.vmId, 'STATUS_CHANGED', { status: 'IDLE' });
    }
  }

  async onStopping(m: VmStopping): Promise<void> {
    const vm = await this.findById(m.vmId);
    if (!vm || vm.status === 'OFFLINE' || vm.status === 'FAILED') return;
    await this.setStatus(m.vmId, 'OFFLINE', { statusReason: `VM stopping: ${m.reason}`.slice(0, 500) });
    await this.vmLost(m.vmId, `VM stopping: ${m.reason}`);
  }

  /** told after a VM's deployment report is recorded (procurements and the catalog follow it) */
  onDeploymentReported(listener: (m: DeploymentChanged) => Promise<void>): void {
    this.deploymentListeners.push(listener);
  }

  /** told after a VM registered (it gets its platform's UAs) */
  onJoined(listener: (m: VmRegistered) => Promise<void>): void {
    this.joinListeners.push(listener);
  }

  async onDeploymentChanged(m: DeploymentChanged): Promise<void> {
    if (!(await this.ds.getRepository(Ua).existsBy({ id: m.uaId }))) return;
    if (!(await this.repo.existsBy({ id: m.vmId }))) return;
    // a removal report keeps the version it removed on record (the VM may not know it)
    const version = m.status === 'REMOVED' && !m.version
      ? ((await this.ds.getRepository(UaDeployment).findOneBy({ uaId: m.uaId, vmId: m.vmId }))?.version ?? '')
      : m.version;
    // Reports are handled concurrently, so a VM's in-between report may arrive after the one that
    // followed it: a late DOWNLOADING must not overwrite the INSTALLED or FAILED after it (the VMM
    // sets PENDING whenever it sends a package command), nor a late REMOVING the REMOVED (or the
    // PENDING of a deploy sent since).
    const from = m.status === 'DOWNLOADING' ? ['PENDING'] : m.status === 'REMOVING' ? ['INSTALLED', 'DOWNLOADING', 'FAILED', 'REMOVING'] : null;
    if (from) {
      const res = await this.ds.getRepository(UaDeployment).update(
        { uaId: m.uaId, vmId: m.vmId, status: In(from as UaDeployment['status'][]), ...(m.status === 'DOWNLOADING' ? { version } : {}) },
        { status: m.status, error: null },
      );
      if (!res.affected) return;
    } else {
      await this.ds.getRepository(UaDeployment).upsert(
        { uaId: m.uaId, vmId: m.vmId, version, status: m.status, error: m.error?.slice(0, 1024) ?? null },
        ['uaId', 'vmId'],
      );
    }
    this.publish(m.vmId, 'DEPLOYMENT_CHANGED', { uaId: m.uaId, version: m.version, status: m.status, error: m.error ?? null });
    for (const l of this.deploymentListeners) await l(m);
  }

  /**
   * What the VM says it has installed is the truth about its disk: those rows are INSTALLED, and
   * rows that claim INSTALLED for UAs it does not have are reset (deployToNewVm sends them again).
   */
  private async syncDeployments(vmId: string, deployed: { uaId: string; version: string }[]): Promise<void> {
    const known = deployed.filter((d) => isUuid(d.uaId));
    await this.ds.getRepository(UaDeployment).update(
      { vmId, status: 'INSTALLED', ...(known.length ? { uaId: Not(In(known.map((d) => d.uaId))) } : {}) },
      { status: 'REMOVED', error: 'not on the VM when it registered' },
    );
    if (known.length === 0) return;
    const uas = await this.ds.getRepository(Ua).findBy({ id: In(known.map((d) => d.uaId)) });
    const ids = new Set(uas.map((u) => u.id));
    const rows = known.filter((d) => ids.has(d.uaId)).map((d) => ({ uaId: d.uaId, vmId, version: d.version, status: 'INSTALLED' as const, error: null }));
    if (rows.length) await this.ds.getRepository(UaDeployment).upsert(rows, ['uaId', 'vmId']);
  }

  /** A VM's sign of life arrived and could not be recorded (uve5.consumer), or the gateway did not run for a while (its watchdog): see sweepSilentVms. */
  livenessUnrecorded(): void {
    this.unrecordedAt = Date.now();
  }

  /**
   * VMs silent for longer than the heartbeat timeout; returns the ids it marked OFFLINE.
   * `listeningSince`: since when reports have been able to reach this gateway without a break
   * (null: they cannot now). Silence counts only while the VMM listens: no heartbeat arrives while
   * Redis is down, and once it is back each VM gets a whole timeout to be heard again. Else an
   * outage longer than the timeout looked like every VM lost, and the reaper destroyed them all
   * with their sessions.
   */
  async sweepSilentVms(listeningSince: number | null): Promise<string[]> {
    const cutoff = new Date(Date.now() - this.options.heartbeatTimeoutMs);
    const silentWhere = { status: In(['IDLE', 'DRAINING'] as StoredVmStatus[]), lastHeartbeatAt: LessThan(cutoff) };
    // a heartbeat that arrived but could not be recorded (PostgreSQL down) is silence of the
    // VMM's own: once PostgreSQL is back, the VMs' records are stale until their next heartbeat
    const heardSince = listeningSince === null ? null : Math.max(listeningSince, this.unrecordedAt);
    if (heardSince === null || heardSince > cutoff.getTime()) {
      if (!this.toldDeaf) {
        const silentNow = await this.repo.count({ where: silentWhere });
        if (silentNow) {
          this.toldDeaf = true;
          const why = listeningSince === null ? 'VM reports cannot reach this gateway (Redis down)' : 'VM reports have reached this gateway and been recorded for less than the heartbeat timeout (it has just started, Redis or PostgreSQL was down, or the gateway itself did not run)';
          this.log.warn(`VM liveness not judged while ${why}`, { silentVms: silentNow, heartbeatTimeoutMs: this.options.heartbeatTimeoutMs });
        }
      }
      return [];
    }
    this.toldDeaf = false;
    const silent = await this.repo.find({ where: silentWhere });
    const lost: string[] = [];
    for (const vm of silent) {
        // conditional update: with several gateways only one wins and reports it
      const res = await this.repo.update({ id: vm.id, status: vm.status, lastHeartbeatAt: LessThan(cutoff) }, { status: 'OFFLINE', statusReason: HEARTBEAT_LOST_REASON });
      if (!res.affected) continue;
      lost.push(vm.id);
      this.publish(vm.id, 'HEARTBEAT_LOST', { lastHeartbeatAt: vm.lastHeartbeatAt?.toISOString() ?? null });
      this.log.warn('VM heartbeat lost', { vmId: vm.id });
      await this.vmLost(vm.id, 'VM heartbeat lost');
    }
    // a provisioned VM that never registered has failed
    const stale = new Date(Date.now() - Math.max(60_000, this.options.heartbeatTimeoutMs * 10));
    const stuck = await this.repo.find({ where: { status: 'PROVISIONING', createdAt: LessThan(stale) } });
    for (const vm of stuck) await this.setStatus(vm.id, 'FAILED', { statusReason: 'never registered after its launch' });
    return lost;
  }

  /**
   * VMs that stopped serving are destroyed through their provider (a hung agent is not left
   * running), and their records pruned once the retention has passed. Returns the ids destroyed.
   * An OFFLINE VM no provider launched (enrolled: its operator runs the agent, the VMM cannot stop
   * it) keeps its record and secret: after a network hiccup its next heartbeat brings it back,
   * and after a restart its registration; removeVm is how an admin lets it go.
   */
  async reapStoppedVms(): Promise<string[]> {
    const gone = await this.repo.find({
      where: [{ status: 'FAILED', destroyedAt: IsNull() }, { status: 'OFFLINE', destroyedAt: IsNull(), providerRef: Not(IsNull()) }],
      take: 50,
    });
    const destroyed: string[] = [];
    for (const vm of gone) {
      const driver = this.providers.get(vm.provider);
      // a VM of a provider this gateway does not run is left to the gateway that does
      if (!driver) continue;
      try {
        await this.track(vm.provider, driver.destroy(vm.id, vm.providerRef));
      } catch (e) {
        this.log.warn('stopped VM not destroyed yet', { vmId: vm.id, error: (e as Error).message });
        continue;
      }
      const res = await this.repo.update({ id: vm.id, destroyedAt: IsNull(), status: In(['OFFLINE', 'FAILED']) }, { destroyedAt: new Date(), endpoint: null, secretHash: null });
      if (!res.affected) continue;
      await this.commands.cancelForVm(vm.id, `VM ${vm.status}: ${vm.statusReason ?? 'stopped'}`);
      await this.bus.destroyQueue(vmCommandQueue(vm.id)).catch(() => undefined);
      destroyed.push(vm.id);
      this.log.info('stopped VM destroyed', { vmId: vm.id, status: vm.status, reason: vm.statusReason });
    }
    await this.ds.query(
      `DELETE FROM vms WHERE status IN ('OFFLINE', 'FAILED') AND destroyed_at < now() - make_interval(secs => $1::float8 / 1000)`,
      [this.options.retentionMs],
    );
    return destroyed;
  }

  // ---- management (admin) ----------------------------------------------------------------------

  /** `startReason` is kept with the VM and shown in the `vms` query (why the pool or an admin started it). */
  async provision(input: VmRecordInput, startReason = 'provisioned by an admin'): Promise<Vm> {
    const kind = input.provider ?? this.options.defaultProvider;
    const driver = this.providers.get(kind);
    if (!driver) throw unavailable(`The ${kind} VM provider is not enabled on this gateway.`);
    const { vm, secret } = await this.newRecord(input, kind, startReason);
    try {
      const { providerRef } = await driver.launch({
        vmId: vm.id, name: vm.name, platform: vm.platform, capacity: vm.capacity, secret,
        gatewayUrl: this.options.gatewayUrl(), redisUrl: this.options.redisUrl, queuePrefix: this.options.queuePrefix,
      });
      vm.providerRef = providerRef;
      await this.repo.update(vm.id, { providerRef });
    } catch (e) {
      await this.repo.update(vm.id, { status: 'FAILED', statusReason: `launch failed: ${(e as Error).message}`.slice(0, 500) });
      this.log.error('VM launch failed', { vmId: vm.id, error: (e as Error).message });
      throw unavailable(`The ${kind} provider could not start the VM: ${(e as Error).message}`);
    }
    this.publish(vm.id, 'PROVISIONED', { status: 'PROVISIONING' });
    return vm;
  }

  /**
   * A VM the operator runs (an agent started by hand, on another host): its record waits in
   * PROVISIONING for the agent started with this id and secret to register. The secret is
   * returned once; only its hash is kept. Nothing else may register a VM.
   */
  async enroll(input: VmRecordInput): Promise<{ vm: Vm; secret: string }> {
    const enrolled = await this.newRecord(input, input.provider ?? 'PROCESS', 'enrolled by an admin: an agent the operator runs');
    this.publish(enrolled.vm.id, 'PROVISIONED', { status: 'PROVISIONING', enrolled: true });
    return enrolled;
  }

  /** The record of a VM about to exist, with its secret (the VM's credential and report-signing key). */
  private async newRecord(input: VmRecordInput, kind: VmProvider, startReason: string): Promise<{ vm: Vm; secret: string }> {
    const capacity = input.capacity ?? 1;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 64) throw badInput('capacity must be from 1 to 64.', 'capacity');
    if (input.name != null && (input.name.length < 1 || input.name.length > 128)) throw badInput('name must have 1 to 128 characters.', 'name');
    const secret = randomBytes(32).toString('base64url');
    const vm = await this.repo.save(this.repo.create({
      name: input.name ?? `${input.platform.toLowerCase()}-${randomBytes(3).toString('hex')}`,
      platform: input.platform,
      provider: kind,
      status: 'PROVISIONING',
      endpoint: null,
      codecs: [],
      capacity,
      lastHeartbeatAt: null,
      secretHash: createHash('sha256').update(secret).digest('hex'),
      providerRef: null,
      load: null,
      statusReason: null,
      startReason: startReason.slice(0, 500),
      destroyedAt: null,
    }));
    return { vm, secret };
  }

  async drain(id: string): Promise<Vm> {
    const vm = await this.get(id);
    if (vm.status === 'OFFLINE' || vm.status === 'FAILED') throw conflict(`VM ${vm.name} is ${vm.status}; only a running VM can be drained.`);
    await this.setStatus(vm.id, 'DRAINING');
    await this.txs.run((uow) => uow.command(vm.id, { type: 'vm.drain' }));
    return this.get(id);
  }

  /** `work` counted as under way for `kind`'s provider until it settles (closeProviders waits for it) */
  private track<T>(kind: VmProvider, work: Promise<T>): Promise<T> {
    const set = this.underWay.get(kind) ?? new Set();
    this.underWay.set(kind, set);
    const settled = work.then(() => undefined, () => undefined).finally(() => set.delete(settled));
    set.add(settled);
    return work;
  }

  /** Stops the VM through its provider and keeps the record (OFFLINE) for history, until pruned. */
  async remove(id: string, reason = 'removed'): Promise<Vm> {
    const vm = await this.get(id);
    await this.track(vm.provider, this.removeVm(vm, reason));
    return this.get(id);
  }

  private async removeVm(vm: Vm, reason: string): Promise<void> {
    const driver = this.providers.get(vm.provider);
    // the agent ends its sessions cleanly if it hears this before its provider stops it
    await this.txs.run((uow) => uow.command(vm.id, { type: 'vm.shutdown' }));
    if (driver) await driver.destroy(vm.id, vm.providerRef);
    // its secret is forgotten: a removed VM can neither report nor reach VM Data again
    await this.repo.update(vm.id, { status: 'OFFLINE', statusReason: reason.slice(0, 500), endpoint: null, destroyedAt: driver ? new Date() : null, secretHash: null });
    await this.vmLost(vm.id, 'VM removed');
    await this.commands.cancelForVm(vm.id, 'VM removed');
    await this.bus.destroyQueue(vmCommandQueue(vm.id)).catch(() => undefined);
    this.publish(vm.id, 'REMOVED', null);
  }

  /** Why VMs of a platform cannot be launched with a provider here (null: they can). */
  cannotRun(kind: VmProvider, platform: Platform): string | null {
    const driver = this.providers.get(kind);
    if (!driver) return `the ${kind} VM provider is not enabled on this gateway`;
    return driver.cannotRun?.(platform) ?? null;
  }

  /**
   * At shutdown: the providers stop the VMs they own (PROCESS: the agents; DOCKER containers keep
   * running and are found again at the next start), then those VMs are OFFLINE and their sessions
   * DISCONNECTED with the reason. With the database already gone, the next start's reconcile does it.
   */
  async closeProviders(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.providers.values()].map(async (p) => {
      // removals under way finish first (each bounded by its provider: a container's stop timeout,
      // an agent's SIGKILL grace), so a VM being retired is not left half removed
      const underWay = [...(this.underWay.get(p.kind) ?? [])];
      if (underWay.length) {
        this.log.info('stopping: waiting for VM removals under way', { provider: p.kind, removals: underWay.length });
        await Promise.all(underWay);
      }
      const before = (await p.running?.().catch(() => [])) ?? [];
      await p.close();
      const after = new Set((await p.running?.().catch(() => [])) ?? []);
      for (const vmId of before) {
        if (!after.has(vmId)) await this.markLost(vmId, 'the gateway stopped', true).catch((e: Error) => this.log.warn('stopped VM not recorded', { vmId, error: e.message }));
      }
    }));
  }
}
