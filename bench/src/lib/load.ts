// An in-repo HTTP load generator: `concurrency` clients on keep-alive connections, each sending its
// next request as soon as the previous answered (closed loop), for `seconds`. It runs on the same
// cores as the server it loads; the baseline beside it pays the same tax.
import http from 'node:http';
import { now } from './report';

export interface LoadResult {
  requests: number;
  errors: number;
  firstError: string | null;
  rps: number;
  latencies: number[];
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
}

export async function load(o: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const u = new URL(o.url);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const t0 = now();
  const end = t0 + o.seconds * 1000;
  const fail = (why: string) => {
    errors++;
    firstError ??= why;
  };
  const one = (c: number, body: string) =>
    new Promise<void>((resolve) => {
      const t = now();
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(typeof o.headers === 'function' ? o.headers(c) : o.headers) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          const why = res.statusCode !== 200 ? `HTTP ${res.statusCode}: ${text.slice(0, 200)}` : (o.check?.(text) ?? null);
          if (why) {
            fail(why);
            resolve();
            return;
          }
          latencies.push(now() - t);
          if (!o.after) return resolve();
          o.after(c, text).then(resolve, (e: Error) => {
            fail(`after: ${e.message}`);
            resolve();
          });
        });
      });
      req.on('error', (e) => {
        fail(e.message);
        resolve();
      });
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: o.concurrency }, async (_, c) => {
      for (let n = 0; now() < end; n++) await one(c, o.body(c, n));
    }),
  );
  const dt = (now() - t0) / 1000;
  agent.destroy();
  return { requests: latencies.length, errors, firstError, rps: latencies.length / dt, latencies };
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
