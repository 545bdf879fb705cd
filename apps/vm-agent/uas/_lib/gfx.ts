// The framebuffer (RGBA, 4 bytes per pixel, rows packed) and the few drawing primitives the
// samples need. Everything draws with clipping, so callers may pass any coordinates.
import { glyphColumn, GLYPH_HEIGHT, GLYPH_WIDTH } from "./font";

export let width: i32 = 0;
export let height: i32 = 0;
export let fb: usize = 0;

/** Allocates the framebuffer once; its address goes back to the host from uve_init. */
export function initScreen(w: i32, h: i32): usize {
  width = w;
  height = h;
  fb = heap.alloc(<usize>w * <usize>h * 4);
  return fb;
}

/** A colour as one little-endian u32 of the RGBA framebuffer (alpha always 255). */
export function rgb(r: i32, g: i32, b: i32): u32 {
  return (<u32>r & 255) | ((<u32>g & 255) << 8) | ((<u32>b & 255) << 16) | 0xff000000;
}

export function fillRect(x: i32, y: i32, w: i32, h: i32, c: u32): void {
  const x0 = max(x, 0);
  const y0 = max(y, 0);
  const x1 = min(x + w, width);
  const y1 = min(y + h, height);
  if (x0 >= x1 || y0 >= y1) return;
  for (let yy = y0; yy < y1; yy++) {
    let p = fb + ((<usize>yy * <usize>width + <usize>x0) << 2);
    for (let xx = x0; xx < x1; xx++) {
      store<u32>(p, c);
      p += 4;
    }
  }
}

export function clear(c: u32): void {
  fillRect(0, 0, width, height, c);
}

export function strokeRect(x: i32, y: i32, w: i32, h: i32, t: i32, c: u32): void {
  fillRect(x, y, w, t, c);
  fillRect(x, y + h - t, w, t, c);
  fillRect(x, y, t, h, c);
  fillRect(x + w - t, y, t, h, c);
}

/** A line drawn with a square brush of side 2 * radius + 1 centred on every point. */
export function brushLine(x0: i32, y0: i32, x1: i32, y1: i32, radius: i32, c: u32): void {
  const dx = abs(x1 - x0);
  const dy = -abs(y1 - y0);
  const sx = x0 < x1 ? 1 : -1;
  const sy = y0 < y1 ? 1 : -1;
  let err = dx + dy;
  const side = 2 * radius + 1;
  for (;;) {
    fillRect(x0 - radius, y0 - radius, side, side, c);
    if (x0 == x1 && y0 == y1) break;
    const e2 = 2 * err;
    if (e2 >= dy) { err += dy; x0 += sx; }
    if (e2 <= dx) { err += dx; y0 += sy; }
  }
}

// ---- text ----------------------------------------------------------------------------------------

/** Horizontal distance from one character to the next at scale 1. */
export const ADVANCE: i32 = GLYPH_WIDTH + 1;
export const LINE_HEIGHT: i32 = GLYPH_HEIGHT + 2;

/** Draws one character with its top-left at (x, y); returns the x of the next character. */
export function drawChar(ch: i32, x: i32, y: i32, scale: i32, c: u32): i32 {
  for (let col = 0; col < GLYPH_WIDTH; col++) {
    const bits = glyphColumn(ch, col);
    for (let row = 0; row < GLYPH_HEIGHT; row++) {
      if (bits & (1 << row)) fillRect(x + col * scale, y + row * scale, scale, scale, c);
    }
  }
  return x + ADVANCE * scale;
}

export function drawText(s: string, x: i32, y: i32, scale: i32, c: u32): i32 {
  for (let i = 0; i < s.length; i++) x = drawChar(s.charCodeAt(i), x, y, scale, c);
  return x;
}

export function textWidth(s: string, scale: i32): i32 {
  return s.length * ADVANCE * scale;
}

export function drawUint(v: u64, x: i32, y: i32, scale: i32, c: u32): i32 {
  let div: u64 = 1;
  while (v / div >= 10) div *= 10;
  do {
    x = drawChar(48 + <i32>((v / div) % 10), x, y, scale, c);
    div /= 10;
  } while (div > 0);
  return x;
}

export function drawInt(v: i64, x: i32, y: i32, scale: i32, c: u32): i32 {
  if (v < 0) x = drawChar(45, x, y, scale, c);
  return drawUint(v < 0 ? <u64>(-v) : <u64>v, x, y, scale, c);
}

/** A number with a fixed count of decimals (rounded), e.g. -12.3457; no allocation. */
export function drawFixed(v: f64, decimals: i32, x: i32, y: i32, scale: i32, c: u32): i32 {
  if (!isFinite(v) || Math.abs(v) >= 1e12) return drawText("---", x, y, scale, c);
  let m: u64 = 1;
  for (let i = 0; i < decimals; i++) m *= 10;
  const n = <u64>Math.round(Math.abs(v) * <f64>m);
  if (v < 0 && n != 0) x = drawChar(45, x, y, scale, c);
  x = drawUint(n / m, x, y, scale, c);
  if (decimals > 0) {
    x = drawChar(46, x, y, scale, c);
    const frac = n % m;
    for (let d = m / 10; d > 0; d /= 10) x = drawChar(48 + <i32>((frac / d) % 10), x, y, scale, c);
  }
  return x;
}
