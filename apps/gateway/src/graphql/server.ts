// One HTTP server: /graphql (Apollo Server 5, queries and mutations) and graphql-ws on the same
// path (subscriptions), /healthz, /readyz, the JWKS VMs verify session tokens with.
import http from 'node:http';
import express from 'express';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import type { GraphQLSchema } from 'graphql';
import { JWKS_PATH } from '@uve/protocol';
import type { Services } from '../services';
import { resolvePrincipal, type Context } from './context';
import { formatError } from './format-error';
import { registerVmDataRoutes } from '../modules/snapshots/vm-data.routes';

export interface HttpServer {
  server: http.Server;
  stop(): Promise<void>;
}

/** Readiness: the database and Redis answer; each check says 'ok' or why not (both in 2 s at most). */
export async function ready(services: Services): Promise<{ ok: boolean; checks: Record<'database' | 'redis', string> }> {
  const check = async (dependency: 'database' | 'redis', probe: () => Promise<unknown>): Promise<string> => {
    const own = services.privateState(dependency);
    if (own === 'restarting' || own === 'failed') return `down: the gateway's own server ${own === 'failed' ? 'failed' : 'exited and is being restarted'}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([probe(), new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error('no answer in 2 s')), 2000)))]);
      return 'ok';
    } catch (e) {
      return `down: ${(e as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
  };
  const [database, redis] = await Promise.all([check('database', () => services.ds.query('SELECT 1')), check('redis', services.redisPing)]);
  return { ok: database === 'ok' && redis === 'ok', checks: { database, redis } };
}

export async function startHttpServer(schema: GraphQLSchema, services: Services, host: string, port: number): Promise<HttpServer> {
  const app = express();
  app.disable('x-powered-by');
  const server = http.createServer(app);

  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: 64 * 1024 });
  const wsCleanup = useServer<Record<string, unknown>>(
    {
      schema,
      // graphql-ws authenticates in connection_init: { authorization: "Bearer …" }
      onConnect: async (ctx) => {
        const auth = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        if (auth !== undefined && typeof auth !== 'string') return false;
        const principal = await resolvePrincipal(services, auth as string | undefined);
        if (auth && !principal) return false; // a wrong token is refused, not downgraded to anonymous
        (ctx.extra as Record<string, unknown>).principal = principal;
        return true;
      },
      context: (ctx): Context => ({ principal: ((ctx.extra as Record<string, unknown>).principal as Context['principal']) ?? null, services }),
      onError: (_ctx, _id, _payload, errors) => {
        for (const e of errors) services.log.debug('subscription error', { message: e.message });
      },
    },
    wss,
  );

  const apollo = new ApolloServer<Context>({
    schema,
    formatError: formatError(services.log),
    introspection: true,
    includeStacktraceInErrorResponses: false,
    // main.ts owns the signals (Apollo's own handler would stop it early and send the signal again)
    stopOnTerminationSignals: false,
    plugins: [
      // at shutdown, requests in flight get 2 s (the whole stop is bounded by UVE_SHUTDOWN_TIMEOUT_MS)
      ApolloServerPluginDrainHttpServer({ httpServer: server, stopGracePeriodMillis: 2000 }),
      { async serverWillStart() { return { async drainServer() { await wsCleanup.dispose(); } }; } },
    ],
  });
  await apollo.start();

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/readyz', async (_req, res) => {
    const r = await ready(services);
    res.status(r.ok ? 200 : 503).json(r);
  });
  services.metrics.registerGauge('uve_dependency_up', 'Whether a dependency answers (1) or not (0), as /readyz checks it.', ['dependency'], async () => {
    const r = await ready(services);
    return Object.entries(r.checks).map(([dependency, v]) => ({ labels: { dependency }, value: v === 'ok' ? 1 : 0 }));
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', services.metrics.contentType).send(await services.metrics.metrics());
  });
  app.get(JWKS_PATH, (_req, res) => {
    res.set('cache-control', 'public, max-age=300').json(services.keys.jwks());
  });
  registerVmDataRoutes(app, services, services.config.vmDataMaxMb * 1024 * 1024);
  app.use(
    '/graphql',
    express.json({ limit: '256kb' }),
    expressMiddleware(apollo, {
      context: async ({ req }) => ({ principal: await resolvePrincipal(services, req.headers.authorization), services }),
    }),
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    stop: async () => {
      await apollo.stop();
      wss.close();
    },
  };
}
