import { describe, expect, it } from 'vitest';
import { compileTexts, goalYaml } from './helpers.ts';

const head = 'apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: org }\nspec:\n';
const empty = goalYaml({ environment: 'dev', nodes: [] });

/** Compiles one policy text (its spec lines after `spec:`) and returns `line:col severity code: message`. */
function diagnose(specLines: string): string[] {
  const { result } = compileTexts({ 'p.yaml': head + specLines, 'g.yaml': empty });
  return result.diagnostics.filter((d) => d.file === 'p.yaml').map((d) => `${d.line}:${d.col} ${d.severity} ${d.code}: ${d.message}`);
}

describe('Policy documents are validated strictly, each error at its place', () => {
  it.each([
    { name: 'an unknown pack, with did-you-mean', spec: '  include: [baselin]\n', want: ['5:13 error unknown-pack'], says: 'did you mean "baseline"' },
    { name: 'an unknown field', spec: '  blokAt: high\n', want: ['5:3 error unknown-field'], says: 'did you mean "blockAt"' },
    { name: 'an unknown level', spec: '  blockAt: hihg\n', want: ['5:12 error invalid-value'], says: 'did you mean "high"' },
    {
      name: 'an unknown type in a naming rule',
      spec: '  naming:\n    - types: [postgres.databse]\n      field: name\n      pattern: "^x$"\n      severity: { default: high }\n',
      want: ['6:15 error invalid-value'],
      says: 'did you mean "postgres.database"',
    },
    {
      name: 'a naming field the types lack',
      spec: '  naming:\n    - types: [postgres.database]\n      field: nmae\n      pattern: "^x$"\n      severity: { default: high }\n',
      want: ['7:14 error unknown-field'],
      says: 'did you mean "name"',
    },
    {
      name: 'an unknown placeholder',
      spec: '  naming:\n    - types: [postgres.database]\n      field: name\n      pattern: "^{team}-x$"\n      severity: { default: high }\n',
      want: ['8:18 error bad-pattern'],
      says: 'did you mean "{label.team}"',
    },
    {
      name: 'a pattern that is not a regular expression',
      spec: '  requiredLabels:\n    - key: team\n      pattern: "^(a$"\n      severity: { default: high }\n',
      want: ['7:16 error bad-pattern'],
      says: 'not a valid regular expression',
    },
    {
      name: 'a misspelt framework',
      spec: '  rules:\n    - id: r\n      description: d\n      require: "true"\n      severity: { default: high }\n      frameworks: [SOC-2]\n',
      want: ['10:20 error invalid-value'],
      says: 'did you mean "SOC2"',
    },
    { name: 'a rule without require', spec: '  rules:\n    - id: r\n      description: d\n      severity: { default: high }\n', want: ['6:7 error missing-field'], says: 'require' },
    {
      name: 'a severity level that does not exist',
      spec: '  rules:\n    - id: r\n      description: d\n      require: "true"\n      severity: { default: hgh }\n',
      want: ['9:28 error invalid-value'],
      says: 'did you mean "high"',
    },
    {
      name: 'duplicate rule ids',
      spec: '  rules:\n    - id: r\n      description: d\n      require: "true"\n      severity: { default: high }\n    - id: r\n      description: d\n      require: "true"\n      severity: { default: high }\n',
      want: ['10:11 error duplicate-rule'],
      says: 'p.yaml:6:11',
    },
    {
      name: 'a default for a field the type lacks',
      spec: '  defaults:\n    - types: [postgres.role]\n      set: { conectionLimit: 20 }\n',
      want: ['7:14 error unknown-field'],
      says: 'did you mean "connectionLimit"',
    },
    // Read from the type's shape, a name a plain object inherits was taken for a field: exit 70, `schema.safeParse is not a function`.
    {
      name: 'a default for a field named like an inherited member',
      spec: '  defaults:\n    - types: [postgres.role]\n      set: { toString: 20 }\n',
      want: ['7:14 error unknown-field'],
      says: 'toString is not a field of postgres.role',
    },
    {
      name: 'a default of the wrong type',
      spec: '  defaults:\n    - types: [postgres.role]\n      set: { connectionLimit: "20" }\n',
      want: ['7:31 error invalid-value'],
      says: 'connectionLimit of postgres.role',
    },
    {
      name: 'a default for a secret field',
      spec: '  defaults:\n    - types: [postgres.role]\n      set: { password: { fromEnv: X } }\n',
      want: ['7:14 error secret-default'],
      says: 'holds a secret',
    },
  ])('$name', ({ spec, want, says }) => {
    const got = diagnose(spec);
    expect(got.map((g) => g.slice(0, g.indexOf(':', g.indexOf(' ')))), got.join('\n')).toEqual(want);
    expect(got.join('\n')).toContain(says);
  });

  it('a misspelt environment in a severity map is a warning with did-you-mean', () => {
    const spec = '  rules:\n    - id: r\n      description: d\n      require: "true"\n      severity: { default: low, prdo: high }\n';
    const { result } = compileTexts({ 'p.yaml': head + spec, 'g.yaml': goalYaml({ environment: 'prod', nodes: [] }) });
    expect(result.diagnostics.map((d) => `${d.file}:${d.line}:${d.col} ${d.severity} ${d.code}: ${d.message}`)).toEqual([
      'p.yaml:9:33 warning unknown-environment: no goal has environment "prdo" (did you mean "prod"?)',
    ]);
  });
});

describe('CEL expressions are compiled at load; a bad one is an error at its file:line:col', () => {
  const rule = (require: string): string => `  rules:\n    - id: r\n      description: d\n      require: ${require}\n      severity: { default: high }\n`;
  it.each([
    { name: 'a syntax error, at its place in the expression', require: '"spec.login = = true"', want: '8:28 error bad-expression: rule r: require: syntax error: found = but expecting end of input' },
    { name: 'an unknown variable, with did-you-mean', require: '"lables.team == \'x\'"', want: '8:16 error bad-expression: rule r: require: unknown variable "lables"; expressions see id, type, spec, labels, goal, deletionPolicy (did you mean "labels"?)' },
    { name: 'an unknown function, with did-you-mean', require: '"spec.name.startWith(\'x\')"', want: '8:26 error bad-expression: rule r: require: unknown function "startWith" (did you mean "startsWith"?)' },
    { name: 'a plain scalar', require: 'spec.login &&', want: '8:27 error bad-expression: rule r: require: syntax error: found & but expecting end of input' },
    { name: 'a double-quoted scalar with escapes before the error', require: '"spec.name == \\"a\\" = 1"', want: '8:36 error bad-expression: rule r: require: syntax error: found = but expecting end of input' },
    { name: 'an error on the start of the expression: at it', require: '"= 1"', want: '8:16 error bad-expression: rule r: require: syntax error' },
  ])('$name', ({ require, want }) => {
    const got = diagnose(rule(require));
    expect(got).toHaveLength(1);
    expect(got[0]).toContain(want);
  });

  // The audit's case: the `|` line was given, which holds no expression text.
  it.each([
    { name: 'a literal block scalar', style: '|-', want: '10:19' },
    { name: 'a folded block scalar', style: '>', want: '10:19' },
  ])('an error in an expression over several lines is at its line and column in the file: $name', ({ style, want }) => {
    const got = diagnose(`  rules:\n    - id: r\n      description: d\n      require: ${style}\n        has(spec.name) &&\n        spec.name ||| 1\n      severity: { default: high }\n`);
    expect(got).toEqual([`${want} error bad-expression: rule r: require: syntax error: found | but expecting end of input`]);
  });

  it('where the source cannot be mapped (an indentation indicator), the expression\'s start and the place inside it', () => {
    const got = diagnose('  rules:\n    - id: r\n      description: d\n      require: |2\n          has(spec.name) &&\n        spec.name ||| 1\n      severity: { default: high }\n');
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(/^8:16 error bad-expression: rule r: require: syntax error: .* \(at 2:11 of the expression\)$/);
  });

  // A field read is placed where CEL places it: at its ".".
  it('a field the rule\'s types lack is at its place too', () => {
    const got = diagnose('  rules:\n    - id: r\n      description: d\n      types: [local.file]\n      require: |\n        has(spec.path) &&\n          spec.contnet == \'x\'\n      severity: { default: high }\n');
    expect(got).toEqual([expect.stringMatching(/^11:15 error bad-expression: rule r: require: spec\.contnet is not a field of local\.file \(did you mean "content"\?\)$/)]);
  });

  it('when is checked too', () => {
    const got = diagnose('  rules:\n    - id: r\n      description: d\n      when: "nope(1)"\n      require: "true"\n      severity: { default: high }\n');
    expect(got).toHaveLength(1);
    expect(got[0]).toContain('8:13 error bad-expression: rule r: when: unknown function "nope"');
  });
});

describe('a Policy with a schema error still has its other entries checked', () => {
  // Every problem at once, as GOAL-FORMAT.md's "Errors" asks: not a second round after the first is fixed.
  it('a bad level in one rule, a bad expression in another, a bad pattern in a naming entry: all three reported', () => {
    const spec = [
      '  rules:',
      '    - { id: a, description: d, require: "true", severity: { default: hgih } }',
      '    - { id: b, description: d, require: "spec.mode ==", severity: { default: high } }',
      '  naming:',
      '    - { types: [local.file], field: path, pattern: "^[a-", severity: { default: low } }',
      '',
    ].join('\n');
    expect(diagnose(spec).map((d) => d.split(' ').filter((_, i) => i !== 1).slice(0, 2).join(' '))).toEqual([
      '6:70 invalid-value:',
      '7:52 bad-expression:',
      '9:52 bad-pattern:',
    ]);
  });
});

describe('an entry with errors only in what a finding says still has its checks run', () => {
  // description, severity and frameworks are read by no check: an error there does not hide the entry's CEL or pattern.
  it.each([
    { name: 'a rule with a bad description and a bad expression', entry: '  rules:\n    - { id: r, description: 5, require: "spec.mode ==" , severity: { default: high } }\n', want: ['6:29 invalid-type', '6:52 bad-expression'] },
    { name: 'a rule with a bad level and an unknown key, and a field its types lack', entry: '  rules:\n    - { id: r, description: d, require: "spec.nope", severity: { default: hgih }, bogus: 1 }\n', want: ['6:46 bad-expression', '6:75 invalid-value', '6:83 unknown-field'] },
    { name: 'a naming entry with a bad framework and a bad pattern', entry: '  naming:\n    - { types: [local.file], field: path, pattern: "^[a-", severity: { default: low }, frameworks: [SOX] }\n', want: ['6:52 bad-pattern', '6:101 invalid-value'] },
    { name: 'a required label with a bad severity and a bad pattern', entry: '  requiredLabels:\n    - { key: team, pattern: "(", severity: 3 }\n', want: ['6:29 bad-pattern', '6:44 invalid-type'] },
  ])('$name', ({ entry, want }) => {
    expect(diagnose(entry).map((d) => d.split(' ').filter((_, i) => i !== 1).slice(0, 2).join(' ').replace(/:$/, ''))).toEqual(want);
  });

  it('an entry whose expression field itself is bad is not compiled, so it brings no echo', () => {
    expect(diagnose('  rules:\n    - { id: r, description: 5, require: 7, severity: { default: high } }\n').map((d) => d.split(' ')[2])).toEqual(['invalid-type:', 'invalid-type:']);
  });

  it('a bad blockAt does not hide an unknown pack', () => {
    expect(diagnose('  blockAt: extreme\n  include: [baselin]\n').map((d) => d.split(' ').filter((_, i) => i !== 1).slice(0, 2).join(' '))).toEqual(['5:12 invalid-value:', '6:13 unknown-pack:']);
  });
});

describe('an entry that cannot be checked hides no other error', () => {
  const codes = (spec: string): string[] => diagnose(spec).map((d) => d.split(' ').filter((_, i) => i !== 1).slice(0, 2).join(' ').replace(/:$/, ''));
  const rule = (id: string, extra = ''): string => `    - { id: ${id}, description: d, require: "true", severity: { default: low }${extra} }\n`;

  it.each([
    { name: 'the first', spec: `  rules:\n${rule('r1', ', types: [local.fil]')}${rule('r1')}`, want: ['6:86 invalid-value', '7:13 duplicate-rule'] },
    { name: 'the second', spec: `  rules:\n${rule('r1')}${rule('r1', ', types: [local.fil]')}`, want: ['7:13 duplicate-rule', '7:86 invalid-value'] },
  ])('an unknown type in $name of two rules of one id: the duplicate is reported too', ({ spec, want }) => {
    expect(codes(spec)).toEqual(want);
  });

  it('a naming entry with a bad type still claims its id (naming:<field>)', () => {
    const naming = (type: string): string => `    - { types: [${type}], field: name, pattern: "^a", severity: { default: low } }\n`;
    expect(codes(`  naming:\n${naming('postgres.rol')}${naming('postgres.role')}`)).toEqual(['6:17 invalid-value', '7:40 duplicate-rule']);
  });

  // An unknown type leaves out only what reads a type's fields: a rule's CEL syntax, a pattern, a default's template.
  it.each([
    { name: 'a rule: its expressions', spec: '  rules:\n    - { id: r, description: d, types: [local.fiel], when: "spec.x ==", require: "spec.nope == 1", severity: { default: high } }\n', want: ['6:40 invalid-value', '6:67 bad-expression'] },
    { name: 'a naming entry: its pattern', spec: '  naming:\n    - { types: [local.fiel], field: nope, pattern: "^[a-z", severity: { default: high } }\n', want: ['6:17 invalid-value', '6:52 bad-pattern'] },
    { name: 'a required label: its pattern', spec: '  requiredLabels:\n    - { key: team, types: [], pattern: "(", severity: { default: high } }\n', want: ['6:27 invalid-value', '6:40 bad-pattern'] },
    { name: 'a default: a template in it', spec: '  defaults:\n    - { types: [local.fiel], set: { nope: "${goal.name}" } }\n', want: ['6:17 invalid-value', '6:43 bad-interpolation'] },
  ])('an unknown type in $name is checked all the same', ({ spec, want }) => {
    expect(codes(spec)).toEqual(want);
  });

  it('a misspelt key is read as the field it is near: its expression is checked where it is written', () => {
    expect(codes('  rules:\n    - { id: r, description: d, reqire: "spec.nme == 1", severity: { default: low } }\n')).toEqual(['6:32 unknown-field', '6:45 bad-expression']);
  });
});

describe('a Policy that is not used still has its spec checked', () => {
  // GOAL-FORMAT: every problem at once. An invalid name, or a second Policy of one name, hid every error of its spec.
  const spec = '  requiredLabels:\n    - { key: team, severity: { default: high } }\n  rules:\n    - { id: r, description: d, require: "spec.mode ==", severity: { default: high } }\n  bogus: 1\n';
  const goal = goalYaml({ environment: 'dev', nodes: [{ id: 'f', type: 'local.file', spec: { path: 'f', content: '' } }] });
  const policy = (name: string): string => `apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: ${name} }\nspec:\n${spec}`;

  it('with an invalid name: its errors reported, its rules not used (no finding on the node that lacks the label)', () => {
    const { brief } = compileTexts({ 'p.yaml': policy('Org'), 'g.yaml': goal });
    expect(brief).toEqual(['p.yaml:3:19 error invalid-value', 'p.yaml:8:52 error bad-expression', 'p.yaml:9:3 error unknown-field']);
  });

  it('a second of one name: its errors reported beside the duplicate, its rules not used', () => {
    const first = 'apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: org }\nspec:\n  requiredLabels:\n    - { key: owner, severity: { default: high } }\n';
    const { brief, result } = compileTexts({ 'p.yaml': first, 'q.yaml': policy('org'), 'g.yaml': goal });
    expect(brief).toEqual(['g.yaml:9:7 error policy-violation', 'q.yaml:3:19 error duplicate-name', 'q.yaml:8:52 error bad-expression', 'q.yaml:9:3 error unknown-field']);
    // The first one's finding (no owner label), not the second's (no team label).
    expect(result.diagnostics[0]!.message).toContain('label "owner"');
  });
});
