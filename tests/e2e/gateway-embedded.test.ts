// `npm start` on a machine with no database and no Redis running: the embedded defaults.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { ADMIN, GATEWAY_MAIN, ROOT, login, ok, startGateway } from '../support/gateway';
import { AGENT_MAIN } from '../support/agent-harness';
import { descendants, killTree, stopChild, testRunEnv, until } from '../support/services';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-embedded-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

// initdb of an embedded cluster takes most of a minute on a loaded 2-core machine
jest.setTimeout(240_000);
const SLOW_START = { startTimeoutMs: 120_000 };

/**
 * what the gateway's children run with: GLIBC_TUNABLES of its postmaster, Redis server and VM
 * agents, by kind, each value once (a backend just forked carries the postmaster's command line)
 */
function childTunables(gatewayPid: number, dataDir: string): { postgres?: string[]; redis?: string[]; agent?: string[] } {
  const by: Record<string, string[]> = {};
  for (const pid of descendants(gatewayPid)) {
    let cmd: string, env: string[];
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    const kind = cmd.includes(`-D ${path.join(dataDir, 'postgres')}`) ? 'postgres' : cmd.includes('redis-server') ? 'redis' : env.some((e) => e.startsWith('UVE_VM_ID=')) ? 'agent' : null;
    const value = env.find((e) => e.startsWith('GLIBC_TUNABLES=')) ?? '(none)';
    if (kind && !by[kind]?.includes(value)) (by[kind] ??= []).push(value);
  }
  return by;
}

it('runs on an embedded PostgreSQL and a private Redis, ready and serving, and keeps its data across restarts', async () => {
  const dataDir = tmp();
  // one warm VM: its agent is started with the allocator setting as the private servers are
  const gw = await startGateway({ UVE_DATA_DIR: dataDir, UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM' }, SLOW_START);
  try {
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ok: true, checks: { database: 'ok', redis: 'ok' } });
    const me = await ok(gw, `{ me { id } }`);
    expect(me.me).toBeNull();
    await ok(gw, `mutation { register(input: {username: "kept", password: "kept-password"}) { token } }`);
    // large allocations on transparent huge pages by default (UVE_GLIBC_TUNABLES, infra/allocator.ts)
    const on = 'GLIBC_TUNABLES=glibc.malloc.hugetlb=1';
    const started = await until('the warm VM agent', 60_000, async () => (childTunables(gw.child.pid!, dataDir).agent ? childTunables(gw.child.pid!, dataDir) : null));
    expect(started).toEqual({ postgres: [on], redis: [on], agent: [on] });
  } finally {
    await gw.stop();
  }
  expect(fs.existsSync(path.join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
  const again = await startGateway({ UVE_DATA_DIR: dataDir, UVE_GLIBC_TUNABLES: 'off' }, SLOW_START);
  try {
    await login(again, 'kept', 'kept-password');
    await login(again, ADMIN.username, ADMIN.password);
    expect(childTunables(again.child.pid!, dataDir)).toEqual({ postgres: ['(none)'], redis: ['(none)'] });
  } finally {
    await again.stop();
  }
});

it('prints a random first admin password once when none is configured', async () => {
  const gw = await startGateway({ UVE_DATA_DIR: tmp(), UVE_ADMIN_PASSWORD: '' }, SLOW_START);
  try {
    const m = /First admin created: username "admin", password "([^"]+)"/.exec(gw.output());
    expect(m).not.toBeNull();
    const { token } = await login(gw, 'admin', m![1]!);
    expect((await ok(gw, `{ me { role } }`, {}, token)).me.role).toBe('ADMIN');
  } finally {
    await gw.stop();
  }
});

/**
 * Runs the gateway to its exit (bad configuration, --help), always in a temporary UVE_DATA_DIR so
 * that a regression that starts it anyway cannot touch the repository's .uve; killed (with what
 * it started) after `ms` and when the test ends, so nothing outlives a failure.
 */
const running = new Set<ChildProcess>();
afterEach(async () => {
  await Promise.all([...running].map((c) => stopChild(c, 5_000)));
});

function runGateway(env: Record<string, string>, args: string[] = [], ms = 30_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [GATEWAY_MAIN, ...args], {
      cwd: ROOT,
      env: { HOME: process.env.HOME ?? '/root', UVE_DATA_DIR: tmp(), ...testRunEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b));
    child.stderr!.on('data', (b: Buffer) => (out += b));
    const timer = setTimeout(() => {
      out += `\n[test] no exit within ${ms} ms: killed`;
      if (child.pid) killTree(child.pid);
    }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, out });
    });
  });
}

it('exits with a message that says what to do when redis-server is missing', async () => {
  const r = await runGateway({ PATH: '/nonexistent', UVE_DATA_DIR: tmp() });
  expect(r.code).toBe(2);
  expect(r.out).toMatch(/redis-server was not found on PATH.*apt-get install redis-server.*REDIS_URL/s);
});

it('refuses bad configuration with a non-zero exit and the variable named', async () => {
  const r = await runGateway({ PATH: process.env.PATH ?? '', UVE_PORT: 'eighty' });
  expect(r.code).toBe(2);
  expect(r.out).toContain('UVE_PORT must be an integer');
});

it('documents every setting of the gateway in --help, with its default', async () => {
  const r = await runGateway({ PATH: process.env.PATH ?? '' }, ['--help']);
  expect(r.code).toBe(0);
  const { CONFIG_SPEC } = require(path.join(ROOT, 'apps/gateway/dist/config.js'));
  const specs = Object.values(CONFIG_SPEC) as { env: string; doc: string; default: string | null }[];
  expect(specs.length).toBeGreaterThan(20);
  for (const spec of specs) {
    const row = r.out.split('\n').find((l) => new RegExp(`^\\s*${spec.env}\\b`).test(l));
    expect([spec.env, row]).toEqual([spec.env, expect.stringContaining(spec.doc)]);
    if (spec.default !== null) expect([spec.env, row]).toEqual([spec.env, expect.stringContaining(spec.default)]);
  }
});

it('documents every setting of the VM agent in its --help', async () => {
  const out = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [AGENT_MAIN, '--help'], { env: { PATH: process.env.PATH ?? '', ...testRunEnv() }, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let s = '';
    child.stdout!.on('data', (b: Buffer) => (s += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, out: s });
    });
  });
  expect(out.code).toBe(0);
  const { CONFIG_VARS } = require(path.join(ROOT, 'apps/vm-agent/dist/config.js'));
  const vars = CONFIG_VARS as { name: string; doc: string }[];
  expect(vars.length).toBeGreaterThan(10);
  for (const v of vars) {
    const row = out.out.split('\n').find((l) => new RegExp(`^\\s*${v.name}\\b`).test(l));
    expect([v.name, row]).toEqual([v.name, expect.stringContaining(v.doc)]);
  }
});
