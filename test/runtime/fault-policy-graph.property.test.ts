import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileYaml, fileNode, goalYaml, harness } from '../support/controller-harness.ts';
import type { DesiredGraph } from '../../src/runtime/index.ts';
import type { InfraDesiredNodeSpec } from '../../src/infra/index.ts';

/**
 * The fault policy never mutates the graph: random fault sequences (per-node
 * rules over classes, operations and rates on the memory backend) driven
 * through several controller rounds leave nodes, edges and spec digests
 * exactly as compiled; dependents of failing nodes are blocked, never
 * removed; branches without faults converge.
 */

// Two chains and a loner: f0 <- f1 <- f2 (faulty branch), g0 <- g1 <- g2 (clean branch), h.
const FAULTY = ['f0', 'f1', 'f2'];
const CLEAN = ['g0', 'g1', 'g2', 'h'];
const YAML = goalYaml(
  fileNode('f0', 'F0') + fileNode('f1', 'F1', { dependsOn: ['f0'] }) + fileNode('f2', 'F2', { dependsOn: ['f1'] }) +
    fileNode('g0', 'G0') + fileNode('g1', 'G1', { dependsOn: ['g0'] }) + fileNode('g2', 'G2', { dependsOn: ['g1'] }) + fileNode('h', 'H'),
);

function snapshot(graph: DesiredGraph<InfraDesiredNodeSpec>): unknown {
  return graph.order.map((n) => ({ id: n.id, goal: n.goal, digest: n.spec.digest, spec: JSON.stringify(n.spec.spec), deps: n.dependsOn.map((d) => d.on), dependents: [...graph.dependents(n.id)], settings: JSON.stringify(n.settings) }));
}

const faultRule = fc.record({
  node: fc.constantFrom(...FAULTY),
  op: fc.constantFrom('observe', 'create', 'update'),
  class: fc.constantFrom('transient', 'throttled', 'auth', 'permanent', 'unknown'),
  rate: fc.constantFrom(0.3, 0.7, 1),
});

describe('fault policy never mutates the graph (property)', () => {
  it('random fault sequences: graph identical after each round, dependents blocked, clean branches ready', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(faultRule, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 1000 }), fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 3, maxLength: 6 }), async (rules, seed, rounds) => {
        // The root of the faulty branch always fails its create, so its dependents are always blocked.
        const faults = [{ node: 'f0', op: 'create', class: 'permanent' }, ...rules];
        const h = harness({ memory: { faults, seed }, rng: () => 0.5 });
        try {
          const { graph } = compileYaml(YAML);
          const before = snapshot(graph);
          await h.controller.setGraph(graph);
          await h.settle();
          for (const seconds of rounds) {
            await h.advance(seconds * 1000, 5000);
            expect(h.controller.currentGraph).toBe(graph);
            expect(snapshot(graph)).toEqual(before);
            expect(graph.order.every((n) => Object.isFrozen(n) && Object.isFrozen(n.dependsOn) && Object.isFrozen(n.spec))).toBe(true);
            const status = new Map(h.store.listNodes().map((r) => [r.id, r.status]));
            // Every node is still known; f0 never gets created, so f1 and f2 wait on it.
            expect([...status.keys()].sort()).toEqual([...FAULTY, ...CLEAN].sort());
            expect(['failed', 'held', 'pending']).toContain(status.get('f0'));
            expect(status.get('f1')).toBe('blocked');
            expect(status.get('f2')).toBe('blocked');
            for (const id of CLEAN) expect(status.get(id)).toBe('ready');
          }
        } finally {
          await h.close();
        }
      }),
      { numRuns: 40, seed: 20261122 },
    );
  }, 60_000);
});
