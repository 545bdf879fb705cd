// The RGBA -> I420 converter (apps/vm-agent/src/runtimes/wasm/i420.wat, WASM SIMD): bit for bit
// against a plain JS reference, colour for colour against ffmpeg's swscale (what x264 was given
// before), in the guest thread of a WASM UA, from a LINUX_X11 UA's framebuffer (with its BGRX ->
// RGBA step), and through H264 to a decoded picture.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import type { RawFrame } from '../../apps/vm-agent/src/runtimes/runtime';
import { WasmRuntime } from '../../apps/vm-agent/src/runtimes/wasm';
import { X11Runtime } from '../../apps/vm-agent/src/runtimes/x11';
import { i420Module } from '../../apps/vm-agent/src/runtimes/wasm/i420';
import { createEncoder, sessionPixelFormat, WarmX264, type VideoEncoder } from '../../apps/vm-agent/src/encoders';
import { createNodeDecoder, type DecodedFrame } from '../../packages/client/src/decoders';

const AGENT = path.resolve(__dirname, '../../apps/vm-agent');

/** BT.601 limited range in integers, one pixel and one 2x2 block at a time (the converter's definition) */
function referenceI420(rgba: Uint8Array, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 1.5);
  const u0 = w * h;
  const v0 = u0 + (w / 2) * (h / 2);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * 4;
      out[y * w + x] = ((66 * rgba[p] + 129 * rgba[p + 1] + 25 * rgba[p + 2] + 128) >> 8) + 16;
    }
  }
  for (let y = 0; y < h; y += 2) {
    for (let x = 0; x < w; x += 2) {
      const p = (y * w + x) * 4;
      const q = p + w * 4;
      const mean = (c: number): number => (rgba[p + c] + rgba[p + 4 + c] + rgba[q + c] + rgba[q + 4 + c] + 2) >> 2;
      const [r, g, b] = [mean(0), mean(1), mean(2)];
      const at = (y / 2) * (w / 2) + x / 2;
      out[u0 + at] = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
      out[v0 + at] = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    }
  }
  return out;
}

/** the converter called on a whole picture in a memory of its own */
function simdI420(rgba: Uint8Array, w: number, h: number): Uint8Array {
  const bytes = rgba.length + w * h * 1.5;
  const pages = Math.ceil(bytes / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const { rgba_to_i420: convert } = new WebAssembly.Instance(i420Module() as WebAssembly.Module, { env: { memory } }).exports as { rgba_to_i420: (...a: number[]) => void };
  new Uint8Array(memory.buffer).set(rgba);
  const y = rgba.length;
  convert(0, y, y + w * h, y + w * h + (w / 2) * (h / 2), w, h);
  return new Uint8Array(memory.buffer).slice(y, y + w * h * 1.5);
}

/** bgrx_to_rgba in a memory of its own */
function simdBgrxToRgba(bgrx: Uint8Array): Uint8Array {
  const pages = Math.ceil((bgrx.length + 1) / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const { bgrx_to_rgba: swap } = new WebAssembly.Instance(i420Module() as WebAssembly.Module, { env: { memory } }).exports as { bgrx_to_rgba: (at: number, bytes: number) => void };
  const mem = new Uint8Array(memory.buffer);
  mem.set(bgrx, 1); // at an odd address too: the stage and the slots are not 16-byte aligned in general
  mem[0] = 7;
  mem[bgrx.length + 1] = 9;
  swap(1, bgrx.length);
  expect([mem[0], mem[bgrx.length + 1]]).toEqual([7, 9]); // nothing around it written
  return mem.slice(1, bgrx.length + 1);
}

/** a deterministic pseudo-random picture (alpha random too: it must be ignored) */
function noise(w: number, h: number, seed: number): Uint8Array {
  let s = seed >>> 0;
  return Uint8Array.from({ length: w * h * 4 }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24;
  });
}

const COLOURS: Array<[number, number, number]> = [
  [0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0],
  [0, 255, 255], [255, 0, 255], [128, 128, 128], [200, 40, 40], [40, 180, 60], [224, 172, 140],
];

/** COLOURS as flat blocks of `size` px in one row */
function blocks(size: number): { rgba: Uint8Array; w: number; h: number } {
  const w = size * COLOURS.length;
  const h = size;
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgba.set([...COLOURS[Math.floor(x / size)], 255], (y * w + x) * 4);
  return { rgba, w, h };
}

describe('RGBA -> I420 in WASM SIMD', () => {
  it('is the committed module its .wat source assembles to (npm run build regenerates it)', () => {
    // throws (exit 1, with the file named) when they differ
    expect(execFileSync(process.execPath, [path.join(AGENT, 'scripts/build-wat.js'), '--check'], { encoding: 'utf8' })).toBe('');
  });

  it.each([
    [1280, 720],
    [2, 2],
    [8, 2],
    [10, 6], // 8 in SIMD, one 2x2 block in the scalar tail
    [30, 4],
    [318, 242],
  ])('matches the JS reference bit for bit at %ix%i', (w, h) => {
    const rgba = noise(w, h, w * 7 + h);
    expect(Buffer.compare(simdI420(rgba, w, h), referenceI420(rgba, w, h))).toBe(0);
  });

  it.each([1, 3, 4, 5, 1280 * 16])('turns %i X pixels (B, G, R, pad) into opaque RGBA in place', (pixels) => {
    const bgrx = noise(pixels, 1, pixels);
    const expected = new Uint8Array(bgrx.length);
    for (let i = 0; i < bgrx.length; i += 4) expected.set([bgrx[i + 2], bgrx[i + 1], bgrx[i], 255], i);
    expect(Buffer.compare(simdBgrxToRgba(bgrx), expected)).toBe(0);
  });

  it('matches the reference on the extremes of every channel', () => {
    const { rgba, w, h } = blocks(8);
    expect(Buffer.compare(simdI420(rgba, w, h), referenceI420(rgba, w, h))).toBe(0);
  });

  it('gives the colours ffmpeg\'s swscale gives x264 from RGBA (within 1 in flat areas)', () => {
    const size = 32;
    const { rgba, w, h } = blocks(size);
    const ffmpeg = execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${w}x${h}`, '-i', 'pipe:0', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', 'pipe:1'], { input: rgba });
    const ours = simdI420(rgba, w, h);
    expect(ffmpeg.length).toBe(ours.length);
    const worst = [0, 0, 0];
    COLOURS.forEach((_, i) => {
      // the block's middle: swscale's chroma filter spreads over the edges between blocks
      const [cx, cy] = [i * size + size / 2, size / 2];
      const at = [cy * w + cx, w * h + (cy / 2) * (w / 2) + cx / 2, w * h * 1.25 + (cy / 2) * (w / 2) + cx / 2];
      at.forEach((o, plane) => (worst[plane] = Math.max(worst[plane], Math.abs(ffmpeg[o] - ours[o]))));
    });
    expect(Math.max(...worst)).toBeLessThanOrEqual(1);
  });
});

describe('a WASM UA\'s pictures as I420', () => {
  const runtime = new WasmRuntime({ clock: () => 0 });
  const start = (pixelFormat: 'rgba' | 'i420', width = 320, height = 240) => runtime.start({
    ua: { uaId: 'game', version: '1', dir: path.join(AGENT, 'uas/game/build') },
    width, height, pixelFormat,
    resources: { request: async () => ({ ok: false, reason: 'none here' }) },
    onDamage: () => undefined,
    onExit: () => undefined,
  });
  afterAll(() => runtime.close());

  it('offers i420 and converts in the guest thread what the UA drew, as the reference does', async () => {
    expect(runtime.pixelFormats).toContain('i420');
    const [rgba, yuv] = await Promise.all([start('rgba'), start('i420')]);
    try {
      const a = rgba.captureFull();
      const b = yuv.captureFull();
      expect(a.format ?? 'rgba').toBe('rgba');
      expect(b.format).toBe('i420');
      expect(b.data.byteLength).toBe(320 * 240 * 1.5);
      expect(new Set(b.data.subarray(0, 320 * 240)).size).toBeGreaterThan(2); // a drawn picture (4 shades of Y here), not one flat colour
      expect(Buffer.compare(b.data, referenceI420(a.data, 320, 240))).toBe(0);
      // three pictures in turn: the first is still as it was after two more were taken (RawFrame)
      const first = Buffer.from(b.data);
      const frames: RawFrame[] = [b, yuv.captureFull(), yuv.captureFull()];
      expect(new Set(frames.map((f) => f.data)).size).toBe(3);
      expect(Buffer.compare(frames[0].data, first)).toBe(0);
    } finally {
      await Promise.all([rgba.close(), yuv.close()]);
    }
  });

  it('refuses I420 at an odd size with the reason, and a session at an odd size takes RGBA', async () => {
    await expect(start('i420', 321, 240)).rejects.toThrow(/even width and height/);
    expect(sessionPixelFormat('H264', runtime.pixelFormats, 321, 240)).toBe('rgba');
    expect(sessionPixelFormat('H264', runtime.pixelFormats, 1280, 720)).toBe('i420');
    expect(sessionPixelFormat('MJPEG', runtime.pixelFormats, 1280, 720)).toBe('rgba');
    expect(sessionPixelFormat('H264', undefined, 1280, 720)).toBe('rgba');
  });
});

describe('a LINUX_X11 UA\'s pictures as I420', () => {
  const runtime = new X11Runtime({ warmDisplay: false });
  const W = 320;
  const H = 400; // xcalc's smallest screen (its manifest): a picture of many colours
  afterAll(() => runtime.close());

  it('offers i420 and converts the framebuffer as the reference converts its RGBA, into a ring of three buffers', async () => {
    expect(runtime.pixelFormats).toContain('i420');
    let damaged = (): void => undefined;
    const start = (pixelFormat: 'rgba' | 'i420') => runtime.start({
      ua: { uaId: 'xcalc', version: '1', dir: path.join(AGENT, 'uas-x11/xcalc') },
      width: W, height: H, pixelFormat,
      resources: { request: async () => ({ ok: false, reason: 'none here' }) },
      onDamage: () => damaged(),
      onExit: () => undefined,
    });
    const [rgba, yuv] = await Promise.all([start('rgba'), start('i420')]);
    try {
      // two xcalcs of one size draw the same picture once both are up: wait (bounded, on damage) for
      // the I420 capture to be the reference conversion of the RGBA one
      const same = (): boolean => {
        const a = rgba.captureFull();
        const b = yuv.captureFull();
        let white = 0; // xcalc's white buttons cover much of the otherwise black screen once it is up
        for (let i = 0; i < a.data.length; i += 32) if (a.data[i] === 255) white++;
        const drawn = white > a.data.length / 32 / 3;
        return drawn && b.format === 'i420' && Buffer.compare(b.data, referenceI420(a.data, W, H)) === 0;
      };
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the I420 picture never matched the reference of the RGBA one within 10 s')), 10_000);
        damaged = () => {
          if (!same()) return;
          clearTimeout(timer);
          resolve();
        };
        damaged();
      });
      // three pictures in turn are three buffers (RawFrame: a picture stays for two more captures)
      const frames: RawFrame[] = [yuv.captureFull(), yuv.captureFull(), yuv.captureFull()];
      expect(new Set(frames.map((f) => f.data)).size).toBe(3);
    } finally {
      damaged = () => undefined;
      await Promise.all([rgba.close(), yuv.close()]);
    }
  });

  it('keeps the X server\'s channel order: the probe\'s pure blue is blue in I420, not red', async () => {
    let damaged = (): void => undefined;
    const probe = await runtime.start({
      ua: { uaId: 'probe', version: '1', dir: path.join(AGENT, 'uas-x11/probe') },
      width: W, height: H, pixelFormat: 'i420',
      resources: { request: async () => ({ ok: false, reason: 'none here' }) },
      onDamage: () => damaged(),
      onExit: () => undefined,
    });
    try {
      // BT.601 limited range: blue (0, 0, 255) is Y 41, U 240, V 110 (red would be 82, 90, 240)
      const yuv = (): number[] => {
        const f = probe.captureFull();
        const [x, y] = [W / 2, H / 2];
        return [f.data[y * W + x], f.data[W * H + (y / 2) * (W / 2) + x / 2], f.data[W * H * 1.25 + (y / 2) * (W / 2) + x / 2]];
      };
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no blue within 10 s: Y, U, V ${yuv().join(', ')}`)), 10_000);
        damaged = () => {
          if (yuv().join() !== '41,240,110') return;
          clearTimeout(timer);
          resolve();
        };
        probe.input({ kind: 'pointer', type: 'down', x: 10, y: 10, button: 0 });
        probe.input({ kind: 'pointer', type: 'up', x: 10, y: 10, button: 0 });
      });
    } finally {
      damaged = () => undefined;
      await probe.close();
    }
  });

  it('refuses I420 at an odd size with the reason', async () => {
    await expect(runtime.start({
      ua: { uaId: 'xcalc', version: '1', dir: path.join(AGENT, 'uas-x11/xcalc') },
      width: 321, height: 400, pixelFormat: 'i420',
      resources: { request: async () => ({ ok: false, reason: 'none here' }) },
      onDamage: () => undefined,
      onExit: () => undefined,
    })).rejects.toThrow(/even width and height/);
  });
});

describe('H264 from I420', () => {
  const encoders: VideoEncoder[] = [];
  afterAll(() => Promise.all(encoders.map((e) => e.close())));

  async function decodedThrough(pixelFormat: 'rgba' | 'i420', rgba: Uint8Array, w: number, h: number): Promise<{ picture: DecodedFrame; avcC: Uint8Array }> {
    const enc = createEncoder('H264', { width: w, height: h, maxFps: 30, bitrateKbps: 8000, pixelFormat });
    encoders.push(enc);
    await enc.ready();
    const data = pixelFormat === 'i420' ? simdI420(rgba, w, h) : rgba;
    const out = await enc.encode({ width: w, height: h, data, format: pixelFormat }, { keyframe: true, ts: 0 });
    const cfg = enc.config()!;
    const dec = createNodeDecoder({ codec: 'H264', width: w, height: h, description: cfg.description });
    try {
      return { picture: await dec.decode(out.data, true), avcC: cfg.description! };
    } finally {
      await dec.close();
    }
  }

  it('decodes to the colours the RGBA input decodes to, and the stream is described alike', async () => {
    const size = 64;
    const { rgba, w, h } = blocks(size);
    const viaRgba = await decodedThrough('rgba', rgba, w, h);
    const viaI420 = await decodedThrough('i420', rgba, w, h);
    expect(Buffer.compare(viaI420.avcC, viaRgba.avcC)).toBe(0);
    COLOURS.forEach((colour, i) => {
      const o = ((size / 2) * w + i * size + size / 2) * 4;
      const got = [...viaI420.picture.data.subarray(o, o + 3)];
      const before = [...viaRgba.picture.data.subarray(o, o + 3)];
      got.forEach((v, ch) => {
        expect(Math.abs(v - before[ch])).toBeLessThanOrEqual(3);
        expect(Math.abs(v - colour[ch])).toBeLessThanOrEqual(12);
      });
    });
  });

  it('keeps a primed process per picture format: an RGBA session does not take an I420 one', async () => {
    const opts = { width: 320, height: 240, maxFps: 30, bitrateKbps: 1000 };
    const warm = new WarmX264({ ...opts, pixelFormat: 'i420' });
    try {
      await new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 10_000;
        const look = (): void => (warm.pid() ? resolve() : Date.now() > deadline ? reject(new Error('no warm process within 10 s')) : void setTimeout(look, 10));
        look();
      });
      expect(warm.take({ ...opts, pixelFormat: 'rgba' })).toBeNull();
      expect(warm.take(opts)).toBeNull();
      const proc = warm.take({ ...opts, pixelFormat: 'i420' });
      expect(proc).not.toBeNull();
      await proc!.kill('test done');
    } finally {
      await warm.close();
    }
  });
});
