// One HTTP server: /graphql (Apollo Server 5, queries and mutations) and graphql-ws on the same
// path (subscriptions), /healthz, /readyz, the JWKS VMs verify session tokens with.
import http from 'node:http';
import express from 'express';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { WebSocketServer, type WebSocket } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import type { FormattedExecutionResult, GraphQLSchema } from 'graphql';
import { JWKS_PATH } from '@uve/protocol';
import type { Services } from '../services';
import { resolvePrincipal, type Context } from '../common/context';
import { formatError, formatErrors, unavailableMessage } from './format-error';
import { unavailableDependency } from '../common/transient-errors';
import { createLoaders } from '../common/loaders';
import { sharedSubscribe } from './shared-execution';
import { fanoutTrace } from '../common/fanout-trace';
import { cachedDocumentChecker, limitRules, type GraphqlLimits } from './limits';
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

/** The GraphQL limits and introspection setting this gateway runs with (config.ts). */
export function graphqlLimits(config: Services['config']): GraphqlLimits {
  return {
    maxTokens: config.graphqlMaxTokens,
    maxDepth: config.graphqlMaxDepth,
    maxAliases: config.graphqlMaxAliases,
    maxDirectives: config.graphqlMaxDirectives,
    maxCost: config.graphqlMaxCost,
    introspection: config.introspection === 'on' || (config.introspection === 'auto' && process.env.NODE_ENV !== 'production'),
  };
}

/** graphql-ws close codes of a connection whose login token stopped being valid. */
const TOKEN_EXPIRED = 4401;
const TOKEN_REVOKED = 4403;
/** WebSocket's own "Try Again Later": a dependency the connection needs is down. */
const TRY_AGAIN_LATER = 1013;

interface SocketAuth {
  userId: string;
  jti: string;
  socket: WebSocket;
  expiry: NodeJS.Timeout;
}

export async function startHttpServer(schema: GraphQLSchema, services: Services, host: string, port: number): Promise<HttpServer> {
  const app = express();
  app.disable('x-powered-by');
  const server = http.createServer(app);
  const limits = graphqlLimits(services.config);

  // Open graphql-ws connections by the login token they were opened with: a subscription must not
  // outlive its token (expiry, logout, admin revocation).
  const sockets = new Set<SocketAuth>();
  const forget = (a: SocketAuth) => {
    clearTimeout(a.expiry);
    sockets.delete(a);
  };
  services.users.onTokensRevoked = (userId, jti) => {
    for (const a of [...sockets]) {
      if (a.userId === userId && (jti === null || a.jti === jti)) {
        a.socket.close(TOKEN_REVOKED, 'login token revoked');
        forget(a);
      }
    }
  };

  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: 64 * 1024 });
  const checkSubscription = cachedDocumentChecker(schema, limits);
  const wsErrors = formatErrors(services.log, limits);
  const formattedResults = new WeakMap<object, FormattedExecutionResult>();
  // UVE_FANOUT_TRACE: each payload's time handed to graphql-ws and written to its socket, per subscriber (bench/fanout)
  const traceNext = fanoutTrace?.onNextOf(wss);
  const wsCleanup = useServer<Record<string, unknown>>(
    {
      schema,
      // whatever NODE_ENV says: an unexpected error closes a socket with 4500 "Internal server
      // error", never with its own message (an SQL error, a path) as the close reason
      isProd: true,
      // one execution per event for the subscribers that would get the same answer (shared-execution.ts)
      subscribe: sharedSubscribe,
      // graphql-ws authenticates in connection_init: { authorization: "Bearer …" }
      onConnect: async (ctx) => {
        const auth = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        if (auth !== undefined && typeof auth !== 'string') return false;
        const extra = ctx.extra as { principal?: Context['principal']; auth?: SocketAuth; socket: WebSocket };
        let principal: Context['principal'];
        try {
          principal = await resolvePrincipal(services, auth as string | undefined);
        } catch (e) {
          // graphql-ws would close with 4500 and the raw error: say which dependency is down instead
          const down = unavailableDependency(e);
          if (!down) throw e;
          services.log.warn('subscription connection refused: a dependency is unavailable', { dependency: down });
          extra.socket.close(TRY_AGAIN_LATER, unavailableMessage(down));
          return false;
        }
        if (auth && !principal) return false; // a wrong token is refused, not downgraded to anonymous
        extra.principal = principal;
        if (principal?.kind === 'user') {
          const a: SocketAuth = {
            userId: principal.user.id,
            jti: principal.token.jti,
            socket: extra.socket,
            expiry: setTimeout(() => {
              extra.socket.close(TOKEN_EXPIRED, 'login token expired');
              forget(a);
            }, Math.max(0, principal.token.exp * 1000 - Date.now())),
          };
          sockets.add(a);
          extra.auth = a;
          extra.socket.once('close', () => forget(a));
        }
        return true;
      },
      // the same limits as on HTTP: Apollo's validation never sees this path
      onSubscribe: (_ctx, _id, payload) => {
        const checked = checkSubscription(payload.query);
        if ('errors' in checked) return checked.errors;
        return { schema, document: checked.document, operationName: payload.operationName, variableValues: payload.variables };
      },
      context: (ctx): Context => ({
        principal: ((ctx.extra as Record<string, unknown>).principal as Context['principal']) ?? null,
        services,
        clientIp: clientAddress((ctx.extra as { request: http.IncomingMessage }).request),
        // a subscription lives long: batch its payloads' relations, cache nothing
        loaders: createLoaders(services, { cache: false }),
      }),
      // errors leave as on HTTP: contract codes as they are, anything unexpected logged and masked
      // (once per result: a shared execution's result reaches many subscribers, logged once)
      onNext: (ctx, id, payload, args, result) => {
        traceNext?.(ctx, id, payload, args, result);
        if (!result.errors?.length) return;
        let formatted = formattedResults.get(result);
        if (!formatted) formattedResults.set(result, (formatted = { ...result, errors: wsErrors(result.errors) }));
        return formatted;
      },
      onError: (_ctx, _id, _payload, errors) => {
        for (const e of errors) services.log.debug('subscription error', { message: e.message });
        return wsErrors(errors);
      },
    },
    wss,
  );

  const apollo = new ApolloServer<Context>({
    schema,
    formatError: formatError(services.log, limits),
    introspection: limits.introspection,
    validationRules: limitRules(limits),
    parseOptions: { maxTokens: limits.maxTokens },
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
    cors(services.config.corsOrigins),
    express.json({ limit: '256kb' }),
    expressMiddleware(apollo, {
      context: async ({ req }) => ({ principal: await resolvePrincipal(services, req.headers.authorization), services, clientIp: clientAddress(req), loaders: createLoaders(services) }),
    }),
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    stop: async () => {
      for (const a of [...sockets]) forget(a);
      await apollo.stop();
      wss.close();
    },
  };
}

/** The peer's address (no proxy is trusted: a forwarded-for header would let anyone pick theirs). */
function clientAddress(req: http.IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/**
 * CORS set explicitly: only the configured origins may call the API from a browser, with the
 * Authorization header; without any, browsers keep to the same origin.
 */
function cors(origins: string[]): express.RequestHandler {
  const allowed = new Set(origins);
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin && allowed.has(origin)) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
      res.setHeader('access-control-allow-headers', 'authorization, content-type');
      res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
      res.setHeader('access-control-max-age', '600');
    }
    if (req.method === 'OPTIONS') {
      res.status(origin && allowed.has(origin) ? 204 : 403).end();
      return;
    }
    next();
  };
}
