// Redis stopped and started again under a running gateway, mid-session: /readyz says Redis is
// down, the stream and the database side keep working, nothing crashes, and once Redis is back
// the same gateway publishes again: a sessionEvents subscriber keeps receiving. The gateway's own
// Redis is restarted when it dies; a send to the bus never hangs on a Redis that is down.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createMessageBus } from '@uve/queue';
import { adminWithVm, commandLine, isRunning, platformProcesses, startGroupGateway, tempDir, type GroupGateway } from './support';
import { gql, ok, subscribe, wsClient } from '../support/gateway';
import { freePort, freshDatabase, until } from '../support/services';
import { openStream, requestUa, uaId } from '../support/stream';

const ROOT = path.resolve(__dirname, '../..');
const { startPrivateRedis } = require(path.join(ROOT, 'apps/gateway/dist/infra/redis.js'));
const { createLogger } = require(path.join(ROOT, 'apps/gateway/dist/common/logger.js'));
const log = createLogger('warn');

interface Redis { url: string; stop(): Promise<void> }

const dirs: string[] = [];
const gateways: GroupGateway[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  gateways.forEach((g) => g.kill());
  dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
});

async function readyz(g: { url: string }): Promise<{ status: number; body: { ok: boolean; checks: Record<string, string> } }> {
  const res = await fetch(`${g.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as { ok: boolean; checks: Record<string, string> } };
}

it('Redis stopped and started again mid-session: readiness says so, the session goes on, events reach the subscriber after recovery', async () => {
  const redisDir = tempDir('redis');
  dirs.push(redisDir);
  const port = await freePort();
  // persistent (append-only file), like the gateway's own: the queues survive the restart
  let redis: Redis = await startPrivateRedis(redisDir, log, { port });
  cleanups.push(() => redis.stop());
  const dataDir = tempDir('redis-gw');
  dirs.push(dataDir);
  const g = await startGroupGateway({
    UVE_DATA_DIR: dataDir, DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url,
    UVE_WARM_VMS: '1', UVE_SAMPLE_UAS: 'true',
    // shorter than the outage below: heartbeats travel through Redis too, and the outage must
    // still not look like a lost VM (silence counts only while the gateway can hear VMs)
    UVE_VM_HEARTBEAT_TIMEOUT_MS: '5000',
  });
  gateways.push(g);
  const { token, vmId } = await adminWithVm(g);
  const s = await requestUa(g as never, token, await uaId(g as never, token, 'paint'), { codec: 'MJPEG' });
  const stream = await openStream(s.connection);
  cleanups.push(() => stream.close());
  await stream.frame(() => true, 'at all');
  const client = wsClient(g, token);
  cleanups.push(() => client.dispose() as Promise<void>);
  const events = subscribe(client, `subscription($id: ID!) { sessionEvents(sessionId: $id, replay: true) { type } }`, { id: s.id });
  await events.next((e) => e.data?.sessionEvents?.type === 'CONNECTED');

  await redis.stop();
  const down = await readyz(g);
  expect(down.status).toBe(503);
  expect(down.body.checks).toMatchObject({ database: 'ok', redis: expect.stringMatching(/^down: /) });
  // what needs only PostgreSQL still works, and the stream (UC <-> VM) does not go through Redis
  expect((await ok(g, `{ me { username } }`, {}, token)).me.username).toBe('admin');
  await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 100, y: 100, button: 0 }, 'during the outage');
  expect((await gql(g, `{ session(id: "${s.id}") { state } }`, {}, token)).data?.session.state).toBe('ACTIVE');
  // the VM has now been silent for longer than the heartbeat timeout, and the watchdog has looked
  await until('the watchdog to hold back on the silent VM', 30_000, async () => /VM liveness not judged while VM reports cannot reach this gateway/.test(g.output()), 100);
  expect((await gql(g, `query($v: ID!) { vm(id: $v) { status } }`, { v: vmId }, token)).data?.vm.status).toBe('BUSY');
  await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: 120, y: 100, button: 0 }, 'after the heartbeat timeout, Redis still down');

  redis = await startPrivateRedis(redisDir, log, { port });
  const back = Date.now();
  await until('/readyz to be ready again', 30_000, async () => (await readyz(g)).status === 200);
  // UVE-5 flows again: the agent's heartbeats reach the gateway's consumer
  await until('a heartbeat after the restart', 20_000, async () => {
    const d = await ok<{ vm: { lastHeartbeatAt: string; status: string } }>(g, `query($v: ID!) { vm(id: $v) { lastHeartbeatAt status } }`, { v: vmId }, token);
    return Date.parse(d.vm.lastHeartbeatAt) > back && d.vm.status === 'BUSY';
  }, 250);
  const mark = events.items.length;
  expect((await ok(g, `mutation { suspendSession(sessionId: "${s.id}") { state } }`, {}, token)).suspendSession.state).toBe('SUSPENDED');
  await events.next((e) => e.data?.sessionEvents?.type === 'SUSPENDED');
  expect((await ok(g, `mutation { resumeSession(sessionId: "${s.id}") { state } }`, {}, token)).resumeSession.state).toBe('ACTIVE');
  await events.next((e) => e.data?.sessionEvents?.type === 'RESUMED');
  expect(events.items.slice(mark).map((e) => e.data?.sessionEvents?.type)).toEqual(['SUSPENDED', 'RESUMED']);
  // no transition lost or doubled in the record
  const hist = await ok(g, `{ session(id: "${s.id}") { state events { type } } }`, {}, token);
  expect(hist.session.events.map((e: { type: string }) => e.type).filter((t: string) => t !== 'SNAPSHOT_SAVED'))
    .toEqual(['REQUESTED', 'ASSIGNED', 'CONNECTED', 'SUSPENDED', 'RESUMED']);
  expect(g.child.exitCode).toBeNull(); // recovered, not restarted
  expect(g.output()).not.toContain('Unhandled error event');
  expect(g.output()).not.toContain('unhandled rejection');
  // and it stops in order after the outage (Ctrl-C), its VMs with it: nothing left to kill -9
  await stream.close();
  process.kill(-g.pid, 'SIGINT');
  expect((await g.exited(13_000)).code).toBe(0);
}, 180_000);

it('the private Redis, killed, is restarted by the gateway on the same port', async () => {
  const dataDir = tempDir('redis-private');
  dirs.push(dataDir);
  const g = await startGroupGateway({ UVE_DATA_DIR: dataDir });
  gateways.push(g);
  const find = () => platformProcesses(g.pid).find((p) => commandLine(p.pid).includes('redis-server'));
  const first = find()!;
  expect(first).toBeDefined();
  const args = commandLine(first.pid);
  process.kill(first.pid, 'SIGKILL');
  await until('the killed Redis to be gone', 5000, async () => !isRunning(first));
  await until('/readyz to be ready again', 30_000, async () => (await readyz(g)).status === 200);
  const second = find();
  expect(second && second.pid !== first.pid).toBe(true);
  expect(commandLine(second!.pid)).toBe(args); // same port, same files
  expect(g.output()).toMatch(/private Redis exited; restarting/);

  const before = platformProcesses(g.pid);
  process.kill(-g.pid, 'SIGINT');
  expect((await g.exited(13_000)).code).toBe(0);
  await until('nothing left', 3000, async () => before.every((p) => !isRunning(p)));
}, 120_000);

it('a private Redis that cannot be restarted makes the gateway exit with a clear message, not run half-alive', async () => {
  const dataDir = tempDir('redis-fatal');
  dirs.push(dataDir);
  const g = await startGroupGateway({ UVE_DATA_DIR: dataDir });
  gateways.push(g);
  const before = platformProcesses(g.pid);
  const redis = before.find((p) => commandLine(p.pid).includes('redis-server'))!;
  const port = Number(/--port (\d+)/.exec(commandLine(redis.pid))![1]);
  // someone else takes its port: every restart fails (killed again until the port is ours, as the
  // gateway may restart it before the port is taken)
  const squatter = net.createServer((socket) => socket.destroy());
  cleanups.push(() => new Promise((resolve) => squatter.close(resolve)));
  await until('the private Redis port to be taken', 20_000, async () => {
    for (const p of platformProcesses(g.pid)) if (commandLine(p.pid).includes('redis-server')) process.kill(p.pid, 'SIGKILL');
    await until('the killed Redis to be gone', 5000, async () => !platformProcesses(g.pid).some((p) => commandLine(p.pid).includes('redis-server')));
    return new Promise<boolean>((resolve) => {
      squatter.once('error', () => resolve(false));
      squatter.listen(port, '127.0.0.1', () => resolve(true));
    });
  }, 20);
  const end = await g.exited(60_000);
  expect(end.code).toBe(1);
  expect(g.output()).toMatch(/private Redis did not restart: .*given up/);
  await until('nothing left', 3000, async () => before.every((p) => !isRunning(p)));
}, 120_000);

it('a fail-fast bus send rejects within its bound when Redis is down, and works again once it is back', async () => {
  const port = await freePort();
  let redis: Redis = await startPrivateRedis(null, log, { port });
  cleanups.push(() => redis.stop());
  const bus = createMessageBus({ redisUrl: redis.url, prefix: 'fault', sendTimeoutMs: 1000 });
  cleanups.push(() => bus.close());
  await bus.send('q', { type: 'one' });
  await redis.stop();
  await expect(bus.send('q', { type: 'two' })).rejects.toThrow();
  await expect(bus.counts('q')).rejects.toThrow();
  // no data folder keeps its password: the same one again, as the clients' URL has it
  redis = await startPrivateRedis(null, log, { port, password: decodeURIComponent(new URL(redis.url).password) });
  await until('a send to succeed again', 15_000, async () => bus.send('q', { type: 'three' }).then(() => true, () => false), 200);
  expect((await bus.counts('q')).waiting).toBe(1); // not persistent: only the one sent after the restart
}, 60_000);
