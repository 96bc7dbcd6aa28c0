import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, localBackend, tempProject } from '../support/cli.ts';
import { trackDaemons } from '../support/daemon.ts';

// A Backend document changed between two applies (another root here; another server for postgres) is
// a goal change for its nodes: what they find there is created or converged, as Terraform plans a
// provider's new target, not reported as drift (which selfHeal: false would never correct).
const daemons = trackDaemons();

function goal(root: string, selfHeal = false): string {
  return `${localBackend(root)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  selfHeal: ${selfHeal}
  defaults: { backend: local }
  nodes:
    - { id: conf, type: local.file, spec: { path: app.conf, content: "hello\\n", mode: "0644" } }
`;
}

describe('a Backend declared otherwise', () => {
  it('plan shows a create where the backend now points, apply makes it (selfHeal: false too), and the next plan is empty', async () => {
    const p = tempProject('ds-backend-changed-');
    p.write('app.yaml', goal(p.root));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    const root2 = join(p.dir, 'root2');
    p.write('app.yaml', goal(root2));
    const plan = await cli(['plan', '--format', 'json', ...p.args]);
    expect(plan.code).toBe(2);
    expect((JSON.parse(plan.stdout) as { entries: { id: string; planned: { action: string } }[] }).entries).toEqual([expect.objectContaining({ id: 'conf', planned: expect.objectContaining({ action: 'create' }) })]);
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout).toBe(0);
    expect(apply.stdout).toContain('+ conf: created');
    expect(readFileSync(join(root2, 'app.conf'), 'utf8')).toBe('hello\n');
    // What the old declaration managed is left in place: nothing is deleted without an explicit goal.
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('hello\n');
    expect((await cli(['plan', ...p.args])).code).toBe(0);
    // No drift was reported for it.
    expect(JSON.parse((await cli(['drift', '--format', 'json', ...p.args])).stdout)).toMatchObject({ reports: [] });
  });

  it('a daemon started after the change converges it at once, whatever its interval', async () => {
    const p = tempProject('ds-backend-changed-run-');
    p.write('app.yaml', goal(p.root));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    const root2 = join(p.dir, 'root2');
    p.write('app.yaml', goal(root2));
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'conf');
    expect(readFileSync(join(root2, 'app.conf'), 'utf8')).toBe('hello\n');
    expect(d.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  it('a relative root from another working directory is another place: a create there, not a deletion out of band', async () => {
    const p = tempProject('ds-backend-cwd-');
    p.write('app.yaml', goal('out'));
    const [a, b] = [join(p.dir, 'a'), join(p.dir, 'b')];
    for (const d of [a, b]) mkdirSync(d);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: a })).code).toBe(0);
    expect(readFileSync(join(a, 'out', 'app.conf'), 'utf8')).toBe('hello\n');
    const plan = await cli(['plan', '--format', 'json', ...p.args], { cwd: b });
    expect(plan.code, plan.stdout).toBe(2);
    expect((JSON.parse(plan.stdout) as { entries: { id: string; planned: { action: string } }[] }).entries).toEqual([expect.objectContaining({ id: 'conf', planned: expect.objectContaining({ action: 'create' }) })]);
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: b });
    expect(apply.code, apply.stdout).toBe(0);
    expect(apply.stdout).toContain('+ conf: created');
    expect(readFileSync(join(b, 'out', 'app.conf'), 'utf8')).toBe('hello\n');
    expect(existsSync(join(a, 'out', 'app.conf'))).toBe(true);
    expect(JSON.parse((await cli(['drift', '--format', 'json', ...p.args], { cwd: b })).stdout)).toMatchObject({ reports: [] });
  });

  it('a Backend only written otherwise (a comment above it, another file) is no change: selfHeal: false drift stays reported, not corrected', async () => {
    const p = tempProject('ds-backend-moved-');
    p.write('app.yaml', goal(p.root));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    writeFileSync(join(p.root, 'app.conf'), 'edited by hand\n');
    p.write('app.yaml', `# the same backend, two lines down\n\n${goal(p.root)}`);
    const plan = await cli(['plan', '--format', 'json', ...p.args]);
    expect(plan.code, plan.stdout).toBe(0);
    expect((JSON.parse(plan.stdout) as { entries: { id: string; planned: { action: string } }[] }).entries).toEqual([expect.objectContaining({ id: 'conf', planned: expect.objectContaining({ action: 'drift' }) })]);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('edited by hand\n');
  });
});
