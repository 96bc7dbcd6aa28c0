import { describe, expect, it } from 'vitest';
import { compileNamePattern } from '../../../src/infra/policy/index.ts';
import type { NamePattern } from '../../../src/infra/policy/index.ts';
import { compileTexts, goalYaml, policyYaml } from './helpers.ts';

/** A pattern that compiles, or the test fails with its message. */
function pattern(source: string): NamePattern {
  const compiled = compileNamePattern(source);
  if (!compiled.ok) throw new Error(compiled.errors.map((e) => e.message).join('; '));
  return compiled.pattern;
}

/** Whether `name` passes `source` for this environment and these labels. */
function passes(source: string, name: string, environment = 'prod', labels: Record<string, string> = {}): boolean {
  const m = pattern(source).matcherFor(environment, labels);
  if (m.status !== 'ok') throw new Error(`no matcher: ${m.status}`);
  return m.regex.test(name);
}

/** Diagnostics other than findings, as `file:line:col code: message`. */
function loadErrors(policy: Record<string, unknown>): string[] {
  const { result } = compileTexts({ 'p.yaml': policyYaml(policy), 'g.yaml': goalYaml({ environment: 'dev', nodes: [] }) });
  return result.diagnostics.map((d) => `${d.file}:${d.line}:${d.col} ${d.code}: ${d.message}`);
}

describe('patterns are RE2, as CEL matches() reads them', () => {
  // V8's linear engine refused any counted repeat above 16, with a message about backreferences.
  it.each([
    { name: 'a DNS label', source: '^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$', good: 'orders-db', bad: `a${'b'.repeat(63)}` },
    { name: 'a PostgreSQL identifier', source: '^[a-z_][a-z0-9_]{0,62}$', good: 'orders', bad: 'x'.repeat(64) },
    { name: "the S3 bucket name rule of aws.s3.bucket's own schema, after {env}", source: '^{env}-[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', good: 'prod-assets', bad: `prod-${'a'.repeat(64)}` },
    { name: 'a count of 17', source: '^[a-z]{17}$', good: 'a'.repeat(17), bad: 'a'.repeat(16) },
    { name: 'a count of 1000, the most RE2 allows', source: '^a{1000}$', good: 'a'.repeat(1000), bad: 'a'.repeat(999) },
    { name: 'RE2 classes and flags', source: '(?i)^[[:alpha:]]+\\d{2,20}$', good: 'Orders42', bad: 'orders' },
  ])('$name', ({ source, good, bad }) => {
    expect(passes(source, good)).toBe(true);
    expect(passes(source, bad)).toBe(false);
  });

  it('a naming pattern and a required label pattern with counts above 16 load, and judge nodes', () => {
    const { result, engine } = compileTexts({
      'p.yaml': policyYaml({
        naming: [{ types: ['local.file'], field: 'path', pattern: '^/srv/[a-z]{1,30}$', severity: { default: 'high' } }],
        requiredLabels: [{ key: 'cost-center', pattern: '^CC-[0-9]{4,20}$', severity: { default: 'high' } }],
      }),
      'g.yaml': goalYaml({
        environment: 'dev',
        labels: { 'cost-center': 'CC-1234' },
        nodes: [
          { id: 'good', type: 'local.file', spec: { path: '/srv/orders', content: '' } },
          { id: 'bad', type: 'local.file', spec: { path: `/srv/${'x'.repeat(31)}`, content: '' } },
        ],
      }),
    });
    expect(result.diagnostics.filter((d) => d.code === 'bad-pattern')).toEqual([]);
    expect(engine.findings().map((f) => `${f.node} ${f.rule}`)).toEqual(['bad naming:path']);
  });

  it.each([
    { name: 'a count above 1000', source: '^a{1001}$', says: 'invalid repeat count: `{1001}`: RE2 allows counts up to 1000' },
    { name: 'nested counts above 1000 in all', source: '^(a{100}){11}$', says: 'invalid repeat count: `{11}`' },
    { name: 'a backreference', source: '^(a)\\1$', says: 'backreferences (\\1) cannot be matched in linear time' },
    { name: 'a lookahead', source: '^(?=a)', says: 'lookaheads ((?=…), (?!…)) cannot be matched in linear time' },
    { name: 'a JavaScript-only escape', source: '^\\u0041$', says: 'not a valid regular expression (RE2 syntax, as in CEL\'s matches()): invalid escape sequence: `\\u`' },
  ])('what RE2 refuses is an error saying why, at the pattern: $name', ({ source, says }) => {
    const errors = loadErrors({ naming: [{ types: ['local.file'], field: 'path', pattern: source, severity: { default: 'low' } }] });
    expect(errors).toEqual([expect.stringMatching(/^p\.yaml:10:16 bad-pattern: /)]);
    expect(errors[0]).toContain(says);
  });
});

describe('placeholder values are matched literally, always', () => {
  it.each<{ name: string; source: string; labels: Record<string, string>; name_: string; good: boolean }>([
    { name: 'a label in braces is the text "{3}", not the quantifier {3}', source: '^q{{label.n}}$', labels: { n: '3' }, name_: 'q{3}', good: true },
    { name: '… so "qqq" does not pass', source: '^q{{label.n}}$', labels: { n: '3' }, name_: 'qqq', good: false },
    { name: 'a label "100" in braces', source: '^q{{label.n}}$', labels: { n: '100' }, name_: 'q{100}', good: true },
    { name: 'a label "1,3" after an open count', source: '^q{1,{label.n}}$', labels: { n: '3' }, name_: 'qqq', good: false },
    { name: 'a quantifier after a placeholder repeats the whole value', source: '^{env}+$', labels: {}, name_: 'prodprod', good: true },
    { name: '… not its last character', source: '^{env}+$', labels: {}, name_: 'prodd', good: false },
    { name: 'regex characters in a value are text', source: '^{label.team}$', labels: { team: 'a.b|c*' }, name_: 'a.b|c*', good: true },
    { name: '… and match nothing else', source: '^{label.team}$', labels: { team: 'a.b|c*' }, name_: 'axb', good: false },
    { name: 'an empty value with a quantifier after it leaves the text before alone', source: '^x{label.e}*$', labels: { e: '' }, name_: 'xx', good: false },
    { name: 'an escaped brace is text: \\{env} is "{env}"', source: '^\\{env}$', labels: {}, name_: '{env}', good: true },
    { name: 'braces of \\p{…} are no placeholder', source: '^\\p{Greek}+-{env}$', labels: {}, name_: 'αβ-prod', good: true },
  ])('$name', ({ source, labels, name_, good }) => {
    expect(passes(source, name_, 'prod', labels)).toBe(good);
  });

  it('shows the pattern as it reads in findings: a value is grouped only where the text around it needs it', () => {
    const show = (source: string, labels: Record<string, string>): string => {
      const m = pattern(source).matcherFor('prod', labels);
      return m.status === 'ok' ? m.regex.source : m.status;
    };
    expect(show('^{env}-{label.team}-[a-z]+$', { team: 'a.b' })).toBe('^prod-a\\.b-[a-z]+$');
    expect(show('^q{{label.n}}$', { n: '3' })).toBe('^q{(?:3)}$');
    expect(show('^{env}+$', {})).toBe('^(?:prod)+$');
  });

  it('a label "100" in braces is a finding (or a pass), not an internal error', () => {
    const run = (name: string): string[] => {
      const { engine } = compileTexts({
        'p.yaml': policyYaml({ naming: [{ types: ['local.file'], field: 'path', pattern: '^q{{label.n}}$', severity: { default: 'high' } }] }),
        'g.yaml': goalYaml({ environment: 'dev', labels: { n: '100' }, nodes: [{ id: 'f', type: 'local.file', spec: { path: name, content: '' } }] }),
      });
      return engine.findings().map((f) => f.message);
    };
    expect(run('q{100}')).toEqual([]);
    expect(run('q'.repeat(100))).toEqual(['spec.path "' + 'q'.repeat(100) + '" does not match ^q{(?:100)}$']);
  });

  it('a value too large for the pattern once substituted fails closed with the reason, never a crash', () => {
    const { engine } = compileTexts({
      'p.yaml': policyYaml({ naming: [{ types: ['local.file'], field: 'path', pattern: '^(?:{label.x}){1000}$', severity: { default: 'high' } }] }),
      'g.yaml': goalYaml({ environment: 'dev', labels: { x: 'y'.repeat(5000) }, nodes: [{ id: 'f', type: 'local.file', spec: { path: 'y', content: '' } }] }),
    });
    expect(engine.findings()).toMatchObject([{ rule: 'naming:path', blocking: true, message: expect.stringContaining('cannot be matched with this node\'s values') }]);
  });

  it.each([
    // At the placeholder's `{`, where one placeholder is wrong; at the pattern, where RE2 refuses the whole.
    { name: 'a placeholder inside a character class', source: '^[{env}]+$', at: '10:18', says: 'placeholder {env} inside a character class' },
    { name: 'a placeholder as a group name', source: '^(?P<{env}>a)$', at: '10:16', says: 'invalid named capture' },
  ])('a placeholder where no literal value can go is an error at the pattern: $name', ({ source, at, says }) => {
    const errors = loadErrors({ naming: [{ types: ['local.file'], field: 'path', pattern: source, severity: { default: 'low' } }] });
    expect(errors).toEqual([expect.stringMatching(new RegExp(`^p\\.yaml:${at} bad-pattern: `))]);
    expect(errors[0]).toContain(says);
  });

  // Only the first was reported, at the start of the string; a placeholder left open was literal text.
  it('every bad placeholder is an error at its own column, one left open too', () => {
    const errors = loadErrors({
      naming: [{ types: ['local.file'], field: 'path', pattern: '^{labels.team}{envv}-{label.team', severity: { default: 'low' } }],
      requiredLabels: [{ key: 'owner', pattern: '^{label.team', severity: { default: 'low' } }],
    });
    expect(errors).toEqual([
      'p.yaml:10:17 bad-pattern: unknown placeholder {labels.team}: patterns know {env} and {label.<key>} (did you mean "{label.team}"?)',
      'p.yaml:10:30 bad-pattern: unknown placeholder {envv}: patterns know {env} and {label.<key>} (did you mean "{env}"?)',
      'p.yaml:10:37 bad-pattern: placeholder {label.team is not closed: write {label.team} (or \\{ for a literal brace)',
      expect.stringMatching(/^p\.yaml:\d+:\d+ bad-pattern: placeholder \{label\.team is not closed/),
    ]);
  });

  it.each([
    { name: 'an escaped brace', source: '^\\{label.team$', text: '{label.team' },
    { name: 'a count', source: '^a{2}$', text: 'aa' },
    { name: 'a brace before no name', source: '^{-$', text: '{-' },
  ])('a brace that opens no placeholder is left alone: $name', ({ source, text }) => {
    expect(passes(source, text)).toBe(true);
  });
});
