// The schema changes only through the reviewed migrations in ./migrations (synchronize is off
// everywhere, tests included).
import 'reflect-metadata';
import path from 'node:path';
import { DataSource } from 'typeorm';
import { ENTITIES } from './entities';
import { SnakeNamingStrategy } from './naming';

/**
 * `timeoutMs` bounds connecting and each query: with PostgreSQL down, requests fail fast instead of hanging.
 * `poolSize`: most connections held at once (UVE_DB_POOL_SIZE).
 */
export function createDataSource(url: string, timeoutMs = 10_000, poolSize = 10): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: [path.join(__dirname, 'migrations', '*.js')],
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'all',
    synchronize: false,
    // gen_random_uuid() is built into PostgreSQL 13+: no extension to install
    uuidExtension: 'pgcrypto',
    namingStrategy: new SnakeNamingStrategy(),
    extra: { max: poolSize, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs },
  });
}
