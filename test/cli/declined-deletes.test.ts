import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, goalHead, localBackend, planBoth, tempProject } from '../support/cli.ts';

/**
 * apply without --yes and no terminal to ask on declines the deletes it would send. A declined one used to
 * skip the whole deletion phase: the removed nodes plan shows refused (`x`) or blocked (`⊘`) went unlisted
 * by apply, and status kept them `ready`. Only the deletes asked about are left; the others are met as with --yes.
 */
const projects: string[] = [];
afterAll(() => {
  for (const dir of projects) rmSync(dir, { recursive: true, force: true });
});

function project(prefix: string): ReturnType<typeof tempProject> {
  const p = tempProject(prefix);
  projects.push(p.dir);
  return p;
}

interface ApplyDocument {
  summary: { blocked: number; failed: number; deleted: number };
  outcomes: Record<string, { status: string; reason?: string; fault?: { code?: string } }>;
  declinedNodes: string[];
}

async function statusOf(args: readonly string[], id: string): Promise<string | undefined> {
  const doc = JSON.parse((await cli(['status', ...args, '--format', 'json'])).stdout) as { nodes: { id: string; status: string }[] };
  return doc.nodes.find((n) => n.id === id)?.status;
}

describe('apply declining its deletes still goes through the removed nodes it would not delete', () => {
  it('a removed directory a node of the goals names is blocked, as plan shows it and as with --yes', async () => {
    const p = project('ds-declined-blocked-');
    const nodes = (removed: boolean): string =>
      `${localBackend(p.root)}---\n${goalHead('  prune: true\n')}    - { id: f, type: local.file, spec: { path: d/f, content: "x" } }\n` +
      (removed ? '' : '    - { id: d, type: local.directory, deletionPolicy: Delete, spec: { path: d } }\n    - { id: e, type: local.file, deletionPolicy: Delete, spec: { path: e, content: "x" } }\n');
    p.write('app.yaml', nodes(false));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    p.write('app.yaml', nodes(true));
    const planned = await planBoth(p.args);
    expect(planned.text).toContain('  - e (local.file via local)');
    expect(planned.text).toContain('  ⊘ d (local.directory via local) blocked: not deleted while f');

    const text = await cli(['apply', ...p.args]);
    expect(text.code, text.stdout + text.stderr).toBe(1);
    expect(text.stderr).toContain('apply would delete 1 node(s): e (1 more removed node(s) cannot be deleted: see plan)');
    expect(text.stdout).toContain('  ⊘ d: blocked: not deleted while f');
    expect(text.stdout).toContain('Apply: 0 created, 0 updated, 0 deleted, 1 unchanged, 0 failed, 1 blocked, 0 held.');
    expect(text.stdout).toContain('  not converged: 1 deletion(s) not done');
    expect(text.stdout).not.toContain(' e:');
    expect(existsSync(join(p.root, 'e'))).toBe(true);
    expect(await statusOf(p.args, 'd')).toBe('blocked');
    expect(await statusOf(p.args, 'e')).toBe('ready');

    const json = await cli(['apply', ...p.args, '--format', 'json']);
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout) as ApplyDocument;
    expect(doc.summary).toMatchObject({ blocked: 1, deleted: 0 });
    expect(doc.outcomes.d).toMatchObject({ status: 'blocked' });
    expect(doc.outcomes.e).toBeUndefined();
    expect(doc.declinedNodes).toEqual(['e']);
  });

  it('a removed node whose Backend now points elsewhere is refused (x), the other removed node declined', async () => {
    const p = project('ds-declined-refused-');
    const write = (root: string, removed: boolean): void =>
      p.write(
        'app.yaml',
        `${localBackend(join(p.dir, root), 'files')}---\n${localBackend(join(p.dir, 'other'), 'other')}---\n${goalHead('  prune: true\n')}` +
          '    - { id: k, type: local.file, backend: files, spec: { path: k.txt, content: "K\\n" } }\n' +
          (removed ? '' : '    - { id: f, type: local.file, backend: files, deletionPolicy: Delete, spec: { path: f.txt, content: "A\\n" } }\n    - { id: e, type: local.file, backend: other, deletionPolicy: Delete, spec: { path: e.txt, content: "E\\n" } }\n'),
      );
    write('rootA', false);
    const first = await cli(['apply', '--yes', ...p.args]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    write('rootB', true);
    const planned = await planBoth(p.args);
    expect(planned.text).toContain('  x f (local.file via files) error (permanent)');
    expect(planned.text).toContain('  - e (local.file via other)');

    const text = await cli(['apply', ...p.args]);
    expect(text.code, text.stdout + text.stderr).toBe(1);
    expect(text.stderr).toContain('apply would delete 1 node(s): e (1 more removed node(s) cannot be deleted: see plan)');
    expect(text.stdout).toContain('  x f: permanent: node "f" on backend "files" cannot be deleted: backend "files" now points elsewhere');
    expect(text.stdout).toContain('Apply: 1 created, 0 updated, 0 deleted, 0 unchanged, 1 failed, 0 blocked, 0 held.');
    expect(text.stdout).toContain('  not converged: 1 deletion(s) not done');
    expect(existsSync(join(p.dir, 'other', 'e.txt'))).toBe(true);
    expect(existsSync(join(p.dir, 'rootA', 'f.txt'))).toBe(true);
    expect(await statusOf(p.args, 'f')).toBe('failed');

    const doc = JSON.parse((await cli(['apply', ...p.args, '--format', 'json'])).stdout) as ApplyDocument;
    expect(doc.outcomes.f).toMatchObject({ status: 'failed', fault: { code: 'delete-backend-moved' } });
    expect(doc.outcomes.e).toBeUndefined();
    expect(doc.declinedNodes).toEqual(['e']);
  });
});
