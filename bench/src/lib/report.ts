// What every bench shares: percentiles over repetitions (with their spread), a printed table with
// the machine and its load, and the JSON written to bench/results/<name>-<timestamp>.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const RESULTS_DIR = path.resolve(__dirname, '../../results');

export const now = () => performance.timeOrigin + performance.now();

export function percentile(xs: readonly number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** One figure over repetitions: the median of the per-repetition values and their min..max. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function spread(runs: number[]): Spread {
  const ok = runs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const mid = ok.length >> 1;
  const median = ok.length % 2 ? ok[mid]! : (ok[mid - 1]! + ok[mid]!) / 2;
  return { median, min: ok[0] ?? NaN, max: ok.at(-1) ?? NaN, runs };
}

/** p50/p95/p99 of each repetition's samples, each summarised across repetitions. */
export function latencySpread(reps: number[][]): { p50: Spread; p95: Spread; p99: Spread; samples: number } {
  return {
    p50: spread(reps.map((r) => percentile(r, 50))),
    p95: spread(reps.map((r) => percentile(r, 95))),
    p99: spread(reps.map((r) => percentile(r, 99))),
    samples: reps.reduce((n, r) => n + r.length, 0),
  };
}

const num = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

/** "12.3 (11.0–14.2)": the median over repetitions and its range. */
export function fmt(s: Spread, digits = 1): string {
  if (s.runs.length <= 1) return num(s.median, digits);
  return `${num(s.median, digits)} (${num(s.min, digits)}–${num(s.max, digits)})`;
}

export function machine() {
  const cpus = os.cpus();
  return { host: os.hostname(), cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), node: process.version, platform: `${os.type()} ${os.release()}` };
}

export const loadavg = () => os.loadavg().map((x) => +x.toFixed(2));

export function header(name: string, what: string): string {
  const m = machine();
  return `bench/${name}: ${what}\nmachine: ${m.cpus} x ${m.cpuModel}, ${m.memGiB} GiB, ${m.platform}, node ${m.node}; load average ${loadavg().join(' ')} (1/5/15 min)`;
}

/** A markdown table, columns padded to their widest cell. */
export function table(columns: string[], rows: string[][]): string {
  const w = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [line(columns), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export interface BenchOutput {
  /** what is printed (the table and the notes under it) */
  text: string;
  /** what is written as JSON (every repetition's figures) */
  data: Record<string, unknown>;
}

/** Prints the result, writes bench/results/<name>-<timestamp>.json and bench/results/<name>-latest.json. */
export function publish(name: string, startedAt: Date, args: string[], out: BenchOutput): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const file = path.join(RESULTS_DIR, `${name}-${stamp}.json`);
  const body = JSON.stringify({ bench: name, startedAt: startedAt.toISOString(), seconds: +((Date.now() - startedAt.getTime()) / 1000).toFixed(1), args, machine: machine(), loadavgAtEnd: loadavg(), ...out.data, table: out.text }, null, 2);
  fs.writeFileSync(file, body + '\n');
  fs.writeFileSync(path.join(RESULTS_DIR, `${name}-latest.json`), body + '\n');
  process.stdout.write(`${out.text}\n\nwritten: ${path.relative(process.cwd(), file)}\n`);
  return file;
}

/** --name value / --flag parsing against defaults (numbers stay numbers, lists split on commas). */
export function parseArgs<T extends Record<string, number | string | boolean | string[]>>(argv: string[], defaults: T, help: string): T {
  const o: Record<string, unknown> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(help + '\n');
      process.exit(0);
    }
    const key = a.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!a.startsWith('--') || !(key in defaults)) throw new Error(`unknown argument ${a}; see --help`);
    const d = defaults[key];
    if (typeof d === 'boolean') {
      o[key] = true;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (typeof d === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${a} must be a number ≥ 0, got "${v}"`);
      o[key] = n;
    } else o[key] = Array.isArray(d) ? v.split(',').filter(Boolean) : v;
  }
  return o as T;
}
