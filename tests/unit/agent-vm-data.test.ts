// The agent refuses VM Data whose bytes do not hash to the sha256 the VMM recorded (corruption in the
// store or on the way), so a restore never feeds damaged state to a UA.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GROWN_IDLE_MS, VmDataBuffer, VmDataClient, verifyVmData } from '../../apps/vm-agent/src/vmm/vm-data';

const bytes = Buffer.from('the state of a UA');
const sha = createHash('sha256').update(bytes).digest('hex');

it('accepts bytes that match their sha256 (either case)', () => {
  expect(() => verifyVmData(bytes, sha)).not.toThrow();
  expect(() => verifyVmData(bytes, sha.toUpperCase())).not.toThrow();
});

it('refuses a flipped byte, a missing checksum and a wrong one', () => {
  const flipped = Buffer.from(bytes);
  flipped[3] ^= 0xff;
  expect(() => verifyVmData(flipped, sha)).toThrow(/checksum mismatch: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}/);
  expect(() => verifyVmData(bytes, null)).toThrow(/expected sha256 \(none\)/);
  expect(() => verifyVmData(bytes, 'ab'.repeat(32))).toThrow(/checksum mismatch/);
});

describe('VmDataBuffer', () => {
  it('gives one download at a time the kept shared buffer, the same again after release, others buffers of their own', () => {
    const buffers = new VmDataBuffer(1024);
    buffers.warm();
    const a = buffers.take(100);
    expect(a.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(a.data.byteLength).toBe(100);
    const meanwhile = buffers.take(100);
    expect(meanwhile.data.buffer).not.toBe(a.data.buffer);
    expect(buffers.take(2048).data.byteLength).toBe(2048); // larger than kept: its own
    a.release();
    a.release(); // twice is once
    const b = buffers.take(1000);
    expect(b.data.buffer).toBe(a.data.buffer);
    expect(buffers.take(10).data.buffer).not.toBe(a.data.buffer); // b still holds it
    b.release();
    expect(buffers.take(10).data.buffer).toBe(a.data.buffer);
  });

  it('lends a save the whole kept buffer, or nothing while a download or another save has it', () => {
    const buffers = new VmDataBuffer(1024);
    const save = buffers.takeKept()!;
    expect(save.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(save.data.byteLength).toBe(1024);
    expect(buffers.takeKept()).toBeNull();
    expect(buffers.take(10).data.buffer).not.toBe(save.data.buffer);
    save.release();
    const download = buffers.take(10);
    expect(download.data.buffer).toBe(save.data.buffer);
    expect(buffers.takeKept()).toBeNull();
    download.release();
    expect(buffers.takeKept()!.data.buffer).toBe(save.data.buffer);
    expect(new VmDataBuffer(0).takeKept()).toBeNull();
  });

  it('grows to a larger state up to its limit: a download at once, a save that did not fit once released', () => {
    const buffers = new VmDataBuffer(1024, 4096);
    const big = buffers.take(3000);
    expect(big.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    big.release();
    const again = buffers.take(3000);
    expect(again.data.buffer).toBe(big.data.buffer);
    again.release();
    expect(buffers.take(5000).data.byteLength).toBe(5000); // over the limit: a buffer of its own
    const saves = new VmDataBuffer(1024, 4096);
    const save = saves.takeKept()!;
    expect(save.data.byteLength).toBe(1024);
    save.outgrown(3500); // the state needed 3500 bytes and went into a buffer of its own
    expect(saves.takeKept()).toBeNull(); // still held
    save.release();
    const next = saves.takeKept()!;
    expect(next.data.byteLength).toBe(3500);
    next.outgrown(9000); // past the limit: no growth
    next.release();
    expect(saves.takeKept()!.data.byteLength).toBe(3500);
  });

  it('lets a grown buffer go after it went unused a while, and keeps the base one', () => {
    jest.useFakeTimers();
    try {
      const buffers = new VmDataBuffer(1024, 4096);
      const big = buffers.take(3000);
      big.release();
      jest.advanceTimersByTime(GROWN_IDLE_MS - 1);
      const again = buffers.take(3000);
      expect(again.data.buffer).toBe(big.data.buffer); // taken in time: kept, and the clock starts over
      again.release();
      jest.advanceTimersByTime(GROWN_IDLE_MS);
      const after = buffers.takeKept()!;
      expect(after.data.buffer).not.toBe(big.data.buffer);
      expect(after.data.byteLength).toBe(1024);
      after.release();
      jest.advanceTimersByTime(GROWN_IDLE_MS);
      expect(buffers.takeKept()!.data.buffer).toBe(after.data.buffer); // the base size is never let go
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('a download (UVE-5 retrieve) from a real HTTP server', () => {
  const MiB = 1024 * 1024;
  const state = randomBytes(6 * MiB + 123);
  let claimed = createHash('sha256').update(state).digest('hex');
  let server: http.Server;
  let client: VmDataClient;
  beforeAll(async () => {
    // the VMM's answer: the bytes a MiB at a time, as the gateway writes its chunks
    server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(state.length), 'x-uve-snapshot-kind': 'FULL', 'x-uve-sha256': claimed });
      for (let at = 0; at < state.length; at += MiB) res.write(state.subarray(at, at + MiB));
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    client = new VmDataClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'vm', 'secret', new VmDataBuffer(8 * MiB));
  });
  afterAll(async () => {
    await client.close();
    await new Promise((r) => server.close(r));
  });

  it("checks the bytes' sha256 in the kept shared buffer (hashed on the hasher's thread) and in one of its own (here), and refuses a mismatch in either", async () => {
    // two at once: the first has the kept (shared) buffer, the second a buffer of its own
    const [kept, own] = await Promise.all([client.download('a'), client.download('b')]);
    expect(kept.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(own.data.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    for (const d of [kept, own]) {
      expect(d.kind).toBe('FULL');
      expect(Buffer.from(d.data).equals(state)).toBe(true);
      d.release();
    }
    claimed = createHash('sha256').update('other bytes').digest('hex');
    const refused = await Promise.allSettled([client.download('a'), client.download('b')]);
    for (const r of refused) expect(r).toMatchObject({ status: 'rejected', reason: { message: expect.stringMatching(/checksum mismatch/) } });
    // the kept buffer was given back by the refused download: the next one has it again
    claimed = createHash('sha256').update(state).digest('hex');
    const again = await client.download('a');
    expect(again.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    again.release();
  });
});
