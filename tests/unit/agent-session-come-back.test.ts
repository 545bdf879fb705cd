// A session that moved to another VM may come back (apps/vm-agent/src/sessions/session-manager.ts):
// its VM remembers why it ended there, refuses a late UC of the old placement at once, but takes the
// VMM's new session.prepare for it and lets a UC whose token was issued after the move wait for it.
// A session that ended for good stays ended. Stubs for the runtime and the UA store: the UA never
// starts, the sessions' bookkeeping is what counts.
import { prepareCommand, stubSessionManager } from '../support/agent-sessions';

function manager() {
  const reports: { type: string }[] = [];
  const m = stubSessionManager({ report: (r) => reports.push(r as { type: string }) });
  return { m, reports };
}

const prepare = (sessionId: string, commandId?: string) => prepareCommand(sessionId, commandId ? { commandId } : {});
const nowS = () => Math.floor(Date.now() / 1000);

it('refuses a UC of the placement before the move at once, takes the new prepare, and lets a UC of the new placement wait for it', async () => {
  const { m } = manager();
  m.prepare(prepare('s1', 'c1'));
  const before = nowS() - 60; // a token issued a minute before the move
  await m.terminate('s1', 'reconnected on another VM', false, true);
  expect(m.get('s1')).toBeUndefined();
  expect(await m.waitFor('s1', before)).toEqual({ error: 'it ended: reconnected on another VM' });
  expect(await m.waitFor('s1')).toEqual({ error: 'it ended: reconnected on another VM' });
  // the VMM brought it back: its UC (a token issued now) waits for the prepare on its way
  const waiting = m.waitFor('s1', nowS(), 5_000);
  m.prepare(prepare('s1', 'c2'));
  const arrival = await waiting;
  expect(arrival && 'session' in arrival && arrival.session).toBe(m.get('s1'));
  await m.endAll('test over');
});

it('keeps a session that ended for good ended: no prepare starts it again, no UC waits for one', async () => {
  const { m } = manager();
  m.prepare(prepare('s2', 'c1'));
  await m.terminate('s2', 'ended by the user');
  m.prepare(prepare('s2', 'c2'));
  expect(m.get('s2')).toBeUndefined();
  expect(await m.waitFor('s2', nowS() + 5)).toEqual({ error: 'it ended: ended by the user' });
  // moved away, but a prepare without a command id (no way to tell it from a re-send) is not taken
  m.prepare(prepare('s3', 'c3'));
  await m.terminate('s3', 'reconnected on another VM', false, true);
  m.prepare(prepare('s3'));
  expect(m.get('s3')).toBeUndefined();
});
