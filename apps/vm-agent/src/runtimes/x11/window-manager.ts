// A window manager reduced to what one full-screen UA needs. With SubstructureRedirect on the root,
// every top-level MapWindow/ConfigureWindow of the UA comes here as a request: main windows are
// made to fill the screen (whatever geometry the app asked for), dialogs (WM_TRANSIENT_FOR) keep
// their size and are centred, and the newest mapped window gets the keyboard focus. Menus and
// tooltips are override-redirect and never pass through here. No decorations, no reparenting.
import { X, x11, type XClient, type XEvent } from './xconn';

export class ScreenWindowManager {
  /** mapped top-level windows, oldest first (the last has the focus) */
  private readonly stack: number[] = [];
  /** top-level windows that fill the screen */
  private readonly fullScreen = new Set<number>();
  private firstMapped!: () => void;
  /** resolves when the UA has mapped its first window (it can take input from then on) */
  readonly firstWindow = new Promise<void>((resolve) => (this.firstMapped = resolve));
  private mapWaiters: (() => void)[] = [];

  constructor(
    private readonly client: XClient,
    private readonly width: number,
    private readonly height: number,
  ) {}

  /** handles the event if it is one of the window manager's; returns whether it was */
  handle(ev: XEvent): boolean {
    switch (ev.name) {
      case 'MapRequest':
        this.map(ev.wid as number);
        return true;
      case 'ConfigureRequest':
        this.configure(ev);
        return true;
      case 'UnmapNotify':
        this.forget(ev.wid as number);
        return true;
      case 'DestroyNotify':
        this.forget(ev.wid as number);
        this.fullScreen.delete(ev.wid as number);
        return true;
      default:
        return false;
    }
  }

  private map(wid: number): void {
    const X11 = this.client;
    X11.GetProperty(0, wid, X.ATOM_WM_TRANSIENT_FOR, X.ATOM_WINDOW, 0, 1, (err, prop) => {
      if (err) return true; // the window is gone already
      const transient = prop.data.length >= 4 && prop.data.readUInt32LE(0) !== 0;
      if (!transient) {
        this.fullScreen.add(wid);
        X11.ConfigureWindow(wid, { x: 0, y: 0, width: this.width, height: this.height, borderWidth: 0 });
        this.mapAndFocus(wid);
        return;
      }
      X11.GetGeometry(wid, (gErr, g) => {
        if (gErr) return true;
        const w = Math.min(g.width, this.width);
        const h = Math.min(g.height, this.height);
        X11.ConfigureWindow(wid, { x: (this.width - w) >> 1, y: (this.height - h) >> 1, width: w, height: h, borderWidth: 0 });
        this.mapAndFocus(wid);
      });
    });
  }

  /** resolves when the next window is mapped (a UA started again on this display) */
  nextWindow(): Promise<void> {
    return new Promise((resolve) => this.mapWaiters.push(resolve));
  }

  private mapAndFocus(wid: number): void {
    this.client.MapWindow(wid);
    this.firstMapped();
    for (const w of this.mapWaiters.splice(0)) w();
    const i = this.stack.indexOf(wid);
    if (i >= 0) this.stack.splice(i, 1);
    this.stack.push(wid);
    // a failure (the window went away meanwhile) needs no handling: its DestroyNotify follows
    this.client.SetInputFocus(wid, X.REVERT_TO_POINTER_ROOT, () => true);
  }

  private configure(ev: XEvent): void {
    const wid = ev.wid as number;
    const mask = ev.mask as number;
    const stacking = {
      ...(mask & X.CW_SIBLING ? { sibling: ev.sibling as number } : {}),
      ...(mask & X.CW_STACK_MODE ? { stackMode: ev.stackMode as number } : {}),
    };
    if (this.fullScreen.has(wid)) {
      // the geometry stays the screen; ICCCM 4.1.5: tell the client with a synthetic ConfigureNotify
      const geometry = { x: 0, y: 0, width: this.width, height: this.height, borderWidth: 0 };
      this.client.ConfigureWindow(wid, { ...geometry, ...stacking });
      this.client.SendEvent(wid, 0, x11.eventMask.StructureNotify, { name: 'ConfigureNotify', wid, wid1: wid, aboveSibling: 0, overrideRedirect: 0, ...geometry });
      return;
    }
    const values = {
      ...(mask & X.CW_X ? { x: ev.x as number } : {}),
      ...(mask & X.CW_Y ? { y: ev.y as number } : {}),
      ...(mask & X.CW_WIDTH ? { width: Math.min(ev.width as number, this.width) } : {}),
      ...(mask & X.CW_HEIGHT ? { height: Math.min(ev.height as number, this.height) } : {}),
      ...(mask & X.CW_BORDER ? { borderWidth: ev.borderWidth as number } : {}),
      ...stacking,
    };
    this.client.ConfigureWindow(wid, values);
  }

  private forget(wid: number): void {
    const i = this.stack.indexOf(wid);
    if (i < 0) return;
    this.stack.splice(i, 1);
    // the focus goes back to the window below (a dialog closed); X would revert it to the root
    const top = this.stack[this.stack.length - 1];
    if (i === this.stack.length && top !== undefined) this.client.SetInputFocus(top, X.REVERT_TO_POINTER_ROOT, () => true);
  }
}
