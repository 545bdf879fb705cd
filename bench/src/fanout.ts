// bench/fanout: one session's events delivered to 1,000 and 5,000 graphql-ws subscribers (one
// connection each, the session's owner), beside a bare graphql-ws server fanning the same shape
// out from memory. Delivery = the trigger sent (suspendSession/resumeSession on the gateway, POST
// /publish on the baseline) -> the event received by each subscriber. Memory per idle subscription
// = the server's RSS growth over the subscribers, divided by their number.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import { StreamClient } from '@uve/client';
import { fmt, header, latencySpread, now, parseArgs, percentile, spread, table, type BenchOutput } from './lib/report';
import { summarizeProfiles } from './lib/profile';
import { dataDir, gql, login, startGateway, startPostgres, startBaseline, stopChild, until, type Gateway } from './lib/services';

const HELP = `bench/fanout: delivery p50/p99 of one session's events to N graphql-ws subscribers, and memory per
idle subscription, gateway vs a bare graphql-ws server

Usage: npm run bench -- fanout [--subscribers 1000,5000] [--events 10] [--quick]
                               [--profile]  (the gateway runs with --cpu-prof; its hottest functions are printed)`;

const SUB = `subscription($s: ID!) { sessionEvents(sessionId: $s, replay: true) { id type at } }`;

interface Subscribers {
  clients: Client[];
  /** per event type+round: when each subscriber got it */
  arrivals: Map<string, number[]>;
  close(): Promise<void>;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Opens n connections, each with one subscription, and waits until each got its first (replayed) event. */
async function subscribe(wsUrl: string, token: string | null, sessionId: string, n: number): Promise<Subscribers> {
  const arrivals = new Map<string, number[]>();
  const clients: Client[] = [];
  const disposers: (() => void)[] = [];
  for (let i = 0; i < n; i += 250) {
    await Promise.all(Array.from({ length: Math.min(250, n - i) }, () => new Promise<void>((resolve, reject) => {
      const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: token ? { authorization: `Bearer ${token}` } : {}, retryAttempts: 0, lazy: true });
      clients.push(client);
      let acked = false;
      const timer = setTimeout(() => reject(new Error('a subscriber got no replayed event in 60 s')), 60_000);
      disposers.push(client.subscribe<{ sessionEvents: { id: string; type: string } }>({ query: SUB, variables: { s: sessionId } }, {
        next: (v) => {
          const t = now();
          if (!acked) {
            acked = true;
            clearTimeout(timer);
            resolve();
          }
          const id = v.data?.sessionEvents.id;
          if (id) arrivals.set(id, [...(arrivals.get(id) ?? []), t]);
        },
        error: (e) => reject(new Error(`subscription failed: ${JSON.stringify(e).slice(0, 200)}`)),
        complete: () => undefined,
      }));
    })));
  }
  return {
    clients,
    arrivals,
    close: async () => {
      for (const d of disposers) d();
      await Promise.all(clients.map((c) => c.dispose()));
    },
  };
}

/** Triggers `events` events one after the other; for each, the delivery time of every subscriber. */
async function deliver(subs: Subscribers, n: number, events: number, trigger: (i: number) => Promise<string>): Promise<number[][]> {
  const rounds: number[][] = [];
  for (let i = 0; i < events; i++) {
    const t0 = now();
    const id = await trigger(i);
    await until(`event ${i} at all ${n} subscribers`, 60_000, async () => (subs.arrivals.get(id)?.length ?? 0) >= n);
    rounds.push(subs.arrivals.get(id)!.map((t) => t - t0));
  }
  return rounds;
}

export default async function fanout(argv: string[]): Promise<BenchOutput> {
  const o = parseArgs(argv, { subscribers: ['1000', '5000'], events: 10, profile: false, quick: false }, HELP);
  if (o.quick) Object.assign(o, { subscribers: ['200'], events: 4 });
  const dir = dataDir('fanout');
  const pg = await startPostgres(path.join(dir, 'pg'));
  let gw: Gateway | null = null;
  let bare: ChildProcess | null = null;
  const stream = new StreamClient({ browserResources: false });
  try {
    gw = await startGateway(dir, { DATABASE_URL: pg.url, UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: 'WASM', UVE_WARM_VMS: '1' }, o.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'prof')}`] : []);
    const started = await startBaseline('bare-ws.js', {});
    bare = started.child;
    const bareUrl = started.url;
    // one ACTIVE session: requested, and its stream connected
    const admin = await login(gw.graphqlUrl);
    const owner = await gql(gw.graphqlUrl, `mutation { register(input: { username: "fanout", password: "bench-password-1" }) { token } }`);
    const token = owner.register.token as string;
    const uaId = await until('the paint UA', 30_000, async () => ((await gql(gw!.graphqlUrl, '{ uas { id name } }', {}, admin.token)).uas as { id: string; name: string }[]).find((u) => u.name === 'paint')?.id);
    const session = await until('a session on a warm WASM VM', 60_000, () => gql(gw!.graphqlUrl, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id connection { url token } } }`, { i: { uaId, terminal: { screenWidth: 640, screenHeight: 360, codecs: ['MJPEG'], localResources: [], maxFrameRate: 5 } } }, token).then((d) => d.requestApplication));
    await stream.connect({ url: session.connection.url, token: session.connection.token });
    await until('the session ACTIVE', 30_000, async () => (await gql(gw!.graphqlUrl, `query($s: ID!) { session(id: $s) { state } }`, { s: session.id }, token)).session.state === 'ACTIVE');

    process.stdout.write(`${header('fanout', `${o.subscribers.join('/')} subscribers, ${o.events} events each`)}\n`);
    const rows: string[][] = [];
    const data: Record<string, unknown>[] = [];
    for (const n of o.subscribers.map(Number)) {
      let gatewayRounds: number[][] = [];
      for (const server of ['gateway', 'bare'] as const) {
        const pid = server === 'gateway' ? gw.child.pid! : bare.pid!;
        const rss0 = rssBytes(pid);
        const t = now();
        const subs = server === 'gateway' ? await subscribe(gw.wsUrl, token, session.id, n) : await subscribe(bareUrl.replace(/^http/, 'ws') + '/graphql', null, session.id, n);
        const subscribeS = (now() - t) / 1000;
        const perSub = (rssBytes(pid) - rss0) / n;
        const rounds = await deliver(subs, n, o.events, async (i) => {
          if (server === 'bare') {
            const id = `e${n}-${i}`;
            await fetch(`${bareUrl}/publish`, { method: 'POST', body: JSON.stringify({ id, sessionId: session.id, type: 'SUSPENDED', at: new Date().toISOString() }) });
            return id;
          }
          // the event's id is only known once it arrives: wait for the next one of its type
          const before = new Set(subs.arrivals.keys());
          const type = i % 2 ? 'RESUMED' : 'SUSPENDED';
          await gql(gw!.graphqlUrl, i % 2 ? `mutation($s: ID!) { resumeSession(sessionId: $s) { id } }` : `mutation($s: ID!) { suspendSession(sessionId: $s) { id } }`, { s: session.id }, token);
          return until(`a ${type} event`, 60_000, async () => [...subs.arrivals.keys()].find((k) => !before.has(k)));
        });
        await subs.close();
        const l = latencySpread(rounds);
        const last = spread(rounds.map((r) => Math.max(...r)));
        // the gateway goes first: its p99 per event over the baseline's, event by event
        const ratio = server === 'bare' ? spread(gatewayRounds.map((g, i) => percentile(g, 99) / percentile(rounds[i] ?? [], 99))) : null;
        if (server === 'gateway') gatewayRounds = rounds;
        rows.push([String(n), server === 'gateway' ? 'gateway' : 'bare graphql-ws', fmt(l.p50), fmt(l.p99), fmt(last), `${(perSub / 1024).toFixed(1)}`, subscribeS.toFixed(1), ratio ? `${fmt(ratio, 2)}x` : '']);
        data.push({ subscribers: n, server, ...l, lastArrival: last, rssPerSubscriptionBytes: perSub, subscribeSeconds: subscribeS, gatewayToBareP99: ratio });
        process.stdout.write(`  ${rows.at(-1)!.join('  ')}\n`);
      }
    }
    stream.close();
    await gw.stop();
    const profile = o.profile ? summarizeProfiles(path.join(dir, 'prof')) : null;
    const text = [
      header('fanout', `${o.events} events per row, one graphql-ws connection per subscriber, subscribers in this same process`),
      '',
      table(['subscribers', 'server', 'p50 ms', 'p99 ms', 'last arrival ms', 'KiB RSS / idle sub', 'subscribe s', 'gateway/bare p99'], rows),
      '',
      'Delivery: trigger sent -> event received, per subscriber; p50/p99 per event, median (min–max) over the events.',
      'Gateway trigger: suspendSession/resumeSession by the owner (the mutation, its transaction, Redis pub/sub, per-event',
      'authorization, serialisation); baseline: POST /publish into an in-memory pub/sub (bench/src/baseline/bare-ws.ts).',
      'KiB RSS / idle sub: the server process RSS growth while the subscribers connected, divided by their number (GC-dependent).',
      ...(profile ? ['', profile.text] : []),
    ].join('\n');
    return { text, data: { options: o, rows: data, profile: profile?.data ?? null } };
  } finally {
    stream.close();
    if (bare) await stopChild(bare, 5000);
    if (gw) await gw.stop();
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
