import { describe, expect, it } from 'vitest';
import { formatDiagnostic, GoalCompiler, NODE_SPEC, parseGoalText } from '../../src/runtime/index.ts';
import type { NodeSpec, NodeSpecFactory, Severity } from '../../src/runtime/index.ts';

/**
 * A whole number written in digits from 1e21 on (`SourceDocument.inexactNumbers`) is an error where it
 * is written, said once: not again where the domain already refuses the value there. A domain's warning
 * or note there refuses nothing, so it must not stand in for the error. (The infra domain has no warning
 * that can land on a number: hence a least domain that gives one where it is asked to.)
 */

/** One type, whose build says `severity` at `spec.n` when the spec has an `n`. */
function factory(severity: Severity): NodeSpecFactory<NodeSpec> {
  return {
    documentKinds: [],
    nodeTypes: ['test.thing'],
    acceptDocument: () => undefined,
    build: (decl, diag) => {
      if (decl.spec.n !== undefined) diag.add(decl.locate(['spec', 'n']), severity, 'test-finding', 'n is large');
      return severity === 'error' ? undefined : { spec: { [NODE_SPEC]: true, type: decl.type, backendId: 'b', digest: decl.id } };
    },
  };
}

function compile(severity: Severity, n: string) {
  const text = `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: g }
spec:
  nodes:
    - { id: a, type: test.thing, spec: { n: ${n} } }
`;
  const { documents, diagnostics } = parseGoalText('g.yaml', text);
  const r = new GoalCompiler({ factory: factory(severity) }).compile(documents, diagnostics);
  return { graph: r.graph, lines: r.diagnostics.map(formatDiagnostic) };
}

const inexact =
  'g.yaml:6:45: error invalid-value: 1000000000000000000000 is a whole number beyond ±9007199254740991 (2^53−1), read as the nearest double, 1e+21, which may not be the number written: a string ("1000000000000000000000") keeps it as written';

describe('GoalCompiler: a whole number from 1e21 on, with something else said where it is written', () => {
  it.each([
    { what: 'a warning', severity: 'warning' as const },
    { what: 'a note (info, as a policy finding below its level)', severity: 'info' as const },
  ])('$what there hides no error: the number is refused all the same', ({ severity }) => {
    const r = compile(severity, '1000000000000000000000');
    expect(r.lines).toEqual([inexact, `g.yaml:6:45: ${severity} test-finding: n is large`]);
    expect(r.graph).toBeUndefined();
  });

  it('an error there is the one said: the value is refused once', () => {
    expect(compile('error', '1000000000000000000000').lines).toEqual(['g.yaml:6:45: error test-finding: n is large']);
  });

  it('a warning on a number JSON carries exactly stays a warning', () => {
    const r = compile('warning', '1e21');
    expect(r.lines).toEqual(['g.yaml:6:45: warning test-finding: n is large']);
    expect(r.graph).toBeDefined();
  });
});
