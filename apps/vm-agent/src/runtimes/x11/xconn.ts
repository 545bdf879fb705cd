// The part of the `x11` npm package (a pure-JS X11 protocol client without typings) this runtime
// uses, typed, plus promise wrappers for connecting and loading extensions.
import type { EventEmitter } from 'node:events';

export type XCallback<T> = (err: Error | null, result: T) => unknown;

export interface XEvent {
  name: string;
  type: number;
  [field: string]: unknown;
}

export interface XConfigureValues {
  x?: number;
  y?: number;
  width?: number;
  height?: number;
  borderWidth?: number;
  sibling?: number;
  stackMode?: number;
}

export interface XClient extends EventEmitter {
  AllocID(): number;
  ChangeWindowAttributes(wid: number, values: Record<string, number>, cb?: (err: Error | null) => unknown): void;
  ConfigureWindow(wid: number, values: XConfigureValues): void;
  MapWindow(wid: number): void;
  SetInputFocus(wid: number, revertTo: number, cb?: (err: Error | null) => unknown): void;
  GetProperty(del: number, wid: number, name: number, type: number, longOffset: number, longLength: number, cb: XCallback<{ type: number; format: number; data: Buffer }>): void;
  GetGeometry(drawable: number, cb: XCallback<{ xPos: number; yPos: number; width: number; height: number; borderWidth: number }>): void;
  GetKeyboardMapping(first: number, count: number, cb: XCallback<number[][]>): void;
  ChangeKeyboardMapping(first: number, keysymsPerKeycode: number, keysyms: number[]): void;
  ChangeKeyboardControl(values: { autoRepeatMode?: number }): void;
  SendEvent(destination: number, propagate: number, eventMask: number, event: Record<string, unknown>): void;
  GetImage(format: number, drawable: number, x: number, y: number, width: number, height: number, planeMask: number, cb: XCallback<{ depth: number; data: Buffer }>): void;
  require<T>(name: string, cb: XCallback<T>): void;
  /** round trip: `cb` runs once the server processed every request sent before */
  sync(cb: (err: Error | null) => unknown): void;
  terminate(): void;
}

export interface XScreen {
  root: number;
  pixel_width: number;
  pixel_height: number;
  root_depth: number;
}

export interface XDisplay {
  client: XClient;
  screen: XScreen[];
  min_keycode: number;
  max_keycode: number;
}

export interface DamageExt {
  major: number;
  minor: number;
  ReportLevel: { RawRectangles: number; DeltaRectangles: number; BoundingBox: number; NonEmpty: number };
  Create(damage: number, drawable: number, reportLevel: number): void;
  Destroy(damage: number): void;
  Subtract(damage: number, repair: number, parts: number): void;
}

export interface XTestExt {
  KeyPress: number;
  KeyRelease: number;
  ButtonPress: number;
  ButtonRelease: number;
  MotionNotify: number;
  FakeInput(type: number, detail: number, time: number, root: number, x: number, y: number): void;
}

interface X11Module {
  createClient(options: { display: string; shm?: boolean | string; auth?: { name: string; data: string } }, cb: XCallback<XDisplay>): XClient;
  eventMask: Record<string, number>;
}

export const x11 = require('x11') as X11Module;

/** Core protocol constants used here (X11 protocol encoding). */
export const X = {
  REVERT_TO_POINTER_ROOT: 1,
  ATOM_WM_TRANSIENT_FOR: 68,
  ATOM_WINDOW: 33,
  AUTO_REPEAT_OFF: 0,
  IMAGE_Z_PIXMAP: 2,
  /** ConfigureRequest value-mask bits */
  CW_X: 1,
  CW_Y: 2,
  CW_WIDTH: 4,
  CW_HEIGHT: 8,
  CW_BORDER: 16,
  CW_SIBLING: 32,
  CW_STACK_MODE: 64,
} as const;

/**
 * Opens a connection with the given cookie (the package would read $XAUTHORITY, which is
 * process-wide); no MIT-SHM: the framebuffer is read from Xvfb's -fbdir file instead.
 */
export function connect(display: string, cookie: { name: string; data: Buffer }): Promise<XDisplay> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(new Error(`cannot connect to X display ${display}: ${e.message}`));
    const auth = { name: cookie.name, data: cookie.data.toString('latin1') };
    const client = x11.createClient({ display, shm: false, auth }, (err, dpy) => (err ? onError(err) : resolve(dpy)));
    // stays: a late error must not be an unhandled 'error' event (rejecting a settled promise is a no-op)
    client.on('error', onError);
  });
}

export function requireExt<T>(client: XClient, name: string, xName: string): Promise<T> {
  return new Promise((resolve, reject) =>
    client.require<T>(name, (err, ext) => (err ? reject(new Error(`the X server has no ${xName} extension (start Xvfb with +extension ${xName})`)) : resolve(ext))),
  );
}

export function sync(client: XClient): Promise<void> {
  return new Promise((resolve, reject) => client.sync((err) => (err ? reject(err) : resolve())));
}
