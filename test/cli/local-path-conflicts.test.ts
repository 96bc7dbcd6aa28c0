import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, localBackend, oneFileGoal, tempProject } from '../support/cli.ts';

// A managed file replaced by hand with a directory: drift of its kind, which the local backend never
// corrects (it deletes nothing to make room). Reported like any drift, with why; left as found; and
// not converged, so apply and plan exit 1, as they do for a node that fails.
describe('something of another kind at a managed path', () => {
  it('is a drift report naming it, never a correction; apply and plan exit 1; put right by hand, it converges', async () => {
    const p = tempProject('ds-wrong-kind-');
    p.write('app.yaml', oneFileGoal(p.root, 'port = 1\n'));
    expect((await cli(['apply', ...p.args])).code).toBe(0);
    rmSync(join(p.root, 'app.conf'));
    mkdirSync(join(p.root, 'app.conf'));
    writeFileSync(join(p.root, 'app.conf', 'data'), 'kept');

    const plan = await cli(['plan', ...p.args]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain('kind: "directory" → "file" (not corrected: ');

    const apply = await cli(['apply', ...p.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toMatch(/! conf: drift-reported: .*app\.conf is a directory, not a file; refusing to replace it/);
    expect(apply.stdout).toContain('not converged: 1 drift(s) no update can correct, left as found');
    expect(statSync(join(p.root, 'app.conf')).isDirectory()).toBe(true);
    expect(readdirSync(join(p.root, 'app.conf'))).toEqual(['data']);

    const drift = JSON.parse((await cli(['drift', ...p.args, '--format', 'json'])).stdout) as { reports: { node: string; action: string; diffs: { path: string; desired: unknown; actual: unknown }[] }[] };
    expect(drift.reports).toEqual([expect.objectContaining({ node: 'conf', action: 'reported', diffs: [expect.objectContaining({ path: 'kind', desired: 'file', actual: 'directory' })] })]);
    const status = JSON.parse((await cli(['status', ...p.args, '--format', 'json'])).stdout) as { nodes: { id: string; status: string; reason: string }[] };
    expect(status.nodes.find((n) => n.id === 'conf')).toMatchObject({ status: 'drifted', reason: expect.stringContaining('refusing to replace it') });

    // The operator moves it away: the file is made again (drift of a missing resource), and all is well.
    rmSync(join(p.root, 'app.conf'), { recursive: true });
    expect((await cli(['apply', ...p.args])).code).toBe(0);
    expect(statSync(join(p.root, 'app.conf')).isFile()).toBe(true);
  });

  it('a goal whose path something of another kind already holds fails at plan and apply, naming it', async () => {
    const p = tempProject('ds-wrong-kind-new-');
    mkdirSync(join(p.root, 'app.conf'), { recursive: true });
    p.write('app.yaml', oneFileGoal(p.root, 'port = 1\n'));
    const plan = await cli(['plan', ...p.args]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain('x conf (local.file via local) error (permanent): kind is "directory", not "file", and no update can change it: ');
    const apply = await cli(['apply', ...p.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain('x conf: permanent: kind is "directory", not "file", and no update can change it');
    expect(statSync(join(p.root, 'app.conf')).isDirectory()).toBe(true);
  });
});

describe('a managed directory made a symlink by hand', () => {
  // The directory's drift (its kind) cannot be corrected: what lies in it waits for it, blocked, as the
  // daemon has it; nothing is read or written through the link, even one that leads inside the root.
  it('blocks the files in it at plan and apply until the link goes; then they are made', async () => {
    const p = tempProject('ds-dir-link-');
    p.write('app.yaml', `${localBackend(p.root)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: local }
  nodes:
    - { id: dir, type: local.directory, spec: { path: conf, mode: "0755" } }
    - { id: file, type: local.file, spec: { path: conf/app.toml, content: "a = 1\\n", mode: "0644" } }
`);
    expect((await cli(['apply', ...p.args])).code).toBe(0);
    rmSync(join(p.root, 'conf'), { recursive: true });
    mkdirSync(join(p.root, 'other'));
    symlinkSync('other', join(p.root, 'conf'));

    const plan = await cli(['plan', ...p.args]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toMatch(/⊘ file .*dependency dir is not ready/);
    const apply = await cli(['apply', ...p.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toMatch(/⊘ file: .*dependency dir is not ready/);
    expect(readdirSync(join(p.root, 'other'))).toEqual([]);

    rmSync(join(p.root, 'conf'));
    expect((await cli(['apply', ...p.args])).code).toBe(0);
    expect(statSync(join(p.root, 'conf')).isDirectory()).toBe(true);
    expect(existsSync(join(p.root, 'conf/app.toml'))).toBe(true);
  });
});

describe('two nodes reaching one file by different paths', () => {
  it('through a symlink the goals do not manage: both fail, naming each other, and neither writes it', async () => {
    const p = tempProject('ds-shared-file-');
    mkdirSync(join(p.root, 'realdir'), { recursive: true });
    symlinkSync('realdir', join(p.root, 'alias'));
    p.write('app.yaml', `${localBackend(p.root)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  nodes:
    - { id: a, type: local.file, spec: { path: realdir/f, content: "A\\n" } }
    - { id: b, type: local.file, spec: { path: alias/f, content: "B\\n" } }
`);
    const apply = await cli(['apply', ...p.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain(`x a: permanent: ${join(p.root, 'realdir', 'f')} is managed by node "b" too`);
    expect(apply.stdout).toContain(`x b: permanent: ${join(p.root, 'realdir', 'f')} is managed by node "a" too`);
    expect(existsSync(join(p.root, 'realdir', 'f'))).toBe(false);
  });
});
