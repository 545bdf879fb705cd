#!/usr/bin/env node
// `npm run bench -- <name> [options]`: runs bench/src/<name>.ts, prints its table, writes its JSON
// to bench/results/. With no name, a short run of the gateway bench (a smoke test of the harness).
import { publish, type BenchOutput } from './lib/report';

const BENCHES: Record<string, string> = {
  gateway: 'GraphQL req/s and latency, gateway vs bare Apollo on the same rows',
  fanout: 'session events delivered to 1,000 / 5,000 graphql-ws subscribers; memory per subscription',
  session: 'requestApplication -> first decoded frame on warm PROCESS, warm and cold DOCKER VMs, by stage',
  stream: 'input -> decoded frame latency per platform and codec, vs a fixed-clock x11grab baseline',
};

async function main(): Promise<void> {
  const [name = 'gateway', ...rest] = process.argv.slice(2);
  const args = process.argv.length > 2 ? rest : ['--quick'];
  if (name === '--help' || name === '-h' || !(name in BENCHES)) {
    const list = Object.entries(BENCHES).map(([n, d]) => `  ${n.padEnd(8)} ${d}`).join('\n');
    process.stdout.write(`Usage: npm run bench -- <name> [--help | options]\n\n${list}\n\nWith no name: gateway --quick. Results: bench/results/<name>-<timestamp>.json\n`);
    process.exit(name in BENCHES || name === '--help' || name === '-h' ? 0 : 2);
  }
  const startedAt = new Date();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const bench = require(`./${name}`) as { default: (argv: string[]) => Promise<BenchOutput> };
  publish(name, startedAt, args, await bench.default(args));
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
