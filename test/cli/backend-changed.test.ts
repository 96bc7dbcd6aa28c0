import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { sha256, stableStringify } from '../../src/runtime/index.ts';
import { MIGRATIONS } from '../../src/runtime/sqlite-state-store.ts';
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

type Project = ReturnType<typeof tempProject>;

/** Starts a daemon on `p` (its interval an hour: what it does at start) and waits for it to create `conf` under `root`, with no drift detected. */
async function daemonCreates(p: Project, root: string): Promise<void> {
  const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
  await d.waitFor((l) => l.msg === 'node created' && l.node === 'conf');
  expect(readFileSync(join(root, 'app.conf'), 'utf8')).toBe('hello\n');
  expect(d.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
  d.kill('SIGTERM');
  expect((await d.exited).code).toBe(0);
}

/**
 * Applies `goal(root)`, then makes the state what the release before identity digests wrote: its schema
 * version, applied digests without a managed digest, and the Backend recorded under `backends.declared.v3`
 * alone, digested as that release did (type, whole config as parsed, and `location`: local's root, absolute).
 */
async function appliedByOlderRelease(p: Project, root: string): Promise<void> {
  p.write('app.yaml', goal(root));
  expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
  const v3 = sha256(stableStringify({ id: 'local', type: 'local', config: { root, rereadEvery: 3_600_000 }, location: root })).slice(0, 32);
  const db = new Database(join(p.state, 'state.db'));
  try {
    db.prepare("UPDATE nodes SET applied_digest = substr(applied_digest, 1, instr(applied_digest || '#', '#') - 1)").run();
    db.prepare("DELETE FROM meta WHERE key LIKE 'backends.declared.%'").run();
    db.prepare("INSERT INTO meta (key, value) VALUES ('backends.declared.v3', ?)").run(JSON.stringify({ local: v3 }));
    db.pragma(`user_version = ${MIGRATIONS.findIndex((m) => m.description.includes('managed digests'))}`);
  } finally {
    db.close();
  }
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
    await daemonCreates(p, root2);
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

// That release recorded its Backends under the v3 key alone: a Backend moved in the change that upgrades
// found no record under the new key, counted as unchanged, and its node stayed drift (reported for ever
// under selfHeal: false) instead of being created where the backend now points.
describe('a Backend declared otherwise in the change that upgrades a state the release before wrote', () => {
  it('plan shows a create where the backend now points, apply makes it, and the next plan is empty', async () => {
    const p = tempProject('ds-backend-upgrade-');
    await appliedByOlderRelease(p, p.root);
    const root2 = join(p.dir, 'root2');
    p.write('app.yaml', goal(root2));
    const plan = await cli(['plan', '--format', 'json', ...p.args]);
    expect(plan.code, plan.stdout).toBe(2);
    expect((JSON.parse(plan.stdout) as { entries: { id: string; planned: { action: string } }[] }).entries).toEqual([expect.objectContaining({ id: 'conf', planned: expect.objectContaining({ action: 'create' }) })]);
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout).toBe(0);
    expect(apply.stdout).toContain('+ conf: created');
    expect(readFileSync(join(root2, 'app.conf'), 'utf8')).toBe('hello\n');
    expect((await cli(['plan', ...p.args])).code).toBe(0);
    expect(JSON.parse((await cli(['drift', '--format', 'json', ...p.args])).stdout)).toMatchObject({ reports: [] });
  });

  it('a daemon started after the change creates the node there at once', async () => {
    const p = tempProject('ds-backend-upgrade-run-');
    await appliedByOlderRelease(p, p.root);
    const root2 = join(p.dir, 'root2');
    p.write('app.yaml', goal(root2));
    await daemonCreates(p, root2);
  });

  it('a Backend left as it was is no change: a hand edit under selfHeal: false stays reported, not written over', async () => {
    const p = tempProject('ds-backend-upgrade-same-');
    await appliedByOlderRelease(p, p.root);
    writeFileSync(join(p.root, 'app.conf'), 'edited by hand\n');
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout).toBe(0);
    expect(apply.stdout).toContain('! conf: drift-reported');
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('edited by hand\n');
  });
});
