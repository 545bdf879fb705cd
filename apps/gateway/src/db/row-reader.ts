// The hot reads (the relations every list and session query loads, the sessions list, their events)
// as one prepared SELECT of an entity's columns, hydrated column by column as TypeORM does, without
// TypeORM's query builder. The builder re-derives the select list, aliases and parameters of every
// query on every call and walks each raw row through its generic transformer: on a 100-row
// `sessions` list that was ~1/5 of the gateway's busy time (bench/gateway --profile), the gap to a
// bare graphql-js server over `pg`. The columns still come from the entity's metadata, so a column
// added to an entity is read here too, with TypeORM's own value conversion (enum arrays, jsonb, …).
import type { DataSource, EntityMetadata, EntityTarget, ObjectLiteral } from 'typeorm';

export class RowReader<T extends ObjectLiteral> {
  private readonly meta: EntityMetadata;
  private readonly columns: EntityMetadata['columns'];
  /** `"a"."col", …`: every column of the entity, prefixed with the alias */
  private readonly select: string;
  private readonly table: string;

  constructor(
    private readonly ds: DataSource,
    entity: EntityTarget<T>,
    /** the table's alias in the caller's SQL */
    readonly alias: string,
  ) {
    this.meta = ds.getMetadata(entity);
    this.columns = this.meta.columns.filter((c) => c.isSelect && !c.isVirtual);
    const q = (name: string) => ds.driver.escape(name);
    this.select = this.columns.map((c) => `${q(alias)}.${q(c.databaseName)}`).join(', ');
    this.table = `${q(this.meta.tablePath)} ${q(alias)}`;
  }

  /** The entities of `SELECT <columns> FROM table alias <rest>` ($1, $2, … are `params`), in the rows' order. */
  async read(rest: string, params: unknown[]): Promise<T[]> {
    return (await this.readWith('', rest, params)).map((r) => r.entity);
  }

  /** read() with more selected expressions (`, expr AS "name"`), each entity beside its raw row. */
  async readWith<R extends Record<string, unknown>>(extra: string, rest: string, params: unknown[]): Promise<{ entity: T; row: R }[]> {
    const rows = (await this.ds.query(`SELECT ${this.select}${extra} FROM ${this.table} ${rest}`, params)) as R[];
    return rows.map((row) => ({ entity: this.hydrate(row), row }));
  }

  /** The rows whose primary key (`id`) is one of `ids`. */
  byIds(ids: readonly string[]): Promise<T[]> {
    return ids.length ? this.read(`WHERE ${this.ds.driver.escape(this.alias)}."id" = ANY($1::uuid[])`, [ids]) : Promise.resolve([]);
  }

  private hydrate(row: Record<string, unknown>): T {
    const entity = this.meta.create(undefined, { fromDeserializer: true }) as T;
    for (const c of this.columns) {
      const value = row[c.databaseName];
      if (value !== undefined) c.setEntityValue(entity, this.ds.driver.prepareHydratedValue(value, c));
    }
    return entity;
  }
}

const readers = new WeakMap<DataSource, Map<EntityTarget<ObjectLiteral>, Map<string, RowReader<ObjectLiteral>>>>();

/** The RowReader of an entity under an alias, made once per data source (it builds its select list). */
export function rowReader<T extends ObjectLiteral>(ds: DataSource, entity: EntityTarget<T>, alias: string): RowReader<T> {
  let byEntity = readers.get(ds);
  if (!byEntity) readers.set(ds, (byEntity = new Map()));
  let byAlias = byEntity.get(entity);
  if (!byAlias) byEntity.set(entity, (byAlias = new Map()));
  let r = byAlias.get(alias);
  if (!r) byAlias.set(alias, (r = new RowReader(ds, entity, alias)));
  return r as RowReader<T>;
}
