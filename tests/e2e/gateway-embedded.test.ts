// `npm start` on a machine with no database and no Redis running: the embedded defaults.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ADMIN, GATEWAY_MAIN, ROOT, login, ok, startGateway } from '../support/gateway';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-embedded-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

it('runs on an embedded PostgreSQL and a private Redis, ready and serving, and keeps its data across restarts', async () => {
  const dataDir = tmp();
  const gw = await startGateway({ UVE_DATA_DIR: dataDir });
  try {
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ok: true, checks: { database: 'ok', redis: 'ok' } });
    const me = await ok(gw, `{ me { id } }`);
    expect(me.me).toBeNull();
    await ok(gw, `mutation { register(input: {username: "kept", password: "kept-password"}) { token } }`);
  } finally {
    await gw.stop();
  }
  expect(fs.existsSync(path.join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
  const again = await startGateway({ UVE_DATA_DIR: dataDir });
  try {
    await login(again, 'kept', 'kept-password');
    await login(again, ADMIN.username, ADMIN.password);
  } finally {
    await again.stop();
  }
});

it('prints a random first admin password once when none is configured', async () => {
  const gw = await startGateway({ UVE_DATA_DIR: tmp(), UVE_ADMIN_PASSWORD: '' });
  try {
    const m = /First admin created: username "admin", password "([^"]+)"/.exec(gw.output());
    expect(m).not.toBeNull();
    const { token } = await login(gw, 'admin', m![1]!);
    expect((await ok(gw, `{ me { role } }`, {}, token)).me.role).toBe('ADMIN');
  } finally {
    await gw.stop();
  }
});

function runGateway(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [GATEWAY_MAIN], { cwd: ROOT, env: { HOME: process.env.HOME ?? '/root', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (out += b));
    child.on('exit', (code) => resolve({ code, out }));
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

it('documents every setting in --help', async () => {
  const out = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, [GATEWAY_MAIN, '--help'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let s = '';
    child.stdout.on('data', (b: Buffer) => (s += b));
    child.on('exit', () => resolve(s));
  });
  for (const v of ['DATABASE_URL', 'REDIS_URL', 'UVE_DATA_DIR', 'UVE_ADMIN_PASSWORD', 'UVE_VM_PROVIDER', 'UVE_WARM_VMS']) expect(out).toContain(v);
});
