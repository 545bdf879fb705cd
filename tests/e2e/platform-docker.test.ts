// DOCKER VMs through the gateway with the real engine: provision one per platform, use a UA in
// each, remove them, and see a container killed from outside go OFFLINE and be replaced by the pool.
import Docker from 'dockerode';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, ok, registerUser, startGateway, subscribeLive, wsClient, type GatewayProcess } from '../support/gateway';
import { buildAgentImages, removeContainersLabelled, requireDocker } from '../support/docker';
import { near, openStream, pixel, requestUa, uaId } from '../support/stream';
import type { Client } from 'graphql-ws';

const docker = new Docker();
const PREFIX = 'dockere2e';
let redis: TestRedis;
let gw: GatewayProcess;
let admin: string;
let user: { token: string; id: string };
let env: Record<string, string>;
const clients: Client[] = [];

const vm = (id: string) => gql(gw, `{ vm(id: "${id}") { status provider platform endpoint } }`, {}, admin);
const idle = (id: string) => until(`VM ${id} to register`, 60_000, async () => ((await vm(id)).data?.vm?.status === 'IDLE' ? (await vm(id)).data!.vm : null), 100);
const container = (vmId: string) => docker.getContainer(`uve-vm-${vmId}`);

beforeAll(async () => {
  await requireDocker(docker);
  await buildAgentImages();
  await removeContainersLabelled(docker, `uve.gateway=${PREFIX}`);
  redis = await startRedis();
  env = {
    DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: PREFIX, UVE_SAMPLE_UAS: 'true',
    UVE_DOCKER: 'on', UVE_VM_PROVIDER: 'DOCKER', UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM',
    // so long that a VM seen OFFLINE in a test was seen through the engine's die event, not the sweep
    UVE_VM_HEARTBEAT_TIMEOUT_MS: '120000',
  };
  gw = await startGateway(env);
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  user = await registerUser(gw, 'dockeruser');
}, 20 * 60_000);

afterAll(async () => {
  for (const c of clients) await c.dispose();
  await gw?.stop();
  await redis?.stop();
  await removeContainersLabelled(docker, `uve.gateway=${PREFIX}`).catch(() => undefined);
});

const cases = [
  { platform: 'WASM', ua: 'paint', press: { x: 100, y: 100 }, expect: { r: 255, g: 0, b: 0 } },
  { platform: 'LINUX_X11', ua: 'probe', press: { x: 100, y: 100 }, expect: { r: 0, g: 0, b: 255 } },
] as const;

describe.each(cases)('a DOCKER VM for $platform', ({ platform, ua, press, expect: colour }) => {
  it('is provisioned as a labelled container, serves a UA whose picture follows input, and is removed with its container', async () => {
    const d = await ok(gw, `mutation($p: Platform!) { provisionVm(input: { platform: $p, provider: DOCKER, capacity: 2 }) { id provider status } }`, { p: platform }, admin);
    expect(d.provisionVm).toMatchObject({ provider: 'DOCKER', status: 'PROVISIONING' });
    const id = d.provisionVm.id as string;
    await idle(id);
    const info = await container(id).inspect();
    expect(info.Config.Labels).toMatchObject({ 'uve.vm.id': id, 'uve.managed': 'true', 'uve.gateway': PREFIX });
    expect(info.HostConfig.NetworkMode).toBe('host');
    expect(info.HostConfig.NanoCpus).toBe(1e9);

    const s = await requestUa(gw, user.token, await uaId(gw, user.token, ua), { codec: 'H264', width: 640, height: 480 });
    // the pool's warm VM may be picked as well: either way a container serves it
    expect((await vm(s.vm.id)).data!.vm).toMatchObject({ provider: 'DOCKER', platform });
    const stream = await openStream(s.connection);
    try {
      await stream.frame(() => true, 'at all', 30_000);
      const after = await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: press.x, y: press.y, button: 0 }, 'after the press');
      expect(near(pixel(after, press.x, press.y), colour)).toBe(true);
    } finally {
      await stream.close();
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
    }

    const removed = await ok(gw, `mutation { removeVm(id: "${id}") { status } }`, {}, admin);
    expect(removed.removeVm.status).toBe('OFFLINE');
    await expect(container(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});

it('sees a container killed from outside as OFFLINE, and the pool replaces it', async () => {
  const warm = async () => ((await gql(gw, `{ vms(status: IDLE, platform: WASM) { id provider } }`, {}, admin)).data?.vms ?? []) as { id: string; provider: string }[];
  const [victim] = await until('the pool to warm a WASM VM', 60_000, async () => ((await warm()).length ? warm() : null), 100);
  expect(victim!.provider).toBe('DOCKER');
  const a = wsClient(gw, admin);
  clients.push(a);
  // vmEvents has no replay: live once the victim's report of a (repeated) deployment comes through it
  const paint = await uaId(gw, admin, 'paint');
  const events = await subscribeLive(a, `subscription { vmEvents { type vm { id status } data } }`, {}, {
    poke: () => ok(gw, `mutation($u: ID!, $v: ID!) { deployUa(uaId: $u, vmId: $v) { status } }`, { u: paint, v: victim!.id }, admin),
    ack: (e) => e.data?.vmEvents?.type === 'DEPLOYMENT_CHANGED' && e.data.vmEvents.vm.id === victim!.id,
    everyMs: 5_000,
    ms: 30_000,
  });
  await container(victim!.id).kill();
  // seen at once through the engine's die event (the heartbeat timeout is 2 minutes here)
  const lost = await events.next((e) => e.data?.vmEvents?.vm?.id === victim!.id && e.data.vmEvents.vm.status === 'OFFLINE', 20_000);
  expect(lost.data!.vmEvents).toMatchObject({ type: 'STATUS_CHANGED', data: { status: 'OFFLINE', reason: expect.stringMatching(/^container died \(exit code \d+\)/) } });
  const replacement = await until('a replacement VM', 60_000, async () => (await warm()).find((v) => v.id !== victim!.id) ?? null, 100);
  expect(replacement.provider).toBe('DOCKER');
  expect((await container(replacement.id).inspect()).State.Running).toBe(true);
});

it('reconciles at start: a VM whose container went away while the gateway was down is OFFLINE at once, and its container pruned', async () => {
  const d = await ok(gw, `mutation { provisionVm(input: { platform: WASM, provider: DOCKER, name: "reconciled" }) { id } }`, {}, admin);
  const id = d.provisionVm.id as string;
  await idle(id);
  await gw.stop(); // containers outlive the gateway
  expect((await container(id).inspect()).State.Running).toBe(true);
  await container(id).kill();
  gw = await startGateway(env);
  // no heartbeat timeout has passed yet: this is the reconciliation's doing
  expect((await vm(id)).data!.vm.status).toBe('OFFLINE');
  await expect(container(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
});
