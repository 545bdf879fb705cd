// The Virtual Machine (seed 7.3.1.2.2) as one object: the UVE-3 server for UCs, the UVE-2/UVE-5
// link to the VMM, UA deployments and sessions. Lifecycle: start() serves UVE-3, registers with
// the VMM and heartbeats; stop() reports vm.stopping, ends the sessions and releases everything.
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, rm, mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEARTBEAT_INTERVAL_MS, type VideoCodec, type VmCommand } from '@uve/protocol';
import { createMessageBus, type MessageBus } from '@uve/queue';
import type { AgentConfig } from './config';
import type { Logger } from './common/log';
import { errorMessage, withTimeout } from './common/errors';
import { availableCodecs as encoderCodecs, createEncoder, sessionPixelFormat, WarmX264 } from './encoders';
import { runtimeFor } from './runtimes';
import { guestHugePages } from './runtimes/wasm/huge-pages';
import { resolveUaUser } from './runtimes/x11/ua-user';
import type { UaRuntime } from './runtimes/runtime';
import { DEPLOY_WAIT_MS, SessionManager } from './sessions/session-manager';
import type { Session } from './sessions/session';
import { createTokenVerifier, type TokenVerifier } from './stream/auth';
import { StreamServer } from './stream/stream-server';
import { WatcherWaits } from './stream/watcher-waits';
import { UaStore } from './uas/ua-store';
import { VmmLink } from './vmm/link';
import { createLoadSampler } from './vmm/heartbeat';
import { VmDataBuffer, VmDataClient } from './vmm/vm-data';
import { RestoresAhead } from './sessions/restores-ahead';
import { VmmWatch } from './vmm/vmm-watch';
import { AgentMetrics } from './metrics';
import { killChildren } from './common/children';

export const AGENT_VERSION: string = (require('../package.json') as { version: string }).version;

export interface VmDeps {
  /** tests swap these; production uses the real ones */
  bus?: MessageBus;
  verifier?: TokenVerifier;
  runtime?: UaRuntime;
  availableCodecs?: () => Promise<VideoCodec[]>;
  /** how often vm.heartbeat is sent */
  heartbeatIntervalMs?: number;
  /** a stop began (any cause): the process arms its bound on it */
  onStopping?: (reason: string) => void;
}

/** the stream of a default terminal at 1280x720 (gateway stream-params.ts: 60 fps, 3000 kbit/s) */
const WARM_ENCODER_DEFAULT = { width: 1280, height: 720, maxFps: 60, bitrateKbps: 3000 };

/** how long after its registration a warm VM touches its VM Data download buffer */
const WARM_BUFFER_DELAY_MS = 1_000;

export class Vm {
  private bus: MessageBus | null = null;
  private link: VmmLink | null = null;
  private server: StreamServer | null = null;
  private sessions: SessionManager | null = null;
  private uas: UaStore | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private dataDir = '';
  private tempDataDir = false;
  private codecs: VideoCodec[] = [];
  private stopping: Promise<void> | null = null;
  private watch: VmmWatch | null = null;
  private warmEncoder: WarmX264 | null = null;
  private runtime: UaRuntime | null = null;
  /** WASM: whether restored guest memories are on huge pages (GET /healthz); null on other platforms */
  private wasmHugePages: boolean | null = null;
  private restoresAhead: RestoresAhead | null = null;
  private vmData: VmDataClient | null = null;
  private readonly watcherWaits = new WatcherWaits();
  endpoint = '';
  port = 0;

  constructor(
    private readonly cfg: AgentConfig,
    private readonly log: Logger,
    private readonly deps: VmDeps = {},
    /** called once stop() finished, e.g. to exit the process after vm.shutdown */
    private readonly onStopped: (error?: unknown) => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    const { cfg, log } = this;
    const uaUser = cfg.platform === 'LINUX_X11' ? resolveUaUser(cfg.uaUser) : null;
    if (uaUser) log.info('LINUX_X11 UAs run as their own user', { user: uaUser.name, uid: uaUser.uid });
    const hugePages = cfg.platform === 'WASM' ? guestHugePages(cfg.wasmHugePages) : null;
    if (hugePages) log.info(hugePages.restored ? 'WASM restores write their memory on huge pages' : 'WASM restores write their memory on 4 KiB pages', { why: hugePages.why });
    this.wasmHugePages = hugePages?.restored ?? null;
    const runtime = (this.runtime = this.deps.runtime ?? runtimeFor(cfg.platform, {
      wasm: { callBudgetMs: cfg.wasmCallBudgetMs, startBudgetMs: cfg.wasmStartBudgetMs, warmThread: cfg.warmStart, idleThreads: cfg.wasmIdleThreads, hugePagesAddon: hugePages?.addon },
      x11: { uaUser, warmDisplay: cfg.warmStart },
    }));

    const available = await (this.deps.availableCodecs ?? (() => encoderCodecs(cfg.ffmpegLibx264)))();
    this.codecs = cfg.codecs ? available.filter((c) => cfg.codecs!.includes(c)) : available;
    const unavailable = (cfg.codecs ?? []).filter((c) => !available.includes(c));
    if (unavailable.length) log.warn('configured codecs this machine cannot encode are left out', { codecs: unavailable.join(',') });
    if (!this.codecs.length) throw new Error(`none of the configured codecs (${cfg.codecs?.join(', ')}) can be encoded here (available: ${available.join(', ')})`);

    if (cfg.dataDir) {
      this.dataDir = cfg.dataDir;
      this.tempDataDir = cfg.dataTemporary;
      await mkdir(this.dataDir, { recursive: true });
    } else {
      this.dataDir = await mkdtemp(join(tmpdir(), 'uve-vm-'));
      this.tempDataDir = true;
    }
    // a UA of another user runs its package from here: it may pass through, not list
    if (uaUser) await chmod(this.dataDir, 0o711);

    this.bus = this.deps.bus ?? createMessageBus({ redisUrl: cfg.redisUrl, prefix: cfg.queuePrefix, onError: (e) => log.warn('message bus error', { error: e.message }) });
    const link = (this.link = new VmmLink(this.bus, cfg.vmId, cfg.vmSecret, log.child({ part: 'vmm' })));

    this.uas = new UaStore({
      dataDir: this.dataDir,
      platform: cfg.platform,
      runtime,
      log: log.child({ part: 'uas' }),
      report: (r) => void link.report({ type: 'deployment.changed', ...r }),
    });
    await this.uas.load();

    const buffer = new VmDataBuffer(cfg.vmDataBufferBytes, cfg.vmDataBufferMaxBytes);
    const vmData = (this.vmData = new VmDataClient(cfg.vmDataUrl, cfg.vmId, cfg.vmSecret, buffer));
    const metrics = new AgentMetrics({
      sessions: () => this.sessions?.all() ?? [],
      capacity: cfg.capacity,
      pendingReports: () => link.pendingReports,
      ...(runtime.guestThreads ? { guestThreads: () => runtime.guestThreads!() } : {}),
      // (made below, before the server that answers /metrics)
      restoresAhead: () => this.restoresAhead!.stats(),
    });
    // NO_LOSS reconnections the VMM sends here, restored while their PLAYER is away
    const restoresAhead = (this.restoresAhead = new RestoresAhead({
      runtime,
      resolveUa: (uaId, version) => this.uas!.resolve(uaId, version, DEPLOY_WAIT_MS),
      fetchVmData: (snapshotId, onFirstBytes) => vmData.download(snapshotId, onFirstBytes),
      max: cfg.capacity,
      hosts: (sessionId) => this.sessions?.get(sessionId) !== undefined,
      log: log.child({ part: 'restores-ahead' }),
    }));
    // the usual first session: 1280x720 at the default 60 fps and 3000 kbit/s (gateway stream-params.ts),
    // in the pictures this VM's platform gives H264 (a VM hosts one platform; later, the last session's)
    const pixelFormat = sessionPixelFormat('H264', runtime.pixelFormats, WARM_ENCODER_DEFAULT.width, WARM_ENCODER_DEFAULT.height);
    const warm = (this.warmEncoder = cfg.warmStart && this.codecs.includes('H264') ? new WarmX264({ ...WARM_ENCODER_DEFAULT, pixelFormat }) : null);
    this.sessions = new SessionManager({
      capacity: cfg.capacity,
      codecs: this.codecs,
      runtime,
      uas: this.uas,
      createEncoder: (codec, opts) => createEncoder(codec, opts, warm),
      report: (e) => void link.report(e),
      log: log.child({ part: 'sessions' }),
      storeVmData: (sessionId, kind, data, timing) => vmData.upload(sessionId, kind, data, timing),
      fetchVmData: (snapshotId, onFirstBytes) => vmData.download(snapshotId, onFirstBytes),
      vmDataDeltas: vmData,
      vmDataBuffer: () => buffer.takeKept(),
      observer: metrics,
      restoresAhead,
    });

    const verifier = this.deps.verifier ?? createTokenVerifier(cfg.jwksUrl, cfg.vmId);
    const sessions = this.sessions;
    this.server = new StreamServer({
      host: cfg.host,
      port: cfg.port,
      verifier,
      findSession: (id) => sessions.get(id),
      awaitSession: (id, issuedAt) => sessions.waitFor(id, issuedAt),
      awaitWatcher: (sid, uid, ms) => this.watcherWaits.wait(sid, uid, ms),
      limits: cfg.stream,
      tls: cfg.tls ? { cert: await readFile(cfg.tls.certFile), key: await readFile(cfg.tls.keyFile) } : undefined,
      log: log.child({ part: 'uve3' }),
      health: () => ({ vmId: cfg.vmId, sessions: sessions.active, capacity: cfg.capacity, draining: sessions.isDraining, restoresAhead: restoresAhead.counts(), wasmHugePages: this.wasmHugePages }),
      metrics: () => metrics.text(),
    });
    this.port = await this.server.listen();
    this.endpoint = `${cfg.tls ? 'wss' : 'ws'}://${cfg.publicHost.includes(':') ? `[${cfg.publicHost}]` : cfg.publicHost}:${this.port}`;
    // keys fetched now, so the first UC's hello does not wait for the VMM
    verifier.warm?.().catch((e) => log.warn('could not fetch the session-token keys yet', { url: cfg.jwksUrl, error: errorMessage(e) }));

    // watched from before the registration: a Redis that is down at start stops the VM too
    this.watch = new VmmWatch({
      healthUrl: `${cfg.gatewayUrl}/healthz`,
      lostAfterMs: cfg.vmmLostExitMs,
      reportBacklogMs: () => link.oldestPendingMs(),
      // a PROCESS VM is the child of its gateway: reparented means the gateway is gone (the pid it
      // was given, not the parent it has now: that may already be the one it was reparented to)
      parentPid: cfg.provider === 'PROCESS' ? (cfg.parentPid ?? process.ppid) : null,
      log: log.child({ part: 'vmm-watch' }),
      onLost: (reason) => {
        log.error('VMM lost: stopping this VM', { reason });
        void this.stop(`VMM lost: ${reason}`).catch(() => undefined);
      },
    });
    this.watch.start();
    // an orphan must not register: a new run of its gateway would count it as a VM of its own
    if (this.watch.parentGone()) throw new Error(`the gateway that started this VM (pid ${cfg.parentPid}) is gone: not registering`);
    link.consumeCommands((c) => this.onCommand(c));
    await link.report({
      type: 'vm.register',
      name: cfg.vmName,
      platform: cfg.platform,
      provider: cfg.provider,
      endpoint: this.endpoint,
      codecs: this.codecs,
      capacity: cfg.capacity,
      agentVersion: AGENT_VERSION,
      deployed: this.uas.deployed(),
    });
    // in a container its cgroup counts all the VM uses; as a process, its process tree does
    const load = createLoadSampler(cfg.provider !== 'PROCESS');
    this.heartbeat = setInterval(() => {
      const { cpuLoad, rssBytes, source } = load.sample();
      void link.report({
        type: 'vm.heartbeat',
        activeSessions: sessions.active,
        capacity: cfg.capacity,
        codecs: this.codecs,
        cpuLoad,
        rssBytes,
        loadSource: source,
        deployed: this.uas?.deployed() ?? [],
      });
    }, this.deps.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS);
    // a NO_LOSS restore's download, or a save, then goes through memory already faulted in
    // (VmDataBuffer); not beside the VM's own start
    if (cfg.warmStart && cfg.platform === 'WASM') setTimeout(() => buffer.warm(), WARM_BUFFER_DELAY_MS).unref();
    log.info('VM registered', { vm: cfg.vmId, endpoint: this.endpoint, codecs: this.codecs.join(','), capacity: cfg.capacity, platform: cfg.platform, dataDir: this.dataDir });
  }

  /** Ends everything in order; safe to call more than once. */
  stop(reason: string): Promise<void> {
    if (!this.stopping) this.deps.onStopping?.(reason);
    this.stopping ??= this.doStop(reason).then(
      () => this.onStopped(),
      (e) => {
        this.onStopped(e);
        throw e;
      },
    );
    return this.stopping;
  }

  /**
   * Each step has its own bound and all of them fit in the stop bound (UVE_STOP_TIMEOUT_MS), so a
   * dead Redis (reports and the consumer's close wait for ever) cannot hold the stop up.
   */
  private async doStop(reason: string): Promise<void> {
    const log = this.log;
    log.info('VM stopping', { reason });
    const deadline = Date.now() + this.cfg.stopTimeoutMs - 500;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.watch?.stop();
    this.sessions?.drain();
    const link = this.link;
    const step = async (what: string, p: Promise<unknown> | undefined, ms: number): Promise<void> => {
      const bound = Math.max(1, Math.min(ms, deadline - Date.now()));
      try {
        await withTimeout(Promise.resolve(p), bound, what);
      } catch (e) {
        log.warn(`${what} did not finish cleanly`, { error: errorMessage(e) });
      }
    };
    await step('vm.stopping report', link?.report({ type: 'vm.stopping', reason }), 2_000);
    await step('closing the command consumer', link?.stopCommands(), 2_000);
    await step('ending sessions', this.sessions?.endAll(`VM shutting down: ${reason}`), 4_000);
    await step('closing the UVE-3 server', this.server?.close(), 1_000);
    await step('closing the restores prepared ahead', this.restoresAhead?.close(), 1_000);
    await step('closing the VM Data hashing thread', this.vmData?.close(), 1_000);
    await step('closing the warm encoder', this.warmEncoder?.close(), 1_000);
    await step('closing the warm display', this.runtime?.close?.(), 1_000);
    await step('flushing reports', link?.flush(), 1_000);
    link?.close();
    if (!this.deps.bus) await step('closing the message bus', this.bus?.close(), 1_000);
    // whatever a session's close left running (an encoder or X server that ignored SIGTERM)
    const killed = killChildren('SIGKILL');
    if (killed) log.warn('child processes still running after the sessions ended were killed', { count: killed });
    if (this.tempDataDir) await rm(this.dataDir, { recursive: true, force: true }).catch(() => undefined);
    log.info('VM stopped');
  }

  /** The temporary data folder removed at once, as the process exits (a stop past its bound never reaches stop()'s own removal). */
  removeTempData(): void {
    if (this.tempDataDir && this.dataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }

  private session(id: string, command: string): Session | undefined {
    const s = this.sessions?.get(id);
    if (!s) this.log.info('command for a session not on this VM ignored', { command, session: id });
    return s;
  }

  private async onCommand(c: VmCommand): Promise<void> {
    const sessions = this.sessions!;
    const uas = this.uas!;
    this.log.debug('command', { type: c.type });
    switch (c.type) {
      case 'ua.deploy':
      case 'ua.update':
        void uas.deploy(c); // in the background: a download must not hold up the queue
        return;
      case 'ua.remove':
        void uas.remove(c.uaId);
        return;
      case 'session.prepare':
        sessions.prepare(c);
        return;
      case 'session.suspend':
        this.session(c.sessionId, c.type)?.suspend(c.reason ?? null);
        return;
      case 'session.resume':
        this.session(c.sessionId, c.type)?.resume();
        return;
      case 'session.terminate': {
        // the slot frees at once; saving VM Data (an upload) must not hold up the command queue
        const ended = sessions.terminate(c.sessionId, c.reason, c.saveVmData, c.moved === true);
        ended.catch((e) => this.log.error('could not end a terminated session', { session: c.sessionId, error: errorMessage(e) }));
        return;
      }
      case 'vmdata.prepareRestore':
        this.restoresAhead?.prepare(c);
        return;
      case 'vmdata.dropRestore':
        this.restoresAhead?.drop(c.sessionId, String(c.reason ?? 'dropped by the VMM').slice(0, 200));
        return;
      case 'monitoring.notify':
        this.session(c.sessionId, c.type)?.addWatcher(c.watcherId, Array.isArray(c.privileges) ? c.privileges : []);
        this.watcherWaits.announced(c.sessionId, c.watcherId);
        return;
      case 'monitoring.end':
        this.session(c.sessionId, c.type)?.removeWatcher(c.watcherId, String(c.reason ?? 'access ended').slice(0, 120));
        return;
      case 'vm.drain':
        sessions.drain();
        this.log.info('VM draining: no new sessions');
        return;
      case 'vm.shutdown':
        // not awaited: stop() closes the consumer, which waits for this very handler to return
        setImmediate(() => void this.stop('vm.shutdown command').catch(() => undefined));
        return;
      default:
        throw new Error(`unknown command type ${JSON.stringify((c as { type?: string }).type)}`);
    }
  }
}
