import { describe, expect, it } from 'vitest';
import { cli, goalHead as localGoalHead, localBackend, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// Policy gates end to end, as a goal author and a platform team meet them: the audit of the policy
// feature reproduced these through the CLI.

/** A memory Backend `mem` and a Goal `app` in `environment`, its nodes on `mem`, up to `nodes:`. */
function goalHead(environment: string): string {
  return `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: mem }
spec: { type: memory }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app, environment: ${environment} }
spec:
  defaults: { backend: mem }
  nodes:
`;
}

function policy(name: string, spec: string): string {
  return `apiVersion: desiredstate/v1
kind: Policy
metadata: { name: ${name} }
spec:
${spec}`;
}

describe('a built-in pack included by several policies', () => {
  // Finding 2: the pack was judged under whichever including policy was read first, so a goal
  // author's file sorting first (blockAt: critical) turned the platform's gate into warnings.
  it.each(['app-extras.yaml', 'zz-extras.yaml'])('a lax policy beside the platform one (%s) does not let a prod node through', async (file) => {
    const p = tempProject('ds-pack-judges-');
    p.write('platform.yaml', policy('platform', '  blockAt: high\n  include: [baseline]\n'));
    p.write(file, policy('app-extras', '  blockAt: critical\n  include: [baseline]\n'));
    p.write('app.yaml', `${goalHead('prod')}    - { id: assets, type: aws.s3.bucket, deletionPolicy: Delete, labels: { owner: ann }, spec: { name: acme-assets, region: eu-west-1 } }\n`);
    const validate = await cli(['validate', ...p.args], { cwd: p.dir });
    expect(validate.code).toBe(1);
    expect(validate.stdout).toMatch(/error policy-violation: \[high\] baseline\.orphan-stateful-in-prod: .*\(policy platform[;)]/);
    expect(validate.stdout).toMatch(/error policy-violation: \[high\] baseline\.required-label:team: .*\(policy platform[;)]/);
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code).toBe(1);
    expect(apply.stdout).not.toContain('+ assets');
  });
});

describe('policy defaults, validated with the spec they go into', () => {
  const grantDefaults = policy('p', '  defaults:\n    - types: [postgres.grant]\n      environments: [prod]\n      set: { schema: public, forRole: owner }\n');
  const grant = '    - { id: g-db, type: postgres.grant, spec: { role: app, database: appdb, on: database, privileges: [CONNECT] } }\n';

  // Finding 3: written in the goal, `schema` on a database grant is an error; set by a default, it was planned and applied.
  it('a default that breaks a rule across fields is refused by validate and apply, at the node, naming the default', async () => {
    const p = tempProject('ds-default-refine-');
    p.write('policy.yaml', grantDefaults);
    p.write('app.yaml', `${goalHead('prod')}${grant}`);
    const validate = await cli(['validate', ...p.args], { cwd: p.dir });
    expect(validate.code).toBe(1);
    expect(validate.stdout).toContain(
      'goals/app.yaml:12:47: error invalid-value: spec.schema: schema is not allowed for on: database (with policy defaults on node "g-db": spec.schema from policy p at goals/policy.yaml:8:14)\n',
    );
    expect(validate.stdout).toContain('spec.forRole: forRole applies to default privileges only (on: defaultTables or defaultSequences) (with policy defaults on node "g-db": spec.forRole from policy p at goals/policy.yaml:8:30)\n');
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code).not.toBe(0);
    expect(apply.stdout).not.toContain('g-db: created');
    // In dev, where the defaults do not apply, the same grant is fine.
    p.write('app.yaml', `${goalHead('dev')}${grant}`);
    expect((await cli(['validate', ...p.args], { cwd: p.dir })).code).toBe(0);
  });

  // Finding 7: the goal was checked before defaults went in, so `region` defaulted for prod buckets was still "required".
  it('a default fills a required field: validate passes, the plan says the policy set it, apply creates the node', async () => {
    const p = tempProject('ds-default-required-');
    p.write('policy.yaml', policy('p', '  defaults:\n    - types: [aws.s3.bucket]\n      environments: [prod]\n      set: { region: eu-west-1 }\n'));
    p.write('app.yaml', `${goalHead('prod')}    - { id: assets, type: aws.s3.bucket, spec: { name: acme-assets } }\n`);
    expect(await cli(['validate', ...p.args], { cwd: p.dir })).toMatchObject({ code: 0 });
    const plan = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(plan.stdout).toContain('      region = "eu-west-1" (set by policy p)\n');
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code).toBe(0);
    expect(apply.stdout).toContain('+ assets: created');
    // Without the default (dev), the field is missing, at the node's spec in the goal.
    p.write('app.yaml', `${goalHead('dev')}    - { id: assets, type: aws.s3.bucket, spec: { name: acme-assets } }\n`);
    const dev = await cli(['validate', ...p.args], { cwd: p.dir });
    expect(dev.code).toBe(1);
    expect(dev.stdout).toBe('goals/app.yaml:12:42: error missing-field: spec.region is required by aws.s3.bucket\n');
  });
});

describe('the daemon, after a change to the policy alone', () => {
  const daemons = trackDaemons();
  const rule = (id: string, level: string): string =>
    policy('acme', `  rules:\n    - id: ${id}\n      description: No forbidden words.\n      types: [local.file]\n      require: "!spec.content.contains('forbidden')"\n      severity: { default: ${level} }\n`);

  // Finding 5: plan said the new rule, while status and /status kept the old one, even after a restart.
  it('status and /status give the reason of the gate in force, running and after a restart', async () => {
    const p = tempProject('ds-gate-reason-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('policy.yaml', rule('no-forbidden', 'high'));
    p.write('app.yaml', `${localGoalHead()}    - { id: f1, type: local.file, spec: { path: f1.txt, content: "forbidden\\n" } }\n`);
    const reasonIn = async (text: string): Promise<boolean> => (await cli(['status', ...p.args], { cwd: p.dir })).stdout.includes(text);
    const first = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await first.port();
    await eventually(() => reasonIn('held by policy: no-forbidden (high, acme)'), 10_000, 'the first hold in status');

    const mark = first.lines.length;
    p.write('policy.yaml', rule('renamed-rule', 'critical'));
    await first.waitFor((l) => l.msg === 'goals loaded', 10_000, mark);
    await eventually(() => reasonIn('held by policy: renamed-rule (critical, acme)'), 10_000, 'the new reason in status');
    first.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);

    p.write('policy.yaml', rule('third-rule', 'critical'));
    const second = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const port = await second.port();
    await eventually(() => reasonIn('held by policy: third-rule (critical, acme)'), 10_000, 'the reason after a restart in status');
    const api = await (await fetch(`http://127.0.0.1:${port}/status`)).text();
    expect(api).toContain('"reason":"held by policy: third-rule (critical, acme)"');
    expect(api).not.toContain('renamed-rule');
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  });
});
