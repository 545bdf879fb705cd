// The guest side of the UVE WASM ABI, version 1 (docs/wasm-abi.md). Keep these numbers, the
// document and apps/vm-agent/src/runtimes/wasm/abi.ts in step.

export const ABI_VERSION: i32 = 1;

/** bits of uve_render's result */
export const RENDER_CHANGED: i32 = 1;
export const RENDER_ANIMATING: i32 = 2;

export const POINTER_DOWN: i32 = 0;
export const POINTER_UP: i32 = 1;
export const POINTER_MOVE: i32 = 2;

export const TOUCH_START: i32 = 0;
export const TOUCH_MOVE: i32 = 1;
export const TOUCH_END: i32 = 2;

export const KEY_DOWN: i32 = 0;
export const KEY_UP: i32 = 1;

/** key codes (legacy DOM keyCode of the physical key) */
export const KEY_BACKSPACE: i32 = 8;
export const KEY_ENTER: i32 = 13;
export const KEY_ESCAPE: i32 = 27;
export const KEY_SPACE: i32 = 32;
export const KEY_LEFT: i32 = 37;
export const KEY_UP_ARROW: i32 = 38;
export const KEY_RIGHT: i32 = 39;
export const KEY_DOWN_ARROW: i32 = 40;
export const KEY_A: i32 = 65;
export const KEY_D: i32 = 68;
export const KEY_S: i32 = 83;
export const KEY_W: i32 = 87;

export const RES_GEOLOCATION: i32 = 0;
export const RES_ACCELEROMETER: i32 = 1;
export const RES_ORIENTATION: i32 = 2;
export const RES_CAMERA: i32 = 3;
export const RES_MICROPHONE: i32 = 4;
export const RES_CLIPBOARD: i32 = 5;
export const RES_BATTERY: i32 = 6;

export const REFUSED_OTHER: i32 = 0;
export const REFUSED_DENIED: i32 = 1;
export const REFUSED_UNAVAILABLE: i32 = 2;
export const REFUSED_TIMEOUT: i32 = 3;
export const REFUSED_BAD_ANSWER: i32 = 4;

/** Asks the terminal for a local resource (UVE-4); the answer comes later through
 * uve_resource_answer / uve_resource_refused with the returned id (0: unknown kind). */
// @ts-ignore: decorator
@external("uve", "request_resource")
export declare function request_resource(kind: i32): i32;

/** Every UA re-exports this one from its entry file. */
export function uve_abi_version(): i32 {
  return ABI_VERSION;
}
