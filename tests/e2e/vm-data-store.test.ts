// The VM Data store behind UVE-5 (modules/snapshots/vm-data-store.ts) through its HTTP endpoint, as
// a real PROCESS VM calls it with its own secret: uploads stream into 1 MiB chunks sealed with
// AES-256-GCM (UVE_VM_DATA_KEY), too large is refused and leaves nothing, downloads give back the
// bytes, a flipped byte is refused by its checksum before anything goes out, and a chunk altered
// together with its checksum does not open (the download is cut short).
import { createHash, randomBytes } from 'node:crypto';
import { Client as PgClient } from 'pg';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { uaId, vmSecret } from '../support/stream';

let redis: TestRedis;
let gw: GatewayProcess;
let pg: PgClient;
let session: { id: string; vm: { id: string } };
let headers: Record<string, string>;
const KEY = randomBytes(32).toString('hex');
const MiB = 1024 * 1024;

beforeAll(async () => {
  redis = await startRedis();
  const db = await freshDatabase();
  gw = await startGateway({ DATABASE_URL: db, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'vmstore', UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: 'WASM', UVE_WARM_VMS: '1', UVE_VM_DATA_MAX_MB: '4', UVE_VM_DATA_KEY: KEY });
  pg = new PgClient({ connectionString: db });
  await pg.connect();
  const admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  await until('an idle WASM VM', 60_000, async () => ((await ok(gw, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, admin)).vms.length > 0), 100);
  const user = await registerUser(gw, 'vm-data-store');
  const paint = await uaId(gw, user.token, 'paint');
  session = (await ok(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id vm { id } } }`, {
    i: { uaId: paint, reconnectionMethod: 'NO_LOSS', terminal: { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] } },
  }, user.token)).requestApplication;
  const secret = vmSecret(session.vm.id);
  headers = { 'x-uve-vm-id': session.vm.id, authorization: `Bearer ${secret}` };
}, 90_000);

afterAll(async () => {
  await pg?.end();
  await gw?.stop();
  await redis?.stop();
});

const upload = (body: Uint8Array | ReadableStream<Uint8Array>) =>
  fetch(`${gw.url}/vmm/vm-data/sessions/${session.id}?kind=FULL`, { method: 'PUT', headers, body: body as unknown as ArrayBuffer, duplex: 'half' } as RequestInit);
/** lets the VM read a snapshot back: the VMM's record that its session restores it */
const restoreOnVm = (snapshotId: string) => pg.query(`UPDATE sessions SET restored_from_id = $1 WHERE id = $2`, [snapshotId, session.id]);
const download = (snapshotId: string) => fetch(`${gw.url}/vmm/vm-data/snapshots/${snapshotId}`, { headers });
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

it('streams an upload into sealed 1 MiB chunks and gives the same bytes back', async () => {
  const state = randomBytes(3.5 * MiB);
  const res = await upload(state);
  expect(res.status).toBe(201);
  const stored = (await res.json()) as { snapshotId: string; sizeBytes: number; sha256: string };
  expect(stored).toMatchObject({ sizeBytes: state.length, sha256: sha(state) });
  const chunks = (await pg.query(`SELECT seq, length(data)::int AS len, nonce, data FROM vm_data_chunks WHERE snapshot_id = $1 ORDER BY seq`, [stored.snapshotId])).rows;
  expect(chunks.map((c) => c.seq)).toEqual([0, 1, 2, 3]);
  // sealed: each chunk is its ciphertext and a 16-byte tag, under its own 12-byte nonce
  expect(chunks.map((c) => c.len)).toEqual([MiB + 16, MiB + 16, MiB + 16, 0.5 * MiB + 16]);
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
  const before = (await pg.query(`SELECT count(*)::int AS n FROM vm_data_chunks`)).rows[0].n;
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
  expect((await pg.query(`SELECT count(*)::int AS n FROM vm_data_chunks`)).rows[0].n).toBe(before);
  const empty = await upload(new Uint8Array(0));
  expect(empty.status).toBe(400);
});

it('refuses a snapshot with a flipped byte by its checksum before sending anything', async () => {
  const state = randomBytes(2.5 * MiB);
  const stored = (await (await upload(state)).json()) as { snapshotId: string };
  await restoreOnVm(stored.snapshotId);
  await pg.query(`UPDATE vm_data_chunks SET data = overlay(data placing decode(lpad(to_hex(get_byte(data, 9) # 255), 2, '0'), 'hex') from 10 for 1) WHERE snapshot_id = $1 AND seq = 2`, [stored.snapshotId]);
  const res = await download(stored.snapshotId);
  expect(res.status).toBe(422);
  expect(await res.json()).toEqual({ error: { code: 'DAMAGED', message: `VM Data checksum mismatch: chunk 2 of snapshot ${stored.snapshotId} is not what was stored.` } });
});

it('a chunk moved to another place, checksum and all, does not open: refused before the first byte, cut short after', async () => {
  /** swaps two chunks of a snapshot with their checksums (each is sealed to its position) */
  const swapped = async (a: number, b: number) => {
    const stored = (await (await upload(randomBytes(2.5 * MiB))).json()) as { snapshotId: string };
    await restoreOnVm(stored.snapshotId);
    await pg.query(`UPDATE vm_data_chunks SET seq = (CASE seq WHEN $2::int THEN $3::int ELSE $2::int END) + 100 WHERE snapshot_id = $1 AND seq IN ($2, $3)`, [stored.snapshotId, a, b]);
    await pg.query(`UPDATE vm_data_chunks SET seq = seq - 100 WHERE snapshot_id = $1 AND seq >= 100`, [stored.snapshotId]);
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
