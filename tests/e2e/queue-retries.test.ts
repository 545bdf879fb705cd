// @uve/queue on a real Redis: a message sent with retries is handed over again after its handler
// threw, each hand-over telling the handler which one it is, until the last; a PermanentFailure
// ends it at once; a message whose consumer was killed comes back to another within the bound.
// (The gateway's UVE-5 consumer builds on these: tests/faults/postgres-outage, report-redelivery.)
import { spawn } from 'node:child_process';
import { createMessageBus, PermanentFailure, REDELIVERY_MS, type Delivery, type MessageBus } from '@uve/queue';
import { ROOT } from '../support/gateway';
import { Collector, killTree, startRedis, until, type TestRedis } from '../support/services';

let redis: TestRedis;
let bus: MessageBus;
beforeAll(async () => {
  redis = await startRedis();
  bus = createMessageBus({ redisUrl: redis.url, prefix: 'retries' });
});
afterAll(async () => {
  await bus?.close();
  await redis?.stop();
});

/** a consumer whose handler throws what `fail` makes of each hand-over; what it was given */
function failing(queue: string, fail: (d: Delivery) => Error) {
  const deliveries = new Collector<Delivery & { type: string }>();
  const consumer = bus.consume(queue, async (m, d) => {
    deliveries.push({ type: m.type, ...d });
    throw fail(d);
  });
  return { deliveries, consumer };
}

it('hands a message over again after a failure, telling the handler which hand-over it runs, until the last', async () => {
  const { deliveries, consumer } = failing('transient', () => new Error('Connection is closed.'));
  await bus.send('transient', { type: 'report' }, { retries: 2 });
  // after 0.5 s, then 1 s
  await deliveries.waitFor((d) => d.attempt === 3, 'the third hand-over', 10_000);
  await until('the message to be failed for good', 5000, async () => (await bus.counts('transient')).failed === 1);
  // one message: the same id on every hand-over
  const { id } = deliveries.items[0]!;
  expect(deliveries.items).toEqual([1, 2, 3].map((attempt) => ({ type: 'report', id, attempt, attempts: 3 })));
  await consumer.close();
});

it('does not hand a message over again after its handler threw a PermanentFailure', async () => {
  const { deliveries, consumer } = failing('permanent', () => new PermanentFailure(new TypeError('a bug')));
  await bus.send('permanent', { type: 'report' }, { retries: 2 });
  await deliveries.waitFor(() => true, 'the first hand-over', 10_000);
  // failed at once, with its retries left: nothing waits for another hand-over
  await until('the message to be failed for good', 5000, async () => (await bus.counts('permanent')).failed === 1);
  expect(await bus.counts('permanent')).toMatchObject({ failed: 1, delayed: 0, waiting: 0, active: 0 });
  expect(deliveries.items).toEqual([{ type: 'report', id: expect.any(String), attempt: 1, attempts: 3 }]);
  await consumer.close();
});

it('hands a message whose consumer was killed while handling it to another consumer, as the same message, within REDELIVERY_MS', async () => {
  // a consumer in a process of its own whose handler never ends: it says what it took, then waits
  const script = `
    const { createMessageBus } = require('@uve/queue');
    const bus = createMessageBus({ redisUrl: process.env.REDIS_URL, prefix: 'retries' });
    bus.consume('killed', (m, d) => {
      process.stdout.write(JSON.stringify({ type: m.type, ...d }) + '\\n');
      return new Promise(() => undefined);
    });`;
  const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, REDIS_URL: redis.url }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const taken = new Collector<Delivery & { type: string }>();
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        taken.push(JSON.parse(out.slice(0, nl)));
        out = out.slice(nl + 1);
      }
    });
    await bus.send('killed', { type: 'report' }, { retries: 2 });
    const first = await taken.waitFor(() => true, 'the child consumer to take the message', 15_000);
    expect(first).toMatchObject({ type: 'report', attempt: 1, attempts: 3 });

    const deliveries = new Collector<Delivery & { type: string }>();
    const consumer = bus.consume('killed', async (m, d) => void deliveries.push({ type: m.type, ...d }));
    killTree(child.pid!);
    await exited;
    const killedAt = Date.now();
    const again = await deliveries.waitFor(() => true, 'the message handed over again', REDELIVERY_MS + 10_000);
    const waited = Date.now() - killedAt;
    // the same message, the same attempt (a kill is not a failure of its handler)
    expect(again).toEqual(first);
    expect(waited).toBeLessThanOrEqual(REDELIVERY_MS + 5_000);
    await until('the message to be done', 5000, async () => {
      const c = await bus.counts('killed');
      return c.active + c.waiting + c.delayed + c.failed === 0;
    });
    expect(deliveries.items).toHaveLength(1);
    await consumer.close();
  } finally {
    if (child.exitCode === null && child.signalCode === null) killTree(child.pid!);
  }
}, REDELIVERY_MS + 60_000);
