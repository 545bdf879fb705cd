// The WASM platform of the VM agent (docs/wasm-abi.md) against the three sample UAs built by
// `npm run build -w @uve/vm-agent`, plus hand-assembled modules for the error paths.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { InputEvent, LocalResourceKind } from '@uve/protocol';
import type { RawFrame, ResourceAnswer } from '../../apps/vm-agent/src/runtimes/runtime';
import { UaTrapError, WasmRuntime, type WasmInstance } from '../../apps/vm-agent/src/runtimes/wasm';
import { UaUnresponsiveError } from '../../apps/vm-agent/src/runtimes/runtime';
import { HUGE_PAGES_ADDON, thpMode } from '../../apps/vm-agent/src/runtimes/wasm/huge-pages';

const UAS = path.resolve(__dirname, '../../apps/vm-agent/uas');
const SAMPLES = ['paint', 'game', 'sensors', 'memory'] as const;
type Sample = (typeof SAMPLES)[number];
const W = 320;
const H = 240;

// ---- helpers -------------------------------------------------------------------------------------

/** Counts calls and lets a test await the next one, with a bound instead of a sleep. */
class Signal<T = void> {
  readonly calls: T[] = [];
  private waiters: Array<(v: T) => void> = [];
  readonly fire = (v: T): void => {
    this.calls.push(v);
    for (const w of this.waiters.splice(0)) w(v);
  };
  get count(): number {
    return this.calls.length;
  }
  next(ms = 2000): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no call within ${ms} ms`)), ms);
      this.waiters.push((v) => {
        clearTimeout(t);
        resolve(v);
      });
    });
  }
}

/** A UVE-4 broker whose answers the test gives. */
class TestBroker {
  readonly requests: Array<{ kind: LocalResourceKind; answer: (a: ResourceAnswer) => void }> = [];
  request = (kind: LocalResourceKind): Promise<ResourceAnswer> => new Promise((answer) => this.requests.push({ kind, answer }));
  pending(kind: LocalResourceKind): (a: ResourceAnswer) => void {
    const r = this.requests.find((x) => x.kind === kind);
    if (!r) throw new Error(`no ${kind} request`);
    return r.answer;
  }
}

class ManualClock {
  t = 0;
  now = (): number => this.t;
}

interface Started {
  inst: WasmInstance;
  damage: Signal;
  exit: Signal<Error | undefined>;
  broker: TestBroker;
}

async function start(runtime: WasmRuntime, dir: string, size = { width: W, height: H }, restoreFollows = false): Promise<Started> {
  const damage = new Signal();
  const exit = new Signal<Error | undefined>();
  const broker = new TestBroker();
  const inst = (await runtime.start({ ua: { uaId: path.basename(dir), version: '1', dir }, ...size, resources: broker, onDamage: () => damage.fire(), onExit: exit.fire, restoreFollows })) as WasmInstance;
  return { inst, damage, exit, broker };
}

/** this process's anonymous memory on transparent huge pages (the guests' threads are in it) */
const anonHugeBytes = (): number => Number(/^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? 0) * 1024;
const sampleDir = (name: Sample): string => path.join(UAS, name, 'build');
const startSample = (runtime: WasmRuntime, name: Sample, size?: { width: number; height: number }, restoreFollows?: boolean): Promise<Started> => start(runtime, sampleDir(name), size, restoreFollows);

function pixel(f: RawFrame, x: number, y: number): [number, number, number] {
  const i = (y * f.width + x) * 4;
  return [f.data[i], f.data[i + 1], f.data[i + 2]];
}

const key = (code: string, key = code): InputEvent => ({ kind: 'key', type: 'down', code, key });
const pointer = (type: 'down' | 'up' | 'move', x: number, y: number): InputEvent => ({ kind: 'pointer', type, x, y, button: 0 });

const SHIP: [number, number, number] = [80, 200, 255];
/** left x of the game's ship: its bottom row is y = height - 25 */
function shipX(f: RawFrame): number {
  for (let x = 0; x < f.width; x++) if (pixel(f, x, f.height - 25).join() === SHIP.join()) return x;
  return -1;
}

function same(a: RawFrame | null, b: RawFrame | null): boolean {
  if (a === null || b === null) return a === b;
  return a.width === b.width && a.height === b.height && Buffer.compare(a.data, b.data) === 0;
}

// ---- hand-assembled modules ----------------------------------------------------------------------

type V = 'i32' | 'f64';
interface Fn {
  name: string;
  params?: V[];
  results?: V[];
  body: number[];
}
interface Import {
  module: string;
  name: string;
  params: V[];
  results: V[];
}

const VAL: Record<V, number> = { i32: 0x7f, f64: 0x7c };
const OP = { unreachable: 0x00, i32const: 0x41 };

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const str = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s)];
const section = (id: number, payload: number[]): number[] => [id, ...uleb(payload.length), ...payload];
const i32 = (n: number): number[] => [OP.i32const, ...sleb(n)];
/** a uve_render body that returns 1 on its first call (the start's) and runs `then` on later ones (flag at address 0) */
const afterFirstRender = (then: number[]): number[] => [
  ...i32(0), 0x28, 0x02, 0x00, // i32.load
  0x04, 0x40, ...then, 0x0b, // if … end
  ...i32(0), ...i32(1), 0x36, 0x02, 0x00, // i32.store
  ...i32(1),
];

/** A module with one memory of `pages`, exported as "memory", and the given functions. */
function wasmModule(fns: Fn[], imports: Import[] = [], pages = 1): Uint8Array {
  const sigs = [...imports, ...fns].map((f) => [0x60, ...vec((f.params ?? []).map((p) => [VAL[p]])), ...vec((f.results ?? []).map((r) => [VAL[r]]))]);
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(sigs)),
    ...(imports.length ? section(2, vec(imports.map((im, i) => [...str(im.module), ...str(im.name), 0, ...uleb(i)]))) : []),
    ...section(3, vec(fns.map((_, i) => uleb(imports.length + i)))),
    ...section(5, vec([[0, ...uleb(pages)]])),
    ...section(7, vec([[...str('memory'), 2, 0], ...fns.map((f, i) => [...str(f.name), 0, ...uleb(imports.length + i)])])),
    ...section(10, vec(fns.map((f) => { const body = [0, ...f.body, 0x0b]; return [...uleb(body.length), ...body]; }))),
  ]);
}

/** The required ABI, with overridable bodies; framebuffer at 1024 in one page (fits 16x16). */
function abiFns(over: Partial<Record<string, number[]>> = {}, extra: Fn[] = []): Fn[] {
  return [
    { name: 'uve_abi_version', results: ['i32'], body: over.uve_abi_version ?? i32(1) },
    { name: 'uve_init', params: ['i32', 'i32'], results: ['i32'], body: over.uve_init ?? i32(1024) },
    { name: 'uve_render', params: ['f64'], results: ['i32'], body: over.uve_render ?? i32(1) },
    ...extra,
  ];
}

const tmpDirs: string[] = [];
function makePackage(manifest: object | null, wasm?: Uint8Array | string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'uve-wasm-'));
  tmpDirs.push(dir);
  if (manifest) writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  if (wasm !== undefined) writeFileSync(path.join(dir, 'app.wasm'), wasm);
  return dir;
}
const MANIFEST = { name: 'x', version: '1', platform: 'WASM', entry: 'app.wasm', requiredResources: [] };

beforeAll(() => {
  for (const s of SAMPLES) {
    if (!existsSync(path.join(sampleDir(s), 'app.wasm'))) throw new Error(`sample ${s} is not built: run npm run build -w @uve/vm-agent`);
  }
});
/** every runtime a test made: a closed UA leaves its guest thread idle in its runtime until the runtime closes */
const runtimes: WasmRuntime[] = [];
function newRuntime(options?: ConstructorParameters<typeof WasmRuntime>[0]): WasmRuntime {
  const r = new WasmRuntime(options);
  runtimes.push(r);
  return r;
}
afterAll(async () => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  await Promise.all(runtimes.map((r) => r.close()));
});

// ---- tests ---------------------------------------------------------------------------------------

describe('WasmRuntime.validatePackage', () => {
  const runtime = newRuntime();

  it('accepts the samples and returns their manifest requirements', async () => {
    await expect(runtime.validatePackage(sampleDir('sensors'))).resolves.toEqual({ requiredResources: ['GEOLOCATION', 'ACCELEROMETER'], minWidth: 320, minHeight: 240 });
    await expect(runtime.validatePackage(sampleDir('paint'))).resolves.toMatchObject({ requiredResources: [] });
    await expect(runtime.validatePackage(sampleDir('game'))).resolves.toMatchObject({ requiredResources: [] });
  });

  it('accepts a minimal hand-made module', async () => {
    await expect(runtime.validatePackage(makePackage(MANIFEST, wasmModule(abiFns())))).resolves.toEqual({ requiredResources: [] });
  });

  it.each([
    ['a missing manifest', () => makePackage(null), /manifest\.json not found/],
    ['a manifest that is not JSON', () => { const d = makePackage(null); writeFileSync(path.join(d, 'manifest.json'), '{nope'); return d; }, /not valid JSON/],
    ['the wrong platform', () => makePackage({ ...MANIFEST, platform: 'LINUX_X11' }, wasmModule(abiFns())), /"platform" must be "WASM" \(got "LINUX_X11"\)/],
    ['an unknown resource kind', () => makePackage({ ...MANIFEST, requiredResources: ['TELEPATHY'] }, wasmModule(abiFns())), /unknown kind "TELEPATHY"/],
    ['an entry outside the package', () => makePackage({ ...MANIFEST, entry: '../app.wasm' }), /inside the package/],
    ['a missing entry file', () => makePackage(MANIFEST), /entry app\.wasm not found/],
    ['an entry that is not WebAssembly', () => makePackage(MANIFEST, 'MZ this is not wasm'), /not a valid WebAssembly module/],
    ['missing required exports', () => makePackage(MANIFEST, wasmModule(abiFns().slice(0, 1))), /missing required export\(s\): uve_init, uve_render/],
    ['a wrong export signature', () => makePackage(MANIFEST, wasmModule([...abiFns().slice(0, 2), { name: 'uve_render', results: ['i32'], body: i32(1) }])), /uve_render must be a function \(f64\)->\(i32\)/],
    ['another ABI version', () => makePackage(MANIFEST, wasmModule(abiFns({ uve_abi_version: i32(2) }))), /ABI version 2; this host supports version 1/],
    ['an import the host does not provide', () => makePackage(MANIFEST, wasmModule(abiFns(), [{ module: 'env', name: 'seed', params: [], results: ['f64'] }])), /imports env\.seed.*seeded PRNG/],
    ['only part of the app-data exports', () => makePackage(MANIFEST, wasmModule(abiFns({}, [{ name: 'uve_app_data_save', results: ['i32'], body: i32(0) }]))), /app-data exports come together/],
  ])('refuses %s', async (_what, make, message) => {
    await expect(runtime.validatePackage(make())).rejects.toThrow(message);
  });

  it('refuses to start below the manifest minimum size', async () => {
    await expect(startSample(runtime, 'sensors', { width: 200, height: 100 })).rejects.toThrow(/at least 320x240/);
  });
});

describe('sample UAs', () => {
  const runtime = newRuntime();

  it.each(SAMPLES)('%s starts and renders a non-blank frame', async (name) => {
    const { inst } = await startSample(runtime, name);
    const f = inst.captureFull();
    expect([f.width, f.height, f.data.length]).toEqual([W, H, W * H * 4]);
    const colours = new Set<number>();
    for (let i = 0; i < f.data.length; i += 4) colours.add(f.data[i] | (f.data[i + 1] << 8) | (f.data[i + 2] << 16));
    expect(colours.size).toBeGreaterThan(2);
    await inst.close();
  });

  it('paint: a pointer down paints the pixel under it in the brush colour (red by default)', async () => {
    const { inst, damage } = await startSample(runtime, 'paint');
    expect(pixel(inst.captureFull(), 100, 100)).toEqual([255, 255, 255]);
    inst.input(pointer('down', 100, 100));
    expect(damage.count).toBe(1);
    const f = inst.capture();
    expect(f).not.toBeNull();
    expect(pixel(f!, 100, 100)).toEqual([255, 0, 0]);
    // a drag continues the stroke
    inst.input(pointer('move', 160, 100));
    expect(pixel(inst.capture()!, 130, 100)).toEqual([255, 0, 0]);
    // the blue swatch (5th) in the palette changes the brush
    inst.input(pointer('up', 160, 100));
    inst.input(pointer('down', 4 + 4 * 30 + 12, H - 16));
    inst.input(pointer('up', 4 + 4 * 30 + 12, H - 16));
    inst.input(pointer('down', 200, 150));
    expect(pixel(inst.capture()!, 200, 150)).toEqual([0, 0, 255]);
    await inst.close();
  });

  it('capture() returns null while nothing changed', async () => {
    const { inst } = await startSample(runtime, 'paint');
    expect(inst.capture()).not.toBeNull(); // first picture
    expect(inst.capture()).toBeNull();
    expect(inst.capture()).toBeNull();
    inst.input({ kind: 'text', text: 'hi' });
    expect(inst.capture()).not.toBeNull();
    expect(inst.capture()).toBeNull();
    // captureFull always gives the picture, and equals the last one
    expect(inst.captureFull().data.length).toBe(W * H * 4);
    await inst.close();
  });

  it('game: each arrow/A/D key press moves the ship by 16 px in the very next frame', async () => {
    const clock = new ManualClock();
    const { inst } = await startSample(newRuntime({ clock: clock.now }), 'game');
    const x0 = shipX(inst.captureFull());
    expect(x0).toBe((W - 32) / 2);
    inst.input(key('ArrowRight'));
    const f1 = inst.capture();
    expect(f1).not.toBeNull();
    expect(shipX(f1!)).toBe(x0 + 16);
    inst.input(key('KeyA', 'a'));
    inst.input(key('KeyA', 'a'));
    expect(shipX(inst.capture()!)).toBe(x0 - 16);
    clock.t += 20;
    inst.input(key('KeyD', 'd'));
    expect(shipX(inst.capture()!)).toBe(x0);
    // a touch puts the ship under the finger
    inst.input({ kind: 'touch', type: 'start', id: 7, x: 50, y: 200 });
    expect(shipX(inst.capture()!)).toBe(50 - 16);
    await inst.close();
  });

  it('a picture stays as it is while the next two are taken (the pictures share three buffers)', async () => {
    const clock = new ManualClock();
    const { inst } = await startSample(newRuntime({ clock: clock.now }), 'game');
    inst.input(key('ArrowLeft')); // starts a round: every render moves the blocks
    const first = inst.capture()!;
    const kept = Uint8Array.from(first.data);
    for (let i = 0; i < 2; i++) {
      inst.input(key('ArrowLeft'));
      clock.t += 33;
      const f = inst.capture();
      expect(same(f, first)).toBe(false);
    }
    expect(Buffer.compare(Buffer.from(first.data), Buffer.from(kept))).toBe(0);
    await inst.close();
  });

  it('game: every key press changes the next picture, even against the wall', async () => {
    const { inst } = await startSample(newRuntime({ clock: new ManualClock().now }), 'game');
    for (let i = 0; i < 20; i++) inst.input(key('ArrowLeft'));
    let prev = inst.captureFull();
    expect(shipX(prev)).toBe(0);
    for (let i = 0; i < 3; i++) {
      inst.input(key('ArrowLeft'));
      const f = inst.capture();
      expect(f).not.toBeNull();
      expect(same(f, prev)).toBe(false);
      prev = f!;
    }
    await inst.close();
  });

  it('sensors: asks for its resources at start and shows answered vs refused in the top-left square', async () => {
    const answered = await startSample(runtime, 'sensors');
    expect(answered.broker.requests.map((r) => r.kind)).toEqual(['GEOLOCATION', 'ACCELEROMETER']);
    let f = answered.inst.captureFull();
    expect(pixel(f, 0, 0)).toEqual([128, 128, 128]);
    expect(pixel(f, 15, 15)).toEqual([128, 128, 128]);

    answered.broker.pending('GEOLOCATION')({ ok: true, value: { kind: 'GEOLOCATION', latitude: 45, longitude: 7.5, accuracy: 10 } });
    await answered.damage.next();
    f = answered.inst.capture()!;
    expect(pixel(f, 0, 0)).toEqual([0, 200, 0]);
    expect(pixel(f, 20, 0)).toEqual([128, 128, 128]); // accelerometer still pending
    // latitude bar: (45 + 90) * 320 / 180 = 240 blue pixels
    expect(pixel(f, 239, 28)).toEqual([0, 0, 255]);
    expect(pixel(f, 240, 28)).toEqual([60, 60, 60]);

    const refused = await startSample(runtime, 'sensors');
    refused.broker.pending('GEOLOCATION')({ ok: false, reason: 'denied by the user' });
    await refused.damage.next();
    f = refused.inst.capture()!;
    expect(pixel(f, 0, 0)).toEqual([200, 0, 0]);
    expect(pixel(f, 8, H - 2)).toEqual([200, 0, 0]); // the red banner
    expect(pixel(f, 100, 28)).toEqual([60, 60, 60]); // no latitude

    // a tap asks again: pending (grey) until the new answer
    refused.inst.input(pointer('down', 100, 100));
    expect(refused.broker.requests.map((r) => r.kind)).toEqual(['GEOLOCATION', 'ACCELEROMETER', 'GEOLOCATION', 'ACCELEROMETER']);
    expect(pixel(refused.inst.capture()!, 0, 0)).toEqual([128, 128, 128]);
    await answered.inst.close();
    await refused.inst.close();
  });
});

describe('a warm runtime (warmThread)', () => {
  it('runs each UA on the guest thread it started ahead, starts the next one after, and stops it on close', async () => {
    const runtime = newRuntime({ warmThread: true, warmThreadDelayMs: 200 });
    try {
      expect(runtime.hasSpareThread).toBe(true);
      const a = await startSample(runtime, 'paint');
      // the UA took the kept thread; the next one starts a while after this start, not beside it
      expect(runtime.hasSpareThread).toBe(false);
      await new Promise((r) => setTimeout(r, 100));
      expect(runtime.hasSpareThread).toBe(false);
      for (let i = 0; i < 100 && !runtime.hasSpareThread; i++) await new Promise((r) => setTimeout(r, 20));
      expect(runtime.hasSpareThread).toBe(true);
      const b = await startSample(runtime, 'paint');
      // each runs on its own thread: input to one paints only that one
      expect(pixel(a.inst.captureFull(), 100, 100)).toEqual([255, 255, 255]);
      expect(pixel(b.inst.captureFull(), 100, 100)).toEqual([255, 255, 255]);
      a.inst.input(pointer('down', 100, 100));
      expect(pixel(a.inst.capture()!, 100, 100)).toEqual([255, 0, 0]);
      expect(b.inst.capture()).toBeNull();
      await Promise.all([a.inst.close(), b.inst.close()]);
      expect(a.exit.count + b.exit.count).toBe(0);
    } finally {
      await runtime.close();
    }
    expect(runtime.hasSpareThread).toBe(false);
  });
});

describe('guest threads kept across UAs (idleThreads)', () => {
  it('a closed UA leaves its thread to the next UA, which starts fresh: no stroke, no app data, its own memory', async () => {
    const runtime = newRuntime({ idleThreads: 1 });
    try {
      const a = await startSample(runtime, 'paint');
      const threadA = a.inst.threadId;
      expect(pixel(a.inst.captureFull(), 100, 100)).toEqual([255, 255, 255]);
      a.inst.input(pointer('down', 100, 100));
      a.inst.input(pointer('move', 160, 100));
      a.inst.input(pointer('up', 160, 100));
      expect(pixel(a.inst.capture()!, 130, 100)).toEqual([255, 0, 0]);
      expect((await a.inst.saveAppData()).length).toBeGreaterThan(0);
      const strokes = await a.inst.saveFullState();
      await a.inst.close();
      for (let i = 0; i < 100 && runtime.idleThreads === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(runtime.idleThreads).toBe(1);

      const b = await startSample(runtime, 'paint');
      // the same thread, a new UA on it: the first UA's stroke is not in its picture nor in its state
      expect(b.inst.threadId).toBe(threadA);
      expect(runtime.idleThreads).toBe(0);
      const first = b.inst.captureFull();
      for (const x of [100, 130, 160]) expect(pixel(first, x, 100)).toEqual([255, 255, 255]);
      const fresh = await startSample(newRuntime({ idleThreads: 0 }), 'paint');
      expect(Buffer.from(await b.inst.saveAppData()).equals(Buffer.from(await fresh.inst.saveAppData()))).toBe(true);
      expect(Buffer.from(await b.inst.saveFullState()).equals(Buffer.from(strokes))).toBe(false);
      expect(Buffer.from(first.data).equals(Buffer.from(fresh.inst.captureFull().data))).toBe(true);
      await fresh.inst.close();
      // and it works as a thread of its own: input paints there
      b.inst.input(pointer('down', 50, 50));
      expect(pixel(b.inst.capture()!, 50, 50)).toEqual([255, 0, 0]);
      await b.inst.close();
      expect(a.exit.count + b.exit.count).toBe(0);
    } finally {
      await runtime.close();
    }
    expect(runtime.idleThreads).toBe(0);
  });

  it('keeps the threads of a burst for a while, then all but one end', async () => {
    const runtime = newRuntime({ idleThreads: 3, idleThreadTtlMs: 300 });
    try {
      const uas = await Promise.all([0, 1, 2].map(() => startSample(runtime, 'paint')));
      expect(new Set(uas.map((u) => u.inst.threadId)).size).toBe(3);
      await Promise.all(uas.map((u) => u.inst.close()));
      for (let i = 0; i < 100 && runtime.idleThreads < 3; i++) await new Promise((r) => setTimeout(r, 20));
      expect(runtime.idleThreads).toBe(3);
      for (let i = 0; i < 100 && runtime.idleThreads > 1; i++) await new Promise((r) => setTimeout(r, 20));
      expect(runtime.idleThreads).toBe(1);
      const next = await startSample(runtime, 'paint');
      expect(uas.map((u) => u.inst.threadId)).toContain(next.inst.threadId);
      await next.inst.close();
    } finally {
      await runtime.close();
    }
  });

  it('a UA that trapped takes its thread with it; with idleThreads 0 every thread ends with its UA', async () => {
    const runtime = newRuntime({ idleThreads: 2 });
    const none = newRuntime({ idleThreads: 0 });
    try {
      const trapOnPointer: Fn = { name: 'uve_pointer', params: ['i32', 'f64', 'f64', 'i32'], body: [OP.unreachable] };
      const a = await start(runtime, makePackage(MANIFEST, wasmModule(abiFns({}, [trapOnPointer]))), { width: 16, height: 16 });
      const exited = a.exit.next();
      a.inst.input(pointer('down', 1, 1));
      expect(await exited).toBeInstanceOf(UaTrapError);
      await a.inst.close();
      expect(runtime.idleThreads).toBe(0);
      const b = await startSample(runtime, 'paint');
      expect(b.inst.threadId).not.toBe(a.inst.threadId);
      await b.inst.close();

      const c = await startSample(none, 'paint');
      await c.inst.close();
      expect(none.idleThreads).toBe(0);
    } finally {
      await Promise.all([runtime.close(), none.close()]);
    }
  });
});

describe('suspend and the frame clock', () => {
  afterEach(() => jest.useRealTimers());

  it('drives onDamage only while the UA animates, one frame per render, never when idle or suspended', async () => {
    jest.useFakeTimers();
    const runtime = newRuntime({ clock: new ManualClock().now });
    const game = await startSample(runtime, 'game');
    const paint = await startSample(runtime, 'paint');
    game.inst.capture();
    paint.inst.capture();
    jest.advanceTimersByTime(1000);
    expect(game.damage.count).toBe(0); // ready screen: idle, no blind clock
    expect(paint.damage.count).toBe(0);

    game.inst.input(key('ArrowLeft')); // starts a round
    expect(game.damage.count).toBe(1);
    game.inst.capture(); // animating: one frame timer, 16 ms (the stream's fps cap paces the rest)
    jest.advanceTimersByTime(15);
    expect(game.damage.count).toBe(1);
    jest.advanceTimersByTime(1);
    expect(game.damage.count).toBe(2);
    jest.advanceTimersByTime(1000); // nobody captured: no further frames
    expect(game.damage.count).toBe(2);

    game.inst.capture();
    game.inst.suspend();
    jest.advanceTimersByTime(1000);
    expect(game.damage.count).toBe(2);
    game.inst.input(key('ArrowLeft')); // dropped
    expect(game.damage.count).toBe(2);
    expect(game.inst.capture()).toBeNull();
    game.inst.resume();
    expect(game.damage.count).toBe(3);
    game.inst.capture();
    jest.advanceTimersByTime(16);
    expect(game.damage.count).toBe(4);
    await game.inst.close();
    jest.advanceTimersByTime(1000);
    expect(game.damage.count).toBe(4);
    await paint.inst.close();
  });

  it('stops the app clock and drops input while suspended', async () => {
    const clock = new ManualClock();
    const { inst } = await startSample(newRuntime({ clock: clock.now }), 'paint');
    clock.t = 1000;
    expect(inst.appTimeMs).toBe(1000);
    inst.suspend();
    clock.t = 6000;
    expect(inst.appTimeMs).toBe(1000);
    inst.input(pointer('down', 50, 50));
    inst.resume();
    clock.t = 6500;
    expect(inst.appTimeMs).toBe(1500);
    expect(pixel(inst.captureFull(), 50, 50)).toEqual([255, 255, 255]);
    await inst.close();
  });

  it('keeps resource answers that arrive while suspended until resume', async () => {
    const { inst, broker, damage } = await startSample(newRuntime(), 'sensors');
    inst.captureFull();
    inst.suspend();
    broker.pending('GEOLOCATION')({ ok: true, value: { kind: 'GEOLOCATION', latitude: 0, longitude: 0, accuracy: 1 } });
    await new Promise((r) => setImmediate(r)); // let the answer's promise settle
    expect(damage.count).toBe(0);
    inst.resume();
    expect(damage.count).toBe(1);
    expect(pixel(inst.capture()!, 0, 0)).toEqual([0, 200, 0]);
    await inst.close();
  });
});

describe('FULL snapshots', () => {
  it('restores a running game on a fresh instance: same bytes, same pixels, same future', async () => {
    const clock = new ManualClock();
    const runtime = newRuntime({ clock: clock.now });
    const a = await startSample(runtime, 'game');
    a.inst.captureFull();
    a.inst.input(key('ArrowRight'));
    let sawBlock = false;
    const hasBlock = (f: RawFrame | null): boolean => {
      if (!f) return false;
      for (let i = 0; i < f.data.length; i += 4) if (f.data[i] === 220 && f.data[i + 1] === 80 && f.data[i + 2] === 40) return true;
      return false;
    };
    for (let i = 0; i < 60; i++) {
      clock.t += 33;
      sawBlock = hasBlock(a.inst.capture()) || sawBlock;
    }
    expect(sawBlock).toBe(true);
    const blob = await a.inst.saveFullState();

    // another "VM": a fresh runtime and instance of the same package
    const b = await startSample(newRuntime({ clock: clock.now }), 'game');
    // restoring takes the blob over (its buffer moves to the guest's thread): restore a copy
    await b.inst.restoreFullState(new Uint8Array(blob));
    expect(Buffer.compare(Buffer.from(await b.inst.saveFullState()), Buffer.from(blob))).toBe(0);
    expect(b.inst.appTimeMs).toBe(a.inst.appTimeMs);
    const fa = a.inst.captureFull();
    expect(same(b.inst.captureFull(), fa)).toBe(true);

    let changed = false;
    for (let i = 0; i < 40; i++) {
      clock.t += 33;
      if (i % 4 === 0) {
        const ev = key(i % 8 === 0 ? 'ArrowLeft' : 'ArrowRight');
        a.inst.input(ev);
        b.inst.input(ev);
      }
      const [x, y] = [a.inst.capture(), b.inst.capture()];
      expect(same(x, y)).toBe(true);
      changed ||= x !== null && !same(x, fa);
    }
    expect(changed).toBe(true);
    await a.inst.close();
    await b.inst.close();
  });

  it('saves the same FULL state into a shared buffer it is lent (the blob a view of it), and into one of its own when that is too small, saying how large it had to be', async () => {
    const clock = new ManualClock();
    const a = await startSample(newRuntime({ clock: clock.now }), 'game');
    a.inst.input(key('ArrowRight'));
    for (let i = 0; i < 5; i++) {
      clock.t += 33;
      a.inst.capture();
    }
    const own = Buffer.from(await a.inst.saveFullState());
    const lent = new Uint8Array(new SharedArrayBuffer(own.length + 4 * 1024 * 1024)).fill(0xa5);
    const timing: { capturedAt?: number } = {};
    const inLent = await a.inst.saveFullState(timing, lent);
    expect(inLent.buffer).toBe(lent.buffer);
    expect(Buffer.from(inLent).equals(own)).toBe(true);
    expect(timing.capturedAt).toBeGreaterThan(Date.now() - 60_000);
    const tooSmall = new Uint8Array(new SharedArrayBuffer(1024));
    const notInIt = await a.inst.saveFullState(undefined, tooSmall);
    expect(notInIt.buffer).not.toBe(tooSmall.buffer);
    expect(Buffer.from(notInIt).equals(own)).toBe(true);
    // what a buffer needs to take it (the caller's kept buffer grows to that): one that large does
    const needed = a.inst.fullStateBytes!;
    expect(needed).toBeGreaterThan(tooSmall.length);
    const justLarge = new Uint8Array(new SharedArrayBuffer(needed));
    expect((await a.inst.saveFullState(undefined, justLarge)).buffer).toBe(justLarge.buffer);
    const oneShort = new Uint8Array(new SharedArrayBuffer(needed - 1));
    expect((await a.inst.saveFullState(undefined, oneShort)).buffer).not.toBe(oneShort.buffer);
    await a.inst.close();
  });

  it('started for a restore (restoreFollows), the UA runs nothing of its own: the restore gives the same state, picture and future; app data starts it first', async () => {
    const clock = new ManualClock();
    const a = await startSample(newRuntime({ clock: clock.now }), 'game');
    a.inst.input(key('ArrowRight'));
    for (let i = 0; i < 10; i++) {
      clock.t += 33;
      a.inst.capture();
    }
    const blob = await a.inst.saveFullState();
    const b = await startSample(newRuntime({ clock: clock.now }), 'game', undefined, true);
    await b.inst.restoreFullState(new Uint8Array(blob));
    expect(Buffer.compare(Buffer.from(await b.inst.saveFullState()), Buffer.from(blob))).toBe(0);
    expect(same(b.inst.captureFull(), a.inst.captureFull())).toBe(true);
    for (let i = 0; i < 8; i++) {
      clock.t += 33;
      const ev = key(i % 2 ? 'ArrowLeft' : 'ArrowUp');
      a.inst.input(ev);
      b.inst.input(ev);
      expect(same(a.inst.capture(), b.inst.capture())).toBe(true);
    }
    await a.inst.close();
    await b.inst.close();

    const p = await startSample(newRuntime(), 'paint');
    p.inst.input(pointer('down', 40, 60));
    p.inst.input(pointer('up', 40, 60));
    const q = await startSample(newRuntime(), 'paint', undefined, true);
    await q.inst.restoreAppData(await p.inst.saveAppData());
    expect(same(q.inst.captureFull(), p.inst.captureFull())).toBe(true);
    await p.inst.close();
    await q.inst.close();
  });

  it('re-asks the new terminal for the requests a snapshot was waiting on', async () => {
    const runtime = newRuntime();
    const a = await startSample(runtime, 'sensors');
    const blob = await a.inst.saveFullState();
    const b = await startSample(runtime, 'sensors');
    const ownRequests = b.broker.requests.length;
    await b.inst.restoreFullState(blob);
    expect(b.broker.requests.slice(ownRequests).map((r) => r.kind)).toEqual(['GEOLOCATION', 'ACCELEROMETER']);
    // the answer to b's own (pre-restore) request is stale and ignored
    b.broker.requests[0].answer({ ok: false, reason: 'denied' });
    b.broker.requests[ownRequests].answer({ ok: true, value: { kind: 'GEOLOCATION', latitude: 10, longitude: 20, accuracy: 5 } });
    await b.damage.next(); // the stale answer settled first and changed nothing
    expect(b.damage.count).toBe(2); // the restore, then the new answer
    expect(pixel(b.inst.capture()!, 0, 0)).toEqual([0, 200, 0]);
    await a.inst.close();
    await b.inst.close();
  });

  it('refuses a snapshot of another module, another screen size, or a damaged blob', async () => {
    const runtime = newRuntime();
    const paint = await startSample(runtime, 'paint');
    const game = await startSample(runtime, 'game');
    const bigGame = await startSample(runtime, 'game', { width: 400, height: 300 });
    const paintBlob = await paint.inst.saveFullState();
    const gameBlob = await game.inst.saveFullState();
    await expect(game.inst.restoreFullState(paintBlob)).rejects.toThrow(/different WASM module/);
    await expect(bigGame.inst.restoreFullState(gameBlob)).rejects.toThrow(/320x240 screen/);
    await expect(game.inst.restoreFullState(gameBlob.subarray(0, gameBlob.length - 10))).rejects.toThrow(/length/);
    await expect(game.inst.restoreFullState(new Uint8Array(100))).rejects.toThrow(/not a WASM FULL snapshot/);
    // memory that inflates to more than the header's page count is refused before it is all
    // inflated: format 1 (one stream for the whole memory), and a format 2 piece
    const C = gameBlob.length - Buffer.from(gameBlob).readUInt32LE(76);
    const pages = Buffer.from(gameBlob).readUInt32LE(72);
    const bigger = deflateSync(Buffer.alloc((pages + 1) * 65536));
    const swollen = Buffer.concat([gameBlob.subarray(0, C), bigger]);
    swollen.writeUInt16LE(1, 4);
    swollen.writeUInt32LE(bigger.length, 76);
    await expect(game.inst.restoreFullState(swollen)).rejects.toThrow(/snapshot memory is corrupt/);
    const pieces = Math.ceil((pages * 65536) / (1024 * 1024));
    const swollenPiece = Buffer.concat([gameBlob.subarray(0, C), Buffer.alloc(8 * pieces), bigger]);
    swollenPiece.writeUInt8(2, C); // piece 0 deflated, the others zero
    swollenPiece.writeUInt32LE(bigger.length, C + 4);
    swollenPiece.writeUInt32LE(8 * pieces + bigger.length, 76);
    await expect(game.inst.restoreFullState(swollenPiece)).rejects.toThrow(/snapshot memory is corrupt: piece at 0/);
    // and a header that claims more memory than this host allows is refused before any inflating
    const huge = Buffer.from(gameBlob);
    huge.writeUInt32LE(1 << 20, 72);
    await expect(game.inst.restoreFullState(huge)).rejects.toThrow(/does not fit this host's limit of 4096/);
    for (const s of [paint, game, bigGame]) await s.inst.close();
  });

  /** renders the memory UA until it is no longer filling or checking (4 MiB a frame); its picture then */
  const settle = (inst: WasmInstance) => {
    const BLUE = String([0, 0, 255]);
    for (let i = 0; i < 50 && String(pixel(inst.captureFull(), 4, 4)) === BLUE; i++) inst.capture();
    return inst.captureFull();
  };
  /** a memory UA filled with `mib` MiB, and its picture */
  const filledMemory = async (runtime: WasmRuntime, mib: number) => {
    const a = await startSample(runtime, 'memory');
    for (const ev of [key(`Digit${mib}`, String(mib)), key('Enter')]) a.inst.input(ev);
    return { a, before: settle(a.inst) };
  };

  it('memory: a state of the MiB its user typed survives a round trip into a fresh instance, every block checked', async () => {
    const runtime = newRuntime({ clock: new ManualClock().now });
    const { a, before } = await filledMemory(runtime, 9);
    expect(pixel(before, 4, 4)).toEqual([128, 128, 128]); // filled, not checked yet
    const blob = await a.inst.saveFullState();
    // the pattern does not compress: the snapshot is as large as the state
    expect(blob.length).toBeGreaterThan(9 * 1024 * 1024);

    const b = await startSample(runtime, 'memory');
    await b.inst.restoreFullState(blob);
    expect(Buffer.from(b.inst.captureFull().data).equals(Buffer.from(before.data))).toBe(true);
    b.inst.input(key('KeyV', 'v'));
    expect(pixel(settle(b.inst), 4, 4)).toEqual([0, 200, 0]); // every block as filled
    // a fresh instance holds nothing: its check finds nothing to doubt, its picture differs
    const c = await startSample(runtime, 'memory');
    expect(Buffer.from(c.inst.captureFull().data).equals(Buffer.from(before.data))).toBe(false);
    for (const s of [a, b, c]) await s.inst.close();
  });

  it('memory: restores the same from a shared download buffer into memory prepared from the header, or from a header of another size', async () => {
    const runtime = newRuntime({ clock: new ManualClock().now });
    const { a, before } = await filledMemory(runtime, 5);
    const blob = await a.inst.saveFullState();
    const empty = await startSample(runtime, 'memory');
    const smaller = await empty.inst.saveFullState(); // its header announces less memory: nothing prepared fits
    await empty.inst.close();
    const pages = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).readUInt32LE(72);
    expect(pages(smaller)).toBeLessThan(pages(blob));
    for (const head of [blob.subarray(0, 80), smaller.subarray(0, 80)]) {
      // as the agent downloads it: into shared memory it keeps for the next download
      const shared = new Uint8Array(new SharedArrayBuffer(blob.length + 4096), 0, blob.length);
      shared.set(blob);
      const b = await startSample(runtime, 'memory');
      b.inst.prepareRestore(head);
      await b.inst.restoreFullState(shared);
      shared.fill(0xee); // the next download: the restored UA no longer reads it
      expect(Buffer.from(b.inst.captureFull().data).equals(Buffer.from(before.data))).toBe(true);
      b.inst.input(key('KeyV', 'v'));
      expect(pixel(settle(b.inst), 4, 4)).toEqual([0, 200, 0]);
      await b.inst.close();
    }
    await a.inst.close();
  });

  it('memory: a restore with the huge pages addon writes the guest memory on 2 MiB pages, one without it on 4 KiB pages; both restore the same state', async () => {
    expect(existsSync(HUGE_PAGES_ADDON)).toBe(true); // built by npm run build (scripts/build-native.js)
    const mode = thpMode();
    const plain = newRuntime({ clock: new ManualClock().now });
    const { a, before } = await filledMemory(plain, 9);
    const blob = await a.inst.saveFullState();
    await a.inst.close();
    const restoreInto = async (runtime: WasmRuntime) => {
      const b = await startSample(runtime, 'memory', undefined, true);
      const huge = anonHugeBytes();
      await b.inst.restoreFullState(blob);
      const grown = anonHugeBytes() - huge;
      expect(Buffer.from(b.inst.captureFull().data).equals(Buffer.from(before.data))).toBe(true);
      b.inst.input(key('KeyV', 'v'));
      expect(pixel(settle(b.inst), 4, 4)).toEqual([0, 200, 0]); // every block as filled
      await b.inst.close();
      return grown;
    };
    const advised = await restoreInto(newRuntime({ clock: new ManualClock().now, hugePagesAddon: HUGE_PAGES_ADDON }));
    const unadvised = await restoreInto(plain);
    const MiB = 1024 * 1024;
    if (mode === 'never') {
      expect([advised, unadvised]).toEqual([0, 0]); // the host gives none: the addon changes nothing
    } else {
      // the 9 MiB written span at least 3 whole 2 MiB pages
      expect(advised).toBeGreaterThanOrEqual(6 * MiB);
      // madvise (Debian's default): nothing else here asks for huge pages, V8 never does for a guest memory
      if (mode === 'madvise') expect(unadvised).toBeLessThan(2 * MiB);
    }
  });
});

describe('app data (NORMAL reconnection)', () => {
  it('paint: strokes and notes survive a round trip into a fresh instance', async () => {
    const runtime = newRuntime();
    const a = await startSample(runtime, 'paint');
    for (const ev of [pointer('down', 40, 60), pointer('move', 120, 90), pointer('up', 120, 90), key('KeyH', 'H'), key('KeyI', 'i'), { kind: 'text', text: '!' } as InputEvent]) a.inst.input(ev);
    const data = await a.inst.saveAppData();
    expect(data.length).toBeGreaterThan(28);
    expect(Buffer.from(data.subarray(0, 4)).toString('latin1')).toBe('PNT1');

    const b = await startSample(runtime, 'paint');
    const blank = b.inst.captureFull();
    await b.inst.restoreAppData(data);
    expect(b.damage.count).toBe(1);
    const restored = b.inst.capture();
    expect(restored).not.toBeNull();
    expect(same(restored, blank)).toBe(false);
    expect(same(restored, a.inst.captureFull())).toBe(true);
    await expect(b.inst.restoreAppData(Uint8Array.from([1, 2, 3, 4]))).rejects.toThrow(/rejected its app data/);
    await a.inst.close();
    await b.inst.close();
  });

  it('is empty for a UA without app-data exports', async () => {
    const { inst } = await startSample(newRuntime(), 'game');
    expect((await inst.saveAppData()).length).toBe(0);
    await expect(inst.restoreAppData(new Uint8Array(0))).resolves.toBeUndefined();
    await inst.close();
  });
});

describe('guest traps', () => {
  const runtime = newRuntime();
  const size = { width: 16, height: 16 };
  const trapOnPointer: Fn = { name: 'uve_pointer', params: ['i32', 'f64', 'f64', 'i32'], body: [OP.unreachable] };

  it('a trap in an input handler calls onExit and throws nothing into the agent', async () => {
    const { inst, exit, damage } = await start(runtime, makePackage(MANIFEST, wasmModule(abiFns({}, [trapOnPointer]))), size);
    expect(inst.capture()).not.toBeNull();
    const exited = exit.next();
    expect(() => inst.input(pointer('down', 1, 1))).not.toThrow();
    const error = await exited;
    expect(error).toBeInstanceOf(UaTrapError);
    expect(error?.message).toMatch(/UA trapped: unreachable/);
    expect(damage.count).toBe(0);
    // the ended UA is inert
    expect(() => inst.input(pointer('down', 1, 1))).not.toThrow();
    expect(inst.capture()).toBeNull();
    expect(inst.captureFull().data.length).toBe(16 * 16 * 4);
    await expect(inst.saveFullState()).rejects.toThrow(/ended/);
    expect(exit.count).toBe(1);
  });

  it('a trap while rendering makes capture() return null and calls onExit once', async () => {
    const { inst, exit } = await start(runtime, makePackage(MANIFEST, wasmModule(abiFns({ uve_render: afterFirstRender([OP.unreachable]) }))), size);
    const exited = exit.next();
    // the first capture is the picture of the start's render: the guest is not called again
    expect(inst.capture()).toMatchObject({ width: size.width, height: size.height });
    expect(exit.count).toBe(0);
    let frame: RawFrame | null = null;
    expect(() => (frame = inst.capture())).not.toThrow();
    expect(frame).toBeNull();
    await expect(exited).resolves.toBeInstanceOf(UaTrapError);
    inst.capture();
    await new Promise((r) => setImmediate(r));
    expect(exit.count).toBe(1);
  });

  it('a trap in the first render (run by start(), under the start budget) makes start() reject', async () => {
    await expect(start(runtime, makePackage(MANIFEST, wasmModule(abiFns({ uve_render: [OP.unreachable] }))), size)).rejects.toThrow(/UA trapped: unreachable/);
  });

  it('a trap in uve_init makes start() reject instead', async () => {
    await expect(start(runtime, makePackage(MANIFEST, wasmModule(abiFns({ uve_init: [OP.unreachable] }))), size)).rejects.toThrow(/failed to start/);
  });

  it('a framebuffer outside memory makes start() reject', async () => {
    await expect(start(runtime, makePackage(MANIFEST, wasmModule(abiFns({ uve_init: i32(65536 - 100) }))), size)).rejects.toThrow(/not inside the UA memory/);
  });
});

describe('watchdog: a guest that does not come back', () => {
  const budget = 300;
  const runtime = newRuntime({ callBudgetMs: budget, startBudgetMs: 1500 });
  const size = { width: 16, height: 16 };
  const LOOP = [0x03, 0x40, 0x0c, 0x00, 0x0b]; // loop br 0 end: never returns
  const hangDir = path.resolve(UAS, 'hang', 'build');

  it('a guest looping in an input handler is given up after its call budget; other guests go on', async () => {
    const hung = await start(runtime, hangDir, { width: 64, height: 48 });
    const other = await startSample(runtime, 'paint');
    expect(pixel(hung.inst.captureFull(), 1, 1)).toEqual([128, 128, 128]);
    hung.inst.input(pointer('down', 1, 1));
    expect(pixel(hung.inst.capture()!, 1, 1)).toEqual([0, 200, 0]); // it follows input until then
    const exited = hung.exit.next(5000);
    const t0 = Date.now();
    expect(() => hung.inst.input(key('KeyH', 'h'))).not.toThrow();
    const waited = Date.now() - t0;
    const error = await exited;
    expect(error).toBeInstanceOf(UaUnresponsiveError);
    expect(error?.message).toBe(`the application did not respond within ${budget} ms`);
    expect(waited).toBeGreaterThanOrEqual(budget - 5);
    // its thread is gone: the ended UA is inert and keeps its last picture
    expect(hung.inst.capture()).toBeNull();
    expect(pixel(hung.inst.captureFull(), 1, 1)).toEqual([0, 200, 0]);
    await expect(hung.inst.saveAppData()).rejects.toThrow(/ended/);
    // another guest of the same runtime still answers
    other.inst.input(pointer('down', 100, 100));
    expect(pixel(other.inst.capture()!, 100, 100)).toEqual([255, 0, 0]);
    expect(hung.exit.count).toBe(1);
    await other.inst.close();
    await hung.inst.close();
  });

  it('a guest looping while rendering ends the same way, once', async () => {
    const { inst, exit } = await start(runtime, makePackage(MANIFEST, wasmModule(abiFns({ uve_render: afterFirstRender(LOOP) }))), size);
    const exited = exit.next(5000);
    expect(inst.capture()).not.toBeNull(); // the start's picture
    expect(inst.capture()).toBeNull();
    await expect(exited).resolves.toBeInstanceOf(UaUnresponsiveError);
    expect(inst.capture()).toBeNull();
    expect(exit.count).toBe(1);
  });

  it('a module whose uve_abi_version never returns is refused at validation, after the start budget', async () => {
    await expect(runtime.validatePackage(makePackage(MANIFEST, wasmModule(abiFns({ uve_abi_version: [...LOOP, ...i32(1)] }))))).rejects.toThrow(
      /cannot be instantiated: it did not return from uve_abi_version\(\) within 1500 ms/,
    );
  });

  it('a guest looping in uve_init makes start() reject after the start budget, without blocking this thread', async () => {
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    try {
      await expect(start(runtime, makePackage(MANIFEST, wasmModule(abiFns({ uve_init: [...LOOP, ...i32(1024)] }))), size)).rejects.toThrow(
        'the application did not respond within 1500 ms',
      );
    } finally {
      clearInterval(ticker);
    }
    expect(ticks).toBeGreaterThan(20); // the event loop kept running while the guest spun
  });
});
