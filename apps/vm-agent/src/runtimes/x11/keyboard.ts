// Keys and text for an X server through XTEST, the way xdotool does it: a DOM key becomes a keysym,
// the keysym a keycode of the server's current map. A character the map does not have (é, €, 日)
// gets one of the map's spare keycodes remapped to its keysym (ChangeKeyboardMapping) for as long
// as it stays among the least recently used; so a character costs one remap the first time only.
import { codePointOf } from '../wasm/abi';

/** What the keyboard needs from the X connection. */
export interface KeyBackend {
  /** XTEST key press or release */
  key(keycode: number, down: boolean): void;
  /** makes every level of `keycode` produce `keysym` */
  remap(keycode: number, keysym: number): void;
}

const NO_SYMBOL = 0;
const KS = {
  BackSpace: 0xff08, Tab: 0xff09, Return: 0xff0d, Escape: 0xff1b, Delete: 0xffff,
  Shift_L: 0xffe1, Shift_R: 0xffe2, Control_L: 0xffe3, Control_R: 0xffe4, Meta_L: 0xffe7, Meta_R: 0xffe8,
  Alt_L: 0xffe9, Alt_R: 0xffea, Super_L: 0xffeb, Super_R: 0xffec, ISO_Level3_Shift: 0xfe03,
} as const;

/** Keysyms of DOM `KeyboardEvent.key` values that are not characters (and a few legacy names). */
const NAMED_KEYS: Readonly<Record<string, number>> = {
  Enter: KS.Return, Tab: KS.Tab, Backspace: KS.BackSpace, Escape: KS.Escape, Esc: KS.Escape, Delete: KS.Delete, Del: KS.Delete,
  Insert: 0xff63, Home: 0xff50, End: 0xff57, PageUp: 0xff55, PageDown: 0xff56,
  ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54, Left: 0xff51, Up: 0xff52, Right: 0xff53, Down: 0xff54,
  Shift: KS.Shift_L, Control: KS.Control_L, Alt: KS.Alt_L, AltGraph: KS.ISO_Level3_Shift, Meta: KS.Super_L, OS: KS.Super_L, Super: KS.Super_L,
  CapsLock: 0xffe5, NumLock: 0xff7f, ScrollLock: 0xff14, Pause: 0xff13, PrintScreen: 0xff61, ContextMenu: 0xff67,
  Help: 0xff6a, Clear: 0xff0b, Cancel: 0xff69, Select: 0xff60, Execute: 0xff62, Undo: 0xff65, Redo: 0xff66, Find: 0xff68,
  ...Object.fromEntries(Array.from({ length: 35 }, (_, i) => [`F${i + 1}`, 0xffbe + i])),
};

/** Physical keys whose side matters, by DOM `KeyboardEvent.code`. */
const SIDED_CODES: Readonly<Record<string, number>> = {
  ShiftLeft: KS.Shift_L, ShiftRight: KS.Shift_R, ControlLeft: KS.Control_L, ControlRight: KS.Control_R,
  AltLeft: KS.Alt_L, AltRight: KS.Alt_R, MetaLeft: KS.Super_L, MetaRight: KS.Super_R, OSLeft: KS.Super_L, OSRight: KS.Super_R,
};

/** US-layout keysyms by `code`, for keys whose `key` is missing or (with Ctrl/Alt/Meta) not on the map. */
const CODE_KEYSYMS: Readonly<Record<string, number>> = {
  Space: 0x20, Minus: 0x2d, Equal: 0x3d, BracketLeft: 0x5b, BracketRight: 0x5d, Backslash: 0x5c, Semicolon: 0x3b,
  Quote: 0x27, Backquote: 0x60, Comma: 0x2c, Period: 0x2e, Slash: 0x2f, IntlBackslash: 0x3c,
  NumpadEnter: 0xff8d, NumpadAdd: 0xffab, NumpadSubtract: 0xffad, NumpadMultiply: 0xffaa, NumpadDivide: 0xffaf, NumpadDecimal: 0xffae,
  ...Object.fromEntries(Array.from({ length: 26 }, (_, i) => [`Key${String.fromCharCode(65 + i)}`, 0x61 + i])),
  ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`Digit${i}`, 0x30 + i])),
  ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`Numpad${i}`, 0xffb0 + i])),
};

const SHIFTS: ReadonlySet<number> = new Set([KS.Shift_L, KS.Shift_R]);
/** modifiers that turn a character key into a command (Ctrl+C): such keys go by keycode, never by character */
const COMMAND_MODIFIERS: ReadonlySet<number> = new Set([KS.Control_L, KS.Control_R, KS.Alt_L, KS.Alt_R, KS.Meta_L, KS.Meta_R, KS.Super_L, KS.Super_R]);
/** control characters text input may carry */
const TEXT_CONTROLS: Readonly<Record<number, number>> = { 0x08: KS.BackSpace, 0x09: KS.Tab, 0x0a: KS.Return, 0x0d: KS.Return };

/** The keysym of a character: Latin-1 keysyms are the code point, the rest Unicode keysyms (0x01000000 + code point). */
export function charKeysym(cp: number): number | null {
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  if (cp >= 0x100 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff)) return 0x01000000 + cp;
  return null;
}

/**
 * After a remapped keycode was used, this long passes before it is remapped to another keysym:
 * X clients fetch a changed map when they get to its notification, and a client still behind
 * would read the newer mapping for the older key press. 100 ms was not enough on a loaded 2-core
 * machine (xterm ran more than a hundred keys behind, so text pasted in many scripts came out
 * scrambled); a second costs nothing to a person (keycodes are reused least-recently-used first,
 * so only a burst of more than ~110 distinct new characters a second ever waits).
 */
export const REMAP_SETTLE_MS = 1000;

/** XF86 multimedia and launcher keysyms (XF86AudioMute, XF86Mail...): no UC sends them */
const isVendorKeysym = (s: number): boolean => s >= 0x1008ff00 && s <= 0x1008ffff;

interface Binding {
  keycode: number;
  /** the map column: 0 plain, 1 shifted; -1 for a spare remapped to the keysym on every level */
  col: number;
}

interface Held {
  keycode: number;
  keysym: number;
  /** typed a character (not a named key, not a Ctrl/Alt/Meta shortcut) */
  typed: boolean;
}

/** A step could not run yet: try again in `waitMs` (a remap must let clients catch up first). */
export interface Wait {
  waitMs: number;
}

export class Keyboard {
  /** keysym -> where it is on the map (columns 0 and 1 only: the levels Shift reaches) */
  private readonly bySym = new Map<number, Binding>();
  /** keycodes free for remapping, least recently used first */
  private readonly spares: number[] = [];
  private readonly spareSym = new Map<number, number>();
  private readonly lastUse = new Map<number, number>();
  /** keys held by key events, by DOM code */
  private readonly held = new Map<string, Held>();
  /** the character the last key down typed: the browser sends it again as text, which must not type twice */
  private typedByKey: string | null = null;

  constructor(
    minKeycode: number,
    rows: readonly (readonly number[])[],
    private readonly backend: KeyBackend,
    private readonly now: () => number,
  ) {
    // spares: keycodes without keysyms first, then those with XF86 keysyms only (about 19 + 91 on
    // Xvfb's default map); the more there are, the rarer a keycode must be reused at all
    const reclaimable: number[] = [];
    rows.forEach((syms, i) => {
      const keycode = minKeycode + i;
      if (syms.every((s) => s === NO_SYMBOL)) {
        this.spares.push(keycode);
        return;
      }
      if (syms.every((s) => s === NO_SYMBOL || isVendorKeysym(s))) {
        reclaimable.push(keycode);
        return;
      }
      for (const col of [0, 1]) {
        const s = syms[col] ?? NO_SYMBOL;
        if (s !== NO_SYMBOL && !this.bySym.has(s)) this.bySym.set(s, { keycode, col });
      }
    });
    this.spares.push(...reclaimable);
  }

  keyDown(code: string, key: string): Wait | null {
    const id = code || key;
    const again = this.held.get(id);
    if (again) {
      // the client's auto-repeat: X sees more presses of the same key
      this.press(again.keycode, true);
      this.typedByKey = again.typed ? key : null;
      return null;
    }
    const resolved = this.keysymOf(code, key);
    if (!resolved) {
      this.typedByKey = null;
      return null;
    }
    const chosen = this.keycodeFor(resolved.keysym, resolved.isChar);
    if (chosen === null) {
      this.typedByKey = null;
      return null;
    }
    if ('waitMs' in chosen) return chosen;
    if (chosen.shift) this.backend.key(this.shiftKeycode(), true);
    this.press(chosen.keycode, true);
    if (chosen.shift) this.backend.key(this.shiftKeycode(), false);
    const typed = resolved.isChar && !this.commandHeld();
    this.held.set(id, { keycode: chosen.keycode, keysym: resolved.keysym, typed });
    this.typedByKey = typed ? key : null;
    return null;
  }

  keyUp(code: string, key: string): void {
    const id = code || key;
    const h = this.held.get(id);
    if (!h) return;
    this.held.delete(id);
    this.press(h.keycode, false);
  }

  /**
   * Types `text` from code point `from` on. Returns null when done, or where to continue and when
   * (a character needs a spare keycode that was used too recently to remap yet).
   */
  type(text: string, from = 0): (Wait & { from: number }) | null {
    if (from === 0 && this.typedByKey !== null && text === this.typedByKey) {
      this.typedByKey = null; // already typed by its key event
      return null;
    }
    this.typedByKey = null;
    const cps = Array.from(text);
    for (let i = from; i < cps.length; i++) {
      const cp = cps[i].codePointAt(0) ?? 0;
      const control = TEXT_CONTROLS[cp];
      const keysym = control ?? charKeysym(cp);
      if (keysym === null) continue;
      const chosen = this.keycodeFor(keysym, control === undefined);
      if (chosen === null) continue;
      if ('waitMs' in chosen) return { waitMs: chosen.waitMs, from: i };
      if (chosen.shift) this.backend.key(this.shiftKeycode(), true);
      this.press(chosen.keycode, true);
      this.press(chosen.keycode, false);
      if (chosen.shift) this.backend.key(this.shiftKeycode(), false);
    }
    return null;
  }

  /** other input came between a key and its text: the text is new */
  interrupt(): void {
    this.typedByKey = null;
  }

  /** lets go of every key held by key events (suspend, close, a client gone) */
  releaseAll(): void {
    for (const h of [...this.held.values()].reverse()) this.press(h.keycode, false);
    this.held.clear();
    this.typedByKey = null;
  }

  // ---- internals ---------------------------------------------------------------------------------

  private keysymOf(code: string, key: string): { keysym: number; isChar: boolean } | null {
    const sided = SIDED_CODES[code];
    if (sided !== undefined && key !== 'AltGraph') return { keysym: sided, isChar: false };
    const named = NAMED_KEYS[key];
    if (named !== undefined) return { keysym: named, isChar: false };
    const cp = codePointOf(key);
    const ks = cp ? charKeysym(cp) : null;
    // Ctrl+С on a Cyrillic layout means Ctrl+C: shortcuts follow the physical key when the map lacks the character
    if (ks !== null && !(this.commandHeld() && !this.bySym.has(ks) && CODE_KEYSYMS[code] !== undefined)) return { keysym: ks, isChar: true };
    const byCode = CODE_KEYSYMS[code] ?? NAMED_KEYS[code];
    if (byCode !== undefined) return { keysym: byCode, isChar: byCode < 0x100 };
    return null;
  }

  /**
   * The keycode that produces `keysym` with the modifiers now held. A character on the other Shift
   * level than the one held is reached by wrapping Shift around it, or by a spare remapped to it
   * on every level; keys pressed with Ctrl/Alt/Meta and named keys go by keycode as they are.
   */
  private keycodeFor(keysym: number, isChar: boolean): { keycode: number; shift: boolean } | Wait | null {
    const b = this.bySym.get(keysym);
    const shiftHeld = this.shiftHeld();
    if (b) {
      if (b.col === -1) {
        this.touchSpare(b.keycode);
        return { keycode: b.keycode, shift: false };
      }
      if (!isChar || this.commandHeld() || b.col === (shiftHeld ? 1 : 0)) return { keycode: b.keycode, shift: false };
      if (b.col === 1 && this.shiftKeycode() !== 0) return { keycode: b.keycode, shift: true };
    }
    return this.remapSpare(keysym);
  }

  private remapSpare(keysym: number): { keycode: number; shift: false } | Wait | null {
    const heldCodes = new Set([...this.held.values()].map((h) => h.keycode));
    const keycode = this.spares.find((k) => !heldCodes.has(k));
    if (keycode === undefined) return null; // no spare keycode free: the character cannot be typed
    // a client may still be translating an earlier press of this keycode with the map it fetches now
    const since = this.now() - (this.lastUse.get(keycode) ?? -Infinity);
    if (since < REMAP_SETTLE_MS) return { waitMs: Math.ceil(REMAP_SETTLE_MS - since) };
    const old = this.spareSym.get(keycode);
    if (old !== undefined && this.bySym.get(old)?.keycode === keycode) this.bySym.delete(old);
    this.backend.remap(keycode, keysym);
    this.spareSym.set(keycode, keysym);
    this.bySym.set(keysym, { keycode, col: -1 });
    this.touchSpare(keycode);
    return { keycode, shift: false };
  }

  private touchSpare(keycode: number): void {
    const i = this.spares.indexOf(keycode);
    if (i >= 0) this.spares.push(...this.spares.splice(i, 1));
    this.lastUse.set(keycode, this.now());
  }

  private press(keycode: number, down: boolean): void {
    if (this.spareSym.has(keycode)) this.lastUse.set(keycode, this.now());
    this.backend.key(keycode, down);
  }

  private shiftKeycode(): number {
    return this.bySym.get(KS.Shift_L)?.keycode ?? this.bySym.get(KS.Shift_R)?.keycode ?? 0;
  }

  private shiftHeld(): boolean {
    for (const h of this.held.values()) if (SHIFTS.has(h.keysym)) return true;
    return false;
  }

  private commandHeld(): boolean {
    for (const h of this.held.values()) if (COMMAND_MODIFIERS.has(h.keysym)) return true;
    return false;
  }
}
