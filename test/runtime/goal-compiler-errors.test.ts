import { describe, expect, it } from 'vitest';
import { compileFiles } from '../support/compile.ts';
import type { Compiled } from '../support/compile.ts';

/**
 * The compiler reports every problem at once (GOAL-FORMAT.md, Errors), but
 * not the echoes of one: an error that only follows from another is left out.
 */

/** Each text a goal file of its own: g0.yaml, g1.yaml, … */
function compile(...texts: string[]): Compiled {
  return compileFiles(Object.fromEntries(texts.map((text, i) => [`g${i}.yaml`, text])));
}

const mem = `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: mem }
spec: { type: memory }
`;

const goal = (nodes: string, header = 'metadata: { name: app, labels: { team: data } }', spec = ''): string => `apiVersion: desiredstate/v1
kind: Goal
${header}
spec:
${spec}  nodes:
${nodes}`;

/** `file:line:col code` of each diagnostic, for tables. */
const at = (r: { diagnostics: readonly { file: string; line: number; col: number; code: string }[] }): string[] => r.diagnostics.map((d) => `${d.file}:${d.line}:${d.col} ${d.code}`);

describe('ignoreFields: each entry is a path of the type\'s spec', () => {
  it.each([
    { name: 'top-level fields of local.file', type: 'local.file', spec: '{ path: f, content: x }', fields: '[content, mode, owner]' },
    { name: 'a key the spec gives an open map (generic.resource input), and anything under it', type: 'generic.resource', spec: '{ input: { retentionDays: 30, any: { depth: 1 }, s: x } }', fields: '[input, input.retentionDays, "input.any.depth", input.s.t]' },
    { name: 'a field of a nested object', type: 'generic.resource', spec: '{ input: {} }', fields: '[commands, commands.read]' },
    { name: 'list fields and their items', type: 'postgres.role', spec: '{ name: r }', fields: '[memberOf, "memberOf[0]", password]' },
    { name: 'a field that takes a string or a list', type: 'ansible.playbook', spec: '{ playbook: p.yml }', fields: '[inventory, "inventory[1]", extraVars.region]' },
  ])('accepts $name', ({ type, spec, fields }) => {
    const r = compile(mem, goal(`    - id: n\n      type: ${type}\n      backend: mem\n      ignoreFields: ${fields}\n      spec: ${spec}\n`));
    expect(r.lines).toEqual([]);
    expect(r.graph!.get('n')!.settings.ignoreFields.length).toBeGreaterThan(0);
  });

  it.each([
    { name: 'a misspelt field, with a suggestion', entry: 'moed', message: 'ignoreFields: "moed" is not a field of local.file (did you mean "mode"?)' },
    { name: 'a spec. prefix (paths are relative to spec)', entry: 'spec.mode', message: 'ignoreFields: "spec.mode" is not a field of local.file: paths are relative to the node\'s spec (did you mean "mode"?)' },
    { name: 'exists: a deletion is always reported', entry: 'exists', message: 'ignoreFields: "exists" (a resource deleted out of band) cannot be ignored: it is always reported; selfHeal: false reports it without re-creating the resource' },
    { name: 'a field under a single value', entry: 'mode.bits', message: 'ignoreFields: "mode.bits": mode is a single value, with no fields under it' },
    { name: 'a field of another type', entry: 'target', message: 'ignoreFields: "target" is not a field of local.file' },
  ])('rejects $name at the entry', ({ entry, message }) => {
    const r = compile(goal(`    - id: n\n      type: local.file\n      ignoreFields: [content, ${entry}]\n      spec: { path: f, content: x }\n`));
    expect(r.graph).toBeUndefined();
    expect(r.lines).toEqual([`g0.yaml:8:31: error unknown-field: ${message}`]);
  });

  it('warns of an entry listed twice, at the repeat, naming the first; the node compiles', () => {
    const r = compile(goal('    - id: n\n      type: local.file\n      ignoreFields: [mode, content, mode]\n      spec: { path: f, content: x }\n'));
    expect(r.lines).toEqual(['g0.yaml:8:37: warning duplicate-entry: ignoreFields: "mode" is listed already at g0.yaml:8:22']);
    expect(r.graph!.get('n')!.settings.ignoreFields).toEqual(['mode', 'content', 'mode']);
  });

  it('accepts any key of an open map the spec gives by a reference (its keys known only at run time)', () => {
    const node = (id: string, extra: string): string => `    - { id: ${id}, type: generic.resource, backend: mem${extra} }\n`;
    const r = compile(mem, goal(node('m', ', spec: { input: {} }') + node('n', ', ignoreFields: [input.retentionDays], spec: { input: "${nodes.m.outputs.id}" }')));
    expect(r.lines).toEqual([]);
  });

  // A key the node's spec does not give its open map is in no drift report: the entry would ignore nothing.
  it.each([
    { name: 'generic.resource input', type: 'generic.resource', spec: '{ input: { retentionDays: 30 } }', entry: 'input.retentionDay', message: '"input.retentionDay" names no key of input in this node\'s spec, so there is nothing to ignore (did you mean "input.retentionDays"?)' },
    { name: 'a map inside it', type: 'generic.resource', spec: '{ input: { limits: { cpu: 1 } } }', entry: 'input.limits.cpus', message: '"input.limits.cpus" names no key of input.limits in this node\'s spec, so there is nothing to ignore (did you mean "input.limits.cpu"?)' },
    { name: 'ansible extraVars', type: 'ansible.playbook', spec: '{ playbook: p.yml, extraVars: { region: eu } }', entry: 'extraVars.zone', message: '"extraVars.zone" names no key of extraVars in this node\'s spec, so there is nothing to ignore' },
  ])('rejects a key $name does not have', ({ type, spec, entry, message }) => {
    const r = compile(mem, goal(`    - id: n\n      type: ${type}\n      backend: mem\n      ignoreFields: [${entry}]\n      spec: ${spec}\n`));
    expect(r.lines).toEqual([`g1.yaml:9:22: error unknown-field: ignoreFields: ${message}`]);
  });

  // The ansible backend's drift is one diff per changed task (`task:NAME`): an entry passed, and ignored nothing.
  it('rejects every entry on a node of a backend whose drift names no field (ansible), a misspelt one once', () => {
    const ansible = 'apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: ans }\nspec: { type: ansible }\n';
    const r = compile(ansible, goal('    - id: n\n      type: ansible.playbook\n      backend: ans\n      ignoreFields: [extraVars.region, tags, extraVars.zone]\n      spec: { playbook: p.yml, extraVars: { region: eu } }\n'));
    const why = 'backend "ans" (type ansible) reports drift per changed task, never per field of the spec, so';
    expect(r.lines).toEqual([
      `g1.yaml:9:22: error invalid-value: ignoreFields: ${why} "extraVars.region" matches none of it`,
      `g1.yaml:9:40: error invalid-value: ignoreFields: ${why} "tags" matches none of it`,
      'g1.yaml:9:46: error unknown-field: ignoreFields: "extraVars.zone" names no key of extraVars in this node\'s spec, so there is nothing to ignore',
    ]);
  });

  it('rejects a misspelt nested field with the whole path suggested', () => {
    const r = compile(mem, goal('    - id: n\n      type: generic.resource\n      backend: mem\n      ignoreFields: [commands.reed]\n      spec: { input: {} }\n'));
    expect(r.lines).toEqual(['g1.yaml:9:22: error unknown-field: ignoreFields: "commands.reed" is not a field of generic.resource (did you mean "commands.read"?)']);
  });

  it('a field that names the resource (a path, a role\'s name) cannot be ignored: another value is another resource, never drift', () => {
    const r = compile(goal('    - { id: n, type: local.file, ignoreFields: [path, mode], spec: { path: f, content: x } }\n'));
    expect(r.lines).toEqual(['g0.yaml:6:49: error invalid-value: ignoreFields: "path" names the resource of a local.file (another path is another resource, never drift of this one), so there is nothing to ignore']);
  });

  it('reports every bad entry of one list, each where it is', () => {
    const r = compile(goal('    - id: n\n      type: local.file\n      ignoreFields: [spec.mode, moed]\n      spec: { path: f, content: x }\n'));
    expect(at(r)).toEqual(['g0.yaml:8:22 unknown-field', 'g0.yaml:8:33 unknown-field']);
  });

  it('an entry that is not a string hides no error of the others', () => {
    const r = compile(goal('    - id: n\n      type: local.file\n      ignoreFields: [contnet, 5, " "]\n      spec: { path: f, content: x }\n'));
    expect(at(r)).toEqual(['g0.yaml:8:22 unknown-field', 'g0.yaml:8:31 invalid-type', 'g0.yaml:8:34 invalid-value']);
  });
});

describe('owner and group', () => {
  it('a name or a numeric id chown can set: not empty, not negative, not (uid_t)-1 ("no change") or past it', () => {
    const r = compile(goal(`    - { id: a, type: local.file, spec: { path: a, content: x, owner: "4294967295" } }
    - { id: b, type: local.file, spec: { path: b, content: x, owner: "" } }
    - { id: c, type: local.file, spec: { path: c, content: x, group: "-1" } }
    - { id: d, type: local.file, spec: { path: d, content: x, owner: "99999999999" } }
    - { id: e, type: local.file, spec: { path: e, content: x, owner: "4294967294", group: www-data } }
`));
    expect(r.lines).toEqual([
      'g0.yaml:6:70: error invalid-value: spec.owner: a numeric uid is at most 4294967294 (4294967295, (uid_t)-1, means "no change" to chown)',
      'g0.yaml:7:70: error invalid-value: spec.owner must not be empty',
      'g0.yaml:8:70: error invalid-value: spec.group: a group is a name or a numeric gid (0 to 4294967294); it cannot start with "-"',
      'g0.yaml:9:70: error invalid-value: spec.owner: a numeric uid is at most 4294967294 (4294967295, (uid_t)-1, means "no change" to chown)',
    ]);
  });
});

describe('every error of a node, not only the first', () => {
  it('a duplicate key does not hide the other errors of its file', () => {
    const r = compile(goal(`    - id: a
      type: local.file
      spec: { path: a.txt, content: x, mode: "9999" }
    - id: b
      type: local.file
      spec: { path: b.txt, content: x, content: y }
`));
    expect(r.lines).toEqual([
      'g0.yaml:8:46: error invalid-value: spec.mode: the string "9999" is not valid: mode is an octal string such as "0644" or "0755" (a fourth digit for setuid, setgid, sticky: "2775", "1777")',
      'g0.yaml:11:40: error duplicate-key: duplicate key "content": each key may appear once in a map',
    ]);
    expect(r.graph).toBeUndefined();
  });

  it('a bad node field does not hide its spec, type and edge errors', () => {
    const r = compile(goal(`    - id: a
      type: local.file
      deletionPolicy: delete
      dependsOn: [nope]
      spec: { path: a.txt, contnet: hi, mode: 644 }
`));
    expect(r.lines).toEqual([
      'g0.yaml:8:23: error invalid-value: spec.nodes[0].deletionPolicy: the string "delete" is not one of "Orphan", "Delete" (did you mean "Delete"?)',
      'g0.yaml:9:19: error unknown-node: dependsOn[0]: node "a" refers to unknown node "nope"',
      'g0.yaml:10:28: error unknown-field: spec.contnet is not a field of local.file (did you mean "content"?)',
      'g0.yaml:10:47: error invalid-type: spec.mode: mode must be a quoted string such as "0644" (unquoted, YAML reads it as the number 644)',
    ]);
  });

  it('an unknown node is never taken for the node that names it ("did you mean" another, or none)', () => {
    const r = compile(goal('    - { id: alpha, type: local.file, dependsOn: [alphx], spec: { path: a, content: x } }\n    - { id: beta, type: local.file, dependsOn: [alpa], spec: { path: b, content: x } }\n'));
    expect(r.lines).toEqual([
      'g0.yaml:6:50: error unknown-node: dependsOn[0]: node "alpha" refers to unknown node "alphx"',
      'g0.yaml:7:49: error unknown-node: dependsOn[0]: node "beta" refers to unknown node "alpa" (did you mean "alpha"?)',
    ]);
  });

  it('a bad id does not hide a bad type, and an edge to the bad id is not "unknown"', () => {
    const r = compile(goal(`    - id: BadId
      type: local.fiel
      spec: { path: b.txt }
    - id: c
      type: local.file
      dependsOn: [BadId]
      spec: { path: c.txt, content: "" }
`));
    expect(at(r)).toEqual(['g0.yaml:6:11 invalid-value', 'g0.yaml:7:13 unknown-type']);
  });

  it.each([
    { name: 'an invalid backend is not also unknown or unsupported', field: 'backend: 3', codes: ['invalid-type', 'unknown-field'] },
    { name: 'an invalid dependsOn keeps its valid entries', field: 'dependsOn: [ghost, 3]', codes: ['unknown-node', 'invalid-type', 'unknown-field'] },
    { name: 'an invalid selfHeal', field: 'selfHeal: "yes"', codes: ['invalid-type', 'unknown-field'] },
    { name: 'an unknown node field', field: 'bogus: 1', codes: ['unknown-field', 'unknown-field'] },
  ])('$name', ({ field, codes }) => {
    const r = compile(goal(`    - id: a\n      type: local.file\n      ${field}\n      spec: { path: a.txt, contnet: x }\n`));
    expect(r.codes).toEqual(codes);
  });

  it('a spec that is not a map hides nothing else, and brings no echo', () => {
    const r = compile(goal('    - id: a\n      type: local.fiel\n      spec: 3\n'));
    expect(r.codes).toEqual(['unknown-type', 'invalid-type']);
  });

  it('a misspelt required field is one error, not also a missing one', () => {
    const r = compile(goal('    - id: a\n      type: local.file\n      spec: { path: a.txt, contnet: x }\n'));
    expect(r.lines).toEqual(['g0.yaml:8:28: error unknown-field: spec.contnet is not a field of local.file (did you mean "content"?)']);
  });

  it('a required field that is absent, with no misspelling, is still missing', () => {
    const r = compile(goal('    - id: a\n      type: local.file\n      spec: { path: a.txt, mdoe: "0644" }\n'));
    expect(r.codes).toEqual(['missing-field', 'unknown-field']);
  });
});

describe('a second declaration of a node id', () => {
  it('is reported, and its own errors with it, not once it is renamed', () => {
    const r = compile(goal(`    - { id: a, type: local.file, spec: { path: a, content: x } }
    - { id: a, type: local.file, spec: { path: ../b, mod: "0755" } }
    - { id: b, type: local.file, dependsOn: [a], spec: { path: b, content: x } }
`));
    expect(at(r)).toEqual(['g0.yaml:7:13 duplicate-node', 'g0.yaml:7:34 missing-field', 'g0.yaml:7:48 path-escapes-root', 'g0.yaml:7:54 unknown-field']);
  });

  it('that also names the first one\'s resource is told so: renaming it would not be enough', () => {
    const r = compile(goal('    - { id: a, type: local.file, spec: { path: a, content: x } }\n    - { id: a, type: local.file, spec: { path: ./a, content: y } }\n'));
    expect(r.codes).toEqual(['duplicate-node', 'duplicate-resource']);
  });
});

describe('a document of an unknown kind', () => {
  it('is told so beside its other envelope errors', () => {
    const r = compile('kind: Widget\nmetadata: { name: w }\nspec: {}\n');
    expect(r.lines).toEqual(['g0.yaml:1:1: error missing-field: apiVersion is required by a document', 'g0.yaml:1:7: error unknown-kind: kind "Widget" is not one of Goal, Backend, Policy']);
  });
});

describe('dependency cycles beside other errors', () => {
  const cycle = `    - id: a
      type: local.file
      dependsOn: [b]
      spec: { path: a.txt, content: "" }
    - id: b
      type: local.file
      dependsOn: [a]
      spec: { path: b.txt, content: "" }
`;

  it('are reported with an unrelated error', () => {
    const r = compile(goal(`${cycle}    - id: c\n      type: local.file\n      spec: { path: c.txt, contnet: "" }\n`));
    expect(r.lines).toEqual([
      'g0.yaml:8:19: error dependency-cycle: dependency cycle: a -> b (g0.yaml:8:19) -> a (g0.yaml:12:19)',
      'g0.yaml:16:28: error unknown-field: spec.contnet is not a field of local.file (did you mean "content"?)',
    ]);
  });

  it('are reported for nodes whose specs are wrong (the edges are right)', () => {
    const r = compile(goal(cycle.replaceAll('content: ""', 'contnet: ""')));
    expect(r.codes).toEqual(['dependency-cycle', 'unknown-field', 'unknown-field']);
  });

  it('through an implicit edge (a reference) too', () => {
    const r = compile(goal(cycle.replace('dependsOn: [a]\n      spec: { path: b.txt, content: "" }', 'spec: { path: b.txt, content: "${nodes.a.outputs.path}" }'), undefined, '  bogus: 1\n'));
    expect(r.codes).toEqual(['unknown-field', 'dependency-cycle']);
  });

  it('are reported beside an unknown node in a dependency list: the known edges make the cycle', () => {
    const r = compile(goal(cycle.replace('dependsOn: [a]', 'dependsOn: [a, ghost]')));
    expect(r.codes.sort()).toEqual(['dependency-cycle', 'unknown-node']);
  });

  it('are not reported through a node whose dependsOn is malformed', () => {
    const r = compile(goal(cycle.replace('dependsOn: [a]', 'dependsOn: [a, 7]')));
    expect(r.codes).toEqual(['invalid-type']);
  });

  it('still come alone from a goal set with no other error', () => {
    expect(compile(goal(cycle)).codes).toEqual(['dependency-cycle']);
  });
});

describe('a bad goal header does not hide the errors of its nodes', () => {
  const node = '    - id: a\n      type: local.file\n      spec: { path: a.txt, contnet: hi }\n';

  it.each([
    { name: 'a wrong apiVersion', text: goal(node).replace('desiredstate/v1', 'desiredstate/v2'), codes: ['invalid-value', 'unknown-field'] },
    { name: 'an invalid goal name', text: goal(node, 'metadata: { name: Web-Dev }'), codes: ['invalid-value', 'unknown-field'] },
    { name: 'a missing goal name', text: goal(node, 'metadata: { labels: {} }'), codes: ['missing-field', 'unknown-field'] },
    { name: 'an unknown goal field', text: goal(node, 'metadata: { name: app }', '  bogus: 1\n'), codes: ['unknown-field', 'unknown-field'] },
  ])('$name', ({ text, codes }) => {
    const r = compile(text);
    expect(r.graph).toBeUndefined();
    expect(r.codes).toEqual(codes);
  });

  it('a duplicate goal name is reported, and the second goal\'s nodes are checked', () => {
    const r = compile(goal('    - id: a\n      type: local.file\n      spec: { path: a.txt, content: hi }\n'), goal('    - id: b\n      type: local.file\n      spec: { path: b.txt, contnet: hi }\n'));
    expect(at(r)).toEqual(['g1.yaml:3:19 duplicate-name', 'g1.yaml:8:28 unknown-field']);
  });

  it('a value that reads an invalid goal field is not reported again', () => {
    // The labels are invalid: `${goal.labels.mode}` is not "no such label", and the mode it makes is no error of its own.
    const r = compile(goal('    - id: a\n      type: local.file\n      spec: { path: a.txt, content: "", mode: "${goal.labels.mode}" }\n', 'metadata: { name: app, labels: { mode: 644 } }'));
    expect(r.lines).toEqual(['g0.yaml:3:40: error invalid-type: metadata.labels.mode: label values are strings (quote numbers and booleans)']);
  });

  // A goal field is text, whatever its value: a field that takes no string is wrong whatever the label holds.
  it.each([
    { name: 'a number field', type: 'postgres.database', spec: '{ name: app, connectionLimit: "${goal.labels.n}" }', col: 43, message: 'spec.connectionLimit: expected a number, got the string "${goal.labels.n}"' },
    { name: 'a list field', type: 'generic.resource', spec: '{ commands: { read: "${goal.labels.n}", create: [c] } }', col: 33, message: 'spec.commands.read: expected a list, got the string "${goal.labels.n}"' },
    { name: 'a map field', type: 'generic.resource', spec: '{ commands: "${goal.labels.n}" }', col: 25, message: 'spec.commands: expected a map, got the string "${goal.labels.n}"' },
  ])('a value that reads an invalid goal field is still a string: $name is reported', ({ type, spec, col, message }) => {
    const r = compile(mem, goal(`    - id: a\n      type: ${type}\n      backend: mem\n      spec: ${spec}\n`, 'metadata: { name: app, labels: { n: 5 } }'));
    expect(r.lines).toEqual([
      'g1.yaml:3:37: error invalid-type: metadata.labels.n: label values are strings (quote numbers and booleans)',
      `g1.yaml:9:${col}: error invalid-type: ${message}`,
    ]);
  });

  it('a misspelt environment leaves ${goal.environment} unknown, not "default"', () => {
    const r = compile(goal('    - id: a\n      type: local.file\n      spec: { path: a.txt, content: "", mode: "${goal.environment}" }\n', 'metadata: { name: app, enviroment: "0644" }'));
    expect(r.codes).toEqual(['unknown-field']);
  });

  it('a value that reads a valid goal field of an invalid goal is still checked', () => {
    const r = compile(goal('    - id: a\n      type: local.file\n      spec: { path: a.txt, content: "", mode: "${goal.environment}" }\n', 'metadata: { name: App, environment: dev }'));
    expect(r.codes).toEqual(['invalid-value', 'invalid-value']);
  });
});

describe('a Backend declared with errors', () => {
  const node = (type: string, spec: string): string => goal(`    - id: n\n      type: ${type}\n      backend: pg\n      spec: ${spec}\n`);

  it.each([
    { name: 'an invalid config', backend: 'spec: { type: postgres, config: { hots: x } }', codes: ['unknown-field'] },
    { name: 'an unknown backend type', backend: 'spec: { type: postgre }', codes: ['unknown-backend-type'] },
    // Its type and config are still checked (every problem at once): a postgres config needs a host.
    { name: 'an invalid Backend document', backend: 'spec: { type: postgres, bogus: 1 }', codes: ['missing-field', 'unknown-field'] },
    { name: 'an invalid Backend document with a valid config', backend: 'spec: { type: postgres, bogus: 1, config: { host: h } }', codes: ['unknown-field'] },
    { name: 'an invalid Backend document and an invalid config: both', backend: 'spec: { type: postgres, bogus: 1, config: { hots: x } }', codes: ['unknown-field', 'unknown-field'] },
    { name: 'an invalid Backend document of an unknown type: both', backend: 'spec: { type: postgre, bogus: 1 }', codes: ['unknown-backend-type', 'unknown-field'] },
  ])('with $name is not also "not configured" for its nodes', ({ backend, codes }) => {
    const r = compile(`apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: pg }\n${backend}\n`, node('postgres.role', '{ name: r }'));
    expect(r.codes).toEqual(codes);
  });

  it('with a wrong apiVersion is not also "not configured" for its nodes', () => {
    const r = compile('apiVersion: desiredstate/v2\nkind: Backend\nmetadata: { name: pg }\nspec: { type: postgres, config: { host: h } }\n', node('postgres.role', '{ name: r }'));
    expect(r.codes).toEqual(['invalid-value']);
  });

  it('still tells a node of a type its backend type cannot provision, and checks the node\'s spec', () => {
    const r = compile('apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: pg }\nspec: { type: postgres, config: { hots: x } }\n', node('local.file', '{ path: a, contnet: x }'));
    expect(r.codes).toEqual(['unknown-field', 'unsupported-type', 'unknown-field']);
  });

  it('named local is not replaced by the default local backend', () => {
    const r = compile('apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: local }\nspec: { type: local, config: { rot: x } }\n', goal('    - id: n\n      type: local.file\n      spec: { path: a, content: "" }\n'));
    expect(r.codes).toEqual(['unknown-field']);
  });

  // GOAL-FORMAT: every problem at once. An invalid name (or a second Backend of one name) hid the spec's errors.
  it.each([
    { name: 'an invalid name', metadata: '{ name: Files }', want: ['g0.yaml:3:19 invalid-value', 'g0.yaml:4:32 unknown-field', 'g0.yaml:4:44 unknown-field'] },
    { name: 'an invalid name and another metadata field', metadata: '{ name: Files, bogus: 1 }', want: ['g0.yaml:3:19 invalid-value', 'g0.yaml:3:26 unknown-field', 'g0.yaml:4:32 unknown-field', 'g0.yaml:4:44 unknown-field'] },
  ])('with $name still has its spec checked, and its nodes are not told it is not configured', ({ metadata, want }) => {
    const r = compile(`apiVersion: desiredstate/v1\nkind: Backend\nmetadata: ${metadata}\nspec: { type: local, config: { rot: out }, bogus: 1 }\n`, goal('    - id: n\n      type: local.file\n      backend: Files\n      spec: { path: a, content: "" }\n'));
    expect(at(r)).toEqual(want);
    expect(r.lines).toContainEqual(expect.stringContaining('spec.config.rot is not a field of a local backend\'s config (did you mean "root"?)'));
  });

  it('a second of one name still has its spec checked, and does not take the place of the first', () => {
    const backend = (config: string): string => `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: files }\nspec: { type: local, config: ${config} }\n`;
    const r = compile(backend('{ root: out }'), backend('{ rot: out }'), goal('    - id: n\n      type: local.file\n      backend: files\n      spec: { path: a, content: "" }\n'));
    expect(at(r)).toEqual(['g1.yaml:3:19 duplicate-name', 'g1.yaml:4:32 unknown-field']);
    expect(r.factory.backends.get('files')?.config).toMatchObject({ root: 'out' });
  });

  it('an undeclared backend is still "not configured", at the node\'s backend', () => {
    const r = compile(node('postgres.role', '{ name: r }'));
    expect(r.lines).toEqual(['g0.yaml:8:16: error unknown-backend: backend "pg" is not configured']);
  });
});

describe('goal and Backend names', () => {
  it.each(['web-', '-web', 'web.', 'Web'])('%s gets a message that says what a name is', (name) => {
    const r = compile(goal('    []\n', `metadata: { name: "${name}" }`));
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      `metadata.name: the string "${name}" is not valid: names are lower-case letters, digits, ".", "_" and "-", and start and end with a letter or digit`,
    ]);
  });

  it.each(['web', 'w', 'web-dev.2', 'a_b'])('%s is a name', (name) => {
    expect(compile(goal('    []\n', `metadata: { name: "${name}" }`)).lines).toEqual([]);
  });
});

describe('${goal.labels.<key>} reads the goal\'s labels (metadata.labels), not the node\'s', () => {
  it('a node label of the same key does not change it', () => {
    const r = compile(goal('    - id: a\n      type: local.file\n      labels: { team: web }\n      spec: { path: a.txt, content: "${goal.labels.team}" }\n'));
    expect(r.lines).toEqual([]);
    expect(r.graph!.get('a')!.spec.spec).toMatchObject({ content: 'data' });
    expect(r.graph!.get('a')!.spec.labels).toEqual({ team: 'web' });
  });

  it('a label only the node has is not a goal label', () => {
    const r = compile(goal('    - id: a\n      type: local.file\n      labels: { owner: ann }\n      spec: { path: a.txt, content: "${goal.labels.owner}" }\n'));
    expect(r.lines).toEqual(['g0.yaml:9:38: error bad-interpolation: ${goal.labels.owner}: goal "app" has no label "owner"']);
  });

  // A plain object inherits these: read as labels, they crashed the compile (`s.replaceAll is not a function`).
  it.each(['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__'])('${goal.labels.%s} is no label, not an inherited member', (key) => {
    const r = compile(goal(`    - id: a\n      type: local.file\n      spec: { path: a.txt, content: "\${goal.labels.${key}}" }\n`));
    expect(r.lines).toEqual([`g0.yaml:8:38: error bad-interpolation: \${goal.labels.${key}}: goal "app" has no label "${key}"`]);
  });
});

describe('spec.defaults.backend', () => {
  const nodes = '    - id: a\n      type: local.file\n      spec: { path: a, content: "" }\n    - id: b\n      type: local.file\n      spec: { path: b, content: "" }\n';

  it('unknown: reported once, at spec.defaults.backend, not at each node', () => {
    const r = compile(goal(nodes, undefined, '  defaults: { backend: nosuch }\n'));
    expect(r.lines).toEqual(['g0.yaml:5:24: error unknown-backend: backend "nosuch" is not configured']);
  });

  it('unknown, in a goal with no nodes: still reported', () => {
    const r = compile(goal('    []\n', undefined, '  defaults: { backend: nosuch }\n'));
    expect(r.lines).toEqual(['g0.yaml:5:24: error unknown-backend: backend "nosuch" is not configured']);
  });

  it('unknown, with a suggestion', () => {
    const r = compile(mem, goal('    []\n', undefined, '  defaults: { backend: mme }\n'));
    expect(r.lines).toEqual(['g1.yaml:5:24: error unknown-backend: backend "mme" is not configured (did you mean "mem"?)']);
  });

  it('a node that names its own backend does not use it', () => {
    const r = compile(mem, goal('    - id: a\n      type: local.file\n      backend: local\n      spec: { path: a, content: "" }\n', undefined, '  defaults: { backend: nosuch }\n'));
    expect(r.codes).toEqual(['unknown-backend']);
  });

  it('a default backend that cannot provision a node\'s type is reported at the node\'s type', () => {
    const r = compile(`apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: ex }\nspec: { type: exec }\n`, goal(nodes, undefined, '  defaults: { backend: ex }\n'));
    expect(at(r)).toEqual(['g1.yaml:8:13 unsupported-type', 'g1.yaml:11:13 unsupported-type']);
  });

  it('invalid defaults make the default backend unknown: nodes that name none are not checked against local', () => {
    const r = compile(mem, goal('    - id: db\n      type: postgres.database\n      spec: { name: app }\n', undefined, '  defaults: { bakend: mem }\n'));
    expect(r.codes).toEqual(['unknown-field']);
  });

  it('declared with errors: not reported again', () => {
    const r = compile('apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: pg }\nspec: { type: postgres, config: { hots: x } }\n', goal('    []\n', undefined, '  defaults: { backend: pg }\n'));
    expect(r.codes).toEqual(['unknown-field']);
  });
});

describe("a spec with errors still has its backend's checks run on the fields they read", () => {
  // BackendFactory.specFields: a bad mode does not hide a path that escapes the root, nor a second node on one path.
  const backends = 'apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: pg }\nspec: { type: postgres, config: { host: h } }\n---\napiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: ex }\nspec: { type: exec }\n';

  it('a bad mode and a path out of the root: both, each at its field', () => {
    const r = compile(goal('    - id: a\n      type: local.file\n      spec: { path: ../a, content: x, mode: "9999" }\n'));
    expect(at(r)).toEqual(['g0.yaml:8:21 path-escapes-root', 'g0.yaml:8:45 invalid-value']);
  });

  it.each([
    { name: 'an unknown key', first: '{ path: conf/a, content: x }', second: '{ path: conf//a, content: y, contnet: z }', codes: ['duplicate-resource', 'unknown-field'] },
    { name: 'a missing field', first: '{ path: conf/a, content: x }', second: '{ path: conf/a }', codes: ['missing-field', 'duplicate-resource'] },
    { name: 'a path out of the root (as the first has)', first: '{ path: ../b/../../a, content: x }', second: '{ path: ../b/../../a, content: y }', codes: ['path-escapes-root', 'duplicate-resource', 'path-escapes-root'] },
  ])('a second node on one path, with $name, is still a duplicate', ({ first, second, codes }) => {
    const r = compile(goal(`    - { id: a, type: local.file, spec: ${first} }\n    - { id: b, type: local.file, spec: ${second} }\n`));
    expect(r.codes).toEqual(codes);
  });

  it('a path with an error is not checked again: no echo', () => {
    const r = compile(goal('    - { id: a, type: local.file, spec: { path: 3, content: x } }\n    - { id: b, type: local.file, spec: { path: 3, content: y, mode: 7 } }\n'));
    expect(r.codes).toEqual(['invalid-type', 'invalid-type', 'invalid-type']);
  });

  it('a role with a bad connection limit, named as another role is: a duplicate', () => {
    const r = compile(backends, goal('    - { id: r1, type: postgres.role, backend: pg, spec: { name: app } }\n    - { id: r2, type: postgres.role, backend: pg, spec: { name: app, connectionLimit: many } }\n'));
    expect(at(r)).toEqual(['g1.yaml:7:65 duplicate-resource', 'g1.yaml:7:87 invalid-type']);
  });

  it('an exec resource with a bad input, without a delete command, under deletionPolicy: Delete: not deletable too', () => {
    const r = compile(backends, goal('    - id: x\n      type: generic.resource\n      backend: ex\n      deletionPolicy: Delete\n      spec: { commands: { read: [r], create: [c] }, input: 3 }\n'));
    expect(r.codes).toEqual(['not-deletable', 'invalid-type']);
  });

  it('an exec resource with bad commands is not also told it has none', () => {
    const r = compile(backends, goal('    - id: x\n      type: generic.resource\n      backend: ex\n      deletionPolicy: Delete\n      spec: { commands: { read: r }, input: 3 }\n'));
    expect(r.codes).not.toContain('not-deletable');
    expect(r.codes).not.toContain('unsupported-spec');
  });
});

describe('a misspelt top-level key of a Backend or Policy document', () => {
  // As in a Goal: one error at the misspelling, with its suggestion. It was "spec is required by a document", at the
  // top of the document, naming neither the key written nor the one meant.
  it.each([
    { name: 'spec of a Backend', text: 'apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: pg }\nsepc: { type: memory }\n', line: 'g0.yaml:4:1: error unknown-field: sepc is not a field of a Backend (did you mean "spec"?)' },
    { name: 'metadata of a Policy', text: 'apiVersion: desiredstate/v1\nkind: Policy\nmetdata: { name: p }\nspec: {}\n', line: 'g0.yaml:3:1: error unknown-field: metdata is not a field of a Policy (did you mean "metadata"?)' },
    { name: 'kind, whose document is of no known kind', text: 'apiVersion: desiredstate/v1\nKind: Backend\nmetadata: { name: pg }\nspec: { type: memory }\n', line: 'g0.yaml:2:1: error unknown-field: Kind is not a field of a document (did you mean "kind"?)' },
  ])('$name', ({ text, line }) => {
    expect(compile(text).lines).toEqual([line]);
  });

  it('a Backend whose spec is misspelt is not also "not configured" for its nodes', () => {
    const r = compile('apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: mem }\nsepc: { type: memory }\n', goal('    - { id: n, type: local.file, backend: mem, spec: { path: a, content: "" } }\n'));
    expect(r.codes).toEqual(['unknown-field']);
  });
});

/**
 * An unknown key is an error, but the rest of its document is still judged: it hides nothing that a
 * wrongly typed value there would not (GOAL-FORMAT.md, Errors: every problem, not only the first). A
 * misspelt key is read as the field it is near; a key near no field leaves what it may stand for unknown.
 */
describe('an unknown key hides no other error', () => {
  // An escaping path, a second node on one path, and a reference to an output the node will not have.
  const nodes = `    - id: a
      type: local.file
      spec: { path: ../x, content: x }
    - id: b
      type: local.file
      spec: { path: y, content: "\${nodes.c.outputs.nope}" }
    - id: c
      type: local.file
      spec: { path: y, content: x }
`;
  // Their diagnostics, the goal's spec starting on line 4 and `extra` lines before its nodes.
  const nodeErrors = (file: string, extra: number): string[] => [
    `${file}:${8 + extra}:21 path-escapes-root`,
    `${file}:${11 + extra}:34 unknown-field`,
    `${file}:${14 + extra}:21 duplicate-resource`,
  ];

  it.each([
    { name: 'a misspelt goal setting (selfheal)', spec: '  selfheal: true\n', first: 'g0.yaml:5:3 unknown-field' },
    { name: 'a misspelt default (bakend)', spec: '  defaults: { bakend: local }\n', first: 'g0.yaml:5:15 unknown-field' },
    { name: 'a wrongly typed setting, as before', spec: '  selfHeal: 1\n', first: 'g0.yaml:5:13 invalid-type' },
  ])('$name: the nodes are all checked', ({ spec, first }) => {
    const r = compile(goal(nodes, 'metadata: { name: app }', spec));
    expect(r.graph).toBeUndefined();
    expect(at(r)).toEqual([first, ...nodeErrors('g0.yaml', 1)]);
  });

  it('the misspelt default is read as meant: the nodes are checked against the backend it names', () => {
    const r = compile(mem, goal('    - { id: db, type: postgres.database, spec: { name: app } }\n', 'metadata: { name: app }', '  defaults: { bakend: mme }\n'));
    expect(r.lines).toEqual([
      'g1.yaml:5:15: error unknown-field: spec.defaults.bakend is not a field of a Goal (did you mean "backend"?)',
      'g1.yaml:5:23: error unknown-backend: backend "mme" is not configured (did you mean "mem"?)',
    ]);
  });

  it('a key near no field may stand for one left out: nodes are not checked against a backend the goal may not mean', () => {
    // `defaultBackend: mem` put at the wrong level: checking the database against local would invent an error.
    const r = compile(mem, goal('    - { id: db, type: postgres.database, spec: { name: app } }\n', 'metadata: { name: app }', '  defaultBackend: mem\n'));
    expect(r.codes).toEqual(['unknown-field']);
  });

  it('in a node: a misspelt backend is read as meant, a key near no field invents no unsupported-type', () => {
    const r = compile(mem, goal(`    - id: r
      type: postgres.role
      bakend: mem
      spec: { name: r, connectionLimit: -5 }
    - id: s
      type: postgres.role
      be: mem
      spec: { name: s }
`, 'metadata: { name: app }'));
    expect(at(r)).toEqual(['g1.yaml:8:7 unknown-field', 'g1.yaml:9:41 invalid-value', 'g1.yaml:12:7 unknown-field']);
  });

  it('a value read from a misspelt key is reported where it is written', () => {
    const r = compile(goal('    - id: a\n      type: local.file\n      sepc: { path: ../x, content: x }\n', 'metadata: { name: app }'));
    expect(at(r)).toEqual(['g0.yaml:8:7 unknown-field', 'g0.yaml:8:21 path-escapes-root']);
  });

  const files = (config: string): string => `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: files }
spec:
  type: local
  config: ${config}
`;
  const onFiles = goal(nodes, 'metadata: { name: app }', '  defaults: { backend: files }\n');

  it.each([
    { name: 'a misspelt field', config: '{ root: out, rereadEvry: 1h }', first: 'g0.yaml:6:24 unknown-field' },
    { name: 'a wrongly typed field', config: '{ root: out, rereadEvery: 5 }', first: 'g0.yaml:6:37 invalid-value' },
    { name: 'a misspelt root, read as meant', config: '{ rot: out }', first: 'g0.yaml:6:13 unknown-field' },
  ])("a Backend's config with $name: its nodes' checks that do not read it still run", ({ config, first }) => {
    const r = compile(files(config), onFiles);
    expect(r.graph).toBeUndefined();
    expect(at(r)).toEqual([first, ...nodeErrors('g1.yaml', 1)]);
  });

  it("a Backend's config whose root is wrong: the checks that read the root do not run on a guess; the output reference is still checked", () => {
    const r = compile(files('{ root: 5 }'), onFiles);
    expect(at(r)).toEqual(['g0.yaml:6:19 invalid-type', 'g1.yaml:12:34 unknown-field']);
  });
});

/**
 * Interpolation and references apply to strings in spec only: a `${` in a map key, a label or the
 * environment is taken as written, with a warning where it stands (not an error: it compiles as before).
 */
describe('a ${ where nothing reads one is a warning', () => {
  const said = (where: string, text: string): string => `warning not-interpolated: ${JSON.stringify(text)} in ${where} is taken as written: interpolation and references apply to values in a Goal's spec only`;

  it('in the keys of a free-form map, at each key, taken as written', () => {
    const r = compile(mem, goal('    - id: n\n      type: generic.resource\n      backend: mem\n      spec:\n        input: { "${goal.name}": 1, "${nodes.qq.outputs.z}": 2, "$${esc}": 3, deep: { "a${x": 4 } }\n'));
    expect(r.lines).toEqual([
      `g1.yaml:10:18: ${said('a map key', '${goal.name}')}`,
      `g1.yaml:10:37: ${said('a map key', '${nodes.qq.outputs.z}')}`,
      `g1.yaml:10:87: ${said('a map key', 'a${x')}`,
    ]);
    // No dependency on a node that does not exist, and the keys reach the command as written.
    expect(r.graph!.get('n')!.dependsOn).toEqual([]);
    expect(Object.keys((r.graph!.get('n')!.spec.spec as { input: object }).input)).toEqual(['${goal.name}', '${nodes.qq.outputs.z}', '$${esc}', 'deep']);
  });

  it('in metadata.environment, metadata.labels and a node\'s labels', () => {
    const r = compile(goal(
      '    - { id: n, type: local.file, labels: { "${k}": v, o: "${nodes.m.outputs.x}" }, spec: { path: f, content: x } }\n',
      'metadata: { name: app, environment: "${goal.name}", labels: { team: "${goal.name}", esc: "$${x}" } }',
    ));
    expect(r.lines).toEqual([
      `g0.yaml:3:37: ${said('metadata.environment', '${goal.name}')}`,
      `g0.yaml:3:69: ${said('a label', '${goal.name}')}`,
      `g0.yaml:6:44: ${said('a label key', '${k}')}`,
      `g0.yaml:6:58: ${said('a label', '${nodes.m.outputs.x}')}`,
    ]);
    expect(r.graph).toBeDefined();
  });

  // It was taken as written with no word: `root: out-${goal.name}` made a directory named so.
  it("in a Backend's config; not where the config's check refuses the value already", () => {
    const backend = (name: string, type: string, config: string): string => `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: ${name} }\nspec:\n  type: ${type}\n  config: ${config}\n`;
    const r = compile(
      backend('local', 'local', '{ root: "out-${goal.name}" }'),
      backend('ex', 'exec', '{ cwd: "$${x}", env: [PATH, "${A}"], "${k}": 1 }'),
      backend('ex2', 'exec', '{ cwd: "w-$${x}-${goal.environment}" }'),
      goal('    []\n'),
    );
    expect(r.lines).toEqual([
      `g0.yaml:6:19: ${said("a Backend's config", 'out-${goal.name}')}`,
      'g1.yaml:6:39: error invalid-value: spec.config.env[1]: the string "${A}" is not valid: an environment variable name',
      'g1.yaml:6:48: error unknown-field: spec.config.${k} is not a field of an exec backend\'s config',
      `g2.yaml:6:18: ${said("a Backend's config", 'w-$${x}-${goal.environment}')}`,
    ]);
  });
});
