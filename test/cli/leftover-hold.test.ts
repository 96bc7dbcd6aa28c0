import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, logLines, shellResource, stateRows, tempProject } from '../support/cli.ts';
import { eventually, killDuringCreate, trackDaemons } from '../support/daemon.ts';
import { isAlive } from '../support/backend.ts';

/**
 * A daemon restarted while a command its predecessor (killed -9) left running
 * still runs holds back only the node that command works on: every other node
 * is reconciled at once, the held one shows why it waits, and is observed (its
 * finished create adopted) once the command has ended. Before, the whole start-up
 * waited for the command, up to its timeout (10 minutes for ansible-playbook).
 */
const daemons = trackDaemons();

/**
 * A project with exec resources kept in `<dir>/<name>.json` by one script; every create's start and end
 * are logged with the resource's name and the create's pid, every read with the resource's name. The create of `slow` sleeps 60 s (the
 * sleep's pid in `<dir>/sleep.pid`, for the test to end it when it wants); the others answer at once.
 */
function project(prefix: string): ReturnType<typeof tempProject> & { log: () => string[]; reads: (name: string) => number; setGoals: (names: readonly string[]) => void } {
  const p = tempProject(prefix);
  const script = shellResource(
    p.dir,
    `state="$dir/$2.json"
req=$(cat)
case "$1" in
  read)
    echo "$2" >> "$dir/reads.log"
    if [ -f "$state" ]; then printf '{"exists":true,"state":%s,"outputs":{"id":"%s"}}\\n' "$(cat "$state")" "$2"; else echo '{"exists":false}'; fi ;;
  create)
    echo "start $2 $$" >> "$dir/creates.log"
    if [ "$2" = slow ]; then sleep 60 & echo $! > "$dir/sleep.pid"; wait; fi
    printf '{"size":"large"}' > "$state"
    echo "done $2 $$" >> "$dir/creates.log"
    printf '{"outputs":{"id":"%s"}}\\n' "$2" ;;
esac
`,
  );
  const setGoals = (names: readonly string[]): void =>
    p.write(
      'goals.yaml',
      execGoalHead({ config: '{ timeout: 90s }' }) +
        names
          .map(
            (n) => `    - id: ${n}
      type: generic.resource
      spec:
        commands:
          read: [${JSON.stringify(script)}, read, ${n}]
          create: [${JSON.stringify(script)}, create, ${n}]
        input: { size: large }
`,
          )
          .join(''),
    );
  setGoals(['slow']);
  const log = (): string[] => logLines(join(p.dir, 'creates.log'));
  const reads = (name: string): number => logLines(join(p.dir, 'reads.log')).filter((l) => l === name).length;
  return { ...p, log, reads, setGoals };
}

/** Starts a daemon, waits for the create of `slow` to be under way, kills the daemon -9; the create's pid and its sleep's. */
async function crashDuringCreate(p: ReturnType<typeof project>, args: readonly string[]): Promise<{ create: number; sleep: number }> {
  const sleep = await killDuringCreate(daemons, args, { cwd: p.dir, sleepPidFile: join(p.dir, 'sleep.pid') });
  const create = Number(p.log()[0]?.split(' ')[2]);
  expect(isAlive(create)).toBe(true);
  return { create, sleep };
}

function operations(p: ReturnType<typeof project>): unknown[] {
  return stateRows(p.state, 'SELECT node, op, outcome FROM operations ORDER BY id');
}

interface ShownNode {
  readonly id: string;
  readonly status: string;
  readonly reason: string | null;
}

async function get(port: number, path: string): Promise<{ code: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { code: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('a restarted daemon beside a command left running by its predecessor, killed -9', () => {
  it('reconciles the other nodes at once, holds that one node with the reason, and adopts what the command made once it has ended', async () => {
    const p = project('ds-leftover-hold-');
    const args = [...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'];
    const { create, sleep } = await crashDuringCreate(p, args);
    // An independent node, new in the goals of the restarted daemon.
    p.setGoals(['slow', 'quick']);
    const readsBefore = p.reads('slow');

    const second = daemons.start(args, { cwd: p.dir });
    const port = await second.port();
    // Well before the leftover create could end (its sleep has 60 s to go, its timeout is 90 s).
    await second.waitFor((l) => l.msg === 'node created' && l.node === 'quick', 15_000);

    // Held, with a reason that names the command and how long it is waited for; the daemon is ready.
    const status = await get(port, '/status');
    const slow = (status.body.nodes as ShownNode[]).find((n) => n.id === 'slow');
    expect(slow?.status).toBe('blocked');
    expect(slow?.reason).toContain(`pgid ${create}`);
    expect(slow?.reason).toContain('create');
    expect(slow?.reason).toContain('resource');
    expect(slow?.reason).toMatch(/until \d{4}-\d\d-\d\dT/);
    await eventually(async () => (await get(port, '/readyz')).code === 200, 10_000, '/readyz to say ready');
    // `status` reads the store: the same.
    const shown = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
    const stored = (JSON.parse(shown.stdout) as { nodes: ShownNode[] }).nodes.find((n) => n.id === 'slow');
    expect(stored).toMatchObject({ status: 'blocked', reason: slow?.reason });

    // A goal reload does not release it.
    const from = second.lines.length;
    second.kill('SIGHUP');
    await second.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'SIGHUP', 10_000, from);
    await new Promise((r) => setTimeout(r, 500));
    expect((await get(port, '/status')).body.nodes).toContainEqual(expect.objectContaining({ id: 'slow', status: 'blocked' }));
    // Never a second create beside the first, never even a read of it.
    expect(p.log().filter((l) => l.startsWith('start slow'))).toEqual([`start slow ${create}`]);
    expect(p.reads('slow')).toBe(readsBefore);
    expect(p.reads('quick')).toBeGreaterThan(0);
    expect(second.lines.some((l) => l.node === 'slow' && (l.msg === 'node created' || l.msg.startsWith('interrupted operation')))).toBe(false);

    // The leftover create finishes: the node is observed, and what it made adopted.
    process.kill(sleep, 'SIGKILL');
    await second.waitFor((l) => (l.msg === 'interrupted operation resolved by observation: adopted' || l.msg === 'node created') && l.node === 'slow', 15_000);
    await eventually(async () => ((await get(port, '/status')).body.nodes as ShownNode[]).some((n) => n.id === 'slow' && n.status === 'ready'), 10_000, 'slow to be ready');
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);

    expect(p.log().filter((l) => l.includes(' slow '))).toEqual([`start slow ${create}`, `done slow ${create}`]);
    expect(operations(p)).toEqual([
      { node: 'slow', op: 'create', outcome: 'adopted' },
      { node: 'quick', op: 'create', outcome: 'done' },
    ]);
    expect(readdirSync(join(p.state, 'processes'))).toEqual([]);
  }, 90_000);

  it('stops at once on SIGTERM while a node waits, exit 0, the command and its lease left for the next start', async () => {
    const p = project('ds-leftover-hold-stop-');
    const args = [...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'];
    const { create, sleep } = await crashDuringCreate(p, args);

    const second = daemons.start(args, { cwd: p.dir });
    await second.waitFor((l) => l.msg === 'listening', 15_000);
    await second.waitFor((l) => l.msg.startsWith('waiting for a command left running'), 10_000);
    second.kill('SIGTERM');
    // It did not wait for the leftover command: that still runs after the daemon exited.
    expect(await second.exitedWithin(30_000)).toEqual({ code: 0, signal: null });
    expect(isAlive(create)).toBe(true);
    expect(readdirSync(join(p.state, 'processes'))).toHaveLength(1);
    expect(p.log()).toEqual([`start slow ${create}`]);
    process.kill(sleep, 'SIGKILL');
    await eventually(() => !isAlive(create), 10_000, 'the leftover create to end');
  }, 60_000);
});
