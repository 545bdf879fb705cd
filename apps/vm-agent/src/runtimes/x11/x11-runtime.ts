// The LINUX_X11 platform: a UA is an ordinary X11 program (docs/linux-x11.md). Each session gets
// its own Xvfb display; the agent is the program's only other X client (input, window placement,
// damage), and reads the picture from Xvfb's memory-mapped framebuffer.
import { accessSync, constants, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { LocalResourceKind } from '@uve/protocol';
import type { UaInstance, UaRuntime, UaStartOptions } from '../runtime';
import { loadPackage } from './package';
import { X11Instance } from './x11-instance';
import type { UaUser } from './ua-user';

export interface X11RuntimeOptions {
  /** the Xvfb binary (default "Xvfb", found on PATH) */
  xvfb?: string;
  /** where the per-session framebuffer folders go (default /dev/shm when writable, else the OS temp dir) */
  tmpDir?: string;
  /** UAs run as this user (the agent must be root); default: as the agent's own user */
  uaUser?: UaUser | null;
}

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
  private readonly xvfb: string;
  private readonly tmpDir: string;
  private readonly uaUser: UaUser | null;

  constructor(options: X11RuntimeOptions = {}) {
    this.xvfb = options.xvfb ?? 'Xvfb';
    this.tmpDir = options.tmpDir ?? defaultTmpDir();
    this.uaUser = options.uaUser ?? null;
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
    const pkg = await loadPackage(opts.ua.dir);
    const { minWidth = 1, minHeight = 1, name } = pkg.manifest;
    if (width < minWidth || height < minHeight) throw new Error(`${name} needs a screen of at least ${minWidth}x${minHeight}, got ${width}x${height}`);
    return X11Instance.start(pkg, opts, { xvfb: this.xvfb, tmpDir: this.tmpDir, uaUser: this.uaUser });
  }
}
