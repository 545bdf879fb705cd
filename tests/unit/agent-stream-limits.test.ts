// The UVE-3 server's own limits, with a stand-in session (the real path: e2e/agent-stream-security):
// keyframe requests coalesced to one per interval, message floods closed, replays refused.
import WebSocket from 'ws';
import { CLOSE, STREAM_PATH, STREAM_PROTOCOL_VERSION, type ClientMessage, type SessionTokenClaims } from '@uve/protocol';
import { silentLogger } from '../../apps/vm-agent/src/common/log';
import { StreamServer } from '../../apps/vm-agent/src/stream/stream-server';
import type { StreamConnection } from '../../apps/vm-agent/src/stream/connection';
import type { Session } from '../../apps/vm-agent/src/sessions/session';
import type { VerifiedClaims } from '../../apps/vm-agent/src/stream/auth';

const KEYFRAME_MS = 300;
const keyframes: number[] = [];

// only what the server calls on a session
const session = {
  state: 'ready',
  admits: () => null,
  whenReady: () => Promise.resolve(),
  attach(conn: StreamConnection, claims: SessionTokenClaims) {
    conn.state = 'attached';
    conn.role = claims.role;
    conn.sessionId = claims.sid;
    conn.send({ t: 'welcome', v: 1, sessionId: claims.sid, role: claims.role, codec: 'MJPEG', width: 1, height: 1, maxFps: 1, suspended: false });
  },
  onMessage(conn: StreamConnection, m: ClientMessage) {
    if (m.t === 'keyframe') keyframes.push(Date.now());
    if (m.t === 'ping') conn.send({ t: 'pong', id: m.id, t0: m.t0, t1: Date.now() });
  },
  detach() {},
} as unknown as Session;

let server: StreamServer;
let url: string;
beforeAll(async () => {
  server = new StreamServer({
    host: '127.0.0.1',
    port: 0,
    // the token is its id: each hello names a jti
    verifier: { verify: async (t): Promise<VerifiedClaims> => ({ sub: 'u', sid: 's', vm: 'vm', ua: 'ua', role: 'PLAYER', jti: t, exp: Date.now() / 1000 + 60 }) },
    findSession: () => session,
    awaitSession: async () => ({ session }),
    log: silentLogger,
    limits: { keyframeIntervalMs: KEYFRAME_MS, maxMessagesPerSec: 100 },
  });
  url = `ws://127.0.0.1:${await server.listen()}${STREAM_PATH}`;
});
afterAll(() => server.close());

/** a welcomed socket; `texts` collects what the server said */
async function welcomed(token: string): Promise<{ ws: WebSocket; texts: string[]; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(url);
  const texts: string[] = [];
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  await new Promise((r) => ws.once('open', r));
  const welcome = new Promise<void>((r) => ws.on('message', (d) => (texts.push(d.toString()), d.toString().includes('welcome') && r())));
  ws.send(JSON.stringify({ t: 'hello', v: STREAM_PROTOCOL_VERSION, token }));
  await Promise.race([welcome, closed]);
  return { ws, texts, closed };
}

const pong = (ws: WebSocket, id: number): Promise<void> =>
  new Promise((r) => {
    ws.on('message', (d) => d.toString().includes(`"pong","id":${id}`) && r());
    ws.send(JSON.stringify({ t: 'ping', id, t0: 1 }));
  });

it('serves one keyframe request per interval; a burst is coalesced into one more when the interval ends', async () => {
  const { ws } = await welcomed('t-keyframes');
  for (let i = 0; i < 10; i++) ws.send('{"t":"keyframe"}');
  await pong(ws, 1);
  expect(keyframes).toHaveLength(1);
  // the deferred one comes, once, no sooner than the interval
  const deadline = Date.now() + 5_000;
  // polled at 20 a second: faster would trip the per-connection message limit this file sets
  while (keyframes.length < 2 && Date.now() < deadline) {
    await pong(ws, 2);
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(keyframes).toHaveLength(2);
  expect(keyframes[1] - keyframes[0]).toBeGreaterThanOrEqual(KEYFRAME_MS - 5);
  await pong(ws, 3);
  expect(keyframes).toHaveLength(2);
  ws.close();
});

it('closes a connection that floods messages with 4429 and a reason', async () => {
  const { ws, closed } = await welcomed('t-flood');
  for (let i = 0; i < 500; i++) ws.send(JSON.stringify({ t: 'ping', id: i, t0: 1 }));
  expect(await closed).toEqual({ code: CLOSE.RATE_LIMITED, reason: 'more than 100 messages per second' });
});

it('refuses a replayed token with 4401 and a reason', async () => {
  const first = await welcomed('t-once');
  expect(first.texts.some((t) => t.includes('welcome'))).toBe(true);
  const again = await welcomed('t-once');
  expect(await again.closed).toEqual({ code: CLOSE.UNAUTHORIZED, reason: 'session token already used: ask the VMM for a fresh one' });
  first.ws.close();
});
