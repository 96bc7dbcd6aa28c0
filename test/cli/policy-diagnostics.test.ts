import { describe, expect, it } from 'vitest';
import { cli, goalHead, localBackend, tempProject } from '../support/cli.ts';

/**
 * What `validate` (and the commands that compile the same way) say about
 * policies, through the real CLI: the messages users read, at their places.
 */

/** A Policy document `acme` with `spec` (YAML lines, indented two spaces). */
function policy(spec: string): string {
  return `apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: acme }\nspec:\n${spec}`;
}

/** A project with a local Backend and a Goal `app` (labels, environment) holding `nodes` (YAML lines, indented four spaces). */
function project(prefix: string, options: { labels?: string; environment?: string; nodes: string }): ReturnType<typeof tempProject> {
  const p = tempProject(prefix);
  const head = goalHead('  defaults: { backend: local }\n').replace('metadata: { name: app }', `metadata: { name: app, environment: ${options.environment ?? 'dev'}, labels: { ${options.labels ?? ''} } }`);
  p.write('goals.yaml', `${localBackend(p.root)}---\n${head}${options.nodes}`);
  return p;
}

describe('naming patterns', () => {
  it('a counted repeat above 16 (a DNS label, the S3 name rule) is accepted, and judges names', async () => {
    const p = project('ds-pol-repeat-', { nodes: '    - { id: ok, type: local.file, spec: { path: dev-app.conf, content: "" } }\n    - { id: long, type: local.file, spec: { path: dev-a-name-that-is-far-too-long-for-the-rule-of-sixty-three-characters.conf, content: "" } }\n' });
    p.write('policy.yaml', policy('  naming:\n    - { types: [local.file], field: path, pattern: "^{env}-[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", severity: { default: high } }\n'));
    const v = await cli(['validate', ...p.args], { cwd: p.dir });
    expect(v.stderr).toBe('');
    expect(v.stdout).not.toContain('bad-pattern');
    expect(v.stdout).toMatch(/goals\.yaml:\d+:\d+: error policy-violation: \[high\] naming:path: spec\.path "dev-a-name-that-is-far/);
    expect(v.stdout).not.toContain('"dev-app.conf"');
    expect(v.code).toBe(1);
  });

  it('a label "100" where a count could be is matched literally: a finding, not an internal error (exit 70)', async () => {
    const p = project('ds-pol-label-', { labels: 'n: "100"', nodes: '    - { id: f, type: local.file, spec: { path: qqq, content: "" } }\n' });
    p.write('policy.yaml', policy('  naming:\n    - { types: [local.file], field: path, pattern: "^q{{label.n}}$", severity: { default: high } }\n'));
    const v = await cli(['validate', ...p.args], { cwd: p.dir });
    expect(v.stderr).toBe('');
    expect(v.stdout).not.toContain('internal error');
    expect(v.stdout).toContain('error policy-violation: [high] naming:path: spec.path "qqq" does not match ^q{(?:100)}$');
    expect(v.code).toBe(1);
  });
});

describe('CEL type errors', () => {
  // They passed validate (exit 0) until a node of the rule's types appeared, then were a rule error at that node, in another team's file.
  it('are reported at the rule, each at its place, with no node of its types', async () => {
    const p = project('ds-pol-types-', { environment: 'prod', nodes: '    - { id: f, type: local.file, spec: { path: f.txt, content: "x" } }\n' });
    p.write(
      'policy.yaml',
      policy(`  rules:
    - { id: typed, description: d, types: [local.directory], require: "spec.path + 1 == 'x'", severity: { default: high } }
    - { id: goaltypo, description: d, types: [local.directory], require: "goal.enviroment == 'prod'", severity: { default: high } }
    - { id: badre, description: d, types: [local.directory], require: "spec.path.matches('(')", severity: { default: high } }
`),
    );
    for (const command of ['validate', 'check']) {
      const v = await cli([command, ...p.args], { cwd: p.dir });
      // check writes its report on stdout, the diagnostics on stderr.
      const said = `${v.stdout}${v.stderr}`;
      expect(said).toContain('goals/policy.yaml:6:82: error bad-expression: rule typed: require: + cannot be applied to a string and an int');
      expect(said).toContain('goals/policy.yaml:7:79: error bad-expression: rule goaltypo: require: goal has no field "enviroment" (did you mean "environment"?)');
      expect(said).toContain('goals/policy.yaml:8:90: error bad-expression: rule badre: require: the pattern of matches() does not compile: error parsing regexp: missing closing )');
      expect(v.code).toBe(1);
    }
  });
});

describe('bad placeholders in a pattern', () => {
  // Only the first was reported, at the start of the string, and one left open was literal text.
  it('are each reported at their own column', async () => {
    const p = project('ds-pol-placeholders-', { nodes: '    - { id: f, type: local.file, spec: { path: f.txt, content: "x" } }\n' });
    p.write(
      'policy.yaml',
      policy(`  naming:
    - { types: [local.file], field: path, pattern: "^{labels.team}{envv}", severity: { default: high } }
    - { id: open, types: [local.file], field: path, pattern: "^{label.team", severity: { default: high } }
`),
    );
    const v = await cli(['validate', ...p.args], { cwd: p.dir });
    expect(v.stdout).toContain('goals/policy.yaml:6:54: error bad-pattern: unknown placeholder {labels.team}: patterns know {env} and {label.<key>} (did you mean "{label.team}"?)');
    expect(v.stdout).toContain('goals/policy.yaml:6:67: error bad-pattern: unknown placeholder {envv}');
    expect(v.stdout).toContain('goals/policy.yaml:7:64: error bad-pattern: placeholder {label.team is not closed');
    expect(v.code).toBe(1);
  });
});

describe('secrets in a file the policy judges', () => {
  // plan masked the text; the same command's warnings, its JSON diagnostics and SARIF quoted it whole.
  it('are masked in every format, as plan shows the text', async () => {
    const p = project('ds-pol-secret-', { nodes: '    - { id: f, type: local.file, spec: { path: app.env, content: "DB_PASSWORD=hunter2-supersecret\\n" } }\n' });
    p.write(
      'policy.yaml',
      policy(`  naming:
    - { types: [local.file], field: content, pattern: "^ok$", severity: { default: medium } }
  rules:
    - id: max-conn
      description: The connection limit is a number.
      types: [local.file]
      require: "int(spec.content.split('=')[1].trim()) > 0"
      severity: { default: medium }
`),
    );
    for (const args of [['validate'], ['validate', '--format', 'json'], ['plan', '--format', 'json'], ['check', '--format', 'sarif']]) {
      const r = await cli([...args, ...p.args], { cwd: p.dir });
      expect(`${r.stdout}${r.stderr}`).not.toContain('hunter2');
      expect(`${r.stdout}${r.stderr}`).toMatch(/spec\.content \\?"DB_PASSWORD=<secret>\\{1,2}n\\?" does not match \^ok\$/);
      expect(`${r.stdout}${r.stderr}`).toMatch(/require \(goals\/policy\.yaml:\d+:\d+\) could not be evaluated \(cannot convert string \\?"<secret>\\?" to int\)/);
    }
  });
});

describe('a CEL error in a block scalar', () => {
  // It was reported at the `|` line, which holds no expression text, with the place inside the expression in words.
  it('is reported at its own line and column in the file', async () => {
    const p = project('ds-pol-cel-', { nodes: '    - { id: f, type: local.file, spec: { path: a, content: "" } }\n' });
    p.write(
      'policy.yaml',
      policy(`  rules:
    - id: r2
      description: Files are 0644.
      types: [local.file]
      require: |
        spec.path == 'a' ||
          spec.mode === '0644'
      severity: { default: high }
`),
    );
    const v = await cli(['validate', ...p.args], { cwd: p.dir });
    expect(v.stdout).toContain("goals/policy.yaml:11:21: error bad-expression: rule r2: require: syntax error: found = but expecting end of input\n");
    expect(v.code).toBe(1);
  });
});

describe('an environment named production with the baseline pack', () => {
  // The pack's prod levels are for "prod" only: "production" got warnings where prod blocks, and nothing said so.
  it('validate warns at the goal\'s environment that the pack\'s prod levels do not apply', async () => {
    const p = project('ds-pol-prod-', { environment: 'production', nodes: '    - { id: f, type: local.file, spec: { path: a, content: "" } }\n' });
    p.write('policy.yaml', policy('  include: [baseline]\n'));
    const v = await cli(['validate', ...p.args], { cwd: p.dir });
    expect(v.stdout).toContain('goals/goals.yaml:10:37: warning pack-environment: goal app\'s environment "production" looks like production, but the included pack baseline sets levels for the environment "prod" only');
    expect(v.code).toBe(0);
  });
});
