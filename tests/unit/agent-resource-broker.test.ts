// UVE-4 in the VM agent: the per-session ResourceBroker.
import type { LocalResourceKind } from '@uve/protocol';
import { SessionResourceBroker, type ResourcePeer } from '../../apps/vm-agent/src/sessions/resource-broker';

function peer(opts: { player?: boolean; expects?: boolean } = {}) {
  const sent: Array<{ id: number; kind: LocalResourceKind }> = [];
  const reported: LocalResourceKind[] = [];
  const p: ResourcePeer & { player: boolean; expects: boolean } = {
    player: opts.player ?? true,
    expects: opts.expects ?? false,
    sendRequest(id, kind) {
      if (!p.player) return false;
      sent.push({ id, kind });
      return true;
    },
    expectsPlayer: () => p.expects,
    reportRequested: (kind) => reported.push(kind),
  };
  return { p, sent, reported };
}

describe('SessionResourceBroker', () => {
  afterEach(() => jest.useRealTimers());

  it('refuses at once what the terminal did not offer, without asking anyone', async () => {
    const { p, sent, reported } = peer();
    const b = new SessionResourceBroker(['GEOLOCATION'], p);
    await expect(b.request('CAMERA')).resolves.toEqual({ ok: false, reason: 'not offered by terminal' });
    expect(sent).toEqual([]);
    expect(reported).toEqual([]);
  });

  it('asks the player, reports it over UVE-5, and resolves with the matching answer', async () => {
    const { p, sent, reported } = peer();
    const b = new SessionResourceBroker(['GEOLOCATION', 'ACCELEROMETER'], p);
    const geo = b.request('GEOLOCATION');
    const acc = b.request('ACCELEROMETER');
    expect(sent.map((s) => s.kind)).toEqual(['GEOLOCATION', 'ACCELEROMETER']);
    expect(reported).toEqual(['GEOLOCATION', 'ACCELEROMETER']);
    b.answer(sent[1].id, { ok: false, reason: 'denied by user' });
    b.answer(sent[0].id, { ok: true, value: { kind: 'GEOLOCATION', latitude: 1, longitude: 2, accuracy: 3 } });
    await expect(acc).resolves.toEqual({ ok: false, reason: 'denied by user' });
    await expect(geo).resolves.toEqual({ ok: true, value: { kind: 'GEOLOCATION', latitude: 1, longitude: 2, accuracy: 3 } });
    b.answer(sent[0].id, { ok: false, reason: 'late duplicate' }); // ignored
    expect(b.pendingCount).toBe(0);
  });

  it('turns an answer of the wrong kind into a refusal', async () => {
    const { p, sent } = peer();
    const b = new SessionResourceBroker(['GEOLOCATION'], p);
    const r = b.request('GEOLOCATION');
    b.answer(sent[0].id, { ok: true, value: { kind: 'BATTERY', level: 1, charging: true } });
    await expect(r).resolves.toEqual({ ok: false, reason: 'answer of kind BATTERY to a GEOLOCATION request' });
  });

  it('refuses after 10 s without an answer', async () => {
    jest.useFakeTimers();
    const { p } = peer();
    const b = new SessionResourceBroker(['BATTERY'], p);
    const r = b.request('BATTERY');
    jest.advanceTimersByTime(9_999);
    expect(b.pendingCount).toBe(1);
    jest.advanceTimersByTime(1);
    await expect(r).resolves.toEqual({ ok: false, reason: 'no answer within 10 s' });
  });

  it('refuses at once when no player is connected (after one was)', async () => {
    const { p, reported } = peer({ player: false, expects: false });
    const b = new SessionResourceBroker(['BATTERY'], p);
    await expect(b.request('BATTERY')).resolves.toEqual({ ok: false, reason: 'no player connected' });
    expect(reported).toEqual([]);
  });

  it('holds what the UA asks before its first player connects, and sends it when the player joins', async () => {
    jest.useFakeTimers();
    const { p, sent, reported } = peer({ player: false, expects: true });
    const b = new SessionResourceBroker(['GEOLOCATION', 'BATTERY'], p);
    const geo = b.request('GEOLOCATION');
    const bat = b.request('BATTERY');
    expect(sent).toEqual([]);
    jest.advanceTimersByTime(3_000);
    p.player = true;
    p.expects = false;
    b.playerJoined();
    expect(sent.map((s) => s.kind)).toEqual(['GEOLOCATION', 'BATTERY']);
    expect(reported).toEqual(['GEOLOCATION', 'BATTERY']);
    b.answer(sent[0].id, { ok: true, value: { kind: 'GEOLOCATION', latitude: 0, longitude: 0, accuracy: 1 } });
    await expect(geo).resolves.toMatchObject({ ok: true });
    // the 10 s count from the request, not from the join
    jest.advanceTimersByTime(7_000);
    await expect(bat).resolves.toEqual({ ok: false, reason: 'no answer within 10 s' });
  });

  it('a held request times out with its own reason when nobody comes', async () => {
    jest.useFakeTimers();
    const { p } = peer({ player: false, expects: true });
    const b = new SessionResourceBroker(['GEOLOCATION'], p);
    const r = b.request('GEOLOCATION');
    jest.advanceTimersByTime(10_000);
    await expect(r).resolves.toEqual({ ok: false, reason: 'no player connected within 10 s' });
  });

  it('refuses what the player was asked when it goes away, and everything when the session ends', async () => {
    const { p } = peer();
    const b = new SessionResourceBroker(['GEOLOCATION'], p);
    const r = b.request('GEOLOCATION');
    b.playerGone();
    await expect(r).resolves.toEqual({ ok: false, reason: 'player disconnected' });
    b.close();
    await expect(b.request('GEOLOCATION')).resolves.toEqual({ ok: false, reason: 'session ended' });
  });
});
