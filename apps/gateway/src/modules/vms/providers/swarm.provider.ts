// SWARM provider: each VM is a Docker Swarm service `uve-vm-<vm id>` of one replica, running the
// agent image of its platform on the host network of whichever node the swarm scheduler picks
// (among the nodes labelled for the platform), with reservations, limits and the DOCKER provider's
// labels. Restart policy none: a VM whose task ends is lost, and the pool replaces it, as with
// containers. The VMM learns of lost VMs at once from the manager's engine events (a task container
// of this node died, a service was removed), and from the tasks' states, polled from the manager
// (a task failed or shut down, its node down, its service removed: also on other nodes, and
// whatever an event stream missed). See docs/scaling.md.
import type Docker from 'dockerode';
import type { Platform } from '@uve/protocol';
import { AGENT_UID, DockerVms, LABELS, type EngineEvent, statusOf, vmObjectName, type DockerVmOptions } from './docker-vm';
import type { LaunchedVm, VmLaunchSpec, VmProviderDriver } from './vm-provider';

/** the VM's secret as a swarm secret file (/run/secrets/<name>), the agent user's, 0400 */
const SWARM_SECRET_NAME = 'uve-vm-secret';
const SWARM_SECRET_FILE = `/run/secrets/${SWARM_SECRET_NAME}`;
/** and the Redis URL (it may carry the Redis password) likewise */
const SWARM_REDIS_URL_NAME = 'uve-redis-url';
const SWARM_REDIS_URL_FILE = `/run/secrets/${SWARM_REDIS_URL_NAME}`;
const redisSecretName = (vmId: string) => `${vmObjectName(vmId)}-redis`;
/** the certificates the agent trusts besides the system's (DockerVmOptions.extraCaCerts), a secret file beside them */
const SWARM_EXTRA_CA_NAME = 'uve-extra-ca';
const SWARM_EXTRA_CA_FILE = `/run/secrets/${SWARM_EXTRA_CA_NAME}`;
const caSecretName = (vmId: string) => `${vmObjectName(vmId)}-ca`;

/** node label (value "true") that admits a platform's VMs: uve.platform.WASM, uve.platform.LINUX_X11 */
export const platformNodeLabel = (platform: Platform): string => `uve.platform.${platform}`;

export interface SwarmProviderOptions extends DockerVmOptions {
  /**
   * Place each VM on nodes labelled `uve.platform.<PLATFORM>=true` (default true). Off: any node
   * (every node must then have the images and programs of every platform).
   */
  platformConstraints?: boolean;
  /** more placement constraints for every VM, e.g. ["node.role == worker"] */
  constraints?: string[];
  /** share of the CPU and memory limits reserved on the node for each VM (0..1); default 0.25 */
  reserveShare?: number;
  /** how often the tasks' states are polled from the manager, ms; default 1000 */
  pollMs?: number;
  /**
   * the docker stack the gateway runs in (docker/stack.yml): VM services and their secrets carry
   * its namespace label, so `docker stack rm` removes them with the stack
   */
  stack?: string;
}

/** the label by which `docker stack` finds a stack's services, secrets and configs */
export const STACK_NAMESPACE_LABEL = 'com.docker.stack.namespace';

/** bound on one poll of services, tasks and nodes */
const POLL_TIMEOUT_MS = 10_000;

/**
 * labels on each VM's task container (the service's labels stay on the service): its engine `die`
 * event names the VM. Not uve.managed: a DOCKER provider of the same deployment must not take task
 * containers for its own.
 */
export const TASK_LABELS = { vmId: 'uve.swarm.vm.id', gateway: 'uve.swarm.gateway' } as const;

/** task states after which the task's container no longer runs */
const ENDED = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

interface SwarmTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  DesiredState?: string;
  CreatedAt?: string;
  Version?: { Index?: number };
  Status?: { State?: string; Message?: string; Err?: string; ContainerStatus?: { ExitCode?: number } };
}

interface SwarmNode {
  ID: string;
  Description?: { Hostname?: string };
  Status?: { State?: string };
}

/** one VM's service as seen now: `lost` says why it no longer runs (null: it runs or is starting) */
interface VmService {
  vmId: string;
  serviceId: string;
  lost: string | null;
}

export class SwarmProvider extends DockerVms<SwarmProviderOptions> implements VmProviderDriver {
  readonly kind = 'SWARM' as const;
  private poller: NodeJS.Timeout | null = null;
  /** services seen by the last poll, by VM id; a VM missing from the next one had its service removed */
  private seen = new Map<string, string>();
  /** VMs already reported lost (once each) */
  private readonly reported = new Set<string>();

  constructor(options: SwarmProviderOptions = {}) {
    super(options);
    const share = options.reserveShare;
    if (share !== undefined && !(share >= 0 && share <= 1)) throw new Error(`SwarmProvider: reserveShare must be between 0 and 1, got ${share}`);
    if (options.pollMs !== undefined && !(options.pollMs >= 50)) throw new Error(`SwarmProvider: pollMs must be at least 50, got ${options.pollMs}`);
  }

  /** the VM's labels, and the stack's namespace when the gateway runs in one */
  protected override vmLabels(spec: VmLaunchSpec): Record<string, string> {
    return { ...super.vmLabels(spec), ...(this.opts.stack ? { [STACK_NAMESPACE_LABEL]: this.opts.stack } : {}) };
  }

  /** Throws unless the engine is a manager of an active swarm (services can only be made there). */
  async ensureManager(): Promise<void> {
    const info = (await this.docker.info().catch((e: unknown) => {
      throw this.wrap(e, 'could not ask the engine about its swarm');
    })) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
    const state = info.Swarm?.LocalNodeState ?? 'inactive';
    if (state !== 'active') throw new Error(`the SWARM provider needs a swarm: this engine's swarm state is "${state}" (docker swarm init, or join one)`);
    if (!info.Swarm?.ControlAvailable) throw new Error('the SWARM provider needs a swarm manager: this engine is a worker (point DOCKER_HOST at a manager)');
  }

  /**
   * what `launch` passes to the manager (exposed for tests and docs); `secretId`: the swarm secret
   * holding the VM's secret, mounted as a file readable by the agent's user only (no Env shows it)
   */
  serviceOptions(spec: VmLaunchSpec, secretId = '', redisSecretId = '', caSecretId = ''): Docker.CreateServiceOptions {
    const o = this.opts;
    const limits = this.limits();
    const share = o.reserveShare ?? 0.25;
    const constraints = [...(o.platformConstraints === false ? [] : [`node.labels.${platformNodeLabel(spec.platform)} == true`]), ...(o.constraints ?? [])];
    return {
      Name: vmObjectName(spec.vmId),
      Labels: this.vmLabels(spec),
      TaskTemplate: {
        ContainerSpec: {
          Image: this.images[spec.platform],
          Labels: { [TASK_LABELS.vmId]: spec.vmId, [TASK_LABELS.gateway]: this.gatewayId },
          // the agent binds every address of its node and tells UCs the node's name, unless set
          // (service templates: {{.Node.Hostname}} is filled in on the node the task lands on)
          Env: this.vmEnv(spec, { host: '0.0.0.0', publicHost: '{{.Node.Hostname}}' }, { secret: SWARM_SECRET_FILE, redisUrl: SWARM_REDIS_URL_FILE, extraCa: SWARM_EXTRA_CA_FILE }),
          Secrets: [
            { SecretID: secretId, SecretName: vmObjectName(spec.vmId), File: { Name: SWARM_SECRET_NAME, UID: String(AGENT_UID), GID: String(AGENT_UID), Mode: 0o400 } },
            { SecretID: redisSecretId, SecretName: redisSecretName(spec.vmId), File: { Name: SWARM_REDIS_URL_NAME, UID: String(AGENT_UID), GID: String(AGENT_UID), Mode: 0o400 } },
            ...(o.extraCaCerts ? [{ SecretID: caSecretId, SecretName: caSecretName(spec.vmId), File: { Name: SWARM_EXTRA_CA_NAME, UID: String(AGENT_UID), GID: String(AGENT_UID), Mode: 0o400 } }] : []),
          ],
          Init: o.init ?? true,
          StopGracePeriod: (o.stopTimeoutSec ?? 5) * 1e9,
          HealthCheck: this.healthcheck(),
          CapabilityDrop: ['ALL'],
          // services have no ShmSize: /dev/shm as a tmpfs of that size instead
          ...(limits.shmBytes ? { Mounts: [{ Type: 'tmpfs', Target: '/dev/shm', Source: '', TmpfsOptions: { SizeBytes: limits.shmBytes, Mode: 0o1777 } }] } : {}),
        },
        Resources: {
          Limits: {
            ...(limits.cpus ? { NanoCPUs: Math.round(limits.cpus * 1e9) } : {}),
            ...(limits.memoryBytes ? { MemoryBytes: limits.memoryBytes } : {}),
            ...(limits.pids ? { Pids: limits.pids } : {}),
          },
          Reservations: {
            ...(limits.cpus && share ? { NanoCPUs: Math.round(limits.cpus * share * 1e9) } : {}),
            ...(limits.memoryBytes && share ? { MemoryBytes: Math.round(limits.memoryBytes * share) } : {}),
          },
        },
        // the VMM decides what replaces a VM, never the swarm
        RestartPolicy: { Condition: 'none', MaxAttempts: 0 },
        Placement: { Constraints: constraints },
        Networks: [{ Target: 'host' }],
      },
      Mode: { Replicated: { Replicas: 1 } },
    };
  }

  async launch(spec: VmLaunchSpec): Promise<LaunchedVm> {
    const image = await this.launchImage(spec.platform);
    const name = vmObjectName(spec.vmId);
    const secretId = await this.swarmSecret(spec, name, spec.secret);
    const redisSecretId = await this.swarmSecret(spec, redisSecretName(spec.vmId), spec.redisUrl);
    const caSecretId = this.opts.extraCaCerts ? await this.swarmSecret(spec, caSecretName(spec.vmId), this.opts.extraCaCerts) : '';
    const options = this.serviceOptions(spec, secretId, redisSecretId, caSecretId);
    const service = await this.createReplacing('service', name, () => this.docker.createService(options), () => this.removeService(spec.vmId, name));
    this.reported.delete(spec.vmId);
    // watched from now on: a removal from outside before the next poll is still this VM's loss
    this.seen.set(spec.vmId, service.id);
    this.opts.log?.info('VM service created', { vmId: spec.vmId, service: service.id.slice(0, 12), image, platform: spec.platform });
    return { providerRef: service.id };
  }

  /** Removes the VM's service (the swarm stops its task); succeeds when it is already gone. */
  async destroy(vmId: string, providerRef: string | null): Promise<void> {
    // removed by the VMM: not a VM lost from outside (its task container's death is not reported either)
    this.seen.delete(vmId);
    this.reported.add(vmId);
    const refs = [...new Set([providerRef, vmObjectName(vmId)].filter((r): r is string => !!r))];
    for (const ref of refs) await this.removeService(vmId, ref);
    await this.removeSecret(vmObjectName(vmId));
    await this.removeSecret(redisSecretName(vmId));
    await this.removeSecret(caSecretName(vmId)); // none when the gateway trusts no extra CA: 404, done
  }

  /**
   * The VM's swarm secret, once its service is gone: the manager refuses while a task of the removed
   * service still holds it, so it is asked again for a while (bounded); a secret still held after
   * that stays and is logged.
   */
  private async removeSecret(name: string): Promise<void> {
    const until = Date.now() + 15_000;
    for (;;) {
      try {
        await this.docker.getSecret(name).remove();
        return;
      } catch (e) {
        if (statusOf(e) === 404) return;
        // 400/409: still used by a task being removed
        if (![400, 409].includes(statusOf(e) ?? 0)) throw this.wrap(e, `could not remove secret ${name}`);
        if (Date.now() > until) {
          this.opts.log?.warn('VM secret still in use; left in the swarm', { secret: name });
          return;
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** a swarm secret of the VM's (labelled as its service is); its id */
  private async swarmSecret(spec: VmLaunchSpec, name: string, value: string): Promise<string> {
    const made = (await this.createReplacing('secret', name, () => this.docker.createSecret({ Name: name, Labels: this.vmLabels(spec), Data: Buffer.from(value).toString('base64') }), () => this.removeSecret(name))) as { id?: string; ID?: string };
    return made.id ?? made.ID ?? name;
  }


  /** ids of the VMs whose services run or are starting (task not ended, node not down) */
  async running(): Promise<string[]> {
    return (await this.services()).filter((s) => !s.lost).map((s) => s.vmId);
  }

  /**
   * Removes this deployment's VM services whose task ended (failed, shut down, node lost); returns
   * their VM ids. For start-up, after the VM records were reconciled with running().
   */
  async pruneExited(): Promise<string[]> {
    const ended = (await this.services()).filter((s) => s.lost);
    for (const s of ended) await this.removeService(s.vmId, s.serviceId);
    return ended.map((s) => s.vmId);
  }

  /** Tells of VMs whose task ended, whose node went down or whose service was removed from outside. */
  onVmExit(listener: (vmId: string, reason: string) => void): void {
    this.exitListeners.push(listener);
    // the manager's engine events: `die` of a VM's task container on this node (docker kill, a
    // crash) and `remove` of a VM's service come at once, while the task's failed state may reach
    // the manager tens of seconds later on a loaded machine; VMs on other nodes are seen by the poll
    if (!this.watchingEvents) void this.watchEvents({ type: ['container', 'service'], event: ['die', 'remove'] }, (e) => this.onEvent(e));
    if (!this.poller && !this.closed) this.schedulePoll(0);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poller) clearTimeout(this.poller);
    this.poller = null;
    this.closeEvents();
  }

  private onEvent(e: EngineEvent): void {
    const attrs = e.Actor?.Attributes ?? {};
    if (e.Type === 'container' && e.Action === 'die') {
      const vmId = attrs[TASK_LABELS.vmId];
      if (vmId && attrs[TASK_LABELS.gateway] === this.gatewayId) this.lost(vmId, `task failed (exit code ${attrs.exitCode ?? '?'}): its container died`);
    } else if (e.Type === 'service' && e.Action === 'remove') {
      // service events carry no labels: the VM is this deployment's when a poll or launch saw it
      const vmId = [...this.seen].find(([id, serviceId]) => serviceId === e.Actor?.ID || attrs.name === vmObjectName(id))?.[0];
      if (vmId) this.lost(vmId, 'service removed');
    }
  }

  private schedulePoll(ms: number): void {
    this.poller = setTimeout(() => void this.poll(), ms);
    this.poller.unref();
  }

  private async poll(): Promise<void> {
    if (this.closed) return;
    // what was known before this poll asked: a VM launched meanwhile is not missing from its answer
    const before = new Map(this.seen);
    try {
      // a call the manager never answers must not stop the watch: the next poll asks again
      let timer: NodeJS.Timeout | undefined;
      const now = await Promise.race([
        this.services(),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${POLL_TIMEOUT_MS} ms`)), POLL_TIMEOUT_MS))),
      ]).finally(() => clearTimeout(timer));
      const current = new Map(now.map((s) => [s.vmId, s.serviceId]));
      for (const [vmId] of before) if (!current.has(vmId)) this.lost(vmId, 'service removed');
      for (const s of now) if (s.lost) this.lost(s.vmId, s.lost);
      for (const vmId of this.reported) if (!current.has(vmId) && !this.seen.has(vmId)) this.reported.delete(vmId);
      for (const [vmId, serviceId] of this.seen) if (!before.has(vmId)) current.set(vmId, serviceId);
      this.seen = current;
    } catch (e) {
      // the manager is away for a moment: heartbeats cover the gap
      this.opts.log?.warn('swarm tasks unavailable; relying on heartbeats', { error: (e as Error).message });
    }
    if (!this.closed) this.schedulePoll(this.opts.pollMs ?? 1_000);
  }

  private lost(vmId: string, reason: string): void {
    if (this.reported.has(vmId)) return;
    this.reported.add(vmId);
    for (const l of this.exitListeners) l(vmId, reason);
  }

  /** this deployment's VM services and whether each still runs, from the services, their tasks and the nodes */
  private async services(): Promise<VmService[]> {
    const services = await this.docker.listServices({ filters: { label: this.scopeFilter() } });
    if (!services.length) return [];
    const [tasks, nodes] = await Promise.all([
      this.docker.listTasks({ filters: { service: services.map((s) => s.ID) } }) as Promise<SwarmTask[]>,
      this.docker.listNodes() as Promise<SwarmNode[]>,
    ]);
    const nodeById = new Map(nodes.map((n) => [n.ID, n]));
    const latest = new Map<string, SwarmTask>();
    for (const t of tasks) {
      const prev = latest.get(t.ServiceID);
      if (!prev || (t.Version?.Index ?? 0) > (prev.Version?.Index ?? 0)) latest.set(t.ServiceID, t);
    }
    const out: VmService[] = [];
    for (const s of services) {
      const vmId = s.Spec?.Labels?.[LABELS.vmId];
      if (!vmId) continue;
      out.push({ vmId, serviceId: s.ID, lost: whyLost(latest.get(s.ID), nodeById) });
    }
    return out;
  }

  private async removeService(vmId: string, ref: string): Promise<void> {
    const service = this.docker.getService(ref);
    const info = await this.ownedBy(vmId, ref, 'service', () => service.inspect() as Promise<Docker.Service>, (i) => ({ id: i.ID, labels: i.Spec?.Labels ?? {} }));
    if (!info) return;
    try {
      await service.remove();
    } catch (e) {
      if (statusOf(e) !== 404) throw this.wrap(e, `could not remove service ${ref}`);
    }
    this.opts.log?.info('VM service removed', { vmId, service: info.ID.slice(0, 12) });
  }
}

/** why a service's VM no longer runs, from its latest task and that task's node (null: it runs or starts) */
function whyLost(task: SwarmTask | undefined, nodes: Map<string, SwarmNode>): string | null {
  if (!task) return null; // just created: the scheduler has not made its task yet
  const state = task.Status?.State ?? 'unknown';
  if (ENDED.has(state)) {
    const exit = task.Status?.ContainerStatus?.ExitCode;
    const detail = task.Status?.Err || task.Status?.Message || '';
    return `task ${state}${exit !== undefined && exit !== null ? ` (exit code ${exit})` : ''}${detail ? `: ${detail}` : ''}`;
  }
  const node = task.NodeID ? nodes.get(task.NodeID) : undefined;
  const nodeState = node?.Status?.State;
  if (task.NodeID && (!node || nodeState === 'down' || nodeState === 'disconnected')) {
    return `node ${node?.Description?.Hostname ?? task.NodeID} is ${nodeState ?? 'gone'}`;
  }
  return null;
}
