#!/usr/bin/env node
// The restore ahead (issue 9) restore by restore, this build against another in turns: runs
// `bench/dist/reconnect.js` TURNS times per build, alternating which goes first, and reads every
// restore ahead's stamps from bench/results/reconnect.json (states[].saveStages). Prints, per build
// and state size: the restores' MB/s (the snapshot's bytes over its start -> ready on its VM) as
// p50 (p10-p90), how many reached 200 MB/s, and the stages' p50 ms: start -> first bytes -> UA up
// -> downloaded -> ready. A run's own p50 moves 1.5x from one gateway start to the next on this
// machine; the turns and the per-restore counts are what compare. --base: another build's gateway
// (BENCH_GATEWAY_MAIN, a copy of apps/gateway/dist inside apps/gateway); without it, this build
// alone. Arguments after -- go to reconnect (default: --runs 1 --sizes 16 --state-runs 10).
// Usage: node bench/scripts/restore-ahead-turns.js [TURNS=3] [--base apps/gateway/dist-base/main.js] [-- reconnect args]
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '../..');
const RESULT = path.join(ROOT, 'bench/results/reconnect.json');
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const own = dash >= 0 ? argv.slice(0, dash) : argv;
const reconnectArgs = dash >= 0 ? argv.slice(dash + 1) : ['--runs', '1', '--sizes', '16', '--state-runs', '10'];
const baseAt = own.indexOf('--base');
const base = baseAt >= 0 ? path.resolve(own[baseAt + 1]) : null;
const turns = Number(own.find((a, i) => /^\d+$/.test(a) && (baseAt < 0 || i !== baseAt + 1)) ?? 3);
if (base && !fs.existsSync(base)) throw new Error(`--base ${base}: no such file`);

const builds = [{ label: 'this build', main: null }, ...(base ? [{ label: `base (${path.relative(ROOT, base)})`, main: base }] : [])];
/** per build: per MiB, one row of stamps per restore ahead */
const restores = new Map(builds.map((b) => [b.label, new Map()]));

for (let t = 0; t < turns; t++) {
  const order = t % 2 === 0 ? builds : [...builds].reverse();
  for (const b of order) {
    const env = { ...process.env };
    if (b.main) env.BENCH_GATEWAY_MAIN = b.main;
    else delete env.BENCH_GATEWAY_MAIN;
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bench/dist/reconnect.js'), ...reconnectArgs], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`reconnect (${b.label}, turn ${t + 1}) exited ${r.status ?? r.signal}`);
    const result = JSON.parse(fs.readFileSync(RESULT, 'utf8'));
    const load = result.loadAverage ?? [];
    console.log(`turn ${t + 1}, ${b.label}: done (load ${load.map((x) => Number(x).toFixed(1)).join(' ')})`);
    for (const s of result.states ?? []) {
      const bySize = restores.get(b.label);
      const rows = bySize.get(s.mib) ?? bySize.set(s.mib, []).get(s.mib);
      for (const st of s.saveStages ?? []) {
        if (st.restoreAheadReadyAt === undefined || st.restoreAheadStartedAt === undefined) continue;
        const at = (k) => (st[k] === undefined ? NaN : st[k] - st.restoreAheadStartedAt);
        rows.push({ mbs: s.snapshotBytes / at('restoreAheadReadyAt') / 1000, first: at('restoreAheadFirstByteAt'), ua: at('restoreAheadUaStartedAt'), fetched: at('restoreAheadFetchedAt'), ready: at('restoreAheadReadyAt') });
      }
    }
  }
}

const q = (xs, p) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN;
};
const f = (x) => (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : 1) : '-');
console.log('\n| build | MiB | restores | MB/s p50 (p10–p90) | ≥ 200 MB/s | start → first bytes / UA up / downloaded / ready, p50 ms |');
console.log('|---|---|---|---|---|---|');
for (const [label, bySize] of restores) {
  for (const [mib, rows] of bySize) {
    const col = (k) => rows.map((r) => r[k]);
    const mbs = col('mbs');
    console.log(`| ${label} | ${mib} | ${rows.length} | ${f(q(mbs, 0.5))} (${f(q(mbs, 0.1))}–${f(q(mbs, 0.9))}) | ${mbs.filter((x) => x >= 200).length} of ${rows.length} | ${['first', 'ua', 'fetched', 'ready'].map((k) => f(q(col(k), 0.5))).join(' / ')} |`);
  }
}
