// One of bench/fanout's subscriber processes: opens its share of the graphql-ws connections (one
// subscription each) and tells the bench, per event, when each of its subscribers received it, on
// the machine's monotonic clock (process.hrtime: the same clock as the bench's and the servers'
// traces). Several of these share the receiving work, so that it is not the bottleneck measured.
// Messages from the bench (IPC): { subscribe }, { close }. To the bench: { ready }, { error },
// { event, times } once all of this process's subscribers got that event.
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';

export interface SubscribeOrder {
  url: string;
  token: string | null;
  query: string;
  variables: Record<string, unknown>;
  n: number;
}
export type FromSubscribers = { ready: true } | { error: string } | { event: string; times: number[] } | { closed: true };

const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const send = (m: FromSubscribers) => process.send!(m);

const arrivals = new Map<string, number[]>();
const clients: Client[] = [];
const disposers: (() => void)[] = [];

async function subscribe(o: SubscribeOrder): Promise<void> {
  for (let i = 0; i < o.n; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, o.n - i) }, () => new Promise<void>((resolve, reject) => {
      const client = createClient({ url: o.url, webSocketImpl: WebSocket, connectionParams: o.token ? { authorization: `Bearer ${o.token}` } : {}, retryAttempts: 0, lazy: true });
      clients.push(client);
      let first = true;
      const timer = setTimeout(() => reject(new Error('a subscriber got no replayed event in 60 s')), 60_000);
      disposers.push(client.subscribe<Record<string, { id: string }>>({ query: o.query, variables: o.variables }, {
        next: (v) => {
          const t = monotonicMs();
          if (first) {
            first = false;
            clearTimeout(timer);
            resolve();
          }
          const id = Object.values(v.data ?? {})[0]?.id;
          if (!id) return;
          let times = arrivals.get(id);
          if (!times) arrivals.set(id, (times = []));
          times.push(t);
          if (times.length === o.n) {
            arrivals.delete(id);
            send({ event: id, times });
          }
        },
        error: (e) => reject(new Error(`subscription failed: ${JSON.stringify(e).slice(0, 200)}`)),
        complete: () => undefined,
      }));
    })));
  }
}

process.on('message', (m: { subscribe?: SubscribeOrder; close?: true }) => {
  if (m.subscribe) subscribe(m.subscribe).then(() => send({ ready: true }), (e: Error) => send({ error: e.message }));
  if (m.close) {
    for (const d of disposers) d();
    Promise.all(clients.map((c) => c.dispose())).finally(() => {
      send({ closed: true });
      process.disconnect();
    });
  }
});
