// DOCKER VMs through the gateway with the real engine: provision one per platform, use a UA in
// each, remove them, and see a container killed from outside go OFFLINE and be replaced by the pool.
import Docker from 'dockerode';
import { gql, startGateway } from '../support/gateway';
import { until } from '../support/services';
import { buildAgentImages, removeContainersLabelled, requireDocker } from '../support/docker';
import { engineVms, PLATFORM_CASES, startEngineSuite, stopEngineSuite, type EngineSuite } from '../support/engine-vms';
import type { Client } from 'graphql-ws';

const docker = new Docker();
const PREFIX = 'dockere2e';
let suite: EngineSuite;
const clients: Client[] = [];

const vms = engineVms({ gw: () => suite.gw, admin: () => suite.admin, user: () => suite.user, provider: 'DOCKER', output: () => suite.gw.output() });
const container = (vmId: string) => docker.getContainer(`uve-vm-${vmId}`);

beforeAll(async () => {
  await requireDocker(docker);
  await buildAgentImages();
  await removeContainersLabelled(docker, `uve.gateway=${PREFIX}`);
  suite = await startEngineSuite(PREFIX, { UVE_DOCKER: 'on', UVE_VM_PROVIDER: 'DOCKER' }, 'dockeruser');
}, 20 * 60_000);

afterAll(async () => {
  await stopEngineSuite(suite, clients);
  await removeContainersLabelled(docker, `uve.gateway=${PREFIX}`).catch(() => undefined);
});

describe.each(PLATFORM_CASES)('a DOCKER VM for $platform', (c) => {
  it('is provisioned as a labelled container, serves a UA whose picture follows input, and is removed with its container', async () => {
    const id = await vms.provision(c.platform);
    const info = await container(id).inspect();
    expect(info.Config.Labels).toMatchObject({ 'uve.vm.id': id, 'uve.managed': 'true', 'uve.gateway': PREFIX });
    expect(info.HostConfig.NetworkMode).toBe('host');
    expect(info.HostConfig.NanoCpus).toBe(1e9);
    await vms.play(c);
    await vms.remove(id);
    await expect(container(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});

it('sees a container killed from outside as OFFLINE, and the pool replaces it', async () => {
  const replacement = await vms.lostAndReplaced(clients, (id) => container(id).kill(), /^container died \(exit code \d+\)/);
  expect((await container(replacement).inspect()).State.Running).toBe(true);
});

it('reconciles at start: a VM whose container went away while the gateway was down is OFFLINE at once, and its container pruned', async () => {
  const id = await vms.provision('WASM', 'reconciled');
  await suite.gw.stop(); // containers outlive the gateway
  expect((await container(id).inspect()).State.Running).toBe(true);
  await container(id).kill();
  suite.gw = await startGateway(suite.env);
  // no heartbeat timeout has passed yet: this is the reconciliation's doing
  expect((await vms.vm(id)).data!.vm.status).toBe('OFFLINE');
  await expect(container(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
});

it('a VM the pool is retiring when the gateway stops is removed, container and all, before the gateway exits', async () => {
  // a gateway of its own: one VM kept warm, an idle surplus retired after 30 s
  const own = await startEngineSuite(`${PREFIX}retire`, { UVE_DOCKER: 'on', UVE_VM_PROVIDER: 'DOCKER', UVE_VM_IDLE_RETIRE_MS: '30000', UVE_LOG_LEVEL: 'info', UVE_SHUTDOWN_TIMEOUT_MS: '30000' }, 'retireuser');
  try {
    const ownVms = engineVms({ gw: () => own.gw, admin: () => own.admin, user: () => own.user, provider: 'DOCKER' });
    const warm = await until('the warm VM', 90_000, async () => (await gql(own.gw, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, own.admin)).data?.vms?.[0]?.id as string | undefined, 100);
    const surplus = await ownVms.provision('WASM');
    // both agents frozen: whichever is retired cannot hear its SIGTERM, so its container's stop
    // takes the whole stop timeout (5 s), longer than the stop gives the pool (4 s)
    for (const id of [warm, surplus]) {
      const top = await container(id).top({ ps_args: '-eo pid' });
      for (const [pid] of top.Processes) process.kill(Number(pid), 'SIGSTOP');
    }
    const retiring = await until('the pool to retire the surplus', 90_000, async () => /"msg":"idle VM retired","vmId":"([0-9a-f-]{36})"/.exec(own.gw.output())?.[1], 100);
    own.gw.child.kill('SIGTERM');
    await until('the gateway to exit', 40_000, async () => own.gw.child.exitCode !== null, 100);
    await expect(container(retiring).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(own.gw.output()).toContain('stopping: waiting for VM removals under way');
  } finally {
    await removeContainersLabelled(docker, `uve.gateway=${PREFIX}retire`).catch(() => undefined);
    await own.gw.stop();
    await own.redis.stop();
  }
}, 5 * 60_000);
