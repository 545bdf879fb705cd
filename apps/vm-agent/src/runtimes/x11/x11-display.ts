// One X display of a LINUX_X11 session: its Xvfb, the agent's persistent X connection (input
// through XTEST, window placement, damage) and the memory-mapped framebuffer. It starts before the
// UA, so a VM can keep one started for its next session (X11Runtime) and a session then only
// starts its program. A display serves one session and is never reused: a UA leaves state behind
// in its X server (properties, selections, grabs).
//
// Capture is event-driven. A DAMAGE object on the root reports "the screen is no longer clean"
// (ReportLevel NonEmpty); the damage is then subtracted and, once a round trip proves the server
// did that, the picture is marked dirty and onDamage() is called. Any drawing after the
// subtraction raises a new report, any drawing before it is already in the framebuffer, so a
// capture after onDamage never misses a change.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { blackPicture, type PixelFormat, type RawFrame } from '../runtime';
import { framebufferFile, XvfbFramebuffer } from './framebuffer';
import { InputInjector } from './input';
import { Keyboard } from './keyboard';
import { COOKIE_NAME, processState, removeDisplayFiles, startXvfb, stopProcess, writeXauthority, type StartedXvfb } from './processes';
import { ScreenWindowManager } from './window-manager';
import { connect, requireExt, sync, X, x11, type DamageExt, type XClient, type XDisplay, type XEvent, type XTestExt } from './xconn';

export interface X11DisplayConfig {
  /** the Xvfb binary */
  xvfb: string;
  /** where each display's private folder is made (a tmpfs such as /dev/shm is best) */
  tmpDir: string;
}

/** Who hears from the display: the session using it, or the runtime while it waits as a spare. */
export interface DisplayListener {
  /** the picture may have changed */
  onDamage(): void;
  /** the X server or the connection to it is gone */
  onFail(message: string): void;
}

/** The X side, once set up. */
interface XSide {
  display: XDisplay;
  client: XClient;
  damage: DamageExt;
  damageId: number;
  injector: InputInjector;
}

export class X11Display {
  /** private folder (mode 0700): framebuffer file, Xauthority, the UA's home */
  fbdir = '';
  private xvfb: StartedXvfb | null = null;
  private x: XSide | null = null;
  private fb: XvfbFramebuffer | null = null;
  private wmgr: ScreenWindowManager | null = null;
  /** something changed since the last grab (the first grab always has a picture) */
  dirty = true;
  private subtracting = false;
  private damageAgain = false;
  private gone = false;
  private listener: DisplayListener = { onDamage: () => undefined, onFail: () => undefined };
  private closing: Promise<void> | null = null;

  private constructor(
    readonly width: number,
    readonly height: number,
    private readonly config: X11DisplayConfig,
  ) {}

  static async start(config: X11DisplayConfig, width: number, height: number): Promise<X11Display> {
    const d = new X11Display(width, height, config);
    try {
      await d.startX();
    } catch (e) {
      await d.close();
      throw e;
    }
    return d;
  }

  /** hands the display's news to a new listener (a spare display given to its session) */
  listen(listener: DisplayListener): void {
    this.listener = listener;
    if (this.gone) listener.onFail('the X display was gone before its session took it');
  }

  get authFile(): string {
    return path.join(this.fbdir, 'Xauthority');
  }

  /** X display number */
  get number(): number | null {
    return this.xvfb?.display ?? null;
  }

  get xvfbPid(): number | null {
    return this.xvfb?.proc.pid ?? null;
  }

  get injector(): InputInjector | null {
    return this.x?.injector ?? null;
  }

  /** resolves when a window was mapped on this display */
  get firstWindow(): Promise<void> | undefined {
    return this.wmgr?.firstWindow;
  }

  /** resolves when the next window is mapped on this display */
  nextWindow(): Promise<void> | undefined {
    return this.wmgr?.nextWindow();
  }

  xvfbStderr(): string {
    return this.xvfb?.stderr() || 'no output';
  }

  /** the picture now (marks it clean) */
  grab(format: PixelFormat): RawFrame {
    this.dirty = false;
    if (!this.fb) return blackPicture(format, this.width, this.height); // closed
    return this.fb.read(format);
  }

  xServerGone(): boolean {
    const proc = this.xvfb?.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return true;
    const state = proc.pid === undefined ? null : processState(proc.pid);
    return state === null || state === 'Z'; // dead, not reaped yet
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private fail(message: string): void {
    if (this.closing || this.gone) return;
    this.gone = true;
    this.listener.onFail(message);
  }

  private async startX(): Promise<void> {
    this.fbdir = mkdtempSync(path.join(this.config.tmpDir, 'uve-x11-'));
    const cookie = randomBytes(16);
    writeXauthority(this.authFile, cookie);
    this.xvfb = await startXvfb({ binary: this.config.xvfb, width: this.width, height: this.height, fbdir: this.fbdir, authFile: this.authFile });
    this.xvfb.proc.on('error', () => undefined); // a failed kill(); exit is what counts
    this.xvfb.proc.once('exit', (code, signal) => this.fail(`the X server (Xvfb) exited (${signal ?? `code ${code}`}): ${this.xvfbStderr()}`));

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
    const wm = (this.wmgr = new ScreenWindowManager(client, this.width, this.height));
    damage.Create(damageId, root, damage.ReportLevel.NonEmpty);
    client.on('event', (ev: XEvent) => {
      if (ev.name === 'DamageNotify') this.damaged();
      else wm.handle(ev);
    });
    await sync(client);
    this.fb = XvfbFramebuffer.open(framebufferFile(this.fbdir), this.width, this.height);
  }

  private damaged(): void {
    if (this.gone || this.closing || !this.x) return;
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
      if (this.gone || this.closing) return;
      this.dirty = true;
      this.listener.onDamage();
      if (this.damageAgain) {
        this.damageAgain = false;
        this.damaged();
      }
    });
  }

  private async shutdown(): Promise<void> {
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
