// A UA this VM restored ahead for a session (apps/vm-agent/src/sessions/restores-ahead.ts) is let go
// at once when that session starts here without taking it: a NORMAL reconnection, or one without the
// VM Data (deleted meanwhile). Before, it held the state in memory until its hold ran out (up to the
// reconnect window). A NO_LOSS restore asks for it instead. Stubs for the runtime, the UA store and
// the restores ahead: which of them the session asks for is what counts.
import { prepareCommand as prepare, stubSessionManager } from '../support/agent-sessions';

function manager() {
  const calls: string[] = [];
  const restoresAhead = {
    take: (id: string, key: { snapshotId: string }) => {
      calls.push(`take ${id} ${key.snapshotId}`);
      return new Promise(() => undefined); // still under way: the session waits for it, downloads nothing
    },
    drop: (id: string, reason: string) => calls.push(`drop ${id}: ${reason}`),
  };
  const m = stubSessionManager({ fetchVmData: () => new Promise(() => undefined), restoresAhead: restoresAhead as never });
  return { m, calls };
}

it('a NO_LOSS restore takes what was prepared ahead; a NORMAL one, or one without VM Data, lets it go at once', async () => {
  const { m, calls } = manager();
  m.prepare(prepare('s1', { restoreSnapshotId: 'snap1' }));
  m.prepare(prepare('s2', { restoreSnapshotId: 'snap2', reconnectionMethod: 'NORMAL' }));
  m.prepare(prepare('s3', {}));
  expect(calls).toEqual([
    'take s1 snap1',
    'drop s2: the session came back NORMAL (its application data only)',
    'drop s3: the session came back without its VM Data',
  ]);
  await m.endAll('test over');
});
