const fs = require('node:fs');

module.exports = async function globalTeardown() {
  const state = globalThis.__UVE_PG__;
  if (!state) return;
  await state.pg.stop();
  fs.rmSync(state.dir, { recursive: true, force: true });
};
