// VmDataStore.open: each chunk goes out as soon as it checked out, but the last, which waits for the
// whole snapshot's check (size and chunk order): a reader never gets all the bytes of a snapshot that
// does not add up, and gets the others without waiting for the next chunk's read.
import { createHash, randomBytes } from 'node:crypto';
import { manifestSha256, VmDataStore, VmDataStoreError, type ChunkStore, type StoredChunk } from '../../apps/gateway/src/modules/snapshots/vm-data-store';

/** a store holding `parts` as one snapshot's chunks, counting the reads the consumer caused */
function storeOf(parts: Buffer[]) {
  const reads = { n: 0 };
  const chunks = {
    storageKey: 'test',
    async *read(): AsyncGenerator<StoredChunk> {
      for (const [seq, data] of parts.entries()) {
        reads.n++;
        const sum = createHash('sha256').update(data).digest();
        yield { seq, address: sum, data, nonce: null, aad: null, sha256: sum };
      }
    },
  } as unknown as ChunkStore;
  const manifest = manifestSha256();
  for (const p of parts) manifest.add(createHash('sha256').update(p).digest());
  const ref = { id: 's1', sizeBytes: parts.reduce((n, p) => n + p.length, 0), sha256: '', manifestSha256: manifest.digest(), encryptionKeyId: null };
  return { store: new VmDataStore(chunks, null), reads, ref };
}

it('gives out every chunk but the last before reading the next; the last once all were read and checked', async () => {
  const parts = [randomBytes(1000), randomBytes(1000), randomBytes(500)];
  const { store, reads, ref } = storeOf(parts);
  const it = await store.open(ref);
  const readsAt: number[] = [];
  const got: Buffer[] = [];
  for await (const b of it) {
    readsAt.push(reads.n);
    got.push(b);
  }
  expect(readsAt).toEqual([1, 2, 3]);
  expect(Buffer.concat(got).equals(Buffer.concat(parts))).toBe(true);
});

it('keeps the last chunk back when the chunk order does not add up, and when there are more bytes than stored', async () => {
  const parts = [randomBytes(1000), randomBytes(1000), randomBytes(500)];
  for (const bad of [{ manifestSha256: 'f'.repeat(64) }, { sizeBytes: 2000 }]) {
    const { store, ref } = storeOf(parts);
    const got: Buffer[] = [];
    const reading = (async () => {
      for await (const b of await store.open({ ...ref, ...bad })) got.push(b);
    })();
    await expect(reading).rejects.toBeInstanceOf(VmDataStoreError);
    expect(Buffer.concat(got).length).toBeLessThan(bad.sizeBytes ?? ref.sizeBytes);
  }
});
