#!/usr/bin/env node
// Builds the sample WASM UAs from source: every folder uas/<name>/ (not starting with "_") that has
// an asconfig.json becomes a ready package folder uas/<name>/build/ (manifest.json + the module
// the manifest names). Deterministic: same sources and compiler, same bytes. The LINUX_X11 samples
// in uas-x11/<name>/ are copied to uas-x11/<name>/build/.
'use strict';
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const UAS_DIR = path.resolve(__dirname, '..', 'uas');
const X11_UAS_DIR = path.resolve(__dirname, '..', 'uas-x11');

async function buildUa(asc, dir) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  if (manifest.platform !== 'WASM' || typeof manifest.entry !== 'string') throw new Error(`${dir}/manifest.json must have platform WASM and an entry`);
  const out = path.join(dir, 'build');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const outFile = path.join(out, manifest.entry);
  let log = '';
  const stream = { write: (s) => { log += String(s); } };
  // baseDir must be absolute: asc resolves the config's entries against it
  const { error } = await asc.main(['--baseDir', dir, '--config', 'asconfig.json', '--outFile', outFile, '--noColors'], { stdout: stream, stderr: stream });
  if (error) throw new Error(`${path.basename(dir)}: ${error.message}\n${log}`);
  if (log.trim()) process.stderr.write(log);
  fs.copyFileSync(path.join(dir, 'manifest.json'), path.join(out, 'manifest.json'));
  return createHash('sha256').update(fs.readFileSync(outFile)).digest('hex');
}

// LINUX_X11 samples (uas-x11/<name>/) need no compiler: the folder's files go to build/ as they are.
function copyX11Ua(dir) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  if (manifest.platform !== 'LINUX_X11' || !Array.isArray(manifest.command)) throw new Error(`${dir}/manifest.json must have platform LINUX_X11 and a command`);
  const out = path.join(dir, 'build');
  fs.rmSync(out, { recursive: true, force: true });
  for (const name of fs.readdirSync(dir).filter((n) => n !== 'build').sort()) fs.cpSync(path.join(dir, name), path.join(out, name), { recursive: true });
}

async function main() {
  // assemblyscript/asc is an ES module
  const asc = await import('assemblyscript/asc');
  const names = fs
    .readdirSync(UAS_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('_') && !d.name.startsWith('.') && fs.existsSync(path.join(UAS_DIR, d.name, 'asconfig.json')))
    .map((d) => d.name)
    .sort();
  for (const name of names) {
    const sha = await buildUa(asc, path.join(UAS_DIR, name));
    console.log(`built uas/${name}/build (sha256 ${sha.slice(0, 16)})`);
  }
  for (const d of fs.existsSync(X11_UAS_DIR) ? fs.readdirSync(X11_UAS_DIR, { withFileTypes: true }) : []) {
    if (!d.isDirectory() || d.name.startsWith('_') || d.name.startsWith('.') || !fs.existsSync(path.join(X11_UAS_DIR, d.name, 'manifest.json'))) continue;
    copyX11Ua(path.join(X11_UAS_DIR, d.name));
    console.log(`built uas-x11/${d.name}/build`);
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
