import type { Fault } from './fault.ts';
import type { NodeId } from './node-spec.ts';
import type { FieldDiff, ObservationMemo, Outputs } from './provisioner.ts';

/** Where a node stands, as stored. Mirrors the node machine's states. */
export const NODE_STATUSES = ['pending', 'observing', 'creating', 'updating', 'deleting', 'ready', 'drifted', 'failed', 'blocked', 'held', 'orphaned', 'deleted'] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

/** One node's persisted state. */
export interface NodeRecord {
  readonly id: NodeId;
  readonly goal: string;
  readonly type: string;
  readonly backendId: string;
  readonly status: NodeStatus;
  /** Digest of the spec last applied successfully (to tell a goal change `~` from drift `!`). */
  readonly appliedDigest: string | null;
  /** Outputs recorded at the last create/update/observe. */
  readonly outputs: Outputs | null;
  /** True once we created or adopted the resource: only managed nodes may ever be deleted. */
  readonly managed: boolean;
  readonly lastFault: Fault | null;
  /** Consecutive failures (the fault policy's retry count). */
  readonly attempts: number;
  /** Epoch ms before which the node is not retried. */
  readonly retryAt: number | null;
  /** Why the node is held or blocked, for status. */
  readonly reason: string | null;
  /**
   * What the runtime keeps with a record for itself (JSON, `RecordSnapshot`):
   * the spec last applied (to delete the resource once it is removed from
   * the goals), the node's dependencies (deletion order) and the digest of
   * the goal it was last reconciled toward (so a restart tells a goal change
   * from a node never applied). Not the node machine's: it has
   * no context, so `status` is its whole persisted snapshot
   * (`nodeSnapshotFor(status)` rebuilds it).
   */
  readonly snapshot: unknown;
  /** The backend's memo from the node's last observation, or last create or update (cleared by one that returns none). */
  readonly memo: ObservationMemo | null;
  readonly deletionPolicy: 'Orphan' | 'Delete';
  readonly updatedAt: number;
}

/** A create/update/delete recorded before it is sent to the backend. */
export interface PendingOperation {
  readonly id: number;
  readonly node: NodeId;
  readonly op: 'create' | 'update' | 'delete';
  readonly runId: number | null;
  readonly startedAt: number;
}

export type OperationOutcome = 'done' | 'failed' | 'adopted' | 'abandoned';

/** A create, update or delete as the audit trail keeps it: pending until it has an outcome. */
export interface OperationRecord extends PendingOperation {
  readonly finishedAt: number | null;
  readonly outcome: OperationOutcome | null;
  readonly detail: string | null;
}

export interface RunRecord {
  readonly id: number;
  readonly startedAt: number;
  readonly finishedAt: number | null;
  /** `apply`, `daemon`, `plan` … */
  readonly trigger: string;
  /** HEAD of the goals' git work tree, when there is one. */
  readonly commit: string | null;
  readonly summary: RunSummary | null;
}

export interface RunSummary {
  readonly created: number;
  readonly updated: number;
  readonly deleted: number;
  readonly unchanged: number;
  readonly failed: number;
  readonly blocked: number;
  readonly held: number;
  readonly drifted: number;
  /** Nodes removed from the goals and forgotten, their resources left as they are. Absent from runs recorded before it was counted. */
  readonly orphaned?: number;
}

/**
 * What became of a drift: `reported` only (`selfHeal: false`, no update, a flap's backoff), `corrected`,
 * or `correction-failed` (the correction was tried and failed: the drift is still there).
 */
export type DriftAction = 'corrected' | 'reported' | 'correction-failed';

/** One drift detection (secrets already masked by the provisioner). */
export interface DriftReport {
  readonly id?: number;
  readonly goal: string;
  readonly node: NodeId;
  readonly backendId: string;
  readonly diffs: readonly FieldDiff[];
  /** First time this drift (same fields) was seen, epoch ms. */
  readonly firstSeen: number;
  readonly detectedAt: number;
  readonly action: DriftAction;
  /** True when the same field re-drifted within the flap window. */
  readonly flapping: boolean;
  readonly commit: string | null;
}

/** An entry of the event journal (operations, faults, goal reloads …). */
export interface JournalEvent {
  readonly id?: number;
  readonly at: number;
  readonly node: NodeId | null;
  readonly kind: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/** Rows removed by one `pruneHistory`. */
export interface HistoryPruned {
  readonly operations: number;
  readonly runs: number;
  readonly drift: number;
  readonly events: number;
}

/**
 * Durable state. Every write is atomic; a pending operation is on disk
 * before the backend is called, so that a crash never leads to a blind
 * second create.
 */
/**
 * Meta key: the errors of the goal revision the daemon last rejected (a JSON list of lines), while the
 * last good graph keeps running; cleared once a graph is installed (the daemon) or applied (apply).
 */
export const GOAL_ERRORS_META = 'goal-errors';

/** Meta key: set ('1') beside GOAL_ERRORS_META while the daemon has no graph at all to keep running (it started on a rejected revision, with no last good goals stored). */
export const GOALS_IDLE_META = 'goal-errors.idle';
/**
 * Set (to how many) while the daemon runs goals that hold no nodes over nodes it managed: they are kept
 * as they are, neither reconciled nor deleted (an empty goal set is taken for a mistake). `status` says so.
 */
export const GOALS_EMPTY_META = 'goals.empty';

/**
 * Meta key: the backends whose circuit breaker a running daemon has open (or half-open, probing), as a
 * JSON list of `CircuitStatus`; unset while every circuit is closed. Written when a circuit opens or
 * closes, cleared when a daemon starts (its circuits start closed).
 */
export const CIRCUITS_META = 'circuits';

/** A backend circuit that is not closed: its nodes wait for the probe. */
export interface CircuitStatus {
  readonly backend: string;
  readonly state: 'open' | 'half-open';
  /** When it opened (epoch ms); for half-open, when its probe started. */
  readonly since: number;
  /** When its probe is let through (epoch ms); null while one is in flight. */
  readonly probeAt: number | null;
  /** The failure that opened it. */
  readonly fault: { readonly class: string; readonly message: string } | null;
}

export interface StateStore {
  getNode(id: NodeId): NodeRecord | undefined;
  listNodes(): NodeRecord[];
  /** Writes many records in one transaction. */
  putNodes(records: readonly NodeRecord[]): void;
  /** Forgets nodes (orphaned or deleted). */
  removeNodes(ids: readonly NodeId[]): void;

  /** Records an operation as pending; returns its id. Durable when it returns. */
  beginOperation(node: NodeId, op: PendingOperation['op'], runId: number | null): number;
  /** Marks a pending operation finished. */
  finishOperation(id: number, outcome: OperationOutcome, detail?: string): void;
  /** Operations begun and never finished (a crash happened). */
  pendingOperations(): PendingOperation[];
  /** How many operations of a kind were ever begun for a node (duplicate-create checks in tests: a scan, not indexed). */
  countOperations(node: NodeId, op: PendingOperation['op']): number;

  /** Records a run as started (at `startedAt`, epoch ms, default now); returns its id. */
  startRun(trigger: string, commit: string | null, startedAt?: number): number;
  finishRun(id: number, summary: RunSummary): void;
  /** Stores the summary so far of a run still going (the daemon's), for `history`; a finished run is left as it is. */
  recordRunProgress(id: number, summary: RunSummary): void;
  listRuns(limit?: number): RunRecord[];

  recordDrift(report: DriftReport): void;
  /** Sets the action of `node`'s latest drift report: what its correction came to (`DriftAction`). */
  setDriftAction(node: NodeId, action: DriftAction): void;
  listDrift(filter?: { since?: number; node?: NodeId; limit?: number }): DriftReport[];

  appendEvent(event: JournalEvent): void;
  listEvents(filter?: { since?: number; node?: NodeId; limit?: number }): JournalEvent[];

  /**
   * Forgets history older than `before` (epoch ms): finished operations,
   * finished runs no remaining operation points to (never the latest run),
   * drift reports and journal events. Pending operations are never touched:
   * they are what a restart resolves. Returns how many rows went.
   */
  pruneHistory(before: number): HistoryPruned;

  /** Small key/value settings (goal-set errors, last good revision …). */
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string | null): void;

  /** Runs `fn` as one atomic, durable write transaction (nested calls join it). */
  transaction<T>(fn: () => T): T;

  close(): void;
}
