// kill -9 of the gateway, then a new start on the same data folder: what the killed run left
// (its agents, its PostgreSQL, its Redis) is stopped, never a process that only reused a pid, and
// the API tells the truth about the VM and the session it held.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { adminWithVm, serversOf, commandLine, describe_, envOf, identify, isRunning, platformProcesses, requestPaint, running, startGroupGateway, tempDir, type GroupGateway } from './support';
import { ok } from '../support/gateway';
import { until } from '../support/services';

const dirs: string[] = [];
const gateways: GroupGateway[] = [];
const bystanders: number[] = [];
afterAll(() => {
  gateways.forEach((g) => g.kill());
  bystanders.forEach((pid) => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
});

it('after kill -9 of the gateway, the next start stops the agents, PostgreSQL and Redis it left and reports the session and VM truthfully', async () => {
  const dir = tempDir('crash');
  dirs.push(dir);
  const env = { UVE_DATA_DIR: dir, UVE_WARM_VMS: '1', UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: 'WASM' };
  const first = await startGroupGateway(env);
  gateways.push(first);
  const { token, vmId } = await adminWithVm(first);
  const session = await requestPaint(first, token);
  expect(session.vmId).toBe(vmId);
  const left = platformProcesses(first.pid).filter((p) => p.pid !== first.pid);
  const agent = left.filter((p) => commandLine(p.pid).includes('vm-agent/dist/main.js'));
  const redis = serversOf(left, 'redis-server');
  // (a backend just forked carries the postmaster's command line until it sets its own title: the
  // postmaster is the one whose parent does not)
  const postmaster = serversOf(left, `-D ${path.join(dir, 'postgres')}`);
  // the session's agent, and the pool may have started another to keep one idle
  expect([agent.length >= 1, redis.length, postmaster.length]).toEqual([true, 1, 1]);
  // each agent's data folder, made by the gateway (an agent killed cannot remove its own)
  const agentDirs = agent.map((p) => envOf(p.pid, 'UVE_VM_DATA_DIR'));
  expect(agentDirs.every((d) => !!d && fs.existsSync(d))).toBe(true);

  // a process that happens to carry the pid of a tracked agent after a reboot or pid wrap-around:
  // tracked with another start time, it must survive the reaping
  const bystander = spawn('sleep', ['300'], { stdio: 'ignore' });
  bystanders.push(bystander.pid!);
  const fakeVm = randomUUID();
  fs.writeFileSync(path.join(dir, 'agents', `${fakeVm}.json`), JSON.stringify({
    vmId: fakeVm, agent: { pid: bystander.pid, startTime: '1' }, gateway: { pid: 999_999_999, startTime: '1' },
  }));

  // the killed run's VMs: the session's, and any the pool was starting or kept idle
  const firstRun = (await ok<{ vms: { id: string; status: string }[] }>(first, `{ vms { id status } }`, {}, token)).vms.filter((v) => !['OFFLINE', 'FAILED'].includes(v.status));
  first.child.kill('SIGKILL');
  await first.exited(5000);
  // what it started runs on without it
  expect(running([...agent, ...redis, ...postmaster])).toHaveLength(agent.length + 2);

  const second = await startGroupGateway(env);
  gateways.push(second);
  expect(running([...agent, ...redis, ...postmaster])).toEqual([]);
  expect(isRunning(identify(bystander.pid!)!)).toBe(true);
  expect(fs.existsSync(path.join(dir, 'agents', `${fakeVm}.json`))).toBe(false);
  expect(agentDirs.filter((d) => fs.existsSync(d!))).toEqual([]);
  // their agents were stopped at start: OFFLINE once the new run serves, however recently they were
  // heard from or launched (one reaped before it said vm.stopping, or before it registered, was left
  // IDLE or PROVISIONING, and the pool waited for it instead of starting another)
  const vmsNow = (await ok<{ vms: { id: string; status: string }[] }>(second, `{ vms { id status } }`, {}, token)).vms;
  expect(firstRun.map((v) => ({ ...v, now: vmsNow.find((n) => n.id === v.id)?.status }))).toEqual(firstRun.map((v) => ({ ...v, now: 'OFFLINE' })));

  const q = `query($s: ID!, $v: ID!) { session(id: $s) { state events { type data } } vm(id: $v) { status } }`;
  const truth = await until('the session and VM of the killed run to be reported', 15_000, async () => {
    const d = await ok<{ session: { state: string; events: { type: string; data: Record<string, unknown> | null }[] }; vm: { status: string } }>(second, q, { s: session.id, v: vmId }, token);
    return ['DISCONNECTED', 'ENDED'].includes(d.session.state) && d.vm.status === 'OFFLINE' ? d : null;
  });
  const lost = truth.session.events.find((e) => e.type === 'DISCONNECTED' || e.type === 'ENDED');
  expect(lost?.data?.reason).toEqual(expect.any(String));
  expect(lost?.data).toMatchObject({ unexpected: true });

  // and the new run is whole: a new warm VM, everything stops on Ctrl-C
  await adminWithVm(second);
  const now = platformProcesses(second.pid);
  const secondDirs = now.filter((p) => commandLine(p.pid).includes('vm-agent/dist/main.js')).map((p) => envOf(p.pid, 'UVE_VM_DATA_DIR'));
  expect(secondDirs.length).toBeGreaterThanOrEqual(1);
  process.kill(-second.pid, 'SIGINT');
  expect((await second.exited(13_000)).code).toBe(0);
  expect(secondDirs.filter((d) => !d || fs.existsSync(d))).toEqual([]);
  await until('the second run to be gone', 3000, async () => running(now).length === 0).catch(() => {
    throw new Error(`left running:\n${describe_(running(now))}`);
  });
}, 180_000);
