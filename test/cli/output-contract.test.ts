import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, oneFileGoal, tempProject } from '../support/cli.ts';

// What a script reads (CLI.md: `--format json` for machines, the exit status table): stdout holds
// exactly one JSON document, whatever the outcome, and nothing a human needed to see is lost from it.

/** The one JSON document on stdout (throws, failing the test, on anything else). */
const doc = (stdout: string): Record<string, unknown> => JSON.parse(stdout) as Record<string, unknown>;

describe('backends when the goals do not compile', () => {
  const p = tempProject('ds-out-backends-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  // The Backend document is broken: it used to vanish from the list (the implied `local` shown healthy), exit 0.
  p.write('backend.yaml', 'apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: pg }\nspec:\n  type: postgres\n  config: { host: 127.0.0.1, port: "abc", user: postgres }\n');

  it('text: the errors on stderr as file:line:col, exit 1', async () => {
    const r = await cli(['backends', ...p.args], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^goals\/backend\.yaml:6:\d+: error invalid-type: spec\.config\.port/m);
  });

  it('json: the errors in the document, exit 1', async () => {
    const r = await cli(['backends', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(1);
    const d = doc(r.stdout);
    expect(d).toMatchObject({ backends: expect.any(Array), diagnostics: [expect.objectContaining({ severity: 'error', code: 'invalid-type', file: 'goals/backend.yaml' })] });
  });
});

describe('plan and apply --format json keep the goal warnings', () => {
  const p = tempProject('ds-out-warnings-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  // A low finding is a warning: the text output prints it on stderr, the JSON output printed it nowhere.
  p.write('policy.yaml', 'apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: p }\nspec:\n  blockAt: high\n  requiredLabels:\n    - key: team\n      severity: { default: low }\n');
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));
  const env = { DESIREDSTATE_GOAL_CACHE: 'off' };

  it.each([{ name: 'plan', args: [] }, { name: 'apply', args: ['--yes'] }])('$name', async ({ name, args }) => {
    const r = await cli([name, ...args, '--format', 'json', ...p.args], { env });
    expect(r.code === 0 || r.code === 2, r.stderr).toBe(true);
    expect(doc(r.stdout).diagnostics).toEqual([expect.objectContaining({ severity: 'warning', code: 'policy-finding' })]);
  });

  it('and an empty list when there is none', async () => {
    const q = tempProject('ds-out-nowarnings-');
    try {
      q.write('app.yaml', oneFileGoal(q.root, 'v1\n'));
      const r = await cli(['plan', '--format', 'json', ...q.args], { env });
      expect(r.code, r.stderr).toBe(2);
      expect(doc(r.stdout)).toMatchObject({ entries: expect.any(Array), counts: expect.any(Object), diagnostics: [] });
    } finally {
      rmSync(q.dir, { recursive: true, force: true });
    }
  });
});

describe('drift --since and --node', () => {
  const p = tempProject('ds-out-drift-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));

  beforeAll(async () => {
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    writeFileSync(join(p.root, 'app.conf'), 'edited\n');
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
  });

  const count = async (...args: string[]): Promise<number> => {
    const r = await cli(['drift', '--format', 'json', ...args, ...p.args]);
    expect(r.code, r.stderr).toBe(0);
    return (doc(r.stdout).reports as unknown[]).length;
  };

  it.each([
    { since: '1h', reports: 1 },
    { since: '30m', reports: 1 },
    { since: '2d', reports: 1 },
    { since: '1h30m', reports: 1 },
    { since: '2000-01-01', reports: 1 },
    { since: '2000-01-01T00:00:00Z', reports: 1 },
    { since: '2000-01-01T00:00:00.000+02:00', reports: 1 },
    { since: '2999-01-01T00:00:00Z', reports: 0 },
  ])('--since $since: $reports report(s)', async ({ since, reports }) => {
    expect(await count('--since', since)).toBe(reports);
  });

  // Date.parse takes almost anything: `5` (a unit forgotten) was 1 May 2001, `Nov 23` was 2001 too: every report, silently.
  it.each(['5', '0', '12', 'Nov 23', '1w', '-1h', 'yesterday', '2026-13-45'])('--since %s is a bad invocation (exit 64)', async (since) => {
    const r = await cli(['drift', `--since=${since}`, '--format', 'json', ...p.args]);
    expect(r.code).toBe(64);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^desiredstate drift: --since takes a duration such as 1h or an ISO 8601 timestamp/);
  });

  it('--node filters, an unknown node has no reports, and the empty answer is still a document', async () => {
    expect(await count('--node', 'conf')).toBe(1);
    expect(await count('--node', 'nope')).toBe(0);
    const text = await cli(['drift', '--node', 'nope', ...p.args]);
    expect(text).toMatchObject({ code: 0, stdout: 'no drift recorded\n' });
  });
});

describe('retry --format json for an unknown node', () => {
  const p = tempProject('ds-out-retry-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));

  it('exit 1 with a document on stdout, the reason on stderr', async () => {
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    const r = await cli(['retry', 'nope', '--format', 'json', ...p.args]);
    expect(r.code).toBe(1);
    expect(doc(r.stdout)).toEqual({ unknown: 'nope', via: 'store' });
    expect(r.stderr).toBe('unknown node "nope"\n');
  });
});
