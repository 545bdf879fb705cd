#!/usr/bin/env node
// What a WASM FULL restore pays in page faults alone: a WebAssembly memory grown to MiB and written
// once per 4 KiB page, as the guest's thread prepares it (prepareRestore), on 4 KiB pages and after
// the agent's addon advised it onto huge pages (UVE_WASM_HUGE_PAGES), in turns; a fresh memory each
// round, dropped after. Prints each round and the spread. Needs the built agent (npm run build).
// Usage: node bench/scripts/guest-memory-touch.js [MiB=128] [ROUNDS=5]
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ADDON = path.resolve(__dirname, '../../apps/vm-agent/dist/native/huge-pages.node');
const mib = Number(process.argv[2] ?? 128);
const rounds = Number(process.argv[3] ?? 5);
if (!fs.existsSync(ADDON)) {
  console.error(`guest-memory-touch: ${ADDON} is not built (npm run build, with a C compiler)`);
  process.exit(1);
}
const { adviseHugePages } = require(ADDON);
const mode = /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1];

function touch(advise) {
  const pages = (mib * 1024 * 1024) / 65536;
  const memory = new WebAssembly.Memory({ initial: 1, maximum: pages });
  const t0 = performance.now();
  memory.grow(pages - 1);
  if (advise) adviseHugePages(memory.buffer);
  const u = new Uint8Array(memory.buffer);
  for (let at = 0; at < u.length; at += 4096) u[at] = 1;
  return performance.now() - t0;
}

const got = { '4 KiB pages': [], 'advised (huge pages)': [] };
for (let r = 0; r < rounds; r++) {
  for (const [name, advise] of [['4 KiB pages', false], ['advised (huge pages)', true]]) got[name].push(touch(advise));
}
console.log(`guest memory of ${mib} MiB grown and written once per 4 KiB page, ${rounds} rounds in turns (THP mode ${mode}, load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
for (const [name, ms] of Object.entries(got)) {
  const sorted = [...ms].sort((a, b) => a - b);
  console.log(`  ${name.padEnd(22)} median ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} ms (${sorted[0].toFixed(1)}–${sorted[sorted.length - 1].toFixed(1)}); rounds: ${ms.map((x) => x.toFixed(1)).join(', ')}`);
}
