import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, shellResource, tempProject } from '../support/cli.ts';

/**
 * A command's fault is the last lines of its stderr (GOAL-FORMAT.md), and the line that matters is
 * conventionally the last. status's REASON column (and history RUN's DETAIL) showed the first of
 * them, the others spilling out under the table; it shows the last, and `--format json` all of them.
 */
const p = tempProject('ds-status-reason-');
const script = shellResource(
  p.dir,
  `cat > /dev/null
case "$1" in
read) echo '{"exists":false}' ;;
create) i=1; while [ $i -le 29 ]; do echo "noise line $i" >&2; i=$((i+1)); done; echo "REAL REASON" >&2; exit 1 ;;
esac
`,
);
p.write(
  'goals.yaml',
  `${execGoalHead()}    - id: r1
      type: generic.resource
      spec:
        commands: { read: [${script}, read], create: [${script}, create], update: [${script}, update] }
        input: { name: logs }
`,
);

describe('a multi-line fault in a table', () => {
  it('status and history RUN show its last line, one row a node; --format json has the message whole', async () => {
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain('REAL REASON');

    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.code).toBe(0);
    const lines = status.stdout.trimEnd().split('\n');
    // The header, one row, the count: nothing spilled under the table.
    expect(lines).toHaveLength(4);
    expect(lines[2]).toMatch(/^r1 +generic\.resource +exec +failed +\S+ +REAL REASON \(last of 10 lines\)$/);
    expect(status.stdout).not.toContain('noise');

    const json = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { nodes: { id: string; reason: string }[] };
    const reason = json.nodes.find((n) => n.id === 'r1')?.reason;
    expect(reason?.split('\n')).toEqual([...Array.from({ length: 9 }, (_, i) => `noise line ${i + 21}`), 'REAL REASON']);

    const run = await cli(['history', '1', ...p.args], { cwd: p.dir });
    const rows = run.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(3);
    expect(rows[2]).toMatch(/ create +r1 +failed +REAL REASON \(last of 10 lines\)$/);
  });
});

/**
 * apply and plan list one line a node: a multi-line fault printed whole broke it (its later lines
 * unindented under it, read as apply's own). They show it as status does, by its last line; `--format
 * json` has it whole.
 */
describe('a multi-line fault in apply and plan', () => {
  const q = tempProject('ds-apply-reason-');
  const fails = (stage: string): string => `[/bin/sh, -c, 'cat >/dev/null; printf "line one\\nline two\\nfinal line\\n" >&2; exit 1'${stage}]`;
  q.write(
    'goals.yaml',
    `${execGoalHead()}    - id: bad
      type: generic.resource
      spec:
        commands: { read: ["/bin/sh", "-c", "echo '{\\"exists\\":false}'"], create: ${fails('')} }
    - id: unread
      type: generic.resource
      spec:
        commands: { read: ${fails('')}, create: ["true"] }
`,
  );

  it('apply shows a failed node on its line, by the message\'s last line', async () => {
    const apply = await cli(['apply', '--yes', ...q.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toMatch(/^ {2}x bad: \w+: final line \(last of 3 lines\)$/m);
    expect(apply.stdout).toMatch(/^ {2}x unread: \w+: final line \(last of 3 lines\)$/m);
    expect(apply.stdout).not.toContain('line one');
    const json = JSON.parse((await cli(['apply', '--yes', '--format', 'json', ...q.args])).stdout) as { outcomes: Record<string, { fault?: { message: string } }> };
    expect(json.outcomes.bad?.fault?.message).toBe('line one\nline two\nfinal line');
  });

  it('plan shows a node whose read fails on its line, by the message\'s last line', async () => {
    const plan = await cli(['plan', ...q.args]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toMatch(/^ {2}x unread \(generic\.resource via exec\) error \(\w+\): final line \(last of 3 lines\)$/m);
    expect(plan.stdout).not.toContain('line one');
  });

  // As the daemon's fault policy holds a node: its reason is the fault's message, then why.
  it('a node held with a multi-line reason is on its line in plan and apply', async () => {
    const db = new Database(join(q.state, 'state.db'));
    db.prepare("UPDATE nodes SET status = 'held', reason = ? WHERE id = 'bad'").run('line one\nline two\nfinal line (retry budget spent)');
    db.close();
    const plan = await cli(['plan', ...q.args]);
    expect(plan.stdout).toMatch(/^ {2}⊘ bad \(generic\.resource via exec\) held: final line \(retry budget spent\) \(last of 3 lines\)$/m);
    const apply = await cli(['apply', '--yes', ...q.args]);
    expect(apply.stdout).toMatch(/^ {2}⊘ bad: held: final line \(retry budget spent\) \(last of 3 lines\)$/m);
    for (const r of [plan, apply]) expect(r.stdout).not.toContain('line one');
  });
});
