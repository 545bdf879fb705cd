// bench/reconnect --layer: the VM Data stores alone, without HTTP, VMs or the reconnection around
// them (modules/snapshots/vm-data-store*.ts from the built gateway), against their own embedded
// PostgreSQL and folder: write and read MB/s of `mib` MiB of random bytes, interleaved with the
// PostgreSQL read the store used before (a verify pass, then one SELECT per chunk, `bytea` as hex
// text) as the baseline of the same run. Then what content addressing saves: the same bytes stored
// again as a new snapshot (a NO_LOSS snapshot of an app that did not change), and with every tenth
// chunk changed, with the chunks each of them wrote. And what a new PostgreSQL backend costs: the
// same write and read on a store made for it (its pools' first connections, as a gateway met after
// its connections went idle) beside the store above again (connections that wrote before), in
// turns; on this VM a backend first-touching its memory and the shared buffers it maps is costly.
// With `idleS`, the first store again after that long idle: what a gateway's sporadic saves meet
// (the store's modules from the build BENCH_GATEWAY_MAIN names, to compare builds in turns).
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { ROOT, dataDir, startPostgres } from './lib/services';

const MiB = 1024 * 1024;

export interface LayerRow { store: string; writeMBps: number[]; readMBps: number[]; chunksWritten?: number[] }

/** a copy of `b` with its first byte changed */
function flipped(b: Buffer): Buffer {
  const out = Buffer.from(b);
  out[0] ^= 0xff;
  return out;
}

export async function storeLayer(mib: number, reps: number, idleS = 0): Promise<LayerRow[]> {
  const dist = path.dirname(process.env.BENCH_GATEWAY_MAIN ?? path.join(ROOT, 'apps/gateway/dist/main.js'));
  const gw = (p: string) => require(path.join(dist, 'modules/snapshots', p));
  const { VmDataStore } = gw('vm-data-store.js');
  const { PostgresChunkStore } = gw('vm-data-store.postgres.js');
  const { FsChunkStore } = gw('vm-data-store.fs.js');
  const dir = dataDir('vm-data-layer');
  fs.chmodSync(dir, 0o777); // the embedded PostgreSQL may run as its own user
  const pg = await startPostgres(path.join(dir, 'pg'));
  const c = new Client({ connectionString: pg.url });
  await c.connect();
  // UVE_VM_DATA_WRITERS as the gateway reads it: new chunks inserted at once (default 1)
  const newPostgresChunks = () => new PostgresChunkStore(pg.url, 10_000, 2, Number(process.env.UVE_VM_DATA_WRITERS ?? 1));
  const stores = {
    postgres: new VmDataStore(newPostgresChunks(), null),
    fs: new VmDataStore(new FsChunkStore(path.join(dir, 'fs')), null),
  };
  try {
    // as the migration (1766000000900), without the snapshot records
    await c.query(`CREATE TABLE vm_data_chunks (address bytea PRIMARY KEY, data bytea NOT NULL, nonce bytea, aad bytea, sha256 bytea NOT NULL)`);
    await c.query(`ALTER TABLE vm_data_chunks ALTER COLUMN data SET STORAGE EXTERNAL`);
    await c.query(`CREATE TABLE vm_data_manifests (snapshot_id uuid, seq int, address bytea NOT NULL REFERENCES vm_data_chunks (address), PRIMARY KEY (snapshot_id, seq))`);
    await c.query(`CREATE INDEX ON vm_data_manifests (address)`);
    const em = { query: (sql: string, p: unknown[]) => c.query(sql, p).then((r) => r.rows) };
    const piece = () => randomBytes(MiB);
    const rows: LayerRow[] = [
      { store: 'postgres', writeMBps: [], readMBps: [] },
      { store: 'fs', writeMBps: [], readMBps: [] },
      { store: 'postgres, read as before (baseline)', writeMBps: [], readMBps: [] },
      { store: 'postgres, the same bytes again', writeMBps: [], readMBps: [], chunksWritten: [] },
      { store: 'postgres, every tenth chunk changed', writeMBps: [], readMBps: [], chunksWritten: [] },
      { store: 'postgres, new backends (a store of its own)', writeMBps: [], readMBps: [] },
      { store: 'postgres, backends that wrote before (the first store again)', writeMBps: [], readMBps: [] },
      ...(idleS ? [{ store: `postgres, the first store after ${idleS} s idle`, writeMBps: [], readMBps: [] }] : []),
    ];
    const mbps = (t0: number) => (mib * MiB) / 1e6 / ((performance.now() - t0) / 1000);
    /** stores `source` as a new snapshot and reads it back, timing each into `row`; the snapshot's id */
    const writeAndRead = async (store: typeof stores.postgres, source: AsyncIterable<Buffer>, row: LayerRow, what: string) => {
      const id = randomUUID();
      let t0 = performance.now();
      await c.query('BEGIN');
      const stored = await store.write(em, id, source, Number.MAX_SAFE_INTEGER);
      await c.query('COMMIT');
      row.writeMBps.push(mbps(t0));
      t0 = performance.now();
      let n = 0;
      for await (const b of await store.open({ id, sizeBytes: stored.sizeBytes, sha256: stored.sha256, manifestSha256: stored.manifestSha256, encryptionKeyId: null })) n += (b as Buffer).length;
      row.readMBps.push(mbps(t0));
      if (n !== mib * MiB) throw new Error(`${what} gave back ${n} bytes`);
      return id;
    };
    for (let rep = 0; rep < reps; rep++) {
      // the source's bytes are made before the clock starts
      const bytes = Array.from({ length: mib }, piece);
      const source = async function* () {
        yield* bytes;
      };
      for (const [i, name] of (['postgres', 'fs'] as const).entries()) {
        const id = await writeAndRead(stores[name], source(), rows[i]!, name);
        if (name === 'postgres') {
          let t0 = performance.now();
          await c.query(`SELECT m.seq, sha256(c.data) = c.sha256 AS ok FROM vm_data_manifests m JOIN vm_data_chunks c USING (address) WHERE m.snapshot_id = $1 ORDER BY m.seq`, [id]);
          for (let seq = 0; seq < mib; seq++) await c.query(`SELECT data, nonce FROM vm_data_chunks WHERE address = (SELECT address FROM vm_data_manifests WHERE snapshot_id = $1 AND seq = $2)`, [id, seq]);
          rows[2]!.readMBps.push(mbps(t0));
          // stored again as new snapshots: unchanged, then every tenth chunk with a byte changed
          for (const [row, changed] of [[rows[3]!, bytes], [rows[4]!, bytes.map((b, i) => (i % 10 === 0 ? flipped(b) : b))]] as const) {
            t0 = performance.now();
            await c.query('BEGIN');
            const again = await stores.postgres.write(em, randomUUID(), (async function* () { yield* changed; })(), Number.MAX_SAFE_INTEGER);
            await c.query('COMMIT');
            row.writeMBps.push(mbps(t0));
            row.chunksWritten!.push(again.written);
          }
        }
        await stores[name].chunks.remove({ snapshotIds: [id], addresses: [] });
      }
      // new bytes for each, new backends and then warm ones, in the other order every other repetition
      const turns = [rows[5]!, rows[6]!];
      for (const row of rep % 2 ? turns.reverse() : turns) {
        const more = Array.from({ length: mib }, piece);
        const fresh = row === rows[5] ? new VmDataStore(newPostgresChunks(), null) : null;
        try {
          await writeAndRead(fresh ?? stores.postgres, (async function* () { yield* more; })(), row, row.store);
        } finally {
          await fresh?.chunks.close?.();
        }
      }
      await c.query('TRUNCATE vm_data_manifests, vm_data_chunks');
    }
    // after the rest: in a build whose idle timeout is shorter than the pause, the pause gives the
    // first store new backends, which would slow the rows above too
    for (let rep = 0; idleS && rep < reps; rep++) {
      const more = Array.from({ length: mib }, piece);
      await new Promise((r) => setTimeout(r, idleS * 1000));
      await writeAndRead(stores.postgres, (async function* () { yield* more; })(), rows[7]!, rows[7]!.store);
      await c.query('TRUNCATE vm_data_manifests, vm_data_chunks');
    }
    return rows;
  } finally {
    await stores.postgres.chunks.close?.();
    await c.end();
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
