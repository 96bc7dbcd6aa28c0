import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, constants as fsConstants, existsSync, fchmodSync, fchownSync, fstatSync, lchownSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, readSync, renameSync, statfsSync, statSync, watch, writeFileSync } from 'node:fs';
import type { FSWatcher, Stats } from 'node:fs';
import { constants, lstat, mkdir, open, readdir, readFile, readlink, rename, rmdir, stat, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, parse, sep } from 'node:path';
import { FaultError, fault, forEachLimit, makeDirectories, once, processStat, removeQuietly, runsAsStarted, sha256 } from '../../runtime/index.ts';
import type { ObservationMemo } from '../../runtime/index.ts';
import { parseAccounts } from './accounts.ts';
import type { AccountTable } from './accounts.ts';
import { aborted, directoryNotEmpty, errnoOf, escapesRoot, fsFault, leadsOutOfRoot, pathChanged, symlinkLoop, wrongKind } from './errors.ts';
import type { ActualEntry } from './observe.ts';
import { DETAIL_LIMIT } from './observe.ts';
import { isWithin, rootRelative } from './paths.ts';

/**
 * The local backend's only I/O: every filesystem call lives here. Paths that
 * reach the write functions have been confined by a `Confiner` first.
 */

/** Linux's limit on symlinks followed while resolving one path. */
const MAX_SYMLINK_HOPS = 40;

/**
 * The symlinks one resolution has followed, nested or one after the other: counted all together, as
 * Linux counts them. Counted by depth alone, links each naming the next several times (`b -> a/a/a/a`,
 * `c -> b/b/b/b`, …), which anyone who may write in the root can make, would cost lstats exponential
 * in their number, the event loop blocked meanwhile.
 */
interface Hops {
  followed: number;
}

/**
 * How a walk first went from inside the root to outside it: by the target's own text (one of its
 * `..`, or its missing rest read lexically: the goal's doing, `m/../..` beside a link `m` to `..`),
 * or by following a symlink on the way that itself leads out (made by hand: the goals make none that does).
 */
type Departure = 'text' | 'link';

/** A physically resolved path: symlinks followed, `..` applied to real directories. */
interface Resolved {
  readonly real: string;
  /** False when some component does not exist (the rest is appended lexically: nothing there can be a link). */
  readonly exists: boolean;
  /**
   * With a root to watch (`resolvePhysical`'s `within`): how the walk first left it, if it did. Only a
   * step from inside to outside counts: an absolute target's way down to the root is the operator's setup.
   */
  readonly left?: Departure | undefined;
  /** The lstat of `real`, when the walk's last step took one (not when it ended at a `..`): `Confiner.sealed` needs no other. */
  readonly stat?: Stats | undefined;
}

function isMissing(err: unknown): boolean {
  const code = errnoOf(err);
  return code === 'ENOENT';
}

/** A symlink taken as it will be, whatever is at its path now (`resolvePhysical`): the one about to be made. */
interface LinkToBe {
  /** Its real path. */
  readonly path: string;
  readonly target: string;
}

/**
 * Resolves `target` against the real directory `base` the way the kernel
 * would: component by component, following symlinks and applying `..` to
 * the directory actually reached; with `within`, noting how the walk first
 * left that real root; with `toBe`, taking the link at its path as it will
 * be. Synchronous on purpose: these are a few metadata lookups the kernel
 * answers from its dentry cache, far cheaper than a thread-pool round trip each.
 */
function resolvePhysical(base: string, target: string, within?: string, hops: Hops = { followed: 0 }, toBe?: LinkToBe): Resolved {
  let current = isAbsolute(target) ? parse(target).root : base;
  let stat: Stats | undefined;
  let left: Departure | undefined;
  const leaves = (from: string, to: string, by: Departure): void => {
    if (within !== undefined && left === undefined && isWithin(within, from) && !isWithin(within, to)) left = by;
  };
  const parts = target.split(sep).filter((p) => p !== '' && p !== '.');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (part === '..') {
      leaves(current, dirname(current), 'text');
      current = dirname(current);
      stat = undefined;
      continue;
    }
    const next = join(current, part);
    // A symlink's text: the link about to be made stands at its path already, as far as this walk goes.
    let link: string | undefined;
    let st: Stats | undefined;
    if (next === toBe?.path) {
      link = toBe.target;
    } else {
      try {
        st = lstatSync(next, { throwIfNoEntry: false });
      } catch (err) {
        throw fsFault(err, 'lstat', next);
      }
      // Nothing exists from here on, so the rest cannot hold links: resolve it lexically.
      if (st === undefined) {
        const real = join(next, ...parts.slice(i + 1));
        leaves(current, real, 'text');
        return { real, exists: false, left };
      }
      if (st.isSymbolicLink()) link = readLink(next);
    }
    if (link !== undefined) {
      if (++hops.followed > MAX_SYMLINK_HOPS) throw new FaultError(fault('permanent', `too many symlinks resolving ${next}`, { code: 'ELOOP' }));
      // The link's own text is not the target's: where it leads is all that counts here.
      const resolved = resolvePhysical(current, link, undefined, hops, toBe);
      leaves(current, resolved.real, 'link');
      if (!resolved.exists) {
        const real = join(resolved.real, ...parts.slice(i + 1));
        leaves(resolved.real, real, 'text');
        return { real, exists: false, left };
      }
      current = resolved.real;
      stat = resolved.stat;
    } else if (st !== undefined && !st.isDirectory() && i < parts.length - 1) {
      throw notADirectory(next);
    } else {
      current = next;
      stat = st;
    }
  }
  return { real: current, exists: true, left, stat };
}

function readLink(path: string, shown = path): string {
  try {
    return readlinkSync(path);
  } catch (err) {
    throw fsFault(err, 'readlink', shown);
  }
}

function joinPlain(dir: string, rel: string): string {
  return dir.endsWith(sep) ? dir + rel : dir + sep + rel;
}

/** Where a node lives: the path the user sees, and the real path every call uses. */
export interface NodePath {
  /** The node's path in normal form, relative to the root (`rootRelative`). */
  readonly rel: string;
  /** `root` joined with the node's relative path (shown in outputs and messages). */
  readonly abs: string;
  /** The real parent directory joined with the base name: no symlink between it and the real root. */
  readonly real: string;
  /** That real parent directory (`dirname(real)`). */
  readonly dir: string;
  /**
   * Whether a symlink in the root lies on the way to `dir` (`real` is not the real root joined with
   * `rel`): only such a path can lead to another node's file. The way to the root itself is the operator's setup.
   */
  readonly linked: boolean;
}

/**
 * A path to change something at: `real` for messages and keys, `io` for the calls themselves. With a
 * pinning `Confiner`, `io` reaches `real`'s directory through an fd held on it (`Confiner.io`), so that
 * a symlink swapped in for one of its directories after the check cannot send a write, a chmod or a
 * chown out of the root; otherwise it is `real`.
 */
export interface IoPath {
  readonly real: string;
  readonly io: string;
  /** Whether `io` goes through a pinned directory (then a chmod or chown goes through the entry's own O_PATH fd too). */
  readonly pinned: boolean;
}

/** Linux's O_PATH (Node's constants lack it): an fd that names a file or directory without opening it for reading or writing. */
const O_PATH = 0o10000000;
const PIN_FLAGS = O_PATH | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW;

/** Whether this system can pin directories (Linux, with /proc): asked once, at the first pinning confiner. */
let pinningWorks: boolean | undefined;
function canPin(): boolean {
  return (pinningWorks ??= process.platform === 'linux' && existsSync('/proc/self/fd'));
}

/**
 * The path through which an fd this process holds reaches what it names (any later rename or swap of
 * the path it was opened by notwithstanding). `self`, not the pid: in a pid namespace without a /proc
 * of its own, the pid this process sees names another process there.
 */
function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** A file found regular and a symlink by the time it was opened to be read: not followed, read again at the next pass. */
function becameLink(real: string, err: unknown): FaultError {
  return pathChanged(`${real} became a symlink while it was being read; it was not followed`, 'something else changes this path meanwhile; the next pass reads it again', err);
}

/** Something other than a directory (a file) found where the path needs one: the goal cannot be met there until it is moved. */
function notADirectory(path: string): FaultError {
  return new FaultError(fault('permanent', `${path} is not a directory`, { code: 'ENOTDIR', hint: 'a path component is a file, not a directory' }));
}

/** A directory that was checked and then changed kind (a symlink or a file put in its place): nothing is done there. */
function changedUnder(dir: string, err: unknown): FaultError {
  return pathChanged(
    `${dir} is no longer the directory that was checked (a symlink or a file took its place); nothing was read or written there`,
    'something else changes this path meanwhile; the next pass checks it again, and refuses a symlink that leads out of the root',
    err,
  );
}

/** A directory of the root, resolved, and whether a symlink in the root lies on its way (`NodePath.linked`). */
interface RootDirectory extends Resolved {
  readonly linked: boolean;
}

/**
 * Confinement for one batch of operations. The real directory of each
 * parent is resolved once and memoised, so 10k files in a few directories
 * cost a few dozen lstat calls, not 10k walks.
 */
export class Confiner {
  readonly root: string;
  private rootResolved: Resolved | undefined;
  private readonly dirs = new Map<string, RootDirectory>();
  /** With `pin`: the real directories reached so far, an O_PATH fd each (closed by `close`). */
  private readonly pins: Map<string, number> | undefined;
  /** With `pin`: per real directory, whether it and every directory above it up to the root are `sealed`. */
  private readonly sealedDirs = new Map<string, boolean>();
  /** The real paths of nodes' directories that the walk found to be something else (a file): not directories that changed since. */
  private readonly notDirectories = new Set<string>();

  /**
   * `pin`: for a batch that changes things; its calls go through `io` and `makeDirectories`, and
   * `close` must be called once they have all finished (the fds are reused by the system after).
   */
  constructor(root: string, options: { readonly pin?: boolean } = {}) {
    this.root = root;
    this.pins = options.pin === true && canPin() ? new Map() : undefined;
  }

  /**
   * Where to make a change to the node: its real path, reached (when this confiner pins) through
   * its directory's fd, `/proc/PID/fd/N/NAME`. The fd is opened from the root down, one directory
   * at a time and never through a symlink: a directory replaced after the check (by a symlink out
   * of the root, say, by a user who may write in the root) is refused here rather than followed,
   * and one replaced after this call is not where the change lands. The directory must exist.
   */
  io(at: NodePath): IoPath {
    const dir = at.dir;
    if (this.pins === undefined || this.sealed(dir)) return { real: at.real, io: at.real, pinned: false };
    return { real: at.real, io: `${this.pinned(dir)}${sep}${basename(at.real)}`, pinned: true };
  }

  /**
   * Where to read the node (the path `io` would give), or `undefined` when its directory is not there (nothing is
   * at the path then). A pinning confiner reads the way it writes, so that a directory swapped for a
   * symlink out of the root after the check cannot make an observation read a file outside it, and
   * show its lines in a drift report, which is logged and stored.
   */
  reading(at: NodePath): string | undefined {
    const dir = at.dir;
    // The path itself where nothing needs pinning: no object made for each of 10,000 files a pass.
    if (this.pins === undefined || this.sealed(dir)) return at.real;
    // Pinned already: there (the fd holds it, wherever it went). Else an lstat tells a missing directory from one to pin.
    if (!this.pins.has(dir) && lstatSync(dir, { throwIfNoEntry: false }) === undefined) return undefined;
    return this.io(at).io;
  }

  /** The real directory `dir` (in the root) itself, reached through its own fd when this confiner pins (to list it). */
  directory(dir: string): string {
    return this.pins === undefined || this.sealed(dir) ? dir : this.pinned(dir);
  }

  /**
   * `mkdir -p` of a real directory in the root (default mode), each directory made through its
   * parent's fd and then pinned itself: a symlink put where one is made is refused, not followed.
   */
  makeDirectories(dir: string): void {
    const root = this.realRoot().real;
    if (this.pins === undefined || dir === root || !isWithin(root, dir)) {
      makeDirectories(dir);
      this.sealedDirs.delete(dir);
      return;
    }
    if (this.pins.has(dir) || this.sealed(dir)) return;
    const parent = dirname(dir);
    this.makeDirectories(parent);
    try {
      mkdirSync(this.sealed(parent) ? dir : `${this.pinned(parent)}${sep}${basename(dir)}`);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw fsFault(err, 'mkdir', dir);
    }
    this.sealedDirs.delete(dir);
    if (!this.sealed(dir)) this.pinned(dir);
  }

  /**
   * Whether no one but root and this process's user can change the entries of `dir` (a real
   * directory in the root) or of any directory above it up to the root: each is owned by one of
   * them, and writable by neither its group nor others. Nothing can then be swapped in on the way,
   * and calls go by path, which costs nothing (through /proc, each path lookup costs about 2 µs
   * more: 10,000 files written, some 60 ms). Read once per batch: a mode a node of the same batch
   * gives a directory counts from the next (a directory is made in an earlier dependency level
   * than what it holds). A directory that is not there is not sealed. `known`: an lstat of `dir`
   * taken already (by the walk that resolved it): as good as a fresh one, since once it shows `dir`
   * sealed, only root or this user can make it otherwise.
   */
  private sealed(dir: string, known?: Stats): boolean {
    let v = this.sealedDirs.get(dir);
    if (v === undefined) {
      const root = this.realRoot().real;
      const st = known ?? lstatSync(dir, { throwIfNoEntry: false });
      const uid = process.getuid?.();
      const own = st !== undefined && st.isDirectory() && (st.uid === 0 || st.uid === uid) && (st.mode & 0o022) === 0;
      v = own && (dir === root || (isWithin(root, dir) && this.sealed(dirname(dir))));
      this.sealedDirs.set(dir, v);
    }
    return v;
  }

  /** How many directory fds are held (`close` lets them go). */
  get pinCount(): number {
    return this.pins?.size ?? 0;
  }

  /**
   * Closes the pinned directories' fds. Every call made through `io` or `reading` must have
   * finished. The confiner may go on: a directory is pinned again, from the root down, when next needed.
   */
  close(): void {
    if (this.pins === undefined) return;
    for (const fd of this.pins.values()) closeSync(fd);
    this.pins.clear();
  }

  private pinned(dir: string): string {
    const pins = this.pins!;
    let fd = pins.get(dir);
    if (fd === undefined) {
      const root = this.realRoot().real;
      if (dir === root) {
        // The root's own path (its ancestors may be links, as the operator set them up) is trusted.
        try {
          if (!this.realRoot().exists) makeDirectories(root);
          fd = openSync(root, O_PATH | fsConstants.O_DIRECTORY);
        } catch (err) {
          throw fsFault(err, 'open', root);
        }
      } else {
        if (!isWithin(root, dir)) throw escapesRoot(dir, 'it is not in the root');
        const parent = this.pinned(dirname(dir));
        try {
          fd = openSync(`${parent}${sep}${basename(dir)}`, PIN_FLAGS);
        } catch (err) {
          const code = errnoOf(err);
          if (code === 'ENOTDIR' && this.notDirectories.has(dir)) throw notADirectory(dir);
          throw code === 'ENOTDIR' || code === 'ELOOP' ? changedUnder(dir, err) : fsFault(err, 'open', dir);
        }
      }
      pins.set(dir, fd);
    }
    return fdPath(fd);
  }

  /** The root's real path (it may not exist yet; its ancestors may legitimately be links). */
  realRoot(): Resolved {
    return (this.rootResolved ??= resolvePhysical(parse(this.root).root, this.root));
  }

  /** Confines a node path: refuses absolute paths, `..` escapes and symlinked directories that lead out of the root. */
  node(relPath: string): NodePath {
    const rel = rootRelative(this.root, relPath);
    const slash = rel.lastIndexOf(sep);
    const parent = this.dir(slash < 0 ? '.' : rel.slice(0, slash), relPath);
    return { rel, abs: joinPlain(this.root, rel), real: joinPlain(parent.real, rel.slice(slash + 1)), dir: parent.real, linked: parent.linked };
  }

  /**
   * Checks that a link target, resolved from the link's real directory, stays inside the root: refused as
   * an escape (permanent) when its text leads out from there, or its own `..` climbs out from where the
   * links on the way lead (`Resolved.left`: the goal's links, `m/../..` beside a link `m` to `..`, as
   * much as its text); as a changed path (transient) when a symlink on the way leads out itself, which
   * the goals never make. The link is taken as it will be: one whose target leads round a loop of
   * symlinks (back to itself, `l` to `l`, or through links there already) reaches nothing, so nothing
   * out of the root either, and is observed as it is; but it is not made (`make`), as symlink() would
   * make it all the same, and nothing could be reached through it after.
   */
  target(linkReal: string, target: string, purpose: 'make' | 'observe'): void {
    const root = this.realRoot();
    const from = dirname(linkReal);
    const text = isAbsolute(target) ? normalize(target) : join(from, target);
    const textLeaves = !isWithin(root.real, text) && !isWithin(this.root, text);
    let resolved: Resolved;
    try {
      resolved = resolvePhysical(from, target, root.real, undefined, { path: linkReal, target });
    } catch (err) {
      if (!(err instanceof FaultError) || err.fault.code !== 'ELOOP') throw err;
      if (textLeaves) throw escapesRoot(target, 'the symlink target resolves outside the root');
      if (purpose === 'make') throw symlinkLoop(target, err);
      return;
    }
    if (isWithin(root.real, resolved.real)) return;
    if (textLeaves) throw escapesRoot(target, 'the symlink target resolves outside the root');
    if (resolved.left === 'text') throw escapesRoot(target, 'its ".." climbs out of the root from where the symlinks on the way lead');
    throw leadsOutOfRoot(target, 'the symlink target resolves outside the root through a symlink on the way');
  }

  private dir(relDir: string, forPath: string): RootDirectory {
    let r = this.dirs.get(relDir);
    if (r === undefined) {
      r = this.resolveDir(relDir, forPath);
      this.dirs.set(relDir, r);
      // The walk's lstat of the directory is the one `sealed` needs: not taken twice.
      if (this.pins !== undefined && r.stat !== undefined) this.sealed(r.real, r.stat);
      // A file where the node's directory should be: the calls made there fail (`pinned`), never taken for a directory that changed.
      if (r.stat?.isDirectory() === false) this.notDirectories.add(r.real);
    }
    return r;
  }

  private resolveDir(relDir: string, forPath: string): RootDirectory {
    if (relDir === '.' || relDir === '') return { ...this.realRoot(), linked: false };
    const parent = this.dir(dirname(relDir), forPath);
    const next = join(parent.real, basename(relDir));
    if (!parent.exists) return { real: next, exists: false, linked: parent.linked };
    const resolved = resolvePhysical(parent.real, basename(relDir));
    const root = this.realRoot();
    // Its text stays in the root (checked before): a symlink found there, not the goal, leads out.
    if (!isWithin(root.real, resolved.real)) throw leadsOutOfRoot(forPath, `${relDir} is a symlink that leads out of the root`);
    return { ...resolved, linked: parent.linked || resolved.real !== next };
  }
}

/** What `inspect` should read of a regular file. */
export interface ReadPolicy {
  /** The desired content's size in bytes: a file of the same size is always read and compared (never trust mtime). */
  readonly desiredSize: number;
  /** The desired content and its hash: content equal to it needs no hashing. */
  readonly desired?: { readonly bytes: Uint8Array; readonly sha256: string } | undefined;
  /** Names for uids and gids, when the node manages owner or group. */
  readonly accounts?: { readonly users: AccountTable; readonly groups: AccountTable } | undefined;
  /** The memo of the node's last observation, trusted instead of a read while it holds (`memoHolds`). */
  readonly memo?: ObservationMemo | undefined;
  /** How long a memo is trusted at most (the backend's `rereadEvery`); undefined: every file is read. */
  readonly rereadEveryMs?: number | undefined;
  /** When the observation started (epoch ms, taken before any lstat of it): the memo's `seenAt`. */
  readonly now: number;
}

/**
 * A memo is not taken, nor trusted, when the file changed less than this long
 * before the reading it records: a later write in the same timestamp tick
 * could leave size, mtime and ctime as they were. Linux stamps ctime from a
 * clock that ticks every 1–10 ms, so for sub-second timestamps 100 ms is ten
 * ticks; a ctime in whole seconds (a filesystem with 1 s or 2 s timestamps:
 * ext4 with small inodes, FAT, some NFS servers) needs seconds.
 */
export const RACY_MARGIN_MS = 100;
export const COARSE_RACY_MARGIN_MS = 3000;

/** The margin for a file whose ctime is `ctimeMs`: whole seconds suggest a coarse filesystem. */
export function racyMarginMs(ctimeMs: number): number {
  return ctimeMs % 1000 === 0 ? COARSE_RACY_MARGIN_MS : RACY_MARGIN_MS;
}

/** Whether a reading at `at` (epoch ms) came late enough after the file's last change to be remembered. */
function settledBy(st: Stats, at: number): boolean {
  return at - st.ctimeMs >= racyMarginMs(st.ctimeMs);
}

/**
 * Whether the file's content is still what the memo says it was read as, so
 * that it need not be read again. The memo must record the desired content's
 * hash and exactly this file's device, inode, size, mtime and ctime — any
 * write, truncate, chmod, chown or rename over the path changes one of them,
 * and ctime cannot be set back (an edit that restores size and mtime still
 * moves it) — it must have been taken at least `racyMarginMs` after the
 * file last changed, not in the future, and less than `rereadEveryMs` ago:
 * even an unchanged-looking file is read again that often.
 */
export function memoHolds(memo: ObservationMemo | undefined, st: Stats, desiredSha256: string, now: number, rereadEveryMs: number | undefined): boolean {
  if (memo === undefined || rereadEveryMs === undefined || rereadEveryMs <= 0) return false;
  const seenAt = memo.seenAt;
  return (
    memo.v === 1 &&
    memo.sha256 === desiredSha256 &&
    memo.dev === st.dev &&
    memo.ino === st.ino &&
    memo.size === st.size &&
    memo.mtime === st.mtimeMs &&
    memo.ctime === st.ctimeMs &&
    typeof seenAt === 'number' &&
    settledBy(st, seenAt) &&
    seenAt <= now &&
    now - seenAt < rereadEveryMs
  );
}

/** The memo of a file whose whole content (`sha256`) was just read, as `st` described it. */
function fileMemo(st: Stats, sha: string, seenAt: number): ObservationMemo {
  return { v: 1, dev: st.dev, ino: st.ino, size: st.size, mtime: st.mtimeMs, ctime: st.ctimeMs, sha256: sha, seenAt };
}

/** Files up to this size are read with a synchronous call by `inspectSync`; larger ones go through the thread pool. */
export const SYNC_READ_LIMIT = 256 * 1024;

type Stat = Stats;
type FileEntry = Extract<ActualEntry, { kind: 'file' }>;

/** The entry for a stat, or the file's metadata when its content still has to be read. */
function classify(st: Stat, policy: ReadPolicy | undefined): Exclude<ActualEntry, { kind: 'symlink' }> | { kind: 'read'; base: FileEntry } | { kind: 'link'; uid: number; gid: number } {
  if (st.isSymbolicLink()) return { kind: 'link', uid: st.uid, gid: st.gid };
  if (st.isDirectory()) return { kind: 'directory', mode: st.mode };
  if (!st.isFile()) return { kind: 'other', what: st.isSocket() ? 'socket' : st.isFIFO() ? 'fifo' : 'device' };
  const owner = policy?.accounts?.users.byId.get(st.uid) ?? String(st.uid);
  const group = policy?.accounts?.groups.byId.get(st.gid) ?? String(st.gid);
  const base: FileEntry = { kind: 'file', size: st.size, mode: st.mode, uid: st.uid, gid: st.gid, owner, group, ino: st.ino, ctimeMs: st.ctimeMs, links: st.nlink };
  if (policy === undefined) return base;
  // Read before, and nothing about the file changed since: it still holds the desired content.
  if (policy.desired !== undefined && memoHolds(policy.memo, st, policy.desired.sha256, policy.now, policy.rereadEveryMs)) {
    return { ...base, sha256: policy.desired.sha256, memo: policy.memo };
  }
  // Size first: a different size is a content change without reading. Same size: read and compare
  // (never trust mtime). Small files are read anyway, for the line diff in a drift report.
  const small = st.size < DETAIL_LIMIT && policy.desiredSize < DETAIL_LIMIT;
  if (st.size !== policy.desiredSize && !small) return base;
  return { kind: 'read', base };
}

function withContent(base: FileEntry, data: Buffer, policy: ReadPolicy, st: Stats): FileEntry {
  // Content equal to the desired bytes has the desired hash: the steady state hashes nothing,
  // and decodes nothing (the text is only for the line diff of a drift report).
  const same = policy.desired !== undefined && data.equals(policy.desired.bytes);
  const small = data.length < DETAIL_LIMIT && policy.desiredSize < DETAIL_LIMIT;
  const text = !same && small && !data.includes(0) ? data.toString('utf8') : undefined;
  const hash = same ? policy.desired!.sha256 : sha256(data);
  // No memo for a file that changed size between the lstat and the read, nor for one that changed
  // too recently to be trusted: it would only be replaced (and written to the state) at the next read.
  const memo = data.length === st.size && settledBy(st, policy.now) ? fileMemo(st, hash, policy.now) : undefined;
  return { ...base, size: data.length, sha256: hash, text, memo };
}

const MISSING: ActualEntry = { kind: 'missing' };

/** What is at the node's path, read through `confiner` (`Confiner.reading`), without following a final symlink. */
export async function inspectNode(confiner: Confiner, at: NodePath, policy?: ReadPolicy): Promise<ActualEntry> {
  const io = confiner.reading(at);
  return io === undefined ? MISSING : inspect(at.real, policy, io);
}

/** `inspectNode` with synchronous calls (see `inspectSync`). */
export function inspectNodeSync(confiner: Confiner, at: NodePath, policy?: ReadPolicy): ActualEntry | undefined {
  const io = confiner.reading(at);
  return io === undefined ? MISSING : inspectSync(at.real, policy, io);
}

/** Reads what is at `real` (through `io`, `Confiner.reading`'s path to it) without following a final symlink. */
export async function inspect(real: string, policy?: ReadPolicy, io = real): Promise<ActualEntry> {
  let st;
  try {
    st = await lstat(io);
  } catch (err) {
    if (isMissing(err)) return MISSING;
    throw fsFault(err, 'lstat', real);
  }
  const c = classify(st, policy);
  if (c.kind === 'link') {
    const target = await readlink(io).catch((err: unknown) => {
      throw fsFault(err, 'readlink', real);
    });
    return { kind: 'symlink', target, uid: c.uid, gid: c.gid };
  }
  if (c.kind !== 'read') return c;
  let data;
  try {
    // Not through a symlink swapped in since the lstat (ELOOP).
    data = await readFile(io, { flag: constants.O_RDONLY | constants.O_NOFOLLOW });
  } catch (err) {
    if (isMissing(err)) return MISSING;
    throw errnoOf(err) === 'ELOOP' ? becameLink(real, err) : fsFault(err, 'read', real);
  }
  return withContent(c.base, data, policy!, st);
}

/**
 * `inspect` with synchronous calls, for batches of small files: an lstat and
 * a read of a few KiB cost microseconds, far less than a promise and a
 * thread-pool round trip each. Returns `undefined` when a file larger than
 * `SYNC_READ_LIMIT` must be read: use `inspect` for that one.
 */
export function inspectSync(real: string, policy?: ReadPolicy, io = real): ActualEntry | undefined {
  let st;
  try {
    st = lstatSync(io, { throwIfNoEntry: false });
  } catch (err) {
    throw fsFault(err, 'lstat', real);
  }
  if (st === undefined) return MISSING;
  const c = classify(st, policy);
  if (c.kind === 'link') return { kind: 'symlink', target: readLink(io, real), uid: c.uid, gid: c.gid };
  if (c.kind !== 'read') return c;
  if (c.base.size > SYNC_READ_LIMIT) return undefined;
  let data;
  try {
    data = readSmallFileSync(io, c.base.size);
  } catch (err) {
    if (isMissing(err)) return MISSING;
    throw errnoOf(err) === 'ELOOP' ? becameLink(real, err) : fsFault(err, 'read', real);
  }
  return withContent(c.base, data, policy!, st);
}

/**
 * The content of a file `lstat` just found regular and `size` bytes long:
 * open without following a symlink (one swapped in since is refused, ELOOP,
 * not read through), one read of size + 1 bytes, close — no fstat, no
 * growing buffer. A file that grew since is read to its end.
 */
export function readSmallFileSync(real: string, size: number): Buffer {
  const fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(size + 1);
    // From the fd's offset, which the read moves on: the rest is then read from where this read stopped.
    const n = readSync(fd, buf, 0, size + 1, null);
    if (n <= size) return buf.subarray(0, n);
    return Buffer.concat([buf, readFileSync(fd)]);
  } finally {
    closeSync(fd);
  }
}

/**
 * Random per process (drawn on first use, not when the module loads: the CLI's start-up snapshot
 * would give every process the same), then a counter: unique names without a call into the random
 * source per file.
 */
let tempPrefix: string | undefined;
let tempCounter = 0;

/** Linux's limit on the bytes of one path component (NAME_MAX). */
const NAME_MAX = 255;

/** This process's start time (`ProcessStat.start`), read on first use (see `tempPrefix`); undefined where there is no /proc. */
const ownStart = once((): string | undefined => processStat(process.pid)?.start);

/**
 * A temp name beside `real`: `.NAME.ds-PID-START-UNIQUE.tmp` (`-START` left
 * out where it cannot be read; versions before it wrote none). With its
 * start time, a writer is told apart from a later process given its pid
 * (`staleTempName`). The name is cut (whole characters) so that the
 * temp name stays within NAME_MAX bytes: a node's own name may be up to
 * 255 bytes, and its temp file must not be refused (ENAMETOOLONG) where
 * the file itself is allowed.
 */
function tempName(real: string): string {
  const start = ownStart();
  const writer = start === undefined ? `${process.pid}` : `${process.pid}-${start}`;
  const suffix = `.ds-${writer}-${(tempPrefix ??= randomBytes(4).toString('hex'))}${(tempCounter++).toString(36)}.tmp`;
  let name = basename(real);
  const room = NAME_MAX - 1 - Buffer.byteLength(suffix);
  if (Buffer.byteLength(name) > room) {
    const chars = Array.from(name);
    while (Buffer.byteLength(chars.join('')) > room) chars.pop();
    name = chars.join('');
  }
  return join(dirname(real), `.${name}${suffix}`);
}

/** A `tempName`, with its writer's pid and, where written, its start time. */
const TEMP_NAME = /^\..*\.ds-(\d+)(?:-(\d+))?-[0-9a-f]{8}[0-9a-z]+\.tmp$/s;

/**
 * Whether `name` is a `tempName` whose writer is gone: not running, or its pid given to another process
 * since, this one included (a container's pid 1, restarted): its start time differs. A name without a
 * start time (an older version's) goes by its pid alone, but for this process's pid where this process
 * writes its start time in every name: then an earlier process wrote it.
 */
function staleTempName(name: string): boolean {
  const m = TEMP_NAME.exec(name);
  const pid = Number(m?.[1] ?? Number.NaN);
  if (!Number.isSafeInteger(pid)) return false;
  const start = m?.[2];
  if (start === undefined && pid === process.pid) return ownStart() !== undefined;
  return !runsAsStarted(pid, start);
}

/**
 * Removes the temp files a writer that is gone (killed mid-write: `kill -9`,
 * a crash, the power) left in `dir`: hidden debris a directory delete then
 * found in its way for good. Only regular files and links named as
 * `tempName` names them, of a writer gone (`staleTempName`).
 * Best effort: resolves with how many it removed, never rejects.
 */
export async function removeStaleTemps(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!staleTempName(name)) continue;
    const path = join(dir, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined || !(st.isFile() || st.isSymbolicLink())) continue;
    try {
      await unlink(path);
      removed++;
    } catch {
      // Gone meanwhile, or not ours to remove: left as it is.
    }
  }
  return removed;
}

/**
 * What directory `real` (listed at `listing`: `Confiner.directory`) holds that its delete would refuse to
 * delete: its names but `leaving` (real paths deleted before it) and the temp files of writers gone, which
 * the delete removes (`removeDirectory`). None where it cannot be listed: the delete tells why.
 */
export async function heldEntries(real: string, listing: string, leaving: ReadonlySet<string>): Promise<string[]> {
  try {
    return (await readdir(listing)).filter((name) => !leaving.has(join(real, name)) && !staleTempName(name));
  } catch {
    return [];
  }
}

/** The sweep of stale temp files of each directory this process writes into (`sweepStaleTemps`): once each. */
const sweeps = new Map<string, { done: boolean; readonly finished: Promise<void> }>();

/**
 * Sweeps `dir` of the temp files a writer killed mid-write left there (`removeStaleTemps`), once a
 * process: a restart after a crash writes again what the crash left unwritten, in the same
 * directories. Started as soon as a batch stages a file there (`stageFile`), so that reading a
 * large directory (10,000 names: ~5 ms in the thread pool) overlaps the staging rather than
 * holding the batch up before its directory fsync (`syncDirectory`, which waits for it). A sweep
 * that fails leaves what it could not remove; it never fails a write.
 */
export function sweepStaleTemps(dir: string): Promise<void> {
  let sweep = sweeps.get(dir);
  if (sweep === undefined) {
    const done = (): void => {
      entry.done = true;
    };
    const entry = { done: false, finished: removeStaleTemps(dir).then(done, done) };
    sweeps.set(dir, (sweep = entry));
  }
  return sweep.finished;
}

/**
 * fsync of a directory (its entries) or of a file written and closed earlier. Never waits to open: a
 * FIFO put in a directory's place would hold a thread of the pool, and the batch, for ever.
 */
async function fsyncPath(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** `mkdir -p` of `real`'s directory (default mode for the directories it creates), through `confiner` (`Confiner.makeDirectories`). */
export async function ensureParent(confiner: Confiner, real: string, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw aborted('mkdir');
  try {
    confiner.makeDirectories(dirname(real));
  } catch (err) {
    throw fsFault(err, 'mkdir', dirname(real));
  }
}

/** A mode, and an owner or group to set (undefined: left as it is). */
export interface Attributes {
  readonly mode: number;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
}

export interface FileWrite extends Attributes {
  readonly content: string;
  /**
   * The owner and group of the file this write replaces, given to the new
   * one before `uid`/`gid` (which win): what the node does not manage stays
   * as it was, as with a write in place. Best effort, as Ansible's copy: a
   * chown the daemon may not make (EPERM) leaves the daemon's.
   */
  readonly keep?: { readonly uid: number; readonly gid: number } | undefined;
  /**
   * What was found at the path when the write was decided: nothing, or this very file (inode, size,
   * ctime). Checked again just before the rename: a hand edit made meanwhile is not written over
   * unseen; the write is given up (`changed-meanwhile`) and the next observation reports it.
   */
  readonly found?: Found | undefined;
}

/** What a write expects at its path (`FileWrite.found`). */
export type Found = { readonly missing: true } | { readonly ino: number; readonly size: number; readonly ctimeMs: number };

/** Throws if the path no longer holds what a write was decided on (`FileWrite.found`). */
function stillAsFound(p: IoPath, found: Found | undefined): void {
  if (found === undefined) return;
  const st = lstatSync(p.io, { throwIfNoEntry: false });
  const same = 'missing' in found ? st === undefined : st !== undefined && st.ino === found.ino && st.size === found.size && st.ctimeMs === found.ctimeMs;
  if (same) return;
  throw new FaultError(
    fault('transient', `${p.real} changed while its correction was being written; not written over, it is observed again`, {
      code: 'changed-meanwhile',
      hint: 'something else writes this file too; the next pass reports what it holds now',
    }),
  );
}

/** What takes a chown and a chmod: an open file (`onFd`), or a path (`onPath`). */
interface AttributeTarget {
  chown(uid: number, gid: number): void;
  chmod(mode: number): void;
}

/**
 * Owner first (when one is given), then mode, always: a chown clears setuid
 * and setgid (even root's), and the chmod after it puts them back. The chmod
 * is also explicit for a new file, whose open mode the umask filtered.
 */
function applyAttributes(target: AttributeTarget, attrs: Attributes): void {
  if (attrs.uid !== undefined || attrs.gid !== undefined) target.chown(attrs.uid ?? -1, attrs.gid ?? -1);
  target.chmod(attrs.mode);
}

/** The replaced file's (or link's) owner and group on the new one, where the daemon may set them. */
function keepOwner(chownTo: (uid: number, gid: number) => void, keep: { readonly uid: number; readonly gid: number }): void {
  try {
    chownTo(keep.uid, keep.gid);
  } catch (err) {
    if (errnoOf(err) !== 'EPERM') throw err;
  }
}

/**
 * Atomic write: temp file in the same directory, fsync, rename over, fsync
 * the directory. No temp file survives. The temp file is written with
 * synchronous calls (`writeTemp`); the waits for the disk (the fsyncs) and
 * the rename go through the thread pool. The directory fsync is shared by
 * the writes into that directory that finish together (`syncDirectory`).
 */
export async function writeFileAtomic(p: IoPath, file: FileWrite, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw aborted('write');
  const tmp = writeTemp(p, file);
  try {
    await fsyncPath(tmp);
  } catch (err) {
    removeQuietly(tmp);
    throw fsFault(err, 'fsync', p.real);
  }
  await renameIntoPlace(tmp, p, signal, 'write', file.found);
}

/**
 * Renames a finished temp file (or link) over `real`, unless the signal
 * aborted meanwhile, and makes the rename durable (the directory fsync is
 * shared, `syncDirectory`). The temp file never survives a failure.
 */
async function renameIntoPlace(tmp: string, p: IoPath, signal: AbortSignal, action: 'write' | 'symlink', found?: Found): Promise<void> {
  try {
    if (signal.aborted) throw aborted(action);
    stillAsFound(p, found);
    await rename(tmp, p.io);
  } catch (err) {
    removeQuietly(tmp);
    throw fsFault(err, action, p.real);
  }
  try {
    await syncDirectory(dirname(p.real));
  } catch (err) {
    throw fsFault(err, 'fsync', dirname(p.real));
  }
}

/**
 * A temp file beside `real` with the content, mode and owner, closed but not
 * flushed; removed again if anything fails. Synchronous: a file's content is
 * a goal's string (bounded by the goal file's size), and open, write, fchmod
 * and close of it take microseconds where the same four calls through the
 * thread pool cost ~35 µs more each file on this 2-core machine (a converge of
 * 10,000 files: 1.17 s against 0.81 s, bench/README.md). Callers that write
 * many files pace them (`Pacer`), so that the event loop still turns every
 * few milliseconds.
 */
function writeTemp(p: IoPath, file: FileWrite): string {
  const tmp = tempName(p.io);
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeFileSync(fd, file.content);
      const target = onFd(fd);
      if (file.keep !== undefined) keepOwner(target.chown, file.keep);
      // After the write, which clears setuid and setgid too.
      applyAttributes(target, file);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    removeQuietly(tmp);
    throw fsFault(err, 'write', p.real);
  }
  return tmp;
}

/** A file's new content in a temp file beside it: written and closed, not yet flushed nor renamed over the path. */
export interface StagedWrite extends IoPath {
  readonly tmp: string;
  readonly found?: Found | undefined;
}

/**
 * First half of a batched atomic write: the temp file with its content,
 * mode and owner, closed without an fsync (`flushStaged` makes a whole
 * batch durable at once, `renameStaged` puts it in place).
 */
export function stageFile(p: IoPath, file: FileWrite, signal: AbortSignal): StagedWrite {
  if (signal.aborted) throw aborted('write');
  void sweepStaleTemps(dirname(p.real));
  return { ...p, tmp: writeTemp(p, file), found: file.found };
}

/** Below this many staged files, one fsync each costs less than a filesystem-wide flush. */
const SYNCFS_MIN_FILES = 16;

/**
 * Makes the staged temp files durable. A large batch costs one `syncfs(2)`
 * per filesystem it touches (through coreutils' `sync -f`: Node has no
 * binding for it), which writes the whole batch back in one go where an
 * fsync per file would wait for a journal commit each (10,000 files: about
 * 0.15 s against 3–7 s here). A small batch, or a system without `sync -f`,
 * gets an fsync per file, and one on a filesystem in memory none
 * (`MEMORY_FILESYSTEMS`). Resolves with the error of each file that could
 * not be flushed (none when all are on disk).
 */
export async function flushStaged(staged: readonly StagedWrite[], signal: AbortSignal): Promise<ReadonlyMap<StagedWrite, FaultError>> {
  const failures = new Map<StagedWrite, FaultError>();
  if (staged.length === 0) return failures;
  if (signal.aborted) {
    for (const s of staged) failures.set(s, aborted('fsync'));
    return failures;
  }
  const seen = new Map<string, boolean>();
  const onDisk = staged.filter((s) => !inMemory(dirname(s.real), seen));
  if (onDisk.length >= SYNCFS_MIN_FILES && (await syncFilesystems(onDisk))) return failures;
  await forEachLimit(onDisk, FSYNC_PARALLELISM, async (s) => {
    try {
      await fsyncPath(s.tmp);
    } catch (err) {
      failures.set(s, fsFault(err, 'fsync', s.real));
    }
  });
  return failures;
}

const FSYNC_PARALLELISM = 16;

/**
 * statfs(2) types of the filesystems that live in memory (tmpfs, ramfs): what is written there is
 * as durable as it will ever be once written, and a flush writes nothing back. A batch there is not
 * flushed at all (10,000 files on tmpfs: the `sync -f` a batch would start, a fork of the whole
 * process, was ~10 ms of a repair; bench/README.md). Anything else, an overlay on top of tmpfs
 * included, is flushed.
 */
const MEMORY_FILESYSTEMS: ReadonlySet<number> = new Set([0x01021994, 0x858458f6]);

/**
 * Whether `dir` is on a filesystem in memory, asked once per directory of a batch (`seen`, the batch's:
 * a directory may be mounted over between two batches).
 */
function inMemory(dir: string, seen: Map<string, boolean>): boolean {
  let known = seen.get(dir);
  if (known === undefined) {
    try {
      known = MEMORY_FILESYSTEMS.has(statfsSync(dir).type);
    } catch {
      known = false;
    }
    seen.set(dir, known);
  }
  return known;
}

/** `syncfs` on every filesystem holding a staged file; false when `sync -f` is not there or fails (the caller falls back to fsync). */
async function syncFilesystems(staged: readonly StagedWrite[]): Promise<boolean> {
  const byDevice = new Map<number, string>();
  for (const dir of new Set(staged.map((s) => dirname(s.real)))) {
    const st = lstatSync(dir, { throwIfNoEntry: false });
    if (st !== undefined && !byDevice.has(st.dev)) byDevice.set(st.dev, dir);
  }
  return new Promise((resolve) => {
    execFile('sync', ['-f', '--', ...byDevice.values()], { timeout: 600_000 }, (err) => resolve(err === null));
  });
}

/** Second half: the flushed temp file renamed over the path (`syncDirectory` then makes the renames durable). Synchronous, as `writeTemp`. */
export function renameStaged(s: StagedWrite): void {
  stillAsFound(s, s.found);
  try {
    renameSync(s.tmp, s.io);
  } catch (err) {
    throw fsFault(err, 'write', s.real);
  }
}

/** Removes a staged temp file that will not be committed. */
export function discardStaged(s: StagedWrite): void {
  removeQuietly(s.tmp);
}

/** Per directory: the fsync running now and the one that will run after it. */
const directorySyncs = new Map<string, { running: Promise<void> | undefined; next: Promise<void> | undefined }>();

/**
 * Group commit for directory fsyncs: a caller needs an fsync that starts
 * after its rename. With none running, one starts; with one running, the
 * caller joins the single fsync queued behind it, which covers every rename
 * made meanwhile. A thousand renames into one directory cost a handful of
 * fsyncs, not a thousand, and every caller still returns only once its
 * rename is on disk.
 */
export function syncDirectory(dir: string): Promise<void> {
  if (sweeps.get(dir)?.done !== true) return sweepStaleTemps(dir).then(() => syncDirectory(dir));
  let s = directorySyncs.get(dir);
  if (s === undefined) directorySyncs.set(dir, (s = { running: undefined, next: undefined }));
  const state = s;
  const start = (): Promise<void> => {
    const p = fsyncPath(dir).finally(() => {
      if (state.running === p) state.running = undefined;
      if (state.running === undefined && state.next === undefined) directorySyncs.delete(dir);
    });
    state.running = p;
    return p;
  };
  if (state.running === undefined) return start();
  state.next ??= state.running
    .catch(() => undefined)
    .then(() => {
      state.next = undefined;
      directorySyncs.set(dir, state);
      return start();
    });
  return state.next;
}

/**
 * Sets the owner or group of an existing path when `attrs` names one, then
 * its mode (`applyAttributes`: the order keeps setuid and setgid). Each step
 * checks the signal first; a failure is classified as that step's.
 * Synchronous, as `writeTemp`: a chown or a chmod is one metadata call.
 */
export function setAttributes(p: IoPath, attrs: Attributes, signal: AbortSignal, kind: 'file' | 'directory'): void {
  if (!p.pinned) {
    applyAttributes(onPath(p.real, signal), attrs);
    return;
  }
  // The entry's own O_PATH fd, opened without following a symlink: a chmod or chown through it changes
  // what was opened, never what a symlink put there since the check points to.
  let fd: number;
  try {
    fd = openSync(p.io, O_PATH | fsConstants.O_NOFOLLOW);
  } catch (err) {
    throw fsFault(err, 'open', p.real);
  }
  try {
    const st = fstatSync(fd);
    if (kind === 'file' ? !st.isFile() : !st.isDirectory()) throw wrongKind(p.real, st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'directory' : 'special file', kind);
    applyAttributes(onPath(fdPath(fd), signal, p.real), attrs);
  } finally {
    closeSync(fd);
  }
}

/** An open file's chown and chmod; their errors are the caller's to classify. */
function onFd(fd: number): AttributeTarget {
  return { chown: (uid, gid) => fchownSync(fd, uid, gid), chmod: (mode) => fchmodSync(fd, mode) };
}

/** Chown and chmod by a path (`shown` in messages). */
function onPath(path: string, signal: AbortSignal, shown = path): AttributeTarget {
  return {
    chown: (uid, gid) => {
      if (signal.aborted) throw aborted('chown');
      try {
        chownSync(path, uid, gid);
      } catch (err) {
        throw fsFault(err, 'chown', shown);
      }
    },
    chmod: (mode) => {
      if (signal.aborted) throw aborted('chmod');
      try {
        chmodSync(path, mode);
      } catch (err) {
        throw fsFault(err, 'chmod', shown);
      }
    },
  };
}

/**
 * `mkdir -p` with `mode` on the last directory only (set explicitly: mkdir's mode is filtered by the
 * umask), as `mkdir -p -m` does: the parents it creates, which no node manages, get the default mode,
 * not a node's `1777` or `0700` (which could lock others out of the tree). A directory already there
 * is kept; anything else there (a file, a symlink) is refused, never followed.
 */
export async function makeDirectory(confiner: Confiner, at: NodePath, mode: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw aborted('mkdir');
  let p: IoPath;
  try {
    confiner.makeDirectories(at.dir);
    p = confiner.io(at);
    await mkdir(p.io, { mode }).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST' || !(await lstat(p.io)).isDirectory()) throw err;
    });
  } catch (err) {
    throw fsFault(err, 'mkdir', at.real);
  }
  setAttributes(p, { mode }, signal, 'directory');
}

/**
 * Creates or replaces a symlink atomically: a temp link renamed over the path. A replaced link's owner
 * and group (`keep`) are given to the new one where the daemon may (as a file's are, `FileWrite.keep`):
 * a link's owner is what the kernel checks in a sticky directory (`fs.protected_symlinks`), so a link
 * that was the application user's must not become root's because its target changed.
 */
export async function writeSymlinkAtomic(p: IoPath, target: string, signal: AbortSignal, keep?: { readonly uid: number; readonly gid: number }): Promise<void> {
  if (signal.aborted) throw aborted('symlink');
  const tmp = tempName(p.io);
  try {
    await symlink(target, tmp);
    if (keep !== undefined) keepOwner((uid, gid) => lchownSync(tmp, uid, gid), keep);
  } catch (err) {
    removeQuietly(tmp);
    throw fsFault(err, 'symlink', p.real);
  }
  await renameIntoPlace(tmp, p, signal, 'symlink');
}

/** Unlinks a file or a symlink; absent is success. */
export async function removeEntry(p: IoPath, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw aborted('unlink');
  try {
    await unlink(p.io);
  } catch (err) {
    if (!isMissing(err)) throw fsFault(err, 'unlink', p.real);
  }
}

/**
 * Removes an empty directory; absent is success; a non-empty one is a permanent fault. `listing`: the
 * directory itself, to sweep of stale temp files (`Confiner.directory`).
 */
export async function removeDirectory(p: IoPath, listing: () => string, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw aborted('rmdir');
  const real = p.real;
  try {
    await rmdir(p.io);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      // What a writer killed mid-write left is no content of the directory's: removed, and rmdir again.
      if ((await removeStaleTemps(listing())) > 0) return removeDirectory(p, listing, signal);
      throw directoryNotEmpty(real, undefined, err);
    }
    throw fsFault(err, 'rmdir', real);
  }
}

/** Where the account tables are read from. */
export interface AccountFilePaths {
  readonly passwd: string;
  readonly group: string;
}

export const SYSTEM_ACCOUNT_FILES: AccountFilePaths = { passwd: '/etc/passwd', group: '/etc/group' };

export type Accounts = { readonly users: AccountTable; readonly groups: AccountTable };

/**
 * The account tables, read again whenever either file changed (another inode, size, mtime or ctime):
 * a user or group made while the daemon runs (as a fault's hint asks) is known at the next pass, and one
 * made again with another id is chowned to the new id. Two stats a call, not two reads.
 */
export class AccountFiles {
  private readonly paths: AccountFilePaths;
  private loaded: { readonly stamp: string; readonly accounts: Promise<Accounts> } | undefined;

  constructor(paths: AccountFilePaths = SYSTEM_ACCOUNT_FILES) {
    this.paths = paths;
  }

  async current(): Promise<Accounts> {
    // Taken before the read: a change made during it gives another stamp at the next call, read again then.
    const stamp = (await Promise.all([fileStamp(this.paths.passwd), fileStamp(this.paths.group)])).join(' ');
    if (this.loaded?.stamp !== stamp) this.loaded = { stamp, accounts: readAccounts(this.paths) };
    return this.loaded.accounts;
  }
}

/** What changes whenever a file is replaced or written; `missing` when there is none. */
async function fileStamp(path: string): Promise<string> {
  try {
    const st = await stat(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return 'missing';
  }
}

/** The account files, parsed. Missing files give empty tables (numeric ids still work). */
async function readAccounts(paths: AccountFilePaths): Promise<Accounts> {
  const load = async (file: string): Promise<AccountTable> => {
    try {
      return parseAccounts(await readFile(file, 'utf8'));
    } catch {
      return parseAccounts('');
    }
  };
  const [users, groups] = await Promise.all([load(paths.passwd), load(paths.group)]);
  return { users, groups };
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The directory a path leads to (through symlinks, as a watch follows them): a directory made again there is another. */
export interface DirectoryIdentity {
  readonly dev: number;
  readonly ino: number;
}

/**
 * One directory watch (not recursive), and the directory it watches, taken just before the watch is
 * added: the watch may only reach one made there later, never an older one. Throws synchronously
 * (ENOENT …) when the directory cannot be watched.
 */
export function watchDirectory(
  dir: string,
  onEvent: (event: 'rename' | 'change', filename: string | null) => void,
  onError: (err: unknown) => void,
): { close(): void; readonly at: DirectoryIdentity } {
  const st = statSync(dir);
  const watcher: FSWatcher = watch(dir, { persistent: true, encoding: 'utf8' }, (event, filename) => onEvent(event, filename));
  watcher.on('error', onError);
  return { close: () => watcher.close(), at: { dev: st.dev, ino: st.ino } };
}

/** The directory `dir` leads to now, as `watchDirectory` takes it; undefined when nothing is there. */
export async function directoryIdentity(dir: string): Promise<DirectoryIdentity | undefined> {
  try {
    const st = await stat(dir);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}
