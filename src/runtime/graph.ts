import type { Diagnostic } from './diagnostics.ts';
import type { DesiredNode, NodeId, NodeSpec } from './node-spec.ts';
import { formatLocation } from './node-spec.ts';

/**
 * The compiled, immutable node graph. Only a new compile of the goals makes a
 * new graph; nothing at run time (least of all the fault policy) changes one.
 */
export class DesiredGraph<S extends NodeSpec = NodeSpec> {
  /** Nodes in a topological order: every node after all it depends on. */
  readonly order: readonly DesiredNode<S>[];
  private readonly byId: ReadonlyMap<NodeId, DesiredNode<S>>;
  private readonly dependentsOf: ReadonlyMap<NodeId, readonly NodeId[]>;

  private constructor(order: DesiredNode<S>[], dependents: Map<NodeId, NodeId[]>) {
    this.order = Object.freeze(order);
    this.byId = new Map(order.map((n) => [n.id, n]));
    for (const [k, v] of dependents) dependents.set(k, Object.freeze(v) as NodeId[]);
    this.dependentsOf = dependents;
    Object.freeze(this);
  }

  get size(): number {
    return this.order.length;
  }

  get(id: NodeId): DesiredNode<S> | undefined {
    return this.byId.get(id);
  }

  has(id: NodeId): boolean {
    return this.byId.has(id);
  }

  ids(): IterableIterator<NodeId> {
    return this.byId.keys();
  }

  /** Nodes that depend directly on `id`. */
  dependents(id: NodeId): readonly NodeId[] {
    return this.dependentsOf.get(id) ?? [];
  }

  /** Ids `id` depends on directly. */
  dependencies(id: NodeId): readonly NodeId[] {
    return this.byId.get(id)?.dependsOn.map((d) => d.on) ?? [];
  }

  /** Everything downstream of `id` (transitively), not including it. */
  downstream(id: NodeId): Set<NodeId> {
    const seen = new Set<NodeId>();
    const stack = [...this.dependents(id)];
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (seen.has(next)) continue;
      seen.add(next);
      stack.push(...this.dependents(next));
    }
    return seen;
  }

  /**
   * Builds a graph, or reports every cycle (with the `file:line` of each edge)
   * and every edge to an unknown node. Nodes are frozen deeply enough that a
   * caller cannot rewire them.
   */
  static build<S extends NodeSpec>(
    nodes: readonly DesiredNode<S>[],
  ): { ok: true; graph: DesiredGraph<S> } | { ok: false; diagnostics: Diagnostic[] } {
    const byId = new Map<NodeId, DesiredNode<S>>();
    for (const n of nodes) byId.set(n.id, n);
    const diagnostics: Diagnostic[] = [];
    const dependents = new Map<NodeId, NodeId[]>();
    for (const n of nodes) {
      for (const dep of n.dependsOn) {
        if (!byId.has(dep.on)) {
          diagnostics.push({ ...dep.source, severity: 'error', code: 'unknown-node', message: `node "${n.id}" depends on unknown node "${dep.on}"` });
          continue;
        }
        let list = dependents.get(dep.on);
        if (list === undefined) dependents.set(dep.on, (list = []));
        list.push(n.id);
      }
    }
    if (diagnostics.length > 0) return { ok: false, diagnostics };

    // Kahn's algorithm, in declaration order for a stable result.
    const indegree = new Map<NodeId, number>();
    for (const n of nodes) indegree.set(n.id, new Set(n.dependsOn.map((d) => d.on)).size);
    const queue: NodeId[] = nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
    const order: DesiredNode<S>[] = [];
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i]!;
      order.push(byId.get(id)!);
      for (const d of new Set(dependents.get(id) ?? [])) {
        const left = indegree.get(d)! - 1;
        indegree.set(d, left);
        if (left === 0) queue.push(d);
      }
    }
    if (order.length !== nodes.length) {
      return { ok: false, diagnostics: findCycles(nodes, byId, indegree) };
    }
    for (const n of order) {
      Object.freeze(n.dependsOn);
      Object.freeze(n.settings);
      Object.freeze(n);
    }
    return { ok: true, graph: new DesiredGraph(order, dependents) };
  }
}

/** Each cycle once, printed whole: `a -> b (goals/x.yaml:4) -> a (goals/x.yaml:9)`. */
function findCycles<S extends NodeSpec>(
  nodes: readonly DesiredNode<S>[],
  byId: Map<NodeId, DesiredNode<S>>,
  indegree: Map<NodeId, number>,
): Diagnostic[] {
  const remaining = new Set(nodes.filter((n) => indegree.get(n.id)! > 0).map((n) => n.id));
  const diagnostics: Diagnostic[] = [];
  const done = new Set<NodeId>();
  for (const start of remaining) {
    if (done.has(start)) continue;
    // Walk dependencies inside the remaining set until a node repeats.
    const path: NodeId[] = [];
    const index = new Map<NodeId, number>();
    let current: NodeId | undefined = start;
    while (current !== undefined && !index.has(current) && !done.has(current)) {
      index.set(current, path.length);
      path.push(current);
      const next: NodeId | undefined = byId.get(current)!.dependsOn.find((d) => remaining.has(d.on) && !done.has(d.on))?.on;
      current = next;
    }
    for (const id of path) done.add(id);
    if (current === undefined || !index.has(current)) continue;
    const cycle = path.slice(index.get(current));
    const parts: string[] = [cycle[0]!];
    for (let i = 0; i < cycle.length; i++) {
      const from = byId.get(cycle[i]!)!;
      const to = cycle[(i + 1) % cycle.length]!;
      const edge = from.dependsOn.find((d) => d.on === to)!;
      parts.push(`-> ${to} (${formatLocation(edge.source)})`);
    }
    const first = byId.get(cycle[0]!)!;
    const firstEdge = first.dependsOn.find((d) => d.on === cycle[1 % cycle.length])!;
    diagnostics.push({
      ...firstEdge.source,
      severity: 'error',
      code: 'dependency-cycle',
      message: `dependency cycle: ${parts.join(' ')}`,
    });
  }
  return diagnostics;
}
