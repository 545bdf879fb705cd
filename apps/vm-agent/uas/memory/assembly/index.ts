// memory: keeps as much state as its user asks for, so that a NO_LOSS snapshot of any size can be
// made by a real VM and restored by another (tests, bench/reconnect). Digits type a size in MiB,
// Enter fills that much memory (in 1 MiB blocks, a few per frame) with a pseudo-random pattern
// (incompressible: the snapshot is as large as the state) and shows its checksum; V checks every
// block again against the pattern it was filled with (after a restore: were the bytes restored?);
// Backspace deletes a digit. The state only grows (a larger size adds blocks).
// Test hooks (docs/wasm-abi.md): the 16x16 square at (0, 0) is grey (128,128,128) before any
// check, green (0,200,0) when the last V found every block intact, red (200,0,0) when it did not,
// blue (0,0,255) while filling or checking.
import { KEY_BACKSPACE, KEY_DOWN, KEY_ENTER, RENDER_ANIMATING, RENDER_CHANGED } from "../../_lib/uve";
import { clear, drawChar, drawText, drawUint, fillRect, initScreen, rgb } from "../../_lib/gfx";
export { uve_abi_version } from "../../_lib/uve";

const MiB: usize = 1 << 20;
/** most MiB a user may ask for (the host's memory limit is lower still: 256 MiB by default) */
const MAX_MIB: i32 = 1024;
/** blocks filled or checked per render: a few ms each, well inside a frame's budget */
const BLOCKS_PER_FRAME: i32 = 4;

const IDLE: i32 = 0;
const FILLING: i32 = 1;
const CHECKING: i32 = 2;

let mode: i32 = IDLE;
/** addresses of the 1 MiB blocks, MAX_MIB u32 slots */
let blocks: usize = 0;
let filled: i32 = 0;
let target: i32 = 0;
let typed: i32 = 0;
let checked: i32 = 0;
/** 0: not checked yet, 1: intact, 2: damaged */
let verdict: i32 = 0;
let damagedBlocks: i32 = 0;
/** checksum of every block filled so far (FNV-1a over the block checksums) */
let sum: u32 = 0x811c9dc5;
let dirty = true;

export function uve_init(w: i32, h: i32): usize {
  const screen = initScreen(w, h);
  blocks = heap.alloc(<usize>MAX_MIB * 4);
  return screen;
}

/** whether the last pattern() check found its block as filled */
let intact = true;

/** the pattern of block i (xorshift32 seeded by the block number: a check needs no copy); its checksum */
function pattern(p: usize, i: i32, write: bool): u32 {
  let x: u32 = 0x9e3779b9 ^ (<u32>(i + 1) * 0x85ebca6b);
  let h: u32 = 0x811c9dc5;
  let ok = true;
  for (let a = p; a < p + MiB; a += 4) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    if (write) store<u32>(a, x);
    else if (load<u32>(a) != x) ok = false;
    h = (h ^ x) * 0x01000193;
  }
  intact = ok;
  return h;
}

function fold(h: u32): void {
  sum = (sum ^ h) * 0x01000193;
}

export function uve_key(type: i32, keyCode: i32, codePoint: i32): void {
  if (type != KEY_DOWN || mode != IDLE) return;
  if (keyCode >= 48 && keyCode <= 57) {
    typed = min(MAX_MIB, typed * 10 + (keyCode - 48));
  } else if (keyCode == KEY_BACKSPACE) {
    typed /= 10;
  } else if (keyCode == KEY_ENTER) {
    if (typed > filled) {
      target = typed;
      mode = FILLING;
    }
    typed = 0;
  } else if (keyCode == 86) { // V
    checked = 0;
    damagedBlocks = 0;
    mode = CHECKING;
  }
  dirty = true;
}

function step(): void {
  for (let n = 0; n < BLOCKS_PER_FRAME; n++) {
    if (mode == FILLING) {
      if (filled >= target) break;
      const p = heap.alloc(MiB);
      store<u32>(blocks + (<usize>filled << 2), <u32>p);
      fold(pattern(p, filled, true));
      filled++;
    } else if (mode == CHECKING) {
      if (checked >= filled) break;
      pattern(<usize>load<u32>(blocks + (<usize>checked << 2)), checked, false);
      if (!intact) damagedBlocks++;
      checked++;
    }
  }
  if (mode == FILLING && filled >= target) mode = IDLE;
  if (mode == CHECKING && checked >= filled) {
    verdict = damagedBlocks == 0 ? 1 : 2;
    mode = IDLE;
  }
}

function hex(v: u32, x: i32, y: i32): void {
  for (let i = 7; i >= 0; i--) {
    const d = <i32>((v >> (<u32>i * 4)) & 15);
    x = drawChar(d < 10 ? 48 + d : 55 + d, x, y, 2, rgb(255, 255, 255));
  }
}

function draw(): void {
  clear(rgb(20, 30, 30));
  const square = mode != IDLE ? rgb(0, 0, 255) : verdict == 1 ? rgb(0, 200, 0) : verdict == 2 ? rgb(200, 0, 0) : rgb(128, 128, 128);
  fillRect(0, 0, 16, 16, square);
  const white = rgb(255, 255, 255);
  let x = drawText("STATE ", 24, 4, 2, white);
  x = drawUint(<u64>filled, x, 4, 2, white);
  drawText(" MIB", x, 4, 2, white);
  x = drawText("SUM ", 24, 28, 2, white);
  hex(sum, x, 28);
  x = drawText("SIZE ", 24, 52, 2, white);
  drawUint(<u64>typed, x, 52, 2, white);
  if (mode == FILLING) drawText("FILLING", 24, 76, 2, white);
  else if (mode == CHECKING) drawText("CHECKING", 24, 76, 2, white);
  else if (verdict == 2) {
    x = drawText("DAMAGED ", 24, 76, 2, rgb(255, 60, 60));
    drawUint(<u64>damagedBlocks, x, 76, 2, rgb(255, 60, 60));
  } else if (verdict == 1) drawText("INTACT", 24, 76, 2, rgb(0, 200, 0));
  drawText("DIGITS ENTER: GROW  V: CHECK", 24, 100, 1, white);
}

export function uve_render(nowMs: f64): i32 {
  let changed = dirty;
  if (mode != IDLE) {
    step();
    changed = true;
  }
  dirty = false;
  if (changed) draw();
  return (changed ? RENDER_CHANGED : 0) | (mode != IDLE ? RENDER_ANIMATING : 0);
}
