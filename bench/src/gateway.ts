// bench/gateway: requests/s and latency of representative GraphQL operations on the gateway, beside
// a bare Apollo Server + graphql-js serving the same rows of the same database (bench/src/baseline/
// bare-apollo.ts), repetition by repetition, so that the ratio is the figure that means something.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { graphqlCheck, load, type LoadResult } from './lib/load';
import { fmt, header, latencySpread, parseArgs, percentile, spread, table, type BenchOutput, type Spread } from './lib/report';
import { dataDir, gql, login, startGateway, startPostgres, startBaseline, stopChild, until, type Gateway } from './lib/services';
import { samplePgActivity, summarizeProfiles, tableRows } from './lib/profile';
import { cpuByRole, cpuOfTree, machineBusy, runQueueWait } from './lib/sessions';

const HELP = `bench/gateway: req/s and p50/p99 of session(id), a 100-row sessions list and requestApplication,
gateway vs a bare Apollo Server on the same database, at each concurrency

Usage: npm run bench -- gateway [--seconds 3] [--reps 3] [--clients 50,200] [--ops session,sessions,request]
                                [--request-clients 50] (the clients of requestApplication rows; 50,200 for the issue's
                                               200 too: each gateway row then needs 1-3 min on 2 cores to end its 200 pairs)
                                [--drain 2]   (s a row waits after its --seconds for the requests in flight; those still
                                               unanswered are counted "unfinished", left out of the percentiles)
                                [--settle 30] (s the unfinished ones get to end, untimed, before the next row starts; a
                                               next row that starts beside them says so)
                                (also request-light: requestApplication with the VMs' work made small, a 320x200
                                 MJPEG terminal: no encoder process per session; printed per row: CPU ms per request
                                 of every process of the run by role, VM agents and encoders included)
                                [--profile]   (both servers run with --cpu-prof; their hottest functions are printed, the
                                               .cpuprofiles kept in bench/results/; PostgreSQL's lock waits sampled per row)
                                [--db-pool 10] (PostgreSQL connections of each server: UVE_DB_POOL_SIZE and the baseline's pool)
                                [--quick]     (1 repetition of 2 s at 50 clients)`;

const SESSION_FIELDS = 'id state uaVersion createdAt user { id username displayName } ua { id name platform currentVersion } vm { id name platform }';
const Q_SESSION = `query($id: ID!) { session(id: $id) { ${SESSION_FIELDS} events(last: 10) { id type at actor { id username } } } }`;
const Q_SESSIONS = `query { sessions(limit: 100) { ${SESSION_FIELDS} events(last: 3) { id type at } } }`;
const TERMINAL = { screenWidth: 1280, screenHeight: 720, codecs: ['H264', 'MJPEG'], localResources: [], maxFrameRate: 30 };
/**
 * `request-light`: the same operations, the VMs' share of each session made small (a 320x200 MJPEG
 * stream: no x264 process per session, a tiny first picture; the UA still starts), so that a row
 * shows the gateway against the bare server with the VMs' real work mostly out of the cores' way
 */
const LIGHT_TERMINAL = { screenWidth: 320, screenHeight: 200, codecs: ['MJPEG'], localResources: [], maxFrameRate: 30 };
const M_REQUEST = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id state vm { id } } }`;
const M_REQUEST_BARE = `mutation($i: RequestApplicationInput!, $u: ID!) { requestApplication(input: $i, userId: $u) { id state vm { id } } }`;
const M_END = `mutation($s: ID!) { endSession(sessionId: $s) { id state } }`;

type Server = 'gateway' | 'bare';
interface Target { server: Server; url: string; pid: number }
interface Fixture { sessionId: string; owner: { token: string; id: string }; admin: string; users: { token: string; id: string }[]; uaId: string }

export default async function gateway(argv: string[]): Promise<BenchOutput> {
  const startedAt = performance.now();
  const o = parseArgs(argv, { seconds: 3, reps: 3, clients: ['50', '200'], requestClients: ['50'], ops: ['session', 'sessions', 'request'], drain: 2, settle: 30, dbPool: 10, profile: false, quick: false }, HELP);
  if (o.quick) Object.assign(o, { seconds: 2, reps: 1, clients: ['50'], requestClients: ['50'] });
  const clients = o.clients.map(Number);
  const requestClients = o.requestClients.map(Number);
  const clientsOf = (op: string) => (isRequest(op) ? requestClients : clients);
  const dir = dataDir('gateway');
  const statementsFile = path.join(dir, 'statements.json');
  const pg = await startPostgres(path.join(dir, 'pg'));
  let gw: Gateway | null = null;
  let bare: ChildProcess | null = null;
  try {
    gw = await startGateway(dir, {
      DATABASE_URL: pg.url,
      UVE_SAMPLE_UAS: 'true',
      UVE_POOL_PLATFORMS: 'WASM',
      // requestApplication at 200 clients keeps up to 200 sessions open at once
      UVE_WARM_VMS: '2',
      UVE_MAX_VMS: '4',
      UVE_VM_CAPACITY: '64',
      UVE_MAX_OPEN_SESSIONS: '1000',
      // a machine this loaded delays heartbeats: VMs declared OFFLINE mid-run would turn requests into refusals
      UVE_VM_HEARTBEAT_TIMEOUT_MS: '60000',
      UVE_DB_POOL_SIZE: String(o.dbPool),
      ...(o.profile ? { BENCH_STATEMENTS_OUT: statementsFile } : {}),
    }, o.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'prof')}`, '--require', path.join(__dirname, 'lib/count-statements.js')] : []);
    const started = await startBaseline('bare-apollo.js', { DATABASE_URL: pg.url, DB_POOL_SIZE: String(o.dbPool) }, o.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'bare-prof')}`] : []);
    bare = started.child;
    const bareUrl = started.url;
    // a user per requesting client (the reads need only the owner and the admin)
    const fx = await fixture(gw, Math.max(...requestClients, 4));
    const setupS = (performance.now() - startedAt) / 1000;
    const targets: Target[] = [{ server: 'gateway', url: gw.graphqlUrl, pid: gw.child.pid! }, { server: 'bare', url: bareUrl, pid: started.child.pid! }];
    process.stdout.write(`setup ${setupS.toFixed(0)} s\n${header('gateway', `${o.reps} x ${o.seconds} s per row (+ up to ${o.drain} s drain), clients ${clients.join('/')} (requestApplication ${requestClients.join('/')}), closed loop, keep-alive`)}\n`);

    // warm-up, not measured: the JIT, connection pools and caches of both servers, for every operation
    for (const op of o.ops) for (const t of targets) await settle(await load({ url: t.url, concurrency: 10, seconds: o.quick ? 0.5 : 1.5, drainSeconds: o.drain, ...request(op, t.server, fx, t.url), check: graphqlCheck }), o.settle);
    // what each server spends with no request (heartbeats, queue workers, timers, and the warm-up's
    // tail): printed beside CPU ms/req and statements/req, which include it; at a few req/s it weighs
    const idleCores = new Map<Server, number>();
    let idleStatementsPerS = 0;
    for (const t of targets) {
      const cpu = cpuOfTree(t.pid, false);
      const counted = o.profile && t.server === 'gateway' ? countStatements(gw, statementsFile) : null;
      await new Promise((r) => setTimeout(r, 3000));
      idleCores.set(t.server, cpu().cores);
      if (counted) idleStatementsPerS = (await counted()).total / 3;
    }
    const rowsStartedAt = performance.now();
    const results = new Map<string, (LoadResult & { cpuMs: number })[]>();
    const pgRows: Record<string, unknown>[] = [];
    const written: Written[] = [];
    const settles: { op: string; clients: number; server: Server; rep: number; unfinished: number; drainMs: number; settleMs: number; stillOpen: number }[] = [];
    const roleRows: { op: string; clients: number; server: Server; rep: number; rps: number; machineBusy: number; cpuMsPerReq: Record<string, number>; endP50: number | null; mainThreadRunMs: number; mainThreadWaitMs: number }[] = [];
    for (let rep = 0; rep < o.reps; rep++) {
      for (const op of o.ops) {
        for (const c of clientsOf(op)) {
          // alternate which server goes first, so a drift in the machine's load hits both alike
          for (const t of rep % 2 ? [...targets].reverse() : targets) {
            // CPU the server process itself spent per answered request: unlike req/s, it moves little with the machine's load
            const cpu = cpuOfTree(t.pid, false);
            // every process of the run by role (the VMs' agents and encoders too: they share the cores) and the machine
            const roles = cpuByRole(process.pid, (pid, comm) => roleOf(pid, comm, targets));
            const busy = machineBusy();
            const sched = runQueueWait(t.pid);
            const ends: number[] = [];
            const pgActivity = o.profile ? samplePgActivity(pg.url) : null;
            const counted = o.profile && t.server === 'gateway' ? countStatements(gw, statementsFile) : null;
            const rowsBefore = isRequest(op) ? await tableRows(pg.url) : null;
            const r = await load({ url: t.url, concurrency: c, seconds: o.seconds, drainSeconds: o.drain, ...request(op, t.server, fx, t.url, ends), check: graphqlCheck });
            const cpuMs = (cpu().seconds * 1000) / Math.max(1, r.requests);
            const byRole = [...roles()].sort((a, b) => b[1] - a[1]).map(([k, s]) => [k, (s * 1000) / Math.max(1, r.requests)] as const);
            const machine = busy();
            const { runMs, waitMs } = sched();
            const waitPerReq = waitMs / Math.max(1, r.requests);
            const statements = counted ? await counted() : null;
            const perReq = statements ? statements.total / Math.max(1, r.requests) : null;
            const db = pgActivity ? { ...(await pgActivity()), statementsPerRequest: perReq, topStatements: statements?.top ?? null } : null;
            if (db) pgRows.push({ op, clients: c, server: t.server, rep: rep + 1, ...db });
            const key = `${op}|${c}|${t.server}`;
            results.set(key, [...(results.get(key) ?? []), { ...r, cpuMs }]);
            roleRows.push({ op, clients: c, server: t.server, rep: rep + 1, rps: r.rps, machineBusy: machine, cpuMsPerReq: Object.fromEntries(byRole), endP50: ends.length ? percentile(ends, 50) : null, mainThreadRunMs: runMs / Math.max(1, r.requests), mainThreadWaitMs: waitPerReq });
            // the unfinished ones end before the next row (bounded), so that it does not run beside them
            const left = await settle(r, o.settle);
            settles.push({ op, clients: c, server: t.server, rep: rep + 1, unfinished: r.unfinished, drainMs: r.drainMs, ...left });
            if (rowsBefore) written.push({ op, server: t.server, pairs: r.requests + r.censored.length, rows: diffRows(rowsBefore, await tableRows(pg.url)) });
            process.stdout.write(`  rep ${rep + 1} ${op.padEnd(8)} ${String(c).padStart(3)} ${t.server.padEnd(7)} ${r.rps.toFixed(0).padStart(6)} req/s${r.unfinished ? ` (${r.unfinished} unfinished after a ${(r.drainMs / 1000).toFixed(1)} s drain, ${left.stillOpen ? `${left.stillOpen} still open after ${o.settle} s` : `ended in ${(left.settleMs / 1000).toFixed(1)} s`})` : ''}, ${cpuMs.toFixed(1)} CPU ms/req, main thread ${waitPerReq.toFixed(1)} ms/req waiting for a core, machine ${(machine * 100).toFixed(0)} % busy${ends.length ? `, endSession p50 ${percentile(ends, 50).toFixed(0)} ms` : ''}${perReq !== null ? `, ${perReq.toFixed(1)} PG statements/req` : ''}${db ? `, PostgreSQL backends: ${db.lockWait.toFixed(1)} waiting for a lock, ${db.active.toFixed(1)} running, ${db.idleInTx.toFixed(1)} idle in transaction` : ''}${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}\n`);
          }
        }
      }
    }

    const rows: string[][] = [];
    const data: Record<string, unknown>[] = [];
    for (const op of o.ops) {
      for (const c of clientsOf(op)) {
        const g = results.get(`${op}|${c}|gateway`)!;
        const b = results.get(`${op}|${c}|bare`)!;
        const ratio = spread(g.map((r, i) => r.rps / b[i]!.rps));
        const cpuRatio = spread(g.map((r, i) => r.cpuMs / b[i]!.cpuMs));
        for (const [server, rs] of [['gateway', g], ['bare', b]] as const) {
          // unanswered requests count at their age when the drain ended: a percentile they reach is a lower bound (≥)
          const l = latencySpread(rs.map((r) => [...r.latencies, ...r.censored]));
          const atLeast = (p: number, s: Spread) => `${rs.some((r) => r.censored.length && Math.min(...r.censored) <= percentile([...r.latencies, ...r.censored], p)) ? '≥ ' : ''}${fmt(s)}`;
          const rps = spread(rs.map((r) => r.rps));
          const cpuMs = spread(rs.map((r) => r.cpuMs));
          rows.push([OP_NAMES[op] ?? op, String(c), server === 'gateway' ? 'gateway' : 'bare Apollo', fmt(rps, 0), atLeast(50, l.p50), atLeast(95, l.p95), atLeast(99, l.p99), String(rs.reduce((n, r) => n + r.errors, 0)), String(rs.reduce((n, r) => n + r.unfinished, 0)), server === 'gateway' ? `${fmt(ratio, 2)}x` : '', fmt(cpuMs, 2), server === 'gateway' ? `${fmt(cpuRatio, 2)}x` : '']);
          data.push({ op, clients: c, server, rps, ...l, cpuMs, errors: rs.map((r) => r.errors), unfinished: rs.map((r) => r.unfinished), drainMs: rs.map((r) => r.drainMs), firstError: rs.find((r) => r.firstError)?.firstError ?? null, ...(server === 'gateway' ? { ratio, cpuRatio } : {}) });
        }
      }
    }
    const rowsS = (performance.now() - rowsStartedAt) / 1000;
    await gw.stop();
    // the bare server writes its profile when it exits
    await stopChild(bare, 5000);
    bare = null;
    const profile = o.profile ? summarizeProfiles(path.join(dir, 'prof')) : null;
    const bareProfile = o.profile ? summarizeProfiles(path.join(dir, 'bare-prof'), 15, 'bare Apollo') : null;
    const wallS = (performance.now() - startedAt) / 1000;
    const text = [
      header('gateway', `${o.reps} x ${o.seconds} s per row (+ up to ${o.drain} s drain), closed loop, keep-alive, ${o.dbPool} PostgreSQL connections per server, load generator on the same cores`),
      '',
      table(['operation', 'clients', 'server', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'unfinished', 'gateway/bare req/s', 'CPU ms/req', 'gateway/bare CPU'], rows),
      '',
      'Figures: median over repetitions (min–max across them). Same PostgreSQL rows for both servers.',
      `unfinished: requests (or their untimed endSession) still unanswered ${o.drain} s after the row's ${o.seconds} s (--drain), over all repetitions,`,
      'given up to --settle s to end (untimed) before the next row. They are in the percentiles at their age when the drain ended,',
      'a lower bound of their latency: "≥" marks a percentile that one of them reached. req/s counts answered requests only.',
      'bare Apollo: Apollo Server 5 + express5 + graphql-js + pg, DataLoader per request; no token check, no authorization,',
      'no type-graphql, no GraphQL limits, no VM command (see bench/src/baseline/bare-apollo.ts).',
      'requestApplication: each client then ends the session it opened (untimed); req/s counts request+end pairs.',
      '[not like for like]: the bare server only writes the session and its events; the gateway also checks the user\'s open sessions and',
      'the VM\'s capacity, sends the VM its command (outbox, Redis), and its VMs start the UA and an encoder and report back: their CPU',
      'shares the cores (table by process below). request-light (--ops request,request-light) makes the VMs\' share small.',
      'CPU ms/req: CPU time of the server process alone (not PostgreSQL, not its children) over the row / requests answered,',
      `background included: idle (3 s before the rows) the gateway used ${idleCores.get('gateway')!.toFixed(3)} cores${o.profile ? ` and sent ${idleStatementsPerS.toFixed(1)} statements/s` : ''}, the bare server ${idleCores.get('bare')!.toFixed(3)}`,
      '(heartbeats, queue workers, timers, the warm-up\'s tail): at a few req/s that weighs on the per-request figures.',
      '',
      'CPU ms per answered request by process (all processes of the run, the VMs\' agents and encoders included: they share the cores;',
      '"ended children": processes that ended in the row, e.g. an encoder per session), the machine\'s busy share, endSession p50, and the',
      'server\'s main thread from /proc/<pid>/schedstat: time on a core and time runnable but waiting for one (the run queue):',
      roleTable(roleRows),
      ...(written.length ? ['', 'Rows each server wrote per request + end pair, by table (rows added less removed, counted over all of the operation\'s rows,',
        'after their requests ended; pairs: answered + never answered in the row). The bare server writes the session and its events only:', writtenTable(written)] : []),
      ...(settles.some((x) => x.unfinished) ? ['', 'Rows with unfinished requests: the drain, then how long they took to end (untimed) or how many were still open when the next row started:',
        table(['operation', 'clients', 'server', 'rep', 'unfinished', 'drain s', 'ended after s', 'still open'], settles.filter((x) => x.unfinished).map((x) => [x.op, String(x.clients), x.server, String(x.rep), String(x.unfinished), (x.drainMs / 1000).toFixed(1), (x.settleMs / 1000).toFixed(1), String(x.stillOpen)]))] : []),
      '',
      `Wall time: ${(wallS / 60).toFixed(1)} min (setup: PostgreSQL, gateway, baseline, users and rows ${setupS.toFixed(0)} s; warm-up and idle ${(((rowsStartedAt - startedAt) / 1000) - setupS).toFixed(0)} s; measured rows with their drains ${rowsS.toFixed(0)} s).`,
      ...(profile ? ['', profile.text, '', bareProfile!.text, '', 'PostgreSQL backends during each row (mean of 100 ms samples of pg_stat_activity):',
        table(['operation', 'clients', 'server', 'rep', 'waiting for a lock', 'running', 'idle in transaction', 'statements / req (gateway, background included)'], pgRows.map((p) => [String(p.op), String(p.clients), String(p.server), String(p.rep), (p.lockWait as number).toFixed(1), (p.active as number).toFixed(1), (p.idleInTx as number).toFixed(1), p.statementsPerRequest == null ? '' : (p.statementsPerRequest as number).toFixed(1)]))] : []),
    ].join('\n');
    return { text, data: { options: o, wallS, setupS, rowsS, settles, written, bareProfile: bareProfile?.data ?? null, idleCores: Object.fromEntries(idleCores), idleStatementsPerS, rows: data, profile: profile?.data ?? null, postgres: pgRows, cpuByRole: roleRows } };
  } finally {
    if (bare) await stopChild(bare, 5000);
    if (gw) await gw.stop();
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Waits up to `seconds` for the rest of a row to end: how long it took, or how many were still open. */
async function settle(r: LoadResult, seconds: number): Promise<{ settleMs: number; stillOpen: number }> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([r.settled.then(() => true), new Promise<false>((res) => (timer = setTimeout(() => res(false), seconds * 1000)))]);
  clearTimeout(timer);
  return { settleMs: performance.now() - t0, stillOpen: ended ? 0 : r.inFlight() };
}

/**
 * Counts the statements the gateway sends from now until the returned function is called (the
 * preload lib/count-statements.ts, toggled by SIGUSR2): their total and the most frequent.
 */
function countStatements(gw: Gateway, file: string): () => Promise<{ total: number; top: [string, number][] }> {
  fs.rmSync(file, { force: true });
  gw.child.kill('SIGUSR2');
  return async () => {
    gw.child.kill('SIGUSR2');
    const counts = await until('the gateway\'s statement count', 10_000, async () => fs.existsSync(file) && (JSON.parse(fs.readFileSync(file, 'utf8')) as [string, number][]));
    return { total: counts.reduce((n, [, k]) => n + k, 0), top: counts.slice(0, 40) };
  };
}

function roleTable(rows: { op: string; clients: number; server: Server; rep: number; rps: number; machineBusy: number; cpuMsPerReq: Record<string, number>; endP50: number | null; mainThreadRunMs: number; mainThreadWaitMs: number }[]): string {
  const roles = [...new Set(rows.flatMap((r) => Object.keys(r.cpuMsPerReq)))].filter((k) => rows.some((r) => (r.cpuMsPerReq[k] ?? 0) >= 0.5));
  return table(['operation', 'clients', 'server', 'rep', 'req/s', 'machine busy', 'endSession p50 ms', 'server main thread: on a core / waiting for one, ms/req', ...roles], rows.map((r) => [
    r.op, String(r.clients), r.server, String(r.rep), r.rps.toFixed(0), `${(r.machineBusy * 100).toFixed(0)} %`, r.endP50 === null ? '' : r.endP50.toFixed(0),
    `${r.mainThreadRunMs.toFixed(1)} / ${r.mainThreadWaitMs.toFixed(1)}`,
    ...roles.map((k) => (r.cpuMsPerReq[k] ?? 0).toFixed(1)),
  ]));
}

const isRequest = (op: string) => op === 'request' || op === 'request-light';

interface Written { op: string; server: Server; pairs: number; rows: Map<string, number> }

function diffRows(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  return new Map([...after].map(([t, n]) => [t, n - (before.get(t) ?? 0)] as const).filter(([, d]) => d !== 0));
}

function writtenTable(written: Written[]): string {
  const groups = [...new Set(written.map((w) => `${w.op}|${w.server}`))];
  const per = new Map(groups.map((g) => {
    const ws = written.filter((w) => `${w.op}|${w.server}` === g);
    const pairs = ws.reduce((n, w) => n + w.pairs, 0);
    const sums = new Map<string, number>();
    for (const w of ws) for (const [t, d] of w.rows) sums.set(t, (sums.get(t) ?? 0) + d);
    return [g, new Map([...sums].map(([t, d]) => [t, d / Math.max(1, pairs)]))] as const;
  }));
  const tables = [...new Set([...per.values()].flatMap((m) => [...m.keys()]))].filter((t) => [...per.values()].some((m) => Math.abs(m.get(t) ?? 0) >= 0.05)).sort();
  return table(['operation', 'server', 'all tables', ...tables], groups.map((g) => {
    const m = per.get(g)!;
    const [op, server] = g.split('|');
    return [op!, server!, [...m.values()].reduce((a, b) => a + b, 0).toFixed(1), ...tables.map((t) => (m.get(t) ?? 0).toFixed(1))];
  }));
}

const OP_NAMES: Record<string, string> = {
  session: 'session(id) + user/ua/vm/10 events',
  sessions: 'sessions(limit:100) + relations',
  request: 'requestApplication (+ endSession) [not like for like]',
  'request-light': 'requestApplication (+ endSession), light VM work (MJPEG 320x200) [not like for like]',
};

/** Who a process of the run is, for the CPU by role (comm: the kernel's name of its program). */
function roleOf(pid: number, comm: string, targets: Target[]): string {
  if (pid === process.pid) return 'load generator (this bench)';
  const t = targets.find((x) => x.pid === pid);
  if (t) return t.server === 'gateway' ? 'gateway' : 'bare Apollo';
  if (comm === 'postgres') return 'PostgreSQL';
  if (comm === 'redis-server') return 'Redis';
  if (comm === 'ffmpeg') return 'VM encoders (ffmpeg)';
  return comm === 'node' || comm.startsWith('node') ? 'VM agents' : comm;
}

/** `ends`: each endSession's latency (ms) is pushed there (untimed in the req/s). */
function request(op: string, server: Server, fx: Fixture, url: string, ends: number[] = []) {
  const auth = (token: string): Record<string, string> => (server === 'gateway' ? { authorization: `Bearer ${token}` } : {});
  if (op === 'session') return { headers: auth(fx.owner.token), body: () => JSON.stringify({ query: Q_SESSION, variables: { id: fx.sessionId } }) };
  if (op === 'sessions') return { headers: auth(fx.admin), body: () => JSON.stringify({ query: Q_SESSIONS }) };
  if (op !== 'request' && op !== 'request-light') throw new Error(`unknown op ${op}; see --help`);
  const input = { uaId: fx.uaId, terminal: op === 'request' ? TERMINAL : LIGHT_TERMINAL, fresh: true };
  // one user per client: a user's requests are serialised by the gateway (open-session count)
  const user = (c: number) => fx.users[c % fx.users.length]!;
  return {
    body: (c: number) => JSON.stringify(server === 'gateway' ? { query: M_REQUEST, variables: { i: input } } : { query: M_REQUEST_BARE, variables: { i: input, u: user(c).id } }),
    headers: (c: number) => auth(user(c).token),
    after: async (c: number, text: string) => {
      const id = (JSON.parse(text) as { data: { requestApplication: { id: string } } }).data.requestApplication.id;
      const t0 = performance.now();
      await gql(url, M_END, { s: id }, server === 'gateway' ? user(c).token : undefined);
      ends.push(performance.now() - t0);
    },
  };
}

/** Rows both servers serve: ≥ 100 ended sessions with their events, a user per client, the paint UA. */
async function fixture(gw: Gateway, users: number): Promise<Fixture> {
  const admin = await login(gw.graphqlUrl);
  const uaId = await until('the paint UA in the catalog', 30_000, async () => {
    const d = await gql(gw.graphqlUrl, '{ uas { id name } }', {}, admin.token);
    return (d.uas as { id: string; name: string }[]).find((u) => u.name === 'paint')?.id;
  });
  const registered: { token: string; id: string }[] = [];
  for (let i = 0; i < users; i += 10) {
    registered.push(...(await Promise.all(Array.from({ length: Math.min(10, users - i) }, async (_, j) => {
      const d = await gql(gw.graphqlUrl, `mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }`, { i: { username: `bench${i + j}`, password: 'bench-password-1' } });
      return { token: d.register.token as string, id: d.register.user.id as string };
    }))));
  }
  const input = { uaId, terminal: TERMINAL, fresh: true };
  // a fresh pool is still starting its first VM
  await until('a WASM VM for paint', 60_000, async () => {
    const d = await gql(gw.graphqlUrl, M_REQUEST, { i: input }, registered[0]!.token);
    await gql(gw.graphqlUrl, M_END, { s: d.requestApplication.id }, registered[0]!.token);
    return true;
  });
  let last = '';
  await Promise.all(registered.slice(0, 4).map(async (u) => {
    for (let n = 0; n < 26; n++) {
      const d = await gql(gw.graphqlUrl, M_REQUEST, { i: input }, u.token);
      last = d.requestApplication.id;
      await gql(gw.graphqlUrl, M_END, { s: last }, u.token);
    }
  }));
  const owner = registered[0]!;
  const own = await gql(gw.graphqlUrl, M_REQUEST, { i: input }, owner.token);
  return { sessionId: own.requestApplication.id, owner, admin: admin.token, users: registered, uaId };
}
