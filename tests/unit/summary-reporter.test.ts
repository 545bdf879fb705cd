// The closing line CI reads ("tests: N passed, N failed, N skipped") agrees with jest's exit status:
// a child jest runs deliberately failing fixture suites (tests/fixtures/summary) with the reporter.
import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const CONFIG = path.join(ROOT, 'tests/fixtures/summary/jest.config.js');

function childJest(fixture: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [require.resolve('jest/bin/jest'), '--config', CONFIG, '--ci', `${fixture}\\.fixture\\.js$`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (out += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

function summary(out: string): { passed: number; failed: number; skipped: number } {
  const m = [...out.matchAll(/^tests: (\d+) passed, (\d+) failed, (\d+) skipped$/gm)].at(-1);
  if (!m) throw new Error(`no summary line in:\n${out}`);
  return { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) };
}

it('says 0 failed and jest exits 0 when everything passes', async () => {
  const r = await childJest('passing');
  expect(summary(r.out)).toEqual({ passed: 1, failed: 0, skipped: 1 });
  expect(r.code).toBe(0);
});

it.each([
  ['a suite that throws while loading', 'load-error', 0],
  ['an expect failing in afterAll', 'after-all', 1],
  ['a failing assertion', 'failing-test', 0],
])('counts %s as failed and jest exits non-zero', async (_what, fixture, passed) => {
  const r = await childJest(fixture);
  const s = summary(r.out);
  expect(s.failed).toBeGreaterThanOrEqual(1);
  expect(s.passed).toBe(passed);
  expect(r.code).not.toBe(0);
});
