import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * `check` on goals that do not compile: every format exits 1; the machine
 * formats still put a document on stdout (SARIF is in sarif.test.ts, under
 * the validator); text keeps the diagnostics on stderr.
 */
const cli = join(import.meta.dirname, '..', '..', 'bin', 'desiredstate.js');
const dir = mkdtempSync(join(tmpdir(), 'ds-check-broken-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, 'goals'));
writeFileSync(join(dir, 'goals', 'g.yaml'), 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: web }\nspec:\n  nodes:\n    - id: a\n      type: local.fiel\n      spec: { path: x }\n');

function run(command: string, format: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [cli, command, '--goals', 'goals', '--format', format], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, DESIREDSTATE_LOG_LEVEL: 'silent' } });
}

describe('check on goals that do not compile', () => {
  it('json: the document validate --format json prints, exit 1', () => {
    const check = run('check', 'json');
    expect(check.status, check.stderr).toBe(1);
    const doc = JSON.parse(check.stdout) as { valid: boolean; diagnostics: { code: string; line: number; col: number }[] };
    // Its goal and node counted as read (`nodes` was 0 whenever the goals did not compile).
    expect(doc).toMatchObject({ valid: false, goals: 1, nodes: 1, diagnostics: [{ file: 'goals/g.yaml', code: 'unknown-type', severity: 'error', line: 7, col: 13 }] });
    expect(doc).toEqual(JSON.parse(run('validate', 'json').stdout));
  });

  // A blocking finding was an error in validate but a warning in check's document (check compiled in
  // the mode apply holds nodes in), and check's text showed only the errors.
  it('a blocking policy finding beside the error: the same severity, and the same lines, as validate', () => {
    const policy = join(dir, 'goals', 'p.yaml');
    const other = join(dir, 'goals', 'h.yaml');
    writeFileSync(
      policy,
      'apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: p }\nspec:\n  requiredLabels:\n    - { key: owner, severity: { default: high } }\n',
    );
    writeFileSync(other, 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: api }\nspec:\n  nodes:\n    - { id: b, type: local.file, spec: { path: y, content: "" } }\n');
    try {
      const check = JSON.parse(run('check', 'json').stdout) as { diagnostics: { code: string; severity: string }[] };
      expect(check.diagnostics).toContainEqual(expect.objectContaining({ code: 'policy-violation', severity: 'error' }));
      expect(check).toEqual(JSON.parse(run('validate', 'json').stdout));
      const text = run('check', 'text');
      expect(text.stderr).toMatch(/error policy-violation: \[high\]/);
      expect(text.stderr).toMatch(/error unknown-type/);
    } finally {
      rmSync(policy);
      rmSync(other);
    }
  });

  it('text: nothing on stdout, file:line:col diagnostics on stderr, exit 1', () => {
    const check = run('check', 'text');
    expect(check.status).toBe(1);
    expect(check.stdout).toBe('');
    expect(check.stderr).toMatch(/^goals\/g\.yaml:7:13: error unknown-type: /m);
  });
});
