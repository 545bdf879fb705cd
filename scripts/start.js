#!/usr/bin/env node
// `npm start`: the gateway and, once it listens, the console (`next start`) beside it, in one
// command. Each child leads its own process group, so a terminal's Ctrl-C reaches only this
// launcher, which passes it on once: a second SIGINT to the gateway would mean "kill everything now".
// When either child ends, the other is stopped and the launcher exits.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { spawn } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
const CONSOLE_DIR = path.join(ROOT, 'apps/console');
const GATEWAY_MAIN = path.join(ROOT, 'apps/gateway/dist/main.js');
const consoleHost = process.env.UVE_CONSOLE_HOST || '127.0.0.1';
const consolePort = process.env.UVE_CONSOLE_PORT || '3000';

function fail(message) {
  process.stderr.write(`uve start: ${message}\n`);
  process.exit(2);
}
if (!/^\d+$/.test(consolePort) || Number(consolePort) > 65535) fail(`UVE_CONSOLE_PORT must be a port number, not "${consolePort}"`);
if (!fs.existsSync(GATEWAY_MAIN)) fail('the gateway is not built: run `npm run build` first');
if (!fs.existsSync(path.join(CONSOLE_DIR, '.next/BUILD_ID'))) fail('the console is not built: run `npm run build` first');

/** @type {Map<string, import('node:child_process').ChildProcess>} */
const children = new Map();
let exitCode = null;

function signal(child, sig) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, sig);
  } catch {
    /* already gone */
  }
}

/** Stops whatever still runs; the launcher exits once every child has. */
function stopAll(sig, code) {
  if (exitCode === null) exitCode = code;
  if (sig) for (const child of children.values()) signal(child, sig);
  if ([...children.values()].every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(exitCode);
}

function run(name, args, opts) {
  const child = spawn(process.execPath, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  children.set(name, child);
  child.stdout.pipe(process.stdout);
  child.once('exit', (code, sig) => {
    if (exitCode !== null) return stopAll(null, exitCode); // stopping already: wait for the rest
    // one child ending on its own is a failure of the whole
    process.stderr.write(`uve start: the ${name} ${sig ? `was killed by ${sig}` : `exited with ${code}`}; stopping\n`);
    stopAll('SIGTERM', code || 1);
  });
  return child;
}

let signals = 0;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    signals += 1;
    // the first signal asks for an orderly stop; a second one is passed on too (the gateway then kills at once)
    if (signals === 1) process.stderr.write(`uve start: ${sig}: stopping the console and the gateway\n`);
    stopAll(sig, 0);
  });
}

// the trial setup offers the xterm sample (a shell, run as the UAs' own user where the agent is
// root) unless the operator says otherwise; the gateway alone (uve-gateway, the images) does not
const samples = process.env.UVE_SAMPLE_UAS || 'true,xterm';
if (!process.env.UVE_SAMPLE_UAS) process.stdout.write('uve start: offering the xterm sample (a shell); UVE_SAMPLE_UAS=true leaves it out\n');
// the gateway's own allocator as it sets those of the processes it starts (infra/allocator.ts)
const { allocatorEnv } = require(path.join(ROOT, 'apps/gateway/dist/infra/allocator.js'));
const allocator = allocatorEnv(process.env.UVE_GLIBC_TUNABLES);
const gateway = run('gateway', [GATEWAY_MAIN], { cwd: ROOT, env: { ...process.env, ...allocator, UVE_SAMPLE_UAS: samples } });
let out = '';
const onData = (b) => {
  out += b.toString();
  const m = /listening on (http:\/\/\S+)\/graphql/.exec(out);
  if (!m) return;
  gateway.stdout.off('data', onData);
  out = '';
  if (exitCode !== null) return;
  const gatewayUrl = process.env.UVE_GATEWAY_URL || m[1];
  const next = require.resolve('next/dist/bin/next', { paths: [CONSOLE_DIR] });
  const web = run('console', [next, 'start', '--hostname', consoleHost, '--port', consolePort], {
    cwd: CONSOLE_DIR,
    env: { ...process.env, NODE_ENV: 'production', UVE_GATEWAY_URL: gatewayUrl },
  });
  let said = false;
  web.stdout.on('data', (d) => {
    if (said || !/Ready in|✓ Ready/.test(d.toString())) return;
    said = true;
    process.stdout.write(`UVE console at http://${consoleHost}:${consolePort} (sign in as the admin, ${process.env.UVE_ADMIN_USERNAME || 'admin'}, with the password printed above or UVE_ADMIN_PASSWORD)\n`);
  });
};
gateway.stdout.on('data', onData);
