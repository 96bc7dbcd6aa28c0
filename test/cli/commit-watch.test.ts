import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GoalsCommitWatch } from '../../src/cli/commit-watch.ts';
import { goalsCommit } from '../../src/cli/git.ts';
import { goalTreeFingerprint } from '../../src/cli/goal-watch.ts';
import { capturingLogger } from '../support/controller-harness.ts';
import { git } from '../support/git.ts';

// The daemon's goals-commit watch, polled by hand (the daemon polls it every 5 s) over a real repository.
const base = mkdtempSync(join(tmpdir(), 'ds-commit-watch-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));


const NOT_RECORDED = 'goals commit not recorded: the goals running are not its';

/**
 * A repository with goals/a.yaml committed, and a watch on goals/ that counts the times it asks git
 * whether the goals differ from HEAD (`asked`), with its log lines. `current` stands for the controller's
 * commit: set by a load (`load`, as `setGraph` does) and by the watch, which records through `setCommit`;
 * `changes` are the commits that changed it, as its 'goals commit changed' lines.
 */
function setup(name: string, options: { record?: (commit: string | null) => void } = {}) {
  const dir = join(base, name);
  const goals = join(dir, 'goals');
  mkdirSync(goals, { recursive: true });
  git(dir, 'init', '-q', '-b', 'main');
  writeFileSync(join(goals, 'a.yaml'), 'a: 1\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'one');
  const { log, lines } = capturingLogger();
  const changes: (string | null)[] = [];
  let current: string | null = null;
  let asked = 0;
  const watch = new GoalsCommitWatch(goals, {
    log,
    record: (commit) => {
      options.record?.(commit);
      if (commit === current) return;
      changes.push(commit);
      current = commit;
    },
    goalsCommit: (d, l) => {
      asked++;
      return goalsCommit(d, l);
    },
  });
  /** A commit outside the goal directory: HEAD moves, the goal files do not. */
  const commitElsewhere = (file: string): string => {
    writeFileSync(join(dir, file), `${file}\n`);
    git(dir, 'add', '--', file);
    git(dir, 'commit', '-qm', file);
    return git(dir, 'rev-parse', 'HEAD');
  };
  const notRecorded = (): unknown[] => lines.filter((l) => l.msg === NOT_RECORDED).map((l) => l.commit);
  /** Goals loaded and run under `commit`: the files' own (their fingerprint), or the last good goals (`own` false). */
  const load = async (commit: string | null, own = true): Promise<void> => {
    current = commit;
    watch.loaded(commit, own ? await goalTreeFingerprint(goals) : undefined);
  };
  return { dir, goals, watch, load, changes, current: () => current, asked: () => asked, lines, commitElsewhere, notRecorded, head: () => git(dir, 'rev-parse', 'HEAD') };
}

describe('GoalsCommitWatch', () => {
  it('records a commit made elsewhere while the goal files are those running, asking git only when HEAD moved', async () => {
    const t = setup('moved');
    await t.load(t.head());
    await t.watch.poll(); // the first poll asks
    expect(t.asked()).toBe(1);
    await t.watch.poll();
    await t.watch.poll();
    expect(t.asked()).toBe(1);
    const moved = t.commitElsewhere('README');
    await t.watch.poll();
    expect(t.changes).toEqual([moved]);
    expect(t.current()).toBe(moved);
    await t.watch.poll();
    expect(t.asked()).toBe(2);
  });

  it('while the goals running are not the goal files\' own (a revision refused), says a HEAD move once and never asks git', async () => {
    const t = setup('refused');
    const good = t.head();
    await t.load(good);
    await t.watch.poll();
    const asked = t.asked();
    // A broken revision committed and refused: the graph running keeps its commit.
    writeFileSync(join(t.goals, 'a.yaml'), 'a: [\n');
    git(t.dir, 'commit', '-qam', 'broken');
    const broken = t.head();
    t.watch.refused();
    for (let i = 0; i < 4; i++) await t.watch.poll();
    expect(t.notRecorded()).toEqual([broken]);
    // And uncommitted edits on top (the goals differ from HEAD): still no git at each poll.
    writeFileSync(join(t.goals, 'a.yaml'), 'a: [[\n');
    for (let i = 0; i < 3; i++) await t.watch.poll();
    const next = t.commitElsewhere('README');
    for (let i = 0; i < 3; i++) await t.watch.poll();
    expect(t.notRecorded()).toEqual([broken, next]);
    expect(t.asked()).toBe(asked);
    expect(t.changes).toEqual([]);
    expect(t.current()).toBe(good);
  });

  it('the last good goals, run in place of a refused revision, keep the commit they were applied at', async () => {
    const t = setup('last-good');
    await t.load('applied-at', false);
    for (let i = 0; i < 3; i++) await t.watch.poll();
    expect(t.notRecorded()).toEqual([t.head()]);
    expect(t.asked()).toBe(0);
    expect(t.current()).toBe('applied-at');
  });

  it('never records a commit while the goal files differ from those running: a refused revision\'s never becomes the running one', async () => {
    const t = setup('edited');
    const good = t.head();
    await t.load(good);
    await t.watch.poll();
    // Committed before the load that refuses it has read it.
    writeFileSync(join(t.goals, 'a.yaml'), 'a: [\n');
    git(t.dir, 'commit', '-qam', 'broken');
    await t.watch.poll();
    await t.watch.poll();
    expect(t.changes).toEqual([]);
    expect(t.notRecorded()).toEqual([t.head()]);
    expect(t.current()).toBe(good);
  });

  it('looks again after a load that read an older HEAD than the one recorded meanwhile', async () => {
    const t = setup('race');
    const first = t.head();
    await t.load(first);
    await t.watch.poll();
    // A SIGHUP's load reads the commit (first); HEAD moves and the watch records it; then the load runs its goals under first.
    const moved = t.commitElsewhere('README');
    await t.watch.poll();
    expect(t.current()).toBe(moved);
    await t.load(first);
    expect(t.current()).toBe(first);
    await t.watch.poll();
    expect(t.changes).toEqual([moved, moved]);
    expect(t.current()).toBe(moved);
  });

  it('a poll that throws (the store refusing the commit\'s write) is logged, once, and the next one records it', async () => {
    let refuse = true;
    const t = setup('throws', {
      record: () => {
        if (refuse) throw new Error('database or disk is full');
      },
    });
    await t.load(t.head());
    await t.watch.poll();
    const moved = t.commitElsewhere('README');
    await t.watch.poll();
    await t.watch.poll();
    expect(t.lines.filter((l) => l.msg === 'goals commit not looked at; looked at again at the next poll')).toEqual([expect.objectContaining({ level: 40, err: expect.objectContaining({ message: 'database or disk is full' }) })]);
    expect(t.current()).not.toBe(moved);
    refuse = false;
    await t.watch.poll();
    expect(t.changes).toEqual([moved]);
    expect(t.current()).toBe(moved);
  });
});
