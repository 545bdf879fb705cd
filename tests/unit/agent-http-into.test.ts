// The agent's VM Data download over plain HTTP (apps/vm-agent/src/vmm/http-into.ts): the body read by
// the socket into one buffer of the announced size. Against real servers on loopback: node:http for
// well-formed answers, a raw TCP server for the malformed ones.
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { HttpRefusal, getInto } from '../../apps/vm-agent/src/vmm/http-into';

const servers: Array<http.Server | net.Server> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen<S extends http.Server | net.Server>(server: S): Promise<URL> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/snapshots/x?y=1`);
}

/** a raw server answering every connection with `answer` (then closing, unless told to hang) */
const raw = (answer: (socket: net.Socket) => void) => listen(net.createServer((socket) => socket.once('data', () => answer(socket))));

function take() {
  const got = { pieces: [] as Buffer[], first: [] as Buffer[], released: 0 };
  const options = {
    headers: { 'x-uve-vm-id': 'vm' },
    timeoutMs: 5000,
    into: (size: number) => ({ data: new Uint8Array(size), release: () => void got.released++ }),
    onBytes: (p: Uint8Array) => void got.pieces.push(Buffer.from(p)),
    onFirstBytes: (h: Uint8Array) => void got.first.push(Buffer.from(h)),
  };
  return { got, options };
}

it('reads a 3 MiB body sent in pieces into one buffer, hashing what lands, the first 256 bytes handed over once', async () => {
  const body = randomBytes(3 * 1024 * 1024 + 17);
  let asked: http.IncomingMessage | null = null;
  const url = await listen(http.createServer((req, res) => {
    asked = req;
    res.writeHead(200, { 'content-length': body.length, 'x-uve-sha256': 'abc', 'x-uve-snapshot-kind': 'FULL' });
    for (let at = 0; at < body.length; at += 100_000) res.write(body.subarray(at, at + 100_000));
    res.end();
  }));
  const { got, options } = take();
  const r = await getInto(url, options);
  expect(asked!.url).toBe('/snapshots/x?y=1');
  expect(asked!.headers['x-uve-vm-id']).toBe('vm');
  expect(r.headers).toMatchObject({ 'x-uve-sha256': 'abc', 'x-uve-snapshot-kind': 'FULL' });
  expect(r.taken.data.length).toBe(body.length);
  expect(Buffer.concat(got.pieces).equals(body)).toBe(true);
  expect(got.first).toHaveLength(1);
  expect(got.first[0]!.length).toBeGreaterThanOrEqual(256);
  expect(got.first[0]!.equals(body.subarray(0, got.first[0]!.length))).toBe(true);
  expect(got.released).toBe(0);
});

it('reaches an IPv6 literal, and sends the host with its brackets', async () => {
  // a literal kept in its brackets would be looked up as a name: ENOTFOUND, never a refused connection
  await expect(getInto(new URL('http://[::1]:1/x'), take().options)).rejects.toThrow(/ECONNREFUSED|EADDRNOTAVAIL|ENETUNREACH/);
  let host = '';
  const server = http.createServer((req, res) => {
    host = req.headers.host ?? '';
    res.writeHead(200, { 'content-length': 3 }).end('abc');
  });
  const listening = await new Promise<boolean>((r) => server.once('error', () => r(false)).listen(0, '::1', () => r(true)));
  if (!listening) return; // no IPv6 loopback on this machine: the refusal above is the check
  servers.push(server);
  const port = (server.address() as AddressInfo).port;
  const { got, options } = take();
  await getInto(new URL(`http://[::1]:${port}/s`), options);
  expect(Buffer.concat(got.pieces).toString()).toBe('abc');
  expect(host).toBe(`[::1]:${port}`);
});

it('takes a body that came with the headers, smaller than 256 bytes, and an empty one', async () => {
  const url = await raw((s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789'));
  const { got, options } = take();
  await getInto(url, options);
  expect(Buffer.concat(got.pieces).toString()).toBe('0123456789');
  expect(got.first.map(String)).toEqual(['0123456789']);
  const empty = await raw((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  expect((await getInto(empty, take().options)).taken.data.length).toBe(0);
});

it('gives a refusal its status and the start of its body', async () => {
  const url = await listen(http.createServer((_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"No such snapshot"}')));
  const { got, options } = take();
  const e = await getInto(url, options).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(HttpRefusal);
  expect(e).toMatchObject({ status: 404, body: '{"error":"No such snapshot"}' });
  expect(got.pieces).toEqual([]);
  const sized = await raw((s) => s.end('HTTP/1.1 409 Conflict\r\ncontent-length: 5\r\n\r\nnope!'));
  await expect(getInto(sized, take().options)).rejects.toMatchObject({ status: 409, body: 'nope!' });
});

it('refuses a body cut short (giving its buffer back), a longer one, one without a size, a chunked one, garbage', async () => {
  const short = await raw((s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n' + 'x'.repeat(40)));
  const { got, options } = take();
  await expect(getInto(short, options)).rejects.toThrow(/broke off after 40 of 100 bytes: the connection closed/);
  expect(got.released).toBe(1);
  const longer = await raw((s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n');
    setImmediate(() => s.end('y'.repeat(30)));
  });
  await expect(getInto(longer, take().options)).rejects.toThrow(/longer than the announced 10 bytes/);
  const inOne = await raw((s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nabcdef'));
  await expect(getInto(inOne, take().options)).rejects.toThrow(/longer than the announced 2 bytes/);
  const sizeless = await raw((s) => s.end('HTTP/1.1 200 OK\r\n\r\nabc'));
  await expect(getInto(sizeless, take().options)).rejects.toThrow(/announced no size/);
  const chunked = await raw((s) => s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'));
  await expect(getInto(chunked, take().options)).rejects.toThrow(/chunked/);
  const garbage = await raw((s) => s.end('SSH-2.0-OpenSSH\r\n\r\n'));
  await expect(getInto(garbage, take().options)).rejects.toThrow(/not an HTTP response/);
});

it('gives up on a server that does not answer, and on https', async () => {
  const silent = await raw(() => undefined);
  await expect(getInto(silent, { ...take().options, timeoutMs: 200 })).rejects.toThrow(/no answer within 200 ms/);
  await expect(getInto(new URL('https://127.0.0.1/x'), take().options)).rejects.toThrow(/plain HTTP only/);
});
