#!/usr/bin/env node
// `npm start`: the UVE gateway (VMM) on embedded defaults unless configured otherwise.
import { ConfigError, configHelp, loadConfig } from './config';
import { startGateway } from './app';

const HELP = `uve-gateway: the VMM of the Unified Virtual Experience (GraphQL at /graphql, subscriptions over graphql-ws)

Usage: node apps/gateway/dist/main.js [--help]

With no DATABASE_URL it runs an embedded PostgreSQL, with no REDIS_URL a private redis-server,
both with their files in UVE_DATA_DIR. Configuration (environment variables):
${configHelp()}
`;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  if (args.length) throw new ConfigError(`unknown argument ${args[0]}; see --help`);
  const gateway = await startGateway(loadConfig());
  process.stdout.write(`UVE gateway listening on ${gateway.url}/graphql\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: stopping\n`);
    gateway.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: Error) => {
  process.stderr.write(`uve-gateway: ${e instanceof ConfigError ? e.message : e.stack}\n`);
  process.exit(e instanceof ConfigError ? 2 : 1);
});
