// The agent's huge pages addon and when it is used (runtimes/wasm/huge-pages.ts); that a restore
// through it lands on huge pages is checked in wasm-runtime.test.ts ("FULL snapshots").
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { guestHugePages, HUGE_PAGES_ADDON, thpMode } from '../../apps/vm-agent/src/runtimes/wasm/huge-pages';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'uve-thp-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('thpMode', () => {
  it("reads the bracketed mode of the kernel's file; null when there is none", () => {
    const file = path.join(dir, 'enabled');
    writeFileSync(file, 'always [madvise] never\n');
    expect(thpMode(file)).toBe('madvise');
    writeFileSync(file, '[always] madvise never\n');
    expect(thpMode(file)).toBe('always');
    expect(thpMode(path.join(dir, 'absent'))).toBeNull();
    expect(['always', 'madvise', 'never', null]).toContain(thpMode());
  });
});

describe('guestHugePages', () => {
  it('advises with the built addon under madvise; says why not otherwise', () => {
    expect(guestHugePages(true, HUGE_PAGES_ADDON, 'madvise')).toEqual({ addon: HUGE_PAGES_ADDON, restored: true, why: expect.stringMatching(/advised/) });
    expect(guestHugePages(false, HUGE_PAGES_ADDON, 'madvise')).toEqual({ addon: null, restored: false, why: expect.stringMatching(/UVE_WASM_HUGE_PAGES=false/) });
    expect(guestHugePages(true, HUGE_PAGES_ADDON, 'never')).toEqual({ addon: null, restored: false, why: expect.stringMatching(/never/) });
    expect(guestHugePages(true, path.join(dir, 'none.node'), 'madvise')).toEqual({ addon: null, restored: false, why: expect.stringMatching(/not built/) });
    // `always`: every memory is on huge pages already, whatever the setting
    expect(guestHugePages(false, HUGE_PAGES_ADDON, 'always')).toEqual({ addon: null, restored: true, why: expect.stringMatching(/always/) });
  });
});

describe('the addon (dist/native/huge-pages.node)', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = () => require(HUGE_PAGES_ADDON) as { adviseHugePages: (b: unknown) => number };

  it('advises the 2 MiB-aligned part of a WebAssembly memory and returns how many MiB', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 256 });
    memory.grow(127); // 8 MiB
    const mib = addon().adviseHugePages(memory.buffer);
    // V8 maps a guest memory on a large alignment: all of it, or all but its unaligned ends
    expect(mib).toBeGreaterThanOrEqual(6);
    expect(mib).toBeLessThanOrEqual(8);
    expect(addon().adviseHugePages(new ArrayBuffer(4096))).toBe(0); // no whole huge page in it
  });

  it('refuses what is not an ArrayBuffer', () => {
    expect(() => addon().adviseHugePages(new Uint8Array(8))).toThrow(/takes an ArrayBuffer/);
    let thrown: unknown;
    try {
      addon().adviseHugePages(undefined);
    } catch (e) {
      thrown = e;
    }
    // a TypeError of Node's realm, not jest's: compared by name
    expect((thrown as Error).name).toBe('TypeError');
  });
});
