// The stages of a VM Data save a VM sends with its upload (x-uve-save-timing) are diagnostics: kept
// only as far as they are numbers, never a reason to refuse the VM Data.
import { saveTiming } from '../../apps/gateway/src/modules/snapshots/vm-data.routes';

const before = Date.now();

it("keeps the VM's numeric stages and adds the VMM's own", () => {
  const t = saveTiming(JSON.stringify({ startedAt: 1.5, capturedAt: 2, encodedAt: 3.25, storedAt: 99, other: 7 }), 1000);
  expect(t).toMatchObject({ startedAt: 1.5, capturedAt: 2, encodedAt: 3.25, receivedAt: 1000 });
  // storedAt is the VMM's, not what the VM claimed; unknown keys are dropped
  expect(t.storedAt).toBeGreaterThanOrEqual(before);
  expect(t).not.toHaveProperty('other');
});

it('leaves out what is not a finite number, and a header that is not JSON or absent', () => {
  expect(saveTiming(JSON.stringify({ startedAt: '5', capturedAt: null, encodedAt: 1e400 }), 7)).toEqual({ receivedAt: 7, storedAt: expect.any(Number) });
  for (const header of ['not json', '[1,2]', '42', undefined]) {
    expect(Object.keys(saveTiming(header, 7)).sort()).toEqual(['receivedAt', 'storedAt']);
  }
});
