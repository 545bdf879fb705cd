#!/usr/bin/env node
// What reading a snapshot out of the PostgreSQL VM Data store costs the gateway's process, per MiB:
// the store's read alone (rows off the COPY, no checksum, no HTTP), on an embedded PostgreSQL of
// its own, a snapshot of MiB random MiB stored once and read ROUNDS times per round. With --base
// DIR (another build's apps/gateway/dist, e.g. a copy made before a change), that build's store
// reads the same snapshot in turns with this one, in the same process: before and after on the
// same machine at the same moment. Prints wall and CPU (user + system) ms per MiB for each round.
// Usage: node bench/scripts/vm-data-read-cost.js [ROUNDS=6] [MiB=16] [--base DIR]
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { randomBytes, randomUUID } = require('node:crypto');

const ROOT = path.resolve(__dirname, '../..');
const args = process.argv.slice(2);
const baseAt = args.indexOf('--base');
const base = baseAt >= 0 ? path.resolve(args[baseAt + 1]) : null;
const [rounds = 6, mib = 16] = args.filter((a, i) => /^\d+$/.test(a) && (baseAt < 0 || i !== baseAt + 1)).map(Number);
const READS = 10;
const MIB = 1 << 20;

/** the store of the build in `dist` */
function storeOf(dist, url) {
  const { PostgresChunkStore } = require(path.join(dist, 'modules/snapshots/vm-data-store.postgres.js'));
  return new PostgresChunkStore(url, 10_000, 1, 1);
}

async function main() {
  const dist = path.join(ROOT, 'apps/gateway/dist');
  const { startEmbeddedPostgres } = require(path.join(dist, 'infra/postgres.js'));
  const { createLogger } = require(path.join(dist, 'common/logger.js'));
  const { DEFAULT_GLIBC_TUNABLES } = require(path.join(dist, 'infra/allocator.js'));
  const { VmDataStore } = require(path.join(dist, 'modules/snapshots/vm-data-store.js'));
  process.env.GLIBC_TUNABLES ??= DEFAULT_GLIBC_TUNABLES; // as the gateway starts its PostgreSQL
  const { Client } = require(require.resolve('pg', { paths: [dist] }));
  const dir = fs.mkdtempSync(path.join(process.env.BENCH_DATA_DIR ?? '/tmp', 'uve-read-cost-'));
  fs.chmodSync(dir, 0o777); // the embedded PostgreSQL may run as its own user
  const pg = await startEmbeddedPostgres(path.join(dir, 'pg'), createLogger('warn'));
  const c = new Client({ connectionString: pg.url });
  const builds = [['this build', storeOf(dist, pg.url)], ...(base ? [['--base', storeOf(base, pg.url)]] : [])];
  try {
    await c.connect();
    // the columns the store uses, as the migrations make them
    await c.query(`CREATE TABLE vm_data_chunks (address bytea PRIMARY KEY, data bytea NOT NULL, nonce bytea, aad bytea, sha256 bytea NOT NULL);
      ALTER TABLE vm_data_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
      CREATE TABLE vm_data_manifests (snapshot_id uuid, seq int, address bytea NOT NULL REFERENCES vm_data_chunks (address), PRIMARY KEY (snapshot_id, seq))`);
    const id = randomUUID();
    const bytes = Array.from({ length: mib }, () => randomBytes(MIB));
    await c.query('BEGIN');
    await new VmDataStore(builds[0][1], null).write({ query: (q, p) => c.query(q, p).then((r) => r.rows) }, id, (async function* () { yield* bytes; })(), Number.MAX_SAFE_INTEGER);
    await c.query('COMMIT');
    const got = new Map(builds.map(([name]) => [name, []]));
    for (let r = 0; r <= rounds; r++) {
      for (const [name, store] of r % 2 ? [...builds].reverse() : builds) {
        const t0 = performance.now();
        const u0 = process.cpuUsage();
        let n = 0;
        for (let i = 0; i < READS; i++) for await (const chunk of store.read(id)) n += chunk.data.length;
        if (n !== READS * mib * MIB) throw new Error(`${name} read ${n} bytes`);
        const u = process.cpuUsage(u0);
        // round 0 warms the connections up (a backend's first reads are slow here)
        if (r > 0) got.get(name).push(`${((performance.now() - t0) / READS / mib).toFixed(2)} / ${((u.user + u.system) / 1000 / READS / mib).toFixed(2)}`);
      }
    }
    console.log(`the PostgreSQL store's read of ${mib} MiB, ${READS} reads per round, ms per MiB: wall / this process's CPU`);
    for (const [name, values] of got) console.log(`${name.padEnd(12)} ${values.join('   ')}`);
  } finally {
    await c.end().catch(() => undefined);
    for (const [, store] of builds) await store.close();
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
