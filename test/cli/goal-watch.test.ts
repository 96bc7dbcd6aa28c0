import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { goalTreeFingerprint, watchGoalTree } from '../../src/cli/goal-watch.ts';
import type { GoalWait, GoalWatch } from '../../src/cli/goal-watch.ts';
import { eventually } from '../support/daemon.ts';
import { git } from '../support/git.ts';

const dirs: string[] = [];
const watches: GoalWatch[] = [];
afterEach(() => {
  for (const w of watches.splice(0)) w.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * A goal watch on `<tmp>/goals`, started once `prepare` has made what it should find there (nothing:
 * the directory is missing), and watching it once `ready` resolves.
 */
async function setup(
  options: { pollMs?: number; debounceMs?: number; lockWarnMs?: number; prepare?: (dir: string) => void } = {},
): Promise<{ dir: string; changes: () => number; waits: GoalWait[]; watch: GoalWatch }> {
  const base = mkdtempSync(join(tmpdir(), 'ds-goal-watch-'));
  dirs.push(base);
  const dir = join(base, 'goals');
  options.prepare?.(dir);
  const loaded = await goalTreeFingerprint(dir);
  let n = 0;
  const waits: GoalWait[] = [];
  const watch = watchGoalTree(dir, {
    pollMs: options.pollMs ?? 60_000,
    debounceMs: options.debounceMs ?? 20,
    ...(options.lockWarnMs === undefined ? {} : { lockWarnMs: options.lockWarnMs }),
    onChange: () => n++,
    onWait: (w) => waits.push(w),
    onError: (err) => { throw err; },
  });
  watches.push(watch);
  watch.accept(loaded);
  await watch.ready;
  return { dir, changes: () => n, waits, watch };
}

/** `<base>` a git repository with goals/a.yaml committed in it: the goal directory `setup` watches. */
function inRepository(dir: string): void {
  const base = join(dir, '..');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a.yaml'), 'v0');
  git(base, 'init', '-q', '-b', 'main');
  git(base, 'add', '.');
  git(base, 'commit', '-qm', 'goals');
}

/** Lets time pass, for what must not happen in it. */
const idle = (ms = 300): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('watchGoalTree', () => {
  it('sees a goal file replaced by a rename every time, not only the first', async () => {
    const { dir, changes } = await setup({
      prepare: (d) => {
        mkdirSync(d);
        writeFileSync(join(d, 'a.yaml'), 'v0');
      },
    });
    for (let v = 1; v <= 3; v++) {
      writeFileSync(join(dir, '.a.yaml.tmp'), `v${v}`);
      renameSync(join(dir, '.a.yaml.tmp'), join(dir, 'a.yaml'));
      await eventually(() => changes() === v, 3_000, `change ${v} seen`);
    }
  });

  it('follows new subdirectories and ignores files that are not goal files', async () => {
    const { dir, changes } = await setup({ prepare: (d) => mkdirSync(d) });
    const before = await goalTreeFingerprint(dir);
    writeFileSync(join(dir, 'notes.txt'), 'x');
    writeFileSync(join(dir, '.hidden.yaml'), 'x');
    // Not in the fingerprint, so no check they cause reports a change.
    expect(await goalTreeFingerprint(dir)).toBe(before);
    await idle();
    expect(changes()).toBe(0);
    mkdirSync(join(dir, 'sub'));
    // The check that reports the new directory has watched it first.
    await eventually(() => changes() === 1, 3_000, 'the new (empty) directory');
    writeFileSync(join(dir, 'sub', 'b.yml'), 'x');
    await eventually(() => changes() === 2, 3_000, 'a goal file in the new directory');
  });

  it('polls: a goal directory that could not be watched (missing at first) is noticed once it appears', async () => {
    const { dir, changes } = await setup({ pollMs: 100 });
    expect(await goalTreeFingerprint(dir)).toBeUndefined();
    await idle();
    expect(changes()).toBe(0);
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.yaml'), 'v0');
    await eventually(() => changes() === 1, 3_000, 'seen by the poll');
    // Then watched: a later edit is seen again, once.
    writeFileSync(join(dir, 'a.yaml'), 'v1');
    await eventually(() => changes() === 2, 3_000, 'the edit');
    await idle();
    expect(changes()).toBe(2);
  });

  it('a goal directory reached through a symlink flipped to another directory: edits in the new one are seen at once, not left to the poll', async () => {
    // What a release-directory deploy does: goals -> releases/1, then goals -> releases/2, and the old one removed.
    const { dir, changes } = await setup({
      prepare: (d) => {
        const releases = join(d, '..', 'releases');
        mkdirSync(join(releases, '1'), { recursive: true });
        writeFileSync(join(releases, '1', 'a.yaml'), 'v1');
        symlinkSync(join(releases, '1'), d);
      },
    });
    const releases = join(dir, '..', 'releases');
    mkdirSync(join(releases, '2'));
    writeFileSync(join(releases, '2', 'a.yaml'), 'v2');
    symlinkSync(join(releases, '2'), `${dir}.tmp`);
    renameSync(`${dir}.tmp`, dir);
    rmSync(join(releases, '1'), { recursive: true });
    // The check that reports the flip has watched the new directory first.
    await eventually(() => changes() === 1, 3_000, 'the flip');
    // The watch on the removed directory saw nothing of this: only a watch on the new one does.
    writeFileSync(join(releases, '2', 'a.yaml'), 'v3');
    await eventually(() => changes() === 2, 3_000, 'an edit in the new directory');
  });

  it('hands over no change while git holds its index lock (a checkout is writing the goal files), and hands it over once the lock is gone', async () => {
    const { dir, changes, waits } = await setup({ pollMs: 20, prepare: inRepository });
    const lock = join(dir, '..', '.git', 'index.lock');
    writeFileSync(lock, '');
    writeFileSync(join(dir, 'a.yaml'), 'half of a checkout');
    // Whichever comes first: the watch seeing the lock, or the change handed over regardless.
    // A poll may find the change before the watch's event does: its quiet wait ('quiet') comes first then.
    await eventually(() => waits.some((w) => w.reason === 'git') || changes() > 0, 3_000, 'the change seen');
    expect(changes()).toBe(0);
    expect(waits.filter((w) => w.reason !== 'quiet')).toEqual([{ reason: 'git', lock, heldMs: 0 }]);
    writeFileSync(join(dir, 'b.yaml'), 'the rest of it');
    rmSync(lock);
    await eventually(() => changes() === 1, 3_000, 'the change handed over once the lock is gone');
  });

  it('says again that a lock that stays holds a change back, which waits for it (a git that crashed left it)', async () => {
    const { dir, changes, waits } = await setup({ pollMs: 20, lockWarnMs: 100, prepare: inRepository });
    const lock = join(dir, '..', '.git', 'index.lock');
    writeFileSync(lock, '');
    writeFileSync(join(dir, 'a.yaml'), 'v1');
    await eventually(() => waits.some((w) => w.reason === 'git' && w.heldMs >= 100) || changes() > 0, 5_000, 'the lock said to stay');
    // Many polls and lock looks later, still held back; the lock said to hold it once, then to stay once.
    expect(changes()).toBe(0);
    expect(waits.filter((w) => w.reason === 'git').map((w) => w.heldMs > 0)).toEqual([false, true]);
    rmSync(lock);
    await eventually(() => changes() === 1, 3_000, 'the change handed over once the lock is gone');
  });

  it('a change the poll finds waits for the quiet period, as one an event reports', async () => {
    // An hour's quiet period; and a goal directory missing at first, so not watched: only the poll finds it.
    const { dir, changes, waits } = await setup({ pollMs: 20, debounceMs: 3_600_000 });
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.yaml'), 'v0');
    await eventually(() => waits.length > 0 || changes() > 0, 3_000, 'the poll to find the change');
    expect(changes()).toBe(0);
    expect(waits).toEqual([{ reason: 'quiet' }]);
  });

  it('hands the goals over again, unchanged, once quiet, when the last read of them is not used (they changed while being read)', async () => {
    const { changes, watch } = await setup({ prepare: (d) => mkdirSync(d) });
    watch.readAgain();
    await eventually(() => changes() === 1, 3_000, 'the goals handed over again');
  });

  it('reports nothing after close', async () => {
    const { dir, changes, watch } = await setup({ pollMs: 50, prepare: (d) => mkdirSync(d) });
    watch.close();
    writeFileSync(join(dir, 'a.yaml'), 'v0');
    await idle();
    expect(changes()).toBe(0);
  });
});
