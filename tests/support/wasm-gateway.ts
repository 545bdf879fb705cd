// A gateway on its own database and Redis whose pool keeps a WASM VM (the real vm-agent, PROCESS
// provider) warm with the sample UAs: for suites where several users share real UVE-3 streams.
import type { Client } from 'graphql-ws';
import { ADMIN, gql, login, registerUser, startGateway, wsClient, type GatewayProcess } from './gateway';
import { freshDatabase, startRedis, until, type TestRedis } from './services';
import { openStream } from './stream';

export interface WasmGateway {
  gw: GatewayProcess;
  redis: TestRedis;
  admin: string;
  /** the users asked for, registered, in order */
  users: { token: string; id: string }[];
  /** a stream closed by `stop` */
  open(target: { url: string; token: string }): ReturnType<typeof openStream>;
  /** a graphql-ws client disposed by `stop` */
  client(token: string): Client;
  stop(): Promise<void>;
}

export async function startWasmGateway(prefix: string, usernames: string[], env: Record<string, string> = {}): Promise<WasmGateway> {
  const redis = await startRedis();
  const db = await freshDatabase();
  const gw = await startGateway({ DATABASE_URL: db, REDIS_URL: redis.url, UVE_QUEUE_PREFIX: prefix, UVE_SAMPLE_UAS: 'true', UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM', UVE_VM_CAPACITY: '6', ...env });
  const admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  const users = await Promise.all(usernames.map((n) => registerUser(gw, n)));
  await until('an idle WASM VM', 30_000, async () => ((await gql(gw, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, admin)).data?.vms?.length ?? 0) >= 1, 100);
  const streams: { close(): Promise<void> }[] = [];
  const clients: Client[] = [];
  return {
    gw, redis, admin, users,
    open: async (target) => {
      const s = await openStream(target);
      streams.push(s);
      return s;
    },
    client: (token) => {
      const c = wsClient(gw, token);
      clients.push(c);
      return c;
    },
    stop: async () => {
      for (const s of streams) await s.close();
      for (const c of clients) await c.dispose();
      await gw.stop();
      await redis.stop();
    },
  };
}
