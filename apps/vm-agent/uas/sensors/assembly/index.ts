// sensors: asks the terminal for GEOLOCATION and ACCELEROMETER (UVE-4) at start and on every tap,
// and shows the answers, or a red banner naming the refusal.
// Test hooks (docs/wasm-abi.md): the 16x16 square at (0, 0) is grey (128,128,128) while the
// geolocation answer is pending, green (0,200,0) once answered, red (200,0,0) when refused; the
// square at (20, 0) does the same for the accelerometer; the row band y = 24..31 is blue
// (0,0,255) for x < floor((latitude + 90) * width / 180) and dark grey (60,60,60) after it.
import {
  KEY_DOWN, KEY_ENTER, KEY_SPACE, POINTER_DOWN, REFUSED_BAD_ANSWER, REFUSED_DENIED, REFUSED_TIMEOUT,
  REFUSED_UNAVAILABLE, RENDER_CHANGED, RES_ACCELEROMETER, RES_GEOLOCATION, request_resource, TOUCH_START,
} from "../../_lib/uve";
import { clear, drawFixed, drawText, fillRect, height, initScreen, rgb, width } from "../../_lib/gfx";
export { uve_abi_version } from "../../_lib/uve";

const PENDING: i32 = 0;
const ANSWERED: i32 = 1;
const REFUSED: i32 = 2;

class Sensor {
  status: i32 = PENDING;
  request: i32 = 0;
  v0: f64 = 0;
  v1: f64 = 0;
  v2: f64 = 0;
  reason: i32 = 0;
  constructor(public kind: i32) {}

  ask(): void {
    this.status = PENDING;
    this.request = request_resource(this.kind);
  }
}

let geo: Sensor | null = null;
let accel: Sensor | null = null;
let dirty = true;

function askAll(): void {
  geo!.ask();
  accel!.ask();
  dirty = true;
}

export function uve_init(w: i32, h: i32): usize {
  const screen = initScreen(w, h);
  geo = new Sensor(RES_GEOLOCATION);
  accel = new Sensor(RES_ACCELEROMETER);
  askAll();
  return screen;
}

function sensorFor(requestId: i32): Sensor | null {
  if (geo!.request == requestId) return geo;
  if (accel!.request == requestId) return accel;
  return null; // an answer to a request that a newer tap replaced
}

export function uve_resource_answer(requestId: i32, kind: i32, v0: f64, v1: f64, v2: f64): void {
  const s = sensorFor(requestId);
  if (!s) return;
  s.status = ANSWERED;
  s.v0 = v0;
  s.v1 = v1;
  s.v2 = v2;
  dirty = true;
}

export function uve_resource_refused(requestId: i32, kind: i32, reason: i32): void {
  const s = sensorFor(requestId);
  if (!s) return;
  s.status = REFUSED;
  s.reason = reason;
  dirty = true;
}

export function uve_pointer(type: i32, x: f64, y: f64, button: i32): void {
  if (type == POINTER_DOWN) askAll();
}

export function uve_touch(type: i32, id: i32, x: f64, y: f64): void {
  if (type == TOUCH_START) askAll();
}

export function uve_key(type: i32, keyCode: i32, codePoint: i32): void {
  if (type == KEY_DOWN && (keyCode == KEY_ENTER || keyCode == KEY_SPACE)) askAll();
}

// ---- picture -------------------------------------------------------------------------------------

const WHITE: u32 = 0xffffffff;

function statusColour(s: Sensor): u32 {
  if (s.status == ANSWERED) return rgb(0, 200, 0);
  if (s.status == REFUSED) return rgb(200, 0, 0);
  return rgb(128, 128, 128);
}

function reasonText(reason: i32): string {
  if (reason == REFUSED_DENIED) return "DENIED";
  if (reason == REFUSED_UNAVAILABLE) return "UNAVAILABLE";
  if (reason == REFUSED_TIMEOUT) return "TIMED OUT";
  if (reason == REFUSED_BAD_ANSWER) return "BAD ANSWER";
  return "REFUSED";
}

/** one value per line below the sensor's title; returns the y after them */
function drawSensor(title: string, s: Sensor, n0: string, n1: string, n2: string, decimals: i32, y: i32): i32 {
  drawText(title, 8, y, 2, WHITE);
  y += 22;
  if (s.status == PENDING) {
    drawText("WAITING FOR THE TERMINAL...", 8, y, 2, rgb(160, 160, 160));
    return y + 22;
  }
  if (s.status == REFUSED) {
    drawText(reasonText(s.reason), 8, y, 2, rgb(255, 80, 80));
    return y + 22;
  }
  drawFixed(s.v0, decimals, drawText(n0, 8, y, 2, WHITE), y, 2, WHITE);
  drawFixed(s.v1, decimals, drawText(n1, 8, y + 22, 2, WHITE), y + 22, 2, WHITE);
  drawFixed(s.v2, decimals, drawText(n2, 8, y + 44, 2, WHITE), y + 44, 2, WHITE);
  return y + 66;
}

function drawBanner(title: string, s: Sensor, bottom: i32): i32 {
  if (s.status != REFUSED) return bottom;
  const top = bottom - 28;
  fillRect(0, top, width, 28, rgb(200, 0, 0));
  const x = drawText(title, 8, top + 7, 2, WHITE);
  drawText(reasonText(s.reason), x + 12, top + 7, 2, WHITE);
  return top;
}

export function uve_render(nowMs: f64): i32 {
  if (!dirty) return 0;
  dirty = false;
  const g = geo!;
  const a = accel!;
  clear(rgb(20, 20, 28));
  fillRect(0, 0, 16, 16, statusColour(g));
  fillRect(20, 0, 16, 16, statusColour(a));
  drawText("TAP TO ASK AGAIN", 44, 4, 1, rgb(160, 160, 160));
  fillRect(0, 24, width, 8, rgb(60, 60, 60));
  if (g.status == ANSWERED) fillRect(0, 24, <i32>Math.floor((g.v0 + 90.0) * <f64>width / 180.0), 8, rgb(0, 0, 255));
  const y = drawSensor("GEOLOCATION", g, "LAT ", "LON ", "ACC ", 6, 40);
  drawSensor("ACCELEROMETER", a, "X ", "Y ", "Z ", 3, y + 8);
  drawBanner("ACCELEROMETER", a, drawBanner("GEOLOCATION", g, height));
  return RENDER_CHANGED;
}
