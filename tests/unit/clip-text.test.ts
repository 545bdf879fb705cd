// clipText (common/errors.ts): a report's reason cut to its column's length must stay storable as jsonb.
import { clipText } from '../../apps/gateway/src/common/errors';
import { clipReportText, REPORT_TEXT_MAX } from '@uve/protocol';

it('cuts to the length, and never through a surrogate pair', () => {
  expect(clipText('abcdef', 4)).toBe('abcd');
  expect(clipText('abc', 10)).toBe('abc');
  const emoji = '\u{1F600}'; // two UTF-16 units
  expect(clipText(`abc${emoji}`, 4)).toBe('abc');
  expect(clipText(`abc${emoji}`, 5)).toBe(`abc${emoji}`);
  expect(JSON.stringify(clipText(`${'x'.repeat(499)}${emoji}`, 500))).not.toMatch(/\\ud83d/);
});

it("cuts a VM's report text to what the VMM's edge takes, whole surrogate pairs only, and leaves short reports as they are", () => {
  const short = { type: 'session.failed', error: 'boom' };
  expect(clipReportText(short)).toBe(short);
  const long = { type: 'session.failed', error: `${'x'.repeat(REPORT_TEXT_MAX - 1)}\u{1F600}tail`, reason: 'kept' };
  const clipped = clipReportText(long);
  expect(clipped.error).toBe('x'.repeat(REPORT_TEXT_MAX - 1));
  expect(clipped.reason).toBe('kept');
  expect(long.error.length).toBeGreaterThan(REPORT_TEXT_MAX); // the caller's object is not changed
});
