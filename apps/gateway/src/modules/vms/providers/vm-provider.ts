// How the VMM gets VMs: a provider launches an agent (child process, Docker container) that then
// registers itself over UVE-5. PROCESS and DOCKER implement this one interface.
import { agentLaunchEnv, type Platform, type VmProvider } from '@uve/protocol';

export interface VmLaunchSpec {
  vmId: string;
  name: string;
  platform: Platform;
  capacity: number;
  /** the VM's credential for the VM Data endpoint; only its hash is stored */
  secret: string;
  gatewayUrl: string;
  redisUrl: string;
  queuePrefix: string;
}

export interface LaunchedVm {
  /** provider's handle (pid, container id), kept with the VM record */
  providerRef: string;
}

export interface VmProviderDriver {
  readonly kind: VmProvider;
  launch(spec: VmLaunchSpec): Promise<LaunchedVm>;
  /** stops and removes the VM; must succeed when it is already gone */
  destroy(vmId: string, providerRef: string | null): Promise<void>;
  /** VMs this provider runs now (for reconciliation at start); ids of VM records */
  running?(): Promise<string[]>;
  /**
   * whether `running()` sees every VM of this deployment (a shared Docker engine does; a PROCESS
   * provider sees only its own gateway's children), so a VM it does not list is gone for sure
   */
  readonly seesAllVms?: boolean;
  /** why this provider cannot run VMs of a platform on this host (null or absent: it can) */
  cannotRun?(platform: Platform): string | null;
  /** tells when a VM it runs stops on its own (faster than waiting for missed heartbeats) */
  onVmExit?(listener: (vmId: string, reason: string) => void): void;
  close(): Promise<void>;
}

/**
 * The agent's environment for a VM (see docs/vm-agent.md); providers add where it listens. No
 * secret: an environment is readable by every process of the agent's user (and Docker shows a
 * container's to whoever may inspect it). The VM secret reaches the agent as a file readable by
 * it only, at `secretFile` (UVE_VM_SECRET_FILE), which the provider writes.
 */
export function agentEnv(spec: VmLaunchSpec, provider: VmProvider, secretFile: string): Record<string, string> {
  return agentLaunchEnv({
    redisUrl: spec.redisUrl,
    gatewayUrl: spec.gatewayUrl,
    vmId: spec.vmId,
    vmSecretFile: secretFile,
    vmName: spec.name,
    platform: spec.platform,
    provider,
    capacity: String(spec.capacity),
    queuePrefix: spec.queuePrefix,
  });
}
