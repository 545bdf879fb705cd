// The host side of the UVE WASM ABI, version 1 (docs/wasm-abi.md). Keep the numbers here, the
// document and apps/vm-agent/uas/_lib/uve.ts in step.
import type { InputEvent, LocalResourceKind, ResourceValue } from '@uve/protocol';

export const ABI_VERSION = 1;

/** bits of uve_render's result */
export const RENDER_CHANGED = 1;
export const RENDER_ANIMATING = 2;

export const POINTER_TYPE = { down: 0, up: 1, move: 2 } as const;
export const TOUCH_TYPE = { start: 0, move: 1, end: 2 } as const;
export const KEY_TYPE = { down: 0, up: 1 } as const;

export const RESOURCE_KIND_CODE: Readonly<Record<LocalResourceKind, number>> = {
  GEOLOCATION: 0,
  ACCELEROMETER: 1,
  ORIENTATION: 2,
  CAMERA: 3,
  MICROPHONE: 4,
  CLIPBOARD: 5,
  BATTERY: 6,
};
export const RESOURCE_KIND_BY_CODE = Object.fromEntries(Object.entries(RESOURCE_KIND_CODE).map(([k, v]) => [v, k])) as Readonly<Record<number, LocalResourceKind>>;

/** reason codes of uve_resource_refused */
export const REFUSAL = { OTHER: 0, DENIED: 1, UNAVAILABLE: 2, TIMEOUT: 3, BAD_ANSWER: 4 } as const;

/** Prefix of the exports the host adds for the module's mutable globals; guests must not use it. */
export const RESERVED_EXPORT_PREFIX = '__uve_';
export const GLOBAL_EXPORT_PREFIX = `${RESERVED_EXPORT_PREFIX}global_`;

/** Exports a guest must have, with their signatures as binary.signatureOf writes them. */
export const REQUIRED_EXPORTS = {
  uve_abi_version: '()->(i32)',
  uve_init: '(i32,i32)->(i32)',
  uve_render: '(f64)->(i32)',
} as const;

export const OPTIONAL_EXPORTS = {
  uve_pointer: '(i32,f64,f64,i32)->()',
  uve_touch: '(i32,i32,f64,f64)->()',
  uve_key: '(i32,i32,i32)->()',
  uve_text: '(i32)->()',
  uve_wheel: '(f64,f64,f64,f64)->()',
  uve_resource_answer: '(i32,i32,f64,f64,f64)->()',
  uve_resource_refused: '(i32,i32,i32)->()',
  uve_resource_text: '(i32,i32)->()',
  uve_app_data_save: '()->(i32)',
  uve_app_data_alloc: '(i32)->(i32)',
  uve_app_data_load: '(i32)->(i32)',
} as const;

export const APP_DATA_EXPORTS = ['uve_app_data_save', 'uve_app_data_alloc', 'uve_app_data_load'] as const;

/** The only imports the host provides, with their signatures. */
export const HOST_IMPORTS: Readonly<Record<string, string>> = {
  'uve.request_resource': '(i32)->(i32)',
  // AssemblyScript's abort(message, fileName, line, column): ends the UA with the message
  'env.abort': '(i32,i32,i32,i32)->()',
};

type Fn<A extends unknown[], R = void> = (...args: A) => R;
/** The guest's exports once the package check has verified their signatures. */
export interface GuestExports {
  uve_abi_version: Fn<[], number>;
  uve_init: Fn<[number, number], number>;
  uve_render: Fn<[number], number>;
  uve_pointer?: Fn<[number, number, number, number]>;
  uve_touch?: Fn<[number, number, number, number]>;
  uve_key?: Fn<[number, number, number]>;
  uve_text?: Fn<[number]>;
  uve_wheel?: Fn<[number, number, number, number]>;
  uve_resource_answer?: Fn<[number, number, number, number, number]>;
  uve_resource_refused?: Fn<[number, number, number]>;
  uve_resource_text?: Fn<[number, number]>;
  uve_app_data_save?: Fn<[], number>;
  uve_app_data_alloc?: Fn<[number], number>;
  uve_app_data_load?: Fn<[number], number>;
}

// ---- input encoding ------------------------------------------------------------------------------

/** Legacy DOM keyCode values (US layout) of the physical keys, by KeyboardEvent.code. */
const NAMED_KEY_CODES: Readonly<Record<string, number>> = {
  Backspace: 8, Tab: 9, Enter: 13, NumpadEnter: 13, ShiftLeft: 16, ShiftRight: 16, ControlLeft: 17, ControlRight: 17,
  AltLeft: 18, AltRight: 18, Pause: 19, CapsLock: 20, Escape: 27, Space: 32, PageUp: 33, PageDown: 34, End: 35,
  Home: 36, ArrowLeft: 37, ArrowUp: 38, ArrowRight: 39, ArrowDown: 40, Insert: 45, Delete: 46, MetaLeft: 91,
  MetaRight: 92, ContextMenu: 93, NumpadMultiply: 106, NumpadAdd: 107, NumpadSubtract: 109, NumpadDecimal: 110,
  NumpadDivide: 111, NumLock: 144, ScrollLock: 145, Semicolon: 186, Equal: 187, Comma: 188, Minus: 189,
  Period: 190, Slash: 191, Backquote: 192, BracketLeft: 219, Backslash: 220, BracketRight: 221, Quote: 222,
};
/** KeyboardEvent.key values of keys whose code was not sent */
const NAMED_KEY_VALUES: Readonly<Record<string, string>> = {
  Shift: 'ShiftLeft', Control: 'ControlLeft', Alt: 'AltLeft', Meta: 'MetaLeft', ' ': 'Space', Left: 'ArrowLeft',
  Right: 'ArrowRight', Up: 'ArrowUp', Down: 'ArrowDown', Esc: 'Escape', Del: 'Delete',
};

function keyCodeOfCode(code: string): number {
  let m: RegExpMatchArray | null;
  if ((m = /^Key([A-Z])$/.exec(code))) return m[1].charCodeAt(0);
  if ((m = /^Digit([0-9])$/.exec(code))) return 48 + Number(m[1]);
  if ((m = /^Numpad([0-9])$/.exec(code))) return 96 + Number(m[1]);
  if ((m = /^F([1-9]|1[0-9]|2[0-4])$/.exec(code))) return 111 + Number(m[1]);
  return NAMED_KEY_CODES[code] ?? 0;
}

/** keyCode for uve_key: from the physical `code`, else from the `key` value, else 0. */
export function keyCodeOf(code: string, key: string): number {
  const fromCode = keyCodeOfCode(code);
  if (fromCode !== 0) return fromCode;
  if (/^[a-zA-Z]$/.test(key)) return key.toUpperCase().charCodeAt(0);
  if (/^[0-9]$/.test(key)) return key.charCodeAt(0);
  return keyCodeOfCode(NAMED_KEY_VALUES[key] ?? key);
}

/** codePoint for uve_key: the character the key produces, 0 for named keys (Enter, ArrowLeft...). */
export function codePointOf(key: string): number {
  const cps = Array.from(key);
  return cps.length === 1 ? (cps[0].codePointAt(0) ?? 0) : 0;
}

export type EncodedInput =
  | { fn: 'uve_pointer'; args: [number, number, number, number] }
  | { fn: 'uve_touch'; args: [number, number, number, number] }
  | { fn: 'uve_key'; args: [number, number, number] }
  | { fn: 'uve_text'; args: [number] }
  | { fn: 'uve_wheel'; args: [number, number, number, number] };

/** One interaction command as the guest calls it receives (text: one call per code point). */
export function encodeInput(ev: InputEvent): EncodedInput[] {
  switch (ev.kind) {
    case 'pointer': return [{ fn: 'uve_pointer', args: [POINTER_TYPE[ev.type], ev.x, ev.y, ev.button] }];
    case 'touch': return [{ fn: 'uve_touch', args: [TOUCH_TYPE[ev.type], ev.id, ev.x, ev.y] }];
    case 'key': return [{ fn: 'uve_key', args: [KEY_TYPE[ev.type], keyCodeOf(ev.code, ev.key), codePointOf(ev.key)] }];
    case 'text': return Array.from(ev.text, (ch) => ({ fn: 'uve_text', args: [ch.codePointAt(0) ?? 0] }));
    case 'wheel': return [{ fn: 'uve_wheel', args: [ev.dx, ev.dy, ev.x, ev.y] }];
  }
}

// ---- resource answers ----------------------------------------------------------------------------

/** Maps the UC's free-text refusal reason onto a reason code. */
export function refusalCode(reason: string): number {
  const r = reason.toLowerCase();
  if (/time[d ]?\s*out/.test(r)) return REFUSAL.TIMEOUT;
  if (/unavailable|not available|unsupported|not supported|no device/.test(r)) return REFUSAL.UNAVAILABLE;
  if (/denied|refused|permission|declined|blocked|not allowed/.test(r)) return REFUSAL.DENIED;
  return REFUSAL.OTHER;
}

/** The three numbers of uve_resource_answer, plus the code points of a text value. */
export function answerValues(value: ResourceValue): { v: [number, number, number]; text?: number[] } {
  switch (value.kind) {
    case 'GEOLOCATION': return { v: [value.latitude, value.longitude, value.accuracy] };
    case 'ACCELEROMETER': return { v: [value.x, value.y, value.z] };
    case 'ORIENTATION': return { v: [value.alpha, value.beta, value.gamma] };
    case 'BATTERY': return { v: [value.level, value.charging ? 1 : 0, 0] };
    case 'CLIPBOARD': {
      const text = Array.from(value.text, (ch) => ch.codePointAt(0) ?? 0);
      return { v: [text.length, 0, 0], text };
    }
  }
}
