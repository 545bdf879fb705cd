// /metrics: Prometheus text with every series docs/operations.md lists, read from the database
// and Redis at scrape time.
import fs from 'node:fs';
import path from 'node:path';
import { ADMIN, login, metricSample as sample, ok, startGateway, type GatewayProcess } from '../support/gateway';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';

let gw: GatewayProcess;
let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
  gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_WARM_VMS: '1', UVE_VM_CAPACITY: '3', UVE_DOCKER: 'off', UVE_SAMPLE_UAS: 'true' });
});
afterAll(async () => {
  await gw?.stop();
  await redis?.stop();
});

const scrape = async () => {
  const res = await fetch(`${gw.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
};

it('serves every series documented in docs/operations.md', async () => {
  const doc = fs.readFileSync(path.resolve(__dirname, '../../docs/operations.md'), 'utf8');
  const table = doc.slice(doc.indexOf('| Series |'), doc.indexOf('\n\n', doc.indexOf('| Series |')));
  const documented = [...table.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!).filter((n) => /^(uve|process|nodejs)_/.test(n));
  expect(documented).toEqual(expect.arrayContaining(['uve_sessions', 'uve_vms', 'uve_vm_slots', 'uve_queue_messages', 'uve_dependency_up', 'process_cpu_seconds_total']));
  const text = await scrape();
  for (const name of documented) expect(text).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
  expect(sample(text, 'uve_dependency_up{dependency="database"}')).toBe(1);
  expect(sample(text, 'uve_dependency_up{dependency="redis"}')).toBe(1);
  expect(sample(text, 'uve_queue_messages{queue="uve-vmm",state="failed"}')).toBe(0);
});

it('counts VMs, free slots and sessions from the database at each scrape', async () => {
  const { token } = await login(gw, ADMIN.username, ADMIN.password);
  const text = await until('the warm VM to be counted', 60_000, async () => {
    const t = await scrape();
    return sample(t, 'uve_vms{status="IDLE",platform="WASM",provider="PROCESS"}') === 1 ? t : null;
  }, 250);
  expect(sample(text, 'uve_vm_slots{platform="WASM",kind="capacity"}')).toBe(3);
  expect(sample(text, 'uve_vm_slots{platform="WASM",kind="free"}')).toBe(3);
  expect(sample(text, 'uve_sessions{state="ASSIGNED"}')).toBe(0);

  // a session of a sample WASM UA takes a slot on that VM
  const uas = await ok<{ uas: { id: string; name: string }[] }>(gw, `{ uas { id name } }`, {}, token);
  const paint = uas.uas.find((u) => u.name === 'paint');
  expect(paint).toBeDefined();
  const s = await ok(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id state } }`, {
    i: { uaId: paint!.id, terminal: { screenWidth: 320, screenHeight: 240, codecs: ['MJPEG'], localResources: [] } },
  }, token);
  expect(s.requestApplication.state).toBe('ASSIGNED');
  const after = await scrape();
  expect(sample(after, 'uve_sessions{state="ASSIGNED"}')).toBe(1);
  expect(sample(after, 'uve_vm_slots{platform="WASM",kind="used"}')).toBe(1);
  expect(sample(after, 'uve_vm_slots{platform="WASM",kind="free"}')).toBe(2);
  expect(sample(after, 'uve_vms{status="BUSY",platform="WASM",provider="PROCESS"}')).toBe(1);
}, 90_000);
