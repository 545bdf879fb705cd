// The VM Data store behind UVE-5 (modules/snapshots/vm-data-store*.ts) through its HTTP endpoint,
// as a real PROCESS VM calls it with its own secret, for both stores (UVE_VM_DATA_STORE): chunks
// in PostgreSQL and files in a folder. Uploads stream into 1 MiB chunks sealed with AES-256-GCM
// (UVE_VM_DATA_KEY), too large is refused and leaves nothing, downloads give back the bytes, a
// flipped byte is refused by its checksum (before anything goes out when it is in the first chunk,
// by cutting the download short after), a chunk's bytes moved to another chunk's place do not open,
// chunks in another order are caught by the digest of the chunk order (older snapshots: their whole sha256), retention keeps the newest
// UVE_VM_DATA_KEEP snapshots and deleteSnapshot removes the bytes. The PostgreSQL store is
// content-addressed: a chunk it holds is not written again, and chunks go once no snapshot holds them.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { uaId, vmSecret } from '../support/stream';
import { VM_DATA_DELTA_CONTENT_TYPE, encodeVmDataDelta } from '@uve/protocol';
import { VmDataStore, parseVmDataKey } from '../../apps/gateway/src/modules/snapshots/vm-data-store';
import { PostgresChunkStore } from '../../apps/gateway/src/modules/snapshots/vm-data-store.postgres';

const KEY = randomBytes(32).toString('hex');
const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const chunksOf = (b: Buffer) => Array.from({ length: Math.ceil(b.length / MiB) }, (_, i) => b.subarray(i * MiB, (i + 1) * MiB));
const chunkHashes = (b: Buffer) => new Set(chunksOf(b).map(sha));
/** `state` as a delta (@uve/protocol vm-data-delta.ts): the chunks in `staged` named, the others sent */
function delta(state: Buffer, staged: Set<string>): Buffer {
  const chunks = chunksOf(state);
  const head = encodeVmDataDelta({ sizeBytes: state.length, sha256: createHash('sha256').update(state).digest() }, chunks.map((c) => ({ sha256: createHash('sha256').update(c).digest(), sent: !staged.has(sha(c)) })));
  return Buffer.concat([head, ...chunks.filter((c) => !staged.has(sha(c)))]);
}

/** One stored chunk as a store keeps it: its address, sealed bytes and nonce. */
interface Kept { seq: number; address: Buffer; data: Buffer; nonce: Buffer | null }

/** What a test needs to see and alter in a store's own place (rows or a file). */
interface Backend {
  env(): Record<string, string>;
  chunks(snapshotId: string): Promise<Kept[]>;
  /** flips the byte at `offset` of chunk `seq` (leaving its checksum) */
  flip(snapshotId: string, seq: number, offset: number): Promise<void>;
  /** swaps the stored bytes (checksums and nonces too) of two chunks, each left at its address */
  swap(snapshotId: string, a: number, b: number): Promise<void>;
  /** swaps two chunks in the snapshot's order (its manifest) */
  reorder(snapshotId: string, a: number, b: number): Promise<void>;
  /** how many snapshots have bytes in the store */
  count(): Promise<number>;
  dispose(): void;
}

/** the fs store's file layout (vm-data-store.fs.ts): magic, then per chunk seq, length, sealed, nonce, sha256, address, bytes */
const MAGIC = 8;
const HEADER = 4 + 4 + 1 + 12 + 32 + 32;
function parseFile(file: string): { at: number; seq: number; address: Buffer; data: Buffer; nonce: Buffer | null; header: Buffer }[] {
  const b = fs.readFileSync(file);
  const out = [];
  for (let at = MAGIC; at < b.length;) {
    const header = b.subarray(at, at + HEADER);
    const len = header.readUInt32BE(4);
    out.push({ at, seq: header.readUInt32BE(0), address: Buffer.from(header.subarray(53)), nonce: header[8] ? Buffer.from(header.subarray(9, 21)) : null, data: b.subarray(at + HEADER, at + HEADER + len), header });
    at += HEADER + len;
  }
  return out;
}

let pg: PgClient;
let dbUrl: string;

function postgresBackend(): Backend {
  return {
    env: () => ({}),
    chunks: async (id) => (await pg.query(`SELECT m.seq, c.address, c.data, c.nonce FROM vm_data_manifests m JOIN vm_data_chunks c USING (address) WHERE m.snapshot_id = $1 ORDER BY m.seq`, [id])).rows,
    flip: async (id, seq, offset) => {
      const r = await pg.query(`UPDATE vm_data_chunks SET data = overlay(data placing decode(lpad(to_hex(get_byte(data, $3) # 255), 2, '0'), 'hex') from $3 + 1 for 1) WHERE address = (SELECT address FROM vm_data_manifests WHERE snapshot_id = $1 AND seq = $2)`, [id, seq, offset]);
      expect(r.rowCount).toBe(1);
    },
    swap: async (id, a, b) => {
      const r = await pg.query(`UPDATE vm_data_chunks c SET data = o.data, nonce = o.nonce, sha256 = o.sha256
          FROM vm_data_manifests m, vm_data_manifests n, vm_data_chunks o
         WHERE m.snapshot_id = $1 AND n.snapshot_id = $1 AND m.seq IN ($2, $3) AND n.seq IN ($2, $3) AND m.seq <> n.seq AND c.address = m.address AND o.address = n.address`, [id, a, b]);
      expect(r.rowCount).toBe(2);
    },
    reorder: async (id, a, b) => {
      await pg.query(`UPDATE vm_data_manifests SET seq = (CASE seq WHEN $2::int THEN $3::int ELSE $2::int END) + 100 WHERE snapshot_id = $1 AND seq IN ($2, $3)`, [id, a, b]);
      await pg.query(`UPDATE vm_data_manifests SET seq = seq - 100 WHERE snapshot_id = $1 AND seq >= 100`, [id]);
    },
    count: async () => (await pg.query(`SELECT count(DISTINCT snapshot_id)::int AS n FROM vm_data_manifests`)).rows[0].n,
    dispose: () => undefined,
  };
}

function fsBackend(): Backend {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-vm-data-'));
  const file = (id: string) => path.join(dir, `${id}.vmd`);
  return {
    env: () => ({ UVE_VM_DATA_STORE: 'fs', UVE_VM_DATA_STORE_DIR: dir }),
    chunks: async (id) => parseFile(file(id)),
    flip: async (id, seq, offset) => {
      const c = parseFile(file(id)).find((x) => x.seq === seq)!;
      const fd = fs.openSync(file(id), 'r+');
      fs.writeSync(fd, Buffer.from([c.data[offset]! ^ 255]), 0, 1, c.at + HEADER + offset);
      fs.closeSync(fd);
    },
    swap: async (id, a, b) => {
      // each chunk keeps its seq and address, with the other's length, nonce, checksum and bytes
      const chunks = parseFile(file(id));
      const [ca, cb] = [chunks[a]!, chunks[b]!];
      const moved = (at: (typeof chunks)[number], from: (typeof chunks)[number]) => {
        const h = Buffer.from(from.header);
        at.header.copy(h, 0, 0, 4);
        at.address.copy(h, 53);
        return Buffer.concat([h, from.data]);
      };
      const bytes = chunks.map((c, i) => (i === a ? moved(ca, cb) : i === b ? moved(cb, ca) : Buffer.concat([c.header, c.data])));
      fs.writeFileSync(file(id), Buffer.concat([fs.readFileSync(file(id)).subarray(0, MAGIC), ...bytes]));
    },
    reorder: async (id, a, b) => {
      // the seq numbers in the headers are swapped back, so each chunk sits at the other's place
      const chunks = parseFile(file(id));
      const bytes = (c: (typeof chunks)[number]) => Buffer.concat([c.header, c.data]);
      const [ca, cb] = [chunks[a]!, chunks[b]!];
      const ha = Buffer.from(ca.header), hb = Buffer.from(cb.header);
      ha.writeUInt32BE(b, 0);
      hb.writeUInt32BE(a, 0);
      const reordered = chunks.map((c, i) => (i === a ? Buffer.concat([hb, cb.data]) : i === b ? Buffer.concat([ha, ca.data]) : bytes(c)));
      fs.writeFileSync(file(id), Buffer.concat([fs.readFileSync(file(id)).subarray(0, MAGIC), ...reordered]));
    },
    count: async () => fs.readdirSync(dir).length,
    dispose: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
  dbUrl = await freshDatabase();
  pg = new PgClient({ connectionString: dbUrl });
  await pg.connect();
}, 60_000);

afterAll(async () => {
  await pg?.end();
  await redis?.stop();
});

describe.each([['postgres', postgresBackend], ['fs', fsBackend]] as const)('the %s store', (name, makeBackend) => {
const store = makeBackend();
let gw: GatewayProcess;
let session: { id: string; vm: { id: string } };
let headers: Record<string, string>;
let user: { token: string };

beforeAll(async () => {
  gw = await startGateway({ DATABASE_URL: dbUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: `vmstore-${name}`, UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: 'WASM', UVE_WARM_VMS: '1', UVE_VM_DATA_MAX_MB: '4', UVE_VM_DATA_KEY: KEY, UVE_VM_DATA_KEEP: '2', UVE_VM_DATA_STAGE_S: '0', ...store.env() });
  const admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  await until('an idle WASM VM', 60_000, async () => ((await ok(gw, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, admin)).vms.length > 0), 100);
  user = await registerUser(gw, `vm-data-store-${name}`);
  const paint = await uaId(gw, user.token, 'paint');
  session = (await ok(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id vm { id } } }`, {
    i: { uaId: paint, reconnectionMethod: 'NO_LOSS', terminal: { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] } },
  }, user.token)).requestApplication;
  const secret = vmSecret(session.vm.id);
  headers = { 'x-uve-vm-id': session.vm.id, authorization: `Bearer ${secret}` };
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  store.dispose();
});

const upload = (body: Uint8Array | ReadableStream<Uint8Array>) =>
  fetch(`${gw.url}/vmm/vm-data/sessions/${session.id}?kind=FULL`, { method: 'PUT', headers, body: body as unknown as ArrayBuffer, duplex: 'half' } as RequestInit);
/** lets the VM read a snapshot back: the VMM's record that its session restores it */
const restoreOnVm = (snapshotId: string) => pg.query(`UPDATE sessions SET restored_from_id = $1 WHERE id = $2`, [snapshotId, session.id]);
const download = (snapshotId: string) => fetch(`${gw.url}/vmm/vm-data/snapshots/${snapshotId}`, { headers });
/** PUT to the session's VM Data path + `to` ('/staged' or '?kind=...'), a delta unless `type` says otherwise */
const putDelta = (to: string, body: Uint8Array, type = VM_DATA_DELTA_CONTENT_TYPE) =>
  fetch(`${gw.url}/vmm/vm-data/sessions/${session.id}${to}`, { method: 'PUT', headers: { ...headers, 'content-type': type }, body: body as unknown as ArrayBuffer });
/** the snapshot's head as its record keeps it, and as the gateway opens it for a restore command (VmDataStore.openHead) */
async function headOf(snapshotId: string): Promise<{ kept: Buffer | null; opened: Buffer | null }> {
  const row = (await pg.query(`SELECT id, head, encryption_key_id AS "encryptionKeyId" FROM vm_snapshots WHERE id = $1`, [snapshotId])).rows[0];
  return { kept: row.head, opened: new VmDataStore(null as never, parseVmDataKey(KEY)).openHead(row) };
}

it('streams an upload into sealed 1 MiB chunks and gives the same bytes back', async () => {
  const state = randomBytes(3.5 * MiB);
  const res = await upload(state);
  expect(res.status).toBe(201);
  const stored = (await res.json()) as { snapshotId: string; sizeBytes: number; sha256: string };
  expect(stored).toMatchObject({ sizeBytes: state.length, sha256: sha(state) });
  const chunks = await store.chunks(stored.snapshotId);
  expect(chunks.map((c) => c.seq)).toEqual([0, 1, 2, 3]);
  // sealed: each chunk is its ciphertext and a 16-byte tag, under its own 12-byte nonce
  expect(chunks.map((c) => c.data.length)).toEqual([MiB + 16, MiB + 16, MiB + 16, 0.5 * MiB + 16]);
  expect(new Set(chunks.map((c) => (c.nonce as Buffer).toString('hex'))).size).toBe(4);
  expect((chunks[0].data as Buffer).subarray(0, 4096).equals(state.subarray(0, 4096))).toBe(false);
  expect((await pg.query(`SELECT encryption_key_id FROM vm_snapshots WHERE id = $1`, [stored.snapshotId])).rows[0].encryption_key_id).toMatch(/^[0-9a-f]{16}$/);
  // its head (the first 256 bytes, for the restore commands) is sealed like the chunks: nonce, bytes, tag
  const head = await headOf(stored.snapshotId);
  expect(head.kept).toHaveLength(12 + 256 + 16);
  expect(head.kept!.includes(state.subarray(0, 32))).toBe(false);
  expect(head.opened).toEqual(state.subarray(0, 256));
  // bound to its snapshot: moved to another record, it does not open
  expect(new VmDataStore(null as never, parseVmDataKey(KEY)).openHead({ id: session.id, head: head.kept, encryptionKeyId: parseVmDataKey(KEY)!.id })).toBeNull();
  // and a gateway without the key has none to send (its VMs prepare by the download's first bytes)
  expect(new VmDataStore(null as never, null).openHead({ id: stored.snapshotId, head: head.kept, encryptionKeyId: parseVmDataKey(KEY)!.id })).toBeNull();

  await restoreOnVm(stored.snapshotId);
  const back = await download(stored.snapshotId);
  expect(back.status).toBe(200);
  expect(back.headers.get('x-uve-sha256')).toBe(sha(state));
  expect(Buffer.from(await back.arrayBuffer()).equals(state)).toBe(true);
});

it('refuses an upload over UVE_VM_DATA_MAX_MB with 413, whether announced or streamed, and keeps nothing of it', async () => {
  const before = await store.count();
  const chunkRows = async () => (name === 'postgres' ? (await pg.query(`SELECT count(*)::int AS n FROM vm_data_chunks`)).rows[0].n as number : 0);
  const rowsBefore = await chunkRows();
  const announced = await upload(randomBytes(5 * MiB));
  expect(announced.status).toBe(413);
  expect(await announced.json()).toEqual({ error: { code: 'TOO_LARGE', message: expect.stringMatching(/at most 4194304 bytes \(UVE_VM_DATA_MAX_MB\)/) } });
  // no content-length: the store counts as the bytes come
  let sent = 0;
  const streamed = await upload(new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= 6 * MiB) return c.close();
      sent += 256 * 1024;
      c.enqueue(randomBytes(256 * 1024));
    },
  }));
  expect(streamed.status).toBe(413);
  expect(((await streamed.json()) as { error: { code: string } }).error.code).toBe('TOO_LARGE');
  expect(await store.count()).toBe(before);
  // the chunks stored before the refusal (committed one by one) went again
  expect(await chunkRows()).toBe(rowsBefore);
  const empty = await upload(new Uint8Array(0));
  expect(empty.status).toBe(400);
});

it('refuses a snapshot with a flipped byte by its checksum: before sending anything in the first chunk, cut short in a later one', async () => {
  const flipped = async (seq: number) => {
    const stored = (await (await upload(randomBytes(2.5 * MiB))).json()) as { snapshotId: string };
    await restoreOnVm(stored.snapshotId);
    await store.flip(stored.snapshotId, seq, 9);
    return stored.snapshotId;
  };
  const first = await flipped(0);
  const res = await download(first);
  expect(res.status).toBe(422);
  expect(await res.json()).toEqual({ error: { code: 'DAMAGED', message: `VM Data checksum mismatch: chunk 0 of snapshot ${first} is not what was stored.` } });
  const later = await download(await flipped(2));
  expect(later.status).toBe(200); // chunks 0 and 1 went out before chunk 2 was found damaged
  await expect(later.arrayBuffer()).rejects.toThrow();
});

it('a chunk\'s bytes moved to another chunk\'s place, checksum and all, do not open: refused before the first byte, cut short after', async () => {
  /** swaps the sealed bytes of two chunks with their checksums (each is sealed to its address) */
  const swapped = async (a: number, b: number) => {
    const stored = (await (await upload(randomBytes(3.5 * MiB))).json()) as { snapshotId: string };
    await restoreOnVm(stored.snapshotId);
    await store.swap(stored.snapshotId, a, b);
    return stored.snapshotId;
  };
  const first = await swapped(0, 1);
  const refused = await download(first);
  expect(refused.status).toBe(422);
  expect(await refused.json()).toEqual({ error: { code: 'DAMAGED', message: `VM Data chunk 0 of ${first} does not open with its key (tampered with or misplaced).` } });
  const later = await download(await swapped(2, 3));
  expect(later.status).toBe(200); // chunk 0 went out before chunk 2 failed to open
  await expect(later.arrayBuffer()).rejects.toThrow();
});

it('chunks whole but in another order (the manifest tampered with) are caught by the digest of its chunk order, or by the whole sha256 for a snapshot stored without one: the last chunk never goes out', async () => {
  const state = randomBytes(2.5 * MiB);
  const stored = (await (await upload(state)).json()) as { snapshotId: string };
  await restoreOnVm(stored.snapshotId);
  await store.reorder(stored.snapshotId, 0, 1);
  const res = await download(stored.snapshotId);
  expect(res.status).toBe(200);
  await expect(res.arrayBuffer()).rejects.toThrow();
  await until('the refusal logged', 10_000, async () => gw.output().includes(`snapshot ${stored.snapshotId} does not add up to the chunk order it was stored with`));
  // as stored before the digest was kept (migration 1766000001570): every byte hashed again
  await pg.query(`UPDATE vm_snapshots SET manifest_sha256 = NULL WHERE id = $1`, [stored.snapshotId]);
  const old = await download(stored.snapshotId);
  expect(old.status).toBe(200);
  await expect(old.arrayBuffer()).rejects.toThrow();
  await until('the refusal logged', 10_000, async () => gw.output().includes(`snapshot ${stored.snapshotId} does not add up to the sha256 it was stored with`));
});

it('a gateway without the key the snapshot was sealed with refuses it clearly', async () => {
  const state = randomBytes(1000);
  const stored = (await (await upload(state)).json()) as { snapshotId: string };
  await restoreOnVm(stored.snapshotId);
  await pg.query(`UPDATE vm_snapshots SET encryption_key_id = 'ffffffffffffffff' WHERE id = $1`, [stored.snapshotId]);
  const res = await download(stored.snapshotId);
  expect(res.status).toBe(500);
  expect(await res.json()).toEqual({ error: { code: 'KEY_UNAVAILABLE', message: expect.stringMatching(/encrypted with key ffffffffffffffff, which this gateway is not configured with \(UVE_VM_DATA_KEY\)/) } });
});

it('keeps the newest UVE_VM_DATA_KEEP snapshots of a user, UA and kind, and the one a session placed on a VM restores; deleteSnapshot removes one with its bytes', async () => {
  const put = async (n: number) => ((await (await upload(randomBytes(n))).json()) as { snapshotId: string }).snapshotId;
  const mine = async () => (await ok(gw, `{ mySnapshots { id kind } }`, {}, user.token)).mySnapshots.filter((s: { kind: string }) => s.kind === 'FULL').map((s: { id: string }) => s.id).sort();
  // the session (ASSIGNED) restores the first: newer ones do not push it out
  const restoring = await put(999);
  await restoreOnVm(restoring);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push(await put(1000 + i));
  expect(await mine()).toEqual([restoring, ...ids.slice(1)].sort());
  // restored (no longer needed by the session): the next store lets it go with the older ones
  await pg.query(`UPDATE sessions SET restored_from_id = NULL WHERE id = $1`, [session.id]);
  ids.push(await put(1003));
  expect(await mine()).toEqual(ids.slice(2).sort());
  expect(await store.chunks(restoring).catch(() => [])).toEqual([]);
  expect(await store.chunks(ids[0]!).catch(() => [])).toEqual([]);
  ids.shift();
  expect((await store.chunks(ids[2]!)).length).toBe(1);
  expect((await ok(gw, `mutation($id: ID!) { deleteSnapshot(id: $id) }`, { id: ids[2] }, user.token)).deleteSnapshot).toBe(true);
  expect(await store.chunks(ids[2]!).catch(() => [])).toEqual([]);
  expect(await store.count()).toBe(1);
});

if (name === 'postgres') {
  const rows = async () => (await pg.query(`SELECT count(*)::int AS n FROM vm_data_chunks`)).rows[0].n as number;
  const addresses = async (id: string) => (await store.chunks(id)).map((c) => c.address.toString('hex'));

  it('keeps a chunk once: the same bytes again add no chunk rows, a changed chunk adds only itself; chunks go when no snapshot holds them', async () => {
    // UVE_VM_DATA_KEEP is 2: a third snapshot of the user's UA drops the first
    for (const id of (await ok(gw, `{ mySnapshots { id } }`, {}, user.token)).mySnapshots.map((x: { id: string }) => x.id)) {
      await ok(gw, `mutation($id: ID!) { deleteSnapshot(id: $id) }`, { id }, user.token);
    }
    expect(await rows()).toBe(0);
    const state = randomBytes(3 * MiB + 100);
    const a = ((await (await upload(state)).json()) as { snapshotId: string }).snapshotId;
    expect(await rows()).toBe(4);
    // sealed: the address is an HMAC under the key, not the sha256 of the plain bytes
    expect((await addresses(a))[0]).not.toBe(sha(state.subarray(0, MiB)));
    const b = ((await (await upload(state)).json()) as { snapshotId: string }).snapshotId;
    expect(await rows()).toBe(4);
    expect(await addresses(b)).toEqual(await addresses(a));
    const changed = Buffer.from(state);
    changed[MiB + 7] ^= 1;
    const c = ((await (await upload(changed)).json()) as { snapshotId: string }).snapshotId;
    // a (the oldest) was dropped, its chunks all shared with b: one new chunk, nothing collected
    expect(await rows()).toBe(5);
    expect(await store.chunks(a)).toEqual([]);
    const [ab, ac] = [await addresses(b), await addresses(c)];
    expect(ac.filter((x, i) => x !== ab[i])).toHaveLength(1);
    expect(ac[1]).not.toBe(ab[1]);
    // b's changed chunk is held by b alone: deleting b collects it, the shared ones stay for c
    await ok(gw, `mutation($id: ID!) { deleteSnapshot(id: $id) }`, { id: b }, user.token);
    expect(await rows()).toBe(4);
    await restoreOnVm(c);
    expect(Buffer.from(await (await download(c)).arrayBuffer()).equals(changed)).toBe(true);
    await ok(gw, `mutation($id: ID!) { deleteSnapshot(id: $id) }`, { id: c }, user.token);
    expect(await rows()).toBe(0);
  });

  it('a reader whose connection is lost while it waits for its consumer ends that read, not the process, and is not used again', async () => {
    const chunks = new PostgresChunkStore(dbUrl, 10_000, 1);
    try {
      // one chunk: its COPY has all come in with that chunk, so the read waits on an idle connection
      const { snapshotId } = (await (await upload(randomBytes(MiB))).json()) as { snapshotId: string };
      // the read holds its connection while it waits for its consumer (here, after its chunk)
      const reading = chunks.read(snapshotId);
      expect((await reading.next()).done).toBe(false);
      const readers = async () => (await pg.query(`SELECT pid FROM pg_stat_activity WHERE application_name = 'uve-vm-data-reader'`)).rows.map((r) => r.pid as number);
      const before = await readers();
      expect(before.length).toBeGreaterThanOrEqual(1);
      await pg.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'uve-vm-data-reader'`);
      await until('the readers\' backends gone', 10_000, async () => (await readers()).every((pid) => !before.includes(pid)));
      // the client has seen its connection end by now (an unhandled 'error' event would have ended
      // this process); the rest of this read: what had arrived, then its end, or the lost connection's error
      await (async () => {
        for (let r = await reading.next(); !r.done; r = await reading.next()) expect(r.value.data.length).toBeGreaterThan(0);
      })().catch((e: Error) => expect(e.message).toMatch(/terminating connection/));
      // the lost connection went with the read: the next read opens another and gets every chunk
      const again: Buffer[] = [];
      for await (const c of chunks.read(snapshotId)) again.push(c.data);
      expect(again.length).toBe(1);
    } finally {
      await chunks.close();
    }
  });

  it('two stores of the same new bytes at once keep one chunk each, and a collection racing a store that reuses a chunk leaves it; two stores of the same two new chunks in opposite order both complete', async () => {
    const chunks = new PostgresChunkStore(dbUrl, 10_000, 2);
    const vmData = new VmDataStore(chunks, parseVmDataKey(KEY));
    const clients = await Promise.all([0, 1, 2].map(async () => {
      const c = new PgClient({ connectionString: dbUrl });
      await c.connect();
      return c;
    }));
    const [t1, t2, other] = clients as [PgClient, PgClient, PgClient];
    const em = (c: PgClient) => ({ query: (q: string, p?: unknown[]) => c.query(q, p).then((r) => r.rows) }) as never;
    /** a snapshot record of the test's user and UA, as the service writes first */
    const record = async (c: PgClient) => (await c.query(`INSERT INTO vm_snapshots (user_id, ua_id, kind, size_bytes, sha256, storage_key)
      SELECT user_id, ua_id, 'FULL', 0, repeat('0', 64), 'postgres:vm_data_chunks' FROM sessions WHERE id = $1 RETURNING id`, [session.id])).rows[0].id as string;
    /** a source of `state` in 1 MiB pieces that stops before piece `gate` until released, telling when it got there */
    const gated = (state: Buffer, gate: number) => {
      let release!: () => void;
      let reached!: () => void;
      const at = new Promise<void>((r) => (reached = r));
      const released = new Promise<void>((r) => (release = r));
      const source = (async function* () {
        for (let i = 0; i * MiB < state.length; i++) {
          if (i === gate) {
            reached();
            await released;
          }
          yield state.subarray(i * MiB, (i + 1) * MiB);
        }
      })();
      return { source, at, release };
    };
    const readBack = async (id: string, size: number, sum: string) => {
      const parts: Buffer[] = [];
      for await (const b of await vmData.open({ id, sizeBytes: size, sha256: sum, encryptionKeyId: vmData.keyId })) parts.push(b);
      return Buffer.concat(parts);
    };
    const commit = async (c: PgClient, id: string, w: { sizeBytes: number; sha256: string }) => {
      await c.query(`UPDATE vm_snapshots SET size_bytes = $2, sha256 = $3 WHERE id = $1`, [id, w.sizeBytes, w.sha256]);
      await c.query('COMMIT');
    };
    /** whether `address` is stored (committed), or being inserted by the transaction of backend `pid` */
    const inserting = async (address: Buffer, pid: number) => (await pg.query(`SELECT EXISTS (SELECT 1 FROM vm_data_chunks WHERE address = $1)
        OR EXISTS (SELECT 1 FROM pg_locks WHERE pid = $2 AND relation = 'vm_data_chunks'::regclass AND mode = 'RowExclusiveLock') AS yes`, [address, pid])).rows[0].yes as boolean;
    const pidOf = async (c: PgClient) => (await c.query(`SELECT pg_backend_pid() AS pid`)).rows[0].pid as number;
    try {
      // two stores of the same new 3 MiB at once: the second finds what the first committed (or waits
      // on its insert in flight), stores the rest; each chunk is written once between them
      const before = await rows();
      const state = randomBytes(3 * MiB);
      await t1.query('BEGIN');
      await t2.query('BEGIN');
      const [id1, id2] = [await record(t1), await record(t2)];
      const first = gated(state, 2); // chunk 0 inserted (by the time piece 2 is asked for), not committed
      const w1 = vmData.write(em(t1), id1, first.source, Number.MAX_SAFE_INTEGER);
      await first.at;
      const w2 = vmData.write(em(t2), id2, (async function* () { yield state; })(), Number.MAX_SAFE_INTEGER);
      first.release();
      const s1 = await w1;
      await commit(t1, id1, s1);
      const s2 = await w2;
      await commit(t2, id2, s2);
      expect(s1.written + s2.written).toBe(3);
      expect(await rows()).toBe(before + 3);
      expect((await readBack(id2, s2.sizeBytes, s2.sha256)).equals(state)).toBe(true);

      // a store reusing chunks 0 and 1 holds them (FOR KEY SHARE) while id1 and id2 are deleted and
      // collected: chunk 2 (not reused) goes, 0 and 1 stay
      await t1.query('BEGIN');
      const id3 = await record(t1);
      const state3 = Buffer.concat([state.subarray(0, 2 * MiB), randomBytes(2 * MiB)]);
      const reuse = gated(state3, 3); // chunks 0 and 1 locked by then, the new chunk 2 on its way
      const w3 = vmData.write(em(t1), id3, reuse.source, Number.MAX_SAFE_INTEGER);
      await reuse.at;
      // the new chunk 2 is committed on its own, before its manifest (the old chunks 0-2 are there too)
      await until('the new chunk 2 stored', 10_000, async () => (await rows()) === before + 4, 20);
      await other.query('BEGIN');
      const refs = await chunks.held(em(other), [id1, id2]);
      await other.query(`DELETE FROM vm_snapshots WHERE id = ANY($1::uuid[])`, [[id1, id2]]);
      await other.query('COMMIT');
      await chunks.remove(refs); // chunks 0 and 1 locked: skipped; the old chunk 2 (not reused): collected
      expect(await rows()).toBe(before + 3);
      reuse.release();
      const s3 = await w3;
      await commit(t1, id3, s3);
      expect(s3.written).toBe(2);
      expect((await readBack(id3, s3.sizeBytes, s3.sha256)).equals(state3)).toBe(true);
      // the store's collector never takes a chunk a manifest refers to, even when asked for all
      await chunks.sweep();
      expect(await rows()).toBe(before + 4);
      await pg.query(`DELETE FROM vm_snapshots WHERE id = $1`, [id3]);
      expect(await chunks.sweep()).toBe(4);
      expect(await rows()).toBe(before);

      // two stores of the same two new chunks in opposite order, each held after inserting its first:
      // with both inserts inside the stores' transactions each waited for the other's (a deadlock,
      // one store aborted by PostgreSQL); each chunk committed by itself, both complete
      const [x, y] = [randomBytes(MiB), randomBytes(MiB)];
      const clear = new VmDataStore(chunks, null); // addresses: the sha256 of the plain bytes
      await t1.query('BEGIN');
      await t2.query('BEGIN');
      const [pid1, pid2] = [await pidOf(t1), await pidOf(t2)];
      const [id4, id5] = [await record(t1), await record(t2)];
      const xy = gated(Buffer.concat([x, y]), 1);
      const yx = gated(Buffer.concat([y, x]), 1);
      const w4 = clear.write(em(t1), id4, xy.source, Number.MAX_SAFE_INTEGER);
      const w5 = clear.write(em(t2), id5, yx.source, Number.MAX_SAFE_INTEGER);
      await Promise.all([xy.at, yx.at]);
      await until('each store\'s first chunk inserted', 10_000, async () => (await inserting(createHash('sha256').update(x).digest(), pid1)) && (await inserting(createHash('sha256').update(y).digest(), pid2)), 20);
      xy.release();
      yx.release();
      const [s4, s5] = await Promise.all([w4, w5]);
      await commit(t1, id4, s4);
      await commit(t2, id5, s5);
      expect(s4.written + s5.written).toBe(2);
      expect(await rows()).toBe(before + 2);
      const readClear = async (id: string, w: { sizeBytes: number; sha256: string }) => {
        const parts: Buffer[] = [];
        for await (const b of await clear.open({ id, sizeBytes: w.sizeBytes, sha256: w.sha256, encryptionKeyId: null })) parts.push(b);
        return Buffer.concat(parts);
      };
      expect((await readClear(id4, s4)).equals(Buffer.concat([x, y]))).toBe(true);
      expect((await readClear(id5, s5)).equals(Buffer.concat([y, x]))).toBe(true);
      await pg.query(`DELETE FROM vm_snapshots WHERE id = ANY($1::uuid[])`, [[id4, id5]]);
      expect(await chunks.sweep()).toBe(2);
    } finally {
      for (const c of clients) await c.end();
      await chunks.close();
    }
  });

  it('a delta names the chunks its session staged and sends the rest: the same bytes back, sealed; staged chunks outlive the snapshots that shared them', async () => {
    for (const id of (await ok(gw, `{ mySnapshots { id } }`, {}, user.token)).mySnapshots.map((x: { id: string }) => x.id)) {
      await ok(gw, `mutation($id: ID!) { deleteSnapshot(id: $id) }`, { id }, user.token);
    }
    const vmDataStaged = async () => (await ok(gw, `{ session(id: "${session.id}") { vmDataStaged { stagedAt chunks } } }`, {}, user.token)).session.vmDataStaged;
    const base = await rows();
    const state = randomBytes(3.5 * MiB);
    const staged = await putDelta('/staged', delta(state, new Set()));
    expect(staged.status).toBe(200);
    expect(await staged.json()).toEqual({ chunks: 4, chunksSent: 4, chunksWritten: 4 });
    expect(await vmDataStaged()).toEqual({ stagedAt: expect.any(String), chunks: 4 });
    expect(await rows()).toBe(base + 4);
    // the UA moved on: its second MiB changed; the save sends that chunk and the front, names the rest
    const next = Buffer.from(state);
    next[MiB + 5] ^= 1;
    next[3] ^= 1;
    const saved = await putDelta('?kind=FULL', delta(next, chunkHashes(state)));
    expect(saved.status).toBe(201);
    const { snapshotId } = (await saved.json()) as { snapshotId: string };
    expect(await rows()).toBe(base + 6);
    // its first chunk came with the save: its head is kept
    expect((await headOf(snapshotId)).opened).toEqual(next.subarray(0, 256));
    expect(await addresses(snapshotId)).toHaveLength(4);
    const event = (await ok(gw, `{ session(id: "${session.id}") { events(last: 20) { type data } } }`, {}, user.token)).session.events.filter((e: { type: string }) => e.type === 'SNAPSHOT_SAVED').at(-1);
    expect(event.data).toMatchObject({ snapshotId, sha256: sha(next), chunks: 4, chunksSent: 2, chunksWritten: 2 });
    await restoreOnVm(snapshotId);
    const back = await download(snapshotId);
    expect(back.headers.get('x-uve-sha256')).toBe(sha(next));
    expect(Buffer.from(await back.arrayBuffer()).equals(next)).toBe(true);
    await pg.query(`UPDATE sessions SET restored_from_id = NULL WHERE id = $1`, [session.id]);
    // the snapshot goes: the chunks it had alone go with it, the staged ones stay, and name again
    await ok(gw, `mutation($id: ID!) { deleteSnapshot(id: $id) }`, { id: snapshotId }, user.token);
    expect(await rows()).toBe(base + 4);
    const again = await putDelta('?kind=FULL', delta(state, chunkHashes(state)));
    expect(again.status).toBe(201);
    expect(await rows()).toBe(base + 4);
    const { snapshotId: id2 } = (await again.json()) as { snapshotId: string };
    // every chunk named as staged, none sent: no head (a restore prepares by the first bytes)
    expect((await headOf(id2)).kept).toBeNull();
    await restoreOnVm(id2);
    expect(Buffer.from(await (await download(id2)).arrayBuffer()).equals(state)).toBe(true);
    await pg.query(`UPDATE sessions SET restored_from_id = NULL WHERE id = $1`, [session.id]);
  });

  it('refuses a delta that names a chunk its session did not stage, sends bytes that are not what they say, or is cut short or not a delta, and keeps nothing of it', async () => {
    const before = [await store.count(), await rows()];
    const state = randomBytes(2 * MiB + 10);
    const notStaged = await putDelta('?kind=FULL', delta(state, chunkHashes(state)));
    expect(notStaged.status).toBe(409);
    expect(await notStaged.json()).toEqual({ error: { code: 'NOT_STAGED', message: expect.stringMatching(/names chunk 0 \(sha256 [0-9a-f]{64}\) as staged, and this session holds no such staged chunk; send it whole/) } });
    const lying = delta(state, new Set());
    lying[lying.length - 1] ^= 1; // the last chunk's bytes, after the list that named their sha256
    const damaged = await putDelta('?kind=FULL', lying);
    expect(damaged.status).toBe(422);
    expect(((await damaged.json()) as { error: { code: string; message: string } }).error).toEqual({ code: 'DAMAGED', message: expect.stringMatching(/delta chunk 2 is not what its sha256 says/) });
    const short = await putDelta('?kind=FULL', delta(state, new Set()).subarray(0, 52 + 33 * 3 + MiB));
    expect(short.status).toBe(400);
    expect(((await short.json()) as { error: { message: string } }).error.message).toMatch(/ends \d+ bytes short/);
    const garbage = await putDelta('/staged', randomBytes(200));
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { error: { message: string } }).error.message).toMatch(/not a VM Data delta/);
    const whole = await putDelta('/staged', state, 'application/octet-stream');
    expect(whole.status).toBe(415);
    expect([await store.count(), await rows()]).toEqual(before);
  });
} else {
  it('keeps no staged state: a staging is refused, the VM then saves whole', async () => {
    const res = await putDelta('/staged', delta(randomBytes(MiB), new Set()));
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_STAGED');
  });
}

it('a gateway told to stop lets an upload under way finish before it closes its connections and the database', async () => {
  let pulled = 0;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let reading!: () => void;
  const gatewayReading = new Promise<void>((r) => (reading = r));
  const uploading = upload(new ReadableStream<Uint8Array>({
    async pull(c) {
      pulled++;
      if (pulled === 3) reading(); // the gateway reads the body (it pulls only as it stores)
      if (pulled === 4) await released;
      if (pulled > 6) return c.close();
      c.enqueue(randomBytes(256 * 1024));
    },
  }));
  await gatewayReading;
  gw.child.kill('SIGTERM');
  // the stop waits for the upload (longer than the GraphQL server's drain would), which then goes on
  await until('the gateway waiting for the upload', 30_000, async () => gw.output().includes('stopping: waiting for VM Data transfers under way'));
  expect(await fetch(`${gw.url}/graphql?query=%7B__typename%7D`).then(() => 'answered', () => 'refused')).toBe('refused');
  release();
  const res = await uploading;
  expect(res.status).toBe(201);
  expect(((await res.json()) as { sizeBytes: number }).sizeBytes).toBe(6 * 256 * 1024);
  await new Promise((r) => (gw.child.exitCode !== null ? r(null) : gw.child.once('exit', r)));
  expect(gw.output()).not.toMatch(/Connection terminated|VM Data transfers cut/);
});
});
