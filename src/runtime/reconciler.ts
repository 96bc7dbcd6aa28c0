import type { Logger } from 'pino';
import type { Fault } from './fault.ts';
import { byDeclaration, createCutShort, fault, neverSent } from './fault.ts';
import type { DesiredGraph } from './graph.ts';
import type { NodeGate } from './goal-compiler.ts';
import { DEFAULT_INTERVAL_MS } from './node-spec.ts';
import type { DesiredNode, NodeId, NodeSpec, NodeSpecCodec } from './node-spec.ts';
import type { FieldDiff, NodeProvisioner, Observation, ObservationMemo, OperationContext, Outputs, ProvisionResult, ResolvedAt } from './provisioner.ts';
import { observationOf } from './provisioner.ts';
import type { DriftAction, NodeRecord, NodeStatus, OperationOutcome, PendingOperation, RunSummary, StateStore } from './state-store.ts';
import { GOAL_ERRORS_META } from './state-store.ts';
import { DeferredWrites } from './deferred-writes.ts';
import { finishInterrupted, finishReplacedByDelete, hasInterruptedCreate } from './interrupted-operation.ts';
import type { FoundAfterInterruption } from './interrupted-operation.ts';
import { corrected, driftBlocksDependents, driftLeft, driftReport, outstandingDrift, reportedAlready, settledAction, uncorrectable, uncorrectableFault, isDesiredChange, logDesiredChanges, logDrift, MISSING_RESOURCE, reportOnly, splitDrift } from './drift-report.ts';
import { assertNever, errorMessage } from './errors.ts';
import { awaitsOutput } from './interpolation.ts';
import { forEachKeyedLimit, KeyedSlots } from './limit.ts';
import { readRemoved, GONE_ALREADY } from './removed-read.ts';
import type { RemovedItem } from './removed-read.ts';
import { type AppliedAt, appliedAtSpec, carriedRecord, deleteBar, deleteHeld, deleteRefusedRecord, type DeletionEdges, deletionEdges, handedAt, type NamedBy, heldFault, heldOnDelete, heldReason, ignoredBy, inDeleteTurns, LET_GO, logOrphaned, POLICY_HELD, POLICY_HELD_LINES, POLICY_HELD_MORE, nextRecord, policyHoldFields, policyHoldReason, removedNode, removedOutputsOf, type RemovedSplit, resourcesLetGo, splitRemoved, storedEdges, storedGoalDigest, waitsOnItsOwn } from './node-record.ts';

/** What one node needs, as a plan shows it. */
export type PlannedAction =
  /** `letsGo`: the resource the node managed before its goal named another one; left in place, not deleted. */
  | { readonly action: 'create'; readonly letsGo?: string }
  /**
   * `knownAfterApply`: found in sync or drifted (`diffs`, what it is found to differ by now), the node reads
   * outputs of these nodes, which the plan creates or updates (or makes again, deleted by hand): what they give is known only once
   * apply has changed them, and apply updates the node if that differs from what it reads now, as Terraform
   * shows a value "(known after apply)".
   */
  | { readonly action: 'update'; readonly diffs: readonly FieldDiff[]; readonly knownAfterApply?: readonly NodeId[] }
  /** `reportOnly`: why drift that is not corrected is only reported (`selfHeal: false`, no update command). */
  | { readonly action: 'drift'; readonly diffs: readonly FieldDiff[]; readonly correct: boolean; readonly reportOnly?: string | undefined }
  /**
   * `ignored`: where the goal changed since the node was last applied, its fields that differ from the
   * resource and that `ignoreFields` leaves as found: the goal's edit of them is not applied.
   */
  | { readonly action: 'none'; readonly ignored?: readonly FieldDiff[] }
  /** `refused`: over the mass-deletion limit, so `apply` refuses it (without --allow-mass-deletion). */
  | { readonly action: 'delete'; readonly refused?: string }
  /**
   * Removed from the goals and not deleted (no prune with Delete, held by a policy, its resource now
   * another node's, `claimedBy`, or maybe, that node having its backend and spec exactly, `sameSpecAs`):
   * forgotten, the resource left as it is. `policyHold`: its goal would delete it, but a policy held it
   * when last seen (the hold's reason), and a node a policy holds is never deleted. `gone`: its goal
   * deletes it, but its read before the delete finds nothing: forgotten, no delete sent. `createCutShort`:
   * never made whole, its create cut short (`RemovedSplit.createCutShort`): what it may have made is left as it is.
   */
  | { readonly action: 'orphan'; readonly claimedBy?: NodeId; readonly sameSpecAs?: NodeId; readonly policyHold?: string; readonly gone?: true; readonly createCutShort?: true }
  | { readonly action: 'blocked'; readonly reason: string }
  | { readonly action: 'held'; readonly reason: string }
  | { readonly action: 'error'; readonly fault: Fault };

export interface PlanEntry {
  readonly id: NodeId;
  readonly type: string;
  readonly backendId: string;
  readonly goal: string;
  readonly planned: PlannedAction;
}

/** The log line of an operation an interrupt (SIGINT, SIGTERM: the pass's signal) cut off, as the daemon's shutdown has it. */
const CUT_OFF = 'operation cut off by the interrupt; left pending';

/** The outcome of one node in an apply pass. */
export type NodeOutcome =
  | { readonly status: 'created' | 'updated' | 'deleted' | 'unchanged' | 'adopted' | 'orphaned'; readonly uncorrectable?: string | undefined }
  | { readonly status: 'drift-reported'; readonly diffs: readonly FieldDiff[] }
  | { readonly status: 'failed'; readonly fault: Fault }
  | { readonly status: 'blocked'; readonly reason: string }
  | { readonly status: 'held'; readonly reason: string };

/** What became (apply), or would become (plan), of the delete of one node removed from the goals (`deleteInOrder`). */
type DeleteOutcome =
  | { readonly status: 'done' }
  /** Its read before the delete found nothing: forgotten, no delete sent. */
  | { readonly status: 'gone' }
  | { readonly status: 'failed'; readonly fault: Fault }
  /**
   * Its read before the delete could not tell whether it exists, or waits (`heldReason`): not deleted.
   * Without `fault`: held already (`deleteBar`), neither read nor deleted, its record kept as it is.
   */
  | { readonly status: 'held'; readonly reason: string; readonly fault?: Fault }
  /** `waitsFor`: a node that depends on it, left undeleted, or the node of the goals that names it. */
  | { readonly status: 'blocked'; readonly reason: string; readonly waitsFor: NodeId };

export interface ApplyResult {
  readonly runId: number | null;
  readonly outcomes: ReadonlyMap<NodeId, NodeOutcome>;
  readonly summary: RunSummary;
  readonly refusedDeletions?: { readonly count: number; readonly limit: number } | undefined;
  /** Without `allowDeletions`: the removed nodes whose delete would have been sent, left as they are (no outcome). */
  readonly declinedDeletions: readonly NodeId[];
}

export interface PassOptions {
  readonly signal: AbortSignal;
  /** Policy gates from compilation: gated nodes are never provisioned nor deleted. */
  readonly gates?: ReadonlyMap<NodeId, NodeGate> | undefined;
  /** Goals git commit, recorded with the run and with drift reports. */
  readonly commit?: string | null | undefined;
  readonly trigger?: string | undefined;
  /** Allow deletions past the mass-deletion guard. */
  readonly allowMassDeletion?: boolean | undefined;
  /**
   * Whether deletes may be sent (apply asks first unless --yes). Without, the removed nodes are gone through
   * all the same: those refused before any backend call fail and those that wait are blocked, as they would be.
   */
  readonly allowDeletions?: boolean | undefined;
  /** `plan`: another process holds the state (a daemon, an apply), so the operations it recorded as pending are running, not interrupted. */
  readonly othersRunning?: boolean | undefined;
  /**
   * Backends declared otherwise than when the goals were last applied (another root, another
   * server): their nodes count as changed goals. What they find is converged, not reported as
   * drift, and a node held for its goal is released.
   */
  readonly changedBackends?: ReadonlySet<string> | undefined;
}

/** Ids of diffs that survive `ignoreFields`. */
export function withoutIgnored(diffs: readonly FieldDiff[], ignore: readonly string[]): FieldDiff[] {
  if (ignore.length === 0) return [...diffs];
  return diffs.filter((d) => !ignoredBy(d.path, ignore));
}

/** A run summary being counted into: every count there. */
export type SummaryCounts = { -readonly [K in keyof RunSummary]-?: NonNullable<RunSummary[K]> };

/** A summary with every count at zero, to count a pass into. */
export function emptySummary(): SummaryCounts {
  return { created: 0, updated: 0, deleted: 0, unchanged: 0, failed: 0, blocked: 0, held: 0, drifted: 0, orphaned: 0 };
}

/**
 * One reconcile pass, level-triggered: observe what exists, compare with the
 * goals, create / update / nothing, record. Dependencies first, bounded
 * concurrency, a batch observation per dependency level. A node whose
 * dependency is not ready is blocked, never removed.
 */
export class Reconciler<S extends NodeSpec> {
  private readonly provisioner: NodeProvisioner<S>;
  private readonly store: StateStore;
  private readonly log: Logger;
  private readonly codec: NodeSpecCodec<S>;
  private readonly concurrency: number;
  private readonly now: () => number;

  constructor(options: {
    provisioner: NodeProvisioner<S>;
    store: StateStore;
    log: Logger;
    codec: NodeSpecCodec<S>;
    concurrency?: number;
    now?: () => number;
  }) {
    this.provisioner = options.provisioner;
    this.store = options.store;
    this.log = options.log;
    this.codec = options.codec;
    this.concurrency = options.concurrency ?? 10;
    this.now = options.now ?? Date.now;
  }

  /** Observes every node and says what `apply` would do. Writes nothing. */
  async plan(graph: DesiredGraph<S>, options: PassOptions): Promise<PlanEntry[]> {
    const entries = new Map<NodeId, PlanEntry>();
    const outputs = new Map<NodeId, Outputs>();
    const stored = this.store.listNodes();
    const byId = new Map(stored.map((r) => [r.id, r]));
    for (const r of stored) if (r.outputs !== null) outputs.set(r.id, r.outputs);
    const letGo = resourcesLetGo(graph, stored, this.codec);
    const create = (id: NodeId): PlannedAction => {
      const was = letGo.get(id);
      return was === undefined ? { action: 'create' } : { action: 'create', letsGo: was };
    };
    // Pending creates of a process that holds the state now (a daemon, an apply) are running, not cut short.
    const interrupted = new Set(options.othersRunning === true ? [] : this.store.pendingOperations().flatMap((op) => (op.op === 'create' ? [op.node] : [])));
    const willChange = new Set<NodeId>();
    // Of those, the ones whose outputs are not known before apply makes them: created, updated, made again after
    // a delete out of band. Drift corrected in place gives back the outputs the node had when applied (below).
    const outputsUnknown = new Set<NodeId>();
    const changes = (id: NodeId): void => {
      willChange.add(id);
      outputsUnknown.add(id);
    };
    // As in `apply`: what a blocked, held or failing node's dependents get is `blocked`, without observing them.
    const notReady = new Set<NodeId>();
    for (const level of levels(graph)) {
      const observable: DesiredNode<S>[] = [];
      for (const node of level) {
        const entry = (planned: Extract<PlannedAction, { action: 'blocked' | 'held' }>): void => {
          entries.set(node.id, { id: node.id, type: node.spec.type, backendId: node.spec.backendId, goal: node.goal, planned });
          notReady.add(node.id);
        };
        const gate = options.gates?.get(node.id);
        const record = byId.get(node.id);
        const badDep = graph.dependencies(node.id).find((d) => notReady.has(d));
        // Held, as apply, the daemon and status have it (the node's record says `held`): `blocked` is for a dependency not ready.
        if (gate !== undefined) entry({ action: 'held', reason: policyHoldReason(gate.reason) });
        else if (record !== undefined && heldForGoal(record, node, options)) entry({ action: 'held', reason: record.reason ?? 'held by the fault policy' });
        else if (badDep !== undefined) entry({ action: 'blocked', reason: `dependency ${badDep} is not ready` });
        else observable.push(node);
      }
      const observed = await this.provisioner.observe(
        observable,
        this.context(options.signal, (id) => outputs.get(id), (id) => byId.get(id)?.memo ?? undefined, (id) => interrupted.has(id), appliedIn((id) => graph.get(id), (id) => byId.get(id), options)),
      );
      for (const node of observable) {
        const obs = observationOf(observed, node.id);
        // The nodes whose outputs its spec reads (`ResolvedAt.refs`, output references only) that only apply will tell.
        const reads = obs.status === 'upToDate' || obs.status === 'drifted' ? Object.keys(obs.refs ?? {}).filter((d) => outputsUnknown.has(d)) : [];
        const entry = (decided: PlannedAction): void => {
          const planned = knownAfterApply(decided, reads);
          // A possible update changes what it outputs in turn, for the nodes that read it.
          if (planned !== decided) changes(node.id);
          entries.set(node.id, { id: node.id, type: node.spec.type, backendId: node.spec.backendId, goal: node.goal, planned });
          if (planned.action === 'error' || planned.action === 'held') notReady.add(node.id);
        };
        const record = byId.get(node.id);
        const depsChanging = graph.dependencies(node.id).some((d) => willChange.has(d));
        switch (obs.status) {
          case 'absent':
            if (appliedAt(record, node, options, obs)) {
              // Applied at this spec and gone: deleted out of band, drift like any other.
              const diffs = [MISSING_RESOURCE];
              const correct = corrected(node.settings, diffs);
              if (correct) changes(node.id);
              entry({ action: 'drift', diffs, correct, reportOnly: correct ? undefined : reportOnly(node.settings, diffs) });
            } else {
              changes(node.id);
              entry(create(node.id));
            }
            break;
          case 'upToDate':
            outputs.set(node.id, obs.outputs);
            entry({ action: 'none' });
            break;
          case 'drifted': {
            outputs.set(node.id, obs.outputs);
            const diffs = withoutIgnored(obs.diffs, node.settings.ignoreFields);
            // Drift of an ignored field is silent, as asked; an edit of the goal that it keeps from being applied is said.
            if (diffs.length === 0) entry(record !== undefined && !appliedAt(record, node, options, obs) ? { action: 'none', ignored: obs.diffs } : { action: 'none' });
            else if (record !== undefined && appliedAt(record, node, options, obs, diffs) && !diffs.every(isDesiredChange)) {
              // Drift, shown with any desired change (a rotated secret, marked) that apply makes with it whatever selfHeal says.
              const drift = splitDrift(diffs).drift;
              const correct = corrected(node.settings, drift);
              if (correct) willChange.add(node.id);
              // With a desired change (a rotated secret) apply updates it: what that gives is known after.
              if (drift.length < diffs.length) changes(node.id);
              // Left with drift that keeps its dependents waiting, as apply and the daemon leave it.
              if (driftBlocksDependents(driftLeft(drift, correct))) notReady.add(node.id);
              // Corrected first, as apply does: its dependents see the outputs it had when applied, not the drifted ones.
              if (correct && record.outputs !== null) outputs.set(node.id, record.outputs);
              entry({ action: 'drift', diffs, correct, reportOnly: correct ? undefined : reportOnly(node.settings, drift) });
            } else {
              // A changed goal (or output it references), or only desired changes (a rotated secret): an update, as apply makes it;
              // an error where the goal asks for what no update can make.
              const cannot = uncorrectableFault(diffs);
              if (cannot !== undefined) {
                entry({ action: 'error', fault: cannot });
                break;
              }
              changes(node.id);
              entry({ action: 'update', diffs });
            }
            break;
          }
          case 'indeterminate':
            entry({ action: 'held', reason: obs.reason });
            break;
          case 'failed':
            // A node waiting for outputs of a dependency that the plan creates or updates will be created after it
            // (what the dependency gives then is not known yet: its outputs so far may lack the key).
            if (awaitsOutput(obs.fault) && depsChanging) {
              changes(node.id);
              entry(create(node.id));
            } else entry({ action: 'error', fault: obs.fault });
            break;
          default:
            assertNever(obs, 'observation');
        }
      }
    }
    const deletions = this.deletions(graph, stored, options);
    // A reference with no value to an output of a node the plan creates or updates reads what that gives first, as
    // apply deletes after it (see the create above): not a refusal.
    const unsure = (r: NodeRecord, f: Fault): boolean => awaitsOutput(f) && storedEdges(r).deps.some((d) => willChange.has(d));
    // Read before its delete as apply reads it: on the outputs the plan has, told of a create cut short.
    const reading = this.context(options.signal, (id) => outputs.get(id), (id) => byId.get(id)?.memo ?? undefined, (id) => interrupted.has(id));
    await this.foreseeDeletes(deletions, reading, unsure, true, (r, outcome) => {
      entries.set(r.id, { id: r.id, type: r.type, backendId: r.backendId, goal: r.goal, planned: plannedDelete(outcome) });
    });
    for (const r of deletions.toOrphan) {
      const claimedBy = deletions.claimed.get(r.id);
      const sameSpecAs = deletions.sameSpec.get(r.id);
      const policyHold = deletions.keptByPolicy?.get(r.id);
      const planned: PlannedAction = {
        action: 'orphan',
        ...(claimedBy === undefined ? {} : { claimedBy }),
        ...(sameSpecAs === undefined ? {} : { sameSpecAs }),
        ...(policyHold === undefined ? {} : { policyHold }),
        ...(deletions.createCutShort?.has(r.id) === true ? { createCutShort: true as const } : {}),
      };
      entries.set(r.id, { id: r.id, type: r.type, backendId: r.backendId, goal: r.goal, planned });
    }
    const refused = deletions.refused;
    if (refused !== undefined) {
      const why = `mass deletion: ${refused.count} nodes removed from the goals, over the limit of ${refused.limit}; apply refuses without --allow-mass-deletion`;
      for (const r of refused.nodes) entries.set(r.id, { id: r.id, type: r.type, backendId: r.backendId, goal: r.goal, planned: { action: 'delete', refused: why } });
    }
    return [...entries.values()];
  }

  /** One reconcile pass in dependency order. */
  async apply(graph: DesiredGraph<S>, options: PassOptions): Promise<ApplyResult> {
    // Two kinds of commit (see DeferredWrites): one before each level that
    // calls the backend (its operations as pending) and one at the end. The
    // run is recorded with the first of them.
    const startedAt = this.now();
    let runId: number | undefined;
    const run = (): number => (runId ??= this.store.startRun(options.trigger ?? 'apply', options.commit ?? null, startedAt));
    const deferred = new DeferredWrites(this.store);
    const outcomes = new Map<NodeId, NodeOutcome>();
    // The nodes whose drift left this pass (`driftLeft`) keeps their dependents waiting (`driftBlocksDependents`).
    const blocking = new Set<NodeId>();
    const leaves = (id: NodeId, drift: readonly FieldDiff[]): void => {
      if (driftBlocksDependents(drift)) blocking.add(id);
      else blocking.delete(id);
    };
    const outputs = new Map<NodeId, Outputs>();
    const records = new Map<NodeId, NodeRecord>();
    // Each node's memo as of its latest observation or operation in this pass (as the daemon's records
    // have it): an update is handed the memo of the observation that found the drift, not the last pass's.
    const memos = new Map<NodeId, ObservationMemo | undefined>();
    const outputsOf = (id: NodeId): Outputs | undefined => outputs.get(id);
    const memoOf = (id: NodeId): ObservationMemo | undefined => (memos.has(id) ? memos.get(id) : (records.get(id)?.memo ?? undefined));
    // Read once: node records are written only at the end of the pass, so this is also what deletions see.
    const stored = this.store.listNodes();
    for (const r of stored) {
      records.set(r.id, r);
      if (r.outputs !== null) outputs.set(r.id, r.outputs);
    }
    for (const [id, was] of resourcesLetGo(graph, stored, this.codec)) this.log.warn({ node: id, backend: graph.get(id)?.spec.backendId, before: was }, LET_GO);
    // What a crash left pending is resolved by observing its node (`interruptedOutcome`), as the daemon does,
    // each of a node's operations; a delete of a node back in the goals is not looked at again: abandoned. Those
    // of a node this pass does not observe (held, blocked) stay pending until a run observes it: nothing takes a
    // pending update for one in flight, and a pending create is what the next read must be told of
    // (`OperationContext.interrupted`). A node removed from the goals is observed by the read before its delete
    // (`deleteRemoved`); its delete or update left pending and not so resolved is abandoned after the deletions.
    const interrupted = new Map<NodeId, PendingOperation[]>();
    const removedOps = new Map<NodeId, PendingOperation[]>();
    for (const op of this.store.pendingOperations()) {
      if (op.op === 'create' || (op.op === 'update' && graph.has(op.node))) interrupted.set(op.node, [...(interrupted.get(op.node) ?? []), op]);
      else if (!graph.has(op.node)) removedOps.set(op.node, [...(removedOps.get(op.node) ?? []), op]);
      else deferred.finish(op.id, 'abandoned', 'interrupted; the node is observed again');
    }
    const createInterrupted = (id: NodeId): boolean => hasInterruptedCreate(interrupted.get(id));
    const resolve = (id: NodeId, found: FoundAfterInterruption): void => finishInterrupted(interrupted.get(id), found, (op, outcome, detail) => deferred.finish(op.id, outcome, detail));
    const updates: NodeRecord[] = [];
    /**
     * `applied`: the node was just applied or found in sync at the spec it was resolved to (`nextRecord`).
     * `operated`: a create or update changed the resource, so the record is written (its `updatedAt` too)
     * even if it reads as before. A node observed as it was recorded writes nothing: a steady pass costs no store write.
     */
    const put = (node: DesiredNode<S>, status: NodeStatus, patch: Partial<NodeRecord> = {}, applied?: AppliedAt, operated = false): void => {
      const prev = records.get(node.id);
      // A pass starts each node afresh (faults, retries and reasons come from this pass), keeping what it knows.
      const rec: NodeRecord = {
        ...carriedRecord(node, status, prev, this.now()),
        outputs: outputs.get(node.id) ?? prev?.outputs ?? null,
        lastFault: null,
        attempts: 0,
        retryAt: null,
        reason: null,
        snapshot: null,
        updatedAt: this.now(),
        ...patch,
      };
      const next = nextRecord(node, prev, rec, applied, graph.dependencies(node.id), (id) => !graph.has(id) && records.has(id), this.codec, operated);
      if (next === undefined) return;
      records.set(node.id, next);
      updates.push(next);
    };

    let drifts = 0;
    // Nodes a policy holds, each a line up to POLICY_HELD_LINES, the rest one line after the levels.
    let policyHolds = 0;
    // The action of each drifted node's last report, for what its correction in this pass comes to (`settledAction`).
    const reportedActions = new Map<NodeId, DriftAction>();
    /**
     * Counts the drift of `node` in this run, and reports it unless it is the drift its last report
     * stored, not over since (`outstandingDrift`), as the daemon would not report it again (`reportedAlready`):
     * the same drift keeps when it was first seen from one apply or daemon to the next.
     */
    const reportDrift = (node: DesiredNode<S>, prev: NodeRecord | undefined, diffs: readonly FieldDiff[], log: Logger): void => {
      const now = this.now();
      drifts++;
      const was = outstandingDrift(prev?.status, () => this.store.listDrift({ node: node.id, limit: 1 })[0], diffs);
      if (was !== undefined && reportedAlready(was, diffs, now, node.settings, DEFAULT_INTERVAL_MS)) {
        reportedActions.set(node.id, was.action);
        return;
      }
      const report = driftReport(node, diffs, now, { firstSeen: was?.firstSeen ?? now, flapping: was?.flapping ?? false, commit: options.commit ?? null });
      reportedActions.set(node.id, report.action);
      deferred.defer(() => this.store.recordDrift(report));
      logDrift(log, report);
    };
    /** Stores what a correction of drift reported in this pass came to, where the report says otherwise (`settledAction`). */
    const settleDrift = (node: DesiredNode<S>, succeeded: boolean): void => {
      const id = node.id;
      const stored = reportedActions.get(id);
      const action = stored === undefined ? undefined : settledAction(stored, succeeded, node.settings.selfHeal);
      if (action !== undefined) deferred.defer(() => this.store.setDriftAction(id, action));
    };

    try {
      for (const level of levels(graph)) {
        if (options.signal.aborted) break;
        const ready: DesiredNode<S>[] = [];
        for (const node of level) {
          const gate = options.gates?.get(node.id);
          if (gate !== undefined) {
            const reason = policyHoldReason(gate.reason);
            outcomes.set(node.id, { status: 'held', reason });
            put(node, 'held', { reason });
            if (++policyHolds <= POLICY_HELD_LINES) this.log.warn(policyHoldFields(node, gate), POLICY_HELD);
            continue;
          }
          const prev = records.get(node.id);
          if (prev !== undefined && heldForGoal(prev, node, options)) {
            outcomes.set(node.id, { status: 'held', reason: prev.reason ?? 'held' });
            continue;
          }
          const badDep = graph.dependencies(node.id).find((d) => !isReady(outcomes.get(d), blocking.has(d)));
          if (badDep !== undefined) {
            const reason = `dependency ${badDep} is not ready`;
            outcomes.set(node.id, { status: 'blocked', reason });
            put(node, 'blocked', { reason });
            continue;
          }
          ready.push(node);
        }
        if (ready.length === 0) continue;
        const ctx = this.context(options.signal, outputsOf, memoOf, createInterrupted, appliedIn((id) => graph.get(id), (id) => records.get(id), options));
        const observed = await this.provisioner.observe(ready, ctx);
        const steps: ProvisionStep<S>[] = [];
        for (const node of ready) {
          const obs = observationOf(observed, node.id);
          const prev = records.get(node.id);
          // Only the drift, indeterminate and failed cases log: no child logger for every ready node.
          const log = (): Logger => this.log.child({ node: node.id, backend: node.spec.backendId });
          switch (obs.status) {
            case 'absent': {
              resolve(node.id, 'absent');
              if (!appliedAt(prev, node, options, obs)) {
                steps.push({ node, op: 'create', diffs: [] });
                break;
              }
              // Applied at this spec and gone: deleted out of band.
              const diffs = [MISSING_RESOURCE];
              reportDrift(node, prev, diffs, log());
              if (!corrected(node.settings, diffs)) {
                outcomes.set(node.id, { status: 'drift-reported', diffs });
                leaves(node.id, diffs);
                put(node, 'drifted', { managed: true, reason: `resource missing; drift reported (${reportOnly(node.settings, diffs)})` });
                break;
              }
              steps.push({ node, op: 'create', diffs });
              break;
            }
            case 'upToDate':
              resolve(node.id, 'as-desired');
              outputs.set(node.id, obs.outputs);
              memos.set(node.id, obs.memo);
              outcomes.set(node.id, { status: prev?.managed === true || !createInterrupted(node.id) ? 'unchanged' : 'adopted' });
              put(node, 'ready', { managed: true, outputs: obs.outputs, memo: obs.memo ?? null }, obs);
              break;
            case 'drifted': {
              outputs.set(node.id, obs.outputs);
              memos.set(node.id, obs.memo);
              const diffs = withoutIgnored(obs.diffs, node.settings.ignoreFields);
              resolve(node.id, diffs.length === 0 ? 'as-desired' : 'changes-left');
              if (diffs.length === 0) {
                outcomes.set(node.id, { status: 'unchanged' });
                put(node, 'ready', { managed: true, outputs: obs.outputs, memo: obs.memo ?? null }, { ...obs, left: obs.diffs });
                break;
              }
              const left = leftAsFound(obs.diffs, diffs);
              if (!appliedAt(prev, node, options, obs, diffs)) {
                // A goal that asks for what no update can make fails, naming the field, without a backend call.
                const cannot = uncorrectableFault(diffs);
                if (cannot !== undefined) this.record({ node, op: 'update', diffs }, { status: 'failed', fault: cannot }, outcomes, outputs, memos, put, log());
                else steps.push({ node, op: 'update', diffs, left });
                break;
              }
              // Applied at this spec: what differs is drift, but for changes of the desired side (a rotated secret), applied whatever selfHeal says.
              const { changes, drift } = splitDrift(diffs);
              logDesiredChanges(log(), changes);
              if (drift.length > 0) reportDrift(node, prev, drift, log());
              const leftDrift = drift.length > 0 && !corrected(node.settings, drift) ? `drift reported (${reportOnly(node.settings, drift)})` : undefined;
              if (leftDrift !== undefined && changes.length === 0) {
                outcomes.set(node.id, { status: 'drift-reported', diffs });
                leaves(node.id, drift);
                put(node, 'drifted', { managed: true, outputs: obs.outputs, memo: obs.memo ?? null, reason: leftDrift });
                break;
              }
              steps.push({ ...(leftDrift === undefined ? correctionStep(node, diffs) : leavingDrift(node, changes, drift, leftDrift)), left });
              break;
            }
            case 'indeterminate': {
              const reason = heldReason(node.id, obs);
              outcomes.set(node.id, { status: 'held', reason });
              put(node, 'held', { reason, lastFault: heldFault(obs) });
              log().warn({ reason: obs.reason }, obs.waiting === true ? 'node held: waiting' : 'node held: existence indeterminate');
              break;
            }
            case 'failed':
              outcomes.set(node.id, { status: 'failed', fault: obs.fault });
              // Cut off by the interrupt (SIGINT, SIGTERM): no fault of the node, no attempt spent; its record left as it was.
              if (options.signal.aborted) {
                log().warn({ fault: obs.fault }, 'observe cut off by the interrupt');
                break;
              }
              put(node, 'failed', { lastFault: obs.fault, attempts: (prev?.attempts ?? 0) + 1, reason: obs.fault.message });
              log().warn({ fault: obs.fault }, 'observe failed');
              break;
            default:
              assertNever(obs, 'observation');
          }
        }
        if (steps.length === 0) continue;
        // Every operation of the level is on disk as pending before any backend call.
        const opIds = deferred.commit(() => steps.map((st) => this.store.beginOperation(st.node.id, st.op, run())));
        const results = await runSteps(this.provisioner, steps, ctx, this.concurrency);
        steps.forEach((st, i) => {
          const r = results[i]!;
          if (r.status === 'failed' && options.signal.aborted) {
            // Cut off by the interrupt, as the daemon's shutdown cuts one off (its `cutOff`): no failure of the
            // node, no attempt spent. Its record is left as it was and its operation pending (a create only if
            // it began: one never sent must not make the next read be told it was interrupted), resolved by
            // observing at the next run, as after a crash.
            if ((st.op === 'create' && !createCutShort(st.op, r)) || neverSent(r.fault)) deferred.finished(opIds[i]!, r);
            outcomes.set(st.node.id, { status: 'failed', fault: r.fault });
            this.log.warn({ node: st.node.id, backend: st.node.spec.backendId, op: st.op, fault: r.fault }, CUT_OFF);
            return;
          }
          // A create stopped mid-way (its timeout) may have made something: its operation stays
          // pending, and the next run's read is told it was interrupted, as after a crash.
          if (!createCutShort(st.op, r)) deferred.finished(opIds[i]!, r);
          // A correction (not the desired changes applied beside drift left as it is) done or failed.
          if (st.leftDrift === undefined) settleDrift(st.node, r.status === 'done');
          this.record(st, r, outcomes, outputs, memos, put, this.log.child({ node: st.node.id, backend: st.node.spec.backendId }));
          if (r.status === 'done' && st.leftDrift !== undefined) leaves(st.node.id, st.leftDrift.diffs);
        });
      }
      if (policyHolds > POLICY_HELD_LINES) {
        this.log.warn({ more: policyHolds - POLICY_HELD_LINES, held: policyHolds }, POLICY_HELD_MORE);
      }

      // Deletions of nodes removed from the goals, in reverse dependency order.
      const deletions = this.deletions(graph, stored, options);
      const refused = deletions.refused;
      if (refused !== undefined) this.log.error({ count: refused.count, limit: refused.limit }, 'mass deletion refused');
      let deleted: NodeId[] = [];
      const declined = options.allowDeletions === true ? undefined : new Set<NodeId>();
      // The guard refused (`refused`): only the deletes the declaration refuses are left, met as refusals.
      if (deletions.toDelete.length > 0) {
        // A removed node's operations a crash left pending: its create too (`interrupted`), which its read is told of.
        const pendingOn = (id: NodeId): PendingOperation[] => {
          const ops = [...(interrupted.get(id) ?? []), ...(removedOps.get(id) ?? [])];
          interrupted.delete(id);
          removedOps.delete(id);
          return ops;
        };
        const finish = (op: PendingOperation, outcome: OperationOutcome, detail: string): void => deferred.finish(op.id, outcome, detail);
        const removal: Removal = {
          // Each delete is on disk as pending before its backend call, ending what it takes the place of.
          begin: (node) => {
            finishReplacedByDelete(pendingOn(node), finish);
            return deferred.commit(() => this.store.beginOperation(node, 'delete', run()));
          },
          gone: (node) => finishInterrupted(pendingOn(node), 'absent', finish),
        };
        deleted = await this.deleteRemoved(deletions, removal, this.context(options.signal, outputsOf, memoOf, createInterrupted), deferred, outcomes, updates, declined);
      }
      for (const ops of removedOps.values()) for (const op of ops) deferred.finish(op.id, 'abandoned', 'interrupted; the node is observed again');
      for (const r of deletions.toOrphan) {
        outcomes.set(r.id, { status: 'orphaned' });
        logOrphaned(this.log, r, deletions);
      }

      const summary = { ...summarise(outcomes), drifted: drifts };
      const id = deferred.commit(() => {
        this.store.removeNodes([...deleted, ...deletions.toOrphan.map((r) => r.id)]);
        this.store.putNodes(updates);
        const id = run();
        // Interrupted: its counts so far, never finished, so that `history` shows it interrupted as a run a crash cut short.
        if (options.signal.aborted) this.store.recordRunProgress(id, summary);
        else this.store.finishRun(id, summary);
        // This graph is the one applied now: a revision a daemon rejected before is no longer the news.
        this.store.setMeta(GOAL_ERRORS_META, null);
        return id;
      });
      return { runId: id, outcomes, summary, refusedDeletions: refused === undefined ? undefined : { count: refused.count, limit: refused.limit }, declinedDeletions: deletions.toDelete.filter((r) => declined?.has(r.id) === true).map((r) => r.id) };
    } finally {
      // A pass cut short by a throw still records the outcomes of the calls it made (and never hides the throw).
      if (deferred.size > 0) {
        try {
          deferred.commit(() => undefined);
        } catch (err) {
          this.log.warn({ err: errorMessage(err) }, 'could not record the outcomes of an interrupted pass; their operations stay pending and the next run resolves them by observing');
        }
      }
    }
  }

  /**
   * The nodes removed from the goals (prune + Delete) whose delete `apply` would attempt, and those it refuses
   * before any backend call (as `plan` shows them: `x`, or `blocked` behind one), without observing anything:
   * on the outputs the state holds. A refusal of a node that depends on one in the goals is not known without
   * observing (apply may create or update that one first, and read what it gives): its node is counted as
   * attempted, so that `attempted` holds every node apply may delete (it is asked about them). So is one that
   * apply's read before its delete may find gone already (then forgotten, not deleted).
   */
  async plannedDeletions(graph: DesiredGraph<S>, options: PassOptions): Promise<{ attempted: NodeId[]; refused: NodeId[] }> {
    const stored = this.store.listNodes();
    const byId = new Map(stored.map((r) => [r.id, r]));
    const unsure = (r: NodeRecord): boolean => storedEdges(r).deps.some((d) => graph.has(d));
    const planned = { attempted: [] as NodeId[], refused: [] as NodeId[] };
    const ctx = this.context(options.signal, (id) => byId.get(id)?.outputs ?? undefined);
    await this.foreseeDeletes(this.deletions(graph, stored, options), ctx, unsure, false, (r, outcome) => {
      (outcome.status === 'done' ? planned.attempted : planned.refused).push(r.id);
    });
    return planned;
  }

  /**
   * `splitRemoved` of `stored` against `graph`. A create left pending (a crash, its timeout, a running daemon's
   * own) may have made its node's resource: such a node removed is read, and deleted if found, as a managed one.
   */
  private deletions(graph: DesiredGraph<S>, stored: readonly NodeRecord[], options: PassOptions): RemovedSplit {
    const creates = new Set(this.store.pendingOperations().flatMap((op) => (op.op === 'create' ? [op.node] : [])));
    return splitRemoved(graph, stored, this.codec, options.allowMassDeletion === true, this.provisioner.refusedByDeclaration?.bind(this.provisioner), (id) => creates.has(id));
  }

  /**
   * Deletes in order, each node read first (`deleteInOrder`); returns the ids deleted or found gone, to
   * forget. Each operation is begun by `removal.begin`; its outcome waits in `deferred`. `ctx.outputsOf`: the
   * outputs the state holds now (`removedOutputsOf`). `declined`, when deletes are not allowed: gets the nodes
   * whose delete would be sent, neither read nor sent anything, taken as deleted for the order alone (what
   * they depend on meets what it would, as plan shows it); only a delete refused before any call is sent, to fail.
   */
  private async deleteRemoved(
    deletions: RemovedSplit,
    removal: Removal,
    ctx: OperationContext,
    deferred: DeferredWrites,
    outcomes: Map<NodeId, NodeOutcome>,
    updates: NodeRecord[],
    declined: Set<NodeId> | undefined,
  ): Promise<NodeId[]> {
    const done: NodeId[] = [];
    // At most `concurrency` deletes in flight; those that share a `serialKey` take their turns holding no slot, as `runSteps`' steps do.
    const slots = new KeyedSlots(this.concurrency);
    const attempt = async (r: NodeRecord, node: DesiredNode<S>): Promise<Fault | undefined> => {
      if (declined !== undefined && (await this.refusedDelete(r, node, ctx)) === undefined) {
        declined.add(r.id);
        return undefined;
      }
      const removed = { ...ctx, outputsOf: removedOutputsOf(r, ctx.outputsOf) };
      const key = await this.provisioner.serialKey?.(node, removed);
      // Recorded as pending in its slot, right before its call, not while it waits for one. Once `ctx.signal` is
      // aborted (SIGINT), one whose slot comes after is sent nothing: the provisioner fails it, `aborted before it started`.
      return slots.run(
        async () => {
          const opId = removal.begin(node.id);
          const result = await this.provisioner.delete(node, removed);
          // Cut off by the interrupt: left pending, read again before a delete at the next run. One never sent
          // (its slot came after the interrupt) is over: nothing of it can be in the backend.
          if (result.status === 'done' || !ctx.signal.aborted || neverSent(result.fault)) deferred.finished(opId, result);
          return result.status === 'done' ? undefined : result.fault;
        },
        { key },
      );
    };
    const reads = async (r: NodeRecord, node: DesiredNode<S>): Promise<boolean> => declined === undefined && (await this.refusedDelete(r, node, ctx)) === undefined;
    await this.deleteInOrder(deletions, ctx, reads, attempt, (r, outcome) => {
      switch (outcome.status) {
        case 'done':
          if (declined?.has(r.id) === true) break;
          outcomes.set(r.id, { status: 'deleted' });
          done.push(r.id);
          this.log.info({ node: r.id, backend: r.backendId }, 'node deleted');
          break;
        case 'gone':
          // Forgotten, as a node its goal orphans is: nothing was deleted, and nothing is left to.
          outcomes.set(r.id, { status: 'orphaned' });
          done.push(r.id);
          removal.gone(r.id);
          this.log.info({ node: r.id, backend: r.backendId }, GONE_ALREADY);
          break;
        case 'held': {
          outcomes.set(r.id, { status: 'held', reason: outcome.reason });
          if (outcome.fault === undefined) break;
          // As a node of the goals whose read cannot tell: held until `retry` (or, one that waits, looked at again).
          const held = deleteHeld(r, { lastFault: outcome.fault, reason: outcome.reason, updatedAt: this.now() });
          updates.push(held);
          this.log.warn({ node: r.id, backend: r.backendId, reason: outcome.fault.message }, waitsOnItsOwn(held) ? 'delete held: waiting' : 'delete held: existence indeterminate');
          break;
        }
        case 'failed': {
          const f = outcome.fault;
          outcomes.set(r.id, { status: 'failed', fault: f });
          if (ctx.signal.aborted) {
            this.log.warn({ node: r.id, backend: r.backendId, op: 'delete', fault: f }, CUT_OFF);
            break;
          }
          // A delete that failed stays on the record (as the daemon keeps it), so that `status` shows why the node lingers.
          // One the declaration refuses (`byDeclaration`) spends no attempt: a daemon started after it must not hold it.
          updates.push(byDeclaration(f) ? deleteRefusedRecord(r, f, this.now()) : { ...r, status: 'failed', lastFault: f, attempts: r.attempts + 1, reason: f.message, updatedAt: this.now() });
          this.log.warn({ node: r.id, backend: r.backendId, fault: f }, 'delete failed');
          break;
        }
        case 'blocked':
          outcomes.set(r.id, { status: 'blocked', reason: outcome.reason });
          // Blocked, as plan shows it: `status` must not call a node that is not deleted ready.
          updates.push({ ...r, status: 'blocked', reason: outcome.reason, updatedAt: this.now() });
          this.log.warn({ node: r.id, backend: r.backendId, waitsFor: outcome.waitsFor }, 'delete put off: a node that depends on it was not deleted, or one of the goals names it');
          break;
        default:
          assertNever(outcome, 'delete outcome');
      }
    });
    return done;
  }

  /**
   * What apply's deletes meet, by its own decisions (`deleteInOrder`, the provisioner's `refusedDelete`): a
   * cycle, a node that depends on one left, a reference with no value, and, where `read`, what the read before
   * the delete finds (as apply reads it: gone, unable to tell, failed); `done` for the others. `ctx.outputsOf`:
   * the outputs as apply reads them; a refusal `unsure` says apply may not meet is taken for `done`.
   */
  private async foreseeDeletes(
    deletions: RemovedSplit,
    ctx: OperationContext,
    unsure: (r: NodeRecord, f: Fault) => boolean,
    read: boolean,
    settle: (r: NodeRecord, outcome: DeleteOutcome) => void,
  ): Promise<void> {
    // Asked once a node: its read (`reads`) and its delete (`refusal`) go by the one answer.
    const asked = new Map<NodeId, Promise<Fault | undefined>>();
    const refused = (r: NodeRecord, node: DesiredNode<S>): Promise<Fault | undefined> => {
      const known = asked.get(r.id);
      if (known !== undefined) return known;
      const answer = this.refusedDelete(r, node, ctx);
      asked.set(r.id, answer);
      return answer;
    };
    const refusal = async (r: NodeRecord, node: DesiredNode<S>): Promise<Fault | undefined> => {
      const f = await refused(r, node);
      return f !== undefined && unsure(r, f) ? undefined : f;
    };
    // Apply reads each node whose delete it sends: not one refused before any call, nor one whose refusal it may not meet.
    const reads = async (r: NodeRecord, node: DesiredNode<S>): Promise<boolean> => read && (await refused(r, node)) === undefined;
    await this.deleteInOrder(deletions, ctx, reads, refusal, settle);
  }

  /** The provisioner's `refusedDelete` of removed record `r`, its references read as its delete reads them (`removedOutputsOf`). */
  private async refusedDelete(r: NodeRecord, node: DesiredNode<S>, ctx: OperationContext): Promise<Fault | undefined> {
    return this.provisioner.refusedDelete?.(node, { ...ctx, outputsOf: removedOutputsOf(r, ctx.outputsOf) });
  }

  /**
   * Goes through removed records in order (dependents first), as apply deletes them and plan foresees it,
   * and tells `settle` what became of each. A node is not deleted while one that depends on it is left (a
   * group role dropped under a member whose own delete failed; Terraform stops there too). One on a cycle
   * of them that cannot be broken (`deletionEdges`) fails with the cycle, one whose stored spec cannot be
   * read fails too. Each node `reads` says so of is read first, all of them at once (`readRemoved`, with
   * `ctx`): one found gone is forgotten, never deleted (it leaves the way free, as a delete does); one whose
   * read fails fails, one whose read cannot tell is held, and neither is deleted. `attempt` deletes each
   * other one (plan: says what its delete meets), undefined when done. Each node takes its turn once those
   * of `records` that depend on it have had theirs (`inDeleteTurns`), so the deletes that wait for no other
   * run side by side, as many as `attempt` lets (apply: `concurrency`). One held (`deleteBar`: until
   * `retry`) or one a node of the goals names (`RemovedSplit.namedBy`) is neither read nor deleted, and
   * what it depends on waits for it in turn.
   */
  private async deleteInOrder(
    deletions: Pick<RemovedSplit, 'toDelete' | 'namedBy'>,
    ctx: OperationContext,
    reads: (r: NodeRecord, node: DesiredNode<S>) => Promise<boolean>,
    attempt: (r: NodeRecord, node: DesiredNode<S>) => Promise<Fault | undefined>,
    settle: (r: NodeRecord, outcome: DeleteOutcome) => void,
  ): Promise<void> {
    const { toDelete: records, namedBy } = deletions;
    const edges = deletionEdges(records);
    const nodes = new Map(records.map((r) => [r.id, removedNode(r, this.codec)]));
    const toRead: RemovedItem<S>[] = [];
    // Neither read: one held or on a cycle (`deleteBar`), nor one that waits for such a one (it is left). Dependents come first.
    const barred = new Set<NodeId>();
    for (const r of records) {
      if (deleteBar(r, edges, (d) => barred.has(d)) !== undefined) {
        barred.add(r.id);
        continue;
      }
      const node = nodes.get(r.id);
      if (node !== undefined && !namedBy.has(r.id) && (await reads(r, node))) toRead.push({ r, node });
    }
    const found = toRead.length === 0 ? new Map<NodeId, Observation>() : await readRemoved(this.provisioner, toRead, ctx, this.concurrency);
    const left = new Set<NodeId>();
    // Told in the order of `records`, each once those before it are: what lists them (apply's outcomes, plan's
    // entries, the deletes apply asks about) is in the same order whichever delete ends first.
    const outcomes = new Map<NodeId, DeleteOutcome>();
    let told = 0;
    await inDeleteTurns(records, edges, async (r) => {
      const outcome = await this.deleteOne(r, nodes.get(r.id), edges, left, namedBy.get(r.id), found.get(r.id), attempt);
      if (outcome.status !== 'done' && outcome.status !== 'gone') left.add(r.id);
      outcomes.set(r.id, outcome);
      for (let next = records[told]; next !== undefined && outcomes.has(next.id); next = records[++told]) settle(next, outcomes.get(next.id)!);
    });
  }

  /** One node's turn in `deleteInOrder`, its dependents' over: `left` holds the records not deleted so far; `named`, the node of the goals that names it, if one does; `read`, what its read found, if it was read. */
  private async deleteOne(
    r: NodeRecord,
    node: DesiredNode<S> | undefined,
    edges: DeletionEdges,
    left: ReadonlySet<NodeId>,
    named: NamedBy | undefined,
    read: Observation | undefined,
    attempt: (r: NodeRecord, node: DesiredNode<S>) => Promise<Fault | undefined>,
  ): Promise<DeleteOutcome> {
    const bar = deleteBar(r, edges, (d) => left.has(d));
    if (bar?.status === 'held') return { status: 'held', reason: bar.reason };
    if (bar?.status === 'cycle') return { status: 'failed', fault: bar.fault };
    if (named !== undefined) return { status: 'blocked', reason: named.reason, waitsFor: named.by };
    if (bar?.status === 'waits') return { status: 'blocked', reason: `not deleted while ${bar.waitsFor}, which depends on it, is not`, waitsFor: bar.waitsFor };
    if (node === undefined) return { status: 'failed', fault: fault('permanent', 'the stored spec cannot be read; delete it by hand') };
    switch (read?.status) {
      case undefined:
      case 'upToDate':
      case 'drifted':
        break;
      case 'absent':
        return { status: 'gone' };
      case 'failed':
        return { status: 'failed', fault: read.fault };
      case 'indeterminate':
        return { status: 'held', reason: heldReason(r.id, read), fault: heldFault(read) };
      default:
        return assertNever(read, 'observation');
    }
    const f = await attempt(r, node);
    return f === undefined ? { status: 'done' } : { status: 'failed', fault: f };
  }

  private record(
    step: ProvisionStep<S>,
    result: ProvisionResult,
    outcomes: Map<NodeId, NodeOutcome>,
    outputs: Map<NodeId, Outputs>,
    memos: Map<NodeId, ObservationMemo | undefined>,
    put: (node: DesiredNode<S>, status: NodeStatus, patch?: Partial<NodeRecord>, applied?: AppliedAt, operated?: boolean) => void,
    log: Logger,
  ): void {
    const node = step.node;
    const success = step.op === 'create' ? 'created' : 'updated';
    if (result.status === 'done') {
      outputs.set(node.id, result.outputs);
      memos.set(node.id, result.memo);
      outcomes.set(node.id, step.uncorrectable === undefined ? { status: success } : { status: success, uncorrectable: step.uncorrectable });
      // The memo the operation returned, if any: an earlier observation's no longer describes what is there.
      const made = { managed: true, outputs: result.outputs, memo: result.memo ?? null };
      const at = { ...result, left: step.left };
      if (step.leftDrift === undefined) put(node, 'ready', made, at, true);
      else put(node, 'drifted', { ...made, reason: step.leftDrift.reason }, at, true);
      log.info({ type: node.spec.type }, success === 'created' ? 'node created' : 'node updated');
    } else {
      const prev = this.store.getNode(node.id);
      outcomes.set(node.id, { status: 'failed', fault: result.fault });
      put(node, 'failed', { lastFault: result.fault, attempts: (prev?.attempts ?? 0) + 1, reason: result.fault.message, managed: prev?.managed ?? false });
      log.warn({ fault: result.fault }, success === 'created' ? 'create failed' : 'update failed');
    }
  }

  /** `interrupted`: the nodes whose create a crash cut short (see `OperationContext.interrupted`); `appliedAt`: see `OperationContext.appliedAt`. */
  private context(
    signal: AbortSignal,
    outputsOf: (id: NodeId) => Outputs | undefined,
    memoOf?: (id: NodeId) => ObservationMemo | undefined,
    interrupted?: (id: NodeId) => boolean,
    appliedAt?: (id: NodeId, spec: NodeSpec) => boolean,
  ): OperationContext {
    return { signal, log: this.log, outputsOf, memoOf, interrupted, appliedAt };
  }
}

/**
 * Whether a dependency's outcome lets its dependents go on: done, drift left as it is or not, unless the
 * drift it is left with keeps them waiting (`blocking`: `driftBlocksDependents`), as the daemon and plan decide.
 */
function isReady(o: NodeOutcome | undefined, blocking: boolean): boolean {
  if (o === undefined) return false;
  const done = o.status === 'created' || o.status === 'updated' || o.status === 'unchanged' || o.status === 'adopted' || o.status === 'drift-reported';
  return done && !blocking;
}

/**
 * Held by a fault (by the daemon, or an indeterminate observation) for this
 * very goal, applied or not: only a goal change or `retry` releases it. A
 * node held by a policy gate is not: the gate is decided afresh each pass;
 * nor is one declared again while its delete was held (`heldOnDelete`).
 */
function heldForGoal<S extends NodeSpec>(record: NodeRecord, node: DesiredNode<S>, options: PassOptions): boolean {
  // One that waits for what may come on its own (`waitsOnItsOwn`) is looked at again.
  return (
    record.status === 'held' &&
    record.lastFault !== null &&
    !waitsOnItsOwn(record) &&
    !heldOnDelete(record) &&
    storedGoalDigest(record) === node.spec.digest &&
    options.changedBackends?.has(node.spec.backendId) !== true
  );
}

/** `appliedAtSpec`, unless the node's backend is declared otherwise since: then what it finds is to converge, not drift. */
function appliedAt<S extends NodeSpec>(
  record: NodeRecord | undefined,
  node: DesiredNode<S>,
  options: Pick<PassOptions, 'changedBackends'>,
  at: ResolvedAt,
  diffs: readonly FieldDiff[] = [],
): boolean {
  return appliedAtSpec(record, node, at, diffs) && options.changedBackends?.has(node.spec.backendId) !== true;
}

/**
 * `OperationContext.appliedAt` of a pass (apply's, plan's, the daemon's) over the nodes `nodeOf` gives, as
 * the pass decides it (`appliedAt`) on the records `recordOf` gives. The daemon passes no `changedBackends`:
 * it forgets a changed backend's applied digests instead.
 */
export function appliedIn<S extends NodeSpec>(
  nodeOf: (id: NodeId) => DesiredNode<S> | undefined,
  recordOf: (id: NodeId) => NodeRecord | undefined,
  options: Pick<PassOptions, 'changedBackends'>,
): NonNullable<OperationContext['appliedAt']> {
  return (id, spec, diffs = []) => {
    const node = nodeOf(id);
    return node !== undefined && appliedAt(recordOf(id), node, options, handedAt(node, spec), withoutIgnored(diffs, node.settings.ignoreFields));
  };
}

/** Nodes grouped by depth: a node's level is one more than its deepest dependency's. */
export function levels<S extends NodeSpec>(graph: DesiredGraph<S>): DesiredNode<S>[][] {
  const depth = new Map<NodeId, number>();
  const out: DesiredNode<S>[][] = [];
  for (const node of graph.order) {
    let d = 0;
    for (const dep of node.dependsOn) d = Math.max(d, (depth.get(dep.on) ?? 0) + 1);
    depth.set(node.id, d);
    (out[d] ??= []).push(node);
  }
  return out;
}

/** What apply does to a removed node, by what its delete meets (`foreseeDeletes`), as plan shows it. */
function plannedDelete(outcome: DeleteOutcome): PlannedAction {
  switch (outcome.status) {
    case 'done':
      return { action: 'delete' };
    case 'gone':
      return { action: 'orphan', gone: true };
    case 'failed':
      return { action: 'error', fault: outcome.fault };
    case 'held':
    case 'blocked':
      return { action: outcome.status, reason: outcome.reason };
    default:
      return assertNever(outcome, 'delete outcome');
  }
}

/**
 * What plan shows of a node found in sync, drifted or to update (`planned`, `none`, `drift` or `update`) that
 * `reads` outputs of nodes the plan creates or updates: an update, known after apply
 * (`PlannedAction.knownAfterApply`); else `planned`. Apply makes it as a change of its goal once their outputs
 * differ from what it reads now. An update's diffs are dropped: they were found against the outputs apply
 * replaces, and may hold a value no mask knows (a secret the dependency echoed before it was rotated). Drift
 * no update can correct stays drift: apply cannot converge the node either way, and plan's exit status says so.
 */
function knownAfterApply(planned: PlannedAction, reads: readonly NodeId[]): PlannedAction {
  if (reads.length === 0) return planned;
  switch (planned.action) {
    case 'none':
    case 'update':
      return { action: 'update', diffs: [], knownAfterApply: reads };
    case 'drift':
      return uncorrectable(planned.diffs).length > 0 ? planned : { action: 'update', diffs: planned.diffs, knownAfterApply: reads };
    default:
      return planned;
  }
}

/** How apply records the deletes of removed nodes (`deleteRemoved`), with what a crash left pending on them. */
interface Removal {
  /** Records a delete as pending (committed) before its backend call; its operation's id. */
  readonly begin: (node: NodeId) => number;
  /** The node's read found it gone: what was pending on it ends so (a delete cut short: found done). */
  readonly gone: (node: NodeId) => void;
}

function summarise(outcomes: ReadonlyMap<NodeId, NodeOutcome>): RunSummary {
  const s = emptySummary();
  for (const o of outcomes.values()) {
    switch (o.status) {
      case 'created': s.created++; break;
      case 'updated': s.updated++; break;
      case 'deleted': s.deleted++; break;
      case 'unchanged': case 'adopted': s.unchanged++; break;
      // Forgotten: no longer a node of the goals, so neither unchanged nor anything else done to it.
      case 'orphaned': s.orphaned++; break;
      // Drift is counted by reports (corrected or not), not by outcome.
      case 'drift-reported': s.unchanged++; break;
      case 'failed': s.failed++; break;
      case 'blocked': s.blocked++; break;
      case 'held': s.held++; break;
      default: assertNever(o, 'outcome');
    }
  }
  return s;
}

/** One create or update of a pass, decided from an observation. */
export interface ProvisionStep<S extends NodeSpec> {
  readonly node: DesiredNode<S>;
  readonly op: 'create' | 'update';
  readonly diffs: readonly FieldDiff[];
  /**
   * Drift an update leaves as it is beside what it applies (the desired changes alone, `splitDrift`, under
   * `selfHeal: false` or a flap's backoff; what no update can correct): why, said by the node once the
   * update is done, and the diffs that stand then (`driftLeft`), which may keep its dependents waiting.
   */
  readonly leftDrift?: { readonly reason: string; readonly diffs: readonly FieldDiff[] } | undefined;
  /**
   * Why drift left as it is (`leftDrift`) is so where the goal asks for it to be corrected (`selfHeal`): no
   * update can correct it (`FieldDiff.cannotCorrect`). `apply` says the node is not converged.
   */
  readonly uncorrectable?: string | undefined;
  /** Of an update, the differences its node's `ignoreFields` leaves as found beside it, for the node's record (`AppliedAt.left`). */
  readonly left?: readonly FieldDiff[] | undefined;
}

/** Of the differences `found`, those `ignoreFields` leaves as found: not among `diffs`, those it keeps (`withoutIgnored`). */
export function leftAsFound(found: readonly FieldDiff[], diffs: readonly FieldDiff[]): FieldDiff[] {
  return found.filter((d) => !diffs.includes(d));
}

/**
 * The update that corrects the `diffs` of a node applied at its spec (apply's and the daemon's): all of
 * them, or, where some cannot be (`FieldDiff.cannotCorrect`), the others, the node left drifted with why.
 */
export function correctionStep<S extends NodeSpec>(node: DesiredNode<S>, diffs: readonly FieldDiff[]): ProvisionStep<S> {
  const stays = uncorrectable(diffs);
  if (stays.length === 0) return { node, op: 'update', diffs };
  return leavingDrift(node, diffs.filter((d) => d.cannotCorrect === undefined), stays, `drift reported (${stays[0]!.cannotCorrect!})`);
}

/**
 * The update of `diffs` alone (apply's and the daemon's), the drift `left` standing beside them for
 * `reason`: what no update can correct, or drift left as it is (the desired changes of a node whose drift
 * is only reported or waits for a flap's backoff).
 */
export function leavingDrift<S extends NodeSpec>(node: DesiredNode<S>, diffs: readonly FieldDiff[], left: readonly FieldDiff[], reason: string): ProvisionStep<S> {
  const why = node.settings.selfHeal ? uncorrectable(left)[0]?.cannotCorrect : undefined;
  return { node, op: 'update', diffs, leftDrift: { reason, diffs: left }, ...(why === undefined ? {} : { uncorrectable: why }) };
}

/**
 * Runs a batch's creates and updates; one result per step, in order. The
 * creates go through `createMany` and the updates through `updateMany` when
 * the provisioner has them and there is more than one (a batching backend
 * makes them in one transaction or one filesystem flush), the rest one call
 * per node, at most `concurrency` in flight, those that share a `serialKey`
 * one after another as one of them. With `slots` (the daemon's), a step with
 * a `serialKey` is never part of a batch call: it waits for its key's turn in
 * `slots`, holding none, as the key's other changes do (the daemon's deletes
 * and other passes'). The caller records every step as pending before and
 * finished after, as for single calls.
 */
export async function runSteps<S extends NodeSpec>(
  provisioner: NodeProvisioner<S>,
  steps: readonly ProvisionStep<S>[],
  ctx: OperationContext,
  concurrency: number,
  slots?: KeyedSlots,
  /** Told each step's result as soon as it is known (a batch call's, when the call returns), before the others finish. */
  onResult?: (index: number, result: ProvisionResult) => void,
): Promise<ProvisionResult[]> {
  // Without shared slots (apply: one pass), these alone bound it; with them (the daemon's worker loops), every
  // operation in flight, single or in a batch, also holds a slot of the daemon's one --concurrency.
  const held = <T>(task: () => Promise<T>, weight = 1, key?: string): Promise<T> => (slots === undefined ? task() : slots.run(task, { weight, key }));
  const results = new Array<ProvisionResult>(steps.length);
  const settled = (i: number, r: ProvisionResult): void => {
    results[i] = r;
    onResult?.(i, r);
  };
  const indexes = (op: ProvisionStep<S>['op']): number[] => steps.flatMap((st, i) => (st.op === op ? [i] : []));
  const creates = indexes('create');
  const updates = indexes('update');
  const batchable = (which: readonly number[], call: unknown): boolean => call !== undefined && which.length > 1;
  // The provisioner would run the steps that share a key one after another anyway: each waits its turn here (and
  // in `slots`, with the key's other changes, the daemon's deletes and other passes'), holding no slot. Asked of
  // the steps that may go alone: with shared slots every one (a batch call would hold its slots while one of its
  // steps waits for its turn), else those no batch call takes.
  const alone = slots !== undefined ? [...creates, ...updates] : [...(batchable(creates, provisioner.createMany) ? [] : creates), ...(batchable(updates, provisioner.updateMany) ? [] : updates)];
  const keys = provisioner.serialKey === undefined ? new Map<number, string | undefined>() : new Map(await Promise.all(alone.map(async (i) => [i, await provisioner.serialKey!(steps[i]!.node, ctx)] as const)));
  const batched = (which: readonly number[], call: unknown): number[] => {
    const unkeyed = which.filter((i) => keys.get(i) === undefined);
    return batchable(unkeyed, call) ? unkeyed : [];
  };
  const batchedCreates = batched(creates, provisioner.createMany);
  const batchedUpdates = batched(updates, provisioner.updateMany);
  const inBatch = new Set([...batchedCreates, ...batchedUpdates]);
  const singles = [...creates, ...updates].filter((i) => !inBatch.has(i)).sort((a, b) => a - b);
  const one = forEachKeyedLimit(
    singles,
    concurrency,
    (i) => keys.get(i),
    async (i) => {
      const st = steps[i]!;
      settled(i, await held(() => (st.op === 'create' ? provisioner.create(st.node, ctx) : provisioner.update(st.node, st.diffs, ctx)), 1, keys.get(i)));
    },
  );
  const many = async (which: readonly number[], call: () => Promise<ReadonlyMap<NodeId, ProvisionResult>>): Promise<void> => {
    const done = await call();
    for (const i of which) settled(i, done.get(steps[i]!.node.id) ?? { status: 'failed', fault: fault('unknown', 'no result from a batch call') });
  };
  await Promise.all([
    one,
    batchedCreates.length > 0 && many(batchedCreates, () => held(() => provisioner.createMany!(batchedCreates.map((i) => steps[i]!.node), ctx, concurrency), Math.min(concurrency, batchedCreates.length))),
    batchedUpdates.length > 0 &&
      many(batchedUpdates, () =>
        held(() => provisioner.updateMany!(batchedUpdates.map((i) => ({ node: steps[i]!.node, diffs: steps[i]!.diffs })), ctx, concurrency), Math.min(concurrency, batchedUpdates.length)),
      ),
  ]);
  return results;
}
