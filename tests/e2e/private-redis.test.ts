// The gateway's private Redis (no REDIS_URL) always has a password: kept 0600 in the data folder,
// never on redis-server's command line, the same across restarts; a client without it is refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';

const ROOT = path.resolve(__dirname, '../..');
const { startPrivateRedis } = require(path.join(ROOT, 'apps/gateway/dist/infra/redis.js'));
const { createLogger } = require(path.join(ROOT, 'apps/gateway/dist/common/logger.js'));

const commandLineOf = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');

let dataDir: string;
let redis: { url: string; stop(): Promise<void> } | null = null;

beforeAll(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-private-redis-'));
});

afterAll(async () => {
  await redis?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function answer(url: string): Promise<string> {
  const client = new IORedis(url, { maxRetriesPerRequest: 0, lazyConnect: true, enableReadyCheck: false, retryStrategy: () => null });
  client.on('error', () => undefined); // the refusal is what ping() answers
  try {
    await client.connect();
    return await client.ping();
  } catch (e) {
    return (e as Error).message;
  } finally {
    client.disconnect();
  }
}

it('requires the password kept 0600 in the data folder; a client without it is refused', async () => {
  redis = await startPrivateRedis(dataDir, createLogger('warn'));
  const url = new URL(redis!.url);
  const password = decodeURIComponent(url.password);
  expect(password.length).toBeGreaterThanOrEqual(32);
  const file = path.join(dataDir, 'redis', 'password');
  expect(fs.readFileSync(file, 'utf8').trim()).toBe(password);
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  expect(fs.statSync(path.join(dataDir, 'redis', 'redis.conf')).mode & 0o777).toBe(0o600);

  expect(await answer(redis!.url)).toBe('PONG');
  const without = `redis://${url.host}`;
  expect(await answer(without)).toMatch(/NOAUTH|Authentication required/i);
  expect(await answer(`redis://:wrong-password@${url.host}`)).not.toBe('PONG'); // AUTH fails as the client connects
  // every local user can read a command line: the password is not on it
  const info = new IORedis(redis!.url);
  const pid = Number(/process_id:(\d+)/.exec(await info.info('server'))![1]);
  info.disconnect();
  expect(commandLineOf(pid)).toContain('redis-server');
  expect(commandLineOf(pid)).not.toContain(password);

  // a restart on the same data folder keeps it (the VMs' URLs stay good)
  await redis!.stop();
  redis = await startPrivateRedis(dataDir, createLogger('warn'));
  expect(decodeURIComponent(new URL(redis!.url).password)).toBe(password);
  expect(await answer(redis!.url)).toBe('PONG');
}, 30_000);
