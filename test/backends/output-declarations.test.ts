import { describe, expect, it } from 'vitest';
import { summaryOutputs } from '../../src/backends/ansible/observe.ts';
import type { PlaybookReport } from '../../src/backends/ansible/observe.ts';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { observeDirectory, observeFile, observeSymlink } from '../../src/backends/local/observe.ts';
import { outputsFor } from '../../src/backends/memory/index.ts';
import {
  databaseOutputs,
  extensionOutputs,
  grantOutputs,
  observeDatabase,
  observeExtension,
  observeGrant,
  observeRole,
  observeSchema,
  roleOutputs,
  schemaOutputs,
} from '../../src/backends/postgres/index.ts';
import { INFRA_NODE_TYPES } from '../../src/infra/index.ts';
import type { InfraNodeSpecOf, InfraNodeType } from '../../src/infra/index.ts';
import type { Observation, Outputs } from '../../src/runtime/index.ts';
import { specOf } from './memory/helpers.ts';

/**
 * A `${nodes.<id>.outputs.<key>}` is checked at compile time against the keys
 * a factory declares for the kind (`factory.outputs`): a declared key that no
 * resource has leaves a referring node waiting for ever, an undeclared one is
 * refused though it exists. So each declaration must be exactly what the
 * backend's pure output functions give. One case per (backend, kind) with a
 * declared list; `'any'` (a user's script prints the outputs) is not checked.
 */

/** The outputs of an observation that found the resource. */
function outputsOf(obs: Observation): Outputs {
  if (obs.status !== 'upToDate' && obs.status !== 'drifted') throw new Error(`no outputs in a ${obs.status} observation`);
  return obs.outputs;
}

/** One valid spec per kind, for the memory backend (which provisions every kind). */
const memorySamples: { readonly [T in InfraNodeType]: Record<string, unknown> } = {
  'local.file': { path: 'f', content: 'x' },
  'local.directory': { path: 'd' },
  'local.symlink': { path: 'l', target: 'f' },
  'postgres.database': { name: 'app' },
  'postgres.role': { name: 'app' },
  'postgres.schema': { name: 's', database: 'app' },
  'postgres.grant': { role: 'app', database: 'app', on: 'database', privileges: ['CONNECT'] },
  'postgres.extension': { name: 'citext', database: 'app' },
  'k8s.namespace': { name: 'ns' },
  'k8s.configmap': { name: 'cm', namespace: 'ns' },
  'aws.s3.bucket': { name: 'a-bucket', region: 'eu-west-1' },
  'terraform.workspace': { module: 'mod' },
  'ansible.playbook': { playbook: 'site.yml' },
  'generic.resource': { input: { a: 1 } },
};

type GrantSpec = InfraNodeSpecOf<'postgres.grant'>;

const roleRow = {
  name: 'app',
  oid: '16384',
  login: false,
  superuser: false,
  createdb: false,
  createrole: false,
  inherit: true,
  connection_limit: -1,
  valid_until: null,
  replication: false,
  bypassrls: false,
  member_of: [],
  verifier: null,
  memberships: [],
};
const grantSpec: GrantSpec = { type: 'postgres.grant', role: 'app', database: 'app', on: 'schema', schema: 's', privileges: ['USAGE'], withGrantOption: false };
const report = { plays: [], stats: { web1: { ok: 3, changed: 1, failures: 0, unreachable: 0, skipped: 0 } } } as unknown as PlaybookReport;

interface Case {
  readonly backend: string;
  readonly kind: InfraNodeType;
  /** The pure function that made `outputs`. */
  readonly via: string;
  readonly outputs: Outputs;
}

const cases: Case[] = [
  {
    backend: 'local',
    kind: 'local.file',
    via: 'observeFile',
    outputs: outputsOf(
      observeFile(
        { absPath: '/r/f', content: 'x', size: 1, sha256: 'h', mode: 0o644 },
        { kind: 'file', size: 1, mode: 0o100644, uid: 0, gid: 0, owner: 'root', group: 'root', sha256: 'h' },
      ),
    ),
  },
  // Something of another kind in its place: each key still given (null), so that a reference to one waits.
  { backend: 'local', kind: 'local.file', via: 'observeFile, a directory in its place', outputs: outputsOf(observeFile({ absPath: '/r/f', content: 'x', size: 1, sha256: 'h', mode: 0o644 }, { kind: 'directory', mode: 0o40755 })) },
  { backend: 'local', kind: 'local.symlink', via: 'observeSymlink, a fifo in its place', outputs: outputsOf(observeSymlink({ absPath: '/r/l', target: 'f' }, { kind: 'other', what: 'fifo' })) },
  { backend: 'local', kind: 'local.directory', via: 'observeDirectory', outputs: outputsOf(observeDirectory({ absPath: '/r/d', mode: 0o755 }, { kind: 'directory', mode: 0o40755 })) },
  { backend: 'local', kind: 'local.symlink', via: 'observeSymlink', outputs: outputsOf(observeSymlink({ absPath: '/r/l', target: 'f' }, { kind: 'symlink', target: 'f', uid: 0, gid: 0 })) },
  {
    backend: 'postgres',
    kind: 'postgres.database',
    via: 'observeDatabase',
    outputs: outputsOf(
      observeDatabase({ type: 'postgres.database', name: 'app', encoding: 'UTF8', force: false }, { name: 'app', oid: 1, owner: 'o', encoding: 'UTF8', connection_limit: -1 }),
    ),
  },
  {
    backend: 'postgres',
    kind: 'postgres.role',
    via: 'observeRole',
    outputs: outputsOf(
      observeRole(
        { type: 'postgres.role', name: 'app', login: false, superuser: false, createdb: false, createrole: false, inherit: true, replication: false, bypassRls: false, memberOf: [] },
        roleRow,
        { status: 'unmanaged' },
      ),
    ),
  },
  {
    backend: 'postgres',
    kind: 'postgres.schema',
    via: 'observeSchema',
    outputs: outputsOf(observeSchema({ type: 'postgres.schema', name: 's', database: 'app', force: false }, { name: 's', oid: 1, owner: 'o' })),
  },
  {
    backend: 'postgres',
    kind: 'postgres.extension',
    via: 'observeExtension',
    outputs: outputsOf(observeExtension({ type: 'postgres.extension', name: 'citext', database: 'app' }, { name: 'citext', oid: 1, version: '1.6', schema: 'public' })),
  },
  {
    backend: 'postgres',
    kind: 'postgres.grant',
    via: 'observeGrant',
    outputs: outputsOf(observeGrant(grantSpec, [{ idx: 1, object: 's', owned: false, privileges: ['USAGE'], grantable: [], all_privileges: ['CREATE', 'USAGE'] }])),
  },
  { backend: 'postgres', kind: 'postgres.grant', via: 'grantOutputs (create, update)', outputs: grantOutputs(grantSpec) },
  // A create or update that cannot read its object back (dropped again at once): each key still given (null).
  { backend: 'postgres', kind: 'postgres.database', via: 'databaseOutputs, no row', outputs: databaseOutputs({ type: 'postgres.database', name: 'app', encoding: 'UTF8', force: false }, undefined) },
  {
    backend: 'postgres',
    kind: 'postgres.role',
    via: 'roleOutputs, no row',
    outputs: roleOutputs(
      { type: 'postgres.role', name: 'app', login: false, superuser: false, createdb: false, createrole: false, inherit: true, replication: false, bypassRls: false, memberOf: [] },
      undefined,
    ),
  },
  { backend: 'postgres', kind: 'postgres.schema', via: 'schemaOutputs, no row', outputs: schemaOutputs({ type: 'postgres.schema', name: 's', database: 'app', force: false }, undefined) },
  { backend: 'postgres', kind: 'postgres.extension', via: 'extensionOutputs, no row', outputs: extensionOutputs({ type: 'postgres.extension', name: 'citext', database: 'app' }, undefined) },
  { backend: 'ansible', kind: 'ansible.playbook', via: 'summaryOutputs', outputs: summaryOutputs(report) },
  ...INFRA_NODE_TYPES.map((kind): Case => ({ backend: 'memory', kind, via: 'outputsFor', outputs: outputsFor('n', specOf(kind, memorySamples[kind])) })),
];

/** Every (backend, kind) whose outputs a built-in factory declares as a key list. */
const declaredLists = builtinBackendFactories.flatMap((f) =>
  Object.entries(f.outputs ?? {}).flatMap(([kind, keys]) => (keys === 'any' ? [] : [{ backend: f.type, kind, keys: [...keys] }])),
);

describe('every declared output list is what the backend gives', () => {
  it('has a case for each declared list (a new backend or kind needs one)', () => {
    const covered = new Set(cases.map((c) => `${c.backend} ${c.kind}`));
    expect(declaredLists.map((d) => `${d.backend} ${d.kind}`).filter((k) => !covered.has(k))).toEqual([]);
  });

  it.each(cases)('$backend $kind: $via gives the declared keys', ({ backend, kind, outputs }) => {
    const declared = declaredLists.find((d) => d.backend === backend && d.kind === kind)?.keys;
    expect(declared, 'declared as a key list').toBeDefined();
    expect(Object.keys(outputs).sort()).toEqual([...declared!].sort());
  });
});
