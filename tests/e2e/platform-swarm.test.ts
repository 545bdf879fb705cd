// SWARM VMs through the gateway on a real one-node swarm (docker swarm init on this engine, left
// afterwards): a service per VM, placed by platform node labels; a UA played on a VM of each
// platform; a service removed or a task killed from outside → OFFLINE at once and replaced by the
// pool; removeVm → service gone; reconciliation at start.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { until } from '../support/services';
import { startGateway } from '../support/gateway';
import { buildAgentImages, dockerCli, requireDocker } from '../support/docker';
import { engineVms, PLATFORM_CASES, startEngineSuite, stopEngineSuite, type EngineSuite } from '../support/engine-vms';
import { joinSwarm, type SwarmMembership } from '../support/swarm';
import type { Client } from 'graphql-ws';

const docker = new Docker();
const PREFIX = 'swarme2e';
// images of this suite's own: the default tags are rebuilt by whichever checkout on this engine
// last ran the Docker suites, and a service takes the image its tag names when its task starts
const IMAGES = { UVE_VM_IMAGE_WASM: 'uve-swarm-e2e/vm-agent-wasm:test', UVE_VM_IMAGE_LINUX_X11: 'uve-swarm-e2e/vm-agent-x11:test' };
let swarm: SwarmMembership;
let suite: EngineSuite;
const clients: Client[] = [];

const vms = engineVms({ gw: () => suite.gw, admin: () => suite.admin, user: () => suite.user, provider: 'SWARM', output: () => suite.gw.output() });
const service = (vmId: string) => docker.getService(`uve-vm-${vmId}`);
/** the running container of a VM's task (on this one node) */
const taskContainer = (vmId: string) =>
  until(`the container of VM ${vmId}`, 30_000, async () => (await docker.listContainers({ filters: { label: [`com.docker.swarm.service.name=uve-vm-${vmId}`] } }))[0] ?? null, 100);

/** the VM's tasks as the manager has them, and their containers as this engine has them */
const taskStates = async (vmId: string) => ({
  tasks: ((await docker.listTasks({ filters: { service: [`uve-vm-${vmId}`] } })) as { Status?: { State?: string; Err?: string; ContainerStatus?: { ExitCode?: number } } }[]).map((t) => t.Status),
  containers: (await docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.service.name=uve-vm-${vmId}`] } })).map((c) => `${c.State}: ${c.Status}`),
});

/** a CA the gateway trusts (NODE_EXTRA_CA_CERTS): its VMs trust it too, from a swarm secret */
let caDir: string;
let caPem: string;

beforeAll(async () => {
  await requireDocker(docker);
  caDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-swarm-ca-'));
  const [key, cert] = [path.join(caDir, 'key.pem'), path.join(caDir, 'cert.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=uve-swarm-test-ca'], { stdio: 'ignore' });
  caPem = fs.readFileSync(cert, 'utf8');
  await buildAgentImages(undefined, ['--wasm-image', IMAGES.UVE_VM_IMAGE_WASM, '--x11-image', IMAGES.UVE_VM_IMAGE_LINUX_X11]);
  swarm = await joinSwarm(docker, PREFIX, ['WASM', 'LINUX_X11']);
  suite = await startEngineSuite(PREFIX, { ...IMAGES, UVE_DOCKER: 'off', UVE_VM_PROVIDER: 'SWARM', UVE_SWARM_VM_HOST: '127.0.0.1', NODE_EXTRA_CA_CERTS: cert }, 'swarmuser');
}, 20 * 60_000);

afterAll(async () => {
  await stopEngineSuite(suite, clients);
  await swarm?.leave();
  if (caDir) fs.rmSync(caDir, { recursive: true, force: true });
}, 120_000);

describe.each(PLATFORM_CASES)('a SWARM VM for $platform', (c) => {
  it('is provisioned as a one-replica service placed by its platform label, serves a UA whose picture follows input, and is removed with its service', async () => {
    const id = await vms.provision(c.platform);
    const spec = (await service(id).inspect()).Spec;
    expect(spec.Labels).toMatchObject({ 'uve.vm.id': id, 'uve.managed': 'true', 'uve.gateway': PREFIX, 'uve.vm.platform': c.platform });
    expect(spec.Mode).toEqual({ Replicated: { Replicas: 1 } });
    expect(spec.TaskTemplate.RestartPolicy.Condition).toBe('none');
    expect(spec.TaskTemplate.Placement.Constraints).toEqual([`node.labels.uve.platform.${c.platform} == true`]);
    expect(spec.TaskTemplate.Resources).toEqual({ Limits: { NanoCPUs: 1e9, MemoryBytes: 1024 ** 3, Pids: 1024 }, Reservations: { NanoCPUs: 0.25e9, MemoryBytes: 1024 ** 3 / 4 } });
    const container = await docker.getContainer((await taskContainer(id)).Id).inspect();
    expect(container.HostConfig.NetworkMode).toBe('host');
    // the VM's secret and the Redis URL reach it as swarm secret files, in no environment
    expect(container.Config.Env).toEqual(expect.arrayContaining(['UVE_VM_SECRET_FILE=/run/secrets/uve-vm-secret', 'REDIS_URL_FILE=/run/secrets/uve-redis-url']));
    expect(container.Config.Env.filter((e: string) => e.startsWith('REDIS_URL=') || e.startsWith('UVE_VM_SECRET='))).toEqual([]);
    expect(spec.TaskTemplate.ContainerSpec.Secrets.map((x: { File: { Name: string; Mode: number } }) => x.File)).toEqual(expect.arrayContaining([expect.objectContaining({ Name: 'uve-vm-secret', Mode: 0o400 }), expect.objectContaining({ Name: 'uve-redis-url', Mode: 0o400 }), expect.objectContaining({ Name: 'uve-extra-ca', Mode: 0o400 })]));
    // the gateway's NODE_EXTRA_CA_CERTS: the same certificates, read by the agent's user inside
    expect(container.Config.Env).toContain('NODE_EXTRA_CA_CERTS=/run/secrets/uve-extra-ca');
    expect(await dockerCli(['exec', container.Id, '/usr/bin/node', '-e', "process.stdout.write(require('fs').readFileSync('/run/secrets/uve-extra-ca', 'utf8'))"])).toBe(caPem);
    await vms.play(c);
    await vms.remove(id);
    await expect(service(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    // and its secrets go with it
    expect((await docker.listSecrets()).filter((x) => x.Spec?.Name?.includes(id))).toEqual([]);
  }, 180_000);
});

it('sees a service removed from outside as OFFLINE for good, and the pool replaces it', async () => {
  let victim = '';
  const replacement = await vms.lostAndReplaced(clients, (id) => dockerCli(['service', 'rm', `uve-vm-${(victim = id)}`]), /^service removed$/);
  expect((await service(replacement).inspect()).Spec.Labels['uve.vm.id']).toBe(replacement);
  // its agent heartbeats on through the task's stop grace: no sign of life (once, one such
  // heartbeat made it IDLE again, and the next test took it for the pool's warm VM)
  await until('the removed service\'s container to go', 30_000, async () => ((await docker.listContainers({ filters: { label: [`com.docker.swarm.service.name=uve-vm-${victim}`] } })).length ? null : true), 100);
  expect((await vms.vm(victim)).data!.vm.status).toBe('OFFLINE');
}, 180_000);

// seen through the engine's `die` event of the task container (the task's failed state may reach
// the manager tens of seconds later on a loaded machine; the poll of task states is the fallback)
it('sees a task whose container was killed as OFFLINE (task failed, not restarted), and the pool replaces it', async () => {
  const replacement = await vms.lostAndReplaced(clients, async (id) => docker.getContainer((await taskContainer(id)).Id).kill(), /^task failed \(exit code \d+\)/, taskStates);
  await taskContainer(replacement);
}, 180_000);

it('reconciles at start: a VM whose service went away while the gateway was down is OFFLINE at once', async () => {
  const id = await vms.provision('WASM', 'reconciled');
  await suite.gw.stop(); // services outlive the gateway
  await service(id).remove();
  // gone for good before the gateway is back (the swarm stops the task after the service is removed)
  await until('the task container to go', 30_000, async () => ((await docker.listContainers({ filters: { label: [`com.docker.swarm.service.name=uve-vm-${id}`] } })).length ? null : true), 100);
  suite.gw = await startGateway(suite.env);
  // no heartbeat timeout has passed yet: this is the reconciliation's doing
  expect((await vms.vm(id)).data!.vm.status).toBe('OFFLINE');
}, 180_000);
