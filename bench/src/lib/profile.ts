// Reads the .cpuprofile files `node --cpu-prof` wrote and says where the CPU went: self time by
// function and by package (node_modules/<pkg>, node: internals, the gateway's own code, GC, idle).
import fs from 'node:fs';
import path from 'node:path';
import { RESULTS_DIR, table } from './report';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

function owner(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  if (url.startsWith('node:')) return 'node: internals';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  const app = /\/(apps|packages)\/([^/]+)\//.exec(url);
  return app ? `${app[1]}/${app[2]}` : url;
}

export function summarizeProfiles(dir: string, top = 15, label = 'gateway'): { text: string; data: Record<string, unknown> } {
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  const byFn = new Map<string, number>();
  const byOwner = new Map<string, number>();
  // inclusive time of the project's own functions (apps/, packages/): which request path the time is under
  const ownInclusive = new Map<string, number>();
  let total = 0;
  for (const f of files) {
    const p = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    const parentOf = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
    // self time per sample: the delta that follows it
    for (let i = 0; i < p.samples.length; i++) {
      const n = nodes.get(p.samples[i]!);
      const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
      if (!n) continue;
      total += dt;
      const cf = n.callFrame;
      const fnKey = `${cf.functionName || '(anonymous)'} ${cf.url ? `${cf.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(apps|packages)\//, '$1/')}:${cf.lineNumber + 1}` : ''}`.trim();
      byFn.set(fnKey, (byFn.get(fnKey) ?? 0) + dt);
      const o = owner(cf.url, cf.functionName);
      byOwner.set(o, (byOwner.get(o) ?? 0) + dt);
      if (o === '(idle)') continue;
      const seen = new Set<string>();
      for (let id: number | undefined = n.id; id !== undefined; id = parentOf.get(id)) {
        const f = nodes.get(id)!.callFrame;
        if (!/\/(apps|packages)\/[^/]+\/(dist|src)\//.test(f.url) || /node_modules/.test(f.url)) continue;
        const k = `${f.functionName || '(anonymous)'} ${f.url.replace(/^file:\/\/.*\/(apps|packages)\//, '$1/')}:${f.lineNumber + 1}`;
        if (!seen.has(k)) ownInclusive.set(k, (ownInclusive.get(k) ?? 0) + dt);
        seen.add(k);
      }
    }
  }
  // kept beside the results (not committed), to open in Chrome DevTools or speedscope
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  for (const f of files) fs.copyFileSync(path.join(dir, f), path.join(RESULTS_DIR, f));
  const busy = total - (byOwner.get('(idle)') ?? 0);
  const rank = (m: Map<string, number>) => [...m].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top);
  const pct = (ms: number) => `${((ms / busy) * 100).toFixed(1)} %`;
  const text = [
    `${label} CPU profile (${files.map((f) => `bench/results/${f}`).join(', ')}, ${(busy / 1000).toFixed(1)} s busy of ${(total / 1000).toFixed(1)} s): self time, share of busy time`,
    table(['package / area', 'self', 'share'], rank(byOwner).map(([k, v]) => [k, `${(v / 1000).toFixed(2)} s`, pct(v)])),
    '',
    table(['function', 'self', 'share'], rank(byFn).map(([k, v]) => [k.slice(0, 110), `${(v / 1000).toFixed(2)} s`, pct(v)])),
    '',
    table(['own function (apps/, packages/): inclusive', 'total', 'share'], rank(ownInclusive).map(([k, v]) => [k.slice(0, 110), `${(v / 1000).toFixed(2)} s`, pct(v)])),
  ].join('\n');
  return { text, data: { files, busyMs: busy, totalMs: total, byOwner: Object.fromEntries(rank(byOwner)), byFunction: Object.fromEntries(rank(byFn)), ownInclusive: Object.fromEntries(rank(ownInclusive)) } };
}

/**
 * What the database's backends are doing while a row runs, sampled every 100 ms from
 * pg_stat_activity: how many wait for a lock, run a statement, or sit idle in a transaction (waiting
 * for the application's next statement). Lock waits that grow with the clients are serialization.
 */
export function samplePgActivity(databaseUrl: string): () => Promise<{ samples: number; lockWait: number; active: number; idleInTx: number }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Client } = require('pg') as typeof import('pg');
  const client = new Client({ connectionString: databaseUrl });
  const sums = { samples: 0, lockWait: 0, active: 0, idleInTx: 0 };
  let stopped = false;
  const loop = (async () => {
    await client.connect();
    while (!stopped) {
      const { rows } = await client.query<{ lock: number; active: number; idle_tx: number }>(
        `SELECT count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS lock,
                count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock')::int AS active,
                count(*) FILTER (WHERE state LIKE 'idle in transaction%')::int AS idle_tx
           FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      );
      sums.samples++;
      sums.lockWait += rows[0]!.lock;
      sums.active += rows[0]!.active;
      sums.idleInTx += rows[0]!.idle_tx;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return async () => {
    stopped = true;
    await loop.catch(() => undefined);
    await client.end().catch(() => undefined);
    const n = Math.max(1, sums.samples);
    return { samples: sums.samples, lockWait: sums.lockWait / n, active: sums.active / n, idleInTx: sums.idleInTx / n };
  };
}

/**
 * Rows in every table of the database now: the difference over a row of a bench is what each server
 * wrote (inserted, less deleted) for its requests, table by table. An exact count(*), not
 * pg_stat_user_tables: backends report those up to 10 s late.
 */
export async function tableRows(databaseUrl: string): Promise<Map<string, number>> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Client } = require('pg') as typeof import('pg');
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ t: string }>(`SELECT quote_ident(table_name) AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'migrations' ORDER BY 1`);
    if (!tables.length) return new Map();
    const { rows } = await client.query<{ t: string; n: string }>(tables.map((x, i) => `SELECT ${client.escapeLiteral(x.t)} AS t, count(*) AS n FROM ${x.t}${i < tables.length - 1 ? ' UNION ALL ' : ''}`).join(''));
    return new Map(rows.map((r) => [r.t, Number(r.n)]));
  } finally {
    await client.end().catch(() => undefined);
  }
}
