import type Database from 'better-sqlite3';
import { sha256 } from './digest.ts';
import type { Clock } from './clock.ts';

/**
 * A ledger of generated artifacts (for example provisioning scripts): stored
 * content-addressed, looked up by a (kind, shape) key, reviewed by humans,
 * granted one-shot permissions for the uses that wait for one, and every
 * use recorded. Domain-free: the
 * runtime neither knows what an artifact is nor how trust is computed from
 * its runs; the tables live in the state file (migration 2).
 */

/** The sha256 of an artifact's text, hex: its identity. */
export function artifactHash(content: string): string {
  return sha256(content);
}

export interface ArtifactRecord {
  /** sha256 of `content`, hex. */
  readonly hash: string;
  /** Who produced it (a generator id). */
  readonly origin: string;
  readonly content: string;
  readonly createdAt: number;
  /** The (kind, shape) keys it was generated for. */
  readonly keys: readonly { readonly kind: string; readonly shape: string }[];
}

export type ArtifactVerdict = 'approved' | 'rejected';

export interface ArtifactReview {
  readonly id: number;
  readonly hash: string;
  readonly verdict: ArtifactVerdict;
  readonly by: string;
  readonly at: number;
  readonly note: string | null;
}

/**
 * A one-shot permission to use an artifact for one action on one subject (a node id) with one input,
 * given in answer to its request: consumed by that use, or void once the subject no longer waits for
 * it or waits with another input.
 */
export interface ArtifactGrant {
  readonly id: number;
  readonly hash: string;
  readonly subject: string;
  /** The action it permits (a verb such as `update`); null for a grant from before grants named one, which permits none. */
  readonly action: string | null;
  /** The digest of the input it permits the use with; null for a grant from before grants named one, which permits none. */
  readonly inputDigest: string | null;
  /** That input as it was shown to whoever granted it (secrets masked); null with `inputDigest`. */
  readonly input: string | null;
  readonly by: string;
  readonly at: number;
  readonly note: string | null;
  /** When a run consumed it; null while it is open. */
  readonly usedAt: number | null;
  /** When it was made void unused (its subject no longer waited for it); null otherwise. */
  readonly voidedAt: number | null;
}

/** A use of an artifact waiting for a permission: at most one per (artifact, subject), the latest. */
export interface ArtifactRequest extends ArtifactUse {
  readonly hash: string;
  readonly subject: string;
  readonly at: number;
}

/** What a use does, as a request asks for it and a grant permits it. */
export interface ArtifactUse {
  readonly action: string;
  /** A digest of everything the use is given that a person approves (the domain decides what). */
  readonly inputDigest: string;
  /** That, as a person reads it to approve it: secrets masked. */
  readonly input: string;
}

/** How one use ended. `aborted` (shutdown) says nothing about the artifact. */
export type ArtifactRunOutcome = 'success' | 'failure' | 'aborted';

export interface ArtifactRunInput {
  readonly hash: string;
  readonly subject: string;
  /** What it was used for (a verb such as `create`). */
  readonly action: string;
  readonly outcome: ArtifactRunOutcome;
  /** Whether the run counts as a trial of the artifact (the domain decides). */
  readonly counted: boolean;
  readonly exitCode: number | null;
  readonly detail: string | null;
  readonly durationMs: number;
  /** The grant this run consumed, if any. */
  readonly grantId: number | null;
}

export interface ArtifactRun extends ArtifactRunInput {
  readonly id: number;
  readonly at: number;
}

/** Counted runs of an artifact. */
export interface ArtifactTally {
  readonly successes: number;
  readonly failures: number;
}

/** The schema step the state store applies (see `MIGRATIONS`). */
export const ARTIFACT_LEDGER_SQL = `
  CREATE TABLE artifacts (
    hash       TEXT PRIMARY KEY,
    origin     TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;

  -- One artifact may serve several shapes (a template that ignores a value's type).
  CREATE TABLE artifact_keys (
    kind       TEXT NOT NULL,
    shape      TEXT NOT NULL,
    hash       TEXT NOT NULL REFERENCES artifacts(hash),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, shape, hash)
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE artifact_reviews (
    id      INTEGER PRIMARY KEY,
    hash    TEXT NOT NULL REFERENCES artifacts(hash),
    verdict TEXT NOT NULL CHECK (verdict IN ('approved', 'rejected')),
    actor   TEXT NOT NULL,
    at      INTEGER NOT NULL,
    note    TEXT
  ) STRICT;
  CREATE INDEX artifact_reviews_by_hash ON artifact_reviews (hash, id);

  CREATE TABLE artifact_grants (
    id      INTEGER PRIMARY KEY,
    hash    TEXT NOT NULL REFERENCES artifacts(hash),
    subject TEXT NOT NULL,
    actor   TEXT NOT NULL,
    at      INTEGER NOT NULL,
    note    TEXT,
    used_at INTEGER
  ) STRICT;
  CREATE INDEX artifact_grants_open ON artifact_grants (hash, subject) WHERE used_at IS NULL;

  CREATE TABLE artifact_runs (
    id          INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL REFERENCES artifacts(hash),
    subject     TEXT NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'aborted')),
    counted     INTEGER NOT NULL CHECK (counted IN (0, 1)),
    exit_code   INTEGER,
    detail      TEXT,
    duration_ms INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    grant_id    INTEGER REFERENCES artifact_grants(id)
  ) STRICT;
  CREATE INDEX artifact_runs_by_hash ON artifact_runs (hash, id);
`;

/**
 * The schema step that ties grants to the use they answer (a later migration than the ledger's own):
 * a grant names its action and may be voided; a request records what a subject waits for.
 */
export const ARTIFACT_REQUESTS_SQL = `
  ALTER TABLE artifact_grants ADD COLUMN action TEXT;
  ALTER TABLE artifact_grants ADD COLUMN voided_at INTEGER;

  CREATE TABLE artifact_requests (
    hash    TEXT NOT NULL REFERENCES artifacts(hash),
    subject TEXT NOT NULL,
    action  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (hash, subject)
  ) STRICT, WITHOUT ROWID;
`;

/**
 * The schema step that ties a grant to the input it was given for (after `ARTIFACT_REQUESTS_SQL`): a
 * goal changed after the approval ran content nobody approved. A grant from before names none and
 * permits nothing (voided when its subject is next held, or settled). Requests are dropped rather than
 * given a digest they never had: the next pass that holds their subject asks again, with its input.
 */
export const ARTIFACT_GRANT_INPUT_SQL = `
  ALTER TABLE artifact_grants ADD COLUMN input_digest TEXT;
  ALTER TABLE artifact_grants ADD COLUMN input TEXT;

  DROP TABLE artifact_requests;
  CREATE TABLE artifact_requests (
    hash         TEXT NOT NULL REFERENCES artifacts(hash),
    subject      TEXT NOT NULL,
    action       TEXT NOT NULL,
    input_digest TEXT NOT NULL,
    input        TEXT NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (hash, subject)
  ) STRICT, WITHOUT ROWID;
`;

interface ArtifactRow {
  hash: string;
  origin: string;
  content: string;
  created_at: number;
}
interface ReviewRow {
  id: number;
  hash: string;
  verdict: string;
  actor: string;
  at: number;
  note: string | null;
}
interface GrantRow {
  id: number;
  hash: string;
  subject: string;
  action: string | null;
  input_digest: string | null;
  input: string | null;
  actor: string;
  at: number;
  note: string | null;
  used_at: number | null;
  voided_at: number | null;
}
interface RunRow {
  id: number;
  hash: string;
  subject: string;
  action: string;
  outcome: string;
  counted: number;
  exit_code: number | null;
  detail: string | null;
  duration_ms: number;
  at: number;
  grant_id: number | null;
}

const toReview = (r: ReviewRow): ArtifactReview => ({ id: r.id, hash: r.hash, verdict: r.verdict as ArtifactVerdict, by: r.actor, at: r.at, note: r.note });
const toGrant = (r: GrantRow): ArtifactGrant => ({
  id: r.id,
  hash: r.hash,
  subject: r.subject,
  action: r.action,
  inputDigest: r.input_digest,
  input: r.input,
  by: r.actor,
  at: r.at,
  note: r.note,
  usedAt: r.used_at,
  voidedAt: r.voided_at,
});
const toRun = (r: RunRow): ArtifactRun => ({
  id: r.id,
  hash: r.hash,
  subject: r.subject,
  action: r.action,
  outcome: r.outcome as ArtifactRunOutcome,
  counted: r.counted === 1,
  exitCode: r.exit_code,
  detail: r.detail,
  durationMs: r.duration_ms,
  at: r.at,
  grantId: r.grant_id,
});

/**
 * The artifact ledger over the state store's SQLite connection. Reached as
 * `SqliteStateStore.artifacts`; statements are prepared on first use so a
 * store opened with a shorter migration list (tests) never touches the
 * tables. Every write is one `BEGIN IMMEDIATE` transaction.
 */
export class ArtifactLedger {
  readonly #stmt: (sql: string) => Database.Statement;
  readonly #clock: Clock;
  readonly #transaction: <T>(fn: () => T) => T;

  /** `statement` prepares (once) on the state store's connection; `transaction` is the store's. */
  constructor(init: { statement: (sql: string) => Database.Statement; clock: Clock; transaction: <T>(fn: () => T) => T }) {
    this.#stmt = init.statement;
    this.#clock = init.clock;
    this.#transaction = init.transaction;
  }

  /**
   * Stores an artifact under a key; storing the same text again only adds the key. A stored text that
   * no longer matches its hash (state.db edited) is replaced by this one, which does: the record is
   * content-addressed. Returns the stored record.
   */
  put(input: { kind: string; shape: string; origin: string; content: string }): ArtifactRecord {
    const hash = artifactHash(input.content);
    const now = this.#clock.now();
    this.#transaction(() => {
      this.#stmt(
        'INSERT INTO artifacts (hash, origin, content, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (hash) DO UPDATE SET content = excluded.content WHERE artifacts.content IS NOT excluded.content',
      ).run(hash, input.origin, input.content, now);
      this.#stmt('INSERT INTO artifact_keys (kind, shape, hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(input.kind, input.shape, hash, now);
    });
    return this.get(hash)!;
  }

  get(hash: string): ArtifactRecord | undefined {
    const row = this.#stmt('SELECT * FROM artifacts WHERE hash = ?').get(hash) as ArtifactRow | undefined;
    return row === undefined ? undefined : this.#record(row);
  }

  /** Artifacts whose hash starts with `prefix` (for commands that take an abbreviated hash). */
  findByPrefix(prefix: string): ArtifactRecord[] {
    const rows = this.#stmt("SELECT * FROM artifacts WHERE substr(hash, 1, length(?)) = ? ORDER BY created_at, hash").all(prefix, prefix) as ArtifactRow[];
    return rows.map((r) => this.#record(r));
  }

  /** Every artifact, oldest first. */
  list(): ArtifactRecord[] {
    return (this.#stmt('SELECT * FROM artifacts ORDER BY created_at, hash').all() as ArtifactRow[]).map((r) => this.#record(r));
  }

  /** Artifacts of one origin stored under (kind, shape), newest first. */
  candidates(kind: string, shape: string, origin: string): ArtifactRecord[] {
    const rows = this.#stmt(
      'SELECT a.* FROM artifact_keys k JOIN artifacts a ON a.hash = k.hash WHERE k.kind = ? AND k.shape = ? AND a.origin = ? ORDER BY k.created_at DESC, a.created_at DESC, k.hash',
    ).all(kind, shape, origin) as ArtifactRow[];
    return rows.map((r) => this.#record(r));
  }

  /** Records a verdict; the latest one counts. */
  review(hash: string, verdict: ArtifactVerdict, by: string, note: string | null): ArtifactReview {
    const at = this.#clock.now();
    const r = this.#transaction(() => this.#stmt('INSERT INTO artifact_reviews (hash, verdict, actor, at, note) VALUES (?, ?, ?, ?, ?)').run(hash, verdict, by, at, note));
    return { id: Number(r.lastInsertRowid), hash, verdict, by, at, note };
  }

  latestReview(hash: string): ArtifactReview | undefined {
    const row = this.#stmt('SELECT * FROM artifact_reviews WHERE hash = ? ORDER BY id DESC LIMIT 1').get(hash) as ReviewRow | undefined;
    return row === undefined ? undefined : toReview(row);
  }

  reviews(hash: string): ArtifactReview[] {
    return (this.#stmt('SELECT * FROM artifact_reviews WHERE hash = ? ORDER BY id').all(hash) as ReviewRow[]).map(toReview);
  }

  /**
   * Records that `subject` waits for a permission to use `hash` as `use` says (replacing what it
   * waited for before). Writes only when that changes: a node held for it asks again each pass.
   */
  request(hash: string, subject: string, use: ArtifactUse): ArtifactRequest {
    const open = this.openRequest(hash, subject);
    if (open?.action === use.action && open.inputDigest === use.inputDigest) return open;
    const at = this.#clock.now();
    this.#transaction(() =>
      this.#stmt(
        'INSERT INTO artifact_requests (hash, subject, action, input_digest, input, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hash, subject) DO UPDATE SET action = excluded.action, input_digest = excluded.input_digest, input = excluded.input, at = excluded.at',
      ).run(hash, subject, use.action, use.inputDigest, use.input, at),
    );
    return { hash, subject, ...use, at };
  }

  /** What `subject` waits for a permission to use `hash` for, if anything. */
  openRequest(hash: string, subject: string): ArtifactRequest | undefined {
    return this.#stmt('SELECT hash, subject, action, input_digest AS inputDigest, input, at FROM artifact_requests WHERE hash = ? AND subject = ?').get(hash, subject) as
      | ArtifactRequest
      | undefined;
  }

  /** What the subjects waiting for a permission to use `hash` wait for, oldest first. */
  requests(hash: string): ArtifactRequest[] {
    return this.#stmt('SELECT hash, subject, action, input_digest AS inputDigest, input, at FROM artifact_requests WHERE hash = ? ORDER BY at, subject').all(hash) as ArtifactRequest[];
  }

  /**
   * Grants one use of `hash` on `subject`, the one its open request asks for (which it closes): that
   * action with that input. Undefined when it waits for none. The request is read in the write
   * transaction, so two grants at once answer one request once.
   */
  grant(hash: string, subject: string, by: string, note: string | null): ArtifactGrant | undefined {
    const at = this.#clock.now();
    return this.#transaction(() => {
      const request = this.openRequest(hash, subject);
      if (request === undefined) return undefined;
      this.#stmt('DELETE FROM artifact_requests WHERE hash = ? AND subject = ?').run(hash, subject);
      const { action, inputDigest, input } = request;
      const r = this.#stmt('INSERT INTO artifact_grants (hash, subject, action, input_digest, input, actor, at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
        hash,
        subject,
        action,
        inputDigest,
        input,
        by,
        at,
        note,
      );
      return { id: Number(r.lastInsertRowid), hash, subject, action, inputDigest, input, by, at, note, usedAt: null, voidedAt: null };
    });
  }

  /** The oldest open grant of (hash, subject) for `use` (its action, with its input), without consuming it. */
  openGrant(hash: string, subject: string, use: Pick<ArtifactUse, 'action' | 'inputDigest'>): ArtifactGrant | undefined {
    const row = this.#stmt(
      'SELECT * FROM artifact_grants WHERE hash = ? AND subject = ? AND action = ? AND input_digest = ? AND used_at IS NULL AND voided_at IS NULL ORDER BY id LIMIT 1',
    ).get(hash, subject, use.action, use.inputDigest) as GrantRow | undefined;
    return row === undefined ? undefined : toGrant(row);
  }

  /** Consumes the oldest open grant of (hash, subject) for `use` atomically; undefined when there is none. */
  takeGrant(hash: string, subject: string, use: Pick<ArtifactUse, 'action' | 'inputDigest'>): ArtifactGrant | undefined {
    return this.#transaction(() => {
      const open = this.openGrant(hash, subject, use);
      if (open === undefined) return undefined;
      const usedAt = this.#clock.now();
      this.#stmt('UPDATE artifact_grants SET used_at = ? WHERE id = ? AND used_at IS NULL').run(usedAt, open.id);
      return { ...open, usedAt };
    });
  }

  /**
   * Voids the open grants of (hash, subject) given for another input than `inputDigest` (or for none,
   * from before grants named one): what they approved is not what the subject would now be given.
   * Writes only when there is one; returns how many it voided.
   */
  voidOtherInputs(hash: string, subject: string, inputDigest: string): number {
    const other = 'hash = ? AND subject = ? AND input_digest IS NOT ? AND used_at IS NULL AND voided_at IS NULL';
    if (this.#stmt(`SELECT 1 FROM artifact_grants WHERE ${other}`).get(hash, subject, inputDigest) === undefined) return 0;
    const at = this.#clock.now();
    return this.#transaction(() => this.#stmt(`UPDATE artifact_grants SET voided_at = ? WHERE ${other}`).run(at, hash, subject, inputDigest).changes);
  }

  /**
   * `subject` waits for nothing of `hash` any more (what it waited for is done, or no longer needed):
   * its request is dropped and its open grants are made void, so that none is taken, unasked, by a
   * use that comes later. Writes only when there is something to settle; returns the grants voided.
   */
  settle(hash: string, subject: string): number {
    const pending = this.#stmt(
      'SELECT EXISTS (SELECT 1 FROM artifact_requests WHERE hash = ? AND subject = ?) OR EXISTS (SELECT 1 FROM artifact_grants WHERE hash = ? AND subject = ? AND used_at IS NULL AND voided_at IS NULL) AS n',
    ).get(hash, subject, hash, subject) as { n: number };
    if (pending.n === 0) return 0;
    const at = this.#clock.now();
    return this.#transaction(() => {
      this.#stmt('DELETE FROM artifact_requests WHERE hash = ? AND subject = ?').run(hash, subject);
      return this.#stmt('UPDATE artifact_grants SET voided_at = ? WHERE hash = ? AND subject = ? AND used_at IS NULL AND voided_at IS NULL').run(at, hash, subject).changes;
    });
  }

  /** The latest grant of (hash, subject), whatever became of it. */
  lastGrant(hash: string, subject: string): ArtifactGrant | undefined {
    const row = this.#stmt('SELECT * FROM artifact_grants WHERE hash = ? AND subject = ? ORDER BY id DESC LIMIT 1').get(hash, subject) as GrantRow | undefined;
    return row === undefined ? undefined : toGrant(row);
  }

  grants(hash: string): ArtifactGrant[] {
    return (this.#stmt('SELECT * FROM artifact_grants WHERE hash = ? ORDER BY id').all(hash) as GrantRow[]).map(toGrant);
  }

  recordRun(run: ArtifactRunInput): ArtifactRun {
    const at = this.#clock.now();
    const r = this.#transaction(() =>
      this.#stmt(
        'INSERT INTO artifact_runs (hash, subject, action, outcome, counted, exit_code, detail, duration_ms, at, grant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(run.hash, run.subject, run.action, run.outcome, run.counted ? 1 : 0, run.exitCode, run.detail, Math.round(run.durationMs), at, run.grantId),
    );
    return { ...run, id: Number(r.lastInsertRowid), at };
  }

  /** Runs of an artifact, oldest first; with `limit`, the most recent ones. */
  runs(hash: string, limit?: number): ArtifactRun[] {
    const rows = (
      limit === undefined
        ? this.#stmt('SELECT * FROM artifact_runs WHERE hash = ? ORDER BY id').all(hash)
        : this.#stmt('SELECT * FROM (SELECT * FROM artifact_runs WHERE hash = ? ORDER BY id DESC LIMIT ?) ORDER BY id').all(hash, limit)
    ) as RunRow[];
    return rows.map(toRun);
  }

  /** Counted successes and failures of an artifact. */
  tally(hash: string): ArtifactTally {
    const row = this.#stmt(
      "SELECT coalesce(sum(outcome = 'success'), 0) AS s, coalesce(sum(outcome = 'failure'), 0) AS f FROM artifact_runs WHERE hash = ? AND counted = 1",
    ).get(hash) as { s: number; f: number };
    return { successes: row.s, failures: row.f };
  }

  #record(row: ArtifactRow): ArtifactRecord {
    const keys = this.#stmt('SELECT kind, shape FROM artifact_keys WHERE hash = ? ORDER BY created_at, kind, shape').all(row.hash) as { kind: string; shape: string }[];
    return { hash: row.hash, origin: row.origin, content: row.content, createdAt: row.created_at, keys };
  }
}
