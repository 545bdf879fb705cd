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
  for (const [, link] of readme.matchAll(/\]\(((?:docs|apps|bench)\/[^)#]+)\)/g)) expect(fs.existsSync(path.join(ROOT, link!))).toBe(true);
});

it('documents every console variable in docs/console.md', () => {
  const src = [read('apps/console/src/lib/config.ts'), read('apps/console/package.json')].join('\n');
  const vars = new Set([...src.matchAll(/\b(UVE_[A-Z_]+)/g)].map((m) => m[1]!));
  expect([...vars].sort()).toEqual(['UVE_CONSOLE_HOST', 'UVE_CONSOLE_PORT', 'UVE_GATEWAY_URL']);
  const doc = read('docs/console.md');
  for (const v of vars) expect(doc).toContain(`| \`${v}\` |`);
});
