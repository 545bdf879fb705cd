// Getting a package's bytes: an http(s) download streamed to disk while it is hashed, with a size
// cap (the declared size when known), an overall timeout, and redirects followed only within the
// storefront's origin. The sha256 is checked before anything is unpacked or run.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';

export const MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024;
export const DOWNLOAD_TIMEOUT_MS = 120_000;
const MAX_REDIRECTS = 5;

export interface DownloadOptions {
  sha256: string;
  /** declared size: more bytes than this fail the download (default MAX_DOWNLOAD_BYTES) */
  maxBytes?: number;
  timeoutMs?: number;
  /** scheme://host:port the package (and every redirect) must come from (default: the URL's own) */
  allowedOrigin?: string;
}

const originOf = (url: string): string => new URL(url).origin;

export async function downloadPackage(url: string, file: string, opts: DownloadOptions): Promise<Uint8Array> {
  const maxBytes = Math.min(opts.maxBytes ?? MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_BYTES);
  const timeoutMs = opts.timeoutMs ?? DOWNLOAD_TIMEOUT_MS;
  const allowed = opts.allowedOrigin ? originOf(opts.allowedOrigin) : originOf(url);
  const signal = AbortSignal.timeout(timeoutMs);
  const timedOut = (): Error => new Error(`download of ${url} did not finish within ${Math.round(timeoutMs / 100) / 10} s`);
  const out = createWriteStream(file);
  try {
    let res: Response;
    let at = url;
    for (let hops = 0; ; hops++) {
      if (originOf(at) !== allowed) throw new Error(`package URL ${at} is not on the storefront's origin ${allowed}`);
      try {
        res = await fetch(at, { signal, redirect: 'manual' });
      } catch (e) {
        if (signal.aborted) throw timedOut();
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        throw new Error(`download of ${at} failed: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
      }
      if (res.status < 300 || res.status >= 400) break;
      const location = res.headers.get('location');
      void res.body?.cancel();
      if (!location) throw new Error(`download of ${at} answered HTTP ${res.status} without a Location`);
      if (hops >= MAX_REDIRECTS) throw new Error(`download of ${url} was redirected more than ${MAX_REDIRECTS} times`);
      const next = new URL(location, at).toString();
      if (originOf(next) !== allowed) throw new Error(`download of ${at} was redirected to another origin (${originOf(next)}); packages come only from the storefront's origin ${allowed}`);
      at = next;
    }
    if (!res.ok || !res.body) throw new Error(`download of ${at} failed: HTTP ${res.status} ${res.statusText}`);
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > maxBytes) throw new Error(`package is ${declared} bytes, larger than the ${maxBytes} declared`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        size += chunk.byteLength;
        if (size > maxBytes) throw new Error(`package is larger than the ${maxBytes} bytes declared`);
        hash.update(chunk);
        if (!out.write(chunk)) await once(out, 'drain');
      }
    } catch (e) {
      if (signal.aborted) throw timedOut();
      throw e;
    }
    out.end();
    await once(out, 'finish');
    const actual = hash.digest('hex');
    if (actual !== opts.sha256.trim().toLowerCase()) throw new Error(`sha256 mismatch: the storefront declared ${opts.sha256}, the package downloaded has ${actual}`);
    return await readFile(file);
  } finally {
    // the stream opens its file asynchronously: removed only once it is closed, else an open that
    // completes after the removal would leave the file behind
    if (!out.closed) {
      const closed = once(out, 'close').catch(() => undefined);
      out.destroy();
      await closed;
    }
    await rm(file, { force: true });
  }
}
