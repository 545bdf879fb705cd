// The one "owner or admin" rule every domain's policy is built on (apps/gateway/src/common/access.ts).
import { isAdmin, ownsOrAdmin } from '../../apps/gateway/src/common/access';

const alice = { id: 'a', role: 'USER' as const };
const admin = { id: 'z', role: 'ADMIN' as const };

it('lets the owner and admins in, nobody else', () => {
  expect(ownsOrAdmin(alice, 'a')).toBe(true);
  expect(ownsOrAdmin(alice, 'b')).toBe(false);
  expect(ownsOrAdmin(admin, 'b')).toBe(true);
});

it('gives a thing nobody owns (a suspend control no watcher holds) to admins only', () => {
  for (const none of [null, undefined, '']) {
    expect(ownsOrAdmin(alice, none)).toBe(false);
    expect(ownsOrAdmin(admin, none)).toBe(true);
  }
});

it('knows admins by their role alone', () => {
  expect(isAdmin(admin)).toBe(true);
  expect(isAdmin(alice)).toBe(false);
});
