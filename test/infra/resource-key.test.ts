import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { BackendRegistry, desiredNodeSpec, infraSpecCodec, InfraSpecFactory, specSchemas } from '../../src/infra/index.ts';
import type { BackendFactory, InfraDesiredNodeSpec, InfraNodeSpec, InfraNodeType } from '../../src/infra/index.ts';
import { formatDiagnostic, GoalCompiler, parseGoalText } from '../../src/runtime/index.ts';

/**
 * The key that tells a renamed node (same resource, new id) from a removed
 * one under prune + Delete: two specs with one key are one resource, and a
 * removed node whose key a node of the goals still has is never deleted. The
 * backend names the resource (`BackendFactory.resourceKey`, at compile time);
 * the key travels with the stored spec.
 */
function key(backendType: string, type: InfraNodeType, spec: Record<string, unknown>, backendId = 'b', config: Record<string, unknown> = {}, said = false): string | undefined {
  const factory = builtinBackendFactories.find((f) => f.type === backendType) as BackendFactory | undefined;
  const parsed = { type, ...(specSchemas[type].parse(spec) as Record<string, unknown>) } as InfraNodeSpec;
  const parsedConfig = factory?.configSchema.parse(config) as Record<string, unknown>;
  const backendKey = new BackendRegistry(builtinBackendFactories).identityKey({ type: backendType, config: parsedConfig }, '/work/project');
  const d = desiredNodeSpec(parsed, backendId, {}, 'dev', { resource: factory?.resourceKey?.(parsed, parsedConfig)?.key, backendKey });
  // As a removed node's spec comes back from the store: encoded, then decoded.
  const stored = infraSpecCodec.decode(JSON.parse(JSON.stringify(infraSpecCodec.encode(d))));
  expect(stored).toBeDefined();
  expect(infraSpecCodec.resourceKey?.(stored!)).toBe(infraSpecCodec.resourceKey?.(d));
  return said ? infraSpecCodec.describeResource?.(d) : infraSpecCodec.resourceKey?.(d);
}

/** On a postgres backend (at host `<backendId>.db`) that connects as `user` (the config's default: postgres); `said`: its key as people read it. */
const pg = (type: InfraNodeType, spec: Record<string, unknown>, backendId = 'b', user?: string, said = false): string | undefined =>
  key('postgres', type, spec, backendId, { host: `${backendId}.db`, ...(user === undefined ? {} : { user }) }, said);
const defaults = (forRole?: string): Record<string, unknown> => ({ role: 'r', database: 'd', schema: 's', on: 'defaultTables', privileges: ['SELECT'], ...(forRole === undefined ? {} : { forRole }) });

describe('resourceKey', () => {
  it.each([
    { name: 'a role is its name, whatever its attributes', a: () => pg('postgres.role', { name: 'r', login: true }), b: () => pg('postgres.role', { name: 'r', connectionLimit: 3 }) },
    { name: 'a schema is its database and name, whatever its owner or force', a: () => pg('postgres.schema', { name: 's', database: 'd' }), b: () => pg('postgres.schema', { name: 's', database: 'd', owner: 'o', force: true }) },
    { name: 'a grant is its grantee and target, whatever its privileges', a: () => pg('postgres.grant', { role: 'r', database: 'd', on: 'database', privileges: ['CONNECT'] }), b: () => pg('postgres.grant', { role: 'r', database: 'd', on: 'database', privileges: ['CONNECT', 'TEMPORARY'] }) },
    // ALTER DEFAULT PRIVILEGES without FOR ROLE sets the connected user's: two nodes each revoked the other's privileges on every pass.
    { name: 'default privileges without forRole, and forRole naming the backend user', a: () => pg('postgres.grant', defaults()), b: () => pg('postgres.grant', defaults('postgres')) },
    { name: 'default privileges without forRole, and forRole naming the user of a backend that connects as another', a: () => pg('postgres.grant', defaults(), 'b', 'admin'), b: () => pg('postgres.grant', defaults('admin'), 'b', 'admin') },
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
    { name: 'default privileges without forRole, and for another role than the backend user', a: () => pg('postgres.grant', defaults()), b: () => pg('postgres.grant', defaults('app')) },
    // The user a backend connects as is a role name as written, as forRole is: another case is another role.
    { name: 'default privileges without forRole, and forRole naming the backend user in another case', a: () => pg('postgres.grant', defaults()), b: () => pg('postgres.grant', defaults('Postgres')) },
    { name: 'default privileges without forRole on backends that connect as two users', a: () => pg('postgres.grant', defaults(), 'b', 'admin'), b: () => pg('postgres.grant', defaults('postgres'), 'b', 'admin') },
    { name: 'grants on tables of two schemas', a: () => pg('postgres.grant', { role: 'r', database: 'd', schema: 's1', on: 'tables', privileges: ['SELECT'] }), b: () => pg('postgres.grant', { role: 'r', database: 'd', schema: 's2', on: 'tables', privileges: ['SELECT'] }) },
    // Keys were names joined by words: names holding those words met other nodes' keys (a duplicate-resource error on legal goals).
    { name: 'a role named "x for objects of role y", and role x for objects of role y', a: () => pg('postgres.grant', { role: 'x for objects of role y', database: 'd', on: 'defaultTables', privileges: ['SELECT'] }), b: () => pg('postgres.grant', { role: 'x', database: 'd', on: 'defaultTables', forRole: 'y', privileges: ['SELECT'] }) },
    { name: 'a schema named "(all)", and every schema', a: () => pg('postgres.grant', { role: 'x', database: 'd', schema: '(all)', on: 'defaultSequences', privileges: ['SELECT'] }), b: () => pg('postgres.grant', { role: 'x', database: 'd', on: 'defaultSequences', privileges: ['SELECT'] }) },
    { name: 'schema "a in database b" of database c, and schema a of database "b in database c"', a: () => pg('postgres.schema', { name: 'a in database b', database: 'c' }), b: () => pg('postgres.schema', { name: 'a', database: 'b in database c' }) },
    { name: 'a schema named "(all)" with its quotes, and one named (all)', a: () => pg('postgres.schema', { name: '"(all)"', database: 'd' }), b: () => pg('postgres.schema', { name: '(all)', database: 'd' }) },
  ])('different resources: $name', ({ a, b }) => {
    expect(a()).not.toBe(b());
  });

  it('one resource on two Backends that reach one server', () => {
    const on = (backendId: string): string | undefined => key('postgres', 'postgres.role', { name: 'r' }, backendId, { host: 'db' });
    expect(on('pg1')).toBe(on('pg2'));
  });

  // Said in plans and logs: the key itself names the backend by a digest.
  it('keys of plain names read as before', () => {
    expect(pg('postgres.schema', { name: 's', database: 'd' }, 'b', undefined, true)).toBe('schema s in database d on backend b');
    expect(pg('postgres.grant', { role: 'r', database: 'd', on: 'defaultTables', forRole: 'o', privileges: ['SELECT'] }, 'b', undefined, true)).toBe('grant on defaultTables in schema (all) of database d to role r for objects of role o on backend b');
    expect(pg('postgres.grant', { role: 'r', database: 'd', on: 'defaultTables', privileges: ['SELECT'] }, 'b', undefined, true)).toBe('grant on defaultTables in schema (all) of database d to role r on backend b');
    expect(pg('postgres.grant', { role: 'r', database: 'd', schema: 'Ünïcode', on: 'tables', privileges: ['SELECT'] }, 'b', undefined, true)).toBe('grant on tables in schema Ünïcode of database d to role r on backend b');
    expect(pg('postgres.grant', { role: 'my app', database: 'd', on: 'database', privileges: ['CONNECT'] }, 'b', undefined, true)).toBe('grant on database d to role "my app" on backend b');
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

/**
 * The key that tells a removed node whose backend and spec a node of the goals has exactly, on a
 * backend where nothing but the spec and the id tells resources apart (exec: a command may key its
 * resource on the input alone, or on the id): one resource or two, so the removed one is let go, not
 * deleted, and two such nodes are no error.
 */
describe('sameSpecKey', () => {
  const commands = '{ read: [./bucket, read], create: [./bucket, create], delete: [./bucket, delete] }';
  const node = (id: string, backend: string, input: string): string =>
    `    - { id: ${id}, type: generic.resource, backend: ${backend}, deletionPolicy: Delete, spec: { commands: ${commands}, input: ${input} } }\n`;
  const backend = (name: string, type: string, config?: string): string =>
    `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: ${name} }\nspec: { type: ${type}${config === undefined ? '' : `, config: ${config}`} }\n---\n`;

  function compiled(nodes: string): { lines: string[]; spec: (id: string) => InfraDesiredNodeSpec } {
    const text = `${backend('exec', 'exec')}${backend('exec2', 'exec', '{ cwd: elsewhere }')}${backend('twin', 'exec')}${backend('mem', 'memory')}${backend('script', 'script', '{ root: out }')}apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: app }\nspec:\n  nodes:\n${nodes}`;
    const parsed = parseGoalText('goals/app.yaml', text);
    const result = new GoalCompiler({ factory: new InfraSpecFactory({ registry: new BackendRegistry(builtinBackendFactories), cwd: '/work/project' }) }).compile(parsed.documents, parsed.diagnostics);
    return { lines: result.diagnostics.map(formatDiagnostic), spec: (id) => result.graph!.get(id)!.spec };
  }
  // As a removed node's spec comes back from the store: encoded, then decoded.
  const stored = (spec: InfraDesiredNodeSpec): InfraDesiredNodeSpec => infraSpecCodec.decode(JSON.parse(JSON.stringify(infraSpecCodec.encode(spec))))!;
  const key = (spec: InfraDesiredNodeSpec): string | undefined => infraSpecCodec.sameSpecKey?.(spec);

  it('exec nodes of one backend, commands and input have one key, whatever the order of the input, and are no duplicate', () => {
    const { lines, spec } = compiled(node('logs', 'exec', '{ name: logs, retentionDays: 30 }') + node('logs-bucket', 'exec', '{ retentionDays: 30, name: logs }'));
    expect(lines).toEqual([]);
    expect(key(spec('logs'))).toBeDefined();
    expect(key(spec('logs-bucket'))).toBe(key(spec('logs')));
    expect(key(stored(spec('logs')))).toBe(key(spec('logs-bucket')));
    // A key names no resource: nothing is let go for it, nothing is a conflict.
    expect(infraSpecCodec.resourceKey?.(spec('logs'))).toBeUndefined();
  });

  it.each([
    { name: 'another input', other: node('b', 'exec', '{ name: logs, retentionDays: 7 }') },
    { name: 'another exec backend', other: node('b', 'exec2', '{ name: logs, retentionDays: 30 }') },
  ])('differs for $name', ({ other }) => {
    const { spec } = compiled(node('a', 'exec', '{ name: logs, retentionDays: 30 }') + other);
    expect(key(stored(spec('a')))).not.toBe(key(spec('b')));
  });

  it('is one for another exec Backend with the same working directory: one place under two names', () => {
    const { spec } = compiled(node('a', 'exec', '{ name: logs }') + node('b', 'twin', '{ name: logs }'));
    expect(key(stored(spec('a')))).toBe(key(spec('b')));
  });

  // A generated script is handed `{id, input}` as an exec command is, and has no resource key either.
  it('script nodes of one backend, kind and input have one key too, and are no duplicate; another input has another', () => {
    const scripted = (id: string, content: string): string => `    - { id: ${id}, type: generic.resource, backend: script, deletionPolicy: Delete, spec: { input: { path: motd, content: ${content} } } }\n`;
    const { lines, spec } = compiled(scripted('motd', 'hi') + scripted('banner', 'hi') + scripted('other', 'bye'));
    expect(lines).toEqual([]);
    expect(key(spec('motd'))).toBeDefined();
    expect(key(spec('banner'))).toBe(key(spec('motd')));
    expect(key(stored(spec('motd')))).toBe(key(spec('banner')));
    expect(key(spec('other'))).not.toBe(key(spec('motd')));
    expect(infraSpecCodec.resourceKey?.(spec('motd'))).toBeUndefined();
  });

  it('a node of the goals on any other backend has none: its resource is named, or keyed by its id', () => {
    const { spec } = compiled(node('m', 'mem', '{ name: logs }') + '    - { id: f, type: local.file, spec: { path: a.conf, content: x } }\n');
    expect(key(spec('m'))).toBeUndefined();
    expect(key(spec('f'))).toBeUndefined();
  });

  // Which backend type stored it is not stored: only a node of the goals whose backend says so can match it. Where
  // its backend was not stored, it may have been any: a node of that spec on any of them holds it (`formerKeys`).
  it('a spec read back from the store has one, stored before the key existed too', () => {
    const old = infraSpecCodec.decode({ spec: { type: 'generic.resource', commands: { read: ['./bucket', 'read'], create: ['./bucket', 'create'] }, input: { name: 'logs' } }, backendId: 'exec', labels: {}, environment: 'dev' });
    const { spec } = compiled(`    - { id: n, type: generic.resource, backend: exec2, spec: { commands: { create: [./bucket, create], read: [./bucket, read] }, input: { name: logs } } }\n`);
    expect(key(old!)).toBeDefined();
    expect(infraSpecCodec.formerKeys?.(spec('n'))?.sameSpec).toBe(key(old!));
  });
});
