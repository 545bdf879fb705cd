// PROCESS provider (the embedded default): each VM is a vm-agent child process of this gateway.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Platform } from '@uve/protocol';
import { onPath } from '../../../infra/on-path';
import type { Logger } from '../../../common/logger';
import { AGENT_ROOT } from '../../../common/paths';
import { agentEnv, type LaunchedVm, type VmLaunchSpec, type VmProviderDriver } from './vm-provider';

/** The agent binary in this repository. */
export const AGENT_MAIN = path.join(AGENT_ROOT, 'dist/main.js');

export class ProcessProvider implements VmProviderDriver {
  readonly kind = 'PROCESS' as const;
  private readonly children = new Map<string, ChildProcess>();
  private readonly exitListeners: ((vmId: string, reason: string) => void)[] = [];

  constructor(private readonly log: Logger, private readonly agentMain = AGENT_MAIN, private readonly extraEnv: Record<string, string> = {}) {}

  onVmExit(listener: (vmId: string, reason: string) => void): void {
    this.exitListeners.push(listener);
  }

  async launch(spec: VmLaunchSpec): Promise<LaunchedVm> {
    const child = spawn(process.execPath, [this.agentMain], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        ...this.extraEnv,
        ...agentEnv(spec, 'PROCESS'),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', reject);
    });
    let tail = '';
    child.stderr!.on('data', (b: Buffer) => {
      tail = (tail + b.toString()).slice(-2000);
      for (const line of b.toString().split('\n')) if (line.trim()) this.log.debug('vm-agent', { vmId: spec.vmId, line });
    });
    this.children.set(spec.vmId, child);
    child.once('exit', (code, signal) => {
      this.children.delete(spec.vmId);
      const reason = `VM process exited (${signal ?? `code ${code}`})`;
      if (code !== 0) this.log.warn('vm-agent exited', { vmId: spec.vmId, code, signal, stderr: tail.slice(-500) });
      for (const l of this.exitListeners) l(spec.vmId, reason);
    });
    return { providerRef: String(child.pid) };
  }

  async destroy(vmId: string, providerRef: string | null): Promise<void> {
    const child = this.children.get(vmId);
    if (child) {
      await stopChild(child);
      return;
    }
    // a VM of an earlier run of this gateway: its pid is all we have
    const pid = Number(providerRef);
    if (Number.isInteger(pid) && pid > 1) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  }

  async running(): Promise<string[]> {
    return [...this.children.keys()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.children.values()].map((c) => stopChild(c)));
  }

  /** A LINUX_X11 VM runs its UAs under Xvfb, which must be installed on this host. */
  cannotRun(platform: Platform): string | null {
    if (platform === 'LINUX_X11' && !onPath('Xvfb')) return 'LINUX_X11 VMs need Xvfb on this host (Debian/Ubuntu: apt-get install xvfb)';
    return null;
  }
}

/** SIGTERM (the agent says vm.stopping and ends its sessions), SIGKILL if it lingers. */
function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
