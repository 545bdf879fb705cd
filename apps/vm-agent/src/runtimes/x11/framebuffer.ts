// The screen of an Xvfb started with `-fbdir DIR`: Xvfb keeps its framebuffer in the memory-mapped
// file DIR/Xvfb_screen0 (an XWD image: header, colormap, then the pixels), so the picture can be
// read synchronously, without a round trip, whenever the frame pump asks for one. A GetImage
// would be an asynchronous request (UaInstance.capture() is synchronous) costing as much or more
// (docs/linux-x11.md). A read during a drawing may catch it half done; that drawing's damage
// report brings the next capture.
//
// Pictures leave through a ring of buffers in a WebAssembly memory, written in turn (RawFrame: one
// stays as it is for two more captures), converted there by i420.wat: BGRX to RGBA in place, or, for
// an H264 session, a few rows at a time to I420 (what x264 takes without swscale). A fresh 3.6 MB
// buffer per 720p picture and a JS pixel loop cost the agent ~14 ms per picture of a full-motion UA
// on this machine (page faults, garbage, the loop), ffmpeg's RGBA conversion more (docs/performance.md).
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import * as path from 'node:path';
import { pictureBytes, type PixelFormat, type RawFrame } from '../runtime';
import { I420_STAGE_ROWS, i420Module, i420Unsupported } from '../wasm/i420';
import { PAGE_BYTES, WA } from '../wasm/webassembly';

const XWD_COLOR_BYTES = 12;
const XWD_Z_PIXMAP = 2;
const XWD_LSB_FIRST = 0;
const XWD_HEADER_FIELDS = 25;

export function framebufferFile(fbdir: string, screen = 0): string {
  return path.join(fbdir, `Xvfb_screen${screen}`);
}

/** pictures kept as they are after their capture: the one being encoded and the next two */
const PICTURE_SLOTS = 3;

interface PictureRing {
  format: PixelFormat;
  slots: Uint8Array[];
  next: number;
  /** I420: the rows being converted */
  stage: Uint8Array;
  bgrxToRgba: (at: number, bytes: number) => void;
  rgbaToI420: (src: number, y: number, u: number, v: number, width: number, rows: number) => void;
}

export class XvfbFramebuffer {
  private fd: number | null;
  private ring: PictureRing | null = null;

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

  /** The current picture in `format` (I420: even sizes only), in the ring's next buffer. */
  read(format: PixelFormat = 'rgba'): RawFrame {
    if (this.fd === null) throw new Error('the framebuffer is closed');
    const { width, height } = this;
    if (this.ring?.format !== format) this.ring = this.makeRing(format);
    const ring = this.ring;
    const slot = ring.slots[ring.next];
    ring.next = (ring.next + 1) % PICTURE_SLOTS;
    const rowBytes = width * 4;
    if (format === 'rgba') {
      this.readRows(slot, 0, height);
      ring.bgrxToRgba(slot.byteOffset, slot.byteLength);
    } else {
      const lumaBytes = width * height;
      const chromaBytes = lumaBytes / 4;
      for (let row = 0; row < height; row += I420_STAGE_ROWS) {
        const rows = Math.min(I420_STAGE_ROWS, height - row);
        this.readRows(ring.stage, row, rows);
        ring.bgrxToRgba(ring.stage.byteOffset, rows * rowBytes);
        const u = slot.byteOffset + lumaBytes + (row / 2) * (width / 2);
        ring.rgbaToI420(ring.stage.byteOffset, slot.byteOffset + row * width, u, u + chromaBytes, width, rows);
      }
    }
    return { width, height, data: slot, format };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.ring = null;
  }

  /** `rows` rows of pixels from `first` on, packed, at the start of `dst` */
  private readRows(dst: Uint8Array, first: number, rows: number): void {
    const rowBytes = this.width * 4;
    if (this.stride === rowBytes) {
      readSync(this.fd!, dst, 0, rows * rowBytes, this.offset + first * rowBytes);
      return;
    }
    for (let r = 0; r < rows; r++) readSync(this.fd!, dst, r * rowBytes, rowBytes, this.offset + (first + r) * this.stride);
  }

  /** [stage: I420_STAGE_ROWS rows of 32-bit pixels][slot 0][slot 1][slot 2] in one memory that never grows */
  private makeRing(format: PixelFormat): PictureRing {
    const { width, height } = this;
    const odd = format === 'i420' ? i420Unsupported(width, height) : null;
    if (odd) throw new Error(odd);
    const stageBytes = format === 'i420' ? width * 4 * I420_STAGE_ROWS : 0;
    const slotBytes = pictureBytes(format, width, height);
    const pages = Math.ceil((stageBytes + PICTURE_SLOTS * slotBytes) / PAGE_BYTES);
    const memory = new WA.Memory({ initial: pages, maximum: pages, shared: true });
    const { exports } = new WA.Instance(i420Module(), { env: { memory } });
    return {
      format,
      slots: Array.from({ length: PICTURE_SLOTS }, (_, i) => new Uint8Array(memory.buffer, stageBytes + i * slotBytes, slotBytes)),
      next: 0,
      stage: new Uint8Array(memory.buffer, 0, stageBytes),
      bgrxToRgba: exports.bgrx_to_rgba as PictureRing['bgrxToRgba'],
      rgbaToI420: exports.rgba_to_i420 as PictureRing['rgbaToI420'],
    };
  }
}
