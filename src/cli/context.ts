import { accessSync, constants, existsSync, statSync, writeFileSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import pino from 'pino';
import type PinoPretty from 'pino-pretty';
import type { Logger } from 'pino';
import { DesiredStateError, ErrorCodes, errorMessage, formatDiagnostic, makeDirectories, parseDuration, readGoalSources, readRegularSync, replaceFile, sha256, SqliteStateStore, stableStringify, stateFileInfo, SYSTEM_REASONS, systemReason } from '../runtime/index.ts';
import type { Diagnostic, GoalSources } from '../runtime/index.ts';
import { BackendRegistry, CelPolicyEngine, evaluationTimeouts, InfraNodeProvisioner } from '../infra/index.ts';
import type { DeclaredBackends, InfraBackend } from '../infra/index.ts';
import { builtinBackendFactories } from '../backends/index.ts';
import { loadGoalSet } from './load.ts';
import type { LoadedGoals } from './load.ts';
import type { GoalSetScope } from './goal-cache.ts';
import { rethrowAsUsage, UsageError } from './usage.ts';
import { terminalSafe } from './format.ts';

/** What every command shares: where things are, how to print and log. */
export interface CliContext {
  readonly cwd: string;
  readonly goalsDir: string;
  readonly stateDir: string;
  /** Whether the state directory was named (--state or $DESIREDSTATE_STATE) rather than the default. */
  readonly stateDirGiven: boolean;
  /** Whether the goal directory was named (--goals or $DESIREDSTATE_GOALS) rather than the default. */
  readonly goalsDirGiven: boolean;
  /** How the goal and state directories were named, for messages: `--state ./x`, `$DESIREDSTATE_STATE x`, `state directory .desiredstate`. */
  readonly named: { readonly goals: string; readonly state: string };
  readonly format: string | undefined;
  readonly log: Logger;
  readonly out: (text: string) => void;
  /** Lines written with one write (a listing of 10,000 lines: 10,000 write calls cost ~20 ms); none, nothing. */
  readonly outLines: (lines: Iterable<string>) => void;
  readonly env: NodeJS.ProcessEnv;
  /** The program's digest, when the launcher computed one (see `compileGoalsCached`). */
  readonly program: string | undefined;
}

export function createContext(
  values: { goals?: string | undefined; state?: string | undefined; format?: string | undefined; 'log-level'?: string | undefined },
  io: { out: (t: string) => void; env: NodeJS.ProcessEnv; cwd: string; defaultLogLevel?: string; program?: string | undefined },
): CliContext {
  const cwd = io.cwd;
  // An empty directory flag is a mistake (`--goals "$GOALS"` with the variable unset), not the working
  // directory: read recursively, that would take every YAML file under it for goals. An empty variable
  // is unset, as a shell's `VAR= cmd` or a unit file's `Environment=VAR=` mean.
  for (const flag of ['goals', 'state'] as const) {
    if (values[flag] === '') throw new UsageError(`--${flag} is empty; name a directory (. for the working directory)`);
  }
  const env = (name: string): string | undefined => (io.env[name] === '' ? undefined : io.env[name]);
  const goalsFromEnv = env('DESIREDSTATE_GOALS');
  const stateFromEnv = env('DESIREDSTATE_STATE');
  const goalsDir = resolve(cwd, values.goals ?? goalsFromEnv ?? 'goals');
  const stateDir = resolve(cwd, values.state ?? stateFromEnv ?? '.desiredstate');
  const level = values['log-level'] ?? env('DESIREDSTATE_LOG_LEVEL') ?? io.defaultLogLevel ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) {
    const named = values['log-level'] === undefined ? `$DESIREDSTATE_LOG_LEVEL (${level})` : '--log-level';
    throw new UsageError(`${named} must be one of fatal, error, warn, info, debug, trace, silent`);
  }
  // Logs go to stderr, stdout carries the command's own output. JSON lines (pino) when stderr is not
  // a terminal, human lines on a terminal (CLI.md); DESIREDSTATE_LOG_FORMAT=json|pretty chooses.
  const logFormat = env('DESIREDSTATE_LOG_FORMAT') ?? (process.stderr.isTTY ? 'pretty' : 'json');
  if (logFormat !== 'json' && logFormat !== 'pretty') throw new UsageError(`DESIREDSTATE_LOG_FORMAT must be json or pretty (got "${logFormat}")`);
  // Colours only for a terminal, and not there either when NO_COLOR is set to anything (https://no-color.org).
  const colorize = process.stderr.isTTY === true && (io.env.NO_COLOR ?? '') === '';
  const log = logger(level, logFormat === 'json' ? pino.destination({ fd: 2, sync: true }) : prettyStream(colorize));
  const stateDirGiven = values.state !== undefined || stateFromEnv !== undefined;
  const goalsDirGiven = values.goals !== undefined || goalsFromEnv !== undefined;
  const named = {
    goals: nameOf('--goals', values.goals, 'DESIREDSTATE_GOALS', goalsFromEnv, 'goal directory goals'),
    state: nameOf('--state', values.state, 'DESIREDSTATE_STATE', stateFromEnv, 'state directory .desiredstate'),
  };
  const out = (text: string): void => io.out(terminalSafe(text));
  const outLines = (lines: Iterable<string>): void => {
    const all = [...lines];
    if (all.length > 0) out(all.join('\n'));
  };
  return { cwd, goalsDir, stateDir, stateDirGiven, goalsDirGiven, named, format: values.format, log, out, outLines, env: io.env, program: io.program };
}

/** The CLI's logger: JSON lines (pino) at `level`, written to `destination`. */
export function logger(level: string, destination: pino.DestinationStream): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

function nameOf(flag: string, value: string | undefined, variable: string, fromEnv: string | undefined, fallback: string): string {
  if (value !== undefined) return `${flag} ${value}`;
  if (fromEnv !== undefined) return `$${variable} ${fromEnv}`;
  return fallback;
}

/** pino-pretty, loaded only for a terminal (a pipe or a file gets JSON and never loads it). */
function prettyStream(colorize: boolean): NodeJS.WritableStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  return pretty({ destination: 2, sync: true, colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
}

/** Why a goal or state directory named cannot be read, for the failures that are the invocation's (exit 64), by error code. */
const DIRECTORY_FAILURES: Readonly<Record<string, string>> = {
  ...SYSTEM_REASONS,
  ENOTDIR: 'a path above it is not a directory',
};

/**
 * A missing goal directory, a file named as one, or one this user may not read (nor look into) is a
 * bad invocation (exit 64, CLI.md). A directory below it that cannot be read is the goals' error
 * (`unreadable-directory`), as a goal file that cannot be read is.
 */
export function requireGoalsDir(ctx: CliContext): void {
  const doing = `cannot read goal directory ${ctx.goalsDir}`;
  let info;
  try {
    info = statSync(ctx.goalsDir, { throwIfNoEntry: false });
    if (info?.isDirectory() === true) accessSync(ctx.goalsDir, constants.R_OK | constants.X_OK);
  } catch (err) {
    rethrowAsUsage(err, doing, DIRECTORY_FAILURES);
  }
  if (info === undefined) throw new UsageError(`goal directory ${ctx.goalsDir} does not exist`);
  if (!info.isDirectory()) throw new UsageError(`${ctx.named.goals} is not a directory`);
}

/**
 * For a command that can do without goals and reads them when they are there (retry, for a node the
 * state does not know; scripts, for the trust bar): whether there is a goal directory to read. One
 * named (--goals, $DESIREDSTATE_GOALS) that does not exist, or anything but a directory, is a bad
 * invocation (exit 64) all the same, as for every command that reads the goals; the default `goals/`
 * missing is no goals.
 */
export function optionalGoalsDir(ctx: CliContext): boolean {
  if (!ctx.goalsDirGiven && !existsSync(ctx.goalsDir)) return false;
  requireGoalsDir(ctx);
  return true;
}

/**
 * A file (or anything but a directory) named as the state directory is a bad invocation (exit 64); a missing one
 * is created when needed. What is there (undefined: nothing).
 */
export function requireStateDir(ctx: CliContext): Stats | undefined {
  const info = stateDirInfo(ctx);
  if (info?.isDirectory() === false) throw new UsageError(`${ctx.named.state} is not a directory`);
  return info;
}

/**
 * What is at the state directory's path (undefined: nothing). One this user may not look at (under a
 * directory it may not enter) is a bad invocation (exit 64), as one it may not create is; never taken
 * for no state. What is in the state directory is the state store's to refuse (`stateFileInfo`).
 */
function stateDirInfo(ctx: CliContext): Stats | undefined {
  try {
    return statSync(ctx.stateDir, { throwIfNoEntry: false });
  } catch (err) {
    // A file above it: nothing is there (`makeStateDir` says why it cannot be made).
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    return rethrowAsUsage(err, `cannot read ${ctx.named.state}`, DIRECTORY_FAILURES);
  }
}

/** Why the state directory cannot be created, for the failures that are the invocation's (exit 64), by error code. */
const MKDIR_FAILURES: Readonly<Record<string, string>> = {
  // EPERM too: a directory above it made immutable (chattr +i), or on a filesystem that forbids it.
  ...SYSTEM_REASONS,
  ENOTDIR: 'a path above it is not a directory',
  EEXIST: 'something that is not a directory is in the way',
  EROFS: 'read-only file system',
  // Under /proc or /sys: a directory there cannot be made.
  ENOENT: 'a directory above it cannot be made there',
};

/**
 * Creates the state directory if need be, and the parents it lacks, 0700 whatever the umask (which takes group
 * and other bits): it holds the lock and files that are the owner's only. A UsageError when the path given
 * cannot be one. One there already is left as it is (its mode may be someone's choice), warned of when others
 * may write in it (`warnIfShared`).
 */
function makeStateDir(ctx: CliContext): void {
  const info = requireStateDir(ctx);
  if (info !== undefined) return warnIfShared(ctx, info);
  try {
    makeDirectories(ctx.stateDir, 0o700);
  } catch (err) {
    rethrowAsUsage(err, `cannot create ${ctx.named.state}`, MKDIR_FAILURES);
  }
}

/** The commands (their contexts) warned already that their state directory is writable by others. */
const warnedShared = new WeakSet<CliContext>();

/**
 * Warns, once a command, of a state directory that its group or others may write in, as ssh does of
 * ~/.ssh: they may remove or replace the state or its lock (a running daemon then stops), or plant a
 * lock that keeps every writer out. A warning, not a refusal: a shared group may be meant. Not of a
 * sticky one (a tmpfs's root, /tmp): there only a file's owner may remove or replace it.
 */
function warnIfShared(ctx: CliContext, info: Stats): void {
  const bits = info.mode & 0o022;
  if (bits === 0 || (info.mode & 0o1000) !== 0 || warnedShared.has(ctx)) return;
  warnedShared.add(ctx);
  const who = bits === 0o022 ? 'its group and others' : bits === 0o020 ? 'its group' : 'others';
  const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
  ctx.log.warn({ stateDir: ctx.stateDir, mode }, `state directory ${ctx.stateDir} (mode ${mode}) is writable by ${who}, who may remove or replace the state and its lock; chmod go-w it`);
}

export function registry(): BackendRegistry {
  return new BackendRegistry(builtinBackendFactories);
}

/**
 * How policy findings at or above `blockAt` are treated: `refuse` (validate,
 * check) makes them errors so the goal set is refused; `hold` (plan, apply,
 * run) keeps the graph and holds just those nodes, never provisioned nor
 * deleted.
 */
export type PolicyMode = 'refuse' | 'hold';

export interface CompiledGoals extends LoadedGoals {
  readonly policy: CelPolicyEngine;
}

/** Reads and compiles the goals, or compiles `sources`, the goal files as read already (`readGoalSources`, shown against `ctx.cwd`). */
export async function compileGoals(ctx: CliContext, mode: PolicyMode = 'hold', sources?: GoalSources): Promise<CompiledGoals> {
  requireGoalsDir(ctx);
  // One engine per compile: it accumulates the policies and findings of this revision.
  const policy = new CelPolicyEngine({ blockingDiagnostic: mode === 'refuse' ? 'error' : 'warning' });
  const loaded = await loadGoalSet({ goalsDir: ctx.goalsDir, cwd: ctx.cwd, registry: registry(), policy, sources });
  return { ...loaded, policy };
}

/** Compiled goals (`compileGoalsCached`), and how to keep them as the last good goals once they are applied. */
export interface CachedGoals {
  readonly loaded: LoadedGoals;
  /**
   * Records in `store`, before they are applied (apply, run), that these are the goals last applied
   * (`GOALS_APPLIED_META`): from then on no other goal set is taken for the last good goals, whatever
   * becomes of `keepAsLastGood` (a write that fails, a process killed first). Throws what the store throws.
   */
  applying(store: SqliteStateStore): void;
  /**
   * Keeps them as the last good goals (for a daemon that starts on a revision that does not compile),
   * with `commit`, the goals' commit (`goalsCommit`): called once they are applied (apply, run), never for a
   * revision refused. Best effort; nothing where there is no key to know them by (no program digest).
   */
  keepAsLastGood(commit: string | null): void;
}

/**
 * Meta key: the key (`goalSetKey`) of the goal set last applied by apply or run, recorded before it is
 * applied; unset when it had none (no program digest). The last good goals are the entry stored under
 * it, or none: an entry an apply since did not replace (it was killed first, its write failed) holds
 * goals older than those applied, whose nodes a prune would delete.
 */
const GOALS_APPLIED_META = 'goals.applied';

/** Records `key` as the goals last applied (`GOALS_APPLIED_META`); written only when it changes (a steady apply writes nothing). */
function recordApplied(store: SqliteStateStore, key: string | undefined): void {
  if (store.getMeta(GOALS_APPLIED_META) !== key) store.setMeta(GOALS_APPLIED_META, key ?? null);
}

/**
 * `compileGoals` for plan, apply and run, through the compiled-goal cache in the state directory
 * (`goal-cache.ts`): unchanged goals and program skip YAML parsing and compilation. No cache without
 * the launcher's program digest, or with DESIREDSTATE_GOAL_CACHE=off; the last good goals are kept
 * whenever there is a digest, the cache or not.
 */
export async function compileGoalsCached(ctx: CliContext): Promise<CachedGoals> {
  requireGoalsDir(ctx);
  requireStateDir(ctx);
  // A file where state.db should be that its header shows the store would refuse (no database, a newer
  // schema, another program's, none where the directory keeps a lineage) is refused before the cache is written beside it.
  SqliteStateStore.refuseForeign(stateFile(ctx), expectedLineage(ctx));
  // The files read once: keyed by the very bytes compiled. A file changed since is another key's, read
  // anew by the next command, never compiled under this one.
  const sources = await readGoalSources(ctx.goalsDir, { displayRoot: ctx.cwd });
  const scope = scopeOf(ctx);
  // No key to know them by: none are the last applied once they are applied.
  const unkept = (loaded: LoadedGoals): CachedGoals => ({ loaded, applying: (store) => recordApplied(store, undefined), keepAsLastGood: () => undefined });
  if (scope === undefined) return unkept(await compileGoals(ctx, 'hold', sources));
  const { entryIdentity, goalSetKey, goalSetScope, keepAsLastGood, readCompiledGoals, writeCompiledGoals } = await import('./goal-cache.ts');
  const key = goalSetKey(scope, sources);
  const caching = key !== undefined && ctx.env.DESIREDSTATE_GOAL_CACHE !== 'off';
  // Kept as the last good goals only once applied: a plan's (of a branch, say) are not, nor a revision
  // the daemon refuses (a mass deletion) or an apply that could not run (the state locked). `identity`:
  // the cache's file holding them, linked to; undefined where they are not stored there, written out.
  const keeper = (loaded: LoadedGoals, identity: string | undefined): CachedGoals => {
    if (key === undefined) return unkept(loaded);
    const entry = { key, scope: goalSetScope(scope), loaded, identity };
    return { loaded, applying: (store) => recordApplied(store, key), keepAsLastGood: (commit) => void keepAsLastGood(ctx.stateDir, entry, commit) };
  };
  const cached = caching ? readCompiledGoals(ctx.stateDir, key) : undefined;
  if (cached !== undefined) {
    ctx.log.debug({ nodes: cached.result.graph?.size }, 'compiled goals unchanged; taken from the cache');
    return keeper(cached, entryIdentity(ctx.stateDir));
  }
  const timeouts = evaluationTimeouts();
  const loaded = await compileGoals(ctx, 'hold', sources);
  // A policy rule stopped by its time limit (not its cost) gave a verdict of this hour's load: not kept.
  const settled = evaluationTimeouts() === timeouts;
  if (!settled) ctx.log.debug('a policy rule reached its time limit: the compiled goals are not stored (the next command compiles again)');
  if (!caching || loaded.result.graph === undefined || !settled) return keeper(loaded, undefined);
  makeStateDir(ctx);
  if (writeCompiledGoals(ctx.stateDir, key, goalSetScope(scope), loaded)) return keeper(loaded, entryIdentity(ctx.stateDir));
  ctx.log.debug('could not store the compiled goals (the next command compiles again)');
  return keeper(loaded, undefined);
}

/** What the goal sets of this command are keyed by besides their files (`goalSetKey`); undefined without the launcher's program digest. */
function scopeOf(ctx: CliContext): GoalSetScope | undefined {
  if (ctx.program === undefined) return undefined;
  return { goalsDir: ctx.goalsDir, cwd: ctx.cwd, mode: 'hold', program: ctx.program };
}

/**
 * The goal set last applied (by apply or run, `compileGoalsCached`) for this goal directory and program,
 * whatever goal files it was compiled from, with the goals' commit then (null: not known): the last good
 * goals, for a daemon that starts on a revision that does not compile. Undefined when there is none, or
 * none stored is the set `store` records as last applied (`GOALS_APPLIED_META`).
 */
export async function lastGoodGoals(ctx: CliContext, store: SqliteStateStore): Promise<{ readonly loaded: LoadedGoals; readonly commit: string | null } | undefined> {
  const scope = scopeOf(ctx);
  const applied = store.getMeta(GOALS_APPLIED_META);
  if (scope === undefined || applied === undefined) return undefined;
  const { goalSetScope, readLastGoodGoals } = await import('./goal-cache.ts');
  return readLastGoodGoals(ctx.stateDir, goalSetScope(scope), applied);
}

/** How long run and drift history is kept when `--history` is not given. */
export const DEFAULT_HISTORY = '30d';

/** `--history DURATION` (or `forever`): milliseconds of history to keep, undefined to keep everything. */
export function parseHistory(value: string | undefined): number | undefined {
  const text = value ?? DEFAULT_HISTORY;
  if (text === 'forever') return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new UsageError(`--history takes a duration such as 30d or 12h, or forever (got "${text}")`);
  return ms;
}

/** Forgets history older than `keepMs` (see `StateStore.pruneHistory`) and logs what went. Never throws: history is kept a while longer. */
export function pruneHistory(ctx: CliContext, store: SqliteStateStore, keepMs: number | undefined): void {
  if (keepMs === undefined) return;
  try {
    const pruned = store.pruneHistory(Date.now() - keepMs);
    if (pruned.operations + pruned.runs + pruned.drift + pruned.events > 0) ctx.log.info({ ...pruned, keepMs }, 'history pruned');
  } catch (err) {
    ctx.log.warn({ err: errorMessage(err) }, 'could not prune history; it is kept until the next attempt');
  }
}

export function printDiagnostics(ctx: CliContext, diagnostics: readonly Diagnostic[], stream: 'out' | 'err' = 'err'): void {
  if (ctx.format === 'json') {
    ctx.out(JSON.stringify({ diagnostics }, null, 2));
    return;
  }
  // Escaped on stderr as on stdout: a diagnostic names a goal file, under the directory as typed (`--goals`).
  const write = stream === 'out' ? ctx.out : (t: string) => process.stderr.write(`${terminalSafe(t)}\n`);
  for (const d of diagnostics) write(formatDiagnostic(d));
}

/** The state directory's SQLite file, which every command that reads or writes the state opens or looks at. */
export function stateFile(ctx: Pick<CliContext, 'stateDir'>): string {
  return join(ctx.stateDir, 'state.db');
}

/** The file beside state.db that keeps the lineage it was made with (see `openStore`). */
const LINEAGE_FILE = 'lineage';

/**
 * Opens state.db, creating the state directory first unless `readonly` (then the caller, `withStateStore`, has checked it).
 * Refused with DS_STATE_LOCKED while another process holds the lock; when that process is the daemon serving this state,
 * the error says so, and what works beside it.
 */
export function openStore(ctx: CliContext, options: { lock: boolean; readonly?: boolean }): SqliteStateStore {
  if (!options.readonly) makeStateDir(ctx);
  const path = stateFile(ctx);
  const lineageFile = join(ctx.stateDir, LINEAGE_FILE);
  const expected = expectedLineage(ctx);
  try {
    // What only reads (status, drift, history) shows another lineage's state, with a warning: reading
    // it is harmless, and it may be how one finds out. What writes, or plans from it, refuses it.
    const store = SqliteStateStore.open({ path, lock: options.lock, readonly: options.readonly ?? false, expectedLineage: expected });
    if (options.readonly === true && expected !== undefined && store.lineage !== expected) {
      ctx.log.warn({ lineage: store.lineage, expected, lineageFile }, `state file ${path} belongs to lineage ${store.lineage}, not the one its directory was made with (${lineageFile}): it was copied in from another deployment, or replaced; every command that changes the state or plans from it refuses it`);
    }
    if (options.lock && expected !== store.lineage) recordLineage(lineageFile, store.lineage, ctx);
    return store;
  } catch (err) {
    if (err instanceof DesiredStateError && err.code === ErrorCodes.StateStore && err.context.expectedLineage !== undefined) {
      throw new DesiredStateError(ErrorCodes.StateStore, `${err.message}; the directory keeps the lineage it was made with in ${lineageFile}: put its own state.db back, or delete ${lineageFile} to adopt this one`, {
        cause: err,
        context: err.context,
      });
    }
    if (!(err instanceof DesiredStateError) || err.code !== ErrorCodes.StateLocked) throw err;
    const daemon = daemonHolding(path, err.context.pid);
    if (daemon === undefined) throw err;
    const { listen } = daemon;
    throw new DesiredStateError(
      ErrorCodes.StateLocked,
      listen === undefined
        ? `state ${path} is locked by process ${String(err.context.pid)}, the daemon serving it, still starting (loading the goals); stop it first (SIGTERM), or use status, drift and history, which work beside it (retry once it listens)`
        : `state ${path} is locked by process ${String(err.context.pid)}, the daemon serving it (API on ${listen}); stop it first (SIGTERM), or use status, drift, history and retry, which work beside it`,
      { cause: err, context: { ...err.context, ...daemon } },
    );
  }
}

/**
 * The lineage the state directory's state.db was made with, kept beside it (`LINEAGE_FILE`): a state.db copied in
 * from another deployment (a backup of the wrong host) is refused by what writes (apply, run), rather than its
 * nodes taken for this one's and orphaned; and one holding no state is refused as truncated, never made anew.
 * Undefined without a state.db to check, or a lineage file.
 */
function expectedLineage(ctx: CliContext): string | undefined {
  if (stateFileInfo(stateFile(ctx)) === undefined) return undefined;
  const kept = keptLineage(join(ctx.stateDir, LINEAGE_FILE));
  return kept === '' ? undefined : kept;
}

/**
 * The lineage the lineage file `file` records ('' for none); one that cannot be read (a permission, a FIFO,
 * never waited on) is a DS_STATE_STORE error naming it.
 */
function keptLineage(file: string): string {
  const refused = (why: string, cause?: unknown): DesiredStateError => new DesiredStateError(ErrorCodes.StateStore, `cannot read the lineage file ${file}: ${why}`, { cause, context: { path: file } });
  let read: Buffer | { readonly special: string };
  try {
    read = readRegularSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw refused(systemReason(err), err);
  }
  if (!Buffer.isBuffer(read)) throw refused(`it is ${read.special}, not a regular file`);
  return read.toString('utf8').trim();
}

/** Writes the lineage file (a temp file renamed over it); a failure is logged, never fatal: it only guards. */
function recordLineage(file: string, lineage: string, ctx: CliContext): void {
  try {
    // The owner's only, as state.db and its lock are.
    replaceFile(file, (tmp) => writeFileSync(tmp, `${lineage}\n`, { mode: 0o600 }));
  } catch (err) {
    ctx.log.debug({ err, file }, 'lineage not recorded');
  }
}

/**
 * The daemon that recorded itself in the state at `path`, if it is process `pid`: with its API address,
 * none while it is still starting (it records its pid as it takes the lock, its address once it listens).
 */
function daemonHolding(path: string, pid: unknown): { readonly listen?: string } | undefined {
  try {
    const store = SqliteStateStore.open({ path, lock: false, readonly: true });
    try {
      if (store.getMeta(DAEMON_PID) !== String(pid)) return undefined;
      const listen = store.getMeta(DAEMON_LISTEN);
      return listen === undefined ? {} : { listen };
    } finally {
      store.close();
    }
  } catch {
    return undefined; // the plain refusal says enough
  }
}

/**
 * Meta key: a digest of each Backend declaration (`BackendRegistry.identityKey`: its type and what of its config names the
 * resources it acts on, not its name), as of the goals last applied (`apply`) or loaded (`run`). Named anew when what the
 * digest covers changed, so that a state written before is not read as every one changed: its own key is read,
 * against digests made as its release made them (EARLIER_BACKENDS_META).
 */
export const BACKENDS_META = 'backends.declared.v5';

/**
 * The backends declared otherwise in `now` than in `stored` (BACKENDS_META's text): another root,
 * another server, another type (`BackendFactory.identity`), not another timeout. Their nodes are changed goals. A backend new to the goals, or a
 * state that recorded none (before the first apply, or written by an older release), is not.
 */
function changedBackends(stored: string | undefined, now: Readonly<Record<string, string>>): Set<string> {
  let before: Record<string, unknown>;
  try {
    before = stored === undefined ? {} : (JSON.parse(stored) as Record<string, unknown>);
  } catch {
    before = {};
  }
  return new Set(Object.keys(now).filter((id) => typeof before[id] === 'string' && before[id] !== now[id]));
}

/**
 * The keys BACKENDS_META replaced, newest first, each with its digests made as the releases that wrote it
 * made them: read in a state that holds none newer (one a release before applied or loaded last).
 */
const EARLIER_BACKENDS_META: readonly { readonly key: string; digests(loaded: LoadedGoals, cwd: string, factories: BackendRegistry): Record<string, string> }[] = [
  {
    // Each Backend's type, whole config and `location`.
    key: 'backends.declared.v3',
    digests: (loaded, cwd, factories) => {
      const out: Record<string, string> = {};
      for (const d of loaded.factory.backends.values()) {
        const location = factories.get(d.type)?.location?.(d.config, { cwd });
        out[d.id] = sha256(stableStringify({ id: d.id, type: d.type, config: d.config, ...(location === undefined ? {} : { location }) })).slice(0, 32);
      }
      return out;
    },
  },
];

/**
 * The backends declared otherwise in `loaded` than `store` records (`changedBackends`): `declared`
 * (their identity keys) against BACKENDS_META; in a state that holds only an earlier key, digests made as its
 * release made them against that key, so that a Backend moved (another root or cwd) in the change that
 * upgrades is still a goal change for its nodes, not drift for ever. A HOW-only edit (a timeout) made in
 * that same change then counts as one too, as it did in that release.
 */
function changedBackendsIn(store: Pick<SqliteStateStore, 'getMeta'>, loaded: LoadedGoals, cwd: string, factories: BackendRegistry, declared: Readonly<Record<string, string>>): Set<string> {
  const stored = store.getMeta(BACKENDS_META);
  if (stored !== undefined) return changedBackends(stored, declared);
  for (const earlier of EARLIER_BACKENDS_META) {
    const text = store.getMeta(earlier.key);
    if (text !== undefined) return changedBackends(text, earlier.digests(loaded, cwd, factories));
  }
  return new Set();
}

/**
 * Meta key: where each backend identity (`BackendRegistry.identityKey`) that goals were applied or loaded at
 * points, said to people (`BackendRegistry.describeIdentity`), by key: what a delete refused because its
 * backend now points elsewhere names as the place of the resource. Only added to.
 */
const BACKEND_PLACES_META = 'backends.places';

/**
 * What the dispatcher is told of the backends of `loaded` (`InfraNodeProvisioner.declare`): their identities
 * (`keys`, `BackendRegistry.identityKey` by backend id: what BACKENDS_META records once they are applied or loaded), where each
 * points, those `changed` (`changedBackendsIn`: the passes' `changedBackends`), and the places `store`
 * recorded (BACKEND_PLACES_META) with theirs, so that a removed node is deleted only through the backend it
 * was applied at. The one reading of the declarations that plan, apply and run share.
 */
export function declaredBackends(store: Pick<SqliteStateStore, 'getMeta'>, loaded: LoadedGoals, cwd: string): DeclaredBackends {
  const factories = registry();
  const declared: Record<string, string> = {};
  const at: Record<string, string | undefined> = {};
  const places = storedPlaces(store);
  for (const d of loaded.factory.backends.values()) {
    // Which resources the backend reaches, not how nor where it is written: a timeout, a comment or a moved
    // document changes no node. Resolved from the working directory where the config is relative to it (local's root).
    const key = (declared[d.id] = factories.identityKey(d, cwd));
    const place = factories.describeIdentity(d, cwd);
    at[d.id] = place;
    if (place !== undefined) places[key] = place;
  }
  return { keys: declared, at, changed: changedBackendsIn(store, loaded, cwd, factories, declared), places };
}

/** BACKEND_PLACES_META as `store` holds it; none where it holds none, or not an object. */
function storedPlaces(store: Pick<SqliteStateStore, 'getMeta'>): Record<string, string> {
  try {
    const parsed = JSON.parse(store.getMeta(BACKEND_PLACES_META) ?? '{}') as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

/** Records the places of `backends` (BACKEND_PLACES_META), where the state does not hold them yet: before anything is applied through them. */
export function recordBackendPlaces(store: Pick<SqliteStateStore, 'getMeta' | 'setMeta'>, backends: DeclaredBackends): void {
  const text = JSON.stringify(backends.places);
  if (store.getMeta(BACKEND_PLACES_META) !== text) store.setMeta(BACKEND_PLACES_META, text);
}

/** Meta keys a running daemon sets in its state (and clears when it stops): its pid (as it takes the lock) and its API address (once it listens). */
export const DAEMON_LISTEN = 'daemon.listen';
export const DAEMON_PID = 'daemon.pid';

/** The commands already told that their state directory is missing: once is enough (retry looks twice). */
const toldMissing = new WeakSet<CliContext>();

/**
 * Runs `fn` on the state store without the daemon's lock (status, drift,
 * retry and scripts work while it runs); undefined when there is no state yet.
 * `locked` writes holding the lock, as apply does: for what a daemon or an apply
 * running on this state would not see, or would write over (node records, which
 * they keep in memory); refused with DS_STATE_LOCKED while one runs.
 * Undefined, without opening anything, while there is no state.db (a state directory given by name that
 * does not exist is logged as such).
 */
export function withStateStore<T>(ctx: CliContext, mode: 'read' | 'write' | 'locked', fn: (store: SqliteStateStore) => T): T | undefined {
  // A state directory not there yet is one nothing has run with: empty, and these commands exit 0 as
  // CLI.md has them (a script asking `status --state S` before the first apply gets its document). One
  // named (--state, $DESIREDSTATE_STATE) is said to be missing, for the typo it may be.
  if (stateDirInfo(ctx) === undefined) {
    if (ctx.stateDirGiven && !toldMissing.has(ctx)) ctx.log.warn({ stateDir: ctx.stateDir }, `state directory ${ctx.stateDir} does not exist: nothing has run with it yet`);
    toldMissing.add(ctx);
    return undefined;
  }
  requireStateDir(ctx);
  // A state directory this user may not enter is refused (DS_STATE_STORE), never read as "no state yet".
  if (stateFileInfo(stateFile(ctx)) === undefined) return undefined;
  const store = openStore(ctx, { lock: mode === 'locked', readonly: mode === 'read' });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

/** Builds the configured backend instances and the dispatcher over them. */
export function provisioner(ctx: CliContext, loaded: LoadedGoals): { provisioner: InfraNodeProvisioner; backends: Map<string, InfraBackend>; close: () => Promise<void> } {
  const backends = registry().instantiate([...loaded.factory.backends.values()], { cwd: ctx.cwd, log: ctx.log, stateDir: ctx.stateDir, env: ctx.env });
  return {
    provisioner: new InfraNodeProvisioner({ backends }),
    backends,
    close: async () => {
      await Promise.allSettled([...backends.values()].map((b) => b.close()));
    },
  };
}
