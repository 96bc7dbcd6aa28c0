import type { Diagnostic } from './diagnostics.ts';
import type { Dependency, DesiredNode, NodeId, NodeSpec, SourceLocation } from './node-spec.ts';
import { formatLocation } from './node-spec.ts';

/**
 * The compiled, immutable node graph. Only a new compile of the goals makes a
 * new graph; nothing at run time (least of all the fault policy) changes one.
 */
export class DesiredGraph<S extends NodeSpec = NodeSpec> {
  /** Nodes in a topological order: every node after all it depends on. */
  readonly order: readonly DesiredNode<S>[];
  /** Declaration index of each id; `nodes` and `dependentsAt` are indexed by it. */
  private readonly indexOf: ReadonlyMap<NodeId, number>;
  private readonly nodes: readonly DesiredNode<S>[];
  private readonly dependentsAt: readonly (readonly NodeId[] | undefined)[];
  /** Each node's direct dependencies' ids, made once: every pass asks for them per node. */
  private readonly dependenciesAt: readonly (readonly NodeId[])[];
  /** Each node's index in `order`, by declaration index. */
  private readonly positionAt: Int32Array;
  /** Each goal of the revision, and whether it prunes (see `prunes`). */
  private readonly goalPrunes: ReadonlyMap<string, boolean>;

  private constructor(
    order: DesiredNode<S>[],
    indexOf: Map<NodeId, number>,
    nodes: readonly DesiredNode<S>[],
    dependentsAt: (NodeId[] | undefined)[],
    positionAt: Int32Array,
    goalPrunes: ReadonlyMap<string, boolean>,
  ) {
    this.goalPrunes = goalPrunes;
    this.order = Object.freeze(order);
    this.indexOf = indexOf;
    this.positionAt = positionAt;
    this.nodes = Object.freeze([...nodes]);
    for (const v of dependentsAt) if (v !== undefined) Object.freeze(v);
    this.dependentsAt = Object.freeze(dependentsAt);
    this.dependenciesAt = Object.freeze(this.nodes.map((n) => (n.dependsOn.length === 0 ? EMPTY : Object.freeze(n.dependsOn.map((d) => d.on)))));
    Object.freeze(this);
  }

  get size(): number {
    return this.order.length;
  }

  get(id: NodeId): DesiredNode<S> | undefined {
    const i = this.indexOf.get(id);
    return i === undefined ? undefined : this.nodes[i];
  }

  has(id: NodeId): boolean {
    return this.indexOf.has(id);
  }

  /** `id`'s index in `order`: a node's position is above those of all it depends on. -1 for an id not in the graph. */
  position(id: NodeId): number {
    const i = this.indexOf.get(id);
    return i === undefined ? -1 : this.positionAt[i]!;
  }

  ids(): IterableIterator<NodeId> {
    return this.indexOf.keys();
  }

  /** Nodes that depend directly on `id`. */
  dependents(id: NodeId): readonly NodeId[] {
    const i = this.indexOf.get(id);
    return (i === undefined ? undefined : this.dependentsAt[i]) ?? EMPTY;
  }

  /** Ids `id` depends on directly. */
  dependencies(id: NodeId): readonly NodeId[] {
    const i = this.indexOf.get(id);
    return (i === undefined ? undefined : this.dependenciesAt[i]) ?? EMPTY;
  }

  /**
   * Whether the goal of this name prunes in this revision (its `prune` now, for a node removed from
   * it); undefined for a goal the revision no longer has.
   */
  prunes(goal: string): boolean | undefined {
    return this.goalPrunes.get(goal);
  }

  /** Everything downstream of `id` (transitively), not including it. */
  downstream(id: NodeId): Set<NodeId> {
    const seen = new Set<NodeId>();
    const stack = [...this.dependents(id)];
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (seen.has(next)) continue;
      seen.add(next);
      for (const d of this.dependents(next)) stack.push(d);
    }
    return seen;
  }

  /**
   * Builds a graph, or reports every cycle (with the `file:line` of each edge)
   * and every edge to an unknown node. Nodes are frozen deeply enough that a
   * caller cannot rewire them. Works on declaration indices, so that 100k
   * nodes cost a few map look-ups each, not a dozen.
   */
  static build<S extends NodeSpec>(
    nodes: readonly DesiredNode<S>[],
    goals?: readonly { readonly name: string; readonly prune: boolean }[],
  ): { ok: true; graph: DesiredGraph<S> } | { ok: false; diagnostics: Diagnostic[] } {
    const indexOf = new Map<NodeId, number>();
    const diagnostics: Diagnostic[] = [];
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i]!;
      if (indexOf.has(n.id)) diagnostics.push({ ...pickLocation(n.source), severity: 'error', code: 'duplicate-node', message: `node id "${n.id}" is declared twice` });
      indexOf.set(n.id, i);
    }
    const { dependents: dependentIdx, indegree } = edgesByIndex(nodes, indexOf, (n, dep) =>
      diagnostics.push({ ...pickLocation(dep.source), severity: 'error', code: 'unknown-node', message: `node "${n.id}" depends on unknown node "${dep.on}"` }),
    );
    if (diagnostics.length > 0) return { ok: false, diagnostics };

    const sorted = topologicalOrder(dependentIdx, indegree);
    if (sorted.length !== nodes.length) {
      const left = new Map(nodes.map((n, i) => [n.id, indegree[i]!]));
      return { ok: false, diagnostics: findCycles(nodes, left) };
    }
    const order = sorted.map((i) => nodes[i]!);
    const positionAt = new Int32Array(nodes.length);
    sorted.forEach((i, position) => (positionAt[i] = position));
    for (const n of order) {
      for (const d of n.dependsOn) {
        Object.freeze(d.source);
        Object.freeze(d);
      }
      Object.freeze(n.source);
      Object.freeze(n.dependsOn);
      Object.freeze(n.settings);
      Object.freeze(n);
    }
    const dependentsAt = dependentIdx.map((list) => list?.map((i) => nodes[i]!.id));
    // A goal without nodes is known only from `goals`.
    const goalPrunes = new Map(goals?.map((g) => [g.name, g.prune]));
    for (const n of nodes) if (!goalPrunes.has(n.goal)) goalPrunes.set(n.goal, n.settings.prune);
    return { ok: true, graph: new DesiredGraph(order, indexOf, nodes, dependentsAt, positionAt, goalPrunes) };
  }
}

const EMPTY: readonly NodeId[] = Object.freeze([]);
const EMPTY_INDEX: readonly number[] = Object.freeze([]);

/** What cycle detection needs of a node: its id and its edges. */
interface Edges {
  readonly id: NodeId;
  readonly dependsOn: readonly Dependency[];
}

/**
 * Every dependency cycle among `nodes`, reported as `DesiredGraph.build`
 * does, for a goal set that has other errors (and so gets no graph). Edges
 * to ids outside `nodes` are ignored; the caller leaves out nodes whose
 * edges are not known to be right, so that a cycle is never an echo of
 * another error.
 */
export function dependencyCycles(nodes: readonly Edges[]): Diagnostic[] {
  const indexOf = new Map<NodeId, number>();
  nodes.forEach((n, i) => indexOf.set(n.id, i));
  const { dependents, indegree } = edgesByIndex(nodes, indexOf);
  if (topologicalOrder(dependents, indegree).length === nodes.length) return [];
  const known = nodes.map((n) => ({ id: n.id, dependsOn: n.dependsOn.filter((d) => indexOf.has(d.on)) }));
  return findCycles(known, new Map(known.map((n, i) => [n.id, indegree[i]!])));
}

/**
 * Each node's dependents and count of dependencies, by declaration index:
 * two edges to the same node (a dependsOn and a reference) make one. An edge
 * to an id not in `indexOf` is left out, and handed to `unknown`.
 */
function edgesByIndex(
  nodes: readonly Edges[],
  indexOf: ReadonlyMap<NodeId, number>,
  unknown?: (node: Edges, dep: Dependency) => void,
): { dependents: (number[] | undefined)[]; indegree: Int32Array } {
  const dependents: (number[] | undefined)[] = new Array<number[] | undefined>(nodes.length);
  const indegree = new Int32Array(nodes.length);
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    for (const dep of n.dependsOn) {
      const j = indexOf.get(dep.on);
      if (j === undefined) {
        unknown?.(n, dep);
        continue;
      }
      let list = dependents[j];
      if (list === undefined) dependents[j] = list = [];
      // Node i's edges are all added before node i + 1's: a repeat is always the last entry.
      if (list[list.length - 1] !== i) {
        list.push(i);
        indegree[i]!++;
      }
    }
  }
  return { dependents, indegree };
}

/**
 * Kahn's algorithm, in declaration order for a stable result: the indices in
 * a topological order. Shorter than the graph when there is a cycle; then
 * `indegree` (consumed) is above 0 exactly for the nodes left unordered.
 */
function topologicalOrder(dependents: readonly (readonly number[] | undefined)[], indegree: Int32Array): number[] {
  const queue: number[] = [];
  for (let i = 0; i < indegree.length; i++) if (indegree[i] === 0) queue.push(i);
  for (let q = 0; q < queue.length; q++) for (const d of dependents[queue[q]!] ?? EMPTY_INDEX) if (--indegree[d]! === 0) queue.push(d);
  return queue;
}

/**
 * One diagnostic per strongly connected component among the nodes Kahn's
 * algorithm could not order, each printing one whole cycle of it:
 * `a -> b (goals/x.yaml:4:16) -> a (goals/x.yaml:9:16)`.
 */
function findCycles(nodes: readonly Edges[], indegree: Map<NodeId, number>): Diagnostic[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const remaining = new Set(nodes.filter((n) => indegree.get(n.id)! > 0).map((n) => n.id));
  const next = (id: NodeId): NodeId[] => byId.get(id)!.dependsOn.map((d) => d.on).filter((on) => remaining.has(on));
  const order = new Map(nodes.map((n, i) => [n.id, i]));
  const diagnostics: Diagnostic[] = [];
  for (const component of cyclicComponents(remaining, next)) {
    // Start at the component's first declared node.
    const start = component.reduce((a, b) => (order.get(a)! <= order.get(b)! ? a : b));
    const cycle = cycleThrough(start, new Set(component), next);
    const edges = cycle.map((id, i) => byId.get(id)!.dependsOn.find((d) => d.on === cycle[(i + 1) % cycle.length])!);
    const parts = [cycle[0]!, ...edges.map((e) => `-> ${e.on} (${formatLocation(e.source)}${e.why === undefined ? '' : `: ${e.why}`})`)];
    diagnostics.push({
      ...pickLocation(edges[0]!.source),
      severity: 'error',
      code: 'dependency-cycle',
      message: `dependency cycle: ${parts.join(' ')}`,
    });
  }
  return diagnostics;
}

/**
 * The strongly connected components of `ids` and what they lead to (edges
 * from `next`) that hold a cycle: more than one node, or a node on itself. Tarjan's algorithm, iterative so that a long chain cannot overflow
 * the stack.
 */
export function cyclicComponents(ids: Iterable<NodeId>, next: (id: NodeId) => readonly NodeId[]): NodeId[][] {
  const index = new Map<NodeId, number>();
  const low = new Map<NodeId, number>();
  const onStack = new Set<NodeId>();
  const stack: NodeId[] = [];
  const components: NodeId[][] = [];
  let counter = 0;
  for (const root of ids) {
    if (index.has(root)) continue;
    const work: { id: NodeId; succ: readonly NodeId[]; i: number }[] = [];
    const enter = (id: NodeId): void => {
      index.set(id, counter);
      low.set(id, counter++);
      stack.push(id);
      onStack.add(id);
      work.push({ id, succ: next(id), i: 0 });
    };
    enter(root);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      if (top.i < top.succ.length) {
        const w = top.succ[top.i++]!;
        if (!index.has(w)) enter(w);
        else if (onStack.has(w)) low.set(top.id, Math.min(low.get(top.id)!, index.get(w)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) low.set(parent.id, Math.min(low.get(parent.id)!, low.get(top.id)!));
      if (low.get(top.id) === index.get(top.id)) {
        const component: NodeId[] = [];
        let w: NodeId;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== top.id);
        const selfLoop = component.length === 1 && next(top.id).includes(top.id);
        if (component.length > 1 || selfLoop) components.push(component);
      }
    }
  }
  return components;
}

/**
 * One whole cycle of a component (`cyclicComponents`), from `start`: its
 * first edge inside `members` followed until a node repeats, which closes it.
 */
export function cycleThrough(start: NodeId, members: ReadonlySet<NodeId>, next: (id: NodeId) => readonly NodeId[]): NodeId[] {
  const path: NodeId[] = [];
  const at = new Map<NodeId, number>();
  let current = start;
  while (!at.has(current)) {
    at.set(current, path.length);
    path.push(current);
    current = next(current).find((on) => members.has(on))!;
  }
  return path.slice(at.get(current));
}

function pickLocation(loc: SourceLocation): SourceLocation {
  return { file: loc.file, line: loc.line, col: loc.col };
}
