import { describe, expect, it } from 'vitest';
import { cli, tempProject } from '../support/cli.ts';

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
