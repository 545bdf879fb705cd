// For the TypeORM CLI (npm run migration:generate -w @uve/gateway): DATABASE_URL must be set.
import { createDataSource } from './data-source';

if (!process.env.DATABASE_URL) throw new Error('Set DATABASE_URL to a PostgreSQL database to generate migrations against.');
export default createDataSource(process.env.DATABASE_URL);
