import { fault, zodIssueMessages } from '../runtime/index.ts';
import type { Fault, NodeId, OutputReference, PathKey } from '../runtime/index.ts';
import { specSchemas } from './spec.ts';
import type { InfraNodeSpec } from './spec.ts';

/**
 * A spec whose `${nodes…}` references were just replaced, checked against
 * its type's schema before any backend sees it: compile could check only
 * the template, and an output may be anything its node printed. The spec
 * the schema gives back (defaults in place), or a permanent fault that
 * names the node, each field the schema refuses and the references that
 * made it: the goal is wrong for what its dependency outputs, and trying
 * again soon would change nothing.
 */
export function checkResolvedSpec(id: NodeId, spec: InfraNodeSpec, references: readonly OutputReference[]): { spec: InfraNodeSpec } | { fault: Fault } {
  const { type, ...fields } = spec;
  const schema = specSchemas[type];
  const parsed = schema.safeParse(fields);
  if (parsed.success) return { spec: { type, ...parsed.data } as InfraNodeSpec };
  const problems = zodIssueMessages(parsed.error.issues, { schema, input: fields, prefix: ['spec'], owner: type }).map((m) => {
    const near = references.filter((r) => within(r.path, m.path));
    const named = [...new Set((near.length > 0 ? near : references).map((r) => `\${nodes.${r.node}.outputs.${r.key}}`))];
    return `${m.message} (from ${named.join(', ')})`;
  });
  return {
    fault: fault('permanent', `node "${id}": ${problems.join('; ')}`, {
      code: 'invalid-resolved-spec',
      hint: 'the goal does not fit what its dependencies output: change the goal, or what they output',
    }),
  };
}

/** Whether `path` is `prefix` or lies under it. */
function within(path: readonly PathKey[], prefix: readonly PathKey[]): boolean {
  return prefix.length <= path.length && prefix.every((k, i) => k === path[i]);
}
