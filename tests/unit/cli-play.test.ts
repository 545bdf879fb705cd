// `uve play` (packages/client/src/cli.ts) starts its H264 decoder's ffmpeg before it asks for the UA;
// every way the command fails before (or after) the stream connects must kill it, not leave it to
// the process's exit. A stub gateway in this process (GraphQL over HTTP); the decoder is the real
// one (ffmpeg on PATH), so the test sees the ffmpeg child itself.
import fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../packages/client/src/cli';
import { descendants, until } from '../support/services';

/** this process's ffmpeg children that are running (not zombies waiting to be reaped) */
function ffmpegs(): number[] {
  return descendants(process.pid).filter((pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.includes('(ffmpeg)') && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  });
}

let server: Server;
let gateway: string;
/** what requestApplication answers (an error, or a session whose connection goes to `streamUrl`) */
let answer: { refuse: boolean; streamUrl: string };
/** ffmpeg children seen while the request was served: the decoder was prepared before it */
let ffmpegsAtRequest: number;
let tmp: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-cli-play-'));
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (b: Buffer) => (body += b.toString()));
    req.on('end', () => {
      const { query } = JSON.parse(body) as { query: string };
      const reply = (data: unknown, errors?: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(errors ? { data: null, errors } : { data }));
      if (query.includes('login(')) return reply({ login: { token: 't', expiresAt: new Date(Date.now() + 60_000).toISOString(), user: { id: 'u1', username: 'alice', role: 'USER' } } });
      if (query.includes('uas(')) return reply({ uas: [{ id: 'ua1', name: 'Paint', platform: 'WASM' }] });
      if (query.includes('requestApplication(')) {
        ffmpegsAtRequest = ffmpegs().length;
        if (answer.refuse) return reply(null, [{ message: 'no VM', extensions: { code: 'UNAVAILABLE' } }]);
        return reply({ requestApplication: { id: 's1', state: 'PENDING', connection: { url: answer.streamUrl, token: 'x', vmId: 'vm1' } } });
      }
      if (query.includes('endSession(')) return reply({ endSession: { id: 's1', state: 'ENDED' } });
      reply(null, [{ message: `unexpected: ${query}` }]);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  gateway = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** a port nothing listens on */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

const play = (...extra: string[]) => run(['play', 'Paint', '--gateway', gateway, '--user', 'alice', '--password', 'pw', '--codec', 'H264', '--timeout', '5', ...extra]);
const noFfmpegLeft = () => until('the prepared ffmpeg killed', 5000, async () => ffmpegs().length === 0, 20);

beforeEach(() => {
  expect(ffmpegs()).toEqual([]);
  ffmpegsAtRequest = -1;
});

it('kills the prepared ffmpeg when the gateway refuses the request', async () => {
  answer = { refuse: true, streamUrl: '' };
  expect(await play()).toBe(1);
  expect(ffmpegsAtRequest).toBe(1);
  await noFfmpegLeft();
});

it('kills the prepared ffmpeg when --out cannot be made, after the session was assigned', async () => {
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, '');
  answer = { refuse: false, streamUrl: `ws://127.0.0.1:${await closedPort()}` };
  expect(await play('--out', path.join(file, 'frames'))).toBe(1);
  expect(ffmpegsAtRequest).toBe(1);
  await noFfmpegLeft();
});

it('kills the prepared ffmpeg when the stream cannot connect (the client would reconnect)', async () => {
  answer = { refuse: false, streamUrl: `ws://127.0.0.1:${await closedPort()}` };
  expect(await play()).toBe(1);
  expect(ffmpegsAtRequest).toBe(1);
  await noFfmpegLeft();
});
