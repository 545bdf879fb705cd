'use strict';
// Entry of the stack images (docker/build-stack-images.js): `node /uve/entry.js <service>` starts
// the service as configured by its environment, with its secrets read from files (swarm secrets,
// never the environment nor a command line that `ps` shows), and passes SIGTERM/SIGINT on to it.
//
//   postgres  PGDATA (initialized on first start), POSTGRES_PASSWORD_FILE (user postgres),
//             POSTGRES_HOST (default 127.0.0.1), POSTGRES_PORT (default 5432)
//   redis     REDIS_PASSWORD_FILE, REDIS_HOST (default 127.0.0.1), REDIS_PORT (default 6379)
//   console   UVE_GATEWAY_URL, UVE_CONSOLE_HOST (default 0.0.0.0), UVE_CONSOLE_PORT (default 3000)
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

function fail(message) {
  process.stderr.write(`uve ${process.argv[2] || 'entry'}: ${message}\n`);
  process.exit(2);
}

/** a secret from the file NAME_FILE names (trailing line breaks dropped) */
function secret(name) {
  const file = process.env[`${name}_FILE`];
  if (!file) fail(`${name}_FILE is not set (the file of a swarm secret)`);
  try {
    const value = fs.readFileSync(file, 'utf8').replace(/[\r\n]+$/, '');
    if (!value) fail(`${name}_FILE ${file} is empty`);
    return value;
  } catch (e) {
    return fail(`${name}_FILE ${file} cannot be read: ${e.message}`);
  }
}

function port(name, fallback) {
  const v = process.env[name] || fallback;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) fail(`${name} must be a port number, not "${v}"`);
  return v;
}

/** runs the service in the foreground; this process ends with it */
function run(cmd, args, input) {
  const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'inherit', 'inherit'] });
  if (input !== undefined) child.stdin.end(input);
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => fail(`${cmd} could not start: ${e.message}`));
  child.on('exit', (code, sig) => process.exit(code ?? (sig ? 128 + 15 : 1)));
}

const services = {
  postgres() {
    const bin = '/usr/local/pgsql/bin';
    const data = process.env.PGDATA || fail('PGDATA is not set');
    const password = secret('POSTGRES_PASSWORD');
    if (!fs.existsSync(path.join(data, 'PG_VERSION'))) {
      // the password through a private file, removed at once (initdb reads it once)
      const pwfile = path.join('/tmp', `pw-${process.pid}`);
      fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
      const r = spawnSync(`${bin}/initdb`, ['-D', data, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C'], { stdio: 'inherit' });
      fs.rmSync(pwfile, { force: true });
      if (r.status !== 0) fail(`initdb failed (exit ${r.status})`);
    }
    run(`${bin}/postgres`, ['-D', data, '-p', port('POSTGRES_PORT', '5432'), '-c', `listen_addresses=${process.env.POSTGRES_HOST || '127.0.0.1'}`, '-k', '/tmp']);
  },
  redis() {
    const quoted = (s) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    // the configuration on standard input: the password is in no file and on no command line
    const config = [
      `bind ${process.env.REDIS_HOST || '127.0.0.1'}`,
      `port ${port('REDIS_PORT', '6379')}`,
      `requirepass ${quoted(secret('REDIS_PASSWORD'))}`,
      'dir /tmp',
      'save ""',
      'appendonly no',
      // BullMQ's queues must never be evicted
      'maxmemory-policy noeviction',
    ].join('\n');
    run('/usr/bin/redis-server', ['-'], `${config}\n`);
  },
  console() {
    if (!process.env.UVE_GATEWAY_URL) fail('UVE_GATEWAY_URL is not set (the address browsers reach the gateway at)');
    const next = require.resolve('next/dist/bin/next', { paths: [process.cwd()] });
    run(process.execPath, [next, 'start', '--hostname', process.env.UVE_CONSOLE_HOST || '0.0.0.0', '--port', port('UVE_CONSOLE_PORT', '3000')]);
  },
};

const which = process.argv[2];
if (!services[which]) fail(`usage: node /uve/entry.js ${Object.keys(services).join('|')}`);
services[which]();
