import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { BackendRegistry, InfraSpecFactory } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec } from '../../src/infra/index.ts';
import { formatDiagnostic, GoalCompiler, parseGoalText } from '../../src/runtime/index.ts';
import type { CompileResult, Diagnostic, SourceDocument } from '../../src/runtime/index.ts';

/**
 * The compiler reports every problem at once (GOAL-FORMAT.md, Errors), but
 * not the echoes of one: an error that only follows from another is left out.
 */

const registry = new BackendRegistry(builtinBackendFactories);

function compile(...texts: string[]): CompileResult<InfraDesiredNodeSpec> & { lines: string[]; codes: string[] } {
  const documents: SourceDocument[] = [];
  const diagnostics: Diagnostic[] = [];
  texts.forEach((text, i) => {
    const parsed = parseGoalText(`g${i}.yaml`, text);
    documents.push(...parsed.documents);
    diagnostics.push(...parsed.diagnostics);
  });
  const result = new GoalCompiler({ factory: new InfraSpecFactory({ registry }) }).compile(documents, diagnostics);
  const lines = result.diagnostics.map(formatDiagnostic);
  return { ...result, lines, codes: result.diagnostics.map((d) => d.code) };
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
    { name: 'top-level fields of local.file, and exists', type: 'local.file', spec: '{ path: f, content: x }', fields: '[content, mode, owner, exists]' },
    { name: 'any key under an open map (generic.resource input)', type: 'generic.resource', spec: '{ input: { a: 1 } }', fields: '[input, input.retentionDays, "input.any.depth"]' },
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
    { name: 'exists, misspelt', entry: 'exist', message: 'ignoreFields: "exist" is not a field of local.file (did you mean "exists"?)' },
    { name: 'a field under a single value', entry: 'mode.bits', message: 'ignoreFields: "mode.bits": mode is a single value, with no fields under it' },
    { name: 'a field of another type', entry: 'target', message: 'ignoreFields: "target" is not a field of local.file' },
  ])('rejects $name at the entry', ({ entry, message }) => {
    const r = compile(goal(`    - id: n\n      type: local.file\n      ignoreFields: [content, ${entry}]\n      spec: { path: f, content: x }\n`));
    expect(r.graph).toBeUndefined();
    expect(r.lines).toEqual([`g0.yaml:8:31: error unknown-field: ${message}`]);
  });

  it('rejects a misspelt nested field with the whole path suggested', () => {
    const r = compile(mem, goal('    - id: n\n      type: generic.resource\n      backend: mem\n      ignoreFields: [commands.reed]\n      spec: { input: {} }\n'));
    expect(r.lines).toEqual(['g1.yaml:9:22: error unknown-field: ignoreFields: "commands.reed" is not a field of generic.resource (did you mean "commands.read"?)']);
  });

  it('reports every bad entry of one list, each where it is', () => {
    const r = compile(goal('    - id: n\n      type: local.file\n      ignoreFields: [spec.mode, moed]\n      spec: { path: f, content: x }\n'));
    expect(at(r)).toEqual(['g0.yaml:8:22 unknown-field', 'g0.yaml:8:33 unknown-field']);
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
});

