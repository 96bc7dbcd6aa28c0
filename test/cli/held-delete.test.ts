import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, filesProject, stateRows } from '../support/cli.ts';
import type { FilesProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

/*
 * A node removed from the goals whose delete the fault policy gave up on (a permanent fault, its retry budget
 * spent) is held until `retry`, as a node of the goals is. Every apply read it and sent its delete again, then
 * marked it failed, no longer held; so did every daemon start. Its delete here fails until `fixed` exists.
 */
const daemons = trackDaemons();

function project(): FilesProject & { policy: string; fix(): void } {
  const p = filesProject(
    'ds-held-delete-',
    `    if [ ! -e "$dir/fixed" ]; then echo "the API refuses the delete" >&2; exit 1; fi
    rm "$dir/res-$id"`,
  );
  daemons.removeAfter(p.dir);
  const policy = join(p.dir, 'faults.yaml');
  writeFileSync(policy, 'retry: { permanent: { retryBudget: 2 } }\n');
  return Object.assign(p, { policy, fix: () => writeFileSync(join(p.dir, 'fixed'), '') });
}

const deletes = (p: FilesProject, id: string): number => p.calls().filter((c) => c === `delete ${id}`).length;

async function statusOf(p: FilesProject, id: string): Promise<{ status: string; reason: string | null } | undefined> {
  const json = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { nodes: { id: string; status: string; reason: string | null }[] };
  return json.nodes.find((n) => n.id === id);
}

describe('a removed node whose delete is held', () => {
  it('stays held in apply, plan and a restarted daemon, with no read or delete sent, until retry releases it: through a daemon, or with none, for the next apply', async () => {
    const p = project();
    p.goal(['k', 'a', 'b']);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    p.goal(['k']);
    const args = ['--fault-policy', p.policy, '--listen', '127.0.0.1:0', '--interval', '1s', ...p.args];
    const first = daemons.start(args, { cwd: p.dir });
    await eventually(async () => (await statusOf(p, 'a'))?.status === 'held' && (await statusOf(p, 'b'))?.status === 'held', 30_000, 'a and b held');
    first.kill('SIGTERM');
    expect(await first.exitedWithin(40_000)).toEqual({ code: 0, signal: null });
    expect([deletes(p, 'a'), deletes(p, 'b')]).toEqual([2, 2]);
    const reason = "the API refuses the delete (permanent fault after 2 attempts; held until its goal (the node's spec) changes or `desiredstate retry NODE`)";
    expect(await statusOf(p, 'a')).toEqual(expect.objectContaining({ status: 'held', reason }));
    const calls = p.calls().length;

    // Held, as a node of the goals: shown so, exit 1, nothing read or sent.
    const plan = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(plan.code).toBe(1);
    expect(plan.stdout.split('\n')).toEqual(expect.arrayContaining([`  ⊘ a (generic.resource via exec) held: ${reason}`, `  ⊘ b (generic.resource via exec) held: ${reason}`]));
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code).toBe(1);
    expect(apply.stdout.split('\n')).toEqual(expect.arrayContaining([`  ⊘ a: held: ${reason}`, `  ⊘ b: held: ${reason}`, 'Apply: 0 created, 0 updated, 0 deleted, 1 unchanged, 0 failed, 0 blocked, 2 held.']));
    expect(p.calls().slice(calls).filter((c) => c !== 'read k')).toEqual([]);
    expect(await statusOf(p, 'a')).toMatchObject({ status: 'held' });
    expect(await statusOf(p, 'b')).toMatchObject({ status: 'held' });

    // A restart keeps them held too; `retry a` through it deletes a, once its cause is fixed.
    const second = daemons.start(args, { cwd: p.dir });
    await second.port();
    expect(p.calls().slice(calls).filter((c) => c !== 'read k')).toEqual([]);
    p.fix();
    expect((await cli(['retry', 'a', ...p.args], { cwd: p.dir })).code).toBe(0);
    await eventually(() => stateRows(p.state, "SELECT id FROM nodes WHERE id = 'a'").length === 0, 20_000, 'a deleted');
    expect([deletes(p, 'a'), p.has('a')]).toEqual([3, false]);
    second.kill('SIGTERM');
    expect(await second.exitedWithin(40_000)).toEqual({ code: 0, signal: null });
    expect(await statusOf(p, 'b')).toMatchObject({ status: 'held' });
    expect(deletes(p, 'b')).toBe(2);

    // With no daemon: `retry b` writes the release, and the next apply deletes it.
    expect((await cli(['retry', 'b', ...p.args], { cwd: p.dir })).code).toBe(0);
    const after = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(after.code).toBe(0);
    expect([deletes(p, 'b'), p.has('b')]).toEqual([3, false]);
    expect(stateRows(p.state, 'SELECT id FROM nodes')).toEqual([{ id: 'k' }]);
  }, 120_000);
});
