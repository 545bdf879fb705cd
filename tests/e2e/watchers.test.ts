// Watchers end to end (seed 7.3.1.2.1, UVE-1 monitoring/suspend/resume, UVE-2 monitoring
// notification and suspend): a real gateway with a PROCESS WASM VM running the real vm-agent, real
// UVE-3 streams. A user plays; three watchers monitor her session over GraphQL and watch the same
// Output Stream; one suspend controller at a time; suspension freezes the UA; resume rules;
// revoking a grant closes that watcher's stream; concurrent suspends are decided by the database.
import { gql, ok, refusal, registerUser, subscribe, subscribeLive, type GatewayProcess } from '../support/gateway';
import { near, pixel, requestUa, uaId } from '../support/stream';
import { startWasmGateway, type WasmGateway } from '../support/wasm-gateway';

let env: WasmGateway;
let gw: GatewayProcess;
let admin: string;
type U = { token: string; id: string };
let alice: U; // the watchee
let wanda: U; // watcher with SUSPEND, first to monitor
let walt: U; // watcher with SUSPEND
let vic: U; // watcher with VIEW only
const grants: Record<string, string> = {};

beforeAll(async () => {
  env = await startWasmGateway('watchers', ['alice', 'wanda', 'walt', 'vic']);
  ({ gw, admin } = env);
  [alice, wanda, walt, vic] = env.users as [U, U, U, U];
  for (const [w, privileges] of [[wanda, 'SUSPEND'], [walt, 'VIEW, SUSPEND'], [vic, 'VIEW']] as const) {
    const g = await ok(gw, `mutation { assignWatcher(watcherId: "${w.id}", watcheeId: "${alice.id}", privileges: [${privileges}]) { id } }`, {}, admin);
    grants[w.id] = g.assignWatcher.id;
  }
}, 90_000);

afterAll(() => env?.stop());

const MONITOR = `mutation($w: ID!) { requestMonitoring(watcheeId: $w) { id privileges session { id } connection { url token } } }`;
type Monitoring = { id: string; privileges: string[]; session: { id: string }; connection: { url: string; token: string } };

const sessionOf = async (id: string, token = admin) =>
  (await ok(gw, `{ session(id: "${id}") { state suspendController { id } suspendedBy { id } watchers { watcher { id } } events(last: 100) { type actor { id } data } } }`, {}, token)).session as {
    state: string; suspendController: { id: string } | null; suspendedBy: { id: string } | null; watchers: { watcher: { id: string } }[]; events: { type: string; actor: { id: string } | null; data: Record<string, unknown> }[];
  };

const suspend = (u: U, id: string) => gql(gw, `mutation { suspendSession(sessionId: "${id}", reason: "homework time") { state suspendedBy { id } } }`, {}, u.token);
const resume = (u: U | string, id: string) => gql(gw, `mutation { resumeSession(sessionId: "${id}") { state } }`, {}, typeof u === 'string' ? u : u.token);
const transfer = (u: U, id: string, to: string | null) => gql(gw, `mutation($to: ID) { transferSuspendControl(sessionId: "${id}", toWatcherId: $to) { suspendController { id } } }`, { to }, u.token);

async function monitor(w: U): Promise<Monitoring[]> {
  return (await ok(gw, MONITOR, { w: alice.id }, w.token)).requestMonitoring as Monitoring[];
}

const open = (target: { url: string; token: string }) => env.open(target);

describe('a session watched by three watchers', () => {
  let sessionId: string;
  let player: Awaited<ReturnType<typeof open>>;
  const watching: Record<string, Awaited<ReturnType<typeof open>>> = {};

  beforeAll(async () => {
    const game = await uaId(gw, alice.token, 'game');
    const s = await requestUa(gw, alice.token, game, { codec: 'MJPEG' });
    sessionId = s.id;
    player = await open(s.connection);
    await player.frame(() => true, 'at all');
  }, 60_000);

  it('monitoring: the VM admits each watcher on a view-only stream in their own name; the user is told', async () => {
    const c = env.client(alice.token);
    const notes = subscribe(c, `subscription { notifications { sessionEvent { type sessionId data } } }`);
    expect(player.client.watched).toBe(false);
    for (const w of [wanda, walt, vic]) {
      const [m] = await monitor(w);
      expect(m).toMatchObject({ session: { id: sessionId } });
      const stream = await open(m!.connection);
      expect(stream.welcome).toMatchObject({ role: 'VIEWER', sessionId, suspended: false });
      watching[w.id] = stream;
      await stream.frame(() => true, 'for the watcher');
    }
    expect(watching[vic.id]!.client.role).toBe('VIEWER');
    // the watchee's stream carries the flag, and their notifications say who started watching
    await player.control('watched', (m) => m.watched === true);
    expect(player.client.watched).toBe(true);
    const started = await notes.next((n) => n.data?.notifications?.sessionEvent?.type === 'MONITORING_STARTED' && n.data.notifications.sessionEvent.data.watcherId === vic.id);
    expect(started.data!.notifications.sessionEvent.sessionId).toBe(sessionId);
    notes.dispose();
    // a second request while monitoring starts nothing new
    const again = await monitor(wanda);
    expect(again).toHaveLength(1);
    const s = await sessionOf(sessionId);
    expect(s.watchers.map((w) => w.watcher.id)).toEqual([wanda.id, walt.id, vic.id]);
    // the first watcher with SUSPEND holds control
    expect(s.suspendController).toEqual({ id: wanda.id });
    expect(s.events.filter((e) => e.type === 'MONITORING_STARTED')).toHaveLength(3);
    expect(s.events.find((e) => e.type === 'SUSPEND_CONTROL_CHANGED')!.data).toMatchObject({ from: null, to: wanda.id });
    // a user with no grant cannot monitor
    const eve = await registerUser(gw, 'eve');
    expect((await refusal(gw, MONITOR, { w: alice.id }, eve.token)).extensions?.code).toBe('FORBIDDEN');
  });

  it("watchers see the user's picture change; a watcher's input is refused and changes nothing", async () => {
    // a key press starts a round of the game: frames flow to every connection of the session
    const seq = player.client.sendInput({ kind: 'key', type: 'down', key: 'ArrowRight', code: 'ArrowRight' });
    const applied = await player.frame((f) => f.header.inputSeq >= seq, 'after the key');
    for (const w of [wanda, walt, vic]) {
      await watching[w.id]!.frame((f) => f.header.seq >= applied.header.seq, `for watcher ${w.id} after the user's key`);
    }
    // the SDK refuses a VIEWER's input; a UC sending it anyway is closed, and the UA never sees it
    expect(() => watching[vic.id]!.client.sendInput({ kind: 'key', type: 'down', key: 'ArrowLeft', code: 'ArrowLeft' })).toThrow(/VIEWER/);
    (watching[walt.id]!.client as unknown as { send(m: unknown): void }).send({ t: 'input', seq: 1, ev: { kind: 'key', type: 'down', key: 'ArrowLeft', code: 'ArrowLeft' } });
    const closed = await watching[walt.id]!.control('close');
    expect(closed).toMatchObject({ code: 4403 });
    expect(String(closed.reason)).toMatch(/VIEWER/);
    // the frames' input count is still the user's own
    const next = player.client.sendInput({ kind: 'key', type: 'down', key: 'ArrowLeft', code: 'ArrowLeft' });
    const f = await player.frame((x) => x.header.inputSeq >= next, 'after the user\'s next key');
    expect(f.header.inputSeq).toBe(next);
    // walt watches again on a fresh connection
    const [m] = await monitor(walt);
    watching[walt.id] = await open(m!.connection);
  });

  it('only the suspend controller suspends; control is transferred; anyone else is told who holds it', async () => {
    for (const u of [walt, vic, alice]) {
      const r = await suspend(u, sessionId);
      expect(r.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(r.errors?.[0]?.message).toMatch(/held by wanda/);
    }
    // to a watcher without SUSPEND: refused
    expect((await transfer(wanda, sessionId, vic.id)).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    // only the holder transfers
    expect((await transfer(walt, sessionId, walt.id)).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await transfer(wanda, sessionId, walt.id)).data?.transferSuspendControl.suspendController).toEqual({ id: walt.id });
    const r = await suspend(wanda, sessionId);
    expect(r.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(r.errors?.[0]?.message).toMatch(/held by walt/);
    const s = await sessionOf(sessionId);
    expect(s.events.filter((e) => e.type === 'SUSPEND_CONTROL_CHANGED').at(-1)).toMatchObject({ actor: { id: wanda.id }, data: { from: wanda.id, to: walt.id, reason: 'transferred' } });
  });

  it("suspended: the UA stops changing for every viewer, the user's input is refused with a notice; resume rules hold", async () => {
    // a key (re)starts a round: the picture changes on its own
    await player.inputAndFrame({ kind: 'key', type: 'down', key: 'ArrowRight', code: 'ArrowRight' }, 'after a key');
    const mark = player.frames.length;
    await player.frame(() => player.frames.length >= mark + 3, 'of the running game');
    const all = [player, ...Object.values(watching)];
    const done = await suspend(walt, sessionId);
    expect(done.data?.suspendSession).toEqual({ state: 'SUSPENDED', suspendedBy: { id: walt.id } });
    const told = await Promise.all(all.map((s) => s.control('suspended', (m) => m.reason === 'homework time')));
    const seq = player.client.sendInput({ kind: 'key', type: 'down', key: 'ArrowRight', code: 'ArrowRight' });
    const notice = await player.control('notice');
    expect(notice).toMatchObject({ code: 'SUSPENDED' });
    expect(String(notice.message)).toMatch(/suspended/);
    // frames over a second of suspension (the window is the observation, not a synchronisation):
    // the VM sends `suspended` after the last frame; one still being decoded may show up after it,
    // but nothing captured after it: no frames, the app clock stopped
    await new Promise((r) => setTimeout(r, 1000));
    for (const [i, s] of all.entries()) {
      for (const f of s.frames.filter((x) => x.receivedAt > told[i]!.at)) expect(f.header.captureTs).toBeLessThan(told[i]!.at);
    }
    const frozen = all.map((s) => s.frames.length);
    await new Promise((r) => setTimeout(r, 1000));
    // nothing changed: no delta frame; only a keyframe of the frozen picture may come, for a
    // receiver that fell behind and recovers (protocol.md, backpressure), and it goes to every UC
    for (const [i, s] of all.entries()) expect(s.frames.slice(frozen[i]).filter((f) => !f.header.keyframe)).toEqual([]);

    // the watchee and a VIEW-only watcher cannot undo it; a watcher with SUSPEND over the user can
    for (const u of [alice, vic]) {
      const r = await resume(u, sessionId);
      expect(r.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(r.errors?.[0]?.message).toMatch(/walt/);
    }
    expect((await resume(wanda, sessionId)).data?.resumeSession.state).toBe('ACTIVE');
    await player.control('resumed');
    // the input sent while suspended was never applied: the next frames still count the earlier input
    const again = player.client.sendInput({ kind: 'key', type: 'down', key: 'ArrowRight', code: 'ArrowRight' });
    const f = await player.frame((x) => x.header.inputSeq >= again, 'after resuming');
    expect(f.header.inputSeq).toBe(again);
    expect(seq).toBeLessThan(again);

    // the suspender resumes their own suspension; an admin resumes anyone's
    expect((await suspend(walt, sessionId)).data?.suspendSession.state).toBe('SUSPENDED');
    expect((await resume(walt, sessionId)).data?.resumeSession.state).toBe('ACTIVE');
    expect((await suspend(walt, sessionId)).data?.suspendSession.state).toBe('SUSPENDED');
    expect((await resume(admin, sessionId)).data?.resumeSession.state).toBe('ACTIVE');
  });

  it('two watchers suspending at the same instant: exactly one succeeds, 20 times', async () => {
    const pair = [wanda, walt];
    // control goes back to wanda, then alternates so each side wins some rounds
    expect((await transfer(walt, sessionId, wanda.id)).errors).toBeUndefined();
    for (let i = 0; i < 20; i++) {
      const holder = pair[i % 2]!;
      const other = pair[(i + 1) % 2]!;
      // the holder twice and the other watcher once, all at once
      const results = await Promise.all([suspend(holder, sessionId), suspend(other, sessionId), suspend(holder, sessionId)]);
      const won = results.filter((r) => r.data?.suspendSession?.state === 'SUSPENDED');
      expect(won).toHaveLength(1);
      expect(results[1]!.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(results.filter((r) => r.errors?.[0]?.extensions?.code === 'CONFLICT')).toHaveLength(1);
      expect((await resume(holder, sessionId)).data?.resumeSession.state).toBe('ACTIVE');
      expect((await transfer(holder, sessionId, other.id)).errors).toBeUndefined();
    }
    const s = await sessionOf(sessionId);
    expect(s.events.filter((e) => e.type === 'SUSPENDED').length).toBeGreaterThanOrEqual(20);
  }, 60_000);

  it("narrowing a grant passes control on in arrival order; revoking one closes that watcher's stream at once", async () => {
    // the last round passed control back to wanda; without SUSPEND she passes it to walt, next in arrival order
    expect((await sessionOf(sessionId)).suspendController).toEqual({ id: wanda.id });
    await ok(gw, `mutation { updateWatcherPrivileges(grantId: "${grants[wanda.id]}", privileges: [VIEW]) { id } }`, {}, admin);
    let s = await sessionOf(sessionId);
    expect(s.suspendController).toEqual({ id: walt.id });
    expect(s.events.filter((e) => e.type === 'SUSPEND_CONTROL_CHANGED').at(-1)!.data).toMatchObject({ from: wanda.id, to: walt.id });
    expect((await suspend(wanda, sessionId)).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    await ok(gw, `mutation { revokeWatcher(grantId: "${grants[walt.id]}") }`, {}, admin);
    const closed = await watching[walt.id]!.control('close');
    expect(closed).toMatchObject({ code: 4403 });
    expect(String(closed.reason)).toMatch(/revoked/);
    s = await sessionOf(sessionId);
    expect(s.watchers.map((w) => w.watcher.id)).toEqual([wanda.id, vic.id]);
    // nobody left has SUSPEND: control is released
    expect(s.suspendController).toBeNull();
    expect(s.events.filter((e) => e.type === 'SUSPEND_CONTROL_CHANGED').at(-1)!.data).toMatchObject({ from: walt.id, to: null });
    expect(s.events.filter((e) => e.type === 'MONITORING_ENDED').at(-1)!.data).toMatchObject({ watcherId: walt.id, reason: 'the watcher grant was revoked' });
    // with nobody in control an admin may suspend; the user cannot undo an admin's suspension
    expect((await suspend({ id: 'admin', token: admin }, sessionId)).data?.suspendSession.state).toBe('SUSPENDED');
    expect((await resume(alice, sessionId)).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await resume(admin, sessionId)).data?.resumeSession.state).toBe('ACTIVE');
    // wanda gets SUSPEND back: as the only eligible watcher she holds control again
    await ok(gw, `mutation { updateWatcherPrivileges(grantId: "${grants[wanda.id]}", privileges: [VIEW, SUSPEND]) { id } }`, {}, admin);
    expect((await sessionOf(sessionId)).suspendController).toEqual({ id: wanda.id });
    // walt sees the session no more and cannot watch again; the others still watch
    expect((await refusal(gw, `{ session(id: "${sessionId}") { id } }`, {}, walt.token)).extensions?.code).toBe('NOT_FOUND');
    expect((await refusal(gw, MONITOR, { w: alice.id }, walt.token)).extensions?.code).toBe('FORBIDDEN');
    const mark = watching[wanda.id]!.frames.length;
    await player.inputAndFrame({ kind: 'key', type: 'down', key: 'ArrowLeft', code: 'ArrowLeft' }, 'after the key');
    await watching[wanda.id]!.frame(() => watching[wanda.id]!.frames.length > mark, 'for wanda after the revoke');
  });

  it('a session the watchee starts while watched is offered to the watcher; stopping monitoring ends it', async () => {
    const c = env.client(wanda.token);
    const notes = subscribe(c, `subscription { notifications { sessionEvent { type sessionId data } } }`);
    // on the same socket, notifications is registered once the replaying subscription after it answers
    const first = await subscribeLive(c, `subscription($id: ID!) { sessionEvents(sessionId: $id, replay: true) { type } }`, { id: sessionId });
    first.dispose();
    const paint = await uaId(gw, alice.token, 'paint');
    const second = await requestUa(gw, alice.token, paint, { codec: 'MJPEG' });
    const offered = await notes.next((n) => n.data?.notifications?.sessionEvent?.type === 'MONITORING_STARTED' && n.data.notifications.sessionEvent.sessionId === second.id, 20_000);
    expect(offered.data!.notifications.sessionEvent.data).toMatchObject({ watcherId: wanda.id });
    const mine = await ok(gw, `{ session(id: "${second.id}") { watchers { id watcher { id } connection { url token } } } }`, {}, wanda.token);
    const m = mine.session.watchers.find((w: { watcher: { id: string } }) => w.watcher.id === wanda.id);
    const userStream = await open(second.connection);
    const view = await open(m.connection);
    const WHITE = { r: 255, g: 255, b: 255 };
    const RED = { r: 255, g: 0, b: 0 };
    expect(near(pixel(await view.frame(() => true, 'at all'), 200, 150), WHITE)).toBe(true);
    await userStream.inputAndFrame({ kind: 'pointer', type: 'down', x: 200, y: 150, button: 0 }, 'after painting');
    await view.frame((f) => near(pixel(f, 200, 150), RED), "with the user's dot, for the watcher");
    // stopping: the VM closes her stream, the session is hers to see no more
    const stopped = await ok(gw, `mutation { stopMonitoring(monitoringId: "${m.id}") { id } }`, {}, wanda.token);
    expect(stopped.stopMonitoring.id).toBe(m.id);
    const closed = await view.control('close');
    expect(closed).toMatchObject({ code: 4403 });
    expect((await refusal(gw, `{ session(id: "${second.id}") { id } }`, {}, wanda.token)).extensions?.code).toBe('NOT_FOUND');
    expect((await sessionOf(second.id)).events.some((e) => e.type === 'MONITORING_ENDED' && e.data.watcherId === wanda.id)).toBe(true);
    notes.dispose();
  }, 60_000);
});
