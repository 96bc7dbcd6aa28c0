import { existsSync, lstatSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cli, localBackend, planBoth, tempProject } from '../support/cli.ts';

/**
 * `plan` shows what `apply` will do with nodes removed from the goals under prune + Delete. It listed
 * each as `-` (deleted) even where apply refuses the delete before any backend call: removed nodes on
 * a dependency cycle that cannot be broken (`delete-cycle`), and those that wait on one, or a node whose
 * backend is no longer declared. It shows them as apply lists them, and exits 1 as apply will; a delete
 * apply makes is still `-`. (A reference with no value: exec-prune-references.test.ts.)
 */
const env = { DESIREDSTATE_LOG_LEVEL: 'silent' };

const CYCLE = 'not deleted: removed nodes depend on each other in a cycle, d -> r -> g -> d';
const HINT = 'declare one of them again with deletionPolicy: Orphan and remove it once more (it is let go, its resource left for you to delete by hand); the others are then deleted in order';

/** A goal under prune with Delete by default: `keep` and `nodes` (flow maps), on a local backend in `p.root`. */
function writeGoal(p: ReturnType<typeof tempProject>, nodes: readonly string[]): void {
  p.write(
    'app.yaml',
    `${localBackend(p.root)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  prune: true
  defaults: { backend: local, deletionPolicy: Delete }
  nodes:
    - { id: keep, type: local.file, spec: { path: keep, content: "k" } }
${nodes.map((n) => `    - ${n}\n`).join('')}`,
  );
}

/**
 * Removed nodes whose edges, stored at three revisions, close a cycle no graph had (as in the daemon's
 * test of it): r depends on g (and e) and its delete is refused (a stray file in its directory), d's edge
 * to r is kept once r left, then g depends on d. `olderVersion`: d's record as a version before kept
 * edges were marked wrote it (`kept` absent), so no edge of the cycle can be given up. The goals then
 * hold `keep` alone; the stray file is gone, so every delete the backend is asked for succeeds.
 */
async function removedOnACycle(prefix: string, { olderVersion }: { olderVersion: boolean }) {
  const p = tempProject(prefix);
  const write = (...nodes: string[]): void => writeGoal(p, nodes);
  const apply = async (code: number): Promise<void> => {
    const r = await cli(['apply', '--yes', ...p.args], { env });
    expect(r.code, r.stdout + r.stderr).toBe(code);
  };
  const e = '{ id: e, type: local.file, spec: { path: e.txt, content: "e" } }';
  write(e, '{ id: g, type: local.directory, spec: { path: g } }', '{ id: r, type: local.directory, dependsOn: [g, e], spec: { path: r } }', '{ id: d, type: local.file, dependsOn: [r], spec: { path: d.txt, content: "d" } }');
  await apply(0);
  writeFileSync(join(p.root, 'r', 'stray'), '');
  write('{ id: g, type: local.directory, spec: { path: g } }', '{ id: d, type: local.file, spec: { path: d.txt, content: "d" } }');
  await apply(1);
  write('{ id: g, type: local.directory, dependsOn: [d], spec: { path: g } }', '{ id: d, type: local.file, spec: { path: d.txt, content: "d" } }');
  await apply(1);
  rmSync(join(p.root, 'r', 'stray'));
  const db = new Database(join(p.state, 'state.db'));
  try {
    const edges = (id: string): unknown => {
      const { deps, kept } = JSON.parse((db.prepare('SELECT snapshot FROM nodes WHERE id = ?').get(id) as { snapshot: string }).snapshot) as { deps: unknown; kept?: unknown };
      return { deps, kept };
    };
    expect(['r', 'd', 'g'].map(edges)).toEqual([
      { deps: ['g', 'e'], kept: undefined },
      { deps: ['r'], kept: ['r'] },
      { deps: ['d'], kept: undefined },
    ]);
    if (olderVersion) {
      const { kept: _kept, ...older } = JSON.parse((db.prepare("SELECT snapshot FROM nodes WHERE id = 'd'").get() as { snapshot: string }).snapshot) as Record<string, unknown>;
      db.prepare("UPDATE nodes SET snapshot = ? WHERE id = 'd'").run(JSON.stringify(older));
    }
  } finally {
    db.close();
  }
  write();
  return p;
}

describe('plan shows the deletes of removed nodes as apply will make or refuse them', () => {
  it('an ordinary prune: `-`, exit 2, and apply deletes it', async () => {
    const p = tempProject('ds-plan-prune-');
    writeGoal(p, ['{ id: gone, type: local.file, spec: { path: gone.txt, content: "g" } }']);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    writeGoal(p, []);
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(2);
    expect(planned.text).toContain('  - gone (local.file via local)\n');
    expect(planned.text).toContain('Plan: 0 to create, 0 to update, 1 to delete, 0 drifted, 1 unchanged, 0 blocked or held, 0 errors.');
    expect(planned.json.entries.find((e) => e.id === 'gone')?.planned).toEqual({ action: 'delete' });
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code).toBe(0);
    expect(apply.stdout).toContain('  - gone: deleted');
    expect(existsSync(join(p.root, 'gone.txt'))).toBe(false);
  });

  it('a goal removed with the Backend document its nodes used: the error apply meets (the backend is not configured), exit 1', async () => {
    const p = tempProject('ds-plan-backend-gone-');
    writeGoal(p, []);
    p.write('other.yaml', `${localBackend(join(p.dir, 'other')).replace('name: local', 'name: other')}---\napiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: o }\nspec:\n  prune: true\n  nodes:\n    - { id: x, type: local.file, backend: other, deletionPolicy: Delete, spec: { path: x, content: "x" } }\n`);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    rmSync(join(p.goals, 'other.yaml'));
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(1);
    const hint = ' (hint: declare backend "other" again as it was when node "x" was applied and apply to delete the resource, or delete it by hand and apply once with prune: false on goal "o" to forget node "x")';
    expect(planned.text).toContain(`  x x (local.file via other) error (permanent): backend "other" is not configured${hint}\n`);
    expect(planned.json.entries.find((e) => e.id === 'x')?.planned).toMatchObject({ action: 'error', fault: { class: 'permanent', message: 'backend "other" is not configured' } });
    expect((await cli(['apply', '--yes', ...p.args], { env })).stdout).toContain(`  x x: permanent: backend "other" is not configured${hint}\n`);
  });

  it('a cycle among removed nodes broken at a kept edge: each `-`, exit 2, and apply deletes them all', async () => {
    const p = await removedOnACycle('ds-plan-cycle-kept-', { olderVersion: false });
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(2);
    for (const [id, type] of [['r', 'local.directory'], ['g', 'local.directory'], ['d', 'local.file'], ['e', 'local.file']]) expect(planned.text).toContain(`  - ${id} (${type} via local)\n`);
    expect(planned.json.counts).toMatchObject({ delete: 4, error: 0, blocked: 0 });
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout).toBe(0);
    expect(apply.stdout).toContain('Apply: 0 created, 0 updated, 4 deleted, 1 unchanged, 0 failed, 0 blocked, 0 held.');
  });

  it('a cycle that cannot be broken: its nodes are errors with the cycle and what to do, one that waits on them is blocked, exit 1, as apply then has it', async () => {
    const p = await removedOnACycle('ds-plan-cycle-', { olderVersion: true });
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(1);
    for (const [id, type] of [['d', 'local.file'], ['r', 'local.directory'], ['g', 'local.directory']]) {
      expect(planned.text).toContain(`  x ${id} (${type} via local) error (permanent): ${CYCLE} (hint: ${HINT})\n`);
      expect(planned.json.entries.find((e) => e.id === id)?.planned).toMatchObject({ action: 'error', fault: { code: 'delete-cycle', message: CYCLE, hint: HINT } });
    }
    expect(planned.text).toContain('  ⊘ e (local.file via local) blocked: not deleted while r, which depends on it, is not\n');
    expect(planned.json.entries.find((e) => e.id === 'e')?.planned).toEqual({ action: 'blocked', reason: 'not deleted while r, which depends on it, is not' });
    expect(planned.text).not.toMatch(/^ {2}- /m);
    expect(planned.text).toContain('Plan: 0 to create, 0 to update, 0 to delete, 0 drifted, 1 unchanged, 1 blocked or held, 3 errors.');
    expect(planned.json.counts).toMatchObject({ delete: 0, error: 3, blocked: 1 });
    // What apply then does: the same refusals, nothing deleted.
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code).toBe(1);
    for (const id of ['d', 'r', 'g']) expect(apply.stdout).toContain(`  x ${id}: permanent: ${CYCLE} (hint: ${HINT})\n`);
    expect(apply.stdout).toContain('  ⊘ e: blocked: not deleted while r, which depends on it, is not\n');
    for (const f of ['d.txt', 'r', 'g', 'e.txt']) expect(existsSync(join(p.root, f)), f).toBe(true);
  });
});

/**
 * A delete the read before it finds bound to fail: a directory that holds what no delete of the pass
 * removes (a file node still in the goals, a file made by hand), something of another kind where a
 * removed node's file, directory or symlink was. Plan listed a clean `-` that apply then failed on
 * every time; it shows the error apply meets, with a message written for a delete, and exits 1.
 */
describe('plan shows a delete the read before it finds bound to fail as the error apply meets', () => {
  const dir = '{ id: dir, type: local.directory, spec: { path: conf } }';
  const inside = '{ id: f, type: local.file, spec: { path: conf/app.toml, content: "port=1\\n" } }';

  async function refused(p: ReturnType<typeof tempProject>, id: string, type: string, message: string, hint: string): Promise<void> {
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(1);
    expect(planned.text).toContain(`  x ${id} (${type} via local) error (permanent): ${message} (hint: ${hint})\n`);
    expect(planned.text).not.toMatch(/^ {2}- /m);
    expect(planned.json.entries.find((e) => e.id === id)?.planned).toMatchObject({ action: 'error', fault: { class: 'permanent', message, hint } });
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout).toBe(1);
    expect(apply.stdout).toContain(`  x ${id}: permanent: ${message} (hint: ${hint})\n`);
  }

  const NOT_EMPTY_HINT = 'remove from the goals the nodes that manage what it holds too, or empty it by hand; to keep it, declare it again with deletionPolicy: Orphan and remove it once more';

  // Known without a read: the file node names the directory its path lies in, and keeps it (README, Implied dependencies).
  it('a directory that holds a file node still in the goals: blocked, naming that node and where it is', async () => {
    const p = tempProject('ds-plan-dir-in-use-');
    writeGoal(p, [dir, inside]);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    writeGoal(p, [inside]);
    const reason = `not deleted while f (${p.dir}/goals/app.yaml:16:13), which names its resource, is in the goals: take the name out of f, or remove f too`;
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(1);
    expect(planned.text).toContain(`  ⊘ dir (local.directory via local) blocked: ${reason}\n`);
    expect(planned.text).not.toMatch(/^ {2}- /m);
    expect(planned.json.entries.find((e) => e.id === 'dir')?.planned).toEqual({ action: 'blocked', reason });
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout).toBe(1);
    expect(apply.stdout).toContain(`  ⊘ dir: blocked: ${reason}\n`);
    expect(existsSync(join(p.root, 'conf', 'app.toml'))).toBe(true);
  });

  it('a directory that holds a file made by hand', async () => {
    const p = tempProject('ds-plan-dir-stray-');
    writeGoal(p, [dir]);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    writeFileSync(join(p.root, 'conf', 'stray'), '');
    writeGoal(p, []);
    await refused(p, 'dir', 'local.directory', `directory ${join(p.root, 'conf')} is not empty (it holds stray); refusing to delete its contents`, NOT_EMPTY_HINT);
  });

  it('a directory removed with the file node in it: `-` both, and apply deletes both', async () => {
    const p = tempProject('ds-plan-dir-with-file-');
    writeGoal(p, [dir, inside]);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    writeGoal(p, []);
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(2);
    expect(planned.text).toContain('  - dir (local.directory via local)\n');
    expect(planned.text).toContain('  - f (local.file via local)\n');
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout).toBe(0);
    expect(existsSync(join(p.root, 'conf'))).toBe(false);
  });

  it('a directory holding only temp files of writers gone (a pid given to another process since): `-`, and apply deletes it', async () => {
    const p = tempProject('ds-plan-dir-debris-');
    writeGoal(p, [dir]);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    // As a daemon that ran as a container's pid 1 left it, killed mid-write: pid 1 runs again, started at another time.
    writeFileSync(join(p.root, 'conf', '.app.toml.ds-1-999999999999-deadbeef0.tmp'), 'half');
    writeGoal(p, []);
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(2);
    expect(planned.text).toContain('  - dir (local.directory via local)\n');
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout).toBe(0);
    expect(existsSync(join(p.root, 'conf'))).toBe(false);
  });

  it.each([
    { made: 'a directory', node: '{ id: gone, type: local.file, spec: { path: gone, content: "g" } }', type: 'local.file', found: 'directory', wanted: 'file', put: (at: string) => mkdirSync(at) },
    { made: 'a symlink', node: '{ id: gone, type: local.file, spec: { path: gone, content: "g" } }', type: 'local.file', found: 'symlink', wanted: 'file', put: (at: string) => symlinkSync('keep', at) },
    { made: 'a file', node: '{ id: gone, type: local.directory, spec: { path: gone } }', type: 'local.directory', found: 'file', wanted: 'directory', put: (at: string) => writeFileSync(at, '') },
  ])('a removed $type whose path now holds $made made by hand', async ({ node, type, found, wanted, put }) => {
    const p = tempProject('ds-plan-wrong-kind-');
    writeGoal(p, [node]);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    const at = join(p.root, 'gone');
    rmSync(at, { recursive: true });
    put(at);
    writeGoal(p, []);
    await refused(
      p,
      'gone',
      type,
      `${at} is a ${found}, not the ${wanted} the node made; refusing to delete it`,
      `the ${found} was put there since: remove it by hand if it should go; to leave it, declare the node again with deletionPolicy: Orphan and remove it once more`,
    );
    expect(lstatSync(at).isSymbolicLink() || existsSync(at)).toBe(true);
  });
});
