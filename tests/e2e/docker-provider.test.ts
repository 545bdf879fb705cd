// The DOCKER VM provider against the real Docker engine: the images built FROM scratch by
// docker/build-images.js, the agent started in a container on the host network, its UVE-5
// registration on a private Redis, labels, limits, health, reconciliation (`running()`), destroy,
// a container killed from outside, a stream from a WASM UA in a container, and the LINUX_X11
// image (X server, xterm, ffmpeg x11grab; registration of an x11 VM).
// No engine = failure, not a skip (CI's .ci/run starts dockerd). Build first:
//   npm run build  (or: npm run build -w @uve/protocol -w @uve/queue -w @uve/gateway
//                   && npx tsc -p apps/vm-agent/tsconfig.json && node apps/vm-agent/scripts/build-uas.js)
import { randomUUID } from 'node:crypto';
import { get } from 'node:http';
import Docker from 'dockerode';
import type { DeploymentChanged, Platform, VmEventMessage, VmRegistered, VmStopping } from '@uve/protocol';
import { StreamClient, createNodeDecoder } from '../../packages/client/src';
import {
  DockerProvider,
  LABELS,
  MissingImageError,
  containerName,
  dockerAvailable,
  type DockerProviderOptions,
} from '../../apps/gateway/src/modules/vms/providers/docker.provider';
import type { VmLaunchSpec } from '../../apps/gateway/src/modules/vms/providers/vm-provider';
import { fakeVmm, pixel, prepareCommand, startJwks, startRedis, type FakeVmm, type JwksHandle, type RedisHandle } from '../support/agent-harness';
import { buildAgentImages, containerEvents, containerLogs, dockerCli, removeContainersLabelled, requireDocker, type ContainerEvents, type DockerEvent } from '../support/docker';
import { Collector } from '../support/agent-harness';

jest.setTimeout(120_000);

const docker = new Docker();
const SCOPE = `test-${randomUUID().slice(0, 8)}`;
const PREFIX = `td${randomUUID().slice(0, 6)}`;
const LIMITS = { cpus: 0.5, memoryBytes: 512 * 1024 * 1024, pidsLimit: 256, shmBytes: 128 * 1024 * 1024 };

let redis: RedisHandle;
let jwks: JwksHandle;
let vmm: FakeVmm;
let provider: DockerProvider;
let docker$: ContainerEvents;
let dockerEvents: Collector<DockerEvent>;
const clients: StreamClient[] = [];

const isEvent =
  <T extends VmEventMessage['type']>(type: T, vmId: string) =>
  (e: VmEventMessage): e is Extract<VmEventMessage, { type: T }> =>
    e.type === type && e.vmId === vmId;

function spec(platform: Platform, over: Partial<VmLaunchSpec> = {}): VmLaunchSpec {
  const vmId = randomUUID();
  return {
    vmId,
    name: `docker-${platform.toLowerCase()}-${vmId.slice(0, 6)}`,
    platform,
    capacity: 2,
    secret: `s-${randomUUID()}`,
    gatewayUrl: jwks.url,
    redisUrl: redis.url,
    queuePrefix: PREFIX,
    ...over,
  };
}

/** The VM's registration; fails early, with the container's output, when the container dies first. */
async function registration(vmId: string, containerId: string, ms = 60_000): Promise<VmRegistered> {
  let off: () => void = () => undefined;
  const died = new Promise<never>((_, reject) => {
    const fail = (e: DockerEvent): void =>
      void containerLogs(docker, containerId).then((logs) =>
        reject(new Error(`container ${containerName(vmId)} exited (code ${e.Actor.Attributes.exitCode}) before registering:\n${logs}`)),
      );
    const isDeath = (e: DockerEvent): boolean => e.id === containerId && e.Action === 'die';
    off = docker$.subscribe((e) => isDeath(e) && fail(e));
    const earlier = docker$.events.items.find(isDeath);
    if (earlier) fail(earlier);
  });
  try {
    return (await Promise.race([vmm.events.waitFor(isEvent('vm.register', vmId), `vm.register of ${vmId}`, ms), died])) as VmRegistered;
  } finally {
    off();
  }
}

function httpJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    get(url, { timeout: 5_000 }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    }).on('error', reject);
  });
}

async function gone(id: string): Promise<boolean> {
  try {
    await docker.getContainer(id).inspect();
    return false;
  } catch (e) {
    return (e as { statusCode?: number }).statusCode === 404;
  }
}

beforeAll(async () => {
  await requireDocker(docker);
  // builds what is missing or stale (a few seconds when only the agent changed; nothing when up to date)
  await buildAgentImages();
  redis = await startRedis();
  jwks = await startJwks();
  vmm = fakeVmm(redis.url, PREFIX);
  docker$ = await containerEvents(docker, { label: [`${LABELS.gateway}=${SCOPE}`] });
  dockerEvents = docker$.events;
  const options: DockerProviderOptions = {
    gatewayId: SCOPE,
    ...LIMITS,
    healthcheck: { intervalMs: 1_000, timeoutMs: 3_000, startPeriodMs: 30_000, retries: 3 },
    stopTimeoutSec: 5,
    env: { UVE_LOG_LEVEL: 'warn' },
  };
  provider = new DockerProvider(options);
}, 20 * 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  docker$?.close();
  await provider?.close();
  await removeContainersLabelled(docker, `${LABELS.gateway}=${SCOPE}`).catch(() => undefined);
  await vmm?.close();
  await jwks?.stop();
  await redis?.stop();
});

describe('DOCKER provider helpers', () => {
  it('dockerAvailable() is true for the engine, false for a socket where none listens', async () => {
    expect(await dockerAvailable()).toBe(true);
    expect(await dockerAvailable({ docker: { socketPath: '/nonexistent/docker.sock' }, timeoutMs: 500 })).toBe(false);
  });

  it('ensureImages() finds both images (labelled with their inputs hash) and names the build command for a missing one', async () => {
    const infos = await provider.ensureImages();
    expect(infos.map((i) => i.platform).sort()).toEqual(['LINUX_X11', 'WASM']);
    for (const i of infos) expect(i.inputsHash).toMatch(/^[0-9a-f]{64}$/);
    const missing = new DockerProvider({ images: { WASM: 'uve/does-not-exist:0', LINUX_X11: 'uve/does-not-exist:0' } });
    const err = await missing.ensureImages(['WASM']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingImageError);
    expect((err as Error).message).toMatch(/uve\/does-not-exist:0 \(WASM VMs\).*npm run docker:images/s);
    // launch checks the image before creating anything
    await expect(missing.launch(spec('WASM'))).rejects.toThrow(/npm run docker:images/);
  });
});

describe('a WASM VM in a container', () => {
  let s: VmLaunchSpec;
  let ref: string;
  let registered: VmRegistered;

  beforeAll(async () => {
    s = spec('WASM', { capacity: 3 });
    ({ providerRef: ref } = await provider.launch(s));
    registered = await registration(s.vmId, ref);
  });

  it('registers over UVE-5 as a DOCKER VM with H264 and MJPEG and an endpoint reachable from the host', async () => {
    expect(ref).toMatch(/^[0-9a-f]{64}$/);
    expect(registered).toMatchObject({ vmId: s.vmId, name: s.name, platform: 'WASM', provider: 'DOCKER', capacity: 3 });
    expect(registered.codecs).toEqual(expect.arrayContaining(['H264', 'MJPEG']));
    expect(registered.endpoint).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    const health = await httpJson(registered.endpoint.replace(/^ws:/, 'http:') + '/healthz');
    expect(health.status).toBe(200);
    expect(health.body.ok).toBe(true);
  });

  it('is the container uve-vm-<id> with the labels, limits, host network, no restart and a health check', async () => {
    const info = await docker.getContainer(ref).inspect();
    expect(info.Name).toBe(`/${containerName(s.vmId)}`);
    expect(info.Config.Image).toBe(provider.images.WASM);
    expect(info.Config.Labels).toMatchObject({
      [LABELS.managed]: 'true',
      [LABELS.vmId]: s.vmId,
      [LABELS.platform]: 'WASM',
      [LABELS.gateway]: SCOPE,
      [LABELS.vmName]: s.name,
    });
    expect(info.Config.User).toBe('10001:10001');
    expect(info.Config.Env).toEqual(expect.arrayContaining([`UVE_VM_ID=${s.vmId}`, 'UVE_VM_PROVIDER=DOCKER', 'UVE_VM_PLATFORM=WASM', `UVE_QUEUE_PREFIX=${PREFIX}`]));
    // the secret is a file the agent's user alone reads, not in what `docker inspect` shows
    expect(JSON.stringify(info)).not.toContain(s.secret);
    expect(info.Config.Env).toContain('UVE_VM_SECRET_FILE=/home/uve/.uve/vm-secret');
    // nor is the Redis URL (it may carry the Redis password): a file as well
    expect(info.Config.Env).toContain('REDIS_URL_FILE=/home/uve/.uve/redis-url');
    expect(info.Config.Env.filter((e: string) => e.startsWith('REDIS_URL='))).toEqual([]);
    expect(info.HostConfig).toMatchObject({
      NetworkMode: 'host',
      RestartPolicy: expect.objectContaining({ Name: 'no' }),
      AutoRemove: false,
      Init: true,
      NanoCpus: 500_000_000,
      Memory: LIMITS.memoryBytes,
      MemorySwap: LIMITS.memoryBytes,
      PidsLimit: LIMITS.pidsLimit,
      ShmSize: LIMITS.shmBytes,
    });
    expect(info.Config.Healthcheck?.Test).toEqual(['CMD', '/usr/bin/node', '/uve/healthcheck.js']);
  });

  it('becomes healthy (GET /healthz on the port the agent chose)', async () => {
    const healthy = await dockerEvents.waitFor((e) => e.id === ref && e.Action === 'health_status: healthy', 'health_status: healthy', 60_000);
    expect(healthy.Actor.Attributes[LABELS.vmId]).toBe(s.vmId);
    const info = await docker.getContainer(ref).inspect();
    expect(info.State.Health?.Status).toBe('healthy');
    expect(info.State.Health?.Log?.at(-1)?.Output).toMatch(/^healthy: 127\.0\.0\.1:\d+/);
  });

  it('streams a builtin UA from the container (sharp for MJPEG, ffmpeg for H264 inside the image)', async () => {
    const uaId = `ua-paint-${s.vmId.slice(0, 6)}`;
    await vmm.send(s.vmId, { type: 'ua.deploy', uaId, version: '1.0.0', platform: 'WASM', packageUrl: 'builtin:paint', sha256: '' });
    const deployed = (await vmm.events.waitFor(
      (e) => e.type === 'deployment.changed' && e.uaId === uaId && (e.status === 'INSTALLED' || e.status === 'FAILED'),
      'deployment of paint',
      30_000,
    )) as DeploymentChanged;
    expect(deployed).toMatchObject({ status: 'INSTALLED', error: null });
    for (const codec of ['MJPEG', 'H264'] as const) {
      const cmd = prepareCommand({ uaId, stream: { codec, width: 320, height: 240, maxFps: 30, bitrateKbps: 1000 } });
      await vmm.send(s.vmId, cmd);
      const token = await jwks.mint({ sub: cmd.userId, sid: cmd.sessionId, vm: s.vmId, ua: uaId, role: 'PLAYER' });
      const client = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
      clients.push(client);
      const first = client.next('frame');
      await client.connect({
        url: registered.endpoint,
        token,
        decoder: (cfg) => createNodeDecoder({ codec: cfg.codec as 'H264' | 'MJPEG', width: cfg.width, height: cfg.height, description: cfg.description }),
      });
      const frame = await Promise.race([first, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no ${codec} frame in 30 s`)), 30_000).unref())]);
      expect(frame.decoded).toMatchObject({ width: 320, height: 240 });
      const [r, g, b] = pixel(frame.decoded!, 160, 120);
      expect(r + g + b).toBeGreaterThan(600); // paint's white canvas
      client.close();
    }
  });

  it('is listed by running() (this gateway scope only)', async () => {
    expect(await provider.running()).toContain(s.vmId);
    const other = new DockerProvider({ gatewayId: `${SCOPE}-other` });
    expect(await other.running()).not.toContain(s.vmId);
  });

  it('destroy() stops the agent gracefully and removes the container; a second destroy() succeeds', async () => {
    const from = vmm.events.mark;
    await provider.destroy(s.vmId, ref);
    expect(await gone(ref)).toBe(true);
    const stopping = (await vmm.events.waitFor(isEvent('vm.stopping', s.vmId), 'vm.stopping', 10_000, from)) as VmStopping;
    expect(stopping.reason).toMatch(/SIGTERM/);
    const died = await dockerEvents.waitFor((e) => e.id === ref && e.Action === 'die', 'die');
    expect(died.Actor.Attributes.exitCode).toBe('0');
    await expect(provider.destroy(s.vmId, ref)).resolves.toBeUndefined();
    await expect(provider.destroy(s.vmId, null)).resolves.toBeUndefined();
    expect(await provider.running()).not.toContain(s.vmId);
  });
});

describe('a VM container killed from outside', () => {
  it('leaves running(); destroy() still removes what is left', async () => {
    const s = spec('WASM');
    const { providerRef } = await provider.launch(s);
    await registration(s.vmId, providerRef);
    expect(await provider.running()).toContain(s.vmId);
    await dockerCli(['kill', providerRef]);
    await dockerEvents.waitFor((e) => e.id === providerRef && e.Action === 'die', 'die after docker kill', 15_000);
    expect(await provider.running()).not.toContain(s.vmId);
    const info = await docker.getContainer(providerRef).inspect();
    expect(info.State.Status).toBe('exited'); // kept (AutoRemove false, restart no) for its logs
    await provider.destroy(s.vmId, providerRef);
    expect(await gone(providerRef)).toBe(true);
  });

  it('onVmExit() tells at once which VM died and why (the engine\'s die events of this scope)', async () => {
    const exits = new Collector<{ vmId: string; reason: string }>();
    provider.onVmExit((vmId, reason) => exits.push({ vmId, reason }));
    const s = spec('WASM');
    const { providerRef } = await provider.launch(s);
    try {
      await registration(s.vmId, providerRef);
      expect(exits.items.filter((x) => x.vmId === s.vmId)).toEqual([]);
      await dockerCli(['kill', providerRef]);
      const exit = await exits.waitFor((x) => x.vmId === s.vmId, `onVmExit for ${s.vmId}`, 15_000);
      expect(exit.reason).toMatch(/^container died \(exit code 137\)/);
    } finally {
      await provider.destroy(s.vmId, providerRef);
    }
  });

  it('pruneExited() removes the exited containers of this scope only', async () => {
    const s = spec('WASM');
    const { providerRef } = await provider.launch(s);
    await registration(s.vmId, providerRef);
    await dockerCli(['kill', providerRef]);
    await dockerEvents.waitFor((e) => e.id === providerRef && e.Action === 'die', 'die after docker kill', 15_000);
    expect(await new DockerProvider({ gatewayId: `${SCOPE}-other` }).pruneExited()).toEqual([]);
    expect(await gone(providerRef)).toBe(false);
    expect(await provider.pruneExited()).toEqual([s.vmId]);
    expect(await gone(providerRef)).toBe(true);
  });

  it('destroy() leaves alone a container that is not this VM', async () => {
    const s = spec('WASM');
    const { providerRef } = await provider.launch(s);
    await expect(provider.destroy(randomUUID(), providerRef)).rejects.toThrow(/is not the container of VM/);
    expect(await gone(providerRef)).toBe(false);
    await provider.destroy(s.vmId, providerRef);
    expect(await gone(providerRef)).toBe(true);
  });
});

describe('the LINUX_X11 image', () => {
  it('runs Xvfb, xterm and ffmpeg x11grab (H264) as the agent user', async () => {
    // a throw-away container of the image running a Node script (the image has no shell tools)
    const script = `
      const { spawn, spawnSync } = require('node:child_process');
      const env = (d) => ({ ...process.env, DISPLAY: d });
      const x = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '320x240x24', '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
      let xerr = ''; x.stderr.on('data', (d) => (xerr += d));
      x.stdio[3].once('data', async (d) => {
        const disp = ':' + String(d).trim();
        // as the xterm sample UA runs it: Xft with DejaVu Sans Mono through fontconfig, UTF-8
        const t = spawn('xterm', ['-fa', 'DejaVu Sans Mono', '-fs', '16', '-u8', '-geometry', '40x10+0+0', '-e', '/bin/sh'],
          { env: { ...env(disp), LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' }, stdio: ['ignore', 'ignore', 'pipe'] });
        let terr = ''; t.stderr.on('data', (d) => (terr += d));
        let texit = null; t.on('exit', (code, sig) => (texit = code ?? sig));
        // bounded poll: the window appearing is only observable by asking the X server
        let tree = '';
        const t0 = Date.now();
        while (!/"xterm"/i.test(tree) && texit === null && Date.now() - t0 < 20000) {
          tree = spawnSync('xwininfo', ['-root', '-tree'], { env: env(disp), encoding: 'utf8' }).stdout || '';
          if (!/"xterm"/i.test(tree)) await new Promise((r) => setTimeout(r, 100));
        }
        const xtermMs = Date.now() - t0;
        const f = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'x11grab', '-video_size', '320x240', '-i', disp,
          '-frames:v', '1', '-c:v', 'libx264', '-f', 'h264', '-'], { env: env(disp), maxBuffer: 1 << 24 });
        console.log(JSON.stringify({ uid: process.getuid(), display: disp, xterm: /"xterm"/i.test(tree), xtermMs, texit, terr: terr.slice(0, 500), tree: tree.slice(0, 500), ffmpeg: f.status, h264: f.stdout ? f.stdout.length : 0, ffmpegErr: String(f.stderr || '').slice(0, 500), xerr: xerr.slice(0, 500) }));
        t.kill(); x.kill(); process.exit(0);
      });
      setTimeout(() => { console.log(JSON.stringify({ timeout: true, xerr })); process.exit(1); }, 45000);
    `;
    const c = await docker.createContainer({
      Image: provider.images.LINUX_X11,
      Entrypoint: ['/usr/bin/node', '-e', script],
      Labels: { [LABELS.gateway]: SCOPE },
      HostConfig: { NetworkMode: 'host', Init: true },
    });
    await c.start();
    const { StatusCode } = (await c.wait()) as { StatusCode: number };
    const out = await containerLogs(docker, c.id);
    await c.remove({ force: true });
    expect(StatusCode).toBe(0);
    const result = JSON.parse(out.trim().split('\n').filter((l) => l.trim().startsWith('{')).pop() ?? '{}') as Record<string, unknown>;
    if (!result.xterm || result.ffmpeg !== 0) throw new Error(`X11 tools failed in the image: ${JSON.stringify(result, null, 2)}`);
    expect(result).toMatchObject({ uid: 10001, xterm: true, ffmpeg: 0 });
    expect(result.h264).toBeGreaterThan(100);
    expect(result.terr).not.toMatch(/warning|error|cannot/i); // fonts, locale and X resources found
  });

  it('registers a LINUX_X11 VM from its container', async () => {
    const s = spec('LINUX_X11');
    const { providerRef } = await provider.launch(s);
    const registered = await registration(s.vmId, providerRef);
    expect(registered).toMatchObject({ vmId: s.vmId, platform: 'LINUX_X11', provider: 'DOCKER' });
    expect(await provider.running()).toContain(s.vmId);
    const info = await docker.getContainer(providerRef).inspect();
    expect(info.Config.Image).toBe(provider.images.LINUX_X11);
    expect(info.Config.Labels?.[LABELS.platform]).toBe('LINUX_X11');
    await provider.destroy(s.vmId, providerRef);
    expect(await gone(providerRef)).toBe(true);
  });
});
