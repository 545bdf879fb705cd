// Preloaded into the gateway by `bench gateway --profile` (node --require): counts the statements
// it sends to PostgreSQL through `pg`, by their first words. SIGUSR2 starts a count; the next SIGUSR2
// writes it to BENCH_STATEMENTS_OUT (JSON) and stops. Load-independent, unlike time: what a request costs.
import fs from 'node:fs';
import Module from 'node:module';

const counts = new Map<string, number>();
let counting = false;
let wrapped = false;
const mod = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const load = mod._load;
mod._load = function (request: string, ...rest: unknown[]) {
  const m = load.call(this, request, ...rest) as { Client?: { prototype: { query: (...a: unknown[]) => unknown } } };
  if (!wrapped && request === 'pg' && m.Client) {
    wrapped = true;
    const query = m.Client.prototype.query;
    m.Client.prototype.query = function (config: unknown, ...a: unknown[]) {
      const text = typeof config === 'string' ? config : (config as { text?: string } | null)?.text;
      if (counting && text) {
        const key = text.replace(/\s+/g, ' ').slice(0, 80);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      return query.call(this, config, ...a);
    };
  }
  return m;
};

process.on('SIGUSR2', () => {
  if (!counting) {
    counts.clear();
    counting = true;
    return;
  }
  counting = false;
  fs.writeFileSync(process.env.BENCH_STATEMENTS_OUT!, JSON.stringify([...counts].sort((a, b) => b[1] - a[1])));
});
