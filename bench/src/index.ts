#!/usr/bin/env node
// `npm run bench -- <name> [options]`: runs bench/src/<name>.ts, prints its table, writes its JSON
// to bench/results/. With no name, a short run of the gateway bench (a smoke test of the harness).
import fs from 'node:fs';
import { publish, type BenchOutput } from './lib/report';

const BENCHES: Record<string, string> = {
  gateway: 'GraphQL req/s and latency, gateway vs bare Apollo on the same rows',
  fanout: 'session events delivered to 1,000 / 5,000 graphql-ws subscribers; memory per subscription',
  session: 'requestApplication -> first decoded frame on warm PROCESS, warm and cold DOCKER VMs, by stage',
  density: 'concurrent 720p30 sessions per platform, added one at a time until p95 > 50 ms or fps < 28',
  stream: 'input -> decoded frame latency per platform and codec, vs a fixed-clock x11grab baseline',
  'stream-browser': 'input -> drawn frame in headless Chromium by stage, motion fps/bitrate/CPU, vs x11grab',
  reconnect: 'reconnect -> first restored frame (NO_LOSS), VM Data store/retrieve MB/s and memory by size',
  decoder: "the Node client's H264 decoder (SDK): first picture after its ffmpeg started, against later ones",
  'motion-frame': "one full-motion 720p frame's VM-side CPU (game, pump, encoder; no network), optionally vs another build",
  'ua-start': "one WASM UA's start + close: the agent's CPU and wall time per UA, optionally vs another build",
};

/**
 * Interrupted: what the bench started (gateway, PostgreSQL, baselines, Xvfb) must not outlive it.
 * Its direct children get SIGTERM (the gateway then stops its own VMs in order).
 */
function stopOnSignal(signal: NodeJS.Signals): void {
  process.once(signal, () => {
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) process.kill(Number(e), 'SIGTERM');
      } catch {
        /* exited meanwhile */
      }
    }
    process.stderr.write(`bench: ${signal}, its processes told to stop\n`);
    process.exit(130);
  });
}

async function main(): Promise<void> {
  stopOnSignal('SIGINT');
  stopOnSignal('SIGTERM');
  const [name = 'gateway', ...rest] = process.argv.slice(2);
  const args = process.argv.length > 2 ? rest : ['--quick'];
  if (name === '--help' || name === '-h' || !(name in BENCHES)) {
    const list = Object.entries(BENCHES).map(([n, d]) => `  ${n.padEnd(14)} ${d}`).join('\n');
    process.stdout.write(`Usage: npm run bench -- <name> [--help | options]\n\n${list}\n\nWith no name: gateway --quick. Results: bench/results/<name>-<timestamp>.json\n`);
    process.exit(name in BENCHES || name === '--help' || name === '-h' ? 0 : 2);
  }
  const startedAt = new Date();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const bench = require(`./${name}`) as { default?: (argv: string[]) => Promise<BenchOutput>; run?: (argv: string[]) => Promise<void> };
  // a bench with its own table and JSON (reconnect) runs as it is
  if (bench.run) return bench.run(args);
  publish(name, startedAt, args, await bench.default!(args));
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
