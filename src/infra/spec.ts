import { z } from 'zod';
import { secretRefSchema } from './secret.ts';

/**
 * The sealed union of infrastructure resource specs (WHAT), defined once, with
 * zod. Every member is strict: an unknown field is an error. A spec carries no
 * knowledge of which tool provisions it; that is the wrapper's `backendId`.
 */

const fileMode = z
  .string({
    error: (iss) =>
      typeof iss.input === 'number'
        ? `mode must be a quoted string such as "0644" (YAML reads ${String(iss.input)} as a number)`
        : 'mode must be a quoted string such as "0644"',
  })
  .regex(/^0?[0-7]{3}$/, 'mode is an octal string such as "0644" or "0755"')
  .describe('Permission bits as a quoted octal string, e.g. "0644".');

const relPath = z.string().min(1).describe('A path relative to the backend root.');
const pgIdent = z.string().min(1).max(63).describe('A PostgreSQL identifier (quoted when used, so any characters are allowed).');
const labelMap = z.record(z.string(), z.string());

export const specSchemas = {
  'local.file': z.strictObject({
    path: relPath,
    content: z.string().describe('The whole file content.'),
    mode: fileMode.default('0644'),
    owner: z.string().optional().describe('User name or numeric uid (needs privileges to change).'),
    group: z.string().optional().describe('Group name or numeric gid.'),
  }),
  'local.directory': z.strictObject({
    path: relPath,
    mode: fileMode.default('0755'),
  }),
  'local.symlink': z.strictObject({
    path: relPath,
    target: z.string().min(1).describe('Where the link points (kept inside the backend root).'),
  }),
  'postgres.database': z.strictObject({
    name: pgIdent,
    owner: pgIdent.optional(),
    encoding: z.string().default('UTF8'),
    template: z.string().optional(),
    connectionLimit: z.number().int().min(-1).optional(),
    force: z.boolean().default(false).describe('Allow dropping a database that still holds tables (with deletionPolicy: Delete).'),
  }),
  'postgres.role': z.strictObject({
    name: pgIdent,
    login: z.boolean().default(false),
    superuser: z.boolean().default(false),
    createdb: z.boolean().default(false),
    createrole: z.boolean().default(false),
    inherit: z.boolean().default(true),
    connectionLimit: z.number().int().min(-1).optional(),
    validUntil: z.string().optional().describe('A timestamp, or "infinity".'),
    memberOf: z.array(pgIdent).default([]),
    password: secretRefSchema.optional(),
  }),
  'postgres.schema': z.strictObject({
    name: pgIdent,
    database: pgIdent,
    owner: pgIdent.optional(),
  }),
  'postgres.grant': z.strictObject({
    role: pgIdent,
    database: pgIdent,
    schema: pgIdent.optional(),
    on: z.enum(['database', 'schema', 'tables', 'sequences', 'defaultTables', 'defaultSequences']),
    privileges: z.array(z.string().regex(/^[A-Za-z ]+$/)).min(1),
  }),
  'postgres.extension': z.strictObject({
    name: pgIdent,
    database: pgIdent,
    schema: pgIdent.optional(),
    version: z.string().optional(),
  }),
  'k8s.namespace': z.strictObject({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
    labels: labelMap.default({}),
    annotations: labelMap.default({}),
  }),
  'k8s.configmap': z.strictObject({
    name: z.string().min(1),
    namespace: z.string().min(1),
    data: labelMap.default({}),
    labels: labelMap.default({}),
  }),
  'aws.s3.bucket': z.strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/),
    region: z.string().min(1),
    versioning: z.boolean().default(false),
    encryption: z.enum(['none', 'AES256', 'aws:kms']).default('AES256'),
    publicAccess: z.boolean().default(false),
    tags: labelMap.default({}),
  }),
  'terraform.workspace': z.strictObject({
    module: z.string().min(1).describe('Path to the Terraform module.'),
    workspace: z.string().default('default'),
    vars: z.record(z.string(), z.unknown()).default({}),
  }),
  'ansible.playbook': z.strictObject({
    playbook: z.string().min(1).describe('Path to the playbook.'),
    inventory: z.union([z.string(), z.array(z.string())]).optional(),
    extraVars: z.record(z.string(), z.unknown()).default({}).describe('Passed as a JSON file, never templated.'),
    limit: z.string().optional(),
    tags: z.array(z.string()).default([]),
  }),
  'generic.resource': z.strictObject({
    commands: z.strictObject({
      read: z.array(z.string()).min(1),
      create: z.array(z.string()).min(1),
      update: z.array(z.string()).min(1).optional(),
      delete: z.array(z.string()).min(1).optional(),
    }),
    input: z.record(z.string(), z.unknown()).default({}),
  }),
} as const;

export type InfraNodeType = keyof typeof specSchemas;
export const INFRA_NODE_TYPES = Object.keys(specSchemas) as InfraNodeType[];

/** Fields that hold secret references, per type (their values are masked everywhere). */
export const secretFields: { readonly [T in InfraNodeType]?: readonly string[] } = {
  'postgres.role': ['password'],
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
export const infraNodeSpecSchema = z.discriminatedUnion(
  'type',
  INFRA_NODE_TYPES.map((t) => specSchemas[t].extend({ type: z.literal(t) })) as unknown as [
    z.ZodObject<{ type: z.ZodLiteral<string> }>,
    ...z.ZodObject<{ type: z.ZodLiteral<string> }>[],
  ],
);
