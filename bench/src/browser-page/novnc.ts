// The browser side of stream-browser's x11vnc baseline: noVNC's own RFB client (Debian's
// /usr/share/novnc, its ES modules loaded as shipped from /novnc/, not bundled), measured in the
// page on the same clock as the UVE page (entry.ts): input sent through the client (rfb.sendKey)
// -> the first update drawn into noVNC's visible canvas whose centre pixel changed -> the next
// animation frame. noVNC draws an update into a hidden canvas and copies it to the visible one in
// Display.flip(), so the page wraps that method of the client's display (a private of noVNC 1.3).

import { centreOf, nextPaint, now, sleep, waitIn } from './page';

export interface VncRoundTrip {
  sentAt: number;
  /** the flip (copy to the visible canvas) that showed the probe's new colour */
  drawnAt: number;
  /** the first animation frame after it */
  paintedAt: number;
}

export interface VncPage {
  /** connects noVNC to `url` and resolves once the first update is drawn */
  connect(url: string, timeoutMs: number): Promise<{ width: number; height: number }>;
  /** after a random wait of `phaseMs`, presses and releases `a` through the client */
  roundTrip(phaseMs: number, timeoutMs: number): Promise<VncRoundTrip>;
  errors(): string[];
  stop(): void;
}

declare global {
  interface Window {
    vnc: VncPage;
  }
}

/** what the page uses of noVNC 1.3's Display (display.js) */
interface NoVncDisplay {
  flip(fromQueue?: boolean): void;
  _renderQ: unknown[];
  _targetCtx: CanvasRenderingContext2D;
}
interface NoVncRfb extends EventTarget {
  _display?: NoVncDisplay;
  sendKey(keysym: number, code: string, down?: boolean): void;
  disconnect(): void;
}
type NoVncRfbClass = new (target: HTMLElement, url: string, options?: { wsProtocols?: string[] }) => NoVncRfb;

/** a variable, so that esbuild leaves the import to the browser */
const RFB_MODULE = '/novnc/core/rfb.js';
/** XK_a: the probe repaints on any key press, as in the UVE X11 case's KeyA */
const XK_A = 0x61;

const errors: string[] = [];
const flipWaiters = new Set<(at: number) => void>();
let rfb: NoVncRfb | null = null;
/** stop() called: the disconnect that follows is no error */
let stopping = false;
let ctx: CanvasRenderingContext2D | null = null;

const centre = (): number => centreOf(ctx!);

/** resolves with the time of the first flip after which `test` holds, or rejects after `timeoutMs` */
const waitFlip = (test: () => boolean, timeoutMs: number, what: string): Promise<number> => waitIn(flipWaiters, () => test(), timeoutMs, `no noVNC update ${what} within ${timeoutMs} ms`);

window.vnc = {
  async connect(url, timeoutMs) {
    const { default: RFB } = (await import(RFB_MODULE)) as { default: NoVncRfbClass };
    const target = document.createElement('div');
    document.body.replaceChildren(target);
    // x11vnc's WebSocket handshake asks for a subprotocol; noVNC offers none unless told
    const r = new RFB(target, url, { wsProtocols: ['binary'] });
    rfb = r;
    const display = r._display;
    if (!display || typeof display.flip !== 'function' || !Array.isArray(display._renderQ) || !display._targetCtx) {
      throw new Error('this noVNC has no Display.flip/_renderQ/_targetCtx (the bench reads noVNC 1.3 internals)');
    }
    ctx = display._targetCtx;
    const flip = display.flip.bind(display);
    display.flip = (fromQueue) => {
      // with decodes still queued, flip() only queues itself: the copy happens in flip(true)
      const queued = display._renderQ.length !== 0 && !fromQueue;
      flip(fromQueue);
      if (queued) return;
      const at = now();
      for (const w of [...flipWaiters]) w(at);
    };
    const failed = new Promise<never>((_, reject) => {
      const fail = (why: string) => {
        if (stopping) return;
        errors.push(why);
        reject(new Error(why));
      };
      r.addEventListener('disconnect', (e) => fail(`noVNC disconnected (clean: ${(e as CustomEvent<{ clean: boolean }>).detail.clean})`));
      r.addEventListener('securityfailure', (e) => fail(`noVNC security failure: ${(e as CustomEvent<{ reason?: string }>).detail.reason ?? ''}`));
    });
    failed.catch(() => undefined);
    await Promise.race([waitFlip(() => ctx!.canvas.width > 0, timeoutMs, 'at all'), failed]);
    return { width: ctx.canvas.width, height: ctx.canvas.height };
  },

  async roundTrip(phaseMs, timeoutMs) {
    const r = rfb!;
    await sleep(Math.random() * phaseMs);
    const before = centre();
    const sentAt = now();
    r.sendKey(XK_A, 'KeyA', true);
    r.sendKey(XK_A, 'KeyA', false);
    const drawnAt = await waitFlip(() => Math.abs(centre() - before) > 60, timeoutMs, 'showing the key press');
    return { sentAt, drawnAt, paintedAt: await nextPaint() };
  },

  errors: () => [...errors],

  stop() {
    stopping = true;
    rfb?.disconnect();
    rfb = null;
  },
};
