// The UA package format (docs/packages.md): one manifest check for everyone, `uve pack` building a
// reproducible archive, and the agent reading back exactly what was packed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkManifest } from '@uve/protocol';
import { packUa } from '@uve/client/dist/pack';
import { run } from '@uve/client/dist/cli';
import { readPackage } from '../../apps/vm-agent/src/uas/unpack';

const PAINT = path.resolve(__dirname, '../../apps/vm-agent/uas/paint/build');
let tmp: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-pack-test-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function uaFolder(manifest: Record<string, unknown>, files: Record<string, string> = { 'app.wasm': 'x' }): string {
  const dir = path.join(tmp, 'ua');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  for (const [f, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), data);
  }
  return dir;
}

describe('checkManifest', () => {
  const base = { name: 'paint', version: '1.0.0', platform: 'WASM', entry: 'app.wasm', requiredResources: [] };

  it('accepts a complete manifest and returns it typed', () => {
    expect(checkManifest({ ...base, id: 'com.example.paint', dataPaths: ['saves'] })).toEqual({ ...base, id: 'com.example.paint', dataPaths: ['saves'] });
  });

  it.each([
    [{ version: 'has space' }, /"version"/],
    [{ platform: 'DOS' }, /"platform" must be one of/],
    [{ entry: '../app.wasm' }, /"entry" must be a path inside the package/],
    [{ entry: undefined }, /"entry" must name/],
    [{ requiredResources: ['TELEPATHY'] }, /unknown kind "TELEPATHY"/],
    [{ minWidth: 0 }, /"minWidth"/],
    [{ dataPaths: ['/etc'] }, /"dataPaths"/],
  ])('names the field that is wrong: %j', (over, reason) => {
    expect(() => checkManifest({ ...base, ...over })).toThrow(reason);
  });

  it('wants a command for LINUX_X11 and the platform a reader expects', () => {
    expect(() => checkManifest({ name: 'x', version: '1', platform: 'LINUX_X11' })).toThrow(/"command"/);
    expect(() => checkManifest(base, { platform: 'LINUX_X11' })).toThrow(/"platform" must be "LINUX_X11"/);
  });
});

describe('uve pack', () => {
  it('builds the same archive from the same folder, and the agent reads back every file', async () => {
    const a = await packUa(PAINT, path.join(tmp, 'a.tar.gz'));
    const b = await packUa(PAINT, path.join(tmp, 'b.tar.gz'));
    expect(a.sha256).toBe(b.sha256);
    expect(a.sizeBytes).toBe(fs.statSync(path.join(tmp, 'a.tar.gz')).size);
    const files = readPackage(fs.readFileSync(path.join(tmp, 'a.tar.gz')));
    expect(files.map((f) => f.path).sort()).toEqual(['app.wasm', 'manifest.json']);
    expect(Buffer.from(files.find((f) => f.path === 'app.wasm')!.data).equals(fs.readFileSync(path.join(PAINT, 'app.wasm')))).toBe(true);
  });

  it('prints sha256 and size as JSON and exits 0', async () => {
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await run(['pack', PAINT, '--out', path.join(tmp, 'p.tar.gz')])).toBe(0);
      const line = JSON.parse(String(out.mock.calls.at(-1)![0]));
      expect(line).toMatchObject({ sha256: expect.stringMatching(/^[0-9a-f]{64}$/), sizeBytes: fs.statSync(path.join(tmp, 'p.tar.gz')).size, manifest: { name: 'paint' } });
    } finally {
      out.mockRestore();
    }
  });

  it('refuses a bad manifest, a missing entry and a symbolic link (exit 1), bad usage (exit 2), writing nothing', async () => {
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const target = path.join(tmp, 'out.tar.gz');
      const bad = uaFolder({ name: 'x', version: '1.0', platform: 'WASM', entry: 'app.wasm', requiredResources: 'none' });
      expect(await run(['pack', bad, '--out', target])).toBe(1);
      expect(String(err.mock.calls.at(-1)![0])).toMatch(/"requiredResources" must be an array/);
      fs.rmSync(bad, { recursive: true });

      const missing = uaFolder({ name: 'x', version: '1.0', platform: 'WASM', entry: 'main.wasm', requiredResources: [] });
      expect(await run(['pack', missing, '--out', target])).toBe(1);
      expect(String(err.mock.calls.at(-1)![0])).toMatch(/main\.wasm, which is not in/);
      fs.symlinkSync('/etc/passwd', path.join(missing, 'main.wasm'));
      expect(await run(['pack', missing, '--out', target])).toBe(1);
      expect(String(err.mock.calls.at(-1)![0])).toMatch(/main\.wasm is a symbolic link/);

      expect(await run(['pack', missing])).toBe(2);
      expect(fs.existsSync(target)).toBe(false);
    } finally {
      err.mockRestore();
    }
  });
});
