import { randomUUID } from 'node:crypto';
import { accessSync, chmodSync, closeSync, constants, existsSync, lstatSync, openSync, readlinkSync, statSync, unlinkSync, writeSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import { z } from 'zod';
import { ArtifactLedger, ARTIFACT_GRANT_INPUT_SQL, ARTIFACT_LEDGER_SQL, ARTIFACT_REQUESTS_SQL } from './artifact-ledger.ts';
import type { Clock } from './clock.ts';
import { readRegularSync, specialFileKind } from './read-bounded.ts';
import { makeDirectories } from './make-directories.ts';
import { systemClock } from './clock.ts';
import { DesiredStateError, ErrorCodes, errorMessage, systemReason } from './errors.ts';
import type { Fault } from './fault.ts';
import type { NodeId } from './node-spec.ts';
import { bootId, inAnotherBoot, isAlive, processStat, runsAsStarted } from './process-alive.ts';
import type { FieldDiff, ObservationMemo, Outputs } from './provisioner.ts';
import type {
  DriftAction,
  DriftReport,
  HistoryPruned,
  JournalEvent,
  NodeRecord,
  NodeStatus,
  OperationOutcome,
  OperationRecord,
  PendingOperation,
  RunRecord,
  RunSummary,
  StateStore,
} from './state-store.ts';

/** One schema step. Steps are applied in order; `user_version` is the number applied. */
export interface Migration {
  readonly description: string;
  readonly sql: string;
}

/**
 * The schema, as an append-only list: never edit a released step, add one.
 * Node records keep outputs, faults and snapshots as JSON text.
 */
export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    description: 'initial schema',
    sql: `
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;

      CREATE TABLE nodes (
        id              TEXT PRIMARY KEY,
        goal            TEXT NOT NULL,
        type            TEXT NOT NULL,
        backend_id      TEXT NOT NULL,
        status          TEXT NOT NULL,
        applied_digest  TEXT,
        outputs         TEXT,
        managed         INTEGER NOT NULL CHECK (managed IN (0, 1)),
        last_fault      TEXT,
        attempts        INTEGER NOT NULL,
        retry_at        INTEGER,
        reason          TEXT,
        snapshot        TEXT,
        deletion_policy TEXT NOT NULL CHECK (deletion_policy IN ('Orphan', 'Delete')),
        updated_at      INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        trigger     TEXT NOT NULL,
        goals_commit TEXT,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        summary     TEXT
      ) STRICT;

      -- No foreign key to nodes: the audit trail outlives a removed node, and a
      -- create is recorded before the node's first record is written.
      CREATE TABLE operations (
        id          INTEGER PRIMARY KEY,
        node        TEXT NOT NULL,
        op          TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete')),
        run_id      INTEGER REFERENCES runs(id),
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        outcome     TEXT CHECK (outcome IN ('done', 'failed', 'adopted', 'abandoned')),
        detail      TEXT,
        CHECK ((finished_at IS NULL) = (outcome IS NULL))
      ) STRICT;
      CREATE INDEX operations_by_node ON operations (node, op);
      CREATE INDEX operations_pending ON operations (id) WHERE finished_at IS NULL;

      CREATE TABLE drift (
        id           INTEGER PRIMARY KEY,
        goal         TEXT NOT NULL,
        node         TEXT NOT NULL,
        backend_id   TEXT NOT NULL,
        diffs        TEXT NOT NULL,
        first_seen   INTEGER NOT NULL,
        detected_at  INTEGER NOT NULL,
        action       TEXT NOT NULL CHECK (action IN ('corrected', 'reported')),
        flapping     INTEGER NOT NULL CHECK (flapping IN (0, 1)),
        goals_commit TEXT
      ) STRICT;
      CREATE INDEX drift_by_time ON drift (detected_at);
      CREATE INDEX drift_by_node ON drift (node, detected_at);

      CREATE TABLE events (
        id   INTEGER PRIMARY KEY,
        at   INTEGER NOT NULL,
        node TEXT,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
      ) STRICT;
      CREATE INDEX events_by_time ON events (at);
      CREATE INDEX events_by_node ON events (node, at) WHERE node IS NOT NULL;
    `,
  },
  {
    description: 'artifact ledger: generated artifacts, reviews, one-shot grants and runs',
    sql: ARTIFACT_LEDGER_SQL,
  },
  {
    description: 'history retention: find the operations of a run, and the finished ones by age',
    sql: `
      CREATE INDEX operations_by_run ON operations (run_id) WHERE run_id IS NOT NULL;
      CREATE INDEX operations_finished ON operations (finished_at) WHERE finished_at IS NOT NULL;
      CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
    `,
  },
  {
    description: "observation memos: a backend's note of what it last saw of a node (a file's stat and content hash)",
    sql: `ALTER TABLE nodes ADD COLUMN memo TEXT;`,
  },
  {
    // Every operation inserted a key at a random place of this index (by node name), ~4 µs of each
    // operation's write (a repair of 1,500 files: 6 ms of its commit); no query of the program used
    // it, only the per-node count tests make (`countOperations`, a scan of the audit trail).
    description: 'the operations of a node are no longer indexed by node: nothing but a test looks them up that way',
    sql: `DROP INDEX operations_by_node;`,
  },
  {
    // A grant waited, open, for whatever use of its node came next (any verb, days later) and was
    // taken by it unasked: a grant now answers a request (what a held node waits for) and names its action.
    description: 'artifact grants name the action they permit and can be voided; artifact requests record what a subject waits for',
    sql: ARTIFACT_REQUESTS_SQL,
  },
  {
    // A grant permitted its action with whatever input the node had when it ran: a goal changed after the
    // approval ran content nobody approved. A grant now names the input it was given for.
    description: 'artifact grants and requests name the input (its digest, and as shown) that a grant permits',
    sql: ARTIFACT_GRANT_INPUT_SQL,
  },
  {
    // A report was stored `corrected` before its correction ran, and stayed so when the correction failed.
    // SQLite cannot change a CHECK in place: the table is made again.
    description: "drift reports may say `correction-failed`: the drift was to be corrected and is still there",
    sql: `
      CREATE TABLE drift_new (
        id           INTEGER PRIMARY KEY,
        goal         TEXT NOT NULL,
        node         TEXT NOT NULL,
        backend_id   TEXT NOT NULL,
        diffs        TEXT NOT NULL,
        first_seen   INTEGER NOT NULL,
        detected_at  INTEGER NOT NULL,
        action       TEXT NOT NULL CHECK (action IN ('corrected', 'reported', 'correction-failed')),
        flapping     INTEGER NOT NULL CHECK (flapping IN (0, 1)),
        goals_commit TEXT
      ) STRICT;
      INSERT INTO drift_new SELECT * FROM drift;
      DROP TABLE drift;
      ALTER TABLE drift_new RENAME TO drift;
      CREATE INDEX drift_by_time ON drift (detected_at);
      CREATE INDEX drift_by_node ON drift (node, detected_at);
    `,
  },
  {
    // No table changes. A record's applied digest may now end in `#` and the managed digest
    // (`digestAt`), which a release of schema 8 reads as a changed goal: it would update a node whose
    // hand edit it should report. The version step makes such a release refuse the file as newer.
    description: 'node records may hold managed digests (applied digest `goal#managed`)',
    sql: '',
  },
]);

/** Inserts or replaces a node record. */
const UPSERT_NODE = `
  INSERT INTO nodes (id, goal, type, backend_id, status, applied_digest, outputs, managed, last_fault, attempts, retry_at, reason, snapshot, memo, deletion_policy, updated_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET
    goal = excluded.goal, type = excluded.type, backend_id = excluded.backend_id, status = excluded.status,
    applied_digest = excluded.applied_digest, outputs = excluded.outputs, managed = excluded.managed,
    last_fault = excluded.last_fault, attempts = excluded.attempts, retry_at = excluded.retry_at,
    reason = excluded.reason, snapshot = excluded.snapshot, memo = excluded.memo, deletion_policy = excluded.deletion_policy,
    updated_at = excluded.updated_at`;

/** Rows deleted per transaction by `pruneHistory`. */
const PRUNE_CHUNK = 5_000;

/** 'DSST': marks a SQLite file as a desiredstate state file. */
const APPLICATION_ID = 0x44535354;
/** Meta keys the store owns; `setMeta` refuses them. */
const RESERVED_META_PREFIX = 'store.';
const LINEAGE_KEY = 'store.lineage';
const CREATED_AT_KEY = 'store.createdAt';

/** SQLite settings: limits as data, validated once at open. */
export interface SqliteTuning {
  /** How long a writer waits for another connection's lock before failing. */
  readonly busyTimeoutMs: number;
  /** The WAL is truncated to this size after a checkpoint. */
  readonly journalSizeLimitBytes: number;
  /** Automatic checkpoint once the WAL holds this many pages (0 disables). */
  readonly walAutocheckpointPages: number;
  /** Page cache per connection; large enough that a 100k-node `putNodes` does not spill. */
  readonly cacheSizeKiB: number;
}

const tuningSchema = z.strictObject({
  busyTimeoutMs: z.number().int().min(0).max(600_000),
  journalSizeLimitBytes: z.number().int().min(-1),
  walAutocheckpointPages: z.number().int().min(0),
  cacheSizeKiB: z.number().int().min(64),
});

export const DEFAULT_SQLITE_TUNING: SqliteTuning = Object.freeze({
  busyTimeoutMs: 5_000,
  journalSizeLimitBytes: 64 * 1024 * 1024,
  walAutocheckpointPages: 1_000,
  cacheSizeKiB: 64 * 1024,
});

export interface SqliteStateStoreOptions {
  /** The database file, for example `.desiredstate/state.db`. */
  readonly path: string;
  /**
   * Hold the exclusive lock (`<path>.lock`): the daemon and writing commands
   * do; read-only commands (status, drift, history) pass `false`.
   */
  readonly lock: boolean;
  /** Open read-only (implies the file must exist; nothing is migrated). */
  readonly readonly?: boolean | undefined;
  /** `create-or-check` (default): create a missing file with a new lineage. `must-exist`: refuse a missing file. */
  readonly lineage?: 'create-or-check' | 'must-exist' | undefined;
  /**
   * The lineage the file was made with: a file of another (a state file copied from another deployment)
   * is refused, unless `readonly` (reading it is harmless); one holding no state at all is refused either way.
   */
  readonly expectedLineage?: string | undefined;
  readonly clock?: Clock | undefined;
  readonly tuning?: Partial<SqliteTuning> | undefined;
  /** The schema steps; the default is `MIGRATIONS`. Tests pass shorter or longer lists. */
  readonly migrations?: readonly Migration[] | undefined;
}

/** The outcome of a WAL checkpoint (SQLite's three numbers). */
export interface CheckpointResult {
  /** True when a reader or writer kept the checkpoint from completing. */
  readonly busy: boolean;
  /** Frames in the WAL. */
  readonly logFrames: number;
  /** Frames copied back into the database. */
  readonly checkpointedFrames: number;
}

/**
 * SQLite's primary result codes that say the state file cannot be written now — a condition of
 * the machine (disk full, read-only, failing device), not of the code — with what to tell the operator.
 */
const WRITE_FAILURES: Readonly<Record<string, string>> = {
  SQLITE_FULL: 'the disk is full',
  SQLITE_IOERR: 'the disk refused the write (full, read-only or failing)',
  SQLITE_READONLY: 'the file or its file system is read-only',
  SQLITE_CANTOPEN: 'a file beside it (the WAL, the shared memory) cannot be opened',
  SQLITE_PERM: 'permission denied',
};

/**
 * A write that failed for one of `WRITE_FAILURES` as a StateStore error (nothing of it was recorded); any other
 * error as it is. A `reading` open writes only the shared memory beside the file, which is said instead.
 */
function writeFailure(err: unknown, path: string, reading = false): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return err;
  // Extended codes (SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED) share their primary code's meaning.
  const why = WRITE_FAILURES[code.split('_', 2).join('_')];
  if (why === undefined) return err;
  const message = reading
    ? `cannot read state file ${path}: reading it writes ${path}-shm beside it (the state is kept in WAL mode), and ${why} (${code}); nothing was changed`
    : `cannot write the state file ${path}: ${why} (${code}); nothing of this write was recorded`;
  return storeError(message, path, { cause: err, context: { sqliteCode: code } });
}

/**
 * What is at `path`, a file of the state (undefined: nothing there); a DS_STATE_STORE error naming it
 * when it cannot be looked at (a state directory this user may not enter) or is a link to nothing (SQLite
 * said "unable to open database file", status "no state yet"), never taken for no state.
 */
export function stateFileInfo(path: string): Stats | undefined {
  try {
    const info = statSync(path, { throwIfNoEntry: false });
    if (info === undefined && lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() === true) {
      throw storeError(`state file ${path} is a link to nothing (${readlinkSync(path)}): restore what it points to, or remove it`, path);
    }
    return info;
  } catch (err) {
    if (err instanceof DesiredStateError) throw err;
    // A file where a directory on the way should be: nothing is there (the caller refuses that directory).
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw storeError(`cannot read state file ${path}: ${systemReason(err)}`, path, { cause: err });
  }
}

/** Why SQLite could not open the state file: the permission this user lacks, said so, rather than its "unable to open database file". */
function whyCannotOpen(path: string, readonly: boolean, err: unknown): string {
  try {
    accessSync(path, readonly ? constants.R_OK : constants.R_OK | constants.W_OK);
  } catch (denied) {
    const code = (denied as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return systemReason(denied);
  }
  return errorMessage(err);
}

/** The refusal of a file that is not a desiredstate state file, saying how that shows. */
function notAStateFile(path: string, why: string): DesiredStateError {
  return storeError(`${path} is not a desiredstate state file (${why})`, path);
}

/** A state-store error about the file at `path` (code DS_STATE_STORE). */
function storeError(message: string, path: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}): DesiredStateError {
  return new DesiredStateError(ErrorCodes.StateStore, message, { cause: options.cause, context: { path, ...options.context } });
}

/** SQLite's file header: its magic, then (at these offsets) the page size, journal mode, page count, user_version and application_id; page 1's b-tree header follows. */
const SQLITE_MAGIC = 'SQLite format 3\0';
const HEADER_BYTES = 108;

/** Where a state is expected, and the lineage its directory was made with, if it keeps one (see `refusalOf`). */
interface StateKept {
  readonly lineage?: string | undefined;
}

/**
 * The refusal of the file at `path` that its header alone tells (nothing is opened for writing, nothing
 * written beside it, nothing waited for): no regular file, no SQLite database at all, a schema newer than
 * the `known` versions, another program's mark (application_id), a schema version without our mark or
 * tables without a schema version (a desiredstate file always has its tables, version and mark written in
 * one transaction), or, where a state is `kept`, none. Undefined when the header does not tell (no file, a
 * short one, or a WAL beside it that may hold what the header does not show yet): SQLite then decides, in
 * `open` and `migrate`.
 */
function refusalOf(path: string, known: number, kept: StateKept | undefined): DesiredStateError | undefined {
  let header: Buffer;
  try {
    const read = readRegularSync(path, HEADER_BYTES);
    if (!Buffer.isBuffer(read)) return notRegular(path, read.special);
    header = read;
  } catch {
    return undefined; // SQLite's open says why it cannot be read
  }
  if (header.length === 0) return kept === undefined ? undefined : noState(path, 'is empty (0 bytes)', kept);
  // SQLite takes any file that does not start with its magic for none of its own.
  if (header.length < SQLITE_MAGIC.length || header.toString('latin1', 0, SQLITE_MAGIC.length) !== SQLITE_MAGIC) return notADatabase(path, 'SQLITE_NOTADB');
  if (header.length < HEADER_BYTES) return undefined;
  const appId = header.readInt32BE(68);
  if (appId !== 0 && appId !== APPLICATION_ID) return notAStateFile(path, `application_id ${appId}`);
  // A WAL beside it may hold a newer version still, never an older one: the versions only grow.
  const version = header.readInt32BE(60);
  if (version > known) return newerSchema(path, version, known);
  // Never in the WAL only: the mark is written with the first version, and the header shows both.
  if (version > 0 && appId !== APPLICATION_ID) return notOurVersion(path, version);
  const walMode = header[18] === 2;
  if (walMode && (stateFileInfo(`${path}-wal`)?.size ?? 0) > 0) return undefined;
  // Fewer pages than its header counts (when the count is current): cut short, SQLITE_CORRUPT at the first read past its end.
  const pageSize = header.readUInt16BE(16) === 1 ? 65536 : header.readUInt16BE(16);
  const current = header.readUInt32BE(24) === header.readUInt32BE(92);
  if (current && (stateFileInfo(path)?.size ?? 0) < header.readUInt32BE(28) * pageSize) return notADatabase(path, 'SQLITE_CORRUPT');
  if (appId !== 0 || version !== 0) return undefined;
  // Page 1 is the schema table's root: an interior page (0x05), or a leaf (0x0d) with cells, holds tables.
  if (header[100] !== 0x0d || header.readUInt16BE(103) > 0) return notAStateFile(path, 'it has tables but no schema version');
  return kept === undefined ? undefined : noState(path, NO_TABLES, kept);
}

/** How a SQLite file without tables is said to hold no state (`noState`). */
const NO_TABLES = 'holds no state (a SQLite database without tables)';

/** The refusal of what is at `path`, `special` (`specialFileKind`): never opened, as a FIFO waits forever. */
function notRegular(path: string, special: string): DesiredStateError {
  return storeError(`state file ${path} is ${special}, not a regular file`, path);
}

/** The refusal of a SQLite file of schema `version` without our mark: desiredstate writes both at once. */
function notOurVersion(path: string, version: number): DesiredStateError {
  return notAStateFile(path, `schema version ${version} without desiredstate's application_id`);
}

/**
 * The refusal of a state file that holds no state (`what`) where one is `kept`: its directory keeps the
 * lineage it was made with, or it is only to be read. Never taken for a new state, which was minted a new
 * lineage, then refused as another deployment's, the file changed. A SQLite file without tables is what a
 * copy of state.db taken while a daemon ran gives before its first checkpoint (the state all in its -wal).
 */
function noState(path: string, what: string, kept: StateKept): DesiredStateError {
  const made = kept.lineage === undefined ? '' : `, though its directory was made with lineage ${kept.lineage}`;
  const copied =
    what === NO_TABLES
      ? `. A copy of state.db taken without its state.db-wal while a daemon ran is one: take backups with sqlite3 ${path} ".backup FILE", or with the daemon stopped`
      : '';
  return storeError(`state file ${path} ${what}${made}: truncated, or emptied? Restore it from a backup; to start a new state instead, delete it${made === '' ? '' : ' and the lineage file beside it'}${copied}`, path);
}

/** The refusal of a file that is no SQLite database, or a damaged one, with SQLite's `code` for it. */
function notADatabase(path: string, code: string, cause?: unknown): DesiredStateError {
  return storeError(`state file ${path} is not a database, or is damaged (${code})`, path, { cause });
}

/** The refusal of a file of schema `version`, newer than the `known` ones. */
function newerSchema(path: string, version: number, known: number): DesiredStateError {
  return storeError(
    `state file ${path} has schema version ${version}, newer than the ${known} this desiredstate knows: it was written by a newer release; upgrade desiredstate (or restore a backup) rather than downgrade the file`,
    path,
    { context: { schemaVersion: version, knownVersion: known } },
  );
}

// ---------------------------------------------------------------------------
// The lock file

interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
  /** The boot it was written in (Linux's boot id), or '' (not known, or an older lock file). */
  readonly boot: string;
  /** When its process started, in clock ticks since boot (Linux), or '' (not known, or an older lock file). */
  readonly start: string;
}

/**
 * The lock file's text and the holder it names; undefined when there is none. Something else there (a
 * directory, a FIFO, a link to nothing) is a DS_STATE_STORE error naming it: never waited on, never
 * taken for a lock released and made again.
 */
function readLock(lockPath: string): { readonly text: string; readonly holder: LockHolder | undefined } | undefined {
  let read: Buffer | { readonly special: string };
  try {
    read = readRegularSync(lockPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storeError(`cannot read the lock file ${lockPath}: ${systemReason(err)}`, lockPath, { cause: err });
    if (lstatSync(lockPath, { throwIfNoEntry: false })?.isSymbolicLink() !== true) return undefined;
    read = { special: 'a link to nothing' };
  }
  if (!Buffer.isBuffer(read)) throw storeError(`lock file ${lockPath} is ${read.special}, not a regular file; remove it`, lockPath);
  const text = read.toString('utf8');
  const [pidLine, host, token, boot, start] = text.split('\n');
  const pid = Number(pidLine);
  return { text, holder: Number.isSafeInteger(pid) && pid > 0 ? { pid, host: host ?? '', token: token ?? '', boot: boot ?? '', start: start ?? '' } : undefined };
}

/**
 * Whether the process that wrote a lock as `holder` still runs: its pid exists and is not a zombie,
 * and, on this host, the lock was written in this boot (a lock left by a power cut names a pid that, after the
 * reboot, may well be running something else) by the process that runs under that pid now: its start,
 * in clock ticks since boot (not the wall clock, which may be stepped), is the one written. A daemon
 * killed as pid 1 of a container, restarted in it as pid 1 again, found its own pid "alive" in the
 * lock for ever. A lock without a boot id or start (written by a release before there was one) is
 * judged by its pid alone.
 */
function holderAlive(holder: LockHolder): boolean {
  if (holder.host === hostname()) {
    if (inAnotherBoot(holder.boot)) return false;
    // What runs under the pid now (Linux) must have the start written; both say no to a zombie.
    if (holder.start !== '' && holder.boot !== '') return runsAsStarted(holder.pid, holder.start);
  }
  return isAlive(holder.pid);
}

/** The state file, its WAL and shared-memory files and the lock: the owner's only. */
const STATE_FILE_MODE = 0o600;

/**
 * Makes the state file readable by its owner only, before SQLite opens it.
 * It holds drift reports with desired values, the operation journal and
 * backends' memos, as sensitive as `compiled-goals.json` (0600). A missing
 * file is created empty with 0600 (SQLite takes an empty file as a new
 * database); SQLite then creates `-wal` and `-shm` with the database's
 * mode. An existing file with group or other bits (every file the releases
 * before this one made, 0644) is tightened, with any `-wal`/`-shm` left
 * beside it: it was never a choice to share it, and leaving the files of
 * every upgraded deployment world-readable would leave the defect in place.
 * Whoever wants others to read the state uses `status` or the HTTP API.
 * The `-wal` and `-shm` are made the owner's to write too: a read-only
 * command run while state.db was 0400 left them 0400, and every writing
 * command after it failed with SQLITE_READONLY though state.db was
 * writable again. A file we do not own (EPERM) is left as it is: opening
 * it is still ours to try.
 */
function ownerOnly(path: string, create: boolean): void {
  if (create) {
    try {
      closeSync(openSync(path, 'wx', STATE_FILE_MODE));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw storeError(`cannot create state file ${path}: ${errorMessage(err)}`, path, { cause: err });
    }
  }
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      const mode = statSync(file).mode & 0o777;
      const wanted = file === path ? mode & 0o700 : (mode & 0o700) | 0o600;
      if (wanted !== mode) chmodSync(file, wanted);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EPERM') throw storeError(`cannot restrict the mode of ${file}: ${errorMessage(err)}`, path, { cause: err });
    }
  }
}

/**
 * Takes `<db>.lock`: created with O_EXCL and holding our PID, host and a
 * token. A lock whose PID is alive refuses the open; one whose PID is dead
 * (the holder was killed) is taken over. The PID check is only meaningful on
 * one host, which is what an embedded SQLite file is for.
 *
 * Residual race, accepted: two processes taking over the same stale lock
 * within the microseconds between re-reading and unlinking it.
 */
function acquireLock(lockPath: string, dbPath: string): LockHolder {
  const me: LockHolder = { pid: process.pid, host: hostname(), token: randomUUID(), boot: bootId() ?? '', start: processStat(process.pid)?.start ?? '' };
  const content = `${me.pid}\n${me.host}\n${me.token}\n${me.boot}\n${me.start}\n`;
  for (let tries = 0; tries < 5; tries++) {
    try {
      const fd = openSync(lockPath, 'wx', STATE_FILE_MODE);
      let written = false;
      try {
        writeSync(fd, content);
        written = true;
      } finally {
        closeSync(fd);
        // Made but not written (a full disk): not left behind empty, for the next command to take over.
        if (!written) {
          try {
            unlinkSync(lockPath);
          } catch {
            // The write's error is the one to report; an empty lock file is taken over next time.
          }
        }
      }
      return me;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw storeError(`cannot create the lock file ${lockPath}: ${errorMessage(err)}`, dbPath, { cause: err, context: { lockPath } });
      }
    }
    const seen = readLock(lockPath);
    if (seen === undefined) continue; // released meanwhile: try again
    const holder = seen.holder;
    if (holder !== undefined && holderAlive(holder)) {
      throw new DesiredStateError(
        ErrorCodes.StateLocked,
        `state ${dbPath} is locked by process ${holder.pid}${holder.host ? ` on ${holder.host}` : ''} (lock file ${lockPath}); is another desiredstate running? If that process is not desiredstate, remove the lock file`,
        { context: { path: dbPath, lockPath, pid: holder.pid, host: holder.host } },
      );
    }
    // Stale (the holder died, or the file is garbage): remove it only if it is still the one we read.
    const again = readLock(lockPath);
    if (again !== undefined && again.text === seen.text) {
      try {
        unlinkSync(lockPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storeError(`cannot remove the stale lock file ${lockPath}: ${errorMessage(err)}`, dbPath, { cause: err });
      }
    }
  }
  throw storeError(`cannot take the lock file ${lockPath}: it keeps changing`, dbPath, { context: { lockPath } });
}

function releaseLock(lockPath: string, me: LockHolder): void {
  let seen;
  try {
    seen = readLock(lockPath);
  } catch {
    // No lock of ours there any more (a directory above it made a file, something else at its path): nothing to release.
    return;
  }
  // Never remove a lock another process took over.
  if (seen?.holder?.token !== me.token) return;
  try {
    unlinkSync(lockPath);
  } catch {
    // Already gone: nothing to release.
  }
}

/** `path`'s device and inode (following symlinks, as SQLite opens it), or undefined when nothing is there. */
function fileId(path: string): string | undefined {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  return st === undefined ? undefined : `${st.dev}:${st.ino}`;
}

// ---------------------------------------------------------------------------
// Rows

interface NodeRow {
  id: string;
  goal: string;
  type: string;
  backend_id: string;
  status: string;
  applied_digest: string | null;
  outputs: string | null;
  managed: number;
  last_fault: string | null;
  attempts: number;
  retry_at: number | null;
  reason: string | null;
  snapshot: string | null;
  memo: string | null;
  deletion_policy: string;
  updated_at: number;
}

interface OperationRow {
  id: number;
  node: string;
  op: string;
  run_id: number | null;
  started_at: number;
}

interface FinishedOperationRow extends OperationRow {
  finished_at: number | null;
  outcome: OperationOutcome | null;
  detail: string | null;
}

interface RunRow {
  id: number;
  trigger: string;
  goals_commit: string | null;
  started_at: number;
  finished_at: number | null;
  summary: string | null;
}

interface DriftRow {
  id: number;
  goal: string;
  node: string;
  backend_id: string;
  diffs: string;
  first_seen: number;
  detected_at: number;
  action: string;
  flapping: number;
  goals_commit: string | null;
}

interface EventRow {
  id: number;
  at: number;
  node: string | null;
  kind: string;
  data: string;
}

const json = (v: unknown): string | null => (v === undefined || v === null ? null : JSON.stringify(v));
const parse = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

/** A fault as a previous release stored it: it said `notTheBackend` with one flag or the other. */
type StoredFault = Fault & { readonly beforeCall?: true; readonly nodeOnly?: true };

/** A stored fault as `Fault` says it now: a row written by a previous release reads as it meant. */
function storedFault(text: string | null): Fault | null {
  const stored = parse<StoredFault>(text);
  if (stored?.beforeCall !== true && stored?.nodeOnly !== true) return stored;
  const { beforeCall, nodeOnly: _nodeOnly, ...fault } = stored;
  return { ...fault, notTheBackend: beforeCall === true ? 'before-call' : 'node-only' };
}

function toNode(r: NodeRow): NodeRecord {
  return {
    id: r.id,
    goal: r.goal,
    type: r.type,
    backendId: r.backend_id,
    status: r.status as NodeStatus,
    appliedDigest: r.applied_digest,
    outputs: parse<Outputs>(r.outputs),
    managed: r.managed === 1,
    lastFault: storedFault(r.last_fault),
    attempts: r.attempts,
    retryAt: r.retry_at,
    reason: r.reason,
    snapshot: parse<unknown>(r.snapshot),
    memo: parse<ObservationMemo>(r.memo),
    deletionPolicy: r.deletion_policy as NodeRecord['deletionPolicy'],
    updatedAt: r.updated_at,
  };
}

function toOperation(r: OperationRow): PendingOperation {
  return { id: r.id, node: r.node, op: r.op as PendingOperation['op'], runId: r.run_id, startedAt: r.started_at };
}

function toRun(r: RunRow): RunRecord {
  return { id: r.id, startedAt: r.started_at, finishedAt: r.finished_at, trigger: r.trigger, commit: r.goals_commit, summary: parse<RunSummary>(r.summary) };
}

function toDrift(r: DriftRow): DriftReport {
  return {
    id: r.id,
    goal: r.goal,
    node: r.node,
    backendId: r.backend_id,
    diffs: JSON.parse(r.diffs) as FieldDiff[],
    firstSeen: r.first_seen,
    detectedAt: r.detected_at,
    action: r.action as DriftAction,
    flapping: r.flapping === 1,
    commit: r.goals_commit,
  };
}

function toEvent(r: EventRow): JournalEvent {
  return { id: r.id, at: r.at, node: r.node, kind: r.kind, data: JSON.parse(r.data) as Record<string, unknown> };
}

type Filter = { since?: number | undefined; node?: NodeId | undefined; limit?: number | undefined };

// ---------------------------------------------------------------------------
// The store

/**
 * The embedded state store: one SQLite file in WAL mode with `synchronous=FULL`,
 * so a write is durable when the call returns. Every write is one
 * `BEGIN IMMEDIATE` transaction (no upgrade deadlocks between connections).
 * Not safe for two writing processes: the lock file keeps a second daemon out.
 */
export class SqliteStateStore implements StateStore {
  readonly path: string;
  /** The random id written when the file was created; copies share it, fresh files do not. */
  readonly lineage: string;
  /** The schema version of the file (after migration). */
  readonly schemaVersion: number;
  readonly readonly: boolean;
  /** Generated artifacts, their reviews, grants and runs (the trust ledger), in the same file. */
  readonly artifacts: ArtifactLedger;

  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #lock: { readonly path: string; readonly holder: LockHolder } | undefined;
  /** The state file's device and inode as opened, when the lock is held (`lostOwnership`); undefined: gone already. */
  readonly #fileId: string | undefined;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #putOne: (record: NodeRecord) => void;
  readonly #removeOne: (id: NodeId) => void;
  readonly #putNodes: (records: readonly NodeRecord[]) => void;
  readonly #removeNodes: (ids: readonly NodeId[]) => void;
  #closed = false;

  private constructor(init: {
    path: string;
    db: Database.Database;
    clock: Clock;
    lock: { path: string; holder: LockHolder } | undefined;
    lineage: string;
    schemaVersion: number;
    readonly: boolean;
  }) {
    this.path = init.path;
    this.#db = init.db;
    this.#clock = init.clock;
    this.#lock = init.lock;
    this.#fileId = init.lock === undefined ? undefined : fileId(init.path);
    this.lineage = init.lineage;
    this.schemaVersion = init.schemaVersion;
    this.readonly = init.readonly;
    this.artifacts = new ArtifactLedger({ statement: (sql) => this.#stmt(sql), clock: this.#clock, transaction: (fn) => this.transaction(fn) });

    // Prepared on first use: a store opened on an older schema (tests of migrations) never needs it.
    let upsert: Statement | undefined;
    this.#putOne = (r) =>
      void (upsert ??= this.#db.prepare(UPSERT_NODE)).run(
        r.id, r.goal, r.type, r.backendId, r.status, r.appliedDigest, json(r.outputs), r.managed ? 1 : 0,
        json(r.lastFault), r.attempts, r.retryAt, r.reason, json(r.snapshot), json(r.memo), r.deletionPolicy, r.updatedAt,
      );
    const put = this.#db.transaction((records: readonly NodeRecord[]) => {
      for (const r of records) this.#putOne(r);
    });
    this.#putNodes = (records) => put.immediate(records);
    const del = this.#db.prepare('DELETE FROM nodes WHERE id = ?');
    this.#removeOne = (id) => void del.run(id);
    const remove = this.#db.transaction((ids: readonly NodeId[]) => {
      for (const id of ids) this.#removeOne(id);
    });
    this.#removeNodes = (ids) => remove.immediate(ids);
  }

  /**
   * Who holds the lock of the state file at `path` (a running `run` or
   * `apply`), if anyone: its pid and host, and whether that process is alive
   * (known only on this host; a lock left by a killed process is not held),
   * and since when it has held it (the lock file's mtime, epoch ms): what it
   * started before then is not its own.
   */
  static lockHolder(path: string): { readonly pid: number; readonly host: string; readonly alive: boolean | undefined; readonly since: number } | undefined {
    const lockPath = `${path}.lock`;
    const holder = readLock(lockPath)?.holder;
    if (holder === undefined) return undefined;
    let since: number;
    try {
      since = statSync(lockPath).mtimeMs;
    } catch {
      return undefined; // released meanwhile
    }
    return { pid: holder.pid, host: holder.host, alive: holder.host === hostname() ? holderAlive(holder) : undefined, since };
  }

  /**
   * Refuses (DS_STATE_STORE) a file at `path` whose header says it is no state file of a release that
   * knows `known` schema versions (no database, a newer schema, another program's), reading it only:
   * `open` does before it changes anything, and so does a command that writes beside the state file
   * before it opens it (the compiled-goal cache).
   */
  static refuseForeign(path: string, expectedLineage?: string, known = MIGRATIONS.length): void {
    const refusal = refusalOf(path, known, expectedLineage === undefined ? undefined : { lineage: expectedLineage });
    if (refusal !== undefined) throw refusal;
  }

  /**
   * Opens (creating if allowed) and migrates a state file. Refuses, with
   * `DS_STATE_LOCKED`, a file another live process holds; with
   * `DS_STATE_STORE`, a file of a newer schema, of another lineage, or that
   * is not a desiredstate state file.
   */
  static open(options: SqliteStateStoreOptions): SqliteStateStore {
    const { path } = options;
    const readonly = options.readonly ?? false;
    const clock = options.clock ?? systemClock;
    const migrations = options.migrations ?? MIGRATIONS;
    const tuning = tuningSchema.safeParse({ ...DEFAULT_SQLITE_TUNING, ...options.tuning });
    if (!tuning.success) {
      throw storeError(`invalid state store tuning: ${tuning.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, path);
    }
    if (readonly && options.lock) throw storeError('a read-only state store does not take the lock', path);

    const mustExist = readonly || options.lineage === 'must-exist';
    // Looked at before the lock: a status command on a fresh checkout must say "no state", not "cannot
    // lock"; and one that may not enter the state directory must say that, not "no state".
    const existing = stateFileInfo(path);
    if (mustExist && existing === undefined) throw storeError(`no state file at ${path}`, path);
    if (!mustExist) makeDirectories(dirname(path), 0o700);
    // Never handed to SQLite, nor its WAL and shared memory: a directory gives "disk I/O error", a FIFO an open that waits forever.
    for (const file of [path, `${path}-wal`, `${path}-shm`]) {
      const info = file === path ? existing : stateFileInfo(file);
      if (info !== undefined && !info.isFile()) throw notRegular(file, specialFileKind(info));
    }
    // A state is expected where its lineage is known, or where it is to be read: one holding none is refused.
    const kept = readonly || options.expectedLineage !== undefined ? { lineage: options.expectedLineage } : undefined;
    // Before the lock, the mode and the WAL: another program's file, or one holding no state, is left exactly as it was.
    const refusal = refusalOf(path, migrations.length, kept);
    if (refusal !== undefined) throw refusal;
    const lockPath = `${path}.lock`;
    const lock = options.lock ? { path: lockPath, holder: acquireLock(lockPath, path) } : undefined;
    let db: Database.Database | undefined;
    try {
      if (!readonly) ownerOnly(path, !mustExist);
      try {
        db = new Database(path, { readonly, fileMustExist: mustExist, timeout: tuning.data.busyTimeoutMs });
      } catch (err) {
        throw storeError(
          mustExist && (err as { code?: string }).code === 'SQLITE_CANTOPEN' && !existsSync(path) ? `no state file at ${path}` : `cannot open state file ${path}: ${whyCannotOpen(path, readonly, err)}`,
          path,
          { cause: err },
        );
      }
      db.pragma(`busy_timeout = ${tuning.data.busyTimeoutMs}`);
      if (!readonly) {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (mode !== 'wal') throw storeError(`state file ${path} cannot use WAL mode (got ${String(mode)})`, path);
        db.pragma('synchronous = FULL');
        db.pragma(`journal_size_limit = ${tuning.data.journalSizeLimitBytes}`);
        db.pragma(`wal_autocheckpoint = ${tuning.data.walAutocheckpointPages}`);
      }
      db.pragma('foreign_keys = ON');
      db.pragma(`cache_size = -${tuning.data.cacheSizeKiB}`);

      const schemaVersion = migrate(db, path, migrations, readonly, clock, kept);
      const lineage = readLineage(db, path);
      if (!readonly && options.expectedLineage !== undefined && options.expectedLineage !== lineage) {
        throw storeError(
          `state file ${path} belongs to lineage ${lineage}, not the expected ${options.expectedLineage}: it was created for another deployment (or replaced); refusing to use it`,
          path,
          { context: { lineage, expectedLineage: options.expectedLineage } },
        );
      }
      return new SqliteStateStore({ path, db, clock, lock, lineage, schemaVersion, readonly });
    } catch (err) {
      db?.close();
      if (lock !== undefined) releaseLock(lock.path, lock.holder);
      // SQLite opens any file lazily and finds out at the first read that it is none of its own.
      const code = (err as { code?: unknown }).code;
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') throw notADatabase(path, code, err);
      // SQLITE_READONLY_DIRECTORY: a directory this user may read but not write (a state another user keeps).
      if (readonly && (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY_DIRECTORY')) {
        // Reading a WAL database makes its -shm file: a read-only mount (a backup, a snapshot) refuses it.
        throw storeError(
          `cannot read state file ${path} (${code}): reading it needs ${path}-shm beside it (the state is kept in WAL mode), and its directory is not writable (a read-only mount?); copy the state directory somewhere writable to read it`,
          path,
          { cause: err },
        );
      }
      throw writeFailure(err, path, readonly);
    }
  }

  // -- nodes

  getNode(id: NodeId): NodeRecord | undefined {
    const row = this.#stmt('SELECT * FROM nodes WHERE id = ?').get(id) as NodeRow | undefined;
    return row === undefined ? undefined : toNode(row);
  }

  /**
   * Every node, by id. Row by row: a row is garbage as soon as its record is made, where all rows at
   * once (`all()`) lived, and were copied by every scavenge, until the last record was (10,000 file
   * nodes: 7 MB less promoted, ~6 ms less; bench/README.md).
   */
  listNodes(): NodeRecord[] {
    const records: NodeRecord[] = [];
    for (const row of this.#stmt('SELECT * FROM nodes ORDER BY id').iterate() as IterableIterator<NodeRow>) records.push(toNode(row));
    return records;
  }

  /** How many nodes the state holds, without reading them. */
  countNodes(): number {
    return (this.#stmt('SELECT count(*) AS n FROM nodes').get() as { n: number }).n;
  }

  /** Inserts or replaces many records in one transaction. */
  putNodes(records: readonly NodeRecord[]): void {
    if (records.length === 0) return;
    if (this.#db.inTransaction) for (const r of records) this.#putOne(r);
    else this.#guard(() => this.#putNodes(records));
  }

  removeNodes(ids: readonly NodeId[]): void {
    if (ids.length === 0) return;
    if (this.#db.inTransaction) for (const id of ids) this.#removeOne(id);
    else this.#guard(() => this.#removeNodes(ids));
  }

  // -- operations

  beginOperation(node: NodeId, op: PendingOperation['op'], runId: number | null): number {
    const r = this.#write(() => this.#stmt('INSERT INTO operations (node, op, run_id, started_at) VALUES (?, ?, ?, ?)').run(node, op, runId, this.#clock.now()));
    return Number(r.lastInsertRowid);
  }

  /** Marks a pending operation finished; throws `DS_STATE_STORE` if it is unknown or already finished. */
  finishOperation(id: number, outcome: OperationOutcome, detail?: string): void {
    const r = this.#write(() =>
      this.#stmt('UPDATE operations SET finished_at = ?, outcome = ?, detail = ? WHERE id = ? AND finished_at IS NULL').run(this.#clock.now(), outcome, detail ?? null, id),
    );
    if (r.changes !== 1) throw storeError(`operation ${id} is not pending`, this.path, { context: { operation: id, outcome } });
  }

  /** Pending operations, oldest first. */
  pendingOperations(): PendingOperation[] {
    const rows = this.#stmt('SELECT id, node, op, run_id, started_at FROM operations WHERE finished_at IS NULL ORDER BY id').all() as OperationRow[];
    return rows.map(toOperation);
  }

  countOperations(node: NodeId, op: PendingOperation['op']): number {
    return (this.#stmt('SELECT count(*) AS n FROM operations WHERE node = ? AND op = ?').get(node, op) as { n: number }).n;
  }

  // -- runs

  startRun(trigger: string, commit: string | null, startedAt?: number): number {
    const r = this.#write(() => this.#stmt('INSERT INTO runs (trigger, goals_commit, started_at) VALUES (?, ?, ?)').run(trigger, commit, startedAt ?? this.#clock.now()));
    return Number(r.lastInsertRowid);
  }

  finishRun(id: number, summary: RunSummary): void {
    const r = this.#write(() => this.#stmt('UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?').run(this.#clock.now(), JSON.stringify(summary), id));
    if (r.changes !== 1) throw storeError(`run ${id} does not exist`, this.path, { context: { run: id } });
  }

  recordRunProgress(id: number, summary: RunSummary): void {
    this.#write(() => this.#stmt('UPDATE runs SET summary = ? WHERE id = ? AND finished_at IS NULL').run(JSON.stringify(summary), id));
  }

  /** Runs, newest first (`limit` of them, default all). */
  listRuns(limit?: number): RunRecord[] {
    const rows = (
      limit === undefined ? this.#stmt('SELECT * FROM runs ORDER BY id DESC').all() : this.#stmt('SELECT * FROM runs ORDER BY id DESC LIMIT ?').all(limit)
    ) as RunRow[];
    return rows.map(toRun);
  }

  getRun(id: number): RunRecord | undefined {
    const row = this.#stmt('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
    return row === undefined ? undefined : toRun(row);
  }

  /** The operations of a run, in the order they started (the first `limit`), and how many it has. */
  runOperations(runId: number, limit: number): { operations: OperationRecord[]; total: number } {
    const rows = this.#stmt('SELECT * FROM operations WHERE run_id = ? ORDER BY id LIMIT ?').all(runId, limit) as FinishedOperationRow[];
    const total = rows.length < limit ? rows.length : (this.#stmt('SELECT count(*) AS n FROM operations WHERE run_id = ?').get(runId) as { n: number }).n;
    const operations = rows.map((r) => ({ ...toOperation(r), finishedAt: r.finished_at, outcome: r.outcome, detail: r.detail }));
    return { operations, total };
  }

  // -- history

  /**
   * {@inheritDoc StateStore.pruneHistory} Deletes in chunks, each its own
   * short write transaction, so a years-long backlog never holds the write
   * lock for long.
   */
  pruneHistory(before: number): HistoryPruned {
    const chunked = (sql: string): number => {
      let total = 0;
      for (;;) {
        const n = this.#write(() => this.#stmt(sql).run(before, PRUNE_CHUNK)).changes;
        total += n;
        if (n < PRUNE_CHUNK) return total;
      }
    };
    const operations = chunked('DELETE FROM operations WHERE id IN (SELECT id FROM operations WHERE finished_at IS NOT NULL AND finished_at < ? LIMIT ?)');
    const runs = chunked(
      `DELETE FROM runs WHERE id IN (
         SELECT id FROM runs r WHERE finished_at IS NOT NULL AND finished_at < ?
           AND id <> (SELECT max(id) FROM runs)
           AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.run_id = r.id)
         LIMIT ?)`,
    );
    const drift = chunked('DELETE FROM drift WHERE id IN (SELECT id FROM drift WHERE detected_at < ? LIMIT ?)');
    const events = chunked('DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ? LIMIT ?)');
    return { operations, runs, drift, events };
  }

  // -- drift

  recordDrift(report: DriftReport): void {
    this.#write(() =>
      this.#stmt(
        'INSERT INTO drift (goal, node, backend_id, diffs, first_seen, detected_at, action, flapping, goals_commit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(report.goal, report.node, report.backendId, JSON.stringify(report.diffs), report.firstSeen, report.detectedAt, report.action, report.flapping ? 1 : 0, report.commit),
    );
  }

  setDriftAction(node: NodeId, action: DriftAction): void {
    this.#write(() => this.#stmt('UPDATE drift SET action = ? WHERE id = (SELECT max(id) FROM drift WHERE node = ?)').run(action, node));
  }

  /** Drift reports detected at or after `since`, of `node`, oldest first; with `limit`, the most recent ones. */
  listDrift(filter: Filter = {}): DriftReport[] {
    return (this.#filtered('drift', 'detected_at', filter) as DriftRow[]).map(toDrift);
  }

  // -- events

  appendEvent(event: JournalEvent): void {
    this.#write(() => this.#stmt('INSERT INTO events (at, node, kind, data) VALUES (?, ?, ?, ?)').run(event.at, event.node, event.kind, JSON.stringify(event.data)));
  }

  /** Events at or after `since`, of `node`, oldest first; with `limit`, the most recent ones. */
  listEvents(filter: Filter = {}): JournalEvent[] {
    return (this.#filtered('events', 'at', filter) as EventRow[]).map(toEvent);
  }

  // -- meta

  getMeta(key: string): string | undefined {
    return (this.#stmt('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  /** Sets (or with `null` deletes) a key. Keys starting `store.` belong to the store and are refused. */
  setMeta(key: string, value: string | null): void {
    if (key.startsWith(RESERVED_META_PREFIX)) throw storeError(`meta key ${key} is reserved for the state store`, this.path, { context: { key } });
    this.#write(() =>
      value === null
        ? this.#stmt('DELETE FROM meta WHERE key = ?').run(key)
        : this.#stmt('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value),
    );
  }

  /**
   * Runs `fn` as one `BEGIN IMMEDIATE` transaction, durable when it returns;
   * writes inside it (and nested `transaction` calls) join it. A throw rolls
   * everything back and is rethrown.
   */
  transaction<T>(fn: () => T): T {
    if (this.#db.inTransaction) return fn();
    return this.#guard(() => this.#db.transaction(fn).immediate());
  }

  /** Runs an outermost write; a disk that refuses it is a StateStore error naming the file and why (see `WRITE_FAILURES`). */
  #guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      // A store opened read-only refuses writes by design: that is the caller's mistake, not the disk's.
      throw this.readonly ? err : writeFailure(err, this.path);
    }
  }

  // -- maintenance

  /**
   * Why this store, which holds the lock, may no longer own the state, or undefined while it does: its
   * lock file is gone or another process's (removed by hand, taken over), or the state file at its path
   * is gone or another (its directory deleted, the file replaced). Then another writer may hold the state,
   * and this one writes to a file no one reads again, or beside that writer: the daemon stops. Cheap (a
   * stat and a small read), for a timer. A file that cannot be looked at for another reason (EMFILE, EIO)
   * is not taken for lost: the next look decides.
   */
  lostOwnership(): { readonly file: string; readonly reason: string } | undefined {
    if (this.#lock === undefined || this.#closed) return undefined;
    const { path: lockPath, holder } = this.#lock;
    try {
      const seen = readLock(lockPath);
      if (seen === undefined) return { file: lockPath, reason: `lock file ${lockPath} was removed` };
      if (seen.holder?.token !== holder.token) {
        const by = seen.holder === undefined ? '' : ` (now held by process ${seen.holder.pid}${seen.holder.host ? ` on ${seen.holder.host}` : ''})`;
        return { file: lockPath, reason: `lock file ${lockPath} was replaced${by}` };
      }
      // Open here, the file cannot be freed, so its inode cannot be another file's.
      const now = fileId(this.path);
      if (now === undefined) return { file: this.path, reason: `state file ${this.path} was removed` };
      if (now !== this.#fileId) return { file: this.path, reason: `state file ${this.path} was replaced` };
    } catch (err) {
      // Its directory gone: readLock's ENOENT is undefined above; a directory above it made a file is ENOTDIR.
      const cause = (err as { cause?: unknown }).cause as NodeJS.ErrnoException | undefined;
      if (cause?.code === 'ENOTDIR') return { file: lockPath, reason: `lock file ${lockPath} was removed: a path above it is no directory now` };
      // Something that is no regular file at its path (readLock's refusal, which has no system error behind it).
      // Looked at only then: after a system error (EACCES on a directory above) the lstat would throw it out of here.
      if (cause === undefined) {
        const special = lstatSync(lockPath, { throwIfNoEntry: false });
        if (special !== undefined && !special.isFile()) return { file: lockPath, reason: `lock file ${lockPath} was replaced by ${special.isSymbolicLink() ? 'a symbolic link' : specialFileKind(special)}` };
      }
    }
    return undefined;
  }

  /** A passive WAL checkpoint: copies what it can without waiting for readers. */
  checkpoint(mode: 'PASSIVE' | 'TRUNCATE' = 'PASSIVE'): CheckpointResult {
    const [r] = this.#db.pragma(`wal_checkpoint(${mode})`) as { busy: number; log: number; checkpointed: number }[];
    return { busy: r?.busy === 1, logFrames: r?.log ?? 0, checkpointedFrames: r?.checkpointed ?? 0 };
  }

  /** `PRAGMA integrity_check`: `ok`, or SQLite's findings one per line. */
  integrityCheck(): string {
    const rows = this.#db.pragma('integrity_check') as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join('\n');
  }

  /** Checkpoints (TRUNCATE, so the WAL does not linger), closes the file and releases the lock. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (!this.readonly) {
        try {
          this.checkpoint('TRUNCATE');
        } catch {
          // A reader holds the WAL: the next open or checkpoint finishes the job.
        }
      }
      this.#db.close();
    } finally {
      if (this.#lock !== undefined) releaseLock(this.#lock.path, this.#lock.holder);
    }
  }

  #stmt(sql: string): Database.Statement {
    let s = this.#statements.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  /** One write in its own `BEGIN IMMEDIATE` transaction, or as part of the caller's `transaction`. */
  #write<T>(fn: () => T): T {
    return this.transaction(fn);
  }

  #filtered(table: 'drift' | 'events', timeColumn: string, filter: Filter): unknown[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.since !== undefined) {
      where.push(`${timeColumn} >= ?`);
      params.push(filter.since);
    }
    if (filter.node !== undefined) {
      where.push('node = ?');
      params.push(filter.node);
    }
    const cond = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
    if (filter.limit === undefined) return this.#stmt(`SELECT * FROM ${table}${cond} ORDER BY ${timeColumn}, id`).all(...params);
    // The most recent `limit`, returned oldest first.
    return this.#stmt(`SELECT * FROM (SELECT * FROM ${table}${cond} ORDER BY ${timeColumn} DESC, id DESC LIMIT ?) ORDER BY ${timeColumn}, id`).all(...params, filter.limit);
  }
}

/**
 * Brings the file to the code's schema, in one transaction; refuses newer schemas, foreign files, and a
 * file without a schema where a state is `kept` (`refusalOf`, once the WAL is read too).
 */
function migrate(db: Database.Database, path: string, migrations: readonly Migration[], readonly: boolean, clock: Clock, kept: StateKept | undefined): number {
  const known = migrations.length;
  const readVersion = (): number => db.pragma('user_version', { simple: true }) as number;
  // One snapshot: a writer creating the file between two reads would leave its tables beside no version.
  const { appId, version, tables } = db.transaction(() => ({
    appId: db.pragma('application_id', { simple: true }) as number,
    version: readVersion(),
    tables: (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").get() as { n: number }).n,
  }))();
  if (appId !== 0 && appId !== APPLICATION_ID) throw notAStateFile(path, `application_id ${appId}`);
  if (version > known) throw newerSchema(path, version, known);
  if (version > 0 && appId !== APPLICATION_ID) throw notOurVersion(path, version);
  if (version === known) return version;
  // Said so to a read-only open too (status), rather than advice to migrate it with apply, which refuses it.
  if (version === 0 && tables > 0) throw notAStateFile(path, 'it has tables but no schema version');
  if (version === 0 && kept !== undefined) throw noState(path, NO_TABLES, kept);
  if (readonly) {
    throw storeError(
      `state file ${path} has schema version ${version}, older than ${known}; open it once with a writing command (apply or run) to migrate it`,
      path,
      { context: { schemaVersion: version, knownVersion: known } },
    );
  }
  const run = db.transaction(() => {
    // Re-read inside the write lock: another process may have migrated meanwhile.
    const from = readVersion();
    for (let v = from; v < known; v++) {
      const step = migrations[v]!;
      try {
        db.exec(step.sql);
      } catch (err) {
        throw storeError(`migrating state file ${path} to schema version ${v + 1} (${step.description}) failed: ${errorMessage(err)}`, path, {
          cause: err,
          context: { schemaVersion: v, targetVersion: v + 1 },
        });
      }
    }
    if (from === 0) {
      const insert = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      insert.run(LINEAGE_KEY, randomUUID());
      insert.run(CREATED_AT_KEY, String(clock.now()));
      db.pragma(`application_id = ${APPLICATION_ID}`);
    }
    db.pragma(`user_version = ${known}`);
  });
  run.immediate();
  return known;
}

function readLineage(db: Database.Database, path: string): string {
  let row: { value: string } | undefined;
  try {
    row = db.prepare('SELECT value FROM meta WHERE key = ?').get(LINEAGE_KEY) as { value: string } | undefined;
  } catch (err) {
    throw storeError(`state file ${path} has no meta table: ${errorMessage(err)}`, path, { cause: err });
  }
  if (row === undefined) throw storeError(`state file ${path} has no lineage id`, path);
  return row.value;
}
