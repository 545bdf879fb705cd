// Invitations end to end (seed: invitation request and rejection): a real gateway with a PROCESS
// WASM VM running the real vm-agent, real UVE-3 streams. The user of a paint session invites others
// over GraphQL; invitees hear of it through `notifications`; an accepted PLAYER paints into the same
// picture (input interleaved with the user's), a VIEWER only watches; a rejection's reason reaches
// the inviter; revoking and leaving close the guest's stream; invitations expire and lapse.
import { until } from '../support/services';
import { gql, ok, refusal, subscribe, subscribeLive, type GatewayProcess, type Subscription } from '../support/gateway';
import { near, pixel, requestUa, uaId } from '../support/stream';
import { startWasmGateway, type WasmGateway } from '../support/wasm-gateway';

let env: WasmGateway;
let gw: GatewayProcess;
type U = { token: string; id: string };
let host: U;
let gail: U; // invited as PLAYER
let vera: U; // invited as VIEWER
let rex: U; // rejects
let ivy: U; // lets it expire
const WHITE = { r: 255, g: 255, b: 255 };
const RED = { r: 255, g: 0, b: 0 };
/** short, so that expiry is observable; every other invitation here is answered at once */
const TTL_S = 5;

beforeAll(async () => {
  env = await startWasmGateway('invitations', ['host', 'gail', 'vera', 'rex', 'ivy'], { UVE_INVITATION_TTL_S: String(TTL_S) });
  gw = env.gw;
  [host, gail, vera, rex, ivy] = env.users as [U, U, U, U, U];
}, 90_000);

afterAll(() => env?.stop());

const NOTES = `subscription { notifications { invitation { id status role rejectionReason from { id } to { id } session { id } } } }`;
type Inv = { id: string; status: string; role: string; rejectionReason: string | null; from: { id: string }; to: { id: string }; session: { id: string } };

const invite = (sessionId: string, to: U, role: 'PLAYER' | 'VIEWER') =>
  gql(gw, `mutation { inviteToSession(sessionId: "${sessionId}", inviteeId: "${to.id}", role: ${role}) { id status role } }`, {}, host.token);
const respond = (u: U, id: string, accept: boolean, reason?: string) =>
  gql(gw, `mutation($r: String) { respondToInvitation(invitationId: "${id}", accept: ${accept}, rejectionReason: $r) { id status rejectionReason } }`, { r: reason ?? null }, u.token);
const revoke = (id: string) => gql(gw, `mutation { revokeInvitation(invitationId: "${id}") { id status } }`, {}, host.token);

function notificationsOf(u: U): Subscription {
  return subscribe(env.client(u.token), NOTES);
}

/**
 * Invites `to` and returns the invitation as their notifications delivered it. The subscription has
 * no replay: until one arrives, the invitation is revoked and sent again (bounded), so one sent
 * before the subscription was live cannot be missed.
 */
async function inviteHeard(notes: Subscription, sessionId: string, to: U, role: 'PLAYER' | 'VIEWER'): Promise<Inv> {
  let last: string | null = null;
  const end = Date.now() + 15_000;
  for (;;) {
    if (last) expect((await revoke(last)).errors).toBeUndefined();
    const r = await invite(sessionId, to, role);
    expect(r.errors).toBeUndefined();
    last = r.data!.inviteToSession.id as string;
    const id = last;
    const heard = await notes.next((n) => n.data?.notifications?.invitation?.id === id, 1_000).catch(() => null);
    if (heard) return heard.data!.notifications.invitation as Inv;
    if (Date.now() > end) throw new Error(`the invitee never heard of an invitation (${JSON.stringify(notes.items)})`);
  }
}

const open = (target: { url: string; token: string }) => env.open(target);

const myConnection = async (u: U, sessionId: string) => {
  const d = await ok(gw, `{ session(id: "${sessionId}") { participants { user { id } role connection { url token } } } }`, {}, u.token);
  return d.session.participants as { user: { id: string }; role: string; connection: { url: string; token: string } | null }[];
};

describe('guests in a paint session', () => {
  let sessionId: string;
  let player: Awaited<ReturnType<typeof open>>;
  let hostNotes: Subscription;
  const accepted: Record<string, Inv> = {};
  const guestStreams: Record<string, Awaited<ReturnType<typeof open>>> = {};

  beforeAll(async () => {
    const paint = await uaId(gw, host.token, 'paint');
    const s = await requestUa(gw, host.token, paint, { codec: 'MJPEG' });
    sessionId = s.id;
    player = await open(s.connection);
    expect(near(pixel(await player.frame(() => true, 'at all'), 100, 100), WHITE)).toBe(true);
    // the host's notifications are live once the replaying subscription after them on the socket answers
    const c = env.client(host.token);
    hostNotes = subscribe(c, NOTES);
    (await subscribeLive(c, `subscription($id: ID!) { sessionEvents(sessionId: $id, replay: true) { type } }`, { id: sessionId })).dispose();
  }, 60_000);

  it('refuses what no one may do: inviting oneself, inviting to a session of someone else, answering for someone else', async () => {
    expect((await invite(sessionId, host, 'PLAYER')).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect((await refusal(gw, `mutation { inviteToSession(sessionId: "${sessionId}", inviteeId: "${gail.id}") { id } }`, {}, rex.token)).extensions?.code).toBe('NOT_FOUND');
    const notes = notificationsOf(rex);
    const inv = await inviteHeard(notes, sessionId, rex, 'VIEWER');
    expect((await respond(gail, inv.id, true)).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect((await invite(sessionId, rex, 'VIEWER')).errors?.[0]?.extensions?.code).toBe('CONFLICT'); // one pending at a time
    expect((await revoke(inv.id)).data?.revokeInvitation.status).toBe('REVOKED');
    notes.dispose();
  });

  it("an invitation accepted as PLAYER: the guest's input changes the picture, interleaved with the user's", async () => {
    const notes = notificationsOf(gail);
    const inv = await inviteHeard(notes, sessionId, gail, 'PLAYER');
    expect(inv).toMatchObject({ status: 'PENDING', role: 'PLAYER', from: { id: host.id }, to: { id: gail.id }, session: { id: sessionId } });
    const answer = await respond(gail, inv.id, true);
    expect(answer.data?.respondToInvitation).toMatchObject({ status: 'ACCEPTED' });
    accepted[gail.id] = inv;
    // the inviter hears of the acceptance
    await hostNotes.next((n) => n.data?.notifications?.invitation?.id === inv.id && n.data.notifications.invitation.status === 'ACCEPTED');
    const [me] = await myConnection(gail, sessionId);
    expect(me).toMatchObject({ user: { id: gail.id }, role: 'PLAYER' });
    // the connection is the guest's own: the host does not get one for them
    expect((await myConnection(host, sessionId))[0]!.connection).toBeNull();
    const guest = await open(me!.connection!);
    guestStreams[gail.id] = guest;
    expect(guest.welcome).toMatchObject({ role: 'PLAYER', sessionId });

    expect(near(pixel(await guest.frame(() => true, 'at all, for the guest'), 100, 100), WHITE)).toBe(true);
    // frames count the user's input (inputSeq); a guest's shows in the picture
    guest.client.sendInput({ kind: 'pointer', type: 'down', x: 100, y: 100, button: 0 });
    guest.client.sendInput({ kind: 'pointer', type: 'up', x: 100, y: 100, button: 0 });
    await guest.frame((f) => near(pixel(f, 100, 100), RED), "with the guest's dot, for the guest");
    await player.frame((f) => near(pixel(f, 100, 100), RED), "with the guest's dot, for the user");
    const mine = await player.inputAndFrame({ kind: 'pointer', type: 'down', x: 300, y: 200, button: 0 }, "after the user's dot");
    expect(near(pixel(mine, 300, 200), RED)).toBe(true);
    expect(near(pixel(mine, 100, 100), RED)).toBe(true);
    // the release draws nothing new: no frame of its own (protocol.md, "When frames are sent")
    player.client.sendInput({ kind: 'pointer', type: 'up', x: 300, y: 200, button: 0 });
    await guest.frame((f) => near(pixel(f, 300, 200), RED) && near(pixel(f, 100, 100), RED), 'with both dots, for the guest');
    // both players stay connected: the guest did not replace the user
    expect(player.controls.items.filter((c) => c.t === 'close')).toEqual([]);
    const events = (await ok(gw, `{ session(id: "${sessionId}") { events(last: 50) { type data } } }`, {}, host.token)).session.events as { type: string; data: Record<string, unknown> }[];
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['INVITATION_SENT', 'INVITATION_ACCEPTED', 'PARTICIPANT_JOINED']));
    notes.dispose();
  });

  it('a VIEWER guest only watches; leaving closes their stream', async () => {
    const notes = notificationsOf(vera);
    const inv = await inviteHeard(notes, sessionId, vera, 'VIEWER');
    expect((await respond(vera, inv.id, true)).data?.respondToInvitation.status).toBe('ACCEPTED');
    const mine = (await myConnection(vera, sessionId)).find((p) => p.user.id === vera.id)!;
    expect(mine.role).toBe('VIEWER');
    const view = await open(mine.connection!);
    expect(view.welcome.role).toBe('VIEWER');
    expect(near(pixel(await view.frame(() => true, 'at all'), 100, 100), RED)).toBe(true);
    expect(() => view.client.sendInput({ kind: 'pointer', type: 'down', x: 500, y: 400, button: 0 })).toThrow(/VIEWER/);
    expect(await ok(gw, `mutation { leaveSession(sessionId: "${sessionId}") }`, {}, vera.token)).toEqual({ leaveSession: true });
    const closed = await view.control('close');
    expect(closed).toMatchObject({ code: 4403 });
    expect(String(closed.reason)).toMatch(/left/);
    expect((await refusal(gw, `{ session(id: "${sessionId}") { id } }`, {}, vera.token)).extensions?.code).toBe('NOT_FOUND');
    expect((await refusal(gw, `mutation { leaveSession(sessionId: "${sessionId}") }`, {}, vera.token)).extensions?.code).toBe('NOT_FOUND');
    notes.dispose();
  });

  it('rejected with a reason: the inviter receives the reason through notifications', async () => {
    const notes = notificationsOf(rex);
    const inv = await inviteHeard(notes, sessionId, rex, 'PLAYER');
    const answer = await respond(rex, inv.id, false, 'in a meeting until noon');
    expect(answer.data?.respondToInvitation).toMatchObject({ status: 'REJECTED', rejectionReason: 'in a meeting until noon' });
    const heard = await hostNotes.next((n) => n.data?.notifications?.invitation?.id === inv.id);
    expect(heard.data!.notifications.invitation).toMatchObject({ status: 'REJECTED', rejectionReason: 'in a meeting until noon', to: { id: rex.id } });
    expect((await respond(rex, inv.id, true)).errors?.[0]?.extensions?.code).toBe('CONFLICT');
    notes.dispose();
  });

  it("revoking an accepted invitation closes the guest's stream", async () => {
    const inv = accepted[gail.id]!;
    expect((await revoke(inv.id)).data?.revokeInvitation.status).toBe('REVOKED');
    const closed = await guestStreams[gail.id]!.control('close');
    expect(closed).toMatchObject({ code: 4403 });
    expect(String(closed.reason)).toMatch(/revoked/);
    const mine = await ok(gw, `{ myInvitations { id status } }`, {}, gail.token);
    expect(mine.myInvitations.find((i: { id: string }) => i.id === inv.id)).toEqual({ id: inv.id, status: 'REVOKED' });
    expect(await myConnection(host, sessionId)).toEqual([]);
  });

  it('an unanswered invitation expires; one to a session that ended lapses', async () => {
    const notes = notificationsOf(ivy);
    const first = await inviteHeard(notes, sessionId, ivy, 'VIEWER');
    await until('the invitation to expire', (TTL_S + 15) * 1000, async () => {
      const d = await ok(gw, `{ myInvitations(status: EXPIRED) { id } }`, {}, ivy.token);
      return d.myInvitations.some((i: { id: string }) => i.id === first.id);
    }, 250);
    const late = await respond(ivy, first.id, true);
    expect(late.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(late.errors?.[0]?.message).toMatch(/EXPIRED/);

    const again = await inviteHeard(notes, sessionId, ivy, 'VIEWER');
    await ok(gw, `mutation { endSession(sessionId: "${sessionId}") { state } }`, {}, host.token);
    const lapsed = await respond(ivy, again.id, true);
    expect(lapsed.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(lapsed.errors?.[0]?.message).toMatch(/ENDED|EXPIRED/);
    const d = await ok(gw, `{ myInvitations { id status } }`, {}, ivy.token);
    expect(d.myInvitations.find((i: { id: string }) => i.id === again.id)).toEqual({ id: again.id, status: 'EXPIRED' });
    expect((await invite(sessionId, ivy, 'VIEWER')).errors?.[0]?.extensions?.code).toBe('CONFLICT');
    notes.dispose();
  }, 60_000);
});
