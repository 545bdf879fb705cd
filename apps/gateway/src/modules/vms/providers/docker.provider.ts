// DOCKER provider: each VM is a container `uve-vm-<vm id>` running the VM agent image of its
// platform (docker/build-images.js), on the host's network, with CPU/memory limits, labels that
// tie it to its VM record and to this deployment, and a health check on the agent's /healthz.
// The agent registers itself over UVE-5 like any VM; the pool replaces dead VMs, so containers are
// never restarted by Docker. See docs/docker.md.
import type Docker from 'dockerode';
import type { Platform } from '@uve/protocol';
import type { Logger } from '../../../common/logger';
import {
  connectDocker,
  defaultImages,
  describeConnection,
  dockerAvailable,
  ensureImages,
  type DockerConnection,
  type ImageInfo,
} from './docker-image';
import { agentEnv, type LaunchedVm, type VmLaunchSpec, type VmProviderDriver } from './vm-provider';

export { BUILD_IMAGES_COMMAND, MissingImageError, agentVersion, defaultImages, dockerAvailable, ensureImages } from './docker-image';
export type { DockerConnection, ImageInfo } from './docker-image';

/** labels on every VM container */
export const LABELS = {
  managed: 'uve.managed',
  vmId: 'uve.vm.id',
  vmName: 'uve.vm.name',
  platform: 'uve.vm.platform',
  gateway: 'uve.gateway',
} as const;

export const containerName = (vmId: string): string => `uve-vm-${vmId}`;

/** the images' agent user (docker/build-images.js) and where its secret is put, readable by it only */
const AGENT_UID = 10001;
export const CONTAINER_SECRET_DIR = '/home/uve/.uve';
export const CONTAINER_SECRET_FILE = `${CONTAINER_SECRET_DIR}/vm-secret`;

/**
 * A tar (ustar) of the secret's folder (0700) and file (0400), both the agent user's: copied into
 * the container before it starts, so the secret is in no Env (`docker inspect` shows none) and
 * needs no file on the engine's host.
 */
export function secretArchive(secret: string): Buffer {
  const header = (name: string, mode: number, size: number, type: '0' | '5'): Buffer => {
    const h = Buffer.alloc(512);
    const put = (value: string, at: number, len: number) => h.write(value.slice(0, len), at, len, 'latin1');
    const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, '0');
    put(name, 0, 100);
    put(`${octal(mode, 8)}\0`, 100, 8);
    put(`${octal(AGENT_UID, 8)}\0`, 108, 8);
    put(`${octal(AGENT_UID, 8)}\0`, 116, 8);
    put(`${octal(size, 12)}\0`, 124, 12);
    put(`${octal(Math.floor(Date.now() / 1000), 12)}\0`, 136, 12);
    put('        ', 148, 8);
    put(type, 156, 1);
    put('ustar\0', 257, 6);
    put('00', 263, 2);
    let sum = 0;
    for (const b of h) sum += b;
    put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    return h;
  };
  const data = Buffer.from(secret, 'utf8');
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  const dir = CONTAINER_SECRET_DIR.slice(1);
  return Buffer.concat([header(`${dir}/`, 0o700, 0, '5'), header(`${dir}/vm-secret`, 0o400, data.length, '0'), data, pad, Buffer.alloc(1024)]);
}

export interface DockerHealthcheckOptions {
  /** default 5000 */
  intervalMs?: number;
  /** default 3000 */
  timeoutMs?: number;
  /** failures during this time after start do not count; default 20000 */
  startPeriodMs?: number;
  /** consecutive failures that make the container unhealthy; default 3 */
  retries?: number;
}

export interface DockerProviderOptions {
  /** engine connection: a dockerode instance or its options; default DOCKER_HOST, else /var/run/docker.sock */
  docker?: DockerConnection;
  /** image per platform; default uve/vm-agent-wasm:<agent version>, uve/vm-agent-x11:<agent version> */
  images?: Partial<Record<Platform, string>>;
  /** CPUs per VM (HostConfig.NanoCpus = cpus * 1e9); default 1; 0 = no limit */
  cpus?: number;
  /** memory per VM, bytes (HostConfig.Memory, swap not allowed beyond it); default 1 GiB; 0 = no limit */
  memoryBytes?: number;
  /** processes per VM (HostConfig.PidsLimit); default 1024; 0 = no limit */
  pidsLimit?: number;
  /** size of the VM's /dev/shm (HostConfig.ShmSize), where LINUX_X11 sessions keep their Xvfb framebuffers; default 256 MiB */
  shmBytes?: number;
  /**
   * Value of the `uve.gateway` label: the scope `running()` looks at. Use one value for every
   * gateway of a deployment (they share the VM pool) and different ones for deployments sharing an
   * engine. Default 'uve'.
   */
  gatewayId?: string;
  /** UVE_VM_HOST, the address the agent's UVE-3 server binds to (host network); default 127.0.0.1 */
  vmHost?: string;
  /** UVE_VM_PUBLIC_HOST, the host UCs connect to; default vmHost */
  vmPublicHost?: string;
  /** seconds between SIGTERM and SIGKILL when a VM is destroyed; default 5 */
  stopTimeoutSec?: number;
  healthcheck?: DockerHealthcheckOptions;
  /** run docker-init as PID 1 (reaps the X server's and encoders' orphans, forwards signals); default true */
  init?: boolean;
  /** more agent environment, e.g. UVE_LOG_LEVEL, UVE_VM_CODECS (the launch spec's values win) */
  env?: Record<string, string>;
  log?: Logger;
}

const GIB = 1024 ** 3;
const MS = 1_000_000; // nanoseconds

type DockerError = Error & { statusCode?: number };
const statusOf = (e: unknown): number | undefined => (e as DockerError)?.statusCode;

export class DockerProvider implements VmProviderDriver {
  readonly kind = 'DOCKER' as const;
  readonly seesAllVms = true;
  readonly docker: Docker;
  readonly images: Record<Platform, string>;
  readonly gatewayId: string;
  private readonly opts: DockerProviderOptions;
  private closed = false;
  private readonly exitListeners: ((vmId: string, reason: string) => void)[] = [];
  private events: NodeJS.ReadableStream | null = null;

  constructor(options: DockerProviderOptions = {}) {
    this.opts = options;
    this.docker = connectDocker(options.docker);
    const defaults = options.images?.WASM && options.images?.LINUX_X11 ? null : defaultImages();
    this.images = { ...(defaults as Record<Platform, string>), ...options.images } as Record<Platform, string>;
    this.gatewayId = options.gatewayId ?? 'uve';
    for (const [name, v, min] of [['cpus', options.cpus, 0], ['memoryBytes', options.memoryBytes, 0], ['pidsLimit', options.pidsLimit, 0], ['shmBytes', options.shmBytes, 0], ['stopTimeoutSec', options.stopTimeoutSec, 0]] as const) {
      if (v !== undefined && (!Number.isFinite(v) || v < min)) throw new Error(`DockerProvider: ${name} must be a number >= ${min}, got ${v}`);
    }
    if (options.memoryBytes && options.memoryBytes < 6 * 1024 * 1024) throw new Error('DockerProvider: memoryBytes must be at least 6 MiB (Docker minimum) or 0');
  }

  /** Checks the images (default: every platform's) exist; throws naming the build command otherwise. */
  ensureImages(platforms: Platform[] = Object.keys(this.images) as Platform[]): Promise<ImageInfo[]> {
    return ensureImages(this.images, platforms, this.opts.docker ?? this.docker);
  }

  /** True when the engine answers within `timeoutMs`. */
  available(timeoutMs = 2_000): Promise<boolean> {
    return dockerAvailable({ docker: this.docker, timeoutMs });
  }

  /** what `launch` passes to the engine (exposed for tests and docs) */
  containerOptions(spec: VmLaunchSpec): Docker.ContainerCreateOptions {
    const o = this.opts;
    const hc = o.healthcheck ?? {};
    const cpus = o.cpus ?? 1;
    const memory = o.memoryBytes ?? GIB;
    const vmHost = o.vmHost ?? '127.0.0.1';
    const env: Record<string, string> = {
      ...o.env,
      ...agentEnv(spec, 'DOCKER', CONTAINER_SECRET_FILE),
      UVE_VM_HOST: vmHost,
      UVE_VM_PUBLIC_HOST: o.vmPublicHost ?? vmHost,
      UVE_VM_PORT: '0',
    };
    return {
      name: containerName(spec.vmId),
      Image: this.images[spec.platform],
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      Labels: {
        [LABELS.managed]: 'true',
        [LABELS.vmId]: spec.vmId,
        [LABELS.vmName]: spec.name,
        [LABELS.platform]: spec.platform,
        [LABELS.gateway]: this.gatewayId,
      },
      StopTimeout: o.stopTimeoutSec ?? 5,
      // no Test: the image's HEALTHCHECK command is kept (GET /healthz through /uve/healthcheck.js
      // in both images), only its timing is set here
      Healthcheck: {
        Interval: (hc.intervalMs ?? 5_000) * MS,
        Timeout: (hc.timeoutMs ?? 3_000) * MS,
        StartPeriod: (hc.startPeriodMs ?? 20_000) * MS,
        Retries: hc.retries ?? 3,
      },
      HostConfig: {
        NetworkMode: 'host',
        RestartPolicy: { Name: 'no' },
        AutoRemove: false,
        Init: o.init ?? true,
        NanoCpus: Math.round(cpus * 1e9),
        Memory: memory,
        MemorySwap: memory, // no swap on top of the limit
        PidsLimit: o.pidsLimit ?? 1024,
        ShmSize: o.shmBytes ?? 256 * 1024 * 1024,
        SecurityOpt: ['no-new-privileges'],
        CapDrop: ['ALL'],
      },
    };
  }

  async launch(spec: VmLaunchSpec): Promise<LaunchedVm> {
    if (this.closed) throw new Error('the DOCKER provider is closed');
    const image = this.images[spec.platform];
    if (!image) throw new Error(`no Docker image configured for ${spec.platform} VMs`);
    await this.ensureImages([spec.platform]);
    const options = this.containerOptions(spec);
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer(options);
    } catch (e) {
      if (statusOf(e) !== 409) throw this.wrap(e, `could not create container ${options.name}`);
      // a container of this VM left by an earlier, failed launch: replace it
      await this.removeContainer(spec.vmId, options.name!);
      container = await this.docker.createContainer(options).catch((e2: unknown) => {
        throw this.wrap(e2, `could not create container ${options.name}`);
      });
    }
    try {
      await container.putArchive(secretArchive(spec.secret), { path: '/' });
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
      filters: { label: [`${LABELS.managed}=true`, `${LABELS.gateway}=${this.gatewayId}`], status: ['running'] },
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
      filters: { label: [`${LABELS.managed}=true`, `${LABELS.gateway}=${this.gatewayId}`], status: ['exited', 'dead', 'created'] },
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
    if (!this.events) void this.watchEvents();
  }

  private async watchEvents(): Promise<void> {
    if (this.closed) return;
    try {
      const stream = await this.docker.getEvents({
        filters: { type: ['container'], event: ['die'], label: [`${LABELS.managed}=true`, `${LABELS.gateway}=${this.gatewayId}`] },
      });
      this.events = stream;
      let buf = '';
      stream.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          try {
            const attrs = JSON.parse(line)?.Actor?.Attributes ?? {};
            const vmId = attrs[LABELS.vmId];
            if (vmId) for (const l of this.exitListeners) l(vmId, `container died (exit code ${attrs.exitCode ?? '?'})`);
          } catch {
            /* a partial or foreign line */
          }
        }
      });
      // the engine restarted or the stream broke: watch again (heartbeats cover the gap)
      stream.on('end', () => this.rewatch());
      stream.on('error', () => this.rewatch());
    } catch (e) {
      this.opts.log?.warn('docker events unavailable; relying on heartbeats', { error: (e as Error).message });
      this.rewatch();
    }
  }

  private rewatch(): void {
    this.events = null;
    if (!this.closed) setTimeout(() => void this.watchEvents(), 2_000).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    (this.events as (NodeJS.ReadableStream & { destroy?: () => void }) | null)?.destroy?.();
    this.events = null;
  }

  private async removeContainer(vmId: string, ref: string): Promise<void> {
    const c = this.docker.getContainer(ref);
    let info: Docker.ContainerInspectInfo;
    try {
      info = await c.inspect();
    } catch (e) {
      if (statusOf(e) === 404) return;
      throw this.wrap(e, `could not inspect container ${ref}`);
    }
    const labels = info.Config?.Labels ?? {};
    if (labels[LABELS.managed] !== 'true' || labels[LABELS.vmId] !== vmId) {
      if (ref === containerName(vmId)) {
        this.opts.log?.warn('a container with the VM name is not this VM; left alone', { vmId, container: info.Id.slice(0, 12) });
        return;
      }
      throw new Error(`container ${ref} is not the container of VM ${vmId} (label ${LABELS.vmId}=${labels[LABELS.vmId] ?? 'none'}); not removed`);
    }
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
      // 404: gone; 409: "removal already in progress" (another gateway or a concurrent destroy)
      if (statusOf(e) !== 404 && statusOf(e) !== 409) throw this.wrap(e, `could not remove container ${ref}`);
    }
    this.opts.log?.info('VM container removed', { vmId, container: info.Id.slice(0, 12) });
  }

  private wrap(e: unknown, what: string): Error {
    const err = e as DockerError;
    const reason = (err as { json?: { message?: string } }).json?.message ?? err?.message ?? String(e);
    if ((err as { code?: string })?.code === 'ENOENT' || (err as { code?: string })?.code === 'ECONNREFUSED') {
      return new Error(`${what}: no Docker engine answers at ${describeConnection(this.opts.docker ?? this.docker)} (${reason})`);
    }
    return new Error(`${what}: ${reason}`);
  }
}
