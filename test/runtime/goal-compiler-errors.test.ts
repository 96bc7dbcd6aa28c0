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

const goal = (nodes: string, header = 'metadata: { name: app, labels: { team: data } }', spec = ''): string => `apiVersion: desiredstate/v1
kind: Goal
${header}
spec:
${spec}  nodes:
${nodes}`;

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

