// The PostgreSQL VM Data store reads chunks with a binary COPY taken straight off node-postgres's
// socket (modules/snapshots/copy-out.ts), on connections whose socket reads into a buffer of its
// own (copyOutSocket); and a VM's download may start that read before the VM is authenticated, the
// VM checked in the statement itself (PostgresChunkStore.readFor). On a real PostgreSQL: rows byte
// for byte, a failing statement, a read left part-way, and the connection afterwards.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Pool, type PoolClient } from 'pg';
import { copyOutRows, copyOutSocket, REUSED_AFTER, type CopyRow } from '../../apps/gateway/src/modules/snapshots/copy-out';
import { PostgresChunkStore } from '../../apps/gateway/src/modules/snapshots/vm-data-store.postgres';
import { VmDataStore } from '../../apps/gateway/src/modules/snapshots/vm-data-store';
import { freshDatabase } from '../support/services';

let url: string;
const pools: Pool[] = [];

beforeAll(async () => {
  url = await freshDatabase();
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
});

/** a pool whose connections use copyOutSocket (as the store's readers), or node-postgres's own socket */
function pool(own: boolean): Pool {
  const p = new Pool({ connectionString: url, max: 1, ...(own && { stream: copyOutSocket as never }) });
  pools.push(p);
  return p;
}

/** the rows of `sql`, each taken after a turn of the event loop (the socket pauses meanwhile) */
async function rowsOf(client: PoolClient, sql: string, each?: (row: CopyRow, n: number) => void): Promise<CopyRow[]> {
  const rows: CopyRow[] = [];
  for await (const row of copyOutRows(client, sql)) {
    each?.(row, rows.length);
    rows.push(row);
    await new Promise((r) => setImmediate(r));
  }
  return rows;
}

const sha = (b: Buffer | null) => (b ? createHash('sha256').update(b).digest('hex') : null);

/** `test` on a connection of a fresh pool (own: copyOutSocket), which must still answer a query after it */
async function onConnection(own: boolean, test: (client: PoolClient) => Promise<void>): Promise<void> {
  const client = await pool(own).connect();
  try {
    await test(client);
    expect((await client.query('SELECT 41 + 1 AS n')).rows[0].n).toBe(42);
  } finally {
    client.release();
  }
}

describe.each([['copyOutSocket', true], ["node-postgres's socket", false]])('on %s', (_name, own) => {
  it('gives every row whole and in order, large fields byte for byte, NULL as null; the connection goes on after', () => onConnection(own, async (client) => {
    // 12 rows of 0.5-2.4 MB of pseudo-random bytes (sha256 chains)
    const big = `SELECT g, decode(string_agg(encode(sha256((g * 100000 + i)::text::bytea), 'hex'), '' ORDER BY i), 'hex') AS big
                   FROM generate_series(1, 12) g, generate_series(1, 16000 + (g % 4) * 20000) i GROUP BY g`;
    const expected = (await client.query(`SELECT g, encode(sha256(big), 'hex') AS sha, length(big) AS len FROM (${big}) b ORDER BY g`)).rows;
    // a large field's buffer is the reader's again REUSED_AFTER rows later: until then it is intact
    const held: { n: number; row: CopyRow; sha: string | null }[] = [];
    const rows = await rowsOf(client, `COPY (SELECT g, big, NULL::bytea, int4send(g) FROM (${big}) b ORDER BY g) TO STDOUT (FORMAT binary)`, (row, n) => {
      for (const h of held) if (n - h.n <= REUSED_AFTER) expect(sha(h.row[1]!)).toBe(h.sha);
      held.push({ n, row, sha: sha(row[1]!) });
    });
    expect(held.map((h) => ({ g: h.row[0]!.readInt32BE(0), sha: h.sha, len: h.row[1]!.length }))).toEqual(expected);
    expect(rows.every((r) => r[2] === null && r[3]!.readInt32BE(0) === r[0]!.readInt32BE(0))).toBe(true);
  }));

  it('ends with the server\'s error when the statement fails part-way, after the rows before it; the connection goes on', () => onConnection(own, async (client) => {
    const got: number[] = [];
    const read = rowsOf(client, `COPY (SELECT g, (100 / (3 - g))::text::bytea, decode(repeat('ab', 200000), 'hex') FROM generate_series(1, 5) g) TO STDOUT (FORMAT binary)`, (row) => got.push(row[0]!.readInt32BE(0)));
    await expect(read).rejects.toThrow(/division by zero/);
    expect(got).toEqual([1, 2]);
  }));

  it('refuses a statement that is not a COPY out, and the connection goes on', () => onConnection(own, async (client) => {
    await expect(rowsOf(client, 'SELECT 1')).rejects.toThrow(/not a COPY/);
  }));

  it('a read left part-way: its connection is dropped, the pool opens another', async () => {
    const p = pool(own);
    const client = await p.connect();
    const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    for await (const row of copyOutRows(client, `COPY (SELECT g, decode(repeat('cd', 300000), 'hex') FROM generate_series(1, 50) g) TO STDOUT (FORMAT binary)`)) {
      expect(row[0]!.readInt32BE(0)).toBe(1);
      break;
    }
    client.release(new Error('left part-way'));
    const next = await p.connect();
    try {
      expect((await next.query('SELECT pg_backend_pid() AS pid')).rows[0].pid).not.toBe(pid);
    } finally {
      next.release();
    }
  });
});

describe('a read started before the VM is authenticated (readFor)', () => {
  let store: PostgresChunkStore;
  let admin: Pool;
  const vmId = randomUUID();
  const secret = randomBytes(16).toString('hex');
  const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex');
  let snapshot: { id: string; sizeBytes: number; sha256: string; manifestSha256: string; encryptionKeyId: null };
  const bytes = randomBytes(3 * 1024 * 1024 + 1234);

  beforeAll(async () => {
    // the columns the store's statements use (as the migrations make them), in a database of its own
    const db = await freshDatabase();
    admin = new Pool({ connectionString: db, max: 2 });
    pools.push(admin);
    await admin.query(`CREATE TABLE vms (id uuid PRIMARY KEY, secret_hash varchar(64), destroyed_at timestamptz);
      CREATE TABLE vm_data_chunks (address bytea PRIMARY KEY, data bytea NOT NULL, nonce bytea, aad bytea, sha256 bytea NOT NULL);
      CREATE TABLE vm_data_manifests (snapshot_id uuid, seq int, address bytea NOT NULL REFERENCES vm_data_chunks (address), PRIMARY KEY (snapshot_id, seq));
      CREATE TABLE vm_data_staged (session_id uuid, seq int, address bytea NOT NULL REFERENCES vm_data_chunks (address))`);
    await admin.query(`INSERT INTO vms (id, secret_hash) VALUES ($1, $2)`, [vmId, sha256hex(secret)]);
    store = new PostgresChunkStore(db, 10_000, 1);
    const id = randomUUID();
    const c = await admin.connect();
    try {
      await c.query('BEGIN');
      const stored = await new VmDataStore(store, null).write({ query: (q: string, p: unknown[]) => c.query(q, p).then((r) => r.rows) } as never, id, (async function* () {
        yield bytes;
      })(), Number.MAX_SAFE_INTEGER);
      await c.query('COMMIT');
      snapshot = { id, sizeBytes: stored.sizeBytes, sha256: stored.sha256, manifestSha256: stored.manifestSha256, encryptionKeyId: null };
    } finally {
      c.release();
    }
  });
  afterAll(async () => {
    await store?.close();
  });

  const download = async (secretSha256: string, id = vmId) => {
    const read = new VmDataStore(store, null).prepareRead(snapshot.id, { vmId: id, secretSha256 });
    const parts: Buffer[] = [];
    try {
      for await (const b of await read.open(snapshot)) parts.push(Buffer.from(b));
    } finally {
      await read.cancel();
    }
    return Buffer.concat(parts);
  };

  it('gives the snapshot to the VM with its secret', async () => {
    expect((await download(sha256hex(secret))).equals(bytes)).toBe(true);
  });

  it('reads no chunk for a wrong secret or another VM (the snapshot then looks empty: refused as damaged), and its connection goes on serving', async () => {
    await expect(download(sha256hex('not the secret'))).rejects.toMatchObject({ code: 'DAMAGED' });
    await expect(download(sha256hex(secret), randomUUID())).rejects.toMatchObject({ code: 'DAMAGED' });
    await admin.query('UPDATE vms SET destroyed_at = now() WHERE id = $1', [vmId]);
    await expect(download(sha256hex(secret))).rejects.toMatchObject({ code: 'DAMAGED' });
    await admin.query('UPDATE vms SET destroyed_at = NULL WHERE id = $1', [vmId]);
    expect((await download(sha256hex(secret))).equals(bytes)).toBe(true);
  });

  it('cancelled before it was opened (the VM refused), it holds no connection', async () => {
    for (let i = 0; i < 3; i++) {
      const read = new VmDataStore(store, null).prepareRead(snapshot.id, { vmId, secretSha256: sha256hex(secret) });
      await read.cancel();
    }
    // one reader connection (UVE_VM_DATA_READERS 1): a read still holding it would make this wait and time out
    expect((await download(sha256hex(secret))).equals(bytes)).toBe(true);
  });
});
