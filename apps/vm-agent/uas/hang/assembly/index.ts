// hang: a misbehaving UA for the agent's watchdog tests. A pointer down toggles the screen between
// grey and green (so frames visibly follow input); any key down never returns (an endless loop),
// which the host must survive: only this UA's session ends, with a reason.
import { KEY_DOWN, POINTER_DOWN, RENDER_CHANGED } from "../../_lib/uve";
import { clear, initScreen, rgb } from "../../_lib/gfx";
export { uve_abi_version } from "../../_lib/uve";

let green = false;
let dirty = true;
/** moved by the loop, so no optimiser may drop it as side-effect free */
let spins: u32 = 0;

export function uve_init(w: i32, h: i32): usize {
  return initScreen(w, h);
}

export function uve_render(_now: f64): i32 {
  if (!dirty) return 0;
  dirty = false;
  clear(green ? rgb(0, 200, 0) : rgb(128, 128, 128));
  return RENDER_CHANGED;
}

export function uve_pointer(type: i32, _x: f64, _y: f64, _button: i32): void {
  if (type != POINTER_DOWN) return;
  green = !green;
  dirty = true;
}

export function uve_key(type: i32, _keyCode: i32, _codePoint: i32): void {
  if (type != KEY_DOWN) return;
  while (spins != 0xffffffff || green || !green) spins++;
}
