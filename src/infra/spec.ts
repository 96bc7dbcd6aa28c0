import { z } from 'zod';
import { inexactNumbers, lazyRecord, once } from '../runtime/index.ts';
import { pgEncoding } from './pg-encoding.ts';
import { malformedSecretRefs, secretRefSchema } from './secret.ts';

/**
 * The sealed union of infrastructure resource specs (WHAT), defined once, with
 * zod. Every member is strict: an unknown field is an error. A spec carries no
 * knowledge of which tool provisions it; that is the wrapper's `backendId`.
 */

const fileMode = once(() =>
  z
    .string({
      error: (iss) =>
        typeof iss.input === 'number'
          ? `mode must be a quoted string such as "0644" (unquoted, YAML reads it as the number ${String(iss.input)})`
          : 'mode must be a quoted string such as "0644"',
    })
    .regex(/^[0-7]?[0-7]{3}$/, 'mode is an octal string such as "0644" or "0755" (a fourth digit for setuid, setgid, sticky: "2775", "1777")')
    .describe('Permission bits as a quoted octal string, e.g. "0644"; a fourth leading digit sets the setuid (4), setgid (2) and sticky (1) bits, e.g. "2775". The whole mode is managed: "0755" means none of them.'));

/** A path the system can name: no NUL (it ends a C string; every file call refuses it). */
const noNul = (s: string): boolean => !s.includes('\0');
/** Linux's limit on the bytes of one name in a path (NAME_MAX), on every common filesystem. */
const NAME_MAX = 255;
/** Names longer than NAME_MAX bytes, which no file call takes (ENAMETOOLONG); one a `${…}` makes is judged once resolved. */
const nameTooLong = (path: string, ctx: z.core.$RefinementCtx<string>): void => {
  const name = path.split('/').find((n) => !n.includes('${') && Buffer.byteLength(n) > NAME_MAX);
  if (name !== undefined) ctx.addIssue({ code: 'custom', message: `a name in a path is at most ${NAME_MAX} bytes (NAME_MAX): ${Array.from(name).slice(0, 20).join('')}… is ${Buffer.byteLength(name)}` });
};
/** A node's path; `file`: a file's or a link's, which a trailing "/" would make a directory's. */
const relPath = (file: boolean) =>
  z
    .string()
    .min(1)
    .refine(noNul, 'a path cannot contain a NUL character')
    .superRefine(nameTooLong)
    .refine((p) => !file || !p.endsWith('/'), 'a path ending in "/" names a directory: write the path of the file or link without it')
    .describe('A path relative to the backend root.');
/** The largest uid or gid: (uid_t)-1, one more, means "leave unchanged" to chown. */
const MAX_ACCOUNT_ID = 4294967294;
/** A user or group: a name, or a numeric id that chown can set. */
const account = (what: 'user' | 'group', id: 'uid' | 'gid') =>
  z
    .string()
    .min(1, `${what} cannot be empty: a ${what} name or a numeric ${id}`)
    .refine(noNul, `a ${what} name cannot contain a NUL character`)
    .refine((s) => !s.startsWith('-'), `a ${what} is a name or a numeric ${id} (0 to ${MAX_ACCOUNT_ID}); it cannot start with "-"`)
    .refine((s) => !/^\d+$/.test(s) || Number(s) <= MAX_ACCOUNT_ID, `a numeric ${id} is at most ${MAX_ACCOUNT_ID} (${MAX_ACCOUNT_ID + 1}, (uid_t)-1, means "no change" to chown)`);
const pgIdent = once(() =>
  z
    .string()
    .min(1)
    .refine((s) => Buffer.byteLength(s, 'utf8') <= 63, 'a PostgreSQL identifier is at most 63 bytes')
    .refine((s) => !s.includes('\0'), 'a PostgreSQL identifier cannot contain a NUL character')
    .describe('A PostgreSQL identifier (always quoted when used, so any characters are allowed).'));

/*
 * Names PostgreSQL refuses whoever asks: a spec that named one validated, then failed on every pass,
 * retried without end. Each is compared as written, as the server compares it (the backend quotes
 * every name): `PG_app`, `PUBLIC` and `NONE` are names like any other.
 */

/**
 * A role a spec names (an owner, a group, a grantee, `forRole`): never "none", which PostgreSQL refuses
 * wherever a role is named, nor "public", which it reads as PUBLIC, no role at all (`publicWhy` says
 * what that means where it is named). A `pg_…` role is one of the server's own: named, it exists.
 */
const pgRoleRef = (publicWhy: string) =>
  pgIdent()
    .refine((s) => s !== 'none', '"none" is reserved: PostgreSQL refuses it wherever a role is named, so no role has that name')
    .refine((s) => s !== 'public', publicWhy);

/** Why CREATE ROLE refuses `name` ("role name … is reserved"), or undefined. */
function reservedRoleName(name: string): string | undefined {
  if (name.startsWith('pg_')) {
    return 'role names beginning with "pg_" are reserved for PostgreSQL\'s own roles (pg_monitor, pg_read_all_data …): it creates none, and alters none of its own; grant one through memberOf';
  }
  if (name === 'public') return '"public" is reserved: PostgreSQL reads it as PUBLIC, every role';
  if (name === 'none') return '"none" is reserved: PostgreSQL refuses it wherever a role is named';
  return undefined;
}

/** The name of the role a postgres.role node creates: none CREATE ROLE refuses, nor one of PostgreSQL's own, which ALTER ROLE refuses. */
const pgNewRoleName = once(() =>
  pgIdent()
    .superRefine((s, ctx) => {
      const why = reservedRoleName(s);
      if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
    })
    .describe('The role name (always quoted when used, so any characters are allowed). PostgreSQL reserves names beginning with pg_ for its own roles, and public and none: it creates no role so named.'));

/** The schema a postgres.schema node creates: not one CREATE SCHEMA refuses ("unacceptable schema name"). */
const pgNewSchemaName = once(() =>
  pgIdent()
    .refine((s) => !s.startsWith('pg_'), 'schema names beginning with "pg_" are reserved for PostgreSQL\'s own schemas (pg_catalog, pg_toast …): it creates none')
    .describe('The schema name (always quoted when used, so any characters are allowed). PostgreSQL reserves names beginning with pg_ for its own schemas: it creates none so named.'));

const pgConnectionLimit = once(() =>
  z
    .number()
    .int()
    .min(-1)
    // PostgreSQL's CONNECTION LIMIT is an int4.
    .max(2_147_483_647, 'a connection limit is at most 2147483647 (-1 for no limit)')
    .describe('Concurrent connections allowed; -1 means no limit.'));

/** Privileges a `postgres.grant` may list, per `on`. `ALL` (or `ALL PRIVILEGES`) means every privilege of that object kind. */
export const PG_GRANT_PRIVILEGES = {
  database: ['CREATE', 'CONNECT', 'TEMPORARY', 'TEMP', 'ALL'],
  schema: ['CREATE', 'USAGE', 'ALL'],
  tables: ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'MAINTAIN', 'ALL'],
  sequences: ['USAGE', 'SELECT', 'UPDATE', 'ALL'],
  defaultTables: ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'MAINTAIN', 'ALL'],
  defaultSequences: ['USAGE', 'SELECT', 'UPDATE', 'ALL'],
} as const satisfies Record<string, readonly string[]>;
export type PgGrantTarget = keyof typeof PG_GRANT_PRIVILEGES;
const PG_GRANT_TARGETS = Object.keys(PG_GRANT_PRIVILEGES) as [PgGrantTarget, ...PgGrantTarget[]];

/** A privilege as written (`select`, `ALL PRIVILEGES`, `temp`) to its canonical keyword. */
export function canonicalPrivilege(p: string): string {
  const u = p.trim().replace(/\s+/g, ' ').toUpperCase();
  return u === 'ALL PRIVILEGES' ? 'ALL' : u;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** A `validUntil` date-time, its parts named (an offset's minutes with or without a colon, or none: `+05`). */
const TIMESTAMP = /^(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2})(?:[T ](?<hour>\d{2}):(?<minute>\d{2})(?::(?<second>\d{2})(?:\.(?<fraction>\d{1,6}))?)?(?:Z|(?<sign>[+-])(?<offsetHours>\d{2})(?::?(?<offsetMinutes>\d{2}))?)?)?$/;

/** The numbers of a `TIMESTAMP` match (absent parts 0), the fraction as microseconds. */
function timestampParts(m: RegExpExecArray): Record<'year' | 'month' | 'day' | 'hour' | 'minute' | 'second' | 'micros' | 'offsetHours' | 'offsetMinutes', number> {
  const g = m.groups ?? {};
  const n = (v: string | undefined): number => (v === undefined ? 0 : Number(v));
  return {
    year: n(g.year),
    month: n(g.month),
    day: n(g.day),
    hour: n(g.hour),
    minute: n(g.minute),
    second: n(g.second),
    micros: Number((g.fraction ?? '').padEnd(6, '0')),
    offsetHours: n(g.offsetHours),
    offsetMinutes: n(g.offsetMinutes),
  };
}

/**
 * Why a timestamp of `pgTimestamp`'s shape names no instant PostgreSQL accepts, or undefined. The
 * calendar is checked here: JavaScript's Date rolls "2030-02-30" over to 2 March, PostgreSQL refuses it.
 */
function timestampProblem(s: string): string | undefined {
  const m = TIMESTAMP.exec(s);
  return m === null ? undefined : matchProblem(m);
}

/** `timestampProblem` of a `TIMESTAMP` match. */
function matchProblem(m: RegExpExecArray): string | undefined {
  const { year, month, day, hour, minute, second, micros, offsetHours, offsetMinutes } = timestampParts(m);
  if (year < 1) return 'there is no year 0000 (the year before 0001 is 1 BC)';
  if (month < 1 || month > 12) return `there is no month ${m.groups?.month ?? month}`;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!;
  if (day < 1 || day > days) return `${m.groups?.year ?? year}-${m.groups?.month ?? month} has ${days} days`;
  if (hour > 24 || (hour === 24 && (minute > 0 || second > 0 || micros > 0))) return 'an hour is 00 to 23 (24:00:00 is the end of the day)';
  if (minute > 59) return 'minutes are 00 to 59';
  if (second > 59) return 'seconds are 00 to 59';
  if (offsetHours > 15 || offsetMinutes > 59) return 'a time zone offset is at most 15:59 either way';
  return undefined;
}

/**
 * A valid `validUntil` date-time as one text per instant, to the microsecond PostgreSQL keeps: in
 * UTC, as `Date.toISOString` writes it, with the microseconds after the milliseconds where there are
 * any (`2031-06-15T05:20:30.123456Z`); an offset-less time is UTC. Undefined for anything else
 * ("infinity" included). Read from the parts, not by `Date.parse`, which keeps milliseconds only and
 * takes no offset of hours alone (`+05`).
 */
export function utcTimestamp(s: string): string | undefined {
  const m = TIMESTAMP.exec(s);
  // The match checked as it is, not the text matched a second time.
  if (m === null || matchProblem(m) !== undefined) return undefined;
  const { year, month, day, hour, minute, second, micros, offsetHours, offsetMinutes } = timestampParts(m);
  const offset = (m.groups?.sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes);
  const d = new Date(0);
  // setUTCFullYear, not Date.UTC, which reads a year below 100 as 19xx; setUTCHours carries over into the date.
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute - offset, second, Math.floor(micros / 1000));
  const iso = d.toISOString();
  const beyondMs = micros % 1000;
  return beyondMs === 0 ? iso : `${iso.slice(0, -1)}${String(beyondMs).padStart(3, '0')}Z`;
}

/** `validUntil`: "infinity", a date, or a date-time (an offset-less time is UTC). */
const pgTimestamp = once(() =>
  z
    .string()
    .regex(/^(infinity|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?)$/, {
      error: 'validUntil is "infinity" or an ISO 8601 date or date-time, e.g. "2030-01-01" or "2030-01-01T00:00:00Z"',
      // Not a date at all: the calendar below would only say it again.
      abort: true,
    })
    .superRefine((s, ctx) => {
      if (s === 'infinity') return;
      const problem = timestampProblem(s);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `validUntil is not a valid date: ${problem}` });
    })
    .describe('When the password stops being valid: "infinity" or an ISO 8601 date-time, to the microsecond as PostgreSQL keeps it (UTC when no offset is given; an offset as +05, +0530 or +05:30).'));

const labelMap = once(() =>
  z.record(z.string(), z.string()));

/** A command run without a shell: a program and its arguments, as spawn takes them (no empty program, no NUL). */
const argv = once(() =>
  z
    .array(z.string().refine(noNul, 'an argument cannot contain a NUL character'))
    .min(1)
    .refine((a) => a[0] !== '', { message: 'the program (the first item) cannot be empty', path: [0] }));

const specSchemaBuilders = {
  'local.file': () =>
    z.strictObject({
      path: relPath(true),
      content: z.string().describe('The whole file content.'),
      mode: fileMode().default('0644'),
      owner: account('user', 'uid').optional().describe('User name or numeric uid (needs privileges to change).'),
      group: account('group', 'gid').optional().describe('Group name or numeric gid.'),
    }),
  'local.directory': () =>
    z.strictObject({
      path: relPath(false),
      mode: fileMode().default('0755'),
    }),
  'local.symlink': () =>
    z.strictObject({
      path: relPath(true),
      target: z.string().min(1).refine(noNul, 'a path cannot contain a NUL character').describe('Where the link points (kept inside the backend root).'),
    }),
  'postgres.database': () =>
    z.strictObject({
      name: pgIdent(),
      owner: pgRoleRef('PUBLIC (every role) cannot own a database: name a role').optional().describe('The owning role (managed when set).'),
      encoding: z
        .string()
        .superRefine((e, ctx) => {
          const known = pgEncoding(e);
          if (known === undefined) {
            ctx.addIssue({ code: 'custom', message: `"${e}" is not an encoding PostgreSQL knows: UTF8, LATIN1 … SQL_ASCII, or an alias of one (unicode, ISO-8859-1 …)` });
          } else if (!known.server) {
            ctx.addIssue({ code: 'custom', message: `${known.name} is an encoding only a client may use: a database cannot have it (UTF8 holds every character)` });
          }
        })
        .default('UTF8')
        .describe('Character set, by any name PostgreSQL knows (UTF8, unicode, LATIN1, ISO-8859-1 …); fixed at creation (a difference is reported, never corrected).'),
      template: pgIdent().optional().describe('The template database, used only at creation.'),
      connectionLimit: pgConnectionLimit().optional(),
      force: z.boolean().default(false).describe('Allow dropping a database that still holds tables (with deletionPolicy: Delete).'),
    }),
  'postgres.role': () =>
    z.strictObject({
      name: pgNewRoleName(),
      login: z.boolean().default(false).describe('The role may log in (LOGIN).'),
      superuser: z.boolean().default(false).describe('Only when stated: a role is NOSUPERUSER unless this is true.'),
      createdb: z.boolean().default(false).describe('The role may create databases (CREATEDB).'),
      createrole: z.boolean().default(false).describe('The role may create, alter and drop roles (CREATEROLE).'),
      inherit: z.boolean().default(true).describe('The role uses the privileges of the roles it is a member of (INHERIT).'),
      replication: z.boolean().default(false).describe('The role may stream replication and make backups (REPLICATION); always managed.'),
      bypassRls: z.boolean().default(false).describe('The role bypasses every row-level security policy (BYPASSRLS); always managed.'),
      connectionLimit: pgConnectionLimit().optional(),
      validUntil: pgTimestamp().optional(),
      memberOf: z
        .array(pgRoleRef('PUBLIC is not a role one can be a member of: every role holds what is granted to PUBLIC already'))
        .default([])
        .describe('The exact set of roles this role is a member of.'),
      password: secretRefSchema.optional(),
    }).superRefine((r, ctx) => {
      // A membership PostgreSQL never grants: it validated, then failed on every pass, retried without end.
      r.memberOf.forEach((group, i) => {
        if (group === r.name) ctx.addIssue({ code: 'custom', path: ['memberOf', i], message: `a role cannot be a member of itself ("${group}")` });
      });
    }),
  'postgres.schema': () =>
    z.strictObject({
      name: pgNewSchemaName(),
      database: pgIdent(),
      owner: pgRoleRef('PUBLIC (every role) cannot own a schema: name a role').optional(),
      force: z.boolean().default(false).describe('Allow dropping a schema that still holds objects (DROP SCHEMA … CASCADE, with deletionPolicy: Delete).'),
    }),
  'postgres.grant': () =>
    z
      .strictObject({
        // PostgreSQL reads the grantee "public" (quoted or not) as PUBLIC, which no catalog lists as a role:
        // the grant was made, then never found, and made again on every pass.
        role: pgRoleRef('PUBLIC (every role) cannot be the grantee of a postgres.grant: grant to a role, and manage what PUBLIC holds outside the goals').describe('The grantee.'),
        database: pgIdent(),
        schema: pgIdent().optional().describe('Required for on: schema, tables, sequences; optional for default privileges (absent: global defaults).'),
        on: z.enum(PG_GRANT_TARGETS).describe('database, schema, tables (all in the schema), sequences (all in the schema), defaultTables, defaultSequences.'),
        privileges: z.array(z.string().min(1)).min(1).describe('The exact privileges the role holds on the target (others are revoked); ALL for every one.'),
        forRole: pgRoleRef('PUBLIC (every role) creates no objects: name the role whose new objects get these privileges').optional().describe('Default privileges only: for objects created by this role (absent: the backend user).'),
        withGrantOption: z
          .boolean()
          .default(false)
          .describe('The role may pass the privileges on (WITH GRANT OPTION). Always managed: false, a grant option given by hand is drift, and revoked.'),
      })
      .superRefine((g, ctx) => {
        const allowed: readonly string[] = PG_GRANT_PRIVILEGES[g.on];
        g.privileges.forEach((p, i) => {
          const c = canonicalPrivilege(p);
          if (!allowed.includes(c)) {
            ctx.addIssue({ code: 'custom', path: ['privileges', i], message: `"${p}" is not a privilege on ${g.on}; use one of ${allowed.join(', ')}` });
          }
        });
        // GRANT ALL, USAGE is a syntax error: it failed on every pass, after validate and plan said nothing.
        const all = g.privileges.findIndex((p) => canonicalPrivilege(p) === 'ALL');
        if (all !== -1 && g.privileges.length > 1) {
          ctx.addIssue({ code: 'custom', path: ['privileges', all], message: `ALL is every privilege on ${g.on}: list it alone, or list the privileges without it` });
        }
        const needsSchema = g.on === 'schema' || g.on === 'tables' || g.on === 'sequences';
        if (needsSchema && g.schema === undefined) ctx.addIssue({ code: 'custom', path: ['schema'], message: `schema is required for on: ${g.on}` });
        if (g.on === 'database' && g.schema !== undefined) ctx.addIssue({ code: 'custom', path: ['schema'], message: 'schema is not allowed for on: database' });
        if (g.forRole !== undefined && g.on !== 'defaultTables' && g.on !== 'defaultSequences') {
          ctx.addIssue({ code: 'custom', path: ['forRole'], message: 'forRole applies to default privileges only (on: defaultTables or defaultSequences)' });
        }
      }),
  'postgres.extension': () =>
    z.strictObject({
      name: pgIdent(),
      database: pgIdent(),
      schema: pgIdent().optional().describe('Where its objects live (managed when set).'),
      version: z.string().min(1).optional().describe('The extension version (managed when set).'),
    }),
  'k8s.namespace': () =>
    z.strictObject({
      name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).describe('The namespace name (a DNS label).'),
      labels: labelMap().default({}).describe('Kubernetes labels of the namespace.'),
      annotations: labelMap().default({}).describe('Kubernetes annotations of the namespace.'),
    }),
  'k8s.configmap': () =>
    z.strictObject({
      name: z.string().min(1).describe('The ConfigMap name.'),
      namespace: z.string().min(1).describe('The namespace it lives in.'),
      data: labelMap().default({}).describe('The exact key/value data of the ConfigMap.'),
      labels: labelMap().default({}).describe('Kubernetes labels of the ConfigMap.'),
    }),
  'aws.s3.bucket': () =>
    z.strictObject({
      name: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/).describe('The bucket name (globally unique, 3 to 63 characters).'),
      region: z.string().min(1).describe('The AWS region, for example eu-west-1.'),
      versioning: z.boolean().default(false).describe('Keep every version of every object.'),
      encryption: z.enum(['none', 'AES256', 'aws:kms']).default('AES256').describe('Default server-side encryption: none, AES256 or aws:kms.'),
      publicAccess: z.boolean().default(false).describe('Allow public access (blocked when false).'),
      tags: labelMap().default({}).describe('AWS tags of the bucket.'),
    }),
  'terraform.workspace': () =>
    z.strictObject({
      module: z.string().min(1).describe('Path to the Terraform module.'),
      workspace: z.string().default('default').describe('The Terraform workspace.'),
      vars: z.record(z.string(), z.unknown()).default({}).superRefine(refuseInexactNumbers).describe('Input variables passed to the module.'),
    }),
  'ansible.playbook': () =>
    z.strictObject({
      playbook: z.string().min(1).describe('Path to the playbook, relative to the backend working directory.'),
      inventory: z
        .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
        .optional()
        .describe('Inventory path(s), or an inline host list such as "localhost," (each passed as -i).'),
      extraVars: z
        // Each value checked on its own: a refinement of the whole map would be skipped once a key has an
        // error, hiding a malformed secret reference under a good key until the bad key is fixed.
        .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an Ansible variable name ([A-Za-z_][A-Za-z0-9_]*)'), z.unknown().superRefine(refuseBadFreeForm))
        .default({})
        .describe('Extra variables, passed as a file with every string marked !unsafe: never templated. A value { fromEnv: NAME } or { fromFile: path } written here is a secret reference: read at run time, never logged or stored (one an output puts here fails the node: outputs are data).'),
      limit: z.string().min(1).optional().describe('Host pattern passed as --limit.'),
      tags: z.array(z.string().min(1)).default([]).describe('Only tasks with these tags (--tags).'),
      connection: z.string().min(1).optional().describe('Connection plugin (-c), for example "local".'),
    }),
  'generic.resource': () =>
    z.strictObject({
      commands: z.strictObject({
        read: argv().describe('argv printing {"exists":false} or {"exists":true,"state":{…},"outputs":{…}}, or {"exists":"unknown","reason":"…"} when it cannot tell (after an interrupted create: the node is held).'),
        create: argv().describe('argv printing {"outputs":{…}}.'),
        update: argv().optional().describe('argv printing {"outputs":{…}}; without it drift is only reported.'),
        delete: argv().optional().describe('argv printing nothing; without it a delete fails.'),
      })
        .optional()
        .describe('The exec backend needs them; a script backend generates its own script and refuses them.'),
      input: z.record(z.string(), z.unknown()).default({}).superRefine(refuseBadFreeForm).describe('Any JSON object, sent on stdin; drift compares each key with the read state. A value { fromEnv: NAME } or { fromFile: path }, at any depth, written here is a secret read at run time (never shown: its drift is masked); one an output puts here fails the node: outputs are data.'),
    }),
};

/** A map meant as a secret reference that is not one is an error where it is written, never data sent as it is. */
function refuseMalformedSecretRefs(value: unknown, ctx: z.RefinementCtx): void {
  for (const bad of malformedSecretRefs(value)) ctx.addIssue({ code: 'custom', path: bad.path, message: bad.message });
}

/**
 * A number in a free-form value (an exec input, extra vars) that JSON cannot carry as written (`.inf`,
 * a 19-digit id: `inexactNumbers`) is an error where it is written, never sent, stored and shown changed.
 */
function refuseInexactNumbers(value: unknown, ctx: z.RefinementCtx): void {
  for (const bad of inexactNumbers(value)) ctx.addIssue({ code: 'custom', path: bad.path, message: bad.message });
}

/** Both checks of a free-form value that may hold secret references. */
function refuseBadFreeForm(value: unknown, ctx: z.RefinementCtx): void {
  refuseMalformedSecretRefs(value, ctx);
  refuseInexactNumbers(value, ctx);
}

/** Each type's spec schema, built when first read (see `lazyRecord`). */
export const specSchemas = lazyRecord(specSchemaBuilders);

export type InfraNodeType = keyof typeof specSchemas;
export const INFRA_NODE_TYPES = Object.keys(specSchemas) as InfraNodeType[];

/** Fields that hold secret references, per type (their values are masked everywhere). */
export const secretFields: { readonly [T in InfraNodeType]?: readonly string[] } = {
  'postgres.role': ['password'],
};

/** Fields that hold a file's text, per type: shown (a create in `plan`) with what looks like a secret in them masked (`maskSecretLines`). */
export const textFields: { readonly [T in InfraNodeType]?: readonly string[] } = {
  'local.file': ['content'],
};

/**
 * Fields that hold a free-form value, per type: shown (a create in `plan`) with its values masked as a
 * drift of them is (`maskSecretValue`), secret references as written.
 */
export const valueFields: { readonly [T in InfraNodeType]?: readonly string[] } = {
  'generic.resource': ['input'],
};

/**
 * Fields that name the resource, per type: another value names another resource, never drift of this
 * one (no drift report holds them), so `ignoreFields` cannot take them.
 */
export const identityFields: { readonly [T in InfraNodeType]?: readonly string[] } = {
  'local.file': ['path'],
  'local.directory': ['path'],
  'local.symlink': ['path'],
  'postgres.database': ['name'],
  'postgres.role': ['name'],
  'postgres.schema': ['name', 'database'],
  'postgres.extension': ['name', 'database'],
  'postgres.grant': ['role', 'database', 'schema', 'on', 'forRole'],
  'k8s.namespace': ['name'],
  'k8s.configmap': ['name', 'namespace'],
  'aws.s3.bucket': ['name'],
};

/**
 * Fields that say how a resource is provisioned, not what it is or is to be, per type (exec's
 * commands: another argv reads or writes the same resource). An edit of them alone is no change of
 * the goal's resource: what differs from it then is drift (`InfraDesiredNodeSpec.managedDigest`).
 */
export const operationalFields: { readonly [T in InfraNodeType]?: readonly string[] } = {
  'generic.resource': ['commands'],
};

/** Types whose resources hold data: they default to `Orphan` and policies treat them as stateful. */
export const statefulTypes: ReadonlySet<InfraNodeType> = new Set(['postgres.database', 'postgres.schema', 'aws.s3.bucket', 'terraform.workspace']);

type SpecOf<T extends InfraNodeType> = z.output<(typeof specSchemas)[T]>;

/** The sealed union: `{ type: 'local.file', path, content, mode … } | …`. */
export type InfraNodeSpec = { [T in InfraNodeType]: { readonly type: T } & Readonly<SpecOf<T>> }[InfraNodeType];

/** The member of the union for one type. */
export type InfraNodeSpecOf<T extends InfraNodeType> = Extract<InfraNodeSpec, { type: T }>;

export type LocalFileSpec = InfraNodeSpecOf<'local.file'>;
export type LocalDirectorySpec = InfraNodeSpecOf<'local.directory'>;
export type LocalSymlinkSpec = InfraNodeSpecOf<'local.symlink'>;
export type PostgresRoleSpec = InfraNodeSpecOf<'postgres.role'>;
export type K8sNamespaceSpec = InfraNodeSpecOf<'k8s.namespace'>;

export function isInfraNodeType(t: string): t is InfraNodeType {
  return Object.hasOwn(specSchemas, t);
}

/** The whole union as one zod schema (for JSON Schema and tests). */
export const infraNodeSpecSchema = once(() =>
  z.discriminatedUnion(
      'type',
      INFRA_NODE_TYPES.map((t) => specSchemas[t].extend({ type: z.literal(t) })) as unknown as [
        z.ZodObject<{ type: z.ZodLiteral<string> }>,
        ...z.ZodObject<{ type: z.ZodLiteral<string> }>[],
      ],
    ),
  );
