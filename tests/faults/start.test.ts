// `npm start`'s launcher (scripts/start.js): the gateway and the console in one command, stopped
// together — by Ctrl-C, or when either of them ends — with no process of either left behind.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { commandLine, describe_, platformProcesses, running, tempDir, type ProcessIdentity } from './support';
import { ADMIN, ROOT, gatewayTestEnv, registerUser } from '../support/gateway';
import { openStream, requestUa, share, uaId } from '../support/stream';
import { freePort, until } from '../support/services';

const SHUTDOWN_MS = 10_000;
const dirs: string[] = [];
const leftovers: ProcessIdentity[][] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
// whatever a failed test left running goes (the test itself checks that nothing is left)
afterEach(() => leftovers.splice(0).forEach((ids) => running(ids).forEach((p) => process.kill(p.pid, 'SIGKILL'))));

/** `node scripts/start.js` leading its own process group, as a terminal's foreground job. */
async function launch(env: Record<string, string | undefined> = {}) {
  const dir = tempDir('start');
  dirs.push(dir);
  const consolePort = await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts/start.js')], {
    cwd: ROOT,
    detached: true,
    env: withoutUnset({ ...gatewayTestEnv({ UVE_DOCKER: 'off', UVE_DATA_DIR: dir, UVE_CONSOLE_PORT: String(consolePort), UVE_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS), NEXT_TELEMETRY_DISABLED: '1' }), ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const exited = (ms: number) => Promise.race([exit, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the launcher did not exit in ${ms} ms:\n${out.slice(-3000)}`)), ms).unref())]);
  const consoleUrl = `http://127.0.0.1:${consolePort}`;
  await until('the launcher to say where the console is', 120_000, async () => {
    if (child.exitCode !== null) throw new Error(`the launcher exited with ${child.exitCode}:\n${out}`);
    return out.includes(`UVE console at ${consoleUrl}`);
  }, 100).catch((e) => {
    leftovers.push(platformProcesses(child.pid!));
    throw e;
  });
  const gatewayUrl = /listening on (http:\/\/\S+)\/graphql/.exec(out)![1]!;
  const processes = platformProcesses(child.pid!);
  leftovers.push(processes);
  return { pid: child.pid!, out: () => out, exited, consoleUrl, gatewayUrl, processes };
}

/** an environment where `undefined` means "not set" */
function withoutUnset(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

async function expectAllGone(before: ProcessIdentity[]) {
  await until('every process of the launcher to be gone', 3000, async () => running(before).length === 0).catch(() => {
    throw new Error(`left running:\n${describe_(running(before))}`);
  });
}

it('serves the console beside the gateway; Ctrl-C (SIGINT to its group) stops both in order, leaving no process', async () => {
  const l = await launch();
  /** status and body (read whole, so no response is left open) */
  const get = async (url: string, init?: RequestInit) => {
    const r = await fetch(url, { ...init, headers: { connection: 'close', ...(init?.headers ?? {}) } });
    return { status: r.status, cookie: r.headers.get('set-cookie'), body: await r.text() };
  };
  // both answer: the console's login page, the gateway's readiness
  expect((await get(`${l.consoleUrl}/login`)).status).toBe(200);
  expect((await get(`${l.gatewayUrl}/readyz`)).status).toBe(200);
  // the console talks to this gateway: the admin it created signs in there
  const login = await get(`${l.consoleUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) });
  expect(login.status).toBe(200);
  expect(login.cookie).toContain('uve_token=');
  expect(l.processes.some((p) => commandLine(p.pid).includes('next'))).toBe(true);
  expect(l.processes.some((p) => commandLine(p.pid).includes('gateway/dist/main.js'))).toBe(true);
  process.kill(-l.pid, 'SIGINT');
  const end = await l.exited(SHUTDOWN_MS + 5000);
  expect(end.code).toBe(0);
  await expectAllGone(l.processes);
  // the gateway got one signal, so it stopped in order rather than being killed
  expect(l.out()).toContain('SIGINT: stopping');
  expect(l.out()).not.toContain('killed');
}, 180_000);

it('when the console dies, the launcher stops the gateway too and exits with an error', async () => {
  const l = await launch();
  const next = l.processes.filter((p) => commandLine(p.pid).includes('next'));
  expect(next.length).toBeGreaterThan(0);
  for (const p of next) process.kill(p.pid, 'SIGKILL');
  const end = await l.exited(SHUTDOWN_MS + 5000);
  expect(end.code).not.toBe(0);
  expect(l.out()).toMatch(/the console was killed by SIGKILL; stopping/);
  await expectAllGone(l.processes);
}, 180_000);

it('on a default npm start a user plays xterm with no admin step: typed text runs in its shell', async () => {
  // the samples as npm start offers them (the test environment otherwise registers none)
  const l = await launch({ UVE_SAMPLE_UAS: undefined, UVE_POOL_PLATFORMS: undefined, UVE_WARM_VMS: undefined, UVE_REQUEST_WAIT_MS: undefined });
  try {
    expect(l.out()).toContain('offering the xterm sample');
    const gw = { graphqlUrl: `${l.gatewayUrl}/graphql` };
    const user = await registerUser(gw, 'first-user');
    const xterm = await requestUa(gw as never, user.token, await uaId(gw as never, user.token, 'xterm'), { codec: 'H264', width: 800, height: 600 });
    const stream = await openStream(xterm.connection);
    try {
      await stream.frame(() => true, 'at all', 30_000);
      await stream.client.sendInput({ kind: 'text', text: "printf '\\033[41m%4000s\\033[0m' ''" });
      const enter = stream.client.sendInput({ kind: 'key', type: 'down', code: 'Enter', key: 'Enter' });
      stream.client.sendInput({ kind: 'key', type: 'up', code: 'Enter', key: 'Enter' });
      await stream.frame((f) => f.header.inputSeq >= enter && share(f, { r: 205, g: 0, b: 0 }) > 0.2, 'with the terminal turned red by the typed command', 30_000);
    } finally {
      await stream.close();
    }
  } finally {
    process.kill(-l.pid, 'SIGINT');
    await l.exited(SHUTDOWN_MS + 5000);
    await expectAllGone(l.processes);
  }
}, 240_000);
