// Fault injection on real services: what a test does to a Redis or a process it started.
import IORedis from 'ioredis';

/** The pid of the redis-server behind `url` (it says so itself). */
export async function redisPid(url: string): Promise<number> {
  const r = new IORedis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await r.connect();
    const info = await r.info('server');
    const m = /process_id:(\d+)/.exec(info);
    if (!m) throw new Error(`redis at ${url} did not say its process id`);
    return Number(m[1]);
  } finally {
    r.disconnect();
  }
}

/**
 * Makes Redis unreachable the nasty way: connections stay open and nothing answers (a network
 * partition, a frozen host). Returns the function that brings it back.
 */
export async function freezeRedis(url: string): Promise<() => void> {
  const pid = await redisPid(url);
  process.kill(pid, 'SIGSTOP');
  let thawed = false;
  return () => {
    if (thawed) return;
    thawed = true;
    process.kill(pid, 'SIGCONT');
  };
}
