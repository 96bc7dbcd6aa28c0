import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { summaryOutputs } from '../../src/backends/ansible/observe.ts';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { MemoryBackend, memoryConfigSchema } from '../../src/backends/memory/index.ts';
import { observeDatabase, observeExtension, observeGrant, observeRole, observeSchema } from '../../src/backends/postgres/index.ts';
import { BackendRegistry, desiredNodeSpec, InfraSpecFactory } from '../../src/infra/index.ts';
import type { BackendFactory, InfraDesiredNodeSpec, InfraNodeSpec } from '../../src/infra/index.ts';
import { formatDiagnostic, GoalCompiler, parseGoalText } from '../../src/runtime/index.ts';
import type { CompileResult, Observation, OperationContext } from '../../src/runtime/index.ts';
import { log } from '../backends/local/helpers.ts';

/**
 * `${nodes.<id>.outputs.<key>}` may only read a key the node's backend gives
 * its kind: any other would leave the referring node waiting for ever
 * ("waiting for outputs f.pth"), so it is a compile error, at the reference.
 */

/** A backend that declares no outputs: every key is accepted. */
const undeclared: BackendFactory<Record<string, unknown>> = {
  type: 'undeclared',
  kinds: ['local.file'],
  configSchema: z.object({}).loose(),
  create() {
    throw new Error('never instantiated: these tests only compile');
  },
  description: 'test backend without output declarations',
};

const registry = new BackendRegistry([...builtinBackendFactories, undeclared]);

function compile(text: string): CompileResult<InfraDesiredNodeSpec> & { lines: string[] } {
  const parsed = parseGoalText('goals/refs.yaml', text);
  const result = new GoalCompiler({ factory: new InfraSpecFactory({ registry }) }).compile(parsed.documents, parsed.diagnostics);
  return { ...result, lines: result.diagnostics.map(formatDiagnostic) };
}

const backends = ['mem: memory', 'run: exec', 'play: ansible', 'gen: script, config: { root: s }', 'pg: postgres, config: { host: db }', 'other: undeclared']
  .map((b) => /^(\w+): (.*)$/.exec(b)!)
  .map(([, name, spec]) => `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: ${name} }\nspec: { type: ${spec} }\n---\n`)
  .join('');

/** One goal: a file whose content reads `key` of node t, then t (the reference is always at 38:40). */
function refGoal(target: string, key: string): string {
  return `${backends}apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  nodes:
    - id: reader
      type: local.file
      spec: { path: r.txt, content: "x=\${nodes.t.outputs.${key}}" }
    - id: t
${target}
`;
}

const file = '      type: local.file\n      spec: { path: f.txt, content: x }';
const dir = '      type: local.directory\n      spec: { path: d }';
const link = '      type: local.symlink\n      spec: { path: l, target: f.txt }';
const pgRole = '      type: postgres.role\n      backend: pg\n      spec: { name: app }';
const pgGrant = '      type: postgres.grant\n      backend: pg\n      spec: { role: app, database: app, on: database, privileges: [CONNECT] }';
const memRole = '      type: postgres.role\n      backend: mem\n      spec: { name: app }';
const memFile = '      type: local.file\n      backend: mem\n      spec: { path: f.txt, content: x }';
const execResource = '      type: generic.resource\n      backend: run\n      spec: { commands: { read: [r], create: [c] }, input: { a: 1 } }';
const scriptResource = '      type: generic.resource\n      backend: gen\n      spec: { input: { path: p, content: c } }';
const playbook = '      type: ansible.playbook\n      backend: play\n      spec: { playbook: site.yml }';
const otherFile = '      type: local.file\n      backend: other\n      spec: { path: f.txt, content: x }';

describe('a reference to a declared output compiles', () => {
  it.each([
    { name: 'local.file path', target: file, key: 'path' },
    { name: 'local.file sha256', target: file, key: 'sha256' },
    { name: 'local.directory path', target: dir, key: 'path' },
    { name: 'local.symlink target', target: link, key: 'target' },
    { name: 'postgres.role oid', target: pgRole, key: 'oid' },
    { name: 'postgres.grant schema', target: pgGrant, key: 'schema' },
    { name: 'the memory backend: its id, for any kind', target: memRole, key: 'id' },
    { name: 'the memory backend: a path where the spec has one', target: memFile, key: 'path' },
    { name: 'ansible.playbook: the play recap', target: playbook, key: 'changed' },
    { name: 'generic.resource on exec: any key (the script prints them)', target: execResource, key: 'bucketArn' },
    { name: 'generic.resource on script: any key', target: scriptResource, key: 'whatever' },
    { name: 'a backend that declares no outputs: any key', target: otherFile, key: 'anything' },
  ])('$name', ({ target, key }) => {
    const r = compile(refGoal(target, key));
    expect(r.lines).toEqual([]);
    expect(r.graph?.get('reader')?.dependsOn.map((d) => d.on)).toEqual(['t']);
  });
});

describe('a reference to an output the node never has is an error at the reference', () => {
  const at = 'goals/refs.yaml:38:40: error unknown-field: spec.content: node "t"';
  it.each([
    { name: 'a misspelt key, with a suggestion', target: file, key: 'pth', line: `${at} (local.file, backend "local") has no output "pth"; its outputs are path, sha256 (did you mean "path"?)` },
    { name: 'another kind\'s key', target: file, key: 'target', line: `${at} (local.file, backend "local") has no output "target"; its outputs are path, sha256` },
    { name: 'a key of the kind on another backend', target: memFile, key: 'sha256', line: `${at} (local.file, backend "mem") has no output "sha256"; its outputs are id, type, path` },
    { name: 'a directory has no hash', target: dir, key: 'sha256', line: `${at} (local.directory, backend "local") has no output "sha256"; its outputs are path` },
    { name: 'keys are case-sensitive', target: pgRole, key: 'OID', line: `${at} (postgres.role, backend "pg") has no output "OID"; its outputs are name, oid (did you mean "oid"?)` },
    { name: 'a playbook\'s recap only', target: playbook, key: 'failed', line: `${at} (ansible.playbook, backend "play") has no output "failed"; its outputs are ok, changed, skipped, hosts` },
  ])('$name', ({ target, key, line }) => {
    const r = compile(refGoal(target, key));
    expect(r.graph).toBeUndefined();
    expect(r.lines).toEqual([line]);
  });

  it('reports each bad reference of a string, and not the good one', () => {
    const r = compile(refGoal(file, 'pth}} ${nodes.t.outputs.path} ${nodes.t.outputs.sha265'));
    expect(r.diagnostics.map((d) => `${d.line}:${d.col}`)).toEqual(['38:40', '38:88']);
    expect(r.lines[1]).toContain('has no output "sha265"; its outputs are path, sha256 (did you mean "sha256"?)');
  });

  it('checks the outputs of a node whose own spec is wrong too: its type and backend say what they will be', () => {
    const r = compile(refGoal('      type: local.file\n      spec: { path: f.txt, contnet: x }', 'pth'));
    expect(r.lines[0]).toContain('node "t" (local.file, backend "local") has no output "pth"; its outputs are path, sha256 (did you mean "path"?)');
    expect(r.lines[1]).toBe('goals/refs.yaml:41:28: error unknown-field: spec.contnet is not a field of local.file (did you mean "content"?)');
    expect(r.lines).toHaveLength(2);
  });

  it('says nothing of the outputs of a node whose type is wrong (what it will output is unknown)', () => {
    const r = compile(refGoal('      type: local.fiel\n      spec: { path: f.txt, content: x }', 'pth'));
    expect(r.diagnostics.map((d) => d.code)).toEqual(['unknown-type']);
  });

  it('says nothing of the outputs of an unknown node (unknown-node is enough)', () => {
    const r = compile(refGoal(file, 'path').replace('nodes.t.', 'nodes.tt.'));
    expect(r.diagnostics.map((d) => d.code)).toEqual(['unknown-node']);
  });
});

describe('the declared outputs are what the backends give', () => {
  it('every built-in backend declares the outputs of each kind it provisions', () => {
    for (const f of builtinBackendFactories) {
      expect(Object.keys(f.outputs ?? {}).sort(), f.type).toEqual([...f.kinds].sort());
    }
  });

  const declared = (type: string, kind: string): readonly string[] | 'any' | undefined =>
    builtinBackendFactories.find((f) => f.type === type)?.outputs?.[kind as InfraNodeSpec['type']];
  const keysOf = (obs: Observation): string[] => (obs.status === 'upToDate' || obs.status === 'drifted' ? Object.keys(obs.outputs) : []);

  it.each([
    { kind: 'postgres.database', obs: observeDatabase({ type: 'postgres.database', name: 'a', encoding: 'UTF8', force: false }, { name: 'a', oid: 1, owner: 'o', encoding: 'UTF8', connection_limit: -1 }) },
    { kind: 'postgres.role', obs: observeRole({ type: 'postgres.role', name: 'a', login: false, superuser: false, createdb: false, createrole: false, inherit: true, replication: false, bypassRls: false, memberOf: [] }, { name: 'a', oid: 1, login: false, superuser: false, createdb: false, createrole: false, inherit: true, replication: false, bypassrls: false, connection_limit: -1, valid_until: null, member_of: [], verifier: null, memberships: [] }, { status: 'unmanaged' }) },
    { kind: 'postgres.schema', obs: observeSchema({ type: 'postgres.schema', name: 's', database: 'a', force: false }, { name: 's', oid: 1, owner: 'o' }) },
    { kind: 'postgres.extension', obs: observeExtension({ type: 'postgres.extension', name: 'e', database: 'a' }, { name: 'e', oid: 1, version: '1', schema: 'public' }) },
    { kind: 'postgres.grant', obs: observeGrant({ type: 'postgres.grant', role: 'r', database: 'a', on: 'database', privileges: ['CONNECT'], withGrantOption: false }, [{ idx: 0, object: 'a', owned: false, privileges: ['CONNECT'], grantable: [], all_privileges: ['CONNECT'] }]) },
  ] as { kind: string; obs: Observation }[])('postgres $kind: observe gives the declared keys', ({ kind, obs }) => {
    expect(keysOf(obs).length).toBeGreaterThan(0);
    expect(declared('postgres', kind)).toEqual(expect.arrayContaining(keysOf(obs)));
  });

  it('ansible: the play recap is the declared keys', () => {
    expect(Object.keys(summaryOutputs({ stats: { h: { ok: 1, changed: 0, skipped: 0 } } } as never))).toEqual(declared('ansible', 'ansible.playbook'));
  });

  it('memory: a create gives the declared keys of each kind', async () => {
    const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log });
    const ctx: OperationContext = { signal: new AbortController().signal, log, outputsOf: () => undefined };
    const specs: InfraNodeSpec[] = [
      { type: 'local.file', path: 'f', content: '', mode: '0644' },
      { type: 'k8s.namespace', name: 'n', labels: {}, annotations: {} },
      { type: 'postgres.grant', role: 'r', database: 'd', on: 'database', privileges: ['CONNECT'], force: false } as unknown as InfraNodeSpec,
    ];
    for (const spec of specs) {
      const node = { id: 'n', goal: 'g', spec: desiredNodeSpec(spec, 'mem'), dependsOn: [], settings: { selfHeal: true, prune: false, deletionPolicy: 'Delete' as const, ignoreFields: [] }, source: { file: 'f', line: 1, col: 1 } };
      const r = await backend.create(node, ctx);
      expect(r.status === 'done' ? Object.keys(r.outputs).sort() : r, spec.type).toEqual([...(declared('memory', spec.type) as string[])].sort());
      await backend.delete(node, ctx);
    }
  });
});
