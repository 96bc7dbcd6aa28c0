import { describe, expect, it } from 'vitest';
import { compileFiles } from '../support/compile.ts';
import type { Compiled } from '../support/compile.ts';

/** The files given (an undefined one left out), in sorted order, as the loader reads a directory. */
function compile(files: Record<string, string | undefined>): Compiled {
  return compileFiles(Object.fromEntries(Object.entries(files).filter((e): e is [string, string] => e[1] !== undefined).sort(([a], [b]) => a.localeCompare(b))));
}

const memoryBackend = `---
apiVersion: desiredstate/v1
kind: Backend
metadata: { name: mem }
spec: { type: memory }
`;

const goal = (body: string, meta = ''): string => `apiVersion: desiredstate/v1
kind: Goal
metadata:
  name: app-dev
  environment: dev
  labels: { team: data, tier: web }${meta}
spec:
${body}`;

describe('GoalCompiler: a valid goal set', () => {
  const r = compile({
    'goals/app.yaml': goal(`  nodes:
    - id: dir
      type: local.directory
      spec: { path: "\${goal.name}/config" }
    - id: file
      type: local.file
      dependsOn: [dir]
      labels: { tier: api, owner: ann }
      ignoreFields: [content]
      interval: 30s
      spec: { path: "\${goal.name}/config/app.toml", content: "env=\${goal.environment} team=\${goal.labels.team}" }
    - id: db
      type: postgres.database
      backend: mem
      spec: { name: app }
    - id: role
      type: postgres.role
      backend: mem
      deletionPolicy: Delete
      spec: { name: "app_\${goal.environment}", password: { fromEnv: APP_PW }, login: true }
    - id: grant-file
      type: local.file
      spec: { path: grant.txt, content: "db \${nodes.db.outputs.name}, role \${nodes.role.outputs.name}" }
`),
    'goals/backends.yaml': memoryBackend,
  });

  it('compiles without diagnostics', () => {
    expect(r.lines).toEqual([]);
    expect(r.graph).toBeDefined();
  });

  it('orders every node after its dependencies, with references as implicit edges', () => {
    const order = r.graph!.order.map((n) => n.id);
    expect(order.indexOf('dir')).toBeLessThan(order.indexOf('file'));
    const g = r.graph!.get('grant-file')!;
    expect(g.dependsOn.map((d) => [d.on, d.implicit, `${d.source.line}:${d.source.col}`])).toEqual([
      ['db', true, '30:45'],
      ['role', true, '30:76'],
    ]);
    expect(r.graph!.get('file')!.dependsOn.map((d) => [d.on, d.implicit, `${d.source.file}:${d.source.line}:${d.source.col}`])).toEqual([['dir', false, 'goals/app.yaml:14:19']]);
  });

  it('interpolates goal values into specs', () => {
    const file = r.graph!.get('file')!.spec;
    expect(file.spec).toMatchObject({ type: 'local.file', path: 'app-dev/config/app.toml', content: 'env=dev team=data', mode: '0644' });
    expect(r.graph!.get('role')!.spec.spec).toMatchObject({ name: 'app_dev', password: { fromEnv: 'APP_PW' } });
  });

  it.each([
    { name: 'node labels merge over goal labels', id: 'file', labels: { team: 'data', tier: 'api', owner: 'ann' } },
    { name: 'a node without labels gets the goal labels', id: 'dir', labels: { team: 'data', tier: 'web' } },
  ])('$name', ({ id, labels }) => {
    expect(r.graph!.get(id)!.spec.labels).toEqual(labels);
  });

  it.each([
    { name: 'a node without backend uses local', id: 'dir', backendId: 'local' },
    { name: 'a named backend', id: 'db', backendId: 'mem' },
  ])('$name', ({ id, backendId }) => {
    expect(r.graph!.get(id)!.spec.backendId).toBe(backendId);
  });

  it.each([
    { name: 'a stateful type defaults to Orphan', id: 'db', policy: 'Orphan' },
    { name: 'a plain file defaults to Orphan too (the documented default)', id: 'dir', policy: 'Orphan' },
    { name: 'the node’s choice wins', id: 'role', policy: 'Delete' },
  ])('$name', ({ id, policy }) => {
    expect(r.graph!.get(id)!.settings.deletionPolicy).toBe(policy);
  });

  it('resolves per-node settings from the goal and the node', () => {
    expect(r.graph!.get('file')!.settings).toEqual({ selfHeal: true, prune: false, deletionPolicy: 'Orphan', ignoreFields: ['content'], intervalMs: 30_000 });
    expect(r.goals).toEqual([expect.objectContaining({ name: 'app-dev', environment: 'dev', file: 'goals/app.yaml', nodeCount: 5, selfHeal: true, prune: false })]);
  });

  it('gets a default local backend when none is declared', () => {
    expect(r.factory.backends.get('local')).toMatchObject({ id: 'local', type: 'local', config: { root: '.desiredstate/local' } });
  });
});

describe('GoalCompiler: defaults', () => {
  it('spec.defaults.backend applies to nodes that name none, not to those that do', () => {
    const r = compile({
      'a.yaml': goal(`  defaults: { backend: mem, deletionPolicy: Delete }
  selfHeal: false
  prune: true
  interval: 5m
  nodes:
    - id: db
      type: postgres.database
      spec: { name: app }
    - id: f
      type: local.file
      backend: local
      deletionPolicy: Orphan
      selfHeal: true
      spec: { path: f, content: "" }
`),
      'b.yaml': memoryBackend,
    });
    expect(r.lines).toEqual([]);
    expect(r.graph!.get('db')!.spec.backendId).toBe('mem');
    expect(r.graph!.get('db')!.settings).toEqual({ selfHeal: false, prune: true, deletionPolicy: 'Delete', ignoreFields: [], intervalMs: 300_000 });
    expect(r.graph!.get('f')!.spec.backendId).toBe('local');
    expect(r.graph!.get('f')!.settings).toMatchObject({ selfHeal: true, deletionPolicy: 'Orphan' });
  });

  it('a declared Backend named local replaces the default one', () => {
    const r = compile({ 'a.yaml': `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: local }\nspec: { type: local, config: { root: /srv/files } }\n` });
    expect(r.factory.backends.get('local')).toMatchObject({ config: { root: '/srv/files' } });
  });
});

describe('GoalCompiler: every problem at once', () => {
  it.each([
    {
      name: 'an edge from a node whose spec is wrong is still checked',
      files: { 'a.yaml': goal(`  nodes:\n    - id: f\n      type: local.file\n      dependsOn: [ghost]\n      spec: { path: f }\n`) },
      codes: ['unknown-node', 'missing-field'],
    },
    {
      name: 'an edge to a node whose declaration is broken is not "unknown"',
      files: { 'a.yaml': goal(`  nodes:\n    - id: f\n      type: local.file\n      bogus: 1\n      spec: { path: f, content: "" }\n    - id: g\n      type: local.file\n      dependsOn: [f]\n      spec: { path: g, content: "" }\n`) },
      codes: ['unknown-field'],
    },
    {
      name: 'an invalid goal keeps its valid defaults when its nodes are checked',
      files: { 'a.yaml': goal(`  defaults: { backend: mem }\n  prune: maybe\n  nodes:\n    - id: db\n      type: postgres.database\n      spec: { name: app }\n`), 'b.yaml': memoryBackend },
      codes: ['invalid-type'],
    },
    {
      name: 'duplicate goal names',
      files: { 'a.yaml': goal('  nodes: []\n'), 'b.yaml': goal('  nodes: []\n') },
      codes: ['duplicate-name'],
    },
    {
      name: 'a document that is not a map',
      files: { 'a.yaml': '- just\n- a list\n' },
      codes: ['not-a-document'],
    },
    {
      name: 'an empty ignoreFields entry',
      files: { 'a.yaml': goal(`  nodes:\n    - id: f\n      type: local.file\n      ignoreFields: [" "]\n      spec: { path: f, content: "" }\n`) },
      codes: ['invalid-value'],
    },
    {
      name: 'a bad interval',
      files: { 'a.yaml': goal(`  nodes:\n    - id: f\n      type: local.file\n      interval: soon\n      spec: { path: f, content: "" }\n`) },
      codes: ['invalid-value'],
    },
    {
      name: 'an interval under 100ms (every node read again sooner is a busy loop)',
      files: { 'a.yaml': goal(`  interval: 50ms\n  nodes:\n    - id: f\n      type: local.file\n      interval: 1ms\n      spec: { path: f, content: "" }\n`) },
      codes: ['invalid-value', 'invalid-value'],
    },
  ])('$name', ({ files, codes }) => {
    const r = compile(files);
    expect(r.graph).toBeUndefined();
    expect(r.diagnostics.map((d) => d.code)).toEqual(codes);
  });

  // A duration, too short as 99ms is: it was told "not a duration such as "500ms"".
  it.each(['0s', '0ms', '99ms'])('an interval of %s is told it is at least 100ms', (interval) => {
    const r = compile({ 'a.yaml': goal(`  interval: ${interval}\n  nodes:\n    - id: f\n      type: local.file\n      interval: ${interval}\n      spec: { path: f, content: "" }\n`) });
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      'spec.interval: an interval is at least 100ms ("500ms", "30s", "5m")',
      'spec.nodes[0].interval: an interval is at least 100ms ("500ms", "30s", "5m")',
    ]);
  });
});
