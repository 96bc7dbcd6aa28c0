/**
 * The wrapper invariant, held by the type checker: a bare `InfraNodeSpec`
 * (WHAT) is not a runtime `NodeSpec`; only `desiredNodeSpec()` (which adds
 * the `[NODE_SPEC]` brand and a backendId) makes one.
 *
 * This file proves it at compile time (`npx tsc -p .`, part of `npm test`):
 * each `@ts-expect-error` below must meet an error, or tsc fails with
 * "Unused '@ts-expect-error' directive", and `expectTypeOf(...).not.toExtend`
 * fails to type-check if the bare spec becomes assignable.
 *
 * Checked by hand: with `readonly [NODE_SPEC]: true;` commented out of
 * `NodeSpec` in src/runtime/node-spec.ts, `npx tsc -p .` fails with
 *   error TS2578: Unused '@ts-expect-error' directive.   (the DesiredNode look-alike)
 *   error TS2578: Unused '@ts-expect-error' directive.   (provision(lookalike))
 *   error TS2554 at `expectTypeOf(lookalike).not.toExtend<NodeSpec>()`
 * that is, on the look-alike (a bare spec that also carries `backendId` and
 * `digest`): without the brand, structural typing lets it through. The plain
 * bare spec still fails for lack of those fields, which is why the look-alike
 * is here. Restored, tsc is clean.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { desiredNodeSpec } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec, InfraNodeSpec, K8sNamespaceSpec } from '../../src/infra/index.ts';
import { NODE_SPEC } from '../../src/runtime/index.ts';
import type { DesiredNode, NodeSpec } from '../../src/runtime/index.ts';

const bare: K8sNamespaceSpec = { type: 'k8s.namespace', name: 'team-data', labels: {}, annotations: {} };
// The most dangerous bare spec: structurally it has every field NodeSpec names except the brand.
const lookalike = { ...bare, backendId: 'k8s', digest: 'abc' };
const wrapped = desiredNodeSpec(bare, 'k8s');

const settings = { selfHeal: true, prune: false, deletionPolicy: 'Orphan' as const, ignoreFields: [] };
const source = { file: 'goals/k8s.yaml', line: 1, col: 1 };

function provision(spec: NodeSpec): string {
  return spec.backendId;
}

describe('the wrapper invariant (checked by tsc; these assertions also run)', () => {
  it('a bare spec cannot be put on a DesiredNode', () => {
    // @ts-expect-error a bare InfraNodeSpec has no NodeSpec brand
    const n1: DesiredNode = { id: 'ns', goal: 'g', spec: bare, dependsOn: [], settings, source };
    // @ts-expect-error nor has a look-alike with backendId and digest
    const n2: DesiredNode = { id: 'ns', goal: 'g', spec: lookalike, dependsOn: [], settings, source };
    const ok: DesiredNode<InfraDesiredNodeSpec> = { id: 'ns', goal: 'g', spec: wrapped, dependsOn: [], settings, source };
    expect([n1.id, n2.id, ok.spec.backendId]).toEqual(['ns', 'ns', 'k8s']);
  });

  it('a bare spec cannot be passed where a NodeSpec is expected', () => {
    // @ts-expect-error a bare InfraNodeSpec is not a NodeSpec
    expect(() => provision(bare)).not.toThrow();
    // @ts-expect-error nor is a look-alike
    expect(provision(lookalike)).toBe('k8s');
    expect(provision(wrapped)).toBe('k8s');
  });

  it('expectTypeOf agrees', () => {
    expectTypeOf(bare).not.toExtend<NodeSpec>();
    expectTypeOf(lookalike).not.toExtend<NodeSpec>();
    expectTypeOf<InfraNodeSpec>().not.toExtend<NodeSpec>();
    expectTypeOf(wrapped).toExtend<NodeSpec>();
    expectTypeOf<InfraDesiredNodeSpec>().toExtend<NodeSpec>();
  });

  it('the brand is set at run time only by the wrapper', () => {
    expect(NODE_SPEC in bare).toBe(false);
    expect(wrapped[NODE_SPEC]).toBe(true);
    expect(Object.isFrozen(wrapped)).toBe(true);
  });
});
