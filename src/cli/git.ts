import { execFile, spawn } from 'node:child_process';
import { readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage, isGoalFileName, listGoalFiles } from '../runtime/index.ts';

const COMMIT = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/** What follows HEAD's commit when the goal files differ from it, as `git describe --dirty` marks it. */
export const DIRTY = '-dirty';

/**
 * The goals' provenance: HEAD's commit when `dir` is inside a git work tree,
 * else null, marked `<commit>-dirty` when a goal file under `dir` (what the
 * loader reads: `*.yaml`, `*.yml`, any case, tracked, new or ignored, dot
 * files aside) differs from that commit: goals edited and not committed are
 * not the commit's. Marked so too when git cannot tell (a repository another
 * user owns, which git refuses to look into; a broken index): a clean tree is
 * not vouched for. That is logged once a directory, with why. Never throws;
 * where git is not installed, the commit alone.
 */
export async function goalsCommit(dir: string, log: Logger): Promise<string | null> {
  const head = await headCommit(dir);
  if (head === null) return null;
  const verdict = await goalsDiffer(dir);
  if (typeof verdict === 'object') warnUndetermined(dir, head, verdict.error, log);
  return verdict === 'clean' || verdict === 'no-git' ? head : `${head}${DIRTY}`;
}

/** `commit` as the text views show it: its first 12 digits, and the dirty mark. */
export function shortCommit(commit: string): string {
  return commit.endsWith(DIRTY) ? `${commit.slice(0, 12)}${DIRTY}` : commit.slice(0, 12);
}

/** What git says of the goal files against HEAD: the same, not, not installed, or it could not tell (`error`, what it said). */
type GoalsVerdict = 'clean' | 'dirty' | 'no-git' | { readonly error: string };

/**
 * Whether a goal file under `dir` (what the loader reads: `listGoalFiles`) is changed, added, deleted,
 * untracked or ignored against HEAD. One `git status`, in the common case all that runs: with
 * `--ignored=matching` it lists an ignored directory whole, never looking into it (a `.terraform/` or
 * `node_modules/` of many thousand files, at every apply, load and 5-s poll), and each ignored file a
 * pattern names. What it lists as a whole directory is walked by the loader's rule only where the loader
 * reads it too; a submodule it says differs is asked in turn.
 */
async function goalsDiffer(dir: string): Promise<GoalsVerdict> {
  const cwd = await realpath(resolve(dir)).catch(() => undefined);
  if (cwd === undefined) return { error: `cannot resolve ${dir}` };
  const prefix = await repositoryPrefix(cwd);
  if (typeof prefix !== 'string') return prefix;
  const status = await listGoalChanges(cwd, prefix);
  if (typeof status !== 'object' || !('lookInto' in status)) return status;
  for (const { path, submodule } of status.lookInto) {
    const at = join(cwd, path);
    const verdict = submodule ? await goalsDiffer(at) : await holdsGoalFile(at);
    if (verdict !== 'clean') return verdict;
  }
  return 'clean';
}

/**
 * The goal directory `cwd` (a real path) as git's paths name it from the top of its work tree (`goals/`,
 * or empty at the top): found as git finds the work tree, by the `.git` above it, or where the environment
 * chooses the repository (`$GIT_DIR`, `$GIT_WORK_TREE`) or that cannot be read, asked of git.
 */
async function repositoryPrefix(cwd: string): Promise<string | Exclude<GoalsVerdict, 'clean' | 'dirty'>> {
  if (process.env.GIT_DIR === undefined && process.env.GIT_WORK_TREE === undefined) {
    const repository = await findRepository(cwd).catch(() => undefined);
    if (repository !== undefined && repository !== null) {
      const path = relative(repository.workTree, cwd);
      return path === '' ? '' : `${path.split(sep).join('/')}/`;
    }
  }
  return new Promise((done) => {
    execFile('git', ['rev-parse', '--show-prefix'], { cwd, timeout: 5000, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err === null) done(stdout.replace(/\n$/, ''));
      else if ((err as NodeJS.ErrnoException).code === 'ENOENT') done('no-git');
      else done({ error: stderr.split('\n')[0]!.trim() || err.message });
    });
  });
}

/** A directory `git status` lists whole, which may hold goal files git did not look for: a path from the goal directory. */
interface LookInto {
  readonly path: string;
  /** A submodule whose checkout differs from the commit's (tracked or untracked content); else a directory git did not look into. */
  readonly submodule: boolean;
}

/**
 * Runs `git status` over `cwd`, whose paths start with `prefix`: `dirty` at the first goal file it lists,
 * else the directories to look into, else an error with what it said. Read as it comes, and ended at the
 * first goal file: one is enough, however many follow. Takes no lock on the index (a user's git command
 * beside us never fails on it); in English (LC_ALL=C), the language `warnUndetermined` reads.
 */
function listGoalChanges(cwd: string, prefix: string): Promise<Exclude<GoalsVerdict, 'clean'> | { readonly lookInto: readonly LookInto[] }> {
  return new Promise((done) => {
    // `--untracked-files=all` overrides a `status.showUntrackedFiles=no` that would hide a new goal file, and
    // lists new files one by one (a directory only when it is a repository of its own). No pathspec but the
    // goal directory: git's `icase` and `exclude` magic would still walk every ignored tree to match them.
    const git = spawn('git', ['--no-optional-locks', 'status', '--porcelain=v2', '-z', '--untracked-files=all', '--ignored=matching', '--', '.'], {
      cwd,
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    const lookInto: LookInto[] = [];
    let verdict: 'dirty' | { error: string } | undefined;
    let pending = Buffer.alloc(0);
    let renamedFrom = false;
    const judge = (field: string): void => {
      // A rename's second path is where it was, a path alone: a goal file moved away is one deleted.
      const seen = goalChange(renamedFrom ? { kind: '2', path: field } : statusRecord(field), prefix);
      renamedFrom = !renamedFrom && field.startsWith('2 ');
      if (typeof seen === 'object' && 'path' in seen) lookInto.push(seen);
      else if (seen !== 'none') {
        verdict = seen;
        git.kill();
      }
    };
    git.stdout.on('data', (b: Buffer) => {
      if (verdict !== undefined) return;
      pending = Buffer.concat([pending, b]);
      for (let end = pending.indexOf(0); end >= 0 && verdict === undefined; end = pending.indexOf(0)) {
        judge(pending.subarray(0, end).toString('utf8'));
        pending = pending.subarray(end + 1);
      }
    });
    let stderr = '';
    git.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 4096) stderr += b.toString('utf8');
    });
    git.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ENOENT' ? 'no-git' : { error: err.message }));
    git.on('close', (code, signal) => {
      if (verdict !== undefined) done(verdict);
      else if (code === 0) done({ lookInto });
      else done({ error: stderr.split('\n')[0]!.trim() || `git status ended with ${code ?? signal}` });
    });
  });
}

/** One `git status --porcelain=v2` record: its kind (`1` changed, `2` renamed, `u` unmerged, `?` untracked, `!` ignored), a tracked path's submodule state, and the path. */
interface StatusRecord {
  readonly kind: string;
  readonly submodule?: string;
  readonly path: string;
}

/** How many space-separated fields precede the path in each kind of record. */
const FIELDS_BEFORE_PATH: Readonly<Record<string, number>> = { '1': 8, '2': 9, u: 10 };

function statusRecord(record: string): StatusRecord {
  const kind = record[0]!;
  const before = FIELDS_BEFORE_PATH[kind];
  if (before === undefined) return { kind, path: record.slice(2) };
  // The path is all that follows, spaces and all.
  const fields = record.split(' ', before);
  return { kind, submodule: fields[2], path: record.slice(fields.join(' ').length + 1) };
}

/**
 * What one `git status --porcelain=v2` path means for the goals, by the loader's rule: a goal file is
 * named `*.yaml` or `*.yml` in any case, and dot files and what dot directories hold are never read (a
 * draft `.next.yaml`, a `.github/` workflow, a `.terraform/` tree). A directory listed whole (ignored, or a
 * repository of its own) and a submodule that differs are to be looked into. Git looks beyond no link.
 */
function goalChange({ kind, submodule, path }: StatusRecord, prefix: string): 'dirty' | 'none' | LookInto | { error: string } {
  if (!path.startsWith(prefix)) return { error: `git status listed ${path}, outside the goal directory ${prefix}` };
  const names = path.slice(prefix.length).split('/').filter((name) => name !== '');
  if (names.some((name) => name.startsWith('.'))) return 'none';
  const at = names.join('/');
  if (names.length > 0 && isGoalFileName(names.at(-1)!)) return 'dirty';
  // A submodule's state: S, then C (a commit other than the one recorded), M (tracked content changed), U (untracked content).
  if (submodule?.startsWith('S') === true) return submodule[1] === 'C' ? 'dirty' : { path: at, submodule: true };
  return (kind === '?' || kind === '!') && (path.endsWith('/') || at === '') ? { path: at, submodule: false } : 'none';
}

/** Whether the loader finds a goal file under `dir`, which git did not look into: `dirty` if so; nothing there (gone since) is `clean`. */
async function holdsGoalFile(dir: string): Promise<GoalsVerdict> {
  try {
    return (await listGoalFiles(dir)).files.length > 0 ? 'dirty' : 'clean';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'clean' : { error: errorMessage(err) };
  }
}

/** The directories whose undetermined state was logged: once each, where the daemon asks every 5 s. */
const toldUndetermined = new Set<string>();

/** Logs once for `dir` that git could not tell whether its goal files are `head`'s, and how to let it. */
function warnUndetermined(dir: string, head: string, error: string, log: Logger): void {
  if (toldUndetermined.has(dir)) return;
  toldUndetermined.add(dir);
  // Trusting a repository is for its owner to decide, not for us to bypass (`-c safe.directory=*`): git
  // refuses one another user owns because its config could run that user's commands (hooks, fsmonitor) as ours.
  const repository = /detected dubious ownership in repository at '(.+)'/.exec(error)?.[1];
  const fix =
    repository === undefined
      ? 'run `git status` there to see why'
      : `the repository belongs to another user; to trust it, run as this user: git config --global --add safe.directory ${repository}`;
  log.warn({ goalsDir: dir, commit: `${head}${DIRTY}`, error, fix }, 'goals commit marked -dirty: git cannot tell whether the goal files differ from it');
}

/**
 * HEAD's commit when `dir` is inside a git work tree, else null. Never
 * throws. Reads the repository's files (HEAD, the loose ref, packed-refs)
 * for the common layouts, which costs a few reads instead of starting git
 * (8 ms on every one-shot command); anything else — `$GIT_DIR`, a reftable
 * repository, a symbolic ref it cannot follow — asks `git rev-parse HEAD`.
 */
export async function headCommit(dir: string): Promise<string | null> {
  if (process.env.GIT_DIR !== undefined || process.env.GIT_WORK_TREE !== undefined) return gitRevParse(dir);
  try {
    // Where the directory really is, as git finds it: a goal directory reached through a symlink
    // (a git-sync checkout) belongs to the repository the link points into.
    const repository = await findRepository(await realpath(resolve(dir)));
    if (repository === null) return null;
    const commit = await readHead(repository.gitDir);
    return commit === undefined ? gitRevParse(dir) : commit;
  } catch {
    return gitRevParse(dir);
  }
}

/**
 * The path of the index lock of the git repository holding `dir` (`$GIT_DIR`'s when that is set), when
 * it exists: git holds it while a checkout, pull, merge, reset or rebase writes the work tree, so the
 * goal files there may be half old, half new. Undefined outside a repository, and when git holds none.
 */
export async function gitIndexLock(dir: string): Promise<string | undefined> {
  const gitDir =
    process.env.GIT_DIR !== undefined
      ? resolve(process.env.GIT_DIR)
      : // A goal directory a checkout has removed for now is looked for where it was.
        (await findRepository(await realpath(resolve(dir)).catch(() => resolve(dir))).catch(() => null))?.gitDir;
  if (gitDir === undefined) return undefined;
  const lock = join(gitDir, 'index.lock');
  return (await stat(lock).catch(() => undefined)) === undefined ? undefined : lock;
}

/** The work tree holding `dir` and its `.git` directory (following a worktree's or submodule's `gitdir:` file), or null outside any. */
async function findRepository(dir: string): Promise<{ workTree: string; gitDir: string } | null> {
  for (let d = dir; ; d = dirname(d)) {
    const dotGit = join(d, '.git');
    const st = await stat(dotGit).catch(() => undefined);
    if (st?.isDirectory()) return { workTree: d, gitDir: dotGit };
    if (st?.isFile()) {
      const m = /^gitdir: (.+)$/m.exec(await readFile(dotGit, 'utf8'));
      if (m === null) throw new Error('unreadable .git file');
      return { workTree: d, gitDir: resolve(d, m[1]!.trim()) };
    }
    if (dirname(d) === d) return null;
  }
}

/** HEAD's commit, or undefined when this layout is not one read here (the caller asks git). */
async function readHead(gitDir: string): Promise<string | null | undefined> {
  const head = (await readFile(join(gitDir, 'HEAD'), 'utf8')).trim();
  if (COMMIT.test(head)) return head;
  const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
  if (ref === undefined) return undefined;
  // A linked worktree keeps its HEAD in its own directory and the refs in the common one.
  const common = await readFile(join(gitDir, 'commondir'), 'utf8').then(
    (c) => resolve(gitDir, c.trim()),
    () => gitDir,
  );
  if (await stat(join(common, 'reftable')).catch(() => undefined)) return undefined;
  for (const base of new Set([gitDir, common])) {
    const loose = await readFile(join(base, ref), 'utf8').catch(() => undefined);
    if (loose !== undefined) return COMMIT.test(loose.trim()) ? loose.trim() : undefined;
  }
  const packed = await readFile(join(common, 'packed-refs'), 'utf8').catch(() => '');
  for (const line of packed.split('\n')) {
    const [commit, name] = line.split(' ');
    if (name === ref && commit !== undefined && COMMIT.test(commit)) return commit;
  }
  // A branch with no commit yet (a fresh `git init`): no HEAD commit, as `git rev-parse` says.
  return null;
}

async function gitRevParse(dir: string): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('git', ['-C', dir, 'rev-parse', '--verify', '--quiet', 'HEAD'], { timeout: 5000 }, (err, stdout) => {
      if (err !== null) return resolve(null);
      const commit = stdout.trim();
      resolve(COMMIT.test(commit) ? commit : null);
    });
  });
}
