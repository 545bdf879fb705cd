// What both bench pages (entry.ts: the UVE client, novnc.ts: noVNC) measure with, so that their
// figures are taken alike: one clock, the canvas centre, waits bounded in time.

/** the machine's clock, ms since epoch (the VM agent's wallClock on the same host) */
export const now = (): number => performance.timeOrigin + performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** the next animation frame (the compositor takes the canvas then) */
export const nextPaint = (): Promise<number> => new Promise((resolve) => requestAnimationFrame(() => resolve(now())));

/** the sum of R, G and B at the canvas's centre pixel */
export function centreOf(ctx: CanvasRenderingContext2D): number {
  const c = ctx.canvas;
  const d = ctx.getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
  return d[0]! + d[1]! + d[2]!;
}

/**
 * Resolves with the first value a waiter in `waiters` is called with that `test` accepts, or
 * rejects with `error` after `timeoutMs`; the waiter leaves the set either way.
 */
export function waitIn<T>(waiters: Set<(v: T) => void>, test: (v: T) => boolean, timeoutMs: number, error: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiters.delete(w);
      reject(new Error(error));
    }, timeoutMs);
    const w = (v: T): void => {
      if (!test(v)) return;
      clearTimeout(timer);
      waiters.delete(w);
      resolve(v);
    };
    waiters.add(w);
  });
}
