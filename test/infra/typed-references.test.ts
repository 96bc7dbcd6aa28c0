import { describe, expect, it } from 'vitest';
import { MemoryBackend, memoryConfigSchema } from '../../src/backends/memory/index.ts';
import { InfraNodeProvisioner } from '../../src/infra/index.ts';
import type { InfraNode } from '../../src/infra/index.ts';
import { valueAtPath } from '../../src/runtime/index.ts';
import type { OperationContext, Outputs } from '../../src/runtime/index.ts';
import { opContext, silentLog } from '../support/backend.ts';
import { compileText } from '../support/compile.ts';

/**
 * `${nodes.<id>.outputs.<key>}` is replaced by the output once it is ready
 * (GOAL-FORMAT.md). What the backend then receives is the spec the node's
 * type allows, or nothing: a resolved value that the type refuses fails the
 * node, permanently, before any backend call.
 */

/**
 * `cfg` prints whatever outputs its script likes (an exec backend declares none); the nodes under test live in
 * memory, or name one of `backends` (Backend documents, each followed by `---`).
 */
function goal(nodes: string, backends = ''): string {
  return `${backends}apiVersion: desiredstate/v1
kind: Backend
metadata: { name: run }
spec: { type: exec }
---
apiVersion: desiredstate/v1
kind: Backend
metadata: { name: mem }
spec: { type: memory }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: mem }
  nodes:
    - id: cfg
      type: generic.resource
      backend: run
      spec: { commands: { read: [r], create: [c] } }
${nodes}`;
}

/** Compiles `nodes` (after `cfg`), and a memory backend and provisioner for them, with `cfg`'s outputs set to `outputs`. */
function setup(nodes: string, outputs: Outputs) {
  const compiled = compileText(goal(nodes));
  expect(compiled.lines).toEqual([]);
  const memory = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: silentLog });
  const provisioner = new InfraNodeProvisioner({ backends: new Map([['mem', memory]]) });
  const ctx = opContext(new Map([['cfg', outputs]]));
  const node = (id: string): InfraNode => compiled.graph!.get(id)!;
  return { memory, provisioner, ctx, node };
}

describe('a resolved value the type refuses', () => {
  it.each([
    // CREATE ROLE refuses it ('role name "pg_app" is reserved') on every pass, as validate does a name written so.
    {
      name: 'a role name PostgreSQL reserves',
      nodes: '    - id: role\n      type: postgres.role\n      spec: { name: "${nodes.cfg.outputs.prefix}app" }\n',
      outputs: { prefix: 'pg_' } as Outputs,
      id: 'role',
      field: 'spec.name',
      ref: '${nodes.cfg.outputs.prefix}',
    },
    {
      name: 'a schema name PostgreSQL reserves',
      nodes: '    - id: schema\n      type: postgres.schema\n      spec: { name: "${nodes.cfg.outputs.name}", database: d }\n',
      outputs: { name: 'pg_app' } as Outputs,
      id: 'schema',
      field: 'spec.name',
      ref: '${nodes.cfg.outputs.name}',
    },
    {
      name: 'an identifier too long for PostgreSQL',
      nodes: '    - id: role\n      type: postgres.role\n      spec: { name: "${nodes.cfg.outputs.name}" }\n',
      outputs: { name: 'r'.repeat(70) } as Outputs,
      id: 'role',
      field: 'spec.name',
      ref: '${nodes.cfg.outputs.name}',
    },
    {
      name: 'an empty path',
      nodes: '    - id: f\n      type: local.file\n      spec: { path: "${nodes.cfg.outputs.dir}", content: x }\n',
      outputs: { dir: '' } as Outputs,
      id: 'f',
      field: 'spec.path',
      ref: '${nodes.cfg.outputs.dir}',
    },
  ])('$name fails the node, permanently, naming node, field and reference, and reaches no backend', async ({ nodes, outputs, id, field, ref }) => {
    const { memory, provisioner, ctx, node } = setup(nodes, outputs);
    const created = await provisioner.create(node(id), ctx);
    const observed = (await provisioner.observe([node(id)], ctx)).get(id)!;
    for (const r of [created, observed]) {
      expect(r.status).toBe('failed');
      if (r.status !== 'failed') continue;
      expect(r.fault.class).toBe('permanent');
      expect(r.fault.code).toBe('invalid-resolved-spec');
      expect(r.fault.message).toContain(`node "${id}"`);
      expect(r.fault.message).toContain(field);
      expect(r.fault.message).toContain(ref);
    }
    expect(memory.calls).toEqual({ observe: 0, create: 0, update: 0, delete: 0 });
    expect(memory.snapshot().size).toBe(0);
  });

  it('names every reference that made the field', async () => {
    const { provisioner, ctx, node } = setup('    - id: role\n      type: postgres.role\n      spec: { name: "${nodes.cfg.outputs.a}${nodes.cfg.outputs.b}" }\n', { a: 'r'.repeat(40), b: 's'.repeat(40) });
    const r = await provisioner.create(node('role'), ctx);
    expect(r).toMatchObject({
      status: 'failed',
      fault: {
        class: 'permanent',
        message: 'node "role": spec.name: a PostgreSQL identifier is at most 63 bytes (from ${nodes.cfg.outputs.a}, ${nodes.cfg.outputs.b})',
      },
    });
  });

  it('is no failure once the output fits: the backend gets the resolved spec', async () => {
    const { memory, provisioner, ctx, node } = setup('    - id: role\n      type: postgres.role\n      spec: { name: "${nodes.cfg.outputs.name}" }\n', { name: 'app' });
    expect(await provisioner.create(node('role'), ctx)).toMatchObject({ status: 'done' });
    expect(memory.snapshot().get('role')!.spec).toMatchObject({ type: 'postgres.role', name: 'app', login: false });
  });
});

describe('a field that is one reference and nothing else', () => {
  const outputs: Outputs = { port: 5432, tls: true, off: false, host: 'db.local' };

  it.each([
    {
      name: 'generic.resource input: the output\'s own type; embedded, text',
      nodes: '    - id: n\n      type: generic.resource\n      spec: { input: { port: "${nodes.cfg.outputs.port}", tls: "${nodes.cfg.outputs.tls}", off: "${nodes.cfg.outputs.off}", url: "db:${nodes.cfg.outputs.port}" } }\n',
      expected: { input: { port: 5432, tls: true, off: false, url: 'db:5432' } },
    },
    {
      name: 'ansible.playbook extraVars: the same',
      nodes: '    - id: n\n      type: ansible.playbook\n      spec: { playbook: site.yml, extraVars: { port: "${nodes.cfg.outputs.port}", host: "${nodes.cfg.outputs.host}" } }\n',
      expected: { extraVars: { port: 5432, host: 'db.local' } },
    },
    {
      name: 'a string field takes a number or a boolean as its text',
      nodes: '    - id: n\n      type: local.file\n      spec: { path: "${nodes.cfg.outputs.port}", content: "${nodes.cfg.outputs.tls}" }\n',
      expected: { path: '5432', content: 'true' },
    },
    {
      name: 'a field that takes a string or a list',
      nodes: '    - id: n\n      type: ansible.playbook\n      spec: { playbook: site.yml, inventory: "${nodes.cfg.outputs.port}" }\n',
      expected: { inventory: '5432' },
    },
    {
      name: 'a list of strings too',
      nodes: '    - id: n\n      type: postgres.role\n      spec: { name: app, memberOf: ["${nodes.cfg.outputs.port}", "${nodes.cfg.outputs.host}"] }\n',
      expected: { memberOf: ['5432', 'db.local'] },
    },
  ])('$name', async ({ nodes, expected }) => {
    const { memory, provisioner, ctx, node } = setup(nodes, outputs);
    expect(await provisioner.create(node('n'), ctx)).toMatchObject({ status: 'done' });
    expect(memory.snapshot().get('n')!.spec).toMatchObject(expected);
    // And the backend, observing, compares the same resolved spec: no drift.
    expect((await provisioner.observe([node('n')], ctx)).get('n')).toMatchObject({ status: 'upToDate' });
  });
});

// An exec command's output may be any JSON: a whole reference puts a list or a map in place where the
// type takes it; inside text, or where the type wants text, the dependent fails before its backend is called.
describe('an output that is a list or a map', () => {
  const outputs: Outputs = {
    hosts: ['a.local', 'b.local'],
    ep: { host: 'db.local', ports: [5432] },
    port: 5432,
    ports: [5432, 5433],
    groups: ['readers', 'writers'],
    privileges: ['CONNECT', 'TEMP'],
    labels: { team: 'data' },
    commands: { read: ['./r'], create: ['./c'] },
    yes: 'yes',
  };

  it.each([
    {
      name: 'a generic.resource input key takes it as it is',
      nodes: '    - id: n\n      type: generic.resource\n      spec: { input: { hosts: "${nodes.cfg.outputs.hosts}", ep: "${nodes.cfg.outputs.ep}", port: "${nodes.cfg.outputs.port}" } }\n',
      expected: { input: { hosts: ['a.local', 'b.local'], ep: { host: 'db.local', ports: [5432] }, port: 5432 } },
    },
    {
      name: 'an ansible extra var too',
      nodes: '    - id: n\n      type: ansible.playbook\n      spec: { playbook: site.yml, extraVars: { ep: "${nodes.cfg.outputs.ep}" } }\n',
      expected: { extraVars: { ep: { host: 'db.local', ports: [5432] } } },
    },
    {
      name: 'a field that takes a string or a list takes the list',
      nodes: '    - id: n\n      type: ansible.playbook\n      spec: { playbook: site.yml, inventory: "${nodes.cfg.outputs.hosts}" }\n',
      expected: { inventory: ['a.local', 'b.local'] },
    },
    {
      name: 'a typed list field (a role\'s memberOf) takes the list',
      nodes: '    - id: n\n      type: postgres.role\n      spec: { name: app, memberOf: "${nodes.cfg.outputs.groups}" }\n',
      expected: { name: 'app', memberOf: ['readers', 'writers'] },
    },
    {
      name: 'a typed list field with rules of its own (a grant\'s privileges)',
      nodes: '    - id: n\n      type: postgres.grant\n      spec: { role: app, database: app, on: database, privileges: "${nodes.cfg.outputs.privileges}" }\n',
      expected: { privileges: ['CONNECT', 'TEMP'] },
    },
    {
      name: 'a typed map field (a namespace\'s labels) takes the map',
      nodes: '    - id: n\n      type: k8s.namespace\n      spec: { name: app, labels: "${nodes.cfg.outputs.labels}" }\n',
      expected: { labels: { team: 'data' }, annotations: {} },
    },
    {
      name: 'a generic.resource input as a whole',
      nodes: '    - id: n\n      type: generic.resource\n      spec: { input: "${nodes.cfg.outputs.ep}" }\n',
      expected: { input: { host: 'db.local', ports: [5432] } },
    },
    {
      name: 'a map of lists (a generic.resource\'s commands)',
      nodes: '    - id: n\n      type: generic.resource\n      spec: { commands: "${nodes.cfg.outputs.commands}" }\n',
      expected: { commands: { read: ['./r'], create: ['./c'] } },
    },
    {
      name: 'a list field of another backend (an ansible.playbook\'s tags)',
      nodes: '    - id: n\n      type: ansible.playbook\n      spec: { playbook: site.yml, tags: "${nodes.cfg.outputs.hosts}" }\n',
      expected: { tags: ['a.local', 'b.local'] },
    },
  ])('whole: $name', async ({ nodes, expected }) => {
    const { memory, provisioner, ctx, node } = setup(nodes, outputs);
    expect(await provisioner.create(node('n'), ctx)).toMatchObject({ status: 'done' });
    expect(memory.snapshot().get('n')!.spec).toMatchObject(expected);
    // Outputs read again are new objects: the same resolved spec, no drift.
    const again = opContext(new Map([['cfg', structuredClone(outputs)]]));
    expect((await provisioner.observe([node('n')], again)).get('n')).toMatchObject({ status: 'upToDate' });
  });

  it.each([
    {
      name: 'inside text: named with its type, every one',
      nodes: '    - id: n\n      type: generic.resource\n      spec: { input: { url: "http://${nodes.cfg.outputs.ep}/", list: ["hosts=${nodes.cfg.outputs.hosts}"] } }\n',
      message: 'node "n": spec.input.url: ${nodes.cfg.outputs.ep} is a map (a JSON object), which cannot be inserted into text; spec.input.list[0]: ${nodes.cfg.outputs.hosts} is a list (a JSON array), which cannot be inserted into text',
    },
    {
      name: 'whole, where the type wants text',
      nodes: '    - id: n\n      type: local.file\n      spec: { path: f, content: "${nodes.cfg.outputs.hosts}" }\n',
      message: 'node "n": spec.content: expected a string, got a list (from ${nodes.cfg.outputs.hosts})',
    },
    {
      name: 'whole, a list of items the field\'s type refuses: each named, with the reference that put it there (no advice on quoting: no one wrote it)',
      nodes: '    - id: n\n      type: postgres.role\n      spec: { name: app, memberOf: "${nodes.cfg.outputs.ports}" }\n',
      message: 'node "n": spec.memberOf[0]: expected a string, got the number 5432 (from ${nodes.cfg.outputs.ports}); spec.memberOf[1]: expected a string, got the number 5433 (from ${nodes.cfg.outputs.ports})',
    },
    {
      name: 'whole, a string in a boolean field: no advice on YAML 1.2 either',
      nodes: '    - id: n\n      type: postgres.role\n      spec: { name: app, login: "${nodes.cfg.outputs.yes}" }\n',
      message: 'node "n": spec.login: expected true or false, got the string "yes" (from ${nodes.cfg.outputs.yes})',
    },
    {
      name: 'whole, a map where the field takes a list',
      nodes: '    - id: n\n      type: postgres.role\n      spec: { name: app, memberOf: "${nodes.cfg.outputs.ep}" }\n',
      message: 'node "n": spec.memberOf: expected a list, got a map (from ${nodes.cfg.outputs.ep})',
    },
    {
      name: 'whole, a list the type\'s rules refuse (a role a member of itself)',
      nodes: '    - id: n\n      type: postgres.role\n      spec: { name: readers, memberOf: "${nodes.cfg.outputs.groups}" }\n',
      message: 'node "n": spec.memberOf[0]: a role cannot be a member of itself ("readers") (from ${nodes.cfg.outputs.groups})',
    },
    {
      name: 'whole, a privilege the grant\'s target does not have',
      nodes: '    - id: n\n      type: postgres.grant\n      spec: { role: app, database: app, on: database, privileges: "${nodes.cfg.outputs.hosts}" }\n',
      message: 'node "n": spec.privileges[0]: "a.local" is not a privilege on database; use one of CREATE, CONNECT, TEMPORARY, TEMP, ALL (from ${nodes.cfg.outputs.hosts}); spec.privileges[1]: "b.local" is not a privilege on database; use one of CREATE, CONNECT, TEMPORARY, TEMP, ALL (from ${nodes.cfg.outputs.hosts})',
    },
  ])('fails the dependent, permanently, before its backend: $name', async ({ nodes, message }) => {
    const { memory, provisioner, ctx, node } = setup(nodes, outputs);
    const created = await provisioner.create(node('n'), ctx);
    expect(created).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: 'invalid-resolved-spec', message } });
    expect(memory.calls).toEqual({ observe: 0, create: 0, update: 0, delete: 0 });
  });
});

// A command printed an id of 20 digits as a number: JSON.parse has already rounded it (as here). Put whole into an
// input, it is refused as a number written so is at validate, naming the reference, not sent rounded.
describe('an output number JSON cannot carry exactly, in a free-form map', () => {
  it('fails the dependent before its backend, naming the reference', async () => {
    const { memory, provisioner, ctx, node } = setup('    - id: n\n      type: generic.resource\n      spec: { input: { id: "${nodes.cfg.outputs.id}" } }\n', { id: JSON.parse('12345678901234567890') as number });
    expect(await provisioner.create(node('n'), ctx)).toMatchObject({
      status: 'failed',
      fault: {
        class: 'permanent',
        code: 'invalid-resolved-spec',
        message: 'node "n": spec.input.id: a whole number beyond ±9007199254740991 (2^53−1) may not be the one written: past there a number is read as the nearest double (9007199254740993 as 9007199254740992), so its digits are not sure to reach the command; this one is read as 12345678901234567000; quote it ("…") to send it as a string, as written (from ${nodes.cfg.outputs.id})',
      },
    });
    expect(memory.calls.create).toBe(0);
  });
});

describe('a reference in a field that is not free text', () => {
  // Compile sees "${nodes…}" where a number, a boolean, an enum or a pattern belongs: the value is known only once resolved.
  it.each([
    {
      name: 'a number field takes a number output',
      nodes: '    - id: n\n      type: postgres.database\n      spec: { name: app, connectionLimit: "${nodes.cfg.outputs.limit}" }\n',
      outputs: { limit: 10 } as Outputs,
      expected: { name: 'app', connectionLimit: 10, encoding: 'UTF8', force: false },
    },
    {
      name: 'a boolean field takes a boolean output',
      nodes: '    - id: n\n      type: postgres.role\n      spec: { name: app, login: "${nodes.cfg.outputs.login}", connectionLimit: "${nodes.cfg.outputs.limit}" }\n',
      outputs: { login: true, limit: -1 } as Outputs,
      expected: { name: 'app', login: true, superuser: false, inherit: true, connectionLimit: -1, memberOf: [] },
    },
    {
      name: 'an enum field takes one of its values',
      nodes: '    - id: n\n      type: postgres.grant\n      spec: { role: app, database: app, on: "${nodes.cfg.outputs.on}", privileges: ["${nodes.cfg.outputs.priv}"] }\n',
      outputs: { on: 'database', priv: 'CONNECT' } as Outputs,
      expected: { on: 'database', privileges: ['CONNECT'] },
    },
    {
      name: 'a pattern field takes text that matches once resolved',
      nodes: '    - id: n\n      type: local.file\n      spec: { path: f, content: x, mode: "0${nodes.cfg.outputs.bits}" }\n',
      outputs: { bits: '640' } as Outputs,
      expected: { mode: '0640' },
    },
  ])('$name', async ({ nodes, outputs, expected }) => {
    const { memory, provisioner, ctx, node } = setup(nodes, outputs);
    expect(await provisioner.create(node('n'), ctx)).toMatchObject({ status: 'done' });
    expect(memory.snapshot().get('n')!.spec).toMatchObject(expected);
    expect((await provisioner.observe([node('n')], ctx)).get('n')).toMatchObject({ status: 'upToDate' });
  });

  it('compiles to a template: the reference as written, every other field parsed with its default', () => {
    const compiled = compileText(goal('    - id: n\n      type: postgres.role\n      spec: { name: app, login: "${nodes.cfg.outputs.login}" }\n'));
    expect(compiled.lines).toEqual([]);
    expect(compiled.graph!.get('n')!.spec.spec).toEqual({ type: 'postgres.role', name: 'app', login: '${nodes.cfg.outputs.login}', superuser: false, createdb: false, createrole: false, inherit: true, replication: false, bypassRls: false, memberOf: [] });
  });

  it.each([
    { name: 'a string', value: 'abc', got: 'the string "abc"' },
    { name: 'a number written as a string (never parsed)', value: '10', got: 'the string "10"' },
    { name: 'a boolean', value: true, got: 'boolean true' },
    { name: 'a fraction', value: 1.5, got: 'expected an integer' },
  ])('an output of the wrong type ($name) fails the node, naming node, field and reference, and reaches no backend', async ({ value, got }) => {
    const { memory, provisioner, ctx, node } = setup('    - id: db\n      type: postgres.database\n      spec: { name: app, connectionLimit: "${nodes.cfg.outputs.limit}" }\n', { limit: value });
    for (const r of [await provisioner.create(node('db'), ctx), (await provisioner.observe([node('db')], ctx)).get('db')!]) {
      expect(r.status).toBe('failed');
      if (r.status !== 'failed') continue;
      expect(r.fault).toMatchObject({ class: 'permanent', code: 'invalid-resolved-spec' });
      expect(r.fault.message).toMatch(/^node "db": spec\.connectionLimit: .* \(from \$\{nodes\.cfg\.outputs\.limit\}\)$/);
      expect(r.fault.message).toContain(got);
    }
    expect(memory.calls).toEqual({ observe: 0, create: 0, update: 0, delete: 0 });
  });

  it('an output that breaks a pattern fails the node the same way', async () => {
    const { memory, provisioner, ctx, node } = setup('    - id: f\n      type: local.file\n      spec: { path: f, content: x, mode: "0${nodes.cfg.outputs.bits}" }\n', { bits: 'rw' });
    const r = await provisioner.create(node('f'), ctx);
    expect(r).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: 'invalid-resolved-spec' } });
    expect(r.status === 'failed' && r.fault.message).toMatch(/^node "f": spec\.mode: .*"0rw".* \(from \$\{nodes\.cfg\.outputs\.bits\}\)$/);
    expect(memory.calls.create).toBe(0);
  });

  // What no output can make right is still a compile error, at the reference.
  it.each([
    { name: 'text around a reference in a number field', spec: '{ name: app, connectionLimit: "1${nodes.cfg.outputs.limit}" }', type: 'postgres.database', message: 'spec.connectionLimit: expected a number, got the string "1${nodes.cfg.outputs.limit}"' },
    { name: 'text around a reference in a list field', spec: '{ name: app, memberOf: "x${nodes.cfg.outputs.roles}" }', type: 'postgres.role', message: 'spec.memberOf: expected a list, got the string "x${nodes.cfg.outputs.roles}"' },
    { name: 'two references in a map field', spec: '{ name: app, labels: "${nodes.cfg.outputs.a}${nodes.cfg.outputs.b}" }', type: 'k8s.namespace', message: 'spec.labels: expected a map, got the string "${nodes.cfg.outputs.a}${nodes.cfg.output…"' },
    { name: 'a literal of another type in a list field', spec: '{ name: app, memberOf: 5 }', type: 'postgres.role', message: 'spec.memberOf: expected a list, got the number 5' },
    { name: 'a reference where a secret reference belongs', spec: '{ name: app, password: "${nodes.cfg.outputs.pw}" }', type: 'postgres.role', message: 'spec.password: a secret must not be written inline: use { fromEnv: NAME } or { fromFile: path }' },
  ])('$name is a compile error', ({ spec, type, message }) => {
    const compiled = compileText(goal(`    - id: n\n      type: ${type}\n      spec: ${spec}\n`));
    expect(compiled.graph).toBeUndefined();
    expect(compiled.diagnostics.map((d) => d.message)).toEqual([message]);
  });

  it('a real error beside a reference is still reported, and the reference is not', () => {
    const compiled = compileText(goal('    - id: n\n      type: postgres.database\n      spec: { name: app, connectionLimit: "${nodes.cfg.outputs.limit}", encoding: "UTF 9" }\n'));
    expect(compiled.diagnostics.map((d) => d.message)).toEqual(['spec.encoding: "UTF 9" is not an encoding PostgreSQL knows: UTF8, LATIN1 … SQL_ASCII, or an alias of one (unicode, ISO-8859-1 …)']);
  });
});

// The backends' own compile-time checks read a spec as written: where a list or map field is one reference, they
// see its text, and its value comes at run time. They crashed on it (`memberOf.forEach`) or misread it.
describe('a list or map field one reference fills, read by a backend\'s compile-time checks', () => {
  const backends = `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: pg }
spec: { type: postgres, config: { host: 127.0.0.1 } }
---
apiVersion: desiredstate/v1
kind: Backend
metadata: { name: gen }
spec: { type: script, config: { root: scripts } }
---
`;

  it('postgres: a role whose memberOf is one reference is ordered after that reference\'s node only; a listed group still orders', () => {
    const compiled = compileText(
      goal(
        `    - { id: readers, type: postgres.role, backend: pg, spec: { name: readers } }
    - { id: member, type: postgres.role, backend: pg, spec: { name: app, memberOf: "\${nodes.cfg.outputs.groups}" } }
    - { id: listed, type: postgres.role, backend: pg, spec: { name: listed, memberOf: [readers] } }
`,
        backends,
      ),
    );
    expect(compiled.lines).toEqual([]);
    expect(compiled.graph!.get('member')!.dependsOn.map((d) => d.on)).toEqual(['cfg']);
    expect(compiled.graph!.get('listed')!.dependsOn.map((d) => d.on)).toEqual(['readers']);
  });

  it('exec: commands that are one reference are not taken for commands without update or delete', () => {
    const compiled = compileText(
      goal(`    - { id: n, type: generic.resource, backend: run, deletionPolicy: Delete, spec: { commands: "\${nodes.cfg.outputs.commands}" } }
    - { id: written, type: generic.resource, backend: run, spec: { commands: { read: [r], create: [c] } } }
`),
    );
    expect(compiled.lines).toEqual([]);
    expect(compiled.graph!.get('n')!.settings.cannotUpdate).toBeUndefined();
    // Commands written out still say what they lack.
    expect(compiled.graph!.get('written')!.settings.cannotUpdate).toBe('no update command');
  });

  it('script: an input that is one reference is not refused for its shape, which only the output gives', () => {
    const compiled = compileText(
      goal(
        `    - { id: n, type: generic.resource, backend: gen, spec: { input: "\${nodes.cfg.outputs.file}" } }
    - { id: written, type: generic.resource, backend: gen, spec: { input: { file: f } } }
`,
        backends,
      ),
    );
    expect(compiled.lines).toEqual(['goals/test.yaml:32:75: error unsupported-spec: no built-in template fits input {"file":"string"}; templates: file {path, content}, json-key {file, key, value} (backend "gen", type script)']);
  });
});

// A reference to a key its producer's outputs lack (an exec command that never prints it) waited as for an
// output not given yet: the node was retried for ever, every five minutes, while nothing could change until
// the goal or the producer did. It is an error now, as Terraform's "unsupported attribute"; what is not
// there yet (no outputs recorded, or the key printed as null) is still a wait.
describe('a reference to an output its producer has not given', () => {
  const nodes = '    - id: n\n      type: generic.resource\n      spec: { input: { id: "${nodes.cfg.outputs.rid}", at: "${nodes.cfg.outputs.host}:1" } }\n';
  const permanent = (message: string) => ({ class: 'permanent', code: 'output-unknown', notTheBackend: 'before-call', message });

  it.each([
    { name: 'no outputs recorded yet (not created, or not known since a restart)', recorded: undefined, fault: { class: 'transient', code: 'outputs-missing', notTheBackend: 'before-call', message: 'waiting for outputs cfg.rid, cfg.host' } },
    { name: 'the keys printed as null (no value yet)', recorded: { rid: null, host: null }, fault: { class: 'transient', code: 'outputs-missing', notTheBackend: 'before-call' } },
    {
      name: 'outputs without the keys',
      recorded: { id: 'r-1', hosts: ['h'], port: 1 },
      fault: permanent(
        'node "n": spec.input.id: ${nodes.cfg.outputs.rid}: node "cfg" gives no output "rid" (it gives: id, hosts, port) (did you mean "id"?); spec.input.at: ${nodes.cfg.outputs.host}: node "cfg" gives no output "host" (it gives: id, hosts, port) (did you mean "hosts"?)',
      ),
    },
    {
      name: 'no outputs at all',
      recorded: {},
      fault: permanent('node "n": spec.input.id: ${nodes.cfg.outputs.rid}: node "cfg" gives no output "rid" (it gives no outputs); spec.input.at: ${nodes.cfg.outputs.host}: node "cfg" gives no output "host" (it gives no outputs)'),
    },
  ])('$name: $fault.class, before any backend call', async ({ recorded, fault }) => {
    const { memory, provisioner, node } = setup(nodes, {});
    const ctx = opContext(recorded === undefined ? new Map() : new Map([['cfg', recorded as Outputs]]));
    for (const r of [await provisioner.create(node('n'), ctx), (await provisioner.observe([node('n')], ctx)).get('n')!]) expect(r).toEqual({ status: 'failed', fault: expect.objectContaining(fault) });
    expect(memory.calls).toEqual({ observe: 0, create: 0, update: 0, delete: 0 });
  });

  it('names a reference waited for once, however often the spec holds it', async () => {
    const { provisioner, node } = setup('    - id: n\n      type: generic.resource\n      spec: { input: { a: "${nodes.cfg.outputs.rid}", b: "${nodes.cfg.outputs.host}/${nodes.cfg.outputs.rid}" } }\n', {});
    const r = await provisioner.create(node('n'), opContext(new Map()));
    expect(r).toMatchObject({ status: 'failed', fault: { code: 'outputs-missing', message: 'waiting for outputs cfg.rid, cfg.host' } });
  });

  // A node removed from the goals is deleted with the outputs its references read when it was applied (kept
  // with its record); where the state has none (a record from before they were kept, its producer forgotten),
  // nothing comes by waiting: a permanent fault, naming the node, the backend and each reference, with the ways out.
  it.each([
    { name: 'no outputs in the state', recorded: undefined },
    { name: 'the key as null', recorded: { rid: null, host: null } as Outputs },
    { name: 'outputs without the keys', recorded: { id: 'r-1' } as Outputs },
  ])('a delete whose references have no value ($name): permanent, before any backend call', async ({ recorded }) => {
    const { memory, provisioner, node } = setup(nodes, {});
    const r = await provisioner.delete(node('n'), opContext(recorded === undefined ? new Map() : new Map([['cfg', recorded]])));
    expect(r).toEqual({
      status: 'failed',
      fault: {
        class: 'permanent',
        code: 'delete-outputs-unknown',
        notTheBackend: 'before-call',
        message:
          'node "n" on backend "mem" cannot be deleted: the state keeps no value for ${nodes.cfg.outputs.rid}, ${nodes.cfg.outputs.host}, which its spec references (none kept with its record, written before they were, and node "cfg" forgotten since or without that output): declare node "cfg" again (apply records the outputs), or delete the resource by hand and apply once with prune: false on goal "app" to forget node "n"',
      },
    });
    expect(memory.calls.delete).toBe(0);
  });

  it('says how to get out of it: fix the reference or the producer, then retry', async () => {
    const { provisioner, node } = setup(nodes, {});
    const r = await provisioner.create(node('n'), opContext(new Map([['cfg', { rid: 'r-1' }]])));
    expect(r).toMatchObject({ status: 'failed', fault: { code: 'output-unknown' } });
    expect(r.status === 'failed' && r.fault.hint).toBe(
      'fix the reference, or have node "cfg" output the key (an exec command prints it, as null until it has a value); then run `desiredstate retry n` (a change of the goal releases it too)',
    );
  });

  it('an output named like a property every object has (constructor, toString) is no output', async () => {
    const { provisioner, node } = setup('    - id: n\n      type: generic.resource\n      spec: { input: { c: "${nodes.cfg.outputs.constructor}" } }\n', {});
    const r = await provisioner.create(node('n'), opContext(new Map([['cfg', { id: 'r-1' }]])));
    expect(r).toMatchObject({ status: 'failed', fault: { code: 'output-unknown', message: 'node "n": spec.input.c: ${nodes.cfg.outputs.constructor}: node "cfg" gives no output "constructor" (it gives: id)' } });
  });

  it('lists at most 20 of the keys it gives', async () => {
    const { provisioner, node } = setup('    - id: n\n      type: generic.resource\n      spec: { input: { c: "${nodes.cfg.outputs.zzz}" } }\n', {});
    const many = Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`k${i}`, i]));
    const r = await provisioner.create(node('n'), opContext(new Map([['cfg', many]])));
    expect(r.status === 'failed' && r.fault.message).toContain(`(it gives: ${Object.keys(many).slice(0, 20).join(', ')} … (5 more))`);
  });
});

/** Both a create and an observe of `node` fail with the permanent `output-secret-reference`, its message holding `says`. */
async function expectRefused(provisioner: InfraNodeProvisioner, ctx: OperationContext, node: InfraNode, says: string): Promise<void> {
  const created = await provisioner.create(node, ctx);
  const observed = (await provisioner.observe([node], ctx)).get(node.id)!;
  for (const r of [created, observed]) {
    expect(r.status).toBe('failed');
    if (r.status !== 'failed') continue;
    expect(r.fault).toMatchObject({ class: 'permanent', code: 'output-secret-reference', notTheBackend: 'before-call' });
    expect(r.fault.message).toContain(says);
    expect(r.fault.hint).toContain(`write the { fromEnv: NAME } or { fromFile: path } in the goal of node "${node.id}"`);
  }
}

// An exec input and ansible extra vars read every `{ fromEnv }` / `{ fromFile }` in them as a secret, from the
// daemon's own environment and files. An output is data a command prints: were it read so, a producer printing
// `{"fromEnv":"AWS_SECRET_ACCESS_KEY"}` would have the daemon hand that secret to the consumer's command.
describe('an output that would become or choose a secret reference', () => {
  const outputs: Outputs = {
    env: { fromEnv: 'AWS_SECRET_ACCESS_KEY' },
    nested: { a: [{ b: { fromFile: '/etc/shadow' } }] },
    all: { user: 'app', pw: { fromEnv: 'DB_PW' } },
    odd: { fromFile: '', note: 1 },
    path: '/etc/shadow',
    host: 'db.local',
  };
  const puts = 'puts a secret reference';
  const chooses = 'would choose which secret the reference at';

  it.each([
    { name: 'a whole reference in an input key', spec: '{ input: { key: "${nodes.cfg.outputs.env}" } }', field: 'spec.input.key', ref: 'env', says: puts },
    { name: 'one deep in the output', spec: '{ input: { deep: "${nodes.cfg.outputs.nested}" } }', field: 'spec.input.deep.a[0].b', ref: 'nested', says: puts },
    { name: 'one in an output that is the whole input', spec: '{ input: "${nodes.cfg.outputs.all}" }', field: 'spec.input.pw', ref: 'all', says: puts },
    { name: 'an item of a list', spec: '{ input: { list: [x, "${nodes.cfg.outputs.env}"] } }', field: 'spec.input.list[1]', ref: 'env', says: puts },
    { name: 'a malformed one (data, yet no output may pass for a secret reference)', spec: '{ input: { key: "${nodes.cfg.outputs.odd}" } }', field: 'spec.input.key', ref: 'odd', says: puts },
    { name: 'an ansible extra var', spec: '{ playbook: site.yml, extraVars: { v: "${nodes.cfg.outputs.env}" } }', type: 'ansible.playbook', field: 'spec.extraVars.v', ref: 'env', says: puts },
  ])('$name fails the node, permanently, naming node, field and reference, and reaches no backend', async ({ spec, type, field, ref, says }) => {
    const { memory, provisioner, ctx, node } = setup(`    - id: n\n      type: ${type ?? 'generic.resource'}\n      spec: ${spec}\n`, outputs);
    await expectRefused(provisioner, ctx, node('n'), `node "n": ${field}: \${nodes.cfg.outputs.${ref}} ${says}`);
    expect(memory.calls).toEqual({ observe: 0, create: 0, update: 0, delete: 0 });
  });

  // `validate` refuses a reference in a `fromFile` path (test/fixtures/bad/secret-file-reference): a spec
  // compiled before it did, restored from the state, still meets this check before any backend call.
  const exec = 'type: generic.resource\n      spec: { input: { pw: { fromFile: /run/pw } } }';
  it.each([
    { name: 'the path of one the goal writes', node: exec, fields: { input: { pw: { fromFile: '${nodes.cfg.outputs.path}' } } }, at: 'spec.input.pw.fromFile', ref: 'path' },
    { name: 'part of that path', node: exec, fields: { input: { pw: { fromFile: '/run/${nodes.cfg.outputs.host}' } } }, at: 'spec.input.pw.fromFile', ref: 'host' },
    {
      name: 'the path of a role\'s password',
      node: 'type: postgres.role\n      spec: { name: app, password: { fromFile: /run/pw } }',
      fields: { password: { fromFile: '${nodes.cfg.outputs.path}' } },
      at: 'spec.password.fromFile',
      ref: 'path',
    },
  ])('$name, in a spec restored from the state, fails the node the same way and reaches no backend', async ({ node: written, fields, at, ref }) => {
    const { memory, provisioner, ctx, node } = setup(`    - id: n\n      ${written}\n`, outputs);
    const compiled = node('n');
    const restored = { ...compiled, spec: { ...compiled.spec, spec: { ...compiled.spec.spec, ...fields } } } as InfraNode;
    await expectRefused(provisioner, ctx, restored, `node "n": ${at}: \${nodes.cfg.outputs.${ref}} ${chooses}`);
    expect(memory.calls).toEqual({ observe: 0, create: 0, update: 0, delete: 0 });
  });

  it('leaves a secret reference the goal writes beside a reference, and an output that is data, as they are', async () => {
    const { memory, provisioner, ctx, node } = setup('    - id: n\n      type: generic.resource\n      spec: { input: { pw: { fromEnv: DB_PW }, host: "${nodes.cfg.outputs.host}", p: "${nodes.cfg.outputs.path}" } }\n', outputs);
    expect(await provisioner.create(node('n'), ctx)).toMatchObject({ status: 'done' });
    expect(memory.snapshot().get('n')!.spec).toMatchObject({ input: { pw: { fromEnv: 'DB_PW' }, host: 'db.local', p: '/etc/shadow' } });
  });
});

// `$${` writes a literal `${` (README): `/run/$${nodes.cfg.outputs.path}` names the file `/run/${nodes.cfg.outputs.path}`,
// spelled out. The rule refusing a reference in a fromFile path was in the secret reference's schema, which judges
// the resolved spec too: there the literal `${` read as one, and the node failed as `invalid-resolved-spec`.
describe('a literal ${ in the path of a secret reference the goal writes', () => {
  it.each([
    { name: 'a role\'s password', type: 'postgres.role', spec: '{ name: app, password: { fromFile: "/run/$${nodes.cfg.outputs.path}" } }', field: 'password' },
    { name: 'an exec input', type: 'generic.resource', spec: '{ input: { pw: { fromFile: "/run/$${nodes.cfg.outputs.path}" } } }', field: 'input.pw' },
    { name: 'an ansible extra var', type: 'ansible.playbook', spec: '{ playbook: site.yml, extraVars: { pw: { fromFile: "/run/$${nodes.cfg.outputs.path}" } } }', field: 'extraVars.pw' },
  ])('in $name, is compiled, and reaches the backend as that path', async ({ type, spec, field }) => {
    const { memory, provisioner, ctx, node } = setup(`    - id: n\n      type: ${type}\n      spec: ${spec}\n`, { path: '/etc/shadow' });
    expect(await provisioner.create(node('n'), ctx)).toMatchObject({ status: 'done' });
    expect(valueAtPath(memory.snapshot().get('n')!.spec, field.split('.'))).toEqual({ fromFile: '/run/${nodes.cfg.outputs.path}' });
  });
});
