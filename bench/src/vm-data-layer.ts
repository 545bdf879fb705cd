// bench/reconnect --layer: the VM Data stores alone, without HTTP, VMs or the reconnection around
// them (modules/snapshots/vm-data-store*.ts from the built gateway), against their own embedded
// PostgreSQL and folder: write and read MB/s of `mib` MiB of random bytes, interleaved with the
// PostgreSQL read the store used before (a verify pass, then one SELECT per chunk, `bytea` as hex
// text) as the baseline of the same run.
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { ROOT, dataDir, startPostgres } from './lib/services';

const MiB = 1024 * 1024;

export interface LayerRow { store: string; writeMBps: number[]; readMBps: number[] }

export async function storeLayer(mib: number, reps: number): Promise<LayerRow[]> {
  const gw = (p: string) => require(path.join(ROOT, 'apps/gateway/dist/modules/snapshots', p));
  const { VmDataStore } = gw('vm-data-store.js');
  const { PostgresChunkStore } = gw('vm-data-store.postgres.js');
  const { FsChunkStore } = gw('vm-data-store.fs.js');
  const dir = dataDir('vm-data-layer');
  fs.chmodSync(dir, 0o777); // the embedded PostgreSQL may run as its own user
  const pg = await startPostgres(path.join(dir, 'pg'));
  const c = new Client({ connectionString: pg.url });
  await c.connect();
  try {
    await c.query(`CREATE TABLE vm_data_chunks (snapshot_id uuid, seq int, data bytea NOT NULL, nonce bytea, sha256 bytea NOT NULL, PRIMARY KEY (snapshot_id, seq))`);
    await c.query(`ALTER TABLE vm_data_chunks ALTER COLUMN data SET STORAGE EXTERNAL`); // as the migration
    const em = { query: (sql: string, p: unknown[]) => c.query(sql, p).then((r) => r.rows) };
    const piece = () => randomBytes(MiB);
    const stores = {
      postgres: new VmDataStore(new PostgresChunkStore(pg.url, 10_000), null),
      fs: new VmDataStore(new FsChunkStore(path.join(dir, 'fs')), null),
    };
    const rows: LayerRow[] = [
      { store: 'postgres', writeMBps: [], readMBps: [] },
      { store: 'fs', writeMBps: [], readMBps: [] },
      { store: 'postgres, read as before (baseline)', writeMBps: [], readMBps: [] },
    ];
    const mbps = (t0: number) => (mib * MiB) / 1e6 / ((performance.now() - t0) / 1000);
    for (let rep = 0; rep < reps; rep++) {
      // the source's bytes are made before the clock starts
      const bytes = Array.from({ length: mib }, piece);
      const source = async function* () {
        yield* bytes;
      };
      for (const [i, name] of (['postgres', 'fs'] as const).entries()) {
        const id = randomUUID();
        let t0 = performance.now();
        await c.query('BEGIN');
        const stored = await stores[name].write(em, id, source(), Number.MAX_SAFE_INTEGER);
        await c.query('COMMIT');
        rows[i]!.writeMBps.push(mbps(t0));
        t0 = performance.now();
        let n = 0;
        for await (const b of await stores[name].open({ id, sizeBytes: stored.sizeBytes, encryptionKeyId: null })) n += (b as Buffer).length;
        rows[i]!.readMBps.push(mbps(t0));
        if (n !== mib * MiB) throw new Error(`${name} gave back ${n} bytes`);
        if (name === 'postgres') {
          t0 = performance.now();
          await c.query(`SELECT seq, sha256(data) = sha256 AS ok FROM vm_data_chunks WHERE snapshot_id = $1 ORDER BY seq`, [id]);
          for (let seq = 0; seq < mib; seq++) await c.query(`SELECT data, nonce FROM vm_data_chunks WHERE snapshot_id = $1 AND seq = $2`, [id, seq]);
          rows[2]!.readMBps.push(mbps(t0));
        }
        await stores[name].chunks.remove([id]);
      }
      await c.query('TRUNCATE vm_data_chunks');
    }
    return rows;
  } finally {
    await c.end();
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
