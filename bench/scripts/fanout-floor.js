#!/usr/bin/env node
// The floor under bench/fanout on this machine: one event to N loopback connections received by K
// processes (that only parse and timestamp), no gateway. Modes:
//   net        150 bytes written to each plain TCP socket (one write each; no WebSocket, no JSON)
//   ws-direct  graphql-transport-ws connections; the `next` message serialised once, the id spliced in,
//              ws's send per socket
//   graphql-ws the same connections served by graphql-ws's useServer, each subscription's iterator
//              yielding one shared, already executed result (no execution per subscriber: the
//              gateway's best case); graphql-ws stringifies and sends per subscriber
// Per round: the sender's CPU (its kernel share in 10 ms ticks) and run-queue wait, the last arrival
// after the first write, the receivers' CPU.  Usage: node bench/scripts/fanout-floor.js MODE [N] [K] [ROUNDS]
'use strict';
const net = require('node:net');
const http = require('node:http');
const fs = require('node:fs');
const { fork } = require('node:child_process');
const { WebSocketServer, WebSocket } = require('ws');

const now = () => Number(process.hrtime.bigint()) / 1e6;
function sched(pid) {
  const [cpu, wait] = fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
  const stat = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  return { cpu: cpu / 1e6, wait: wait / 1e6, sys: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) * 10 };
}
const SUB = JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { ev { id type at } }' } });

/** A receiving process: opens its connections 100 at a time, reports the last arrival once each got the round's message. */
function receiver() {
  let got = 0;
  let last = 0;
  const ends = [];
  const arrived = (n) => {
    last = now();
    if (++got === n) {
      process.send({ last });
      got = 0;
    }
  };
  const open = (m) => new Promise((ready) => {
    if (m.mode === 'net') {
      const s = net.connect(m.port, '127.0.0.1', ready);
      s.setNoDelay(true);
      s.on('data', () => arrived(m.n));
      ends.push(() => s.destroy());
      return;
    }
    const ws = new WebSocket(`ws://127.0.0.1:${m.port}`, 'graphql-transport-ws', { perMessageDeflate: false });
    ws.on('open', () => ws.send('{"type":"connection_init","payload":{}}'));
    ws.on('message', (d) => {
      const msg = JSON.parse(String(d));
      if (msg.type === 'connection_ack') ws.send(SUB);
      else if (msg.type === 'next') {
        if (msg.payload.data.ev.id === 'ready') ready();
        else arrived(m.n);
      }
    });
    ends.push(() => ws.terminate());
  });
  process.on('message', async (m) => {
    if (m.connect) {
      for (let i = 0; i < m.n; i += 100) await Promise.all(Array.from({ length: Math.min(100, m.n - i) }, () => open(m)));
      process.send({ ready: true });
    }
    if (m.close) {
      for (const end of ends) end();
      process.disconnect();
    }
  });
}

/** The sending side for `mode`: its port, and send(id) writing one message to every connection. */
function sender(mode, ready) {
  const result = (id) => ({ data: { ev: { id, type: 'SUSPENDED', at: new Date().toISOString() } } });
  if (mode === 'net') {
    const sockets = [];
    const srv = net.createServer((s) => {
      s.setNoDelay(true);
      sockets.push(s);
    });
    const msg = Buffer.alloc(150, 120);
    srv.listen(0, '127.0.0.1', () => ready(srv.address().port, () => { for (const s of sockets) s.write(msg); }));
    return;
  }
  const server = http.createServer();
  const wss = new WebSocketServer({ server });
  if (mode === 'ws-direct') {
    // the protocol by hand: ack, the first ("ready") message on subscribe, then the round's
    wss.on('connection', (s) => s.on('message', (d) => {
      const msg = JSON.parse(String(d));
      if (msg.type === 'connection_init') s.send('{"type":"connection_ack"}');
      if (msg.type === 'subscribe') s.send(JSON.stringify({ id: msg.id, type: 'next', payload: result('ready') }));
    }));
    server.listen(0, '127.0.0.1', () => ready(server.address().port, (id) => {
      const payload = JSON.stringify(result(id));
      for (const s of wss.clients) s.send(`{"id":"1","type":"next","payload":${payload}}`);
    }));
    return;
  }
  const { useServer } = require('graphql-ws/use/ws');
  const { buildSchema } = require('graphql');
  const schema = buildSchema('type Ev { id: ID! type: String! at: String! } type Query { ok: Boolean } type Subscription { ev: Ev }');
  const waiting = new Set();
  const subscribe = async () => {
    let first = true;
    return {
      [Symbol.asyncIterator]() { return this; },
      next() {
        if (first) {
          first = false;
          return Promise.resolve({ done: false, value: result('ready') });
        }
        return new Promise((r) => waiting.add(r));
      },
      return: () => Promise.resolve({ done: true, value: undefined }),
    };
  };
  useServer({ schema, subscribe }, wss);
  server.listen(0, '127.0.0.1', () => ready(server.address().port, (id) => {
    const shared = result(id);
    const pending = [...waiting];
    waiting.clear();
    for (const w of pending) w({ done: false, value: shared });
  }));
}

if (process.argv[2] === 'receiver') receiver();
else {
  const [mode, n = 5000, k = 4, rounds = 4] = [process.argv[2], ...process.argv.slice(3).map(Number)];
  if (!['net', 'ws-direct', 'graphql-ws'].includes(mode)) {
    process.stderr.write('usage: node bench/scripts/fanout-floor.js net|ws-direct|graphql-ws [N] [K] [ROUNDS]\n');
    process.exit(2);
  }
  setTimeout(() => {
    process.stderr.write('not done within 3 min\n');
    process.exit(1);
  }, 180_000).unref();
  sender(mode, async (port, send) => {
    const kids = Array.from({ length: k }, () => fork(__filename, ['receiver']));
    await Promise.all(kids.map((c) => new Promise((r) => {
      c.once('message', r);
      c.send({ connect: true, mode, port, n: n / k });
    })));
    for (let r = 0; r < rounds; r++) {
      await new Promise((res) => setTimeout(res, 500));
      const s0 = sched(process.pid);
      const k0 = kids.map((c) => sched(c.pid));
      const done = Promise.all(kids.map((c) => new Promise((res) => c.once('message', res))));
      const t0 = now();
      send(`e${r}`);
      const lastArrival = Math.max(...(await done).map((a) => a.last)) - t0;
      const s1 = sched(process.pid);
      const receiversCpu = kids.reduce((a, c, i) => a + sched(c.pid).cpu - k0[i].cpu, 0);
      const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
      process.stdout.write(`${mode} N=${n} K=${k}: sender CPU ${(s1.cpu - s0.cpu).toFixed(0)} ms (kernel ${s1.sys - s0.sys}; ${(((s1.cpu - s0.cpu) * 1000) / n).toFixed(1)} µs per connection), waited ${(s1.wait - s0.wait).toFixed(0)} ms; last arrival ${lastArrival.toFixed(1)} ms; receivers CPU ${receiversCpu.toFixed(0)} ms (${((receiversCpu * 1000) / n).toFixed(1)} µs per message); load ${load}\n`);
    }
    for (const c of kids) c.send({ close: true });
    setTimeout(() => process.exit(0), 500);
  });
}
