// A browser reports one typed character twice: as a key event (key "a") and, right after, as text
// "a" from the text field. docs/protocol.md: text that directly follows the key-down that produced
// it is that key's echo, not more typing. Runtimes drop it with this filter.
import type { InputEvent } from '@uve/protocol';

export class TextEchoFilter {
  private typedByKey: string | null = null;

  /** false when `ev` is the echo of the key just pressed */
  keep(ev: InputEvent): boolean {
    if (ev.kind === 'text') {
      const echo = this.typedByKey !== null && ev.text === this.typedByKey;
      this.typedByKey = null;
      return !echo;
    }
    if (ev.kind === 'key') {
      // a key-up between the key-down and its text does not break the pair
      if (ev.type === 'down') this.typedByKey = Array.from(ev.key).length === 1 ? ev.key : null;
      return true;
    }
    this.typedByKey = null;
    return true;
  }
}
