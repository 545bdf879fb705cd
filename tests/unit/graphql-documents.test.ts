// The graphql-ws path's document check: limits and validation as on HTTP, and valid documents kept
// by query text, so many subscriptions share one AST and an invalid text is checked every time.
import { buildSchema } from 'graphql';
import { cachedDocumentChecker } from '../../apps/gateway/src/api/limits';

const schema = buildSchema(`type Query { a: Int }  type Subscription { ticks(n: Int): Int }`);
const limits = { maxTokens: 200, maxDepth: 5, maxAliases: 3, maxDirectives: 3, maxCost: 1000, introspection: false };

it('shares one validated document per query text, keeps no invalid one, and forgets the least recently used', () => {
  const check = cachedDocumentChecker(schema, limits, 2);
  const q1 = 'subscription { ticks(n: 1) }';
  const first = check(q1);
  expect('document' in first && first.document).toBeTruthy();
  expect(check(q1)).toEqual(first);
  expect((check(q1) as { document: unknown }).document).toBe((first as { document: unknown }).document);

  const bad = 'subscription { nope }';
  for (let i = 0; i < 2; i++) {
    expect(check(bad)).toMatchObject({ errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT', reason: 'GRAPHQL_VALIDATION_FAILED' }) })] });
  }
  expect(check(42)).toMatchObject({ errors: [expect.objectContaining({ extensions: expect.objectContaining({ reason: 'GRAPHQL_PARSE_FAILED' }) })] });

  // q1 was used last: q2 and q3 push q2 out, q1 stays
  const q2 = 'subscription { ticks(n: 2) }';
  const q3 = 'subscription { ticks(n: 3) }';
  const d2 = (check(q2) as { document: unknown }).document;
  check(q1);
  check(q3);
  expect((check(q1) as { document: unknown }).document).toBe((first as { document: unknown }).document);
  expect((check(q2) as { document: unknown }).document).not.toBe(d2);
});
