import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStateStore } from '../../src/runtime/index.ts';
import { cli, goalHead, localBackend, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// Issue 3: "a revision with any compile error keeps the last good graph running". A daemon that
// starts (a reboot, a redeploy) on such a revision has no graph in memory: it runs the goals stored
// when they last compiled (the compiled-goal cache in the state directory), and says so; with none
// stored, it says that nothing is reconciled, rather than that a graph keeps running.
const daemons = trackDaemons();

const goals = (content: string): string => `${goalHead()}    - { id: conf, type: local.file, spec: { path: app.conf, content: ${JSON.stringify(content)} } }\n`;

describe('a daemon that starts on a goal revision that does not compile', () => {
  it('runs the last good goals stored for them: a hand edit is reported and repaired', async () => {
    const p = tempProject('ds-broken-start-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', goals('good\n'));
    const first = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await first.waitFor((l) => l.msg === 'node created' && l.node === 'conf');
    first.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);

    p.write('app.yaml', goals('next\n').replace('content:', 'contnet:'));
    writeFileSync(join(p.root, 'app.conf'), 'edited by hand\n');
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const rejected = await d.waitFor((l) => l.msg.startsWith('goal revision rejected'));
    expect(rejected.msg).toBe('goal revision rejected; the goals last applied run instead');
    await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'conf');
    await eventually(() => readFileSync(join(p.root, 'app.conf'), 'utf8') === 'good\n', 5_000, 'the hand edit repaired');
    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.stdout).toContain('goal revision rejected; the last good graph keeps running:');
    expect(status.stdout).toMatch(/app\.yaml:\d+:\d+: error unknown-field/);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  // A plan of other goals against the same state (a branch's work tree) replaced the stored goals,
  // and the daemon started on a broken revision then had none to fall back on.
  it('a plan of other goals in between does not take the last good goals away: they are the goals last applied', async () => {
    const p = tempProject('ds-broken-start-after-plan-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', goals('good\n'));
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    const branch = join(p.dir, 'branch');
    mkdirSync(branch);
    writeFileSync(join(branch, 'backend.yaml'), localBackend(p.root));
    writeFileSync(join(branch, 'app.yaml'), goals('from a branch\n'));
    expect((await cli(['plan', '--goals', branch, '--state', join(p.dir, 'state')], { cwd: p.dir })).code).toBe(2);

    p.write('app.yaml', goals('next\n').replace('content:', 'contnet:'));
    writeFileSync(join(p.root, 'app.conf'), 'edited by hand\n');
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const rejected = await d.waitFor((l) => l.msg.startsWith('goal revision rejected'));
    expect(rejected.msg).toBe('goal revision rejected; the goals last applied run instead');
    await eventually(() => readFileSync(join(p.root, 'app.conf'), 'utf8') === 'good\n', 5_000, 'the hand edit repaired to the applied goals');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  it('with none stored, says that nothing is reconciled until a revision compiles, in the log and in status', async () => {
    const p = tempProject('ds-broken-start-none-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', goals('next\n').replace('content:', 'contnet:'));
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const rejected = await d.waitFor((l) => l.msg.startsWith('goal revision rejected'));
    expect(rejected.msg).toBe('goal revision rejected; nothing is reconciled until a revision compiles (no last good goals are stored for them)');
    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.stdout).toContain('goal revision rejected; nothing is reconciled until a revision compiles');
    // Fixed: loaded, and the rejection is gone from status.
    const mark = d.lines.length;
    p.write('app.yaml', goals('next\n'));
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'conf', 10_000, mark);
    expect((await cli(['status', ...p.args], { cwd: p.dir })).stdout).not.toContain('goal revision rejected');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});

// "An empty or unreadable goal set never deletes anything": a goal file replaced by a directory of
// the same name (a bad checkout, a mistaken `mkdir`) was read as the goal removed, and with prune its
// nodes were deleted. It is a goal file that cannot be read: the revision is refused.
describe('a goal file replaced by a directory of the same name', () => {
  it('is refused as a revision that does not compile: nothing of the goal is deleted, and it is reconciled on', async () => {
    const p = tempProject('ds-goal-file-dir-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    const pruned = `${goalHead().replace('spec:\n', 'spec:\n  prune: true\n')}    - { id: conf, type: local.file, deletionPolicy: Delete, spec: { path: app.conf, content: "good\\n" } }\n`;
    p.write('app.yaml', pruned);
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'conf');
    const mark = d.lines.length;
    rmSync(join(p.dir, 'goals', 'app.yaml'));
    mkdirSync(join(p.dir, 'goals', 'app.yaml'));
    const refused = await d.waitFor((l) => l.msg.startsWith('goal revision rejected'), 10_000, mark);
    expect(refused.errors).toBe(1);
    expect(d.lines.slice(mark)).toContainEqual(expect.objectContaining({ msg: 'goal error', file: 'goals/app.yaml', line: 1, col: 1, code: 'not-a-file', text: expect.stringContaining('goal file is a directory, not a regular file') }));
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('good\n');
    // Still reconciled under the last good graph.
    writeFileSync(join(p.root, 'app.conf'), 'edited by hand\n');
    await eventually(() => readFileSync(join(p.root, 'app.conf'), 'utf8') === 'good\n', 5_000, 'the hand edit repaired');
    expect(d.lines.slice(mark).some((l) => l.msg === 'node deleted' || l.msg === 'node orphaned')).toBe(false);
    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.stdout).toMatch(/app\.yaml:1:1: error not-a-file/);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});

// Issue 3: "a mass-deletion guard refuses a revision that would delete more than max(5 nodes, 10 %)
// of managed nodes unless explicitly allowed". Refused whole, as a revision that does not compile.
describe('a revision past the mass-deletion guard, in the daemon', () => {
  it('is refused whole: said in the log and status with the nodes it would delete, and the removed nodes are still reconciled', async () => {
    const p = tempProject('ds-mass-deletion-');
    daemons.removeAfter(p.dir);
    const files = (n: number, extra = ''): string =>
      `${goalHead().replace('spec:\n', 'spec:\n  prune: true\n')}${Array.from({ length: n }, (_, i) => `    - { id: f${i}, type: local.file, deletionPolicy: Delete, spec: { path: f${i}, content: "${i}${extra}\\n" } }\n`).join('')}`;
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', files(20));
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'f19');
    let mark = d.lines.length;
    // 6 of 20 removed (the limit is max(5, 2)), and a content change that is refused with them.
    p.write('app.yaml', files(14, ' v2'));
    const refused = await d.waitFor((l) => l.msg.startsWith('goal revision rejected'), 10_000, mark);
    expect(refused).toMatchObject({ msg: 'goal revision rejected (mass deletion); the last good graph keeps running', count: 6, limit: 5, nodes: ['f19', 'f18', 'f17', 'f16', 'f15', 'f14'] });
    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.stdout).toContain('mass deletion refused: the revision would delete 6 nodes (f19, f18, f17, f16, f15, f14), more than the 5 that max(5, 10 % of the managed nodes) allows; run with --allow-mass-deletion if that is intended');
    expect(readFileSync(join(p.root, 'f0'), 'utf8')).toBe('0\n');
    // Still reconciled under the last good graph: a hand edit to a removed node's file is repaired.
    mark = d.lines.length;
    writeFileSync(join(p.root, 'f19'), 'edited by hand\n');
    await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'f19', 10_000, mark);
    await eventually(() => readFileSync(join(p.root, 'f19'), 'utf8') === '19\n', 5_000, 'f19 repaired');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);

    // Started on the refused revision, the daemon refuses it too, naming the nodes as when it ran, and runs the 20 last good ones.
    const restarted = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    expect(await restarted.waitFor((l) => l.msg.startsWith('goal revision rejected'))).toMatchObject({
      msg: 'goal revision rejected (mass deletion); the goals last applied run instead',
      count: 6,
      limit: 5,
      nodes: ['f19', 'f18', 'f17', 'f16', 'f15', 'f14'],
      lastGoodNodes: 20,
    });
    expect((await cli(['status', ...p.args], { cwd: p.dir })).stdout).toContain('mass deletion refused: the revision would delete 6 nodes (f19, f18, f17, f16, f15, f14)');
    restarted.kill('SIGTERM');
    expect((await restarted.exited).code).toBe(0);

    // The refused revision is not the last good goals: a daemon started on a broken one runs the 20 nodes
    // last running, not the 14 refused (f19, not in those, was no longer reconciled).
    p.write('app.yaml', files(14, ' v3').replace('content:', 'contnet:'));
    writeFileSync(join(p.root, 'f19'), 'edited by hand again\n');
    const again = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    expect(await again.waitFor((l) => l.msg.startsWith('goal revision rejected'))).toMatchObject({ msg: 'goal revision rejected; the goals last applied run instead', lastGoodNodes: 20 });
    await eventually(() => readFileSync(join(p.root, 'f19'), 'utf8') === '19\n', 5_000, 'f19 repaired under the last good goals');
    expect(readFileSync(join(p.root, 'f0'), 'utf8')).toBe('0\n');
    again.kill('SIGTERM');
    expect((await again.exited).code).toBe(0);
  });
});

// The last good goals are the goals last applied: an apply that applied nothing kept its goals as them
// before it ran, and a daemon started on a broken revision then ran goals never applied.
describe('an apply refused (the state locked by another process)', () => {
  it('does not make its goals the last good ones', async () => {
    const p = tempProject('ds-locked-apply-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', goals('good\n'));
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    const holder = SqliteStateStore.open({ path: join(p.state, 'state.db'), lock: true });
    try {
      p.write('app.yaml', goals('never applied\n'));
      const refused = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('is locked by process');
    } finally {
      holder.close();
    }
    p.write('app.yaml', goals('next\n').replace('content:', 'contnet:'));
    writeFileSync(join(p.root, 'app.conf'), 'edited by hand\n');
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    expect((await d.waitFor((l) => l.msg.startsWith('goal revision rejected'))).msg).toBe('goal revision rejected; the goals last applied run instead');
    await eventually(() => readFileSync(join(p.root, 'app.conf'), 'utf8') === 'good\n', 5_000, 'the hand edit repaired to the goals applied');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});

// The last good goals were refreshed only with the compiled-goal cache: an apply that did not write it
// (the cache off, its write failed, a policy rule at its time limit) left older goals as the last good
// ones, and a daemon started on a broken revision ran them, deleting (prune) the nodes added since.
describe('a daemon started on a broken revision after an apply that did not store its compiled goals', () => {
  const pruned = (extra = ''): string =>
    `${goalHead().replace('spec:\n', 'spec:\n  prune: true\n')}    - { id: a, type: local.file, deletionPolicy: Delete, spec: { path: a.txt, content: "a" } }\n${extra}`;
  const withB = pruned('    - { id: b, type: local.file, deletionPolicy: Delete, spec: { path: b.txt, content: "keep me" } }\n');
  const b = (root: string): string | undefined => (existsSync(join(root, 'b.txt')) ? readFileSync(join(root, 'b.txt'), 'utf8') : undefined);

  it('(the cache off) runs the goals last applied, not older ones: nothing they declare is deleted', async () => {
    const p = tempProject('ds-last-good-cache-off-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', pruned());
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    p.write('app.yaml', withB);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env: { DESIREDSTATE_GOAL_CACHE: 'off' } })).code).toBe(0);
    expect(b(p.root)).toBe('keep me');

    // A typo; b still declared.
    p.write('app.yaml', `${withB}  oops: [\n`);
    writeFileSync(join(p.root, 'b.txt'), 'edited by hand\n');
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    expect(await d.waitFor((l) => l.msg.startsWith('goal revision rejected'))).toMatchObject({ msg: 'goal revision rejected; the goals last applied run instead', lastGoodNodes: 2 });
    await eventually(() => b(p.root) === 'keep me', 5_000, 'b repaired under the goals last applied');
    expect(d.lines.filter((l) => l.msg === 'node deleted')).toEqual([]);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  it('(its entries not written) runs nothing rather than the older goals left stored: nothing is deleted', async () => {
    const p = tempProject('ds-last-good-stale-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', pruned());
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    const entries = ['compiled-goals.json', 'last-good-goals.json', 'last-good-goals.commit.json'];
    const older = new Map(entries.map((f) => [f, readFileSync(join(p.state, f))]));
    p.write('app.yaml', withB);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    expect(b(p.root)).toBe('keep me');
    // As though every write of them had failed (a full disk, an immutable file): the first apply's, still there.
    for (const [f, bytes] of older) {
      rmSync(join(p.state, f));
      writeFileSync(join(p.state, f), bytes);
    }

    p.write('app.yaml', `${withB}  oops: [\n`);
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    expect((await d.waitFor((l) => l.msg.startsWith('goal revision rejected'))).msg).toBe(
      'goal revision rejected; nothing is reconciled until a revision compiles (no last good goals are stored for them)',
    );
    expect((await cli(['status', ...p.args], { cwd: p.dir })).stdout).toContain('goal revision rejected; nothing is reconciled until a revision compiles');
    expect(b(p.root)).toBe('keep me');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(d.lines.filter((l) => l.msg === 'node deleted' || l.msg === 'goals loaded')).toEqual([]);
  });
});
