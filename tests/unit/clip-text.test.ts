// clipText (common/errors.ts): a report's reason cut to its column's length must stay storable as jsonb.
import { clipText } from '../../apps/gateway/src/common/errors';

it('cuts to the length, and never through a surrogate pair', () => {
  expect(clipText('abcdef', 4)).toBe('abcd');
  expect(clipText('abc', 10)).toBe('abc');
  const emoji = '\u{1F600}'; // two UTF-16 units
  expect(clipText(`abc${emoji}`, 4)).toBe('abc');
  expect(clipText(`abc${emoji}`, 5)).toBe(`abc${emoji}`);
  expect(JSON.stringify(clipText(`${'x'.repeat(499)}${emoji}`, 500))).not.toMatch(/\\ud83d/);
});
