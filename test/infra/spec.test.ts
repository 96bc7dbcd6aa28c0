import { describe, expect, it } from 'vitest';
import { compileText } from '../support/compile.ts';

const goal = (nodes: string): string => `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  nodes:
${nodes}`;

// A NUL byte in a path validated, then every observe failed with a raw NUL in the fault
// message (and apply recorded a run): the system cannot name such a file. validate says so.
describe('infra specs: paths the system cannot name', () => {
  it.each([
    { name: 'a file path', node: '    - { id: f, type: local.file, spec: { path: "a\\0b", content: x } }', line: 'goals/test.yaml:6:48: error invalid-value: spec.path: a path cannot contain a NUL character' },
    { name: 'a directory path', node: '    - { id: d, type: local.directory, spec: { path: "d\\0" } }', line: 'goals/test.yaml:6:53: error invalid-value: spec.path: a path cannot contain a NUL character' },
    { name: 'a link target', node: '    - { id: l, type: local.symlink, spec: { path: l, target: "t\\0" } }', line: 'goals/test.yaml:6:62: error invalid-value: spec.target: a path cannot contain a NUL character' },
  ])('$name with a NUL is refused at its position', ({ node, line }) => {
    const r = compileText(goal(`${node}\n`));
    expect(r.lines).toEqual([line]);
    expect(r.graph).toBeUndefined();
  });
});
