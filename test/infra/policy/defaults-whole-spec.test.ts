import { describe, expect, it } from 'vitest';
import { BackendRegistry, InfraSpecFactory } from '../../../src/infra/index.ts';
import type { BackendFactory, InfraDesiredNodeSpec, InfraNodeSpec } from '../../../src/infra/index.ts';
import { CelPolicyEngine } from '../../../src/infra/policy/index.ts';
import { GoalCompiler } from '../../../src/runtime/index.ts';
import type { CompileResult, Diagnostic } from '../../../src/runtime/index.ts';
import { parseFiles } from '../../support/compile.ts';
import { anyTypeBackend, compileTexts, goalYaml, policyYaml } from './helpers.ts';

/**
 * Policy defaults go into a node's spec before it is validated, and the
 * spec with them is validated whole: by the type's schema, rules across
 * fields included, and by the backend's checks. A default can so fill a
 * required field (audit finding 7), and cannot get past a rule that the
 * same value written in the goal breaks (finding 3): such an error is at
 * the node's spec in the goal, naming the default and where its policy sets it.
 */

/** Line (1-based) of the first line of `text` holding `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  if (i === -1) throw new Error(`"${needle}" is not in the text`);
  return i + 1;
}

const brief = (diagnostics: readonly Diagnostic[]): string[] => diagnostics.map((d) => `${d.file}:${d.line} ${d.severity} ${d.code}: ${d.message}`);

const grantDefaults = policyYaml({ defaults: [{ types: ['postgres.grant'], environments: ['prod'], set: { schema: 'public', forRole: 'owner' } }] }, 'p');
const databaseGrant = (environment: string, spec: Record<string, unknown> = {}): string =>
  goalYaml({ environment, nodes: [{ id: 'g-db', type: 'postgres.grant', spec: { role: 'app', database: 'appdb', on: 'database', privileges: ['CONNECT'], ...spec } }] });

describe('a policy default that breaks a rule across fields of its type', () => {
  it('is an error at the node, naming the default, where its policy sets it, and the node; nothing is built', () => {
    const goal = databaseGrant('prod');
    const { result } = compileTexts({ 'p.yaml': grantDefaults, 'g.yaml': goal });
    const at = lineOf(goal, 'role: app');
    expect(brief(result.diagnostics)).toEqual([
      `g.yaml:${at} error invalid-value: spec.schema: schema is not allowed for on: database (with policy defaults on node "g-db": spec.schema from policy p at p.yaml:${lineOf(grantDefaults, 'schema: public')}:9)`,
      `g.yaml:${at} error invalid-value: spec.forRole: forRole applies to default privileges only (on: defaultTables or defaultSequences) (with policy defaults on node "g-db": spec.forRole from policy p at p.yaml:${lineOf(grantDefaults, 'forRole: owner')}:9)`,
    ]);
    expect(result.graph).toBeUndefined();
  });

  it('where it does not apply (dev), the same node is valid', () => {
    const { result } = compileTexts({ 'p.yaml': grantDefaults, 'g.yaml': databaseGrant('dev') });
    expect(result.diagnostics).toEqual([]);
    expect(result.graph?.get('g-db')?.spec.spec).not.toHaveProperty('schema');
  });

  it("the goal's own error beside a default is said as ever, without the default", () => {
    const goal = databaseGrant('prod', { schema: 'app', forRole: 'x', privileges: ['USAGE'] });
    const { result } = compileTexts({ 'p.yaml': grantDefaults, 'g.yaml': goal });
    expect(result.diagnostics.map((d) => d.message)).toEqual([
      'spec.privileges[0]: "USAGE" is not a privilege on database; use one of CREATE, CONNECT, TEMPORARY, TEMP, ALL',
      'spec.schema: schema is not allowed for on: database',
      'spec.forRole: forRole applies to default privileges only (on: defaultTables or defaultSequences)',
    ]);
  });

  it("the goal's own error beside the errors a default brings about is said without the default", () => {
    const goal = databaseGrant('prod', { privileges: ['USAGE'] });
    const { result } = compileTexts({ 'p.yaml': grantDefaults, 'g.yaml': goal });
    const note = (field: string): string => ` (with policy defaults on node "g-db": spec.${field} from policy p at p.yaml:${lineOf(grantDefaults, `${field}:`)}:9)`;
    expect(result.diagnostics.map((d) => d.message)).toEqual([
      `spec.schema: schema is not allowed for on: database${note('schema')}`,
      `spec.forRole: forRole applies to default privileges only (on: defaultTables or defaultSequences)${note('forRole')}`,
      'spec.privileges[0]: "USAGE" is not a privilege on database; use one of CREATE, CONNECT, TEMPORARY, TEMP, ALL',
    ]);
  });

  // A backend that refuses world-writable files and paths in /etc (as a real one refuses what it cannot do).
  const strict: BackendFactory<Record<string, unknown>> = {
    ...anyTypeBackend,
    checkSpec: (spec: InfraNodeSpec) => [
      ...(spec.type === 'local.file' && spec.mode === '0777' ? [{ path: ['mode'], message: 'a world-writable file is refused' }] : []),
      ...(spec.type === 'local.file' && spec.path.startsWith('/etc/') ? [{ path: ['path'], message: 'a path in /etc is refused' }] : []),
    ],
  };
  const strictCompile = (files: Record<string, string>): CompileResult<InfraDesiredNodeSpec> => {
    const { documents, diagnostics } = parseFiles(files);
    const factory = new InfraSpecFactory({ registry: new BackendRegistry().register(strict), policy: new CelPolicyEngine() });
    return new GoalCompiler({ factory }).compile(documents, diagnostics);
  };
  const lax = policyYaml({ defaults: [{ types: ['local.file'], set: { mode: '0777' } }] }, 'lax');

  it("a default the backend's own checks refuse is an error at the node, naming the default", () => {
    const goal = goalYaml({ environment: 'dev', nodes: [{ id: 'f', type: 'local.file', spec: { path: 'a', content: '' } }] });
    const result = strictCompile({ 'p.yaml': lax, 'g.yaml': goal });
    expect(brief(result.diagnostics)).toEqual([
      `g.yaml:${lineOf(goal, 'path: a')} error unsupported-spec: a world-writable file is refused (backend "local", type local) (with policy defaults on node "f": spec.mode from policy lax at p.yaml:${lineOf(lax, 'mode:')}:9)`,
    ]);
    expect(result.graph).toBeUndefined();
  });

  it("the goal's own error beside it, in the backend's checks, is said without the default", () => {
    const goal = goalYaml({ environment: 'dev', nodes: [{ id: 'f', type: 'local.file', spec: { path: '/etc/a', content: '' } }] });
    const result = strictCompile({ 'p.yaml': lax, 'g.yaml': goal });
    expect(result.diagnostics.map((d) => d.message)).toEqual([
      `a world-writable file is refused (backend "local", type local) (with policy defaults on node "f": spec.mode from policy lax at p.yaml:${lineOf(lax, 'mode:')}:9)`,
      'a path in /etc is refused (backend "local", type local)',
    ]);
  });
});

describe('a policy default for a required field', () => {
  const regionDefault = policyYaml({ defaults: [{ types: ['aws.s3.bucket'], environments: ['prod'], set: { region: 'eu-west-1', versioning: true } }] }, 'p');
  const bucket = (environment: string): string => goalYaml({ environment, labels: { team: 'data' }, nodes: [{ id: 'b', type: 'aws.s3.bucket', spec: { name: 'acme-assets' } }] });

  it('fills it where it applies: the node is valid, the field set by the policy', () => {
    const { result, factory } = compileTexts({ 'p.yaml': regionDefault, 'g.yaml': bucket('prod') });
    expect(result.diagnostics).toEqual([]);
    expect(result.graph?.get('b')?.spec.spec).toMatchObject({ region: 'eu-west-1', versioning: true });
    expect(factory.policyDefaults.get('b')).toEqual([
      { field: 'region', value: 'eu-west-1', policy: 'p' },
      { field: 'versioning', value: true, policy: 'p' },
    ]);
  });

  it("where none applies, the field is missing, at the node's spec in the goal", () => {
    const goal = bucket('dev');
    const { result } = compileTexts({ 'p.yaml': regionDefault, 'g.yaml': goal });
    expect(brief(result.diagnostics)).toEqual([`g.yaml:${lineOf(goal, '  spec:')} error missing-field: spec.region is required by aws.s3.bucket`]);
  });

  it('fills the content of a file', () => {
    const policy = policyYaml({ defaults: [{ types: ['local.file'], set: { content: 'managed\n' } }] }, 'p');
    const goal = goalYaml({ environment: 'dev', nodes: [{ id: 'f', type: 'local.file', spec: { path: 'a' } }] });
    const { result } = compileTexts({ 'p.yaml': policy, 'g.yaml': goal });
    expect(result.diagnostics).toEqual([]);
    expect(result.graph?.get('f')?.spec.spec).toMatchObject({ path: 'a', content: 'managed\n' });
  });
});
