// What the DOCKER and SWARM end-to-end suites check the same way: a VM of each platform provisioned
// through the gateway plays a UA whose picture follows input; a VM lost from outside goes OFFLINE
// (through the provider's own signal, not the heartbeat sweep) and the pool replaces it.
import { ADMIN, gql, login, ok, registerUser, startGateway, subscribeLive, wsClient, type GatewayAddress } from './gateway';
import { freshDatabase, startRedis, until } from './services';
import { near, openStream, pixel, requestUa, uaId } from './stream';
import type { Client } from 'graphql-ws';

/** a UA of each platform, where to press in it, and the colour the press paints there */
export const PLATFORM_CASES = [
  { platform: 'WASM', ua: 'paint', press: { x: 100, y: 100 }, expect: { r: 255, g: 0, b: 0 } },
  { platform: 'LINUX_X11', ua: 'probe', press: { x: 100, y: 100 }, expect: { r: 0, g: 0, b: 255 } },
] as const;
export type PlatformCase = (typeof PLATFORM_CASES)[number];

/**
 * A suite's gateway on its own database and Redis with the provider as default, the pool keeping
 * one WASM VM warm, and a heartbeat timeout so long (2 minutes) that a VM seen OFFLINE was seen
 * through the provider's own signal; signed in as the admin and as a new user.
 */
export async function startEngineSuite(prefix: string, env: Record<string, string>, username: string) {
  const redis = await startRedis();
  const fullEnv = {
    DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: prefix, UVE_SAMPLE_UAS: 'true',
    UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM', UVE_VM_HEARTBEAT_TIMEOUT_MS: '120000',
    ...env,
  };
  const gw = await startGateway(fullEnv);
  const admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  const user = await registerUser(gw, username);
  return { redis, env: fullEnv, gw, admin, user };
}

export type EngineSuite = Awaited<ReturnType<typeof startEngineSuite>>;

/** stops what startEngineSuite started and the suite's subscription clients */
export async function stopEngineSuite(s: EngineSuite | undefined, clients: Client[]): Promise<void> {
  for (const c of clients) await c.dispose();
  await s?.gw.stop();
  await s?.redis.stop();
}

export interface EngineVmsContext {
  /** a gateway this suite started, or the one address of several (a proxy) */
  gw: () => GatewayAddress;
  admin: () => string;
  user: () => { token: string };
  provider: 'DOCKER' | 'SWARM';
  /** the gateway's output so far (its lines about a VM go into a failure's message) */
  output?: () => string;
}

export function engineVms(ctx: EngineVmsContext) {
  const vm = (id: string) => gql(ctx.gw(), `{ vm(id: "${id}") { status provider platform endpoint } }`, {}, ctx.admin());
  const idle = (id: string) => until(`VM ${id} to register`, 90_000, async () => ((await vm(id)).data?.vm?.status === 'IDLE' ? (await vm(id)).data!.vm : null), 100);
  /** removeVm through the gateway: the record is OFFLINE */
  const remove = async (id: string): Promise<void> => {
    const removed = await ok(ctx.gw(), `mutation { removeVm(id: "${id}") { status } }`, {}, ctx.admin());
    expect(removed.removeVm.status).toBe('OFFLINE');
  };
  const warm = async () => ((await gql(ctx.gw(), `{ vms(status: IDLE, platform: WASM) { id provider } }`, {}, ctx.admin())).data?.vms ?? []) as { id: string; provider: string }[];

  return {
    vm,
    idle,

    /** provisions a VM of the case's platform through the gateway and waits for it to register; its id */
    async provision(platform: string, name?: string): Promise<string> {
      const d = await ok(ctx.gw(), `mutation($p: Platform!, $v: VmProvider!, $n: String) { provisionVm(input: { platform: $p, provider: $v, capacity: 2, name: $n }) { id provider status } }`, { p: platform, v: ctx.provider, n: name ?? null }, ctx.admin());
      expect(d.provisionVm).toMatchObject({ provider: ctx.provider, status: 'PROVISIONING' });
      await idle(d.provisionVm.id);
      return d.provisionVm.id as string;
    },

    /** a session of the case's UA on a VM of this provider (the pool's warm one may be picked), input changing its picture */
    async play({ platform, ua, press, expect: colour }: PlatformCase): Promise<void> {
      const user = ctx.user();
      const s = await requestUa(ctx.gw(), user.token, await uaId(ctx.gw(), user.token, ua), { codec: 'H264', width: 640, height: 480 });
      expect((await vm(s.vm.id)).data!.vm).toMatchObject({ provider: ctx.provider, platform });
      const stream = await openStream(s.connection);
      try {
        await stream.frame(() => true, 'at all', 30_000);
        const after = await stream.inputAndFrame({ kind: 'pointer', type: 'down', x: press.x, y: press.y, button: 0 }, 'after the press');
        expect(near(pixel(after, press.x, press.y), colour)).toBe(true);
      } finally {
        await stream.close();
        await ok(ctx.gw(), `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token);
      }
    },

    remove,

    /**
     * Takes the pool's warm WASM VM away with `kill` (from outside the gateway); expects it OFFLINE
     * with a reason matching `reason` at once, and a replacement from the pool; returns the replacement's id.
     */
    /** `engineState`: what the engine says of the VM (for a failure's message) */
    async lostAndReplaced(clients: Client[], kill: (vmId: string) => Promise<unknown>, reason: RegExp, engineState?: (vmId: string) => Promise<unknown>): Promise<string> {
      // the pool settled: none starting, at least one idle; idle ones beyond the one kept warm are
      // removed here, else the pool's own retirement of the surplus could take the victim
      // mid-test, and a surplus VM left over would pass for the replacement
      const idleNow = await until('the pool to settle on a warm WASM VM', 90_000, async () => {
        const starting = (await gql(ctx.gw(), `{ vms(status: PROVISIONING, platform: WASM) { id } }`, {}, ctx.admin())).data?.vms ?? [];
        const idle = await warm();
        return starting.length === 0 && idle.length ? idle : null;
      }, 100);
      const [victim, ...surplus] = idleNow;
      for (const v of surplus) await remove(v.id);
      expect(victim!.provider).toBe(ctx.provider);
      const a = wsClient(ctx.gw(), ctx.admin());
      clients.push(a);
      // vmEvents has no replay: live once the victim's report of a (repeated) deployment comes through it
      const paint = await uaId(ctx.gw(), ctx.admin(), 'paint');
      const events = await subscribeLive(a, `subscription { vmEvents { type vm { id status } data } }`, {}, {
        poke: () => ok(ctx.gw(), `mutation($u: ID!, $v: ID!) { deployUa(uaId: $u, vmId: $v) { status } }`, { u: paint, v: victim!.id }, ctx.admin()),
        ack: (e) => e.data?.vmEvents?.type === 'DEPLOYMENT_CHANGED' && e.data.vmEvents.vm.id === victim!.id,
        everyMs: 5_000,
        ms: 30_000,
      });
      await kill(victim!.id);
      // seen through the provider within seconds on a quiet machine (the suites set a heartbeat timeout of 2 minutes); the bound allows for a loaded one.
      // The change of status itself: a poke's deployment report may still be on its way, and its
      // event's `vm` (read at delivery) is already OFFLINE (once, CI took that for the loss)
      const lost = await events.next((e) => e.data?.vmEvents?.vm?.id === victim!.id && e.data.vmEvents.type === 'STATUS_CHANGED' && e.data.vmEvents.data?.status === 'OFFLINE', 45_000).catch(async (e: Error) => {
        // what the gateway and the engine say of the VM by then: which signal was missed
        const record = (await gql(ctx.gw(), `{ vm(id: "${victim!.id}") { status statusReason lastHeartbeatAt } }`, {}, ctx.admin())).data?.vm;
        const engine = await engineState?.(victim!.id).catch((x: Error) => `unknown: ${x.message}`);
        const said = (ctx.output?.() ?? '').split('\n').filter((l) => l.includes(victim!.id)).slice(-20).join('\n');
        throw new Error(`VM ${victim!.id} was not seen OFFLINE: ${e.message}; its record: ${JSON.stringify(record)}; the engine: ${JSON.stringify(engine ?? null)}; the gateway said of it:\n${said || '(nothing)'}`);
      });
      expect(lost.data!.vmEvents).toMatchObject({ type: 'STATUS_CHANGED', data: { status: 'OFFLINE', reason: expect.stringMatching(reason) } });
      const replacement = await until('a replacement VM', 90_000, async () => (await warm()).find((v) => !idleNow.some((x) => x.id === v.id)) ?? null, 100);
      expect(replacement.provider).toBe(ctx.provider);
      return replacement.id;
    },
  };
}
