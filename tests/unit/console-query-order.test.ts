// The console's rule for a query's answers against live events (apps/console/src/lib/query-order.ts):
// an answer fetched before an event may predate the event's change and must not be shown after it.
import { QueryOrder } from '../../apps/console/src/lib/query-order';

describe('console QueryOrder', () => {
  it('drops an answer fetched while a live update arrived, and asks for the fetch again', () => {
    const order = new QueryOrder();
    const before = order.begin();
    expect(order.updated()).toBe(true);
    expect(order.settle(before)).toBe(false);
    const again = order.begin();
    expect(order.settle(again)).toBe(true);
  });

  it('shows an answer fetched after the update, and asks for nothing when no fetch was in flight', () => {
    const order = new QueryOrder();
    expect(order.updated()).toBe(false);
    const n = order.begin();
    expect(order.settle(n)).toBe(true);
    expect(order.updated()).toBe(false);
  });

  it('of two fetches in flight, shows only the later one', () => {
    const order = new QueryOrder();
    const first = order.begin();
    const second = order.begin();
    expect(order.settle(first)).toBe(false);
    expect(order.settle(second)).toBe(true);
  });

  it('asks once for one redo, however many updates arrive while it is pending', () => {
    const order = new QueryOrder();
    order.begin();
    expect(order.updated()).toBe(true);
    expect(order.updated()).toBe(false);
    const redo = order.begin();
    expect(order.updated()).toBe(true);
    expect(order.settle(redo)).toBe(false);
  });
});
