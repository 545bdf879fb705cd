// A SessionManager of the real vm-agent with stubs for the runtime (a UA that never starts), the UA
// store and the encoder: for unit tests of the sessions' bookkeeping (which command does what).
import type { PrepareSessionCommand } from '@uve/protocol';
import { SessionManager, type SessionManagerOptions } from '../../apps/vm-agent/src/sessions/session-manager';

const log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => log };

export function stubSessionManager(over: Partial<SessionManagerOptions> = {}): SessionManager {
  return new SessionManager({
    capacity: 4,
    codecs: ['MJPEG'],
    runtime: { platform: 'WASM', pixelFormats: ['rgba'], start: () => new Promise(() => undefined) } as never,
    uas: { get: () => ({ uaId: 'ua', version: '1' }), resolve: () => new Promise(() => undefined) } as never,
    createEncoder: () => { throw new Error('no encoder in this test'); },
    report: () => undefined,
    log: log as never,
    ...over,
  });
}

/** a NO_LOSS session.prepare of UA `ua` at 320x240 MJPEG */
export const prepareCommand = (sessionId: string, over: Partial<PrepareSessionCommand> = {}): PrepareSessionCommand => ({
  type: 'session.prepare', sessionId, userId: 'u', uaId: 'ua', uaVersion: '1', reconnectionMethod: 'NO_LOSS',
  terminal: { screenWidth: 320, screenHeight: 240, codecs: ['MJPEG'], localResources: [] } as never,
  stream: { codec: 'MJPEG', width: 320, height: 240, maxFps: 30, bitrateKbps: 1000 } as never,
  ...over,
});
