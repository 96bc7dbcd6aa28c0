import { canonicalEncoding, canonicalPrivilege, PG_GRANT_PRIVILEGES, utcTimestamp } from '../../infra/index.ts';
import type { InfraNodeSpecOf, PgGrantTarget } from '../../infra/index.ts';

/**
 * Statement builders. Identifiers are always quoted with `quoteIdent`;
 * values go as bind parameters where PostgreSQL takes them, and where DDL
 * cannot (PASSWORD, VALID UNTIL, ENCODING, VERSION) as `quoteLiteral`
 * strings; numbers are checked to be safe integers before they are written.
 */

export type RoleSpec = InfraNodeSpecOf<'postgres.role'>;
export type DatabaseSpec = InfraNodeSpecOf<'postgres.database'>;
export type SchemaSpec = InfraNodeSpecOf<'postgres.schema'>;
export type GrantSpec = InfraNodeSpecOf<'postgres.grant'>;
export type ExtensionSpec = InfraNodeSpecOf<'postgres.extension'>;

/** One SQL statement. `sensitive` ones carry a password verifier: their text is never logged. */
export interface Statement {
  readonly text: string;
  readonly sensitive?: boolean | undefined;
}

/** A thrown value for input that cannot be written safely (never reached with schema-validated specs). */
export class UnsafeSqlValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeSqlValueError';
  }
}

/** `"name"` with embedded quotes doubled: any string becomes exactly one identifier. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\0')) throw new UnsafeSqlValueError('an identifier must be non-empty and free of NUL characters');
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * A string literal that means exactly `value` whatever `standard_conforming_strings`
 * says: quotes doubled, and with backslashes an `E''` string with them doubled
 * (as PostgreSQL's own `quote_literal`).
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new UnsafeSqlValueError('a literal cannot contain a NUL character');
  const quoted = value.replaceAll("'", "''");
  return value.includes('\\') ? `E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`;
}

/** An anonymous PL/pgSQL block: its body a string constant, so that the literals in it need no other quoting. */
function doBlock(body: string): Statement {
  return { text: `DO ${quoteLiteral(body)}` };
}

/** An integer written into DDL, checked first (CONNECTION LIMIT takes no bind parameter). */
export function sqlInteger(n: number): string {
  if (!Number.isSafeInteger(n)) throw new UnsafeSqlValueError('expected an integer');
  return String(n);
}

/** `validUntil` as the server should read it, and as `roleRows` reads the server's: `utcTimestamp`, or "infinity". */
export function normalizeTimestamp(value: string): string {
  if (value === 'infinity') return value;
  const utc = utcTimestamp(value);
  if (utc === undefined) throw new UnsafeSqlValueError('validUntil is not a valid timestamp');
  return utc;
}

/** Milliseconds since the epoch of a `validUntil`, `Infinity` for "infinity". */
export function timestampMs(value: string): number {
  return value === 'infinity' ? Infinity : Date.parse(normalizeTimestamp(value));
}

// ---------------------------------------------------------------- roles

/** The role attributes the spec manages, by spec field. */
export const ROLE_ATTRIBUTE_FIELDS = ['login', 'superuser', 'createdb', 'createrole', 'inherit', 'replication', 'bypassRls', 'connectionLimit', 'validUntil'] as const;
export type RoleAttributeField = (typeof ROLE_ATTRIBUTE_FIELDS)[number];

function roleAttribute(spec: RoleSpec, field: RoleAttributeField): string | undefined {
  switch (field) {
    case 'login':
      return spec.login ? 'LOGIN' : 'NOLOGIN';
    case 'superuser':
      return spec.superuser ? 'SUPERUSER' : 'NOSUPERUSER';
    case 'createdb':
      return spec.createdb ? 'CREATEDB' : 'NOCREATEDB';
    case 'createrole':
      return spec.createrole ? 'CREATEROLE' : 'NOCREATEROLE';
    case 'inherit':
      return spec.inherit ? 'INHERIT' : 'NOINHERIT';
    case 'replication':
      return spec.replication ? 'REPLICATION' : 'NOREPLICATION';
    case 'bypassRls':
      return spec.bypassRls ? 'BYPASSRLS' : 'NOBYPASSRLS';
    case 'connectionLimit':
      return spec.connectionLimit === undefined ? undefined : `CONNECTION LIMIT ${sqlInteger(spec.connectionLimit)}`;
    case 'validUntil':
      return spec.validUntil === undefined ? undefined : `VALID UNTIL ${quoteLiteral(normalizeTimestamp(spec.validUntil))}`;
    default:
      return field satisfies never;
  }
}

function roleAttributes(spec: RoleSpec, fields: readonly RoleAttributeField[] = ROLE_ATTRIBUTE_FIELDS): string[] {
  return fields.map((f) => roleAttribute(spec, f)).filter((a): a is string => a !== undefined);
}

/**
 * One statement that creates the role with every attribute and membership.
 * `verifier` is a SCRAM verifier computed here, so the password itself never
 * reaches the server, its logs or ours.
 */
export function createRoleSql(spec: RoleSpec, verifier?: string, options: { memberships?: boolean } = {}): Statement {
  const parts = [`CREATE ROLE ${quoteIdent(spec.name)} WITH`, ...roleAttributes(spec)];
  if (verifier !== undefined) parts.push(`PASSWORD ${quoteLiteral(verifier)}`);
  if ((options.memberships ?? true) && spec.memberOf.length > 0) parts.push(`IN ROLE ${spec.memberOf.map(quoteIdent).join(', ')}`);
  return { text: parts.join(' '), sensitive: verifier !== undefined };
}

/**
 * Sets the given attributes (and the password when given) in one statement,
 * or none when there is nothing to set. Only the differing attributes are
 * named: a CREATEROLE (non-superuser) admin may not even restate
 * NOSUPERUSER or NOCREATEDB.
 */
export function alterRoleSql(spec: RoleSpec, fields: readonly RoleAttributeField[], verifier?: string): Statement | undefined {
  const parts = roleAttributes(spec, fields);
  if (verifier !== undefined) parts.push(`PASSWORD ${quoteLiteral(verifier)}`);
  if (parts.length === 0) return undefined;
  return { text: `ALTER ROLE ${quoteIdent(spec.name)} WITH ${parts.join(' ')}`, sensitive: verifier !== undefined };
}

export function grantMembershipSql(role: string, group: string): Statement {
  return { text: `GRANT ${quoteIdent(group)} TO ${quoteIdent(role)}` };
}

/**
 * Ends `role`'s membership in `group` as granted by `grantor` (the current
 * user when absent). From PostgreSQL 16 a membership is kept once per
 * grantor, and a REVOKE without GRANTED BY only removes the current user's:
 * one granted by another role stays, with a mere warning.
 */
export function revokeMembershipSql(role: string, group: string, grantor?: string): Statement {
  return { text: `REVOKE ${quoteIdent(group)} FROM ${quoteIdent(role)}${grantor === undefined ? '' : ` GRANTED BY ${quoteIdent(grantor)}`}` };
}

/**
 * Whether the pg_auth_members row `m` is the grant PostgreSQL 16 and later
 * give a role's creator (one not a superuser) on the role it creates: ADMIN
 * OPTION alone, neither INHERIT nor SET, granted by the bootstrap superuser
 * (oid 10) to the connected user, not a superuser. It lets the creator
 * administer the role, not use it; it is no membership a goal declares, and
 * the creator may not revoke it. A superuser's grant of the same options is
 * recorded alike, so only the connected user's own, which no other user made
 * for it but a superuser, is taken for one. Never true before 16 (no INHERIT
 * or SET options there).
 */
const creatorGrant = (m: string): string =>
  `(${m}.grantor = 10 AND ${m}.admin_option AND (to_jsonb(${m}) ->> 'inherit_option') = 'false' AND (to_jsonb(${m}) ->> 'set_option') = 'false'
    AND ${m}.member IN (SELECT oid FROM pg_roles WHERE rolname = current_user AND NOT rolsuper)) IS TRUE`;

/**
 * `$1` a role, `$2` roles it is to leave: who granted each of those
 * memberships, on PostgreSQL 16 and later only (before, a membership is
 * kept once whoever granted it, a plain REVOKE removes it, and GRANTED BY
 * may name only the current user); the creator's grant (`creatorGrant`) is
 * no membership, and is left.
 */
export const MEMBERSHIP_GRANTORS_QUERY = `SELECT g.rolname AS role, gr.rolname AS grantor
FROM pg_auth_members m JOIN pg_roles mr ON mr.oid = m.member JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles gr ON gr.oid = m.grantor
WHERE mr.rolname = $1 AND g.rolname = ANY($2::name[]) AND current_setting('server_version_num')::int >= 160000 AND NOT ${creatorGrant('m')}`;

export function dropRoleSql(name: string): Statement {
  return { text: `DROP ROLE ${quoteIdent(name)}` };
}

/**
 * What `borrowedRoles` (borrowed-roles.ts) reads: of the roles named in `$1` and those owning the
 * databases `$2`, the schemas `$3` (a schema of `pg_database_owner`: the connected database's owner),
 * the relations of kinds `$5` in schema `$4` and the extensions `$6`, each one whose privileges the
 * connected user lacks (it inherits from it, and from PostgreSQL 16 may SET ROLE to it); for each,
 * whether it may grant itself the membership for a while: it may grant the role (ADMIN OPTION, or
 * before 16 CREATEROLE on a role not a superuser) and holds no membership the grant would change and
 * its revoke end (from 16, its own grant of the role to itself; before, any membership); and the
 * connected user (`me`: the hint of a refusal names it as the grants do, `CURRENT_USER`).
 */
export const BORROW_QUERY = `WITH wanted AS (
  SELECT unnest($1::name[]) AS name
  UNION SELECT pg_get_userbyid(d.datdba) FROM pg_database d WHERE d.datname = ANY($2::name[])
  UNION SELECT pg_get_userbyid(CASE WHEN pg_get_userbyid(n.nspowner) = 'pg_database_owner'
      THEN (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()) ELSE n.nspowner END)
    FROM pg_namespace n WHERE n.nspname = ANY($3::name[])
  UNION SELECT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $4 AND c.relkind = ANY($5::"char"[])
  UNION SELECT pg_get_userbyid(e.extowner) FROM pg_extension e WHERE e.extname = ANY($6::name[])
), me AS (SELECT oid, rolcreaterole FROM pg_roles WHERE rolname = current_user),
v AS (SELECT current_setting('server_version_num')::int >= 160000 AS per_grant)
SELECT r.rolname AS role, current_user AS me, v.per_grant,
  (EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid AND m.admin_option AND pg_has_role(current_user, m.member, 'MEMBER'))
    OR (NOT v.per_grant AND me.rolcreaterole AND NOT r.rolsuper))
  AND NOT CASE WHEN v.per_grant
    THEN EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid AND m.member = me.oid AND m.grantor = me.oid)
    ELSE pg_has_role(current_user, r.oid, 'MEMBER') END AS borrowable
FROM wanted w JOIN pg_roles r ON r.rolname = w.name CROSS JOIN me CROSS JOIN v
WHERE NOT pg_has_role(current_user, r.oid, 'USAGE') OR NOT pg_has_role(current_user, r.oid, CASE WHEN v.per_grant THEN 'SET' ELSE 'USAGE' END)
ORDER BY 1`;

/** Whether the connected user is a superuser (who has every role's privileges, and borrows none). */
export const SUPERUSER_QUERY = 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user';

/**
 * Makes the connected user a member of `role` that inherits its privileges and (from PostgreSQL 16,
 * `perGrant`) may SET ROLE to it, as its own grant (`GRANTED BY`: the one `returnRoleSql` ends), and
 * makes sure, in the borrowing transaction, that this grant made the membership: one the revoke would
 * end (from 16, the user's own grant to itself; before, any) that `BORROW_QUERY` did not find, a round
 * trip earlier, but that was committed by the time of the grant fails the borrow (40001: retried)
 * rather than being revoked with it (a grant not yet committed makes this one wait, then fail on it).
 * Such a membership's row is not this transaction's (the grant left it as it was), except from 16 where
 * the grant updates one with other INHERIT or SET options: its row is then this transaction's as an
 * inserted one would be, but only an insert records the grantor's dependency (pg_shdepend) anew.
 */
export function borrowRoleSql(role: string, perGrant: boolean): Statement {
  const mine = (alias: string): string => `${alias}.xmin = pg_current_xact_id()::xid`;
  const dependency = `EXISTS (SELECT 1 FROM pg_shdepend d WHERE d.classid = 'pg_auth_members'::regclass AND d.objid = m.oid AND d.refobjid = m.grantor AND ${mine('d')})`;
  const made = `SELECT 1 FROM pg_auth_members m WHERE m.roleid = ${quoteLiteral(quoteIdent(role))}::regrole AND m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND ${mine('m')}${perGrant ? ` AND m.grantor = m.member AND ${dependency}` : ''}`;
  return doBlock(
    [
      'BEGIN',
      `GRANT ${quoteIdent(role)} TO CURRENT_USER${perGrant ? ' WITH INHERIT TRUE, SET TRUE GRANTED BY CURRENT_USER' : ''};`,
      `IF NOT EXISTS (${made}) THEN`,
      `RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = format('role "%s" was granted to "%s" meanwhile: not borrowed, lest the revoke that ends the borrowing end that membership', ${quoteLiteral(role)}, current_user);`,
      'END IF;',
      'END',
    ].join('\n'),
  );
}

/** Ends the membership `borrowRoleSql` made. */
export function returnRoleSql(role: string, perGrant: boolean): Statement {
  return { text: `REVOKE ${quoteIdent(role)} FROM CURRENT_USER${perGrant ? ' GRANTED BY CURRENT_USER' : ''}` };
}

// ------------------------------------------------------------ databases

/** `withOwner: false` leaves out the owner (the database is then the connected user's). */
export function createDatabaseSql(spec: DatabaseSpec, options: { withOwner?: boolean } = {}): Statement {
  const parts = [`CREATE DATABASE ${quoteIdent(spec.name)}`];
  if (spec.owner !== undefined && (options.withOwner ?? true)) parts.push(`OWNER ${quoteIdent(spec.owner)}`);
  // By its canonical name: the one the server reports, whatever alias the goal wrote.
  parts.push(`ENCODING ${quoteLiteral(canonicalEncoding(spec.encoding))}`);
  if (spec.template !== undefined) parts.push(`TEMPLATE ${quoteIdent(spec.template)}`);
  if (spec.connectionLimit !== undefined) parts.push(`CONNECTION LIMIT ${sqlInteger(spec.connectionLimit)}`);
  return { text: parts.join(' ') };
}

/** Gives database `name` to `owner` (absent: to the connected user). */
export function databaseOwnerSql(name: string, owner: string | undefined): Statement {
  return { text: `ALTER DATABASE ${quoteIdent(name)} OWNER TO ${owner === undefined ? 'CURRENT_USER' : quoteIdent(owner)}` };
}

/** The corrections of the database's mutable managed fields that differ (`fields`): one the node ignores, or that is as desired, is left alone. */
export function alterDatabaseSql(spec: DatabaseSpec, fields: { owner: boolean; connectionLimit: boolean }): Statement[] {
  const out: Statement[] = [];
  if (fields.owner && spec.owner !== undefined) out.push(databaseOwnerSql(spec.name, spec.owner));
  if (fields.connectionLimit && spec.connectionLimit !== undefined) {
    out.push({ text: `ALTER DATABASE ${quoteIdent(spec.name)} WITH CONNECTION LIMIT ${sqlInteger(spec.connectionLimit)}` });
  }
  return out;
}

/**
 * Run (as the owner of database `name`, borrowed) before the database is given to the backend user to be
 * dropped: fails, as the drop would (55006), while sessions the drop cannot end are on it, so that it is
 * not given over for a drop bound to fail (waiting, as the drop would, for those leaving). Without `force`, any other session; with it, those the user
 * may not signal once the owner's membership is returned (superusers', and roles' it neither is a
 * member of nor may signal as pg_signal_backend): it ends the others now, the owner's among them.
 */
export function dropDatabaseReadySql(name: string, force: boolean): Statement {
  const db = quoteLiteral(name);
  const others = `FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid WHERE a.datname = ${db} AND a.pid <> pg_backend_pid()`;
  const endable = `NOT r.rolsuper AND (pg_has_role(a.usesysid, 'USAGE') OR pg_has_role('pg_signal_backend', 'USAGE'))`;
  const body = [
    'DECLARE n bigint;',
    'BEGIN',
    ...(force ? [`PERFORM pg_terminate_backend(a.pid, 10000) ${others} AND ${endable};`] : []),
    // As DROP DATABASE itself, up to 5 s for sessions on their way out (a pool just closed: ours).
    'FOR i IN 1..50 LOOP',
    'PERFORM pg_stat_clear_snapshot();',
    `SELECT count(*) INTO n ${others}${force ? ` AND NOT (${endable})` : ''};`,
    'EXIT WHEN n = 0;',
    'PERFORM pg_sleep(0.1);',
    'END LOOP;',
    'IF n > 0 THEN',
    `RAISE EXCEPTION USING ERRCODE = '55006', MESSAGE = format('database "%s" is being accessed by other users', ${db}),`,
    `DETAIL = format('There are %s other session(s) using the database${force ? ' that the backend user may not end' : ''}.', n);`,
    'END IF;',
    'END',
  ].join('\n');
  return doBlock(body);
}

/** `WITH (FORCE)` ends other sessions; used only when the spec says `force: true`. */
export function dropDatabaseSql(name: string, force: boolean): Statement {
  return { text: `DROP DATABASE ${quoteIdent(name)}${force ? ' WITH (FORCE)' : ''}` };
}

// -------------------------------------------------------------- schemas

export function createSchemaSql(spec: SchemaSpec): Statement {
  return { text: `CREATE SCHEMA ${quoteIdent(spec.name)}${spec.owner === undefined ? '' : ` AUTHORIZATION ${quoteIdent(spec.owner)}`}` };
}

export function alterSchemaSql(spec: SchemaSpec): Statement[] {
  return spec.owner === undefined ? [] : [{ text: `ALTER SCHEMA ${quoteIdent(spec.name)} OWNER TO ${quoteIdent(spec.owner)}` }];
}

export function dropSchemaSql(name: string, cascade: boolean): Statement {
  return { text: `DROP SCHEMA ${quoteIdent(name)}${cascade ? ' CASCADE' : ' RESTRICT'}` };
}

// ----------------------------------------------------------- extensions

export function createExtensionSql(spec: ExtensionSpec): Statement {
  const parts = [`CREATE EXTENSION ${quoteIdent(spec.name)}`];
  if (spec.schema !== undefined) parts.push(`SCHEMA ${quoteIdent(spec.schema)}`);
  if (spec.version !== undefined) parts.push(`VERSION ${quoteLiteral(spec.version)}`);
  return { text: parts.join(' ') };
}

export function alterExtensionSql(spec: ExtensionSpec, fields: { version: boolean; schema: boolean }): Statement[] {
  const out: Statement[] = [];
  if (fields.version && spec.version !== undefined) out.push({ text: `ALTER EXTENSION ${quoteIdent(spec.name)} UPDATE TO ${quoteLiteral(spec.version)}` });
  if (fields.schema && spec.schema !== undefined) out.push({ text: `ALTER EXTENSION ${quoteIdent(spec.name)} SET SCHEMA ${quoteIdent(spec.schema)}` });
  return out;
}

export function dropExtensionSql(name: string): Statement {
  return { text: `DROP EXTENSION ${quoteIdent(name)}` };
}

// --------------------------------------------------------------- grants

/**
 * The canonical privilege keywords of a grant (upper case, `TEMP` as
 * `TEMPORARY`), each checked against the allow-list of its object kind so
 * only known keywords are ever written into SQL. `ALL` stays `ALL`.
 */
export function grantPrivileges(on: PgGrantTarget, privileges: readonly string[]): string[] {
  const allowed: readonly string[] = PG_GRANT_PRIVILEGES[on];
  const out = new Set<string>();
  for (const p of privileges) {
    const c = canonicalPrivilege(p);
    if (!allowed.includes(c)) throw new UnsafeSqlValueError(`"${p}" is not a privilege on ${on}`);
    out.add(c === 'TEMP' ? 'TEMPORARY' : c);
  }
  return [...out].sort();
}

function grantTarget(spec: GrantSpec): { prefix: string; object: string } {
  const schema = spec.schema === undefined ? undefined : quoteIdent(spec.schema);
  const need = (): string => {
    if (schema === undefined) throw new UnsafeSqlValueError(`schema is required for on: ${spec.on}`);
    return schema;
  };
  const defaults = (objects: string): { prefix: string; object: string } => ({
    prefix: `ALTER DEFAULT PRIVILEGES${spec.forRole === undefined ? '' : ` FOR ROLE ${quoteIdent(spec.forRole)}`}${schema === undefined ? '' : ` IN SCHEMA ${schema}`} `,
    object: objects,
  });
  switch (spec.on) {
    case 'database':
      return { prefix: '', object: `DATABASE ${quoteIdent(spec.database)}` };
    case 'schema':
      return { prefix: '', object: `SCHEMA ${need()}` };
    case 'tables':
      return { prefix: '', object: `ALL TABLES IN SCHEMA ${need()}` };
    case 'sequences':
      return { prefix: '', object: `ALL SEQUENCES IN SCHEMA ${need()}` };
    case 'defaultTables':
      return defaults('TABLES');
    case 'defaultSequences':
      return defaults('SEQUENCES');
    default:
      return spec.on satisfies never;
  }
}

/**
 * `GRANT <privileges> ON <target> TO <role>` (or its default-privileges form), `WITH GRANT OPTION`
 * when the spec says `withGrantOption`; privileges already canonical.
 */
export function grantSql(spec: GrantSpec, privileges: readonly string[]): Statement {
  const t = grantTarget(spec);
  return { text: `${t.prefix}GRANT ${privileges.join(', ')} ON ${t.object} TO ${quoteIdent(spec.role)}${spec.withGrantOption ? ' WITH GRANT OPTION' : ''}` };
}

/** What a revoke takes: the privileges themselves, or only the grant option on them (`REVOKE GRANT OPTION FOR`). */
export type RevokeWhat = 'privileges' | 'grantOption';

const revokeKeyword = (what: RevokeWhat): string => (what === 'grantOption' ? 'REVOKE GRANT OPTION FOR' : 'REVOKE');

export function revokeSql(spec: GrantSpec, privileges: readonly string[], what: RevokeWhat = 'privileges'): Statement {
  const t = grantTarget(spec);
  return { text: `${t.prefix}${revokeKeyword(what)} ${privileges.join(', ')} ON ${t.object} FROM ${quoteIdent(spec.role)}` };
}

/** `GRANT <privileges> ON TABLE|SEQUENCE s.a, s.b TO <role>` (`WITH GRANT OPTION` when the spec says so): a tables or sequences grant on the objects named. */
export function grantOnObjectsSql(spec: GrantSpec, privileges: readonly string[], objects: readonly string[]): Statement {
  const schema = quoteIdent(spec.schema ?? '');
  const list = objects.map((o) => `${schema}.${quoteIdent(o)}`).join(', ');
  return { text: `GRANT ${privileges.join(', ')} ON ${spec.on === 'sequences' ? 'SEQUENCE' : 'TABLE'} ${list} TO ${quoteIdent(spec.role)}${spec.withGrantOption ? ' WITH GRANT OPTION' : ''}` };
}

/** `REVOKE <privileges> ON TABLE|SEQUENCE s.a, s.b FROM <role>`: a tables or sequences grant's revoke on the objects named. */
export function revokeOnObjectsSql(spec: GrantSpec, privileges: readonly string[], objects: readonly string[], what: RevokeWhat = 'privileges'): Statement {
  const schema = quoteIdent(spec.schema ?? '');
  const list = objects.map((o) => `${schema}.${quoteIdent(o)}`).join(', ');
  return { text: `${revokeKeyword(what)} ${privileges.join(', ')} ON ${spec.on === 'sequences' ? 'SEQUENCE' : 'TABLE'} ${list} FROM ${quoteIdent(spec.role)}` };
}

/**
 * The tables (`$3` '{r,p,v,m,f}') or sequences ('{S}') of schema `$1`, each with whether role `$2`
 * owns it: a revoke ON ALL TABLES would take from an owner the privileges it holds on its own.
 */
export const SCHEMA_OBJECTS_OWNED_QUERY = `SELECT c.relname AS name, COALESCE(c.relowner = r.oid, false) AS owned
FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid LEFT JOIN pg_roles r ON r.rolname = $2
WHERE n.nspname = $1 AND c.relkind = ANY($3::"char"[])`;

/**
 * Whether role `$3` owns the target of a grant `on` (`$1`) database (the connected one) or schema
 * (`$2`): an owner's privileges there are its own, which a revoke must not take.
 */
export const TARGET_OWNED_QUERY = `SELECT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = $3 AND r.oid = CASE $1::text
    WHEN 'database' THEN (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database())
    WHEN 'schema' THEN (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = $2) END) AS owned`;

// ------------------------------------------------------ catalog queries

/**
 * All requested roles in one query. `$1` the names; `$2` the names whose
 * stored verifier is wanted (only used by the pg_authid variant). The names
 * are bound as `name[]` (identifiers are at most 63 bytes, so the cast
 * truncates nothing): `rolname = ANY` then compares like for like and
 * PostgreSQL hashes the array, where `text[]` compared every row with every
 * name; the memberships of the requested roles (not of every role on the
 * server) are aggregated once, not queried per row, each group once
 * (PostgreSQL 16 and later keep a membership once per grantor; the grant
 * they give a role's creator, `creatorGrant`, is not one). A fresh
 * server session ran 1,000 roles in ~1 ms instead of ~8.
 *
 * The roles come back as one JSON array of arrays, a `RoleRow`'s fields in
 * order, read by `roleRows` (each membership grant's options last: ADMIN, and
 * from PostgreSQL 16 INHERIT and SET, which `to_jsonb` reads as null before): one `JSON.parse` instead of pg reading and
 * converting eleven fields per row. For 1,000 roles in a fresh process (a
 * one-shot command) that is 10 ms instead of 16; the server spends ~0.7 ms
 * more building it, which a warm daemon pays (5.6 ms instead of 4.0).
 */
export function rolesQuery(readVerifiers: boolean): string {
  const source = readVerifiers ? 'pg_authid' : 'pg_roles';
  const verifier = readVerifiers ? 'CASE WHEN r.rolname = ANY($2::name[]) THEN r.rolpassword END' : 'NULL::text';
  return `SELECT COALESCE(json_agg(json_build_array(r.oid::int8, r.rolname, r.rolsuper, r.rolinherit,
  r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit,
  CASE WHEN isfinite(r.rolvaliduntil) THEN to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ELSE r.rolvaliduntil::text END,
  COALESCE(ms.member_of, '{}'),
  ${verifier},
  COALESCE(ms.options, '[]'))), '[]') AS roles
FROM ${source} r
LEFT JOIN (SELECT m.member, array_agg(DISTINCT g.rolname::text ORDER BY g.rolname::text) AS member_of,
  json_agg(json_build_array(g.rolname::text, m.admin_option, (to_jsonb(m) ->> 'inherit_option')::bool, (to_jsonb(m) ->> 'set_option')::bool)) AS options
  FROM pg_auth_members m JOIN ${source} g ON g.oid = m.roleid JOIN ${source} mr ON mr.oid = m.member
  WHERE mr.rolname = ANY($1::name[]) AND NOT ${creatorGrant('m')} GROUP BY m.member) ms ON ms.member = r.oid
WHERE r.rolname = ANY($1::name[])`;
}

/** Whether the connected user may read stored password verifiers (superusers can). */
export const CAN_READ_VERIFIERS_QUERY = `SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS readable`;

/** `$1` database names. */
export const DATABASES_QUERY = `SELECT d.oid::int8 AS oid, d.datname AS name, pg_get_userbyid(d.datdba) AS owner,
  pg_encoding_to_char(d.encoding) AS encoding, d.datconnlimit AS connection_limit
FROM pg_database d WHERE d.datname = ANY($1::text[])`;

/**
 * What makes a database "hold data": its objects outside the system schemas that no extension installed
 * (tables, views, sequences, composite types, functions and procedures, enums, domains, range types) and
 * its large objects. Counting tables alone let a database of large objects, sequences and functions be
 * dropped without `force`.
 */
export const USER_OBJECTS_QUERY = `WITH user_ns AS (
  SELECT oid FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%'
), ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e')
SELECT ((SELECT count(*) FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM user_ns) AND c.relkind IN ('r', 'p', 'm', 'f', 'v', 'S', 'c')
      AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid))
  + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM user_ns)
      AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid))
  + (SELECT count(*) FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM user_ns) AND t.typtype IN ('e', 'd', 'r')
      AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid))
  + (SELECT count(*) FROM pg_largeobject_metadata))::int AS objects`;

/** `$1` schema names, in the connected database. */
export const SCHEMAS_QUERY = `SELECT n.oid::int8 AS oid, n.nspname AS name, pg_get_userbyid(n.nspowner) AS owner
FROM pg_namespace n WHERE n.nspname = ANY($1::text[])`;

/** `$1` extension names, in the connected database. */
export const EXTENSIONS_QUERY = `SELECT e.oid::int8 AS oid, e.extname AS name, e.extversion AS version, n.nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = ANY($1::text[])`;

/**
 * Every grant of one database in one query. Parallel arrays, one entry per
 * grant node: `$1` on, `$2` schema, `$3` role, `$4` forRole (NULL: the
 * connected user). One row per object the grant covers (`object` NULL for
 * a schema with no tables or sequences, and for default privileges); no row
 * when the target does not exist. `privileges` are what the role holds
 * itself (not through PUBLIC or membership), `grantable` those of them it
 * holds with the grant option; `owned` whether the role owns the object (it
 * holds every privilege on it implicitly, grant option included); `all_privileges`
 * the full set for that object kind on this server version.
 */
export const GRANTS_QUERY = `WITH want AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS w(target, schema, role, for_role, idx)
)
SELECT w.idx::int AS idx, o.object, COALESCE(o.owned, false) AS owned, h.privileges, h.grantable,
  ARRAY(SELECT a.privilege_type FROM aclexplode(acldefault(o.kind, 10::oid)) a WHERE a.grantee = 10::oid ORDER BY 1) AS all_privileges
FROM want w
LEFT JOIN pg_roles r ON r.rolname = w.role
CROSS JOIN LATERAL (
  SELECT current_database()::text AS object, 'd'::"char" AS kind, d.datdba = r.oid AS owned, COALESCE(d.datacl, acldefault('d', d.datdba)) AS acl
  FROM pg_database d WHERE w.target = 'database' AND d.datname = current_database()
  UNION ALL
  SELECT n.nspname::text, 'n'::"char", n.nspowner = r.oid, COALESCE(n.nspacl, acldefault('n', n.nspowner))
  FROM pg_namespace n WHERE w.target = 'schema' AND n.nspname = w.schema
  UNION ALL
  SELECT c.relname::text, CASE w.target WHEN 'tables' THEN 'r' ELSE 's' END::"char", c.relowner = r.oid,
    CASE WHEN c.oid IS NULL THEN NULL ELSE COALESCE(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) END
  FROM pg_namespace n
  LEFT JOIN pg_class c ON c.relnamespace = n.oid
    AND c.relkind = ANY(CASE w.target WHEN 'tables' THEN '{r,p,v,m,f}'::"char"[] ELSE '{S}'::"char"[] END)
  WHERE w.target IN ('tables', 'sequences') AND n.nspname = w.schema
  UNION ALL
  SELECT NULL::text, CASE w.target WHEN 'defaultTables' THEN 'r' ELSE 's' END::"char", false,
    (SELECT da.defaclacl FROM pg_default_acl da
      WHERE da.defaclrole = (SELECT fr.oid FROM pg_roles fr WHERE fr.rolname = COALESCE(w.for_role, current_user))
        AND da.defaclnamespace = CASE WHEN w.schema IS NULL THEN 0::oid ELSE (SELECT s.oid FROM pg_namespace s WHERE s.nspname = w.schema) END
        AND da.defaclobjtype = CASE w.target WHEN 'defaultTables' THEN 'r' ELSE 'S' END::"char")
  WHERE w.target IN ('defaultTables', 'defaultSequences')
    AND (w.schema IS NULL OR EXISTS (SELECT 1 FROM pg_namespace s WHERE s.nspname = w.schema))
) o
CROSS JOIN LATERAL (
  -- One pass over the object's ACL for both: held, and held with the grant option.
  SELECT COALESCE(array_agg(DISTINCT a.privilege_type ORDER BY a.privilege_type), '{}') AS privileges,
    COALESCE(array_agg(DISTINCT a.privilege_type ORDER BY a.privilege_type) FILTER (WHERE a.is_grantable), '{}') AS grantable
  FROM aclexplode(o.acl) a WHERE a.grantee = r.oid
) h`;
