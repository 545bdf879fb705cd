// One running LINUX_X11 UA: the UA's processes on an X display of its own (x11-display.ts: Xvfb,
// the agent's X connection for input, window placement and damage, the framebuffer). capture()
// reads the framebuffer only when something changed since the last capture.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, mkdirSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { InputEvent } from '@uve/protocol';
import { withTimeout } from '../../common/errors';
import { trackChild } from '../../common/children';
import { blackPicture, type PixelFormat, type RawFrame, type UaInstance, type UaStartOptions } from '../runtime';
import type { X11Package } from './package';
import { uaEnvironment } from './ua-env';
import { signalAll, tail, TERM_GRACE_MS, uaProcesses } from './processes';
import type { UaUser } from './ua-user';
import { X11Display, type X11DisplayConfig } from './x11-display';
import { archiveHome, unpackHome } from './home-archive';

export interface X11InstanceConfig extends X11DisplayConfig {
  /** the UA runs as this user (null: as the agent's) */
  uaUser?: UaUser | null;
}

/** while the UA's leader is gone but processes it started still run, they are looked at this often */
const ORPHAN_POLL_MS = 500;

/** longest wait for the UA's first window before the session is ready anyway */
const FIRST_WINDOW_TIMEOUT_MS = 10_000;

export class X11Instance implements UaInstance {
  readonly width: number;
  readonly height: number;
  /** what capture() returns (UaStartOptions) */
  private readonly pixelFormat: PixelFormat;
  private screen: X11Display | null = null;
  private ua: ChildProcess | null = null;
  private uaStderr: () => string = () => '';
  /** UA session id (= the leader's pid; the leader was started detached) */
  private sid = 0;
  private suspended = false;
  /** the UA or its X server ended; no more damage or input */
  private ended = false;
  private exitReported = false;
  private orphanTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  /** the UA's home folder (its application data) */
  private home: string | null = null;
  /** the UA is being started again on a restored home: its leader's end is no news */
  private restarting = false;

  private constructor(
    private readonly pkg: X11Package,
    private readonly opts: UaStartOptions,
    private readonly config: X11InstanceConfig,
  ) {
    this.width = opts.width;
    this.height = opts.height;
    this.pixelFormat = opts.pixelFormat ?? 'rgba';
  }

  /** Starts the UA on `display` (a started spare of the runtime's) or on a display started for it. */
  static async start(pkg: X11Package, opts: UaStartOptions, config: X11InstanceConfig, display: X11Display | null = null): Promise<X11Instance> {
    const inst = new X11Instance(pkg, opts, config);
    try {
      inst.screen = display ?? (await X11Display.start(config, opts.width, opts.height));
      inst.screen.listen({
        onDamage: () => {
          if (!inst.suspended && !inst.ended) opts.onDamage();
        },
        onFail: (message) => inst.fail(message),
      });
      await inst.startUa();
      await inst.untilWindow(inst.screen.firstWindow, FIRST_WINDOW_TIMEOUT_MS);
    } catch (e) {
      await inst.close();
      throw e;
    }
    return inst;
  }

  /** X display number (diagnostics, tests) */
  get display(): number | null {
    return this.screen?.number ?? null;
  }

  /** pid of the UA's first process, null when it is not running */
  get pid(): number | null {
    return this.ua && this.ua.exitCode === null && this.ua.signalCode === null ? (this.ua.pid ?? null) : null;
  }

  /** pid of this session's Xvfb */
  get xvfbPid(): number | null {
    return this.screen?.xvfbPid ?? null;
  }

  /** live processes of the UA (its session and their descendants) */
  processes(): number[] {
    return this.sid ? uaProcesses(this.sid) : [];
  }

  // ---- UaInstance --------------------------------------------------------------------------------

  input(ev: InputEvent): void {
    if (this.ended || this.suspended) return;
    this.screen?.injector?.input(ev);
  }

  capture(): RawFrame | null {
    if (this.ended || this.suspended || !this.screen?.dirty) return null;
    return this.screen.grab(this.pixelFormat);
  }

  captureFull(): RawFrame {
    return this.screen?.grab(this.pixelFormat) ?? blackPicture(this.pixelFormat, this.width, this.height);
  }

  /** the UA's application data: its home folder as a tar archive (empty when the home is) */
  async saveAppData(): Promise<Uint8Array> {
    if (!this.home) return new Uint8Array(0);
    return archiveHome(this.home, this.config.uaUser ?? null);
  }

  /**
   * Puts the saved home in place and starts the UA again on it (a program reads its files as it
   * starts), on the same display; resolves once its window is up (or after the usual bound).
   */
  async restoreAppData(data: Uint8Array): Promise<void> {
    if (data.length === 0) return;
    const screen = this.screen;
    if (!screen || !this.home || this.ended) throw new Error('the UA is not running');
    this.restarting = true;
    try {
      if (this.sid) await stopUaProcesses(this.sid, this.ua);
      this.sid = 0;
      await rm(this.home, { recursive: true, force: true });
      this.makeHome();
      await unpackHome(this.home, data, this.config.uaUser ?? null);
      const window = screen.nextWindow();
      await this.startUa();
      await this.untilWindow(window, FIRST_WINDOW_TIMEOUT_MS);
    } finally {
      this.restarting = false;
    }
  }

  async saveFullState(): Promise<Uint8Array> {
    throw new Error(FULL_STATE_UNAVAILABLE);
  }

  async restoreFullState(_data: Uint8Array): Promise<void> {
    throw new Error(FULL_STATE_UNAVAILABLE);
  }

  suspend(): void {
    if (this.ended || this.suspended) return;
    this.suspended = true;
    // keys and buttons held now would stay down for the whole suspension
    this.screen?.injector?.reset();
    signalAll(this.processes(), 'SIGSTOP');
  }

  resume(): void {
    if (this.ended || !this.suspended) return;
    this.suspended = false;
    signalAll(this.processes(), 'SIGCONT');
    if (this.screen?.dirty) this.opts.onDamage();
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- start -------------------------------------------------------------------------------------

  /**
   * The session is ready once the UA shows a window: the first picture is the app, not an empty
   * screen, and early input is not lost on a display with nothing to take it. A program that
   * never maps a window is not held up longer than `ms`.
   */
  private async untilWindow(window: Promise<void> | undefined, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([window, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  /** a home of its own, removed with the session's folder */
  private makeHome(): string {
    this.home = path.join(this.screen!.fbdir, 'home');
    mkdirSync(this.home, { mode: 0o700 });
    const user = this.config.uaUser ?? null;
    if (user) chownSync(this.home, user.uid, user.gid);
    return this.home;
  }

  private async startUa(): Promise<void> {
    const pkg = this.pkg;
    // nothing of the agent's environment
    const screen = this.screen!;
    const home = this.home ?? this.makeHome();
    const user = this.config.uaUser ?? null;
    if (user) {
      // its own user: the home and the display's cookie are its; the session folder it may only pass through
      chownSync(screen.authFile, user.uid, user.gid);
      chmodSync(screen.fbdir, 0o711);
      // Xvfb's framebuffer file is the agent's to read, no UA's
      for (const f of readdirSync(screen.fbdir)) if (f !== 'home' && f !== 'Xauthority') chmodSync(path.join(screen.fbdir, f), 0o600);
    }
    const env = uaEnvironment(process.env, pkg.manifest.env, { display: `:${screen.number}`, xauthority: screen.authFile, home });
    if (user) env.USER = env.LOGNAME = user.name;
    // detached: a session (and process group) of its own, to stop and kill as a whole
    const ua = trackChild(spawn(pkg.executable, pkg.manifest.command.slice(1), {
      cwd: pkg.dir, env, detached: true, stdio: ['ignore', 'ignore', 'pipe'], ...(user ? { uid: user.uid, gid: user.gid } : {}),
    }), { group: true });
    this.uaStderr = tail(ua.stderr);
    await new Promise<void>((resolve, reject) => {
      ua.once('spawn', resolve);
      ua.once('error', (e) => reject(new Error(`cannot start ${pkg.manifest.command[0]}: ${e.message}`)));
    });
    ua.on('error', () => undefined);
    this.ua = ua;
    this.sid = ua.pid!;
    ua.once('exit', (code, signal) => this.uaLeaderExited(code, signal));
  }

  // ---- ending ------------------------------------------------------------------------------------

  private uaLeaderExited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.closing || this.restarting) return;
    const reason = (): Error | undefined => {
      if (code === 0) return undefined;
      const stderr = this.uaStderr();
      return new Error(`${signal ? `the UA was killed by ${signal}` : `the UA exited with code ${code}`}${stderr ? `: ${stderr}` : ''}`);
    };
    // a launcher that started the real program and returned: the UA lives on in its session
    let xChecked = false;
    const check = (): void => {
      this.orphanTimer = null;
      if (this.closing) return;
      if (this.processes().length > 0) {
        this.orphanTimer = setTimeout(check, ORPHAN_POLL_MS);
        this.orphanTimer.unref();
        return;
      }
      // a UA that ended cleanly may have ended because its X server is going away (clients lose
      // their connection before the server has exited): look once more before calling it its own end
      if (code === 0 && !xChecked && this.screen && !this.screen.xServerGone()) {
        xChecked = true;
        this.orphanTimer = setTimeout(check, ORPHAN_POLL_MS);
        this.orphanTimer.unref();
        return;
      }
      // the UA ended because its X server did (it was killed): that is the news
      this.reportExit(!this.screen || this.screen.xServerGone() ? new Error(`the X server (Xvfb) exited: ${this.screen?.xvfbStderr() ?? 'no output'}`) : reason());
    };
    check();
  }

  private fail(message: string): void {
    if (this.closing || this.ended) return;
    this.reportExit(new Error(message));
  }

  private reportExit(error?: Error): void {
    this.ended = true;
    if (this.exitReported) return;
    this.exitReported = true;
    // not from inside a call of the session's (capture, input) into us
    queueMicrotask(() => this.opts.onExit(error));
  }

  private async shutdown(): Promise<void> {
    this.ended = true;
    if (this.orphanTimer) clearTimeout(this.orphanTimer);
    this.orphanTimer = null;
    if (this.sid) await stopUaProcesses(this.sid, this.ua);
    await this.screen?.close();
  }
}

const FULL_STATE_UNAVAILABLE =
  'a LINUX_X11 UA cannot be captured as a full process checkpoint on this VM (CRIU does not work on this kernel); use NORMAL reconnection';

/**
 * SIGTERM to every process of the UA (with SIGCONT: a stopped process would not act on it), then
 * SIGKILL to what is left after the grace time. Resolves when none is left and the leader is reaped.
 */
async function stopUaProcesses(sid: number, leader: ChildProcess | null): Promise<void> {
  const leaderExit = leader && leader.exitCode === null && leader.signalCode === null ? once(leader, 'exit').then(() => undefined) : Promise.resolve();
  const start = performance.now();
  signalAll(uaProcesses(sid), 'SIGTERM');
  signalAll(uaProcesses(sid), 'SIGCONT');
  // processes that are not our children have no exit event to wait for: look again until gone
  for (let left = uaProcesses(sid); left.length > 0; left = uaProcesses(sid)) {
    const elapsed = performance.now() - start;
    if (elapsed >= 2 * TERM_GRACE_MS) break; // unkillable (uninterruptible sleep): nothing more to do
    if (elapsed >= TERM_GRACE_MS) signalAll(left, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 20));
  }
  await withTimeout(leaderExit, TERM_GRACE_MS, 'exit of the UA').catch(() => undefined);
}
