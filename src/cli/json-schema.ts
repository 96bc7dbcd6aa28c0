import { z } from 'zod';
import { goalDocumentSchema, nodeDeclarationSchema } from '../runtime/index.ts';
import { backendDocumentSchema, INFRA_NODE_TYPES, policyDocumentSchema, specSchemas } from '../infra/index.ts';

/**
 * The goal format as JSON Schema, generated from the same zod definitions the
 * compiler uses, so editors autocomplete and check goal files.
 */
export function goalJsonSchema(extra: { policySchema?: z.ZodType | undefined } = {}): Record<string, unknown> {
  const node = z.union(
    INFRA_NODE_TYPES.map((t) =>
      nodeDeclarationSchema.extend({
        type: z.literal(t),
        spec: specSchemas[t].describe(`Spec of a ${t} node.`),
      }),
    ) as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]],
  );
  const goal = goalDocumentSchema.extend({
    spec: goalDocumentSchema.shape.spec.extend({ nodes: z.array(node).default([]).describe('The nodes of this goal.') }),
  }).describe('A Goal: the nodes a team wants to exist.');
  const policy = extra.policySchema ?? policyDocumentSchema.describe('A Policy: constraints enforced on every node before anything is provisioned.');
  const document = z.union([goal, backendDocumentSchema.describe('A Backend: a configured backend instance.'), policy]);
  const schema = z.toJSONSchema(document, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' });
  return {
    ...schema,
    $id: 'urn:desiredstate:schema:goal:v1',
    title: 'desiredstate goal file (desiredstate/v1)',
  };
}
