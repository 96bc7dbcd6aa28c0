import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, execNode, goalHead, localBackend, shellResource, tempProject } from '../support/cli.ts';
import { createdBy, trackDaemons } from '../support/daemon.ts';

/**
 * A Backend renamed, its type and what names its resources (a local root, an exec cwd) the same, its
 * nodes' `backend` following, is no goal change: a hand edit under `selfHeal: false` is drift, reported
 * and left, as without the rename. It was taken for one (a node's managed digest covered its backend's
 * name): the edit was written over with no drift report. A rename to a backend pointing elsewhere still
 * converges there.
 */
const daemons = trackDaemons();

/**
 * A local Backend `name` at `root`, and a Goal (`selfHeal: false`, `prune: true`, `deletionPolicy: Delete`) of a file node
 * on it: `f` (`f.txt`), or with `removed` another in its place.
 */
function localGoal(name: string, root: string, removed = false): string {
  const node = removed ? '{ id: other, type: local.file, backend: NAME, spec: { path: other.txt, content: "x\\n" } }' : '{ id: f, type: local.file, backend: NAME, spec: { path: f.txt, content: "v1\\n" } }';
  return `${localBackend(root, name)}---
${goalHead('  selfHeal: false\n  prune: true\n  defaults: { deletionPolicy: Delete }\n')}    - ${node.replace('NAME', name)}
`;
}

interface DriftDoc {
  reports: { node: string; action: string }[];
}

/** A local project applied under backend `local`, then `f.txt` edited by hand: the file's path. */
async function handEdited(p: ReturnType<typeof tempProject>): Promise<string> {
  p.write('app.yaml', localGoal('local', p.root));
  const created = await cli(['apply', '--yes', ...p.args]);
  expect(created.code, created.stdout + created.stderr).toBe(0);
  const file = join(p.root, 'f.txt');
  writeFileSync(file, 'hand\n');
  return file;
}

describe('a Backend renamed, pointing where it did', () => {
  it('local: plan and apply report the hand edit as drift and leave it', async () => {
    const p = tempProject('ds-rename-');
    const file = await handEdited(p);
    p.write('app.yaml', localGoal('files', p.root));
    const plan = await cli(['plan', '--format', 'json', ...p.args]);
    expect((JSON.parse(plan.stdout) as { entries: { id: string; planned: { action: string } }[] }).entries).toEqual([expect.objectContaining({ id: 'f', planned: expect.objectContaining({ action: 'drift' }) })]);
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.stdout, apply.stderr).toContain('! f: drift-reported');
    expect(readFileSync(file, 'utf8')).toBe('hand\n');
    expect((JSON.parse((await cli(['drift', '--format', 'json', ...p.args])).stdout) as DriftDoc).reports).toEqual([expect.objectContaining({ node: 'f', action: 'reported' })]);
    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args])).stdout) as { nodes: { id: string; backendId: string; status: string }[] };
    expect(status.nodes).toEqual([expect.objectContaining({ id: 'f', backendId: 'files', status: 'drifted' })]);
  });

  it('local: a node removed later, applied under the old name and drifted since, is deleted through the new one', async () => {
    const p = tempProject('ds-rename-delete-');
    const file = await handEdited(p);
    p.write('app.yaml', localGoal('files', p.root));
    expect((await cli(['apply', '--yes', ...p.args])).stdout).toContain('! f: drift-reported');
    p.write('app.yaml', localGoal('files', p.root, true));
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.stdout, apply.stderr).toContain('- f: deleted');
    expect(apply.code).toBe(0);
    expect(existsSync(file)).toBe(false);
  });

  it('exec: a hand edit of the resource in the same cwd is reported, not written over', async () => {
    const p = tempProject('ds-rename-exec-');
    const script = shellResource(
      p.dir,
      `case "$1" in
  read) if [ -f "$dir/a.json" ]; then printf '{"exists":true,"state":%s}\\n' "$(cat "$dir/a.json")"; else echo '{"exists":false}'; fi ;;
  *) cat | sed 's/.*"input":\\({[^}]*}\\).*/\\1/' > "$dir/a.json"; echo "$1" >> "$dir/calls.log"; echo '{"outputs":{}}' ;;
esac
`,
    );
    const goal = (name: string): void =>
      p.write(
        'goals.yaml',
        // The Backend's name and the goal's default backend, both `name`.
        `${execGoalHead({ selfHeal: false, config: `{ cwd: ${JSON.stringify(p.dir)} }` }).replaceAll(': exec }', `: ${name} }`)}    - id: a
      type: generic.resource
      spec:
        commands: { read: [${script}, read], create: [${script}, create], update: [${script}, update] }
        input: { size: 1 }
`,
      );
    goal('exec');
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    writeFileSync(join(p.dir, 'a.json'), '{"size":7}\n');
    goal('exec2');
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.stdout, apply.stderr).toContain('! a: drift-reported');
    expect(readFileSync(join(p.dir, 'a.json'), 'utf8')).toBe('{"size":7}\n');
    expect(readFileSync(join(p.dir, 'calls.log'), 'utf8').trim().split('\n')).toEqual(['create']);
  });

  it('a running daemon reloaded with the rename reports the hand edit and leaves it', async () => {
    const p = tempProject('ds-rename-daemon-');
    const file = await handEdited(p);
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'f', 20_000);
    p.write('app.yaml', localGoal('files', p.root));
    const mark = d.lines.length;
    d.kill('SIGHUP');
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'SIGHUP', 20_000, mark);
    // The node, whose `backend` changed, is looked at once more: the edit is still drift, under the new name.
    const seen = await d.waitFor((l) => l.node === 'f' && (l.msg === 'drift detected' || l.msg === 'node updated'), 20_000, mark);
    expect(seen).toMatchObject({ msg: 'drift detected', backend: 'files', action: 'reported' });
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('hand\n');
  });

  it('a node a failure held is released by the rename, as by any edit of the node, and tried again', async () => {
    const p = tempProject('ds-rename-held-');
    const script = shellResource(p.dir, `echo "$1" >> "$dir/calls.log"\necho 'not json'\n`);
    const goal = (name: string): void =>
      p.write('goals.yaml', `${execGoalHead({ config: `{ cwd: ${JSON.stringify(p.dir)} }` }).replaceAll(': exec }', `: ${name} }`)}${execNode('a', script, '{ size: 1 }')}`);
    goal('exec');
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await d.waitFor((l) => l.msg === 'node held' && l.node === 'a', 20_000);
    const reads = (): number => readFileSync(join(p.dir, 'calls.log'), 'utf8').trim().split('\n').length;
    const before = reads();
    goal('exec2');
    const mark = d.lines.length;
    d.kill('SIGHUP');
    await d.waitFor((l) => l.msg === 'node held' && l.node === 'a' && l.backend === 'exec2', 20_000, mark);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(reads()).toBeGreaterThan(before);
  });

  it('two Backends with one root: a node moved from one to the other keeps its drift reported', async () => {
    const p = tempProject('ds-rename-twin-');
    const file = await handEdited(p);
    // `local` stays declared beside `files`, both at the root; the node now on `files`.
    p.write('app.yaml', `${localBackend(p.root)}---\n${localGoal('files', p.root)}`);
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.stdout, apply.stderr).toContain('! f: drift-reported');
    expect(readFileSync(file, 'utf8')).toBe('hand\n');
  });
});

describe('a Backend renamed to point elsewhere', () => {
  it.each([
    { name: 'apply', daemon: false },
    { name: 'a daemon', daemon: true },
  ])('$name creates the node where the new one points, the file it managed left in place', async ({ daemon }) => {
    const p = tempProject('ds-rename-elsewhere-');
    const file = await handEdited(p);
    const root2 = join(p.dir, 'root2');
    mkdirSync(root2);
    p.write('app.yaml', localGoal('files', root2));
    await createdBy(daemons, daemon, p.args, 'f', p.dir);
    expect(readFileSync(join(root2, 'f.txt'), 'utf8')).toBe('v1\n');
    expect(readFileSync(file, 'utf8')).toBe('hand\n');
  });
});
