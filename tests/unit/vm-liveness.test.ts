// When a VM's report is a sign of life (apps/gateway/src/modules/vms/vm-liveness.ts): the e2e
// suites go through it with real VMs (platform-swarm: a removed service's agent heartbeats during
// its stop grace); these name each rule on its own.
import { HEARTBEAT_LOST_REASON, heartbeatRevives, sentSinceOffline } from '../../apps/gateway/src/modules/vms/vm-liveness';

const offlineAt = new Date('2026-12-03T10:00:00.000Z');
const after = '2026-12-03T10:00:01.000Z';
const before = '2026-12-03T09:59:59.000Z';
const vm = (statusReason: string | null, extra: Partial<{ status: 'OFFLINE' | 'IDLE' | 'FAILED'; destroyedAt: Date | null }> = {}) =>
  ({ status: 'OFFLINE' as const, statusReason, updatedAt: offlineAt, destroyedAt: null, ...extra });

it('a report counts as sent since the VM went OFFLINE only when its time is later than that change', () => {
  expect(sentSinceOffline(vm(null), after)).toBe(true);
  expect(sentSinceOffline(vm(null), before)).toBe(false);
  expect(sentSinceOffline(vm(null), offlineAt.toISOString())).toBe(false);
});

it('a heartbeat sent after a VM was found silent brings it back', () => {
  expect(heartbeatRevives(vm(HEARTBEAT_LOST_REASON), after)).toBe(true);
});

it('a heartbeat queued before the VM was found silent does not', () => {
  expect(heartbeatRevives(vm(HEARTBEAT_LOST_REASON), before)).toBe(false);
});

it.each([
  ['its provider saw its service removed', 'service removed'],
  ['its provider saw its container die', 'task failed (exit code 137): its container died'],
  ['it said it was stopping', 'VM stopping: SIGTERM'],
  ['the gateway that ran it stopped', 'the gateway stopped'],
  ['an admin removed it', 'removed'],
])('a heartbeat does not bring back a VM OFFLINE because %s: it is winding down', (_why, reason) => {
  expect(heartbeatRevives(vm(reason), after)).toBe(false);
});

it('nor one already destroyed, nor one that is not OFFLINE', () => {
  expect(heartbeatRevives(vm(HEARTBEAT_LOST_REASON, { destroyedAt: offlineAt }), after)).toBe(false);
  expect(heartbeatRevives(vm(HEARTBEAT_LOST_REASON, { status: 'FAILED' }), after)).toBe(false);
  expect(heartbeatRevives(vm(null, { status: 'IDLE' }), after)).toBe(false);
});
