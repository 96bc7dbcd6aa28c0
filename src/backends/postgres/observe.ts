import { canonicalEncoding, SECRET_MASK, utcTimestamp } from '../../infra/index.ts';
import { fault } from '../../runtime/index.ts';
import type { FieldDiff, Observation, ObservationMemo, Outputs } from '../../runtime/index.ts';
import { grantPrivileges, normalizeTimestamp } from './sql.ts';
import type { DatabaseSpec, ExtensionSpec, GrantSpec, RoleSpec, SchemaSpec } from './sql.ts';

/**
 * Pure: catalog rows → Observation, one function per kind. A field the spec
 * leaves unset is not managed and never drifts. Diffs name the spec field
 * (`connectionLimit: desired 10, actual 50`); secrets are masks only.
 */

/** The memo key of a role's password digest; earlier releases kept it under the same key in outputs (still read there while the memo has none). */
export const PASSWORD_DIGEST = 'passwordDigest';

/** A role as `rolesQuery` returns it (see `roleRows`). */
export interface RoleRow {
  readonly oid: number | string;
  readonly name: string;
  readonly superuser: boolean;
  readonly inherit: boolean;
  readonly createrole: boolean;
  readonly createdb: boolean;
  readonly login: boolean;
  readonly replication: boolean;
  readonly bypassrls: boolean;
  readonly connection_limit: number;
  /** NULL: no expiry set; else as `normalizeTimestamp` writes it, to the microsecond ("infinity" and "-infinity" too). */
  readonly valid_until: string | null;
  readonly member_of: readonly string[];
  /** The stored verifier, only read for roles with a managed password. Never leaves the backend. */
  readonly verifier: string | null;
  /** Each grant of a membership (one per grantor from PostgreSQL 16) with its options; `inherit` and `set` null before 16. */
  readonly memberships: readonly MembershipGrant[];
}

/** A grant of membership in `group`, with its options. */
export interface MembershipGrant {
  readonly group: string;
  readonly admin: boolean;
  readonly inherit: boolean | null;
  readonly set: boolean | null;
}

/**
 * The roles of `rolesQuery`'s one JSON value: an array of arrays, each a
 * `RoleRow`'s fields in order.
 */
export function roleRows(json: unknown): RoleRow[] {
  if (!Array.isArray(json)) throw new TypeError(`the roles query returned ${typeof json}, not a JSON array`);
  return json.map((r: unknown): RoleRow => {
    if (!Array.isArray(r) || r.length !== 14 || typeof r[1] !== 'string') throw new TypeError(`the roles query returned a row that is not a role: ${JSON.stringify(r)}`);
    const [oid, name, superuser, inherit, createrole, createdb, login, replication, bypassrls, connection_limit, validUntil, member_of, verifier, options] = r as [
      number,
      string,
      boolean,
      boolean,
      boolean,
      boolean,
      boolean,
      boolean,
      boolean,
      number,
      string | null,
      string[],
      string | null,
      [string, boolean, boolean | null, boolean | null][],
    ];
    // To the microsecond, in the text a goal's validUntil is compared in (infinity and -infinity as they are).
    const valid_until = validUntil === null ? null : (utcTimestamp(validUntil) ?? validUntil);
    const memberships = options.map(([group, admin, inheritOption, set]) => ({ group, admin, inherit: inheritOption, set }));
    return { oid, name, superuser, inherit, createrole, createdb, login, replication, bypassrls, connection_limit, valid_until, member_of, verifier, memberships };
  });
}

/**
 * What is known of a managed password: `matches` / `differs` (checked
 * against the stored verifier, or against the digest recorded at the last
 * set when the verifier is not readable; a digest known is returned in the
 * observation's memo), `unknown` when it cannot be
 * checked (then it is set once so its digest can be tracked). A password that
 * `differs` keeps the digest recorded at the last set, if any (it still
 * names the password last set), and is `rotated` when the secret is not the
 * one that digest records: the desired password changed, not the role.
 */
export type PasswordState =
  | { readonly status: 'unmanaged' }
  | { readonly status: 'matches'; readonly digest: string }
  | { readonly status: 'differs'; readonly rotated: boolean; readonly digest?: string | undefined }
  | { readonly status: 'unknown' };

export interface DatabaseRow {
  readonly oid: number | string;
  readonly name: string;
  readonly owner: string;
  readonly encoding: string;
  readonly connection_limit: number;
}

export interface SchemaRow {
  readonly oid: number | string;
  readonly name: string;
  readonly owner: string;
}

export interface ExtensionRow {
  readonly oid: number | string;
  readonly name: string;
  readonly version: string;
  readonly schema: string;
}

/** A row of `GRANTS_QUERY`. */
export interface GrantRow {
  readonly idx: number;
  readonly object: string | null;
  /** The role owns the object: it holds every privilege there implicitly, so more than the grant lists is no drift. */
  readonly owned: boolean;
  readonly privileges: readonly string[];
  /** Those of `privileges` held with the grant option. */
  readonly grantable: readonly string[];
  readonly all_privileges: readonly string[];
}

/**
 * Each kind's outputs (the postgres factory declares their keys), from its spec and its row; the row
 * `undefined` where a create or update could not read it back (dropped again at once by someone else).
 * Every declared key is given even then, null: a reference to one waits for the object
 * (`outputs-missing`), where a key left out would be an output the node does not give, a permanent
 * fault of the node that refers to it (`output-unknown`).
 */
export function databaseOutputs(spec: DatabaseSpec, row: Pick<DatabaseRow, 'oid' | 'owner'> | undefined): Outputs {
  return { name: spec.name, oid: row === undefined ? null : Number(row.oid), owner: row?.owner ?? null };
}

/** A role's outputs (see `databaseOutputs`). */
export function roleOutputs(spec: RoleSpec, row: Pick<RoleRow, 'oid'> | undefined): Outputs {
  return { name: spec.name, oid: row === undefined ? null : Number(row.oid) };
}

/** A schema's outputs (see `databaseOutputs`). */
export function schemaOutputs(spec: SchemaSpec, row: Pick<SchemaRow, 'oid' | 'owner'> | undefined): Outputs {
  return { name: spec.name, database: spec.database, oid: row === undefined ? null : Number(row.oid), owner: row?.owner ?? null };
}

/** An extension's outputs (see `databaseOutputs`). */
export function extensionOutputs(spec: ExtensionSpec, row: Pick<ExtensionRow, 'oid' | 'version' | 'schema'> | undefined): Outputs {
  return { name: spec.name, database: spec.database, oid: row === undefined ? null : Number(row.oid), version: row?.version ?? null, schema: row?.schema ?? null };
}

function diff(path: string, desired: unknown, actual: unknown): FieldDiff {
  return { path, desired, actual };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  // Most roles are in no group: nothing to build.
  if (a.length === 0 || b.length === 0) return a.length === b.length;
  const sa = new Set(a);
  return sa.size === new Set(b).size && [...sa].every((x) => b.includes(x));
}

function settle(diffs: readonly FieldDiff[], outputs: Outputs, memo?: ObservationMemo): Observation {
  const m = memo === undefined ? {} : { memo };
  return diffs.length === 0 ? { status: 'upToDate', outputs, ...m } : { status: 'drifted', diffs, outputs, ...m };
}

/** -1 and any negative limit both mean "no limit". */
function connLimit(n: number): number {
  return n < 0 ? -1 : n;
}

/**
 * The options of the memberships the goal declares, as a membership made from it has them: no ADMIN
 * OPTION (the member could grant the group to anyone), and from PostgreSQL 16, where each grant
 * carries its own, INHERIT as the role's `inherit` (the group's privileges used without SET ROLE, or
 * not; ALTER ROLE … INHERIT does not change grants made before) and SET (SET ROLE to the group). A
 * grant made by hand `WITH ADMIN OPTION` or `WITH INHERIT FALSE` changed what the role may do while
 * its membership list stayed the same. One diff per group and option (`memberOf.<group>.admin`).
 */
export function membershipOptionDiffs(spec: RoleSpec, row: RoleRow): FieldDiff[] {
  const out: FieldDiff[] = [];
  for (const group of [...spec.memberOf].sort()) {
    const grants = row.memberships.filter((m) => m.group === group);
    const admin = grants.some((m) => m.admin);
    if (admin) out.push(diff(`memberOf.${group}.admin`, false, true));
    const inherit = grants.find((m) => m.inherit !== null && m.inherit !== spec.inherit);
    if (inherit !== undefined) out.push(diff(`memberOf.${group}.inherit`, spec.inherit, inherit.inherit));
    if (grants.some((m) => m.set === false)) out.push(diff(`memberOf.${group}.set`, true, false));
  }
  return out;
}

export function observeRole(spec: RoleSpec, row: RoleRow | undefined, password: PasswordState): Observation {
  if (row === undefined) return { status: 'absent' };
  const diffs: FieldDiff[] = [];
  const flags = [
    ['login', spec.login, row.login],
    ['superuser', spec.superuser, row.superuser],
    ['createdb', spec.createdb, row.createdb],
    ['createrole', spec.createrole, row.createrole],
    ['inherit', spec.inherit, row.inherit],
    ['replication', spec.replication, row.replication],
    ['bypassRls', spec.bypassRls, row.bypassrls],
  ] as const;
  for (const [path, desired, actual] of flags) if (desired !== actual) diffs.push(diff(path, desired, actual));
  if (spec.connectionLimit !== undefined && connLimit(spec.connectionLimit) !== connLimit(row.connection_limit)) {
    diffs.push(diff('connectionLimit', spec.connectionLimit, row.connection_limit));
  }
  if (spec.validUntil !== undefined && normalizeTimestamp(spec.validUntil) !== row.valid_until) {
    diffs.push(diff('validUntil', spec.validUntil, row.valid_until));
  }
  if (!sameSet(spec.memberOf, row.member_of)) diffs.push(diff('memberOf', [...spec.memberOf].sort(), [...row.member_of].sort()));
  diffs.push(...membershipOptionDiffs(spec, row));
  const outputs = roleOutputs(spec, row);
  // The digest goes in the memo, never in outputs: outputs are shown (`status`, the daemon's
  // `/status`) and referenceable, and a salted SHA-256 of a password is open to guessing.
  let digest: string | undefined;
  switch (password.status) {
    case 'unmanaged':
      break;
    case 'matches':
      digest = password.digest;
      break;
    case 'differs':
      // Rotated: a change to apply (also under selfHeal: false), not drift. Otherwise set out of band (or never by us): drift.
      diffs.push({ path: 'password', desired: SECRET_MASK, actual: SECRET_MASK, masked: true, ...(password.rotated ? { cause: 'secret-rotated' as const } : {}) });
      digest = password.digest;
      break;
    case 'unknown':
      diffs.push({ path: 'password', desired: SECRET_MASK, actual: SECRET_MASK, masked: true, detail: 'cannot be verified; set once and tracked by digest' });
      break;
    default:
      return password satisfies never;
  }
  return settle(diffs, outputs, digest === undefined ? undefined : { [PASSWORD_DIGEST]: digest });
}

export function observeDatabase(spec: DatabaseSpec, row: DatabaseRow | undefined): Observation {
  if (row === undefined) return { status: 'absent' };
  const diffs: FieldDiff[] = [];
  if (spec.owner !== undefined && spec.owner !== row.owner) diffs.push(diff('owner', spec.owner, row.owner));
  if (canonicalEncoding(spec.encoding) !== canonicalEncoding(row.encoding)) {
    diffs.push({ path: 'encoding', desired: spec.encoding, actual: row.encoding, cannotCorrect: 'a database\'s encoding is fixed at its creation: recreate the database (dump, drop, create, restore) or set encoding to the actual value' });
  }
  if (spec.connectionLimit !== undefined && connLimit(spec.connectionLimit) !== connLimit(row.connection_limit)) {
    diffs.push(diff('connectionLimit', spec.connectionLimit, row.connection_limit));
  }
  return settle(diffs, databaseOutputs(spec, row));
}

export function observeSchema(spec: SchemaSpec, row: SchemaRow | undefined): Observation {
  if (row === undefined) return { status: 'absent' };
  const diffs: FieldDiff[] = [];
  if (spec.owner !== undefined && spec.owner !== row.owner) diffs.push(diff('owner', spec.owner, row.owner));
  return settle(diffs, schemaOutputs(spec, row));
}

export function observeExtension(spec: ExtensionSpec, row: ExtensionRow | undefined): Observation {
  if (row === undefined) return { status: 'absent' };
  const diffs: FieldDiff[] = [];
  if (spec.version !== undefined && spec.version !== row.version) diffs.push(diff('version', spec.version, row.version));
  if (spec.schema !== undefined && spec.schema !== row.schema) diffs.push(diff('schema', spec.schema, row.schema));
  return settle(diffs, extensionOutputs(spec, row));
}

/** The privileges a grant wants, with `ALL` expanded to this server's full set for the object kind. */
export function desiredPrivileges(spec: GrantSpec, all: readonly string[]): string[] {
  const p = grantPrivileges(spec.on, spec.privileges);
  return p.includes('ALL') ? [...all].sort() : p;
}

/** The output keys of a grant (the postgres factory declares these): all from its spec, a grant has no oid of its own. */
export const GRANT_OUTPUT_KEYS = ['role', 'database', 'on', 'schema'] as const;

/** A grant's outputs, as observe, create and update give them. */
export function grantOutputs(spec: GrantSpec): Readonly<Record<(typeof GRANT_OUTPUT_KEYS)[number], string | null>> {
  return { role: spec.role, database: spec.database, on: spec.on, schema: spec.schema ?? null };
}

/**
 * A grant is exact: the role holds the listed privileges on every object of
 * the target and nothing more (granted directly; PUBLIC and memberships are
 * not counted). Absent when the target does not exist or the role holds
 * none of its privileges anywhere.
 */
export function observeGrant(spec: GrantSpec, rows: readonly GrantRow[]): Observation {
  const outputs = grantOutputs(spec);
  if (rows.length === 0) return { status: 'absent' };
  const all = rows[0]!.all_privileges;
  const want = desiredPrivileges(spec, all);
  // A privilege this server does not have (MAINTAIN before PostgreSQL 17): the GRANT would fail on every pass.
  const unknown = want.filter((p) => !all.includes(p));
  if (unknown.length > 0) {
    return {
      status: 'failed',
      fault: fault('permanent', `${unknown.join(', ')} is not a privilege on ${spec.on} on this PostgreSQL server`, {
        code: 'unsupported-privilege',
        hint: `this server's privileges there: ${all.join(', ')} (MAINTAIN came with PostgreSQL 17)`,
      }),
    };
  }
  const objects = rows.filter((r) => !(r.object === null && (spec.on === 'tables' || spec.on === 'sequences')));
  // A schema with no tables (or sequences) holds nothing to grant on: nothing can differ.
  if (objects.length === 0) return { status: 'upToDate', outputs };
  if (objects.every((r) => r.privileges.length === 0)) return { status: 'absent' };
  // On what the role owns, only what the grant lists counts (missing is drift); its other privileges are its owner's, never revoked.
  const held = (r: GrantRow): readonly string[] => (r.owned ? r.privileges.filter((p) => want.includes(p)) : r.privileges);
  const diffs: FieldDiff[] = [];
  const privileges = objectsDiff(
    objects.filter((r) => !sameSet(want, held(r))),
    objects,
    held,
    want,
  );
  if (privileges !== undefined) diffs.push({ path: 'privileges', desired: want, ...privileges });
  // The grant option, on what the role holds and does not own (an owner holds it implicitly): none
  // unless withGrantOption, then on each privilege listed. A privilege missing or not listed is the diff above.
  const options = (r: GrantRow): readonly string[] => r.grantable.filter((p) => want.includes(p) && r.privileges.includes(p));
  const optionWrong = (r: GrantRow): boolean => !r.owned && (spec.withGrantOption ? want.some((p) => r.privileges.includes(p) && !r.grantable.includes(p)) : options(r).length > 0);
  const grantOption = objectsDiff(objects.filter(optionWrong), objects, options);
  if (grantOption !== undefined) diffs.push({ path: 'withGrantOption', desired: spec.withGrantOption, actual: !spec.withGrantOption, ...(grantOption.detail === undefined ? {} : { detail: grantOption.detail }) });
  return diffs.length === 0 ? { status: 'upToDate', outputs } : { status: 'drifted', diffs, outputs };
}

/**
 * What differs across a grant's objects, when some (`wrong`) do: the value
 * (`pick`) they share, or else what is held on the objects that differ, so
 * that `actual` is never `desired` when something differs (the union over
 * every object, right ones included, showed the desired list, as "2 of 3
 * objects differ" beside it). That is their union, which holds every
 * privilege held beyond the list (the update revokes those); where it is
 * the list itself (each object lacks another one, none holds more), what
 * they all hold. With more than one object and no shared value, a detail
 * names the first five that differ.
 */
function objectsDiff(
  wrong: readonly GrantRow[],
  objects: readonly GrantRow[],
  pick: (r: GrantRow) => readonly string[],
  desired: readonly string[] = [],
): { actual: string[]; detail?: string } | undefined {
  if (wrong.length === 0) return undefined;
  const uniform = wrong.length === objects.length && wrong.every((r) => sameSet(pick(r), pick(wrong[0]!)));
  const union = [...new Set(wrong.flatMap((r) => pick(r)))].sort();
  const common = union.filter((p) => wrong.every((r) => pick(r).includes(p)));
  const actual = uniform ? [...pick(wrong[0]!)].sort() : sameSet(union, desired) ? common : union;
  if (objects.length === 1 || uniform) return { actual };
  const named = wrong.slice(0, 5).map((r) => `${r.object ?? '?'} [${[...pick(r)].sort().join(', ')}]`);
  return { actual, detail: `${wrong.length} of ${objects.length} objects differ: ${named.join('; ')}${wrong.length > 5 ? '; …' : ''}` };
}
