// UVE-4 on the terminal: providers of local resources the VM may ask for. An app passes its own
// (or test) providers; in a browser the defaults use the standard device APIs. The terminal should
// declare exactly the kinds it has providers for in its UA request (`offeredKinds`).
import type { LocalResourceKind, ResourceValue } from '@uve/protocol';

/** A provider answers with a value, or refuses (throw, or return {refused}). */
export interface ResourceRefusal {
  refused: string;
}
export type ResourceProvider = (kind: LocalResourceKind) => Promise<ResourceValue | ResourceRefusal>;
export type ResourceProviders = Partial<Record<LocalResourceKind, ResourceProvider>>;

export const isRefusal = (v: ResourceValue | ResourceRefusal): v is ResourceRefusal => typeof (v as ResourceRefusal).refused === 'string';

/** Browser providers must answer before the VM gives up (10 s). */
const DEVICE_TIMEOUT_MS = 8_000;

function inBrowser(): boolean {
  return typeof window !== 'undefined' && typeof navigator !== 'undefined';
}

function oneEvent<T extends Event>(type: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      window.removeEventListener(type, on);
      reject(new Error(`no ${type} event within ${timeoutMs} ms (no sensor?)`));
    }, timeoutMs);
    const on = (e: Event): void => {
      clearTimeout(timer);
      window.removeEventListener(type, on);
      resolve(e as T);
    };
    window.addEventListener(type, on);
  });
}

/** iOS asks the user before motion/orientation events flow; elsewhere this is a no-op. */
async function motionPermission(ctor: unknown): Promise<void> {
  const req = (ctor as { requestPermission?: () => Promise<string> } | undefined)?.requestPermission;
  if (typeof req === 'function' && (await req()) !== 'granted') throw new Error('motion sensors not permitted by the user');
}

/** Providers backed by the browser's device APIs (empty outside a browser). */
export function browserResourceProviders(): ResourceProviders {
  if (!inBrowser()) return {};
  const p: ResourceProviders = {};
  if (navigator.geolocation) {
    p.GEOLOCATION = () =>
      new Promise((resolve) =>
        navigator.geolocation.getCurrentPosition(
          (pos) => resolve({ kind: 'GEOLOCATION', latitude: pos.coords.latitude, longitude: pos.coords.longitude, accuracy: pos.coords.accuracy }),
          (err) => resolve({ refused: `geolocation: ${err.message || 'denied'}` }),
          { timeout: DEVICE_TIMEOUT_MS, maximumAge: 10_000 },
        ),
      );
  }
  if (typeof DeviceMotionEvent !== 'undefined') {
    p.ACCELEROMETER = async () => {
      await motionPermission(DeviceMotionEvent);
      const e = await oneEvent<DeviceMotionEvent>('devicemotion', 2_000);
      const a = e.accelerationIncludingGravity ?? e.acceleration;
      if (!a || a.x === null || a.y === null || a.z === null) return { refused: 'accelerometer gives no values' };
      return { kind: 'ACCELEROMETER', x: a.x, y: a.y, z: a.z };
    };
  }
  if (typeof DeviceOrientationEvent !== 'undefined') {
    p.ORIENTATION = async () => {
      await motionPermission(DeviceOrientationEvent);
      const e = await oneEvent<DeviceOrientationEvent>('deviceorientation', 2_000);
      if (e.alpha === null || e.beta === null || e.gamma === null) return { refused: 'orientation sensor gives no values' };
      return { kind: 'ORIENTATION', alpha: e.alpha, beta: e.beta, gamma: e.gamma };
    };
  }
  const nav = navigator as Navigator & { getBattery?: () => Promise<{ level: number; charging: boolean }> };
  if (typeof nav.getBattery === 'function') {
    p.BATTERY = async () => {
      const b = await nav.getBattery!();
      return { kind: 'BATTERY', level: b.level, charging: b.charging };
    };
  }
  return p;
}

/** Runs the provider for a request; every failure becomes a refusal with a reason. */
export async function provideResource(providers: ResourceProviders, kind: LocalResourceKind): Promise<{ ok: true; value: ResourceValue } | { ok: false; reason: string }> {
  const provider = providers[kind];
  if (!provider) return { ok: false, reason: `${kind} is not available on this terminal` };
  try {
    const v = await provider(kind);
    if (isRefusal(v)) return { ok: false, reason: v.refused.slice(0, 200) };
    if (v.kind !== kind) return { ok: false, reason: `provider answered ${v.kind} for ${kind}` };
    return { ok: true, value: v };
  } catch (e) {
    return { ok: false, reason: ((e as Error)?.message || 'refused').slice(0, 200) };
  }
}
