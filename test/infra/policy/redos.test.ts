import { beforeAll, describe, expect, it } from 'vitest';
import { compileTexts, goalYaml, policyYaml } from './helpers.ts';

/**
 * Patterns are written by people, matched against names written by other
 * people: a pattern that backtracks catastrophically must not hang
 * `validate` (or the daemon). Patterns run in linear time; a construct that
 * cannot (a backreference, a lookaround) is refused at load, at its place.
 */
const slow = Array.from({ length: 40 }, () => 'a').join('');

describe('regular expressions in policies run in linear time', () => {
  // The first compile loads the CEL and RE2 modules: done here, so that the time below is the match's alone.
  beforeAll(() => {
    compileTexts({
      'p.yaml': policyYaml({ naming: [{ types: ['local.file'], field: 'path', pattern: '^a+$', severity: { default: 'low' } }], requiredLabels: [{ key: 'team', pattern: '^x+$', severity: { default: 'low' } }] }),
      'g.yaml': goalYaml({ environment: 'dev', labels: { team: 'x' }, nodes: [{ id: 'f', type: 'local.file', spec: { path: 'a', content: '' } }] }),
    });
  });

  it.each([
    {
      name: 'a naming pattern with nested quantifiers on a long name',
      policy: { naming: [{ types: ['local.file'], field: 'path', pattern: '^(a+)+$', severity: { default: 'low' } }] },
      labels: {} as Record<string, string>,
      path: `${slow}!`,
      want: 'naming:path',
    },
    {
      name: 'a required-label pattern with nested quantifiers on a long value',
      policy: { requiredLabels: [{ key: 'team', pattern: '^(x+x+)+y$', severity: { default: 'low' } }] },
      labels: { team: Array.from({ length: 40 }, () => 'x').join('') } as Record<string, string>,
      path: 'a',
      want: 'required-label:team',
    },
  ])('$name: a finding, without the exponential backtracking', ({ policy, labels, path, want }) => {
    const started = performance.now();
    const { engine } = compileTexts({
      'p.yaml': policyYaml(policy),
      'g.yaml': goalYaml({ environment: 'dev', labels, nodes: [{ id: 'f', type: 'local.file', spec: { path, content: '' } }] }),
    });
    // A hang guard, not a speed bar: a backtracking match of these patterns takes some 2^40 steps (hours).
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(engine.findings().map((f) => f.rule)).toEqual([want]);
  });

  it.each([
    { name: 'a backreference in a naming pattern', field: 'naming', entry: { types: ['local.file'], field: 'path', pattern: '^(a)\\1$', severity: { default: 'low' } }, line: 'p.yaml:10:16' },
    { name: 'a lookahead in a required-label pattern', field: 'requiredLabels', entry: { key: 'team', pattern: '^(?!x)', severity: { default: 'low' } }, line: 'p.yaml:8:16' },
  ])('$name is refused at its place', ({ field, entry, line }) => {
    const { result } = compileTexts({ 'p.yaml': policyYaml({ [field]: [entry] }), 'g.yaml': goalYaml({ environment: 'dev', nodes: [] }) });
    const bad = result.diagnostics.filter((d) => d.code === 'bad-pattern');
    expect(bad.map((d) => `${d.file}:${d.line}:${d.col}`)).toEqual([line]);
    expect(bad[0]!.message).toContain('linear time');
  });

  it.each([
    { pattern: '(?<=x)y', refused: true },
    { pattern: '^a(?<!b)c', refused: true },
    { pattern: '^(?<name>a)b$', refused: false },
    { pattern: '^\\(?<=x\\)$', refused: false },
    { pattern: '^[(?<=]+$', refused: false },
  ])('a lookbehind, which RE2 refuses, is refused too: $pattern ($refused)', ({ pattern, refused }) => {
    const entry = { key: 'team', pattern, severity: { default: 'low' } };
    const { result } = compileTexts({ 'p.yaml': policyYaml({ requiredLabels: [entry] }), 'g.yaml': goalYaml({ environment: 'dev', nodes: [] }) });
    const bad = result.diagnostics.filter((d) => d.code === 'bad-pattern');
    expect(bad.map((d) => d.message)).toEqual(refused ? [expect.stringContaining('lookbehinds ((?<=…), (?<!…)) are not available, as in RE2')] : []);
  });
});
