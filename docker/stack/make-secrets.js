#!/usr/bin/env node
'use strict';
// Writes the secrets docker/stack.yml reads (files, 0600, in docker/stack/secrets/ or --dir DIR):
// random PostgreSQL, Redis and admin passwords, and the URLs the gateways connect with, for the
// ports the stack file uses (UVE_STACK_POSTGRES_PORT, UVE_STACK_REDIS_PORT: set them the same way
// for this script and for `docker stack deploy`). Passwords that exist are kept, unless --force;
// the URLs are written again each time (after a change of port). `docker stack deploy` makes
// swarm secrets of them; give the admin password (secrets/admin-password) to the first admin.
//
//   node docker/stack/make-secrets.js [--dir DIR] [--force]
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

function parse(argv) {
  const opts = { dir: path.join(__dirname, 'secrets'), force: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dir' && argv[i + 1]) opts.dir = path.resolve(argv[++i]);
    else if (argv[i] === '--force') opts.force = true;
    else if (argv[i] === '-h' || argv[i] === '--help') {
      const lines = fs.readFileSync(__filename, 'utf8').split('\n').slice(2);
      process.stdout.write(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
      process.exit(0);
    } else {
      process.stderr.write(`make-secrets: unknown option ${argv[i]} (try --help)\n`);
      process.exit(2);
    }
  }
  return opts;
}

/** writes the secrets (those missing, or all with force); returns their folder */
function makeSecrets({ dir = path.join(__dirname, 'secrets'), force = false, env = process.env } = {}) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const read = (name) => fs.readFileSync(path.join(dir, name), 'utf8').trim();
  const write = (name, value, always = false) => {
    const file = path.join(dir, name);
    if (!force && !always && fs.existsSync(file)) return;
    fs.writeFileSync(file, `${value}\n`, { mode: 0o600 });
  };
  const random = () => crypto.randomBytes(18).toString('base64url');
  write('postgres-password', random());
  write('redis-password', random());
  write('admin-password', random());
  const pgPort = env.UVE_STACK_POSTGRES_PORT || '5432';
  const redisPort = env.UVE_STACK_REDIS_PORT || '6379';
  // the gateways run on the PostgreSQL and Redis node (docker/stack.yml places them together)
  write('database-url', `postgres://postgres:${encodeURIComponent(read('postgres-password'))}@127.0.0.1:${pgPort}/postgres`, true);
  write('redis-url', `redis://:${encodeURIComponent(read('redis-password'))}@127.0.0.1:${redisPort}`, true);
  return dir;
}

module.exports = { makeSecrets };

if (require.main === module) {
  const dir = makeSecrets(parse(process.argv.slice(2)));
  process.stdout.write(`secrets in ${dir} (the admin password: ${path.join(dir, 'admin-password')})\n`);
}
