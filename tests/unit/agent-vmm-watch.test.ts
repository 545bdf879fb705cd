// When the agent counts its VMM as lost (and stops by itself, UVE_VMM_LOST_EXIT_MS).
import { VmmWatch, vmmLostReason } from '../../apps/vm-agent/src/vmm/vmm-watch';
import { createLogger } from '../../apps/vm-agent/src/common/log';

const base = { now: 100_000, lastHealthyAt: 100_000, reportBacklogMs: 0, parentGone: false, lostAfterMs: 60_000 };

describe('vmmLostReason', () => {
  it('is null while the health check answers and Redis takes reports', () => {
    expect(vmmLostReason(base)).toBeNull();
    expect(vmmLostReason({ ...base, lastHealthyAt: base.now - 59_999, reportBacklogMs: 59_999 })).toBeNull();
  });

  it('names the health check once it failed for the whole bound', () => {
    expect(vmmLostReason({ ...base, lastHealthyAt: base.now - 60_000 })).toBe('the VMM did not answer its health check for 60 s');
  });

  it('names Redis once a report waited for the whole bound', () => {
    expect(vmmLostReason({ ...base, reportBacklogMs: 61_000 })).toBe('Redis has not taken a report for 61 s');
  });

  it('counts a gone parent at once', () => {
    expect(vmmLostReason({ ...base, parentGone: true })).toBe('the process that started this VM is gone');
  });
});

describe('VmmWatch.parentGone', () => {
  const watch = (parentPid: number | null) => new VmmWatch({ healthUrl: 'http://127.0.0.1:9/healthz', lostAfterMs: 60_000, reportBacklogMs: () => 0, parentPid, onLost: () => undefined, log: createLogger('error') });

  it('compares the parent now with the pid the agent was given, not with the parent it had at start', () => {
    expect(watch(process.ppid).parentGone()).toBe(false);
    // given another pid: reparented already (the gateway died while the agent started)
    expect(watch(process.ppid + 1).parentGone()).toBe(true);
    expect(watch(null).parentGone()).toBe(false); // not a PROCESS VM: nothing to watch
  });
});
