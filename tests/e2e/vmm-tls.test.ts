// VMs reaching their VMM over TLS: a real HAProxy terminating TLS with a certificate of a private
// CA made here (openssl), in front of a gateway whose UVE_PUBLIC_URL is that https address and whose
// NODE_EXTRA_CA_CERTS names the CA: the gateway passes it on to its PROCESS agents. Everything a VM
// asks of the VMM over HTTP then goes through TLS: the session-token keys (a UC's token is checked
// with them), the VMM's health, and VM Data: the save at a drop streamed up, and the restore
// downloaded through node:https (a plain-HTTP VMM URL takes another path, vmm/http-into.ts). A
// DOCKER VM cannot see the gateway's file: it gets the certificates in its container.
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { freePort, freshDatabase, recordForLeakCheck, startRedis, stopChild, until, type TestRedis } from '../support/services';
import { ADMIN, idleVms, login, ok, startGateway, type GatewayProcess } from '../support/gateway';
import { agentPid, openStream, playGameAndDrop, requestUa, shipX } from '../support/stream';
import { HAPROXY_DEFAULTS, startHaproxy } from '../support/haproxy';
import { dockerCli } from '../support/docker';
import { containerName } from '../../apps/gateway/src/modules/vms/providers/docker.provider';

let dir: string;
let redis: TestRedis;
let proxy: ChildProcess | undefined;
let gw: GatewayProcess;
let admin: string;
let vmmUrl: string;

/** completes a TLS handshake with a certificate of the CA */
const servesTls = (port: number, ca: Buffer) => new Promise<boolean>((resolve) => {
  const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
    resolve(socket.authorized);
    socket.destroy(); // nothing left open behind the probe
  });
  socket.on('error', () => {
    resolve(false);
    socket.destroy();
  });
});

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-vmm-tls-'));
  const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=uve-test-ca', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  fs.writeFileSync(path.join(dir, 'proxy.pem'), Buffer.concat([fs.readFileSync(cert), fs.readFileSync(key)]));
  const [proxyPort, gwPort] = [await freePort(), await freePort()];
  vmmUrl = `https://127.0.0.1:${proxyPort}`;
  recordForLeakCheck('UVE_GATEWAY_URL', vmmUrl); // what its VMs are told
  // the proxy first: the VMs the gateway warms reach the VMM through it from their start
  proxy = await startHaproxy(dir, [
    ...HAPROXY_DEFAULTS,
    'frontend vmm', `  bind 127.0.0.1:${proxyPort} ssl crt ${path.join(dir, 'proxy.pem')}`, '  default_backend gateway',
    'backend gateway', `  server gw 127.0.0.1:${gwPort}`,
  ], () => servesTls(proxyPort, fs.readFileSync(cert)));
  redis = await startRedis();
  gw = await startGateway({
    DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'vmm-tls', UVE_PORT: String(gwPort), UVE_PUBLIC_URL: vmmUrl,
    NODE_EXTRA_CA_CERTS: cert, UVE_SAMPLE_UAS: 'true', UVE_WARM_VMS: '2', UVE_VM_CAPACITY: '4', UVE_DOCKER: 'on',
    // the restore on the reconnection's path: the session's own download (restore ahead takes the same one)
    UVE_RESTORE_AHEAD: '0',
  });
  admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  await idleVms(gw, admin, 2);
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  if (proxy) await stopChild(proxy, 10_000);
  await redis?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it('a NO_LOSS game saved and restored through a TLS VMM URL signed by a private CA continues on another VM', async () => {
  // the VMs know the VMM only by its https address, and trust the CA the gateway trusts
  for (const id of await idleVms(gw, admin, 2)) {
    const env = fs.readFileSync(`/proc/${agentPid(id)}/environ`, 'utf8').split('\0');
    expect(env).toContain(`UVE_GATEWAY_URL=${vmmUrl}`);
    expect(env).toContain(`NODE_EXTRA_CA_CERTS=${path.join(dir, 'cert.pem')}`);
  }
  // the VM admits the UC with keys it fetched from the VMM over TLS, and saves at the drop over TLS
  const { user, game, s, moved } = await playGameAndDrop(gw, 'tls-player');
  const events = async () => (await ok(gw, `{ session(id: "${s.id}") { state events(last: 30) { type data } } }`, {}, admin)).session as { state: string; events: { type: string; data: Record<string, unknown> }[] };
  const saved = await until('the VM Data saved at the drop', 20_000, async () => (await events()).events.find((e) => e.type === 'SNAPSHOT_SAVED')?.data);
  expect(saved).toMatchObject({ kind: 'FULL' });
  const again = await requestUa(gw, user.token, game, { codec: 'MJPEG', method: 'NO_LOSS', fresh: false });
  expect(again).toMatchObject({ id: s.id, reconnections: 1, restoredFrom: { id: saved.snapshotId, kind: 'FULL' } });
  expect(again.vm.id).not.toBe(s.vm.id);
  const next = await openStream(again.connection);
  try {
    expect(next.welcome.vmData).toEqual({ snapshotId: saved.snapshotId, restored: true, kind: 'FULL' });
    expect(shipX(await next.frame(() => true, 'after the restore'))).toBe(moved);
  } finally {
    await next.close();
  }
  await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
}, 90_000);

it("a DOCKER VM trusts the same CA: its container holds the gateway's certificates, which its Node needs to reach the VMM over TLS", async () => {
  const { id } = (await ok(gw, `mutation { provisionVm(input: { platform: WASM, provider: DOCKER, capacity: 1 }) { id } }`, {}, admin)).provisionVm as { id: string };
  try {
    await until('the DOCKER VM registered', 90_000, async () => (await ok(gw, `{ vm(id: "${id}") { status } }`, {}, admin)).vm?.status === 'IDLE');
    const name = containerName(id);
    const env = (await dockerCli(['exec', name, '/usr/bin/node', '-e', 'console.log(process.env.NODE_EXTRA_CA_CERTS, process.env.UVE_GATEWAY_URL)'])).trim();
    expect(env).toBe(`/home/uve/.uve/extra-ca.pem ${vmmUrl}`);
    const health = `fetch(process.env.UVE_GATEWAY_URL + '/healthz').then((r) => console.log(r.status), (e) => { console.error(String(e.cause?.code ?? e.message)); process.exitCode = 3; })`;
    // as the agent's Node does: with the file, the VMM answers over TLS
    expect((await dockerCli(['exec', name, '/usr/bin/node', '-e', health])).trim()).toBe('200');
    // and without it the certificate is refused: the file is what makes the difference
    const refused = await dockerCli(['exec', '-e', 'NODE_EXTRA_CA_CERTS=', name, '/usr/bin/node', '-e', health]).then(() => 'answered', (e: Error) => e.message);
    expect(refused).toMatch(/SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  } finally {
    await ok(gw, `mutation { removeVm(id: "${id}") { status } }`, {}, admin);
  }
}, 120_000);
