// VMs on demand (issue: autoscaling pool) through the real gateway, real agents of the PROCESS
// provider and real streams: a request with no VM free waits for one the pool starts for it, many
// requests at once share the VMs being started, the pool returns to its warm count afterwards, and
// a request the limits cannot serve is refused at once with a true reason.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { openStream, requestUa, uaId } from '../support/stream';

let redis: TestRedis;
const gateways: GatewayProcess[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const g of gateways) await g.stop();
  await redis?.stop();
});

async function gateway(prefix: string, env: Record<string, string>): Promise<{ gw: GatewayProcess; admin: string }> {
  const gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: prefix, UVE_SAMPLE_UAS: 'true', UVE_DOCKER: 'off', ...env });
  gateways.push(gw);
  return { gw, admin: (await login(gw, ADMIN.username, ADMIN.password)).token };
}

const REQUEST = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id state vm { id } connection { url token } } }`;
const request = (gw: GatewayProcess, token: string, ua: string, codec = 'MJPEG') =>
  gql(gw, REQUEST, { i: { uaId: ua, terminal: { screenWidth: 640, screenHeight: 480, codecs: [codec], localResources: [] } } }, token);
const vmsOf = async (gw: GatewayProcess, admin: string) =>
  (await ok(gw, `{ vms { id status platform } }`, {}, admin)).vms as { id: string; status: string; platform: string }[];

it('starts a VM for a request when none runs, and the request waits for it instead of failing', async () => {
  const { gw, admin } = await gateway('ondemand', { UVE_WARM_VMS: '0', UVE_REQUEST_WAIT_MS: '30000' });
  expect(await vmsOf(gw, admin)).toEqual([]);
  const user = await registerUser(gw, 'first');
  const r = await request(gw, user.token, await uaId(gw, user.token, 'paint'));
  expect(r.errors).toBeUndefined();
  const s = r.data!.requestApplication;
  expect(s.state).toBe('ASSIGNED');
  const events = (await ok(gw, `{ session(id: "${s.id}") { events { type data } } }`, {}, user.token)).session.events;
  // the REQUESTED event told a watching client it was waiting for a VM, and why
  expect(events[0]).toMatchObject({ type: 'REQUESTED', data: { waitingForVm: true, reason: 'no WASM VM is running' } });
  const stream = await openStream(s.connection);
  try {
    await stream.frame(() => true, 'from the VM started on demand');
  } finally {
    await stream.close();
  }
  expect((await vmsOf(gw, admin)).filter((v) => v.platform === 'WASM')).toHaveLength(1);
});

it('serves 12 users at once with one warm VM of capacity 4, then goes back to the warm count', async () => {
  const { gw, admin } = await gateway('twelve', {
    UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM', UVE_VM_CAPACITY: '4', UVE_MAX_VMS: '4', UVE_REQUEST_WAIT_MS: '60000', UVE_VM_IDLE_RETIRE_MS: '3000',
  });
  await until('the warm VM', 30_000, async () => (await vmsOf(gw, admin)).some((v) => v.status === 'IDLE'));
  const users = await Promise.all(Array.from({ length: 12 }, (_, i) => registerUser(gw, `crowd${i}`)));
  const paint = await uaId(gw, users[0]!.token, 'paint');
  const results = await Promise.all(users.map((u) => request(gw, u.token, paint)));
  expect(results.filter((r) => r.errors).map((r) => r.errors![0]!.message)).toEqual([]);
  // every session is on a VM, none failed, and no VM holds more than its 4 slots
  const sessions = (await ok(gw, `{ sessions(limit: 50) { id state vm { id } events { type data } } }`, {}, admin)).sessions as { id: string; state: string; vm: { id: string } | null; events: unknown[] }[];
  const mine = sessions.filter((s) => results.some((r) => r.data!.requestApplication.id === s.id));
  expect(mine.filter((s) => s.state !== "ASSIGNED").map((s) => JSON.stringify(s.events.at(-1)))).toEqual([]);
  const perVm = new Map<string, number>();
  for (const s of mine) perVm.set(s.vm!.id, (perVm.get(s.vm!.id) ?? 0) + 1);
  expect([...perVm.entries()].filter(([, n]) => n > 4)).toEqual([]);
  expect(perVm.size).toBeGreaterThanOrEqual(3);
  for (const [r, u] of results.map((r, i) => [r, users[i]!] as const)) {
    await ok(gw, `mutation { endSession(sessionId: "${r.data!.requestApplication.id}") { state } }`, {}, u.token);
  }
  await until('the pool back to one warm VM', 60_000, async () => {
    const running = (await vmsOf(gw, admin)).filter((v) => ['IDLE', 'BUSY', 'PROVISIONING', 'DRAINING'].includes(v.status));
    return running.length === 1 && running[0]!.status === 'IDLE';
  }, 500);
}, 180_000);

it('refuses at once, with the true reason, when the limits allow no VM for the request', async () => {
  const { gw, admin } = await gateway('full', { UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM', UVE_VM_CAPACITY: '1', UVE_MAX_VMS: '1', UVE_REQUEST_WAIT_MS: '60000' });
  await until('the warm VM', 30_000, async () => (await vmsOf(gw, admin)).some((v) => v.status === 'IDLE'));
  const a = await registerUser(gw, 'occupant');
  const b = await registerUser(gw, 'latecomer');
  const paint = await uaId(gw, a.token, 'paint');
  expect((await request(gw, a.token, paint)).errors).toBeUndefined();
  const started = Date.now();
  const r = await request(gw, b.token, paint);
  expect(r.errors?.[0]?.extensions?.code).toBe('UNAVAILABLE');
  expect(r.errors?.[0]?.message).toMatch(/all 1 WASM VMs are full; all 1 VMs the pool may run \(UVE_MAX_VMS\) are in use/);
  // refused, not made to wait for a VM that cannot come
  expect(Date.now() - started).toBeLessThan(30_000);
  expect((await ok(gw, `{ mySessions { id } }`, {}, b.token)).mySessions).toEqual([]);
});

it('passes over a VM whose sessions keep its CPU high while another has headroom, and starts one when none has', async () => {
  // a low threshold: a game in motion heats its VM, idle paint sessions leave theirs cool
  const { gw, admin } = await gateway('cpu', {
    UVE_WARM_VMS: '0', UVE_VM_CAPACITY: '4', UVE_MAX_VMS: '3', UVE_REQUEST_WAIT_MS: '30000', UVE_VM_CPU_HIGH: '0.1', UVE_VM_IDLE_RETIRE_MS: '600000',
  });
  const provision = async () => (await ok(gw, `mutation { provisionVm(input: { platform: WASM, capacity: 4 }) { id startReason } }`, {}, admin)).provisionVm as { id: string; startReason: string };
  type VmRow = { id: string; status: string; startReason: string | null; load: { cpuLoad: number; source: string } | null };
  const vms = async () => (await ok(gw, `{ vms { id status startReason load { cpuLoad source } } }`, {}, admin)).vms as VmRow[];
  const load = async (id: string) => (await vms()).find((v) => v.id === id)?.load ?? null;
  const idle = (id: string) => until(`VM ${id} ready`, 30_000, async () => (await vms()).some((v) => v.id === id && v.status === 'IDLE'));

  const cool = await provision();
  expect(cool.startReason).toBe('provisioned by admin admin');
  await idle(cool.id);
  const users = await Promise.all(['p1', 'p2', 'g1', 'p3', 'g2'].map((n) => registerUser(gw, `cpu-${n}`)));
  const [p1, p2, g1, p3, g2] = users as [typeof users[0], typeof users[0], typeof users[0], typeof users[0], typeof users[0]];
  const paint = await uaId(gw, p1.token, 'paint');
  const game = await uaId(gw, p1.token, 'game');
  // two quiet sessions on the first VM
  for (const u of [p1, p2]) expect((await requestUa(gw, u.token, paint, { codec: 'MJPEG' })).vm.id).toBe(cool.id);
  const hot = await provision();
  await idle(hot.id);
  // fewer sessions: the game goes to the second VM, and keeps it busy
  const g1Session = await requestUa(gw, g1.token, game, { codec: 'MJPEG' });
  expect(g1Session.vm.id).toBe(hot.id);
  const streams = [await openStream(g1Session.connection)];
  const keys = ['ArrowLeft', 'ArrowRight'];
  let k = 0;
  const play = setInterval(() => {
    for (const s of streams) {
      const key = keys[k++ % 2]!;
      s.client.sendInput({ kind: 'key', type: 'down', code: key, key });
      s.client.sendInput({ kind: 'key', type: 'up', code: key, key });
    }
  }, 150);
  try {
    // the game's VM hot and the quiet one cool in the same reading (a session's start can briefly heat a VM)
    await until('the game VM hot and the other cool', 45_000, async () => ((await load(hot.id))?.cpuLoad ?? 0) >= 0.1 && ((await load(cool.id))?.cpuLoad ?? 1) < 0.1, 500);
    expect(await load(cool.id)).toMatchObject({ source: 'process-tree' });
    // by sessions the hot VM would win (1 of 4 against 2 of 4); by CPU the cool one does
    expect((await requestUa(gw, p3.token, paint, { codec: 'MJPEG' })).vm.id).toBe(cool.id);
    // a game on the cool VM too: no VM has headroom now, so the pool starts one and says why
    const g2Session = await requestUa(gw, g2.token, game, { codec: 'MJPEG' });
    expect(g2Session.vm.id).toBe(cool.id);
    streams.push(await openStream(g2Session.connection));
    const started = await until('a VM started for lack of headroom', 60_000, async () =>
      (await vms()).find((v) => v.id !== cool.id && v.id !== hot.id && /^pool: no headroom: .*CPU >= 0\.1/.test(v.startReason ?? '')), 500);
    expect(started).toBeTruthy();
    // the pool's own account: VMs running hot, none blocked (a load reading is a moment's: a VM
    // between two game frames may read cool in one report, so the account is awaited, bounded)
    type PoolRow = { platform: string; hotVms: number; unavailable: string | null };
    const wasm = async () => ((await ok(gw, `{ vmPool { platform hotVms unavailable } }`, {}, admin)).vmPool as PoolRow[]).find((p) => p.platform === 'WASM');
    const pool = await until('the pool to count a hot WASM VM', 30_000, async () => {
      const p = await wasm();
      return p && p.hotVms >= 1 ? p : null;
    }, 500);
    expect(pool).toMatchObject({ unavailable: null });
  } finally {
    clearInterval(play);
    for (const s of streams) await s.close();
  }
}, 180_000);

it('says why it keeps no LINUX_X11 VM warm on a host without Xvfb, and keeps the WASM one', async () => {
  // a PATH with ffmpeg and nothing else: no Xvfb on this "host"
  const bin = mkdtempSync(path.join(tmpdir(), 'uve-noxvfb-'));
  symlinkSync(execFileSync('sh', ['-c', 'command -v ffmpeg']).toString().trim(), path.join(bin, 'ffmpeg'));
  try {
    const { gw, admin } = await gateway('noxvfb', { PATH: bin, UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM,LINUX_X11' });
    await until('the warm WASM VM', 30_000, async () => (await vmsOf(gw, admin)).some((v) => v.platform === 'WASM' && v.status === 'IDLE'));
    const pool = (await ok(gw, `{ vmPool { platform warmTarget idleVms unavailable } }`, {}, admin)).vmPool as { platform: string; warmTarget: number; idleVms: number; unavailable: string | null }[];
    expect(pool.find((p) => p.platform === 'LINUX_X11')).toMatchObject({ idleVms: 0, unavailable: expect.stringMatching(/need Xvfb on this host \(Debian\/Ubuntu: apt-get install xvfb\)/) });
    expect(pool.find((p) => p.platform === 'WASM')).toMatchObject({ warmTarget: 1, idleVms: 1, unavailable: null });
    expect((await vmsOf(gw, admin)).filter((v) => v.platform === 'LINUX_X11')).toEqual([]);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
