import { describe, expect, it } from 'vitest';
import { diagnosticsToSarif, SARIF_VERSION } from '../../../src/infra/policy/index.ts';
import type { Diagnostic } from '../../../src/runtime/index.ts';

/** The SARIF log of goals that do not compile (the CLI test runs it through Microsoft's validator). */
function diagnostic(over: Partial<Diagnostic>): Diagnostic {
  return { file: 'goals/g.yaml', line: 3, col: 5, severity: 'error', code: 'unknown-field', message: 'spec.bogus is not a field of local.file', ...over };
}

describe('diagnosticsToSarif', () => {
  it.each([
    { name: 'an error is an error', severity: 'error', level: 'error' },
    { name: 'a warning is a warning', severity: 'warning', level: 'warning' },
    { name: 'info is a note', severity: 'info', level: 'note' },
  ] as const)('level: $name', ({ severity, level }) => {
    const result = diagnosticsToSarif([diagnostic({ severity })]).runs[0]!.results[0]!;
    expect(result).toMatchObject({ ruleId: 'unknown-field', level, message: { text: 'spec.bogus is not a field of local.file' }, properties: { severity } });
  });

  it.each([
    { name: 'a line and column give a region', d: diagnostic({}), location: { artifactLocation: { uri: 'goals/g.yaml' }, region: { startLine: 3, startColumn: 5 } } },
    { name: 'line 0 is the whole file or directory: no region', d: diagnostic({ file: 'goals', line: 0, col: 0 }), location: { artifactLocation: { uri: 'goals' } } },
    { name: 'an absolute path (outside the working directory) is a file:// URI', d: diagnostic({ file: '/srv/goals/my app.yaml' }), location: { artifactLocation: { uri: 'file:///srv/goals/my%20app.yaml' }, region: { startLine: 3, startColumn: 5 } } },
    { name: 'paths are percent-encoded URI references', d: diagnostic({ file: 'goals/my app.yaml', line: 0, col: 0 }), location: { artifactLocation: { uri: 'goals/my%20app.yaml' } } },
  ])('location: $name', ({ d, location }) => {
    expect(diagnosticsToSarif([d]).runs[0]!.results[0]!.locations).toEqual([{ physicalLocation: location }]);
  });

  it('one rule per diagnostic code, each result pointing at its rule', () => {
    const log = diagnosticsToSarif([diagnostic({ code: 'a' }), diagnostic({ code: 'b' }), diagnostic({ code: 'a', line: 9 })], { toolVersion: '1.2.3' });
    expect(log.version).toBe(SARIF_VERSION);
    const run = log.runs[0]!;
    expect(run.tool.driver).toMatchObject({ name: 'desiredstate', version: '1.2.3' });
    expect(run.tool.driver.rules.map((r) => r.id)).toEqual(['a', 'b']);
    expect(run.results.map((r) => run.tool.driver.rules[r.ruleIndex]!.id)).toEqual(['a', 'b', 'a']);
  });
});
