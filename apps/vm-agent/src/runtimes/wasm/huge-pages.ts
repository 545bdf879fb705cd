// Huge pages for a restored guest's memory. V8 maps a WASM memory itself, so no allocator setting
// reaches it: with the host's transparent huge pages in `madvise` mode (Debian's default) it is
// faulted in 4 KiB at a time, and a FULL restore writes all of it. Where the agent's addon is built
// (scripts/build-native.js), the guest's thread asks for huge pages over the memory a restore is
// about to write: 128 MiB take 11-18 ms of page faults instead of 0.38-0.52 s here (docs/performance.md,
// reconnect, "fourteenth pass"). Only restores: a UA that starts and grows by itself keeps 4 KiB
// pages, since a huge page backs 2 MiB wherever one byte of it is touched.
import fs from 'node:fs';
import path from 'node:path';
import { AGENT_ROOT } from '../../common/paths';

export const HUGE_PAGES_ADDON = path.join(AGENT_ROOT, 'dist', 'native', 'huge-pages.node');
const THP_MODE_FILE = '/sys/kernel/mm/transparent_hugepage/enabled';

/** the host's transparent huge page mode (the bracketed one: always, madvise or never); null when unknown */
export function thpMode(file = THP_MODE_FILE): string | null {
  try {
    return /\[(\w+)\]/.exec(fs.readFileSync(file, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

export interface GuestHugePages {
  /** the addon the guest's thread loads to advise a restored memory; null: nothing to advise */
  addon: string | null;
  /** restored guest memories are on huge pages (advised, or the host's mode `always`) */
  restored: boolean;
  why: string;
}

/** Whether restored guest memories go on huge pages, and why (`wanted`: UVE_WASM_HUGE_PAGES). */
export function guestHugePages(wanted: boolean, addon = HUGE_PAGES_ADDON, mode = thpMode()): GuestHugePages {
  if (mode === 'always') return { addon: null, restored: true, why: 'the host puts every memory on huge pages (transparent huge pages: always)' };
  if (!wanted) return { addon: null, restored: false, why: 'turned off (UVE_WASM_HUGE_PAGES=false)' };
  if (mode === 'never') return { addon: null, restored: false, why: `the host's transparent huge pages are off (${THP_MODE_FILE}: never)` };
  if (!fs.existsSync(addon)) return { addon: null, restored: false, why: `the addon is not built (${addon}; npm run build with a C compiler)` };
  return { addon, restored: true, why: 'restored guest memories are advised onto huge pages' };
}
