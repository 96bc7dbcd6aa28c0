import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { walkGoalTree } from '../runtime/index.ts';
import type { GoalTree } from '../runtime/index.ts';

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
  close(): void;
}

export interface GoalWatchOptions {
  readonly pollMs: number;
  readonly debounceMs: number;
  /** Called (debounced) when the tree's fingerprint differs from the accepted one. */
  readonly onChange: () => void;
  readonly onError: (err: unknown) => void;
}

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
 */
export function watchGoalTree(dir: string, options: GoalWatchOptions): GoalWatch {
  /** By path: the watch, and the directory it is on (`directoryIdentity`). */
  const watchers = new Map<string, { readonly watcher: FSWatcher; readonly identity: string }>();
  let accepted: string | undefined;
  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  let checking: Promise<void> = Promise.resolve();

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

  const check = (): Promise<void> =>
    (checking = checking.then(async () => {
      if (closed) return;
      const tree = await walkGoalTree(dir).catch(() => undefined);
      await syncWatches(tree?.directories ?? [dir]);
      const now = tree === undefined ? undefined : await fingerprintOf(tree);
      if (closed || now === accepted) return;
      // Handed over now: a change made while the goals are being read gives another fingerprint.
      accepted = now;
      options.onChange();
    }));

  function schedule(): void {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void check(), options.debounceMs);
  }

  checking = walkGoalTree(dir).then(
    (tree) => syncWatches(tree.directories),
    () => syncWatches([dir]),
  );
  const ready = checking;
  const poll = setInterval(() => void check(), options.pollMs);
  poll.unref();

  return {
    ready,
    accept(fingerprint) {
      accepted = fingerprint;
    },
    close() {
      closed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      for (const w of watchers.values()) w.watcher.close();
      watchers.clear();
    },
  };
}
