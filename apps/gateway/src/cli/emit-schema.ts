// Writes the schema the gateway serves to apps/gateway/schema.graphql (committed, reviewed in diffs).
import fs from 'node:fs';
import path from 'node:path';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { buildUveSchema } from '../api/schema';

(async () => {
  const schema = await buildUveSchema();
  const out = path.resolve(__dirname, '../../schema.graphql');
  fs.writeFileSync(out, `# Emitted from the code by \`npm run emit-schema -w @uve/gateway\`; do not edit.\n\n${printSchema(lexicographicSortSchema(schema))}\n`);
  process.stdout.write(`wrote ${out}\n`);
})().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
