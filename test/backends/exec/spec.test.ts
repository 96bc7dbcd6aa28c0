import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../../src/backends/index.ts';
import { BackendRegistry, InfraSpecFactory } from '../../../src/infra/index.ts';
import { formatDiagnostic, GoalCompiler, parseGoalText } from '../../../src/runtime/index.ts';

/**
 * `generic.resource`'s `input` is a map whose values are any JSON: the exec
 * protocol's drift rule (GOAL-FORMAT.md) is "every key of input whose value
 * differs from the same key in state", and `state` is an object, so an input
 * without keys could never drift. A list or scalar is refused where it is
 * written rather than accepted and never corrected.
 */

const registry = new BackendRegistry(builtinBackendFactories);

function compile(input: string): { lines: string[]; spec: unknown } {
  const text = `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: exec }
spec: { type: exec }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: g }
spec:
  nodes:
    - id: n
      type: generic.resource
      backend: exec
      spec:
        commands: { read: [r], create: [c] }
        input: ${input}
`;
  const parsed = parseGoalText('g.yaml', text);
  const result = new GoalCompiler({ factory: new InfraSpecFactory({ registry }) }).compile(parsed.documents, parsed.diagnostics);
  return { lines: result.diagnostics.map(formatDiagnostic), spec: result.graph?.get('n')?.spec.spec };
}

describe('generic.resource input', () => {
  it('is a map whose values may be any JSON', () => {
    const r = compile('{ name: logs, days: 30, on: true, none: null, tags: [a, b], nested: { deep: [{ x: 1 }] } }');
    expect(r.lines).toEqual([]);
    expect(r.spec).toMatchObject({ input: { name: 'logs', days: 30, on: true, none: null, tags: ['a', 'b'], nested: { deep: [{ x: 1 }] } } });
  });

  it.each([
    { name: 'a list', input: '[1]', got: 'a list' },
    { name: 'a number', input: '5', got: 'the number 5' },
    { name: 'a string', input: 'logs', got: 'the string "logs"' },
  ])('refuses $name, at the value, since drift compares its keys', ({ input, got }) => {
    expect(compile(input).lines).toEqual([`g.yaml:16:16: error invalid-type: spec.input: expected a map, got ${got}`]);
  });
});
