// bench/fanout: one session's events delivered to 1,000 and 5,000 graphql-ws subscribers (one
// connection each, the session's owner), beside a bare graphql-ws server fanning the same shape
// out from memory, with the same client processes. The subscribers are spread over --clients
// processes (lib/fanout-subscribers.ts) so that receiving is not what is measured. One clock: the
// machine's monotonic one (process.hrtime) in the bench, its subscriber processes and both servers'
// traces (UVE_FANOUT_TRACE), so each event is timed by stage: trigger sent -> published (after the
// commit) -> back from Redis (the gateway) -> each subscriber's payload handed to its socket ->
// received by each subscriber. Memory per idle subscription = the server's RSS growth over the
// subscribers, divided by their number.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StreamClient } from '@uve/client';
import { fmt, header, latencySpread, parseArgs, percentile, spread, table, type BenchOutput, type Spread } from './lib/report';
import { summarizeProfiles } from './lib/profile';
import { cpuOfTree, machineBusy } from './lib/sessions';
import { dataDir, gql, login, startGateway, startPostgres, startBaseline, stopChild, until, type Gateway } from './lib/services';
import type { FromSubscribers, SubscribeOrder } from './lib/fanout-subscribers';

const HELP = `bench/fanout: delivery p50/p99 of one session's events to N graphql-ws subscribers, by stage, and
memory per idle subscription, gateway vs a bare graphql-ws server

Usage: npm run bench -- fanout [--subscribers 1000,5000] [--events 10] [--clients 4] [--client lean|graphql-ws]
                               [--servers gateway,bare] [--quick]
                               [--profile]  (the gateway runs with --cpu-prof; its hottest functions are printed)
  --clients: subscriber processes the connections are spread over (the same for both servers)
  --client: what each subscriber runs (the same for both servers): graphql-ws (default), graphql-ws's own
            client (createClient); lean, the graphql-transport-ws protocol on a bare ws socket
  --client-nice: the subscriber processes' nice value (0; e.g. 19: they yield the cores to the server)
  --keep: the run's folder (traces, profiles) is kept, its path printed
  --client-prof: the subscriber processes run with --cpu-prof (their profiles summed and printed)`;

const SUB = `subscription($s: ID!) { sessionEvents(sessionId: $s, replay: true) { id type at } }`;

const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

interface Subscribers {
  processes: ChildProcess[];
  /** event id -> every subscriber's arrival (monotonic ms) by subscriber process, once all of them got it */
  complete: Map<string, number[][]>;
  close(): Promise<void>;
}

/** n subscriptions spread over `processes` subscriber processes; resolves when each got its first (replayed) event. */
async function subscribe(processes: number, order: Omit<SubscribeOrder, 'n'>, n: number, execArgv: string[]): Promise<Subscribers> {
  const shares = Array.from({ length: processes }, (_, i) => Math.floor(n / processes) + (i < n % processes ? 1 : 0)).filter((k) => k > 0);
  const partial = new Map<string, number[][]>();
  const complete = new Map<string, number[][]>();
  const children = shares.map(() => fork(path.join(__dirname, 'lib/fanout-subscribers.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv }));
  const told = children.map((c) => new Promise<void>((resolve, reject) => {
    c.on('message', (m: FromSubscribers) => {
      if ('ready' in m) resolve();
      else if ('error' in m) reject(new Error(m.error));
      else if ('event' in m) {
        const parts = [...(partial.get(m.event) ?? []), m.times];
        if (parts.length < children.length) partial.set(m.event, parts);
        else {
          partial.delete(m.event);
          complete.set(m.event, parts);
        }
      }
    });
    c.once('exit', (code) => reject(new Error(`a subscriber process exited with ${code}`)));
  }));
  children.forEach((c, i) => c.send({ subscribe: { ...order, n: shares[i]! } }));
  await Promise.all(told).catch(async (e) => {
    await Promise.all(children.map((c) => stopChild(c, 2000)));
    throw e;
  });
  return {
    processes: children,
    complete,
    close: async () => {
      await Promise.all(children.map((c) => {
        const gone = new Promise((r) => c.once('exit', r));
        c.send({ close: true });
        return Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]).then(() => stopChild(c, 1000));
      }));
    },
  };
}

interface Traced {
  published: number | null;
  received: number | null;
  /** authorization answered (absent in builds before it was traced) */
  checked?: number | null;
  written: number[];
  /** ws's send returned (absent in builds before it was traced) */
  sent?: number[];
}

/** A server's trace line for `event` (UVE_FANOUT_TRACE), null if the server writes none (another build). */
async function traced(file: string, event: string, ms: number): Promise<Traced | null> {
  const read = async () => {
    if (!fs.existsSync(file)) return null;
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      if (line.includes(`"event":"${event}"`)) return JSON.parse(line) as Traced;
    }
    return null;
  };
  return until(`the trace of ${event}`, ms, read).catch(() => null);
}

interface Round {
  received: number[];
  /** per subscriber process: its first and last arrival */
  byProcess: { first: number; last: number }[];
  trace: Traced | null;
  /** CPU and run-queue wait (ms) over the round: the server's main thread, each subscriber process's */
  sched: { server: Sched; clients: Sched[] };
}

interface Sched {
  cpu: number;
  wait: number;
  /** of cpu: in the kernel (stime; 10 ms ticks) */
  sys: number;
  /** context switches: voluntary (went to sleep, e.g. waiting for data) and not (preempted) */
  slept: number;
  preempted: number;
}

/** A thread's CPU time and time waiting for a CPU (run queue), ms, from /proc/<pid>/task/<tid>/schedstat. */
function schedOf(pid: number): Sched {
  try {
    const [cpu, wait] = fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    // stat: the fields after the command's closing parenthesis; stime is the 15th of the line
    const stat = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const stime = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]);
    const status = fs.readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
    const count = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
    return { cpu: cpu! / 1e6, wait: wait! / 1e6, sys: stime * 10, slept: count('voluntary_ctxt_switches'), preempted: count('nonvoluntary_ctxt_switches') };
  } catch {
    return { cpu: NaN, wait: NaN, sys: NaN, slept: NaN, preempted: NaN };
  }
}
const schedDelta = (a: Sched, b: Sched): Sched => ({ cpu: b.cpu - a.cpu, wait: b.wait - a.wait, sys: b.sys - a.sys, slept: b.slept - a.slept, preempted: b.preempted - a.preempted });

/** Triggers `events` events one after the other; for each, every subscriber's arrival and the server's trace, in ms after the trigger. */
async function deliver(subs: Subscribers, serverPid: number, events: number, traceFile: string, trigger: (i: number) => Promise<void>): Promise<Round[]> {
  const rounds: Round[] = [];
  let traceMs = 5000;
  for (let i = 0; i < events; i++) {
    const known = new Set(subs.complete.keys());
    const pids = subs.processes.map((c) => c.pid!);
    const sched0 = { server: schedOf(serverPid), clients: pids.map(schedOf) };
    const t0 = monotonicMs();
    await trigger(i);
    // the event's id is only known once it arrives: the next one all subscribers got, none before the
    // trigger (an event of the subscription phase may complete only now)
    const id = await until(`event ${i} at every subscriber`, 60_000, async () => [...subs.complete].find(([k, parts]) => !known.has(k) && parts.every((times) => times.every((t) => t >= t0)))?.[0]);
    const sched = { server: schedDelta(sched0.server, schedOf(serverPid)), clients: pids.map((p, k) => schedDelta(sched0.clients[k]!, schedOf(p))) };
    const trace = await traced(traceFile, id, traceMs);
    if (!trace) traceMs = 0; // a build without the trace: not waited for again
    const rel = (t: number | null) => (t === null ? NaN : t - t0);
    const parts = subs.complete.get(id)!;
    rounds.push({
      received: parts.flat().map(rel),
      byProcess: parts.map((times) => ({ first: Math.min(...times) - t0, last: Math.max(...times) - t0 })),
      trace: trace && { published: rel(trace.published), received: rel(trace.received), checked: rel(trace.checked ?? null), written: trace.written.map(rel), sent: trace.sent?.map(rel) },
      sched,
    });
  }
  return rounds;
}

/** One stage's figure per event (NaN where not traced), as a spread over the events. */
const stage = (rounds: Round[], f: (r: Round) => number): Spread => spread(rounds.map(f));
const pct = (xs: number[] | undefined, p: number) => (xs?.length ? percentile(xs, p) : NaN);

export default async function fanout(argv: string[]): Promise<BenchOutput> {
  const o = parseArgs(argv, { subscribers: ['1000', '5000'], events: 10, clients: 4, client: 'graphql-ws', servers: ['gateway', 'bare'], profile: false, clientProf: false, clientNice: 0, keep: false, quick: false }, HELP);
  if (o.client !== 'lean' && o.client !== 'graphql-ws') throw new Error(`--client: lean or graphql-ws, not ${o.client}`);
  const servers = (['gateway', 'bare'] as const).filter((x) => o.servers.includes(x));
  if (servers.length !== o.servers.length) throw new Error(`--servers: gateway and/or bare, not ${o.servers.join(',')}`);
  if (o.quick) Object.assign(o, { subscribers: ['200'], events: 4 });
  const dir = dataDir('fanout');
  const pg = await startPostgres(path.join(dir, 'pg'));
  const traces = { gateway: path.join(dir, 'gateway-trace.jsonl'), bare: path.join(dir, 'bare-trace.jsonl') };
  let gw: Gateway | null = null;
  let bare: ChildProcess | null = null;
  const stream = new StreamClient({ browserResources: false });
  try {
    gw = await startGateway(dir, { DATABASE_URL: pg.url, UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: 'WASM', UVE_WARM_VMS: '1', UVE_FANOUT_TRACE: traces.gateway }, o.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'prof')}`] : []);
    const started = await startBaseline('bare-ws.js', { UVE_FANOUT_TRACE: traces.bare });
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

    process.stdout.write(`${header('fanout', `${o.subscribers.join('/')} subscribers, ${o.events} events each, ${o.clients} subscriber processes`)}\n`);
    const rows: string[][] = [];
    const stageRows: string[][] = [];
    const cpuRows: string[][] = [];
    const data: Record<string, unknown>[] = [];
    for (const n of o.subscribers.map(Number)) {
      let gatewayRounds: Round[] = [];
      for (const server of servers) {
        const pid = server === 'gateway' ? gw.child.pid! : bare.pid!;
        const rss0 = rssBytes(pid);
        const t = performance.now();
        const url = server === 'gateway' ? gw.wsUrl : `${bareUrl.replace(/^http/, 'ws')}/graphql`;
        const clientProf = o.clientProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, `client-prof-${server}-${n}`)}`] : [];
        const subs = await subscribe(o.clients, { url, token: server === 'gateway' ? token : null, query: SUB, variables: { s: session.id }, client: o.client as SubscribeOrder['client'] }, n, clientProf);
        const subscribeS = (performance.now() - t) / 1000;
        for (const c of subs.processes) os.setPriority(c.pid!, o.clientNice);
        const perSub = (rssBytes(pid) - rss0) / n;
        const serverCpu = cpuOfTree(pid, false);
        const clientCpu = subs.processes.map((c) => cpuOfTree(c.pid!, false));
        const busy = machineBusy();
        const rounds = await deliver(subs, pid, o.events, traces[server], async (i) => {
          if (server === 'bare') {
            await fetch(`${bareUrl}/publish`, { method: 'POST', body: JSON.stringify({ id: `e${n}-${i}`, sessionId: session.id, type: 'SUSPENDED', at: new Date().toISOString() }) });
            return;
          }
          await gql(gw!.graphqlUrl, i % 2 ? `mutation($s: ID!) { resumeSession(sessionId: $s) { id } }` : `mutation($s: ID!) { suspendSession(sessionId: $s) { id } }`, { s: session.id }, token);
        });
        const cpuMsPerEvent = (serverCpu().seconds * 1000) / o.events;
        const clientCores = Math.max(...clientCpu.map((c) => c().cores));
        const machine = busy();
        await subs.close();
        const received = rounds.map((r) => r.received);
        const l = latencySpread(received);
        const last = spread(received.map((r) => Math.max(...r)));
        // the gateway goes first: its p99 per event over the baseline's, event by event
        const ratio = server === 'bare' ? spread(gatewayRounds.map((g, i) => percentile(g.received, 99) / percentile(rounds[i]?.received ?? [], 99))) : null;
        if (server === 'gateway') gatewayRounds = rounds;
        const name = server === 'gateway' ? 'gateway' : 'bare graphql-ws';
        rows.push([String(n), name, fmt(l.p50), fmt(l.p99), fmt(last), `${(perSub / 1024).toFixed(1)}`, subscribeS.toFixed(1), cpuMsPerEvent.toFixed(0), clientCores.toFixed(2), `${(machine * 100).toFixed(0)}%`, ratio ? `${fmt(ratio, 2)}x` : '']);
        const stages = {
          published: stage(rounds, (r) => r.trace?.published ?? NaN),
          fromRedis: stage(rounds, (r) => r.trace?.received ?? NaN),
          checked: stage(rounds, (r) => r.trace?.checked ?? NaN),
          firstWritten: stage(rounds, (r) => pct(r.trace?.written, 0)),
          written50: stage(rounds, (r) => pct(r.trace?.written, 50)),
          written99: stage(rounds, (r) => pct(r.trace?.written, 99)),
          lastWritten: stage(rounds, (r) => (r.trace?.written.length ? Math.max(...r.trace.written) : NaN)),
          firstSent: stage(rounds, (r) => pct(r.trace?.sent, 0)),
          sent50: stage(rounds, (r) => pct(r.trace?.sent, 50)),
          lastSent: stage(rounds, (r) => (r.trace?.sent?.length ? Math.max(...r.trace.sent) : NaN)),
          firstReceived: stage(rounds, (r) => Math.min(...r.received)),
          received50: l.p50,
          received99: l.p99,
        };
        stageRows.push([String(n), name, ...Object.values(stages).map((x) => fmt(x))]);
        // where the time went, per event: CPU and run-queue wait of the server's main thread and of the
        // subscriber processes, and how long each process took from its first to its last arrival
        const cpu = {
          serverCpu: stage(rounds, (r) => r.sched.server.cpu),
          serverWait: stage(rounds, (r) => r.sched.server.wait),
          serverSys: stage(rounds, (r) => r.sched.server.sys),
          serverPreempted: stage(rounds, (r) => r.sched.server.preempted),
          clientsCpu: stage(rounds, (r) => r.sched.clients.reduce((a, c) => a + c.cpu, 0)),
          clientsSys: stage(rounds, (r) => r.sched.clients.reduce((a, c) => a + c.sys, 0)),
          clientsSlept: stage(rounds, (r) => r.sched.clients.reduce((a, c) => a + c.slept, 0)),
          clientCpuMax: stage(rounds, (r) => Math.max(...r.sched.clients.map((c) => c.cpu))),
          clientWaitMax: stage(rounds, (r) => Math.max(...r.sched.clients.map((c) => c.wait))),
          clientUsPerMessage: stage(rounds, (r) => (r.sched.clients.reduce((a, c) => a + c.cpu, 0) * 1000) / r.received.length),
          processSpanMax: stage(rounds, (r) => Math.max(...r.byProcess.map((b) => b.last - b.first))),
          twoCoreBound: stage(rounds, (r) => (r.sched.server.cpu + r.sched.clients.reduce((a, c) => a + c.cpu, 0)) / 2),
        };
        cpuRows.push([String(n), name, ...Object.values(cpu).map((x) => fmt(x, 0))]);
        data.push({ subscribers: n, server, ...l, lastArrival: last, rssPerSubscriptionBytes: perSub, subscribeSeconds: subscribeS, serverCpuMsPerEvent: cpuMsPerEvent, clientProcessCoresMax: clientCores, machineBusy: machine, gatewayToBareP99: ratio, stages, cpu, rounds });
        process.stdout.write(`  ${rows.at(-1)!.join('  ')}\n  ${stageRows.at(-1)!.join('  ')}\n  ${cpuRows.at(-1)!.join('  ')}  load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
      }
    }
    stream.close();
    await gw.stop();
    const profile = o.profile ? summarizeProfiles(path.join(dir, 'prof')) : null;
    const clientProfiles = o.clientProf
      ? fs.readdirSync(dir).filter((d) => d.startsWith('client-prof-')).map((d) => `Subscriber processes (${d.slice('client-prof-'.length)}):\n${summarizeProfiles(path.join(dir, d)).text}`)
      : [];
    const text = [
      header('fanout', `${o.events} events per row, one graphql-ws connection per subscriber, spread over ${o.clients} subscriber processes`),
      '',
      table(['subscribers', 'server', 'p50 ms', 'p99 ms', 'last arrival ms', 'KiB RSS / idle sub', 'subscribe s', 'server CPU ms / event', 'busiest client process, cores', 'machine busy', 'gateway/bare p99'], rows),
      '',
      'Delivery: trigger sent -> event received, per subscriber; p50/p99 per event, median (min–max) over the events.',
      'Gateway trigger: suspendSession/resumeSession by the owner (the mutation, its transaction, Redis pub/sub, per-event',
      'authorization, serialisation); baseline: POST /publish into an in-memory pub/sub (bench/src/baseline/bare-ws.ts).',
      'KiB RSS / idle sub: the server process RSS growth while the subscribers connected, divided by their number (GC-dependent).',
      'Server CPU ms / event: the server process over the events (the trigger\'s own work included); busiest client process: its',
      'CPU over the same window in cores (1.0 = a core saturated: the receiving side would limit the figures).',
      '',
      'By stage, ms after the trigger was sent (one monotonic clock; median over the events (min–max)); "-": not traced (a build',
      'without UVE_FANOUT_TRACE, or no Redis hop):',
      '',
      table(['subscribers', 'server', 'published', 'back from Redis', 'authorized', 'first written', 'written p50', 'written p99', 'last written', 'first sent', 'sent p50', 'last sent', 'first received', 'received p50', 'received p99'], stageRows),
      '',
      'published: the event handed to the pub/sub after its commit (the baseline: the POST read); back from Redis: the gateway\'s',
      'one listener of the topic got it; authorized: its per-event check answered (users read fresh, rules asked); written: a subscriber\'s result handed to graphql-ws to send (its onNext); sent: ws\'s',
      'send for it returned (the bytes with the kernel); received: the subscriber had the message parsed (its next).',
      '',
      'Where the time went, per event (ms; median over the events (min–max)), from /proc/<pid>/task/<pid>/schedstat between the',
      'trigger and the bench seeing the last arrival (it looks every 100 ms, so the window has up to 100 ms of idle at its end): CPU and run-queue wait (runnable, no core free) of the server\'s main thread and of the',
      'subscriber processes (the kernel\'s share from /proc/<pid>/task/<pid>/stat, 10 ms ticks); a process\'s span: its first to its last arrival; two-core bound: (server + subscribers CPU) / 2,',
      'the last arrival could not come sooner on 2 cores:',
      '',
      table(['subscribers', 'server', 'server CPU', 'server waiting', 'of its CPU in the kernel', 'server preempted (times)', 'subscribers CPU (sum)', 'of it in the kernel', 'subscribers slept (times)', 'busiest subscriber process CPU', 'its longest wait', 'subscriber µs CPU / message', 'longest process span', 'two-core bound'], cpuRows),
      ...(profile ? ['', profile.text] : []),
      ...clientProfiles.flatMap((t) => ['', t]),
    ].join('\n');
    return { text, data: { options: o, rows: data, profile: profile?.data ?? null } };
  } finally {
    stream.close();
    if (bare) await stopChild(bare, 5000);
    if (gw) await gw.stop();
    await pg.stop();
    if (o.keep) process.stdout.write(`kept: ${dir}\n`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}
