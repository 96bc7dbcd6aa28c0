import { describe, expect, it } from 'vitest';
import { cli, repoRoot } from '../support/cli.ts';

/**
 * `check` on goals that compile with warnings: a rule's level for an environment no goal has
 * (`prdo`, meant `prod`) was said by `validate` and by no format of `check`, whose report then
 * judged the goals under the default level with nothing to say why.
 */
const goals = 'test/fixtures/policy/check-warnings';
const warning = { file: `${goals}/goals.yaml`, line: 10, col: 33, severity: 'warning', code: 'unknown-environment', message: 'no goal has environment "prdo" (did you mean "prod"?)' };

interface SarifResult {
  ruleId: string;
  level: string;
  message: { text: string };
  locations: { physicalLocation: { artifactLocation: { uri: string }; region?: { startLine: number; startColumn: number } } }[];
}

describe('check shows the compile warnings beside the findings', () => {
  it('text: the warning as validate prints it, then the report; exit 0', async () => {
    const r = await cli(['check', '--goals', goals], { cwd: repoRoot });
    expect(r.code, r.stderr).toBe(0);
    const line = `${goals}/goals.yaml:10:33: warning unknown-environment: no goal has environment "prdo" (did you mean "prod"?)`;
    expect((await cli(['validate', '--goals', goals], { cwd: repoRoot })).stdout).toContain(line);
    expect(r.stdout.split('\n').slice(0, 2)).toEqual([line, 'policy check: WARN (1 goal, 1 node: 0 block, 1 warn, 0 pass; 1 finding)']);
  });

  it('json: in the report\'s diagnostics, without the findings the report holds already', async () => {
    const r = await cli(['check', '--goals', goals, '--format', 'json'], { cwd: repoRoot });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { verdict: string; findings: unknown[]; diagnostics: unknown[] };
    expect(report).toMatchObject({ verdict: 'warn', diagnostics: [warning] });
    expect(report.findings).toHaveLength(1);
  });

  it('sarif: a result of level warning, beside the finding', async () => {
    const r = await cli(['check', '--goals', goals, '--format', 'sarif'], { cwd: repoRoot });
    expect(r.code, r.stderr).toBe(0);
    const results = (JSON.parse(r.stdout) as { runs: { results: SarifResult[] }[] }).runs[0]!.results;
    expect(results.map((x) => `${x.ruleId} ${x.level}`)).toEqual(['private-files warning', 'unknown-environment warning']);
    expect(results[1]).toMatchObject({
      message: { text: warning.message },
      locations: [{ physicalLocation: { artifactLocation: { uri: `${goals}/goals.yaml` }, region: { startLine: 10, startColumn: 33 } } }],
    });
  });
});
