// The gateway's pure session rules, without PostgreSQL: the state machine every change goes
// through, and the stream negotiated from a terminal's capabilities. The e2e suites exercise them
// through requestApplication; these name each rule on its own.
import { SESSION_STATES, SLOT_SESSION_STATES, type SessionState } from '@uve/protocol';
import { UveError } from '../../apps/gateway/src/common/errors';
import { assertTransition, canTransition, eventFor, LIVE_STATES, OPEN_STATES } from '../../apps/gateway/src/modules/sessions/session-state';
import { negotiateStream, pickCodec } from '../../apps/gateway/src/modules/sessions/stream-params';
import type { TerminalCapabilities } from '../../apps/gateway/src/modules/users/terminal.types';

describe('session state machine', () => {
  const FINAL: SessionState[] = ['ENDED', 'FAILED'];

  it('lets no session leave ENDED or FAILED, nor go back to REQUESTED', () => {
    for (const from of SESSION_STATES) {
      expect(canTransition(from, 'REQUESTED')).toBe(false);
      if (FINAL.includes(from)) for (const to of SESSION_STATES) expect(canTransition(from, to)).toBe(false);
    }
  });

  it('lets every open session end or fail (an admin, a VM loss), and nothing else be final', () => {
    for (const from of OPEN_STATES) {
      expect(canTransition(from, 'ENDED')).toBe(true);
      expect(canTransition(from, 'FAILED')).toBe(true);
    }
    expect(SESSION_STATES.filter((s) => !OPEN_STATES.includes(s))).toEqual(FINAL);
  });

  it('lists the states a VM serves and the states holding a slot consistently', () => {
    // a live session holds a slot; a DISCONNECTED one keeps its slot (the UA waits) but is not served
    for (const s of LIVE_STATES) expect(SLOT_SESSION_STATES).toContain(s);
    expect(SLOT_SESSION_STATES.filter((s) => !LIVE_STATES.includes(s))).toEqual(['DISCONNECTED']);
    for (const s of SLOT_SESSION_STATES) expect(OPEN_STATES).toContain(s);
  });

  it('goes back to ASSIGNED or ACTIVE only from DISCONNECTED (a reconnection), never from REQUESTED to ACTIVE', () => {
    expect(canTransition('DISCONNECTED', 'ASSIGNED')).toBe(true);
    expect(canTransition('DISCONNECTED', 'ACTIVE')).toBe(true);
    expect(canTransition('ACTIVE', 'ASSIGNED')).toBe(false);
    expect(canTransition('REQUESTED', 'ACTIVE')).toBe(false);
    expect(canTransition('DISCONNECTED', 'SUSPENDED')).toBe(false);
  });

  it('refuses a transition with CONFLICT, the current state and where it could go', () => {
    const refused = (from: SessionState, to: SessionState): UveError => {
      try {
        assertTransition(from, to, 'suspend the session');
      } catch (e) {
        return e as UveError;
      }
      throw new Error(`${from} -> ${to} was allowed`);
    };
    const e = refused('REQUESTED', 'SUSPENDED');
    expect(e).toBeInstanceOf(UveError);
    expect(e).toMatchObject({ code: 'CONFLICT', details: { state: 'REQUESTED' } });
    expect(e.message).toBe('Cannot suspend the session: the session is REQUESTED (from REQUESTED it can go to ASSIGNED, ENDED, FAILED).');
    expect(refused('ENDED', 'ACTIVE').message).toBe('Cannot suspend the session: the session is ENDED and that is final.');
    expect(() => assertTransition('ACTIVE', 'SUSPENDED', 'suspend the session')).not.toThrow();
  });

  it('names each transition with the event the seed gives it', () => {
    expect(eventFor('REQUESTED', 'ASSIGNED')).toBe('ASSIGNED');
    expect(eventFor('DISCONNECTED', 'ASSIGNED')).toBe('RECONNECTED');
    expect(eventFor('ASSIGNED', 'ACTIVE')).toBe('CONNECTED');
    expect(eventFor('SUSPENDED', 'ACTIVE')).toBe('RESUMED');
    expect(eventFor('DISCONNECTED', 'ACTIVE')).toBe('RECONNECTED');
    for (const to of ['SUSPENDED', 'DISCONNECTED', 'ENDED', 'FAILED'] as const) expect(eventFor('ACTIVE', to)).toBe(to);
  });
});

describe('stream negotiation', () => {
  const terminal = (t: Partial<TerminalCapabilities>): TerminalCapabilities => ({ screenWidth: 1280, screenHeight: 720, codecs: ['H264', 'MJPEG'], localResources: [], ...t });

  it('picks the codec both sides have, lower bandwidth first', () => {
    expect(pickCodec(['MJPEG', 'H264'], ['H264', 'MJPEG'])).toBe('H264');
    expect(pickCodec(['MJPEG', 'H264'], ['MJPEG'])).toBe('MJPEG');
    expect(pickCodec(['VP8'], ['H264', 'MJPEG'])).toBeNull();
  });

  it('renders at the terminal size, even, at most 1080p either way round', () => {
    expect(negotiateStream(terminal({}), 'H264')).toMatchObject({ width: 1280, height: 720 });
    expect(negotiateStream(terminal({ screenWidth: 1281, screenHeight: 721 }), 'H264')).toMatchObject({ width: 1280, height: 720 });
    expect(negotiateStream(terminal({ screenWidth: 3840, screenHeight: 2160 }), 'H264')).toMatchObject({ width: 1920, height: 1080 });
    // a portrait phone keeps its orientation
    expect(negotiateStream(terminal({ screenWidth: 2160, screenHeight: 3840 }), 'H264')).toMatchObject({ width: 1080, height: 1920 });
  });

  it('caps the rate at 60 fps, and at 20 on a slow network', () => {
    expect(negotiateStream(terminal({}), 'H264').maxFps).toBe(60);
    expect(negotiateStream(terminal({ maxFrameRate: 240 }), 'H264').maxFps).toBe(60);
    expect(negotiateStream(terminal({ maxFrameRate: 30 }), 'H264').maxFps).toBe(30);
    expect(negotiateStream(terminal({ network: { type: 'CELLULAR_3G' } }), 'H264')).toMatchObject({ maxFps: 20, bitrateKbps: 800 });
    expect(negotiateStream(terminal({ network: { type: 'WIFI', downlinkKbps: 1000 } }), 'H264')).toMatchObject({ maxFps: 20, bitrateKbps: 700 });
  });

  it('sets the bitrate from the access network, within 70 % of a measured downlink', () => {
    expect(negotiateStream(terminal({ network: { type: 'ETHERNET' } }), 'H264').bitrateKbps).toBe(8000);
    expect(negotiateStream(terminal({}), 'H264').bitrateKbps).toBe(3000);
    expect(negotiateStream(terminal({ network: { type: 'ETHERNET', downlinkKbps: 5000 } }), 'H264').bitrateKbps).toBe(3500);
    // never below the floor a picture needs
    expect(negotiateStream(terminal({ network: { type: 'CELLULAR_4G', downlinkKbps: 100 } }), 'H264').bitrateKbps).toBe(200);
  });
});
