// The closing line CI reads ("tests: N passed, N failed, N skipped") agrees with jest's exit status:
// a child jest runs deliberately failing fixture suites (tests/fixtures/summary) with the reporter.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const CONFIG = path.join(ROOT, 'tests/fixtures/summary/jest.config.js');

function childJest(fixture: string, config = CONFIG): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [require.resolve('jest/bin/jest'), '--config', config, '--ci', `${fixture}\\.fixture\\.js$`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
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

it('fails the run (and its summary line) when a process the tests started is still alive, and kills it', async () => {
  const r = await childJest('leak', path.join(ROOT, 'tests/fixtures/summary/jest.leak.config.js'));
  expect(r.out).toMatch(/processes or containers started by the tests were still running after the run \(now killed\):\n {2}process \d+: sleep 300/);
  expect(summary(r.out)).toEqual({ passed: 1, failed: 1, skipped: 0 });
  expect(r.code).not.toBe(0);
  const pid = Number(/process (\d+): sleep 300/.exec(r.out)![1]);
  // killed by the check: gone, or a zombie until init reaps it
  const alive = (() => {
    try {
      return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  })();
  expect(alive).toBe(false);
});
