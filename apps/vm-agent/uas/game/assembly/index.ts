// game: a ship dodges falling blocks. Arrows or A/D step the ship, a touch (or a mouse drag) puts
// it under the finger. It asks for frames (RENDER_ANIMATING) only while a round is running.
// The simulation advances in fixed 1/60 s ticks of the host's app clock and draws randomness from
// a PRNG kept in guest memory, so the picture is a function of inputs and render times only.
// Test hooks (docs/wasm-abi.md): the ship's bottom row y = height - 25 spans [shipX, shipX + 32)
// in rgb(80, 200, 255); every key down, touch start and pointer down toggles an 8x8 indicator at
// (width - 12, 4), so each of them changes the very next picture.
import {
  KEY_A, KEY_D, KEY_DOWN, KEY_LEFT, KEY_RIGHT, POINTER_DOWN, POINTER_MOVE, POINTER_UP, RENDER_ANIMATING, RENDER_CHANGED, TOUCH_MOVE, TOUCH_START,
} from "../../_lib/uve";
import { clear, drawText, drawUint, fillRect, height, initScreen, rgb, textWidth, width } from "../../_lib/gfx";
export { uve_abi_version } from "../../_lib/uve";

const READY: i32 = 0;
const PLAYING: i32 = 1;
const OVER: i32 = 2;

const SHIP_W: i32 = 32;
const SHIP_H: i32 = 16;
const STEP: i32 = 16;
const TICKS_PER_MS: f64 = 0.06;
/** ticks simulated at most per render, so a late render does not jump far */
const MAX_CATCH_UP: i64 = 6;

const MAX_BLOCKS: i32 = 64;
const BLOCK_BYTES: i32 = 16; // x, y (1/16 px), w, speed (1/16 px per tick), all i32
const BLOCK_H: i32 = 14;

let state: i32 = READY;
let shipX: i32 = 0;
let pointerHeld = false;
let indicator = false;
let blocks: usize = 0;
let blockCount: i32 = 0;
let score: i32 = 0;
let spawnGap: i32 = 40;
let untilSpawn: i32 = 20;
let rng: u32 = 0x2545f491;
let lastTick: i64 = 0;
/** the next render takes its time as the start of the round instead of catching up */
let syncClock = true;
let dirty = true;

function shipTop(): i32 {
  return height - 40;
}

function random(): u32 {
  let x = rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rng = x;
  return x;
}

export function uve_init(w: i32, h: i32): usize {
  const screen = initScreen(w, h);
  blocks = heap.alloc(<usize>(MAX_BLOCKS * BLOCK_BYTES));
  shipX = (w - SHIP_W) / 2;
  return screen;
}

// ---- input ---------------------------------------------------------------------------------------

function setShip(x: i32): void {
  shipX = max(0, min(width - SHIP_W, x));
  dirty = true;
}

function newRound(): void {
  blockCount = 0;
  score = 0;
  spawnGap = 40;
  untilSpawn = 20;
  state = PLAYING;
  syncClock = true;
}

/** a key down, touch start or click: the indicator flips; a finished or unstarted round starts */
function press(): void {
  indicator = !indicator;
  dirty = true;
  if (state != PLAYING) newRound();
}

export function uve_key(type: i32, keyCode: i32, codePoint: i32): void {
  if (type != KEY_DOWN) return;
  press();
  if (keyCode == KEY_LEFT || keyCode == KEY_A) setShip(shipX - STEP);
  else if (keyCode == KEY_RIGHT || keyCode == KEY_D) setShip(shipX + STEP);
}

export function uve_touch(type: i32, id: i32, x: f64, y: f64): void {
  if (type == TOUCH_START) press();
  if (type == TOUCH_START || type == TOUCH_MOVE) setShip(<i32>Math.floor(x) - SHIP_W / 2);
}

export function uve_pointer(type: i32, x: f64, y: f64, button: i32): void {
  if (type == POINTER_DOWN) {
    pointerHeld = true;
    press();
  } else if (type == POINTER_UP) {
    pointerHeld = false;
    return;
  }
  if (pointerHeld && (type == POINTER_DOWN || type == POINTER_MOVE)) setShip(<i32>Math.floor(x) - SHIP_W / 2);
}

// ---- simulation ----------------------------------------------------------------------------------

function spawn(): void {
  if (blockCount >= MAX_BLOCKS) return;
  const w = 16 + <i32>(random() % 40);
  const p = blocks + <usize>(blockCount * BLOCK_BYTES);
  store<i32>(p, <i32>(random() % <u32>max(1, width - w)));
  store<i32>(p, -BLOCK_H * 16, 4);
  store<i32>(p, w, 8);
  store<i32>(p, 24 + <i32>(random() % 40) + score, 12);
  blockCount++;
}

function tick(): void {
  if (--untilSpawn <= 0) {
    spawn();
    untilSpawn = spawnGap;
  }
  const top = shipTop();
  let i = 0;
  while (i < blockCount) {
    const p = blocks + <usize>(i * BLOCK_BYTES);
    const y = load<i32>(p, 4) + load<i32>(p, 12);
    store<i32>(p, y, 4);
    const x = load<i32>(p);
    const py = y / 16;
    if (x < shipX + SHIP_W && x + load<i32>(p, 8) > shipX && py < top + SHIP_H && py + BLOCK_H > top) {
      state = OVER;
      return;
    }
    if (py >= height) {
      // remove: the last block takes this slot
      blockCount--;
      memory.copy(p, blocks + <usize>(blockCount * BLOCK_BYTES), <usize>BLOCK_BYTES);
      score++;
      if (score % 5 == 0 && spawnGap > 12) spawnGap--;
    } else {
      i++;
    }
  }
}

// ---- picture -------------------------------------------------------------------------------------

function drawShip(): void {
  const top = shipTop();
  const cx = shipX + SHIP_W / 2;
  const c = rgb(80, 200, 255);
  for (let r = 0; r < SHIP_H; r++) fillRect(cx - (r + 1), top + r, 2 * (r + 1), 1, c);
}

function centred(s: string, y: i32, scale: i32, c: u32): void {
  drawText(s, (width - textWidth(s, scale)) / 2, y, scale, c);
}

function draw(): void {
  clear(rgb(10, 10, 40));
  for (let i = 0; i < blockCount; i++) {
    const p = blocks + <usize>(i * BLOCK_BYTES);
    fillRect(load<i32>(p), load<i32>(p, 4) / 16, load<i32>(p, 8), BLOCK_H, rgb(220, 80, 40));
  }
  drawShip();
  const x = drawText("SCORE ", 8, 8, 2, rgb(255, 255, 255));
  drawUint(<u64>score, x, 8, 2, rgb(255, 255, 255));
  if (state == READY) centred("ARROWS, A/D OR TOUCH", height / 2 - 8, 2, rgb(255, 255, 255));
  if (state == OVER) {
    centred("GAME OVER", height / 2 - 24, 3, rgb(255, 60, 60));
    centred("PRESS A KEY", height / 2 + 8, 2, rgb(255, 255, 255));
  }
  fillRect(width - 12, 4, 8, 8, indicator ? rgb(255, 255, 0) : rgb(255, 0, 255));
}

export function uve_render(nowMs: f64): i32 {
  let changed = dirty;
  if (state == PLAYING) {
    const target = <i64>Math.floor(nowMs * TICKS_PER_MS);
    if (syncClock) {
      lastTick = target;
      syncClock = false;
    }
    const steps = min(target - lastTick, MAX_CATCH_UP);
    lastTick = target;
    for (let i: i64 = 0; i < steps && state == PLAYING; i++) tick();
    if (steps > 0) changed = true;
  }
  dirty = false;
  if (changed) draw();
  return (changed ? RENDER_CHANGED : 0) | (state == PLAYING ? RENDER_ANIMATING : 0);
}
