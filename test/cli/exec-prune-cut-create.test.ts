import { spawn } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, execGoalHead, logLines, planBoth, shellResource, stateRows, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

/*
 * A node whose create a kill -9 of the daemon cut short, then removed from the goals: it is not managed (no
 * create was recorded done), yet its create may have made the resource. Under prune + deletionPolicy: Delete
 * it is read first, told the create was interrupted, and deleted if found (`plan` shows `-`), held if the read
 * cannot tell; never forgotten unread with the resource left behind. Under Orphan it is forgotten, and `plan`
 * and the log say what the create may have made is left.
 */
const daemons = trackDaemons();
const daemonArgs = ['--listen', '127.0.0.1:0', '--interval', '60s'];
const ORPHANED_CUT_SHORT = 'node orphaned: removed from the goals with its create cut short; what the create may have made is left untouched';

type Project = ReturnType<typeof tempProject> & { goal(ids: readonly string[], policy?: 'Delete' | 'Orphan'): void; calls(): string[]; has(id: string): boolean };

/**
 * Exec nodes (goal `infra`, prune, input `{ n: ID }`: no two of one spec) that are files `res-ID`; each call logged as `VERB ID` in `calls.log`, a read
 * told of an interrupted create as `read ID interrupted`. A create makes its file, then waits while `hang` exists;
 * a read told of an interrupted create cannot tell while `unsure` exists.
 */
function project(prefix: string): Project {
  const p = tempProject(prefix);
  daemons.removeAfter(p.dir);
  const script = shellResource(
    p.dir,
    `req=$(cat)
id=$(echo "$req" | sed -n 's/.*"id":"\\([a-z]*\\)".*/\\1/p')
cut=$(echo "$req" | grep -q '"interrupted":true' && echo ' interrupted' || true)
echo "$1 $id$cut" >> "$dir/calls.log"
case "$1" in
  read)
    if [ -n "$cut" ] && [ -f "$dir/unsure" ]; then echo '{"exists":"unknown","reason":"a create was interrupted"}'
    elif [ -f "$dir/res-$id" ]; then echo "{\\"exists\\":true,\\"state\\":{\\"n\\":\\"$id\\"}}"; else echo '{"exists":false}'; fi ;;
  create)
    touch "$dir/res-$id"
    while [ -e "$dir/hang" ]; do sleep 0.1; done
    echo '{"outputs":{}}' ;;
  delete) rm "$dir/res-$id" ;;
esac
`,
  );
  const commands = `{ read: [${JSON.stringify(script)}, read], create: [${JSON.stringify(script)}, create], delete: [${JSON.stringify(script)}, delete] }`;
  const goal = (ids: readonly string[], policy: 'Delete' | 'Orphan' = 'Delete'): void =>
    p.write('goals.yaml', `${execGoalHead({ prune: true, config: `{ cwd: ${JSON.stringify(p.dir)} }` })}${ids.map((id) => `    - { id: ${id}, type: generic.resource, deletionPolicy: ${policy}, spec: { commands: ${commands}, input: { n: ${id} } } }\n`).join('')}`);
  return Object.assign(p, { goal, calls: () => logLines(join(p.dir, 'calls.log')), has: (id: string) => existsSync(join(p.dir, `res-${id}`)) });
}

/**
 * k and a declared, a daemon killed -9 while a's create hangs, once it made the resource: the create left pending,
 * a not managed. Then a is taken out of the goals (with `policy`).
 */
async function cutShortThenRemoved(prefix: string, policy: 'Delete' | 'Orphan' = 'Delete'): Promise<Project> {
  const p = project(prefix);
  p.goal(['k', 'a'], policy);
  writeFileSync(join(p.dir, 'hang'), '');
  const child = spawn(process.execPath, [bin, 'run', ...daemonArgs, ...p.args], { cwd: p.dir, env: cleanEnv(), stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await eventually(() => p.calls().includes('create a') && p.has('a') && p.has('k'), 20_000, 'the create of a to have made its resource');
  } finally {
    child.kill('SIGKILL');
    await exited;
    rmSync(join(p.dir, 'hang'), { force: true });
  }
  expect(stateRows(p.state, "SELECT managed FROM nodes WHERE id = 'a'")).toEqual([{ managed: 0 }]);
  expect(stateRows(p.state, "SELECT op FROM operations WHERE node = 'a' AND finished_at IS NULL")).toEqual([{ op: 'create' }]);
  p.goal(['k'], policy);
  return p;
}

const nodeIds = (p: Project): unknown[] => stateRows(p.state, 'SELECT id FROM nodes ORDER BY id');
const opsOfA = (p: Project): unknown[] => stateRows(p.state, "SELECT op, outcome, detail FROM operations WHERE node = 'a' ORDER BY id");

describe('prune + Delete of a node whose create a crash cut short', () => {
  it('plan shows it deleted; apply reads it, told the create was interrupted, and deletes what it finds', async () => {
    const p = await cutShortThenRemoved('ds-cut-create-apply-');
    const plan = await planBoth(p.args);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain('- a (generic.resource via exec)');
    expect(plan.json.entries.find((e) => e.id === 'a')?.planned).toEqual({ action: 'delete' });

    const apply = await cli(['apply', '--yes', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const result = JSON.parse(apply.stdout) as { summary: Record<string, number>; outcomes: Record<string, { status: string }> };
    expect(result.outcomes['a']).toEqual({ status: 'deleted' });
    expect(result.summary).toMatchObject({ deleted: 1, orphaned: 0 });
    expect(p.calls().filter((c) => c.endsWith(' a') || c.endsWith(' a interrupted')).slice(-2)).toEqual(['read a interrupted', 'delete a']);
    expect(p.has('a')).toBe(false);
    expect(nodeIds(p)).toEqual([{ id: 'k' }]);
    expect(opsOfA(p)).toEqual([
      { op: 'create', outcome: 'abandoned', detail: 'interrupted; deleted again' },
      { op: 'delete', outcome: 'done', detail: null },
    ]);
  }, 60_000);

  it('a daemon restarted reads it and deletes what it finds', async () => {
    const p = await cutShortThenRemoved('ds-cut-create-run-');
    const d = daemons.start([...daemonArgs, ...p.args], { cwd: p.dir });
    const line = await d.waitFor((l) => l.node === 'a' && (l.msg === 'node deleted' || String(l.msg).startsWith('node orphaned')), 30_000);
    expect(line.msg).toBe('node deleted');
    d.kill('SIGTERM');
    expect(await d.exitedWithin(30_000)).toEqual({ code: 0, signal: null });
    expect(p.calls()).toContain('read a interrupted');
    expect(p.has('a')).toBe(false);
    expect(nodeIds(p)).toEqual([{ id: 'k' }]);
  }, 60_000);

  it('a read that cannot tell holds it for an operator: apply exits 1, the node and its pending create kept', async () => {
    const p = await cutShortThenRemoved('ds-cut-create-unsure-');
    writeFileSync(join(p.dir, 'unsure'), '');
    const plan = await planBoth(p.args);
    expect(plan.code).toBe(1);
    expect(plan.json.entries.find((e) => e.id === 'a')?.planned).toMatchObject({ action: 'held' });
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code, apply.stdout + apply.stderr).toBe(1);
    expect(p.calls()).not.toContain('delete a');
    expect(p.has('a')).toBe(true);
    const held = stateRows(p.state, "SELECT status, reason FROM nodes WHERE id = 'a'") as { status: string; reason: string }[];
    expect(held).toMatchObject([{ status: 'held' }]);
    expect(held[0]!.reason).toMatch(/^cannot tell whether it exists: .*a create was interrupted/);
    expect(stateRows(p.state, "SELECT op FROM operations WHERE node = 'a' AND finished_at IS NULL")).toEqual([{ op: 'create' }]);
  }, 60_000);

  it('so does a daemon restarted: held, not deleted, the node kept', async () => {
    const p = await cutShortThenRemoved('ds-cut-create-unsure-run-');
    writeFileSync(join(p.dir, 'unsure'), '');
    const d = daemons.start([...daemonArgs, ...p.args], { cwd: p.dir });
    const line = await d.waitFor((l) => l.node === 'a' && (['delete held: existence indeterminate', 'node deleted'].includes(String(l.msg)) || String(l.msg).startsWith('node orphaned')), 30_000);
    expect(line.msg).toBe('delete held: existence indeterminate');
    d.kill('SIGTERM');
    expect(await d.exitedWithin(30_000)).toEqual({ code: 0, signal: null });
    expect(p.calls()).not.toContain('delete a');
    expect(p.has('a')).toBe(true);
    expect(stateRows(p.state, "SELECT status FROM nodes WHERE id = 'a'")).toEqual([{ status: 'held' }]);
    expect(stateRows(p.state, "SELECT op FROM operations WHERE node = 'a' AND finished_at IS NULL")).toEqual([{ op: 'create' }]);
  }, 60_000);
});

describe('deletionPolicy: Orphan of a node whose create a crash cut short', () => {
  it('is forgotten, plan and the log saying what the create may have made is left', async () => {
    const p = await cutShortThenRemoved('ds-cut-create-orphan-', 'Orphan');
    const plan = await planBoth(p.args);
    expect(plan.text).toContain('○ a (generic.resource via exec) removed from the goals: forgotten, what its create, cut short, may have made left as it is');
    expect(plan.json.entries.find((e) => e.id === 'a')?.planned).toEqual({ action: 'orphan', createCutShort: true });
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env: { DESIREDSTATE_LOG_LEVEL: 'info' } });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stderr).toContain(ORPHANED_CUT_SHORT);
    expect(p.calls()).not.toContain('delete a');
    expect(p.has('a')).toBe(true);
    expect(nodeIds(p)).toEqual([{ id: 'k' }]);
  }, 60_000);
});
