// Reconnection with VM Data (seed 7.2, Annex B.1) end to end: a real gateway with two PROCESS VMs
// running the real vm-agent, real UVE-3 streams. A user draws in paint, drops the socket without a
// goodbye and asks for the UA again: the session continues on the other VM process, which restored
// the VM Data (FULL for NO_LOSS, the app data for NORMAL) before its first frame. Corrupted VM Data
// is caught by its checksum and the UA starts fresh, saying why.
import { Client as PgClient } from 'pg';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, idleVms, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { agentPid, near, openStream, pixel, playGame, shipX, uaId, vmSecret } from '../support/stream';
import { CLOSE } from '@uve/protocol';
import type { FrameEvent } from '@uve/client';

let redis: TestRedis;
let gw: GatewayProcess;
let dbUrl: string;
let admin: string;
const WHITE = { r: 255, g: 255, b: 255 };
const RED = { r: 255, g: 0, b: 0 };

beforeAll(async () => {
  redis = await startRedis();
  dbUrl = await freshDatabase();
  // NO_LOSS sessions stage their state every second: every test's save may be a delta (10 s by default);
  // the restore is done when the user is back, on the path these tests look at (restore-ahead.test.ts
  // has it done while the user is away)
  gw = await startGateway({ DATABASE_URL: dbUrl, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'reconnect', UVE_SAMPLE_UAS: 'true', UVE_WARM_VMS: '2', UVE_VM_CAPACITY: '4', UVE_VM_DATA_STAGE_S: '1', UVE_RESTORE_AHEAD: '0' });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  await idleVms(gw, admin, 2);
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await redis?.stop();
});

const REQUEST = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id state reconnections vm { id } restoredFrom { id kind } connection { url token } } }`;
type Requested = { id: string; state: string; reconnections: number; vm: { id: string }; restoredFrom: { id: string; kind: string } | null; connection: { url: string; token: string } };

const TERMINAL = { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] };

async function request(token: string, ua: string, method: 'NORMAL' | 'NO_LOSS', fresh = false, sessionId?: string): Promise<Requested> {
  const d = await ok(gw, REQUEST, { i: { uaId: ua, reconnectionMethod: method, fresh, terminal: TERMINAL, ...(sessionId ? { sessionId } : {}) } }, token);
  return d.requestApplication as Requested;
}

const sessionOf = async (id: string) =>
  (await ok(gw, `{ session(id: "${id}") { state reconnections vm { id } restoredFrom { id } events(last: 50) { type data } } }`, {}, admin)).session as {
    state: string; reconnections: number; vm: { id: string } | null; restoredFrom: { id: string } | null; events: { type: string; data: Record<string, unknown> }[];
  };

/** Paints a red dot at (200, 150), drops the socket without a bye, and waits for the VM Data saved at the drop. */
async function drawAndDrop(method: 'NORMAL' | 'NO_LOSS', as?: { token: string }) {
  const user = as ?? await registerUser(gw, `rc-${method.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}`);
  const paint = await uaId(gw, user.token, 'paint');
  const s = await request(user.token, paint, method);
  const stream = await openStream(s.connection);
  const first = await stream.frame(() => true, 'at all');
  expect(near(pixel(first, 200, 150), WHITE)).toBe(true);
  const drawn = await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 200, y: 150, button: 0 }, 'after painting');
  expect(near(pixel(drawn, 200, 150), RED)).toBe(true);
  const saved = await dropped(s.id, stream);
  return { user, paint, s, saved: saved.data as { snapshotId: string; kind: string; sha256: string; chunks: number; chunksWritten: number; timing: Record<string, number> } };
}

/** Closes the stream without a bye (an unexpected disconnect); the session's SNAPSHOT_SAVED once it is DISCONNECTED. */
async function dropped(sessionId: string, stream: { client: { close(): void } }) {
  stream.client.close();
  return until('the VM Data saved at the drop', 20_000, async () => {
    const now = await sessionOf(sessionId);
    return now.state === 'DISCONNECTED' ? now.events.find((e) => e.type === 'SNAPSHOT_SAVED') ?? null : null;
  });
}

it('NO_LOSS: a dropped session continues on another VM process, its drawing restored before the first frame', async () => {
  const { user, paint, s, saved } = await drawAndDrop('NO_LOSS');
  expect(saved.kind).toBe('FULL');
  // where the save's time went, the VM's stages and the VMM's, in order on this host's one clock
  const t = saved.timing;
  expect([t.startedAt, t.capturedAt, t.encodedAt, t.receivedAt, t.storedAt].every((v) => typeof v === 'number')).toBe(true);
  expect(t.startedAt).toBeLessThanOrEqual(t.capturedAt);
  expect(t.capturedAt).toBeLessThanOrEqual(t.encodedAt);
  expect(t.encodedAt).toBeLessThanOrEqual(t.receivedAt + 1); // the VM's clock is sub-millisecond, the VMM's whole
  expect(t.receivedAt).toBeLessThanOrEqual(t.storedAt);
  expect(t.storedAt).toBeGreaterThan(Date.now() - 60_000);
  // and how much of it the store wrote (the rest it held already: content addressing)
  expect(saved.chunks).toBeGreaterThanOrEqual(1);
  expect(saved.chunksWritten).toBeGreaterThanOrEqual(0);
  expect(saved.chunksWritten).toBeLessThanOrEqual(saved.chunks);
  const again = await request(user.token, paint, 'NO_LOSS');
  expect(again.id).toBe(s.id); // the same session, not a new one
  expect(again.vm.id).not.toBe(s.vm.id);
  expect(again.reconnections).toBe(1);
  expect(again.restoredFrom).toEqual({ id: saved.snapshotId, kind: 'FULL' });
  const stream = await openStream(again.connection);
  try {
    // the VM tells the UC what became of the VM Data (the SDK's `restored` event)
    expect(stream.welcome.vmData).toEqual({ snapshotId: saved.snapshotId, restored: true, kind: 'FULL' });
    const first = await stream.frame(() => true, 'after the restore');
    expect(near(pixel(first, 200, 150), RED)).toBe(true);
    expect(near(pixel(first, 400, 300), WHITE)).toBe(true);
    const now = await until('the session ACTIVE with SNAPSHOT_RESTORED', 15_000, async () => {
      const x = await sessionOf(s.id);
      return x.state === 'ACTIVE' && x.events.some((e) => e.type === 'SNAPSHOT_RESTORED') ? x : null;
    });
    const types = now.events.map((e) => e.type);
    expect(types.indexOf('RECONNECTED')).toBeGreaterThan(types.indexOf('DISCONNECTED'));
    // moved by policy (WASM NO_LOSS_SCOPE ANY_VM), from the VM that lost the client
    expect(now.events.find((e) => e.type === 'RECONNECTED')!.data).toMatchObject({ sameVm: false, fromVmId: s.vm.id, vmId: again.vm.id });
    expect(now.events.find((e) => e.type === 'SNAPSHOT_RESTORED')!.data).toMatchObject({ snapshotId: saved.snapshotId, kind: 'FULL', vmId: again.vm.id });
    expect(types).not.toContain('SNAPSHOT_RESTORE_FAILED');
    expect(now).toMatchObject({ reconnections: 1, vm: { id: again.vm.id }, restoredFrom: { id: saved.snapshotId } });
    // the old VM was told to free the session: its slot is free again
    await until('the old VM to free the session', 15_000, async () => {
      const vms = (await ok(gw, `{ vms(platform: WASM) { id endpoint } }`, {}, admin)).vms as { id: string; endpoint: string }[];
      const old = vms.find((v) => v.id === s.vm.id)!;
      const h = (await (await fetch(`${old.endpoint.replace(/^ws/, 'http')}/healthz`)).json()) as { sessions: number };
      return h.sessions === 0;
    });
  } finally {
    await stream.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
});

it('a terminal back before the VMM heard of its drop, naming its session, continues it on its VM: no second session', async () => {
  const user = await registerUser(gw, 'rc-unheard');
  const paint = await uaId(gw, user.token, 'paint');
  const s = await request(user.token, paint, 'NO_LOSS');
  const gone = await openStream(s.connection);
  await gone.frame(() => true, 'at all');
  expect(near(pixel(await gone.inputAndFrame({ kind: 'pointer', type: 'down', x: 200, y: 150, button: 0 }, 'after painting'), 200, 150), RED)).toBe(true);
  // the old connection is not closed: to its VM it is still there, as one that went silent is
  const again = await request(user.token, paint, 'NO_LOSS', false, s.id);
  expect(again).toMatchObject({ id: s.id, state: 'ACTIVE', vm: { id: s.vm.id }, restoredFrom: null });
  const stream = await openStream(again.connection);
  try {
    // the same UA, alive: the drawing is there without any VM Data
    expect(stream.welcome.vmData).toBeUndefined();
    expect(near(pixel(await stream.frame(() => true, 'on the new connection'), 200, 150), RED)).toBe(true);
    expect(await gone.control('close')).toMatchObject({ code: CLOSE.REPLACED, reconnecting: false });
    const now = await until('the replacement reported: DISCONNECTED, then RECONNECTED', 15_000, async () => {
      const x = await sessionOf(s.id);
      return x.state === 'ACTIVE' && x.reconnections === 1 ? x : null;
    });
    const types = now.events.map((e) => e.type);
    expect(now.events.find((e) => e.type === 'DISCONNECTED')!.data).toMatchObject({ unexpected: false, reason: 'replaced by a newer connection of this session' });
    expect(types.lastIndexOf('RECONNECTED')).toBeGreaterThan(types.indexOf('DISCONNECTED'));
    expect(types).not.toContain('SNAPSHOT_SAVED'); // nothing to save: the session never left its UA
    const open = (await ok(gw, `{ mySessions(active: true) { id } }`, {}, user.token)).mySessions as { id: string }[];
    expect(open.map((x) => x.id)).toEqual([s.id]);
    // a session that is not the caller's is not found; one of another UA is refused
    const other = await registerUser(gw, 'rc-unheard-other');
    const notMine = await gql(gw, REQUEST, { i: { uaId: paint, reconnectionMethod: 'NO_LOSS', terminal: TERMINAL, sessionId: s.id } }, other.token);
    expect(notMine.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const game = await uaId(gw, user.token, 'game');
    const wrongUa = await gql(gw, REQUEST, { i: { uaId: game, reconnectionMethod: 'NO_LOSS', terminal: TERMINAL, sessionId: s.id } }, user.token);
    expect(wrongUa.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'sessionId' } });
  } finally {
    await stream.close();
    await gone.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
});

it("a watcher's suspension outlives a drop: the session moved to another VM comes back SUSPENDED, and only the watcher resumes it", async () => {
  const user = await registerUser(gw, 'rc-suspended');
  const watcher = await registerUser(gw, 'rc-suspended-watcher');
  await ok(gw, `mutation { assignWatcher(watcherId: "${watcher.id}", watcheeId: "${user.id}", privileges: [VIEW, SUSPEND]) { id } }`, {}, admin);
  const paint = await uaId(gw, user.token, 'paint');
  const s = await request(user.token, paint, 'NO_LOSS');
  const stream = await openStream(s.connection);
  await stream.frame(() => true, 'at all');
  await ok(gw, `mutation($w: ID!) { requestMonitoring(watcheeId: $w) { id } }`, { w: user.id }, watcher.token);
  const suspended = await ok(gw, `mutation { suspendSession(sessionId: "${s.id}", reason: "bedtime") { state } }`, {}, watcher.token);
  expect(suspended.suspendSession.state).toBe('SUSPENDED');
  await stream.control('suspended');
  await dropped(s.id, stream);
  const again = await request(user.token, paint, 'NO_LOSS');
  expect(again.id).toBe(s.id);
  expect(again.vm.id).not.toBe(s.vm.id);
  const back = await openStream(again.connection);
  try {
    // the new VM started the UA suspended: the user's input is refused, as before the drop
    expect(back.welcome).toMatchObject({ suspended: true });
    back.client.sendInput({ kind: 'pointer', type: 'down', x: 300, y: 200, button: 0 });
    expect(await back.control('notice')).toMatchObject({ code: 'SUSPENDED' });
    const now = await until('the session SUSPENDED again', 15_000, async () => {
      const x = await sessionOf(s.id);
      return x.state === 'SUSPENDED' && x.reconnections === 1 ? x : null;
    });
    expect(now.events.at(-1)).toMatchObject({ type: 'SUSPENDED', data: { reason: 'bedtime', kept: true, byUserId: watcher.id } });
    // the user cannot undo it; the watcher can, and the UA goes on
    const byUser = await gql(gw, `mutation { resumeSession(sessionId: "${s.id}") { state } }`, {}, user.token);
    expect(byUser.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await ok(gw, `mutation { resumeSession(sessionId: "${s.id}") { state } }`, {}, watcher.token)).resumeSession.state).toBe('ACTIVE');
    await back.control('resumed');
    expect(near(pixel(await back.inputAndFrame({ kind: 'pointer', type: 'down', x: 200, y: 150, button: 0 }, 'after resuming'), 200, 150), RED)).toBe(true);
  } finally {
    await back.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
});

it('NO_LOSS: the VM Data of a dropped session outlives a save of another session of the same UA that began before it and ends after it', async () => {
  // the user's other paint session, whose VM saves its VM Data (as at an endSession) slowly: the
  // upload begins, holds, and commits only after the dropped session's VM Data was stored
  const user = await registerUser(gw, 'rc-retention');
  const paint = await uaId(gw, user.token, 'paint');
  const other = await request(user.token, paint, 'NO_LOSS');
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let reading!: () => void;
  const gatewayReading = new Promise<void>((r) => (reading = r));
  let pulled = 0;
  const uploading = fetch(`${gw.url}/vmm/vm-data/sessions/${other.id}?kind=FULL`, {
    method: 'PUT',
    headers: { 'x-uve-vm-id': other.vm.id, authorization: `Bearer ${vmSecret(other.vm.id)}` },
    body: new ReadableStream<Uint8Array>({
      async pull(c) {
        if (++pulled === 2) reading();
        if (pulled === 3) await released;
        if (pulled > 3) return c.close();
        c.enqueue(new Uint8Array(64 * 1024).fill(pulled));
      },
    }),
    duplex: 'half',
  } as RequestInit);
  await gatewayReading;
  const { s, saved } = await drawAndDrop('NO_LOSS', user);
  release();
  expect((await uploading).status).toBe(201);
  // it stays: the dropped session's reconnection needs it (before, the later commit deleted it as
  // "not the newest", and the session went back to its old VM or started fresh)
  const mine = (await ok(gw, `{ mySnapshots { id } }`, {}, user.token)).mySnapshots.map((x: { id: string }) => x.id);
  expect(mine).toContain(saved.snapshotId);
  const again = await request(user.token, paint, 'NO_LOSS');
  expect(again).toMatchObject({ id: s.id, restoredFrom: { id: saved.snapshotId, kind: 'FULL' } });
  expect(again.vm.id).not.toBe(s.vm.id);
  const stream = await openStream(again.connection);
  try {
    expect(stream.welcome.vmData).toEqual({ snapshotId: saved.snapshotId, restored: true, kind: 'FULL' });
    expect(near(pixel(await stream.frame(() => true, 'after the restore'), 200, 150), RED)).toBe(true);
  } finally {
    await stream.close();
  }
  for (const id of [s.id, other.id]) await ok(gw, `mutation { endSession(sessionId: "${id}") { state } }`, {}, user.token);
});

it('NORMAL: after the same drop the UA restarts with its application data', async () => {
  const { user, paint, s, saved } = await drawAndDrop('NORMAL');
  expect(saved.kind).toBe('APP_DATA');
  // no head is kept for it: only a FULL restore prepares its UA by one
  const pg = new PgClient({ connectionString: dbUrl });
  await pg.connect();
  try {
    expect((await pg.query(`SELECT head FROM vm_snapshots WHERE id = $1`, [saved.snapshotId])).rows).toEqual([{ head: null }]);
  } finally {
    await pg.end();
  }
  const again = await request(user.token, paint, 'NORMAL');
  expect(again).toMatchObject({ id: s.id, reconnections: 1, restoredFrom: { id: saved.snapshotId, kind: 'APP_DATA' } });
  const stream = await openStream(again.connection);
  try {
    const first = await stream.frame(() => true, 'after the restart');
    expect(near(pixel(first, 200, 150), RED)).toBe(true);
    await until('SNAPSHOT_RESTORED', 15_000, async () => (await sessionOf(s.id)).events.some((e) => e.type === 'SNAPSHOT_RESTORED'));
  } finally {
    await stream.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
});

it('a corrupted snapshot is caught by its checksum: the UA starts fresh with a clear event, nothing crashes', async () => {
  const { user, paint, s, saved } = await drawAndDrop('NO_LOSS');
  const pg = new PgClient({ connectionString: dbUrl });
  await pg.connect();
  try {
    const r = await pg.query(`UPDATE vm_data_chunks SET data = overlay(data placing decode(lpad(to_hex(get_byte(data, 100) # 255), 2, '0'), 'hex') from 101 for 1) WHERE address = (SELECT address FROM vm_data_manifests WHERE snapshot_id = $1 AND seq = 0)`, [saved.snapshotId]);
    expect(r.rowCount).toBe(1);
  } finally {
    await pg.end();
  }
  const again = await request(user.token, paint, 'NO_LOSS');
  expect(again).toMatchObject({ id: s.id, reconnections: 1 });
  const stream = await openStream(again.connection);
  try {
    expect(stream.welcome.vmData).toEqual({ snapshotId: saved.snapshotId, restored: false, reason: expect.stringMatching(/checksum mismatch/) });
    const first = await stream.frame(() => true, 'after the fresh start');
    expect(near(pixel(first, 200, 150), WHITE)).toBe(true); // fresh: no drawing
    const now = await until('SNAPSHOT_RESTORE_FAILED', 15_000, async () => {
      const x = await sessionOf(s.id);
      return x.events.some((e) => e.type === 'SNAPSHOT_RESTORE_FAILED') ? x : null;
    });
    expect(now.events.find((e) => e.type === 'SNAPSHOT_RESTORE_FAILED')!.data).toMatchObject({ snapshotId: saved.snapshotId, freshStart: true, reason: expect.stringMatching(/checksum mismatch/) });
    expect(now.events.map((e) => e.type)).not.toContain('SNAPSHOT_RESTORED');
    // read again: the row and its events are two statements, and the poll above may have read the
    // row just before the report's commit and the events just after (restoredFrom still set)
    expect((await sessionOf(s.id)).restoredFrom).toBeNull();
    // the stream works: input still paints
    const drawn = await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 300, y: 200, button: 0 }, 'after painting again');
    expect(near(pixel(drawn, 300, 200), RED)).toBe(true);
  } finally {
    await stream.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
});

it('fresh: true starts the UA afresh and ends the disconnected session', async () => {
  const { user, paint, s } = await drawAndDrop('NO_LOSS');
  const fresh = await request(user.token, paint, 'NO_LOSS', true);
  expect(fresh.id).not.toBe(s.id);
  expect(fresh.restoredFrom).toBeNull();
  expect((await sessionOf(s.id)).state).toBe('ENDED');
  const stream = await openStream(fresh.connection);
  try {
    expect(near(pixel(await stream.frame(() => true, 'fresh'), 200, 150), WHITE)).toBe(true);
  } finally {
    await stream.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${fresh.id}") { state } }`, {}, user.token);
});

/** the memory UA's state square at (8, 8): grey before any check, green when its memory checked out intact */
const square = (f: FrameEvent) => pixel(f, 8, 8);
const GREY = { r: 128, g: 128, b: 128 };
const GREEN = { r: 0, g: 200, b: 0 };
const key = (code: string, k: string) => ({ kind: 'key' as const, type: 'down' as const, key: k, code });

it('NO_LOSS with the state staged ahead: the save at the drop sends only what changed since, and the state comes back whole', async () => {
  const user = await registerUser(gw, 'rc-staged');
  const memory = await uaId(gw, user.token, 'memory');
  const s = await request(user.token, memory, 'NO_LOSS');
  const stream = await openStream(s.connection);
  await stream.frame(() => true, 'at all');
  // 6 MiB of incompressible memory
  stream.client.sendInput(key('Digit6', '6'));
  const enter = stream.client.sendInput(key('Enter', 'Enter'));
  await stream.frame((f) => f.header.inputSeq >= enter && near(square(f), GREY), 'with 6 MiB filled', 60_000);
  const filledAt = Date.now();
  const staged = async () => (await ok(gw, `{ session(id: "${s.id}") { vmDataStaged { stagedAt chunks } } }`, {}, user.token)).session.vmDataStaged as { stagedAt: string; chunks: number } | null;
  const ahead = await until('the filled state staged', 20_000, async () => {
    const now = await staged();
    return now && Date.parse(now.stagedAt) > filledAt ? now : null;
  }, 100);
  expect(ahead.chunks).toBeGreaterThanOrEqual(6);
  stream.client.close(); // no bye
  const saved = await until('the VM Data saved at the drop', 20_000, async () => (await sessionOf(s.id)).events.find((e) => e.type === 'SNAPSHOT_SAVED')?.data ?? null);
  expect(saved).toMatchObject({ kind: 'FULL' });
  const { chunks, chunksSent, chunksWritten } = saved as { chunks: number; chunksSent: number; chunksWritten: number };
  // the UA idled since: its memory is as staged, only what moves with the clock (the front) went
  expect(chunks).toBeGreaterThanOrEqual(6);
  expect(chunksSent).toBeGreaterThanOrEqual(1);
  expect(chunksSent).toBeLessThanOrEqual(2);
  expect(chunksWritten).toBeLessThanOrEqual(chunksSent);
  const again = await request(user.token, memory, 'NO_LOSS');
  expect(again).toMatchObject({ id: s.id, reconnections: 1, restoredFrom: { kind: 'FULL' } });
  expect(again.vm.id).not.toBe(s.vm.id);
  // what the reconnection restores is what the session has staged from then on (as of its save),
  // not what it staged before the drop: the new VM does not send the whole state again
  const placed = (await ok(gw, `{ session(id: "${s.id}") { restoredFrom { createdAt } vmDataStaged { stagedAt chunks } } }`, {}, user.token)).session;
  expect(placed.vmDataStaged.chunks).toBe(chunks);
  expect(Date.parse(placed.vmDataStaged.stagedAt)).toBeGreaterThanOrEqual(Date.parse(placed.restoredFrom.createdAt));
  const next = await openStream(again.connection);
  try {
    await next.frame(() => true, 'after the restore');
    // the UA checks its whole memory block by block: green only when every byte came back
    const v = next.client.sendInput(key('KeyV', 'v'));
    await next.frame((f) => f.header.inputSeq >= v && near(square(f), GREEN), 'with the restored memory checked intact', 30_000);
  } finally {
    // dropped again at once, staged or not by the new VM: its save names the restored chunks
    next.client.close();
  }
  const resaved = await until('the VM Data saved at the second drop', 20_000, async () => (await sessionOf(s.id)).events.filter((e) => e.type === 'SNAPSHOT_SAVED')[1]?.data ?? null);
  expect(resaved).toMatchObject({ kind: 'FULL', chunks });
  expect((resaved as { chunksSent: number }).chunksSent).toBeLessThanOrEqual(2);
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
  // the last save (at the end) lets go of what the session staged
  await until('nothing staged after the end', 20_000, async () => (await staged()) === null, 100);
}, 120_000);

/**
 * Reconnects a game session whose VM was killed: on another VM, restored from `snapshotId` (any FULL
 * snapshot when unset), its ship at `shipAt`; then ends it.
 */
async function gameContinuesElsewhere(token: string, game: string, s: Pick<Requested, 'id' | 'vm'>, shipAt: number, snapshotId?: string): Promise<void> {
  const again = await request(token, game, 'NO_LOSS');
  expect(again).toMatchObject({ id: s.id, reconnections: 1, restoredFrom: { kind: 'FULL', ...(snapshotId ? { id: snapshotId } : {}) } });
  expect(again.vm.id).not.toBe(s.vm.id);
  const next = await openStream(again.connection);
  try {
    expect(shipX(await next.frame(() => true, 'after the restore'))).toBe(shipAt);
    await until('SNAPSHOT_RESTORED', 15_000, async () => (await sessionOf(s.id)).events.some((e) => e.type === 'SNAPSHOT_RESTORED'));
  } finally {
    await next.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, token);
}

it('NO_LOSS with the VM agent killed before it could save: the game continues on another VM process from what it staged last', async () => {
  const { user, game, s, stream, moved, movedAt } = await playGame(gw, 'rc-staged-killed', true);
  // killed with the socket still open: the VM never sees a drop, nothing is saved
  process.kill(agentPid(s.vm.id), 'SIGKILL');
  await until('the killed VM OFFLINE', 15_000, async () => (await ok(gw, `{ vm(id: "${s.vm.id}") { status } }`, {}, admin)).vm.status === 'OFFLINE');
  const kept = await until('the staged state kept as its VM Data', 15_000, async () => {
    const saved = (await sessionOf(s.id)).events.filter((e) => e.type === 'SNAPSHOT_SAVED');
    return saved.length ? saved : null;
  });
  expect(kept).toHaveLength(1);
  expect(kept[0]!.data).toMatchObject({ kind: 'FULL', staged: true, chunksSent: 0 });
  expect(Date.parse(kept[0]!.data.stagedAt as string)).toBeGreaterThan(movedAt);
  await stream.close().catch(() => undefined);
  await gameContinuesElsewhere(user.token, game, s, moved, kept[0]!.data.snapshotId as string);
});

it('NO_LOSS after kill -9 of the VM agent: the game continues on another VM process from the saved state', async () => {
  const user = await registerUser(gw, 'rc-killed');
  const game = await uaId(gw, user.token, 'game');
  const s = await request(user.token, game, 'NO_LOSS');
  const stream = await openStream(s.connection);
  const start = shipX(await stream.frame((f) => shipX(f) >= 0, 'with the ship'));
  let f = await stream.inputAndFrame({ kind: 'key', type: 'down', key: 'ArrowRight', code: 'ArrowRight' }, 'after a step right');
  f = await stream.inputAndFrame({ kind: 'key', type: 'down', key: 'ArrowRight', code: 'ArrowRight' }, 'after two steps right');
  const moved = shipX(f);
  expect(moved).toBe(start + 32);
  stream.client.close(); // no bye
  await until('the VM Data saved at the drop', 20_000, async () => (await sessionOf(s.id)).events.some((e) => e.type === 'SNAPSHOT_SAVED'));
  process.kill(agentPid(s.vm.id), 'SIGKILL');
  await until('the killed VM OFFLINE', 15_000, async () => (await ok(gw, `{ vm(id: "${s.vm.id}") { status } }`, {}, admin)).vm.status === 'OFFLINE');
  await gameContinuesElsewhere(user.token, game, s, moved);
});
