import { existsSync, readFileSync } from 'node:fs';
import { once } from './lazy.ts';

/**
 * Whether process `pid` runs: one of another user's counts (EPERM); a zombie does not. A zombie has
 * exited and only waits for its parent to reap it, which may take a while (a parent that does not wait,
 * a container's pid 1): whatever it held or was writing, it has let go. Where there is no /proc (not
 * Linux), or /proc hides the process (another user's, under hidepid), that the pid exists is all that
 * can be told.
 */
export function isAlive(pid: number): boolean {
  if (!exists(pid)) return false;
  const stat = processStat(pid);
  if (stat !== undefined) return stat.state !== 'Z';
  // No stat: nothing to read it from (no /proc), or another user's process that /proc hides from us
  // (mounted hidepid=1 or 2), or gone since the signal. Only the last is not alive: asked again.
  return !hasProc() || exists(pid);
}

/**
 * Whether process `pid`, which started at `start` (`ProcessStat.start`), still runs: a pid given to
 * another process since (a container's pid 1, restarted) does not. Without a start (none could be
 * read where it was written), or where /proc hides the process, the pid alone tells (`isAlive`).
 */
export function runsAsStarted(pid: number, start: string | undefined): boolean {
  if (start === undefined) return isAlive(pid);
  const stat = processStat(pid);
  return stat === undefined ? isAlive(pid) : stat.state !== 'Z' && stat.start === start;
}

/** Whether a process `pid` exists, zombies included: one of another user's does (EPERM). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether this system has a Linux /proc: read on first use (see `bootId`). */
const hasProc = once(() => existsSync('/proc/self/stat'));

let bootIdRead: { readonly id: string | undefined } | undefined;

/**
 * This boot's id (Linux), undefined elsewhere: a pid written in another boot names another process,
 * whatever runs under it now. Read on first use, not when the module loads: the CLI's start-up
 * snapshot (scripts/build.ts) holds the modules as they were loaded when it was built, in another boot.
 */
export function bootId(): string | undefined {
  bootIdRead ??= {
    id: (() => {
      try {
        return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
      } catch {
        return undefined;
      }
    })(),
  };
  return bootIdRead.id;
}

/**
 * Whether a pid written in boot `recorded` belongs to another boot than `current` (this one): then it
 * names no process of its writer's, whatever runs under it now. Unknown on either side (no boot id
 * written, no /proc): not known to be another, and the pid is judged by itself.
 */
export function inAnotherBoot(recorded: string | null | undefined, current: string | undefined = bootId()): boolean {
  return recorded !== null && recorded !== undefined && recorded !== '' && current !== undefined && recorded !== current;
}

/** What `/proc/<pid>/stat` (Linux) says of a process that matters for telling it apart. */
export interface ProcessStat {
  readonly pid: number;
  /** One letter: R, S, D, Z (zombie) … */
  readonly state: string;
  /** Its process group. */
  readonly pgrp: number;
  /**
   * When it started, in clock ticks since boot (field 22), as text: with the boot id, a pid and
   * this name one process, where a pid alone may since have been given to another.
   */
  readonly start: string;
}

/** `/proc/<pid>/stat`, parsed; undefined when there is no such process, or no /proc (not Linux). */
export function processStat(pid: number): ProcessStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return parseProcessStat(pid, text);
}

/** Parses a `/proc/<pid>/stat` line: "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses, so fields are counted from the last ')'. */
export function parseProcessStat(pid: number, text: string): ProcessStat | undefined {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): field n is fields[n - 3].
  const state = fields[0];
  const pgrp = Number(fields[2]);
  const start = fields[19];
  if (state === undefined || state === '' || !Number.isSafeInteger(pgrp) || start === undefined || !/^\d+$/.test(start)) return undefined;
  return { pid, state, pgrp, start };
}
