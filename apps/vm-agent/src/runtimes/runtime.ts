// The seam between the agent and the platforms it hosts. WASM (this package) and LINUX_X11
// (a later runtime) implement it; the session/stream code only sees these interfaces.
import type { InputEvent, LocalResourceKind, Platform, ResourceValue, VmDataSaveTiming } from '@uve/protocol';

/**
 * How a picture's pixels are laid out. `rgba`: 4 bytes per pixel, rows tightly packed (stride =
 * width * 4). `i420` (yuv420p): the Y plane (width x height), then U and V (width/2 x height/2 each),
 * BT.601 limited range as ffmpeg's swscale makes it from RGBA; even width and height only.
 */
export type PixelFormat = 'rgba' | 'i420';

/** bytes of one picture in `format` */
export function pictureBytes(format: PixelFormat, width: number, height: number): number {
  return format === 'i420' ? width * height + 2 * (width / 2) * (height / 2) : width * height * 4;
}

/** a black picture (I420 black: Y 16, U and V 128; RGBA opaque), for a keyframe asked before the UA drew */
export function blackPicture(format: PixelFormat, width: number, height: number): RawFrame {
  const data = new Uint8Array(pictureBytes(format, width, height));
  if (format === 'i420') data.fill(16, 0, width * height).fill(128, width * height);
  else for (let i = 3; i < data.length; i += 4) data[i] = 255;
  return { width, height, data, format };
}

/**
 * One picture (RGBA unless `format` says otherwise). A runtime may reuse `data` for a later picture:
 * it stays as it is until two more captures of the same UA (the WASM runtime's ring of three shared
 * buffers); the frame pump encodes one picture at a time.
 */
export interface RawFrame {
  width: number;
  height: number;
  data: Uint8Array;
  /** absent: rgba */
  format?: PixelFormat;
}

/** a picture's format (RGBA when it names none) */
export const formatOf = (frame: RawFrame): PixelFormat => frame.format ?? 'rgba';

/** A UA package as installed on this VM. */
export interface InstalledUa {
  uaId: string;
  version: string;
  /** folder holding the unpacked package (manifest + module/program) */
  dir: string;
}

/** UVE-4 as the UA sees it: the VM asks the UC for a local resource; the answer or a refusal comes back. */
export type ResourceAnswer = { ok: true; value: ResourceValue } | { ok: false; reason: string };
export interface ResourceBroker {
  request(kind: LocalResourceKind): Promise<ResourceAnswer>;
}

export interface UaStartOptions {
  ua: InstalledUa;
  width: number;
  height: number;
  resources: ResourceBroker;
  /**
   * what capture() returns (default rgba); only a format in the runtime's `pixelFormats`. The H264
   * encoder takes i420 without a conversion of its own, the MJPEG one (sharp) takes rgba.
   */
  pixelFormat?: PixelFormat;
  /** called when the UA's picture may have changed (after input, a timer, an answered resource) */
  onDamage: () => void;
  /** called when the UA exits or traps on its own */
  onExit: (error?: Error) => void;
  /**
   * A FULL state is to be restored into the UA: a runtime may leave out the UA's own start (its
   * init and first picture, thrown away by the restore) and do it only if something else follows.
   */
  restoreFollows?: boolean;
}

/**
 * The UA did not answer a call within its time budget (an endless loop, a deadlock): its runtime
 * gave it up. The message is the reason the session ends with.
 */
export class UaUnresponsiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UaUnresponsiveError';
  }
}

/** A running UA, one per session. */
export interface UaInstance {
  readonly width: number;
  readonly height: number;
  /** applies one interaction command */
  input(ev: InputEvent): void;
  /** the current picture, or null when it has not changed since the last capture */
  capture(): RawFrame | null;
  /** picture regardless of change (a client joined and needs a keyframe) */
  captureFull(): RawFrame;
  /** the UA's own data to keep across NORMAL reconnections (may be empty) */
  saveAppData(): Promise<Uint8Array>;
  /**
   * the full state, byte for byte (NO_LOSS); runtimes that cannot capture it throw. `timing` gets
   * when the state was out of the UA (its encoding follows). `into`: a shared buffer the state
   * may be written into (the result is then a view of it, valid while the caller holds it)
   */
  saveFullState(timing?: Pick<VmDataSaveTiming, 'capturedAt'>, into?: Uint8Array): Promise<Uint8Array>;
  /**
   * what the last saveFullState needed in `into` (the state before packing), where the runtime
   * knows it: a caller whose buffer was smaller can offer one that large the next time
   */
  readonly fullStateBytes?: number;
  restoreAppData(data: Uint8Array): Promise<void>;
  /** takes `data` over: a WASM UA may move its buffer to the guest's thread (the caller must not read it after) */
  restoreFullState(data: Uint8Array): Promise<void>;
  /**
   * The first bytes of a FULL snapshot about to be restored (its header): the UA may make room for
   * the state meanwhile (a WASM UA grows and touches the memory it will restore into). A hint only.
   */
  prepareRestore?(head: Uint8Array): void;
  /** freezes the UA: no clock, no rendering, input ignored */
  suspend(): void;
  resume(): void;
  close(): Promise<void>;
}

export interface UaRuntime {
  readonly platform: Platform;
  /** the picture formats its UAs can give (UaStartOptions.pixelFormat); absent: rgba only */
  readonly pixelFormats?: readonly PixelFormat[];
  /** checks an unpacked package and returns what it needs; throws with a reason a storefront can act on */
  validatePackage(dir: string): Promise<{ requiredResources: LocalResourceKind[]; minWidth?: number; minHeight?: number }>;
  start(opts: UaStartOptions): Promise<UaInstance>;
  /** releases what the runtime keeps between sessions (a started spare display) */
  close?(): Promise<void>;
  /** WASM: guest threads started, and UAs run on a thread an earlier UA ran on, since the start; threads kept idle now */
  guestThreads?(): { started: number; reused: number; idle: number };
}
