// The LINUX_X11 platform end to end through the gateway: a PROCESS VM hosting real X programs in
// Xvfb, streamed over H264, driven by typed text and keys from the SDK.
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, ok, registerUser, startGateway, subscribeLive, wsClient, type GatewayProcess } from '../support/gateway';
import { near, openStream, pixel, requestUa, share, uaId } from '../support/stream';
import type { FrameEvent } from '@uve/client';
import type { Client } from 'graphql-ws';

let redis: TestRedis;
let gw: GatewayProcess;
let admin: string;
let user: { token: string; id: string };
const clients: Client[] = [];

/** share of pixels close to a colour */
beforeAll(async () => {
  redis = await startRedis();
  gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'x11', UVE_SAMPLE_UAS: 'true,xterm', UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'LINUX_X11', UVE_DOCKER: 'off' });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  user = await registerUser(gw, 'x11user');
  await until('an idle LINUX_X11 VM', 30_000, async () => ((await gql(gw, `{ vms(status: IDLE, platform: LINUX_X11) { id } }`, {}, admin)).data?.vms ?? []).length > 0, 100);
}, 90_000);

afterAll(async () => {
  for (const c of clients) await c.dispose();
  await gw?.stop();
  await redis?.stop();
});

it('registers the Linux samples as LINUX_X11 UAs', async () => {
  const d = await ok(gw, `{ uas(platform: LINUX_X11) { name } }`, {}, user.token);
  expect(d.uas.map((u: { name: string }) => u.name).sort()).toEqual(['probe', 'scroll', 'xcalc', 'xterm']);
});

it('streams xterm over H264; typed text runs in its shell and shows in decoded frames; exit ends the session', async () => {
  const s = await requestUa(gw, user.token, await uaId(gw, user.token, 'xterm'), { codec: 'H264', width: 800, height: 600 });
  const stream = await openStream(s.connection);
  const c = wsClient(gw, user.token);
  clients.push(c);
  const events = await subscribeLive(c, `subscription($id: ID!) { sessionEvents(sessionId: $id, replay: true) { type data } }`, { id: s.id });
  try {
    const first = await stream.frame(() => true, 'at all');
    expect(first.decoded).toMatchObject({ width: 800, height: 600 });
    expect(share(first, { r: 255, g: 0, b: 0 })).toBeLessThan(0.01);
    // the shell interprets what was typed: a red background fills the terminal
    await stream.client.sendInput({ kind: 'text', text: "printf '\\033[41m%4000s\\033[0m' ''" });
    const enter = stream.client.sendInput({ kind: 'key', type: 'down', code: 'Enter', key: 'Enter' });
    stream.client.sendInput({ kind: 'key', type: 'up', code: 'Enter', key: 'Enter' });
    const red = await stream.frame((f) => f.header.inputSeq >= enter && share(f, { r: 205, g: 0, b: 0 }) > 0.2, 'with the terminal turned red', 20_000);
    expect(red.decoded!.width).toBe(800);

    await stream.client.sendInput({ kind: 'text', text: 'exit' });
    stream.client.sendInput({ kind: 'key', type: 'down', code: 'Enter', key: 'Enter' });
    const ended = await events.next((e) => e.data?.sessionEvents?.type === 'ENDED', 20_000);
    expect(ended.data!.sessionEvents.data).toMatchObject({ reason: 'the application exited' });
  } finally {
    events.dispose();
    await stream.close();
  }
});

it('repaints the probe on every key press (non-ASCII text too)', async () => {
  const s = await requestUa(gw, user.token, await uaId(gw, user.token, 'probe'), { codec: 'MJPEG', width: 640, height: 480 });
  const stream = await openStream(s.connection);
  try {
    const first = await stream.frame(() => true, 'at all');
    // the session is ready once the probe shows its window: its dark grey, not an empty black screen
    expect(near(pixel(first, 320, 240), { r: 32, g: 32, b: 32 })).toBe(true);
    // an X program repaints in its own time: the frame showing it comes after inputSeq reaches the input
    const shows = (seq: number, rgb: { r: number; g: number; b: number }) => (f: FrameEvent) => f.header.inputSeq >= seq && near(pixel(f, 320, 240), rgb);
    const key = stream.client.sendInput({ kind: 'key', type: 'down', code: 'KeyA', key: 'a' });
    await stream.frame(shows(key, { r: 0, g: 0, b: 255 }), 'turned blue by a key');
    stream.client.sendInput({ kind: 'key', type: 'up', code: 'KeyA', key: 'a' });
    const text = stream.client.sendInput({ kind: 'text', text: 'é' });
    await stream.frame(shows(text, { r: 255, g: 255, b: 0 }), 'turned yellow by a non-ASCII character');
  } finally {
    await stream.close();
    await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
  }
});
