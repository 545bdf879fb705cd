// The console's rule for a query's answers against live events (apps/console/src/lib/query-order.ts):
// an answer fetched before an event may predate the event's change and must not be shown after it.
import { coalesced, QueryOrder } from '../../apps/console/src/lib/query-order';

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

describe('console coalesced refetch', () => {
  /** a fetch the test finishes by hand */
  function manual() {
    const started: Array<() => void> = [];
    const run = () => new Promise<void>((resolve) => started.push(resolve));
    return { started, run };
  }
  const settle = () => new Promise((r) => setImmediate(r));

  it('calls while a fetch runs make one more fetch after it, not one each', async () => {
    const { started, run } = manual();
    const refetch = coalesced(run);
    const first = refetch();
    const during = [refetch(), refetch(), refetch()];
    expect(started).toHaveLength(1); // never two at once
    started[0]!();
    await settle();
    expect(started).toHaveLength(2); // the three calls: one more
    started[1]!();
    await Promise.all([first, ...during]);
    expect(started).toHaveLength(2);
  });

  it("resolves a call only once a fetch that began after it ended; an idle call fetches at once", async () => {
    const { started, run } = manual();
    const refetch = coalesced(run);
    void refetch();
    let done = false;
    const late = refetch().then(() => (done = true));
    started[0]!();
    await settle();
    expect(done).toBe(false); // the fetch in flight began before the call
    started[1]!();
    await late;
    expect(done).toBe(true);
    void refetch();
    expect(started).toHaveLength(3);
    started[2]!();
  });
});
