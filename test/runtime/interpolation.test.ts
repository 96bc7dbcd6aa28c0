import { describe, expect, it } from 'vitest';
import { hasReferences, interpolateGoal, resolveReferences, shownTemplate } from '../../src/runtime/index.ts';
import type { Outputs } from '../../src/runtime/index.ts';

const goal = { name: 'app-dev', environment: 'dev', labels: { team: 'data', tricky: 'a${nodes.x.outputs.y}' } };

function run(value: unknown) {
  const problems: { path: readonly (string | number)[]; message: string; index?: number | undefined }[] = [];
  const out = interpolateGoal(value, goal, (path, message, index) => problems.push({ path, message, index }));
  return { ...out, problems };
}

describe('interpolateGoal', () => {
  it.each([
    { name: 'goal.name', input: 'db-${goal.name}', output: 'db-app-dev' },
    { name: 'goal.environment', input: '${goal.environment}', output: 'dev' },
    { name: 'a goal label', input: 'team=${goal.labels.team}', output: 'team=data' },
    { name: 'spaces inside the braces', input: '${ goal.name }', output: 'app-dev' },
    { name: 'several in one string', input: '${goal.name}/${goal.environment}', output: 'app-dev/dev' },
    { name: '$${ is an escape, kept for resolve time', input: 'cost: $${5}', output: 'cost: $${5}' },
    { name: 'a string without ${ is returned as is', input: 'plain $ text {}', output: 'plain $ text {}' },
    { name: 'a label holding ${ is escaped, not read as a reference later', input: '${goal.labels.tricky}', output: 'a$${nodes.x.outputs.y}' },
  ])('$name', ({ input, output }) => {
    const r = run({ s: input });
    expect(r.value).toEqual({ s: output });
    expect(r.problems).toEqual([]);
    expect(r.references).toEqual([]);
  });

  it('walks nested maps and lists, and leaves non-strings alone', () => {
    const r = run({ a: [1, true, null, { b: '${goal.name}' }], c: { d: '${goal.environment}' } });
    expect(r.value).toEqual({ a: [1, true, null, { b: 'app-dev' }], c: { d: 'dev' } });
  });

  it('collects node references with their path and index, leaving them in place', () => {
    const r = run({ url: 'postgres://${nodes.db.outputs.host}:${nodes.db.outputs.port}', list: ['${nodes.role-1.outputs.name}'] });
    expect(r.value).toEqual({ url: 'postgres://${nodes.db.outputs.host}:${nodes.db.outputs.port}', list: ['${nodes.role-1.outputs.name}'] });
    expect(r.references).toEqual([
      { node: 'db', key: 'host', path: ['url'], index: 11, whole: false },
      { node: 'db', key: 'port', path: ['url'], index: 36, whole: false },
      { node: 'role-1', key: 'name', path: ['list', 0], index: 0, whole: true },
    ]);
    // What compile cannot check yet: text, or (a whole reference) any output value.
    expect(r.pending).toEqual([
      { path: ['url'], type: 'string' },
      { path: ['list', 0], type: 'any' },
    ]);
  });

  it.each([
    { name: 'an unknown label, with a suggestion', input: 'x ${goal.labels.tema}', message: '${goal.labels.tema}: goal "app-dev" has no label "tema" (did you mean "team"?)', index: 2 },
    { name: 'an unknown expression', input: '${env.HOME}', message: /^\$\{env\.HOME\} is not a known expression \(use/, index: 0 },
    // The escape, for text meant for a shell or a program: GOAL-FORMAT.md has it, the error says it where it is needed.
    {
      name: 'a shell variable, with the escape that keeps it',
      input: 'home=${HOME}',
      message: '${HOME} is not a known expression (use ${goal.name}, ${goal.environment}, ${goal.labels.<key>} or ${nodes.<id>.outputs.<key>}; write $${HOME} for the text "${HOME}")',
      index: 5,
    },
    { name: 'a misspelt goal field', input: '${goal.nmae}', message: /did you mean "goal\.name"/, index: 0 },
    { name: 'an unclosed ${', input: 'abc ${goal.name', message: '"${" is never closed by "}" (write "$${" for a literal "${")', index: 4 },
    { name: 'a reference with a bad node id', input: '${nodes.Bad.outputs.x}', message: /is not a known expression/, index: 0 },
  ])('reports $name at its index', ({ input, message, index }) => {
    const r = run({ s: input });
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]!.path).toEqual(['s']);
    expect(r.problems[0]!.index).toBe(index);
    if (typeof message === 'string') expect(r.problems[0]!.message).toBe(message);
    else expect(r.problems[0]!.message).toMatch(message);
  });
});

describe('resolveReferences', () => {
  // `nil` gave its key as null: no value yet.
  const outputs: Record<string, Outputs> = { db: { host: 'db.local', port: 5432 }, nil: { url: null } };
  const outputsOf = (id: string): Outputs | undefined => outputs[id];

  it.each([
    { name: 'replaces references with outputs', input: { url: '${nodes.db.outputs.host}:${nodes.db.outputs.port}' }, value: { url: 'db.local:5432' }, missing: [] },
    { name: 'unescapes $${', input: { s: 'cost $${5}' }, value: { s: 'cost ${5}' }, missing: [] },
    { name: 'an escaped reference stays literal', input: { s: '$${nodes.db.outputs.host}' }, value: { s: '${nodes.db.outputs.host}' }, missing: [] },
    { name: 'reports missing outputs and leaves them', input: { s: '${nodes.cache.outputs.url}', t: ['${nodes.nil.outputs.url}'] }, value: { s: '${nodes.cache.outputs.url}', t: ['${nodes.nil.outputs.url}'] }, missing: ['cache.url', 'nil.url'] },
    // Its node gave outputs, without the key: nothing will change that until the goal or the node does.
    {
      name: 'reports a key its node gave no output for apart, with the keys it gave',
      input: { s: '${nodes.db.outputs.user}', t: ['${nodes.cache.outputs.url}'] },
      value: { s: '${nodes.db.outputs.user}', t: ['${nodes.cache.outputs.url}'] },
      missing: ['cache.url'],
      unknown: [{ node: 'db', key: 'user', path: ['s'], index: 0, whole: true, keys: ['host', 'port'] }],
    },
    { name: 'leaves non-strings alone', input: { n: 3, b: false, z: null }, value: { n: 3, b: false, z: null }, missing: [] },
  ])('$name', ({ input, value, missing, unknown = [] }) => {
    const r = resolveReferences(input, outputsOf);
    expect(r.value).toEqual(value);
    expect(r.missing).toEqual(missing);
    expect(r.unknown).toEqual(unknown);
  });

  // As Terraform reads "${var.x}": a string that is one reference and nothing else is the value itself.
  const typed: Record<string, Outputs> = { db: { host: 'db.local', port: 5432, tls: true, ratio: 0.5, off: false, empty: '' } };
  it.each([
    { name: 'a number stays a number', input: '${nodes.db.outputs.port}', value: 5432 },
    { name: 'a boolean stays a boolean', input: '${nodes.db.outputs.tls}', value: true },
    { name: 'false is not the string "false"', input: '${nodes.db.outputs.off}', value: false },
    { name: 'a fraction stays a number', input: '${nodes.db.outputs.ratio}', value: 0.5 },
    { name: 'a string stays a string', input: '${nodes.db.outputs.host}', value: 'db.local' },
    { name: 'an empty string stays an empty string', input: '${nodes.db.outputs.empty}', value: '' },
    { name: 'spaces inside the braces are part of the expression', input: '${ nodes.db.outputs.port }', value: 5432 },
    { name: 'text before it makes a string', input: 'db:${nodes.db.outputs.port}', value: 'db:5432' },
    { name: 'text after it makes a string', input: '${nodes.db.outputs.port}/tcp', value: '5432/tcp' },
    { name: 'a space around it is text: a string (nothing is trimmed)', input: ' ${nodes.db.outputs.port}', value: ' 5432' },
    { name: 'two references make a string', input: '${nodes.db.outputs.port}${nodes.db.outputs.tls}', value: '5432true' },
    { name: 'an escaped reference is literal text', input: '$${nodes.db.outputs.port}', value: '${nodes.db.outputs.port}' },
  ])('whole-string reference: $name', ({ input, value }) => {
    const r = resolveReferences({ a: input, list: [input] }, (id) => typed[id]);
    expect(r.value).toEqual({ a: value, list: [value] });
    expect(r.missing).toEqual([]);
  });

  // An exec command's output may be any JSON: whole, a list or a map takes the string's place as it is;
  // inside text there is none to insert (not "a,b", not "[object Object]"), and the caller is told which.
  it('a list or map output: its own value for a whole reference, named in embedded (text left) inside a longer string', () => {
    const structured: Record<string, Outputs> = { a: { tags: ['x', 'y'], ep: { host: 'h', ports: [80] }, rid: 'r-1' } };
    const r = resolveReferences(
      { tags: '${nodes.a.outputs.tags}', ep: ['${ nodes.a.outputs.ep }'], label: 'rid=${nodes.a.outputs.rid} tags=${nodes.a.outputs.tags}', url: 'http://${nodes.a.outputs.ep}' },
      (id) => structured[id],
    );
    expect(r.value).toEqual({ tags: ['x', 'y'], ep: [{ host: 'h', ports: [80] }], label: 'rid=r-1 tags=${nodes.a.outputs.tags}', url: 'http://${nodes.a.outputs.ep}' });
    expect(r.missing).toEqual([]);
    expect(r.embedded).toEqual([
      { node: 'a', key: 'tags', path: ['label'], index: 32, whole: false, value: ['x', 'y'] },
      { node: 'a', key: 'ep', path: ['url'], index: 7, whole: false, value: { host: 'h', ports: [80] } },
    ]);
  });

  it('says where each reference sat, and whether it was the whole string', () => {
    const r = resolveReferences({ a: '${nodes.db.outputs.port}', b: ['x${nodes.db.outputs.host}'] }, (id) => typed[id]);
    expect(r.references).toEqual([
      { node: 'db', key: 'port', path: ['a'], index: 0, whole: true },
      { node: 'db', key: 'host', path: ['b', 0], index: 1, whole: false },
    ]);
  });
});

describe('hasReferences', () => {
  it.each([
    { name: 'a reference', value: { a: ['${nodes.x.outputs.y}'] }, expected: true },
    // The escape must be resolved too, or the backend gets `$${` as written.
    { name: 'an escaped reference', value: { a: '$${nodes.x.outputs.y}' }, expected: true },
    { name: 'an escape alone', value: { a: 'esc=$${HOME}', b: 1 }, expected: true },
    { name: 'plain strings and other values', value: { a: 'cost: $5 {x}', b: 1, c: [true, null] }, expected: false },
  ])('$name', ({ value, expected }) => {
    expect(hasReferences(value)).toBe(expected);
  });
});

describe('shownTemplate', () => {
  it('shows an escape as the `${` a backend gets, and a reference (known only when the node runs) as written', () => {
    const spec = { content: 'cost $${HOME} ok', url: 'http://${nodes.db.outputs.host}/', n: 3, list: ['$${a}'] };
    expect(shownTemplate(spec)).toEqual({ content: 'cost ${HOME} ok', url: 'http://${nodes.db.outputs.host}/', n: 3, list: ['${a}'] });
    const plain = { content: 'no template' };
    expect(shownTemplate(plain)).toBe(plain);
  });
});
