// The C allocator of the processes the gateway starts (embedded PostgreSQL, private Redis, VM
// agents), and of the gateway itself when scripts/start.js starts it. A VM Data transfer writes
// megabytes of memory just allocated at every step (PostgreSQL's copy of each 1 MiB chunk it
// receives, node-postgres's message buffer, an agent's buffer for a state larger than its kept
// one), and on a virtual machine every first write of a 4 KiB page is a costly fault: a 16 MiB
// first store ran at 32-35 MB/s, 49-65 with large allocations on transparent huge pages
// (docs/performance.md, reconnect, "tenth pass"). glibc's `hugetlb=1` asks for huge pages only for
// allocations of at least one (2 MiB), through madvise: the host's
// /sys/kernel/mm/transparent_hugepage/enabled must be `madvise` (Debian's default) or `always`;
// elsewhere, and with another C library, the variable does nothing.
export const DEFAULT_GLIBC_TUNABLES = 'glibc.malloc.hugetlb=1';

/**
 * GLIBC_TUNABLES for the processes the gateway starts: the gateway's own when its operator set one
 * (theirs wins), else `configured` (UVE_GLIBC_TUNABLES: unset or empty, the default; `off`: none,
 * the allocator's own defaults).
 */
export function allocatorEnv(configured: string | undefined, own: string | undefined = process.env.GLIBC_TUNABLES): Record<string, string> {
  const tunables = own ?? (configured === 'off' ? null : configured || DEFAULT_GLIBC_TUNABLES);
  return tunables ? { GLIBC_TUNABLES: tunables } : {};
}
