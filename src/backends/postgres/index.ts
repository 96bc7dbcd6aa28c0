import type { BackendFactory, ImpliedDependency, ImpliedDependencyNode, InfraNodeSpec, NodeRelations } from '../../infra/index.ts';
import { hasReferences, isWholeReference } from '../../runtime/index.ts';
import type { NodeId } from '../../runtime/index.ts';
import { PostgresBackend } from './backend.ts';
import { postgresConfigSchema } from './config.ts';
import type { PostgresConfig } from './config.ts';
import { POSTGRES_KINDS } from './kind.ts';
import { GRANT_OUTPUT_KEYS } from './observe.ts';

/**
 * A name within a key of several names: as written when it holds no space or quote (and is not
 * `(all)`, the word for every schema), else as a JSON string. Each key then reads one way only (role
 * `x for objects of role y` met role `x` for objects of role `y`, schema `(all)` met every schema),
 * while the keys of plain names, stored with the specs applied before, stay what they were.
 */
function keyName(name: string): string {
  return /[\s"]/.test(name) || name === '(all)' ? JSON.stringify(name) : name;
}

/** A schema's key, as `postgresResourceKey` gives it and as the nodes in it name it. */
function schemaKey(name: string, database: string): string {
  return `schema ${keyName(name)} in database ${keyName(database)}`;
}

/** Roles and databases are the server's, schemas and extensions their database's (case counts). */
function postgresResourceKey(spec: InfraNodeSpec, config: PostgresConfig): { key: string; path: string[] } | undefined {
  switch (spec.type) {
    case 'postgres.role':
      return { key: `role ${spec.name}`, path: ['name'] };
    case 'postgres.database':
      return { key: `database ${spec.name}`, path: ['name'] };
    case 'postgres.schema':
      return { key: schemaKey(spec.name, spec.database), path: ['name'] };
    case 'postgres.extension':
      return { key: `extension ${keyName(spec.name)} in database ${keyName(spec.database)}`, path: ['name'] };
    case 'postgres.grant': {
      // A grant holds the exact privileges of its role on its target (others are revoked): two nodes
      // on one target would revoke each other's.
      const database = keyName(spec.database);
      const target = spec.on === 'database' ? `database ${database}` : `${spec.on} in schema ${spec.schema === undefined ? '(all)' : keyName(spec.schema)} of database ${database}`;
      // Default privileges without forRole are the backend user's (ALTER DEFAULT PRIVILEGES without FOR
      // ROLE, as it connects): forRole naming that user is the same resource, keyed as the one without,
      // whose key, stored with the specs applied before, stays what it was.
      const forRole = spec.forRole === config.user ? undefined : spec.forRole;
      return { key: `grant on ${target} to role ${keyName(spec.role)}${forRole === undefined ? '' : ` for objects of role ${keyName(forRole)}`}`, path: ['role'] };
    }
    default:
      return undefined;
  }
}

/** A resource of the server a spec names: its key (`postgresResourceKey`'s), why in words, and the field that names it. */
interface NamedResource {
  readonly key: string;
  readonly why: string;
  readonly path: string[];
}

/**
 * The roles, databases and schemas a spec names by a name written out (a `${nodes…}` reference's takes
 * no part, nor do the groups of a `memberOf` that is one reference as a whole): a database, schema or
 * grant the role that owns it or receives it, a role the roles it is a member of, a schema, grant or
 * extension its database, a grant or extension its schema.
 */
function postgresNames(spec: InfraNodeSpec): NamedResource[] {
  const out: NamedResource[] = [];
  const literal = (v: string | undefined): v is string => v !== undefined && !hasReferences(v);
  const role = (name: string | undefined, what: string, path: string[]): void => {
    if (literal(name)) out.push({ key: `role ${name}`, why: `${what} ${name}`, path });
  };
  const database = (name: string): void => {
    if (literal(name)) out.push({ key: `database ${name}`, why: `in database ${name}`, path: ['database'] });
  };
  const schema = (name: string | undefined, db: string): void => {
    if (literal(name) && literal(db)) out.push({ key: schemaKey(name, db), why: `in schema ${name}`, path: ['schema'] });
  };
  switch (spec.type) {
    case 'postgres.role':
      // A whole reference (`memberOf: "${nodes.x.outputs.groups}"`) names its roles at run time only.
      if (!isWholeReference(spec.memberOf)) spec.memberOf.forEach((g) => role(g, 'a member of role', ['memberOf']));
      break;
    case 'postgres.database':
      role(spec.owner, 'owned by role', ['owner']);
      break;
    case 'postgres.schema':
      database(spec.database);
      role(spec.owner, 'owned by role', ['owner']);
      break;
    case 'postgres.grant':
      role(spec.role, 'granted to role', ['role']);
      database(spec.database);
      schema(spec.schema, spec.database);
      role(spec.forRole, 'for objects of role', ['forRole']);
      break;
    case 'postgres.extension':
      database(spec.database);
      schema(spec.schema, spec.database);
      break;
    default:
      break;
  }
  return out;
}

/**
 * The orderings names imply among one server's nodes, as Terraform infers them from references: each
 * resource a node names (`postgresNames`) that another node manages becomes an implicit edge (created
 * after, deleted before, in one pass), so that goals that name each other need no `dependsOn`.
 */
function postgresRelations(nodes: readonly ImpliedDependencyNode[], config: PostgresConfig): NodeRelations {
  const byKey = new Map<string, NodeId>();
  for (const n of nodes) {
    const key = postgresResourceKey(n.spec, config)?.key;
    if (key !== undefined && !hasReferences(key)) byKey.set(key, n.id);
  }
  const implied: ImpliedDependency[] = [];
  for (const n of nodes) {
    for (const { key, why, path } of postgresNames(n.spec)) {
      const on = byKey.get(key);
      if (on !== undefined && on !== n.id) implied.push({ from: n.id, on, why, path });
    }
  }
  return { implied, shared: [] };
}

/** `type: postgres`: databases, roles, schemas, grants and extensions on one PostgreSQL server, through `pg`. Connects lazily. */
export const postgresBackendFactory: BackendFactory<PostgresConfig> = {
  type: 'postgres',
  kinds: POSTGRES_KINDS,
  get configSchema() {
    return postgresConfigSchema();
  },
  resourceKey: postgresResourceKey,
  namedResources: (spec) => postgresNames(spec).map((n) => n.key),
  relations: postgresRelations,
  // What resourceKey reads: it still runs when another field of the spec has an error.
  specFields: ['name', 'database', 'on', 'schema', 'role', 'forRole'],
  // What resourceKey reads of the config (whose default privileges a grant without forRole sets): it still runs when another field of it has an error.
  configFields: ['user'],
  // As observe.ts and each kind's create/update make them (test/backends/output-declarations.test.ts holds them to it).
  outputs: {
    'postgres.database': ['name', 'oid', 'owner'],
    'postgres.role': ['name', 'oid'],
    'postgres.schema': ['name', 'database', 'oid', 'owner'],
    'postgres.grant': GRANT_OUTPUT_KEYS,
    'postgres.extension': ['name', 'database', 'oid', 'version', 'schema'],
  },
  description: 'PostgreSQL databases, roles, schemas, grants and extensions, observed in batches over a pooled connection.',
  // The server: roles and databases are the cluster's, whichever user, maintenance database, TLS mode or timeouts reach them.
  identity: (config) => ({ host: config.host, port: config.port }),
  create: (config, ctx) => new PostgresBackend(config, ctx),
};

export { PostgresBackend } from './backend.ts';
export { PgClient, CLIENT_DEADLINE_MARGIN_MS, MAX_DATABASE_POOLS } from './client.ts';
export { postgresConfigSchema, SSL_MODES } from './config.ts';
export type { PostgresConfig, SslMode } from './config.ts';
export { classifyPgError, isDuplicate, sqlState, DUPLICATE_OBJECT_CODES, THROTTLE_RETRY_MS } from './faults.ts';
export { POSTGRES_KINDS } from './kind.ts';
export type { PostgresKind } from './kind.ts';
export {
  databaseOutputs,
  extensionOutputs,
  GRANT_OUTPUT_KEYS,
  grantOutputs,
  observeDatabase,
  observeExtension,
  observeGrant,
  observeRole,
  observeSchema,
  roleOutputs,
  roleRows,
  schemaOutputs,
} from './observe.ts';
export type { DatabaseRow, ExtensionRow, GrantRow, PasswordState, RoleRow, SchemaRow } from './observe.ts';
export { parseScramVerifier, scramVerifier, verifyPassword, SCRAM_ITERATIONS } from './scram.ts';
export { quoteIdent, quoteLiteral, normalizeTimestamp, UnsafeSqlValueError } from './sql.ts';
