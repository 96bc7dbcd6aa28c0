import { statefulTypes } from '../spec.ts';
import type { PolicySpecInput } from './schema.ts';

/**
 * Built-in rule packs, written as data in exactly the shape of a Policy's
 * `spec` and compiled by the same code as a user's policy. A policy pulls
 * one in with `include: [baseline]`; the pack's findings carry the including
 * policy's name and are judged against its `blockAt`. A pack included by
 * several policies is evaluated once, under the strictest of them: the
 * lowest `blockAt`, then the first name (see `strictest` in engine.ts).
 *
 * `baseline`:
 *
 * | rule | types | dev (default) | prod | frameworks |
 * |---|---|---|---|---|
 * | baseline.encryption-at-rest | aws.s3.bucket | medium | critical | all six |
 * | baseline.no-public-access | aws.s3.bucket | low | critical | SOC2, PCI-DSS, HIPAA, NIST-800-53, CIS |
 * | baseline.orphan-stateful-in-prod | stateful kinds (`statefulTypes`) | off | high | SOC2, ISO27001, NIST-800-53 |
 * | baseline.pinned-versions | postgres.extension | low | high | SOC2, NIST-800-53, CIS |
 * | baseline.required-label:team, :owner | taggable kinds | low | high | SOC2, ISO27001, NIST-800-53 |
 *
 * "prod" here is the environment named `prod`; every other environment gets
 * the `default` level, and one whose name reads as production (`production`,
 * `prd`, `eu-prod`) gets a warning saying so (`warnUnmatchedProduction`).
 * The pack sets no defaults: including it never changes a spec, it only
 * judges it.
 */
export const BASELINE_PACK = {
  requiredLabels: [
    {
      id: 'baseline.required-label:team',
      description: 'Taggable resources name the team that runs them (asset inventory).',
      key: 'team',
      types: ['aws.s3.bucket', 'k8s.namespace', 'k8s.configmap', 'terraform.workspace', 'postgres.database'],
      severity: { default: 'low', prod: 'high' },
      frameworks: ['SOC2', 'ISO27001', 'NIST-800-53'],
    },
    {
      id: 'baseline.required-label:owner',
      description: 'Taggable resources name an accountable owner (asset inventory).',
      key: 'owner',
      types: ['aws.s3.bucket', 'k8s.namespace', 'k8s.configmap', 'terraform.workspace', 'postgres.database'],
      severity: { default: 'low', prod: 'high' },
      frameworks: ['SOC2', 'ISO27001', 'NIST-800-53'],
    },
  ],
  rules: [
    {
      id: 'baseline.encryption-at-rest',
      description: 'Storage is encrypted at rest.',
      types: ['aws.s3.bucket'],
      require: "spec.encryption != 'none'",
      severity: { default: 'medium', prod: 'critical' },
      frameworks: ['SOC2', 'PCI-DSS', 'HIPAA', 'ISO27001', 'NIST-800-53', 'CIS'],
    },
    {
      id: 'baseline.no-public-access',
      description: 'Storage is not publicly readable.',
      types: ['aws.s3.bucket'],
      require: '!spec.publicAccess',
      severity: { default: 'low', prod: 'critical' },
      frameworks: ['SOC2', 'PCI-DSS', 'HIPAA', 'NIST-800-53', 'CIS'],
    },
    {
      id: 'baseline.orphan-stateful-in-prod',
      description: 'Stateful resources in prod keep their data when removed from the goals (deletionPolicy: Orphan).',
      types: [...statefulTypes],
      require: "deletionPolicy != 'Delete'",
      severity: { default: 'none', prod: 'high' },
      frameworks: ['SOC2', 'ISO27001', 'NIST-800-53'],
    },
    {
      id: 'baseline.pinned-versions',
      description: 'Extensions are pinned to a version, so that every environment runs the same one.',
      types: ['postgres.extension'],
      require: "has(spec.version) && spec.version != ''",
      severity: { default: 'low', prod: 'high' },
      frameworks: ['SOC2', 'NIST-800-53', 'CIS'],
    },
  ],
} satisfies PolicySpecInput;

/** Built-in packs by name, for `include`. */
export const BUILTIN_PACKS: Readonly<Record<string, PolicySpecInput>> = {
  baseline: BASELINE_PACK,
};
