import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { BackendRegistry, desiredNodeSpec } from '../../src/infra/index.ts';
import type { BackendFactory, InfraNodeSpec } from '../../src/infra/index.ts';

/**
 * `BackendFactory.identity`: what of a Backend's config names the resources it acts on. An edit of it
 * makes every node of the backend a changed goal (converged under `selfHeal: false` too); an edit of
 * how it acts (a timeout, a limit, the environment passed on) must not, or a hand edit reported as drift
 * is written over at the next apply.
 */
const cases: { type: string; config: Record<string, unknown>; how: Record<string, unknown>; where: Record<string, unknown> }[] = [
  { type: 'local', config: { root: 'out' }, how: { root: 'out', rereadEvery: 'always' }, where: { root: 'elsewhere' } },
  { type: 'memory', config: {}, how: { latencyMs: 5, seed: 2, faults: [{ class: 'transient' }] }, where: {} },
  { type: 'exec', config: { timeout: '30s' }, how: { timeout: '45s', maxOutputBytes: 10, env: ['PATH'] }, where: { timeout: '30s', cwd: 'sub' } },
  { type: 'ansible', config: { timeout: '10m' }, how: { timeout: '20m', env: ['PATH'], ansiblePlaybook: '/opt/ansible-playbook', maxOutputBytes: 10, hostKeyChecking: true }, where: { cwd: 'playbooks' } },
  { type: 'script', config: { root: 'out' }, how: { root: 'out', timeout: '5m', maxOutputBytes: 10, env: ['PATH'], requireApprovalBelowTrust: [] }, where: { root: 'elsewhere' } },
  {
    type: 'postgres',
    config: { host: 'db' },
    how: { host: 'db', user: 'admin', database: 'ops', sslmode: 'require', connectTimeout: '10s', lockTimeout: 0, statementTimeout: '1m', poolSize: 2, synchronousCommit: true },
    where: { host: 'db', port: 5433 },
  },
];

function identityOf(type: string, config: Record<string, unknown>): unknown {
  const factory = builtinBackendFactories.find((f) => f.type === type) as BackendFactory | undefined;
  expect(factory?.identity, `${type} says what its identity is`).toBeDefined();
  return factory!.identity!(factory!.configSchema.parse(config), { cwd: '/srv/app' });
}

describe('a backend config edit changes the backend identity only where it names other resources', () => {
  it('every built-in backend says what its identity is', () => {
    expect(builtinBackendFactories.map((f) => f.type).sort()).toEqual(cases.map((c) => c.type).sort());
  });

  it.each(cases)('$type: how it acts is no other identity', ({ type, config, how }) => {
    expect(identityOf(type, how)).toEqual(identityOf(type, config));
  });

  it.each(cases.filter((c) => c.type !== 'memory'))('$type: where it acts is another identity', ({ type, config, where }) => {
    expect(identityOf(type, where)).not.toEqual(identityOf(type, config));
  });
});

describe("a node's managed digest names its backend by type and identity, not by name", () => {
  const registry = new BackendRegistry(builtinBackendFactories);
  const keyAt = (root: string): string => registry.identityKey({ type: 'local', config: registry.require('local').configSchema.parse({ root }) }, '/srv/app');
  const spec = { type: 'local.file', path: 'f.txt', content: 'v1\n', mode: '0644' } as InfraNodeSpec;

  it('a backend renamed, its root the same (written otherwise): the same managed digest, another goal digest', () => {
    const before = desiredNodeSpec(spec, 'local', {}, 'default', { backendKey: keyAt('out') });
    const renamed = desiredNodeSpec(spec, 'files', {}, 'default', { backendKey: keyAt('/srv/app/out') });
    expect(renamed.managedDigest).toBe(before.managedDigest);
    expect(renamed.digest).not.toBe(before.digest);
  });

  it('a backend renamed to another root: another managed digest', () => {
    const before = desiredNodeSpec(spec, 'local', {}, 'default', { backendKey: keyAt('out') });
    expect(desiredNodeSpec(spec, 'files', {}, 'default', { backendKey: keyAt('elsewhere') }).managedDigest).not.toBe(before.managedDigest);
  });
});
