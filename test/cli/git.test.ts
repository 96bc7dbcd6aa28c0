import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIRTY, gitIndexLock, goalsCommit, headCommit, shortCommit } from '../../src/cli/git.ts';
import { cli, oneFileGoal } from '../support/cli.ts';
import { capturingLogger } from '../support/controller-harness.ts';
import { git } from '../support/git.ts';
import { trackDaemons } from '../support/daemon.ts';
import type { Daemon } from '../support/daemon.ts';
import { warnSkipped } from '../support/skip.ts';

// Provenance is read from the repository's files; every answer is checked against git itself.
let base: string;

function repo(name: string): string {
  const dir = join(base, name);
  mkdirSync(join(dir, 'goals'), { recursive: true });
  git(dir, 'init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'goals/a.yaml'), 'a\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'one');
  return dir;
}

/** Commits a `.gitignore` of `patterns` at the top of `dir`'s work tree (with whatever else is new there); HEAD's hash. */
function commitIgnores(dir: string, patterns: readonly string[]): string {
  writeFileSync(join(dir, '.gitignore'), [...patterns, ''].join('\n'));
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'ignores');
  return git(dir, 'rev-parse', 'HEAD');
}

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'ds-git-'));
});
const daemons = trackDaemons();
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

/** Gives `path` and all it holds to nobody (65534): a checkout another user owns, as a deploy user's is to a daemon run as root. */
function chownToNobody(path: string): void {
  chownSync(path, 65534, 65534);
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.isDirectory()) chownToNobody(join(path, e.name));
    else chownSync(join(path, e.name), 65534, 65534);
  }
}

const UNDETERMINED = 'goals commit marked -dirty: git cannot tell whether the goal files differ from it';

/** Sets `dir`'s access time to 1970: a read of it since (`readdir`) brings it up to now, where reads show in it. */
function unread(dir: string): void {
  utimesSync(dir, 0, statSync(dir).mtime);
}

/** Whether reading a directory shows in its access time here: not on a `noatime` mount (`relatime` updates one older than a day). */
const readsShowInAtime = ((): boolean => {
  const probe = mkdtempSync(join(tmpdir(), 'ds-atime-'));
  try {
    unread(probe);
    readdirSync(probe);
    return statSync(probe).atimeMs > 0;
  } finally {
    rmSync(probe, { recursive: true });
  }
})();
if (!readsShowInAtime) warnSkipped(['SKIPPING the test that git does not look into ignored directories: reading a directory here does not change its access time (a noatime mount).']);

describe('goalsCommit', () => {
  const { log, lines } = capturingLogger();

  it('reads HEAD through a loose branch ref, from a subdirectory of the work tree', async () => {
    const dir = repo('loose');
    expect(await goalsCommit(join(dir, 'goals'), log)).toBe(git(dir, 'rev-parse', 'HEAD'));
  });

  it('reads a packed ref, and follows a new commit', async () => {
    const dir = repo('packed');
    git(dir, 'pack-refs', '--all');
    expect(await goalsCommit(join(dir, 'goals'), log)).toBe(git(dir, 'rev-parse', 'HEAD'));
    writeFileSync(join(dir, 'goals/b.yaml'), 'b\n');
    git(dir, 'add', '.');
    git(dir, 'commit', '-qm', 'two');
    expect(await goalsCommit(join(dir, 'goals'), log)).toBe(git(dir, 'rev-parse', 'HEAD'));
  });

  it('reads the repository a symlinked goal directory points into (a git-sync checkout), as git does', async () => {
    const dir = repo('linked-to');
    const outside = join(base, 'outside');
    mkdirSync(outside);
    symlinkSync(join(dir, 'goals'), join(outside, 'goals'));
    const head = git(dir, 'rev-parse', 'HEAD');
    expect(git(join(outside, 'goals'), 'rev-parse', 'HEAD')).toBe(head);
    expect(await goalsCommit(join(outside, 'goals'), log)).toBe(head);
  });

  it('reads a detached HEAD', async () => {
    const dir = repo('detached');
    git(dir, 'checkout', '-q', '--detach');
    expect(await goalsCommit(dir, log)).toBe(git(dir, 'rev-parse', 'HEAD'));
  });

  it('reads a linked worktree on its own branch', async () => {
    const dir = repo('main-tree');
    writeFileSync(join(dir, 'goals/c.yaml'), 'c\n');
    git(dir, 'add', '.');
    git(dir, 'commit', '-qm', 'two');
    const wt = join(base, 'linked');
    git(dir, 'worktree', 'add', '-q', '-b', 'other', wt, 'HEAD~1');
    expect(await goalsCommit(join(wt, 'goals'), log)).toBe(git(wt, 'rev-parse', 'HEAD'));
    expect(await goalsCommit(join(wt, 'goals'), log)).not.toBe(await goalsCommit(dir, log));
  });

  it('marks the commit -dirty while a goal file under the directory differs from it, and only then', async () => {
    const dir = repo('dirty');
    const goals = join(dir, 'goals');
    const head = git(dir, 'rev-parse', 'HEAD');
    const dirty = `${head}${DIRTY}`;
    // Other files, in the goal directory or beside it, are not goals.
    writeFileSync(join(goals, 'README.md'), 'docs\n');
    writeFileSync(join(dir, 'other.yaml'), 'x\n');
    // Nor dot files and what dot directories hold, which are never applied (a draft, a CI workflow).
    writeFileSync(join(goals, '.next.yaml'), 'draft: 1\n');
    mkdirSync(join(goals, '.github', 'workflows'), { recursive: true });
    writeFileSync(join(goals, '.github', 'workflows', 'ci.yml'), 'on: push\n');
    expect(await goalsCommit(goals, log)).toBe(head);
    writeFileSync(join(goals, 'a.yaml'), 'edited\n');
    expect(await goalsCommit(goals, log)).toBe(dirty);
    git(dir, 'checkout', '-q', '--', 'goals/a.yaml');
    mkdirSync(join(goals, 'sub'));
    writeFileSync(join(goals, 'sub/new.yml'), 'untracked\n');
    expect(await goalsCommit(goals, log)).toBe(dirty);
    git(dir, 'add', 'goals/sub/new.yml'); // staged is not committed
    expect(await goalsCommit(goals, log)).toBe(dirty);
    expect(await headCommit(goals)).toBe(head);
    git(dir, 'commit', '-qm', 'new goal');
    expect(await goalsCommit(goals, log)).toBe(git(dir, 'rev-parse', 'HEAD'));
    // Asked without taking the index lock: a user's git command running beside it does not fail on it.
    expect(existsSync(join(dir, '.git/index.lock'))).toBe(false);
    expect(shortCommit(dirty)).toBe(`${head.slice(0, 12)}${DIRTY}`);
    expect(lines.filter((l) => l.goalsDir === goals)).toEqual([]);
  });

  it('marks the commit -dirty for a goal file git ignores, which is applied all the same, and for no other ignored file', async () => {
    const dir = repo('ignored');
    const goals = join(dir, 'goals');
    const head = commitIgnores(dir, ['goals/local-*.yaml', '*.swp', '*~', '*.bak', 'build/', 'gen/', '.cache/']);
    // Ignored files the loader never reads: an editor's backups, a dot file, a dot directory, a directory without goals.
    writeFileSync(join(goals, 'a.yaml.swp'), 'swap\n');
    writeFileSync(join(goals, 'a.yaml~'), 'backup\n');
    writeFileSync(join(goals, 'a.yaml.bak'), 'backup\n');
    writeFileSync(join(goals, '.a.yaml.swp'), 'swap\n');
    mkdirSync(join(goals, '.cache'));
    writeFileSync(join(goals, '.cache', 'x.yaml'), 'cached: 1\n');
    mkdirSync(join(goals, 'build'));
    writeFileSync(join(goals, 'build', 'notes.txt'), 'notes\n');
    expect(await goalsCommit(goals, log)).toBe(head);
    // The goal files the loader reads, ignored or not: the commit does not hold them.
    const cases = [
      { name: 'an ignored goal file', path: 'local-x.yaml' },
      { name: 'a goal file in an ignored directory', path: 'gen/x.yml' },
      { name: 'a goal file named in capitals', path: 'B.YAML' },
    ];
    for (const c of cases) {
      mkdirSync(join(goals, dirname(c.path)), { recursive: true });
      writeFileSync(join(goals, c.path), 'b\n');
      expect(await goalsCommit(goals, log), c.name).toBe(`${head}${DIRTY}`);
      rmSync(join(goals, c.path));
      expect(await goalsCommit(goals, log), c.name).toBe(head);
    }
  });

  it.skipIf(!readsShowInAtime)('never looks into an ignored directory the loader skips (.terraform/, .venv/), which may hold a great many files', async () => {
    const dir = repo('ignored-dot-dir');
    const goals = join(dir, 'goals');
    const head = commitIgnores(dir, ['.terraform/', 'goals/local-*.yaml']);
    const providers = join(goals, '.terraform', 'providers');
    mkdirSync(providers, { recursive: true });
    writeFileSync(join(providers, 'lock.yaml'), 'x: 1\n');
    // Whether anything reads them, their access times say.
    unread(providers);
    unread(join(goals, '.terraform'));
    expect(await goalsCommit(goals, log)).toBe(head);
    // An ignored goal file is found all the same, still without looking in there.
    writeFileSync(join(goals, 'local-x.yaml'), 'x: 1\n');
    expect(await goalsCommit(goals, log)).toBe(`${head}${DIRTY}`);
    expect(statSync(join(goals, '.terraform')).atimeMs).toBe(0);
    expect(statSync(providers).atimeMs).toBe(0);
  });

  it('follows a symlinked directory as the loader does, to the goal files it leads to', async () => {
    const dir = repo('linked-dirs');
    const goals = join(dir, 'goals');
    writeFileSync(join(dir, '.gitignore'), 'gen/\n');
    mkdirSync(join(dir, 'shared'));
    writeFileSync(join(dir, 'shared/s.yaml'), 's\n');
    symlinkSync('../shared', join(goals, 'shared'));
    git(dir, 'add', '.');
    git(dir, 'commit', '-qm', 'links');
    const head = git(dir, 'rev-parse', 'HEAD');
    // Links to goal files elsewhere in the repository and outside it: git looks beyond no link, nor outside the goal directory.
    const outside = join(base, 'linked-dirs-outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'o.yaml'), 'o\n');
    symlinkSync(outside, join(goals, 'outside'));
    expect(await goalsCommit(goals, log)).toBe(head);
    // An ignored directory the loader reads through a link first (and once): its goal files are found where they are.
    mkdirSync(join(goals, 'gen'));
    writeFileSync(join(goals, 'gen/x.yml'), 'x\n');
    symlinkSync('gen', join(goals, 'a-gen'));
    expect(await goalsCommit(goals, log)).toBe(`${head}${DIRTY}`);
    expect(lines.filter((l) => l.goalsDir === goals)).toEqual([]);
  });

  it('reads a submodule under the goal directory as the commit records it: dirty only once its goal files differ', async () => {
    const goalsRepo = repo('submodule-goals');
    const dir = repo('superproject');
    const goals = join(dir, 'goals');
    git(dir, '-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', goalsRepo, 'goals/sub');
    git(dir, 'commit', '-qm', 'submodule');
    const head = git(dir, 'rev-parse', 'HEAD');
    const sub = join(goals, 'sub');
    expect(await goalsCommit(goals, log)).toBe(head);
    // A new file in it that is no goal leaves it the commit's; a new goal file, or a commit the superproject has not recorded, does not.
    writeFileSync(join(sub, 'notes.txt'), 'notes\n');
    expect(await goalsCommit(goals, log)).toBe(head);
    writeFileSync(join(sub, 'goals/new.yaml'), 'new\n');
    expect(await goalsCommit(goals, log)).toBe(`${head}${DIRTY}`);
    rmSync(join(sub, 'goals/new.yaml'));
    git(sub, 'add', 'notes.txt');
    git(sub, 'commit', '-qm', 'notes');
    expect(await goalsCommit(goals, log)).toBe(`${head}${DIRTY}`);
    expect(lines.filter((l) => l.goalsDir === goals)).toEqual([]);
  });

  it('asks git once where the goal files are those of the commit, ignored directories beside them and all', async () => {
    const dir = repo('one-question');
    const goals = join(dir, 'goals');
    const head = commitIgnores(dir, ['.terraform/', 'node_modules/']);
    mkdirSync(join(goals, '.terraform'));
    writeFileSync(join(goals, '.terraform/lock.yaml'), 'x: 1\n');
    mkdirSync(join(goals, 'node_modules'));
    writeFileSync(join(goals, 'node_modules/index.js'), '\n');
    // A git first on PATH that writes down how it is run, then runs git.
    const bin = join(base, 'logging-git');
    mkdirSync(bin);
    const calls = join(bin, 'calls');
    const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
    writeFileSync(join(bin, 'git'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${calls}'\nexec '${realGit}' "$@"\n`, { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      expect(await goalsCommit(goals, log)).toBe(head);
    } finally {
      process.env.PATH = path;
    }
    expect(readFileSync(calls, 'utf8').trim().split('\n')).toEqual([expect.stringMatching(/^--no-optional-locks status /)]);
  });

  it('marks the commit -dirty where git cannot tell (a broken index), and says why once', async () => {
    const dir = repo('broken-index');
    const goals = join(dir, 'goals');
    const head = git(dir, 'rev-parse', 'HEAD');
    const index = readFileSync(join(dir, '.git/index'));
    writeFileSync(join(dir, '.git/index'), 'not an index\n');
    expect(await goalsCommit(goals, log)).toBe(`${head}${DIRTY}`);
    expect(await goalsCommit(goals, log)).toBe(`${head}${DIRTY}`);
    const told = lines.filter((l) => l.goalsDir === goals);
    expect(told).toEqual([expect.objectContaining({ msg: UNDETERMINED, level: 40, commit: `${head}${DIRTY}`, error: expect.stringContaining('index') })]);
    writeFileSync(join(dir, '.git/index'), index);
    expect(await goalsCommit(goals, log)).toBe(head);
  });

  it('marks the commit -dirty in a repository another user owns, which git refuses to look into, and says how to trust it', async () => {
    const dir = repo('owned');
    const goals = join(dir, 'goals');
    const head = git(dir, 'rev-parse', 'HEAD');
    chownToNobody(dir);
    expect(await headCommit(goals)).toBe(head);
    expect(await goalsCommit(goals, log)).toBe(`${head}${DIRTY}`);
    const told = lines.filter((l) => l.goalsDir === goals);
    expect(told).toEqual([expect.objectContaining({ msg: UNDETERMINED, error: expect.stringContaining('dubious ownership') })]);
    expect(told[0]!.fix).toContain(`git config --global --add safe.directory ${realpathSync(dir)}`);
  });

  it('is null in a repository without a commit and outside any repository', async () => {
    const fresh = join(base, 'fresh');
    mkdirSync(fresh);
    git(fresh, 'init', '-q');
    expect(await goalsCommit(fresh, log)).toBeNull();
    expect(await goalsCommit(tmpdir(), log)).toBeNull();
  });
});

describe('gitIndexLock', () => {
  it('finds the index lock git holds, in the repository\'s git directory: a linked worktree\'s own, a submodule\'s', async () => {
    const dir = repo('locked');
    const goals = join(dir, 'goals');
    expect(await gitIndexLock(goals)).toBeUndefined();
    writeFileSync(join(dir, '.git/index.lock'), '');
    expect(await gitIndexLock(goals)).toBe(join(dir, '.git/index.lock'));
    // A goal directory a checkout removed for now is still in the repository.
    expect(await gitIndexLock(join(goals, 'gone'))).toBe(join(dir, '.git/index.lock'));
    // A linked worktree (`.git` a file) has an index, and a lock, of its own.
    const wt = join(base, 'locked-linked');
    rmSync(join(dir, '.git/index.lock'));
    git(dir, 'worktree', 'add', '-q', '-b', 'locked-other', wt);
    writeFileSync(join(dir, '.git/index.lock'), '');
    expect(await gitIndexLock(join(wt, 'goals'))).toBeUndefined();
    writeFileSync(join(dir, '.git/worktrees/locked-linked/index.lock'), '');
    expect(await gitIndexLock(join(wt, 'goals'))).toBe(join(dir, '.git/worktrees/locked-linked/index.lock'));
    // A submodule keeps its index in the superproject's .git/modules/.
    const outer = repo('locked-outer');
    git(outer, '-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', wt, 'sub');
    const modules = realpathSync(join(outer, '.git/modules/sub'));
    expect(await gitIndexLock(join(outer, 'sub/goals'))).toBeUndefined();
    writeFileSync(join(modules, 'index.lock'), '');
    expect(await gitIndexLock(join(outer, 'sub/goals'))).toBe(join(modules, 'index.lock'));
    expect(await gitIndexLock(tmpdir())).toBeUndefined();
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

/** A goal poll comes every 5 s: a generous bound for one to have run and said what it saw. */
const POLL_WAIT_MS = 20_000;

/** A daemon on `dir`'s goals (`goalsRepo(name)`), its state in `<base>/<name>-state`, reconciling hourly: what it does here is what it is told by its watches. */
function daemonOn(dir: string, name: string, ...extra: string[]): Daemon {
  return daemons.start(['--goals', join(dir, 'goals'), '--state', join(base, `${name}-state`), '--listen', '127.0.0.1:0', '--interval', '1h', ...extra], { cwd: dir });
}

/** A commit outside the goal directory (HEAD moves, the goal files do not); its hash. */
function commitElsewhere(dir: string, file = 'README'): string {
  writeFileSync(join(dir, file), `${file}\n`);
  git(dir, 'add', '--', file);
  git(dir, 'commit', '-qm', file);
  return git(dir, 'rev-parse', 'HEAD');
}

/** Edits the managed file under `root` by hand; the commit the daemon's drift line reports it under. */
async function driftCommit(d: Daemon, root: string, text: string): Promise<unknown> {
  const mark = d.lines.length;
  writeFileSync(join(root, 'app.conf'), text);
  return (await d.waitFor((l) => l.msg === 'drift detected', 5_000, mark)).commit;
}

async function stop(d: Daemon): Promise<void> {
  d.kill('SIGTERM');
  expect((await d.exited).code).toBe(0);
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

  it('goals edited and not committed are recorded as the commit -dirty, in JSON and in the text views', async () => {
    const { dir, root } = goalsRepo('dirty-project');
    const args = ['--goals', join(dir, 'goals'), '--state', join(base, 'dirty-project-state')];
    const head = git(dir, 'rev-parse', 'HEAD');
    writeFileSync(join(dir, 'goals/app.yaml'), oneFileGoal(root, 'v2\n'));
    expect((await cli(['apply', '--yes', ...args])).code).toBe(0);
    writeFileSync(join(root, 'app.conf'), 'edited by hand\n');
    expect((await cli(['apply', '--yes', ...args])).code).toBe(0);
    const history = await cli(['history', ...args, '--format', 'json']);
    expect((JSON.parse(history.stdout) as { runs: { commit: string }[] }).runs.map((r) => r.commit)).toEqual([`${head}${DIRTY}`, `${head}${DIRTY}`]);
    expect((await cli(['history', ...args])).stdout).toContain(`${head.slice(0, 12)}${DIRTY}`);
    expect((await cli(['drift', ...args])).stdout).toContain(`commit ${head.slice(0, 12)}${DIRTY}`);
    git(dir, 'commit', '-qam', 'v2');
    expect((await cli(['apply', '--yes', ...args])).code).toBe(0);
    const last = JSON.parse((await cli(['history', ...args, '--format', 'json', '--limit', '1'])).stdout) as { runs: { commit: string }[] };
    expect(last.runs[0]!.commit).toBe(git(dir, 'rev-parse', 'HEAD'));
  });

  it('a goal file git ignores is applied, and the run recorded under the commit -dirty', async () => {
    const { dir, root } = goalsRepo('ignored-project');
    const args = ['--goals', join(dir, 'goals'), '--state', join(base, 'ignored-project-state')];
    const head = commitIgnores(dir, ['goals/local-*.yaml']);
    writeFileSync(join(dir, 'goals/local-x.yaml'), 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: local }\nspec:\n  defaults: { backend: local }\n  nodes:\n    - id: x\n      type: local.file\n      spec: { path: x.conf, content: "x\\n" }\n');
    const r = await cli(['apply', '--yes', ...args]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(root, 'x.conf'), 'utf8')).toBe('x\n');
    const history = JSON.parse((await cli(['history', ...args, '--format', 'json'])).stdout) as { runs: { commit: string }[] };
    expect(history.runs.map((run) => run.commit)).toEqual([`${head}${DIRTY}`]);
  });

  it('apply on a checkout another user owns records the commit -dirty, and says once how to let git look into it', async () => {
    const { dir } = goalsRepo('owned-project');
    const args = ['--goals', join(dir, 'goals'), '--state', join(base, 'owned-project-state')];
    const head = git(dir, 'rev-parse', 'HEAD');
    chownToNobody(dir);
    const r = await cli(['apply', '--yes', ...args]);
    expect(r.code, r.stderr).toBe(0);
    const told = r.stderr.split('\n').filter((l) => l.includes(UNDETERMINED)).map((l) => JSON.parse(l) as { fix: string });
    expect(told).toHaveLength(1);
    expect(told[0]!.fix).toContain(`git config --global --add safe.directory ${realpathSync(dir)}`);
    const history = JSON.parse((await cli(['history', ...args, '--format', 'json'])).stdout) as { runs: { commit: string }[] };
    expect(history.runs.map((run) => run.commit)).toEqual([`${head}${DIRTY}`]);
  });

  it('a daemon reports drift under the commit -dirty while its goals are edited, and under the new commit once they are committed', async () => {
    const { dir, root } = goalsRepo('daemon-dirty');
    const d = daemonOn(dir, 'daemon-dirty');
    await d.waitFor((l) => l.msg === 'node created');
    const head = git(dir, 'rev-parse', 'HEAD');
    writeFileSync(join(dir, 'goals/app.yaml'), oneFileGoal(root, 'v2\n'));
    await d.waitFor((l) => l.msg === 'node updated');
    const mark = d.lines.length;
    expect(await driftCommit(d, root, 'edited by hand\n')).toBe(`${head}${DIRTY}`);
    git(dir, 'commit', '-qam', 'v2');
    const committed = git(dir, 'rev-parse', 'HEAD');
    // Noticed at the next goal poll (every 5 s).
    expect(await d.waitFor((l) => l.msg === 'goals commit changed' && l.to === committed, POLL_WAIT_MS, mark)).toMatchObject({ from: `${head}${DIRTY}` });
    expect(await driftCommit(d, root, 'edited again\n')).toBe(committed);
    await stop(d);
  }, 60_000);

  it('a daemon reports drift under the commit checked out now, when HEAD moved but its goals did not', async () => {
    const { dir, root } = goalsRepo('daemon-project');
    const first = git(dir, 'rev-parse', 'HEAD');
    const d = daemonOn(dir, 'daemon-project');
    await d.waitFor((l) => l.msg === 'node created');
    const moved = commitElsewhere(dir);
    // Noticed at the next goal poll (every 5 s); a hand edit after it is reported under the new commit.
    expect(await d.waitFor((l) => l.msg === 'goals commit changed' && l.to === moved, POLL_WAIT_MS)).toMatchObject({ from: first });
    expect(await driftCommit(d, root, 'edited by hand\n')).toBe(moved);
    await stop(d);
  }, 60_000);

  it('a daemon that starts on a refused commit runs the last good goals under the commit they were applied at: its run, its log and its drift say it', async () => {
    const { dir, root } = goalsRepo('daemon-broken-start');
    const args = ['--goals', join(dir, 'goals'), '--state', join(base, 'daemon-broken-start-state')];
    const good = git(dir, 'rev-parse', 'HEAD');
    // From the directory the daemon starts in: the last good goals are kept for goals read from there.
    expect((await cli(['apply', '--yes', ...args], { cwd: dir })).code).toBe(0);
    writeFileSync(join(dir, 'goals/app.yaml'), `${readFileSync(join(dir, 'goals/app.yaml'), 'utf8')}bad: [\n`);
    git(dir, 'commit', '-qam', 'broken');
    const broken = git(dir, 'rev-parse', 'HEAD');
    const d = daemonOn(dir, 'daemon-broken-start');
    expect((await d.waitFor((l) => l.msg.startsWith('goal revision rejected'))).commit).toBe(broken);
    expect((await d.waitFor((l) => l.msg === 'goals loaded')).commit).toBe(good);
    await d.waitFor((l) => l.msg === 'listening');
    expect(await driftCommit(d, root, 'edited by hand\n')).toBe(good);
    await stop(d);
    const history = JSON.parse((await cli(['history', ...args, '--format', 'json'], { cwd: dir })).stdout) as { runs: { trigger: string; commit: string | null }[] };
    expect(history.runs.map((r) => `${r.trigger} ${r.commit}`)).toEqual([`daemon-start ${good}`, `apply ${good}`]);
  }, 30_000);

  it('a daemon whose goals were committed elsewhere since they loaded, then refused, reports drift under the newer commit of the goals it runs', async () => {
    const { dir, root } = goalsRepo('daemon-moved-refused');
    const d = daemonOn(dir, 'daemon-moved-refused');
    await d.waitFor((l) => l.msg === 'node created');
    // A commit outside the goal directory: the goals running are this commit's too.
    const moved = commitElsewhere(dir);
    expect((await d.waitFor((l) => l.msg === 'goals commit changed', POLL_WAIT_MS)).to).toBe(moved);
    writeFileSync(join(dir, 'goals/app.yaml'), 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: [broken\n');
    git(dir, 'commit', '-qam', 'broken');
    await d.waitFor((l) => l.msg === 'goal revision rejected; the last good graph keeps running');
    expect(await driftCommit(d, root, 'edited by hand\n')).toBe(moved);
    await stop(d);
  }, 60_000);

  it('a daemon whose new commit of the goals is refused reports drift under the commit of the goals it still runs, and says each HEAD it does not record once', async () => {
    const { dir, root } = goalsRepo('daemon-refused');
    const d = daemonOn(dir, 'daemon-refused', '--log-level', 'debug');
    await d.waitFor((l) => l.msg === 'node created');
    const good = git(dir, 'rev-parse', 'HEAD');
    const mark = d.lines.length;
    writeFileSync(join(dir, 'goals/app.yaml'), 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: [broken\n');
    git(dir, 'commit', '-qam', 'broken');
    const broken = git(dir, 'rev-parse', 'HEAD');
    await d.waitFor((l) => l.msg === 'goal revision rejected; the last good graph keeps running');
    // The goal poll (every 5 s) that sees HEAD move to the refused commit leaves it unrecorded: the goal
    // files are not those of the goals running, before the refusal as after it.
    const notRecorded = (): unknown[] => d.lines.slice(mark).filter((l) => l.msg === 'goals commit not recorded: the goals running are not its').map((l) => l.commit);
    await d.waitFor((l) => l.msg === 'goals commit not recorded: the goals running are not its' && l.commit === broken, POLL_WAIT_MS, mark);
    expect(await driftCommit(d, root, 'edited by hand\n')).toBe(good);
    // HEAD moves again, a poll or more later: said once more, and the refused commit was said once, not at every poll.
    const next = commitElsewhere(dir);
    await d.waitFor((l) => l.msg === 'goals commit not recorded: the goals running are not its' && l.commit === next, POLL_WAIT_MS, mark);
    expect(notRecorded()).toEqual([broken, next]);
    expect(d.lines.slice(mark).filter((l) => l.msg === 'goals commit changed')).toEqual([]);
    expect(await driftCommit(d, root, 'edited again\n')).toBe(good);
    await stop(d);
  }, 60_000);
});
