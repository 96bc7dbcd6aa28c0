import { describe, expect, it } from 'vitest';
import { compileTexts, goalYaml, policyYaml } from './helpers.ts';
import type { NodeInput } from './helpers.ts';

/** The policy diagnostics of one compile, as `severity code`. */
function policyDiagnostics(files: Record<string, string>, options = {}): string[] {
  const { result } = compileTexts(files, options);
  const others = result.diagnostics.filter((d) => !['policy-violation', 'policy-finding', 'rule-error'].includes(d.code));
  expect(others.map((d) => `${d.code}: ${d.message}`)).toEqual([]);
  return result.diagnostics.map((d) => `${d.severity} ${d.code}`);
}

/** A goal with one node; `it.each` tables widen absent keys to undefined, which are dropped. */
function one(environment: string, node: NodeInput, labels: Readonly<Record<string, string | undefined>> = {}): string {
  return goalYaml({ environment, labels: defined(labels), nodes: [node] });
}

function defined(m: Readonly<Record<string, string | undefined>>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).filter((e): e is [string, string] => e[1] !== undefined));
}

describe('naming patterns', () => {
  const policy = policyYaml({
    naming: [{ types: ['postgres.database'], field: 'name', pattern: '^{env}_{label.team}_[a-z0-9_]+$', severity: { default: 'medium', prod: 'high' } }],
  });
  const db = (name: string, labels: Record<string, string> = { team: 'data' }): NodeInput => ({ id: 'db', type: 'postgres.database', spec: { name }, labels });
  it.each([
    { name: 'a name built from env and label passes', env: 'prod', node: db('prod_data_orders'), want: [] },
    { name: 'a prod slip is high: an error that blocks', env: 'prod', node: db('dev_data_orders'), want: ['error policy-violation'] },
    { name: 'the same slip in dev is medium: a warning', env: 'dev', node: db('prod_data_orders'), want: ['warning policy-finding'] },
    { name: 'label values are regex-escaped: "a.b" does not match "axb"', env: 'prod', node: db('prod_axb_orders', { team: 'a.b' }), want: ['error policy-violation'] },
    { name: 'an escaped label still matches itself', env: 'prod', node: db('prod_a.b_orders', { team: 'a.b' }), want: [] },
    { name: 'a placeholder label the node lacks is a finding, not a crash', env: 'prod', node: db('prod_data_orders', {}), want: ['error policy-violation'] },
    { name: 'types the rule does not list are not checked', env: 'prod', node: { id: 'r', type: 'postgres.role', spec: { name: 'whatever' } }, want: [] },
  ])('$name', ({ env, node, want }) => {
    expect(policyDiagnostics({ 'p.yaml': policy, 'g.yaml': one(env, node) })).toEqual(want);
  });

  it('says which label is missing and points at the node', () => {
    const { engine } = compileTexts({ 'p.yaml': policy, 'g.yaml': one('prod', db('prod_x_y', {})) });
    expect(engine.findings()).toMatchObject([{ rule: 'naming:name', kind: 'naming', severity: 'high', blocking: true, node: 'db', goal: 'app-prod' }]);
    expect(engine.findings()[0]!.message).toContain('needs label "team"');
  });

  // A plain object inherits these: read as labels, they crashed the compile (`s.replace is not a function`).
  it.each(['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__'])('a placeholder {label.%s} the node lacks is a finding, not an inherited member', (key) => {
    const p = policyYaml({ naming: [{ types: ['postgres.database'], field: 'name', pattern: `^{label.${key}}-`, severity: { default: 'high' } }] });
    const { engine } = compileTexts({ 'p.yaml': p, 'g.yaml': one('prod', db('prod_data_orders')) });
    expect(engine.findings().map((f) => f.message)).toEqual([`the naming pattern ^{label.${key}}- needs label "${key}", which the node does not carry`]);
  });

  it('placeholders do not swallow regex quantifiers', () => {
    const p = policyYaml({ naming: [{ types: ['postgres.database'], field: 'name', pattern: '^{env}-[0-9]{4}$', severity: { default: 'high' } }] });
    expect(policyDiagnostics({ 'p.yaml': p, 'g.yaml': one('dev', db('dev-2024')) })).toEqual([]);
    expect(policyDiagnostics({ 'p.yaml': p, 'g.yaml': one('dev', db('dev-24')) })).toEqual(['error policy-violation']);
  });
});

describe('required labels', () => {
  const policy = policyYaml({
    requiredLabels: [
      { key: 'team', severity: { default: 'high' } },
      { key: 'cost-center', pattern: '^CC-[0-9]{4}$', severity: { default: 'medium', prod: 'high' } },
      { key: 'pci-zone', types: ['aws.s3.bucket'], severity: { default: 'high' } },
    ],
  });
  const file = (labels: Record<string, string>): NodeInput => ({ id: 'f', type: 'local.file', spec: { path: 'a', content: '' }, labels });
  it.each([
    { name: 'every label present and well-formed', env: 'prod', goalLabels: { team: 't', 'cost-center': 'CC-1234' }, node: file({}), want: [] },
    { name: 'labels merge: node labels complete the goal labels', env: 'prod', goalLabels: { team: 't' }, node: file({ 'cost-center': 'CC-0001' }), want: [] },
    { name: 'a missing label blocks', env: 'prod', goalLabels: { 'cost-center': 'CC-1234' }, node: file({}), want: ['error policy-violation'] },
    // `team: ""` passed as present: it names no team.
    { name: 'an empty label blocks as a missing one', env: 'prod', goalLabels: { team: '', 'cost-center': 'CC-1234' }, node: file({}), want: ['error policy-violation'] },
    { name: 'a label of spaces blocks as a missing one', env: 'prod', goalLabels: { team: 't', 'cost-center': 'CC-1234' }, node: file({ team: '  ' }), want: ['error policy-violation'] },
    { name: 'a value off the pattern blocks in prod', env: 'prod', goalLabels: { team: 't', 'cost-center': 'CC-12' }, node: file({}), want: ['error policy-violation'] },
    { name: 'the same value in dev is medium: a warning', env: 'dev', goalLabels: { team: 't', 'cost-center': 'CC-12' }, node: file({}), want: ['warning policy-finding'] },
    { name: 'a node label overrides the goal label it breaks', env: 'prod', goalLabels: { team: 't', 'cost-center': 'CC-12' }, node: file({ 'cost-center': 'CC-9999' }), want: [] },
    {
      name: 'a label restricted to some types is asked of those only',
      env: 'prod',
      goalLabels: { team: 't', 'cost-center': 'CC-1234' },
      node: { id: 'b', type: 'aws.s3.bucket', spec: { name: 'bucket-1', region: 'eu' } },
      want: ['error policy-violation'],
    },
  ])('$name', ({ env, goalLabels, node, want }) => {
    expect(policyDiagnostics({ 'p.yaml': policy, 'g.yaml': one(env, node, goalLabels) })).toEqual(want);
  });

  // A plain object inherits these: read as labels, they crashed the compile (`value.trim is not a function`).
  it.each(['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__'])('a required label %s is missing, not an inherited member', (key) => {
    const p = policyYaml({ requiredLabels: [{ key, severity: { default: 'high' } }] });
    const { engine } = compileTexts({ 'p.yaml': p, 'g.yaml': one('prod', file({ team: 't' })) });
    expect(engine.findings().map((f) => f.message)).toEqual([`label "${key}" is missing`]);
  });

  // They were literal text: `^{env}-` asked for the characters "{env}-".
  describe('a pattern takes {env} and {label.<key>} as a naming pattern does', () => {
    const p = policyYaml({ requiredLabels: [{ key: 'owner', pattern: '^{label.team}@{env}\\.', severity: { default: 'high' } }] });
    it.each([
      { name: 'the values substituted', env: 'prod', labels: { team: 'data', owner: 'data@prod.acme' }, want: [] },
      { name: 'another environment', env: 'dev', labels: { team: 'data', owner: 'data@prod.acme' }, want: ['label "owner" is "data@prod.acme", which does not match ^data@dev\\.'] },
      { name: 'a value matched literally', env: 'prod', labels: { team: 'd.a', owner: 'dxa@prod.acme' }, want: ['label "owner" is "dxa@prod.acme", which does not match ^d\\.a@prod\\.'] },
      { name: 'a label the pattern needs and the node lacks', env: 'prod', labels: { owner: 'data@prod.acme' }, want: ['the pattern of label "owner" ^{label.team}@{env}\\. needs label "team", which the node does not carry'] },
    ])('$name', ({ env, labels, want }) => {
      const { engine } = compileTexts({ 'p.yaml': p, 'g.yaml': one(env, file(defined(labels))) });
      expect(engine.findings().map((f) => f.message)).toEqual(want);
    });

    it('an unknown placeholder is an error at the pattern', () => {
      const bad = policyYaml({ requiredLabels: [{ key: 'owner', pattern: '^{envv}', severity: { default: 'high' } }] });
      const { result } = compileTexts({ 'p.yaml': bad, 'g.yaml': one('prod', file({ owner: 'x' })) });
      expect(result.diagnostics.map((d) => `${d.code}: ${d.message}`)).toEqual(['bad-pattern: unknown placeholder {envv}: patterns know {env} and {label.<key>} (did you mean "{env}"?)']);
    });
  });
});

describe('CEL rules', () => {
  const rule = (extra: Record<string, unknown>): string =>
    policyYaml({ rules: [{ id: 'r', description: 'a rule', severity: { default: 'low', prod: 'high' }, frameworks: ['SOC2'], ...extra }] });
  const role = (spec: Record<string, unknown>): NodeInput => ({ id: 'role', type: 'postgres.role', spec: { name: 'app', ...spec } });
  const capped = { types: ['postgres.role'], when: 'spec.login == true', require: 'has(spec.connectionLimit) && spec.connectionLimit > 0' };
  it.each([
    { name: 'when true, require false: blocks in prod', env: 'prod', policy: rule(capped), node: role({ login: true }), want: ['error policy-violation'] },
    { name: 'when true, require false: low in dev, a warning', env: 'dev', policy: rule(capped), node: role({ login: true }), want: ['warning policy-finding'] },
    { name: 'when true, require true: passes', env: 'prod', policy: rule(capped), node: role({ login: true, connectionLimit: 5 }), want: [] },
    { name: 'when false: the rule does not apply', env: 'prod', policy: rule(capped), node: role({ login: false }), want: [] },
    { name: 'types exclude the node: the rule does not apply', env: 'prod', policy: rule(capped), node: { id: 'd', type: 'postgres.database', spec: { name: 'x' } }, want: [] },
    { name: 'integers compare as CEL ints', env: 'prod', policy: rule({ require: 'spec.connectionLimit == 20' }), node: role({ connectionLimit: 20 }), want: [] },
    { name: 'id and type are bound', env: 'prod', policy: rule({ require: "id == 'role' && type == 'postgres.role'" }), node: role({}), want: [] },
    { name: 'goal name, environment and labels are bound', env: 'prod', policy: rule({ require: "goal.name == 'app-prod' && goal.environment == 'prod' && goal.labels.tier == 'gold'" }), node: role({}), want: [] },
    { name: 'labels are the merged labels', env: 'prod', policy: rule({ require: "labels.tier == 'gold' && labels.team == 'db'" }), node: { ...role({}), labels: { team: 'db' } }, want: [] },
    { name: 'deletionPolicy is bound (Orphan unless the goal says Delete)', env: 'prod', policy: rule({ require: "deletionPolicy == 'Orphan'" }), node: { ...role({}), deletionPolicy: 'Delete' as const }, want: ['error policy-violation'] },
    { name: 'an evaluation error fails closed, at the rule level (prod: blocks)', env: 'prod', policy: rule({ require: 'spec.connectionLimit > 0' }), node: role({}), want: ['error rule-error'] },
    { name: 'an evaluation error in dev is a warning', env: 'dev', policy: rule({ require: 'spec.connectionLimit > 0' }), node: role({}), want: ['warning rule-error'] },
    { name: 'a non-bool result is a rule error', env: 'prod', policy: rule({ require: '!spec.login ? spec.name : true' }), node: role({}), want: ['error rule-error'] },
    { name: 'an error in when is a rule error too', env: 'prod', policy: rule({ when: '1 / 0 == 1', require: 'true' }), node: role({}), want: ['error rule-error'] },
  ])('$name', ({ env, policy, node, want }) => {
    expect(policyDiagnostics({ 'p.yaml': policy, 'g.yaml': one(env, node, { tier: 'gold' }) })).toEqual(want);
  });

  it('a finding carries rule, severity, frameworks, goal and the offending field', () => {
    const { engine } = compileTexts({ 'p.yaml': rule({ require: "spec.encoding == 'UTF8'" }), 'g.yaml': one('prod', { id: 'db', type: 'postgres.database', spec: { name: 'x', encoding: 'LATIN1' } }) });
    const [f] = engine.findings();
    expect(f).toMatchObject({ policy: 'org', rule: 'r', kind: 'rule', severity: 'high', blocking: true, frameworks: ['SOC2'], node: 'db', goal: 'app-prod', environment: 'prod' });
    // The require reads one field, so the finding points at it rather than at the node.
    expect(f!.location.line).toBeGreaterThan(1);
  });
});

describe('environment-aware defaults', () => {
  const policy = policyYaml({
    defaults: [
      { types: ['postgres.role'], environments: ['prod'], set: { connectionLimit: 20 } },
      { types: ['aws.s3.bucket'], set: { encryption: 'aws:kms' } },
    ],
    rules: [{ id: 'capped', description: 'capped', types: ['postgres.role'], require: 'has(spec.connectionLimit)', severity: { default: 'high' } }],
  });
  it.each([
    { name: 'set where the goal leaves the field unset', env: 'prod', node: { id: 'n', type: 'postgres.role', spec: { name: 'a' } }, field: 'connectionLimit', value: 20, fromPolicy: true },
    { name: 'never over a value the goal sets', env: 'prod', node: { id: 'n', type: 'postgres.role', spec: { name: 'a', connectionLimit: 3 } }, field: 'connectionLimit', value: 3, fromPolicy: false },
    { name: 'not in environments the default does not list', env: 'dev', node: { id: 'n', type: 'postgres.role', spec: { name: 'a', connectionLimit: 3 } }, field: 'connectionLimit', value: 3, fromPolicy: false },
    { name: 'over a zod default the user did not write', env: 'dev', node: { id: 'n', type: 'aws.s3.bucket', spec: { name: 'b-1', region: 'eu' } }, field: 'encryption', value: 'aws:kms', fromPolicy: true },
    { name: 'not over a value equal to the zod default the user did write', env: 'dev', node: { id: 'n', type: 'aws.s3.bucket', spec: { name: 'b-1', region: 'eu', encryption: 'AES256' } }, field: 'encryption', value: 'AES256', fromPolicy: false },
  ])('$name', ({ env, node, field, value, fromPolicy }) => {
    const { result, factory } = compileTexts({ 'p.yaml': policy, 'g.yaml': one(env, node) });
    expect(result.diagnostics).toEqual([]);
    const spec = result.graph!.get('n')!.spec.spec as unknown as Record<string, unknown>;
    expect(spec[field]).toEqual(value);
    expect(factory.policyDefaults.get('n') ?? []).toEqual(fromPolicy ? [{ field, value, policy: 'org' }] : []);
  });

  it('rules see the defaulted spec: a prod default satisfies a rule', () => {
    const { result } = compileTexts({ 'p.yaml': policy, 'g.yaml': one('prod', { id: 'n', type: 'postgres.role', spec: { name: 'a' } }) });
    expect(result.diagnostics).toEqual([]);
  });
});

describe('severity per environment and blockAt', () => {
  const file: NodeInput = { id: 'f', type: 'local.file', spec: { path: 'a', content: '' } };
  const policy = (severity: Readonly<Record<string, string | undefined>>, blockAt?: string): string =>
    policyYaml({ ...(blockAt === undefined ? {} : { blockAt }), rules: [{ id: 'never', description: 'always broken', require: 'false', severity: defined(severity) }] });
  it.each([
    { name: 'default applies to unlisted environments', severity: { default: 'medium', prod: 'high' }, env: 'staging', want: ['warning policy-finding'] },
    { name: 'the environment entry wins over default', severity: { default: 'medium', prod: 'high' }, env: 'prod', want: ['error policy-violation'] },
    { name: 'none turns the rule off in that environment', severity: { default: 'high', dev: 'none' }, env: 'dev', want: [] },
    { name: 'no default: unlisted environments are off', severity: { prod: 'critical' }, env: 'dev', want: [] },
    { name: 'info is reported as info, not a warning', severity: { default: 'info' }, env: 'dev', want: ['info policy-finding'] },
    { name: 'blockAt medium makes medium block', severity: { default: 'medium' }, env: 'dev', blockAt: 'medium', want: ['error policy-violation'] },
    { name: 'blockAt critical lets high through as a warning', severity: { default: 'high' }, env: 'dev', blockAt: 'critical', want: ['warning policy-finding'] },
  ])('$name', ({ severity, env, blockAt, want }) => {
    expect(policyDiagnostics({ 'p.yaml': policy(severity, blockAt), 'g.yaml': one(env, file) })).toEqual(want);
  });
});

describe('the gate', () => {
  const policy = policyYaml({ rules: [{ id: 'no-files', description: 'no files', types: ['local.file'], require: 'false', severity: { default: 'high', dev: 'low' } }] });
  const goal = (env: string): string =>
    goalYaml({ environment: env, nodes: [{ id: 'f', type: 'local.file', spec: { path: 'a', content: '' } }, { id: 'd', type: 'local.directory', spec: { path: 'x' } }] });

  it('holds a node with a blocking finding, with the rule in the reason (graph kept when blocking findings are warnings)', () => {
    const { result } = compileTexts({ 'p.yaml': policy, 'g.yaml': goal('prod') }, { blockingDiagnostic: 'warning' });
    expect(result.graph).toBeDefined();
    expect([...result.gates.keys()]).toEqual(['f']);
    expect(result.gates.get('f')!.reason).toContain('no-files (high, org)');
  });

  it('by default a blocking finding is an error: validate fails and no graph is built', () => {
    const { result } = compileTexts({ 'p.yaml': policy, 'g.yaml': goal('prod') });
    expect(result.graph).toBeUndefined();
    expect(result.gates.has('f')).toBe(true);
  });

  it('a finding below blockAt does not gate', () => {
    const { result } = compileTexts({ 'p.yaml': policy, 'g.yaml': goal('dev') });
    expect(result.graph).toBeDefined();
    expect(result.gates.size).toBe(0);
  });
});
