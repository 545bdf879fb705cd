// Ctrl-C and SIGTERM end the whole platform within the bound, with Redis and PostgreSQL up or
// already gone, and leave no process behind (agents, PostgreSQL, Redis, what they started).
import fs from 'node:fs';
import { adminWithVm, commandLine, describe_, platformProcesses, running, startGroupGateway, tempDir, type GroupGateway, serversOf } from './support';
import { until } from '../support/services';

const SHUTDOWN_MS = 10_000;
const dirs: string[] = [];
const gateways: GroupGateway[] = [];
afterEach(() => gateways.splice(0).forEach((g) => g.kill()));
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function platformWithWarmVm() {
  const dir = tempDir('shutdown');
  dirs.push(dir);
  // as npm start runs it: the sample UAs registered, so the pool keeps their platform warm
  const g = await startGroupGateway({ UVE_DATA_DIR: dir, UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: 'WASM', UVE_WARM_VMS: '1', UVE_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS) });
  gateways.push(g);
  await adminWithVm(g);
  const before = platformProcesses(g.pid);
  const of = (what: string) => before.filter((p) => commandLine(p.pid).includes(what));
  // the platform as npm start runs it: PostgreSQL, Redis, one agent
  expect(of('postgres').length).toBeGreaterThan(0);
  expect(serversOf(before, 'redis-server')).toHaveLength(1);
  expect(of('vm-agent/dist/main.js')).toHaveLength(1);
  return { g, before, of };
}

/** Nothing of what ran before is left (PostgreSQL backends may take a moment after their postmaster). */
async function expectAllGone(before: Parameters<typeof running>[0]) {
  await until('every process of the platform to be gone', 3000, async () => running(before).length === 0).catch(() => {
    throw new Error(`left running:\n${describe_(running(before))}`);
  });
}

it('SIGINT to the whole process group (Ctrl-C) stops everything within the bound, leaving no process', async () => {
  const { g, before } = await platformWithWarmVm();
  process.kill(-g.pid, 'SIGINT');
  const end = await g.exited(SHUTDOWN_MS + 3000);
  expect(end.code).toBe(0);
  await expectAllGone(before);
  expect(g.output()).not.toContain('Unhandled error event');
  expect(g.output()).not.toContain('killed'); // an orderly stop, not the forced one
  expect(g.output()).not.toContain('restarting'); // Redis and PostgreSQL got the SIGINT too: expected, not restarted
}, 120_000);

it.each([
  ['its private Redis was SIGKILLed', ['redis-server']],
  ['its private Redis and PostgreSQL were SIGKILLed', ['redis-server', 'postgres']],
])('SIGTERM to the gateway alone after %s stops everything within the bound', async (_what, victims) => {
  const { g, before, of } = await platformWithWarmVm();
  for (const v of victims) for (const p of of(v)) process.kill(p.pid, 'SIGKILL');
  process.kill(g.pid, 'SIGTERM');
  const end = await g.exited(SHUTDOWN_MS + 3000);
  expect(end.code).toBe(0);
  await expectAllGone(before);
  expect(g.output()).not.toContain('Unhandled error event');
}, 120_000);

it('a stop that cannot finish in UVE_SHUTDOWN_TIMEOUT_MS is forced: the whole tree is killed and the gateway exits', async () => {
  const dir = tempDir('shutdown-forced');
  dirs.push(dir);
  const g = await startGroupGateway({ UVE_DATA_DIR: dir, UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: 'WASM', UVE_WARM_VMS: '1', UVE_SHUTDOWN_TIMEOUT_MS: '2000' });
  gateways.push(g);
  await adminWithVm(g);
  const before = platformProcesses(g.pid);
  // a hung agent: it will not act on SIGTERM, and the gateway gives its VMs 5 s
  const agent = before.find((p) => commandLine(p.pid).includes('vm-agent/dist/main.js'))!;
  process.kill(agent.pid, 'SIGSTOP');
  process.kill(g.pid, 'SIGTERM');
  const end = await g.exited(2000 + 3000);
  expect(end.code).toBe(1);
  expect(g.output()).toMatch(/stop took longer than 2000 ms; killed \d+ remaining process/);
  await expectAllGone(before);
}, 120_000);
