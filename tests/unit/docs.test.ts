// The README and docs stay true to the code: every configuration variable is documented.
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const read = (p: string) => fs.readFileSync(path.join(ROOT, p), 'utf8');

it('documents every gateway variable in the README', () => {
  const { CONFIG_SPEC } = require(path.join(ROOT, 'apps/gateway/dist/config.js'));
  const readme = read('README.md');
  for (const spec of Object.values(CONFIG_SPEC) as { env: string; default: string | null }[]) {
    expect(readme).toContain(`| \`${spec.env}\` | ${spec.default === null ? '—' : `\`${spec.default}\``} |`);
  }
});

it('documents every agent variable in docs/vm-agent.md', () => {
  const { CONFIG_VARS } = require(path.join(ROOT, 'apps/vm-agent/dist/config.js'));
  const doc = read('docs/vm-agent.md');
  for (const v of CONFIG_VARS as { name: string }[]) expect(doc).toContain(`\`${v.name}\``);
});

it('links only to docs that exist', () => {
  const readme = read('README.md');
  for (const [, link] of readme.matchAll(/\]\(((?:docs|apps|bench|scripts)\/[^)#]+)\)/g)) expect(fs.existsSync(path.join(ROOT, link!))).toBe(true);
});

it('keeps one list of system packages, which the README points to, scripts/setup installs and .ci/run uses through it', () => {
  const list = read('scripts/system-packages.txt').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
  // what the tests need: the X11 tests run xcalc (x11-apps) and check xterm's DejaVu glyphs
  expect(list).toEqual(expect.arrayContaining(['redis-server', 'ffmpeg', 'xvfb', 'xterm', 'x11-apps', 'x11-utils', 'xauth', 'fonts-dejavu-core', 'docker.io', 'chromium', 'haproxy']));
  const readme = read('README.md');
  expect(readme).toContain('](scripts/system-packages.txt)');
  for (const p of list) expect(readme).toContain(p);
  const setup = read('scripts/setup');
  expect(setup).toContain('scripts/system-packages.txt');
  expect(read('.ci/run')).toMatch(/^scripts\/setup$/m); // CI proves README's setup path
  for (const script of [setup, read('.ci/run')]) expect(script).not.toMatch(/PACKAGES=\(/); // no second list
});

it('documents every console variable in docs/console.md', () => {
  const src = [read('apps/console/src/lib/config.ts'), read('apps/console/package.json')].join('\n');
  const vars = new Set([...src.matchAll(/\b(UVE_[A-Z_]+)/g)].map((m) => m[1]!));
  expect([...vars].sort()).toEqual(['UVE_CONSOLE_HOST', 'UVE_CONSOLE_PORT', 'UVE_GATEWAY_URL']);
  const doc = read('docs/console.md');
  for (const v of vars) expect(doc).toContain(`| \`${v}\` |`);
});
