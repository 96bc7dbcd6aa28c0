import { describe, expect, it } from 'vitest';
import { desiredNodeSpec, infraSpecCodec, specSchemas } from '../../src/infra/index.ts';
import type { InfraNodeSpec, InfraNodeType } from '../../src/infra/index.ts';

/**
 * The key that tells a renamed node (same resource, new id) from a removed
 * one under prune + Delete: two specs with one key are one resource, and a
 * removed node whose key a node of the goals still has is never deleted.
 */
function key(type: InfraNodeType, spec: Record<string, unknown>, backendId = 'b'): string | undefined {
  const parsed = specSchemas[type].parse(spec) as Record<string, unknown>;
  const d = desiredNodeSpec({ type, ...parsed } as InfraNodeSpec, backendId);
  // As a removed node's spec comes back from the store: encoded, then decoded.
  const stored = infraSpecCodec.decode(JSON.parse(JSON.stringify(infraSpecCodec.encode(d))));
  expect(stored).toBeDefined();
  expect(infraSpecCodec.resourceKey?.(stored!)).toBe(infraSpecCodec.resourceKey?.(d));
  return infraSpecCodec.resourceKey?.(d);
}

describe('resourceKey', () => {
  it.each([
    { name: 'a role is its name, whatever its attributes', a: () => key('postgres.role', { name: 'r', login: true }), b: () => key('postgres.role', { name: 'r', connectionLimit: 3 }) },
    { name: 'a schema is its database and name, whatever its owner or force', a: () => key('postgres.schema', { name: 's', database: 'd' }), b: () => key('postgres.schema', { name: 's', database: 'd', owner: 'o', force: true }) },
    { name: 'a grant is its grantee and target, whatever its privileges', a: () => key('postgres.grant', { role: 'r', database: 'd', on: 'database', privileges: ['CONNECT'] }), b: () => key('postgres.grant', { role: 'r', database: 'd', on: 'database', privileges: ['CONNECT', 'TEMPORARY'] }) },
    { name: 'a file is its path, whatever its content', a: () => key('local.file', { path: 'a/b', content: 'x' }), b: () => key('local.file', { path: 'a/b', content: 'y', mode: '0600' }) },
  ])('same resource: $name', ({ a, b }) => {
    expect(a()).toBeDefined();
    expect(a()).toBe(b());
  });

  it.each([
    { name: 'two roles', a: () => key('postgres.role', { name: 'r1' }), b: () => key('postgres.role', { name: 'r2' }) },
    { name: 'one schema name in two databases', a: () => key('postgres.schema', { name: 's', database: 'd1' }), b: () => key('postgres.schema', { name: 's', database: 'd2' }) },
    { name: 'one role name on two backends (two servers)', a: () => key('postgres.role', { name: 'r' }, 'pg1'), b: () => key('postgres.role', { name: 'r' }, 'pg2') },
    { name: 'a database and a role of one name', a: () => key('postgres.database', { name: 'x' }), b: () => key('postgres.role', { name: 'x' }) },
    { name: 'grants to two roles', a: () => key('postgres.grant', { role: 'r1', database: 'd', on: 'database', privileges: ['CONNECT'] }), b: () => key('postgres.grant', { role: 'r2', database: 'd', on: 'database', privileges: ['CONNECT'] }) },
  ])('different resources: $name', ({ a, b }) => {
    expect(a()).not.toBe(b());
  });

  it('says nothing for a generic resource: its commands get the node id, which may be what names it', () => {
    expect(key('generic.resource', { commands: { read: ['r'], create: ['c'] }, input: { a: 1 } })).toBeUndefined();
  });
});
