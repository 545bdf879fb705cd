#!/usr/bin/env node
// The fanout bench's baseline: graphql-ws over `ws` with graphql-js and an in-memory pub/sub, the
// same subscription shape as the gateway's sessionEvents. POST /publish sends one event to every
// subscriber. Nothing the gateway adds: no token check, no Redis hop, no per-event authorization.
import http from 'node:http';
import { buildSchema } from 'graphql';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import path from 'node:path';

// UVE_FANOUT_TRACE: the same trace as the gateway's (its module), publish and per-subscriber writes
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { FanoutTrace } = require(path.resolve(__dirname, '../../../apps/gateway/dist/common/fanout-trace.js')) as {
  FanoutTrace: new (file: string) => { published(id: string): void; onNextOf(wss: WebSocketServer): (...a: never[]) => void };
};
const trace = process.env.UVE_FANOUT_TRACE ? new FanoutTrace(process.env.UVE_FANOUT_TRACE) : null;

const schema = buildSchema(`
  type SessionEvent { id: ID! sessionId: ID! type: String! at: String! }
  type Query { ok: Boolean }
  type Subscription { sessionEvents(sessionId: ID!, replay: Boolean): SessionEvent }
`);

type Event = { id: string; sessionId: string; type: string; at: string };
const listeners = new Set<(e: Event) => void>();

/** An async iterator over published events, with one REQUESTED event first (as the gateway's replay). */
function events(sessionId: string): AsyncIterableIterator<{ sessionEvents: Event }> {
  const queue: Event[] = [{ id: 'replay', sessionId, type: 'REQUESTED', at: new Date().toISOString() }];
  let wake: (() => void) | null = null;
  let done = false;
  const push = (e: Event) => {
    queue.push(e);
    wake?.();
  };
  listeners.add(push);
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      while (!queue.length && !done) await new Promise<void>((r) => (wake = r));
      wake = null;
      if (done) return { done: true, value: undefined };
      return { done: false, value: { sessionEvents: queue.shift()! } };
    },
    async return() {
      done = true;
      listeners.delete(push);
      wake?.();
      return { done: true, value: undefined };
    },
  };
}

const roots = { sessionEvents: ({ sessionId }: { sessionId: string }) => events(sessionId) };

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/publish') {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const e = JSON.parse(body) as Event;
      trace?.published(e.id);
      for (const l of listeners) l(e);
      res.end('{}');
    });
    return;
  }
  res.statusCode = 404;
  res.end();
});
const wss = new WebSocketServer({ server, path: '/graphql' });
useServer({ schema, roots: { subscription: roots } as never, ...(trace ? { onNext: trace.onNextOf(wss) as never } : {}) }, wss);
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`bare graphql-ws listening on http://127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
