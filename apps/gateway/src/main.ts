#!/usr/bin/env node
// `npm start`: the UVE gateway (VMM) on embedded defaults unless configured otherwise.
import { ConfigError, configHelp, loadConfig } from './config';
import { startGateway, type RunningGateway } from './app';
import { descendants } from './infra/proc';

const HELP = `uve-gateway: the VMM of the Unified Virtual Experience (GraphQL at /graphql, subscriptions over graphql-ws)

Usage: node apps/gateway/dist/main.js [--help]

With no DATABASE_URL it runs an embedded PostgreSQL, with no REDIS_URL a private redis-server,
both with their files in UVE_DATA_DIR. Configuration (environment variables):
${configHelp()}

Signals: SIGINT or SIGTERM stop it in order (VMs, consumers, connections, private servers), within
UVE_SHUTDOWN_TIMEOUT_MS; past that, or on a second signal, every process it started is killed and
it exits at once.
`;

/** Last resort: SIGKILL to every process this gateway started (agents, their Xvfb and ffmpeg, PostgreSQL, Redis). */
function killTree(): number {
  const tree = descendants(process.pid);
  for (const p of tree) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  return tree.length;
}

function forceExit(why: string, code: number): never {
  const n = killTree();
  process.stderr.write(`uve-gateway: ${why}; killed ${n} remaining process(es), exiting\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  if (args.length) throw new ConfigError(`unknown argument ${args[0]}; see --help`);
  const config = loadConfig();

  let gateway: RunningGateway | null = null;
  let stopping = false;
  const stop = (why: string, code: number) => {
    if (stopping) forceExit(`${why} while stopping`, code || 1);
    stopping = true;
    process.stderr.write(`${why}: stopping\n`);
    // a signal during start: nothing is serving yet, so nothing needs an orderly stop
    if (!gateway) forceExit(`${why} during start`, code || 1);
    setTimeout(() => forceExit(`stop took longer than ${config.shutdownTimeoutMs} ms`, 1), config.shutdownTimeoutMs).unref();
    gateway.stop().then(() => process.exit(code), () => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT', 0));
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  // A failed Redis publish or a closed connection must not take every session down with it.
  process.on('unhandledRejection', (e) => process.stderr.write(`uve-gateway: unhandled rejection: ${(e as Error)?.stack ?? e}\n`));

  gateway = await startGateway(config, {
    onFatal: (e) => {
      process.stderr.write(`uve-gateway: ${e.message}\n`);
      stop('fatal', 1);
    },
  });
  if (stopping) return; // a fatal error during start already began the stop
  process.stdout.write(`UVE gateway listening on ${gateway.url}/graphql\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`uve-gateway: ${e instanceof ConfigError ? e.message : e.stack}\n`);
  // whatever the failed start had launched goes too
  killTree();
  process.exit(e instanceof ConfigError ? 2 : 1);
});
