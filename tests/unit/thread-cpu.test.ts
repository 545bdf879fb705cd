// The agent's view of one thread's CPU (apps/vm-agent/src/runtimes/wasm/thread-cpu.ts): a call into
// a WASM guest that overruns its budget waits on only while the guest's thread is starved. Real
// threads here: one blocked (no CPU, like a thread the machine does not run) and this one spinning.
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { starvedOver, threadCpuMs } from '../../apps/vm-agent/src/runtimes/wasm/thread-cpu';

const ownTid = () => Number(fs.readlinkSync('/proc/thread-self').split('/').pop());

it('counts the CPU a spinning thread uses', () => {
  const tid = ownTid();
  const before = threadCpuMs(tid)!;
  expect(before).toBeGreaterThan(0); // this thread has run already
  // spins until its CPU time moves (in clock ticks of 10 ms), however loaded the machine
  const end = Date.now() + 10_000;
  let now = before;
  while (now === before && Date.now() < end) now = threadCpuMs(tid)!;
  expect(now).toBeGreaterThan(before);
});

it('sees a thread that is not running (here blocked) as starved', async () => {
  const shared = new SharedArrayBuffer(8);
  const ctl = new Int32Array(shared);
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const ctl = new Int32Array(workerData);
     ctl[1] = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
     Atomics.notify(ctl, 1);
     Atomics.wait(ctl, 0, 0);`,
    { eval: true, workerData: shared },
  );
  try {
    const deadline = Date.now() + 10_000;
    while (!Atomics.load(ctl, 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const tid = Atomics.load(ctl, 1);
    expect(tid).toBeGreaterThan(0);
    expect(tid).not.toBe(ownTid());
    const cpu0 = threadCpuMs(tid)!;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 200));
    const cpu1 = threadCpuMs(tid)!;
    expect(starvedOver(cpu1 - cpu0, Date.now() - t0)).toBe(true);
  } finally {
    Atomics.store(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    await worker.terminate();
  }
});

it('judges from the share of the stretch the thread ran, and never without a measure', () => {
  expect(starvedOver(0, 250)).toBe(true);
  expect(starvedOver(120, 250)).toBe(true);
  expect(starvedOver(125, 250)).toBe(false);
  expect(starvedOver(250, 250)).toBe(false);
  expect(starvedOver(null, 250)).toBe(false);
});

it('says nothing of a thread that does not exist', () => {
  expect(threadCpuMs(0x7fffffff)).toBeNull();
});
