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
    { role: 'r', database: 'app', on: 'defaultTables', forRole: 'postgres', privileges: ['SELECT'] },
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
 * `BackendFactory.configFields` lets `checkSpec`, `cannotDelete`, `resourceKey`, `relations`, `conflictsAcross` and `placeOf`
 * run for the nodes of a Backend whose config has errors in other fields, given those fields alone: each
 * hook of a declaring backend runs on its samples, once with a config that records what is read of it,
 * once with the config cut down to the declared fields, which must answer as the whole config does.
 */
describe('BackendFactory.configFields names every config field its checks read', () => {
  /** A config that records each top-level field read. */
  const recordingConfig = (config: object): { config: object; read: Set<string> } => {
    const read = new Set<string>();
    const note = (key: string | symbol): void => {
      if (typeof key === 'string') read.add(key);
    };
    const proxy = new Proxy(config, {
      get: (target, key, receiver) => (note(key), Reflect.get(target, key, receiver)),
      has: (target, key) => (note(key), Reflect.has(target, key)),
      ownKeys: (target) => (read.add('*every field*'), Reflect.ownKeys(target)),
    });
    return { config: proxy, read };
  };
  // Configs whose answers differ, where the checks read any (a relative root and an absolute one).
  const configs: Partial<Record<string, readonly Record<string, unknown>[]>> = {
    local: [{}, { root: '/srv/out' }, { root: 'out', rereadEvery: 'always' }],
    script: [{ root: 'scripts' }, { root: 'scripts', generator: { type: 'command', command: ['gen'] } }],
    postgres: [{ host: 'db' }, { host: 'db', user: 'o' }],
  };
  const moreSamples: Partial<Record<InfraNodeType, readonly Record<string, unknown>[]>> = {
    'k8s.namespace': [{ name: 'ns' }],
    'k8s.configmap': [{ name: 'cm', namespace: 'ns', data: { a: 'b' } }],
    'aws.s3.bucket': [{ name: 'logs', region: 'eu-west-1' }],
    'terraform.workspace': [{ module: 'mod' }],
  };
  const where = { cwd: '/work/app' };
  const allHooks = (factory: BackendFactory, spec: InfraNodeSpec, config: unknown): unknown[] => [
    factory.checkSpec?.(spec, config, where),
    factory.cannotDelete?.(spec, config),
    factory.resourceKey?.(spec, config),
    factory.relations?.([{ id: 'n', spec }], config, where),
    factory.conflictsAcross?.([{ backend: 'b', config, nodes: [{ id: 'n', spec }] }], where),
    factory.placeOf?.(spec, config, where),
  ];
  const declaring = (builtinBackendFactories as readonly BackendFactory[]).filter((f) => f.configFields !== undefined);
  const configCases = declaring.flatMap((factory) =>
    factory.kinds.flatMap((kind) =>
      [...(samples[kind] ?? []), ...(moreSamples[kind] ?? [])].flatMap((input, i) =>
        (configs[factory.type] ?? [{}]).map((config, c) => ({ backend: factory.type, kind, i, c, factory, input, config: factory.configSchema.parse(config) as object })),
      ),
    ),
  );

  it('each backend that declares them has samples of each of its kinds', () => {
    expect(declaring.map((f) => f.type).sort()).toEqual(['ansible', 'exec', 'local', 'postgres', 'script']);
    for (const factory of declaring) for (const kind of factory.kinds) expect([...(samples[kind] ?? []), ...(moreSamples[kind] ?? [])].length, `${factory.type} ${kind}`).toBeGreaterThan(0);
  });

  it.each(configCases)('$backend, $kind #$i, config #$c', ({ factory, kind, input, config }) => {
    const spec = { type: kind, ...(specSchemas[kind].parse(input) as Record<string, unknown>) } as InfraNodeSpec;
    const fields = new Set(factory.configFields);
    const { config: watched, read } = recordingConfig(config);
    const whole = allHooks(factory, spec, watched);
    expect([...read].filter((f) => !fields.has(f))).toEqual([]);
    const cut = Object.fromEntries(Object.entries(config).filter(([k]) => fields.has(k)));
    expect(allHooks(factory, spec, cut)).toEqual(whole);
  });

  it('the recording config sees a field read (the check above can fail)', () => {
    const { config, read } = recordingConfig({ root: 'out' });
    void ('rereadEvery' in config);
    expect([...read]).toEqual(['rereadEvery']);
  });
});
