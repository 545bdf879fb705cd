// The agent's chunk hasher (apps/vm-agent/src/vmm/chunk-hasher.ts): each chunk's sha256 of VM Data
// in shared memory, computed on a thread of its own, the same as hashing them one by one here.
import { createHash, randomFillSync } from 'node:crypto';
import { ChunkHasher } from '../../apps/vm-agent/src/vmm/chunk-hasher';

const MiB = 1024 * 1024;
const hashers: ChunkHasher[] = [];
const hasher = () => {
  const h = new ChunkHasher();
  hashers.push(h);
  return h;
};
afterAll(() => Promise.all(hashers.map((h) => h.close())));

function sharedState(bytes: number, offset = 0): Uint8Array {
  const view = new Uint8Array(new SharedArrayBuffer(bytes + offset), offset, bytes);
  randomFillSync(view);
  return view;
}

const oneByOne = (data: Uint8Array, chunk: number) =>
  Array.from({ length: Math.ceil(data.byteLength / chunk) }, (_, i) => createHash('sha256').update(data.subarray(i * chunk, (i + 1) * chunk)).digest().toString('hex'));

it('gives the sha256 of every chunk of shared memory, the last one shorter, at any offset into it', async () => {
  const h = hasher();
  for (const data of [sharedState(3 * MiB + 12345), sharedState(2 * MiB, 4096), sharedState(100)]) {
    const digests = await h.hash(data, MiB)!;
    expect(digests.map((d) => d.toString('hex'))).toEqual(oneByOne(data, MiB));
  }
});

it('leaves memory of its own (not shared) to the caller, and answers several calls at once in their order', async () => {
  const h = hasher();
  expect(h.hash(new Uint8Array(MiB), MiB)).toBeNull();
  const a = sharedState(2 * MiB);
  const b = sharedState(3 * MiB);
  const [da, db] = await Promise.all([h.hash(a, MiB)!, h.hash(b, MiB)!]);
  expect(da.map((d) => d.toString('hex'))).toEqual(oneByOne(a, MiB));
  expect(db.map((d) => d.toString('hex'))).toEqual(oneByOne(b, MiB));
});

it('refuses what it owes when closed, and starts a thread again for the next call', async () => {
  const h = hasher();
  const owed = h.hash(sharedState(64 * MiB), MiB)!;
  await h.close();
  await expect(owed).rejects.toThrow(/closed/);
  const data = sharedState(MiB + 1);
  expect((await h.hash(data, MiB)!).map((d) => d.toString('hex'))).toEqual(oneByOne(data, MiB));
});

it("streams a download's sha256: pieces of shared memory named as they land, in any sizes, give the whole's", async () => {
  const h = hasher();
  const data = sharedState(5 * MiB + 777, 4096);
  const s = h.stream(data)!;
  for (let at = 0; at < data.byteLength;) {
    const n = Math.min(data.byteLength - at, 1 + Math.floor(Math.random() * 1.5 * MiB));
    s.update(data.subarray(at, at + n));
    at += n;
  }
  expect((await s.digest()).toString('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  // nothing named: the sha256 of nothing
  expect((await h.stream(sharedState(10))!.digest()).toString('hex')).toBe(createHash('sha256').digest('hex'));
});

it('streams nothing of memory of its own, refuses a piece of another buffer, and refuses the digest of a hash given up or owed when closed', async () => {
  const h = hasher();
  expect(h.stream(new Uint8Array(16))).toBeNull();
  const s = h.stream(sharedState(MiB))!;
  expect(() => s.update(sharedState(16))).toThrow(/its own buffer/);
  s.abort();
  await expect(s.digest()).rejects.toThrow(/given up/);
  const data = sharedState(8 * MiB);
  const owed = h.stream(data)!;
  owed.update(data);
  const refused = expect(owed.digest()).rejects.toThrow(/closed/);
  await h.close();
  await refused;
});
