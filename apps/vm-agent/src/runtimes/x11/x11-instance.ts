// One running LINUX_X11 UA: its own Xvfb, the UA's processes, and one persistent X connection that
// injects input (XTEST), places the UA's windows (window-manager.ts) and hears about damage.
//
// Capture is event-driven. A DAMAGE object on the root reports "the screen is no longer clean"
// (ReportLevel NonEmpty); the damage is then subtracted and, once a round trip proves the server
// did that, the picture is marked dirty and onDamage() tells the frame pump. Any drawing after
// the subtraction raises a new report, any drawing before it is already in the framebuffer, so a
// capture after onDamage never misses a change. capture() reads the framebuffer file only when
// something changed since the last capture.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { InputEvent } from '@uve/protocol';
import { withTimeout } from '../../common/errors';
import { trackChild } from '../../common/children';
import type { RawFrame, UaInstance, UaStartOptions } from '../runtime';
import { framebufferFile, XvfbFramebuffer } from './framebuffer';
import { InputInjector } from './input';
import { Keyboard } from './keyboard';
import type { X11Package } from './package';
import { uaEnvironment } from './ua-env';
import {
  COOKIE_NAME, processState, removeDisplayFiles, signalAll, startXvfb, stopProcess, tail, TERM_GRACE_MS, uaProcesses, writeXauthority, type StartedXvfb,
} from './processes';
import { ScreenWindowManager } from './window-manager';
import type { UaUser } from './ua-user';
import { connect, requireExt, sync, X, x11, type DamageExt, type XClient, type XDisplay, type XEvent, type XTestExt } from './xconn';

export interface X11InstanceConfig {
  /** the Xvfb binary */
  xvfb: string;
  /** where each session's framebuffer folder is made (a tmpfs such as /dev/shm is best) */
  tmpDir: string;
  /** the UA runs as this user (null: as the agent's) */
  uaUser?: UaUser | null;
}

/** The X side of a session, once set up. */
interface XSide {
  display: XDisplay;
  client: XClient;
  damage: DamageExt;
  damageId: number;
  injector: InputInjector;
}

/** while the UA's leader is gone but processes it started still run, they are looked at this often */
const ORPHAN_POLL_MS = 500;

/** longest wait for the UA's first window before the session is ready anyway */
const FIRST_WINDOW_TIMEOUT_MS = 10_000;

export class X11Instance implements UaInstance {
  readonly width: number;
  readonly height: number;
  /** private folder of the session (mode 0700): framebuffer file and Xauthority */
  private fbdir = '';
  private xvfb: StartedXvfb | null = null;
  private x: XSide | null = null;
  private fb: XvfbFramebuffer | null = null;
  private wm: ScreenWindowManager | null = null;
  private ua: ChildProcess | null = null;
  private uaStderr: () => string = () => '';
  /** UA session id (= the leader's pid; the leader was started detached) */
  private sid = 0;
  /** something changed since the last capture (the first capture always has a picture) */
  private dirty = true;
  private subtracting = false;
  private damageAgain = false;
  private suspended = false;
  /** the UA or its X server ended; no more damage or input */
  private ended = false;
  private exitReported = false;
  private orphanTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly opts: UaStartOptions,
    private readonly config: X11InstanceConfig,
  ) {
    this.width = opts.width;
    this.height = opts.height;
  }

  static async start(pkg: X11Package, opts: UaStartOptions, config: X11InstanceConfig): Promise<X11Instance> {
    const inst = new X11Instance(opts, config);
    try {
      await inst.startX();
      await inst.startUa(pkg);
      await inst.untilFirstWindow(FIRST_WINDOW_TIMEOUT_MS);
    } catch (e) {
      await inst.close();
      throw e;
    }
    return inst;
  }

  private get authFile(): string {
    return path.join(this.fbdir, 'Xauthority');
  }

  /** X display number (diagnostics, tests) */
  get display(): number | null {
    return this.xvfb?.display ?? null;
  }

  /** pid of the UA's first process, null when it is not running */
  get pid(): number | null {
    return this.ua && this.ua.exitCode === null && this.ua.signalCode === null ? (this.ua.pid ?? null) : null;
  }

  /** pid of this session's Xvfb */
  get xvfbPid(): number | null {
    return this.xvfb?.proc.pid ?? null;
  }

  /** live processes of the UA (its session and their descendants) */
  processes(): number[] {
    return this.sid ? uaProcesses(this.sid) : [];
  }

  // ---- UaInstance --------------------------------------------------------------------------------

  input(ev: InputEvent): void {
    if (this.ended || this.suspended || !this.x) return;
    this.x.injector.input(ev);
  }

  capture(): RawFrame | null {
    if (this.ended || this.suspended || !this.dirty) return null;
    return this.grab();
  }

  captureFull(): RawFrame {
    return this.grab();
  }

  /** Linux UAs keep their own files; VM Data for X11 is a later issue. */
  async saveAppData(): Promise<Uint8Array> {
    return new Uint8Array(0);
  }

  async restoreAppData(data: Uint8Array): Promise<void> {
    if (data.length !== 0) throw new Error('LINUX_X11 UAs have no app data to restore (their files stay on the VM)');
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
    this.x?.injector.reset();
    signalAll(this.processes(), 'SIGSTOP');
  }

  resume(): void {
    if (this.ended || !this.suspended) return;
    this.suspended = false;
    signalAll(this.processes(), 'SIGCONT');
    if (this.dirty) this.opts.onDamage();
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- start -------------------------------------------------------------------------------------

  private async startX(): Promise<void> {
    this.fbdir = mkdtempSync(path.join(this.config.tmpDir, 'uve-x11-'));
    const cookie = randomBytes(16);
    writeXauthority(this.authFile, cookie);
    this.xvfb = await startXvfb({ binary: this.config.xvfb, width: this.width, height: this.height, fbdir: this.fbdir, authFile: this.authFile });
    this.xvfb.proc.on('error', () => undefined); // a failed kill(); exit is what counts
    this.xvfb.proc.once('exit', (code, signal) => this.fail(`the X server (Xvfb) exited (${signal ?? `code ${code}`}): ${this.xvfb?.stderr() || 'no output'}`));

    const display = await connect(`:${this.xvfb.display}`, { name: COOKIE_NAME, data: cookie });
    const client = display.client;
    client.on('error', (e: Error & { error?: number }) => {
      // an X protocol error (say, configuring a window the UA destroyed meanwhile) is harmless;
      // only a broken connection ends the session
      if (typeof e.error !== 'number') this.fail(`X connection error: ${e.message}`);
    });
    client.on('end', () => this.fail('the X connection closed'));
    const damage = await requireExt<DamageExt>(client, 'damage', 'DAMAGE');
    const xtest = await requireExt<XTestExt>(client, 'xtest', 'XTEST');
    const screen = display.screen[0];
    if (screen.pixel_width !== this.width || screen.pixel_height !== this.height) {
      throw new Error(`Xvfb made a ${screen.pixel_width}x${screen.pixel_height} screen, not ${this.width}x${this.height}`);
    }
    const root = screen.root;

    // be the window manager before the UA can map anything
    await new Promise<void>((resolve, reject) =>
      client.ChangeWindowAttributes(root, { eventMask: x11.eventMask.SubstructureRedirect | x11.eventMask.SubstructureNotify }, (err) =>
        err ? reject(new Error(`cannot manage the windows of display :${this.xvfb?.display} (another window manager?): ${err.message}`)) : resolve(),
      ),
    );
    // the UC repeats held keys itself (more key downs); the server's repeat would double them and
    // keep repeating a key whose release was lost with a connection
    client.ChangeKeyboardControl({ autoRepeatMode: X.AUTO_REPEAT_OFF });
    const keycodes = display.max_keycode - display.min_keycode + 1;
    const rows = await new Promise<number[][]>((resolve, reject) =>
      client.GetKeyboardMapping(display.min_keycode, keycodes, (err, r) => (err ? reject(err) : resolve(r))),
    );
    const keyboard = new Keyboard(
      display.min_keycode,
      rows,
      {
        key: (keycode, down) => xtest.FakeInput(down ? xtest.KeyPress : xtest.KeyRelease, keycode, 0, root, 0, 0),
        remap: (keycode, keysym) => client.ChangeKeyboardMapping(keycode, 2, [keysym, keysym]),
      },
      () => performance.now(),
    );
    const injector = new InputInjector({
      width: this.width,
      height: this.height,
      keyboard,
      pointer: {
        motion: (x, y) => xtest.FakeInput(xtest.MotionNotify, 0, 0, root, x, y),
        button: (b, down) => xtest.FakeInput(down ? xtest.ButtonPress : xtest.ButtonRelease, b, 0, root, 0, 0),
      },
    });
    // damage reports count from here on (a report left unanswered would be the last one)
    const damageId = client.AllocID();
    this.x = { display, client, damage, damageId, injector };
    const wm = (this.wm = new ScreenWindowManager(client, this.width, this.height));
    damage.Create(damageId, root, damage.ReportLevel.NonEmpty);
    client.on('event', (ev: XEvent) => {
      if (ev.name === 'DamageNotify') this.damaged();
      else wm.handle(ev);
    });
    await sync(client);
    this.fb = XvfbFramebuffer.open(framebufferFile(this.fbdir), this.width, this.height);
  }

  /**
   * The session is ready once the UA shows a window: the first picture is the app, not an empty
   * screen, and early input is not lost on a display with nothing to take it. A program that
   * never maps a window is not held up longer than `ms`.
   */
  private async untilFirstWindow(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.wm?.firstWindow, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  private async startUa(pkg: X11Package): Promise<void> {
    // a home of its own, removed with the session's folder; nothing of the agent's environment
    const home = path.join(this.fbdir, 'home');
    mkdirSync(home, { mode: 0o700 });
    const user = this.config.uaUser ?? null;
    if (user) {
      // its own user: the home and the display's cookie are its; the session folder it may only pass through
      chownSync(home, user.uid, user.gid);
      chownSync(this.authFile, user.uid, user.gid);
      chmodSync(this.fbdir, 0o711);
      // Xvfb's framebuffer file is the agent's to read, no UA's
      for (const f of readdirSync(this.fbdir)) if (f !== 'home' && f !== 'Xauthority') chmodSync(path.join(this.fbdir, f), 0o600);
    }
    const env = uaEnvironment(process.env, pkg.manifest.env, { display: `:${this.xvfb!.display}`, xauthority: this.authFile, home });
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

  // ---- damage and capture ------------------------------------------------------------------------

  private damaged(): void {
    if (this.ended || !this.x) return;
    if (this.subtracting) {
      // drawn after the subtraction in flight: needs one more round
      this.damageAgain = true;
      return;
    }
    const { client, damage, damageId } = this.x;
    this.subtracting = true;
    damage.Subtract(damageId, 0, 0);
    client.sync(() => {
      this.subtracting = false;
      if (this.ended) return;
      this.dirty = true;
      if (!this.suspended) this.opts.onDamage();
      if (this.damageAgain) {
        this.damageAgain = false;
        this.damaged();
      }
    });
  }

  private grab(): RawFrame {
    this.dirty = false;
    if (!this.fb) return blackFrame(this.width, this.height); // closed
    return this.fb.read();
  }

  // ---- ending ------------------------------------------------------------------------------------

  private uaLeaderExited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.closing) return;
    const reason = (): Error | undefined => {
      if (code === 0) return undefined;
      const stderr = this.uaStderr();
      return new Error(`${signal ? `the UA was killed by ${signal}` : `the UA exited with code ${code}`}${stderr ? `: ${stderr}` : ''}`);
    };
    // a launcher that started the real program and returned: the UA lives on in its session
    const check = (): void => {
      this.orphanTimer = null;
      if (this.closing) return;
      if (this.processes().length > 0) {
        this.orphanTimer = setTimeout(check, ORPHAN_POLL_MS);
        this.orphanTimer.unref();
        return;
      }
      // the UA ended because its X server did (it was killed): that is the news
      this.reportExit(this.xServerGone() ? new Error(`the X server (Xvfb) exited: ${this.xvfb?.stderr() || 'no output'}`) : reason());
    };
    check();
  }

  private xServerGone(): boolean {
    const proc = this.xvfb?.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return true;
    const state = proc.pid === undefined ? null : processState(proc.pid);
    return state === null || state === 'Z'; // dead, not reaped yet
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
    if (this.x) {
      this.x.injector.cancel();
      try {
        this.x.client.removeAllListeners('end');
        this.x.client.terminate();
      } catch {
        /* already closed */
      }
    }
    this.fb?.close();
    this.fb = null;
    const xvfb = this.xvfb;
    if (xvfb) {
      xvfb.proc.removeAllListeners('exit');
      await stopProcess(xvfb.proc);
      // after a SIGKILL Xvfb could not remove its socket
      if (xvfb.proc.signalCode === 'SIGKILL') removeDisplayFiles(xvfb.display);
    }
    if (this.fbdir) rmSync(this.fbdir, { recursive: true, force: true });
  }
}

const FULL_STATE_UNAVAILABLE =
  'a LINUX_X11 UA cannot be captured as a full process checkpoint on this VM (CRIU does not work on this kernel); use NORMAL reconnection';

function blackFrame(width: number, height: number): RawFrame {
  const data = new Uint8Array(width * height * 4);
  for (let i = 3; i < data.length; i += 4) data[i] = 255;
  return { width, height, data };
}

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
