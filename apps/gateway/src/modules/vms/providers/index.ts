// Which VM providers this gateway runs: PROCESS always (the embedded default), DOCKER when an
// engine answers and the agent images exist (or required, with UVE_DOCKER=on or UVE_VM_PROVIDER=DOCKER),
// SWARM when it is the default provider (UVE_VM_PROVIDER=SWARM: the engine must be a swarm manager).
import fs from 'node:fs';
import path from 'node:path';
import { agentLaunchEnv, type Platform } from '@uve/protocol';
import type { GatewayConfig } from '../../../config';
import { ConfigError } from '../../../config';
import type { Logger } from '../../../common/logger';
import { allocatorEnv } from '../../../infra/allocator';
import { DockerProvider, dockerAvailable, BUILD_IMAGES_COMMAND } from './docker.provider';
import { AGENT_MAIN, ProcessProvider } from './process.provider';
import { SwarmProvider } from './swarm.provider';
import type { VmProviderDriver } from './vm-provider';

/** Where the PROCESS provider tracks its agents (see reapLeftoverAgents). */
export const agentStateDir = (config: GatewayConfig) => path.join(config.dataDir, 'agents');

/**
 * A private CA the gateway's own environment trusts (NODE_EXTRA_CA_CERTS): its PROCESS agents reach
 * a TLS VMM URL (UVE_PUBLIC_URL https:) signed by it, as the gateway would (container agents get the
 * certificates themselves: extraCaCertsFrom).
 */
export const trustedCaEnv = (own: string | undefined = process.env.NODE_EXTRA_CA_CERTS): Record<string, string> => (own ? { NODE_EXTRA_CA_CERTS: own } : {});

/**
 * The certificates of the gateway's NODE_EXTRA_CA_CERTS (PEM), which its container VMs get as a file
 * of their own (they cannot see the gateway's); null when unset or unreadable (logged: Node itself
 * only warns, and the VMs would then fail to reach a VMM URL signed by that CA).
 */
export function extraCaCertsFrom(log: Logger, file: string | undefined = process.env.NODE_EXTRA_CA_CERTS): string | null {
  if (!file) return null;
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    log.warn('NODE_EXTRA_CA_CERTS is not readable: container VMs will not trust its certificates', { file, error: (e as Error).message });
    return null;
  }
}

export async function createProviders(config: GatewayConfig, log: Logger): Promise<VmProviderDriver[]> {
  const providers: VmProviderDriver[] = [new ProcessProvider(log, agentStateDir(config), AGENT_MAIN, { ...allocatorEnv(config.glibcTunables), ...trustedCaEnv() })];
  // read (and, unreadable, logged) once for both container providers
  const extraCaCerts = config.vmProvider === 'SWARM' || config.docker !== 'off' ? extraCaCertsFrom(log) : null;
  if (config.vmProvider === 'SWARM') providers.push(await createSwarmProvider(config, log, extraCaCerts));
  const required = config.docker === 'on' || config.vmProvider === 'DOCKER';
  if (config.docker === 'off') return providers;
  if (!(await dockerAvailable({ timeoutMs: 2000 }))) {
    if (required) throw new ConfigError('The DOCKER provider is required but no Docker engine answers (DOCKER_HOST or /var/run/docker.sock). Start dockerd or set UVE_DOCKER=off.');
    log.info('no Docker engine: the DOCKER provider is off');
    return providers;
  }
  const docker = new DockerProvider({
    gatewayId: config.queuePrefix,
    images: configuredImages(config),
    cpus: config.dockerCpus,
    memoryBytes: config.dockerMemoryMb * 1024 * 1024,
    env: containerEnv(config),
    extraCaCerts,
    log,
  });
  try {
    await docker.ensureImages();
  } catch (e) {
    if (required) throw new ConfigError(`${(e as Error).message}`);
    log.info(`DOCKER provider off: agent images missing (build them with ${BUILD_IMAGES_COMMAND})`);
    return providers;
  }
  await docker.pruneExited();
  providers.push(docker);
  return providers;
}

/** what a VM's container starts with besides its own settings */
function containerEnv(config: GatewayConfig): Record<string, string> {
  return { ...agentLaunchEnv({ logLevel: config.logLevel }), ...allocatorEnv(config.glibcTunables) };
}

/** the images set by UVE_VM_IMAGE_*; the others are the defaults */
function configuredImages(config: GatewayConfig): Partial<Record<Platform, string>> {
  return { ...(config.vmImageWasm ? { WASM: config.vmImageWasm } : {}), ...(config.vmImageX11 ? { LINUX_X11: config.vmImageX11 } : {}) };
}

async function createSwarmProvider(config: GatewayConfig, log: Logger, extraCaCerts: string | null): Promise<SwarmProvider> {
  if (!(await dockerAvailable({ timeoutMs: 2000 }))) {
    throw new ConfigError('UVE_VM_PROVIDER=SWARM needs a Docker engine that is a swarm manager, but none answers (DOCKER_HOST or /var/run/docker.sock).');
  }
  const swarm = new SwarmProvider({
    gatewayId: config.queuePrefix,
    images: configuredImages(config),
    cpus: config.dockerCpus,
    memoryBytes: config.dockerMemoryMb * 1024 * 1024,
    platformConstraints: config.swarmPlatformLabels,
    vmHost: config.swarmVmHost,
    ...(config.swarmVmPublicHost ? { vmPublicHost: config.swarmVmPublicHost } : {}),
    ...(config.swarmStack ? { stack: config.swarmStack } : {}),
    env: containerEnv(config),
    extraCaCerts,
    log,
  });
  try {
    await swarm.ensureManager();
    // checked on the manager only: every node that runs VMs needs them (docs/scaling.md)
    await swarm.ensureImages();
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  await swarm.pruneExited();
  return swarm;
}
