import { describe, expect, it } from 'vitest';
import { formatDiagnostic, GoalCompiler, NODE_SPEC, parseGoalText } from '../../src/runtime/index.ts';
import type { BuiltNode, ImpliedEdge, NodeSpec, NodeSpecFactory } from '../../src/runtime/index.ts';

/** A spec of the test domain: `inside` names the node it lies in, the domain's implied edge. */
interface ThingSpec extends NodeSpec {
  readonly inside?: string | undefined;
}

/** The least domain: one type, and an implied edge from each node to the one its `spec.inside` names. */
const factory: NodeSpecFactory<ThingSpec> = {
  documentKinds: [],
  nodeTypes: ['test.thing'],
  acceptDocument: () => undefined,
  build: (decl) => ({
    spec: { [NODE_SPEC]: true, type: decl.type, backendId: 'b', digest: decl.id, inside: typeof decl.spec.inside === 'string' ? decl.spec.inside : undefined },
  }),
  impliedEdges: (nodes: readonly BuiltNode<ThingSpec>[]): ImpliedEdge[] =>
    nodes.flatMap((n) => (n.spec.inside === undefined ? [] : [{ from: n.id, on: n.spec.inside, why: `it lies inside "${n.spec.inside}"`, source: n.locate(['spec', 'inside']) }])),
};

/** Compiles one goal file `g.yaml` whose nodes are the given YAML lines. */
function compile(nodes: string) {
  const text = `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: g }
spec:
  nodes:
${nodes}`;
  const { documents, diagnostics } = parseGoalText('g.yaml', text);
  const r = new GoalCompiler({ factory }).compile(documents, diagnostics);
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

describe('GoalCompiler: edges the domain implies (NodeSpecFactory.impliedEdges)', () => {
  it('adds them as implicit edges, located at the field that implies them', () => {
    const r = compile(`    - { id: file, type: test.thing, spec: { inside: dir } }
    - { id: dir, type: test.thing }
`);
    expect(r.lines).toEqual([]);
    expect(r.graph!.get('file')!.dependsOn).toEqual([{ on: 'dir', implicit: true, source: { file: 'g.yaml', line: 6, col: 53 }, why: 'it lies inside "dir"' }]);
    expect(r.graph!.order.map((n) => n.id)).toEqual(['dir', 'file']);
  });

  it('does not add one the node already has: the written edge stands, once', () => {
    const r = compile(`    - { id: file, type: test.thing, dependsOn: [dir], spec: { inside: dir } }
    - { id: dir, type: test.thing }
`);
    expect(r.lines).toEqual([]);
    expect(r.graph!.get('file')!.dependsOn).toEqual([expect.objectContaining({ on: 'dir', implicit: false })]);
  });

  it('skips one against the goal\'s word (its target depends on it): no cycle in a goal set that compiled before', () => {
    const r = compile(`    - { id: file, type: test.thing, spec: { inside: dir } }
    - { id: dir, type: test.thing, dependsOn: [file] }
`);
    expect(r.lines).toEqual([]);
    expect(r.graph!.get('file')!.dependsOn).toEqual([]);
    expect(r.graph!.order.map((n) => n.id)).toEqual(['file', 'dir']);
  });

  it('skips one against a reference too: a node that reads an output of a node inside it was valid before, and is', () => {
    const r = compile(`    - { id: file, type: test.thing, spec: { inside: dir } }
    - { id: dir, type: test.thing, spec: { mode: "\${nodes.file.outputs.sha256}" } }
`);
    expect(r.lines).toEqual([]);
    expect(r.graph!.get('file')!.dependsOn).toEqual([]);
    expect(r.graph!.order.map((n) => n.id)).toEqual(['file', 'dir']);
  });

  it('names a cycle it closes through another node with the field\'s file:line:col and why', () => {
    const r = compile(`    - { id: file, type: test.thing, spec: { inside: dir } }
    - { id: dir, type: test.thing, dependsOn: [x] }
    - { id: x, type: test.thing, dependsOn: [file] }
`);
    expect(r.graph).toBeUndefined();
    expect(r.lines).toEqual([
      'g.yaml:6:53: error dependency-cycle: dependency cycle: file -> dir (g.yaml:6:53: it lies inside "dir") -> x (g.yaml:7:48) -> file (g.yaml:8:46)',
    ]);
  });

  it('keeps two implied edges that oppose each other: the cycle they make is an error at the field, not the first edge alone', () => {
    const r = compile(`    - { id: a, type: test.thing, spec: { inside: b } }
    - { id: b, type: test.thing, spec: { inside: a } }
`);
    expect(r.graph).toBeUndefined();
    expect(r.lines).toEqual(['g.yaml:6:50: error dependency-cycle: dependency cycle: a -> b (g.yaml:6:50: it lies inside "b") -> a (g.yaml:7:50: it lies inside "a")']);
  });

  it('leaves out edges to or from nodes that are not built', () => {
    const r = compile(`    - { id: file, type: test.thing, spec: { inside: nowhere } }
`);
    expect(r.lines).toEqual([]);
    expect(r.graph!.get('file')!.dependsOn).toEqual([]);
  });
});
