import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, logLines, planBoth, shellResource, tempProject } from '../support/cli.ts';
import { trackDaemons } from '../support/daemon.ts';

// An exec command is handed the node's id with its input, and may key its resource on either: this one
// keys a bucket on its input's name alone. Renamed under prune + Delete, its node adopts the bucket under
// the new id; deleting the old id deleted the bucket the goals still declare (and the next pass made it
// again, empty). Two nodes of one backend, commands and input may be one resource or two, so the old id
// is let go, with a warning that names both; a removed node no node of the goals is like is deleted.
const daemons = trackDaemons();
const SAME_SPEC_KEPT =
  'removed from the goals but not deleted: a node new to the goals has its backend and spec exactly, and may manage the same resource; forgotten, its resource left in place (to delete it, remove it in a change that adds no node of its spec)';

/** A bucket API: each bucket a file `<name>.json` under `$dir/buckets` holding its settings; each delete logged in `$dir/deletes.log`. */
function bucketScript(dir: string): string {
  return shellResource(
    dir,
    `req=$(cat)
name=$(printf '%s' "$req" | sed -n 's/.*"name":"\\([a-z0-9-]*\\)".*/\\1/p')
file="$dir/buckets/$name.json"
mkdir -p "$dir/buckets"
case "$1" in
  read) if [ -f "$file" ]; then printf '{"exists":true,"state":%s,"outputs":{}}\\n' "$(cat "$file")"; else echo '{"exists":false}'; fi ;;
  create|update) printf '%s' "$req" | sed 's/.*"input":\\({[^}]*}\\).*/\\1/' > "$file"; echo '{"outputs":{}}' ;;
  delete) echo "$name" >> "$dir/deletes.log"; rm -f "$file" ;;
esac
`,
  );
}

/** Nodes `id: bucket name`, with one set of commands, each `deletionPolicy: Delete`, on an exec backend, under prune. */
function goal(script: string, buckets: Record<string, string>): string {
  const commands = `{ read: [${script}, read], create: [${script}, create], update: [${script}, update], delete: [${script}, delete] }`;
  const nodes = Object.entries(buckets).map(
    ([id, name]) => `    - id: ${id}
      type: generic.resource
      deletionPolicy: Delete
      spec: { commands: ${commands}, input: { name: ${name}, retentionDays: 30 } }
`,
  );
  return `${execGoalHead({ prune: true })}${nodes.join('')}`;
}

describe('an exec node renamed under prune + Delete', () => {
  it('plan and apply let the old id go, warning of both nodes, and keep the bucket; a removed node like no other is deleted', async () => {
    const p = tempProject('ds-exec-rename-');
    const script = bucketScript(p.dir);
    const bucket = (name: string): string => join(p.dir, 'buckets', `${name}.json`);
    p.write('goals.yaml', goal(script, { logs: 'logs', tmp: 'tmp' }));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    writeFileSync(bucket('logs'), '{"name":"logs","retentionDays":30,"objects":2}');

    // logs renamed, its commands and input the same; tmp, of the same commands but its own input, removed.
    p.write('goals.yaml', goal(script, { 'logs-bucket': 'logs' }));
    const plan = await planBoth(['--all', ...p.args]);
    expect(plan.code, plan.text).toBe(2);
    expect(plan.text).toContain('  = logs-bucket (generic.resource via exec)');
    expect(plan.text).toContain(
      '  ○ logs (generic.resource via exec) removed from the goals: forgotten, its resource left as it is (not deleted: node logs-bucket, new to the goals, has its backend and spec exactly, and may manage the same resource; to delete it, remove it in a change that adds no node of its spec)',
    );
    expect(plan.text).toContain('  - tmp (generic.resource via exec)');
    expect(plan.text).not.toContain('  - logs ');
    expect(plan.json.entries.find((e) => e.id === 'logs')?.planned).toEqual({ action: 'orphan', sameSpecAs: 'logs-bucket' });
    expect(plan.json.entries.find((e) => e.id === 'tmp')?.planned).toEqual({ action: 'delete' });

    const apply = await cli(['apply', '--yes', ...p.args, '--log-level', 'warn']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('  ○ logs: orphaned');
    expect(apply.stdout).toContain('  - tmp: deleted');
    expect(apply.stderr).toContain(`"node":"logs","backend":"exec","sameSpecAs":"logs-bucket","msg":"${SAME_SPEC_KEPT}"`);
    expect(apply.stderr).not.toContain('"node":"tmp"');
    expect(logLines(join(p.dir, 'deletes.log'))).toEqual(['tmp']);
    expect(existsSync(bucket('tmp'))).toBe(false);
    // The bucket as it was, not deleted and made again empty.
    expect(readFileSync(bucket('logs'), 'utf8')).toBe('{"name":"logs","retentionDays":30,"objects":2}');
    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args])).stdout) as { nodes: { id: string; status: string }[] };
    expect(status.nodes.map((n) => [n.id, n.status])).toEqual([['logs-bucket', 'ready']]);

    // Forgotten: nothing more to say or do.
    const again = await cli(['apply', '--yes', ...p.args, '--log-level', 'warn']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('0 created, 0 updated, 0 deleted, 1 unchanged');
    expect(again.stderr).not.toContain(SAME_SPEC_KEPT);
  });

  it('renamed and moved to another exec Backend with the same working directory, the old id is let go too', async () => {
    const p = tempProject('ds-exec-rename-twin-');
    const script = bucketScript(p.dir);
    const twin = 'apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: twin }\nspec: { type: exec }\n---\n';
    p.write('goals.yaml', twin + goal(script, { logs: 'logs' }));
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    p.write('goals.yaml', twin + goal(script, { 'logs-bucket': 'logs' }).replace('      type: generic.resource\n', '      type: generic.resource\n      backend: twin\n'));
    const apply = await cli(['apply', '--yes', ...p.args, '--log-level', 'warn'], { cwd: p.dir });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('  ○ logs: orphaned');
    expect(apply.stderr).toContain(`"node":"logs","backend":"exec","sameSpecAs":"logs-bucket","msg":"${SAME_SPEC_KEPT}"`);
    expect(logLines(join(p.dir, 'deletes.log'))).toEqual([]);
    expect(existsSync(join(p.dir, 'buckets', 'logs.json'))).toBe(true);
  });

  it('the daemon lets the old id go too, with the warning', async () => {
    const q = tempProject('ds-exec-rename-run-');
    daemons.removeAfter(q.dir);
    const script = bucketScript(q.dir);
    q.write('goals.yaml', goal(script, { logs: 'logs' }));
    expect((await cli(['apply', '--yes', ...q.args], { cwd: q.dir })).code).toBe(0);
    q.write('goals.yaml', goal(script, { 'logs-bucket': 'logs' }));
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', ...q.args], { cwd: q.dir });
    expect(await d.waitFor((l) => l.msg === SAME_SPEC_KEPT, 20_000)).toMatchObject({ node: 'logs', sameSpecAs: 'logs-bucket' });
    await d.waitFor((l) => l.msg === 'node orphaned: removed from the goals, resource left untouched' && l.node === 'logs', 20_000);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(d.lines.some((l) => l.msg === 'node deleted')).toBe(false);
    expect(existsSync(join(q.dir, 'buckets', 'logs.json'))).toBe(true);
    expect(logLines(join(q.dir, 'deletes.log'))).toEqual([]);
  });
});
