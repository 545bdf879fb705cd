// @uve/queue on a real Redis: a message sent with retries is handed over again after its handler
// threw, each hand-over telling the handler which one it is, until the last; a PermanentFailure
// ends it at once. (The gateway's UVE-5 consumer builds on both: tests/faults/postgres-outage.)
import { createMessageBus, PermanentFailure, type Delivery, type MessageBus } from '@uve/queue';
import { Collector, startRedis, until, type TestRedis } from '../support/services';

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
  expect(deliveries.items).toEqual([1, 2, 3].map((attempt) => ({ type: 'report', attempt, attempts: 3 })));
  await consumer.close();
});

it('does not hand a message over again after its handler threw a PermanentFailure', async () => {
  const { deliveries, consumer } = failing('permanent', () => new PermanentFailure(new TypeError('a bug')));
  await bus.send('permanent', { type: 'report' }, { retries: 2 });
  await deliveries.waitFor(() => true, 'the first hand-over', 10_000);
  // failed at once, with its retries left: nothing waits for another hand-over
  await until('the message to be failed for good', 5000, async () => (await bus.counts('permanent')).failed === 1);
  expect(await bus.counts('permanent')).toMatchObject({ failed: 1, delayed: 0, waiting: 0, active: 0 });
  expect(deliveries.items).toEqual([{ type: 'report', attempt: 1, attempts: 3 }]);
  await consumer.close();
});
