// UA deployments on this VM (UVE-2 ua.deploy / ua.update / ua.remove): where each UA's package
// lives, and the deployment.changed reports to the VMM. Work for one UA runs in order (a remove
// queued behind a deploy waits for it); different UAs deploy in parallel. Downloads run in the
// background so the command queue keeps moving.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkManifest, MANIFEST_FILE, type DeployUaCommand, type DeployedUa, type DeploymentStatus, type LocalResourceKind, type Platform, type UpdateUaCommand } from '@uve/protocol';
import type { InstalledUa, UaRuntime } from '../runtimes/runtime';
import type { Logger } from '../common/log';
import { AGENT_ROOT } from '../common/paths';
import { errorMessage, withTimeout } from '../common/errors';
import { downloadPackage } from './fetch-package';
import { readPackage, writePackage } from './unpack';

/**
 * `builtin:<name>` packages ship with the agent: WASM ones in apps/vm-agent/uas/<name>/build
 * (built by scripts/build-uas.js), LINUX_X11 ones in apps/vm-agent/uas-x11/<name>.
 */
export const BUILTIN_PREFIX = 'builtin:';
const BUILTIN_LAYOUT: Record<Platform, (root: string, name: string) => string> = {
  WASM: (root, name) => join(root, 'uas', name, 'build'),
  LINUX_X11: (root, name) => join(root, 'uas-x11', name),
};

export interface InstalledEntry extends InstalledUa {
  packageUrl: string;
  sha256: string;
  builtin: boolean;
  requiredResources: LocalResourceKind[];
}

export interface DeploymentReport {
  uaId: string;
  version: string;
  status: DeploymentStatus;
  error: string | null;
}

export interface UaStoreOptions {
  dataDir: string;
  platform: Platform;
  runtime: UaRuntime;
  report: (r: DeploymentReport) => void;
  log: Logger;
  /** folder holding uas/ and uas-x11/ (default: this agent's own) */
  builtinRoot?: string;
}

const INDEX_FILE = 'installed.json';
/** how long a prepare for a UA this VM never heard of waits for its deploy command */
export const OVERTAKEN_DEPLOY_WAIT_MS = 10_000;
const safeSegment = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) || '_';

export function builtinPackageDir(packageUrl: string, platform: Platform, root = AGENT_ROOT): string {
  const name = packageUrl.slice(BUILTIN_PREFIX.length);
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/i.test(name)) throw new Error(`invalid builtin package name ${JSON.stringify(name)}`);
  return BUILTIN_LAYOUT[platform](root, name);
}

/**
 * A downloaded package must be what the VMM asked for: its manifest names the same platform and
 * version (the runtime checks the rest). Reasons name the field, for the storefront.
 */
async function checkPackageManifest(dir: string, cmd: DeployUaCommand | UpdateUaCommand): Promise<void> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'));
  } catch (e) {
    throw new Error((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'package has no manifest.json at its root' : 'manifest.json is not valid JSON');
  }
  const m = checkManifest(raw);
  if (m.platform !== cmd.platform) throw new Error(`manifest "platform" is ${m.platform} but the UA was provided as ${cmd.platform}`);
  if (m.version !== cmd.version) throw new Error(`manifest "version" is ${m.version} but the UA was provided as version ${cmd.version}`);
}

export class UaStore {
  private readonly installed = new Map<string, InstalledEntry>();
  /** tail of the work queued for each UA */
  private readonly jobs = new Map<string, Promise<void>>();
  /** resolves waiting for work of a UA to be queued */
  private readonly queueWaiters = new Map<string, Set<() => void>>();

  constructor(private readonly opts: UaStoreOptions) {}

  /** UAs ready to run, as reported in vm.register / vm.heartbeat. */
  deployed(): DeployedUa[] {
    return [...this.installed.values()].map((u) => ({ uaId: u.uaId, version: u.version }));
  }

  get(uaId: string): InstalledEntry | undefined {
    return this.installed.get(uaId);
  }

  /** Reloads what an earlier run installed into the same data dir; broken entries are dropped. */
  async load(): Promise<void> {
    let doc: { uas?: InstalledEntry[] };
    try {
      doc = JSON.parse(await readFile(join(this.opts.dataDir, INDEX_FILE), 'utf8')) as { uas?: InstalledEntry[] };
    } catch {
      return;
    }
    for (const e of doc.uas ?? []) {
      try {
        const dir = e.builtin ? builtinPackageDir(e.packageUrl, this.opts.platform, this.opts.builtinRoot) : e.dir;
        const info = await this.opts.runtime.validatePackage(dir);
        this.installed.set(e.uaId, { ...e, dir, requiredResources: info.requiredResources });
      } catch (err) {
        this.opts.log.warn('dropping an installed UA that no longer validates', { ua: e.uaId, version: e.version, error: errorMessage(err) });
      }
    }
  }

  /** ua.deploy and ua.update: returns when the deployment is INSTALLED or FAILED (never rejects). */
  deploy(cmd: DeployUaCommand | UpdateUaCommand): Promise<void> {
    return this.enqueue(cmd.uaId, () => this.runDeploy(cmd));
  }

  remove(uaId: string): Promise<void> {
    return this.enqueue(uaId, () => this.runRemove(uaId));
  }

  /**
   * The installed package for a session: waits for queued deploy work of that UA first (a prepare
   * right behind its deploy), then insists on the version the VMM asked for.
   */
  async resolve(uaId: string, version: string | null | undefined, timeoutMs: number): Promise<InstalledEntry> {
    const deadline = Date.now() + timeoutMs;
    // Any gateway relays any command, so a prepare can overtake the deploy written before it:
    // a UA neither installed nor queued gets a short while for its deploy to arrive.
    if (!this.installed.has(uaId) && !this.jobs.has(uaId)) await this.queuedWithin(uaId, Math.min(OVERTAKEN_DEPLOY_WAIT_MS, timeoutMs));
    for (let job = this.jobs.get(uaId); job; job = this.jobs.get(uaId)) {
      await withTimeout(job, Math.max(1, deadline - Date.now()), `deployment of UA ${uaId}`);
      if (this.jobs.get(uaId) === job) break;
    }
    const ua = this.installed.get(uaId);
    if (!ua) throw new Error(`UA ${uaId} is not deployed on this VM`);
    if (version && ua.version !== version) throw new Error(`UA ${uaId} is deployed in version ${ua.version} on this VM, not ${version}`);
    return ua;
  }

  /** waits for all queued work (shutdown) */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.jobs.values()]);
  }

  // ---- internals ------------------------------------------------------------------------------

  /** resolves when work for the UA is queued, or after `ms` */
  private queuedWithin(uaId: string, ms: number): Promise<void> {
    return new Promise((done) => {
      const waiters = this.queueWaiters.get(uaId) ?? new Set<() => void>();
      this.queueWaiters.set(uaId, waiters);
      const finish = (): void => {
        clearTimeout(timer);
        waiters.delete(finish);
        if (waiters.size === 0 && this.queueWaiters.get(uaId) === waiters) this.queueWaiters.delete(uaId);
        done();
      };
      const timer = setTimeout(finish, ms);
      waiters.add(finish);
    });
  }

  private enqueue(uaId: string, work: () => Promise<void>): Promise<void> {
    const prev = this.jobs.get(uaId) ?? Promise.resolve();
    const job = prev.then(work).catch((e) => this.opts.log.error('UA job failed', { ua: uaId, error: errorMessage(e) }));
    this.jobs.set(uaId, job);
    for (const wake of [...(this.queueWaiters.get(uaId) ?? [])]) wake();
    void job.finally(() => {
      if (this.jobs.get(uaId) === job) this.jobs.delete(uaId);
    });
    return job;
  }

  private report(uaId: string, version: string, status: DeploymentStatus, error: string | null = null): void {
    this.opts.report({ uaId, version, status, error });
  }

  private async runDeploy(cmd: DeployUaCommand | UpdateUaCommand): Promise<void> {
    const { uaId, version } = cmd;
    const log = this.opts.log.child({ ua: uaId, version });
    let staging: string | null = null;
    try {
      if (cmd.platform !== this.opts.platform) throw new Error(`this VM hosts ${this.opts.platform} UAs; ${uaId} is a ${cmd.platform} UA`);
      const current = this.installed.get(uaId);
      if (current && current.version === version && current.packageUrl === cmd.packageUrl && current.sha256 === cmd.sha256) {
        this.report(uaId, version, 'INSTALLED'); // repeated command: already there
        return;
      }
      this.report(uaId, version, 'DOWNLOADING');
      let dir: string;
      const builtin = cmd.packageUrl.startsWith(BUILTIN_PREFIX);
      if (builtin) {
        // shipped with the agent: nothing to download; its sha256 is not checked (see docs/vm-agent.md)
        dir = builtinPackageDir(cmd.packageUrl, this.opts.platform, this.opts.builtinRoot);
        if (!(await stat(dir).catch(() => null))?.isDirectory()) throw new Error(`builtin package ${cmd.packageUrl} not found (looked in ${dir})`);
      } else if (/^https?:\/\//i.test(cmd.packageUrl)) {
        if (!/^[0-9a-f]{64}$/i.test(cmd.sha256?.trim() ?? '')) throw new Error('sha256 must be 64 hex digits for a downloaded package');
        const base = join(this.opts.dataDir, 'uas', safeSegment(uaId));
        await mkdir(base, { recursive: true });
        const tag = `${safeSegment(version)}-${randomUUID().slice(0, 8)}`;
        staging = join(base, `.${tag}.staging`);
        const file = join(base, `.${tag}.download`);
        log.info('downloading UA package', { url: cmd.packageUrl });
        const bytes = await downloadPackage(cmd.packageUrl, file, {
          sha256: cmd.sha256,
          maxBytes: cmd.sizeBytes,
          timeoutMs: cmd.downloadTimeoutMs,
          allowedOrigin: cmd.allowedOrigin,
        });
        await writePackage(readPackage(bytes), staging);
        await checkPackageManifest(staging, cmd);
        dir = join(base, tag);
        await rename(staging, dir);
        staging = dir; // removed again if validation fails
      } else {
        throw new Error(`unsupported packageUrl ${JSON.stringify(cmd.packageUrl)}: use builtin:<name>, http:// or https://`);
      }
      const info = await this.opts.runtime.validatePackage(dir);
      this.installed.set(uaId, { uaId, version, dir, packageUrl: cmd.packageUrl, sha256: cmd.sha256, builtin, requiredResources: info.requiredResources });
      staging = null;
      // Running sessions keep the code they loaded; the old files are not needed by new ones.
      if (current && !current.builtin && current.dir !== dir) await rm(current.dir, { recursive: true, force: true });
      await this.persist();
      log.info('UA installed', { dir });
      this.report(uaId, version, 'INSTALLED');
    } catch (e) {
      if (staging) {
        await rm(staging, { recursive: true, force: true }).catch(() => undefined);
        await rmdir(dirname(staging)).catch(() => undefined); // the UA's folder, when nothing else is in it
      }
      log.warn('UA deployment failed', { error: errorMessage(e) });
      this.report(uaId, version, 'FAILED', errorMessage(e));
    }
  }

  private async runRemove(uaId: string): Promise<void> {
    const current = this.installed.get(uaId);
    const version = current?.version ?? '';
    this.report(uaId, version, 'REMOVING');
    this.installed.delete(uaId);
    if (current && !current.builtin) {
      await rm(current.dir, { recursive: true, force: true }).catch(() => undefined);
      await rmdir(dirname(current.dir)).catch(() => undefined);
    }
    await this.persist();
    this.report(uaId, version, 'REMOVED');
  }

  private async persist(): Promise<void> {
    try {
      await mkdir(this.opts.dataDir, { recursive: true });
      const tmp = join(this.opts.dataDir, `.${INDEX_FILE}.tmp`);
      await writeFile(tmp, JSON.stringify({ version: 1, uas: [...this.installed.values()] }, null, 2));
      await rename(tmp, join(this.opts.dataDir, INDEX_FILE));
    } catch (e) {
      this.opts.log.warn('could not write the installed-UA index', { error: errorMessage(e) });
    }
  }
}
