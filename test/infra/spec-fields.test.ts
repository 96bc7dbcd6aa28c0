import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { specSchemas } from '../../src/infra/index.ts';
import type { BackendFactory, InfraNodeSpec, InfraNodeType } from '../../src/infra/index.ts';

/**
 * `BackendFactory.specFields` lets `checkSpec`, `cannotDelete` and
 * `resourceKey` run on a spec with errors in other fields, given only the
 * fields declared. So a declaration must name every field they read: here
 * each hook runs on valid specs of its kinds, once on a spec that records
 * what is read, once on the spec cut down to the declared fields, which
 * must give the same answer as the whole spec.
 */

/** Valid specs per kind, varied where a hook's answer depends on a field (a grant's target, an exec delete command). */
const samples: Partial<Record<InfraNodeType, readonly Record<string, unknown>[]>> = {
  'local.file': [{ path: 'conf/a', content: 'x', mode: '0600' }, { path: '../out', content: 'x' }],
  'local.directory': [{ path: 'srv/web/' }],
  'local.symlink': [{ path: 'current', target: 'releases/v1' }, { path: 'up', target: '../elsewhere' }],
  'postgres.database': [{ name: 'app', owner: 'o', connectionLimit: 5 }],
  'postgres.role': [{ name: 'app', login: true, connectionLimit: 5 }],
  'postgres.schema': [{ name: 's', database: 'app', owner: 'o' }],
  'postgres.grant': [
    { role: 'r', database: 'app', on: 'database', privileges: ['CONNECT'] },
    { role: 'r', database: 'app', schema: 's', on: 'tables', privileges: ['SELECT'] },
    { role: 'r', database: 'app', on: 'defaultTables', forRole: 'o', privileges: ['SELECT'] },
  ],
  'postgres.extension': [{ name: 'citext', database: 'app', schema: 'public', version: '1.6' }],
  'ansible.playbook': [{ playbook: 'site.yml' }],
  'generic.resource': [{ commands: { read: ['r'], create: ['c'] } }, { commands: { read: ['r'], create: ['c'], delete: ['d'] }, input: { a: 1 } }, { input: {} }],
};

/** A spec that records each top-level field read, asked after (`in`) or listed. */
function recording(spec: InfraNodeSpec): { spec: InfraNodeSpec; read: Set<string> } {
  const read = new Set<string>();
  const note = (key: string | symbol): void => {
    if (typeof key === 'string') read.add(key);
  };
  const proxy = new Proxy(spec, {
    get: (target, key, receiver) => (note(key), Reflect.get(target, key, receiver)),
    has: (target, key) => (note(key), Reflect.has(target, key)),
    ownKeys: (target) => (read.add('*every field*'), Reflect.ownKeys(target)),
  });
  return { spec: proxy, read };
}

// The backend's config with its defaults, where it has one without any field set (the local backend's root); `{}` otherwise.
const configOf = (factory: BackendFactory): unknown => factory.configSchema.safeParse({}).data ?? {};
const hooks = (factory: BackendFactory, spec: InfraNodeSpec): unknown[] => {
  const config = configOf(factory);
  return [factory.checkSpec?.(spec, config), factory.cannotDelete?.(spec, config), factory.resourceKey?.(spec, config)];
};

const declaring = (builtinBackendFactories as readonly BackendFactory[]).filter((f) => f.specFields !== undefined);
const cases = declaring.flatMap((factory) => factory.kinds.flatMap((kind) => (samples[kind] ?? []).map((input, i) => ({ backend: factory.type, kind, i, factory, input }))));

describe('BackendFactory.specFields names every field its checks read', () => {
  it('each backend that declares them has samples of each of its kinds', () => {
    expect(declaring.map((f) => f.type).sort()).toEqual(['ansible', 'exec', 'local', 'postgres']);
    for (const factory of declaring) for (const kind of factory.kinds) expect(samples[kind], `${factory.type} ${kind}`).toBeDefined();
  });

  it.each(cases)('$backend, $kind #$i', ({ factory, kind, input }) => {
    const spec = { type: kind, ...(specSchemas[kind].parse(input) as Record<string, unknown>) } as InfraNodeSpec;
    const fields = new Set(['type', ...factory.specFields!]);
    const { spec: watched, read } = recording(spec);
    const whole = hooks(factory, watched);
    expect([...read].filter((f) => !fields.has(f))).toEqual([]);
    const cut = Object.fromEntries(Object.entries(spec).filter(([k]) => fields.has(k))) as InfraNodeSpec;
    expect(hooks(factory, cut)).toEqual(whole);
  });

  it('the recording spec sees a field read (the check above can fail)', () => {
    const { spec, read } = recording({ type: 'local.file', path: 'a', content: 'x', mode: '0644' } as InfraNodeSpec);
    void ('content' in spec && spec.content);
    expect([...read]).toEqual(['content']);
  });
});

/**
 * `BackendFactory.checksReadNoConfig` lets `checkSpec` and `cannotDelete` run for the nodes of a Backend
 * whose config has errors, given no config: each hook of a declaring backend runs on its samples with a
 * config that throws when anything is read of it, and must answer as with its real config.
 */
describe('BackendFactory.checksReadNoConfig holds: the checks read nothing of the config', () => {
  const untouchable = new Proxy(
    {},
    {
      get: (_t, key) => {
        throw new Error(`config.${String(key)} read`);
      },
      has: (_t, key) => {
        throw new Error(`${String(key)} in config`);
      },
      ownKeys: () => {
        throw new Error('config keys listed');
      },
    },
  );
  const noConfig = (builtinBackendFactories as readonly BackendFactory[]).filter((f) => f.checksReadNoConfig === true);
  const configCases = noConfig.flatMap((factory) => factory.kinds.flatMap((kind) => (samples[kind] ?? []).map((input, i) => ({ backend: factory.type, kind, i, factory, input }))));

  it('each backend that declares it has samples of each of its kinds', () => {
    expect(noConfig.map((f) => f.type).sort()).toEqual(['ansible', 'exec']);
    for (const factory of noConfig) for (const kind of factory.kinds) expect(samples[kind], `${factory.type} ${kind}`).toBeDefined();
  });

  it.each(configCases)('$backend, $kind #$i', ({ factory, kind, input }) => {
    const spec = { type: kind, ...(specSchemas[kind].parse(input) as Record<string, unknown>) } as InfraNodeSpec;
    const config = configOf(factory);
    expect([factory.checkSpec?.(spec, untouchable), factory.cannotDelete?.(spec, untouchable)]).toEqual([factory.checkSpec?.(spec, config), factory.cannotDelete?.(spec, config)]);
  });

  it('the untouchable config throws when read (the check above can fail)', () => {
    expect(() => (untouchable as { timeout?: number }).timeout).toThrow('config.timeout read');
  });
});
