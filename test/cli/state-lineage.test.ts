import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, oneFileGoal, tempProject } from '../support/cli.ts';

// Issue 3, item 5: a state file from another lineage is refused. The lineage a state directory's
// state.db was made with is kept beside it (`lineage`), so a state.db copied in from another
// deployment is told apart from the one that belongs there.
const p = tempProject('ds-lineage-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
p.write('goals.yaml', oneFileGoal(p.root, 'port = 8080\n'));

describe('state lineage', () => {
  it('apply and run refuse a state.db copied in from another deployment; deleting the lineage file adopts it', async () => {
    const here = join(p.dir, 'here');
    const there = join(p.dir, 'there');
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', here], { cwd: p.dir })).code).toBe(0);
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', there], { cwd: p.dir })).code).toBe(0);
    const lineage = readFileSync(join(here, 'lineage'), 'utf8').trim();
    expect(lineage).toMatch(/^[0-9a-f-]{36}$/);
    expect(readFileSync(join(there, 'lineage'), 'utf8').trim()).not.toBe(lineage);

    copyFileSync(join(there, 'state.db'), join(here, 'state.db'));
    for (const args of [['apply', '--yes'], ['run', '--listen', '127.0.0.1:0']]) {
      const r = await cli([...args, '--goals', p.goals, '--state', here], { cwd: p.dir });
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr).toContain(`belongs to lineage`);
      expect(r.stderr).toContain(`not the expected ${lineage}`);
      expect(r.stderr).toContain(`; the directory keeps the lineage it was made with in ${join(here, 'lineage')}: put its own state.db back, or delete ${join(here, 'lineage')} to adopt this one`);
      expect(r.stderr.split(lineage).length - 1).toBe(1);
    }
    // Reading it is harmless: status still shows what it holds.
    expect((await cli(['status', '--state', here], { cwd: p.dir })).code).toBe(0);

    rmSync(join(here, 'lineage'));
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', here], { cwd: p.dir })).code).toBe(0);
    expect(readFileSync(join(here, 'lineage'), 'utf8').trim()).toBe(readFileSync(join(there, 'lineage'), 'utf8').trim());
  });

  it('a state directory from before the lineage file gets one at its next apply; a state.db deleted on purpose starts anew', async () => {
    const dir = join(p.dir, 'older');
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
    rmSync(join(dir, 'lineage'));
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
    expect(existsSync(join(dir, 'lineage'))).toBe(true);
    for (const f of ['state.db', 'state.db-wal', 'state.db-shm']) rmSync(join(dir, f), { force: true });
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
  });
});
