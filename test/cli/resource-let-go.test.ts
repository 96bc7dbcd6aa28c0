import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, localBackend, tempProject } from '../support/cli.ts';
import { trackDaemons } from '../support/daemon.ts';

// A node whose goal now names another resource (its path changed) manages the new one; the old
// one is not removed from the goals' nodes, so prune does not delete it: it is let go, and plan,
// apply and the daemon say so instead of leaving it behind in silence.
const daemons = trackDaemons();
const LET_GO = 'the node names another resource now; the one it managed before is left in place, not deleted';

function goal(root: string, paths: Record<string, string>): string {
  const nodes = Object.entries(paths)
    .map(([id, path]) => `    - id: ${id}\n      type: local.file\n      spec: { path: ${path}, content: "x\\n" }\n`)
    .join('');
  return `${localBackend(root)}---\napiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: app }\nspec:\n  prune: true\n  defaults: { backend: local, deletionPolicy: Delete }\n  nodes:\n${nodes}`;
}

describe('a node whose resource changed', () => {
  const p = tempProject('ds-let-go-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

  it('plan names the resource let go, apply creates the new one, warns, and deletes nothing', async () => {
    p.write('app.yaml', goal(p.root, { conf: 'a.conf' }));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    p.write('app.yaml', goal(p.root, { conf: 'b.conf' }));
    const plan = await cli(['plan', ...p.args]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain('      (it managed path a.conf on backend local before: that one is left in place, not deleted)');
    const json = JSON.parse((await cli(['plan', ...p.args, '--format', 'json'])).stdout) as { entries: { id: string; planned: { action: string; letsGo?: string } }[] };
    expect(json.entries.find((e) => e.id === 'conf')?.planned).toMatchObject({ action: 'create', letsGo: 'path a.conf on backend local' });
    const apply = await cli(['apply', '--yes', ...p.args, '--log-level', 'warn']);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stderr).toContain(`"before":"path a.conf on backend local","msg":"${LET_GO}"`);
    expect(readFileSync(join(p.root, 'a.conf'), 'utf8')).toBe('x\n');
    expect(readFileSync(join(p.root, 'b.conf'), 'utf8')).toBe('x\n');
    // Once applied at the new path, nothing more is said.
    const again = await cli(['apply', '--yes', ...p.args, '--log-level', 'warn']);
    expect(again.stderr).not.toContain(LET_GO);
    expect((await cli(['plan', ...p.args])).stdout).not.toContain('left in place');
  });

  it('two nodes that swap their paths let nothing go', async () => {
    p.write('app.yaml', goal(p.root, { one: 'one.conf', two: 'two.conf' }));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    p.write('app.yaml', goal(p.root, { one: 'two.conf', two: 'one.conf' }));
    const plan = await cli(['plan', ...p.args]);
    expect(plan.stdout).not.toContain('left in place');
    const apply = await cli(['apply', '--yes', ...p.args, '--log-level', 'warn']);
    expect(apply.stderr).not.toContain(LET_GO);
  });

  it('the daemon says so when it takes the changed goal', async () => {
    const q = tempProject('ds-let-go-run-');
    daemons.removeAfter(q.dir);
    q.write('app.yaml', goal(q.root, { conf: 'a.conf' }));
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', ...q.args], { cwd: q.dir });
    await d.waitFor((l) => l.msg === 'node created', 20_000);
    const from = d.lines.length;
    writeFileSync(join(q.goals, 'app.yaml'), goal(q.root, { conf: 'b.conf' }));
    const line = await d.waitFor((l) => l.msg === LET_GO, 20_000, from);
    expect(line).toMatchObject({ node: 'conf', before: 'path a.conf on backend local' });
    await d.waitFor((l) => l.msg === 'node created', 20_000, from);
    expect(existsSync(join(q.root, 'b.conf'))).toBe(true);
    expect(existsSync(join(q.root, 'a.conf'))).toBe(true);
  });
});
