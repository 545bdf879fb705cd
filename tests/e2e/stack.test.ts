// docker/stack.yml as an operator uses it (docs/scaling.md): the images built FROM scratch on this
// machine, secrets made by docker/stack/make-secrets.js, `docker stack deploy` on a one-node swarm
// (docker swarm init, left afterwards), the gateways' /readyz through the proxy, a UA played
// through that one address on a VM of the stack's warm pool, and after scaling the gateways to
// 0 and `docker stack rm` no service, container, secret or config of the stack left.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { until } from '../support/services';
import { gatewayAddress, login, registerUser, type GatewayAddress } from '../support/gateway';
import { buildAgentImages, buildStackImages, dockerCli, requireDocker } from '../support/docker';
import { REPO_ROOT } from '../support/agent-harness';
import { engineVms, PLATFORM_CASES } from '../support/engine-vms';
import { joinSwarm, type SwarmMembership } from '../support/swarm';

const docker = new Docker();
const STACK = 'uvestack';

/** what an operator would look at first when the stack does not come up: its tasks and the gateway's and PostgreSQL's last lines */
async function stackDiagnostics(): Promise<string> {
  const out: string[] = [];
  for (const args of [
    ['stack', 'ps', '--no-trunc', '--format', '{{.Name}} {{.CurrentState}} {{.Error}}', STACK],
    ['service', 'logs', '--tail', '30', `${STACK}_gateway`],
    ['service', 'logs', '--tail', '15', `${STACK}_postgres`],
  ]) out.push(`$ docker ${args.join(' ')}\n${await dockerCli(args).catch((e: Error) => e.message)}`);
  return out.join('\n');
}
const NAMESPACE = `com.docker.stack.namespace=${STACK}`;
// images of this suite's own (a service takes the image its tag names when its task starts)
const PREFIX = 'uve-stack-e2e/';
const AGENT_IMAGE = `${PREFIX}vm-agent-wasm:test`;
const { makeSecrets } = require(path.join(REPO_ROOT, 'docker/stack/make-secrets.js')) as { makeSecrets: (o: { dir: string; env: NodeJS.ProcessEnv }) => string };

let swarm: SwarmMembership | undefined;
let secretsDir: string;
let env: NodeJS.ProcessEnv;
let proxy: GatewayAddress;
let ports: { proxy: number; gateway1: number; gateway2: number; postgres: number; redis: number; console: number; prefix: string };
let admin: string;
let user: { token: string };

const free = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });

/** ports <prefix>0..<prefix>5 on this host, all free: proxy, the two gateways, PostgreSQL, Redis, console */
async function pickPorts(): Promise<typeof ports> {
  for (let p = 4100 + Math.floor(Math.random() * 90); p < 4200; p++) {
    const all = [0, 1, 2, 3, 4, 5].map((i) => Number(`${p}${i}`));
    if ((await Promise.all(all.map(free))).every(Boolean)) {
      return { prefix: String(p), proxy: all[0]!, gateway1: all[1]!, gateway2: all[2]!, postgres: all[3]!, redis: all[4]!, console: all[5]! };
    }
  }
  throw new Error('no free ports 4100x..4199x');
}

/** what of the stack is still on the engine: services (VMs too), their containers, secrets, configs */
async function leftovers(): Promise<string[]> {
  const [services, vmServices, containers, vmContainers, secrets, vmSecrets, configs] = await Promise.all([
    docker.listServices({ filters: { label: [NAMESPACE] } }),
    docker.listServices({ filters: { label: [`uve.gateway=${STACK}`] } }),
    docker.listContainers({ all: true, filters: { label: [NAMESPACE] } }),
    docker.listContainers({ all: true, filters: { label: [`uve.swarm.gateway=${STACK}`] } }),
    docker.listSecrets({ filters: { label: [NAMESPACE] } }),
    docker.listSecrets({ filters: { label: [`uve.gateway=${STACK}`] } }),
    docker.listConfigs({ filters: { label: [NAMESPACE] } }),
  ]);
  return [
    ...[...services, ...vmServices].map((s) => `service ${s.Spec?.Name}`),
    ...[...containers, ...vmContainers].map((c) => `container ${c.Names?.[0]} (${c.State})`),
    ...[...secrets, ...vmSecrets].map((s) => `secret ${s.Spec?.Name}`),
    ...configs.map((c) => `config ${c.Spec?.Name}`),
  ];
}

/** as docs/scaling.md says: the gateways first (else one replaces the VMs being removed), then the stack */
async function removeStack(): Promise<void> {
  await dockerCli(['service', 'scale', '--detach=false', `${STACK}_gateway=0`]).catch(() => undefined);
  await dockerCli(['stack', 'rm', STACK]);
}

const vms = engineVms({ gw: () => proxy, admin: () => admin, user: () => user, provider: 'SWARM' });

beforeAll(async () => {
  await requireDocker(docker);
  await buildAgentImages(undefined, ['--platform', 'wasm', '--wasm-image', AGENT_IMAGE]);
  await buildStackImages(undefined, ['--quiet', '--prefix', PREFIX, '--tag', 'test']);
  swarm = await joinSwarm(docker, STACK, ['WASM']);
  // what an earlier, interrupted run left (on a swarm this suite did not make)
  if ((await leftovers()).length) await removeStack().catch(() => undefined);
  await until('what an earlier run left to go', 60_000, async () => ((await leftovers()).length ? null : true), 500);
  await docker.getVolume(`${STACK}_pgdata`).remove().catch(() => undefined);
  ports = await pickPorts();
  secretsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-stack-secrets-'));
  env = {
    ...process.env,
    UVE_STACK_IMAGE_PREFIX: PREFIX,
    UVE_STACK_TAG: 'test',
    UVE_STACK_SECRETS: secretsDir,
    UVE_STACK_PORT: String(ports.proxy),
    UVE_STACK_GATEWAY_PORT_PREFIX: ports.prefix,
    UVE_STACK_POSTGRES_PORT: String(ports.postgres),
    UVE_STACK_REDIS_PORT: String(ports.redis),
    UVE_STACK_CONSOLE_PORT: String(ports.console),
    // this machine only: nothing listens beyond the loopback
    UVE_STACK_BIND: '127.0.0.1',
    UVE_STACK_VM_HOST: '127.0.0.1',
    UVE_STACK_POOL_PLATFORMS: 'WASM',
    UVE_VM_IMAGE_WASM: AGENT_IMAGE,
  };
  makeSecrets({ dir: secretsDir, env });
}, 20 * 60_000);

afterAll(async () => {
  try {
    if (swarm && (await docker.listServices({ filters: { label: [NAMESPACE] } })).length) await removeStack();
    await until('the stack to be gone', 60_000, async () => ((await leftovers()).length ? null : true), 500).catch(() => undefined);
    await docker.getVolume(`${STACK}_pgdata`).remove().catch(() => undefined);
  } finally {
    await swarm?.leave();
    if (secretsDir) fs.rmSync(secretsDir, { recursive: true, force: true });
  }
}, 120_000);

it('deploys with docker stack deploy, serves a UA through its one address, and leaves nothing behind once removed', async () => {
  await dockerCli(['stack', 'deploy', '--compose-file', path.join(REPO_ROOT, 'docker/stack.yml'), STACK], { env });
  const services = (await docker.listServices({ filters: { label: [NAMESPACE] } })).map((s) => s.Spec?.Name).sort();
  expect(services).toEqual(['console', 'gateway', 'postgres', 'proxy', 'redis'].map((n) => `${STACK}_${n}`));
  // no secret in any service's environment: files only
  for (const s of await docker.listServices({ filters: { label: [NAMESPACE] } })) {
    const envs: string[] = (s.Spec?.TaskTemplate as { ContainerSpec?: { Env?: string[] } } | undefined)?.ContainerSpec?.Env ?? [];
    expect([s.Spec?.Name, envs.filter((e) => /^(DATABASE_URL|REDIS_URL|UVE_ADMIN_PASSWORD|POSTGRES_PASSWORD|REDIS_PASSWORD)=/.test(e))]).toEqual([s.Spec?.Name, []]);
  }

  // both replicas ready (PostgreSQL's first start initializes its volume; the gateways restart until it answers)
  proxy = gatewayAddress(`http://127.0.0.1:${ports.proxy}`);
  const ready = (port: number) => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => (r.ok ? true : null), () => null);
  await until('both gateway replicas to be ready', 150_000, async () => ((await ready(ports.gateway1)) && (await ready(ports.gateway2)) ? true : null), 500)
    .catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await stackDiagnostics()}`);
    });
  await until('the proxy to pass /readyz on', 30_000, () => ready(ports.proxy), 250);

  admin = (await login(proxy, 'admin', fs.readFileSync(path.join(secretsDir, 'admin-password'), 'utf8').trim())).token;
  user = await registerUser(proxy, 'stackuser');
  // the warm pool's VM is a SWARM service of the stack
  const [warm] = await until('the pool to warm a WASM VM', 90_000, async () => {
    const list = await docker.listServices({ filters: { label: [NAMESPACE, 'uve.managed=true'] } });
    return list.length ? list : null;
  }, 250);
  expect(warm!.Spec?.Labels).toMatchObject({ 'uve.gateway': STACK, 'uve.vm.platform': 'WASM' });
  await vms.idle(warm!.Spec!.Labels!['uve.vm.id']!);
  await vms.play(PLATFORM_CASES[0]);

  // the console answers on its port, pointed at the proxy
  const page = await fetch(`http://127.0.0.1:${ports.console}/login`);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('<html');

  await removeStack();
  await until('no service, container, secret or config of the stack', 90_000, async () => ((await leftovers()).length ? null : true), 500).catch(async (e: Error) => {
    throw new Error(`${e.message}: still there: ${(await leftovers()).join(', ')}`);
  });
}, 300_000);
