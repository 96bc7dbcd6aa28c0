import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';

/**
 * A 5.5 MB string aliased 99 times passed the alias count and crashed `validate` (`Invalid string
 * length`, exit 70) with no place named: what aliases copy is bounded per file, and refused where the
 * bound is passed, as any invalid goal is.
 */
const p = tempProject('ds-alias-copies-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
p.write(
  'a.yaml',
  `${execGoalHead()}    - id: a
      type: generic.resource
      spec:
        commands: { read: [x], create: [x] }
        input:
          big: &a "${'x'.repeat(5_500_000)}"
          more: [${Array(99).fill('*a').join(',')}]
`,
);
const at = `${p.goals}/a.yaml:18:21`;

describe('validate on a large value copied by aliases', () => {
  it('text: the error at the alias that passes the bound, exit 1', async () => {
    const r = await cli(['validate', ...p.args]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout.trim()).toBe(`${at}: error alias-bomb: alias *a copies 5500001 nodes and characters, which takes what the aliases of this file expand to past 8388608; write the values out`);
    expect(r.stderr).toBe('');
  });

  it('json: the same diagnostic, exit 1', async () => {
    const r = await cli(['validate', ...p.args, '--format', 'json']);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false, diagnostics: [{ file: `${p.goals}/a.yaml`, line: 18, col: 21, code: 'alias-bomb' }] });
  });
});
