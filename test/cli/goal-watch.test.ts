import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { goalTreeFingerprint, watchGoalTree } from '../../src/cli/goal-watch.ts';
import type { GoalWatch } from '../../src/cli/goal-watch.ts';
import { eventually } from '../support/daemon.ts';

const dirs: string[] = [];
const watches: GoalWatch[] = [];
afterEach(() => {
  for (const w of watches.splice(0)) w.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(pollMs = 60_000): { dir: string; changes: () => number; watch: GoalWatch } {
  const base = mkdtempSync(join(tmpdir(), 'ds-goal-watch-'));
  dirs.push(base);
  const dir = join(base, 'goals');
  let n = 0;
  const watch = watchGoalTree(dir, { pollMs, debounceMs: 20, onChange: () => n++, onError: (err) => { throw err; } });
  watches.push(watch);
  return { dir, changes: () => n, watch };
}

const settle = (ms = 200): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('watchGoalTree', () => {
  it('sees a goal file replaced by a rename every time, not only the first', async () => {
    const { dir, changes, watch } = setup();
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.yaml'), 'v0');
    watch.accept(await goalTreeFingerprint(dir));
    await settle();
    for (let v = 1; v <= 3; v++) {
      writeFileSync(join(dir, '.a.yaml.tmp'), `v${v}`);
      renameSync(join(dir, '.a.yaml.tmp'), join(dir, 'a.yaml'));
      await eventually(() => changes() === v, 3_000, `change ${v} seen`);
    }
  });

  it('follows new subdirectories and ignores files that are not goal files', async () => {
    const { dir, changes, watch } = setup();
    mkdirSync(dir);
    watch.accept(await goalTreeFingerprint(dir));
    await settle();
    writeFileSync(join(dir, 'notes.txt'), 'x');
    writeFileSync(join(dir, '.hidden.yaml'), 'x');
    await settle(300);
    expect(changes()).toBe(0);
    mkdirSync(join(dir, 'sub'));
    await eventually(() => changes() === 1, 3_000, 'the new (empty) directory');
    await settle();
    writeFileSync(join(dir, 'sub', 'b.yml'), 'x');
    await eventually(() => changes() === 2, 3_000, 'a goal file in the new directory');
  });

  it('polls: a goal directory that could not be watched (missing at first) is noticed once it appears', async () => {
    const { dir, changes, watch } = setup(100);
    watch.accept(await goalTreeFingerprint(dir));
    expect(await goalTreeFingerprint(dir)).toBeUndefined();
    await settle(300);
    expect(changes()).toBe(0);
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.yaml'), 'v0');
    await eventually(() => changes() === 1, 3_000, 'seen by the poll');
    // Then watched: a later edit is seen again, once.
    writeFileSync(join(dir, 'a.yaml'), 'v1');
    await eventually(() => changes() === 2, 3_000, 'the edit');
    await settle(300);
    expect(changes()).toBe(2);
  });

  it('a goal directory reached through a symlink flipped to another directory: edits in the new one are seen at once, not left to the poll', async () => {
    // What a release-directory deploy does: goals -> releases/1, then goals -> releases/2, and the old one removed.
    const { dir, changes, watch } = setup();
    const releases = join(dir, '..', 'releases');
    mkdirSync(join(releases, '1'), { recursive: true });
    writeFileSync(join(releases, '1', 'a.yaml'), 'v1');
    symlinkSync(join(releases, '1'), dir);
    watch.accept(await goalTreeFingerprint(dir));
    await settle();
    mkdirSync(join(releases, '2'));
    writeFileSync(join(releases, '2', 'a.yaml'), 'v2');
    symlinkSync(join(releases, '2'), `${dir}.tmp`);
    renameSync(`${dir}.tmp`, dir);
    rmSync(join(releases, '1'), { recursive: true });
    await eventually(() => changes() === 1, 3_000, 'the flip');
    await settle();
    // The watch on the removed directory saw nothing of this: only a watch on the new one does.
    writeFileSync(join(releases, '2', 'a.yaml'), 'v3');
    await eventually(() => changes() === 2, 3_000, 'an edit in the new directory');
  });

  it('reports nothing after close', async () => {
    const { dir, changes, watch } = setup(50);
    mkdirSync(dir);
    watch.accept(await goalTreeFingerprint(dir));
    watch.close();
    writeFileSync(join(dir, 'a.yaml'), 'v0');
    await settle(300);
    expect(changes()).toBe(0);
  });
});
