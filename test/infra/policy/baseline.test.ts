import { describe, expect, it } from 'vitest';
import { BASELINE_PACK, policySpecSchema } from '../../../src/infra/policy/index.ts';
import { compileTexts, goalYaml, policyYaml } from './helpers.ts';
import type { NodeInput } from './helpers.ts';

const tagged = { team: 'data', owner: 'ann' };
const policy = policyYaml({ include: ['baseline'] });

function run(environment: string, node: NodeInput, labels: Record<string, string> = tagged): { diags: string[]; rules: string[] } {
  const { result, engine } = compileTexts({ 'p.yaml': policy, 'g.yaml': goalYaml({ environment, labels, nodes: [node] }) });
  return { diags: result.diagnostics.map((d) => `${d.severity} ${d.code}`), rules: engine.findings().map((f) => `${f.rule} ${f.severity}`) };
}

const bucket = (spec: Record<string, unknown> = {}): NodeInput => ({ id: 'b', type: 'aws.s3.bucket', spec: { name: 'data-bucket', region: 'eu-west-1', ...spec } });

describe('the baseline pack', () => {
  it('is data of the Policy shape, and compiles without a diagnostic', () => {
    expect(policySpecSchema().safeParse(BASELINE_PACK).success).toBe(true);
    const { result } = compileTexts({ 'p.yaml': policy, 'g.yaml': goalYaml({ environment: 'prod', nodes: [] }) });
    expect(result.diagnostics).toEqual([]);
  });

  it.each([
    { name: 'a compliant bucket passes in prod', env: 'prod', node: bucket(), want: [] },
    { name: 'unencrypted storage: medium in dev', env: 'dev', node: bucket({ encryption: 'none' }), want: ['baseline.encryption-at-rest medium'] },
    { name: 'unencrypted storage: critical in prod', env: 'prod', node: bucket({ encryption: 'none' }), want: ['baseline.encryption-at-rest critical'] },
    { name: 'public access: low in dev', env: 'dev', node: bucket({ publicAccess: true }), want: ['baseline.no-public-access low'] },
    { name: 'public access: critical in prod', env: 'prod', node: bucket({ publicAccess: true }), want: ['baseline.no-public-access critical'] },
    { name: 'Delete on a stateful kind: off in dev', env: 'dev', node: { ...bucket(), deletionPolicy: 'Delete' as const }, want: [] },
    { name: 'Delete on a stateful kind: high in prod', env: 'prod', node: { id: 'd', type: 'postgres.database', spec: { name: 'x' }, deletionPolicy: 'Delete' as const }, want: ['baseline.orphan-stateful-in-prod high'] },
    { name: 'Delete on a stateless kind is fine in prod', env: 'prod', node: { id: 'f', type: 'local.file', spec: { path: 'a', content: '' }, deletionPolicy: 'Delete' as const }, want: [] },
    { name: 'an unpinned extension: low in dev', env: 'dev', node: { id: 'e', type: 'postgres.extension', spec: { name: 'pgcrypto', database: 'app' } }, want: ['baseline.pinned-versions low'] },
    { name: 'an unpinned extension: high in prod', env: 'prod', node: { id: 'e', type: 'postgres.extension', spec: { name: 'pgcrypto', database: 'app' } }, want: ['baseline.pinned-versions high'] },
    { name: 'a pinned extension passes', env: 'prod', node: { id: 'e', type: 'postgres.extension', spec: { name: 'pgcrypto', database: 'app', version: '1.3' } }, want: [] },
  ])('$name', ({ env, node, want }) => {
    expect(run(env, node).rules).toEqual(want);
  });

  it.each([
    { env: 'dev', want: ['warning policy-finding', 'warning policy-finding'] },
    { env: 'prod', want: ['error policy-violation', 'error policy-violation'] },
  ])('untagged taggable resources in $env', ({ env, want }) => {
    const got = run(env, bucket(), {});
    expect(got.rules).toEqual([`baseline.required-label:team ${env === 'prod' ? 'high' : 'low'}`, `baseline.required-label:owner ${env === 'prod' ? 'high' : 'low'}`]);
    expect(got.diags).toEqual(want);
  });

  it('asks no tags of resources that carry none (local files)', () => {
    expect(run('prod', { id: 'f', type: 'local.file', spec: { path: 'a', content: '' } }, {}).rules).toEqual([]);
  });

  it('included by two policies, is judged once', () => {
    const { engine } = compileTexts({
      'p.yaml': policy,
      'q.yaml': policyYaml({ include: ['baseline'] }, 'other'),
      'g.yaml': goalYaml({ environment: 'prod', labels: tagged, nodes: [bucket({ encryption: 'none' })] }),
    });
    expect(engine.findings().map((f) => f.rule)).toEqual(['baseline.encryption-at-rest']);
  });
});

// Audit finding 2: the pack was judged under the first including policy read, so a goal author's
// file sorting first (`app-extras.yaml`, `blockAt: critical`) turned the platform's blocking
// baseline findings into warnings, and renaming a policy file flipped the verdict.
describe('the baseline pack included by several policies', () => {
  const platform = policyYaml({ blockAt: 'high', include: ['baseline'] }, 'platform');
  const lax = policyYaml({ blockAt: 'critical', include: ['baseline'] }, 'app-extras');
  const orphanless = { ...bucket(), deletionPolicy: 'Delete' as const };

  function judge(files: Record<string, string>): string[] {
    const { engine } = compileTexts(files);
    return engine.findings().map((f) => `${f.rule} ${f.severity} ${f.blocking ? 'blocks' : 'warns'} (${f.policy})`);
  }

  it.each<{ name: string; files: Record<string, string> }>([
    { name: 'the lax policy read first', files: { 'a-extras.yaml': lax, 'b-platform.yaml': platform } },
    { name: 'the lax policy read last', files: { 'a-platform.yaml': platform, 'b-extras.yaml': lax } },
  ])('$name: a finding blocks when any including policy would block it, under that policy', ({ files }) => {
    const goal = goalYaml({ environment: 'prod', nodes: [orphanless] });
    expect(judge({ ...files, 'g.yaml': goal })).toEqual([
      'baseline.required-label:team high blocks (platform)',
      'baseline.required-label:owner high blocks (platform)',
      'baseline.orphan-stateful-in-prod high blocks (platform)',
    ]);
  });

  it.each([
    { name: 'the strict one first', order: ['strict', 'lax'] },
    { name: 'the lax one first', order: ['lax', 'strict'] },
  ])('a dev finding at low blocks under a policy with blockAt: low, whichever file is read first ($name)', ({ order }) => {
    const texts: Record<string, string> = { strict: policyYaml({ blockAt: 'low', include: ['baseline'] }, 'strict'), lax: policyYaml({ blockAt: 'critical', include: ['baseline'] }, 'lax') };
    const files = Object.fromEntries(order.map((k, i) => [`${i}-${k}.yaml`, texts[k]!]));
    const goal = goalYaml({ environment: 'dev', labels: tagged, nodes: [bucket({ publicAccess: true })] });
    expect(judge({ ...files, 'g.yaml': goal })).toEqual(['baseline.no-public-access low blocks (strict)']);
  });

  it('among policies with the same blockAt, findings name the first by name, not the first file read', () => {
    const goal = goalYaml({ environment: 'prod', labels: tagged, nodes: [bucket({ encryption: 'none' })] });
    const files = { 'a.yaml': policyYaml({ include: ['baseline'] }, 'zeta'), 'b.yaml': policyYaml({ include: ['baseline'] }, 'alpha'), 'g.yaml': goal };
    expect(judge(files)).toEqual(['baseline.encryption-at-rest critical blocks (alpha)']);
  });
});

describe('an environment that reads as production but is not the pack\'s "prod"', () => {
  // The pack's prod levels apply to the environment named "prod" only; "production" silently got warnings.
  const diagnostics = (environment: string, included = true): string[] => {
    const { result } = compileTexts({ 'p.yaml': included ? policy : policyYaml({ requiredLabels: [{ key: 'team', severity: { default: 'low' } }] }), 'g.yaml': goalYaml({ environment, labels: tagged, nodes: [bucket()] }) });
    return result.diagnostics.map((d) => `${d.file}:${d.line}:${d.col} ${d.severity} ${d.code}: ${d.message}`);
  };

  it('is a warning at the goal\'s environment, naming the pack and the environment it knows', () => {
    expect(diagnostics('production')).toEqual([
      'g.yaml:5:16 warning pack-environment: goal app-production\'s environment "production" looks like production, but the included pack baseline sets levels for the environment "prod" only, so this goal gets the pack\'s default levels; name the environment "prod" to get the levels set for it',
    ]);
  });

  it.each([
    { env: 'production', warned: true },
    { env: 'PROD', warned: true },
    { env: 'prd', warned: true },
    { env: 'eu-prod', warned: true },
    { env: 'prod-2', warned: true },
    { env: 'prod', warned: false },
    { env: 'pre-prod', warned: false },
    { env: 'nonprod', warned: false },
    { env: 'non-prod', warned: false },
    { env: 'staging', warned: false },
    { env: 'product-dev', warned: false },
  ])('$env: warned $warned', ({ env, warned }) => {
    expect(diagnostics(env).some((d) => d.includes('pack-environment'))).toBe(warned);
  });

  it('nothing is said without a pack included', () => {
    expect(diagnostics('production', false)).toEqual([]);
  });
});
