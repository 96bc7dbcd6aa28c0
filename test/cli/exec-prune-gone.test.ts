import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, filesProject, planBoth, stateRows } from '../support/cli.ts';
import type { FilesProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

/*
 * A node removed from the goals under prune + deletionPolicy: Delete is read before its delete, as
 * Terraform refreshes before it destroys: one whose resource is gone already is forgotten and sent no
 * delete. Here an exec resource whose delete command is not idempotent (`rm` without -f: it fails on a
 * file that is not there), as the exec protocol allows. Gone by hand, or by a delete that a crash cut
 * off after it had done its work: `plan` shows it forgotten, and `apply` and the daemon forget it, exit 0,
 * the command never asked to delete it (again).
 */
const daemons = trackDaemons();
const GONE = 'node forgotten: removed from the goals and found gone already, no delete sent';
const daemonArgs = ['--listen', '127.0.0.1:0', '--interval', '60s'];

/** k and a applied, then a taken out of the goals; a's delete removes its file, then waits while `hang` exists. */
async function project(): Promise<FilesProject> {
  const p = filesProject(
    'ds-exec-prune-gone-',
    `    rm "$dir/res-$id"
    while [ -e "$dir/hang" ]; do sleep 0.1; done`,
  );
  daemons.removeAfter(p.dir);
  p.goal(['k', 'a']);
  expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
  p.goal(['k']);
  return p;
}

/**
 * Runs `args` (apply, or the daemon) on `p` until a's delete has removed its file, and kills it -9 there, its
 * outcome never recorded: the delete is left pending. The command it left running then ends.
 */
async function killedOnceDeleted(p: FilesProject, args: readonly string[]): Promise<void> {
  writeFileSync(join(p.dir, 'hang'), '');
  const child = spawn(process.execPath, [bin, ...args, ...p.args], { cwd: p.dir, env: cleanEnv(), stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await eventually(() => p.calls().includes('delete a') && !p.has('a'), 20_000, 'the delete of a to have removed its resource');
  } finally {
    child.kill('SIGKILL');
    await exited;
    rmSync(join(p.dir, 'hang'), { force: true });
  }
  expect(stateRows(p.state, 'SELECT node, op FROM operations WHERE finished_at IS NULL')).toEqual([{ node: 'a', op: 'delete' }]);
}

/** The node ids the state holds. */
const nodeIds = (p: FilesProject): unknown[] => stateRows(p.state, 'SELECT id FROM nodes ORDER BY id');

/** How each delete of a ended in the journal. */
const deletesOfA = (p: FilesProject): unknown[] => stateRows(p.state, "SELECT outcome, detail FROM operations WHERE node = 'a' AND op = 'delete' ORDER BY id");

describe('prune + Delete of an exec node whose resource is gone already', () => {
  it('plan shows it forgotten, not deleted; apply reads it, sends no delete, forgets it and exits 0', async () => {
    const p = await project();
    rmSync(join(p.dir, 'res-a'));
    const plan = await planBoth(p.args);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain('○ a (generic.resource via exec) removed from the goals: forgotten, its resource gone already (its read finds nothing: no delete is sent)');
    expect(plan.text).not.toContain('- a');
    expect(plan.json.entries.find((e) => e.id === 'a')?.planned).toEqual({ action: 'orphan', gone: true });

    const apply = await cli(['apply', '--yes', '--format', 'json', ...p.args], { cwd: p.dir, env: { DESIREDSTATE_LOG_LEVEL: 'info' } });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const result = JSON.parse(apply.stdout) as { summary: Record<string, number>; outcomes: Record<string, { status: string }> };
    expect(result.outcomes['a']).toEqual({ status: 'orphaned' });
    expect(result.summary).toMatchObject({ deleted: 0, orphaned: 1, failed: 0 });
    expect(apply.stderr).toContain(GONE);
    // Read by the first apply (then created), by each plan, and once by this apply.
    expect(p.calls().filter((c) => c.endsWith(' a'))).toEqual(['read a', 'create a', 'read a', 'read a', 'read a']);
    expect(nodeIds(p)).toEqual([{ id: 'k' }]);
    expect(p.has('k')).toBe(true);
    expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(0);
  }, 60_000);

  it('the daemon reads it, sends no delete and forgets it', async () => {
    const p = await project();
    rmSync(join(p.dir, 'res-a'));
    const d = daemons.start([...daemonArgs, ...p.args], { cwd: p.dir });
    await d.port();
    await d.waitFor((l) => l.msg === GONE && l.node === 'a');
    d.kill('SIGTERM');
    expect(await d.exitedWithin(30_000)).toEqual({ code: 0, signal: null });
    expect(d.lines.map((l) => l.msg)).not.toContain('delete failed');
    expect(p.calls().filter((c) => c.startsWith('delete'))).toEqual([]);
    expect(nodeIds(p)).toEqual([{ id: 'k' }]);
    expect(p.has('k')).toBe(true);
  }, 60_000);

  // The delete did its work, and the crash came before its outcome was recorded: left pending, it was sent again.
  it.each([
    { how: 'apply', args: ['apply', '--yes'] },
    { how: 'the daemon', args: ['run', ...daemonArgs] },
  ])('a delete $how was killed -9 in once it had removed the resource is found done by the next apply: adopted, the node forgotten, no second delete', async ({ args }) => {
    const p = await project();
    await killedOnceDeleted(p, args);
    const again = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain('○ a: orphaned');
    expect(p.calls().filter((c) => c === 'delete a')).toHaveLength(1);
    expect(nodeIds(p)).toEqual([{ id: 'k' }]);
    expect(deletesOfA(p)).toEqual([{ outcome: 'adopted', detail: 'found done after an interrupted delete' }]);
    expect(stateRows(p.state, 'SELECT count(*) AS n FROM operations WHERE finished_at IS NULL')).toEqual([{ n: 0 }]);
  }, 60_000);

  it('a daemon restarted after it was killed -9 in such a delete finds it done too', async () => {
    const p = await project();
    await killedOnceDeleted(p, ['run', ...daemonArgs]);
    const d = daemons.start([...daemonArgs, ...p.args], { cwd: p.dir });
    await d.waitFor((l) => l.msg === GONE && l.node === 'a', 30_000);
    expect(d.lines.filter((l) => l.msg === 'interrupted operation resolved by observation: adopted')).toMatchObject([{ node: 'a', op: 'delete' }]);
    d.kill('SIGTERM');
    expect(await d.exitedWithin(30_000)).toEqual({ code: 0, signal: null });
    expect(p.calls().filter((c) => c === 'delete a')).toHaveLength(1);
    expect(nodeIds(p)).toEqual([{ id: 'k' }]);
    expect(deletesOfA(p)).toEqual([{ outcome: 'adopted', detail: 'found done after an interrupted delete' }]);
  }, 60_000);
});
