import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, oneFileGoal, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// `status` lists the goal revision the daemon last rejected. Once goals were applied after it (the
// daemon stopped, the goals fixed, `apply`), that revision is old news: status kept showing its
// errors (goalErrors in JSON) for good, until a daemon loaded goals again.
const p = tempProject('ds-goal-errors-');
p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));
const daemons = trackDaemons(p.dir);

async function goalErrors(): Promise<unknown> {
  const r = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
  return (JSON.parse(r.stdout) as { goalErrors: unknown }).goalErrors;
}

describe('a goal revision the daemon rejected', () => {
  it('is no longer shown by status once apply has applied the goals', async () => {
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...p.args], { cwd: p.dir });
    await d.port();
    p.write('broken.yaml', 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: broken }\nspec: { nodes: [{ id: x, type: local.file, spec: { nope: 1 } }] }\n');
    await eventually(async () => Array.isArray(await goalErrors()), 15_000, 'the revision rejected');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    const text = await cli(['status', ...p.args], { cwd: p.dir });
    expect(text.stdout).toContain('goal revision rejected when the daemon last loaded the goals');

    rmSync(join(p.goals, 'broken.yaml'));
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code, apply.stderr).toBe(0);
    expect(await goalErrors()).toBeNull();
    expect((await cli(['status', ...p.args], { cwd: p.dir })).stdout).not.toContain('rejected');
  });
});
