// One of bench/fanout's subscriber processes: opens its share of the graphql-ws connections (one
// subscription each) and tells the bench, per event, when each of its subscribers received it, on
// the machine's monotonic clock (process.hrtime: the same clock as the bench's and the servers'
// traces). Several of these share the receiving work, so that it is not the bottleneck measured.
// Messages from the bench (IPC): { subscribe }, { close }. To the bench: { ready }, { error },
// { event, times } once all of this process's subscribers got that event.
//
// Two clients, the same for both servers: `lean` speaks the graphql-transport-ws protocol itself on a
// bare ws socket (JSON.parse of each message, nothing else), so that receiving 5,000 messages on the
// servers' own 2 cores costs as little as it can; `graphql-ws` is graphql-ws's createClient (its
// message validation, emitter and sink per message on top).
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';

export interface SubscribeOrder {
  url: string;
  token: string | null;
  query: string;
  variables: Record<string, unknown>;
  n: number;
  client: 'lean' | 'graphql-ws';
}
export type FromSubscribers = { ready: true } | { error: string } | { event: string; times: number[] } | { closed: true };

const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const send = (m: FromSubscribers) => process.send!(m);

const arrivals = new Map<string, number[]>();
/** each subscriber's way to end: its subscription and connection */
const closers: (() => Promise<void>)[] = [];

interface Sink {
  next(payload: { data?: Record<string, { id: string } | null> | null }): void;
  error(e: unknown): void;
}

/** graphql-ws's own client: createClient and subscribe. */
function viaGraphqlWs(o: SubscribeOrder, sink: Sink): void {
  const client = createClient({ url: o.url, webSocketImpl: WebSocket, connectionParams: o.token ? { authorization: `Bearer ${o.token}` } : {}, retryAttempts: 0, lazy: true });
  const dispose = client.subscribe<Record<string, { id: string }>>({ query: o.query, variables: o.variables }, { next: (v) => sink.next(v), error: (e) => sink.error(e), complete: () => undefined });
  closers.push(async () => {
    dispose();
    await client.dispose();
  });
}

/** The graphql-transport-ws protocol on a ws socket: connection_init, subscribe once acked, pong to pings. */
function viaLeanSocket(o: SubscribeOrder, sink: Sink): void {
  const ws = new WebSocket(o.url, 'graphql-transport-ws', { perMessageDeflate: false });
  ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: o.token ? { authorization: `Bearer ${o.token}` } : {} })));
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as { type: string; payload?: unknown };
    if (m.type === 'next') sink.next(m.payload as Parameters<Sink['next']>[0]);
    else if (m.type === 'connection_ack') ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: o.query, variables: o.variables } }));
    else if (m.type === 'ping') ws.send('{"type":"pong"}');
    else if (m.type === 'error' || m.type === 'complete') sink.error(m.payload ?? 'completed');
  });
  ws.on('close', (code, reason) => sink.error(`closed ${code} ${String(reason)}`));
  ws.on('error', (e) => sink.error(e.message));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close(1000);
      }),
  );
}

async function subscribe(o: SubscribeOrder): Promise<void> {
  const open = o.client === 'lean' ? viaLeanSocket : viaGraphqlWs;
  for (let i = 0; i < o.n; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, o.n - i) }, () => new Promise<void>((resolve, reject) => {
      let first = true;
      let closing = false;
      const timer = setTimeout(() => reject(new Error('a subscriber got no replayed event in 60 s')), 60_000);
      open(o, {
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
        error: (e) => {
          if (!closing && first) reject(new Error(`subscription failed: ${JSON.stringify(e).slice(0, 200)}`));
          closing = true;
        },
      });
    })));
  }
}

process.on('message', (m: { subscribe?: SubscribeOrder; close?: true }) => {
  if (m.subscribe) subscribe(m.subscribe).then(() => send({ ready: true }), (e: Error) => send({ error: e.message }));
  if (m.close) {
    Promise.all(closers.map((c) => c())).finally(() => {
      send({ closed: true });
      process.disconnect();
    });
  }
});
