// The VM's package download (apps/vm-agent/src/uas/fetch-package.ts) against a real HTTP server:
// redirects only within the storefront's origin, the declared size even without Content-Length, the
// timeout, and no file left behind whatever happens.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadPackage } from '../../apps/vm-agent/src/uas/fetch-package';

const BODY = Buffer.from('package bytes '.repeat(100));
const SHA = createHash('sha256').update(BODY).digest('hex');
let a: Server;
let b: Server;
let originA: string;
let originB: string;
let dir: string;

const listen = async (s: Server): Promise<string> => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
};

beforeAll(async () => {
  b = createServer((_req, res) => res.end(BODY));
  originB = await listen(b);
  a = createServer((req, res) => {
    if (req.url === '/pkg') return res.end(BODY);
    if (req.url === '/moved') return res.writeHead(301, { location: '/pkg' }).end();
    if (req.url === '/away') return res.writeHead(302, { location: `${originB}/pkg` }).end();
    if (req.url === '/loop') return res.writeHead(302, { location: '/loop' }).end();
    if (req.url === '/chunked') {
      res.writeHead(200); // no Content-Length: the size is only known while reading
      res.write(BODY);
      return res.end(BODY);
    }
    if (req.url === '/stall') return res.writeHead(200).write(BODY.subarray(0, 10));
    res.writeHead(404).end();
  });
  originA = await listen(a);
});

afterAll(async () => {
  for (const s of [a, b]) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'uve-download-test-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const file = () => join(dir, 'pkg.download');

it('follows a redirect within the storefront origin and returns the verified bytes', async () => {
  const bytes = await downloadPackage(`${originA}/moved`, file(), { sha256: SHA, maxBytes: BODY.length, allowedOrigin: `${originA}/` });
  expect(Buffer.from(bytes).equals(BODY)).toBe(true);
  expect(existsSync(file())).toBe(false);
});

it.each([
  ['a redirect to another origin', '/away', { sha256: SHA }, /redirected to another origin \(http:\/\/127\.0\.0\.1:\d+\)/],
  ['a URL off the allowed origin', null, { sha256: SHA }, /is not on the storefront's origin/],
  ['endless redirects', '/loop', { sha256: SHA }, /redirected more than 5 times/],
  ['more bytes than declared, without Content-Length', '/chunked', { sha256: SHA, maxBytes: BODY.length }, /larger than the \d+ bytes declared/],
  ['a stalled download', '/stall', { sha256: SHA, timeoutMs: 300 }, /did not finish within 0\.3 s/],
  ['an HTTP error', '/nope', { sha256: SHA }, /HTTP 404/],
  ['another sha256', '/pkg', { sha256: 'f'.repeat(64) }, /sha256 mismatch/],
])('refuses %s and leaves no file', async (_what, route, opts, reason) => {
  const url = route ? `${originA}${route}` : `${originB}/pkg`;
  await expect(downloadPackage(url, file(), { ...opts, allowedOrigin: originA })).rejects.toThrow(reason);
  expect(existsSync(file())).toBe(false);
});
