import type { Logger } from 'pino';
import type { Fault } from './fault.ts';
import { fault } from './fault.ts';
import type { DesiredNode, NodeId, NodeSpec } from './node-spec.ts';

/**
 * One output's value: any JSON value. Most backends output scalars (a path, an oid); the exec
 * protocol's commands print whatever JSON they like (a list of addresses, a map of endpoints).
 */
export type OutputValue = string | number | boolean | null | readonly OutputValue[] | { readonly [key: string]: OutputValue };

/** Outputs a node exposes to its dependents (`${nodes.<id>.outputs.<key>}`). */
export type Outputs = Readonly<Record<string, OutputValue>>;

/**
 * A backend's own note about what it saw at an observation (for example a
 * file's inode, size and change time with the hash of the content read),
 * or made at a create or update, stored with the node's record and handed
 * back at the next observation, so that the backend can tell "unchanged
 * since" without reading everything again. The runtime stores it and never
 * interprets it, nor shows it (unlike outputs); the backend treats it as a
 * hint it checks against what it sees. Flat JSON, small.
 */
export type ObservationMemo = Readonly<Record<string, string | number | boolean | null>>;

/** One managed field that differs. Secret values are never carried: `masked` says one was compared. */
export interface FieldDiff {
  /** Spec path, dotted, for example `connectionLimit` or `memberOf[1]`. */
  readonly path: string;
  readonly desired: unknown;
  readonly actual: unknown;
  /** True when the field holds a secret: desired and actual are masks. */
  readonly masked?: boolean | undefined;
  /** Extra, human-oriented detail (for example a unified diff of a task). */
  readonly detail?: string | undefined;
  /**
   * Set when the difference comes from the desired side, not from the
   * resource: `secret-rotated`, the secret a reference names holds another
   * value than the one the backend last applied (it keeps a digest to tell).
   * Such a diff is a change to apply, as a changed goal is (also under
   * `selfHeal: false`), never drift. Unset: the resource differs from a goal
   * that did not change, which is drift once the node was applied.
   */
  readonly cause?: 'secret-rotated' | undefined;
  /**
   * Set when no update can make this field as desired, with why (a database's encoding, fixed at its
   * creation; a directory where a file should be, which the backend never deletes to make room): the
   * difference is drift reported, never corrected, and never handed to `update`; the node's other
   * differences are corrected as ever.
   */
  readonly cannotCorrect?: string | undefined;
  /**
   * Set by a backend when, while this difference stands, the resource cannot serve what depends on it,
   * so that its dependents would act through something else (local: a symlink or a file where a managed
   * directory should be, whose files would be read or written through it, or fail against it). The
   * node's dependents are blocked (not observed, created or updated, no retry spent) until it is gone, and
   * looked at at once then. Any other drift, corrected or not (a database's encoding, a flap waiting
   * for its backoff, drift only reported), blocks nothing: the resource still serves its dependents.
   */
  readonly blocksDependents?: true | undefined;
}

/**
 * The spec a node was observed against or provisioned at, where the provisioner resolved it first
 * (references to other nodes' outputs replaced): `digest`, that spec's digest, which differs from
 * `NodeSpec.digest`; absent, the node's own. A node's record keeps the digest it was applied at, so
 * that an output that changed is a change of what the goal asks of the nodes that reference it,
 * converged as an edit of their goal is (whatever `selfHeal` says), while a resource that differs
 * from the spec it was applied at is drift.
 */
export interface ResolvedAt {
  readonly digest?: string | undefined;
  /** With `digest`: that spec's `NodeSpec.managedDigest`; absent, `digest`. */
  readonly managed?: string | undefined;
  /**
   * With `digest`: the output values the references were resolved with, per node and key, as
   * `OperationContext.outputsOf` gave them (outputs as stored: a secret is masked); absent when the
   * spec names none. A record keeps these with the digest, for the node's delete once it leaves the
   * goals: taken from the one resolution, they can never be another moment's outputs.
   */
  readonly refs?: ReferencedOutputs | undefined;
}

/** Per node, output values that a spec's `${nodes…}` references read (`ResolvedAt.refs`). */
export type ReferencedOutputs = Readonly<Record<NodeId, Outputs>>;

/** What exists, compared with what is desired. Failure is a state, not a throw. */
export type Observation =
  | ({ readonly status: 'absent' } & ResolvedAt)
  | ({ readonly status: 'upToDate'; readonly outputs: Outputs; readonly memo?: ObservationMemo | undefined } & ResolvedAt)
  | ({ readonly status: 'drifted'; readonly diffs: readonly FieldDiff[]; readonly outputs: Outputs; readonly memo?: ObservationMemo | undefined } & ResolvedAt)
  /**
   * The backend cannot tell whether the resource exists (for example after a crash mid-create): held
   * until an operator has checked and runs `desiredstate retry`. `waiting`: nothing is unknown, the node
   * waits for what `reason` names (a script's review or approval), which releases it.
   */
  | { readonly status: 'indeterminate'; readonly reason: string; readonly waiting?: true | undefined }
  | { readonly status: 'failed'; readonly fault: Fault };

/**
 * The final answer of a create, update or delete. A create or update may
 * return a memo (see `ObservationMemo`) of what it just made: the runtime
 * stores it as an observation's and hands it back at the next observation;
 * without one the node's memo is cleared (what was noted before the
 * operation no longer holds). A delete's memo is ignored.
 */
export type ProvisionResult =
  | ({ readonly status: 'done'; readonly outputs: Outputs; readonly memo?: ObservationMemo | undefined } & ResolvedAt)
  | { readonly status: 'failed'; readonly fault: Fault };

/** One update of a batch: the node and the differences its observation found. */
export interface UpdateRequest<S extends NodeSpec = NodeSpec> {
  readonly node: DesiredNode<S>;
  readonly diffs: readonly FieldDiff[];
}

/** What every SPI call receives. */
export interface OperationContext {
  /** Aborted on shutdown or timeout: implementations stop promptly and leave no half-written state. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /**
   * Outputs recorded for a node (dependencies and the node itself): undefined while it has given none
   * (not created, or none recorded), which a reference to it waits for; else what it gave, in which a
   * missing key is an output it does not give (`OUTPUT_UNKNOWN`).
   */
  readonly outputsOf: (id: NodeId) => Outputs | undefined;
  /** The node's memo as last recorded: from its last observation, or a create or update since (see `ObservationMemo`). */
  readonly memoOf?: ((id: NodeId) => ObservationMemo | undefined) | undefined;
  /**
   * Whether a create of the node was begun and never finished (the process
   * died during it, or the create was stopped mid-way: `Fault.cutShort`). An observation that cannot tell a resource that was
   * never made from one a cut-short create made (its id known only to the
   * create) answers `indeterminate` then, rather than `absent`: the node is
   * held for an operator instead of being created a second time.
   */
  readonly interrupted?: ((id: NodeId) => boolean) | undefined;
  /**
   * Set on the read of nodes removed from the goals before their delete (`readRemoved`): one found
   * present is deleted next, one found absent forgotten, and nothing else is done to them. Such a
   * read neither asks for nor settles anything of a create or an update (a script's per-run approval),
   * and no node of the goals shares a resource with them (a file another node reaches). One found
   * present whose delete is bound to fail by what the read finds (a directory that holds what no delete
   * of the call removes first) may be answered `failed` with that delete's fault: plan shows it as the
   * error apply meets, and apply fails it with no delete sent. A read that finds what a delete would
   * need first (a script's per-run approval of it) may answer `indeterminate` (`waiting`) saying so.
   */
  readonly beforeDelete?: true | undefined;
  /**
   * Whether node `id` was last applied at `spec`, its spec as the provisioner is handed it (its
   * references resolved, or not: `ResolvedAt`), or one that asks the same of its resource
   * (`NodeSpec.managedDigest`): then a difference its observation finds is drift,
   * corrected only under `selfHeal`; else it is a change of the goal (or of an output it references),
   * made whatever `selfHeal` says. For a backend that must ask before a change (a script's per-run
   * approval): it asks for the one that follows, and for no drift left as it is. `diffs`: what its
   * observation found differing, where it found the resource: one in a field whose goal edit
   * `ignoreFields` held back, the entry since dropped, is that edit (`appliedAtSpec`). Absent: not
   * known, as if never applied.
   */
  readonly appliedAt?: ((id: NodeId, spec: NodeSpec, diffs?: readonly FieldDiff[]) => boolean) | undefined;
}

/**
 * The runtime's only view of whatever it reconciles. Blocking: each method
 * resolves with its final answer and never rejects (a failure is a `failed`
 * result carrying a classified `Fault`). Every call is idempotent; a create
 * of something that already exists counts as success.
 */
export interface NodeProvisioner<S extends NodeSpec = NodeSpec> {
  /** Reads the actual state of each node and compares it with the desired one; one entry per node given. */
  observe(nodes: readonly DesiredNode<S>[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>>;
  /** Makes the node exist as desired. */
  create(node: DesiredNode<S>, ctx: OperationContext): Promise<ProvisionResult>;
  /**
   * Optional: creates several nodes of one dependency level at once (for
   * example in one transaction per backend), with `create`'s contract for
   * each. Resolves with one entry per node given and never rejects; at
   * most `concurrency` backend calls are in flight where it falls back to
   * one create per node.
   */
  createMany?(nodes: readonly DesiredNode<S>[], ctx: OperationContext, concurrency: number): Promise<ReadonlyMap<NodeId, ProvisionResult>>;
  /** Brings an existing, drifted node back to its desired state. */
  update(node: DesiredNode<S>, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult>;
  /**
   * Optional: updates several nodes of one pass at once (one transaction,
   * one filesystem flush), with `update`'s contract for each. Resolves with
   * one entry per node given and never rejects; at most `concurrency`
   * backend calls are in flight where it falls back to one update per node.
   */
  updateMany?(items: readonly UpdateRequest<S>[], ctx: OperationContext, concurrency: number): Promise<ReadonlyMap<NodeId, ProvisionResult>>;
  /** Deprovisions the node; absent already counts as success. */
  delete(node: DesiredNode<S>, ctx: OperationContext): Promise<ProvisionResult>;
  /**
   * Optional: the fault `delete` would fail the node with before any backend call (a reference with
   * no value in `ctx`, its backend not configured), by the same checks, or undefined when it would
   * call the backend. Calls nothing: `plan` shows such a delete as the error `apply` meets. Without
   * it, every delete is planned as one the backend is asked for.
   */
  refusedDelete?(node: DesiredNode<S>, ctx: OperationContext): Promise<Fault | undefined>;
  /**
   * Optional: of `refusedDelete`'s faults, the one for how the goals declare the node's backend
   * (`byDeclaration`), which no pass changes and which needs no outputs: the mass-deletion guard counts
   * only the deletes that would be attempted (`splitRemoved`).
   */
  refusedByDeclaration?(node: DesiredNode<S>): Fault | undefined;
  /**
   * Optional: what the node's create, update or delete rewrites that other nodes' may rewrite too (a
   * file several nodes edit: its real path), where the provisioner runs such changes one after another;
   * undefined for most. The runtime runs the changes that share a key one after another (a pass's as one
   * of its `concurrency`; the daemon's, of all its passes and deletes, each taking its slot once its turn
   * has come), so that those waiting their turn never take the places of others. Calls nothing.
   */
  serialKey?(node: DesiredNode<S>, ctx: OperationContext): Promise<string | undefined>;
}

/** Node `id`'s observation in what an observe call returned: a failure where the provisioner gave none. */
export function observationOf(observed: ReadonlyMap<NodeId, Observation>, id: NodeId): Observation {
  return observed.get(id) ?? { status: 'failed', fault: fault('unknown', 'no observation') };
}
