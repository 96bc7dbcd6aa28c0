import { describe, expect, it } from 'vitest';
import { compileTexts, goalYaml, policyYaml } from './helpers.ts';
import type { NodeInput } from './helpers.ts';

/**
 * A field that is one `${nodes…}` reference where its type wants a number,
 * a boolean or one of a few values holds the reference at compile time,
 * not a value: policies cannot see what it will be. A rule that reads one
 * fails closed, as a rule that cannot be evaluated does, rather than judge
 * the reference's text (`"${…}" != 'none'` holds, and would let `none` in).
 */

const src: NodeInput = { id: 'src', type: 'local.file', spec: { path: 'src', content: 'x' } };

function run(rule: Record<string, unknown>, node: NodeInput): { lines: string[]; gated: boolean } {
  const policy = policyYaml({ rules: [{ id: 'r', description: 'the rule', severity: { default: 'high' }, ...rule }] });
  const { result } = compileTexts({ 'p.yaml': policy, 'g.yaml': goalYaml({ environment: 'prod', nodes: [src, node] }) });
  return { lines: result.diagnostics.map((d) => `${d.severity} ${d.code}: ${d.message}`), gated: result.gates.has(node.id) };
}

const role = (spec: Record<string, unknown>): NodeInput => ({ id: 'role', type: 'postgres.role', spec: { name: 'app', ...spec } });
const resource = (input: Record<string, unknown>): NodeInput => ({ id: 'res', type: 'generic.resource', spec: { input } });
const bucket = (spec: Record<string, unknown>): NodeInput => ({ id: 'b', type: 'aws.s3.bucket', spec: { name: 'logs-bucket', region: 'eu-west-1', ...spec } });

describe('a rule that reads a field a reference sets at run time', () => {
  it.each([
    {
      name: 'in when: whether the rule applies is unknown',
      rule: { types: ['postgres.role'], when: 'spec.login == true', require: 'has(spec.connectionLimit)' },
      node: role({ login: '${nodes.src.outputs.login}' }),
      field: 'spec.login',
    },
    {
      name: 'in require: an enum compared with the reference\'s text',
      rule: { types: ['aws.s3.bucket'], require: "spec.encryption != 'none'" },
      node: bucket({ encryption: '${nodes.src.outputs.enc}' }),
      field: 'spec.encryption',
    },
    {
      name: 'in require: a number',
      rule: { types: ['postgres.role'], require: 'has(spec.connectionLimit) && spec.connectionLimit > 0' },
      node: role({ connectionLimit: '${nodes.src.outputs.limit}' }),
      field: 'spec.connectionLimit',
    },
    {
      name: 'through the whole spec',
      rule: { types: ['postgres.role'], require: "spec.all(k, k != 'x')" },
      node: role({ superuser: '${nodes.src.outputs.su}' }),
      field: 'spec.superuser',
    },
    {
      // `input` takes any JSON: the exec command gets the output's own `true`, while the template holds text,
      // and `"${…}" != true` holds.
      name: 'a whole reference in a free-form field keeps its type at run time',
      rule: { types: ['generic.resource'], require: '!has(spec.input.public) || spec.input.public != true' },
      node: resource({ public: '${nodes.src.outputs.public}' }),
      field: 'spec.input',
    },
  ])('fails closed: $name', ({ rule, node, field }) => {
    const r = run(rule, node);
    expect(r.gated).toBe(true);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatch(/^error rule-error: \[high\] r: /);
    expect(r.lines[0]).toContain(`${field} is set by a reference, known only at run time`);
  });

  it.each([
    {
      name: 'a rule that reads other fields is evaluated as ever',
      rule: { types: ['postgres.role'], require: 'spec.createdb == false' },
      node: role({ login: '${nodes.src.outputs.login}' }),
    },
    {
      name: 'a rule whose when (decidable) does not apply',
      rule: { types: ['postgres.role'], when: 'spec.createdb == true', require: 'spec.login == false' },
      node: role({ login: '${nodes.src.outputs.login}' }),
    },
    {
      // As before typed references: a string field took a reference already, and rules read its text.
      name: 'a reference in a text field is read as its text, as before',
      rule: { types: ['postgres.role'], require: 'has(spec.validUntil) || spec.name != ""' },
      node: role({ name: '${nodes.src.outputs.path}' }),
    },
    {
      name: 'text around a reference in a free-form field is text',
      rule: { types: ['generic.resource'], require: '!has(spec.input.public) || spec.input.public != true' },
      node: resource({ public: 'x${nodes.src.outputs.public}' }),
    },
  ])('$name', ({ rule, node }) => {
    const r = run(rule, node);
    expect(r.lines).toEqual([]);
    expect(r.gated).toBe(false);
  });
});
