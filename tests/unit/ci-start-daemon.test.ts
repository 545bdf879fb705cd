// .ci/start-daemon (how .ci/run starts dockerd): the daemon must keep none of its caller's open
// files. A caller holding a lock (`flock /tmp/bench.lock .ci/run`) had it held by dockerd for as
// long as dockerd ran. Real processes: flock(1) holds the lock, `sleep` stands in for the daemon.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../support/gateway';
import { until } from '../support/services';

it('starts a daemon in its own session with only stdin, stdout and stderr open, releasing a lock its caller held', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-start-daemon-'));
  const lock = path.join(dir, 'lock');
  const log = path.join(dir, 'daemon.log');
  let pid = 0;
  try {
    // the caller: flock holds the lock on an fd its command inherits; the command opens one more
    const out = execFileSync('flock', [lock, 'bash', '-c', `exec 7>"${dir}/extra"; "${ROOT}/.ci/start-daemon" "${log}" sleep 60`], { encoding: 'utf8', timeout: 10_000 });
    pid = Number(out.trim());
    expect(pid).toBeGreaterThan(0);
    // the pid is printed as the daemon's shell forks: it closes the files, then becomes the command
    // (whose loader opens its libraries a moment): what it holds once it runs is what counts
    // (an fd closed between the listing and its readlink is not held: skipped)
    const target = (fd: string): string[] => {
      try {
        return [fs.readlinkSync(`/proc/${pid}/fd/${fd}`)];
      } catch {
        return [];
      }
    };
    const open = () => Object.fromEntries(fs.readdirSync(`/proc/${pid}/fd`).flatMap((fd) => target(fd).map((t) => [fd, t])));
    let fds = open();
    await until('the daemon running with no file but its stdio', 5000, async () => {
      fds = open();
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep' && Object.keys(fds).length === 3;
    }, 10).catch(() => undefined); // (the files it holds are what the test says below)
    expect(fds).toEqual({ 0: '/dev/null', 1: log, 2: log });
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [, , , session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(Number(session)).toBe(pid); // its own session: no terminal's or caller's signals
    expect(fs.readlinkSync(`/proc/${pid}/cwd`)).toBe('/');
    // the caller is gone and the daemon runs: the lock is free
    expect(spawnSync('flock', ['-n', lock, 'true']).status).toBe(0);
  } finally {
    if (pid) process.kill(pid, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
