import { FaultError, toFault } from '../../runtime/index.ts';
import type { NodeId, Observation } from '../../runtime/index.ts';
import { executeAs } from './borrowed-roles.ts';
import { dropped, faultCode, observeByDatabase } from './kind.ts';
import type { KindHandler, PgNode } from './kind.ts';
import { extensionOutputs, observeExtension } from './observe.ts';
import type { ExtensionRow } from './observe.ts';
import { alterExtensionSql, createExtensionSql, dropExtensionSql, EXTENSIONS_QUERY, quoteIdent, quoteLiteral } from './sql.ts';
import type { Statement } from './sql.ts';

type ExtensionNode = PgNode<'postgres.extension'>;

function rowQuery(name: string): Statement {
  return {
    text: `SELECT e.oid::int8 AS oid, e.extversion AS version, n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = ${quoteLiteral(name)}`,
  };
}

/** What `rowQuery` read, after the statements before it. */
type ReadBack = Pick<ExtensionRow, 'oid' | 'version' | 'schema'>;

/**
 * Runs `run`; a version the server cannot install or update to (22023, "has no installation script
 * nor update path") is a permanent fault that says where to find the versions it can.
 */
async function withVersionHint<T>(node: ExtensionNode, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (node.spec.version === undefined || faultCode(err) !== '22023') throw err;
    const f = toFault(err);
    throw new FaultError({ ...f, hint: `the versions this server has for it: SELECT version FROM pg_available_extension_versions WHERE name = ${quoteLiteral(node.spec.name)}` });
  }
}

/** `postgres.extension`, in its database. */
export const extensionHandler: KindHandler<'postgres.extension'> = {
  observe: (nodes, ctx) =>
    observeByDatabase(nodes, ctx, async (database, group) => {
      const names = [...new Set(group.map((n) => n.spec.name))];
      const rows = await ctx.client.query<ExtensionRow>(EXTENSIONS_QUERY, [names], { database, signal: ctx.signal });
      const byName = new Map(rows.map((r) => [r.name, r]));
      return new Map<NodeId, Observation>(group.map((n) => [n.id, observeExtension(n.spec, byName.get(n.spec.name))]));
    }),

  // A trusted extension is made with CREATE on its database and schema: as their owners.
  async create(node, ctx) {
    const { name, database, schema } = node.spec;
    const rows = await withVersionHint(node, () =>
      executeAs({ databaseOwners: [database], schemaOwners: [schema] }, [createExtensionSql(node.spec)], ctx, { database, readBack: rowQuery(name) }),
    );
    return { outputs: extensionOutputs(node.spec, rows[0] as ReadBack | undefined) };
  },

  async update(node, diffs, ctx) {
    const { name, database, schema } = node.spec;
    const fields = { version: diffs.some((d) => d.path === 'version'), schema: diffs.some((d) => d.path === 'schema') };
    const rows = await withVersionHint(node, () =>
      executeAs({ extensionOwners: [name], schemaOwners: [fields.schema ? schema : undefined] }, alterExtensionSql(node.spec, fields), ctx, { database, readBack: rowQuery(name) }),
    );
    return { outputs: extensionOutputs(node.spec, rows[0] as ReadBack | undefined) };
  },

  async delete(node, ctx) {
    const { name, database } = node.spec;
    try {
      await dropped(['42704', '3D000'], () => executeAs({ extensionOwners: [name] }, [dropExtensionSql(name)], ctx, { database }));
    } catch (err) {
      if (faultCode(err) !== '2BP01') throw err;
      // Objects that use it (a citext column, a function over its type), named in the message: not the roles' REASSIGN OWNED.
      throw new FaultError(
        {
          ...toFault(err),
          hint: `objects in database ${JSON.stringify(database)} use the extension (named above): drop or change them first; to drop them with it, data and all, DROP EXTENSION ${quoteIdent(name)} CASCADE by hand`,
        },
        { cause: err },
      );
    }
  },
};
