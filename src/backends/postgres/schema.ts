import { fault, FaultError } from '../../runtime/index.ts';
import type { NodeId, Observation } from '../../runtime/index.ts';
import { executeAs } from './borrowed-roles.ts';
import { faultCode, observeByDatabase } from './kind.ts';
import type { KindHandler } from './kind.ts';
import { observeSchema, schemaOutputs } from './observe.ts';
import type { SchemaRow } from './observe.ts';
import { alterSchemaSql, createSchemaSql, dropSchemaSql, quoteLiteral, SCHEMAS_QUERY } from './sql.ts';
import type { Statement } from './sql.ts';

function oidQuery(name: string): Statement {
  return { text: `SELECT oid::int8 AS oid, pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = ${quoteLiteral(name)}` };
}

/** What `oidQuery` read, after the statements before it. */
type OidRow = Pick<SchemaRow, 'oid' | 'owner'>;

/** `postgres.schema`, in its database: stateful; a drop of a schema that holds objects requires `force: true` (CASCADE). */
export const schemaHandler: KindHandler<'postgres.schema'> = {
  observe: (nodes, ctx) =>
    observeByDatabase(nodes, ctx, async (database, group) => {
      const names = [...new Set(group.map((n) => n.spec.name))];
      const rows = await ctx.client.query<SchemaRow>(SCHEMAS_QUERY, [names], { database, signal: ctx.signal });
      const byName = new Map(rows.map((r) => [r.name, r]));
      return new Map<NodeId, Observation>(group.map((n) => [n.id, observeSchema(n.spec, byName.get(n.spec.name))]));
    }),

  // As its owner, and as the database's (whose CREATE privilege a schema is made or given over with).
  async create(node, ctx) {
    const { name, owner, database } = node.spec;
    const rows = await executeAs({ roles: [owner], databaseOwners: [database] }, [createSchemaSql(node.spec)], ctx, { database, readBack: oidQuery(name) });
    return { outputs: schemaOutputs(node.spec, rows[0] as OidRow | undefined) };
  },

  async update(node, _diffs, ctx) {
    const { name, owner, database } = node.spec;
    const rows = await executeAs({ roles: [owner], schemaOwners: [name], databaseOwners: [database] }, alterSchemaSql(node.spec), ctx, { database, readBack: oidQuery(name) });
    return { outputs: schemaOutputs(node.spec, rows[0] as OidRow | undefined) };
  },

  async delete(node, ctx) {
    try {
      await executeAs({ schemaOwners: [node.spec.name] }, [dropSchemaSql(node.spec.name, node.spec.force)], ctx, { database: node.spec.database });
    } catch (err) {
      const code = faultCode(err);
      if (code === '3F000' || code === '3D000') return;
      if (code === '2BP01') {
        throw new FaultError(
          fault('permanent', `schema ${JSON.stringify(node.spec.name)} still holds objects; not dropped`, {
            code,
            hint: 'to drop it with its objects, set force: true on the node (DROP SCHEMA … CASCADE): a node already removed from the goals is declared again with it and applied, then removed; or move or drop them first',
          }),
          { cause: err },
        );
      }
      throw err;
    }
  },
};
