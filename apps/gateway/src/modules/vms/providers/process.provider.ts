// PROCESS provider (the embedded default): each VM is a vm-agent child process of this gateway.
// Each agent is tracked in the data folder (pid and start time, and the gateway's), so that after
// a crash of the gateway the next start stops the agents it left, and never a process that
// merely reused one of their pids.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { agentLaunchEnv, type Platform } from '@uve/protocol';
import { onPath } from '../../../infra/on-path';
import type { Logger } from '../../../common/logger';
import { commandLine, descendants, identify, isRunning, signal, terminate, type ProcessIdentity } from '../../../infra/proc';
import { AGENT_ROOT } from '../../../common/paths';
import { agentEnv, type LaunchedVm, type VmLaunchSpec, type VmProviderDriver } from './vm-provider';

/** The agent binary in this repository. */
export const AGENT_MAIN = path.join(AGENT_ROOT, 'dist/main.js');

export class ProcessProvider implements VmProviderDriver {
  readonly kind = 'PROCESS' as const;
  private readonly children = new Map<string, ChildProcess>();
  private readonly exitListeners: ((vmId: string, reason: string) => void)[] = [];

  private readonly self = identify(process.pid)!;

  constructor(
    private readonly log: Logger,
    /** where the running agents are tracked (UVE_DATA_DIR/agents) */
    private readonly stateDir: string,
    private readonly agentMain = AGENT_MAIN,
    private readonly extraEnv: Record<string, string> = {},
  ) {
    fs.mkdirSync(stateDir, { recursive: true });
    fs.chmodSync(stateDir, 0o700); // it holds the agents' secrets
  }

  private trackFile(vmId: string): string {
    return trackFile(this.stateDir, vmId);
  }

  /** the VM's secret, for its agent only (0600, removed with the VM) */
  private secretFile(vmId: string): string {
    return secretFile(this.stateDir, vmId);
  }

  private tracked(vmId: string): TrackedAgent | null {
    return tracked(this.stateDir, vmId);
  }


  onVmExit(listener: (vmId: string, reason: string) => void): void {
    this.exitListeners.push(listener);
  }

  async launch(spec: VmLaunchSpec): Promise<LaunchedVm> {
    const secretFile = this.secretFile(spec.vmId);
    fs.rmSync(secretFile, { force: true });
    fs.writeFileSync(secretFile, spec.secret, { mode: 0o600 });
    // the agent's data folder (its UA packages), removed by whichever outlives the other: the agent
    // when it exits (this gateway killed), this gateway when the agent exits (the agent killed, or
    // exiting past its stop bound), the next start when both were; each used to leave one in /tmp
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-vm-'));
    keepUntilExit(dataDir);
    const cleanUp = () => {
      fs.rmSync(secretFile, { force: true });
      fs.rmSync(dataDir, { recursive: true, force: true });
      liveDataDirs.delete(dataDir);
    };
    const child = spawn(process.execPath, [this.agentMain], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        ...this.extraEnv,
        ...agentEnv(spec, 'PROCESS', secretFile),
        // killed before the agent is up, this gateway leaves it an orphan (and untracked, when killed
        // before the track file below): the agent checks its parent is this pid before it registers
        ...agentLaunchEnv({ parentPid: String(process.pid), dataDir, dataTemporary: 'true' }),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e) => {
        cleanUp();
        reject(e);
      });
    });
    let tail = '';
    child.stderr!.on('data', (b: Buffer) => {
      tail = (tail + b.toString()).slice(-2000);
      for (const line of b.toString().split('\n')) if (line.trim()) this.log.debug('vm-agent', { vmId: spec.vmId, line });
    });
    this.children.set(spec.vmId, child);
    const agent = identify(child.pid!);
    if (agent) fs.writeFileSync(this.trackFile(spec.vmId), JSON.stringify({ vmId: spec.vmId, agent, gateway: this.self, dataDir } satisfies TrackedAgent));
    child.once('exit', (code, signal) => {
      this.children.delete(spec.vmId);
      fs.rmSync(this.trackFile(spec.vmId), { force: true });
      cleanUp();
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
    // a VM of an earlier run of this gateway: only the very process that was tracked, never a reused pid
    const t = this.tracked(vmId);
    if (t && String(t.agent.pid) === providerRef && isRunning(t.agent)) await stopTree(t.agent, 5000);
    forget(this.stateDir, vmId, t);
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

/**
 * The data folders of this process's agents that have not exited: removed as the gateway exits
 * before them (a forced stop kills them with SIGKILL, and the gateway goes before their exit is seen).
 */
const liveDataDirs = new Set<string>();
let removedAtExit = false;
function keepUntilExit(dir: string): void {
  liveDataDirs.add(dir);
  if (removedAtExit) return;
  removedAtExit = true;
  process.once('exit', () => {
    for (const d of liveDataDirs) fs.rmSync(d, { recursive: true, force: true });
  });
}

interface TrackedAgent {
  vmId: string;
  agent: ProcessIdentity;
  gateway: ProcessIdentity;
  /** the agent's data folder (absent in track files of gateways before it was made here) */
  dataDir?: string;
}

/** A stopped agent of an earlier run: its track file, secret and data folder removed. */
function forget(stateDir: string, vmId: string, t: TrackedAgent | null): void {
  fs.rmSync(trackFile(stateDir, vmId), { force: true });
  fs.rmSync(secretFile(stateDir, vmId), { force: true });
  // only a folder this provider made (a track file is ours, but a path in it is checked anyway)
  if (t?.dataDir && path.dirname(t.dataDir) === os.tmpdir() && path.basename(t.dataDir).startsWith('uve-vm-')) {
    fs.rmSync(t.dataDir, { recursive: true, force: true });
  }
}

const trackFile = (stateDir: string, vmId: string) => path.join(stateDir, `${path.basename(vmId)}.json`);
const secretFile = (stateDir: string, vmId: string) => path.join(stateDir, `${path.basename(vmId)}.secret`);

function tracked(stateDir: string, vmId: string): TrackedAgent | null {
  try {
    return JSON.parse(fs.readFileSync(trackFile(stateDir, vmId), 'utf8')) as TrackedAgent;
  } catch {
    return null;
  }
}

/**
 * First thing at start: agents a previous run of this gateway left running (it was killed) are
 * stopped (SIGTERM, SIGKILL after 5 s, with what they started) while the Redis they report to may
 * still run, so they can say vm.stopping; their VM records are reconciled later (OFFLINE, sessions
 * DISCONNECTED). Agents of another gateway process that still runs are left alone. Returns the ids
 * of the VMs that run no more: those it stopped and those whose agent had already gone.
 */
export async function reapLeftoverAgents(stateDir: string, log: Logger, agentMain = AGENT_MAIN): Promise<string[]> {
  if (!fs.existsSync(stateDir)) return [];
  const files = fs.readdirSync(stateDir).filter((f) => f.endsWith('.json'));
  const reaped: string[] = [];
  await Promise.all(files.map(async (f) => {
    const vmId = f.slice(0, -'.json'.length);
    const t = tracked(stateDir, vmId);
    if (t && isRunning(t.gateway) && t.gateway.pid !== process.pid) return;
    if (t && isRunning(t.agent) && commandLine(t.agent.pid).includes(agentMain)) {
      log.warn('stopping a VM agent an earlier run of the gateway left running', { vmId, pid: t.agent.pid });
      await stopTree(t.agent, 5000);
    }
    reaped.push(vmId);
    forget(stateDir, vmId, t);
  }));
  return reaped;
}

/** Stops an agent that is not our child, then whatever it started that outlived it (Xvfb, ffmpeg, UAs). */
async function stopTree(agent: ProcessIdentity, graceMs: number): Promise<void> {
  const tree = descendants(agent.pid);
  await terminate(agent, graceMs);
  for (const p of tree) signal(p, 'SIGKILL');
}

/** SIGTERM (the agent says vm.stopping and ends its sessions), SIGKILL if it lingers. */
function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      // what the agent started would outlive it (Xvfb, ffmpeg, UAs)
      const tree = descendants(child.pid!);
      child.kill('SIGKILL');
      for (const p of tree) signal(p, 'SIGKILL');
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
