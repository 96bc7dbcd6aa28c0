import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { desiredNodeSpec, infraSpecCodec, specSchemas } from '../../src/infra/index.ts';
import type { BackendFactory, InfraNodeSpec, InfraNodeType } from '../../src/infra/index.ts';

/**
 * The key that tells a renamed node (same resource, new id) from a removed
 * one under prune + Delete: two specs with one key are one resource, and a
 * removed node whose key a node of the goals still has is never deleted. The
 * backend names the resource (`BackendFactory.resourceKey`, at compile time);
 * the key travels with the stored spec.
 */
function key(backendType: string, type: InfraNodeType, spec: Record<string, unknown>, backendId = 'b'): string | undefined {
  const factory = builtinBackendFactories.find((f) => f.type === backendType) as BackendFactory | undefined;
  const parsed = { type, ...(specSchemas[type].parse(spec) as Record<string, unknown>) } as InfraNodeSpec;
  // No backend's key reads its config.
  const d = desiredNodeSpec(parsed, backendId, {}, 'dev', { resource: factory?.resourceKey?.(parsed, {})?.key });
  // As a removed node's spec comes back from the store: encoded, then decoded.
  const stored = infraSpecCodec.decode(JSON.parse(JSON.stringify(infraSpecCodec.encode(d))));
  expect(stored).toBeDefined();
  expect(infraSpecCodec.resourceKey?.(stored!)).toBe(infraSpecCodec.resourceKey?.(d));
  return infraSpecCodec.resourceKey?.(d);
}

const pg = (type: InfraNodeType, spec: Record<string, unknown>, backendId?: string): string | undefined => key('postgres', type, spec, backendId);

describe('resourceKey', () => {
  it.each([
    { name: 'a role is its name, whatever its attributes', a: () => pg('postgres.role', { name: 'r', login: true }), b: () => pg('postgres.role', { name: 'r', connectionLimit: 3 }) },
    { name: 'a schema is its database and name, whatever its owner or force', a: () => pg('postgres.schema', { name: 's', database: 'd' }), b: () => pg('postgres.schema', { name: 's', database: 'd', owner: 'o', force: true }) },
    { name: 'a grant is its grantee and target, whatever its privileges', a: () => pg('postgres.grant', { role: 'r', database: 'd', on: 'database', privileges: ['CONNECT'] }), b: () => pg('postgres.grant', { role: 'r', database: 'd', on: 'database', privileges: ['CONNECT', 'TEMPORARY'] }) },
    { name: 'a file is its path, whatever its content', a: () => key('local', 'local.file', { path: 'a/b', content: 'x' }), b: () => key('local', 'local.file', { path: './a//b', content: 'y', mode: '0600' }) },
  ])('same resource: $name', ({ a, b }) => {
    expect(a()).toBeDefined();
    expect(a()).toBe(b());
  });

  it.each([
    { name: 'two roles', a: () => pg('postgres.role', { name: 'r1' }), b: () => pg('postgres.role', { name: 'r2' }) },
    { name: 'one schema name in two databases', a: () => pg('postgres.schema', { name: 's', database: 'd1' }), b: () => pg('postgres.schema', { name: 's', database: 'd2' }) },
    { name: 'one role name on two backends (two servers)', a: () => pg('postgres.role', { name: 'r' }, 'pg1'), b: () => pg('postgres.role', { name: 'r' }, 'pg2') },
    { name: 'a database and a role of one name', a: () => pg('postgres.database', { name: 'x' }), b: () => pg('postgres.role', { name: 'x' }) },
    { name: 'grants to two roles', a: () => pg('postgres.grant', { role: 'r1', database: 'd', on: 'database', privileges: ['CONNECT'] }), b: () => pg('postgres.grant', { role: 'r2', database: 'd', on: 'database', privileges: ['CONNECT'] }) },
    { name: 'grants on tables of two schemas', a: () => pg('postgres.grant', { role: 'r', database: 'd', schema: 's1', on: 'tables', privileges: ['SELECT'] }), b: () => pg('postgres.grant', { role: 'r', database: 'd', schema: 's2', on: 'tables', privileges: ['SELECT'] }) },
  ])('different resources: $name', ({ a, b }) => {
    expect(a()).not.toBe(b());
  });

  it('says nothing where the backend cannot name the resource: a generic resource (its commands get the node id), a memory resource (keyed by node id)', () => {
    expect(key('exec', 'generic.resource', { commands: { read: ['r'], create: ['c'] }, input: { a: 1 } })).toBeUndefined();
    expect(key('memory', 'postgres.role', { name: 'r' })).toBeUndefined();
  });

  it('a spec stored before resource keys existed has none: it is deleted as before, never matched by accident', () => {
    const d = infraSpecCodec.decode({ spec: { type: 'postgres.role', name: 'r' }, backendId: 'pg', labels: {}, environment: 'dev' });
    expect(d).toBeDefined();
    expect(infraSpecCodec.resourceKey?.(d!)).toBeUndefined();
  });
});
