// DOCKER provider: each VM is a container `uve-vm-<vm id>` running the VM agent image of its
// platform (docker/build-images.js), on the host's network, with CPU/memory limits, labels that
// tie it to its VM record and to this deployment, and a health check on the agent's /healthz.
// The agent registers itself over UVE-5 like any VM; the pool replaces dead VMs, so containers are
// never restarted by Docker. See docs/docker.md.
import type Docker from 'dockerode';
import { CONTAINER_EXTRA_CA_FILE, CONTAINER_REDIS_URL_FILE, CONTAINER_SECRET_FILE, DockerVms, LABELS, secretArchive, statusOf, vmObjectName, type DockerVmOptions } from './docker-vm';
import type { LaunchedVm, VmLaunchSpec, VmProviderDriver } from './vm-provider';

/** how long destroy() waits for a removal another caller started */
const REMOVAL_WAIT_MS = 30_000;

export { BUILD_IMAGES_COMMAND, MissingImageError, agentVersion, defaultImages, dockerAvailable, ensureImages } from './docker-image';
export type { DockerConnection, ImageInfo } from './docker-image';
export { CONTAINER_REDIS_URL_FILE, CONTAINER_SECRET_DIR, CONTAINER_SECRET_FILE, LABELS, secretArchive } from './docker-vm';

export const containerName = vmObjectName;

export type { DockerHealthcheckOptions } from './docker-vm';
export type DockerProviderOptions = DockerVmOptions;

export class DockerProvider extends DockerVms<DockerProviderOptions> implements VmProviderDriver {
  readonly kind = 'DOCKER' as const;

  /** what `launch` passes to the engine (exposed for tests and docs) */
  containerOptions(spec: VmLaunchSpec): Docker.ContainerCreateOptions {
    const o = this.opts;
    const limits = this.limits();
    return {
      name: containerName(spec.vmId),
      Image: this.images[spec.platform],
      Env: this.vmEnv(spec, { host: '127.0.0.1' }, { secret: CONTAINER_SECRET_FILE, redisUrl: CONTAINER_REDIS_URL_FILE, extraCa: CONTAINER_EXTRA_CA_FILE }),
      Labels: this.vmLabels(spec),
      StopTimeout: o.stopTimeoutSec ?? 5,
      Healthcheck: this.healthcheck(),
      HostConfig: {
        NetworkMode: 'host',
        RestartPolicy: { Name: 'no' },
        AutoRemove: false,
        Init: o.init ?? true,
        NanoCpus: Math.round(limits.cpus * 1e9),
        Memory: limits.memoryBytes,
        MemorySwap: limits.memoryBytes, // no swap on top of the limit
        PidsLimit: limits.pids,
        ShmSize: limits.shmBytes,
        SecurityOpt: ['no-new-privileges'],
        CapDrop: ['ALL'],
      },
    };
  }

  async launch(spec: VmLaunchSpec): Promise<LaunchedVm> {
    const image = await this.launchImage(spec.platform);
    const options = this.containerOptions(spec);
    const name = options.name!;
    const container = await this.createReplacing('container', name, () => this.docker.createContainer(options), () => this.removeContainer(spec.vmId, name));
    try {
      // the secrets go in as files before the agent starts (no Env shows them)
      await container.putArchive(secretArchive(spec.secret, spec.redisUrl, this.opts.extraCaCerts), { path: '/' });
      await container.start();
    } catch (e) {
      await container.remove({ force: true, v: true }).catch(() => undefined);
      throw this.wrap(e, `could not start container ${options.name}`);
    }
    this.opts.log?.info('VM container started', { vmId: spec.vmId, container: container.id.slice(0, 12), image, platform: spec.platform });
    return { providerRef: container.id };
  }

  /**
   * Stops (SIGTERM, then SIGKILL after stopTimeoutSec) and removes the VM's container, by its id
   * and by its name; succeeds when it is already gone. A container whose uve.vm.id label names
   * another VM is never touched.
   */
  async destroy(vmId: string, providerRef: string | null): Promise<void> {
    const refs = [...new Set([providerRef, containerName(vmId)].filter((r): r is string => !!r))];
    for (const ref of refs) await this.removeContainer(vmId, ref);
  }

  /** ids of the VMs whose containers run now (label uve.managed=true and this gateway's uve.gateway) */
  async running(): Promise<string[]> {
    const list = await this.docker.listContainers({
      filters: { label: this.scopeFilter(), status: ['running'] },
    });
    return list.map((c) => c.Labels?.[LABELS.vmId]).filter((id): id is string => !!id);
  }

  /**
   * Removes this gateway's VM containers that are no longer running (exited after a crash or a
   * `docker kill`, kept so far for their logs); returns their VM ids. For start-up, after the
   * VM records were reconciled with running().
   */
  async pruneExited(): Promise<string[]> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: this.scopeFilter(), status: ['exited', 'dead', 'created'] },
    });
    const ids: string[] = [];
    for (const c of list) {
      const vmId = c.Labels?.[LABELS.vmId];
      if (!vmId) continue;
      await this.removeContainer(vmId, c.Id);
      ids.push(vmId);
    }
    return ids;
  }

  /** Engine `die` events of this gateway's containers: a VM killed from outside is seen at once. */
  onVmExit(listener: (vmId: string, reason: string) => void): void {
    this.exitListeners.push(listener);
    if (this.watchingEvents) return;
    void this.watchEvents({ type: ['container'], event: ['die'], label: this.scopeFilter() }, (e) => {
      const attrs = e.Actor?.Attributes ?? {};
      const vmId = attrs[LABELS.vmId];
      if (vmId) for (const l of this.exitListeners) l(vmId, `container died (exit code ${attrs.exitCode ?? '?'})`);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.closeEvents();
  }

  private async removeContainer(vmId: string, ref: string): Promise<void> {
    const c = this.docker.getContainer(ref);
    const info = await this.ownedBy(vmId, ref, 'container', () => c.inspect(), (i) => ({ id: i.Id, labels: i.Config?.Labels ?? {} }));
    if (!info) return;
    if (info.State?.Running) {
      try {
        await c.stop({ t: this.opts.stopTimeoutSec ?? 5 });
      } catch (e) {
        // 304: stopped meanwhile; 404: removed meanwhile
        if (statusOf(e) !== 304 && statusOf(e) !== 404) throw this.wrap(e, `could not stop container ${ref}`);
      }
    }
    try {
      await c.remove({ force: true, v: true });
    } catch (e) {
      // 404: gone; 409: "removal already in progress" (another gateway or a concurrent destroy),
      // which is waited for: a removed VM's container is gone when destroy() returns
      if (statusOf(e) === 409) await this.removed(c, ref);
      else if (statusOf(e) !== 404) throw this.wrap(e, `could not remove container ${ref}`);
    }
    this.opts.log?.info('VM container removed', { vmId, container: info.Id.slice(0, 12) });
  }

  /** Waits (bounded) for a removal someone else started to end. */
  private async removed(c: Docker.Container, ref: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`container ${ref} was still being removed after ${REMOVAL_WAIT_MS} ms`)), REMOVAL_WAIT_MS);
    });
    try {
      await Promise.race([c.wait({ condition: 'removed' }), bound]);
    } catch (e) {
      if (statusOf(e) !== 404) throw this.wrap(e, `could not remove container ${ref}`);
    } finally {
      clearTimeout(timer);
    }
  }
}
