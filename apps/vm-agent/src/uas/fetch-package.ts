// Getting a package's bytes: an http(s) download streamed to disk while it is hashed, with a size
// cap and a timeout. The sha256 is checked before anything is unpacked or run.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';

export const MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024;
export const DOWNLOAD_TIMEOUT_MS = 120_000;

export async function downloadPackage(url: string, file: string, expectedSha256: string): Promise<Uint8Array> {
  const res = await fetch(url, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS), redirect: 'follow' });
  if (!res.ok || !res.body) throw new Error(`download of ${url} failed: HTTP ${res.status} ${res.statusText}`);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > MAX_DOWNLOAD_BYTES) throw new Error(`package is ${declared} bytes, more than the ${MAX_DOWNLOAD_BYTES} allowed`);
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  let size = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > MAX_DOWNLOAD_BYTES) throw new Error(`package is larger than the ${MAX_DOWNLOAD_BYTES} bytes allowed`);
      hash.update(chunk);
      if (!out.write(chunk)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
  } catch (e) {
    out.destroy();
    await rm(file, { force: true });
    throw e;
  }
  const actual = hash.digest('hex');
  if (actual !== expectedSha256.trim().toLowerCase()) {
    await rm(file, { force: true });
    throw new Error(`sha256 mismatch: expected ${expectedSha256}, downloaded ${actual}`);
  }
  return readFile(file);
}
