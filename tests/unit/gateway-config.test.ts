// The gateway's secrets may come from files (NAME_FILE: swarm secrets, docker/stack.yml) instead of
// the environment; the value in the environment wins, an unreadable file is a clear error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../apps/gateway/src/config';

let dir: string;
beforeAll(() => (dir = mkdtempSync(path.join(tmpdir(), 'uve-gw-config-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
};

it('reads DATABASE_URL, REDIS_URL, the admin password and the VM Data key from *_FILE, without the trailing line break', () => {
  const c = loadConfig({
    DATABASE_URL_FILE: file('db', 'postgres://postgres:p%40ss@127.0.0.1:5432/postgres\n'),
    REDIS_URL_FILE: file('redis', 'redis://:pw@127.0.0.1:6379\n'),
    UVE_ADMIN_PASSWORD_FILE: file('admin', 'correct horse battery\n'),
    UVE_VM_DATA_KEY_FILE: file('key', `${'ab'.repeat(32)}\n`),
  });
  expect(c).toMatchObject({ databaseUrl: 'postgres://postgres:p%40ss@127.0.0.1:5432/postgres', redisUrl: 'redis://:pw@127.0.0.1:6379', adminPassword: 'correct horse battery' });
  expect(c.vmDataKey).not.toBeNull();
});

it('takes the value in the environment over the file, and reads no file for a setting that has none', () => {
  const c = loadConfig({ REDIS_URL: 'redis://env:6379', REDIS_URL_FILE: file('redis2', 'redis://file:6379'), UVE_QUEUE_PREFIX_FILE: file('prefix', 'nope') });
  expect(c.redisUrl).toBe('redis://env:6379');
  expect(c.queuePrefix).toBe('uve');
});

it('says which file it cannot read, and validates what a file holds like the variable', () => {
  expect(() => loadConfig({ DATABASE_URL_FILE: path.join(dir, 'missing') })).toThrow(new ConfigError(`DATABASE_URL_FILE ${path.join(dir, 'missing')} cannot be read: ENOENT: no such file or directory, open '${path.join(dir, 'missing')}'`));
  expect(() => loadConfig({ REDIS_URL_FILE: file('bad', 'http://x\n') })).toThrow(/REDIS_URL must be a redis: or rediss: URL/);
});
