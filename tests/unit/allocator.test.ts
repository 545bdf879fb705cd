// GLIBC_TUNABLES the gateway gives the processes it starts (infra/allocator.ts).
import { allocatorEnv, DEFAULT_GLIBC_TUNABLES } from '../../apps/gateway/src/infra/allocator';

it('gives the default when nothing is set, the configured value when set, none when off', () => {
  expect(allocatorEnv(undefined, undefined)).toEqual({ GLIBC_TUNABLES: DEFAULT_GLIBC_TUNABLES });
  expect(allocatorEnv('', undefined)).toEqual({ GLIBC_TUNABLES: DEFAULT_GLIBC_TUNABLES });
  expect(allocatorEnv('glibc.malloc.hugetlb=2', undefined)).toEqual({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=2' });
  expect(allocatorEnv('off', undefined)).toEqual({});
});

it("passes on the gateway's own GLIBC_TUNABLES over the configured one, even when that is off", () => {
  expect(allocatorEnv('off', 'glibc.malloc.arena_max=2')).toEqual({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' });
  expect(allocatorEnv(undefined, 'glibc.malloc.arena_max=2')).toEqual({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' });
});
