import { canonicalEncoding } from '../../infra/index.ts';
import { fault, FaultError, toFault } from '../../runtime/index.ts';
import type { NodeId, Observation, Outputs } from '../../runtime/index.ts';
import { borrowedRoles, executeAs } from './borrowed-roles.ts';
import { dropped, faultCode } from './kind.ts';
import type { KindContext, KindHandler, PgNode } from './kind.ts';
import { databaseOutputs, observeDatabase } from './observe.ts';
import type { DatabaseRow } from './observe.ts';
import { alterDatabaseSql, createDatabaseSql, DATABASES_QUERY, databaseOwnerSql, dropDatabaseReadySql, dropDatabaseSql, quoteIdent, quoteLiteral, USER_OBJECTS_QUERY } from './sql.ts';
import type { DatabaseSpec } from './sql.ts';

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
 * The hint of a CREATE DATABASE refused for its encoding (22023: one its locale cannot hold, or not its
 * template's): the goal names no locale, so a database takes its template's, and the way out is a
 * template of that encoding under a locale that allows it, which the message alone does not say.
 */
function encodingHint(spec: DatabaseSpec): string {
  const encoding = canonicalEncoding(spec.encoding);
  const template = quoteIdent(`${encoding.toLowerCase()}_template`);
  return (
    `a database is created with its template's locale (LC_COLLATE, LC_CTYPE), and from any template but template0 with its encoding too; ` +
    `a UTF-8 locale (C.UTF-8, en_US.UTF-8) holds only UTF8, while C or POSIX allows any encoding: for ${encoding}, make a template of it by hand ` +
    `(CREATE DATABASE ${template} TEMPLATE template0 ENCODING ${quoteLiteral(encoding)} LOCALE 'C') and name it in template, or use UTF8; ` +
    `the server's: SELECT datname, pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database`
  );
}

/**
 * `postgres.database`: stateful. A drop requires the reconciler to ask
 * (deletionPolicy: Delete) and, when the database still holds tables, the
 * spec's `force: true`.
 */
export const databaseHandler: KindHandler<'postgres.database'> = {
  observe: observeAll,

  async create(node, ctx) {
    const { template, owner } = node.spec;
    const borrowing = await borrowedRoles({ roles: [owner] }, ctx, undefined);
    // CREATE DATABASE runs in no transaction, so not with a membership borrowed for one: an owner the
    // backend user may act as only so gets the database in a second statement, in a transaction of its
    // own. Interrupted between the two (the process killed), the database is the user's; its next
    // observation finds the owner differs, and the update gives it over (unless the node ignores owner).
    const handOver = owner !== undefined && borrowing.roles.includes(owner);
    // PostgreSQL copies no database that has other sessions, and ours count: the pool opened by
    // observing the template's own extension or schema nodes stays open (idle) for a while.
    if (template !== undefined) await ctx.client.closeDatabase(template);
    try {
      await borrowing.explained(() => ctx.client.execute([createDatabaseSql(node.spec, { withOwner: !handOver })], { signal: ctx.signal }));
    } catch (err) {
      if (faultCode(err) === '22023') throw new FaultError({ ...toFault(err), hint: encodingHint(node.spec) }, { cause: err });
      if (template === undefined || faultCode(err) !== '55006') throw err;
      throw new FaultError(
        fault('transient', `template database ${JSON.stringify(template)} is in use by other sessions (not ours: those were closed first), so it cannot be copied`, {
          code: '55006',
          hint: `PostgreSQL copies a template only while nobody is connected to it: see who is (SELECT pid, usename, application_name, client_addr FROM pg_stat_activity WHERE datname = ${quoteLiteral(template)})`,
        }),
        { cause: err },
      );
    }
    if (handOver) {
      try {
        await ctx.client.execute(borrowing.around([databaseOwnerSql(node.spec.name, owner)]), { signal: ctx.signal });
      } catch (err) {
        // Not left the user's (a node that ignores its owner would take it as it is, for good): just
        // made and empty, it is dropped, and made again by the retry; even when the operation was
        // aborted (the reason the hand-over failed, perhaps).
        await ctx.client.execute([dropDatabaseSql(node.spec.name, false)], { signal: ctx.client.ownSignal() }).catch((drop: unknown) => {
          ctx.log.error({ database: node.spec.name, owner, fault: toFault(drop) }, 'database left to the backend user: its owner could not be given it, nor could it be dropped');
        });
        throw err;
      }
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
    // As the owner it has (to alter it) and the one it is given to.
    await executeAs({ roles: [fields.owner ? node.spec.owner : undefined], databaseOwners: [node.spec.name] }, alterDatabaseSql(node.spec, fields), ctx, {});
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
    // Only its owner may drop it, and DROP DATABASE runs in no transaction: an owner the backend user
    // may act as only by borrowing it first gives the database to the user, in a transaction of its own,
    // and only when nothing is on it that the drop could not end; if the drop fails all the same (a
    // session came in meanwhile), the database goes back to that owner, with its privileges.
    const borrowing = await borrowedRoles({ databaseOwners: [name] }, ctx, undefined);
    const [owner] = borrowing.roles; // the database's owner: the only role asked about
    const dropIt = (): Promise<unknown> => borrowing.explained(() => ctx.client.execute([dropDatabaseSql(name, force)], { signal: ctx.signal }));
    const drop = async (): Promise<void> => {
      if (owner === undefined) {
        await dropIt();
        return;
      }
      await ctx.client.execute(borrowing.around([dropDatabaseReadySql(name, force), databaseOwnerSql(name, undefined)]), { signal: ctx.signal });
      try {
        await dropIt();
      } catch (err) {
        if (faultCode(err) === '3D000') throw err;
        // Even when the operation was aborted (the reason the drop failed, perhaps).
        await ctx.client.execute(borrowing.around([databaseOwnerSql(name, owner)]), { signal: ctx.client.ownSignal() }).catch((back: unknown) => {
          ctx.log.error({ database: name, owner, fault: toFault(back) }, 'database not given back to its owner after its drop failed');
        });
        throw err;
      }
    };
    // Our own idle sessions would block the drop.
    await ctx.client.closeDatabase(name);
    if (!(await dropped(['3D000'], drop))) return;
    ctx.log.info({ database: name, objects, force }, 'database dropped');
  },
};
