import type { Logger } from 'pino';
import { DIRTY, goalsCommit as gitGoalsCommit, headCommit } from './git.ts';
import { goalTreeFingerprint } from './goal-watch.ts';

export interface GoalsCommitWatchOptions {
  readonly log: Logger;
  /** Records `commit` as the goals running's (the controller's `setCommit`, which logs 'goals commit changed'). */
  readonly record: (commit: string | null) => void;
  /** `goalsCommit` (git.ts), which asks git whether the goals differ from HEAD. */
  readonly goalsCommit?: (dir: string, log: Logger) => Promise<string | null>;
}

/**
 * The commit of the goals the daemon runs, kept current while HEAD moves without the goal files changing
 * (a commit elsewhere in the repository, or of the edited goals): drift is reported under the commit
 * checked out now. The daemon tells it of every load (`loaded`, `refused`); `poll` looks at HEAD.
 *
 * A poll costs a few small file reads. Git is asked whether the goals differ from HEAD only when
 * HEAD has moved, or a load has finished since the last poll (it may have read an older HEAD than the
 * one recorded meanwhile), or while the goals running differ from HEAD (they may be made equal to it
 * again without a goal file changing). The goal tree is walked only when git finds a commit other than
 * the running one: it is recorded only while the goal files are those the running goals were loaded
 * from (files changed since are the next load's to judge: a broken revision committed is refused, and
 * its commit is not the running goals'). While the goals running are not the goal files' own (the last
 * good goals, run in place of a refused revision, or the last good graph kept), no commit is theirs
 * and git is not asked at all. Each HEAD not recorded is said once, at debug level.
 */
export class GoalsCommitWatch {
  private readonly goalsCommit: (dir: string, log: Logger) => Promise<string | null>;
  /** The commit of the goals running: when they were loaded, or since, one the watch found them unchanged at. */
  private running: string | null = null;
  /** The goal files' fingerprint when the goals running were loaded from them; undefined when they are not the files' own. */
  private fingerprint: string | undefined;
  /** Counts the loads told (`loaded`, `refused`): a poll that sees it move looks again. */
  private loads = 0;
  /** HEAD and `loads` when the last poll looked (undefined: never). */
  private head: string | null | undefined;
  private seen = -1;
  /** The HEAD the last poll's verdict was on (recorded, the running one's, or said not recorded). */
  private told: string | null | undefined;
  private polling = false;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly dir: string;
  private readonly options: GoalsCommitWatchOptions;

  constructor(dir: string, options: GoalsCommitWatchOptions) {
    this.dir = dir;
    this.options = options;
    this.goalsCommit = options.goalsCommit ?? gitGoalsCommit;
  }

  /**
   * Goals were loaded and run under `commit`: the goal files' own, taken at `fingerprint` before they
   * were read, or (`fingerprint` undefined) the last good goals stored, run in place of a refused revision.
   */
  loaded(commit: string | null, fingerprint: string | undefined): void {
    this.running = commit;
    this.fingerprint = fingerprint;
    this.loads++;
  }

  /** A revision was refused: the graph running (if any) keeps its commit, and is no longer the goal files' own. */
  refused(): void {
    this.fingerprint = undefined;
    this.loads++;
  }

  /** Polls every `ms` until `close`. */
  start(ms: number): void {
    this.timer = setInterval(() => void this.poll(), ms);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Looks at HEAD once (nothing if a look is under way). Never rejects: a failure is logged, and the next poll looks again. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      await this.look();
      this.failing = false;
    } catch (err) {
      this.head = undefined;
      // Said once until a poll works again (a full disk refusing every write would say it every 5 s).
      if (this.failing) this.options.log.debug({ err }, 'goals commit still not looked at');
      else this.options.log.warn({ err }, 'goals commit not looked at; looked at again at the next poll');
      this.failing = true;
    } finally {
      this.polling = false;
    }
  }

  private async look(): Promise<void> {
    const now = await headCommit(this.dir);
    const loads = this.loads;
    const dirty = this.fingerprint !== undefined && this.running?.endsWith(DIRTY) === true;
    if (now === this.head && loads === this.seen && !dirty) return;
    this.head = now;
    this.seen = loads;
    if (this.fingerprint === undefined) {
      this.notRecorded(now, now);
      return;
    }
    const found = await this.goalsCommit(this.dir, this.options.log);
    if (found === this.running) {
      this.told = now;
      return;
    }
    // Taken after git answered (files a checkout, a pull or `commit -a` changed are in place before HEAD
    // moves), not the goal watch's last: that may be a poll and a debounce older than the edit just
    // committed, and the commit of a revision about to be refused would be recorded. Once a HEAD move.
    const fingerprint = await goalTreeFingerprint(this.dir);
    // A load finished meanwhile (its commit may be older than `found`): the next poll looks again.
    if (this.loads !== loads) return;
    if (fingerprint === this.fingerprint) {
      this.options.record(found);
      this.running = found;
      this.told = now;
    } else {
      this.notRecorded(now, found);
    }
  }

  private notRecorded(head: string | null, commit: string | null): void {
    if (head === this.told) return;
    this.told = head;
    this.options.log.debug({ commit, running: this.running }, 'goals commit not recorded: the goals running are not its');
  }
}
