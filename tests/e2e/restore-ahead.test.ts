// Restore ahead (UVE_RESTORE_AHEAD, on by default) end to end: a real gateway with two PROCESS VMs
// running the real vm-agent. While a NO_LOSS player is away, the VMM has another VM download the
// session's FULL VM Data and restore it into a frozen UA; the reconnection goes to that VM and takes
// that UA, so its first frame waits for neither the download nor the restore. A fresh start, a
// NORMAL reconnection or the VM Data's deletion instead drop what was prepared. A VM killed without its save: the state it staged last is restored ahead.
import { until } from '../support/services';
import { ok, startWasmStack, type GatewayProcess } from '../support/gateway';
import { agentPid, openStream, playGame, playGameAndDrop, requestUa, shipX } from '../support/stream';

let stack: Awaited<ReturnType<typeof startWasmStack>>;
let gw: GatewayProcess;
let admin: string;

beforeAll(async () => {
  // staged every second: the kill -9 case has a state to restore without a save
  stack = await startWasmStack({ UVE_QUEUE_PREFIX: 'ahead', UVE_VM_CAPACITY: '4', UVE_VM_DATA_STAGE_S: '1' }, 2);
  ({ gw, admin } = stack);
}, 90_000);

afterAll(() => stack?.stop());

type Event = { type: string; data: Record<string, unknown> };
const eventsOf = async (id: string): Promise<Event[]> => (await ok(gw, `{ session(id: "${id}") { events(last: 50) { type data } } }`, {}, admin)).session.events;

type Health = { restoresAhead: { preparing: number; ready: number }; wasmHugePages: boolean | null };
/** a VM's /healthz */
async function healthOf(vmId: string): Promise<Health> {
  const vm = (await ok(gw, `{ vm(id: "${vmId}") { endpoint } }`, {}, admin)).vm as { endpoint: string };
  return (await (await fetch(`${vm.endpoint.replace(/^ws/, 'http')}/healthz`)).json()) as Health;
}
/** what a VM holds prepared ahead, from its /healthz */
const heldAhead = async (vmId: string) => (await healthOf(vmId)).restoresAhead;

/** A NO_LOSS game with its ship moved right, dropped without a bye; resolves once its restore is prepared on another VM. */
async function playDropAndWaitAhead(name: string) {
  const { user, game, s, moved } = await playGameAndDrop(gw, name);
  const ahead = await until('the restore asked ahead of the VM Data saved at the drop', 20_000, async () => {
    const events = await eventsOf(s.id);
    const saved = events.find((e) => e.type === 'SNAPSHOT_SAVED');
    const asked = events.find((e) => e.type === 'RESTORE_AHEAD');
    return saved && asked ? { snapshotId: saved.data.snapshotId as string, asked: asked.data as { vmId: string; snapshotId: string; head: boolean } } : null;
  });
  // the VM Data of the drop, on a VM other than the one the session was on, with its head (saved whole at the drop)
  expect(ahead.asked.snapshotId).toBe(ahead.snapshotId);
  expect(ahead.asked.head).toBe(true);
  expect(ahead.asked.vmId).not.toBe(s.vm.id);
  await until('the restore prepared on that VM', 20_000, async () => (await heldAhead(ahead.asked.vmId)).ready === 1);
  return { user, game, s, moved, snapshotId: ahead.snapshotId, aheadVmId: ahead.asked.vmId };
}

it('NO_LOSS: the reconnection goes to the VM that restored the state while the player was away, and takes that UA', async () => {
  const { user, game, s, moved, snapshotId, aheadVmId } = await playDropAndWaitAhead('ahead-taken');
  const again = await requestUa(gw, user.token, game, { codec: 'MJPEG', method: 'NO_LOSS', fresh: false });
  expect(again).toMatchObject({ id: s.id, reconnections: 1, vm: { id: aheadVmId }, restoredFrom: { id: snapshotId, kind: 'FULL' } });
  const next = await openStream(again.connection, {}, undefined, true);
  try {
    expect(next.welcome.vmData).toEqual({ snapshotId, restored: true, kind: 'FULL', preparedAhead: true });
    // the state was in the UA before the session.prepare came: nothing was downloaded on the way
    const t = next.welcome.start!;
    expect(t.restoreAheadReadyAt).toBeLessThan(t.preparedAt);
    // its stages in order: began, first bytes, downloaded, ready
    expect(t.restoreAheadStartedAt).toBeLessThanOrEqual(t.restoreAheadFirstByteAt!);
    expect(t.restoreAheadFirstByteAt).toBeLessThanOrEqual(t.restoreAheadFetchedAt!);
    expect(t.restoreAheadFetchedAt).toBeLessThanOrEqual(t.restoreAheadReadyAt!);
    expect(t.vmDataRequestedAt).toBeUndefined();
    expect(shipX(await next.frame(() => true, 'after the restore'))).toBe(moved);
    // the game goes on from there
    expect(shipX(await next.inputAndFrame({ kind: 'key', type: 'down', key: 'ArrowRight', code: 'ArrowRight' }, 'after one more step'))).toBe(moved + 16);
    const events = await until('SNAPSHOT_RESTORED', 15_000, async () => {
      const e = await eventsOf(s.id);
      return e.some((x) => x.type === 'SNAPSHOT_RESTORED') ? e : null;
    });
    expect(events.find((e) => e.type === 'RECONNECTED')!.data).toMatchObject({ sameVm: false, fromVmId: s.vm.id, vmId: aheadVmId, preparedAhead: true });
    // taken, and restored on huge pages (the agent's addon, built with it; the host's THP mode madvise)
    expect(await healthOf(aheadVmId)).toMatchObject({ restoresAhead: { preparing: 0, ready: 0 }, wasmHugePages: true });
    // and its /metrics counts it taken
    const vm = (await ok(gw, `{ vm(id: "${aheadVmId}") { endpoint } }`, {}, admin)).vm as { endpoint: string };
    const metrics = await (await fetch(`${vm.endpoint.replace(/^ws/, 'http')}/metrics`)).text();
    expect(metrics).toMatch(/^uve_vm_restores_ahead\{kind="taken"\} 1$/m);
    expect(metrics).toMatch(/^uve_vm_restores_ahead\{kind="ready"\} 0$/m);
  } finally {
    await next.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
}, 90_000);

it('a second drop after the reconnection prepares the VM Data saved at that drop, never the one the session was restored from', async () => {
  const { user, game, s, snapshotId: first } = await playDropAndWaitAhead('ahead-again');
  const again = await requestUa(gw, user.token, game, { codec: 'MJPEG', method: 'NO_LOSS', fresh: false });
  expect(again.restoredFrom).toMatchObject({ id: first });
  const next = await openStream(again.connection, {}, undefined, true);
  const moved = shipX(await next.inputAndFrame({ kind: 'key', type: 'down', key: 'ArrowRight', code: 'ArrowRight' }, 'after one more step'));
  next.client.close(); // dropped again, without a bye
  // (the drop's commit may come before its save's: the session's newest VM Data is then still the first)
  const second = await until('the restore asked ahead of the VM Data saved at the second drop', 20_000, async () => {
    const all = await eventsOf(s.id);
    const events = all.slice(all.map((e) => e.type).lastIndexOf('RECONNECTED') + 1);
    const saved = events.find((e) => e.type === 'SNAPSHOT_SAVED');
    const asked = saved && events.find((e) => e.type === 'RESTORE_AHEAD' && e.data.snapshotId === saved.data.snapshotId);
    return asked ? { events, snapshotId: saved.data.snapshotId as string, vmId: asked.data.vmId as string } : null;
  });
  expect(second.snapshotId).not.toBe(first);
  expect(second.events.filter((e) => e.type === 'RESTORE_AHEAD').map((e) => e.data.snapshotId)).not.toContain(first);
  await until('the restore prepared on that VM', 20_000, async () => (await heldAhead(second.vmId)).ready === 1);
  const third = await requestUa(gw, user.token, game, { codec: 'MJPEG', method: 'NO_LOSS', fresh: false });
  expect(third).toMatchObject({ id: s.id, reconnections: 2, vm: { id: second.vmId }, restoredFrom: { id: second.snapshotId } });
  const last = await openStream(third.connection);
  try {
    expect(last.welcome.vmData).toMatchObject({ snapshotId: second.snapshotId, restored: true, preparedAhead: true });
    expect(shipX(await last.frame(() => true, 'after the second restore'))).toBe(moved);
  } finally {
    await last.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
}, 90_000);

it('a fresh start drops the restore prepared ahead: the VM that held it lets it go', async () => {
  const { user, game, s, aheadVmId } = await playDropAndWaitAhead('ahead-dropped');
  const fresh = await requestUa(gw, user.token, game, { codec: 'MJPEG', method: 'NO_LOSS', fresh: true });
  expect(fresh.id).not.toBe(s.id);
  expect(fresh.restoredFrom).toBeNull();
  await until('the prepared restore dropped', 15_000, async () => (await heldAhead(aheadVmId)).ready === 0);
  const ended = await ok(gw, `{ session(id: "${s.id}") { state } }`, {}, admin);
  expect(ended.session.state).toBe('ENDED');
  await ok(gw, `mutation { endSession(sessionId: "${fresh.id}") { state } }`, {}, user.token);
}, 90_000);

it('deleting the VM Data restored ahead has the VM let it go at once, not at the end of the reconnect window', async () => {
  const { user, s, snapshotId, aheadVmId } = await playDropAndWaitAhead('ahead-deleted');
  expect(await ok(gw, `mutation { deleteSnapshot(id: "${snapshotId}") }`, {}, user.token)).toEqual({ deleteSnapshot: true });
  await until('the prepared restore dropped', 15_000, async () => (await heldAhead(aheadVmId)).ready === 0);
  const session = await ok(gw, `{ session(id: "${s.id}") { state } }`, {}, admin);
  expect(session.session.state).toBe('DISCONNECTED');
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
}, 90_000);

it('a NORMAL reconnection placed on the VM that restored ahead lets that UA go (it restarts the UA instead)', async () => {
  const { user, game, s, aheadVmId } = await playDropAndWaitAhead('ahead-normal');
  const again = await requestUa(gw, user.token, game, { codec: 'MJPEG', method: 'NORMAL', fresh: false });
  expect(again).toMatchObject({ id: s.id, vm: { id: aheadVmId } });
  await until('the prepared restore dropped', 15_000, async () => (await heldAhead(aheadVmId)).ready === 0);
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
}, 90_000);

it('after kill -9 of the VM agent, what it staged last is restored ahead on the other VM, and the reconnection takes it', async () => {
  const { user, game, s, stream, moved } = await playGame(gw, 'ahead-killed', true);
  // killed with the socket open: no drop seen, no save; the VMM keeps the staged state and disconnects the session
  process.kill(agentPid(s.vm.id), 'SIGKILL');
  const asked = await until('the restore asked ahead', 30_000, async () => (await eventsOf(s.id)).find((e) => e.type === 'RESTORE_AHEAD')?.data as { vmId: string; snapshotId: string; head: boolean } | undefined);
  expect(asked.vmId).not.toBe(s.vm.id);
  // a staged state kept for the VM lost has no head: the VM prepares by the download's first bytes
  expect(asked.head).toBe(false);
  await until('the restore prepared on that VM', 20_000, async () => (await heldAhead(asked.vmId)).ready === 1);
  await stream.close().catch(() => undefined);
  const again = await requestUa(gw, user.token, game, { codec: 'MJPEG', method: 'NO_LOSS', fresh: false });
  expect(again).toMatchObject({ id: s.id, reconnections: 1, vm: { id: asked.vmId }, restoredFrom: { id: asked.snapshotId, kind: 'FULL' } });
  const next = await openStream(again.connection);
  try {
    expect(next.welcome.vmData).toMatchObject({ snapshotId: asked.snapshotId, restored: true, kind: 'FULL', preparedAhead: true });
    expect(shipX(await next.frame(() => true, 'after the restore'))).toBe(moved);
  } finally {
    await next.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
}, 90_000);
