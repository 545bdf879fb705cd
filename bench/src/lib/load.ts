// An in-repo HTTP load generator: `concurrency` clients on keep-alive connections, each sending its
// next request as soon as the previous answered (closed loop), for `seconds`. It runs on the same
// cores as the server it loads; the baseline beside it pays the same tax. At the end no client sends
// again; the requests still in flight get `drainSeconds` to answer: those that do not are counted as
// unfinished (not in the percentiles: their latency is only known to exceed the row) and left to
// finish in the background (`settled`), so that a saturated server does not stretch the row by tens
// of seconds (200 clients of a 5 req/s operation wait 40 s each).
import http from 'node:http';
import { now } from './report';

export interface LoadResult {
  requests: number;
  errors: number;
  firstError: string | null;
  rps: number;
  latencies: number[];
  /** requests (with their `after`) still unanswered when the drain ended */
  unfinished: number;
  /** the age of each request still unanswered when the drain ended: a lower bound of its latency */
  censored: number[];
  /** how long the row waited after its `seconds` for the requests in flight */
  drainMs: number;
  /** resolves when every request of the row (and its `after`) has ended; the agent is closed then */
  settled: Promise<void>;
  /** requests (with their `after`) in flight now */
  inFlight: () => number;
}

export interface LoadOptions {
  url: string;
  concurrency: number;
  seconds: number;
  /** the request body of a client's n-th request */
  body: (client: number, n: number) => string;
  /** extra headers, the same for every client or per client */
  headers?: Record<string, string> | ((client: number) => Record<string, string>);
  /** a 200 answer that is still a failure (GraphQL errors) returns why */
  check?: (body: string) => string | null;
  /** untimed work after a successful answer, before the client's next request (e.g. ending the session it opened) */
  after?: (client: number, body: string) => Promise<void>;
  /** how long the requests in flight at the end may take to answer and be counted (default: unbounded) */
  drainSeconds?: number;
}

export async function load(o: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const u = new URL(o.url);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const t0 = now();
  const end = t0 + o.seconds * 1000;
  // set when the drain ends: what answers later is neither a latency nor an error of this row
  let closed = false;
  let inFlight = 0;
  // start times of the requests not answered yet
  const waiting = new Map<number, number>();
  let seq = 0;
  const fail = (why: string) => {
    if (closed) return;
    errors++;
    firstError ??= why;
  };
  const one = (c: number, body: string) =>
    new Promise<void>((done) => {
      inFlight++;
      const resolve = () => {
        inFlight--;
        done();
      };
      const t = now();
      const id = seq++;
      waiting.set(id, t);
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(typeof o.headers === 'function' ? o.headers(c) : o.headers) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          waiting.delete(id);
          const text = Buffer.concat(chunks).toString();
          const why = res.statusCode !== 200 ? `HTTP ${res.statusCode}: ${text.slice(0, 200)}` : (o.check?.(text) ?? null);
          if (why) {
            fail(why);
            resolve();
            return;
          }
          if (!closed) latencies.push(now() - t);
          if (!o.after) return resolve();
          o.after(c, text).then(resolve, (e: Error) => {
            fail(`after: ${e.message}`);
            resolve();
          });
        });
      });
      req.on('error', (e) => {
        waiting.delete(id);
        fail(e.message);
        resolve();
      });
      req.end(body);
    });
  const all = Promise.all(
    Array.from({ length: o.concurrency }, async (_, c) => {
      for (let n = 0; now() < end; n++) await one(c, o.body(c, n));
    }),
  ).then(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    all.then(() => true),
    ...(o.drainSeconds === undefined ? [] : [new Promise<false>((r) => (timer = setTimeout(() => r(false), Math.max(0, end - now()) + o.drainSeconds! * 1000)))]),
  ]);
  clearTimeout(timer);
  closed = true;
  const stop = now();
  const dt = (stop - t0) / 1000;
  const settled = all.then(() => agent.destroy());
  return { requests: latencies.length, errors, firstError, rps: latencies.length / dt, latencies, unfinished: drained ? 0 : inFlight, censored: [...waiting.values()].map((t) => stop - t), drainMs: Math.max(0, stop - end), settled, inFlight: () => inFlight };
}

/** A GraphQL answer with errors is a failed request. */
export function graphqlCheck(text: string): string | null {
  try {
    const b = JSON.parse(text) as { errors?: { message: string }[]; data?: unknown };
    return b.errors?.length ? b.errors[0]!.message : b.data ? null : 'no data';
  } catch {
    return `not JSON: ${text.slice(0, 100)}`;
  }
}
