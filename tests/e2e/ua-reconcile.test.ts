// The VMM's side of the UA lifecycle, with VMs that speak UVE-2/UVE-5 over the real queue but host
// nothing (support/fake-vm): what a deploy command carries, how deployment reports move the
// procurement and the catalog (also when they arrive late or out of order, or from several VMs),
// and how a (re-)registering VM is reconciled with what it says it has installed.
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { startFakeVm, type FakeVm } from '../support/fake-vm';
import type { DeployUaCommand } from '@uve/protocol';

const PREFIX = 'reconcile';
let redis: TestRedis;
let gw: GatewayProcess;
let admin: string;
let user: string;
let key: string;
const vms: FakeVm[] = [];

const PROVIDE = `mutation($i: ProvideApplicationInput!) { provideApplication(input: $i) { id status ua { id } } }`;
const app = (id: string, version = '1.0.0') => ({
  storefrontAppId: id, name: id, version, platform: 'WASM', packageUrl: `packages/${id}-${version}.tar.gz`, sha256: 'a'.repeat(64), sizeBytes: 4321,
});

async function procurement(id: string): Promise<{ status: string; error: string | null }> {
  const d = await ok(gw, `{ procurements(limit: 200) { id status error } }`, {}, admin);
  return d.procurements.find((p: { id: string }) => p.id === id);
}
async function deployments(uaId: string): Promise<{ status: string; version: string; error: string | null; vm: { id: string } }[]> {
  return (await ok(gw, `{ ua(id: "${uaId}") { deployments { status version error vm { id } } } }`, {}, admin)).ua.deployments;
}
const catalog = async (): Promise<string[]> => (await ok(gw, `{ uas { name } }`, {}, user)).uas.map((u: { name: string }) => u.name);

async function newVm(): Promise<FakeVm> {
  const vm = await startFakeVm({ redisUrl: redis.url, prefix: PREFIX, gateway: gw, admin });
  vms.push(vm);
  await until('the fake VM to register', 10_000, async () => (await ok(gw, `{ vms(status: IDLE) { id } }`, {}, admin)).vms.some((v: { id: string }) => v.id === vm.id));
  return vm;
}

const installed = (vm: FakeVm, c: DeployUaCommand, status: 'DOWNLOADING' | 'INSTALLED' | 'FAILED', error: string | null = null) =>
  vm.report({ type: 'deployment.changed', uaId: c.uaId, version: c.version, status, error });

beforeAll(async () => {
  redis = await startRedis();
  gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: PREFIX, UVE_VM_HEARTBEAT_TIMEOUT_MS: '20000' });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  user = (await registerUser(gw, 'catalog-reader')).token;
  const reg = await ok(gw, `mutation { registerStorefront(name: "S", baseUrl: "https://store.example/apps/") { apiKey } }`, {}, admin);
  key = `ApiKey ${reg.registerStorefront.apiKey}`;
}, 60_000);

afterAll(async () => {
  for (const vm of vms) await vm.close();
  await gw?.stop();
  await redis?.stop();
});

it('directs every ready VM to download with the limits, and fails the procurement only once no VM is still at it', async () => {
  const [a, b] = [await newVm(), await newVm()];
  const p = (await ok(gw, PROVIDE, { i: app('two-vms') }, key)).provideApplication;
  expect(p.status).toBe('VM_SELECTED');
  const ca = (await a.nextCommand('ua.deploy', (c) => (c as DeployUaCommand).uaId === p.ua.id)) as DeployUaCommand;
  const cb = (await b.nextCommand('ua.deploy', (c) => (c as DeployUaCommand).uaId === p.ua.id)) as DeployUaCommand;
  expect(ca).toMatchObject({
    version: '1.0.0', packageUrl: 'https://store.example/apps/packages/two-vms-1.0.0.tar.gz', sha256: 'a'.repeat(64),
    sizeBytes: 4321, allowedOrigin: 'https://store.example', downloadTimeoutMs: 120_000,
  });

  await installed(a, ca, 'INSTALLED');
  await installed(a, ca, 'DOWNLOADING'); // a late report changes nothing
  await until('DEPLOYED', 10_000, async () => (await procurement(p.id)).status === 'DEPLOYED');
  await installed(b, cb, 'FAILED', 'disk full');
  await until('the second VM failed', 10_000, async () => (await deployments(p.ua.id)).some((d) => d.status === 'FAILED'));
  // one VM has it: still DEPLOYED and offered
  expect(await procurement(p.id)).toEqual(expect.objectContaining({ status: 'DEPLOYED', error: null }));
  expect(await catalog()).toContain('two-vms');
  expect((await deployments(p.ua.id)).map((d) => [d.vm.id, d.status]).sort()).toEqual([[a.id, 'INSTALLED'], [b.id, 'FAILED']].sort());

  const q = (await ok(gw, PROVIDE, { i: app('fails-everywhere') }, key)).provideApplication;
  const qa = (await a.nextCommand('ua.deploy', (c) => (c as DeployUaCommand).uaId === q.ua.id)) as DeployUaCommand;
  const qb = (await b.nextCommand('ua.deploy', (c) => (c as DeployUaCommand).uaId === q.ua.id)) as DeployUaCommand;
  await installed(a, qa, 'FAILED', 'sha256 mismatch: first VM');
  await until('the first failure recorded', 10_000, async () => (await deployments(q.ua.id)).some((d) => d.status === 'FAILED'));
  expect((await procurement(q.id)).status).not.toBe('FAILED'); // the other VM is still at it
  await installed(b, qb, 'FAILED', 'sha256 mismatch: second VM');
  const failed = await until('FAILED', 10_000, async () => {
    const r = await procurement(q.id);
    return r.status === 'FAILED' ? r : null;
  });
  expect(failed.error).toMatch(/sha256 mismatch/);
  expect(await catalog()).not.toContain('fails-everywhere');
});

it('reconciles a VM that registers again with what it says it has installed', async () => {
  const vm = await newVm();
  const p = (await ok(gw, PROVIDE, { i: app('reconciled') }, key)).provideApplication;
  const c = (await vm.nextCommand('ua.deploy', (x) => (x as DeployUaCommand).uaId === p.ua.id)) as DeployUaCommand;
  await installed(vm, c, 'INSTALLED');
  await until('INSTALLED', 10_000, async () => (await deployments(p.ua.id)).some((d) => d.vm.id === vm.id && d.status === 'INSTALLED'));

  // the VM comes back without it (a wiped disk): it is not INSTALLED there any more, and is sent again
  const mark = vm.commands.length;
  const register = (deployed: { uaId: string; version: string }[]) => vm.report({
    type: 'vm.register', name: 'fake', platform: 'WASM', provider: 'PROCESS', endpoint: `ws://127.0.0.1:9/${vm.id}`,
    codecs: ['MJPEG'], capacity: 2, agentVersion: 'test', deployed,
  });
  await register([]);
  await vm.nextCommand('ua.deploy', (x) => (x as DeployUaCommand).uaId === p.ua.id && vm.commands.indexOf(x) >= mark);
  expect((await deployments(p.ua.id)).find((d) => d.vm.id === vm.id)?.status).toBe('PENDING');

  // removed while the VM was away: the VM that registers still holding it is told to drop it
  await ok(gw, `mutation { removeUa(uaId: "${p.ua.id}") { status } }`, {}, admin);
  await vm.nextCommand('ua.remove', (x) => x.type === 'ua.remove' && x.uaId === p.ua.id);
  const again = vm.commands.length;
  await register([{ uaId: p.ua.id, version: '1.0.0' }]);
  await vm.nextCommand('ua.remove', (x) => x.type === 'ua.remove' && x.uaId === p.ua.id && vm.commands.indexOf(x) >= again);
  expect(vm.commands.slice(again).some((x) => x.type === 'ua.deploy' && x.uaId === p.ua.id)).toBe(false);
  await vm.report({ type: 'deployment.changed', uaId: p.ua.id, version: '1.0.0', status: 'REMOVED', error: null });
  await until('REMOVED', 10_000, async () => (await deployments(p.ua.id)).find((d) => d.vm.id === vm.id)?.status === 'REMOVED');
});

it("keeps REMOVED when the VM's REMOVING report is handled after it (reports are handled concurrently)", async () => {
  const vm = await newVm();
  const p = (await ok(gw, PROVIDE, { i: app('removed-late') }, key)).provideApplication;
  const c = (await vm.nextCommand('ua.deploy', (x) => (x as DeployUaCommand).uaId === p.ua.id)) as DeployUaCommand;
  await installed(vm, c, 'INSTALLED');
  await until('INSTALLED', 10_000, async () => (await deployments(p.ua.id)).some((d) => d.vm.id === vm.id && d.status === 'INSTALLED'));
  const removing = await ok(gw, `mutation { removeUa(uaId: "${p.ua.id}", vmId: "${vm.id}") { status } }`, {}, admin);
  expect(removing.removeUa).toEqual([{ status: 'REMOVING' }]);
  await vm.nextCommand('ua.remove', (x) => x.type === 'ua.remove' && x.uaId === p.ua.id);
  const report = (status: 'REMOVING' | 'REMOVED') => vm.report({ type: 'deployment.changed', uaId: p.ua.id, version: '1.0.0', status, error: null });
  await report('REMOVED');
  await until('REMOVED', 10_000, async () => (await deployments(p.ua.id)).find((d) => d.vm.id === vm.id)?.status === 'REMOVED');
  await report('REMOVING'); // sent first by the VM, handled last
  // a report sent after it, once applied, shows the late one was handled too (one queue, in order of arrival)
  const other = (await ok(gw, PROVIDE, { i: app('after-the-late-one') }, key)).provideApplication;
  const oc = (await vm.nextCommand('ua.deploy', (x) => (x as DeployUaCommand).uaId === other.ua.id)) as DeployUaCommand;
  await installed(vm, oc, 'INSTALLED');
  await until('the later report applied', 10_000, async () => (await deployments(other.ua.id)).some((d) => d.status === 'INSTALLED'));
  expect((await deployments(p.ua.id)).find((d) => d.vm.id === vm.id)?.status).toBe('REMOVED');
});

it('shows a new version (and what it needs) only once a VM installed it', async () => {
  const vm = await newVm();
  const p1 = (await ok(gw, PROVIDE, { i: app('evolving') }, key)).provideApplication;
  const c1 = (await vm.nextCommand('ua.deploy', (x) => (x as DeployUaCommand).uaId === p1.ua.id)) as DeployUaCommand;
  await installed(vm, c1, 'INSTALLED');
  await until('1.0.0 DEPLOYED', 10_000, async () => (await procurement(p1.id)).status === 'DEPLOYED');

  const p2 = (await ok(gw, PROVIDE, { i: { ...app('evolving', '2.0.0'), name: 'evolving 2', requiredResources: ['GEOLOCATION'] } }, key)).provideApplication;
  const c2 = (await vm.nextCommand('ua.deploy', (x) => (x as DeployUaCommand).uaId === p1.ua.id && (x as DeployUaCommand).version === '2.0.0')) as DeployUaCommand;
  const ua = async () => (await ok(gw, `{ ua(id: "${p1.ua.id}") { name currentVersion requiredResources } }`, {}, user)).ua;
  expect(await ua()).toEqual({ name: 'evolving', currentVersion: '1.0.0', requiredResources: [] });
  await installed(vm, c2, 'INSTALLED');
  await until('2.0.0 DEPLOYED', 10_000, async () => (await procurement(p2.id)).status === 'DEPLOYED');
  expect(await ua()).toEqual({ name: 'evolving 2', currentVersion: '2.0.0', requiredResources: ['GEOLOCATION'] });
});
