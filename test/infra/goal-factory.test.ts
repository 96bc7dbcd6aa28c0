import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { BackendRegistry, InfraSpecFactory } from '../../src/infra/index.ts';
import { formatDiagnostic, GoalCompiler, parseGoalText } from '../../src/runtime/index.ts';

/**
 * Each Backend name is declared once, either well (it is instantiated) or
 * with errors (reported once; a node naming it is not also told it is not
 * configured). `backends` lists the good ones, in declaration order.
 */

const registry = new BackendRegistry(builtinBackendFactories);

function compile(text: string, cwd = '/work/project'): { factory: InfraSpecFactory; lines: string[] } {
  const factory = new InfraSpecFactory({ registry, cwd });
  const parsed = parseGoalText('goals/app.yaml', text);
  const result = new GoalCompiler({ factory }).compile(parsed.documents, parsed.diagnostics);
  return { factory, lines: result.diagnostics.map(formatDiagnostic) };
}

const backend = (name: string, type: string, extra = ''): string => `${extra}kind: Backend\nmetadata: { name: ${name} }\nspec: { type: ${type} }\n---\n`;
const goal = (nodes: string): string => `apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: app }\nspec:\n  nodes:\n${nodes}`;
const api = 'apiVersion: desiredstate/v1\n';

describe('InfraSpecFactory: declared backends', () => {
  it.each([
    { name: 'declared ones in order, then the default local', docs: backend('b', 'memory', api) + backend('a', 'memory', api), ids: ['b', 'a', 'local'] },
    { name: 'a declared local replaces the default', docs: backend('local', 'memory', api) + backend('a', 'memory', api), ids: ['local', 'a'] },
    { name: 'a broken one is not listed', docs: backend('a', 'nosuch', api) + backend('b', 'memory', api), ids: ['b', 'local'] },
    { name: 'a broken local is not replaced by the default', docs: backend('local', 'nosuch', api), ids: [] },
    // The first `a` has no apiVersion (its envelope is rejected); the later good one counts, where it is declared.
    { name: 'a good one after a rejected one of the same name', docs: backend('a', 'memory') + backend('b', 'memory', api) + backend('a', 'memory', api), ids: ['b', 'a', 'local'] },
  ])('$name', ({ docs, ids }) => {
    const { factory } = compile(docs + goal('    - { id: n, type: k8s.namespace, backend: b, spec: { name: n } }\n'));
    expect([...factory.backends.keys()]).toEqual(ids);
  });

  it('says "not configured" only of a name nothing declares', () => {
    const nodes = ['    - { id: n1, type: k8s.namespace, backend: broken, spec: { name: n } }', '    - { id: n2, type: k8s.namespace, backend: mem2, spec: { name: n } }'].join('\n');
    const { lines } = compile(backend('broken', 'nosuch', api) + backend('mem', 'memory', api) + goal(`${nodes}\n`));
    expect(lines.filter((l) => l.includes('error unknown-backend:'))).toEqual([expect.stringContaining('backend "mem2" is not configured (did you mean "mem"?)')]);
  });
});

// Two nodes managing one resource undo each other's work on every pass, forever (`a/` and `./a`
// were both "created", one file with two contents). validate names both.
describe('InfraSpecFactory: one resource, one node', () => {
  it.each([
    { name: 'the same file path written two ways', nodes: ['{ id: f1, type: local.file, spec: { path: "conf/a", content: x } }', '{ id: f2, type: local.file, spec: { path: "./conf//a", content: y } }'], line: 'goals/app.yaml:7:49: error duplicate-resource: node "f2" manages path conf/a, as node "f1" does (goals/app.yaml:6:49); one of them must go' },
    { name: 'a file and a directory at one path', nodes: ['{ id: d, type: local.directory, spec: { path: "www/" } }', '{ id: f, type: local.file, spec: { path: www, content: x } }'], line: 'goals/app.yaml:7:48: error duplicate-resource: node "f" manages path www, as node "d" does (goals/app.yaml:6:53); one of them must go' },
    { name: 'one role on one server', nodes: ['{ id: r1, type: postgres.role, backend: pg, spec: { name: app } }', '{ id: r2, type: postgres.role, backend: pg, spec: { name: app, login: true } }'], line: 'goals/app.yaml:12:65: error duplicate-resource: node "r2" manages role app, as node "r1" does (goals/app.yaml:11:65); one of them must go', pg: true },
    {
      name: 'two grants of one role on one target (each would revoke the other\'s privileges)',
      nodes: ['{ id: g1, type: postgres.grant, backend: pg, spec: { role: app, database: d, schema: s, on: tables, privileges: [SELECT] } }', '{ id: g2, type: postgres.grant, backend: pg, spec: { role: app, database: d, schema: s, on: tables, privileges: [INSERT] } }'],
      line: 'goals/app.yaml:12:66: error duplicate-resource: node "g2" manages grant on tables in schema s of database d to role app, as node "g1" does (goals/app.yaml:11:66); one of them must go',
      pg: true,
    },
    // ALTER DEFAULT PRIVILEGES without FOR ROLE sets the backend user's (u): each node revoked the other's privileges on every pass.
    {
      name: 'default privileges without forRole, and with forRole naming the backend user',
      nodes: ['{ id: g1, type: postgres.grant, backend: pg, spec: { role: app, database: d, schema: s, on: defaultTables, privileges: [SELECT] } }', '{ id: g2, type: postgres.grant, backend: pg, spec: { role: app, database: d, schema: s, on: defaultTables, forRole: u, privileges: [INSERT] } }'],
      line: 'goals/app.yaml:12:66: error duplicate-resource: node "g2" manages grant on defaultTables in schema s of database d to role app, as node "g1" does (goals/app.yaml:11:66); one of them must go',
      pg: true,
    },
    {
      name: 'one path written with the same reference in two nodes (both resolve to one file)',
      nodes: ['{ id: d, type: local.directory, spec: { path: conf } }', '{ id: f1, type: local.file, spec: { path: "${nodes.d.outputs.path}/a", content: x } }', '{ id: f2, type: local.file, spec: { path: "${nodes.d.outputs.path}/a", content: y } }'],
      line: 'goals/app.yaml:8:49: error duplicate-resource: node "f2" manages path ${nodes.d.outputs.path}/a once its references resolve, as node "f1" does (goals/app.yaml:7:49); one of them must go',
    },
  ])('$name is an error naming both nodes', ({ nodes, line, pg }) => {
    const pgBackend = pg === true ? `${api}kind: Backend\nmetadata: { name: pg }\nspec: { type: postgres, config: { host: db, user: u, database: d } }\n---\n` : '';
    const { lines } = compile(pgBackend + goal(nodes.map((n) => `    - ${n}\n`).join('')));
    expect(lines).toEqual([line]);
  });

  it.each([
    { name: 'the same path on two backends', nodes: ['{ id: f1, type: local.file, spec: { path: a, content: x } }', '{ id: f2, type: local.file, backend: other, spec: { path: a, content: x } }'] },
    { name: 'a path known only once a reference resolves', nodes: ['{ id: f1, type: local.file, spec: { path: a, content: x } }', '{ id: f2, type: local.file, spec: { path: "${nodes.f1.outputs.path}", content: x } }'] },
    // Normal forms of templates say nothing of the paths they resolve to: "${…}/../a" is "a" as text.
    { name: 'templates that differ as written', nodes: ['{ id: d, type: local.directory, spec: { path: conf } }', '{ id: e, type: local.directory, spec: { path: etc/x } }', '{ id: f1, type: local.file, spec: { path: "${nodes.d.outputs.path}/../a", content: x } }', '{ id: f2, type: local.file, spec: { path: "${nodes.e.outputs.path}/../a", content: x } }'] },
    { name: 'two different references', nodes: ['{ id: d, type: local.directory, spec: { path: conf } }', '{ id: e, type: local.directory, spec: { path: etc } }', '{ id: f1, type: local.file, spec: { path: "${nodes.d.outputs.path}/a", content: x } }', '{ id: f2, type: local.file, spec: { path: "${nodes.e.outputs.path}/a", content: x } }'] },
    { name: 'a role and a database of one name', nodes: ['{ id: r, type: postgres.role, backend: pg, spec: { name: app } }', '{ id: d, type: postgres.database, backend: pg, spec: { name: app } }'] },
    // Keys joined names with words: these pairs, four resources, were said to be two.
    {
      name: 'grants whose names hold the words of another grant\'s key',
      nodes: [
        '{ id: a, type: postgres.grant, backend: pg, spec: { role: "x for objects of role y", database: g, on: defaultTables, privileges: [SELECT] } }',
        '{ id: b, type: postgres.grant, backend: pg, spec: { role: x, database: g, on: defaultTables, forRole: y, privileges: [SELECT] } }',
        '{ id: c, type: postgres.grant, backend: pg, spec: { role: x, database: g, schema: "(all)", on: defaultSequences, privileges: [SELECT] } }',
        '{ id: d, type: postgres.grant, backend: pg, spec: { role: x, database: g, on: defaultSequences, privileges: [SELECT] } }',
      ],
    },
    { name: 'default privileges without forRole, and for another role than the backend user', nodes: ['{ id: g1, type: postgres.grant, backend: pg, spec: { role: app, database: d, on: defaultTables, privileges: [SELECT] } }', '{ id: g2, type: postgres.grant, backend: pg, spec: { role: app, database: d, on: defaultTables, forRole: owner, privileges: [SELECT] } }'] },
  ])('$name is fine', ({ nodes }) => {
    const backends = `${api}kind: Backend\nmetadata: { name: other }\nspec: { type: local, config: { root: /tmp/other } }\n---\n${api}kind: Backend\nmetadata: { name: pg }\nspec: { type: postgres, config: { host: db, user: u, database: d } }\n---\n`;
    const { lines } = compile(backends + goal(nodes.map((n) => `    - ${n}\n`).join('')));
    expect(lines).toEqual([]);
  });
});

// Two local backends whose roots overlap reach one file from two instances: each node "corrects" the
// other's content on every pass. validate names both, wherever the roots resolve from.
describe('InfraSpecFactory: one place, one node, across backends', () => {
  const local = (name: string, root: string): string => `${api}kind: Backend\nmetadata: { name: ${name} }\nspec: { type: local, config: { root: ${JSON.stringify(root)} } }\n---\n`;
  it('roots that overlap (out, out/sub, ./out/): every second node of one file is an error naming the first and both backends', () => {
    const nodes = [
      '{ id: a1, type: local.file, backend: outer, spec: { path: sub/f, content: one } }',
      '{ id: a2, type: local.file, backend: inner, spec: { path: f, content: two } }',
      '{ id: a3, type: local.file, backend: same, spec: { path: "./sub//f", content: three } }',
    ];
    const { lines } = compile(local('outer', 'out') + local('inner', 'out/sub') + local('same', './out/') + goal(nodes.map((n) => `    - ${n}\n`).join('')));
    expect(lines).toEqual([
      'goals/app.yaml:22:65: error duplicate-resource: node "a2" manages /work/project/out/sub/f through backend "inner", as node "a1" does through backend "outer" (goals/app.yaml:21:65): their backends reach one place; one of them must go',
      'goals/app.yaml:23:64: error duplicate-resource: node "a3" manages /work/project/out/sub/f through backend "same", as node "a1" does through backend "outer" (goals/app.yaml:21:65): their backends reach one place; one of them must go',
    ]);
  });

  it('an absolute root and a relative one that resolves to it', () => {
    const nodes = ['{ id: a, type: local.file, backend: abs, spec: { path: x, content: one } }', '{ id: b, type: local.file, backend: rel, spec: { path: x, content: two } }'];
    const { lines } = compile(local('abs', '/work/project/data') + local('rel', 'data') + goal(nodes.map((n) => `    - ${n}\n`).join('')));
    expect(lines).toEqual([expect.stringContaining('error duplicate-resource: node "b" manages /work/project/data/x through backend "rel", as node "a" does through backend "abs"')]);
    // From elsewhere, the relative root is another place.
    expect(compile(local('abs', '/work/project/data') + local('rel', 'data') + goal(nodes.map((n) => `    - ${n}\n`).join('')), '/elsewhere').lines).toEqual([]);
  });
});

// A file written through a managed symlink is the file under the link's target: two nodes reaching it,
// each by its own path, rewrite it in turn on every pass. validate names both and how each gets there.
describe('InfraSpecFactory: one place, one node, through symlink nodes', () => {
  const local = (root: string): string => `${api}kind: Backend\nmetadata: { name: local }\nspec: { type: local, config: { root: ${JSON.stringify(root)} } }\n---\n`;
  const lines = (nodes: readonly string[], root = '/srv/app', cwd?: string): string[] => compile(local(root) + goal(nodes.map((n) => `    - ${n}\n`).join('')), cwd).lines;

  it('a file through a link and the same file under its target, in either order', () => {
    const link = '{ id: current, type: local.symlink, spec: { path: current, target: releases/v2 } }';
    const through = '{ id: via, type: local.file, spec: { path: current/app.conf, content: one } }';
    const direct = '{ id: direct, type: local.file, spec: { path: releases/v2/app.conf, content: two } }';
    expect(lines([link, through, direct])).toEqual([
      'goals/app.yaml:13:53: error duplicate-resource: node "direct" manages path releases/v2/app.conf, and node "via" manages path current/app.conf, which is releases/v2/app.conf through symlink node "current" (goals/app.yaml:12:50): one place; one of them must go',
    ]);
    expect(lines([direct, link, through])).toEqual([
      'goals/app.yaml:13:50: error duplicate-resource: node "via" manages path current/app.conf, which is releases/v2/app.conf through symlink node "current", and node "direct" manages path releases/v2/app.conf (goals/app.yaml:11:53): one place; one of them must go',
    ]);
  });

  it('two links to one directory, a chain of links, an absolute target inside the root, and directories', () => {
    expect(
      lines([
        '{ id: a, type: local.symlink, spec: { path: a, target: ./data/ } }',
        '{ id: b, type: local.symlink, spec: { path: b, target: a } }',
        '{ id: c, type: local.symlink, spec: { path: c, target: /srv/app/data } }',
        '{ id: fa, type: local.file, spec: { path: a/f, content: x } }',
        '{ id: fb, type: local.file, spec: { path: b/f, content: y } }',
        '{ id: dc, type: local.directory, spec: { path: c/f } }',
      ]),
    ).toEqual([
      'goals/app.yaml:15:49: error duplicate-resource: node "fb" manages path b/f, which is data/f through symlink nodes "b", "a", and node "fa" manages path a/f, which is data/f through symlink node "a" (goals/app.yaml:14:49): one place; one of them must go',
      'goals/app.yaml:16:54: error duplicate-resource: node "dc" manages path c/f, which is data/f through symlink node "c", and node "fa" manages path a/f, which is data/f through symlink node "a" (goals/app.yaml:14:49): one place; one of them must go',
    ]);
  });

  it.each([
    { name: 'one path written twice is the resource key\'s one error', nodes: ['{ id: l, type: local.symlink, spec: { path: l, target: d } }', '{ id: f1, type: local.file, spec: { path: l/f, content: x } }', '{ id: f2, type: local.file, spec: { path: "./l//f", content: y } }'], want: 1 },
    { name: 'the link and its target are two resources', nodes: ['{ id: d, type: local.directory, spec: { path: d } }', '{ id: l, type: local.symlink, spec: { path: l, target: d } }'], want: 0 },
    { name: 'a target outside the root is not followed', nodes: ['{ id: l, type: local.symlink, spec: { path: l, target: ../other } }', '{ id: f1, type: local.file, spec: { path: l/f, content: x } }', '{ id: f2, type: local.file, spec: { path: other/f, content: y } }'], want: 0 },
    { name: 'an absolute target under a relative root is not followed without the working directory', nodes: ['{ id: l, type: local.symlink, spec: { path: l, target: /work/project/out/d } }', '{ id: f1, type: local.file, spec: { path: l/f, content: x } }', '{ id: f2, type: local.file, spec: { path: d/f, content: y } }'], root: 'out', want: 1 },
    { name: 'a loop of links compiles (the filesystem refuses it when it runs)', nodes: ['{ id: a, type: local.symlink, spec: { path: a, target: b/x } }', '{ id: b, type: local.symlink, spec: { path: b, target: a/y } }', '{ id: f, type: local.file, spec: { path: a/f, content: x } }'], want: 0 },
  ])('$name', ({ nodes, root, want }) => {
    expect(lines(nodes, root).filter((l) => l.includes('duplicate-resource'))).toHaveLength(want);
  });
});

describe("a backend's config", () => {
  it.each([
    { type: 'exec', owner: "an exec backend's config" },
    { type: 'ansible', owner: "an ansible backend's config" },
    { type: 'memory', owner: "a memory backend's config" },
  ])('an unknown field is not a field of $owner', ({ type, owner }) => {
    const { lines } = compile(`${api}kind: Backend\nmetadata: { name: b }\nspec:\n  type: ${type}\n  config: { nosuchfield: 1 }\n`);
    expect(lines).toEqual([`goals/app.yaml:6:13: error unknown-field: spec.config.nosuchfield is not a field of ${owner}`]);
  });
});

describe('InfraSpecFactory: map keys', () => {
  it('an extra var whose name Ansible refuses is an error at the key that says why', () => {
    const { lines } = compile(backend('ans', 'ansible', api) + goal('    - { id: site, type: ansible.playbook, backend: ans, spec: { playbook: site.yml, extraVars: { ok: 1, "bad-name": 2 } } }\n'));
    expect(lines).toEqual(['goals/app.yaml:11:105: error invalid-value: spec.extraVars.bad-name: the key "bad-name" is not valid: an Ansible variable name ([A-Za-z_][A-Za-z0-9_]*)']);
  });

  it('a bad extra-var name hides no malformed secret reference under another key', () => {
    const { lines } = compile(backend('ans', 'ansible', api) + goal('    - { id: site, type: ansible.playbook, backend: ans, spec: { playbook: site.yml, extraVars: { "bad-name": 1, ok: { fromEnv: X, extra: 1 } } } }\n'));
    expect(lines).toEqual([
      'goals/app.yaml:11:98: error invalid-value: spec.extraVars.bad-name: the key "bad-name" is not valid: an Ansible variable name ([A-Za-z_][A-Za-z0-9_]*)',
      'goals/app.yaml:11:117: error invalid-value: spec.extraVars.ok: a secret reference has one key, fromEnv or fromFile; this map has fromEnv, extra: as it is, the map would be sent as data and no secret read',
    ]);
  });
});

// A misspelt secret reference (`fromenv`) was valid, and sent the name of the variable as data.
describe('InfraSpecFactory: a misspelt secret reference', () => {
  it('is an error at its map that says which key was meant', () => {
    const { lines } = compile(
      backend('ex', 'exec', api) +
        goal('    - id: s\n      type: generic.resource\n      backend: ex\n      spec:\n        commands: { read: [r], create: [c] }\n        input: { a: { fromenv: MYSECRET }, b: { from_file: /etc/x }, c: { FromEnv: MYSECRET } }\n'),
    );
    const why = 'is no key of a secret reference';
    const after = 'as it is, the map would be sent as data and no secret read';
    expect(lines).toEqual([
      `goals/app.yaml:16:21: error invalid-value: spec.input.a: fromenv ${why} (did you mean fromEnv?): ${after}`,
      `goals/app.yaml:16:47: error invalid-value: spec.input.b: from_file ${why} (did you mean fromFile?): ${after}`,
      `goals/app.yaml:16:73: error invalid-value: spec.input.c: FromEnv ${why} (did you mean fromEnv?): ${after}`,
    ]);
  });
});

describe('InfraSpecFactory: a Backend whose config has errors', () => {
  const broken = (type: string): string => `${api}kind: Backend\nmetadata: { name: b }\nspec: { type: ${type}, config: { timeout: -5 } }\n---\n`;
  it.each([
    { name: 'an ansible.playbook node under deletionPolicy: Delete is still not-deletable', type: 'ansible', node: '{ id: n, type: ansible.playbook, backend: b, deletionPolicy: Delete, spec: { playbook: site.yml } }', code: 'not-deletable' },
    { name: 'the same with an error in its spec too', type: 'ansible', node: '{ id: n, type: ansible.playbook, backend: b, deletionPolicy: Delete, spec: { playbook: "" } }', code: 'not-deletable' },
    { name: 'an exec node without commands is still told it needs them', type: 'exec', node: '{ id: n, type: generic.resource, backend: b, spec: { input: {} } }', code: 'unsupported-spec' },
  ])('hides none of the checks that need no config: $name', ({ type, node, code }) => {
    const { lines } = compile(broken(type) + goal(`    - ${node}\n`));
    expect(lines[0]).toMatch(/^goals\/app\.yaml:4:\d+: error invalid-value: spec\.config\.timeout must be more than 0, not the number -5$/);
    expect(lines.filter((l) => l.includes(`error ${code}:`))).toHaveLength(1);
  });

  it('a bad port hides no duplicate-resource of default privileges keyed on the user it connects as', () => {
    const pg = `${api}kind: Backend\nmetadata: { name: pg }\nspec: { type: postgres, config: { host: db, port: 0, user: u } }\n---\n`;
    const nodes = [
      '    - { id: g1, type: postgres.grant, backend: pg, spec: { role: app, database: d, on: defaultSequences, privileges: [USAGE] } }',
      '    - { id: g2, type: postgres.grant, backend: pg, spec: { role: app, database: d, on: defaultSequences, forRole: u, privileges: [SELECT] } }',
    ];
    const { lines } = compile(pg + goal(`${nodes.join('\n')}\n`));
    expect(lines.filter((l) => l.includes('error duplicate-resource:'))).toEqual([
      'goals/app.yaml:12:66: error duplicate-resource: node "g2" manages grant on defaultSequences in schema (all) of database d to role app, as node "g1" does (goals/app.yaml:11:66); one of them must go',
    ]);
  });
});
