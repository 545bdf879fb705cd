// Reads the .cpuprofile files `node --cpu-prof` wrote and says where the CPU went: self time by
// function and by package (node_modules/<pkg>, node: internals, the gateway's own code, GC, idle).
import fs from 'node:fs';
import path from 'node:path';
import { table } from './report';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

function owner(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  if (url.startsWith('node:')) return 'node: internals';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  const app = /\/(apps|packages)\/([^/]+)\//.exec(url);
  return app ? `${app[1]}/${app[2]}` : url;
}

export function summarizeProfiles(dir: string, top = 15): { text: string; data: Record<string, unknown> } {
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  const byFn = new Map<string, number>();
  const byOwner = new Map<string, number>();
  let total = 0;
  for (const f of files) {
    const p = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
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
    }
  }
  const busy = total - (byOwner.get('(idle)') ?? 0);
  const rank = (m: Map<string, number>) => [...m].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top);
  const pct = (ms: number) => `${((ms / busy) * 100).toFixed(1)} %`;
  const text = [
    `gateway CPU profile (${files.length} file(s), ${(busy / 1000).toFixed(1)} s busy of ${(total / 1000).toFixed(1)} s): self time, share of busy time`,
    table(['package / area', 'self', 'share'], rank(byOwner).map(([k, v]) => [k, `${(v / 1000).toFixed(2)} s`, pct(v)])),
    '',
    table(['function', 'self', 'share'], rank(byFn).map(([k, v]) => [k.slice(0, 110), `${(v / 1000).toFixed(2)} s`, pct(v)])),
  ].join('\n');
  return { text, data: { files, busyMs: busy, totalMs: total, byOwner: Object.fromEntries(rank(byOwner)), byFunction: Object.fromEntries(rank(byFn)) } };
}
