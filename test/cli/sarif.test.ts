import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * `check --format sarif` must produce a log that Microsoft's SARIF validator
 * (the SARIF SDK's multitool, from npm) accepts: schema-valid and free of
 * rule errors. Code-review tools read it to show findings inline.
 */
const repo = join(import.meta.dirname, '..', '..');
const cli = join(repo, 'bin', 'desiredstate.js');
const multitool = join(repo, 'node_modules', '.bin', 'sarif-multitool');
const dir = mkdtempSync(join(tmpdir(), 'ds-sarif-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface ValidationLog {
  runs: { results?: { ruleId: string; level?: string; message: { text?: string } }[]; invocations?: { executionSuccessful: boolean }[] }[];
}

function validate(file: string): ValidationLog {
  const out = join(dir, `${Math.random().toString(36).slice(2)}.validation.sarif`);
  const r = spawnSync(multitool, ['validate', file, '--output', out, '--log', 'ForceOverwrite', '--quiet'], { encoding: 'utf8', timeout: 120_000 });
  expect(r.error, r.stderr).toBeUndefined();
  return JSON.parse(readFileSync(out, 'utf8')) as ValidationLog;
}

describe('check --format sarif', () => {
  it.each([
    { name: 'the bundled organisation policy (warnings only)', goals: 'examples/org-policy', exit: 0 },
    { name: 'a goal set with blocking findings', goals: 'test/fixtures/policy/sarif-block', exit: 1 },
    { name: 'a finding and a compile warning', goals: 'test/fixtures/policy/check-warnings', exit: 0 },
  ])('$name: accepted by the SARIF validator', ({ goals, exit }) => {
    const r = spawnSync(process.execPath, [cli, 'check', '--goals', goals, '--format', 'sarif'], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(exit);
    const file = join(dir, `${goals.replaceAll('/', '_')}.sarif`);
    writeFileSync(file, r.stdout);
    const log = JSON.parse(r.stdout) as { version: string; runs: { results: unknown[] }[] };
    expect(log.version).toBe('2.1.0');
    expect(log.runs[0]!.results.length).toBeGreaterThan(0);
    const validation = validate(file);
    const problems = (validation.runs[0]?.results ?? []).filter((x) => x.level === 'error');
    expect(problems.map((p) => `${p.ruleId}: ${p.message.text ?? ''}`)).toEqual([]);
    expect(validation.runs[0]?.invocations?.[0]?.executionSuccessful).toBe(true);
  });

  // Goals that do not compile: the upload still gets a log, its results the compile diagnostics.
  // Run from the temporary directory so that URIs are relative, as they are in CI.
  it.each([
    {
      name: 'a goal file with an unknown type',
      files: { 'g.yaml': 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: web }\nspec:\n  nodes:\n    - id: a\n      type: local.fiel\n      spec: { path: x }\n' },
      expected: { ruleId: 'unknown-type', level: 'error', locations: [{ physicalLocation: { artifactLocation: { uri: 'broken-unknown-type/g.yaml' }, region: { startLine: 7, startColumn: 13 } } }] },
    },
    {
      name: 'an empty goal directory (line 0: no region)',
      files: {},
      expected: { ruleId: 'no-goals', level: 'error', locations: [{ physicalLocation: { artifactLocation: { uri: 'broken-no-goals' } } }] },
    },
  ])('goals that do not compile, $name: the diagnostics as a log the validator accepts, exit 1', ({ files, expected }) => {
    const goals = `broken-${expected.ruleId}`;
    mkdirSync(join(dir, goals));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, goals, name), text);
    const r = spawnSync(process.execPath, [cli, 'check', '--goals', goals, '--format', 'sarif'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(1);
    const file = join(dir, `${goals}.sarif`);
    writeFileSync(file, r.stdout);
    const log = JSON.parse(r.stdout) as { version: string; runs: { results: { locations: { physicalLocation: object }[] }[] }[] };
    expect(log.version).toBe('2.1.0');
    expect(log.runs[0]!.results).toEqual([expect.objectContaining(expected)]);
    expect(log.runs[0]!.results[0]!.locations[0]!.physicalLocation).toEqual(expected.locations[0]!.physicalLocation);
    const validation = validate(file);
    const problems = (validation.runs[0]?.results ?? []).filter((x) => x.level === 'error');
    expect(problems.map((p) => `${p.ruleId}: ${p.message.text ?? ''}`)).toEqual([]);
    expect(validation.runs[0]?.invocations?.[0]?.executionSuccessful).toBe(true);
  });

  // `--goals` given as an absolute path: a URI starting with "/" is a validator error (SARIF1004),
  // and code scanning cannot place it. Inside the working directory it is made relative; outside, a file:// URI.
  it.each([
    { name: 'inside the working directory: relative', inside: true },
    { name: 'outside the working directory: a file:// URI', inside: false },
  ])('an absolute --goals path, $name, accepted by the validator', ({ inside }) => {
    const goals = join(dir, `abs-${String(inside)}`);
    mkdirSync(goals);
    writeFileSync(join(goals, 'g.yaml'), 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: web }\nspec:\n  nodes:\n    - id: a\n      type: local.fiel\n      spec: { path: x }\n');
    const cwd = inside ? dir : repo;
    const r = spawnSync(process.execPath, [cli, 'check', '--goals', goals, '--format', 'sarif'], { cwd, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(1);
    const file = join(dir, `abs-${String(inside)}.sarif`);
    writeFileSync(file, r.stdout);
    const log = JSON.parse(r.stdout) as { runs: { results: { locations: { physicalLocation: { artifactLocation: { uri: string } } }[] }[] }[] };
    const uri = log.runs[0]!.results[0]!.locations[0]!.physicalLocation.artifactLocation.uri;
    expect(uri).toBe(inside ? `abs-true/g.yaml` : `file://${goals}/g.yaml`);
    const problems = (validate(file).runs[0]?.results ?? []).filter((x) => x.level === 'error');
    expect(problems.map((p) => `${p.ruleId}: ${p.message.text ?? ''}`)).toEqual([]);
  });

  it('the validator itself rejects a broken log (so the check above can fail)', () => {
    const file = join(dir, 'broken.sarif');
    writeFileSync(file, JSON.stringify({ version: '2.1.0', runs: [{ tool: { driver: {} }, results: [{ message: {} }] }] }));
    const problems = (validate(file).runs[0]?.results ?? []).filter((x) => x.level === 'error');
    expect(problems.length).toBeGreaterThan(0);
  });
});
