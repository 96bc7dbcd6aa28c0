import { basename, dirname, join, sep } from 'node:path';
import type { Logger } from 'pino';
import type { ChangeListener } from '../../infra/index.ts';
import type { NodeId } from '../../runtime/index.ts';
import { errorMessage } from '../../runtime/index.ts';
import { directoryIdentity, watchDirectory } from './client.ts';
import type { DirectoryIdentity } from './client.ts';
import { addId, removeId } from './id-lists.ts';

/** A managed path and the node that manages it. */
export interface WatchedPath {
  readonly id: NodeId;
  /** Absolute path of the node's resource. */
  readonly abs: string;
}

export interface WatchOptions {
  /** The backend's root: every path is below it, and each directory between the two is watched too. */
  readonly root: string;
  readonly paths: readonly WatchedPath[];
  readonly onChange: ChangeListener;
  readonly log: Logger;
  /** Events within this window are reported together. */
  readonly debounceMs?: number;
}

function isBelow(ancestor: string, p: string): boolean {
  return p.startsWith(ancestor.endsWith(sep) ? ancestor : ancestor + sep);
}

/**
 * Watches the parent directories of managed paths, one non-recursive watcher
 * per directory. A parent that does not exist yet is covered by a watcher on
 * its nearest existing ancestor, re-armed when that ancestor changes; a
 * watched directory that disappears is noticed and covered the same way,
 * and one replaced (made again, moved away, swapped for a symlink) is watched
 * anew: a watcher stays with the directory it was added on, not its path.
 * The directories between the root and each parent are watched as well, for
 * one of them moved away takes the watched directories below with it, telling
 * their watchers nothing. Events are mapped back to node ids and reported in batches.
 */
export class DirectoryWatch {
  private readonly byParent = new Map<string, Map<string, NodeId[]>>();
  private readonly watchers = new Map<string, { close(): void; readonly at: DirectoryIdentity }>();
  private readonly changed = new Set<NodeId>();
  /** Where each node given to `follow` leads now. */
  private readonly followed = new Map<NodeId, string>();
  private readonly root: string;
  private readonly onChange: ChangeListener;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private timer: NodeJS.Timeout | undefined;
  private rearm = false;
  /** Watched directories whose own watcher told of them renamed or removed: watched anew at the next flush. */
  private readonly suspects = new Set<string>();
  private stopped = false;

  constructor(options: WatchOptions) {
    this.root = options.root;
    this.onChange = options.onChange;
    this.log = options.log;
    this.debounceMs = options.debounceMs ?? 50;
    for (const p of options.paths) this.add(p.id, p.abs);
    this.arm();
  }

  /**
   * Node `id`'s path leads to `abs` now, in place of where it led before: a path that is a template
   * (`${nodes.p.outputs.dir}/f`) is known only resolved, when the node is observed, and an output
   * changed leads it elsewhere. A directory no other path needs is no longer watched (an ancestor
   * watched in place of a missing one stays until the watch stops: outputs seldom change).
   */
  follow(id: NodeId, abs: string): void {
    if (this.stopped) return;
    const was = this.followed.get(id);
    if (was === abs) return;
    this.followed.set(id, abs);
    let closed = false;
    if (was !== undefined) {
      const dir = dirname(was);
      const entries = this.byParent.get(dir)!;
      removeId(entries, basename(was), id);
      const watcher = entries.size === 0 ? this.watchers.get(dir) : undefined;
      if (entries.size === 0) this.byParent.delete(dir);
      if (watcher !== undefined) {
        watcher.close();
        this.watchers.delete(dir);
        closed = true;
      }
    }
    this.add(id, abs);
    // Its own parent only: every parent looked at again (a failed fs.watch for each one missing) made
    // each node's first observation cost as much as all the watch's directories. But for a watcher
    // closed: it may have stood for a missing parent too, and `arm` watches what is still needed again.
    if (closed) this.arm();
    else this.armDir(dirname(abs));
  }

  /**
   * Closes every watcher and reports at once the changes still waiting for the debounce (or for a
   * flush's look at its directories): a watch stopped for a goal reload is replaced by one that never
   * saw them, and a hand edit dropped here went unseen until the node's next interval.
   */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    this.report();
  }

  private add(id: NodeId, abs: string): void {
    const dir = dirname(abs);
    let entries = this.byParent.get(dir);
    if (entries === undefined) this.byParent.set(dir, (entries = new Map()));
    addId(entries, basename(abs), id);
  }

  /** Watches every needed parent; a missing one falls back to its nearest existing ancestor. */
  private arm(): void {
    for (const dir of this.byParent.keys()) this.armDir(dir);
  }

  /** Watches `dir`, or, missing, its nearest existing ancestor; and the directories above it up to the root. */
  private armDir(dir: string): void {
    let covered = false;
    for (let d = dir; ; d = dirname(d)) {
      if (this.watchers.has(d) || this.tryWatch(d)) covered = true;
      if (dirname(d) === d || (covered && !isBelow(this.root, d))) break;
    }
  }

  private tryWatch(dir: string): boolean {
    try {
      const w = watchDirectory(
        dir,
        (event, filename) => this.event(dir, event, filename),
        (err) => this.lost(dir, err),
      );
      this.watchers.set(dir, w);
      return true;
    } catch {
      return false;
    }
  }

  private event(dir: string, event: 'rename' | 'change', filename: string | null): void {
    if (this.stopped) return;
    // The watched directory itself went: its watcher names it by its own name (a file of that name in it
    // is taken so too; it costs a watch renewed and the directory's nodes looked at). Made again at once,
    // as the daemon does when its removal is reported, it is there when `flush` looks, watched by nothing.
    if (event === 'rename' && filename === basename(dir)) this.suspects.add(dir);
    const entries = this.byParent.get(dir);
    if (entries !== undefined) {
      if (filename === null) for (const ids of entries.values()) for (const id of ids) this.changed.add(id);
      else for (const id of entries.get(filename) ?? []) this.changed.add(id);
    }
    // Something changed on the way to a parent that is missing or watched: re-check those.
    for (const [parent, e] of this.byParent) {
      if (!isBelow(dir, parent)) continue;
      if (filename !== null && !(parent === join(dir, filename) || isBelow(join(dir, filename), parent))) continue;
      if (this.watchers.has(parent) && event !== 'rename') continue;
      this.rearm = true;
      for (const ids of e.values()) for (const id of ids) this.changed.add(id);
    }
    this.schedule();
  }

  private lost(dir: string, err: unknown): void {
    this.log.debug({ dir, err: errorMessage(err) }, 'directory watcher lost');
    this.watchers.get(dir)?.close();
    this.watchers.delete(dir);
    this.rearm = true;
    for (const ids of this.byParent.get(dir)?.values() ?? []) for (const id of ids) this.changed.add(id);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || (this.changed.size === 0 && !this.rearm && this.suspects.size === 0)) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.debounceMs);
  }

  private async flush(): Promise<void> {
    if (this.rearm || this.suspects.size > 0) {
      // A deleted directory's watcher goes quiet rather than failing, and one replaced keeps watching the
      // old directory: find those and cover their paths again.
      const suspects = new Set(this.suspects);
      const dirs = this.rearm ? [...this.watchers.keys()] : [...suspects];
      this.rearm = false;
      this.suspects.clear();
      const armed = dirs.map((d) => this.watchers.get(d));
      const now = await Promise.all(dirs.map((d) => directoryIdentity(d)));
      if (this.stopped) return;
      const replaced: { close(): void }[] = [];
      dirs.forEach((d, i) => {
        const w = armed[i];
        const at = now[i];
        // Gone already, or armed again meanwhile (`follow`): that watcher is a new one.
        if (w === undefined || this.watchers.get(d) !== w) return;
        // One whose watcher told of it gone is watched anew even found the same: a directory made again
        // at once may be given the removed one's inode (ext4 does).
        if (!suspects.has(d) && at !== undefined && at.dev === w.at.dev && at.ino === w.at.ino) return;
        replaced.push(w);
        this.watchers.delete(d);
        for (const ids of this.byParent.get(d)?.values() ?? []) for (const id of ids) this.changed.add(id);
      });
      this.arm();
      // Closed once the new watchers are added: one on the same directory shares its inotify watch,
      // which stays, so an event in between is not lost.
      for (const w of replaced) w.close();
    }
    if (!this.stopped) this.report();
  }

  /** Tells the listener of the nodes changed since it was last told. */
  private report(): void {
    if (this.changed.size === 0) return;
    const ids = [...this.changed];
    this.changed.clear();
    this.log.debug({ nodes: ids.length }, 'local change noticed');
    try {
      this.onChange(ids);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'change listener failed');
    }
  }
}
