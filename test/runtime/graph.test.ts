import { describe, expect, it } from 'vitest';
import { DesiredGraph, NODE_SPEC } from '../../src/runtime/index.ts';
import type { DesiredNode, NodeSpec } from '../../src/runtime/index.ts';

const spec: NodeSpec = { [NODE_SPEC]: true, type: 'test.thing', backendId: 'b', digest: 'd' };
const settings = { selfHeal: true, prune: false, deletionPolicy: 'Orphan' as const, ignoreFields: [] };

/** `a:b,c` = node a depends on b and c; each edge's source line is its index in the spec list. */
function nodes(...decls: string[]): DesiredNode[] {
  return decls.map((d, i) => {
    const [id, deps = ''] = d.split(':');
    return {
      id: id!,
      goal: 'g',
      spec,
      settings: { ...settings },
      source: { file: 'g.yaml', line: i + 1, col: 7 },
      dependsOn: deps
        .split(',')
        .filter((x) => x !== '')
        .map((on, j) => ({ on, implicit: false, source: { file: 'g.yaml', line: i + 1, col: 20 + j } })),
    };
  });
}

function build(...decls: string[]): DesiredGraph {
  const r = DesiredGraph.build(nodes(...decls));
  if (!r.ok) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.graph;
}

describe('DesiredGraph order', () => {
  it.each([
    { name: 'independent nodes keep declaration order', decls: ['a', 'b', 'c'], order: ['a', 'b', 'c'] },
    { name: 'a dependency declared later comes first', decls: ['a:b', 'b'], order: ['b', 'a'] },
    { name: 'diamond', decls: ['d:b,c', 'b:a', 'c:a', 'a'], order: ['a', 'b', 'c', 'd'] },
    { name: 'duplicate edges count once', decls: ['a:b,b', 'b'], order: ['b', 'a'] },
    { name: 'long chain declared backwards', decls: Array.from({ length: 50 }, (_, i) => `n${i}:${i < 49 ? `n${i + 1}` : ''}`), order: Array.from({ length: 50 }, (_, i) => `n${49 - i}`) },
  ])('$name', ({ decls, order }) => {
    const g = build(...decls);
    expect(g.order.map((n) => n.id)).toEqual(order);
    const pos = new Map(g.order.map((n, i) => [n.id, i]));
    for (const n of g.order) for (const d of n.dependsOn) expect(pos.get(d.on)!).toBeLessThan(pos.get(n.id)!);
    // position(id) is that same index in `order`.
    for (const n of g.order) expect(g.position(n.id)).toBe(pos.get(n.id));
  });

  it('position: an id not in the graph is -1', () => {
    expect(build('a:b', 'b').position('nope')).toBe(-1);
  });
});

describe('DesiredGraph navigation', () => {
  const g = build('d:b,c', 'b:a', 'c:a', 'a', 'e:d', 'x');
  it.each([
    { name: 'dependents of a root', id: 'a', dependents: ['b', 'c'], downstream: ['b', 'c', 'd', 'e'], dependencies: [] },
    { name: 'dependents of a middle node', id: 'b', dependents: ['d'], downstream: ['d', 'e'], dependencies: ['a'] },
    { name: 'a leaf has none', id: 'e', dependents: [], downstream: [], dependencies: ['d'] },
    { name: 'an isolated node', id: 'x', dependents: [], downstream: [], dependencies: [] },
    { name: 'an unknown id', id: 'nope', dependents: [], downstream: [], dependencies: [] },
  ])('$name', ({ id, dependents, downstream, dependencies }) => {
    expect([...g.dependents(id)].sort()).toEqual(dependents);
    expect([...g.downstream(id)].sort()).toEqual(downstream);
    expect([...g.dependencies(id)]).toEqual(dependencies);
  });

  it('answers size, has, get and ids', () => {
    expect(g.size).toBe(6);
    expect(g.has('a')).toBe(true);
    expect(g.has('zz')).toBe(false);
    expect(g.get('d')?.dependsOn.map((d) => d.on)).toEqual(['b', 'c']);
    expect([...g.ids()].sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'x']);
  });
});

describe('DesiredGraph cycles', () => {
  it.each([
    { name: 'self-loop', decls: ['a:a'], messages: ['dependency cycle: a -> a (g.yaml:1:20)'] },
    { name: 'two nodes', decls: ['a:b', 'b:a'], messages: ['dependency cycle: a -> b (g.yaml:1:20) -> a (g.yaml:2:20)'] },
    {
      name: 'three nodes, with a node downstream of the cycle not reported',
      decls: ['x:a', 'a:c', 'b:a', 'c:b'],
      messages: ['dependency cycle: a -> c (g.yaml:2:20) -> b (g.yaml:4:20) -> a (g.yaml:3:20)'],
    },
    {
      name: 'two separate cycles, both reported',
      decls: ['a:b', 'b:a', 'c:d', 'd:c', 'e'],
      messages: ['dependency cycle: a -> b (g.yaml:1:20) -> a (g.yaml:2:20)', 'dependency cycle: c -> d (g.yaml:3:20) -> c (g.yaml:4:20)'],
    },
    {
      // The old walk marked c done on its way from p to the a<->b cycle and never reported c<->q.
      name: 'a cycle reached through another cycle',
      decls: ['p:c', 'c:a,q', 'q:c', 'a:b', 'b:a'],
      messages: ['dependency cycle: c -> q (g.yaml:2:21) -> c (g.yaml:3:20)', 'dependency cycle: a -> b (g.yaml:4:20) -> a (g.yaml:5:20)'],
    },
  ])('$name', ({ decls, messages }) => {
    const r = DesiredGraph.build(nodes(...decls));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.diagnostics.map((d) => d.message).sort()).toEqual([...messages].sort());
    expect(r.diagnostics.every((d) => d.code === 'dependency-cycle' && d.severity === 'error')).toBe(true);
  });

  it('reports edges to unknown nodes and duplicate ids', () => {
    const r = DesiredGraph.build(nodes('a:ghost', 'b', 'b'));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.diagnostics.map((d) => d.code).sort()).toEqual(['duplicate-node', 'unknown-node']);
  });
});

describe('DesiredGraph is frozen', () => {
  const g = build('b:a', 'a');
  // Test files are ES modules, so strict mode: writes to frozen objects throw.
  it.each([
    { name: 'the order array', mutate: () => (g.order as DesiredNode[]).push(g.order[0]!) },
    { name: 'a node', mutate: () => ((g.order[0] as { id: string }).id = 'x') },
    { name: 'a node’s settings', mutate: () => ((g.order[0]!.settings as { selfHeal: boolean }).selfHeal = false) },
    { name: 'a node’s edges', mutate: () => (g.get('b')!.dependsOn as unknown[]).pop() },
    { name: 'an edge', mutate: () => ((g.get('b')!.dependsOn[0] as { on: string }).on = 'b') },
    { name: 'an edge’s source', mutate: () => ((g.get('b')!.dependsOn[0]!.source as { line: number }).line = 0) },
    { name: 'the dependents list', mutate: () => (g.dependents('a') as string[]).push('zz') },
    { name: 'the graph itself', mutate: () => ((g as unknown as { order: unknown }).order = []) },
  ])('$name', ({ mutate }) => {
    expect(mutate).toThrow(TypeError);
  });
});

// Removed nodes are deleted only where their goal prunes now (node-record.ts, splitRemoved): the graph
// says whether each goal of its revision prunes, a goal left without nodes included.
describe('DesiredGraph.prunes', () => {
  it('a goal with nodes: theirs; a goal given without nodes: as given; a goal the revision lacks: unknown', () => {
    const r = DesiredGraph.build(nodes('a'), [{ name: 'emptied', prune: false }]);
    if (!r.ok) throw new Error('no graph');
    expect(r.graph.prunes('g')).toBe(false);
    expect(r.graph.prunes('emptied')).toBe(false);
    expect(r.graph.prunes('gone')).toBeUndefined();
    const pruning = DesiredGraph.build(nodes('a').map((n) => ({ ...n, settings: { ...n.settings, prune: true } })));
    expect(pruning.ok && pruning.graph.prunes('g')).toBe(true);
  });
});
