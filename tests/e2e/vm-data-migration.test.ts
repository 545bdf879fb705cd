// Migration 1766000000900 (VM Data content-addressed) carries snapshots stored as per-snapshot chunk
// rows over into chunks kept by address and per-snapshot manifests: a clear snapshot and one sealed
// under the old scheme (random nonce, bound to its snapshot and position) read back byte for byte
// through the store afterwards, and chunks two snapshots shared are kept once.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { freshDatabase } from '../support/services';
import { ROOT } from '../support/gateway';
import { VmDataStore, parseVmDataKey } from '../../apps/gateway/src/modules/snapshots/vm-data-store';
import { PostgresChunkStore } from '../../apps/gateway/src/modules/snapshots/vm-data-store.postgres';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest();
const DIR = path.join(ROOT, 'apps/gateway/dist/db/migrations');
// 900 itself, and those that build on its tables (the staged chunks refer to its chunks by address)
const LATER = ['1766000000900-VmDataContentAddressed.js', '1766000001700-VmDataStaged.js'];

it('carries clear and sealed chunk rows over to content-addressed chunks and manifests', async () => {
  const url = await freshDatabase();
  const { createDataSource } = require(path.join(ROOT, 'apps/gateway/dist/db/data-source.js'));
  const migrateTo = async (files: string[]) => {
    const ds = createDataSource(url);
    ds.setOptions({ migrations: files.map((f) => path.join(DIR, f)) });
    await ds.initialize();
    try {
      await ds.runMigrations({ transaction: 'all' });
    } finally {
      await ds.destroy();
    }
  };
  const all = fs.readdirSync(DIR).filter((f) => f.endsWith('.js')).sort();
  expect(all).toEqual(expect.arrayContaining(LATER));
  await migrateTo(all.filter((f) => !LATER.includes(f)));

  const key = parseVmDataKey(randomBytes(32).toString('hex'))!;
  const pg = new PgClient({ connectionString: url });
  await pg.connect();
  const store = new PostgresChunkStore(url, 10_000, 2);
  try {
    // the records' user and UA are not the point here: their foreign keys are not checked
    await pg.query(`SET session_replication_role = replica`);
    const snapshot = async (bytes: Buffer, keyId: string | null) => (await pg.query(
      `INSERT INTO vm_snapshots (user_id, ua_id, kind, size_bytes, sha256, storage_key, encryption_key_id)
       VALUES (gen_random_uuid(), gen_random_uuid(), 'FULL', $1, $2, 'postgres:vm_data_chunks', $3) RETURNING id`,
      [bytes.length, sha(bytes).toString('hex'), keyId])).rows[0].id as string;
    const chunkRow = (id: string, seq: number, data: Buffer, nonce: Buffer | null) =>
      pg.query(`INSERT INTO vm_data_chunks (snapshot_id, seq, data, nonce, sha256) VALUES ($1, $2, $3, $4, $5)`, [id, seq, data, nonce, sha(data)]);
    const shared = randomBytes(MiB);
    const clearA = Buffer.concat([shared, randomBytes(1000)]);
    const clearB = Buffer.concat([shared, randomBytes(2000)]);
    for (const bytes of [clearA, clearB]) {
      const id = await snapshot(bytes, null);
      await chunkRow(id, 0, bytes.subarray(0, MiB), null);
      await chunkRow(id, 1, bytes.subarray(MiB), null);
    }
    // sealed as the old store did: a random nonce, bound to "<snapshot>/<seq>"
    const sealed = randomBytes(MiB + 500);
    const sealedId = await snapshot(sealed, key.id);
    for (const seq of [0, 1]) {
      const nonce = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key.key, nonce).setAAD(Buffer.from(`${sealedId}/${seq}`));
      await chunkRow(sealedId, seq, Buffer.concat([c.update(sealed.subarray(seq * MiB, (seq + 1) * MiB)), c.final(), c.getAuthTag()]), nonce);
    }
    await pg.query(`SET session_replication_role = DEFAULT`);

    await migrateTo(all);
    // the shared clear chunk once: 2 + 2 + 2 rows became 5 chunks, 6 manifest rows
    expect((await pg.query(`SELECT count(*)::int AS n FROM vm_data_chunks`)).rows[0].n).toBe(5);
    expect((await pg.query(`SELECT count(*)::int AS n FROM vm_data_manifests`)).rows[0].n).toBe(6);
    const ids: { id: string; size_bytes: number; sha256: string; encryption_key_id: string | null }[] =
      (await pg.query(`SELECT id, size_bytes, sha256, encryption_key_id FROM vm_snapshots ORDER BY size_bytes`)).rows;
    const vmData = new VmDataStore(store, key);
    const back: Buffer[] = [];
    for (const s of ids) {
      const parts: Buffer[] = [];
      for await (const b of await vmData.open({ id: s.id, sizeBytes: s.size_bytes, sha256: s.sha256, encryptionKeyId: s.encryption_key_id })) parts.push(b);
      back.push(Buffer.concat(parts));
    }
    expect(back.map((b) => sha(b).toString('hex'))).toEqual([sealed, clearA, clearB].map((b) => sha(b).toString('hex')));
  } finally {
    await pg.end();
    await store.close();
  }
});
