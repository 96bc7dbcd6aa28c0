import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as wait } from 'node:timers/promises';
import type { Logger } from 'pino';
import { z } from 'zod';
import { bootId, errorMessage, inAnotherBoot, isAlive, makeDirectories, processStat } from '../runtime/index.ts';
import type { ProcessStat } from '../runtime/index.ts';

/**
 * Process leases: what a desiredstate process records of each command it
 * runs (exec commands, generated scripts, ansible-playbook), so that the next one to hold the
 * state after a crash can deal with the commands it left running.
 *
 * A command runs in its own process group, which a timeout or an abort
 * kills; but a daemon killed -9 (or by the OOM killer) kills nothing, and its
 * commands run on without it. Its pending create is resolved on restart by
 * observing, and a create still running has not made the resource yet: the
 * observation says absent, and a second create would run beside the first.
 * So each run writes a lease file (the group's leader, with its start time
 * and boot, which name one process where a pid may be reused; and a token in
 * the command's environment, which its children inherit), removed when the
 * run ends; and `settleLeftoverProcesses` deals with the leases of processes
 * that are gone before the new holder observes or changes anything.
 *
 * Linux only (/proc); elsewhere a leftover group cannot be told from a
 * process that took its pid, and its lease is only reported and removed.
 *
 * Why not the parent-death signal (prctl PR_SET_PDEATHSIG, `setpriv
 * --pdeathsig`) instead: it reaches only the process that set it, not what it
 * forked (a shell's `sleep`, ansible-playbook's workers and their ssh), and a
 * program may reset it; it would need a wrapper program in every argv; and it
 * can only kill at once, never let a half-done create finish. Nor does it tell
 * a successor whether the group is gone yet: a daemon restarted at once could
 * still observe beside a group that is dying. The lease answers both.
 */

/** The variable a leased command's environment carries its lease's token in, for its children too. */
export const LEASE_TOKEN_ENV = 'DESIREDSTATE_PROCESS_LEASE';
const TOKEN_ENTRY = `${LEASE_TOKEN_ENV}=`;

/** Where the leases of the commands run on a state directory's behalf are kept. */
export function processLeaseDir(stateDir: string): string {
  return join(stateDir, 'processes');
}

/** What a run is recorded as, besides its process: given to `runProcess` as `lease`. */
export interface ProcessLeaseOptions {
  /** The lease directory (`processLeaseDir(stateDir)`). */
  readonly dir: string;
  /** The node the command works on (named in the log line of whoever finds it left over). */
  readonly node?: string | undefined;
  /** What the command does for it: `create`, `read`, `check` … */
  readonly operation: string;
  /**
   * The run's token (`leaseToken()`), for a caller that names something of the run by it beforehand (the
   * ansible backend's run dir: swept only once no process carries it). A new one when not given.
   */
  readonly token?: string | undefined;
}

const processIdentity = z.object({ pid: z.number().int().positive(), start: z.string().nullable() });

/** A lease file: one process group a desiredstate process started and has not seen end. */
const leaseSchema = z.object({
  version: z.literal(1),
  token: z.string().min(1),
  /** The group's leader: the command itself, whose pid is the group's id. */
  leader: processIdentity,
  boot: z.string().nullable(),
  /** The desiredstate process that runs it. */
  owner: processIdentity,
  node: z.string().nullable(),
  operation: z.string(),
  /** The program's file name (never its arguments). */
  program: z.string(),
  startedAt: z.number(),
  /** When its owner would have killed it (its timeout): it is not let run longer. */
  deadline: z.number(),
});

export type ProcessLease = z.output<typeof leaseSchema>;

/** This process, as a lease's owner (read once). */
let selfIdentity: { pid: number; start: string | null } | undefined;
function me(): { pid: number; start: string | null } {
  selfIdentity ??= { pid: process.pid, start: processStat(process.pid)?.start ?? null };
  return selfIdentity;
}

/** A new lease token (also the lease file's name). */
export function leaseToken(): string {
  return randomUUID();
}

/** The source of a pattern matching a `leaseToken` (a UUID as randomUUID writes it), for names that carry one. */
export const LEASE_TOKEN_PATTERN = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/**
 * Records a run that has just started (its leader `pid` spawned with `LEASE_TOKEN_ENV=token`); returns
 * the lease file's path. Throws when it cannot be written (the caller kills the group: a command that
 * could not be recorded is not left to run).
 */
export function writeLease(options: ProcessLeaseOptions, run: { token: string; pid: number; program: string; timeoutMs: number }): string {
  makeDirectories(options.dir, 0o700);
  const startedAt = Date.now();
  const lease: ProcessLease = {
    version: 1,
    token: run.token,
    leader: { pid: run.pid, start: processStat(run.pid)?.start ?? null },
    boot: bootId() ?? null,
    owner: me(),
    node: options.node ?? null,
    operation: options.operation,
    program: basename(run.program),
    startedAt,
    deadline: startedAt + run.timeoutMs,
  };
  const path = join(options.dir, `${run.token}.json`);
  writeFileSync(path, `${JSON.stringify(lease)}\n`, { mode: 0o600, flag: 'wx' });
  return path;
}

/** Removes a lease once its run has ended; one already gone is fine. */
export function removeLease(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // ENOENT: removed already. Anything else: the next holder finds the group gone and removes it.
  }
}

/** What the process table is read through (tests give a fake one). */
export interface ProcessTable {
  /** One process, or undefined when there is none with that pid (or no /proc). */
  stat(pid: number): ProcessStat | undefined;
  /** Every process (empty without /proc). */
  list(): readonly ProcessStat[];
  /** The lease token process `pid`'s environment carries (`LEASE_TOKEN_ENV`); undefined for none, or when it cannot be read. */
  token(pid: number): string | undefined;
}

/** The process table of this machine, through /proc. */
export const procTable: ProcessTable = {
  stat: processStat,
  list() {
    let names: string[];
    try {
      names = readdirSync('/proc');
    } catch {
      return [];
    }
    const out: ProcessStat[] = [];
    for (const name of names) {
      if (!/^\d+$/.test(name)) continue;
      const s = processStat(Number(name));
      if (s !== undefined) out.push(s);
    }
    return out;
  },
  token(pid) {
    let environ: string;
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      // Gone, or another user's (a sudo in the group): not known to be ours.
      return undefined;
    }
    const entry = environ.split('\0').find((e) => e.startsWith(TOKEN_ENTRY));
    return entry?.slice(TOKEN_ENTRY.length);
  },
};

/**
 * The lease tokens some running process carries: the runs that go on, a leader gone or not (what it forked
 * carries its token too). Empty without /proc: there, what a run names by its token is told apart by its
 * maker's pid alone.
 */
export function carriedTokens(table: ProcessTable = procTable): Set<string> {
  const tokens = new Set<string>();
  for (const p of table.list()) {
    const token = table.token(p.pid);
    if (token !== undefined) tokens.add(token);
  }
  return tokens;
}

/** What is left of a leased group. */
export type Leftover =
  /** Nothing of it runs (or it ran in another boot). */
  | { readonly status: 'gone' }
  /** Its leader's pid names another process now (its start time differs): the group ended, and that one is not ours. */
  | { readonly status: 'reused' }
  /**
   * These processes of it run. `group`: the leader itself still runs and leads the group, so the group
   * is ours as a whole, and is signalled as one (which reaches what it forks meanwhile too).
   */
  | { readonly status: 'running'; readonly pids: readonly number[]; readonly group: boolean }
  /** No process table to tell by (not Linux). */
  | { readonly status: 'unknown' };

/**
 * What still runs of `lease`'s group. The leader is ours when its pid's start time is the recorded one;
 * then so is every process of its group (the kernel gives no process a pid that is still a group's id,
 * so group `pid` is the leader's). Once the leader is gone, its group may live on in what it forked:
 * those are ours when their environment carries the lease's token (one that scrubbed its environment
 * cannot be told from a stranger's, and is left alone).
 */
export function leaseLeftover(lease: ProcessLease, table: ProcessTable, boot: string | undefined = bootId()): Leftover {
  if (inAnotherBoot(lease.boot, boot)) return { status: 'gone' };
  if (lease.leader.start === null) return { status: 'unknown' };
  const pid = lease.leader.pid;
  const leader = table.stat(pid);
  if (leader !== undefined && leader.start !== lease.leader.start) return { status: 'reused' };
  const leaderRuns = leader !== undefined && leader.state !== 'Z';
  const members = table.list().filter((p) => p.pgrp === pid && p.pid !== pid && p.state !== 'Z' && (leaderRuns || table.token(p.pid) === lease.token));
  const pids = [...(leaderRuns ? [pid] : []), ...members.map((p) => p.pid)];
  if (pids.length === 0) return { status: 'gone' };
  return { status: 'running', pids, group: leaderRuns && leader.pgrp === pid };
}

/** Whether the process that owns `lease` still runs (a `plan` beside the daemon; this very process). */
function ownerRuns(lease: ProcessLease, table: ProcessTable): boolean {
  if (inAnotherBoot(lease.boot)) return false;
  const { pid, start } = lease.owner;
  if (start === null) return isAlive(pid);
  const s = table.stat(pid);
  return s !== undefined && s.state !== 'Z' && s.start === start;
}

export interface SettleOptions {
  readonly log: Logger;
  /** Aborted: stop waiting; the leases of groups still running stay, for the next start. */
  readonly signal: AbortSignal;
  /** How long a group has between SIGTERM and SIGKILL (default 5 s). */
  readonly graceMs?: number | undefined;
  /** How often a group is looked for while waiting (default 200 ms). */
  readonly pollMs?: number | undefined;
  readonly table?: ProcessTable | undefined;
  readonly now?: (() => number) | undefined;
}

/** How a leftover group was dealt with. */
export type Settled = 'ended' | 'killed' | 'unkillable' | 'aborted' | 'gone' | 'reused' | 'unknown' | 'owner running';

/** A lease found at start-up, and how its group is being dealt with. */
export interface LeftoverProcess {
  /** The lease file's name. */
  readonly name: string;
  readonly lease: ProcessLease;
  /**
   * Its group still ran when first looked for (and its owner is gone): what it works on (`lease.node`) is
   * neither observed nor changed until `settled` resolves, other than 'aborted'.
   */
  readonly running: boolean;
  /** Resolves (never rejects) once the group has ended or been killed, or at once when it had ended already. */
  readonly settled: Promise<Settled>;
}

/**
 * Deals with the commands that a desiredstate process, now gone, left running on the state in
 * `leaseDir`; for the holder of the state's lock, before it observes or changes what they work on.
 *
 * Each such group is waited for until its deadline (the time its own daemon would have killed it at,
 * its timeout), then killed: SIGTERM to the whole group, SIGKILL after `graceMs`. Waiting, not killing at
 * once, because a command cut short half-way is the surest way to the duplicate this guards against: a
 * create that has made its resource but not yet made it findable (tagged, named, registered) leaves what
 * the next observation cannot see, and the next create makes another; let finish, what it made is
 * observed and adopted. Its deadline bounds the wait: it gets no more time than its daemon gave it. An
 * operator who wants the node dealt with sooner kills the group the log line names.
 *
 * The groups are dealt with at once, not one after another. Returns at once, with one entry per lease
 * (see `LeftoverProcess`): the daemon holds back only the nodes of the groups still running, and goes
 * on with the others meanwhile. `settleLeftoverProcesses` waits for them all (a one-shot apply).
 */
export function startSettlingLeftoverProcesses(leaseDir: string, options: SettleOptions): LeftoverProcess[] {
  let names: string[];
  try {
    names = readdirSync(leaseDir).filter((n) => n.endsWith('.json'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') options.log.warn({ dir: leaseDir, text: errorMessage(err) }, 'cannot read the process leases');
    return [];
  }
  const table = options.table ?? procTable;
  const out: LeftoverProcess[] = [];
  for (const name of names) {
    const path = join(leaseDir, name);
    const lease = readLease(path, options.log);
    if (lease === undefined) continue;
    if (ownerRuns(lease, table)) {
      out.push({ name, lease, running: false, settled: Promise.resolve('owner running') });
      continue;
    }
    const { running, settled } = settleOne(lease, table, options);
    out.push({
      name,
      lease,
      running,
      settled: settled.then((s) => {
        // Aborted, or a group that outlived SIGKILL: its lease stays, and the next start looks again.
        if (s !== 'aborted' && s !== 'unkillable') removeLease(path);
        return s;
      }),
    });
  }
  return out;
}

/** `startSettlingLeftoverProcesses`, waited for: resolves with what became of each lease, by file name. */
export async function settleLeftoverProcesses(leaseDir: string, options: SettleOptions): Promise<Map<string, Settled>> {
  const leftovers = startSettlingLeftoverProcesses(leaseDir, options);
  return new Map(await Promise.all(leftovers.map(async (l) => [l.name, await l.settled] as const)));
}

/**
 * Why the node a leftover command works on is held back while it runs, for `status`: the command (its
 * operation, program and process group, which an operator may kill to go sooner) and until when at most.
 */
export function leftoverHoldReason(lease: ProcessLease): string {
  return `waiting for its ${lease.operation} left running by a stopped desiredstate (${lease.program}, pgid ${lease.leader.pid}) to end, until ${new Date(lease.deadline).toISOString()} at most (its timeout: then it is killed)`;
}

function readLease(path: string, log: Logger): ProcessLease | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined; // removed meanwhile
  }
  let parsed: ReturnType<typeof leaseSchema.safeParse>;
  try {
    parsed = leaseSchema.safeParse(JSON.parse(text));
  } catch {
    parsed = leaseSchema.safeParse(undefined);
  }
  if (parsed.success) return parsed.data;
  // Cut short by the crash itself (written right after the spawn): nothing to tell the group by.
  log.warn({ file: path }, 'unreadable process lease removed');
  removeLease(path);
  return undefined;
}

/** Looks for `lease`'s group (at once); if it still runs, `settled` waits for it, or kills it at its deadline. */
function settleOne(lease: ProcessLease, table: ProcessTable, o: SettleOptions): { running: boolean; settled: Promise<Settled> } {
  const what = { pgid: lease.leader.pid, node: lease.node ?? undefined, operation: lease.operation, program: lease.program };
  const first = leaseLeftover(lease, table);
  switch (first.status) {
    case 'gone':
      o.log.debug(what, 'a command left by a stopped desiredstate had ended');
      return { running: false, settled: Promise.resolve('gone') };
    case 'reused':
      o.log.info(what, 'a command left by a stopped desiredstate had ended; its pid now names another process, left alone');
      return { running: false, settled: Promise.resolve('reused') };
    case 'unknown':
      o.log.warn(what, 'a command left by a stopped desiredstate cannot be looked for here (no /proc); if it still runs, it runs beside this one');
      return { running: false, settled: Promise.resolve('unknown') };
    case 'running':
      break;
  }
  o.log.warn({ ...what, until: new Date(lease.deadline).toISOString() }, 'waiting for a command left running by a stopped desiredstate (until its timeout, then it is killed)');
  return { running: true, settled: waitOrKill(lease, first, table, o, what) };
}

async function waitOrKill(lease: ProcessLease, first: Leftover, table: ProcessTable, o: SettleOptions, what: object): Promise<Settled> {
  const now = o.now ?? Date.now;
  const pollMs = o.pollMs ?? 200;
  let left: Leftover = first;
  while (left.status === 'running' && now() < lease.deadline) {
    if (!(await sleep(Math.min(pollMs, lease.deadline - now()), o.signal))) return aborted(o, what);
    left = leaseLeftover(lease, table);
  }
  if (left.status !== 'running') {
    o.log.info(what, 'a command left running by a stopped desiredstate has ended');
    return 'ended';
  }
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    signalLeftover(lease.leader.pid, left, signal);
    const until = now() + (signal === 'SIGTERM' ? (o.graceMs ?? 5000) : 5000);
    while (left.status === 'running' && now() < until) {
      if (!(await sleep(Math.min(pollMs, until - now()), o.signal))) return aborted(o, what);
      left = leaseLeftover(lease, table);
    }
    if (left.status !== 'running') {
      o.log.warn({ ...what, signal }, 'killed a command left running by a stopped desiredstate, at its timeout');
      return 'killed';
    }
  }
  o.log.error({ ...what, pids: left.status === 'running' ? left.pids : [] }, 'a command left running by a stopped desiredstate outlived SIGKILL; it may run beside this one');
  return 'unkillable';
}

function aborted(o: SettleOptions, what: object): Settled {
  o.log.info(what, 'stopped while waiting for a command left running by a stopped desiredstate; it is looked for again at the next start');
  return 'aborted';
}

/** Signals what runs of a group: the group as a whole when its leader leads it, else each process known to be ours. */
function signalLeftover(pgid: number, left: Leftover, signal: NodeJS.Signals): void {
  if (left.status !== 'running') return;
  const targets = left.group ? [-pgid] : left.pids;
  for (const target of targets) {
    try {
      process.kill(target, signal);
    } catch {
      // ESRCH: ended meanwhile. EPERM: another user's (a sudo in the group); reported if it outlives SIGKILL.
    }
  }
}

/** Waits `ms`; false when `signal` is aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return wait(Math.max(0, ms), true, { signal }).catch(() => false);
}
