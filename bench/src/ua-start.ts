// ua-start: what starting and ending one WASM UA costs its VM (the agent's runtime alone: no
// gateway, no encoder, no network): CPU of the agent process (all its threads) and wall time per
// UA, paint at 1280x720, UAs one after another. With --before <repo root>, that build's runtime in
// turns with this one (before, after, before, ...) on the same machine.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fmt, header, loadavg, parseArgs, spread, table, type BenchOutput } from './lib/report';

const HELP = `bench/ua-start: CPU and wall time of one WASM UA's start + first capture + close (paint, 1280x720),
UAs one after another in one agent runtime, optionally against another build in turns

Usage: npm run bench -- ua-start [--uas 30] [--reps 3] [--before /path/to/other/repo]
--before: the root of another built checkout (its apps/vm-agent/dist and uas/paint/build), run in turns with this one.`;

const ROOT = path.resolve(__dirname, '../..');

interface Run { cpuMsPerUa: number; wallMsPerUa: number }

export default async function uaStart(argv: string[]): Promise<BenchOutput> {
  const o = parseArgs(argv, { uas: 30, reps: 3, before: '' }, HELP);
  const builds = o.before ? [{ name: 'before', root: path.resolve(o.before) }, { name: 'this build', root: ROOT }] : [{ name: 'this build', root: ROOT }];
  const runs = new Map<string, Run[]>(builds.map((b) => [b.name, []]));
  const load: number[][] = [loadavg()];
  for (let r = 0; r < o.reps; r++) {
    for (const b of builds) {
      const out = execFileSync(process.execPath, [path.join(__dirname, 'lib/ua-cycle.js'), b.root, String(o.uas)], { encoding: 'utf8' });
      const run = JSON.parse(out.trim().split('\n').pop()!) as Run;
      runs.get(b.name)!.push(run);
      process.stdout.write(`  rep ${r + 1} ${b.name}: ${run.cpuMsPerUa.toFixed(1)} CPU ms / UA, ${run.wallMsPerUa.toFixed(1)} ms wall\n`);
    }
    load.push(loadavg());
  }
  const rows = [...runs].map(([build, rs]) => [build, fmt(spread(rs.map((r) => r.cpuMsPerUa)), 1), fmt(spread(rs.map((r) => r.wallMsPerUa)), 1)]);
  const text = [
    header('ua-start', `${o.reps} x ${o.uas} WASM UAs (paint, 1280x720) started and closed one after another${o.before ? `, in turns with ${o.before}` : ''}`),
    '',
    table(['build', 'CPU ms per UA (start + first capture + close)', 'wall ms per UA'], rows),
    '',
    `load average (1 min) after each round: ${load.map((l) => l[0]).join(', ')}`,
    'CPU: the process running the runtime, all its threads (process.cpuUsage); a UA closed in order leaves its guest thread',
    'to the next one where the build keeps them (UVE_WASM_IDLE_THREADS).',
  ].join('\n');
  return { text, data: { options: o, runs: Object.fromEntries(runs), load } };
}
