// The PostgreSQL VM Data store's write (vm-data-store.postgres.ts) keeps several new chunks in
// flight on connections of its own, while each is looked up and locked in the caller's transaction:
// that transaction is one connection, which must get one statement at a time (node-postgres queues a
// second itself, deprecated; pg 9 refuses it). Stubs for both: the order of statements is what counts.
import { PostgresChunkStore } from '../../apps/gateway/src/modules/snapshots/vm-data-store.postgres';
import type { NewChunk } from '../../apps/gateway/src/modules/snapshots/vm-data-store';

const tick = () => new Promise<void>((r) => setImmediate(r));

it('sends the transaction one statement at a time while several chunks are in flight', async () => {
  const store = new PostgresChunkStore('postgres://127.0.0.1:1/unused', 1000, 1, 3);
  const stored = new Set<string>();
  let inserting = 0;
  let insertsAtOnce = 0;
  // the writer pool: inserts overlap (what the writers are for)
  (store as unknown as { writers: unknown }).writers = {
    query: async (_sql: string, [address]: [Buffer]) => {
      insertsAtOnce = Math.max(insertsAtOnce, ++inserting);
      await tick();
      await tick();
      stored.add(address.toString('hex'));
      inserting--;
      return { rowCount: 1 };
    },
    end: async () => undefined,
  };
  let running = 0;
  let statementsAtOnce = 0;
  const statements: string[] = [];
  const em = {
    query: async (sql: string, params: [Buffer] | undefined) => {
      statementsAtOnce = Math.max(statementsAtOnce, ++running);
      statements.push(sql.split(' ')[0]!);
      await tick();
      running--;
      return sql.includes('FOR KEY SHARE') && stored.has(params![0].toString('hex')) ? [{}] : [];
    },
  };
  const chunks = (async function* (): AsyncGenerator<NewChunk> {
    for (let seq = 0; seq < 8; seq++) {
      const address = Buffer.alloc(32, seq);
      yield { seq, address, stored: () => ({ seq, address, data: Buffer.alloc(4), nonce: null, aad: null, sha256: address }) };
    }
  })();
  const written = await store.write(em as never, '00000000-0000-4000-8000-000000000000', chunks);
  expect(written).toBe(8);
  expect(insertsAtOnce).toBeGreaterThan(1); // the chunks were in flight together
  expect(statementsAtOnce).toBe(1);
  expect(statements.filter((s) => s === 'SELECT')).toHaveLength(16); // each chunk looked up, then locked
  expect(statements.at(-1)).toBe('INSERT'); // the manifest, last
  await store.close();
});
