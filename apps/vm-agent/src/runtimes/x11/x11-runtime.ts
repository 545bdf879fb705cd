// The LINUX_X11 platform: a UA is an ordinary X11 program (docs/linux-x11.md). Each session gets
// its own Xvfb display; the agent is the program's only other X client (input, window placement,
// damage), and reads the picture from Xvfb's memory-mapped framebuffer.
import { accessSync, constants, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { LocalResourceKind } from '@uve/protocol';
import type { PixelFormat, UaInstance, UaRuntime, UaStartOptions } from '../runtime';
import { i420Unsupported } from '../wasm/i420';
import { loadPackage } from './package';
import { X11Display } from './x11-display';
import { X11Instance } from './x11-instance';
import type { UaUser } from './ua-user';

export interface X11RuntimeOptions {
  /** the Xvfb binary (default "Xvfb", found on PATH) */
  xvfb?: string;
  /** where the per-session framebuffer folders go (default /dev/shm when writable, else the OS temp dir) */
  tmpDir?: string;
  /**
   * keep one display started for the next session (the size of the last one, at first 1280x720):
   * a session then starts only its program, not Xvfb and the agent's X connection
   */
  warmDisplay?: boolean;
  /** UAs run as this user (the agent must be root); default: as the agent's own user */
  uaUser?: UaUser | null;
}

/** the usual first session's screen */
const WARM_DISPLAY_DEFAULT = { width: 1280, height: 720 };

/** a tmpfs keeps the framebuffer file in memory; /tmp may be a disk */
function defaultTmpDir(): string {
  try {
    if (statSync('/dev/shm').isDirectory()) {
      accessSync('/dev/shm', constants.W_OK);
      return '/dev/shm';
    }
  } catch {
    /* no /dev/shm */
  }
  return tmpdir();
}

export class X11Runtime implements UaRuntime {
  readonly platform = 'LINUX_X11' as const;
  /** I420 is converted from the framebuffer in WASM SIMD (framebuffer.ts): ffmpeg then takes it as it is */
  readonly pixelFormats: readonly PixelFormat[] = ['rgba', 'i420'];
  private readonly xvfb: string;
  private readonly tmpDir: string;
  private readonly warmDisplay: boolean;
  /** the display kept started for the next session, by size */
  private spare: { width: number; height: number; display: Promise<X11Display | null> } | null = null;
  /** why the last spare display was dropped (its start failed or its X server died), for tests and diagnosis */
  spareLost: string | null = null;
  private closed = false;
  private readonly uaUser: UaUser | null;

  constructor(options: X11RuntimeOptions = {}) {
    this.xvfb = options.xvfb ?? 'Xvfb';
    this.tmpDir = options.tmpDir ?? defaultTmpDir();
    this.warmDisplay = options.warmDisplay ?? false;
    this.uaUser = options.uaUser ?? null;
    if (this.warmDisplay) this.keepSpare(WARM_DISPLAY_DEFAULT.width, WARM_DISPLAY_DEFAULT.height);
  }

  /** pid of the spare display's Xvfb (tests, monitoring); null when none is ready */
  async spareXvfbPid(): Promise<number | null> {
    return (await this.spare?.display)?.xvfbPid ?? null;
  }

  async close(): Promise<void> {
    this.closed = true;
    const spare = this.spare;
    this.spare = null;
    await (await spare?.display)?.close();
  }

  private keepSpare(width: number, height: number): void {
    if (this.closed || (this.spare?.width === width && this.spare.height === height)) return;
    const old = this.spare;
    const entry = {
      width,
      height,
      display: X11Display.start({ xvfb: this.xvfb, tmpDir: this.tmpDir }, width, height).then(
        (d) => {
          // a spare whose X server dies while it waits is dropped (the next session starts its own)
          d.listen({ onDamage: () => undefined, onFail: (why) => {
            this.spareLost = `its X server failed while it waited: ${why}`;
            if (this.spare === entry) this.spare = null;
            void d.close();
          } });
          return d;
        },
        (e: Error) => {
          this.spareLost = `it did not start: ${e.message}`;
          if (this.spare === entry) this.spare = null;
          return null;
        },
      ),
    };
    this.spare = entry;
    if (old) void old.display.then((d) => d?.close());
  }

  /** the spare display if it has this size (it is then the caller's), else null */
  private async takeSpare(width: number, height: number): Promise<X11Display | null> {
    const spare = this.spare;
    if (!spare || spare.width !== width || spare.height !== height) return null;
    this.spare = null;
    const d = await spare.display;
    return d && !d.xServerGone() ? d : null;
  }

  async validatePackage(dir: string): Promise<{ requiredResources: LocalResourceKind[]; minWidth?: number; minHeight?: number }> {
    const { manifest } = await loadPackage(dir);
    return { requiredResources: manifest.requiredResources, minWidth: manifest.minWidth, minHeight: manifest.minHeight };
  }

  async start(opts: UaStartOptions): Promise<UaInstance> {
    const { width, height } = opts;
    // Xvfb screens are at most 32767 pixels wide; the encoders want far less
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0 || width > 16384 || height > 16384) {
      throw new Error(`invalid screen size ${width}x${height}`);
    }
    const odd = opts.pixelFormat === 'i420' ? i420Unsupported(width, height) : null;
    if (odd) throw new Error(odd);
    const pkg = await loadPackage(opts.ua.dir);
    const { minWidth = 1, minHeight = 1, name } = pkg.manifest;
    if (width < minWidth || height < minHeight) throw new Error(`${name} needs a screen of at least ${minWidth}x${minHeight}, got ${width}x${height}`);
    const spare = this.warmDisplay ? await this.takeSpare(width, height) : null;
    try {
      return await X11Instance.start(pkg, opts, { xvfb: this.xvfb, tmpDir: this.tmpDir, uaUser: this.uaUser }, spare);
    } finally {
      // the next session's display, once this one's program is up (not competing with its start)
      if (this.warmDisplay) this.keepSpare(width, height);
    }
  }
}
