// The screen of an Xvfb started with `-fbdir DIR`: Xvfb keeps its framebuffer in the memory-mapped
// file DIR/Xvfb_screen0 (an XWD image: header, colormap, then the pixels), so the picture can be
// read synchronously, without a round trip, whenever the frame pump asks for one. A GetImage
// would be an asynchronous request (UaInstance.capture() is synchronous) costing as much or more
// (docs/linux-x11.md). A read during a drawing may catch it half done; that drawing's damage
// report brings the next capture.
//
// Pictures are read into a ring of three buffers, written in turn (RawFrame's contract: a picture
// stays as it is until two more captures). A fresh 3.6 MB buffer per 720p picture cost its page
// faults on every read: 20-25 ms instead of 2.5 for read + conversion on this VM, half of the X11
// input's pictures (stream-browser's X11 "to capture" stage, 23 ms median).
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import * as path from 'node:path';
import type { RawFrame } from '../runtime';

const XWD_COLOR_BYTES = 12;
const XWD_Z_PIXMAP = 2;
const XWD_LSB_FIRST = 0;
const XWD_HEADER_FIELDS = 25;
/** pictures kept in turn: the one being encoded, the newest, and one to write */
const RING = 3;

export function framebufferFile(fbdir: string, screen = 0): string {
  return path.join(fbdir, `Xvfb_screen${screen}`);
}

export class XvfbFramebuffer {
  private fd: number | null;
  /** the ring of picture buffers, allocated on first use (a spare display may never be read) */
  private readonly ring: Buffer[] = [];
  private next = 0;
  /** row-padded reads (stride > width * 4) land here first */
  private padded: Buffer | null = null;

  private constructor(
    fd: number,
    readonly width: number,
    readonly height: number,
    private readonly offset: number,
    private readonly stride: number,
  ) {
    this.fd = fd;
  }

  /** Opens the file of a running Xvfb and checks it holds the 32-bit BGRX picture read() expects. */
  static open(file: string, width: number, height: number): XvfbFramebuffer {
    if (endianness() !== 'LE') throw new Error('reading the Xvfb framebuffer needs a little-endian host');
    const fd = openSync(file, 'r');
    try {
      const head = Buffer.alloc(XWD_HEADER_FIELDS * 4);
      if (readSync(fd, head, 0, head.length, 0) !== head.length) throw new Error('file is shorter than an XWD header');
      const f = (i: number): number => head.readUInt32BE(i * 4); // XWD headers are big-endian
      const [headerSize, format, w, h, byteOrder, bpp, stride] = [f(0), f(2), f(4), f(5), f(7), f(11), f(12)];
      const masks = [f(14), f(15), f(16)];
      if (format !== XWD_Z_PIXMAP || bpp !== 32 || byteOrder !== XWD_LSB_FIRST || masks.join() !== [0xff0000, 0xff00, 0xff].join()) {
        throw new Error(`unexpected pixel format (format ${format}, ${bpp} bits per pixel, byte order ${byteOrder}, masks ${masks.map((m) => m.toString(16)).join('/')}); Xvfb must run with a 24-bit screen`);
      }
      if (w !== width || h !== height || stride < width * 4) throw new Error(`framebuffer is ${w}x${h} (stride ${stride}), expected ${width}x${height}`);
      return new XvfbFramebuffer(fd, width, height, headerSize + f(19) * XWD_COLOR_BYTES, stride);
    } catch (e) {
      closeSync(fd);
      throw new Error(`cannot use the Xvfb framebuffer ${file}: ${(e as Error).message}`);
    }
  }

  /** The current picture as RGBA, in the ring's next buffer: unchanged until two more reads. */
  read(): RawFrame {
    if (this.fd === null) throw new Error('the framebuffer is closed');
    const { width, height, stride } = this;
    const rowBytes = width * 4;
    if (this.ring.length < RING) this.ring.push(Buffer.alloc(rowBytes * height)); // touched once, here
    const out = this.ring[this.next]!;
    this.next = (this.next + 1) % RING;
    if (stride === rowBytes) {
      readSync(this.fd, out, 0, out.length, this.offset);
    } else {
      const tmp = (this.padded ??= Buffer.alloc(stride * height));
      readSync(this.fd, tmp, 0, tmp.length, this.offset);
      for (let y = 0; y < height; y++) tmp.copy(out, y * rowBytes, y * stride, y * stride + rowBytes);
    }
    bgrxToRgba(out);
    return { width, height, data: out };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.ring.length = 0;
    this.padded = null;
  }
}

/**
 * In place, one 32-bit word per pixel: little-endian BGRX (0xXXRRGGBB) -> RGBA with opaque alpha
 * (0xFFBBGGRR). About 1.6 ms for 1280x720 on the reference machine.
 */
export function bgrxToRgba(buf: Uint8Array): void {
  const px = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  for (let i = 0; i < px.length; i++) {
    const v = px[i];
    px[i] = 0xff000000 | ((v & 0xff) << 16) | (v & 0xff00) | ((v >>> 16) & 0xff);
  }
}
