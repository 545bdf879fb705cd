// Stops the run's PostgreSQL, then FAILS the run when a platform process or container the tests
// started is still alive: a test that leaks (a gateway, agent, Xvfb, ffmpeg, Redis, PostgreSQL left
// behind) turns the run red with a list of what was left, which is then killed.
// Ours are known by UVE_TEST_RUN=<id> in their environment (tests/support spawns with it; their own
// children inherit it) or, for VMs a gateway started with an env of its own, by the REDIS_URL or
// UVE_GATEWAY_URL of a Redis or gateway this run started (recorded in the run folder). Other
// people's processes on the machine are not counted.
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { line } = require('./summary-reporter');


function readMarkers(run) {
  const markers = new Set([`UVE_TEST_RUN=${run.runId}`]);
  try {
    for (const l of fs.readFileSync(path.join(run.runDir, 'markers'), 'utf8').split('\n')) if (l) markers.add(l);
  } catch {
    /* nothing recorded */
  }
  return markers;
}

/** live processes (not jest itself) whose environment carries one of the markers */
function leftProcesses(markers) {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!env.some((e) => markers.has(e))) continue;
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      const state = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/\) Z /.test(state)) continue; // exited, waiting for its parent to reap it
      if (/jest/.test(cmd)) continue; // jest's workers (and a child jest of a test) end with jest
      found.push({ pid: Number(entry), cmd: cmd.slice(0, 200) });
    } catch {
      /* gone, or not readable (not ours) */
    }
  }
  return found;
}

/** containers of VMs started in this run (label uve.managed=true, env pointing at this run) */
function leftContainers(markers, since) {
  let ids;
  try {
    ids = execFileSync('docker', ['ps', '-aq', '--filter', 'label=uve.managed=true'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean);
  } catch {
    return []; // no engine: no containers
  }
  if (!ids.length) return [];
  let infos;
  try {
    infos = JSON.parse(execFileSync('docker', ['inspect', ...ids], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    return []; // removed meanwhile
  }
  return infos
    .filter((c) => Date.parse(c.Created) >= since - 1_000 && (c.Config?.Env ?? []).some((e) => markers.has(e)))
    .map((c) => ({ id: c.Id.slice(0, 12), name: c.Name, state: c.State?.Status }));
}

async function leakCheck(run) {
  const markers = readMarkers(run);
  // how long what the tests stopped may take to be gone
  const end = Date.now() + Number(process.env.UVE_TEST_LEAK_GRACE_MS ?? 10_000);
  let procs;
  let containers;
  for (;;) {
    procs = leftProcesses(markers);
    containers = leftContainers(markers, run.startedAt);
    if ((!procs.length && !containers.length) || Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!procs.length && !containers.length) return null;
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (containers.length) {
    try {
      execFileSync('docker', ['rm', '-f', ...containers.map((c) => c.id)], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      /* reported anyway */
    }
  }
  return [
    ...procs.map((p) => `  process ${p.pid}: ${p.cmd}`),
    ...containers.map((c) => `  container ${c.id} ${c.name} (${c.state})`),
  ].join('\n');
}

module.exports = async function globalTeardown() {
  const state = globalThis.__UVE_PG__;
  if (state) {
    await state.pg.stop();
    fs.rmSync(state.dir, { recursive: true, force: true });
  }
  const run = globalThis.__UVE_RUN__;
  if (!run) return;
  const leaks = await leakCheck(run);
  fs.rmSync(run.runDir, { recursive: true, force: true });
  if (!leaks) return;
  // the summary line was printed before the teardown: print it again, counting this failure
  const s = globalThis.__UVE_SUMMARY__;
  if (s) process.stderr.write(`\n${line({ ...s, failed: s.failed + 1 })}\n`);
  throw new Error(`processes or containers started by the tests were still running after the run (now killed):\n${leaks}`);
};
