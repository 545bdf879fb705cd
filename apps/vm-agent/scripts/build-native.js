#!/usr/bin/env node
// Builds the agent's native addon (native/huge-pages.c -> dist/native/huge-pages.node) with the C
// compiler (CC, else cc) against the headers of the Node that runs this script: Node-API only, so
// the addon loads in any Node of the same major line or later. No node-gyp (it downloads headers;
// the ones installed beside Node suffice). Optional: without a compiler or the headers the agent
// works the same, its WASM restores only slower (src/runtimes/wasm/huge-pages.ts); this prints why
// and exits 0. scripts/system-packages.txt lists the compiler, and a unit test checks the addon.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const SOURCE = path.join(ROOT, 'native', 'huge-pages.c');
const OUT = path.join(ROOT, 'dist', 'native', 'huge-pages.node');
const HEADERS = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');

function skip(why) {
  console.warn(`build-native: ${path.relative(ROOT, OUT)} not built (${why}); WASM restores will fault 4 KiB pages (slower). Debian: apt-get install gcc libc6-dev`);
  fs.rmSync(OUT, { force: true });
}

if (!fs.existsSync(path.join(HEADERS, 'node_api.h'))) {
  skip(`no node_api.h in ${HEADERS}`);
} else if (fs.existsSync(OUT) && fs.statSync(OUT).mtimeMs >= fs.statSync(SOURCE).mtimeMs) {
  // up to date
} else {
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  const cc = process.env.CC || 'cc';
  const tmp = `${OUT}.${process.pid}.tmp`;
  const r = spawnSync(cc, ['-O2', '-Wall', '-Werror', '-shared', '-fPIC', `-I${HEADERS}`, '-o', tmp, SOURCE], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) skip(`${cc}: ${r.error.code === 'ENOENT' ? 'no C compiler' : r.error.message}`);
  else if (r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    console.error(`build-native: ${cc} failed on ${path.relative(ROOT, SOURCE)}`);
    process.exit(1);
  } else fs.renameSync(tmp, OUT);
}
