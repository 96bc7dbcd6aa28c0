import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { walkGoalTree } from '../runtime/index.ts';
import type { GoalTree } from '../runtime/index.ts';
import { gitIndexLock } from './git.ts';

/** A running goal watch (`watchGoalTree`). */
export interface GoalWatch {
  /**
   * Resolves once the directories of the tree (or the goal directory alone, when it cannot be walked)
   * are watched, or found unwatchable and given to `onError`: an edit made after it is seen at once,
   * one made before it may wait for the poll.
   */
  readonly ready: Promise<void>;
  /** Marks `fingerprint` (taken before the goals were read, as at start or on SIGHUP) as the loaded one. */
  accept(fingerprint: string | undefined): void;
  /** The goals last loaded changed while they were read, and were not used: `onChange` again once the tree is quiet. */
  readAgain(): void;
  close(): void;
}

export interface GoalWatchOptions {
  readonly pollMs: number;
  readonly debounceMs: number;
  /** How long git may hold its index lock before `onWait` is told it still does (default 30 s); again every ten times that. */
  readonly lockWarnMs?: number;
  /** Called (debounced) when the tree's fingerprint differs from the accepted one. */
  readonly onChange: () => void;
  /** Told why a change found is not handed to `onChange` yet (`GoalWait`). */
  readonly onWait?: (wait: GoalWait) => void;
  readonly onError: (err: unknown) => void;
}

/**
 * Why a change found waits: `quiet`, the poll found it and the tree must stay unchanged for the debounce
 * first (as after a watched event); `git`, git holds `lock` (its index lock) while it writes the work tree,
 * told when first found (`heldMs` 0) and again while it stays (`lockWarnMs`).
 */
export type GoalWait = { readonly reason: 'quiet' } | { readonly reason: 'git'; readonly lock: string; readonly heldMs: number };

/** How often a held index lock is looked at again: a stat, only while a change waits for it. */
const LOCK_POLL_MS = 100;

/** An accepted fingerprint that no tree has: the next check hands the tree over, changed or not. */
const STALE = Symbol('stale');

/** What identifies the goal tree's content without reading it: undefined when the directory cannot be read. */
export async function goalTreeFingerprint(dir: string): Promise<string | undefined> {
  const tree = await walkGoalTree(dir).catch(() => undefined);
  return tree === undefined ? undefined : fingerprintOf(tree);
}

/**
 * The directory a path names now (symlinks followed): device, inode and birth time, since a directory
 * removed and made again often gets the same inode number. Undefined when it is gone.
 */
async function directoryIdentity(d: string): Promise<string | undefined> {
  const s = await stat(d, { bigint: true }).catch(() => undefined);
  return s === undefined ? undefined : `${s.dev} ${s.ino} ${s.birthtimeNs}`;
}

/** Every directory (and each that cannot be read, which refuses the revision), and every goal file's path, inode, size and times. */
async function fingerprintOf(tree: GoalTree): Promise<string> {
  const parts = [...tree.directories.map((d) => `d ${d}`), ...tree.unreadable.map((u) => `u ${u.path}`)];
  for (const p of tree.files) {
    const s = await stat(p, { bigint: true }).catch(() => undefined);
    parts.push(s === undefined ? `f ${p} gone` : `f ${p} ${s.ino} ${s.size} ${s.mtimeNs} ${s.ctimeNs}`);
  }
  return parts.join('\n');
}

/**
 * Notices changes to a goal directory tree, for the daemon.
 *
 * One non-recursive watch per directory, not Node's `recursive` watch: on
 * Linux that one follows each file's inode, so a file replaced by a rename —
 * what `git checkout`, `sed -i` and most editors do — is never seen again.
 * A directory watch reports the new name, and the set of watched
 * directories is re-listed after every event. Events can still be missed
 * (the directory itself replaced, an inotify queue overflow), so a poll of
 * the tree's fingerprint every `pollMs` is the safety net.
 *
 * `onChange` runs only when the fingerprint — every goal file's path, inode,
 * size and times, and every directory — differs from the last one seen (or
 * given to `accept`); events on other files (an editor's swap file) cost a
 * stat walk, never a reload. Each check walks the tree once, for both the
 * watches and the fingerprint.
 *
 * A change is handed over only once the tree has been quiet for `debounceMs`
 * (no event meanwhile; one the poll found must be found again, unchanged,
 * that long after), and never while git holds the repository's `index.lock`:
 * a checkout writes the files one by one, for as long as its smudge filters
 * (git-lfs, git-crypt) or the disk take, and goals read half-way may lack a
 * node that is only moving to another file, which a `prune: true` reload
 * would delete. The change waits for the lock to go, then for the quiet period
 * again. A lock that stays (a git that crashed leaves it) is told to `onWait`
 * after `lockWarnMs`, and again every ten times that; the change keeps waiting
 * for it, as the goals loaded keep running.
 */
export function watchGoalTree(dir: string, options: GoalWatchOptions): GoalWatch {
  /** By path: the watch, and the directory it is on (`directoryIdentity`). */
  const watchers = new Map<string, { readonly watcher: FSWatcher; readonly identity: string }>();
  let accepted: string | undefined | typeof STALE;
  let closed = false;
  /** The quiet period's timer, or the held index lock's: a check is to come. */
  let timer: NodeJS.Timeout | undefined;
  let checking: Promise<void> = Promise.resolve();
  /** A change the poll found, which the check after the quiet period must find unchanged; STALE when none. */
  let polled: string | undefined | typeof STALE = STALE;
  /** Since when the change waits for git's index lock (undefined: it does not), and when it is told next. */
  let lockSince: number | undefined;
  let lockTell = 0;
  const lockWarnMs = options.lockWarnMs ?? 30_000;

  /**
   * Watches exactly `directories`: the tree's, or only `dir` itself when it cannot be walked. A watch
   * follows the directory it was opened on, not its path: one whose path now names another directory
   * (a symlink flipped to a new release, a directory removed and made again) is opened again, else
   * every later edit there would wait for the poll.
   */
  const syncWatches = async (directories: readonly string[]): Promise<void> => {
    const wanted = new Map<string, string | undefined>();
    for (const d of directories) wanted.set(d, await directoryIdentity(d));
    for (const [d, w] of watchers) {
      if (wanted.has(d) && wanted.get(d) === w.identity) continue;
      w.watcher.close();
      watchers.delete(d);
    }
    for (const [d, identity] of wanted) {
      if (watchers.has(d) || closed || identity === undefined) continue;
      try {
        const w = watch(d, { persistent: false }, () => schedule());
        // A directory removed under its watch: forget it; the next check re-lists.
        w.on('error', () => {
          w.close();
          if (watchers.get(d)?.watcher === w) watchers.delete(d);
        });
        watchers.set(d, { watcher: w, identity });
      } catch (err) {
        // Gone between the listing and the watch, or out of inotify watches: the poll still sees changes.
        if ((err as { code?: string }).code !== 'ENOENT') options.onError(err);
      }
    }
  };

  /** `byPoll`: a poll's check, which has timed no quiet period; else the check after one. */
  const check = (byPoll: boolean): Promise<void> =>
    (checking = checking.then(async () => {
      if (closed) return;
      const tree = await walkGoalTree(dir).catch(() => undefined);
      await syncWatches(tree?.directories ?? [dir]);
      const now = tree === undefined ? undefined : await fingerprintOf(tree);
      if (closed) return;
      if (now === accepted) {
        polled = STALE;
        lockSince = undefined;
        return;
      }
      // A check is to come (after a quiet period an event began, or once the lock goes), and looks again.
      if (timer !== undefined) return;
      if (byPoll) {
        polled = now;
        options.onWait?.({ reason: 'quiet' });
        schedule();
        return;
      }
      if (polled !== STALE && polled !== now) {
        // Still changing since the poll found it: quiet again.
        polled = now;
        schedule();
        return;
      }
      const lock = await gitIndexLock(dir);
      if (closed || timer !== undefined) return;
      if (lock !== undefined) {
        if (lockSince === undefined) {
          lockSince = Date.now();
          lockTell = lockWarnMs;
          options.onWait?.({ reason: 'git', lock, heldMs: 0 });
        }
        timer = setTimeout(() => void waitForLock(), LOCK_POLL_MS);
        return;
      }
      polled = STALE;
      lockSince = undefined;
      // Handed over now: a change made while the goals are being read gives another fingerprint.
      accepted = now;
      options.onChange();
    }));

  /** Looks whether git still holds its index lock: once it is gone, the quiet period again, then a check. */
  const waitForLock = async (): Promise<void> => {
    timer = undefined;
    const lock = await gitIndexLock(dir);
    // Closed, or an event has started a quiet period meanwhile (which looks at the lock again).
    if (closed || timer !== undefined || lockSince === undefined) return;
    if (lock === undefined) {
      lockSince = undefined;
      schedule();
      return;
    }
    const heldMs = Date.now() - lockSince;
    if (heldMs >= lockTell) {
      lockTell = heldMs + 10 * lockWarnMs;
      options.onWait?.({ reason: 'git', lock, heldMs });
    }
    timer = setTimeout(() => void waitForLock(), LOCK_POLL_MS);
  };

  function schedule(): void {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void check(false);
    }, options.debounceMs);
  }

  checking = walkGoalTree(dir).then(
    (tree) => syncWatches(tree.directories),
    () => syncWatches([dir]),
  );
  const ready = checking;
  const poll = setInterval(() => void check(true), options.pollMs);
  poll.unref();

  return {
    ready,
    accept(fingerprint) {
      accepted = fingerprint;
    },
    readAgain() {
      accepted = STALE;
      schedule();
    },
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      for (const w of watchers.values()) w.watcher.close();
      watchers.clear();
    },
  };
}
