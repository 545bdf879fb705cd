// The VM clock put into frame headers (captureTs) and pong messages (t1): milliseconds since the
// epoch like Date.now(), with the sub-millisecond fraction from performance.now(), so that a UC can
// measure capture-to-display latency finer than 1 ms. The anchor follows Date.now() when the wall
// clock is stepped (NTP), so the value never drifts more than 1 ms from it.
import { performance } from 'node:perf_hooks';

let anchor = Date.now() - performance.now();

export function wallClock(): number {
  const p = performance.now();
  const d = Date.now();
  let t = anchor + p;
  if (t < d - 1 || t >= d + 1) {
    anchor = d - p + (p % 1);
    t = anchor + p;
  }
  return t;
}

/** Monotonic milliseconds for pacing (never goes back when the wall clock is stepped). */
export const monotonic = (): number => performance.now();
