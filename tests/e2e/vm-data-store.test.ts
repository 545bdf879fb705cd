// The VM Data store behind UVE-5 (modules/snapshots/vm-data-store*.ts) through its HTTP endpoint,
// as a real PROCESS VM calls it with its own secret, for both stores (UVE_VM_DATA_STORE): chunks
// in PostgreSQL and files in a folder. Uploads stream into 1 MiB chunks sealed with AES-256-GCM
// (UVE_VM_DATA_KEY), too large is refused and leaves nothing, downloads give back the bytes, a
// flipped byte is refused by its checksum (before anything goes out when it is in the first chunk,
// by cutting the download short after), a chunk moved elsewhere does not open, retention keeps the
// newest UVE_VM_DATA_KEEP snapshots and deleteSnapshot removes the bytes.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { uaId, vmSecret } from '../support/stream';

const KEY = randomBytes(32).toString('hex');
const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** One stored chunk as a store keeps it: its sealed bytes and nonce. */
interface Kept { seq: number; data: Buffer; nonce: Buffer | null }

/** What a test needs to see and alter in a store's own place (rows or a file). */
interface Backend {
  env(): Record<string, string>;
  chunks(snapshotId: string): Promise<Kept[]>;
  /** flips the byte at `offset` of chunk `seq` (leaving its checksum) */
  flip(snapshotId: string, seq: number, offset: number): Promise<void>;
  /** swaps two chunks, checksums and all */
  swap(snapshotId: string, a: number, b: number): Promise<void>;
  /** how many snapshots have bytes in the store */
  count(): Promise<number>;
  dispose(): void;
}

/** the fs store's file layout (vm-data-store.fs.ts): magic, then per chunk seq, length, sealed, nonce, sha256, bytes */
const MAGIC = 8;
const HEADER = 4 + 4 + 1 + 12 + 32;
function parseFile(file: string): { at: number; seq: number; data: Buffer; nonce: Buffer | null; header: Buffer }[] {
  const b = fs.readFileSync(file);
  const out = [];
  for (let at = MAGIC; at < b.length;) {
    const header = b.subarray(at, at + HEADER);
    const len = header.readUInt32BE(4);
    out.push({ at, seq: header.readUInt32BE(0), nonce: header[8] ? Buffer.from(header.subarray(9, 21)) : null, data: b.subarray(at + HEADER, at + HEADER + len), header });
    at += HEADER + len;
  }
  return out;
}

let pg: PgClient;
let dbUrl: string;

function postgresBackend(): Backend {
  return {
    env: () => ({}),
    chunks: async (id) => (await pg.query(`SELECT seq, data, nonce FROM vm_data_chunks WHERE snapshot_id = $1 ORDER BY seq`, [id])).rows,
    flip: async (id, seq, offset) => {
      const r = await pg.query(`UPDATE vm_data_chunks SET data = overlay(data placing decode(lpad(to_hex(get_byte(data, $3) # 255), 2, '0'), 'hex') from $3 + 1 for 1) WHERE snapshot_id = $1 AND seq = $2`, [id, seq, offset]);
      expect(r.rowCount).toBe(1);
    },
    swap: async (id, a, b) => {
      await pg.query(`UPDATE vm_data_chunks SET seq = (CASE seq WHEN $2::int THEN $3::int ELSE $2::int END) + 100 WHERE snapshot_id = $1 AND seq IN ($2, $3)`, [id, a, b]);
      await pg.query(`UPDATE vm_data_chunks SET seq = seq - 100 WHERE snapshot_id = $1 AND seq >= 100`, [id]);
    },
    count: async () => (await pg.query(`SELECT count(DISTINCT snapshot_id)::int AS n FROM vm_data_chunks`)).rows[0].n,
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
  gw = await startGateway({ DATABASE_URL: dbUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: `vmstore-${name}`, UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: 'WASM', UVE_WARM_VMS: '1', UVE_VM_DATA_MAX_MB: '4', UVE_VM_DATA_KEY: KEY, UVE_VM_DATA_KEEP: '2', ...store.env() });
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

  await restoreOnVm(stored.snapshotId);
  const back = await download(stored.snapshotId);
  expect(back.status).toBe(200);
  expect(back.headers.get('x-uve-sha256')).toBe(sha(state));
  expect(Buffer.from(await back.arrayBuffer()).equals(state)).toBe(true);
});

it('refuses an upload over UVE_VM_DATA_MAX_MB with 413, whether announced or streamed, and keeps nothing of it', async () => {
  const before = await store.count();
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

it('a chunk moved to another place, checksum and all, does not open: refused before the first byte, cut short after', async () => {
  /** swaps two chunks of a snapshot with their checksums (each is sealed to its position) */
  const swapped = async (a: number, b: number) => {
    const stored = (await (await upload(randomBytes(2.5 * MiB))).json()) as { snapshotId: string };
    await restoreOnVm(stored.snapshotId);
    await store.swap(stored.snapshotId, a, b);
    return stored.snapshotId;
  };
  const first = await swapped(0, 1);
  const refused = await download(first);
  expect(refused.status).toBe(422);
  expect(await refused.json()).toEqual({ error: { code: 'DAMAGED', message: `VM Data chunk 0 of ${first} does not open with its key (tampered with or misplaced).` } });
  const later = await download(await swapped(1, 2));
  expect(later.status).toBe(200); // chunk 0 went out before chunk 1 failed to open
  await expect(later.arrayBuffer()).rejects.toThrow();
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

it('keeps the newest UVE_VM_DATA_KEEP snapshots of a user, UA and kind; deleteSnapshot removes one with its bytes', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push(((await (await upload(randomBytes(1000 + i))).json()) as { snapshotId: string }).snapshotId);
  const mine = (await ok(gw, `{ mySnapshots { id kind } }`, {}, user.token)).mySnapshots.filter((s: { kind: string }) => s.kind === 'FULL').map((s: { id: string }) => s.id);
  expect(mine.sort()).toEqual(ids.slice(1).sort());
  expect(await store.chunks(ids[0]!).catch(() => [])).toEqual([]);
  expect((await store.chunks(ids[2]!)).length).toBe(1);
  expect((await ok(gw, `mutation($id: ID!) { deleteSnapshot(id: $id) }`, { id: ids[2] }, user.token)).deleteSnapshot).toBe(true);
  expect(await store.chunks(ids[2]!).catch(() => [])).toEqual([]);
  expect(await store.count()).toBe(1);
});

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
