// paint: pointer or touch drags draw strokes, keys type notes at the text cursor, a palette at the
// bottom picks the colour. The strokes and notes are the user's data (app-data export/import).
// Test hook (docs/wasm-abi.md): after a pointer down at (x, y) above the palette, the pixel at
// (x, y) has the current brush colour; the default brush is pure red.
import {
  KEY_BACKSPACE, KEY_DOWN, KEY_ENTER, POINTER_DOWN, POINTER_MOVE, POINTER_UP, RENDER_CHANGED,
  TOUCH_END, TOUCH_MOVE, TOUCH_START,
} from "../../_lib/uve";
import { ADVANCE, brushLine, clear, drawChar, drawText, fillRect, height, initScreen, LINE_HEIGHT, rgb, strokeRect, width } from "../../_lib/gfx";
export { uve_abi_version } from "../../_lib/uve";

const PALETTE_HEIGHT: i32 = 32;
const SWATCH: i32 = 24;
const SWATCH_STEP: i32 = 30;
const COLOURS: i32 = 8;
const CLEAR_WIDTH: i32 = 70;
const BRUSH_RADIUS: i32 = 2;
const TEXT_SCALE: i32 = 2;
const TOUCH_PENS: i32 = 10; // pen 0 is the mouse, pens 1..10 are touch points
const MARGIN: i32 = 8;

const MAX_POINTS: i32 = 16384;
const POINT_BYTES: i32 = 8; // x i16, y i16, colour u8, pen u8, flags u8, pad u8
const FLAG_START: u8 = 1;
const MAX_CHARS: i32 = 4096;
const CHAR_BYTES: i32 = 6; // x i16, y i16, char u8, colour u8

const DATA_MAGIC: u32 = 0x31544e50; // "PNT1"
const DATA_HEADER: i32 = 28;
const IO_CAPACITY: i32 = 4 + DATA_HEADER + MAX_POINTS * POINT_BYTES + MAX_CHARS * CHAR_BYTES;

let points: usize = 0;
let pointCount: i32 = 0;
let chars: usize = 0;
let charCount: i32 = 0;
let io: usize = 0;
/** per pen: touch id + 1 for touch pens (0 = free); for every pen, bit 31 = down */
let pens: usize = 0;
/** per pen, while replaying strokes: last x, y */
let lastXY: usize = 0;

let brush: i32 = 0;
let cursorX: i32 = MARGIN;
let cursorY: i32 = MARGIN;
let lineStartX: i32 = MARGIN;
let dirty = true;

function colour(i: i32): u32 {
  switch (i) {
    case 0: return rgb(255, 0, 0);
    case 1: return rgb(255, 140, 0);
    case 2: return rgb(255, 220, 0);
    case 3: return rgb(0, 160, 0);
    case 4: return rgb(0, 0, 255);
    case 5: return rgb(140, 0, 200);
    case 6: return rgb(0, 0, 0);
    default: return rgb(255, 255, 255);
  }
}

export function uve_init(w: i32, h: i32): usize {
  const screen = initScreen(w, h);
  points = heap.alloc(<usize>(MAX_POINTS * POINT_BYTES));
  chars = heap.alloc(<usize>(MAX_CHARS * CHAR_BYTES));
  io = heap.alloc(<usize>IO_CAPACITY);
  pens = heap.alloc(<usize>((TOUCH_PENS + 1) * 4));
  lastXY = heap.alloc(<usize>((TOUCH_PENS + 1) * 8));
  memory.fill(pens, 0, <usize>((TOUCH_PENS + 1) * 4));
  return screen;
}

// ---- strokes -------------------------------------------------------------------------------------

function clampCoord(v: f64): i32 {
  return <i32>Math.max(-16.0, Math.min(16383.0, Math.floor(v)));
}

function addPoint(pen: i32, x: i32, y: i32, start: bool): void {
  if (pointCount >= MAX_POINTS) return;
  const p = points + <usize>(pointCount * POINT_BYTES);
  store<i16>(p, <i16>x);
  store<i16>(p, <i16>y, 2);
  store<u8>(p, <u8>brush, 4);
  store<u8>(p, <u8>pen, 5);
  store<u8>(p, start ? FLAG_START : 0, 6);
  store<u8>(p, 0, 7);
  pointCount++;
  dirty = true;
}

function penDown(pen: i32): bool {
  return (load<u32>(pens + <usize>(pen * 4)) & 0x80000000) != 0;
}

function setPen(pen: i32, value: u32): void {
  store<u32>(pens + <usize>(pen * 4), value);
}

/** press at (x, y): the palette picks a colour or clears; elsewhere a stroke and the text cursor start */
function press(pen: i32, x: i32, y: i32): bool {
  if (y >= height - PALETTE_HEIGHT) {
    if (x >= width - CLEAR_WIDTH - 4) clearAll();
    else if (x >= 4 && (x - 4) / SWATCH_STEP < COLOURS) brush = (x - 4) / SWATCH_STEP;
    dirty = true;
    return false;
  }
  addPoint(pen, x, y, true);
  cursorX = x;
  cursorY = y;
  lineStartX = x;
  return true;
}

function clearAll(): void {
  pointCount = 0;
  charCount = 0;
  cursorX = MARGIN;
  cursorY = MARGIN;
  lineStartX = MARGIN;
}

export function uve_pointer(type: i32, x: f64, y: f64, button: i32): void {
  const px = clampCoord(x);
  const py = clampCoord(y);
  if (type == POINTER_DOWN && button == 0) {
    if (press(0, px, py)) setPen(0, 0x80000000);
  } else if (type == POINTER_MOVE && penDown(0)) {
    addPoint(0, px, py, false);
  } else if (type == POINTER_UP) {
    if (penDown(0)) addPoint(0, px, py, false);
    setPen(0, 0);
  }
}

function touchPen(id: i32): i32 {
  for (let pen = 1; pen <= TOUCH_PENS; pen++) {
    if ((load<u32>(pens + <usize>(pen * 4)) & 0x7fffffff) == <u32>(id + 1)) return pen;
  }
  return -1;
}

export function uve_touch(type: i32, id: i32, x: f64, y: f64): void {
  const px = clampCoord(x);
  const py = clampCoord(y);
  if (type == TOUCH_START) {
    const free = touchPen(-1);
    if (free > 0 && press(free, px, py)) setPen(free, 0x80000000 | <u32>(id + 1));
    return;
  }
  const pen = touchPen(id);
  if (pen < 0) return;
  addPoint(pen, px, py, false);
  if (type == TOUCH_END) setPen(pen, 0);
}

// ---- notes ---------------------------------------------------------------------------------------

function newLine(): void {
  cursorX = lineStartX;
  cursorY += LINE_HEIGHT * TEXT_SCALE;
}

function typeChar(cp: i32): void {
  if (charCount >= MAX_CHARS) return;
  if (cursorX + ADVANCE * TEXT_SCALE > width) newLine();
  const p = chars + <usize>(charCount * CHAR_BYTES);
  store<i16>(p, <i16>cursorX);
  store<i16>(p, <i16>cursorY, 2);
  store<u8>(p, <u8>(cp >= 32 && cp <= 126 ? cp : 63), 4); // the font has ASCII only
  store<u8>(p, <u8>brush, 5);
  charCount++;
  cursorX += ADVANCE * TEXT_SCALE;
  dirty = true;
}

function backspace(): void {
  if (charCount == 0) return;
  charCount--;
  const p = chars + <usize>(charCount * CHAR_BYTES);
  cursorX = load<i16>(p);
  cursorY = load<i16>(p, 2);
  dirty = true;
}

export function uve_key(type: i32, keyCode: i32, codePoint: i32): void {
  if (type != KEY_DOWN) return;
  if (keyCode == KEY_BACKSPACE) backspace();
  else if (keyCode == KEY_ENTER) { newLine(); dirty = true; }
  else if (codePoint >= 32) typeChar(codePoint);
}

export function uve_text(codePoint: i32): void {
  if (codePoint >= 32) typeChar(codePoint);
}

// ---- picture -------------------------------------------------------------------------------------

function drawStrokes(): void {
  for (let i = 0; i < pointCount; i++) {
    const p = points + <usize>(i * POINT_BYTES);
    const x = <i32>load<i16>(p);
    const y = <i32>load<i16>(p, 2);
    const c = colour(<i32>load<u8>(p, 4));
    const last = lastXY + <usize>(<i32>load<u8>(p, 5) * 8);
    if (load<u8>(p, 6) & FLAG_START) brushLine(x, y, x, y, BRUSH_RADIUS, c);
    else brushLine(load<i32>(last), load<i32>(last, 4), x, y, BRUSH_RADIUS, c);
    store<i32>(last, x);
    store<i32>(last, y, 4);
  }
}

function drawPalette(): void {
  const top = height - PALETTE_HEIGHT;
  fillRect(0, top, width, PALETTE_HEIGHT, rgb(48, 48, 48));
  for (let i = 0; i < COLOURS; i++) {
    const x = 4 + i * SWATCH_STEP;
    if (i == brush) strokeRect(x - 3, top + 1, SWATCH + 6, SWATCH + 6, 2, rgb(255, 255, 255));
    fillRect(x, top + 4, SWATCH, SWATCH, colour(i));
  }
  const bx = width - CLEAR_WIDTH - 4;
  fillRect(bx, top + 4, CLEAR_WIDTH, SWATCH, rgb(90, 90, 90));
  drawText("CLEAR", bx + 6, top + 9, 2, rgb(255, 255, 255));
}

export function uve_render(nowMs: f64): i32 {
  if (!dirty) return 0;
  dirty = false;
  clear(rgb(255, 255, 255));
  for (let i = 0; i < charCount; i++) {
    const p = chars + <usize>(i * CHAR_BYTES);
    drawChar(<i32>load<u8>(p, 4), <i32>load<i16>(p), <i32>load<i16>(p, 2), TEXT_SCALE, colour(<i32>load<u8>(p, 5)));
  }
  fillRect(cursorX, cursorY, 2, 7 * TEXT_SCALE, rgb(160, 160, 160)); // text cursor, under the strokes
  drawStrokes();
  drawPalette();
  return RENDER_CHANGED;
}

// ---- app data: the strokes and notes -------------------------------------------------------------
// layout (little-endian): u32 magic "PNT1", u32 points, u32 chars, i32 cursorX, i32 cursorY,
// i32 lineStartX, i32 brush, then the point and char records as kept in memory.

export function uve_app_data_save(): usize {
  const d = io + 4;
  store<u32>(d, DATA_MAGIC);
  store<u32>(d, <u32>pointCount, 4);
  store<u32>(d, <u32>charCount, 8);
  store<i32>(d, cursorX, 12);
  store<i32>(d, cursorY, 16);
  store<i32>(d, lineStartX, 20);
  store<i32>(d, brush, 24);
  const pointBytes = <usize>(pointCount * POINT_BYTES);
  memory.copy(d + <usize>DATA_HEADER, points, pointBytes);
  memory.copy(d + <usize>DATA_HEADER + pointBytes, chars, <usize>(charCount * CHAR_BYTES));
  store<u32>(io, <u32>(DATA_HEADER + pointCount * POINT_BYTES + charCount * CHAR_BYTES));
  return io;
}

export function uve_app_data_alloc(length: i32): usize {
  return length >= 0 && length <= IO_CAPACITY - 4 ? io + 4 : 0;
}

/** 0: loaded; 1: not paint data; 2: counts out of range; 3: length does not match the counts */
export function uve_app_data_load(length: i32): i32 {
  const d = io + 4;
  if (length < DATA_HEADER || load<u32>(d) != DATA_MAGIC) return 1;
  const np = <i32>load<u32>(d, 4);
  const nc = <i32>load<u32>(d, 8);
  if (np < 0 || np > MAX_POINTS || nc < 0 || nc > MAX_CHARS) return 2;
  if (length != DATA_HEADER + np * POINT_BYTES + nc * CHAR_BYTES) return 3;
  pointCount = np;
  charCount = nc;
  cursorX = load<i32>(d, 12);
  cursorY = load<i32>(d, 16);
  lineStartX = load<i32>(d, 20);
  brush = load<i32>(d, 24) & 7;
  memory.copy(points, d + <usize>DATA_HEADER, <usize>(np * POINT_BYTES));
  memory.copy(chars, d + <usize>DATA_HEADER + <usize>(np * POINT_BYTES), <usize>(nc * CHAR_BYTES));
  memory.fill(pens, 0, <usize>((TOUCH_PENS + 1) * 4)); // no stroke is in progress after a reload
  dirty = true;
  return 0;
}
