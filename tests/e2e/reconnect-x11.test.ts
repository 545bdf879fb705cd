// LINUX_X11 NO_LOSS (issue 9): there is no process checkpoint on these hosts, so within the
// reconnect window the dropped user's program waits frozen on its VM (processes stopped, Xvfb kept)
// and the reconnecting request goes back to that VM and that very program: the text typed before
// the drop is still on screen and the same shell goes on. After the window the session is over and
// the API says what NO_LOSS gives on this platform (Ua.noLoss). NORMAL: the UA's home folder is its
// application data, saved as a tar archive when the session ends and unpacked into the home of the
// next session (on any VM) before the program starts.
import fs from 'node:fs';
import path from 'node:path';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, ROOT, gql, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { agentPid, near, openStream, pixel, uaId } from '../support/stream';
import type { FrameEvent } from '@uve/client';

const { descendants, commandLine } = require(path.join(ROOT, 'apps/gateway/dist/infra/proc.js')) as {
  descendants(pid: number): { pid: number }[];
  commandLine(pid: number): string;
};

const WINDOW_S = 12;
let redis: TestRedis;
let gw: GatewayProcess;
let admin: string;

beforeAll(async () => {
  redis = await startRedis();
  // two VMs: the reconnection goes back to the frozen program although another VM is free
  gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'rcx11', UVE_SAMPLE_UAS: 'true,xterm', UVE_POOL_PLATFORMS: 'LINUX_X11', UVE_WARM_VMS: '2', UVE_DOCKER: 'off', UVE_RECONNECT_WINDOW_S: String(WINDOW_S) });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  await until('2 idle LINUX_X11 VMs', 60_000, async () => (await ok(gw, `{ vms(status: IDLE, platform: LINUX_X11) { id } }`, {}, admin)).vms.length >= 2, 100);
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await redis?.stop();
});

const REQUEST = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id reconnections vm { id } restoredFrom { id kind } connection { url token } } }`;
type Requested = { id: string; reconnections: number; vm: { id: string }; restoredFrom: { id: string; kind: string } | null; connection: { url: string; token: string } };
const terminal = { screenWidth: 800, screenHeight: 600, codecs: ['MJPEG'], localResources: [] };

/** share of pixels close to a colour */
function share(f: FrameEvent, rgb: { r: number; g: number; b: number }): number {
  const d = f.decoded!;
  let n = 0;
  for (let y = 0; y < d.height; y += 4) for (let x = 0; x < d.width; x += 4) if (near(pixel(f, x, y), rgb, 50)) n++;
  return n / ((d.height / 4) * (d.width / 4));
}
const RED = { r: 205, g: 0, b: 0 };
const BLUE = { r: 0, g: 0, b: 238 };

/** the state letter of a process (R, S, T for stopped, ...) */
const stateOf = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
};
/** the xterm and the Xvfb a VM agent runs */
function programsOf(vmId: string): { xterm: number; xvfb: number } {
  const all = descendants(agentPid(vmId)).map((p) => ({ pid: p.pid, cmd: commandLine(p.pid) }));
  const find = (re: RegExp) => all.find((p) => re.test(p.cmd))?.pid;
  const xterm = find(/(^|\/)xterm(\s|$)/);
  const xvfb = find(/(^|\/)Xvfb\s/);
  if (!xterm || !xvfb) throw new Error(`no xterm or Xvfb under VM ${vmId}: ${all.map((p) => p.cmd).join('; ')}`);
  return { xterm, xvfb };
}

const sessionOf = async (id: string) =>
  (await ok(gw, `{ session(id: "${id}") { state events(last: 30) { type data } } }`, {}, admin)).session as { state: string; events: { type: string; data: Record<string, unknown> }[] };

async function typeLine(stream: Awaited<ReturnType<typeof openStream>>, text: string): Promise<number> {
  stream.client.sendInput({ kind: 'text', text });
  const enter = stream.client.sendInput({ kind: 'key', type: 'down', code: 'Enter', key: 'Enter' });
  stream.client.sendInput({ kind: 'key', type: 'up', code: 'Enter', key: 'Enter' });
  return enter;
}

it('within the window the same xterm continues on the same VM, frozen meanwhile; after it the session is over', async () => {
  const user = await registerUser(gw, 'rc-x11');
  const xterm = await uaId(gw, user.token, 'xterm');
  expect((await ok(gw, `{ ua(id: "${xterm}") { noLoss } }`, {}, user.token)).ua.noLoss).toBe('SAME_VM_WITHIN_WINDOW');
  const s = (await ok(gw, REQUEST, { i: { uaId: xterm, reconnectionMethod: 'NO_LOSS', terminal } }, user.token)).requestApplication as Requested;
  const stream = await openStream(s.connection);
  await stream.frame(() => true, 'at all');
  const typed = await typeLine(stream, "printf '\\033[41m%4000s\\033[0m' ''");
  await stream.frame((f) => f.header.inputSeq >= typed && share(f, RED) > 0.2, 'with the terminal turned red', 20_000);
  const before = programsOf(s.vm.id);
  stream.client.close(); // no bye: an unexpected disconnect

  await until('the session DISCONNECTED', 15_000, async () => (await sessionOf(s.id)).state === 'DISCONNECTED');
  await until('the xterm stopped (SIGSTOP)', 10_000, async () => stateOf(before.xterm) === 'T');
  expect(stateOf(before.xvfb)).not.toBe('T'); // the X server keeps the picture

  // a terminal that cannot decode the stream the xterm has (MJPEG) is refused with the reason: the
  // session can only continue on its VM, whose encoder stays; it stays DISCONNECTED for a terminal that can
  const h264Only = await gql(gw, REQUEST, { i: { uaId: xterm, reconnectionMethod: 'NO_LOSS', terminal: { ...terminal, codecs: ['H264'] } } }, user.token);
  expect(h264Only.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'terminal.codecs' });
  expect(h264Only.errors?.[0]?.message).toMatch(/streams MJPEG, which this terminal does not decode.*fresh start/);
  expect((await sessionOf(s.id)).state).toBe('DISCONNECTED');

  const again = (await ok(gw, REQUEST, { i: { uaId: xterm, reconnectionMethod: 'NO_LOSS', terminal } }, user.token)).requestApplication as Requested;
  expect(again).toMatchObject({ id: s.id, reconnections: 1, vm: { id: s.vm.id }, restoredFrom: null });
  const back = await openStream(again.connection);
  try {
    const first = await back.frame(() => true, 'after the reconnection');
    expect(share(first, RED)).toBeGreaterThan(0.2); // typed before the drop, still on screen
    expect(programsOf(s.vm.id)).toEqual(before); // the very same programs
    await until('the xterm running again', 10_000, async () => stateOf(before.xterm) !== 'T');
    const more = await typeLine(back, "printf '\\033[44m%4000s\\033[0m' ''");
    await back.frame((f) => f.header.inputSeq >= more && share(f, BLUE) > 0.2, 'with the same shell going on (blue)', 20_000);
    const now = await sessionOf(s.id);
    // by policy, and the event says so (not a fallback for want of another VM)
    expect(now.events.find((e) => e.type === 'RECONNECTED')!.data).toMatchObject({ sameVm: true, why: 'NO_LOSS_ON_ITS_VM', reason: expect.stringContaining('SAME_VM_WITHIN_WINDOW') });
  } finally {
    back.client.close(); // dropped again, and this time nobody comes back
  }

  const ended = await until('the window to close', (WINDOW_S + 20) * 1000, async () => {
    const x = await sessionOf(s.id);
    return x.state === 'ENDED' ? x : null;
  }, 250);
  expect(ended.events.find((e) => e.type === 'ENDED')!.data.reason).toMatch(/reconnect window/);
  await until('the frozen xterm gone with its session', 15_000, async () => !fs.existsSync(`/proc/${before.xterm}`) || stateOf(before.xterm) === 'Z');
  const fresh = (await ok(gw, REQUEST, { i: { uaId: xterm, reconnectionMethod: 'NO_LOSS', terminal } }, user.token)).requestApplication as Requested;
  expect(fresh.id).not.toBe(s.id);
  const next = await openStream(fresh.connection);
  try {
    expect(share(await next.frame(() => true, 'of the new session'), RED)).toBeLessThan(0.01);
  } finally {
    await next.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${fresh.id}") { state } }`, {}, user.token);
}, 120_000);

it('NORMAL: a file the UA wrote in its home is there in the next session, the program started afresh', async () => {
  const user = await registerUser(gw, 'rc-x11-normal');
  const xterm = await uaId(gw, user.token, 'xterm');
  const s = (await ok(gw, REQUEST, { i: { uaId: xterm, reconnectionMethod: 'NORMAL', terminal } }, user.token)).requestApplication as Requested;
  const stream = await openStream(s.connection);
  try {
    await stream.frame(() => true, 'at all');
    // the red block is on screen only once it is in the file (written, then shown from it)
    const typed = await typeLine(stream, "printf '\\033[41m%4000s\\033[0m' '' > ~/red && cat ~/red");
    await stream.frame((f) => f.header.inputSeq >= typed && share(f, RED) > 0.2, 'with the file shown (red)', 20_000);
  } finally {
    await stream.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
  const saved = await until('the home saved as VM Data', 20_000, async () =>
    (await sessionOf(s.id)).events.find((e) => e.type === 'SNAPSHOT_SAVED')?.data as { snapshotId: string; kind: string; sizeBytes: number } | undefined);
  expect(saved.kind).toBe('APP_DATA');
  expect(saved.sizeBytes).toBeGreaterThan(4000);

  const next = (await ok(gw, REQUEST, { i: { uaId: xterm, reconnectionMethod: 'NORMAL', terminal } }, user.token)).requestApplication as Requested;
  expect(next.id).not.toBe(s.id);
  expect(next.restoredFrom).toEqual({ id: saved.snapshotId, kind: 'APP_DATA' });
  const back = await openStream(next.connection);
  try {
    expect(back.welcome.vmData).toEqual({ snapshotId: saved.snapshotId, restored: true, kind: 'APP_DATA' });
    expect(share(await back.frame(() => true, 'of the new session'), RED)).toBeLessThan(0.01); // a fresh xterm
    const shown = await typeLine(back, 'cat ~/red');
    await back.frame((f) => f.header.inputSeq >= shown && share(f, RED) > 0.2, 'with the restored file shown (red)', 20_000);
  } finally {
    await back.close();
  }
  const now = await sessionOf(next.id);
  expect(now.events.find((e) => e.type === 'SNAPSHOT_RESTORED')!.data).toMatchObject({ snapshotId: saved.snapshotId, kind: 'APP_DATA' });
  await ok(gw, `mutation { endSession(sessionId: "${next.id}") { state } }`, {}, user.token);
}, 120_000);
