#!/usr/bin/env node
// The gateway bench's baseline: a bare Apollo Server 5 (express5 integration, as the gateway uses)
// over graphql-js and `pg`, serving the same rows of the same database with the same shapes, with
// what a plain graphql-js server does (DataLoader per request, one query per list), and nothing the
// gateway adds: no token check, no authorization per field, no type-graphql, no limits, no VM commands.
// Run as its own process (DATABASE_URL, PORT) so it does not share the load generator's event loop.
import http from 'node:http';
import express from 'express';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import DataLoader from 'dataloader';
import { Pool } from 'pg';

const typeDefs = `#graphql
  type User { id: ID! username: String! displayName: String role: String! }
  type Ua { id: ID! name: String! platform: String! currentVersion: String! }
  type Vm { id: ID! name: String! platform: String! status: String! }
  type SessionEvent { id: ID! sessionId: ID! type: String! at: String! actor: User }
  type Session { id: ID! state: String! uaVersion: String! createdAt: String! user: User! ua: Ua! vm: Vm events(last: Int): [SessionEvent!]! }
  input TerminalInput { screenWidth: Int! screenHeight: Int! codecs: [String!]! localResources: [String!] maxFrameRate: Int }
  input RequestApplicationInput { uaId: ID! terminal: TerminalInput! reconnectionMethod: String fresh: Boolean }
  type Query { session(id: ID!): Session sessions(limit: Int, offset: Int): [Session!]! }
  type Mutation { requestApplication(input: RequestApplicationInput!, userId: ID!): Session! endSession(sessionId: ID!): Session! }
`;

// the same pool size as the gateway it stands beside (bench/gateway --db-pool)
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_SIZE ?? 10) });
type Row = Record<string, any>;

const SESSION = `id, state, ua_version AS "uaVersion", created_at AS "createdAt", user_id AS "userId", ua_id AS "uaId", vm_id AS "vmId"`;
const byIds = (sql: string) => async (ids: readonly string[]) => {
  const rows = (await pool.query(sql, [ids])).rows as Row[];
  const m = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id) => m.get(id) ?? null);
};

function loaders() {
  return {
    users: new DataLoader(byIds(`SELECT id, username, display_name AS "displayName", role FROM users WHERE id = ANY($1)`)),
    uas: new DataLoader(byIds(`SELECT id, name, platform, current_version AS "currentVersion" FROM uas WHERE id = ANY($1)`)),
    vms: new DataLoader(byIds(`SELECT id, name, platform, status FROM vms WHERE id = ANY($1)`)),
    // the last N events of each session of the batch, one query
    events: new DataLoader<string, Row[], string>(async (keys) => {
      const last = Number(keys[0]!.split(':')[1]);
      const ids = keys.map((k) => k.split(':')[0]);
      const { rows } = await pool.query(
        `SELECT e.id, e.session_id AS "sessionId", e.type, e.at, e.actor_id AS "actorId" FROM unnest($1::uuid[]) s(id)
         CROSS JOIN LATERAL (SELECT * FROM session_events WHERE session_id = s.id ORDER BY seq DESC LIMIT $2) e`,
        [ids, last],
      );
      const by = new Map<string, Row[]>();
      for (const r of rows as Row[]) by.set(r.sessionId, [r, ...(by.get(r.sessionId) ?? [])]);
      return ids.map((id) => by.get(id!) ?? []);
    }, { batchScheduleFn: (cb) => setImmediate(cb) }),
  };
}
type Ctx = ReturnType<typeof loaders>;
const iso = (d: Date | string) => (d instanceof Date ? d.toISOString() : d);

const resolvers = {
  Query: {
    session: async (_: unknown, a: { id: string }) => (await pool.query(`SELECT ${SESSION} FROM sessions WHERE id = $1`, [a.id])).rows[0] ?? null,
    sessions: async (_: unknown, a: { limit?: number; offset?: number }) =>
      (await pool.query(`SELECT ${SESSION} FROM sessions ORDER BY created_at DESC LIMIT $1 OFFSET $2`, [a.limit ?? 50, a.offset ?? 0])).rows,
  },
  Mutation: {
    // the same rows the gateway writes for a placement: the session and its REQUESTED and ASSIGNED events
    requestApplication: async (_: unknown, a: { input: { uaId: string; terminal: unknown }; userId: string }) => {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        const ua = (await c.query('SELECT id, platform, current_version FROM uas WHERE id = $1', [a.input.uaId])).rows[0];
        if (!ua) throw new Error('no such UA');
        const vm = (await c.query(`SELECT id FROM vms WHERE platform = $1 AND status = 'IDLE' LIMIT 1`, [ua.platform])).rows[0];
        const s = (await c.query(`INSERT INTO sessions (user_id, ua_id, ua_version, vm_id, state, reconnection_method, terminal) VALUES ($1, $2, $3, $4, 'ASSIGNED', 'NORMAL', $5) RETURNING ${SESSION}`, [a.userId, ua.id, ua.current_version, vm?.id ?? null, JSON.stringify(a.input.terminal)])).rows[0];
        await c.query(`INSERT INTO session_events (session_id, type, actor_id) VALUES ($1, 'REQUESTED', $2), ($1, 'ASSIGNED', NULL)`, [s.id, a.userId]);
        await c.query('COMMIT');
        return s;
      } catch (e) {
        await c.query('ROLLBACK');
        throw e;
      } finally {
        c.release();
      }
    },
    endSession: async (_: unknown, a: { sessionId: string }) => {
      const s = (await pool.query(`UPDATE sessions SET state = 'ENDED', ended_at = now() WHERE id = $1 RETURNING ${SESSION}`, [a.sessionId])).rows[0];
      await pool.query(`INSERT INTO session_events (session_id, type) VALUES ($1, 'ENDED')`, [a.sessionId]);
      return s;
    },
  },
  Session: {
    createdAt: (s: Row) => iso(s.createdAt),
    user: (s: Row, _: unknown, ctx: Ctx) => ctx.users.load(s.userId),
    ua: (s: Row, _: unknown, ctx: Ctx) => ctx.uas.load(s.uaId),
    vm: (s: Row, _: unknown, ctx: Ctx) => (s.vmId ? ctx.vms.load(s.vmId) : null),
    events: (s: Row, a: { last?: number }, ctx: Ctx) => ctx.events.load(`${s.id}:${a.last ?? 50}`),
  },
  SessionEvent: {
    at: (e: Row) => iso(e.at),
    actor: (e: Row, _: unknown, ctx: Ctx) => (e.actorId ? ctx.users.load(e.actorId) : null),
  },
};

async function main() {
  const app = express();
  const server = http.createServer(app);
  const apollo = new ApolloServer<Ctx>({ typeDefs, resolvers, stopOnTerminationSignals: false });
  await apollo.start();
  app.use('/graphql', express.json({ limit: '256kb' }), expressMiddleware(apollo, { context: async () => loaders() }));
  await new Promise<void>((r) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  process.stdout.write(`bare Apollo listening on http://127.0.0.1:${port}/graphql\n`);
  process.on('SIGTERM', () => {
    void apollo.stop().then(() => pool.end()).then(() => process.exit(0));
  });
}

main().catch((e: Error) => {
  process.stderr.write(`bare-apollo: ${e.stack}\n`);
  process.exit(1);
});
