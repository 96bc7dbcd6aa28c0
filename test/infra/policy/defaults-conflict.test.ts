import { describe, expect, it } from 'vitest';
import { compileTexts, goalYaml, policyYaml } from './helpers.ts';

/**
 * Two defaults for the same field of the same type: the outcome must not
 * depend on the order in which policy files are read. A default scoped to
 * environments is the more specific and wins over one for every
 * environment; two equally specific ones that disagree are an error, at
 * the second, naming the first.
 */
const dir = (env: string): string => goalYaml({ environment: env, nodes: [{ id: 'd', type: 'local.directory', spec: { path: 'app' } }] });
const everywhere = policyYaml({ defaults: [{ types: ['local.directory'], set: { mode: '0700' } }] }, 'general');
const prodOnly = policyYaml({ defaults: [{ types: ['local.directory'], environments: ['prod'], set: { mode: '0750' } }] }, 'prod-team');

function modeOf(files: Record<string, string>): { mode: unknown; policy: string | undefined; diagnostics: string[] } {
  const { result, factory } = compileTexts(files);
  const spec = result.graph?.get('d')?.spec.spec as unknown as Record<string, unknown> | undefined;
  return {
    mode: spec?.['mode'],
    policy: factory.policyDefaults.get('d')?.find((x) => x.field === 'mode')?.policy,
    diagnostics: result.diagnostics.map((d) => `${d.file}:${d.line}:${d.col} ${d.severity} ${d.code}`),
  };
}

describe('policy defaults that disagree', () => {
  it.each([
    { name: 'general file first, prod', files: { 'a.yaml': everywhere, 'b.yaml': prodOnly, 'g.yaml': dir('prod') }, mode: '0750', policy: 'prod-team' },
    { name: 'prod file first, prod', files: { 'a.yaml': prodOnly, 'b.yaml': everywhere, 'g.yaml': dir('prod') }, mode: '0750', policy: 'prod-team' },
    { name: 'general file first, dev', files: { 'a.yaml': everywhere, 'b.yaml': prodOnly, 'g.yaml': dir('dev') }, mode: '0700', policy: 'general' },
  ])('$name: the environment-scoped default wins wherever it applies', ({ files, mode, policy }) => {
    expect(modeOf(files)).toEqual({ mode, policy, diagnostics: [] });
  });

  it.each([
    { name: 'two defaults for every environment', other: policyYaml({ defaults: [{ types: ['local.directory', 'local.file'], set: { mode: '0755' } }] }, 'other') },
    { name: 'two defaults for overlapping environments', other: policyYaml({ defaults: [{ types: ['local.directory'], environments: ['dev', 'prod'], set: { mode: '0755' } }] }, 'other'), first: prodOnly },
  ])('$name with different values: an error at the second, naming the first', ({ other, first }) => {
    const { result } = compileTexts({ 'a.yaml': first ?? everywhere, 'b.yaml': other, 'g.yaml': dir('prod') });
    const conflicts = result.diagnostics.filter((d) => d.code === 'conflicting-default');
    expect(conflicts.map((d) => `${d.file}:${d.severity}`)).toEqual(['b.yaml:error']);
    expect(conflicts[0]!.message).toContain('a.yaml:');
  });

  // A Policy with a schema error is not used, but every problem in it is reported at once (`checkSalvage`):
  // its conflicting defaults were not, only the schema error, and showed once that was fixed.
  it.each<{ name: string; files: Record<string, string>; errors: string[] }>([
    {
      name: 'within a policy with another error',
      files: { 'a.yaml': policyYaml({ blockAt: 'severe', defaults: [{ types: ['local.file'], set: { mode: '0600' } }, { types: ['local.file'], set: { mode: '0640' } }] }) },
      errors: ['a.yaml:15 error conflicting-default', 'a.yaml:6 error invalid-value'],
    },
    {
      name: 'a policy with another error, read after the one it conflicts with',
      files: { 'a.yaml': everywhere, 'b.yaml': policyYaml({ blockAt: 'severe', defaults: [{ types: ['local.directory'], set: { mode: '0755' } }] }, 'other') },
      errors: ['b.yaml:11 error conflicting-default', 'b.yaml:6 error invalid-value'],
    },
    {
      name: 'a policy with another error, read before the one it conflicts with',
      files: { 'a.yaml': policyYaml({ blockAt: 'severe', defaults: [{ types: ['local.directory'], set: { mode: '0755' } }] }, 'other'), 'b.yaml': everywhere },
      errors: ['a.yaml:6 error invalid-value', 'b.yaml:10 error conflicting-default'],
    },
  ])('$name: the conflict is reported with the error', ({ files, errors }) => {
    const { result } = compileTexts({ ...files, 'g.yaml': dir('prod') });
    expect(result.diagnostics.map((d) => `${d.file}:${d.line} ${d.severity} ${d.code}`).sort()).toEqual(errors);
  });

  it.each([
    { name: 'the same value twice', other: policyYaml({ defaults: [{ types: ['local.directory'], set: { mode: '0700' } }] }, 'other'), first: everywhere },
    { name: 'disjoint environments', other: policyYaml({ defaults: [{ types: ['local.directory'], environments: ['dev'], set: { mode: '0755' } }] }, 'other'), first: prodOnly },
    { name: 'different types', other: policyYaml({ defaults: [{ types: ['local.file'], set: { mode: '0600' } }] }, 'other'), first: everywhere },
  ])('$name: no conflict', ({ other, first }) => {
    const { result } = compileTexts({ 'a.yaml': first, 'b.yaml': other, 'g.yaml': dir('prod') });
    expect(result.diagnostics).toEqual([]);
  });
});

describe('policy defaults are literal values', () => {
  // A compiled spec's every "${" is a node reference or an escape, resolved before a backend sees it:
  // a default's "${goal.labels.team}" reached the backend as written (a file owned by user "${goal.labels.team}").
  it.each([
    { name: 'a goal expression', value: '${goal.labels.team}' },
    { name: 'a node reference', value: 'x-${nodes.db.outputs.name}' },
    { name: 'an escape', value: '$${literal}' },
  ])('$name in a default is an error at the value', ({ value }) => {
    const policy = policyYaml({ defaults: [{ types: ['local.file'], set: { owner: value } }] });
    const goal = goalYaml({ environment: 'dev', labels: { team: 'data' }, nodes: [{ id: 'f', type: 'local.file', spec: { path: 'a', content: '' } }] });
    const { result } = compileTexts({ 'p.yaml': policy, 'g.yaml': goal });
    expect(result.diagnostics.map((d) => `${d.file}:${d.line} ${d.severity} ${d.code}`)).toEqual(['p.yaml:10 error bad-interpolation']);
    expect(result.graph).toBeUndefined();
  });
});
