import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, shellResource, stateRows, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import type { Daemon } from '../support/daemon.ts';

/**
 * "A string `${nodes.<id>.outputs.<key>}` inside `spec` is replaced by that node's output once it is
 * ready" (GOAL-FORMAT.md): an output that changes changes what the goal asks of the nodes that reference
 * it, as an edit of their goal would. It was taken for drift (the applied digest was the unresolved
 * spec's): under `selfHeal: false` the consumer kept the old value, reported drifted; under `selfHeal:
 * true` it was corrected and logged, stored and counted as drift nothing made by hand.
 */
const daemons = trackDaemons();

interface Project {
  readonly dir: string;
  readonly state: string;
  readonly args: string[];
  /** The producer at `ver: 1`, outputting `v: one`. */
  start(): void;
  /** The producer's goal edited to `ver: 2`, and what it outputs from then on `v: two`. */
  change(): void;
  /** The consumer's last input, as its create or update was handed it. */
  consumer(): string;
}

/**
 * A project whose exec resources `p` (input `{ ver }`) and `c` (input `{ v: ${nodes.p.outputs.v} }`)
 * keep their last input in `<id>.state`; each read, create and update prints the outputs in `<id>.out`.
 */
function project(selfHeal: boolean): Project {
  const p = tempProject('ds-exec-reference-change-');
  const script = shellResource(
    p.dir,
    `req=$(cat)
out=$(cat "$dir/$1.out" 2>/dev/null || echo '{}')
case "$2" in
  read) if [ -f "$dir/$1.state" ]; then printf '{"exists":true,"state":%s,"outputs":%s}\\n' "$(cat "$dir/$1.state")" "$out"; else echo '{"exists":false}'; fi ;;
  *) printf '%s' "$req" | sed 's/.*"input":\\({[^}]*}\\).*/\\1/' > "$dir/$1.state"; printf '{"outputs":%s}\\n' "$out" ;;
esac
`,
  );
  const commands = (id: string): string => `{ read: [${script}, ${id}, read], create: [${script}, ${id}, create], update: [${script}, ${id}, update] }`;
  const at = (ver: number, v: string): void => {
    p.write(
      'goals.yaml',
      `${execGoalHead({ selfHeal })}    - id: p
      type: generic.resource
      spec: { commands: ${commands('p')}, input: { ver: ${ver} } }
    - id: c
      type: generic.resource
      spec: { commands: ${commands('c')}, input: { v: "\${nodes.p.outputs.v}" } }
`,
    );
    writeFileSync(join(p.dir, 'p.out'), JSON.stringify({ v }));
  };
  return {
    dir: p.dir,
    state: p.state,
    args: p.args,
    start: () => at(1, 'one'),
    change: () => at(2, 'two'),
    consumer: () => readFileSync(join(p.dir, 'c.state'), 'utf8'),
  };
}

/** Changes the producer under a running daemon: the consumer is updated to the new output, with no drift reported. Then stops the daemon. */
async function changeUnder(d: Daemon, p: Project): Promise<void> {
  const from = d.lines.length;
  p.change();
  await d.waitFor((l) => l.msg === 'node updated' && l.node === 'c', 20_000, from);
  expect(p.consumer()).toBe('{"v":"two"}');
  expect(d.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
  d.kill('SIGTERM');
  expect(await d.exited).toEqual({ code: 0, signal: null });
}

describe.each([false, true])('a changed output under selfHeal: %s', (selfHeal) => {
  it('is a change of the goal of the node that references it: plan shows ~, apply updates it, and no drift is reported', async () => {
    const p = project(selfHeal);
    p.start();
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    expect(p.consumer()).toBe('{"v":"one"}');

    p.change();
    const plan = await cli(['plan', ...p.args]);
    // What p gives once apply has updated it is known only then: c is shown as a possible update, without diffs read against p's outputs now.
    expect(plan.stdout).toContain('  ~ c (generic.resource via exec) known after apply: reads outputs of p, which this plan changes\n');
    expect(plan.stdout).toContain('Plan: 0 to create, 2 to update, 0 to delete, 0 drifted,');
    expect(plan.code).toBe(2);

    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toContain('~ p: updated');
    expect(apply.stdout).toContain('~ c: updated');
    expect(apply.stdout).toContain('Apply: 0 created, 2 updated, 0 deleted, 0 unchanged, 0 failed, 0 blocked, 0 held.');
    expect(apply.stderr).not.toContain('drift detected');
    expect(p.consumer()).toBe('{"v":"two"}');

    const drift = JSON.parse((await cli(['drift', '--format', 'json', ...p.args])).stdout) as { reports: unknown[] };
    expect(drift.reports).toEqual([]);
    const runs = (JSON.parse((await cli(['history', '--format', 'json', ...p.args])).stdout) as { runs: { summary: { updated: number; drifted: number } }[] }).runs;
    expect(runs[0]!.summary).toMatchObject({ updated: 2, drifted: 0 });
    const after = await cli(['plan', ...p.args]);
    expect(after.code, after.stdout).toBe(0);
  });

  it('in the daemon: the node that references it is updated, not reported as drift', async () => {
    const p = project(selfHeal);
    daemons.removeAfter(p.dir);
    p.start();
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...p.args], { cwd: p.dir });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'c', 20_000);
    await changeUnder(d, p);
  });
});

/** Whether node `c`'s record holds the digest of its goal's spec as applied, as versions before resolved digests were kept wrote it. */
function appliedAtGoalDigest(state: string): boolean {
  const [row] = stateRows(state, "SELECT applied_digest = json_extract(snapshot, '$.goal') AS legacy FROM nodes WHERE id = 'c'") as { legacy: number }[];
  return row!.legacy === 1;
}

/** Applies the project, then rewrites every record's applied digest as an older version wrote it: the goal's spec's, references unresolved. */
async function appliedByOlderVersion(p: Project): Promise<void> {
  p.start();
  expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
  const db = new Database(join(p.state, 'state.db'));
  try {
    db.prepare("UPDATE nodes SET applied_digest = json_extract(snapshot, '$.goal')").run();
  } finally {
    db.close();
  }
  expect(appliedAtGoalDigest(p.state)).toBe(true);
}

describe('a state an older version wrote (the applied digest of the spec with its references unresolved)', () => {
  it('judges a difference as before (drift, only reported under selfHeal: false) until the node is found in sync, then takes a changed output as a change', async () => {
    const p = project(false);
    await appliedByOlderVersion(p);

    // Changed by hand: drift, as the older version said, never corrected under selfHeal: false.
    writeFileSync(join(p.dir, 'c.state'), '{"v":"hand"}');
    const drifted = await cli(['apply', '--yes', ...p.args]);
    expect(drifted.stdout).toContain('! c: drift-reported');
    expect(p.consumer()).toBe('{"v":"hand"}');
    expect(appliedAtGoalDigest(p.state)).toBe(true);

    // Put back: found in sync, its record now holds the resolved spec's digest.
    writeFileSync(join(p.dir, 'c.state'), '{"v":"one"}');
    const steady = await cli(['apply', '--yes', ...p.args]);
    expect(steady.stdout).toContain('Apply: 0 created, 0 updated, 0 deleted, 2 unchanged,');
    expect(appliedAtGoalDigest(p.state)).toBe(false);

    p.change();
    const changed = await cli(['apply', '--yes', ...p.args]);
    expect(changed.stdout).toContain('~ c: updated');
    expect(changed.stderr).not.toContain('drift detected');
    expect(p.consumer()).toBe('{"v":"two"}');
  });

  it('in the daemon: a node found in sync is recorded at its resolved digest, and a changed output is then a change', async () => {
    const p = project(false);
    daemons.removeAfter(p.dir);
    await appliedByOlderVersion(p);
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...p.args], { cwd: p.dir });
    // Its first observation finds it in sync: not the steady fast path, which would keep the old digest.
    await eventually(() => !appliedAtGoalDigest(p.state), 20_000, "c's record at its resolved digest");
    await changeUnder(d, p);
  });
});
