import type { Logger } from 'pino';
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { assertNever } from './errors.ts';
import type { Fault } from './fault.ts';
import { byDeclaration, createCutShort } from './fault.ts';
import { CircuitBreakers, DEFAULT_CIRCUIT_BREAKER, DEFAULT_FAULT_POLICY, decide } from './fault-policy.ts';
import { OUTPUT_UNKNOWN } from './interpolation.ts';
import type { BreakerChange, CircuitBreakerConfig, FaultPolicy, Rng } from './fault-policy.ts';
import type { NodeGate } from './goal-compiler.ts';
import type { DesiredGraph } from './graph.ts';
import type { DesiredNode, NodeId, NodeSpec, NodeSpecCodec } from './node-spec.ts';
import { DEFAULT_INTERVAL_MS } from './node-spec.ts';
import { nextStatus, releasable } from './node-machine.ts';
import type { NodeEventType } from './node-machine.ts';
import type { FieldDiff, NodeProvisioner, Observation, ObservationMemo, OperationContext, Outputs, ProvisionResult } from './provisioner.ts';
import { observationOf } from './provisioner.ts';
import type { ProvisionStep } from './reconciler.ts';
import { appliedIn, correctionStep, emptySummary, leavingDrift, leftAsFound, runSteps, withoutIgnored } from './reconciler.ts';
import { KeyedSlots } from './limit.ts';
import type { SummaryCounts } from './reconciler.ts';
import type { CircuitStatus, NodeRecord, NodeStatus, PendingOperation, StateStore } from './state-store.ts';
import { CIRCUITS_META, GOAL_ERRORS_META, GOALS_EMPTY_META, GOALS_IDLE_META } from './state-store.ts';
import { type AppliedAt, appliedAtSpec, carriedRecord, declaredDeletionPolicy, deleteBar, deleteHeld, deleteRefusedRecord, deletionEdges, heldByPolicy, heldFault, heldOnDelete, heldReason, inDeleteTurns, isDigestAt, LET_GO, logOrphaned, POLICY_HELD, POLICY_RELEASED, nextRecord, policyHoldFields, policyHoldReason, removedNode, removedOutputsOf, resourcesLetGo, reverseDependencyOrder, sameOutputs, sameRecord, sameSnapshot, splitRemoved, storedEdges, storedGoalDigest, storedRefs, storedUnapplied, waitsOnItsOwn } from './node-record.ts';
import type { DeletionEdges, RemovedSplit } from './node-record.ts';
import { WorkQueue } from './work-queue.ts';
import { DeferredWrites } from './deferred-writes.ts';
import { finishInterrupted, finishReleased, finishReplacedByDelete, hasInterruptedCreate } from './interrupted-operation.ts';
import { GONE_ALREADY, readRemoved } from './removed-read.ts';
import type { RemovedItem } from './removed-read.ts';
import type { FoundAfterInterruption } from './interrupted-operation.ts';
import { corrected, driftBlocksDependents, driftKey, driftPaths, driftReport, outstandingDrift, reportedAlready, settledAction, uncorrectableFault, logDesiredChanges, logDrift, MISSING_RESOURCE, reportOnly, splitDrift } from './drift-report.ts';
import type { ReportedDrift } from './drift-report.ts';

/** Watches what the nodes manage; calls `onChange` with the ids whose resources changed. Returns a stop function. */
export type ChangeWatcher<S extends NodeSpec> = (nodes: readonly DesiredNode<S>[], onChange: (ids: readonly NodeId[]) => void) => () => void;

export interface ControllerOptions<S extends NodeSpec> {
  readonly provisioner: NodeProvisioner<S>;
  readonly store: StateStore;
  readonly log: Logger;
  readonly codec: NodeSpecCodec<S>;
  readonly clock?: Clock;
  readonly rng?: Rng;
  readonly faultPolicy?: FaultPolicy;
  /** Operations in flight at once (default 10). */
  readonly concurrency?: number;
  /** Default re-observe interval (default 60 s), ±10 % jitter. */
  readonly intervalMs?: number;
  /** Most nodes observed in one batch call. */
  readonly batchSize?: number;
  /** Same field re-drifting within this window counts as flapping (default 5 min). */
  readonly flapWindowMs?: number;
  readonly watch?: ChangeWatcher<S> | undefined;
  readonly allowMassDeletion?: boolean;
  /** Per-backend circuit breaker settings (default: open after 5 consecutive failures, probe after 30 s). */
  readonly circuitBreaker?: CircuitBreakerConfig;
}

/**
 * What `desiredstate retry NODE` gets from a running daemon (or from the store, with none running).
 * `circuit`: its backend's, where that is open: the node waits for the circuit's probe, not tried now.
 */
export type OperatorRetryAnswer =
  | { readonly status: 'released'; readonly circuit?: CircuitStatus }
  | { readonly status: 'unknown' }
  | { readonly status: 'not-held'; readonly current: NodeStatus };

/** An open backend circuit that nodes an operator released wait for (they are tried when it lets a probe through). */
export interface CircuitWait extends CircuitStatus {
  readonly nodes: readonly NodeId[];
}

/** What `desiredstate retry --all` gets from a running daemon: the nodes released, and the open circuits some of them wait for. */
export interface OperatorRetryAllAnswer {
  readonly released: readonly NodeId[];
  readonly circuits: readonly CircuitWait[];
}

/** What an operator's release resets in a node's record: its retries, its last fault, and the reason. */
const RELEASED = { attempts: 0, retryAt: null, lastFault: null, reason: 'released by operator' } as const;

/**
 * `Controller.operatorRetry` with no daemon running: the same release, written to the store (the node
 * machine's OPERATOR_RETRY, the interruption of a node that could not tell ended: `finishReleased`, the
 * event journalled); the next pass reconciles the node.
 */
export function releaseStoredNode(store: StateStore, id: NodeId, at: number): OperatorRetryAnswer {
  const r = store.getNode(id);
  if (r === undefined) return { status: 'unknown' };
  // A node a policy holds is the policy's: released, it would show as pending, its reason gone, until held again.
  if (!releasable(r.status) || heldByPolicy(r)) return { status: 'not-held', current: r.status };
  releaseRecords(store, [r], at);
  return { status: 'released' };
}

/** `Controller.operatorRetryAll` with no daemon running, in one transaction; returns the ids released. */
export function releaseAllStoredNodes(store: StateStore, at: number): NodeId[] {
  const held = store.listNodes().filter((r) => releasable(r.status) && !heldByPolicy(r));
  releaseRecords(store, held, at);
  return held.map((r) => r.id);
}

function releaseRecords(store: StateStore, records: readonly NodeRecord[], at: number): void {
  if (records.length === 0) return;
  store.transaction(() => {
    const pending = store.pendingOperations();
    for (const r of records) finishReleased(r, pending.filter((op) => op.node === r.id), (op, outcome, detail) => store.finishOperation(op.id, outcome, detail));
    store.putNodes(records.map((r) => ({ ...r, ...RELEASED, status: nextStatus(r.status, 'OPERATOR_RETRY').status, updatedAt: at })));
    for (const r of records) store.appendEvent({ at, node: r.id, kind: 'operator-retry', data: { previous: r.status } });
  });
}

/** What the read before a removed node's delete found (`refused`: its delete refuses it before any call), with the node its stored spec decodes to. */
interface FoundRemoved<S extends NodeSpec> {
  readonly read: Observation | 'refused';
  readonly node: DesiredNode<S>;
}

/** A node's drift occurrence as the daemon remembers it: the last one reported, and its flaps. */
interface DriftMemory extends ReportedDrift {
  /**
   * A drift was reported and is neither corrected nor gone yet: observing it
   * again is the same occurrence (not reported again, not another flap).
   */
  outstanding: boolean;
  /** Per field: when it was last corrected. */
  corrected: Map<string, number>;
  /** Consecutive flaps, for the growing correction backoff. */
  flaps: number;
  /** Not before this time is a flapping drift corrected again. */
  correctAfter: number;
}

/**
 * Whether `node` (same spec, in `graph`) is reconciled as it was in `previous`: the same dependencies
 * and the settings that decide when it is looked at and what is done with a drift.
 */
function sameReconcileInputs<S extends NodeSpec>(previous: DesiredGraph<S>, node: DesiredNode<S>, graph: DesiredGraph<S>): boolean {
  const was = previous.get(node.id)?.settings;
  const now = node.settings;
  if (was === undefined || was.intervalMs !== now.intervalMs || was.selfHeal !== now.selfHeal) return false;
  if (was.ignoreFields.join('\n') !== now.ignoreFields.join('\n')) return false;
  const before = new Set(previous.dependencies(node.id));
  const after = graph.dependencies(node.id);
  return before.size === after.length && after.every((d) => before.has(d));
}

/** Slots per interval on which re-observations are due (`scheduleNext`). */
const SCHEDULE_SLOTS = 50;

/** How long a batch that failed (or whose operations the store would not record) waits to be tried again. */
const FAILED_BATCH_RETRY_MS = 5000;

/** The log line of an interrupted operation resolved by observing its node (`resolvePending`), by outcome. */
const RESOLVED = {
  adopted: 'interrupted operation resolved by observation: adopted',
  abandoned: 'interrupted operation resolved by observation: abandoned',
} as const;

const IN_FLIGHT: ReadonlySet<NodeStatus> = new Set(['observing', 'creating', 'updating', 'deleting']);

/**
 * The daemon's reconcile loop. Level-triggered: a work queue keyed by node
 * (de-duplicated, delayed items), each node re-observed every interval (with
 * jitter), immediately on goal changes and backend change events, and after
 * its backoff. Node lifecycle through the node machine's pure transitions
 * over persisted records (no live actor per node). The fault policy decides
 * when to retry or hold; it never changes the graph.
 */
export class Controller<S extends NodeSpec> {
  private readonly o: Required<Omit<ControllerOptions<S>, 'watch'>> & { watch: ChangeWatcher<S> | undefined };
  private readonly queue: WorkQueue<NodeId>;
  private readonly breakers: CircuitBreakers;
  private readonly records = new Map<NodeId, NodeRecord>();
  /** The outputs recorded for a node: what references to it read. */
  private readonly outputsOf = (id: NodeId): Outputs | undefined => this.records.get(id)?.outputs ?? undefined;
  /** What the store holds for each node: a flush writes only records that differ (steady state writes nothing). */
  private readonly persisted = new Map<NodeId, NodeRecord>();
  private readonly dirty = new Set<NodeId>();
  /** Nodes a create or update changed since the last flush: written even when the record reads as it was stored (`updatedAt` is when the resource was last changed). */
  private readonly operated = new Set<NodeId>();
  /** Drift reports and operation outcomes, committed with a batch's pending operations (a drift is on disk before its correction) or by `flush`. */
  private readonly deferred: DeferredWrites;
  private readonly drift = new Map<NodeId, DriftMemory>();
  /**
   * The drifted nodes whose drift keeps their dependents waiting (`driftBlocksDependents`: drift the
   * backend says makes the resource unusable to them, a symlink where a managed directory should be); a
   * drifted node not in it counts as ready for its dependents. Only read for a node whose status is `drifted`.
   *
   * In memory only: a process started over a node stored `drifted` learns it again at its first look,
   * before any dependent acts on it. At a start every node is looked at now unless it waits out a backoff
   * or is held (`setGraph`; a drifted node has no backoff), in dependency order, and a dependent about to be
   * created or corrected while its dependency is due or being looked at waits for it (`pending` in
   * `reconcileBatch`), then finds it blocking. At most it is observed first, nothing written: a failed
   * observation (a path through the link) costs it one attempt, which no circuit breaker counts
   * (`Fault.notTheBackend`).
   */
  private readonly blockingDrift = new Set<NodeId>();
  private graph: DesiredGraph<S> | undefined;
  private gates: ReadonlyMap<NodeId, NodeGate> = new Map();
  private commit: string | null = null;
  private runId: number | null = null;
  /** Nodes put off because another worker was reconciling a dependency: woken when its batch is done. */
  private readonly waitingOn = new Map<NodeId, Set<NodeId>>();
  /** Nodes found deleted out of band, or referring to an output not given, whose dependencies were looked at again first (see `reconcileBatch`). */
  private readonly depsLookedAt = new Set<NodeId>();
  private summary: SummaryCounts = emptySummary();
  /** The nodes this run found unchanged: each counts once in its summary, however many passes find it so. */
  private readonly unchangedInRun = new Set<NodeId>();
  /** Nodes this run has counted as failed: a node failing again and again (each retry) counts once, as `history`'s other columns count nodes. */
  private readonly failedInRun = new Set<NodeId>();
  /** The nodes this run found blocked behind a failed or held dependency: each counts once in its summary. */
  private readonly blockedInRun = new Set<NodeId>();
  private stopWatching: (() => void) | undefined;
  private readonly abort = new AbortController();
  private loops: Promise<void>[] = [];
  /**
   * The operations in flight across every worker loop and delete: at most `concurrency`, as `--concurrency`
   * says; those that share a `serialKey` take their turns before their slots (`KeyedSlots`).
   */
  private readonly slots: KeyedSlots;
  /** Operations left pending by a crash, by node: resolved by observing, never repeated blindly. */
  private readonly pending = new Map<NodeId, PendingOperation[]>();
  private firstRoundLeft = new Set<NodeId>();
  private started = false;
  private rejected: readonly string[] | null = null;
  /**
   * Removed nodes whose deletion the current graph approved (prune + Delete, under the mass-deletion
   * limit) and that are not deleted yet: a delete that failed is retried from the queue after its backoff.
   */
  private deleting = new Set<NodeId>();
  /**
   * Removed from the goals while an operation on them ran: what becomes of them (deleted, let go) is
   * decided once it is over, from the record it left. Deciding at once would delete a resource while
   * an update writes it, or forget a node whose create then records it again.
   */
  private readonly removedInFlight = new Set<NodeId>();
  /** A flush failed and its records wait in memory (logged once, when it starts and when it ends). */
  private storeFailing = false;
  /** Nodes the caller holds back (`hold`), by id: the holds not released yet, each with its reason. */
  private readonly holds = new Map<NodeId, Set<{ readonly reason: string }>>();
  /** The nodes a policy holds whose hold this process has logged (`POLICY_HELD`), each with the reason it logged. */
  private readonly policyHoldsLogged = new Map<NodeId, string>();
  /** The failure that opened each backend's circuit, while it is not closed. */
  private readonly circuitFaults = new Map<string, Fault>();

  constructor(options: ControllerOptions<S>) {
    this.o = {
      clock: systemClock,
      rng: Math.random,
      faultPolicy: DEFAULT_FAULT_POLICY,
      circuitBreaker: DEFAULT_CIRCUIT_BREAKER,
      concurrency: 10,
      intervalMs: DEFAULT_INTERVAL_MS,
      batchSize: 1000,
      flapWindowMs: 5 * 60_000,
      allowMassDeletion: false,
      ...options,
      watch: options.watch,
    };
    this.queue = new WorkQueue<NodeId>({ clock: this.o.clock });
    this.slots = new KeyedSlots(this.o.concurrency);
    this.deferred = new DeferredWrites(this.o.store);
    this.breakers = new CircuitBreakers({ clock: this.o.clock, config: this.o.circuitBreaker });
    for (const r of this.o.store.listNodes()) {
      // A status of an operation in flight was stored by a process that died mid-way: the node starts over
      // (pending operations are resolved by observing, below). Left as is, the machine would ignore every
      // observation event and the node would stay `creating` for ever.
      this.records.set(r.id, IN_FLIGHT.has(r.status) ? { ...r, status: 'pending' } : r);
      this.persisted.set(r.id, r);
    }
    for (const op of this.o.store.pendingOperations()) {
      const list = this.pending.get(op.node) ?? [];
      list.push(op);
      this.pending.set(op.node, list);
    }
    // Circuits start closed: what a daemon that died with one open left said is no longer true.
    this.deferred.defer(() => this.o.store.setMeta(CIRCUITS_META, null));
  }

  /** True once every node of the current graph has been reconciled at least once. */
  get ready(): boolean {
    return this.graph !== undefined && this.firstRoundLeft.size === 0;
  }

  get currentGraph(): DesiredGraph<S> | undefined {
    return this.graph;
  }

  /** The errors of the last goal revision refused since the current graph was installed (null: none). */
  get goalErrors(): readonly string[] | null {
    return this.rejected;
  }

  /** The goals running hold no nodes, over nodes managed before: those are kept, neither reconciled nor deleted. */
  get emptyGoals(): boolean {
    return this.graph?.size === 0 && this.records.size > 0;
  }

  /** Status of every node, for the HTTP API. */
  nodes(): NodeRecord[] {
    return [...this.records.values()];
  }

  /** The backends whose circuit is open or probing, for `status` and the HTTP API. */
  circuits(): CircuitStatus[] {
    const out: CircuitStatus[] = [];
    for (const [backend, s] of this.breakers.states()) {
      if (s.state === 'closed') continue;
      const f = this.circuitFaults.get(backend);
      out.push({
        backend,
        state: s.state,
        since: s.state === 'open' ? s.openedAt : s.probeStartedAt,
        probeAt: s.state === 'open' ? s.probeAt : null,
        fault: f === undefined ? null : { class: f.class, message: f.message },
      });
    }
    return out;
  }

  queueStats(): ReturnType<WorkQueue<NodeId>['stats']> {
    return this.queue.stats();
  }

  /**
   * Installs a (new) compiled graph. Unchanged nodes keep their schedule;
   * new and changed nodes are queued at once; removed nodes are orphaned, or
   * deleted (prune + Delete) in reverse dependency order behind the
   * mass-deletion guard. An empty graph never deletes anything. The nodes of
   * `changedBackends` (declared otherwise than for the previous graph) count as
   * changed: released if held, and converged where their backend now points.
   * A store that refuses writes (a full disk) makes it throw only before the
   * graph is changed: the caller may then put back what it changed for it.
   */
  async setGraph(graph: DesiredGraph<S>, options: { gates?: ReadonlyMap<NodeId, NodeGate>; commit?: string | null; changedBackends?: ReadonlySet<string> } = {}): Promise<void> {
    const previous = this.graph;
    const previousGates = this.gates;
    // The store first: a write it refuses (a full disk) throws before the graph is changed.
    this.finishRun();
    const commit = options.commit ?? null;
    const runId = this.o.store.startRun(previous === undefined ? 'daemon-start' : 'daemon-reload', commit);
    this.runId = runId;
    this.o.store.setMeta(GOAL_ERRORS_META, null);
    this.o.store.setMeta(GOALS_IDLE_META, null);
    // An empty goal set never deletes anything (removeMissing): said, not silent, while nodes are kept
    // (`emptyGoals` once the graph is in). The store first, as above.
    const kept = graph.size === 0 ? this.records.size : 0;
    this.o.store.setMeta(GOALS_EMPTY_META, kept > 0 ? String(kept) : null);
    if (kept > 0) this.o.log.warn({ kept }, 'the goals hold no nodes: the nodes managed so far are kept as they are, neither reconciled nor deleted');
    this.graph = graph;
    this.gates = options.gates ?? new Map();
    this.commit = commit;
    this.rejected = null;
    // The new graph's watch before any of its nodes is queued: the batch loop observes them while
    // removed nodes are deleted (`removeMissing`, seconds for a command), and a backend takes the nodes
    // it is given as those it manages now (a removed node's path no longer claims a file).
    // The previous watch stops once the new one is armed: a watcher on the same directory shares its
    // inotify watch, so an event not yet read (a hand edit just before the reload) reaches the new one,
    // and the changes the previous one still held back are handed over (`notifyChanged`, in this graph).
    const stopPrevious = this.stopWatching;
    this.stopWatching = this.o.watch?.(graph.order, (ids) => this.notifyChanged(ids));
    stopPrevious?.();
    const now = this.o.clock.now();
    // Readiness waits only for the nodes looked at now; nodes that keep their schedule count as done.
    this.firstRoundLeft = new Set();
    const lookNow = (id: NodeId): void => {
      this.firstRoundLeft.add(id);
      this.queue.add(id);
    };

    for (const node of graph.order) {
      const rec = this.records.get(node.id);
      const gate = this.gates.get(node.id);
      if (rec === undefined) {
        this.put(node, 'pending', {});
        lookNow(node.id);
        continue;
      }
      // Its backend declared otherwise (another root, another server): what it finds there is to
      // converge, as for a changed spec, not drift to report.
      const backendChanged = options.changedBackends?.has(node.spec.backendId) === true;
      const released = heldByPolicy(rec) && gate === undefined;
      if (released) this.o.log.info({ node: node.id, goal: node.goal, backend: node.spec.backendId, type: node.spec.type, was: rec.reason }, POLICY_RELEASED);
      // Declared again while its delete was held: the delete is no longer the goal (`heldOnDelete`).
      const specChanged = storedGoalDigest(rec) !== node.spec.digest || released || backendChanged || heldOnDelete(rec);
      if (specChanged || rec.status === 'orphaned' || rec.status === 'deleted') {
        // A goal change releases a held node and restarts its lifecycle.
        this.transition(node, 'GOAL_CHANGED', { attempts: 0, retryAt: null, lastFault: null, reason: null, ...(backendChanged ? { appliedDigest: null } : {}) });
        this.drift.delete(node.id);
        lookNow(node.id);
      } else if (previous === undefined || !previous.has(node.id)) {
        // First graph of this process (or a node back in the goals): look at it, unless it waits for a backoff or an operator.
        this.put(node, rec.status, {});
        if (gate !== undefined) lookNow(node.id);
        else if (rec.status === 'held' && !waitsOnItsOwn(rec)) continue;
        else if (this.holdSpent(node, rec)) continue;
        else if (rec.retryAt !== null && rec.retryAt > now) this.queue.addAfter(node.id, rec.retryAt - now);
        else lookNow(node.id);
      } else {
        // Unchanged: keep its schedule (it is already queued, delayed, held or waiting on a dependency);
        // refresh the stored graph context. A gate that appeared, went away or changed is looked at now, and so
        // is a node whose reconcile settings or dependencies changed: its schedule was made under the
        // old ones (an interval of an hour, a wait for a dependency no longer declared).
        this.put(node, rec.status, {});
        // A gate whose reason changed (a policy edited, the goal not) is looked at now too: its hold says the new reason.
        if (previousGates.get(node.id)?.reason !== gate?.reason || !sameReconcileInputs(previous, node, graph)) lookNow(node.id);
      }
    }
    // A hold that ended (the gate gone, the node removed) is logged anew if it comes back.
    for (const id of this.policyHoldsLogged.keys()) if (!this.gates.has(id)) this.policyHoldsLogged.delete(id);
    // Nothing is thrown from here, the graph being in: a write the store refuses waits for the next
    // commit, and a delete it will not record as pending is not sent, but tried again (`notStarted`).
    await this.removeMissing(graph);
    this.flush();
  }

  /**
   * The goals' commit moved while their files stayed the same (a commit elsewhere in the repository,
   * a fast-forward), or back to the commit of the goals running once a newer revision was refused:
   * drift found from now on is reported under it; the log and the journal say when. The journal's
   * line goes with the records' writes: a store that refuses them (a full disk) has it written with
   * them later, and nothing is thrown into the daemon's commit watch.
   */
  setCommit(commit: string | null): void {
    if (this.graph === undefined || commit === this.commit) return;
    this.o.log.info({ from: this.commit, to: commit }, 'goals commit changed');
    this.commit = commit;
    const at = this.o.clock.now();
    this.deferred.defer(() => this.o.store.appendEvent({ at, node: null, kind: 'goals-commit', data: { commit } }));
    this.flush();
  }

  /** Records a rejected goal revision: the last good graph keeps running (if there is one: `GOALS_IDLE_META`). */
  rejectRevision(errors: readonly string[]): void {
    this.o.store.setMeta(GOAL_ERRORS_META, JSON.stringify(errors));
    this.o.store.setMeta(GOALS_IDLE_META, this.graph === undefined ? '1' : null);
    this.rejected = [...errors];
    this.o.store.appendEvent({ at: this.o.clock.now(), node: null, kind: 'goals-rejected', data: { errors: errors.length } });
  }

  /** A backend noticed a change: observe those nodes now, whatever the interval. */
  notifyChanged(ids: readonly NodeId[]): void {
    for (const id of ids) if (this.graph?.has(id) === true) this.queue.add(id);
  }

  /** An operator released a node (`desiredstate retry`). */
  operatorRetry(id: NodeId): OperatorRetryAnswer {
    const node = this.graph?.get(id);
    if (node === undefined) {
      const rec = this.records.get(id);
      if (rec === undefined) return { status: 'unknown' };
      const answer = this.retryDelete(id, this.deletableRemoved());
      if (answer === 'released') this.flush();
      return answer === 'released' ? this.released(rec.backendId) : { status: 'not-held', current: rec.status };
    }
    const record = this.records.get(id);
    const current = record?.status ?? 'pending';
    // Not held (nor failed), or held by a policy (which holds it again at once): nothing to release, and nothing is changed.
    if (!releasable(current) || (record !== undefined && heldByPolicy(record))) return { status: 'not-held', current };
    this.release(node);
    this.flush();
    return this.released(node.spec.backendId);
  }

  /** A release's answer: with its backend's circuit where that is open, as the node is not tried before its probe. */
  private released(backendId: string): OperatorRetryAnswer {
    const circuit = this.circuits().find((c) => c.backend === backendId);
    return circuit === undefined ? { status: 'released' } : { status: 'released', circuit };
  }

  /**
   * An operator released every node the fault policy holds or a backoff keeps waiting
   * (`desiredstate retry --all`), in one write; returns their ids, and the open circuits those of
   * their backends wait for. A node a policy holds is left to the policy: releasing it would only hold
   * it again.
   */
  operatorRetryAll(): OperatorRetryAllAnswer {
    const released: { readonly id: NodeId; readonly backendId: string }[] = [];
    const deletable = this.deletableRemoved();
    for (const r of [...this.records.values()]) {
      const node = this.graph?.get(r.id);
      if (node === undefined) {
        if (this.retryDelete(r.id, deletable) === 'released') released.push(r);
        continue;
      }
      if (!releasable(r.status) || heldByPolicy(r)) continue;
      this.release(node);
      released.push({ id: r.id, backendId: node.spec.backendId });
    }
    this.flush();
    const circuits = this.circuits()
      .map((c) => ({ ...c, nodes: released.filter((r) => r.backendId === c.backend).map((r) => r.id) }))
      .filter((c) => c.nodes.length > 0);
    return { released: released.map((r) => r.id), circuits };
  }

  /**
   * A node removed from the goals whose delete the fault policy gave up on (a permanent fault: the
   * operator has fixed its cause since): deleted again now. Until then it stays held, through goal loads and
   * restarts (`deleteBar`), as a node of the goals does.
   */
  private retryDelete(id: NodeId, deletable: ReadonlySet<NodeId>): 'released' | 'not-held' {
    const rec = this.records.get(id);
    // Only what the current goals approve is deleted (prune + Delete, under the mass-deletion limit).
    if (rec === undefined || !releasable(rec.status) || !deletable.has(id)) return 'not-held';
    // Held because its read before the delete could not tell: the operator has checked, as for a node of the goals.
    this.finishReleased(rec);
    const at = this.o.clock.now();
    this.deferred.defer(() => this.o.store.appendEvent({ at, node: id, kind: 'operator-retry', data: { previous: rec.status } }));
    // No longer held (`deleteBar`): pending, as `releaseStoredNode` leaves it with no daemon running.
    this.records.set(id, { ...rec, ...RELEASED, status: nextStatus(rec.status, 'OPERATOR_RETRY').status, updatedAt: at });
    this.dirty.add(id);
    this.deleting.add(id);
    this.queue.add(id);
    return 'released';
  }

  /**
   * The mass deletion installing `graph` would be: the nodes it would delete past the guard's limit
   * (max(5, 10 %) of the managed nodes), dependents first, unless `allowMassDeletion`; undefined for
   * none. The daemon refuses such a revision whole, before installing it. Counted as `plan` and `apply`
   * count them (`splitRemoved`): not the deletes `refusedByDeclaration` refuses before any call, which is to
   * judge by the backends `graph` declares (the provisioner's own, the default, judges by those of the graph running).
   */
  massDeletion(
    graph: DesiredGraph<S>,
    refusedByDeclaration?: (node: DesiredNode<S>) => Fault | undefined,
  ): { readonly count: number; readonly limit: number; readonly ids: readonly NodeId[] } | undefined {
    const refused = this.removedSplit(graph, refusedByDeclaration).refused;
    return refused === undefined ? undefined : { count: refused.count, limit: refused.limit, ids: refused.nodes.map((r) => r.id) };
  }

  /** `splitRemoved` of the records against `graph`, its guard counting as `plan` and `apply` do: by the provisioner's `refusedByDeclaration` unless told. */
  private removedSplit(graph: DesiredGraph<S>, refusedByDeclaration = this.o.provisioner.refusedByDeclaration?.bind(this.o.provisioner)): RemovedSplit {
    return splitRemoved(graph, this.records.values(), this.o.codec, this.o.allowMassDeletion, refusedByDeclaration, (id) => hasInterruptedCreate(this.pending.get(id)));
  }

  /** The removed nodes the current goals approve deleting (none a node of theirs names). */
  private deletableRemoved(): ReadonlySet<NodeId> {
    if (this.graph === undefined) return new Set();
    const split = this.removedSplit(this.graph);
    return new Set(split.toDelete.filter((r) => !split.namedBy.has(r.id)).map((r) => r.id));
  }

  private release(node: DesiredNode<S>): void {
    const rec = this.records.get(node.id);
    if (rec !== undefined) this.finishReleased(rec);
    const previous = rec?.status ?? 'pending';
    const at = this.o.clock.now();
    this.deferred.defer(() => this.o.store.appendEvent({ at, node: node.id, kind: 'operator-retry', data: { previous } }));
    this.transition(node, 'OPERATOR_RETRY', RELEASED);
    this.queue.add(node.id);
  }

  /** Ends what was pending on a node an operator released whose read could not tell (`finishReleased`). */
  private finishReleased(rec: NodeRecord): void {
    if (finishReleased(rec, this.pending.get(rec.id), (op, outcome, detail) => this.deferred.finish(op.id, outcome, detail))) this.pending.delete(rec.id);
  }

  /**
   * Holds node `id` back until the returned function is called: nothing is done to it meanwhile (neither
   * observed nor created, updated or deleted), and its record says why (`blocked`, with `reason`). For
   * what the caller knows and the controller cannot: a command left running on the node by a process
   * now gone, which an observation would race. The other nodes go on; its dependents wait for it as for
   * any node not ready, and readiness does not wait for it. A new graph (a goal reload) keeps it held, and
   * only the caller releases it: then it is looked at at once. Releasing twice is harmless. An operation
   * on it already under way when it is held is not stopped: hold it before `start` to be sure of none.
   */
  hold(id: NodeId, reason: string): () => void {
    const entry = { reason };
    const holds = this.holds.get(id) ?? new Set();
    this.holds.set(id, holds.add(entry));
    // Looked at now (in its turn), so that its record shows the hold rather than what it did before.
    if (this.graph?.has(id) === true || this.records.has(id)) this.queue.add(id);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.holds.get(id);
      left?.delete(entry);
      if (left !== undefined && left.size > 0) {
        this.queue.add(id); // still held, for the reasons left
        return;
      }
      this.holds.delete(id);
      const node = this.graph?.get(id);
      // Pending again: blocked it was for the hold, and a dependency not ready blocks it with its own reason.
      if (node !== undefined && this.records.get(id)?.status === 'blocked') this.transition(node, 'DEPENDENCIES_READY', { reason: null });
      // A removed node whose delete the hold put off (`deleting`) is deleted now, in its turn.
      if (node !== undefined || this.records.has(id)) this.queue.add(id);
    };
  }

  /** Starts the worker loops. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const loops = Math.max(1, Math.min(4, Math.ceil(this.o.concurrency / 5)));
    this.loops = Array.from({ length: loops }, () => this.loop());
  }

  /** Re-queues every node now and resolves when the queue has drained (benchmarks, tests, `apply`-like passes). */
  async reconcileAll(): Promise<void> {
    if (this.graph === undefined) return;
    for (const id of this.graph.ids()) this.queue.add(id);
    await this.queue.whenIdle();
  }

  /** Resolves when nothing is due or in flight. */
  whenIdle(): Promise<void> {
    return this.queue.whenIdle();
  }

  /**
   * Stops taking work, lets in-flight operations finish for up to `graceMs`,
   * then aborts them; flushes state. The deletes of removed nodes a `setGraph`
   * runs (a goal load) are in-flight operations too, and no more of them start.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopWatching?.();
    this.stopWatching = undefined;
    this.queue.shutDown();
    const timer = this.o.clock.setTimeout(() => this.abort.abort(), graceMs);
    // The queue is idle once the worker loops and `removeMissing`'s deletes (which claim their nodes) are done.
    await Promise.allSettled([...this.loops, this.queue.whenIdle()]);
    this.o.clock.clearTimeout(timer);
    this.flush();
    if (this.dirty.size > 0 || this.deferred.size > 0) {
      // The last chance to write them is gone: said, not dropped in silence. Operations left pending are
      // resolved by observing at the next start, and a drift still there is reported again then.
      this.o.log.error(
        { records: this.dirty.size, writes: this.deferred.size },
        'state store still refuses writes at shutdown: the records kept in memory are lost (operations left pending are resolved by observing at the next start; drift still there is reported again)',
      );
    }
    try {
      this.finishRun();
    } catch (err) {
      // What the run did is in the node records and the journal; only its summary is lost.
      this.o.log.error({ err }, 'state store write failed; the run is left unfinished');
    }
  }

  private async loop(): Promise<void> {
    for (;;) {
      const first = await this.queue.get();
      if (first === undefined) return;
      const batch = [first];
      while (batch.length < this.o.batchSize && this.queue.stats().ready > 0) {
        const next = await this.queue.get();
        if (next === undefined) break;
        batch.push(next);
      }
      // A node is given back as soon as this batch is done with it, not when all of it is: one slow
      // operation (a 20 s playbook) must not keep a batch-mate's hand edit, or its dependents, waiting.
      const released = new Set<NodeId>();
      const release = (id: NodeId): void => {
        if (released.has(id)) return;
        released.add(id);
        this.queue.done(id);
        this.wake(id);
      };
      try {
        await this.reconcileBatch(batch, release, (id) => released.has(id));
      } catch (err) {
        this.o.log.error({ err }, 'reconcile batch failed');
        for (const id of batch) if (!released.has(id)) this.queue.addAfter(id, FAILED_BATCH_RETRY_MS);
      } finally {
        this.flush();
        for (const id of batch) release(id);
      }
    }
  }

  /** A node of the backend, other than `except`, that was ready when last looked at: the probe a circuit tries first. */
  private readyNodeOf(backendId: string, except: NodeId): NodeId | undefined {
    for (const r of this.records.values()) {
      if (r.backendId === backendId && r.id !== except && r.status === 'ready' && this.graph?.has(r.id) === true && !this.holds.has(r.id)) return r.id;
    }
    return undefined;
  }

  /** Whether `id` waits for another node to be done with (see `waitFor`). */
  private isWaiting(id: NodeId): boolean {
    for (const waiting of this.waitingOn.values()) if (waiting.has(id)) return true;
    return false;
  }

  /** Looks at `id` again once the worker that has `on` (or will have it: it is due) is done with it (`wake`). */
  private waitFor(on: NodeId, id: NodeId): void {
    const waiting = this.waitingOn.get(on) ?? new Set<NodeId>();
    this.waitingOn.set(on, waiting.add(id));
  }

  /** `id` is done with (reconciled, deleted): the nodes that wait for it (`waitFor`) are due. */
  private wake(id: NodeId): void {
    const waiting = this.waitingOn.get(id);
    if (waiting === undefined) return;
    this.waitingOn.delete(id);
    for (const w of waiting) this.queue.add(w);
  }

  /** `release`: gives a node of the batch back to the queue once the batch is done with it (see `loop`). */
  private async reconcileBatch(ids: readonly NodeId[], release: (id: NodeId) => void, isReleased: (id: NodeId) => boolean = () => false): Promise<void> {
    const graph = this.graph;
    if (graph === undefined) return;
    const toObserve: DesiredNode<S>[] = [];
    const toDelete: NodeRecord[] = [];
    const now = this.o.clock.now();
    for (const id of ids) {
      const node = graph.get(id);
      if (node === undefined) {
        const rec = this.records.get(id);
        if (rec === undefined) continue;
        const removedMeanwhile = this.removedInFlight.delete(id);
        if (removedMeanwhile) {
          // Its operation is over: decided now, on what it left (a create makes the node managed), and deleted
          // at once, as the goal load that removed it would have (`removeMissing`).
          const split = this.removedSplit(graph);
          const named = split.namedBy.get(id);
          if (named !== undefined) this.putOff(rec, named.reason);
          else if (split.toDelete.some((r) => r.id === id)) this.deleting.add(id);
          else if (split.toOrphan.some((r) => r.id === id)) this.orphan([rec], split);
        }
        // A removed node whose delete failed, due again (or put off by a hold: deleted once released).
        if (!this.deleting.has(id) || this.holds.has(id)) continue;
        // Woken early (a hold released): the backoff of its failed delete still stands, as a node's of the goals does.
        if (!removedMeanwhile && rec.retryAt !== null && rec.retryAt > now) this.queue.addAfter(id, rec.retryAt - now);
        else toDelete.push(rec);
        continue;
      }
      const rec = this.records.get(id);
      const gate = this.gates.get(id);
      if (gate !== undefined) {
        const reason = policyHoldReason(gate.reason);
        // A gate is part of the goals: a node at rest (ready, drifted, failed, blocked) restarts, then is held.
        // One held by an older gate (the policy changed, not the goal) takes the reason of the gate now in force.
        if (rec?.status !== 'held' || (heldByPolicy(rec) && rec.reason !== reason)) {
          this.transition(node, 'GOAL_CHANGED', {});
          this.transition(node, 'HOLD', { reason, retryAt: null });
        }
        // Said once a hold (and again when its reason changes), not on every pass that finds it held.
        if (this.policyHoldsLogged.get(id) !== reason) {
          this.policyHoldsLogged.set(id, reason);
          this.o.log.warn(policyHoldFields(node, gate), POLICY_HELD);
        }
        this.roundDone(id);
        continue;
      }
      if (rec?.status === 'held' && !waitsOnItsOwn(rec)) {
        this.roundDone(id);
        continue;
      }
      const holds = this.holds.get(id);
      if (holds !== undefined) {
        this.holdBack(node, rec, holds);
        this.roundDone(id);
        continue; // re-queued when released
      }
      if (rec?.retryAt != null && rec.retryAt > now) {
        // Woken early (a change event): the backoff still stands.
        this.queue.addAfter(id, rec.retryAt - now);
        continue;
      }
      if (this.blockedOnDependency(node, rec)) {
        this.roundDone(id);
        continue; // re-queued when the dependency becomes ready
      }
      const breaker = this.breakers.for(node.spec.backendId);
      const permit = breaker.acquire();
      if (permit.verdict === 'reject') {
        // The backend's circuit is open: try again when it lets a probe through.
        this.queue.addAfter(id, Math.max(1, permit.retryAt - now));
        continue;
      }
      if (permit.verdict === 'probe' && rec?.status === 'failed') {
        // A node failing on its own (its resource's fault, not the backend's) would fail the probe and
        // keep the circuit open for another cool-down, every healthy node of the backend waiting: the
        // probe goes to one that was ready, if there is one, and this node comes after it.
        const healthy = this.readyNodeOf(node.spec.backendId, id);
        if (healthy !== undefined) {
          breaker.cancelProbe();
          this.queue.add(healthy);
          this.queue.addAfter(id, this.o.circuitBreaker.probeWaitMs);
          continue;
        }
      }
      toObserve.push(node);
    }
    // What goes no further than this is done with: given back before the backend calls below.
    if (toDelete.length + toObserve.length < ids.length) {
      const further = new Set<NodeId>([...toDelete.map((r) => r.id), ...toObserve.map((n) => n.id)]);
      for (const id of ids) if (!further.has(id)) release(id);
    }
    await this.deleteInOrder(toDelete);
    for (const r of toDelete) release(r.id);
    if (toObserve.length === 0) return;
    const ctx = this.context();
    const observed = await this.o.provisioner.observe(toObserve, ctx);
    const steps: ProvisionStep<S>[] = [];
    // Decided in dependency order, so a node whose dependency this batch is about to create or
    // correct waits for it (blocked, woken when it is ready) instead of racing it.
    if (toObserve.length > 1) toObserve.sort((a, b) => graph.position(a.id) - graph.position(b.id));
    const batch = new Set(ids);
    // This batch's nodes decided so far (just observed: what they are is known), and those put off.
    const decided = new Set<NodeId>();
    const putOff = new Set<NodeId>();
    // A dependency being reconciled (by another worker, or put off in this batch) or due to be.
    // A batch-mate given back already (held, blocked) may be another worker's by now.
    const pending = (on: NodeId): boolean =>
      putOff.has(on) || (!decided.has(on) && (this.queue.isDue(on) || (this.queue.isProcessing(on) && (!batch.has(on) || isReleased(on))) || this.isWaiting(on)));
    // Half-open circuits' probes whose read answered and whose write may follow (`judgedByWrite`).
    const probing = new Map<NodeId, string>();
    for (const node of toObserve) {
      const obs = observationOf(observed, node.id);
      // The backend answered, whatever this node does next (waits for a dependency, is held): its
      // circuit closes. A probe's answer left uncounted kept it half-open for another cool-down, every
      // node of the backend waiting: one whose write follows is judged by that write (`settle`, `fail`),
      // and by its read where none is sent after all (below). A failed observation is counted where it
      // is decided (`fail`).
      if (obs.status !== 'failed') {
        if (this.judgedByWrite(node.spec.backendId, obs.status === 'absent' || obs.status === 'drifted')) probing.set(node.id, node.spec.backendId);
        else this.backendAnswered(node.spec.backendId);
      }
      // About to create or correct it while one of its dependencies is being reconciled (by another
      // worker, or put off in this batch) or is due to be (which may re-create it): look again once
      // that is done, rather than race it. Only for a node that needs work: a steady pass is never held up.
      const busy = obs.status === 'absent' || obs.status === 'drifted' ? node.dependsOn.find((d) => pending(d.on))?.on : undefined;
      if (busy !== undefined) {
        this.waitFor(busy, node.id);
        putOff.add(node.id);
        continue;
      }
      // Deleted out of band: what it depends on may be gone with it (`rm -rf` of a tree), though no
      // change was heard of it and its record says ready. It is looked at first, once, and made again
      // if need be (a directory with its own mode), then this node: never a file made in a directory
      // the backend made for it in passing. So too for a reference to an output its dependency's
      // outputs as recorded lack (`OUTPUT_UNKNOWN`): the dependency's read may give it now (its command
      // fixed, then `retry`), or its observation in this batch just did, newer than what this node was
      // resolved against (waited for, not looked at again). Only then is the node failed, permanently.
      const unknownOutput = obs.status === 'failed' && obs.fault.code === OUTPUT_UNKNOWN;
      if (((obs.status === 'absent' && appliedAtSpec(this.records.get(node.id), node, obs)) || unknownOutput) && !this.depsLookedAt.has(node.id)) {
        const deps = node.dependsOn.filter((d) => graph.has(d.on) && (unknownOutput || !decided.has(d.on)));
        if (deps.length > 0) {
          this.depsLookedAt.add(node.id);
          for (const d of deps) {
            this.waitFor(d.on, node.id);
            if (!decided.has(d.on)) this.queue.add(d.on);
          }
          putOff.add(node.id);
          continue;
        }
      }
      this.depsLookedAt.delete(node.id);
      decided.add(node.id);
      const step = this.decide(node, obs);
      if (step === undefined) this.roundDone(node.id);
      else steps.push(step);
    }
    const operated = new Set(steps.map((st) => st.node.id));
    for (const node of toObserve) if (!operated.has(node.id)) release(node.id);
    // A probe no write follows after all (put off, held, drift only reported) is judged by its read.
    for (const [id, backendId] of probing) if (!operated.has(id)) this.backendAnswered(backendId);
    if (steps.length === 0) return;
    // Crash safety: every operation of the batch is on disk as pending before any backend call,
    // in one transaction (one fsync, not one per node).
    let opIds: number[];
    try {
      opIds = this.deferred.commit(() =>
        steps.map((step) => this.o.store.beginOperation(step.node.id, step.op, this.runId)),
      );
    } catch (err) {
      // Not recorded, so not sent: the nodes are not being created or updated. Back to pending (as a
      // restart would put them), else a node left `creating` ignores every later observation.
      for (const step of steps) this.put(step.node, 'pending', {});
      // Not sent: a probe among them is judged by its read, or the circuit waited another cool-down.
      for (const [id, backendId] of probing) if (operated.has(id)) this.backendAnswered(backendId);
      this.notStarted(steps.map((st) => st.node.id), err);
      return;
    }
    await runSteps(this.o.provisioner, steps, ctx, this.o.concurrency, this.slots, (i, result) => {
      const step = steps[i]!;
      if (result.status === 'failed' && this.abort.signal.aborted && (step.op === 'update' || createCutShort(step.op, result))) {
        // Cut off by the shutdown, its grace over: not a failure of the node, no attempt spent. Left pending,
        // as after a crash, and resolved by observing at the next start, a create's read told it was
        // interrupted. (A create only when it was cut short, `createCutShort`: one that never started must
        // not make its next read be told so, which may hold the node for an operator.)
        this.put(step.node, 'pending', { reason: `${step.op} cut off by the shutdown; observed again at the next start` });
        this.o.log.warn({ node: step.node.id, backend: step.node.spec.backendId, op: step.op, fault: result.fault }, 'operation cut off by the shutdown; left pending');
        this.roundDone(step.node.id);
        release(step.node.id);
        return;
      }
      if (createCutShort(step.op, result)) {
        // Stopped mid-way (its timeout, a signal): it may have made something, as after a crash. Left
        // pending, the next read is told so, and may say it cannot tell rather than invite a second create.
        this.pending.set(step.node.id, [{ id: opIds[i]!, node: step.node.id, op: 'create', runId: this.runId, startedAt: this.o.clock.now() }]);
      } else {
        this.deferred.finished(opIds[i]!, result);
      }
      this.settle(step, result, this.o.log.child({ node: step.node.id, backend: step.node.spec.backendId }));
      this.roundDone(step.node.id);
      release(step.node.id);
    });
  }

  /** From an observation to the next state, and the operation to run, if any. */
  private decide(node: DesiredNode<S>, obs: Observation): ProvisionStep<S> | undefined {
    const rec = this.records.get(node.id);
    if (obs.status === 'upToDate' && rec !== undefined && this.isSteady(node, rec, obs)) {
      // The hot path of a steady-state pass: ready -> observing -> ready is no change at all,
      // so nothing is written and no transition needs recording.
      this.countUnchanged(node.id);
      this.scheduleNext(node);
      return undefined;
    }
    // A dependency decided just before it in this batch is being created or corrected: wait for it.
    if (this.blockedOnDependency(node, rec)) {
      // Its failed observation still counts against the backend (a probe's included).
      if (obs.status === 'failed') this.backendFailed(node.spec.backendId, obs.fault, node.id);
      return undefined;
    }
    const log = this.o.log.child({ node: node.id, backend: node.spec.backendId });
    // Whether its dependents could go on before this observation (see `succeed`).
    const wasReady = this.isReady(node.id);
    if (rec?.status === 'blocked') this.transition(node, 'DEPENDENCIES_READY', { reason: null });
    if (this.records.get(node.id)?.status === 'failed') this.transition(node, 'RETRY_DUE', {});
    // Held waiting for what may come on its own (`waitsOnItsOwn`): looked at again, as it is now.
    const current = this.records.get(node.id);
    if (current !== undefined && waitsOnItsOwn(current)) this.transition(node, 'RECHECK', {});
    this.transition(node, 'OBSERVE', {});
    switch (obs.status) {
      case 'absent': {
        this.resolvePending(node.id, 'absent');
        if (!appliedAtSpec(rec, node, obs)) {
          this.transition(node, 'OBSERVED_ABSENT', {});
          return { node, op: 'create', diffs: [] };
        }
        // Applied at this spec and gone: deleted out of band.
        const diffs = [MISSING_RESOURCE];
        const memory = this.noteDrift(node, diffs, log);
        const wait = this.uncorrected(node, memory, diffs);
        if (wait !== undefined) {
          this.transition(node, 'OBSERVED_DRIFTED', {});
          this.putDrifted(node, diffs, { reason: `resource missing; ${wait}`, managed: true });
          return undefined;
        }
        this.transition(node, 'OBSERVED_ABSENT', {});
        return { node, op: 'create', diffs };
      }
      case 'upToDate':
        this.resolvePending(node.id, 'as-desired');
        this.driftGone(node.id);
        this.succeed(node, 'OBSERVED_UP_TO_DATE', obs, wasReady);
        this.countUnchanged(node.id);
        return undefined;
      case 'drifted': {
        const diffs = withoutIgnored(obs.diffs, node.settings.ignoreFields);
        this.resolvePending(node.id, diffs.length === 0 ? 'as-desired' : 'changes-left');
        if (diffs.length === 0) {
          this.driftGone(node.id);
          this.succeed(node, 'OBSERVED_UP_TO_DATE', { ...obs, left: obs.diffs }, wasReady);
          return undefined;
        }
        const applied = appliedAtSpec(rec, node, obs, diffs);
        const left = leftAsFound(obs.diffs, diffs);
        const { changes, drift } = splitDrift(diffs);
        // Drift to be corrected (now, or once a flap's backoff is over) keeps the outputs the node was applied
        // with, as `plan` and `apply` (correcting it before its dependents) give them: its dependents are not
        // rewritten to a hand edit about to be undone, and back again. Drift left as it is (only reported)
        // gives the outputs read, as does a node not applied at this spec.
        const kept = applied && drift.length > 0 && corrected(node.settings, drift) ? rec?.outputs : undefined;
        this.transition(node, 'OBSERVED_DRIFTED', { outputs: kept ?? obs.outputs, memo: obs.memo ?? null });
        if (!applied) {
          // The goal changed, or an output it references (or an existing resource is adopted): converge it;
          // it fails, naming the field, without a backend call where the goal asks for what no update can make.
          const cannot = uncorrectableFault(diffs);
          this.transition(node, 'UPDATE', {});
          if (cannot === undefined) return { node, op: 'update', diffs, left };
          this.settle({ node, op: 'update', diffs }, { status: 'failed', fault: cannot }, log);
          return undefined;
        }
        // Changes of the desired side (a rotated secret) are applied whatever selfHeal says, and are neither
        // reported as drift nor counted as flaps; drift of the same node keeps its own course.
        logDesiredChanges(log, changes);
        const wait = drift.length === 0 ? undefined : this.uncorrected(node, this.noteDrift(node, drift, log), drift);
        // Left as it is (only reported, or waiting for a flap's backoff): all of the drift stands.
        if (wait !== undefined && changes.length === 0) {
          this.putDrifted(node, drift, { reason: wait, managed: true });
          return undefined;
        }
        this.transition(node, 'UPDATE', {});
        return { ...(wait === undefined ? correctionStep(node, diffs) : leavingDrift(node, changes, drift, wait)), left };
      }
      case 'indeterminate':
        this.transition(node, 'OBSERVED_INDETERMINATE', { reason: heldReason(node.id, obs), lastFault: heldFault(obs) });
        this.summary.held++;
        log.warn({ reason: obs.reason }, obs.waiting === true ? 'node held: waiting' : 'node held: existence indeterminate');
        // What it waits for may come on its own (a script's trust, earned by other nodes' runs): looked at
        // again on its interval. One that cannot tell whether its resource exists waits for `retry`.
        if (obs.waiting === true) this.scheduleNext(node);
        return undefined;
      case 'failed':
        this.transition(node, 'OBSERVE_FAILED', {});
        this.fail(node, obs.fault, log, 'observe failed');
        return undefined;
      default:
        return assertNever(obs, 'observation');
    }
  }

  /**
   * Whether a drift just noted is left uncorrected for now, and why (undefined: correct it
   * now; the correction time is remembered for flap detection). Under `selfHeal: false` it
   * is only reported and looked at again next interval; flapping drift waits for its backoff.
   */
  private uncorrected(node: DesiredNode<S>, memory: DriftMemory, diffs: readonly FieldDiff[]): string | undefined {
    if (!corrected(node.settings, diffs)) {
      this.scheduleNext(node);
      return `drift reported (${reportOnly(node.settings, diffs)})`;
    }
    const now = this.o.clock.now();
    if (memory.correctAfter > now) {
      // Flapping: correct with a growing backoff, never in a hot loop.
      this.queue.addAfter(node.id, memory.correctAfter - now);
      return `flapping drift; next correction in ${Math.ceil((memory.correctAfter - now) / 1000)}s`;
    }
    for (const d of diffs) memory.corrected.set(d.path, now);
    return undefined;
  }

  /**
   * Whether a read that answered leaves its backend's circuit to the write that follows it (`writes`: a
   * create, update or delete may): so only while the circuit is half-open, this read its probe's. A probe
   * is the whole node operation: a backend that reads but no longer writes (a full disk, a lock held on
   * writes) closed its circuit at each probe's read, every node's write failing after it, and never opened
   * it again. A closed circuit keeps its bookkeeping: a read that answered closes it, as ever.
   */
  private judgedByWrite(backendId: string, writes: boolean): boolean {
    return writes && this.breakers.for(backendId).state.state === 'half-open';
  }

  /** The backend answered: its circuit closes. */
  private backendAnswered(backendId: string): void {
    this.circuitChanged(backendId, this.breakers.for(backendId).recordSuccess());
  }

  /** The backend failed for a node: counted by its circuit breaker (which may open), once a node until the backend answers. */
  private backendFailed(backendId: string, f: Fault, id: NodeId): void {
    this.circuitChanged(backendId, this.breakers.for(backendId).recordFailure(f, id), f);
  }

  /** An outage's start and end, each said once: while a circuit stays open its nodes wait silently for the probe. */
  private circuitChanged(backendId: string, change: BreakerChange, f?: Fault): void {
    if (change === undefined) return;
    const at = this.o.clock.now();
    if (change === 'closed') {
      this.circuitFaults.delete(backendId);
      this.o.log.info({ backend: backendId }, 'backend circuit closed');
    } else {
      if (f !== undefined) this.circuitFaults.set(backendId, f);
      const state = this.breakers.for(backendId).state;
      const probeInMs = state.state === 'open' ? state.probeAt - at : 0;
      this.o.log.warn({ backend: backendId, fault: f, probeInMs }, 'backend circuit open');
    }
    // For `status` from another process, and the journal: with the batch's other writes.
    const circuits = this.circuits();
    this.deferred.defer(() => {
      this.o.store.setMeta(CIRCUITS_META, circuits.length === 0 ? null : JSON.stringify(circuits));
      this.o.store.appendEvent({ at, node: null, kind: change === 'opened' ? 'circuit-opened' : 'circuit-closed', data: { backend: backendId, ...(f === undefined ? {} : { fault: f.message }) } });
    });
  }

  /**
   * Ready, applied at exactly the spec observed (`digestAt`: a record an older version wrote, with only the
   * goal's digest where references were resolved, is written anew, see `appliedAtSpec`), same outputs and
   * memo, nothing pending or remembered: observing it changed nothing. The referenced outputs the record
   * keeps are those of the same resolution as its digest (`put`), so an equal digest says they are current;
   * a record written before they were kept gets them once, here.
   */
  private isSteady(node: DesiredNode<S>, rec: NodeRecord, obs: Extract<Observation, { status: 'upToDate' }>): boolean {
    return (
      rec.status === 'ready' &&
      isDigestAt(rec.appliedDigest, node, obs) &&
      rec.attempts === 0 &&
      rec.retryAt === null &&
      !this.pending.has(node.id) &&
      // A past drift that is over keeps its memory (for flap detection) but no longer leaves the fast path.
      this.drift.get(node.id)?.outstanding !== true &&
      sameOutputs(rec.outputs, obs.outputs) &&
      sameOutputs(rec.memo, obs.memo ?? null) &&
      (obs.refs === undefined || storedRefs(rec) !== undefined) &&
      // A field kept as not applied (`RecordSnapshot.unapplied`) is found as the goal has it: the record drops it.
      storedUnapplied(rec) === undefined
    );
  }

  /**
   * The operations a crash left pending on a node just observed, resolved by what was found
   * (`interruptedOutcome`), as apply resolves them: a create's resource is adopted, never created again;
   * an update with changes left, or of a resource found gone, is abandoned, not taken for done, and the
   * node is reconciled from this observation (whatever selfHeal leaves of it: never left pending). Those
   * of a node not observed (held, blocked, its observation failed or unable to tell) stay pending until it
   * is: nothing takes a pending update for one in flight, and a pending create is what its next read must
   * be told of (`OperationContext.interrupted`).
   */
  private resolvePending(id: NodeId, found: FoundAfterInterruption): void {
    const ops = this.pending.get(id);
    if (ops === undefined) return;
    this.pending.delete(id);
    finishInterrupted(ops, found, (op, outcome, detail) => {
      this.deferred.finish(op.id, outcome, detail);
      this.o.log.info({ node: id, backend: this.records.get(id)?.backendId, op: op.op }, RESOLVED[outcome]);
    });
  }

  /**
   * Records a delete as pending before the backend call and finished after it (unless the shutdown cut it
   * off: `cutOff`). Undefined when the store would not record it (a full disk): not sent, and tried again
   * later (`notStarted`).
   */
  private async provision(node: DesiredNode<S>, op: 'delete', call: () => Promise<ProvisionResult>): Promise<ProvisionResult | undefined> {
    let opId: number;
    // What a crash left pending on a removed node its read found there (a delete cut short before it did its
    // work) is ended here, by the delete that takes its place, as apply ends it: else it stayed pending for good.
    const stale = this.pending.get(node.id);
    try {
      opId = this.deferred.commit(() => {
        finishReplacedByDelete(stale, (o, outcome, detail) => this.o.store.finishOperation(o.id, outcome, detail));
        return this.o.store.beginOperation(node.id, op, this.runId);
      });
    } catch (err) {
      this.notStarted([node.id], err);
      return undefined;
    }
    this.pending.delete(node.id);
    const result = await call();
    if (!this.cutOff(result)) this.deferred.finished(opId, result);
    return result;
  }

  private settle(step: ProvisionStep<S>, result: ProvisionResult, log: Logger): void {
    const node = step.node;
    const what = step.op === 'create' ? 'created' : 'updated';
    if (result.status === 'done') {
      this.backendAnswered(node.spec.backendId);
      // A corrected drift is over: the next one is a new occurrence (reported, and a flap if it comes back soon).
      // Drift left as it is (only the desired changes were applied) is still the same outstanding occurrence.
      if (step.leftDrift === undefined) {
        this.settleDrift(node, true);
        this.driftGone(node.id);
      }
      // The memo the operation returned, if any: an earlier observation's no longer describes what is there.
      this.operated.add(node.id);
      // Changed by the operation: what failed against it before may not now (see `succeed`).
      this.succeed(node, 'PROVISION_DONE', { ...result, left: step.left }, false);
      // What the update left (not what it applied) says whether its dependents wait.
      if (step.leftDrift !== undefined) this.putDrifted(node, step.leftDrift.diffs, { reason: step.leftDrift.reason });
      this.summary[what]++;
      log.info({ type: node.spec.type }, what === 'created' ? 'node created' : 'node updated');
      return;
    }
    // A correction that failed: the drift is still there (a desired change failing beside drift left as it is is no correction).
    if (step.leftDrift === undefined) this.settleDrift(node, false);
    this.transition(node, 'PROVISION_FAILED', {});
    this.fail(node, result.fault, log, what === 'created' ? 'create failed' : 'update failed');
  }

  /**
   * The node is ready (observed up to date, or provisioned): its dependents
   * are woken. Every caller reaches here from observing, creating or
   * updating, never from ready (a steady node takes `isSteady`'s fast path),
   * so the wake-up is unconditional: a dependent blocked meanwhile is never
   * left waiting. `wasReady` false (it was not ready, or an operation just changed it): a dependent
   * that failed meanwhile, its failure maybe this node's doing (a file under a directory that was a
   * symlink), is looked at now too rather than after its backoff.
   */
  private succeed(node: DesiredNode<S>, event: NodeEventType, at: { readonly outputs: Outputs; readonly memo?: ObservationMemo | undefined } & AppliedAt, wasReady: boolean): void {
    this.transition(node, event, { outputs: at.outputs, memo: at.memo ?? null, managed: true, attempts: 0, retryAt: null, lastFault: null, reason: null }, at);
    this.scheduleNext(node);
    for (const d of this.graph?.dependents(node.id) ?? []) {
      const dep = wasReady ? undefined : this.records.get(d);
      const dependent = dep?.retryAt != null && (dep.status === 'failed' || dep.status === 'blocked') ? this.graph?.get(d) : undefined;
      if (dependent !== undefined) this.put(dependent, dep!.status, { retryAt: null });
      this.queue.add(d);
    }
  }

  /**
   * Leaves the node drifted, `left` the drift that stands (`driftLeft`): drift that makes it unusable to
   * its dependents keeps them waiting (`driftBlocksDependents`); any other lets them go on, and those that
   * waited on it are woken.
   */
  private putDrifted(node: DesiredNode<S>, left: readonly FieldDiff[], patch: Partial<NodeRecord>): void {
    const blocks = driftBlocksDependents(left);
    if (blocks) this.blockingDrift.add(node.id);
    else this.blockingDrift.delete(node.id);
    this.put(node, 'drifted', patch);
    if (blocks) this.countBlockedBehind(node.id);
    else for (const d of this.graph?.dependents(node.id) ?? []) if (this.records.get(d)?.status === 'blocked') this.queue.add(d);
  }

  /**
   * Holds a node stored failed with its retry budget spent (by applies, which try again each run), as the
   * fault policy would have at its last failure, without another attempt; true when it did.
   */
  private holdSpent(node: DesiredNode<S>, rec: NodeRecord): boolean {
    const spent = this.spentBudget(rec);
    if (spent === undefined) return false;
    this.holdByFaultPolicy(node, spent.fault, rec.attempts, spent.why, this.o.log.child({ node: node.id, backend: node.spec.backendId }));
    return true;
  }

  /** For a record stored failed whose retry budget is spent (`holdSpent`): its fault, and why the fault policy holds it. */
  private spentBudget(rec: NodeRecord): { readonly fault: Fault; readonly why: string } | undefined {
    // A refusal of the declaration (`byDeclaration`) is tried again at each goal load, whatever the attempts before it.
    if (rec.status !== 'failed' || rec.lastFault === null || byDeclaration(rec.lastFault)) return undefined;
    // No jitter drawn from the rng: only whether the policy holds is asked.
    const decision = decide(rec.lastFault, rec.attempts, () => 0, this.o.faultPolicy);
    return decision.action === 'hold' ? { fault: rec.lastFault, why: decision.reason } : undefined;
  }

  /** Holds `node` after its fault `f` (its `attempts`th), as the fault policy decided for `why`. */
  private holdByFaultPolicy(node: DesiredNode<S>, f: Fault, attempts: number, why: string, log: Logger): void {
    // The cause first: `status` shows the reason, and "held after 3 attempts" alone says nothing to act on.
    this.transition(node, 'HOLD', { attempts, lastFault: f, retryAt: null, reason: `${f.message} (${why})` });
    this.summary.held++;
    log.error({ fault: f, attempts, reason: why }, 'node held');
  }

  /** A failed operation, counted against its backend's breaker and the run: the attempt it was, and what the fault policy decides. */
  private failure(backendId: string, id: NodeId, f: Fault, previousAttempts: number): { attempts: number; decision: ReturnType<typeof decide> } {
    this.backendFailed(backendId, f, id);
    const attempts = previousAttempts + 1;
    this.countFailed(id);
    return { attempts, decision: decide(f, attempts, this.o.rng, this.o.faultPolicy) };
  }

  /** `id` failed in this run: counted once however often it fails. */
  private countFailed(id: NodeId): void {
    if (this.failedInRun.has(id)) return;
    this.failedInRun.add(id);
    this.summary.failed++;
  }

  private fail(node: DesiredNode<S>, f: Fault, log: Logger, message: string): void {
    const { attempts, decision } = this.failure(node.spec.backendId, node.id, f, this.records.get(node.id)?.attempts ?? 0);
    switch (decision.action) {
      case 'retry': {
        const retryAt = this.o.clock.now() + decision.delayMs;
        this.put(node, 'failed', { attempts, lastFault: f, retryAt, reason: f.message });
        this.queue.addAfter(node.id, decision.delayMs);
        log.warn({ fault: f, attempts, retryInMs: decision.delayMs }, message);
        return;
      }
      case 'hold':
        this.holdByFaultPolicy(node, f, attempts, decision.reason, log);
        return;
      default:
        assertNever(decision, 'fault decision');
    }
  }

  /**
   * Remembers a drift and reports it once per occurrence (a JSON `drift
   * detected` line and a stored report). An occurrence that comes back within
   * the flap window after a correction is a flap: it is flagged, and its
   * correction waits a delay that doubles with each consecutive flap (capped),
   * so a tug of war with something else never becomes a hot loop. Observing
   * the same outstanding occurrence again is neither a new report nor a flap.
   */
  private noteDrift(node: DesiredNode<S>, diffs: readonly FieldDiff[], log: Logger): DriftMemory {
    const now = this.o.clock.now();
    let memory = this.drift.get(node.id);
    if (memory === undefined) {
      memory = this.resumedDrift(node.id, diffs) ?? { lastKey: '', lastPaths: '', lastReportAt: 0, firstSeen: now, outstanding: false, flapping: false, action: 'reported', corrected: new Map(), flaps: 0, correctAfter: 0 };
      this.drift.set(node.id, memory);
    }
    if (!memory.outstanding) {
      const m = memory;
      const flapping = diffs.some((d) => {
        const at = m.corrected.get(d.path);
        return at !== undefined && now - at < this.o.flapWindowMs;
      });
      if (flapping) {
        memory.flaps++;
        memory.correctAfter = now + Math.min(5 * 60_000, 1000 * 2 ** memory.flaps);
      } else {
        memory.flaps = 0;
        memory.correctAfter = 0;
      }
      memory.outstanding = true;
      memory.flapping = flapping;
      memory.firstSeen = now;
    } else if (reportedAlready(memory, diffs, now, node.settings, this.o.intervalMs)) {
      // The same occurrence, already reported (see `reportedAlready`).
      return memory;
    }
    memory.lastKey = driftKey(diffs);
    memory.lastPaths = driftPaths(diffs);
    memory.lastReportAt = now;
    const flapping = memory.flapping;
    // A flap's correction that waits for its backoff is not stored `corrected` before it runs (`settleDrift` says so once it does).
    const report = driftReport(node, diffs, now, { firstSeen: memory.firstSeen, flapping, commit: this.commit, waitsForBackoff: memory.correctAfter > now });
    memory.action = report.action;
    this.summary.drifted++;
    this.deferred.defer(() => this.o.store.recordDrift(report));
    logDrift(log, report);
    return memory;
  }

  /** A drift left as it is (only reported, or waiting for a flap's backoff) when the daemon last stopped, as its memory (`outstandingDrift`). */
  private resumedDrift(id: NodeId, diffs: readonly FieldDiff[]): DriftMemory | undefined {
    const last = outstandingDrift(this.persisted.get(id)?.status, () => this.o.store.listDrift({ node: id, limit: 1 })[0], diffs);
    return last === undefined ? undefined : { ...last, outstanding: true, corrected: new Map(), flaps: 0, correctAfter: 0 };
  }

  /**
   * Stores what the correction of `id`'s outstanding drift came to where its last report says otherwise
   * (`settledAction`): a failed correction, or one of a drift reported only until `selfHeal` was switched on
   * or its flap's backoff was over.
   */
  private settleDrift(node: DesiredNode<S>, succeeded: boolean): void {
    const id = node.id;
    const memory = this.drift.get(id);
    if (memory?.outstanding !== true) return;
    const action = settledAction(memory.action, succeeded, node.settings.selfHeal);
    if (action === undefined) return;
    memory.action = action;
    this.deferred.defer(() => this.o.store.setDriftAction(id, action));
  }

  /** The node matches its goal again (corrected, or put back by hand): a later drift is a new occurrence. */
  private driftGone(id: NodeId): void {
    const memory = this.drift.get(id);
    if (memory === undefined) return;
    memory.outstanding = false;
    memory.lastKey = '';
    memory.lastPaths = '';
  }

  /**
   * The next interval's observation: base ± 10 % jitter, rounded up onto a grid of 1/50 of the
   * interval. The grid is what keeps a steady daemon cheap: without it every node has a due time of
   * its own, so each is observed alone (a backend call, a batch, a wake-up per node: ~30× the CPU of
   * one batch); on it, the nodes due in one slot are observed together, at most ~50 batches an
   * interval whatever the number of nodes. The jitter still spreads them over ten slots.
   */
  private scheduleNext(node: DesiredNode<S>): void {
    const base = node.settings.intervalMs ?? this.o.intervalMs;
    const jitter = base * 0.1 * (2 * this.o.rng() - 1);
    const now = this.o.clock.now();
    const slot = Math.max(1, Math.round(base / SCHEDULE_SLOTS));
    const due = Math.ceil((now + Math.max(1, Math.round(base + jitter))) / slot) * slot;
    this.queue.addAfter(node.id, due - now);
  }

  /** Shows `node` held back by the caller (`hold`): blocked, with the holds' reasons. */
  private holdBack(node: DesiredNode<S>, rec: NodeRecord | undefined, holds: ReadonlySet<{ readonly reason: string }>): void {
    const reason = [...holds].map((h) => h.reason).join('; ');
    const status = rec?.status ?? 'pending';
    if (status === 'blocked') this.put(node, 'blocked', { reason });
    else if (nextStatus(status, 'DEPENDENCY_BLOCKED').transition === 'taken') this.transition(node, 'DEPENDENCY_BLOCKED', { reason });
  }

  /** Whether a dependency of `node` is not ready; if so the node is blocked (woken when it is). */
  private blockedOnDependency(node: DesiredNode<S>, rec: NodeRecord | undefined): boolean {
    const notReady = node.dependsOn.find((d) => !this.isReady(d.on))?.on;
    if (notReady === undefined) return false;
    if (rec?.status !== 'blocked') {
      // Its backoff, if it failed meanwhile, is over: it is looked at once the dependency is ready (`succeed`).
      this.transition(node, 'DEPENDENCY_BLOCKED', { reason: `waiting for ${notReady}`, retryAt: null });
      // Counted in the run's summary (history's ⊘) when it waits behind a dependency that failed or is
      // held (`countBlockedBehind` counts those already waiting when it fails), once a run, as apply
      // counts it once a pass; not while its dependency is simply being made (a converge from nothing
      // would count most of its nodes blocked).
      if (this.stuck(notReady)) this.countBlocked(node.id);
    }
    return true;
  }

  /**
   * Whether `id` is failed, held or drifted in a way that blocks (`blockingDrift`), or blocked behind one
   * that is: counted so this run (`countBlocked`), which says it in O(1) where walking its dependencies
   * would cost a wide graph's converge O(n²).
   */
  private stuck(id: NodeId): boolean {
    const status = this.records.get(id)?.status;
    return status === 'failed' || status === 'held' || (status === 'drifted' && this.blockingDrift.has(id)) || (status === 'blocked' && this.blockedInRun.has(id));
  }

  /** Ready for its dependents: ready, or drifted with drift that does not block them (`blockingDrift`). */
  private isReady(id: NodeId): boolean {
    const status = this.records.get(id)?.status;
    return status === 'ready' || (status === 'drifted' && !this.blockingDrift.has(id));
  }

  private roundDone(id: NodeId): void {
    if (!this.firstRoundLeft.has(id)) return;
    // Readiness: blocked behind a dependency still in its first round is not done yet (it is
    // re-queued when that dependency becomes ready, or marked done when its round ends otherwise).
    const rec = this.records.get(id);
    if (rec?.status === 'blocked' && this.graph?.get(id)?.dependsOn.some((d) => this.firstRoundLeft.has(d.on) && !this.isReady(d.on)) === true) return;
    this.firstRoundLeft.delete(id);
    if (this.isReady(id)) return;
    // Its round ended without it being ready: what waits on it stays blocked, and that is its round's end too.
    for (const d of this.graph?.dependents(id) ?? []) if (this.records.get(d)?.status === 'blocked') this.roundDone(d);
  }

  private async removeMissing(graph: DesiredGraph<S>): Promise<void> {
    if (graph.size === 0) return; // an empty goal set never deletes anything
    for (const [id, was] of resourcesLetGo(graph, this.records.values(), this.o.codec)) this.o.log.warn({ node: id, backend: graph.get(id)?.spec.backendId, before: was }, LET_GO);
    const split = this.removedSplit(graph);
    const { toDelete: deleting, toOrphan: orphan, refused } = split;
    if (refused !== undefined) {
      // Refused: those nodes stay recorded and untouched until a revision that is not a mass deletion.
      this.o.log.error({ count: refused.count, limit: refused.limit }, 'mass deletion refused');
      const at = this.o.clock.now();
      this.deferred.defer(() => this.o.store.appendEvent({ at, node: null, kind: 'mass-deletion-refused', data: { count: refused.count, limit: refused.limit } }));
    }
    // A node whose operation is still running is left to its end (`removedInFlight`): re-queued, it
    // comes back to the batch loop once that operation is over.
    const inFlight = (r: NodeRecord): boolean => {
      if (!this.queue.isProcessing(r.id)) return false;
      this.removedInFlight.add(r.id);
      this.queue.add(r.id);
      return true;
    };
    // Named by a node of the goals (`RemovedSplit.namedBy`): kept undeleted, until a goal load where none names it.
    for (const r of deleting) {
      const named = split.namedBy.get(r.id);
      if (named !== undefined && this.putOff(r, named.reason)) this.o.log.warn({ node: r.id, backend: r.backendId, namedBy: named.by }, 'delete put off: a node of the goals names it');
    }
    const deleteNow = deleting.filter((r) => !split.namedBy.has(r.id) && !inFlight(r));
    // Only what this graph approves is deleted (a failed delete retried later included).
    this.deleting = new Set(deleteNow.map((r) => r.id));
    // Stored failed with its retry budget spent (by applies): held without another attempt, as a node of the goals is (`holdSpent`).
    for (const r of deleteNow) {
      const spent = this.spentBudget(r);
      if (spent === undefined) continue;
      this.holdDelete(r, spent.fault, r.attempts, spent.why);
      this.o.log.error({ node: r.id, backend: r.backendId, fault: spent.fault, attempts: r.attempts, reason: spent.why }, 'delete held');
    }
    this.orphan(orphan.filter((r) => !inFlight(r)), split);
    // Held back (`hold`): approved all the same, and deleted once released (it stays in `deleting`).
    for (const r of deleteNow) if (this.holds.has(r.id)) this.o.log.info({ node: r.id, backend: r.backendId }, 'delete put off while the node is held back');
    // Each taken from the queue as a worker takes a node, until its delete is over: its interval's turn
    // (or a retry, a release) never starts a second delete beside this one, which would fail on what this
    // one removed and bring the node back. None once stopped: those stay recorded, deleted at the next start.
    const mine = deleteNow.filter((r) => this.deleting.has(r.id) && !this.holds.has(r.id) && this.queue.claim(r.id));
    try {
      await this.deleteInOrder(mine);
    } finally {
      for (const r of mine) this.queue.done(r.id);
    }
  }

  /**
   * Deletes removed nodes, dependents first. A node removed with one that depends on it waits for that
   * one's delete: deleted first, a group role would be dropped under a member whose own delete then
   * fails (Terraform stops there too). One on a cycle of them that cannot be broken (`deletionEdges`)
   * is held with the cycle as its fault, not left waiting for ever. Each is read first, all at once
   * (`readBeforeDelete`), and deleted only where its read finds it (`deleteFound`). Each takes its turn
   * once the nodes of `records` that depend on it have had theirs (`inDeleteTurns`), so the deletes that wait
   * for no other run side by side, up to `--concurrency` (`deleteInTurn`): fifty slow commands take five rounds, not fifty.
   */
  private async deleteInOrder(records: readonly NodeRecord[]): Promise<void> {
    if (records.length === 0 || this.queue.isShutDown) return;
    // Of the nodes removed from the goals and still recorded (not deleted yet, or their delete failed or was given up on).
    const edges = deletionEdges([...this.records.values()].filter((r) => this.graph?.has(r.id) !== true));
    const ordered = reverseDependencyOrder(records, edges);
    const found = await this.readBeforeDelete(ordered, edges);
    // Every turn over before the caller gives the nodes back to the queue (one still running must not be deleted twice).
    await inDeleteTurns(ordered, edges, (r) => this.deleteInTurn(r, found.get(r.id), edges));
  }

  /**
   * One node's turn in `deleteInOrder`, its dependents' over: what its read found, and its delete where
   * one is sent, in a `--concurrency` slot shared with the worker loops, once its `serialKey`'s turn has
   * come (`KeyedSlots`: one waiting behind another change of its file holds no slot). Decided in the slot,
   * right before the delete: a stop (`stop`) or a goal load meanwhile has the last word.
   */
  private async deleteInTurn(r: NodeRecord, found: FoundRemoved<S> | undefined, edges: DeletionEdges): Promise<void> {
    const read = found?.read;
    const sends = read === 'refused' || read?.status === 'upToDate' || read?.status === 'drifted';
    if (!sends) return this.deleteStep(r, found, edges);
    const key = await this.o.provisioner.serialKey?.(found!.node, this.removedContext(r));
    await this.slots.run(() => this.deleteStep(r, found, edges), { key });
  }

  /** What `deleteInTurn` does with a node: nothing once stopped, or if it is no longer to be deleted; else by its `deleteBar` and its read. */
  private async deleteStep(r: NodeRecord, found: FoundRemoved<S> | undefined, edges: DeletionEdges): Promise<void> {
    // Stopped (`stop`): the rest stay recorded, not begun, and are deleted at the next start (a read cut off too).
    if (this.queue.isShutDown) return;
    // A goal load during the reads, or the deletes before it, that no longer deletes it (declared again, let go) has the last word.
    if (!this.deleting.has(r.id)) return;
    const bar = deleteBar(r, edges, (d) => this.records.has(d));
    // Held until `retry` (`retryDelete`), which puts it back in `deleting`.
    if (bar?.status === 'held') {
      this.deleting.delete(r.id);
      return;
    }
    if (bar?.status === 'cycle') {
      this.deleteFailed(r, bar.fault, this.o.log.child({ node: r.id, backend: r.backendId }));
      return;
    }
    if (bar?.status === 'waits') {
      this.waitForDelete(r, bar.waitsFor);
      return;
    }
    if (found === undefined) return;
    if (found.read === 'refused') await this.deleteUnread(r, found.node);
    else await this.deleteFound(r, found.read, found.node);
  }

  /**
   * Reads the nodes of `ordered` whose delete may be sent now (`readRemoved`: one observe call for most),
   * each past its backend's circuit breaker: one rejected is tried again at its probe, and a read answers
   * the probe. Not read: one held or on a cycle, one waiting for a dependent this call does not delete, one whose
   * stored spec cannot be read (said so), and one its delete refuses before any backend call (`refused`:
   * that delete fails at once, as it did before reads, `deleteUnread`).
   */
  private async readBeforeDelete(ordered: readonly NodeRecord[], edges: DeletionEdges): Promise<Map<NodeId, FoundRemoved<S>>> {
    const found = new Map<NodeId, FoundRemoved<S>>();
    const inCall = new Set(ordered.map((r) => r.id));
    // Those of the call not deleted in it (held, on a cycle, or waiting): what they depend on waits for them, unread. Dependents come first.
    const barred = new Set<NodeId>();
    const ctx = this.context();
    const toRead: RemovedItem<S>[] = [];
    for (const r of ordered) {
      if (deleteBar(r, edges, (d) => this.records.has(d) && (!inCall.has(d) || barred.has(d))) !== undefined) {
        barred.add(r.id);
        continue;
      }
      const node = removedNode(r, this.o.codec);
      if (node === undefined) {
        this.o.log.error({ node: r.id, backend: r.backendId }, 'delete refused: the stored spec cannot be read');
        continue;
      }
      if ((await this.o.provisioner.refusedDelete?.(node, this.removedContext(r))) !== undefined) {
        found.set(r.id, { read: 'refused', node });
        continue;
      }
      const permit = this.breakers.for(r.backendId).acquire();
      if (permit.verdict === 'reject') this.queue.addAfter(r.id, Math.max(1, permit.retryAt - this.o.clock.now()));
      else toRead.push({ r, node });
    }
    if (toRead.length === 0) return found;
    const nodes = new Map(toRead.map((item) => [item.r.id, item.node]));
    for (const [id, read] of await readRemoved(this.o.provisioner, toRead, ctx, this.o.concurrency)) found.set(id, { read, node: nodes.get(id)! });
    return found;
  }

  /**
   * A removed node its delete refuses before any backend call (`readBeforeDelete`): the delete is sent, to
   * fail at once, past the circuit breaker as any delete. A probe not sent (the delete not recorded) is
   * given back: the circuit waited for its answer until the next cool-down, every node of the backend with it.
   */
  private async deleteUnread(r: NodeRecord, node: DesiredNode<S>): Promise<void> {
    const breaker = this.breakers.for(r.backendId);
    const permit = breaker.acquire();
    if (permit.verdict === 'reject') this.queue.addAfter(r.id, Math.max(1, permit.retryAt - this.o.clock.now()));
    else if (!(await this.deleteRecord(r, node)) && permit.verdict === 'probe') breaker.cancelProbe();
  }

  /**
   * A removed node by what its read before the delete found (`readBeforeDelete`): there (drifted or not),
   * deleted; gone already, forgotten with no delete sent, what was pending on it ended so (a delete cut
   * short after it did its work is found done, `adopted`); a read that failed, as a failed delete (the
   * fault policy retries or holds it); one that cannot tell whether it exists, or waits (a script's
   * review), held as a node of the goals is: not deleted blindly.
   */
  private async deleteFound(r: NodeRecord, read: Observation, node: DesiredNode<S>): Promise<void> {
    const log = this.o.log.child({ node: r.id, backend: r.backendId });
    // A probe whose delete follows is judged by the delete (`judgedByWrite`), or by its read where none is sent.
    const probing = this.judgedByWrite(r.backendId, read.status === 'upToDate' || read.status === 'drifted');
    if (read.status !== 'failed' && !probing) this.backendAnswered(r.backendId);
    switch (read.status) {
      case 'upToDate':
      case 'drifted':
        if (!(await this.deleteRecord(r, node)) && probing) this.backendAnswered(r.backendId);
        return;
      case 'absent':
        this.resolvePending(r.id, 'absent');
        this.forgetRemoved(r.id);
        this.summary.orphaned++;
        // Written now, as a delete is (`deleteRecord`).
        this.deferred.defer(() => this.o.store.removeNodes([r.id]));
        this.flush();
        log.info(GONE_ALREADY);
        this.wake(r.id);
        return;
      case 'failed':
        this.deleteFailed(r, read.fault, log);
        return;
      case 'indeterminate': {
        const held = deleteHeld(r, { lastFault: heldFault(read), reason: heldReason(r.id, read), updatedAt: this.o.clock.now() });
        this.records.set(r.id, held);
        this.dirty.add(r.id);
        this.summary.held++;
        log.warn({ reason: read.reason }, read.waiting === true ? 'delete held: waiting' : 'delete held: existence indeterminate');
        // What it waits for may come on its own: read again on the interval. One that cannot tell waits for `retry`.
        if (waitsOnItsOwn(held)) this.queue.addAfter(r.id, this.o.intervalMs);
        else this.deleting.delete(r.id);
        return;
      }
      default:
        assertNever(read, 'observation');
    }
  }

  /** Forgets nodes removed from the goals, their resources left untouched (`split`: why, for the log). */
  private orphan(records: readonly NodeRecord[], split: RemovedSplit): void {
    for (const r of records) {
      logOrphaned(this.o.log, r, split);
      this.summary.orphaned++;
      this.forgetRemoved(r.id);
    }
    if (records.length === 0) return;
    // With the run's counts so far (`flush`). A store that refuses it (a full disk) has it written with
    // the next commit: nothing is thrown into setGraph, whose graph is in already.
    const ids = records.map((r) => r.id);
    this.deferred.defer(() => this.o.store.removeNodes(ids));
    this.flush();
  }

  /**
   * Drops a node removed from the goals (deleted, found gone, or let go) from what the daemon keeps of it:
   * a node declared again under its id is new, not a flap of the old one.
   */
  private forgetRemoved(id: NodeId): void {
    this.deleting.delete(id);
    this.queue.forget(id);
    this.records.delete(id);
    this.persisted.delete(id);
    this.drift.delete(id);
    this.blockingDrift.delete(id);
  }

  /** `r` waits, undeleted, for `dependent`'s delete; woken when it is done (`deleteRecord`). */
  private waitForDelete(r: NodeRecord, dependent: NodeId): void {
    this.waitFor(dependent, r.id);
    this.putOff(r, `not deleted while ${dependent}, which depends on it, is not: ${this.records.get(dependent)?.reason ?? 'its delete comes first'}`);
  }

  /** Records why removed node `r` is not deleted, blocked (`status` says so, as plan does); whether that is news. */
  private putOff(r: NodeRecord, reason: string): boolean {
    if (r.status === 'blocked' && r.reason === reason) return false;
    this.records.set(r.id, { ...r, status: 'blocked', reason, updatedAt: this.o.clock.now() });
    this.dirty.add(r.id);
    return true;
  }

  /**
   * Deletes a removed node's resource, and forgets the node once that is done. Returns whether the
   * backend was asked. A delete the store would not record as pending (a full disk) is not sent: the
   * node stays in `deleting`, and the batch loop tries its delete again until the store records it.
   */
  private async deleteRecord(r: NodeRecord, node: DesiredNode<S>): Promise<boolean> {
    const log = this.o.log.child({ node: r.id, backend: r.backendId });
    // In the slot its turn took (`deleteInTurn`).
    const result = await this.provision(node, 'delete', () => this.o.provisioner.delete(node, this.removedContext(r)));
    if (result === undefined) return false;
    if (result.status === 'done') {
      this.backendAnswered(r.backendId);
      this.forgetRemoved(r.id);
      this.summary.deleted++;
      // Written now, with the run's counts so far (`flush`): a run whose only changes are deletes (a goal
      // cut down under prune) showed nothing done until some other change. A store that refuses it (a full
      // disk) has it written with the next commit; a crash before then reads it once more at the restart,
      // finds it gone and forgets it (`deleteFound`).
      this.deferred.defer(() => this.o.store.removeNodes([r.id]));
      this.flush();
      log.info('node deleted');
      // The nodes it depended on that waited for it (`waitForDelete`): their turn.
      this.wake(r.id);
      return true;
    }
    if (this.cutOff(result)) {
      // As an update cut off (`reconcileBatch`): not a failure of the delete; its operation left pending
      // (`provision`), the node kept, and read again at the next start (`deleteFound`), which ends that operation.
      this.records.set(r.id, { ...(this.records.get(r.id) ?? r), reason: 'delete cut off by the shutdown; read again at the next start, and deleted if still there', updatedAt: this.o.clock.now() });
      this.dirty.add(r.id);
      log.warn({ op: 'delete', fault: result.fault }, 'operation cut off by the shutdown; left pending');
      return true;
    }
    this.deleteFailed(r, result.fault, log);
    return true;
  }

  /** Whether `result` is an operation's that the shutdown cut off, its grace over: left pending, as after a crash. */
  private cutOff(result: ProvisionResult): boolean {
    return result.status === 'failed' && this.abort.signal.aborted;
  }

  /**
   * A removed node's delete failed with `f`. As for any node: the fault policy says when to try again
   * (a server outage must not leave the delete undone until the next reload), or to leave it to the
   * next reload or restart.
   */
  private deleteFailed(r: NodeRecord, f: Fault, log: Logger): void {
    if (byDeclaration(f)) return this.deleteRefused(r, f, log);
    const { attempts, decision } = this.failure(r.backendId, r.id, f, this.records.get(r.id)?.attempts ?? r.attempts);
    const now = this.o.clock.now();
    // Not through `put`: the node is no longer in the graph. Given up on, it is held as any node is,
    // with the cause first (`status`, `retry NODE`).
    if (decision.action === 'retry') {
      this.records.set(r.id, { ...r, status: 'failed', attempts, lastFault: f, retryAt: now + decision.delayMs, reason: f.message, updatedAt: now });
      this.queue.addAfter(r.id, decision.delayMs);
      log.warn({ fault: f, attempts, retryInMs: decision.delayMs }, 'delete failed');
    } else {
      this.holdDelete(r, f, attempts, decision.reason);
      log.error({ fault: f, attempts, reason: decision.reason }, 'delete failed');
    }
    this.dirty.add(r.id);
  }

  /**
   * A removed node's delete refused for how the goals declare it (`byDeclaration`): failed, with no
   * attempt spent and no retry set, since only a goal load can change it; refused again at each, and
   * deleted at the first that allows it.
   */
  private deleteRefused(r: NodeRecord, f: Fault, log: Logger): void {
    this.countFailed(r.id);
    this.records.set(r.id, deleteRefusedRecord(r, f, this.o.clock.now()));
    this.dirty.add(r.id);
    log.warn({ fault: f, attempts: r.attempts }, 'delete failed');
  }

  /** Holds removed node `r` after its fault `f` (its `attempts`th), as the fault policy decided for `why`: deleted again once released (`retryDelete`). */
  private holdDelete(r: NodeRecord, f: Fault, attempts: number, why: string): void {
    this.records.set(r.id, deleteHeld(r, { attempts, lastFault: f, reason: `${f.message} (${why})`, updatedAt: this.o.clock.now() }));
    this.deleting.delete(r.id);
    this.dirty.add(r.id);
    this.summary.held++;
  }

  private transition(node: DesiredNode<S>, event: NodeEventType, patch: Partial<NodeRecord>, applied?: AppliedAt): void {
    this.put(node, nextStatus(this.records.get(node.id)?.status ?? 'pending', event).status, patch, applied);
  }

  /** `applied`: the node was just applied or found in sync at the spec it was resolved to (`nextRecord`). */
  private put(node: DesiredNode<S>, status: NodeStatus, patch: Partial<NodeRecord>, applied?: AppliedAt): void {
    const prev = this.records.get(node.id);
    const rec: NodeRecord = { ...carriedRecord(node, status, prev, this.o.clock.now()), ...patch };
    const lingers = (id: NodeId): boolean => this.graph?.has(id) !== true && this.records.has(id);
    const next = nextRecord(node, prev, rec, applied, this.graph?.dependencies(node.id) ?? [], lingers, this.o.codec);
    if (next === undefined) return; // steady state writes nothing
    this.records.set(node.id, { ...next, updatedAt: this.o.clock.now() });
    this.dirty.add(node.id);
    if (status !== 'drifted') this.blockingDrift.delete(node.id);
    if ((status === 'failed' || status === 'held') && prev?.status !== status) this.countBlockedBehind(node.id);
  }

  /** Writes the records that changed, with the deferred writes, in one transaction. */
  private flush(): void {
    if (this.dirty.size === 0 && this.deferred.size === 0) return;
    const batch: NodeRecord[] = [];
    for (const id of this.dirty) {
      const r = this.records.get(id);
      if (r === undefined) continue;
      const stored = this.persisted.get(id);
      // Back where it was stored (ready → observing → ready): nothing to write, and updatedAt keeps its meaning.
      if (stored !== undefined && !this.operated.has(id) && sameRecord(stored, r) && sameSnapshot(stored, storedGoalDigest(r), storedEdges(r), declaredDeletionPolicy(r), storedRefs(r), storedUnapplied(r))) {
        this.records.set(id, stored);
        continue;
      }
      batch.push(r);
    }
    if (batch.length === 0 && this.deferred.size === 0) {
      this.dirty.clear();
      return;
    }
    try {
      this.deferred.commit(() => {
        this.o.store.putNodes(batch);
        // With a commit that happens anyway (something changed), the run's counts so far: `history` on a
        // live daemon shows what it has done, and a crash keeps it. A steady pass commits nothing, so writes nothing.
        this.recordProgress();
      });
    } catch (err) {
      // The store refused the write (a full or read-only disk): the daemon keeps running on what it
      // knows, and every later flush (at least once an interval) tries again with all of it. A crash
      // meanwhile loses only these records: operations are already recorded as pending, and are
      // resolved by observing at the restart.
      this.storeRefused(err);
      return;
    }
    if (this.storeFailing) this.o.log.info('state store writable again; the records kept meanwhile are written');
    this.storeFailing = false;
    for (const r of batch) this.persisted.set(r.id, r);
    this.dirty.clear();
    this.operated.clear();
  }

  /** The run's counts so far, in the transaction of a change it commits (`flush`, a delete, an orphan). */
  private recordProgress(): void {
    if (this.runId !== null) this.o.store.recordRunProgress(this.runId, this.summary);
  }

  /**
   * Operations the store would not record as pending (a full disk), so not sent: tried again after a
   * failed batch's wait, once it may write again. Nothing is thrown (into `setGraph`, whose graph is in).
   */
  private notStarted(ids: readonly NodeId[], err: unknown): void {
    this.storeRefused(err);
    for (const id of ids) this.queue.addAfter(id, FAILED_BATCH_RETRY_MS);
    // Each time, not once an outage as the error: which nodes wait, and that they are tried again.
    this.o.log.debug({ nodes: ids, retryInMs: FAILED_BATCH_RETRY_MS }, 'operations not started: they cannot be recorded as pending');
  }

  /** Says once per outage that the store refuses writes; `flush` says when it works again. */
  private storeRefused(err: unknown): void {
    if (!this.storeFailing) this.o.log.error({ err }, 'state store write failed; the records are kept in memory and written when it works again');
    this.storeFailing = true;
  }

  private finishRun(): void {
    if (this.runId === null) return;
    this.o.store.finishRun(this.runId, this.summary);
    this.runId = null;
    this.summary = emptySummary();
    this.unchangedInRun.clear();
    this.failedInRun.clear();
    this.blockedInRun.clear();
  }

  /** A node that waited behind a failed or held dependency: counted once a run (history's ⊘). */
  private countBlocked(id: NodeId): void {
    if (this.blockedInRun.has(id)) return;
    this.blockedInRun.add(id);
    this.summary.blocked++;
  }

  /**
   * `id` failed or is held: the nodes already waiting behind it (directly or through others waiting)
   * are blocked by it. One counted already this run is not walked again (its dependents were, or
   * come to wait behind it later and are counted then): each node is walked once a run.
   */
  private countBlockedBehind(id: NodeId): void {
    const stack = [...(this.graph?.dependents(id) ?? [])];
    for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
      if (this.blockedInRun.has(d) || this.records.get(d)?.status !== 'blocked') continue;
      this.countBlocked(d);
      stack.push(...(this.graph?.dependents(d) ?? []));
    }
  }

  /**
   * A daemon's run spans every pass until the next reload: its other counts
   * are of things done (each correction is one), but a node found in sync
   * on every pass counts once, or a day's run of 100 nodes says 144,000 unchanged.
   */
  private countUnchanged(id: NodeId): void {
    if (this.unchangedInRun.has(id)) return;
    this.unchangedInRun.add(id);
    this.summary.unchanged++;
  }

  /** The context of a call about removed node `r`: its references read what its record keeps (`removedOutputsOf`). */
  private removedContext(r: NodeRecord): OperationContext {
    return { ...this.context(), outputsOf: removedOutputsOf(r, this.outputsOf) };
  }

  private context(): OperationContext {
    return {
      signal: this.abort.signal,
      log: this.o.log,
      outputsOf: this.outputsOf,
      memoOf: (id) => this.records.get(id)?.memo ?? undefined,
      interrupted: (id) => hasInterruptedCreate(this.pending.get(id)),
      // No `changedBackends`: a goal load forgets a changed backend's applied digests (`GOAL_CHANGED`).
      appliedAt: appliedIn((id) => this.graph?.get(id), (id) => this.records.get(id), {}),
    };
  }
}

