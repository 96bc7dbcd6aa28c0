import type { z } from 'zod';
import { fault, formatPath, jsonTypeName, valueAtPath, zodIssueMessages } from '../runtime/index.ts';
import type { EmbeddedStructure, Fault, NodeId, OutputReference, PathKey } from '../runtime/index.ts';
import { secretRefLookalikes } from './secret.ts';
import { specSchemas } from './spec.ts';
import type { InfraNodeSpec } from './spec.ts';

/**
 * A spec whose `${nodes…}` references were just replaced, checked against
 * its type's schema before any backend sees it: compile could check only
 * the template, and an output may be anything its node printed. The spec
 * the schema gives back (defaults in place), or a permanent fault that
 * names the node, each field the schema refuses and the references that
 * made it: the goal is wrong for what its dependency outputs, and trying
 * again soon would change nothing. An output is data, never a secret
 * reference: a spec where one would become or choose a secret reference is
 * refused before the schema is asked (`outputSecretRefFault`).
 */
export function checkResolvedSpec(id: NodeId, spec: InfraNodeSpec, references: readonly OutputReference[], embedded: readonly EmbeddedStructure[] = []): { spec: InfraNodeSpec } | { fault: Fault } {
  if (embedded.length > 0) return { fault: embeddedFault(id, embedded) };
  const smuggled = outputSecretRefFault(id, spec, references);
  if (smuggled !== undefined) return { fault: smuggled };
  const { type, ...rest } = spec;
  const schema = specSchemas[type];
  let fields: Record<string, unknown> = rest;
  let parsed = schema.safeParse(fields);
  if (!parsed.success) {
    const converted = asText(fields, parsed.error.issues, references);
    if (converted !== undefined) parsed = schema.safeParse((fields = converted));
  }
  if (parsed.success) return { spec: { type, ...parsed.data } as InfraNodeSpec };
  const problems = zodIssueMessages(parsed.error.issues, { schema, input: fields, prefix: ['spec'], owner: type, written: false }).map((m) => {
    // The references in the field, or the one that put in the list or map it lies in (an item of memberOf).
    const near = references.filter((r) => within(r.path, m.path) || within(m.path, r.path));
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

/**
 * The fault of a spec with a list or map output referenced inside a longer string: no text stands
 * for one ("a,b" would be a guess, "[object Object]" garbage), and this node is the one to change
 * (its goal), not the node that printed the output. Naming each reference, the field and the type.
 */
function embeddedFault(id: NodeId, embedded: readonly EmbeddedStructure[]): Fault {
  const problems = embedded.map((r) => `${formatPath(['spec', ...r.path])}: \${nodes.${r.node}.outputs.${r.key}} is ${jsonTypeName(r.value)}, which cannot be inserted into text`);
  return fault('permanent', `node "${id}": ${[...new Set(problems)].join('; ')}`, {
    code: 'invalid-resolved-spec',
    hint: 'a list or map output fills a field only as a whole reference (the string "${nodes.<id>.outputs.<key>}" and nothing else) where the field takes one, such as a role\'s memberOf or a generic.resource input key; or have the node output the text you need',
  });
}

/**
 * The fault of a spec in which a reference put a map that looks meant as a secret reference
 * (`{ fromEnv }`, `{ fromFile }`, well-formed or not, at any depth of the output), or filled in the
 * name or path of one the goal writes; undefined if none did. A backend reads a secret reference
 * wherever it finds one in a free-form field (an exec input, extra vars), with the daemon's own
 * environment and files: taken from an output, which a command prints or a resource holds, it would
 * have the daemon read whatever secret that output names and hand it to the node's command. (`validate`
 * refuses a reference in the name or path of one the goal writes; a spec compiled before it did, restored
 * from the state, still meets this check.)
 */
function outputSecretRefFault(id: NodeId, spec: InfraNodeSpec, references: readonly OutputReference[]): Fault | undefined {
  const problems: string[] = [];
  const producers = new Set<NodeId>();
  for (const { path, map } of secretRefLookalikes(spec)) {
    for (const r of references) {
      const ref = `\${nodes.${r.node}.outputs.${r.key}}`;
      if (within(path, r.path)) {
        problems.push(`${formatPath(['spec', ...path])}: ${ref} puts a secret reference ({ ${'fromEnv' in map ? 'fromEnv' : 'fromFile'}: … }) here: an output is data, never read as a secret reference`);
      } else if (within(r.path, path)) {
        problems.push(`${formatPath(['spec', ...r.path])}: ${ref} would choose which secret the reference at ${formatPath(['spec', ...path])} reads: an output never names a secret`);
      } else continue;
      producers.add(r.node);
    }
  }
  if (problems.length === 0) return undefined;
  return fault('permanent', `node "${id}": ${[...new Set(problems)].join('; ')}`, {
    code: 'output-secret-reference',
    hint: `a secret is read only where the goal names it: write the { fromEnv: NAME } or { fromFile: path } in the goal of node "${id}", its name or path spelled out, or have ${[...producers].map((p) => `node "${p}"`).join(', ')} output other data; then run \`desiredstate retry ${id}\` (a change of the goal releases it too)`,
  });
}

/**
 * `fields` with each number or boolean that a whole-string reference put
 * where the schema wants a string written as text (`5432` → `"5432"`), as
 * Terraform converts a primitive for a string attribute, and as references
 * always read there before they kept their type; undefined if there is none.
 * A string is never read as a number or a boolean: a number field takes a
 * number output.
 */
function asText(fields: Record<string, unknown>, issues: readonly z.core.$ZodIssue[], references: readonly OutputReference[]): Record<string, unknown> | undefined {
  let out: Record<string, unknown> | undefined;
  for (const issue of issues) {
    const path = issue.path as PathKey[];
    if (path.length === 0 || !wantsString(issue) || !references.some((r) => r.whole && samePath(r.path, path))) continue;
    const value = valueAtPath(out ?? fields, path);
    if (typeof value !== 'number' && typeof value !== 'boolean') continue;
    out ??= structuredClone(fields);
    const parent = valueAtPath(out, path.slice(0, -1)) as Record<PathKey, unknown>;
    parent[path.at(-1)!] = String(value);
  }
  return out;
}

/** Whether the issue says a string belongs here (for a union: one of its forms is a string). */
export function wantsString(issue: z.core.$ZodIssue): boolean {
  if (issue.code === 'invalid_type') return issue.expected === 'string';
  if (issue.code === 'invalid_union') return issue.errors.some((form) => form.some((i) => i.path.length === 0 && wantsString(i)));
  return false;
}

function samePath(a: readonly PathKey[], b: readonly PathKey[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

/** Whether `path` is `prefix` or lies under it. */
function within(path: readonly PathKey[], prefix: readonly PathKey[]): boolean {
  return prefix.length <= path.length && prefix.every((k, i) => k === path[i]);
}
