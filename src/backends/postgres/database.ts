import { fault, FaultError } from '../../runtime/index.ts';
import type { NodeId, Observation, Outputs } from '../../runtime/index.ts';
import { dropped, faultCode } from './kind.ts';
import type { KindContext, KindHandler, PgNode } from './kind.ts';
import { databaseOutputs, observeDatabase } from './observe.ts';
import type { DatabaseRow } from './observe.ts';
import { alterDatabaseSql, createDatabaseSql, DATABASES_QUERY, dropDatabaseSql, quoteLiteral, USER_OBJECTS_QUERY } from './sql.ts';

type DatabaseNode = PgNode<'postgres.database'>;

async function observeAll(nodes: readonly DatabaseNode[], ctx: KindContext): Promise<Map<NodeId, Observation>> {
  const names = [...new Set(nodes.map((n) => n.spec.name))];
  const rows = await ctx.client.query<DatabaseRow>(DATABASES_QUERY, [names], { signal: ctx.signal });
  const byName = new Map(rows.map((r) => [r.name, r]));
  return new Map(nodes.map((n) => [n.id, observeDatabase(n.spec, byName.get(n.spec.name))]));
}

/** Outputs after a change: CREATE DATABASE cannot share a round trip, so this is a second, rare query. */
async function outputsAfter(node: DatabaseNode, ctx: KindContext): Promise<Outputs> {
  const obs = (await observeAll([node], ctx)).get(node.id);
  if (obs !== undefined && (obs.status === 'upToDate' || obs.status === 'drifted')) return obs.outputs;
  return databaseOutputs(node.spec, undefined);
}

/**
 * `postgres.database`: stateful. A drop requires the reconciler to ask
 * (deletionPolicy: Delete) and, when the database still holds tables, the
 * spec's `force: true`.
 */
export const databaseHandler: KindHandler<'postgres.database'> = {
  observe: observeAll,

  async create(node, ctx) {
    const { template } = node.spec;
    // PostgreSQL copies no database that has other sessions, and ours count: the pool opened by
    // observing the template's own extension or schema nodes stays open (idle) for a while.
    if (template !== undefined) await ctx.client.closeDatabase(template);
    try {
      await ctx.client.execute([createDatabaseSql(node.spec)], { signal: ctx.signal });
    } catch (err) {
      if (template === undefined || faultCode(err) !== '55006') throw err;
      throw new FaultError(
        fault('transient', `template database ${JSON.stringify(template)} is in use by other sessions (not ours: those were closed first), so it cannot be copied`, {
          code: '55006',
          hint: `PostgreSQL copies a template only while nobody is connected to it: see who is (SELECT pid, usename, application_name, client_addr FROM pg_stat_activity WHERE datname = ${quoteLiteral(template)})`,
        }),
        { cause: err },
      );
    }
    return { outputs: await outputsAfter(node, ctx) };
  },

  async update(node, diffs, ctx) {
    const encoding = diffs.find((d) => d.path === 'encoding');
    if (encoding !== undefined) {
      throw new FaultError(
        fault('permanent', `database encoding is ${String(encoding.actual)}, not ${String(encoding.desired)}, and cannot be changed`, {
          code: 'immutable-field',
          hint: 'recreate the database (dump, drop, create, restore) or set encoding to the actual value',
        }),
      );
    }
    // Only what differs: a field the node ignores (diffs leave it out) keeps its value, as for roles.
    const fields = { owner: diffs.some((d) => d.path === 'owner'), connectionLimit: diffs.some((d) => d.path === 'connectionLimit') };
    const statements = alterDatabaseSql(node.spec, fields);
    if (statements.length > 0) await ctx.client.execute(statements, { signal: ctx.signal });
    return { outputs: await outputsAfter(node, ctx) };
  },

  async delete(node, ctx) {
    const { name, force } = node.spec;
    let objects: number;
    try {
      const rows = await ctx.client.query<{ objects: number }>(USER_OBJECTS_QUERY, [], { database: name, signal: ctx.signal });
      objects = rows[0]?.objects ?? 0;
    } catch (err) {
      if (faultCode(err) === '3D000') return;
      throw err;
    }
    if (objects > 0 && !force) {
      throw new FaultError(
        fault('permanent', `database ${JSON.stringify(name)} still holds ${objects} object(s) of its own (tables, views, sequences, functions, types or large objects); not dropped`, {
          code: 'database-not-empty',
          hint: 'to drop it with its data, set force: true on the node (with deletionPolicy: Delete): a node already removed from the goals is declared again with it and applied, then removed; or empty the database first',
        }),
      );
    }
    // Our own idle sessions would block the drop.
    await ctx.client.closeDatabase(name);
    if (!(await dropped(['3D000'], () => ctx.client.execute([dropDatabaseSql(name, force)], { signal: ctx.signal })))) return;
    ctx.log.info({ database: name, objects, force }, 'database dropped');
  },
};
