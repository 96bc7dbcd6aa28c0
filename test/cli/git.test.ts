import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goalsCommit } from '../../src/cli/git.ts';
import { cli, oneFileGoal } from '../support/cli.ts';
import { trackDaemons } from '../support/daemon.ts';

// Provenance is read from the repository's files; every answer is checked against git itself.
let base: string;
const git = (cwd: string, ...args: string[]): string =>
  execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' },
  }).trim();

function repo(name: string): string {
  const dir = join(base, name);
  mkdirSync(join(dir, 'goals'), { recursive: true });
  git(dir, 'init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'goals/a.yaml'), 'a\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'one');
  return dir;
}

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'ds-git-'));
});
const daemons = trackDaemons();
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

describe('goalsCommit', () => {
  it('reads HEAD through a loose branch ref, from a subdirectory of the work tree', async () => {
    const dir = repo('loose');
    expect(await goalsCommit(join(dir, 'goals'))).toBe(git(dir, 'rev-parse', 'HEAD'));
  });

  it('reads a packed ref, and follows a new commit', async () => {
    const dir = repo('packed');
    git(dir, 'pack-refs', '--all');
    expect(await goalsCommit(join(dir, 'goals'))).toBe(git(dir, 'rev-parse', 'HEAD'));
    writeFileSync(join(dir, 'goals/b.yaml'), 'b\n');
    git(dir, 'add', '.');
    git(dir, 'commit', '-qm', 'two');
    expect(await goalsCommit(join(dir, 'goals'))).toBe(git(dir, 'rev-parse', 'HEAD'));
  });

  it('reads the repository a symlinked goal directory points into (a git-sync checkout), as git does', async () => {
    const dir = repo('linked-to');
    const outside = join(base, 'outside');
    mkdirSync(outside);
    symlinkSync(join(dir, 'goals'), join(outside, 'goals'));
    const head = git(dir, 'rev-parse', 'HEAD');
    expect(git(join(outside, 'goals'), 'rev-parse', 'HEAD')).toBe(head);
    expect(await goalsCommit(join(outside, 'goals'))).toBe(head);
  });

  it('reads a detached HEAD', async () => {
    const dir = repo('detached');
    git(dir, 'checkout', '-q', '--detach');
    expect(await goalsCommit(dir)).toBe(git(dir, 'rev-parse', 'HEAD'));
  });

  it('reads a linked worktree on its own branch', async () => {
    const dir = repo('main-tree');
    writeFileSync(join(dir, 'goals/c.yaml'), 'c\n');
    git(dir, 'add', '.');
    git(dir, 'commit', '-qm', 'two');
    const wt = join(base, 'linked');
    git(dir, 'worktree', 'add', '-q', '-b', 'other', wt, 'HEAD~1');
    expect(await goalsCommit(join(wt, 'goals'))).toBe(git(wt, 'rev-parse', 'HEAD'));
    expect(await goalsCommit(join(wt, 'goals'))).not.toBe(await goalsCommit(dir));
  });

  it('is null in a repository without a commit and outside any repository', async () => {
    const fresh = join(base, 'fresh');
    mkdirSync(fresh);
    git(fresh, 'init', '-q');
    expect(await goalsCommit(fresh)).toBeNull();
    expect(await goalsCommit(tmpdir())).toBeNull();
  });
});

/** A repository whose goals/ holds one file node under `root` (in the work tree), committed. */
function goalsRepo(name: string): { dir: string; root: string } {
  const dir = join(base, name);
  mkdirSync(join(dir, 'goals'), { recursive: true });
  const root = join(dir, 'root');
  writeFileSync(join(dir, 'goals/app.yaml'), oneFileGoal(root, 'v1\n'));
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'goals');
  return { dir, root };
}

describe('provenance, end to end', () => {
  it('apply records HEAD on its run and on the drift it reports; a new commit is the next run\'s', async () => {
    const { dir, root } = goalsRepo('project');
    const args = ['--goals', join(dir, 'goals'), '--state', join(base, 'project-state')];
    const json = async (cmd: string): Promise<Record<string, { commit: string | null }[]>> => {
      const r = await cli([cmd, ...args, '--format', 'json']);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Record<string, { commit: string | null }[]>;
    };
    const first = git(dir, 'rev-parse', 'HEAD');
    expect((await cli(['apply', '--yes', ...args])).code).toBe(0);
    writeFileSync(join(root, 'app.conf'), 'edited by hand\n');
    git(dir, 'commit', '-q', '--allow-empty', '-m', 'two');
    const second = git(dir, 'rev-parse', 'HEAD');
    const r = await cli(['apply', '--yes', ...args]);
    expect(r.code, r.stderr).toBe(0);
    expect((await json('history')).runs!.map((run) => run.commit)).toEqual([second, first]);
    expect((await json('drift')).reports!.map((d) => d.commit)).toEqual([second]);
  });

  it('a daemon reports drift under the commit checked out now, when HEAD moved but its goals did not', async () => {
    const { dir, root } = goalsRepo('daemon-project');
    const d = daemons.start(['--goals', join(dir, 'goals'), '--state', join(base, 'daemon-state'), '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: dir });
    await d.waitFor((l) => l.msg === 'node created');
    // A commit outside the goal directory.
    writeFileSync(join(dir, 'README'), 'docs\n');
    git(dir, 'add', '.');
    git(dir, 'commit', '-qm', 'docs');
    const moved = git(dir, 'rev-parse', 'HEAD');
    // Noticed within a goal poll (every 5 s); a hand edit after it is reported under the new commit.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    const mark = d.lines.length;
    writeFileSync(join(root, 'app.conf'), 'edited by hand\n');
    const drift = await d.waitFor((l) => l.msg === 'drift detected', 5_000, mark);
    expect(drift.commit).toBe(moved);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 30_000);
});
