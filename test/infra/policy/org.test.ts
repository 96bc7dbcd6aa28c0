import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic, loadGoalDirectory } from '../../../src/runtime/index.ts';
import { compileDocuments, compileTexts } from './helpers.ts';

/**
 * A realistic organisation policy (naming `{env}-{label.team}-…`, six
 * mandatory labels, KMS encryption and no public access in prod, SOC 2 and
 * PCI-DSS scope, the baseline pack) over a dev and a prod goal.
 */
const dir = 'test/fixtures/policy/org';
const files = ['dev.yaml', 'policy.yaml', 'prod.yaml'] as const;

async function texts(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of files) out[`${dir}/${f}`] = await readFile(join(dir, f), 'utf8');
  return out;
}

/** The fixture with one file edited. */
async function withEdit(file: (typeof files)[number], from: string, to: string): Promise<Record<string, string>> {
  const all = await texts();
  const key = `${dir}/${file}`;
  expect(all[key]).toContain(from);
  all[key] = all[key]!.replace(from, to);
  return all;
}

describe('the organisation policy over a dev and a prod goal', () => {
  it('the goal set as committed is clean, and prod gets the policy defaults', async () => {
    const loaded = await loadGoalDirectory(dir, { displayRoot: process.cwd() });
    const { result, factory, engine } = compileDocuments(loaded.documents, loaded.diagnostics);
    expect(result.diagnostics.map(formatDiagnostic)).toEqual([]);
    expect(result.graph?.size).toBe(8);
    expect(engine.findings()).toEqual([]);
    expect(factory.policyDefaults.get('payments-prod-invoices')).toEqual([
      { field: 'versioning', value: true, policy: 'acme-standards' },
      { field: 'encryption', value: 'aws:kms', policy: 'acme-standards' },
    ]);
    expect(factory.policyDefaults.get('payments-prod-app-role')).toEqual([{ field: 'connectionLimit', value: 20, policy: 'acme-standards' }]);
    expect(factory.policyDefaults.has('payments-dev-invoices')).toBe(false);
  });

  it('a prod goal that breaks the naming rule is refused, with rule, severity and file:line', async () => {
    const { result } = compileTexts(await withEdit('prod.yaml', 'name: prod-payments-invoices', 'name: payments-invoices'));
    expect(result.graph).toBeUndefined();
    expect(result.diagnostics.map(formatDiagnostic)).toEqual([
      'test/fixtures/policy/org/prod.yaml:19:15: error policy-violation: [high] naming:name: spec.name "payments-invoices" does not match ^prod-payments-[a-z0-9-]+$ (policy acme-standards; SOC2)',
    ]);
  });

  it('the same slip in dev, rated medium there, passes with a warning', async () => {
    const { result } = compileTexts(await withEdit('dev.yaml', 'name: dev-payments-invoices', 'name: payments-invoices'));
    expect(result.graph).toBeDefined();
    expect(result.diagnostics.map(formatDiagnostic)).toEqual([
      'test/fixtures/policy/org/dev.yaml:19:15: warning policy-finding: [medium] naming:name: spec.name "payments-invoices" does not match ^dev-payments-[a-z0-9-]+$ (policy acme-standards; SOC2)',
    ]);
  });

  it('a prod goal that lacks a mandatory label is refused on every node', async () => {
    const { result, engine } = compileTexts(await withEdit('prod.yaml', '    cost-center: CC-4711\n', ''));
    expect(result.graph).toBeUndefined();
    expect(new Set(result.diagnostics.map((d) => `${d.severity} ${d.code}`))).toEqual(new Set(['error policy-violation']));
    expect(engine.findings().map((f) => `${f.node} ${f.rule} ${f.severity}`)).toEqual([
      'payments-prod-invoices required-label:cost-center high',
      'payments-prod-namespace required-label:cost-center high',
      'payments-prod-db required-label:cost-center high',
      'payments-prod-app-role required-label:cost-center high',
    ]);
  });

  it.each([
    { name: 'public access in prod is critical (own rule and baseline)', edit: ['prod.yaml', 'region: eu-west-1\n', 'region: eu-west-1\n        publicAccess: true\n'], want: ['baseline.no-public-access critical', 's3-no-public-access critical'] },
    { name: 'AES256 written out in prod escapes the KMS default and breaks the rule', edit: ['prod.yaml', 'region: eu-west-1\n', 'region: eu-west-1\n        encryption: AES256\n'], want: ['s3-kms-encryption critical'] },
    { name: 'restricted data without versions breaks the PCI rule', edit: ['prod.yaml', 'region: eu-west-1\n', 'region: eu-west-1\n        versioning: false\n'], want: ['cardholder-data-versioned high'] },
    { name: 'a malformed owner is a finding', edit: ['dev.yaml', 'owner: payments-oncall@acme.example', 'owner: bob'], want: ['required-label:owner medium', 'required-label:owner medium', 'required-label:owner medium', 'required-label:owner medium'] },
  ] as const)('$name', async ({ edit, want }) => {
    const { engine } = compileTexts(await withEdit(edit[0], edit[1], edit[2]));
    expect(engine.findings().map((f) => `${f.rule} ${f.severity}`)).toEqual(want);
  });
});
