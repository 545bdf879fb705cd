// The Xvfb framebuffer reader on a file laid out as Xvfb writes it (an XWD header, a colormap,
// BGRX pixels): RGBA out, a ring of three picture buffers reused in turn (no fresh 3.6 MB buffer,
// and its page faults, per 720p picture), row padding dropped, a wrong format refused clearly.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { XvfbFramebuffer } from '../../apps/vm-agent/src/runtimes/x11/framebuffer';

const W = 4;
const H = 3;
const COLORS = 2;
const HEADER = 25 * 4 + 8; // the header with a window name after the fields

/** An XWD file of W x H BGRX pixels, every pixel `bgrx(x, y)`, rows `stride` bytes apart. */
function xwd(bgrx: (x: number, y: number) => number, opts: { stride?: number; bpp?: number } = {}): Buffer {
  const stride = opts.stride ?? W * 4;
  const head = Buffer.alloc(HEADER);
  const fields: Record<number, number> = { 0: HEADER, 2: 2, 4: W, 5: H, 7: 0, 11: opts.bpp ?? 32, 12: stride, 14: 0xff0000, 15: 0xff00, 16: 0xff, 19: COLORS };
  for (const [i, v] of Object.entries(fields)) head.writeUInt32BE(v, Number(i) * 4);
  const pixels = Buffer.alloc(stride * H, 0xee); // padding bytes stay 0xee
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) pixels.writeUInt32LE(bgrx(x, y), y * stride + x * 4);
  return Buffer.concat([head, Buffer.alloc(COLORS * 12), pixels]);
}

describe('XvfbFramebuffer', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'uve-fb-'));
    file = path.join(dir, 'Xvfb_screen0');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads RGBA into a ring of three buffers: each picture unchanged until two more reads', () => {
    writeFileSync(file, xwd(() => 0x00102030)); // R 0x10, G 0x20, B 0x30
    const fb = XvfbFramebuffer.open(file, W, H);
    try {
      const pictures = [];
      for (let i = 1; i <= 4; i++) {
        // the framebuffer changes between reads, as Xvfb draws (the file is read at each call)
        writeFileSync(file, xwd((x) => (i << 16) | x));
        pictures.push(fb.read());
      }
      const [a, b, c, d] = pictures.map((p) => p.data);
      expect(new Set([a, b, c]).size).toBe(3);
      expect(d).toBe(a); // the fourth read reuses the first buffer
      // the second and third pictures still hold what was read into them
      expect([...b!.subarray(0, 8)]).toEqual([2, 0, 0, 255, 2, 0, 1, 255]);
      expect([...c!.subarray(4, 8)]).toEqual([3, 0, 1, 255]);
      expect([...d!.subarray(12, 16)]).toEqual([4, 0, 3, 255]);
      expect(pictures[3]).toMatchObject({ width: W, height: H });
      expect(d!.byteLength).toBe(W * H * 4);
    } finally {
      fb.close();
    }
    expect(() => fb.read()).toThrow('the framebuffer is closed');
  });

  it('drops row padding when the stride is wider than the picture', () => {
    writeFileSync(file, xwd((x, y) => (y << 8) | x, { stride: W * 4 + 8 }));
    const fb = XvfbFramebuffer.open(file, W, H);
    const { data } = fb.read();
    fb.close();
    expect(data.byteLength).toBe(W * H * 4);
    // last pixel: x 3, y 2 -> G 2, B 3; no 0xee padding anywhere
    expect([...data.subarray(data.length - 4)]).toEqual([0, 2, 3, 255]);
    expect(data.includes(0xee)).toBe(false);
  });

  it('refuses a framebuffer of another pixel format or size with a clear error', () => {
    writeFileSync(file, xwd(() => 0, { bpp: 16 }));
    expect(() => XvfbFramebuffer.open(file, W, H)).toThrow(/unexpected pixel format .*16 bits per pixel.*24-bit screen/);
    writeFileSync(file, xwd(() => 0));
    expect(() => XvfbFramebuffer.open(file, W + 2, H)).toThrow(/framebuffer is 4x3 .*expected 6x3/);
  });
});
