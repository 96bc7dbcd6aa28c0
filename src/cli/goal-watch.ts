import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

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
 * stat walk, never a reload.
 */
export interface GoalWatch {
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
  const parts: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) {
        parts.push(`d ${p}`);
        await walk(p);
      } else if (e.isFile() && /\.ya?ml$/i.test(e.name)) {
        const s = await stat(p, { bigint: true }).catch(() => undefined);
        parts.push(s === undefined ? `f ${p} gone` : `f ${p} ${s.ino} ${s.size} ${s.mtimeNs} ${s.ctimeNs}`);
      }
    }
  };
  try {
    await walk(dir);
  } catch {
    return undefined;
  }
  return parts.join('\n');
}

async function directories(dir: string): Promise<string[]> {
  const out = [dir];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (!e.name.startsWith('.') && e.isDirectory()) out.push(...(await directories(join(dir, e.name))));
  return out;
}

export function watchGoalTree(dir: string, options: GoalWatchOptions): GoalWatch {
  const watchers = new Map<string, FSWatcher>();
  let accepted: string | undefined;
  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  let checking: Promise<void> = Promise.resolve();

  const syncWatches = async (): Promise<void> => {
    const wanted = new Set(await directories(dir));
    for (const [d, w] of watchers) {
      if (!wanted.has(d)) {
        w.close();
        watchers.delete(d);
      }
    }
    for (const d of wanted) {
      if (watchers.has(d) || closed) continue;
      try {
        const w = watch(d, { persistent: false }, () => schedule());
        // A directory removed under its watch: forget it; the next check re-lists.
        w.on('error', () => {
          w.close();
          if (watchers.get(d) === w) watchers.delete(d);
        });
        watchers.set(d, w);
      } catch (err) {
        // Gone between the listing and the watch, or out of inotify watches: the poll still sees changes.
        if ((err as { code?: string }).code !== 'ENOENT') options.onError(err);
      }
    }
  };

  const check = (): Promise<void> =>
    (checking = checking.then(async () => {
      if (closed) return;
      await syncWatches();
      const now = await goalTreeFingerprint(dir);
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

  void syncWatches();
  const poll = setInterval(() => void check(), options.pollMs);
  poll.unref();

  return {
    accept(fingerprint) {
      accepted = fingerprint;
    },
    close() {
      closed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
