// Interaction commands (UVE-3 InputEvent) as XTEST fake input on one persistent connection: a
// request per event, tens of microseconds, never a process per event (notes/streaming.md).
// Events apply in order; when the keyboard must let clients catch up before a remap, later events
// wait behind it in a small queue.
import type { InputEvent } from '@uve/protocol';
import type { Keyboard } from './keyboard';

export interface PointerBackend {
  motion(x: number, y: number): void;
  button(button: number, down: boolean): void;
}

/** DOM button (0 primary, 1 middle, 2 secondary, 3 back, 4 forward) -> X button */
const X_BUTTONS: Readonly<Record<number, number>> = { 0: 1, 1: 2, 2: 3, 3: 8, 4: 9 };
const WHEEL_UP = 4;
const WHEEL_DOWN = 5;
const WHEEL_LEFT = 6;
const WHEEL_RIGHT = 7;
/** wheel pixels per X wheel click (a mouse notch is 100 px in Chromium, 3 lines = 48 px in Firefox) */
export const WHEEL_STEP_PX = 50;
const MAX_WHEEL_CLICKS = 10;
/** more waiting events than this are dropped (a client flooding while a remap settles) */
const MAX_QUEUED = 1024;

export interface InputInjectorOptions {
  width: number;
  height: number;
  keyboard: Keyboard;
  pointer: PointerBackend;
}

export class InputInjector {
  private readonly queue: InputEvent[] = [];
  /** code point to continue the text at the head of the queue from */
  private textFrom = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly buttons = new Set<number>();
  /** the touch point that drives the pointer; others are ignored while it lasts */
  private touchId: number | null = null;
  private wheelX = 0;
  private wheelY = 0;

  constructor(private readonly opts: InputInjectorOptions) {}

  input(ev: InputEvent): void {
    if (this.queue.length > 0) {
      if (this.queue.length < MAX_QUEUED) this.queue.push(ev);
      return;
    }
    this.queue.push(ev);
    this.drain();
  }

  /** forgets queued events */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.textFrom = 0;
  }

  /** forgets queued events and lets go of all keys and buttons (suspend) */
  reset(): void {
    this.cancel();
    this.opts.keyboard.releaseAll();
    for (const b of this.buttons) this.opts.pointer.button(b, false);
    this.buttons.clear();
    this.touchId = null;
    this.wheelX = this.wheelY = 0;
  }

  private drain(): void {
    this.timer = null;
    while (this.queue.length > 0) {
      const waitMs = this.apply(this.queue[0]);
      if (waitMs !== null) {
        this.timer = setTimeout(() => this.drain(), waitMs);
        return;
      }
      this.queue.shift();
      this.textFrom = 0;
    }
  }

  /** null when applied, else ms to wait before trying the same event again */
  private apply(ev: InputEvent): number | null {
    const kb = this.opts.keyboard;
    if (ev.kind !== 'text' && ev.kind !== 'key') kb.interrupt();
    switch (ev.kind) {
      case 'key':
        if (ev.type === 'up') {
          kb.keyUp(ev.code, ev.key);
          return null;
        }
        return kb.keyDown(ev.code, ev.key)?.waitMs ?? null;
      case 'text': {
        const wait = kb.type(ev.text, this.textFrom);
        if (!wait) return null;
        this.textFrom = wait.from;
        return wait.waitMs;
      }
      case 'pointer': {
        this.move(ev.x, ev.y);
        const b = X_BUTTONS[ev.button];
        if (ev.type === 'down' && b !== undefined && !this.buttons.has(b)) this.button(b, true);
        if (ev.type === 'up' && b !== undefined && this.buttons.has(b)) this.button(b, false);
        return null;
      }
      case 'touch':
        // one finger is a mouse with its left button; a second finger has no X11 meaning here
        if (ev.type === 'start' && this.touchId === null) {
          this.touchId = ev.id;
          this.move(ev.x, ev.y);
          if (!this.buttons.has(1)) this.button(1, true);
        } else if (ev.id === this.touchId) {
          this.move(ev.x, ev.y);
          if (ev.type === 'end') {
            this.touchId = null;
            if (this.buttons.has(1)) this.button(1, false);
          }
        }
        return null;
      case 'wheel':
        this.move(ev.x, ev.y);
        this.wheelY = this.scroll(this.wheelY + ev.dy, WHEEL_UP, WHEEL_DOWN);
        this.wheelX = this.scroll(this.wheelX + ev.dx, WHEEL_LEFT, WHEEL_RIGHT);
        return null;
    }
  }

  private move(x: number, y: number): void {
    const { width, height } = this.opts;
    this.opts.pointer.motion(Math.min(width - 1, Math.max(0, Math.round(x))), Math.min(height - 1, Math.max(0, Math.round(y))));
  }

  private button(b: number, down: boolean): void {
    if (down) this.buttons.add(b);
    else this.buttons.delete(b);
    this.opts.pointer.button(b, down);
  }

  /** clicks the wheel button for whole steps of the accumulated delta; returns the remainder */
  private scroll(total: number, negative: number, positive: number): number {
    const steps = Math.trunc(total / WHEEL_STEP_PX);
    const clicks = Math.min(MAX_WHEEL_CLICKS, Math.abs(steps));
    for (let i = 0; i < clicks; i++) {
      this.opts.pointer.button(steps < 0 ? negative : positive, true);
      this.opts.pointer.button(steps < 0 ? negative : positive, false);
    }
    return steps === 0 ? total : total - steps * WHEEL_STEP_PX;
  }
}
