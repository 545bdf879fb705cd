// Restores prepared ahead (apps/vm-agent/src/sessions/restores-ahead.ts) with the real WASM runtime
// and the sample UAs: the prepared UA holds the saved state, frozen until a reconnection takes it
// (its app clock does not run meanwhile), hands its resource requests to the session that takes it,
// and is dropped (closed) when the reconnection does not fit, when it expires, or when it failed.
import * as path from 'node:path';
import type { LocalResourceKind, PrepareRestoreCommand } from '@uve/protocol';
import { WasmRuntime, type WasmInstance } from '../../apps/vm-agent/src/runtimes/wasm';
import type { RawFrame, ResourceAnswer } from '../../apps/vm-agent/src/runtimes/runtime';
import { RestoresAhead, type RestoreAheadKey, type RestoresAheadDeps } from '../../apps/vm-agent/src/sessions/restores-ahead';
import type { FetchedVmData } from '../../apps/vm-agent/src/vmm/vm-data';

const UAS = path.resolve(__dirname, '../../apps/vm-agent/uas');
const W = 320;
const H = 240;

class ManualClock {
  t = 0;
  now = (): number => this.t;
}

/** log lines, and a wait for one with a bound */
class LogTap {
  readonly lines: string[] = [];
  private waiters: { re: RegExp; done: () => void }[] = [];
  private readonly write = (msg: string, fields?: object) => {
    msg = `${msg} | ${JSON.stringify(fields ?? {})}`;
    this.lines.push(msg);
    for (const w of this.waiters.filter((x) => x.re.test(msg))) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.done();
    }
  };
  readonly log = { debug: this.write, info: this.write, warn: this.write, error: this.write, child: () => this.log };
  when(re: RegExp, ms = 5000): Promise<void> {
    if (this.lines.some((l) => re.test(l))) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no log line ${re} within ${ms} ms: ${this.lines.join(' | ')}`)), ms);
      this.waiters.push({ re, done: () => (clearTimeout(t), resolve()) });
    });
  }
}

const runtimes: WasmRuntime[] = [];
afterAll(() => Promise.all(runtimes.map((r) => r.close())));

function setup(sample: 'game' | 'sensors', fetch: RestoresAheadDeps['fetchVmData'], hosts?: (sessionId: string) => boolean) {
  const clock = new ManualClock();
  const runtime = new WasmRuntime({ clock: clock.now });
  runtimes.push(runtime);
  const tap = new LogTap();
  const dir = path.join(UAS, sample, 'build');
  const ahead = new RestoresAhead({
    runtime,
    resolveUa: async (uaId, version) => {
      if (uaId !== sample || version !== '1') throw new Error(`UA ${uaId} is deployed in version 1 on this VM, not ${version}`);
      return { uaId, version, dir };
    },
    fetchVmData: fetch,
    max: 2,
    hosts,
    log: tap.log as never,
  });
  return { clock, runtime, tap, ahead, dir };
}

const command = (sample: string, over: Partial<PrepareRestoreCommand> = {}): PrepareRestoreCommand => ({
  type: 'vmdata.prepareRestore', sessionId: 's1', snapshotId: 'snap1', uaId: sample, uaVersion: '1', width: W, height: H, codec: 'MJPEG', holdMs: 60_000, ...over,
});
const keyOf = (sample: string, over: Partial<RestoreAheadKey> = {}): RestoreAheadKey => ({ snapshotId: 'snap1', uaId: sample, uaVersion: '1', width: W, height: H, pixelFormat: 'rgba', ...over });
const full = (blob: Uint8Array): FetchedVmData => ({ kind: 'FULL', data: new Uint8Array(blob), release: () => undefined });
const same = (a: RawFrame, b: RawFrame): boolean => a.width === b.width && Buffer.compare(a.data, b.data) === 0;

/** a game played for a while on "the old VM": its FULL state and its picture */
async function playedGame(runtime: WasmRuntime, clock: ManualClock, dir: string): Promise<{ blob: Uint8Array; picture: RawFrame; appTimeMs: number; close: () => Promise<void> }> {
  const a = (await runtime.start({ ua: { uaId: 'game', version: '1', dir }, width: W, height: H, resources: { request: () => new Promise(() => undefined) }, onDamage: () => undefined, onExit: () => undefined })) as WasmInstance;
  a.input({ kind: 'key', type: 'down', code: 'ArrowRight', key: 'ArrowRight' });
  for (let i = 0; i < 30; i++) {
    clock.t += 33;
    a.capture();
  }
  const blob = await a.saveFullState();
  return { blob, picture: { ...a.captureFull(), data: Buffer.from(a.captureFull().data) }, appTimeMs: a.appTimeMs, close: () => a.close() };
}

/** setup('game') whose VMM serves the FULL state of a game played on "the old VM"; `fetches`: downloads so far */
async function setupWithPlayedGame() {
  let fetches = 0;
  let blob!: Uint8Array;
  const s = setup('game', async () => (fetches++, full(blob)));
  const old = await playedGame(s.runtime, s.clock, s.dir);
  blob = old.blob;
  return { ...s, old, fetches: () => fetches };
}

it('holds the restored game frozen until it is taken: the same picture, the app clock where it stopped', async () => {
  const { clock, tap, ahead, old, fetches } = await setupWithPlayedGame();
  ahead.prepare(command('game'));
  ahead.prepare(command('game')); // a repeat (the VMM re-sent it) prepares nothing more
  await tap.when(/^restore prepared ahead \|/);
  clock.t += 10_000; // the user is away 10 s: the frozen UA's clock does not run
  const taken = ahead.take('s1', keyOf('game'));
  expect(taken).not.toBeNull();
  const prepared = (await taken)!;
  expect(prepared.fetchedAt).toBeGreaterThanOrEqual(prepared.startedAt);
  expect(prepared.readyAt).toBeGreaterThanOrEqual(prepared.fetchedAt);
  const damaged: number[] = [];
  const inst = prepared.bind({ resources: { request: () => new Promise(() => undefined) }, onDamage: () => damaged.push(1), onExit: () => undefined }) as WasmInstance;
  inst.resume();
  expect(inst.appTimeMs).toBe(old.appTimeMs);
  expect(same(inst.captureFull(), old.picture)).toBe(true);
  expect(damaged.length).toBeGreaterThan(0); // the resume's damage reaches the session that took it
  expect(fetches()).toBe(1);
  expect(ahead.take('s1', keyOf('game'))).toBeNull(); // taken once
  expect(ahead.stats()).toEqual({ preparing: 0, ready: 0, taken: 1, dropped: 0, failed: 0 });
  await inst.close();
  await old.close();
});

/** `p`, or a rejection naming `what` after `ms` */
const within = <T>(what: string, ms: number, p: Promise<T>): Promise<T> => {
  let t!: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
};

it("prepares the UA for the state by the head the VMM kept, before the download's first bytes; by those bytes when it kept none", async () => {
  for (const kept of [true, false]) {
    let old!: Awaited<ReturnType<typeof playedGame>>;
    // the download gives its first bytes and the rest only when the test says
    let deliver!: () => void;
    const delivered = new Promise<void>((resolve) => (deliver = resolve));
    const s = setup('game', async (_id, onFirstBytes) => {
      await delivered;
      onFirstBytes?.(old.blob.subarray(0, 4096));
      return full(old.blob);
    });
    old = await playedGame(s.runtime, s.clock, s.dir);
    // the started UA's prepareRestore calls, as they come
    const heads: Uint8Array[] = [];
    let prepared!: () => void;
    const preparing = new Promise<void>((resolve) => (prepared = resolve));
    const start = s.runtime.start.bind(s.runtime);
    s.runtime.start = async (o) => {
      const inst = await start(o);
      const own = inst.prepareRestore!.bind(inst);
      inst.prepareRestore = (head) => {
        heads.push(Buffer.from(head));
        prepared();
        own(head);
      };
      return inst;
    };
    const head = Buffer.from(old.blob.subarray(0, 256));
    s.ahead.prepare(command('game', kept ? { head: head.toString('base64') } : {}));
    if (kept) await within('prepareRestore before the first bytes', 10_000, preparing);
    expect(heads).toHaveLength(kept ? 1 : 0);
    deliver();
    await s.tap.when(/^restore prepared ahead \|/, 10_000);
    // once, by the VMM's head or by the first bytes: the same 256 bytes
    expect(heads).toEqual([head]);
    const inst = (await s.ahead.take('s1', keyOf('game')))!.bind({ resources: { request: () => new Promise(() => undefined) }, onDamage: () => undefined, onExit: () => undefined }) as WasmInstance;
    inst.resume();
    expect(same(inst.captureFull(), old.picture)).toBe(true);
    await inst.close();
    await old.close();
  }
});

it('drops the prepared UA when the reconnection does not fit it (another snapshot or size), and when it expires', async () => {
  const { tap, ahead, old } = await setupWithPlayedGame();
  ahead.prepare(command('game'));
  expect(ahead.take('s1', keyOf('game', { snapshotId: 'snap2' }))).toBeNull();
  await tap.when(/dropped/);
  expect(ahead.size).toBe(0);
  ahead.prepare(command('game'));
  expect(ahead.take('s1', keyOf('game', { width: 640 }))).toBeNull();
  expect(ahead.size).toBe(0);
  // not taken within holdMs
  tap.lines.length = 0;
  ahead.prepare(command('game', { holdMs: 1 }));
  await tap.when(/dropped/);
  expect(ahead.take('s1', keyOf('game'))).toBeNull();
  // a UA of a version not installed here: nothing to take
  ahead.prepare(command('game', { uaVersion: '2' }));
  expect(await ahead.take('s1', keyOf('game', { uaVersion: '2' }))).toBeNull();
  expect(tap.lines.join('\n')).toMatch(/not 2/);
  await old.close();
});

it('gives nothing for a snapshot that cannot be restored (not FULL, or a failed download): the reconnection restores as usual', async () => {
  let answer: () => Promise<FetchedVmData> = async () => ({ kind: 'APP_DATA', data: new Uint8Array(4), release: () => undefined });
  const { tap, ahead } = setup('game', () => answer());
  ahead.prepare(command('game'));
  expect(await ahead.take('s1', keyOf('game'))).toBeNull();
  expect(tap.lines.join('\n')).toMatch(/not FULL/);
  answer = () => Promise.reject(new Error('VM Data checksum mismatch'));
  ahead.prepare(command('game'));
  expect(await ahead.take('s1', keyOf('game'))).toBeNull();
  expect(tap.lines.join('\n')).toMatch(/checksum mismatch/);
  // failed before any reconnection came: nothing is held, a reconnection finds nothing to wait for
  tap.lines.length = 0;
  ahead.prepare(command('game', { snapshotId: 'snap2' }));
  expect(ahead.counts()).toEqual({ preparing: 1, ready: 0 });
  await tap.when(/not prepared.*checksum mismatch/);
  expect(ahead.counts()).toEqual({ preparing: 0, ready: 0 });
  expect(ahead.take('s1', keyOf('game', { snapshotId: 'snap2' }))).toBeNull();
  // the two taken while under way, and this one
  expect(ahead.stats()).toMatchObject({ taken: 0, failed: 3 });
});

it('asks the terminal of the session that takes it for the resources the snapshot waited on, not before', async () => {
  let blob!: Uint8Array;
  const { runtime, tap, ahead, dir } = setup('sensors', async () => full(blob));
  const a = (await runtime.start({ ua: { uaId: 'sensors', version: '1', dir }, width: W, height: H, resources: { request: () => new Promise(() => undefined) }, onDamage: () => undefined, onExit: () => undefined })) as WasmInstance;
  blob = await a.saveFullState();
  ahead.prepare(command('sensors'));
  await tap.when(/^restore prepared ahead \|/);
  const prepared = (await ahead.take('s1', keyOf('sensors')))!;
  const asked: LocalResourceKind[] = [];
  const inst = prepared.bind({
    resources: { request: (kind): Promise<ResourceAnswer> => (asked.push(kind), new Promise(() => undefined)) },
    onDamage: () => undefined,
    onExit: () => undefined,
  });
  await new Promise((r) => setImmediate(r));
  expect(asked).toEqual(['GEOLOCATION', 'ACCELEROMETER']);
  await inst.close();
  await a.close();
});

it('keeps at most `max` prepared UAs (a further one drops the oldest) and closes them all when the VM stops', async () => {
  const { tap, ahead, old } = await setupWithPlayedGame();
  for (const id of ['s1', 's2', 's3']) ahead.prepare(command('game', { sessionId: id }));
  expect(ahead.size).toBe(2);
  expect(ahead.take('s1', keyOf('game'))).toBeNull();
  await ahead.close();
  expect(ahead.size).toBe(0);
  expect(tap.lines.filter((l) => /dropped/.test(l))).toHaveLength(3);
  await old.close();
});

it('prepares nothing for a session that runs on this VM already (its session.prepare came first)', async () => {
  let fetches = 0;
  const { tap, ahead } = setup('game', async () => (fetches++, full(new Uint8Array(8))), (id) => id === 's1');
  ahead.prepare(command('game'));
  expect(ahead.size).toBe(0);
  expect(fetches).toBe(0);
  expect(tap.lines.join('\n')).toMatch(/runs here already/);
});
