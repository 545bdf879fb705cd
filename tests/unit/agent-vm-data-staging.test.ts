// A NO_LOSS session's VM Data staged ahead (sessions/session-vm-data.ts): the save at a drop goes as
// a delta against what the VMM holds staged, and whole when the VMM refuses the delta (a staged
// chunk gone) or nothing is known to be staged. A restore's download gives the UA the snapshot's head
// to prepare by. Stubs for the VMM and the UA: the calls are what count.
import { SessionVmData } from '../../apps/vm-agent/src/sessions/session-vm-data';
import type { SessionDeps } from '../../apps/vm-agent/src/sessions/session';
import type { UaInstance } from '../../apps/vm-agent/src/runtimes/runtime';

const log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => log };

function setup(stagedAtStart?: unknown) {
  const calls: string[] = [];
  let refuseDelta = false;
  const stored = (kind: 'FULL' | 'APP_DATA', data: Uint8Array) => ({ snapshotId: 'snap', kind, sizeBytes: data.byteLength, sha256: '0'.repeat(64) });
  const deps: Pick<SessionDeps, 'storeVmData' | 'fetchVmData' | 'vmDataBuffer' | 'vmDataDeltas'> = {
    storeVmData: async (_id, kind, data) => {
      calls.push('whole');
      return stored(kind, data);
    },
    vmDataDeltas: {
      stage: async (_id, _data, staged) => {
        calls.push(`stage against ${staged.size}`);
        return { staged: new Set(['a', 'b', 'c']), sent: 3 - staged.size, chunks: 3 };
      },
      uploadDelta: async (_id, kind, data, staged) => {
        calls.push(`delta against ${staged.size}`);
        if (refuseDelta) throw new Error('VM Data delta refused: 409 NOT_STAGED');
        return stored(kind, data);
      },
    },
  };
  const vmData = new SessionVmData('session', deps, {}, () => undefined, log as never, stagedAtStart as string[] | undefined);
  const instance = { saveFullState: async () => new Uint8Array(3 * 1024 * 1024), saveAppData: async () => new Uint8Array(1) } as unknown as UaInstance;
  return { calls, deps, vmData, instance, refuse: () => (refuseDelta = true) };
}

async function staged(calls: string[], n: number): Promise<void> {
  for (const until = Date.now() + 5000; calls.filter((c) => c.startsWith('stage')).length < n;) {
    if (Date.now() > until) throw new Error(`no staging after 5 s: ${calls.join(', ')}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

it('stages while the UA is live, against what it staged before, and saves a delta against that', async () => {
  const { calls, vmData, instance } = setup();
  let live: UaInstance | null = null;
  vmData.startStaging(() => live, 10);
  await new Promise((r) => setTimeout(r, 50));
  expect(calls).toEqual([]); // no PLAYER: nothing staged
  live = instance;
  await staged(calls, 2);
  vmData.stopStaging();
  expect(calls.slice(0, 2)).toEqual(['stage against 0', 'stage against 3']);
  calls.length = 0;
  expect(await vmData.save(instance, 'NO_LOSS')).toMatchObject({ kind: 'FULL' });
  expect(calls).toEqual(['delta against 3']);
});

it('saves whole when the VMM refuses the delta, and whole again until something is staged anew', async () => {
  const { calls, vmData, instance, refuse } = setup();
  vmData.startStaging(() => instance, 10);
  await staged(calls, 1);
  vmData.stopStaging();
  refuse();
  calls.length = 0;
  expect(await vmData.save(instance, 'NO_LOSS')).toMatchObject({ kind: 'FULL' });
  expect(calls).toEqual(['delta against 3', 'whole']);
  calls.length = 0;
  await vmData.save(instance, 'NO_LOSS');
  expect(calls).toEqual(['whole']);
});

it('saves the application data of a NORMAL session whole, staged or not', async () => {
  const { calls, vmData, instance } = setup();
  vmData.startStaging(() => instance, 10);
  await staged(calls, 1);
  vmData.stopStaging();
  calls.length = 0;
  expect(await vmData.save(instance, 'NORMAL')).toMatchObject({ kind: 'APP_DATA' });
  expect(calls).toEqual(['whole']);
});

const SHA = (c: string) => c.repeat(64);

it('takes the VM Data it restores as staged from the start: its first staging and a save before it go as deltas against it', async () => {
  const restored = [SHA('a'), SHA('b')];
  const first = setup(restored);
  expect(await first.vmData.save(first.instance, 'NO_LOSS')).toMatchObject({ kind: 'FULL' });
  expect(first.calls).toEqual(['delta against 2']);
  const second = setup(restored);
  second.vmData.startStaging(() => second.instance, 10);
  await staged(second.calls, 1);
  second.vmData.stopStaging();
  expect(second.calls[0]).toBe('stage against 2');
});

it('ignores a staged set from the VMM that is not sha256s in hex', async () => {
  for (const bad of [['nope'], [SHA('A')], [SHA('a'), 7], 'abc', []]) {
    const { calls, vmData, instance } = setup(bad);
    await vmData.save(instance, 'NO_LOSS');
    expect(calls).toEqual(['whole']);
  }
});

it('tells the kept buffer a FULL state that did not fit it, so that it grows for the next save', async () => {
  const { vmData, deps } = setup();
  const told: number[] = [];
  deps.vmDataBuffer = () => ({ data: new Uint8Array(new SharedArrayBuffer(1024)), outgrown: (n: number) => void told.push(n), release: () => undefined });
  const fits = { saveFullState: async () => new Uint8Array(10), fullStateBytes: 1000 } as unknown as UaInstance;
  await vmData.save(fits, 'NO_LOSS');
  expect(told).toEqual([]);
  const larger = { saveFullState: async () => new Uint8Array(10), fullStateBytes: 5000 } as unknown as UaInstance;
  await vmData.save(larger, 'NO_LOSS');
  expect(told).toEqual([5000]);
});

it("gives a restore's head at once when the VMM kept it (session.prepare's restoreHead), else the download's first bytes", async () => {
  const { deps, vmData } = setup();
  const bytes = Buffer.alloc(4096, 7);
  let firstBytes!: () => void;
  deps.fetchVmData = (_id, onFirstBytes) => new Promise((resolve) => (firstBytes = () => {
    onFirstBytes?.(bytes);
    resolve({ kind: 'FULL', data: bytes, release: () => undefined });
  }));
  const kept = Buffer.alloc(256, 1);
  const withHead = vmData.download('snap', kept);
  expect(await withHead.head).toBe(kept); // before any byte came
  firstBytes();
  await withHead.fetched;
  expect(await withHead.head).toBe(kept);
  const without = vmData.download('snap');
  let head: Uint8Array | null = null;
  void without.head.then((h) => (head = h));
  await new Promise((r) => setImmediate(r));
  expect(head).toBeNull();
  firstBytes();
  expect(await without.head).toEqual(bytes.subarray(0, 256));
});
