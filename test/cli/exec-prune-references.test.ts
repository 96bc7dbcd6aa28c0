import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, planBoth, shellResource, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

/**
 * A node removed from the goals under prune + Delete whose spec references another node's output
 * (`parent: ${nodes.a.outputs.rid}`). Its delete read the reference from the outputs of the nodes
 * deleted before it alone, so `apply` failed it on every run (`transient: waiting for outputs a.rid`)
 * though `plan` said `- b`, and with `a` removed too neither `apply` nor the daemon ever deleted it.
 * It is deleted as it was made, as Terraform destroys from its state: its spec as last applied, its
 * references read as they were then (kept with its record), whatever became of `a` since.
 */
const daemons = trackDaemons();

/** Resources are files `$dir/<id>`; each create outputs `rid: id-<id>`; each delete's request is logged. */
const RESOURCE = `req=$(cat)
case "$1" in
  read) if [ -f "$dir/$2" ]; then echo '{"exists":true,"state":{},"outputs":{}}'; else echo '{"exists":false}'; fi ;;
  create) touch "$dir/$2"; echo "{\\"outputs\\":{\\"rid\\":\\"id-$2\\"}}" ;;
  delete) printf '%s\\n' "$req" >> "$dir/deletes.log"; rm -f "$dir/$2" ;;
esac
`;

/** A project with `keep`, `a` (deletionPolicy `aPolicy`) and `b` (Delete), `b` referencing `a`'s `rid` (twice). */
function project(prefix: string, aPolicy: 'Orphan' | 'Delete') {
  const p = tempProject(prefix);
  const script = shellResource(p.dir, RESOURCE);
  const node = (id: string, policy: string, input: string): string => `    - id: ${id}
      type: generic.resource
      deletionPolicy: ${policy}
      spec:
        commands: { read: [${script}, read, ${id}], create: [${script}, create, ${id}], delete: [${script}, delete, ${id}] }
        input: ${input}
`;
  const nodes: Record<string, string> = {
    keep: node('keep', 'Orphan', '{}'),
    a: node('a', aPolicy, '{}'),
    b: node('b', 'Delete', '{ parent: "${nodes.a.outputs.rid}", path: "/${nodes.a.outputs.rid}/b" }'),
  };
  const goals = (ids: readonly string[]): void => p.write('goals.yaml', `${execGoalHead({ name: 'g', prune: true })}${ids.map((id) => nodes[id]).join('')}`);
  /** The ids and inputs of the deletes the script was asked for, in order. */
  const deletes = (): { id: string; input: unknown }[] => {
    const log = join(p.dir, 'deletes.log');
    const requests = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; input: unknown }) : [];
    return requests.map(({ id, input }) => ({ id, input }));
  };
  const exists = (id: string): boolean => existsSync(join(p.dir, id));
  return { p, goals, deletes, exists };
}

/**
 * The state as an older version left it: b's record applied at its goal spec's digest alone (none of its
 * spec as resolved after a slash) and without the referenced outputs, and (`forgetA`) a forgotten since.
 */
function asOlderVersionLeftIt(state: string, { forgetA }: { forgetA: boolean }): void {
  const db = new Database(join(state, 'state.db'));
  try {
    const { snapshot, applied_digest: digest } = db.prepare("SELECT snapshot, applied_digest FROM nodes WHERE id = 'b'").get() as { snapshot: string; applied_digest: string };
    const { refs, ...older } = JSON.parse(snapshot) as Record<string, unknown>;
    expect(refs).toEqual({ a: { rid: 'id-a' } });
    const [goal, resolved] = digest.split('/');
    expect(resolved).toBeDefined();
    db.prepare("UPDATE nodes SET snapshot = ?, applied_digest = ? WHERE id = 'b'").run(JSON.stringify(older), goal);
    if (forgetA) db.prepare("DELETE FROM nodes WHERE id = 'a'").run();
  } finally {
    db.close();
  }
}

const env = { DESIREDSTATE_LOG_LEVEL: 'silent' };
/** What b was made with, and what its delete must be given. */
const bInput = { parent: 'id-a', path: '/id-a/b' };

describe('apply deletes a removed node whose spec references another node', () => {
  it.each([
    { name: 'the node it references still declared', aPolicy: 'Orphan' as const, left: ['keep', 'a'], lines: ['  - b: deleted'], deleted: ['b'] },
    { name: 'both removed with Delete: it first, then the node it references', aPolicy: 'Delete' as const, left: ['keep'], lines: ['  - b: deleted', '  - a: deleted'], deleted: ['b', 'a'] },
    { name: 'the node it references removed with Orphan (forgotten, left as it is)', aPolicy: 'Orphan' as const, left: ['keep'], lines: ['  - b: deleted', '  ○ a: orphaned'], deleted: ['b'] },
  ])('$name', async ({ aPolicy, left, lines, deleted }) => {
    const { p, goals, deletes, exists } = project('ds-prune-refs-', aPolicy);
    goals(['keep', 'a', 'b']);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    goals(left);
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    for (const line of lines) expect(apply.stdout).toContain(line);
    // Given its input as it was made, in reverse dependency order.
    expect(deletes()).toEqual(deleted.map((id) => ({ id, input: id === 'b' ? bInput : {} })));
    expect(exists('b')).toBe(false);
    expect(exists('a')).toBe(aPolicy === 'Orphan');
    // Converged: nothing left to do.
    expect((await cli(['plan', ...p.args], { env })).code).toBe(0);
  });

  it('a record an older version wrote (its goal digest alone, no referenced outputs) reads those the state holds now', async () => {
    const { p, goals, deletes, exists } = project('ds-prune-refs-old-', 'Orphan');
    goals(['keep', 'a', 'b']);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    asOlderVersionLeftIt(p.state, { forgetA: false });
    goals(['keep']);
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(deletes()).toEqual([{ id: 'b', input: bInput }]);
    expect(exists('b')).toBe(false);
  });

  it('a record an older version wrote, whose referenced node is gone from the state: fails at once, saying why and the ways out', async () => {
    const { p, goals, deletes, exists } = project('ds-prune-refs-gone-', 'Orphan');
    goals(['keep', 'a', 'b']);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    asOlderVersionLeftIt(p.state, { forgetA: true });
    goals(['keep']);
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain(
      'x b: permanent: node "b" on backend "exec" cannot be deleted: the state keeps no value for ${nodes.a.outputs.rid}, which its spec references (none kept with its record, written before they were, and node "a" forgotten since or without that output): declare node "a" again (apply records the outputs), or delete the resource by hand and apply once with prune: false on goal "g" to forget node "b"',
    );
    expect(deletes()).toEqual([]);
    expect(exists('b')).toBe(true);
    // The way out it names: prune off for one apply forgets b.
    p.write('goals.yaml', readFileSync(join(p.goals, 'goals.yaml'), 'utf8').replace('  prune: true\n', ''));
    const forget = await cli(['apply', '--yes', ...p.args], { env });
    expect(forget.code, forget.stdout + forget.stderr).toBe(0);
    expect(forget.stdout).toContain('  ○ b: orphaned');
  });
});

describe('plan shows such a delete as apply will make or refuse it', () => {
  const refused =
    'node "b" on backend "exec" cannot be deleted: the state keeps no value for ${nodes.a.outputs.rid}, which its spec references (none kept with its record, written before they were, and node "a" forgotten since or without that output): declare node "a" again (apply records the outputs), or delete the resource by hand and apply once with prune: false on goal "g" to forget node "b"';

  it('a record an older version wrote, whose referenced node is gone from the state: an error with apply\'s reason, exit 1, not `-`', async () => {
    const { p, goals, deletes } = project('ds-prune-refs-plan-', 'Orphan');
    goals(['keep', 'a', 'b']);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    asOlderVersionLeftIt(p.state, { forgetA: true });
    goals(['keep']);
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(1);
    expect(planned.text).toContain(`  x b (generic.resource via exec) error (permanent): ${refused}\n`);
    expect(planned.text).toContain('0 to delete, 0 drifted, 1 unchanged, 0 blocked or held, 1 errors.');
    expect(planned.json.entries.find((e) => e.id === 'b')?.planned).toEqual({ action: 'error', fault: { class: 'permanent', message: refused, code: 'delete-outputs-unknown', notTheBackend: 'before-call' } });
    expect(planned.json.counts).toMatchObject({ delete: 0, error: 1 });
    expect(deletes()).toEqual([]);
    // As apply then has it.
    expect((await cli(['apply', '--yes', ...p.args], { env })).stdout).toContain(`  x b: permanent: ${refused}\n`);
  });

  it('the way out it names, the referenced node declared again: created first, so `-`, and apply deletes it with the output the create gives', async () => {
    const { p, goals, deletes, exists } = project('ds-prune-refs-plan-again-', 'Orphan');
    goals(['keep', 'a', 'b']);
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    asOlderVersionLeftIt(p.state, { forgetA: true });
    // Gone since too, so that declared again it is created (found, it would give no rid: the delete is refused then too).
    rmSync(join(p.dir, 'a'));
    goals(['keep', 'a']);
    const planned = await planBoth(p.args, env);
    expect(planned.code, planned.text).toBe(2);
    expect(planned.text).toContain('  + a (generic.resource via exec)\n');
    expect(planned.text).toContain('  - b (generic.resource via exec)\n');
    expect(planned.json.entries.find((e) => e.id === 'b')?.planned).toEqual({ action: 'delete' });
    // apply asks about b though the outputs the state holds lack a's rid: the create that gives it comes first.
    const asked = await cli(['apply', ...p.args], { env });
    expect(asked.stderr).toContain('apply would delete 1 node(s): b\nnot deleting: no terminal to ask on');
    expect(exists('b')).toBe(true);
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(deletes()).toEqual([{ id: 'b', input: bInput }]);
    expect(exists('b')).toBe(false);
  });
});

describe('the daemon deletes a removed node whose spec references a node forgotten with it', () => {
  it('deletes it with the outputs it was made with', async () => {
    const { p, goals, deletes, exists } = project('ds-prune-refs-daemon-', 'Orphan');
    goals(['keep', 'a', 'b']);
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'b', 20_000);
    const mark = d.lines.length;
    goals(['keep']);
    // Before: `delete failed` (waiting for outputs a.rid), again and again, a's outputs gone with its record.
    const outcome = await d.waitFor((l) => l.node === 'b' && (l.msg === 'node deleted' || l.msg === 'delete failed'), 20_000, mark);
    expect(outcome.msg, JSON.stringify(outcome)).toBe('node deleted');
    expect(d.lines.slice(mark).some((l) => l.msg.startsWith('node orphaned') && l.node === 'a')).toBe(true);
    expect(deletes()).toEqual([{ id: 'b', input: bInput }]);
    expect(exists('b')).toBe(false);
    expect(exists('a')).toBe(true);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 60_000);

  it('holds one it cannot resolve (an older version\'s record, its referenced node gone), saying why, rather than trying for ever', async () => {
    const { p, goals, exists } = project('ds-prune-refs-daemon-old-', 'Orphan');
    goals(['keep', 'a', 'b']);
    // From the daemon's working directory: the exec backend's cwd is it, and from another one b's delete would be refused for that.
    expect((await cli(['apply', '--yes', ...p.args], { env, cwd: p.dir })).code).toBe(0);
    asOlderVersionLeftIt(p.state, { forgetA: true });
    goals(['keep']);
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir });
    // Given up on (a permanent fault: held after its retry budget), as any node is.
    const held = await d.waitFor((l) => l.msg === 'delete failed' && l.node === 'b' && typeof l.reason === 'string', 20_000);
    expect(held).toMatchObject({ backend: 'exec', fault: { class: 'permanent', code: 'delete-outputs-unknown' } });
    // Shown held, with the cause first (written with the daemon's next commit).
    await eventually(
      async () => {
        const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { nodes: { id: string; status: string; reason: string | null }[] };
        const b = status.nodes.find((n) => n.id === 'b');
        return b?.status === 'held' && b.reason?.startsWith('node "b" on backend "exec" cannot be deleted') === true;
      },
      10_000,
      'b held',
    );
    expect(exists('b')).toBe(true);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 60_000);
});
