import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, tempProject } from '../support/cli.ts';

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
