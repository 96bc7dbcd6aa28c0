import { z } from 'zod';
import { article, goalDocumentSchema, nodeDeclarationSchema, REFERENCE_PATTERNS } from '../runtime/index.ts';
import { backendDocumentSchema, BUILTIN_PACKS, INFRA_NODE_TYPES, policyDocumentSchema, policySpecSchema, specSchemas } from '../infra/index.ts';
import type { BackendRegistry, InfraNodeType } from '../infra/index.ts';
import { registry } from './context.ts';

export interface GoalJsonSchemaOptions {
  /** Replaces the Policy document's schema. */
  readonly policySchema?: z.ZodType | undefined;
}

// Every document kind takes the one apiVersion the compiler accepts; the
// Backend and Policy schemas say only "a string" because the compiler checks
// the envelope before them.
const apiVersion = goalDocumentSchema().shape.apiVersion.describe('The goal format version.');

/**
 * A document's `metadata` with the name the compiler's envelope checks for
 * every kind (the Backend and Policy schemas leave that check to it).
 */
function namedMetadata<T extends z.ZodObject>(metadata: T, description: string): z.ZodObject {
  return metadata.extend({ name: goalDocumentSchema().shape.metadata.shape.name.describe(description) }).describe(metadata.description ?? '');
}

/** What each node type is, as an editor shows it beside `type` (README's table of backends and types). */
const NODE_TYPE_DESCRIPTIONS: Readonly<Record<InfraNodeType, string>> = {
  'local.file': "A file under a local backend's root: its whole content, mode, owner and group.",
  'local.directory': "A directory under a local backend's root, and its mode.",
  'local.symlink': "A symbolic link under a local backend's root, and where it points.",
  'postgres.database': 'A PostgreSQL database: owner, encoding, template, connection limit.',
  'postgres.role': 'A PostgreSQL role: login, attributes, memberships, a password from a secret reference.',
  'postgres.schema': 'A schema in a PostgreSQL database, and its owner.',
  'postgres.grant': "A PostgreSQL role's privileges on a database, a schema, or a schema's tables or sequences (default privileges too).",
  'postgres.extension': 'A PostgreSQL extension installed in a database.',
  'k8s.namespace': 'A Kubernetes namespace (no built-in backend provisions it yet: a command generator of a script backend can).',
  'k8s.configmap': 'A Kubernetes ConfigMap (no built-in backend provisions it yet: a command generator of a script backend can).',
  'aws.s3.bucket': 'An AWS S3 bucket (no built-in backend provisions it yet: a command generator of a script backend can).',
  'terraform.workspace': 'A Terraform module applied in a workspace (no built-in backend provisions it yet: a command generator of a script backend can).',
  'ansible.playbook': 'An Ansible playbook run by ansible-playbook: observed in check mode, applied for real.',
  'generic.resource': 'A resource of your own, managed by commands or generated scripts speaking JSON (the exec protocol).',
};

/**
 * The goal format as JSON Schema, generated from the same zod definitions the
 * compiler uses, so editors autocomplete and check goal files: node specs by
 * `type`, Backend configs by `spec.type` (each implementation's own
 * `configSchema`).
 */
export function goalJsonSchema(options: GoalJsonSchemaOptions = {}): Record<string, unknown> {
  const node = z.union(
    INFRA_NODE_TYPES.map((t) =>
      nodeDeclarationSchema().extend({
        type: z.literal(t).describe(NODE_TYPE_DESCRIPTIONS[t]),
        // Left out, a spec is `{}`: optional where that is a valid spec of the type.
        spec: (specSchemas[t].safeParse({}).success ? specSchemas[t].optional() : specSchemas[t]).describe(`Spec of ${article(t)} ${t} node.`),
      }),
    ) as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]],
  );
  const goal = goalDocumentSchema().extend({
    spec: goalDocumentSchema()
      .shape.spec.extend({ nodes: z.array(node).default([]).describe('The nodes of this goal.') })
      .describe(goalDocumentSchema().shape.spec.description ?? ''),
  }).describe('A Goal: the nodes a team wants to exist.');
  const backend = backendJsonSchema(registry()).describe('A Backend: a configured backend instance.');
  const policyDoc = policyDocumentSchema();
  const policy =
    options.policySchema ??
    policyDoc
      .extend({
        apiVersion,
        metadata: namedMetadata(policyDoc.shape.metadata, policyDoc.shape.metadata.shape.name.description ?? ''),
        spec: policySpecSchema()
          .extend({ include: z.array(z.enum(Object.keys(BUILTIN_PACKS) as [string, ...string[]])).default([]).describe(policySpecSchema().shape.include.description ?? '') })
          .describe(policyDoc.shape.spec.description ?? ''),
      })
      .describe('A Policy: constraints enforced on every node before anything is provisioned.');
  const document = z.union([goal, backend, policy]);
  const schema = z.toJSONSchema(document, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' });
  const nodes = ((schema.anyOf?.[0]?.properties?.spec as JsonSchema | undefined)?.properties?.nodes as JsonSchema | undefined)?.items as JsonSchema | undefined;
  // The fields of each spec, not the spec itself: a spec is never one reference.
  for (const n of nodes?.anyOf ?? []) for (const field of Object.values(((n as JsonSchema).properties?.spec as JsonSchema | undefined)?.properties ?? {})) acceptReferences(field as JsonSchema);
  return {
    ...schema,
    $id: 'urn:desiredstate:schema:goal:v1',
    title: 'desiredstate goal file (desiredstate/v1)',
  };
}

type JsonSchema = z.core.JSONSchema.JSONSchema;

/**
 * Lets a field of a node spec's schema take a reference where `validate`
 * does (README, "References between nodes"): one whole reference in a
 * number, boolean, enum, list or map field, a reference anywhere in a text
 * field whose pattern or values only the output can meet; their check waits
 * for the output. Never in a secret reference. In place.
 */
function acceptReferences(s: JsonSchema | undefined): void {
  if (s === undefined || (s as Record<string, unknown>).secret === true) return;
  for (const p of Object.values(s.properties ?? {})) acceptReferences(p as JsonSchema);
  if (typeof s.additionalProperties === 'object') acceptReferences(s.additionalProperties);
  if (typeof s.items === 'object' && !Array.isArray(s.items)) acceptReferences(s.items);
  for (const form of s.anyOf ?? []) acceptReferences(form as JsonSchema);
  const typed = s.type === 'integer' || s.type === 'number' || s.type === 'boolean' || s.type === 'array' || s.type === 'object';
  const checkedText = s.type === 'string' && (s.pattern !== undefined || s.enum !== undefined || s.const !== undefined || s.maxLength !== undefined || s.format !== undefined);
  if (!typed && !checkedText) return;
  const { description, default: dflt, ...own } = s;
  for (const k of Object.keys(s)) delete (s as Record<string, unknown>)[k];
  Object.assign(s, {
    anyOf: [
      own,
      typed
        ? { type: 'string', pattern: REFERENCE_PATTERNS.whole, description: 'A ${nodes.<id>.outputs.<key>} reference, checked once the output is known.' }
        : { type: 'string', pattern: REFERENCE_PATTERNS.some, description: 'A ${nodes.<id>.outputs.<key>} reference, or ${goal.name}, ${goal.environment}, ${goal.labels.<key>}: checked once resolved.' },
    ],
    ...(description === undefined ? {} : { description }),
    ...(dflt === undefined ? {} : { default: dflt }),
  });
}

/** The Backend document, one branch per implementation: `spec.type` picks the `config` schema. */
function backendJsonSchema(registry: BackendRegistry): z.ZodType {
  const branches = registry.types().map((type) => {
    const factory = registry.require(type);
    // A config whose every field has a default may be left out, as the compiler allows.
    const config = factory.configSchema.safeParse({}).success ? factory.configSchema.optional() : factory.configSchema;
    return backendDocumentSchema.extend({
      apiVersion,
      metadata: namedMetadata(backendDocumentSchema.shape.metadata, backendDocumentSchema.shape.metadata.shape.name.description ?? ''),
      spec: backendDocumentSchema.shape.spec.extend({
        type: z.literal(type).describe(`${factory.description} Provisions ${factory.kinds.join(', ')}.`),
        config: config.describe(`Config of ${article(type)} ${type} backend.`),
      }).describe('Which implementation, and its config.'),
    });
  });
  return branches.length === 1 ? branches[0]! : z.union(branches as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]]);
}
