import { PG_GRANT_PRIVILEGES } from '../../infra/index.ts';
import type { NodeId, Observation } from '../../runtime/index.ts';
import { executeAs } from './borrowed-roles.ts';
import type { ActingAs } from './borrowed-roles.ts';
import { dropped, observeByDatabase } from './kind.ts';
import type { KindContext, KindHandler, PgNode } from './kind.ts';
import { desiredPrivileges, grantOutputs, observeGrant } from './observe.ts';
import type { GrantRow } from './observe.ts';
import { GRANTS_QUERY, grantOnObjectsSql, grantPrivileges, grantSql, revokeOnObjectsSql, revokeSql, SCHEMA_OBJECTS_OWNED_QUERY, TARGET_OWNED_QUERY } from './sql.ts';
import type { RevokeWhat, Statement } from './sql.ts';

type GrantNode = PgNode<'postgres.grant'>;

/** Privileges named by the server (from a diff's `actual`) that are known keywords for this kind; anything else is ignored. */
function knownPrivileges(node: GrantNode, values: unknown): string[] {
  const allowed: readonly string[] = PG_GRANT_PRIVILEGES[node.spec.on];
  return Array.isArray(values) ? values.filter((v): v is string => typeof v === 'string' && allowed.includes(v) && v !== 'ALL') : [];
}

/** The relation kinds (pg_class.relkind) a tables or sequences grant covers. */
function relationKinds(on: 'tables' | 'sequences'): string[] {
  return on === 'tables' ? ['r', 'p', 'v', 'm', 'f'] : ['S'];
}

/**
 * The revoke of `privileges` (or of only the grant option on them) from the node's role, leaving alone
 * what the role owns: on a database or schema it owns, nothing (its privileges there are an owner's);
 * on tables or sequences, ON ALL … when it owns none of them, else each one it does not own (ON ALL
 * would strip its own tables: TRUNCATE, TRIGGER, REFERENCES gone from a migration role's tables).
 */
async function revokeStatements(node: GrantNode, privileges: readonly string[], ctx: KindContext, what: RevokeWhat = 'privileges'): Promise<Statement[]> {
  const { spec } = node;
  if (privileges.length === 0) return [];
  if (spec.on === 'database' || spec.on === 'schema') {
    const [row] = await ctx.client.query<{ owned: boolean }>(TARGET_OWNED_QUERY, [spec.on, spec.schema ?? null, spec.role], { database: spec.database, signal: ctx.signal });
    return row?.owned === true ? [] : [revokeSql(spec, privileges, what)];
  }
  if (spec.on !== 'tables' && spec.on !== 'sequences') return [revokeSql(spec, privileges, what)];
  const rows = await ctx.client.query<{ name: string; owned: boolean }>(SCHEMA_OBJECTS_OWNED_QUERY, [spec.schema, spec.role, relationKinds(spec.on)], {
    database: spec.database,
    signal: ctx.signal,
  });
  if (!rows.some((r) => r.owned)) return [revokeSql(spec, privileges, what)];
  const others = rows.filter((r) => !r.owned).map((r) => r.name);
  return others.length === 0 ? [] : [revokeOnObjectsSql(spec, privileges, others, what)];
}

/** The catalog rows of one grant node (one per object it covers), as `observe` reads them for many. */
async function grantRows(node: GrantNode, ctx: KindContext): Promise<GrantRow[]> {
  const { spec } = node;
  return ctx.client.query<GrantRow>(GRANTS_QUERY, [[spec.on], [spec.schema ?? null], [spec.role], [spec.forRole ?? null]], { database: spec.database, signal: ctx.signal });
}

/**
 * The grant option given back on the listed privileges the role holds, and on those alone: with
 * `privileges` ignored, a privilege taken away by hand stays taken (a GRANT of the list would give it
 * back). Objects the role owns hold it already.
 */
async function grantOptionStatements(node: GrantNode, ctx: KindContext): Promise<Statement[]> {
  const rows = await grantRows(node, ctx);
  if (rows.length === 0) return [];
  const want = desiredPrivileges(node.spec, rows[0]!.all_privileges);
  const objects = new Map<string, string[]>();
  const out: Statement[] = [];
  for (const r of rows) {
    const missing = want.filter((p) => r.privileges.includes(p) && !r.grantable.includes(p));
    if (r.owned || missing.length === 0) continue;
    if (node.spec.on !== 'tables' && node.spec.on !== 'sequences') out.push(grantSql(node.spec, missing));
    else if (r.object !== null) {
      // Objects lacking the same privileges' option share a statement.
      const key = missing.join(',');
      let list = objects.get(key);
      if (list === undefined) objects.set(key, (list = []));
      list.push(r.object);
    }
  }
  for (const [key, names] of objects) out.push(grantOnObjectsSql(node.spec, key.split(','), names));
  return out;
}

/**
 * Whom a grant's GRANTs and REVOKEs act as (see borrowed-roles.ts): the owners of what it is on (the
 * grant options are theirs; a privilege granted by a member of the owner is recorded as the owner's),
 * or the role whose default privileges it sets.
 */
function actingAs(node: GrantNode): ActingAs {
  const { spec } = node;
  switch (spec.on) {
    case 'database':
      return { databaseOwners: [spec.database] };
    case 'schema':
      return { schemaOwners: [spec.schema] };
    case 'tables':
    case 'sequences':
      // The tables are found, and named, through their schema: USAGE on it too.
      return spec.schema === undefined ? {} : { schemaOwners: [spec.schema], relationOwners: { schema: spec.schema, kinds: relationKinds(spec.on) } };
    case 'defaultTables':
    case 'defaultSequences':
      return { roles: [spec.forRole] };
    default:
      return spec.on satisfies never;
  }
}

/** Runs a grant's statements in its database, as `actingAs` says. */
function run(node: GrantNode, statements: readonly Statement[], ctx: KindContext): Promise<unknown> {
  return executeAs(actingAs(node), statements, ctx, { database: node.spec.database });
}

/**
 * `postgres.grant`: exact privileges of one role on one target (a database,
 * a schema, all tables or sequences of a schema, or default privileges).
 * Observed for all grants of a database in one query; extra privileges are
 * drift and are revoked on update, and so is a grant option the spec does
 * not give (`withGrantOption`); delete revokes only what the node lists.
 */
export const grantHandler: KindHandler<'postgres.grant'> = {
  observe: (nodes, ctx) =>
    observeByDatabase(nodes, ctx, async (database, group) => {
      const rows = await ctx.client.query<GrantRow>(
        GRANTS_QUERY,
        [group.map((n) => n.spec.on), group.map((n) => n.spec.schema ?? null), group.map((n) => n.spec.role), group.map((n) => n.spec.forRole ?? null)],
        { database, signal: ctx.signal },
      );
      const byIdx = new Map<number, GrantRow[]>();
      for (const r of rows) {
        let g = byIdx.get(r.idx);
        if (g === undefined) byIdx.set(r.idx, (g = []));
        g.push(r);
      }
      return new Map<NodeId, Observation>(group.map((n, i) => [n.id, observeGrant(n.spec, byIdx.get(i + 1) ?? [])]));
    }),

  async create(node, ctx) {
    await run(node, [grantSql(node.spec, grantPrivileges(node.spec.on, node.spec.privileges))], ctx);
    return { outputs: grantOutputs(node.spec) };
  },

  async update(node, diffs, ctx) {
    const want = grantPrivileges(node.spec.on, node.spec.privileges);
    // Only the fields that differ: one the node ignores (diffs leave it out) is left as found.
    const statements: Statement[] = [];
    const d = diffs.find((x) => x.path === 'privileges');
    const option = diffs.some((x) => x.path === 'withGrantOption');
    if (d !== undefined) {
      // With withGrantOption, this GRANT gives the option too.
      statements.push(grantSql(node.spec, want));
      if (!want.includes('ALL')) {
        const extra = knownPrivileges(node, d.actual).filter((p) => !want.includes(p));
        statements.push(...(await revokeStatements(node, extra, ctx)));
      }
    } else if (option && node.spec.withGrantOption) {
      statements.push(...(await grantOptionStatements(node, ctx)));
    }
    // A grant option given by hand: taken back from the listed privileges.
    if (!node.spec.withGrantOption && option) statements.push(...(await revokeStatements(node, want, ctx, 'grantOption')));
    await run(node, statements, ctx);
    return { outputs: grantOutputs(node.spec) };
  },

  async delete(node, ctx) {
    // The role, schema or database gone means nothing is granted.
    await dropped(['42704', '3F000', '3D000'], async () => run(node, await revokeStatements(node, grantPrivileges(node.spec.on, node.spec.privileges), ctx), ctx));
  },
};
