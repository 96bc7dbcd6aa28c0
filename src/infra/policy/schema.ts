import { z } from 'zod';
import { once } from '../../runtime/index.ts';
import { INFRA_NODE_TYPES } from '../spec.ts';
import type { InfraNodeType } from '../spec.ts';

/**
 * The Policy document, exactly as GOAL-FORMAT.md ("Policy") promises it to
 * users. Validated once, strictly, at load; everything downstream works on
 * the parsed value.
 */

/** Finding levels, lowest first. */
export const LEVELS = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type Level = (typeof LEVELS)[number];

/** A level, or `none`: the rule is off in that environment. */
export type LevelOrNone = Level | 'none';

/** Compliance frameworks a rule can be scoped to. */
export const FRAMEWORKS = ['SOC2', 'PCI-DSS', 'HIPAA', 'ISO27001', 'NIST-800-53', 'CIS'] as const;
export type Framework = (typeof FRAMEWORKS)[number];

const LEVEL_RANK: { readonly [L in Level]: number } = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

/** Orders levels: negative when `a` is below `b`. */
export function compareLevels(a: Level, b: Level): number {
  return LEVEL_RANK[a] - LEVEL_RANK[b];
}

/** Identifiers of rules, as shown in findings and SARIF. */
export const RULE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

/** The Policy schemas, built on first use (see `once`). */
const schemas = once(() => {
  const levelSchema = z.enum(LEVELS);
  const levelOrNoneSchema = z.enum([...LEVELS, 'none']);
  const typeSchema = z.enum(INFRA_NODE_TYPES as [InfraNodeType, ...InfraNodeType[]]);
  const typesSchema = z.array(typeSchema).min(1, 'list at least one type');
  const ruleIdSchema = z.string().regex(RULE_ID_PATTERN, 'rule ids are letters, digits, ".", "_", ":" and "-"');

  /**
   * `{ default: medium, prod: high }`: an environment name (or `default`) to a
   * level; `none` turns the rule off there. With no `default`, environments not
   * listed are off.
   */
  const severitySchema = z
    .record(z.string(), levelOrNoneSchema)
    .refine((m) => Object.keys(m).length > 0, 'name a level for "default" or for an environment')
    .meta({ minProperties: 1 })
    .describe('Environment (or "default") to level: info, low, medium, high, critical, or none (off).');

  const frameworksSchema = z.array(z.enum(FRAMEWORKS)).default([]).describe('Compliance frameworks this rule is evidence for.');

  const namingSchema = z.strictObject({
    id: ruleIdSchema.optional().describe('Rule id in findings (default naming:<field>).'),
    description: z.string().optional().describe('What the rule requires, shown with every finding.'),
    types: typesSchema.describe('Node types the pattern applies to.'),
    field: z.string().min(1).describe('The spec field holding the name, for example "name".'),
    pattern: z
      .string()
      .min(1)
      .describe('An RE2 regular expression (as CEL\'s matches()); {env} is the goal environment, {label.<key>} a merged label (both matched literally).'),
    severity: severitySchema,
    frameworks: frameworksSchema,
  });

  const requiredLabelSchema = z.strictObject({
    id: ruleIdSchema.optional().describe('Rule id in findings (default required-label:<key>).'),
    description: z.string().optional().describe('What the rule requires, shown with every finding.'),
    key: z.string().min(1).describe('The label every node must carry (merged node and goal labels).'),
    pattern: z
      .string()
      .min(1)
      .optional()
      .describe('An RE2 regular expression the value must match (as CEL\'s matches()); {env} and {label.<key>} as in a naming pattern (matched literally).'),
    types: typesSchema.optional().describe('Restrict the requirement to these node types (default: all).'),
    severity: severitySchema,
    frameworks: frameworksSchema,
  });

  const ruleSchema = z.strictObject({
    id: ruleIdSchema.describe('Rule id in findings and SARIF.'),
    description: z.string().min(1).describe('What the rule requires, shown with every finding.'),
    types: typesSchema.optional().describe('Node types the rule applies to (default: all).'),
    when: z.string().min(1).optional().describe('CEL: the rule applies only where this is true.'),
    require: z.string().min(1).describe('CEL: must be true for every node the rule applies to.'),
    severity: severitySchema,
    frameworks: frameworksSchema,
  });

  const policyDefaultSchema = z.strictObject({
    types: typesSchema.describe('Node types the defaults apply to.'),
    environments: z.array(z.string().min(1)).min(1).optional().describe('Environments where the defaults apply (default: all).'),
    set: z
      .record(z.string(), z.unknown())
      .refine((m) => Object.keys(m).length > 0, 'set at least one field')
      .meta({ minProperties: 1 })
      .describe('Spec fields set where the goal leaves them unset.'),
  });

  const policySpecSchema = z.strictObject({
    blockAt: levelSchema.default('high').describe('Findings at or above this level hold the node.'),
    include: z.array(z.string()).default([]).describe('Built-in rule packs, for example "baseline".'),
    naming: z.array(namingSchema).default([]).describe('Naming rules: a spec field of the listed types matches a pattern.'),
    requiredLabels: z.array(requiredLabelSchema).default([]).describe('Labels every node must carry (merged node and goal labels).'),
    rules: z.array(ruleSchema).default([]).describe('Custom rules written in CEL.'),
    defaults: z.array(policyDefaultSchema).default([]).describe('Environment-aware defaults for spec fields the goal leaves unset, shown in plans as policy-set.'),
  });

  const policyDocumentSchema = z.strictObject({
    apiVersion: z.string(),
    kind: z.literal('Policy').describe('The document kind: Goal, Backend or Policy.'),
    metadata: z
      .strictObject({
        name: z.string().describe('The policy name, shown with its findings.'),
        labels: z.record(z.string(), z.string()).optional().describe('Free-form labels of the policy.'),
        annotations: z.record(z.string(), z.string()).optional().describe('Free-form notes; nothing acts on them.'),
      })
      .describe('The policy\'s name.'),
    spec: policySpecSchema.describe('The constraints: blockAt, rule packs, naming, required labels, rules and defaults.'),
  });
  return { severitySchema, policySpecSchema, policyDocumentSchema };
});
type Schemas = ReturnType<typeof schemas>;

/** A Policy's `spec`. */
export const policySpecSchema = (): Schemas['policySpecSchema'] => schemas().policySpecSchema;

/** A whole Policy document. */
export const policyDocumentSchema = (): Schemas['policyDocumentSchema'] => schemas().policyDocumentSchema;

/** A Policy's `spec` as written (before defaults): the shape of built-in packs. */
export type PolicySpecInput = z.input<Schemas['policySpecSchema']>;
export type PolicySpec = z.output<Schemas['policySpecSchema']>;
export type SeverityMap = z.output<Schemas['severitySchema']>;

/** The level a severity map gives an environment. */
export function levelFor(severity: SeverityMap, environment: string): LevelOrNone {
  return Object.hasOwn(severity, environment) ? severity[environment]! : (severity['default'] ?? 'none');
}
