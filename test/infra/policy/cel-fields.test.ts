import { describe, expect, it } from 'vitest';
import { compileTexts, goalYaml, policyYaml } from './helpers.ts';

/**
 * `spec.<field>` that no type the rule applies to has is a slip the loader
 * can see: a compile error at the expression, with "did you mean", not a
 * rule error on every node (or, under `has()`, a rule that silently never
 * holds).
 */
const goal = goalYaml({ environment: 'dev', nodes: [{ id: 'f', type: 'local.file', spec: { path: 'a', content: '' } }] });
const rule = (require: string, types?: string[]): string =>
  policyYaml({ rules: [{ id: 'r', description: 'd', ...(types === undefined ? {} : { types }), require, severity: { default: 'high' } }] });

describe('CEL rules name spec fields that exist', () => {
  it.each([
    { name: 'a misspelt field of the listed type', source: "spec.contnet == ''", types: ['local.file'], says: 'spec.contnet is not a field of local.file (did you mean "content"?)' },
    { name: 'a misspelt field under has()', source: 'has(spec.ownr)', types: ['local.file'], says: 'spec.ownr is not a field of local.file (did you mean "owner"?)' },
    { name: 'a field no type has, in a rule for every type', source: 'spec.nope == 1', types: undefined, says: 'spec.nope is not a field of any type' },
    // The whole expression a field that is no bool: every node would fail the rule at run time.
    { name: 'a string field as the whole rule', source: 'spec.path', types: ['local.file'], says: 'spec.path is a string in local.file, not a bool: compare it (spec.path == …) or test it (has(spec.path))' },
    { name: 'a list field as the whole rule', source: 'spec.memberOf', types: ['postgres.role'], says: 'spec.memberOf is a list in postgres.role, not a bool' },
    { name: 'a field that is a string or a number across the types', source: 'spec.mode', types: undefined, says: 'spec.mode is a string' },
  ])('$name: an error at the rule', ({ source, types, says }) => {
    const { result, engine } = compileTexts({ 'p.yaml': rule(source, types), 'g.yaml': goal });
    expect(result.diagnostics.map((d) => `${d.file} ${d.severity} ${d.code}`)).toEqual(['p.yaml error bad-expression']);
    expect(result.diagnostics[0]!.message).toContain(says);
    expect(engine.findings()).toEqual([]);
  });

  it.each([
    { name: 'a field of one of the listed types', source: "!has(spec.owner) || spec.owner != 'root'", types: ['local.file', 'local.directory'] },
    { name: 'a field some type has, in a rule for every type', source: '!has(spec.connectionLimit) || spec.connectionLimit > 0', types: undefined },
    { name: 'a comprehension variable named like spec is not the spec', source: "['a'].all(spec, spec.size() == 1)", types: ['local.file'] },
    { name: 'inside a free-form field', source: "!has(spec.input) || !has(spec.input.anything)", types: ['generic.resource'] },
    { name: 'a bool field as the whole rule', source: 'spec.login', types: ['postgres.role'] },
    { name: 'a bool field in one listed type of two', source: 'spec.force', types: ['postgres.schema', 'postgres.role'] },
  ])('$name: accepted', ({ source, types }) => {
    const { result } = compileTexts({ 'p.yaml': rule(source, types), 'g.yaml': goal });
    expect(result.diagnostics).toEqual([]);
  });
});
