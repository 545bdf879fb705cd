// What the DOCKER and SWARM providers share: a VM is an engine object (a container, or a swarm
// service) named uve-vm-<vm id>, running the agent image of its platform, labelled to tie it to its
// VM record and to its deployment, with the agent's environment and resource limits.
import type Docker from 'dockerode';
import { AGENT_ENV, agentLaunchEnv, type Platform, type VmProvider } from '@uve/protocol';
import type { Logger } from '../../../common/logger';
import { connectDocker, defaultImages, describeConnection, dockerAvailable, ensureImages, type DockerConnection, type ImageInfo } from './docker-image';
import { agentEnv, type VmLaunchSpec } from './vm-provider';

/** labels on every VM container (DOCKER) and service (SWARM) */
export const LABELS = {
  managed: 'uve.managed',
  vmId: 'uve.vm.id',
  vmName: 'uve.vm.name',
  platform: 'uve.vm.platform',
  gateway: 'uve.gateway',
} as const;

/** name of a VM's container (DOCKER) or service (SWARM) */
export const vmObjectName = (vmId: string): string => `uve-vm-${vmId}`;

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

export interface DockerVmOptions {
  /** engine connection: a dockerode instance or its options; default DOCKER_HOST, else /var/run/docker.sock */
  docker?: DockerConnection;
  /** image per platform; default uve/vm-agent-wasm:<agent version>, uve/vm-agent-x11:<agent version> */
  images?: Partial<Record<Platform, string>>;
  /** CPUs per VM (limit); default 1; 0 = no limit */
  cpus?: number;
  /** memory per VM, bytes (limit); default 1 GiB; 0 = no limit */
  memoryBytes?: number;
  /** processes per VM; default 1024; 0 = no limit */
  pidsLimit?: number;
  /** size of the VM's /dev/shm, where LINUX_X11 sessions keep their Xvfb framebuffers; default 256 MiB */
  shmBytes?: number;
  /**
   * Value of the `uve.gateway` label: the scope `running()` looks at. Use one value for every
   * gateway of a deployment (they share the VM pool) and different ones for deployments sharing an
   * engine. Default 'uve'.
   */
  gatewayId?: string;
  /** UVE_VM_HOST, the address the agent's UVE-3 server binds to (host network) */
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
  /**
   * certificates (PEM) the agents trust besides the system's: the gateway's own NODE_EXTRA_CA_CERTS,
   * so that VMs reach a VMM URL signed by a private CA; a file in each VM, named by its
   * NODE_EXTRA_CA_CERTS (extraCaCertsFrom)
   */
  extraCaCerts?: string | null;
  log?: Logger;
}

export const GIB = 1024 ** 3;
export const MIB = 1024 ** 2;
const MS = 1_000_000; // nanoseconds

type DockerError = Error & { statusCode?: number; code?: string; json?: { message?: string } };
export const statusOf = (e: unknown): number | undefined => (e as DockerError)?.statusCode;

/** The engine, the images and the agent's environment, for a provider whose VMs are engine objects. */
/** the images' agent user (docker/build-images.js) and where its secret is put, readable by it only */
export const AGENT_UID = 10001;
export const CONTAINER_SECRET_DIR = '/home/uve/.uve';
export const CONTAINER_SECRET_FILE = `${CONTAINER_SECRET_DIR}/vm-secret`;
/** the Redis URL, which may carry the Redis password, is a file beside it (REDIS_URL_FILE) */
export const CONTAINER_REDIS_URL_FILE = `${CONTAINER_SECRET_DIR}/redis-url`;
/** the certificates the agent trusts besides the system's (DockerVmOptions.extraCaCerts), beside them */
export const CONTAINER_EXTRA_CA_FILE = `${CONTAINER_SECRET_DIR}/extra-ca.pem`;

/**
 * A tar (ustar) of the secrets' folder (0700) and files (0400: the VM secret and the Redis URL),
 * all the agent user's: copied into the container before it starts, so no secret is in its Env
 * (`docker inspect` shows none) and none needs a file on the engine's host.
 */
export function secretArchive(secret: string, redisUrl: string, extraCaCerts: string | null = null): Buffer {
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
  const file = (at: string, text: string): Buffer[] => {
    const data = Buffer.from(text, 'utf8');
    return [header(at.slice(1), 0o400, data.length, '0'), data, Buffer.alloc((512 - (data.length % 512)) % 512)];
  };
  return Buffer.concat([
    header(`${CONTAINER_SECRET_DIR.slice(1)}/`, 0o700, 0, '5'),
    ...file(CONTAINER_SECRET_FILE, secret),
    ...file(CONTAINER_REDIS_URL_FILE, redisUrl),
    ...(extraCaCerts ? file(CONTAINER_EXTRA_CA_FILE, extraCaCerts) : []),
    Buffer.alloc(1024),
  ]);
}

const unixSeconds = () => Math.floor(Date.now() / 1000);

/** one line of the engine's event stream (GET /events) */
export interface EngineEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

export abstract class DockerVms<O extends DockerVmOptions> {
  abstract readonly kind: VmProvider;
  /** the engine (or the swarm's manager) sees every VM of the deployment, whichever gateway made it */
  readonly seesAllVms = true;
  protected closed = false;
  protected readonly exitListeners: ((vmId: string, reason: string) => void)[] = [];
  readonly docker: Docker;
  readonly images: Record<Platform, string>;
  readonly gatewayId: string;

  constructor(protected readonly opts: O) {
    this.docker = connectDocker(opts.docker);
    const defaults = opts.images?.WASM && opts.images?.LINUX_X11 ? null : defaultImages();
    this.images = { ...(defaults as Record<Platform, string>), ...opts.images } as Record<Platform, string>;
    this.gatewayId = opts.gatewayId ?? 'uve';
    const who = this.constructor.name;
    for (const [name, v] of [['cpus', opts.cpus], ['memoryBytes', opts.memoryBytes], ['pidsLimit', opts.pidsLimit], ['shmBytes', opts.shmBytes], ['stopTimeoutSec', opts.stopTimeoutSec]] as const) {
      if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new Error(`${who}: ${name} must be a number >= 0, got ${v}`);
    }
    if (opts.memoryBytes && opts.memoryBytes < 6 * MIB) throw new Error(`${who}: memoryBytes must be at least 6 MiB (Docker minimum) or 0`);
  }

  /** the followed event stream; 'opening' while it is asked for */
  private events: (NodeJS.ReadableStream & { destroy?: () => void }) | 'opening' | null = null;

  /** whether an event stream is followed (or being opened) */
  protected get watchingEvents(): boolean {
    return this.events !== null;
  }

  /**
   * Follows the engine's events matching `filters`, calling `onEvent` for each; opened again when
   * the stream ends or breaks (the engine restarted), from a second before it broke: the engine
   * replays what happened meanwhile (`since`), so `onEvent` may see an event twice, never none.
   * Ends with closeEvents().
   */
  protected async watchEvents(filters: Record<string, string[]>, onEvent: (e: EngineEvent) => void, since?: number): Promise<void> {
    if (this.closed) return;
    this.events = 'opening';
    try {
      const stream = (await this.docker.getEvents({ filters, ...(since !== undefined ? { since } : {}) })) as NodeJS.ReadableStream & { destroy?: () => void };
      if (this.closed || this.events !== 'opening') return stream.destroy?.();
      this.events = stream;
      let buf = '';
      stream.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          let event: EngineEvent;
          try {
            event = JSON.parse(line) as EngineEvent;
          } catch {
            continue; // a partial or foreign line
          }
          onEvent(event);
        }
      });
      stream.on('end', () => this.rewatch(stream, filters, onEvent, unixSeconds() - 1));
      stream.on('error', () => this.rewatch(stream, filters, onEvent, unixSeconds() - 1));
    } catch (e) {
      this.opts.log?.warn(`${this.kind}: engine events unavailable; relying on the other signals`, { error: (e as Error).message });
      // (never opened: from where this attempt was to start)
      this.rewatch('opening', filters, onEvent, since);
    }
  }

  private rewatch(stream: NodeJS.ReadableStream | 'opening', filters: Record<string, string[]>, onEvent: (e: EngineEvent) => void, since: number | undefined): void {
    if (this.events !== stream) return; // an older stream ending after closeEvents() or a rewatch
    this.events = null;
    if (!this.closed) setTimeout(() => void this.watchEvents(filters, onEvent, since), 2_000).unref();
  }

  protected closeEvents(): void {
    if (this.events && this.events !== 'opening') this.events.destroy?.();
    this.events = null;
  }

  /** Checks the images (default: every platform's) exist; throws naming the build command otherwise. */
  ensureImages(platforms: Platform[] = Object.keys(this.images) as Platform[]): Promise<ImageInfo[]> {
    return ensureImages(this.images, platforms, this.opts.docker ?? this.docker);
  }

  /** True when the engine answers within `timeoutMs`. */
  available(timeoutMs = 2_000): Promise<boolean> {
    return dockerAvailable({ docker: this.docker, timeoutMs });
  }

  /** the image to launch a VM of a platform from, checked to exist on the engine; throws once closed */
  protected async launchImage(platform: Platform): Promise<string> {
    if (this.closed) throw new Error(`the ${this.kind} provider is closed`);
    const image = this.images[platform];
    if (!image) throw new Error(`no Docker image configured for ${platform} VMs`);
    await this.ensureImages([platform]);
    return image;
  }

  /** the labels tying an engine object to its VM record and this deployment */
  protected vmLabels(spec: VmLaunchSpec): Record<string, string> {
    return {
      [LABELS.managed]: 'true',
      [LABELS.vmId]: spec.vmId,
      [LABELS.vmName]: spec.name,
      [LABELS.platform]: spec.platform,
      [LABELS.gateway]: this.gatewayId,
    };
  }

  /** label filter of this deployment's VM objects */
  protected scopeFilter(): string[] {
    return [`${LABELS.managed}=true`, `${LABELS.gateway}=${this.gatewayId}`];
  }

  /**
   * The agent's environment as KEY=value lines. Where it listens: vmHost, else `defaults.host`; the
   * host UCs connect to: vmPublicHost, else vmHost when set to one address (not 0.0.0.0), else
   * `defaults.publicHost` (or host).
   */
  /**
   * `files`: where the VM's secret and the Redis URL (it may carry a password) are inside the
   * container; the Env names the files, never the values, so `docker inspect` shows no secret
   */
  protected vmEnv(spec: VmLaunchSpec, defaults: { host: string; publicHost?: string }, files: { secret: string; redisUrl: string; extraCa: string }): string[] {
    const o = this.opts;
    const { [AGENT_ENV.redisUrl]: _inFile, ...agent } = agentEnv(spec, this.kind, files.secret);
    const env: Record<string, string> = {
      ...o.env,
      ...agent,
      ...agentLaunchEnv({
        redisUrlFile: files.redisUrl,
        host: o.vmHost ?? defaults.host,
        publicHost: o.vmPublicHost ?? (o.vmHost && o.vmHost !== '0.0.0.0' ? o.vmHost : (defaults.publicHost ?? defaults.host)),
        port: '0',
      }),
      ...(o.extraCaCerts ? { NODE_EXTRA_CA_CERTS: files.extraCa } : {}),
    };
    return Object.entries(env).map(([k, v]) => `${k}=${v}`);
  }

  /** limits with their defaults: CPUs, memory and processes per VM (0 = none) and /dev/shm */
  protected limits(): { cpus: number; memoryBytes: number; pids: number; shmBytes: number } {
    return { cpus: this.opts.cpus ?? 1, memoryBytes: this.opts.memoryBytes ?? GIB, pids: this.opts.pidsLimit ?? 1024, shmBytes: this.opts.shmBytes ?? 256 * MIB };
  }

  /**
   * The health check's timing. No Test: the image's HEALTHCHECK command is kept (GET /healthz
   * through /uve/healthcheck.js in both images).
   */
  protected healthcheck(): { Interval: number; Timeout: number; StartPeriod: number; Retries: number } {
    const hc = this.opts.healthcheck ?? {};
    return {
      Interval: (hc.intervalMs ?? 5_000) * MS,
      Timeout: (hc.timeoutMs ?? 3_000) * MS,
      StartPeriod: (hc.startPeriodMs ?? 20_000) * MS,
      Retries: hc.retries ?? 3,
    };
  }

  /**
   * Creates a VM's engine object named `name`; when one of that name exists (left by an earlier,
   * failed launch of this VM), removes it with `removeLeftover` and creates it again.
   */
  protected async createReplacing<T>(what: 'container' | 'service' | 'secret', name: string, create: () => Promise<T>, removeLeftover: () => Promise<void>): Promise<T> {
    try {
      return await create();
    } catch (e) {
      if (statusOf(e) !== 409) throw this.wrap(e, `could not create ${what} ${name}`);
    }
    await removeLeftover();
    return create().catch((e: unknown) => {
      throw this.wrap(e, `could not create ${what} ${name}`);
    });
  }

  /**
   * Inspects the engine object `ref` (a VM's container or service) for removal: null when it is
   * gone, or when it only bears the VM's name but is not this VM's (left alone, with a warning); an
   * error when `ref`, an id, names an object that is not this VM's.
   */
  protected async ownedBy<T>(vmId: string, ref: string, what: 'container' | 'service', inspect: () => Promise<T>, describe: (info: T) => { id: string; labels: Record<string, string> }): Promise<T | null> {
    let info: T;
    try {
      info = await inspect();
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw this.wrap(e, `could not inspect ${what} ${ref}`);
    }
    const { id, labels } = describe(info);
    if (labels[LABELS.managed] === 'true' && labels[LABELS.vmId] === vmId) return info;
    if (ref === vmObjectName(vmId)) {
      this.opts.log?.warn(`a ${what} with the VM name is not this VM; left alone`, { vmId, [what]: id.slice(0, 12) });
      return null;
    }
    throw new Error(`${what} ${ref} is not the ${what} of VM ${vmId} (label ${LABELS.vmId}=${labels[LABELS.vmId] ?? 'none'}); not removed`);
  }

  protected wrap(e: unknown, what: string): Error {
    const err = e as DockerError;
    const reason = err?.json?.message ?? err?.message ?? String(e);
    if (err?.code === 'ENOENT' || err?.code === 'ECONNREFUSED') {
      return new Error(`${what}: no Docker engine answers at ${describeConnection(this.opts.docker ?? this.docker)} (${reason})`);
    }
    return new Error(`${what}: ${reason}`);
  }
}
