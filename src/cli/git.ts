import { execFile, spawn } from 'node:child_process';
import { readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage, listGoalFiles } from '../runtime/index.ts';

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
 * Whether git sees a goal file under `dir` changed, added, deleted, untracked or ignored against HEAD.
 * Two questions, the second only when the first finds nothing: neither looks into an ignored directory
 * (a `.terraform/` or `node_modules/` of many thousand files), which would cost a walk of it at every
 * apply, every load, and every poll of a daemon whose goals differ.
 */
async function goalsDiffer(dir: string): Promise<GoalsVerdict> {
  const cwd = await realpath(resolve(dir)).catch(() => undefined);
  if (cwd === undefined) return { error: `cannot resolve ${dir}` };
  // The loader's rule (`listGoalFiles`): `*.yaml` and `*.yml` in any case, while dot files and what dot
  // directories hold are never goals: a draft `.next.yaml`, a `.github/` workflow, an editor's
  // `.a.yaml.swp` do not make them dirty. `--untracked-files` overrides a `status.showUntrackedFiles=no`
  // that would hide a new goal file; `all` lists such files one by one, for the pathspecs to match.
  const status = await gitListsAny(cwd, ['status', '--porcelain', '-z', '--untracked-files=all', '--', ':(glob,icase)**/*.yaml', ':(glob,icase)**/*.yml', ':(glob,exclude)**/.*', ':(glob,exclude)**/.*/**']);
  if (status !== 'clean') return status;
  // What .gitignore hides is applied all the same, and no commit holds it. Asked of the goal files the
  // loader reads, not of a walk of the ignored directories: the loader never reads a dot directory, and
  // reads every other one anyway. A tracked file is never reported ignored: its changes are status's.
  let paths: string[];
  try {
    paths = await goalFilePaths(cwd);
  } catch (err) {
    return { error: errorMessage(err) };
  }
  if (paths.length === 0) return 'clean';
  // `./` first: a file named `:(glob)x.yaml` is that file, not a pathspec's magic. Exit code 1: none is ignored.
  return gitListsAny(cwd, ['check-ignore', '--stdin', '-z'], { input: paths.map((p) => `./${p}\0`).join(''), okCodes: [0, 1] });
}

/**
 * The goal files the loader reads under `cwd` (a real path), as paths from it that git can be asked
 * about: one reached through a symlinked directory by where it really is (git refuses a path beyond a
 * symlink), none outside `cwd`, which the status pathspecs do not cover either.
 */
async function goalFilePaths(cwd: string): Promise<string[]> {
  const { files } = await listGoalFiles(cwd);
  const real = new Map<string, string | undefined>();
  const paths = new Set<string>();
  for (const file of files) {
    const d = dirname(file);
    // A directory gone since the walk holds nothing the loader will read.
    if (!real.has(d)) real.set(d, await realpath(d).catch(() => undefined));
    const at = real.get(d);
    if (at === undefined) continue;
    const path = relative(cwd, join(at, basename(file)));
    if (path !== '..' && !path.startsWith(`..${sep}`) && !isAbsolute(path)) paths.add(path);
  }
  return [...paths];
}

/**
 * Runs git in `cwd`, fed `input`: `dirty` when it lists any path, `clean` when it lists none and ends with
 * one of `okCodes`, else an error with what it said. Takes no lock on the index (a user's git command beside
 * us never fails on it), and reads the output up to its first byte: one path is enough, however many
 * follow. In English (LC_ALL=C), the language `warnUndetermined` reads.
 */
function gitListsAny(cwd: string, args: readonly string[], options: { input?: string; okCodes?: readonly number[] } = {}): Promise<GoalsVerdict> {
  return new Promise((done) => {
    const git = spawn('git', ['--no-optional-locks', ...args], { cwd, timeout: 5000, env: { ...process.env, LC_ALL: 'C' } });
    let listed = false;
    let stderr = '';
    // Git may end before reading it all (it answered, or failed): what it said is the answer, not the broken pipe.
    git.stdin.on('error', () => {});
    git.stdin.end(options.input);
    git.stdout.once('data', () => {
      listed = true;
      git.kill();
    });
    git.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 4096) stderr += b.toString('utf8');
    });
    git.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ENOENT' ? 'no-git' : { error: err.message }));
    git.on('close', (code, signal) => {
      if (listed) done('dirty');
      else if (code !== null && (options.okCodes ?? [0]).includes(code)) done('clean');
      else done({ error: stderr.split('\n')[0]!.trim() || `git ${args[0]} ended with ${code ?? signal}` });
    });
  });
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
    const gitDir = await findGitDir(await realpath(resolve(dir)));
    if (gitDir === null) return null;
    const commit = await readHead(gitDir);
    return commit === undefined ? gitRevParse(dir) : commit;
  } catch {
    return gitRevParse(dir);
  }
}

/** The `.git` directory of the work tree holding `dir` (following a worktree's `gitdir:` file), or null outside any. */
async function findGitDir(dir: string): Promise<string | null> {
  for (let d = dir; ; d = dirname(d)) {
    const dotGit = join(d, '.git');
    const st = await stat(dotGit).catch(() => undefined);
    if (st?.isDirectory()) return dotGit;
    if (st?.isFile()) {
      const m = /^gitdir: (.+)$/m.exec(await readFile(dotGit, 'utf8'));
      if (m === null) throw new Error('unreadable .git file');
      return resolve(d, m[1]!.trim());
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
