import type { Logger } from 'pino';
import { fault } from './fault.ts';
import type { Fault } from './fault.ts';
import type { NodeGate } from './goal-compiler.ts';
import { cycleThrough, cyclicComponents } from './graph.ts';
import type { DesiredGraph } from './graph.ts';
import { jsonEqual } from './json.ts';
import { formatLocation } from './node-spec.ts';
import type { DesiredNode, NodeId, NodeSettings, NodeSpec, NodeSpecCodec } from './node-spec.ts';
import type { FieldDiff, Observation, ObservationMemo, Outputs, ReferencedOutputs, ResolvedAt } from './provisioner.ts';
import type { NodeRecord, NodeStatus } from './state-store.ts';

/**
 * Comparing and ordering stored node records, shared by the one-shot pass
 * (Reconciler) and the daemon (Controller): a record that did not change is
 * never written again, and removed nodes are deleted dependents first.
 */

/** What a record keeps of the deletion policy: `Delete` only when the goal prunes. */
export function storedDeletionPolicy(settings: NodeSettings): NodeRecord['deletionPolicy'] {
  return settings.prune && settings.deletionPolicy === 'Delete' ? 'Delete' : 'Orphan';
}

/** A node's record in `status`: identity from the node, every other field carried over from `prev`. */
export function carriedRecord<S extends NodeSpec>(node: DesiredNode<S>, status: NodeStatus, prev: NodeRecord | undefined, now: number): NodeRecord {
  return {
    id: node.id,
    goal: node.goal,
    type: node.spec.type,
    backendId: node.spec.backendId,
    status,
    appliedDigest: prev?.appliedDigest ?? null,
    outputs: prev?.outputs ?? null,
    managed: prev?.managed ?? false,
    lastFault: prev?.lastFault ?? null,
    attempts: prev?.attempts ?? 0,
    retryAt: prev?.retryAt ?? null,
    reason: prev?.reason ?? null,
    snapshot: prev?.snapshot ?? null,
    memo: prev?.memo ?? null,
    deletionPolicy: storedDeletionPolicy(node.settings),
    updatedAt: prev?.updatedAt ?? now,
  };
}

/** What the runtime keeps with a record for itself: `NodeRecord.snapshot`. */
export interface RecordSnapshot {
  /** The encoded spec last applied (until the first apply, the first desired): what deleting the resource needs once it leaves the goals. */
  readonly spec?: unknown;
  /** The node's dependencies, to delete dependents first. */
  readonly deps?: readonly string[];
  /**
   * Those of `deps` kept for nodes that had left the goals (`depsToStore`): edges the graph no longer
   * had when they were stored, the first a cycle among removed nodes is broken at (`deletionEdges`).
   */
  readonly kept?: readonly string[];
  /** Digest of the goal's spec the node was last reconciled toward: a different one is a goal change. */
  readonly goal?: string;
  /**
   * The node's own `deletionPolicy`, when `Delete` (absent for `Orphan`): the record's is `Delete` only
   * when its goal pruned too, and a goal that turns prune on in the revision that removes the node deletes it.
   */
  readonly deletionPolicy?: 'Delete';
  /**
   * What the spec's `${nodes…}` references read when the node was last applied or found in sync at its
   * goal, per node and key (outputs as stored: a secret is `<secret>`): those its applied digest was
   * resolved with (`ResolvedAt.refs`); absent when it has none, and in records written before they were
   * kept. Its delete, once it leaves the goals, resolves them so, as Terraform destroys from its state:
   * the nodes they name may be changed, removed or forgotten by then.
   */
  readonly refs?: ReferencedOutputs;
  /**
   * The node's `ignoreFields` entries that left a field differing from the goal, as found, when it was
   * found in sync or updated at a goal it had not been applied at (`appliedAtSpec`): the goal's edit of
   * that field, if it was one, was never applied. Once the entry is dropped, a difference there is that
   * edit, to apply as a goal change is, not drift (`appliedAtSpec` with the diffs). Kept while the field
   * is left differing at the same goal; absent when none.
   */
  readonly unapplied?: readonly string[];
  /**
   * Set on a node removed from the goals whose delete is held (`deleteHeld`): that hold, not one from when
   * the node was in the goals (an update given up on), which its removal, a change of its goal, ends.
   */
  readonly deleteHeld?: true;
}

function snapshotOf(r: NodeRecord): RecordSnapshot {
  return (r.snapshot ?? {}) as RecordSnapshot;
}

/** A record's dependencies as stored (`RecordSnapshot.deps`), and those of them kept (`RecordSnapshot.kept`). */
export interface StoredEdges {
  readonly deps: readonly NodeId[];
  readonly kept?: readonly NodeId[] | undefined;
}

/**
 * Removed record `r` held with `patch` (status `held` and why): its delete, as `deleteBar` tells it from a
 * hold from when the node was in the goals.
 */
export function deleteHeld(r: NodeRecord, patch: Pick<NodeRecord, 'lastFault' | 'reason' | 'updatedAt'> & Partial<NodeRecord>): NodeRecord {
  return { ...r, retryAt: null, ...patch, status: 'held', snapshot: { ...snapshotOf(r), deleteHeld: true } };
}

/**
 * Removed record `r` after its delete was refused with `f` for how the goals declare it (`byDeclaration`), by
 * apply and the daemon alike: failed, with no attempt spent and no retry due (one an earlier failure set is
 * over), since only a goal load that declares the backend otherwise can change it.
 */
export function deleteRefusedRecord(r: NodeRecord, f: Fault, updatedAt: number): NodeRecord {
  return { ...r, status: 'failed', lastFault: f, retryAt: null, reason: f.message, updatedAt };
}

/**
 * Held on its delete (`deleteHeld`), while removed from the goals. Declared again, the node is not held
 * for it: its goal changed, and it is looked at as any node whose goal did.
 */
export function heldOnDelete(r: NodeRecord): boolean {
  return r.status === 'held' && snapshotOf(r).deleteHeld === true;
}

/** The dependencies stored with a record, for ordering deletions. */
export function storedEdges(r: NodeRecord): StoredEdges {
  const { deps = [], kept } = snapshotOf(r);
  return { deps, kept };
}

/** The referenced outputs stored with a record (`RecordSnapshot.refs`). */
export function storedRefs(r: NodeRecord): ReferencedOutputs | undefined {
  return snapshotOf(r).refs;
}

/** The `ignoreFields` entries stored with a record as not applied (`RecordSnapshot.unapplied`). */
export function storedUnapplied(r: NodeRecord): readonly string[] | undefined {
  return snapshotOf(r).unapplied;
}

/** The encoded spec stored with a record, needed to delete it once it leaves the goals. */
function storedSpec(r: NodeRecord): unknown {
  return snapshotOf(r).spec;
}

/**
 * The node a record removed from the goals stands for, to delete it: its
 * stored spec, decoded, with the settings a deletion needs. Undefined when
 * that spec cannot be read (the resource is then left for a human).
 */
export function removedNode<S extends NodeSpec>(r: NodeRecord, codec: NodeSpecCodec<S>): DesiredNode<S> | undefined {
  const stored = storedSpec(r);
  const spec = stored === undefined ? undefined : codec.decode(stored);
  if (spec === undefined) return undefined;
  const settings = { selfHeal: true, prune: true, deletionPolicy: 'Delete', ignoreFields: [] } as const;
  return { id: r.id, goal: r.goal, spec, dependsOn: [], settings, source: { file: '(state)', line: 0, col: 0 } };
}

/**
 * Digest of the goal's spec the record was last reconciled toward, so that a
 * restart tells a goal change from a node that never got applied (held or
 * backing off before its first success). Records written before it was kept:
 * the applied digest.
 */
export function storedGoalDigest(r: NodeRecord): string | null {
  return snapshotOf(r).goal ?? r.appliedDigest;
}

const POLICY_HOLD = 'held by policy: ';
/** As records written before 2026-11-24 have it (`policy: held by policy: …`). */
const LEGACY_POLICY_HOLD = 'policy: ';

/** How the reason of a node held because it cannot tell whether its resource exists begins (`heldReason`). */
const CANNOT_TELL = 'cannot tell whether it exists: ';

/**
 * Why a node whose observation was `indeterminate` is held, and what releases it: a check by an operator
 * and `desiredstate retry`, or, for one that waits (a script's review), what the backend said.
 */
export function heldReason(id: NodeId, obs: Extract<Observation, { status: 'indeterminate' }>): string {
  return obs.waiting === true ? obs.reason : `${CANNOT_TELL}${obs.reason}; check it and run \`desiredstate retry ${id}\``;
}

/**
 * Held because its read could not tell whether its resource exists (an `indeterminate` observation that
 * does not wait): held until an operator has checked it and runs `retry`.
 */
export function heldCannotTell(rec: NodeRecord): boolean {
  return rec.status === 'held' && rec.reason?.startsWith(CANNOT_TELL) === true;
}

/** The code of the fault kept on a node held by an `indeterminate` observation that waits (`waiting`): see `waitsOnItsOwn`. */
const WAITING_CODE = 'waiting';

/** The fault a node held by an `indeterminate` observation keeps: one that waits is marked so (`waitsOnItsOwn`). */
export function heldFault(obs: Extract<Observation, { status: 'indeterminate' }>): Fault {
  return fault('permanent', obs.reason, obs.waiting === true ? { code: WAITING_CODE } : {});
}

/**
 * Whether a held node waits for something outside that may come without an operator's `retry` (a
 * script's trust earned by other nodes' runs, a review): looked at again each pass and interval,
 * never held for good. A node that cannot tell whether its resource exists is held until `retry`.
 */
export function waitsOnItsOwn(rec: NodeRecord): boolean {
  return rec.status === 'held' && rec.lastFault?.code === WAITING_CODE;
}

/** The stable message of the log line for a node a policy holds (warn), from apply and the daemon. */
export const POLICY_HELD = 'node held by policy';
/**
 * How many `POLICY_HELD` lines one apply writes; the nodes held past them are one line, `POLICY_HELD_MORE`
 * (warn, with `more` and the `held` in all): 10k nodes held by a policy made 10k lines on every apply.
 * `desiredstate status` lists each. The daemon logs a hold once, when it starts, so it has no cap.
 */
export const POLICY_HELD_LINES = 20;
/** The stable message of apply's line for the nodes held by policy past the first `POLICY_HELD_LINES`. */
export const POLICY_HELD_MORE = 'more nodes held by policy';
/** The stable message of the daemon's log line for a node a policy held and holds no longer (info). */
export const POLICY_RELEASED = 'node no longer held by policy';

/**
 * The fields of `POLICY_HELD`'s line: the node, its goal, backend and type, the reason status shows,
 * and each finding that holds it with where it is (`file:line:col`).
 */
export function policyHoldFields(node: DesiredNode<NodeSpec>, gate: NodeGate): Record<string, unknown> {
  return {
    node: node.id,
    goal: node.goal,
    backend: node.spec.backendId,
    type: node.spec.type,
    reason: policyHoldReason(gate.reason),
    ...(gate.findings === undefined || gate.findings.length === 0
      ? {}
      : { findings: gate.findings.map((f) => ({ rule: f.rule, severity: f.severity, policy: f.policy, message: f.message, at: formatLocation(f.location) })) }),
  };
}

/** The reason plan, apply and status give a node a policy gate holds: `held by policy: <the gate's reason>`. */
export function policyHoldReason(gateReason: string): string {
  return `${POLICY_HOLD}${gateReason}`;
}

/**
 * Held by a policy gate when last seen. Such a node is never deleted, not
 * even once removed from the goals (prune + Delete): it is let go (orphaned),
 * as no policy can judge a node that is no longer declared.
 */
export function heldByPolicy(r: NodeRecord): boolean {
  return r.status === 'held' && (r.reason?.startsWith(POLICY_HOLD) === true || r.reason?.startsWith(LEGACY_POLICY_HOLD) === true);
}

/**
 * What a node was just applied or found in sync at (`nextRecord`): the spec as resolved (`ResolvedAt`),
 * and `left`, the differences from it that the node's `ignoreFields` left as found (none: undefined).
 */
export type AppliedAt = ResolvedAt & { readonly left?: readonly FieldDiff[] | undefined };

/** Whether `ignore` (a node's `ignoreFields`) covers the spec path `path`: names it, or a field it is inside. */
export function ignoredBy(path: string, ignore: readonly string[]): boolean {
  return ignore.some((f) => path === f || path.startsWith(`${f}.`) || path.startsWith(`${f}[`));
}

/**
 * The record `node` is to have next, with its snapshot: `rec`, what it is about to be (`prev` what it
 * had), at the applied digest of `applied` when the node was just applied or found in sync at the spec
 * it was resolved to (`digestAt`), whose referenced outputs it keeps too (`snapshotRefs`): both come
 * from that one resolution, as do the fields whose goal edit its `ignoreFields` kept from being applied
 * (`unappliedToStore`). Undefined when it reads as `prev` did (`sameRecord`, `sameSnapshot`): a
 * steady state writes nothing, unless `operated` (a create or update changed the resource). `deps`: the
 * graph's dependencies of the node; `lingers`: see `depsToStore`. The one step of the daemon's and
 * apply's `put`.
 */
export function nextRecord<S extends NodeSpec>(
  node: DesiredNode<S>,
  prev: NodeRecord | undefined,
  rec: NodeRecord,
  applied: AppliedAt | undefined,
  deps: readonly NodeId[],
  lingers: (id: NodeId) => boolean,
  codec: NodeSpecCodec<S>,
  operated = false,
): NodeRecord | undefined {
  // The digest `prev` has already, when it is this one (a steady pass): no string built per node.
  const digest = applied === undefined ? undefined : prev !== undefined && isDigestAt(prev.appliedDigest, node, applied) ? prev.appliedDigest : digestAt(node, applied);
  const next = digest === undefined ? rec : { ...rec, appliedDigest: digest };
  const keeps = prev !== undefined && keepsSpec(prev, next, node);
  const edges = depsToStore(deps, prev, keeps, lingers);
  const refs = snapshotRefs(prev, keeps, applied);
  const unapplied = unappliedToStore(node, prev, keeps, applied);
  if (prev !== undefined && !operated && sameRecord(prev, next) && sameSnapshot(prev, node.spec.digest, edges, node.settings.deletionPolicy, refs, unapplied)) return undefined;
  return { ...next, snapshot: recordSnapshot(node, edges, prev, keeps, codec, refs, unapplied) };
}

/**
 * The `ignoreFields` entries a record keeps as not applied (`RecordSnapshot.unapplied`; `prev` the record
 * it had): where the node was just applied or found in sync (`applied`), those that left a field differing
 * (`AppliedAt.left`) among the node's, at a spec its record was not applied at, else among those kept (a
 * field found as the goal has it, or no longer ignored and so applied, is applied); otherwise those kept
 * with the spec (`keeps`). A hand edit of an ignored field at a goal that did not change is never one.
 */
function unappliedToStore<S extends NodeSpec>(node: DesiredNode<S>, prev: NodeRecord | undefined, keeps: boolean, applied: AppliedAt | undefined): readonly string[] | undefined {
  const kept = prev === undefined ? undefined : snapshotOf(prev).unapplied;
  if (applied === undefined) return keeps ? kept : undefined;
  // Nothing left differing (a steady pass): no field kept, whatever the candidates.
  const left = applied.left;
  if (left === undefined || left.length === 0) return undefined;
  const candidates = appliedAtSpec(prev, node, applied) ? (kept ?? []) : node.settings.ignoreFields;
  const fields = candidates.filter((f) => left.some((d) => ignoredBy(d.path, [f])));
  return fields.length === 0 ? undefined : fields;
}

/**
 * The snapshot of the record `node` is about to get (`prev` the one it
 * had): its dependencies, the goal digest, and the spec to keep, which
 * follows the applied digest: the one kept while that does not change (a
 * failed update leaves the resource as last applied, `keeps`), the goal's
 * otherwise.
 */
function recordSnapshot<S extends NodeSpec>(
  node: DesiredNode<S>,
  edges: StoredEdges,
  prev: NodeRecord | undefined,
  keeps: boolean,
  codec: NodeSpecCodec<S>,
  refs: ReferencedOutputs | undefined,
  unapplied: readonly string[] | undefined,
): RecordSnapshot {
  const spec = prev !== undefined && keeps ? storedSpec(prev) : codec.encode(node.spec);
  return {
    spec,
    deps: edges.deps,
    ...(edges.kept === undefined ? {} : { kept: edges.kept }),
    goal: node.spec.digest,
    ...(node.settings.deletionPolicy === 'Delete' ? { deletionPolicy: 'Delete' as const } : {}),
    ...(refs === undefined ? {} : { refs }),
    ...(unapplied === undefined ? {} : { unapplied }),
  };
}

/**
 * The dependencies a record stores (`RecordSnapshot.deps`): the graph's (`deps`), and, while it keeps the
 * spec `prev` stored (`keeps`: `keepsSpec`), those `prev` stored on nodes that have left the goals but whose
 * records remain (`lingers`: a delete that failed). An edge the domain implies between two nodes (a
 * database after the role that owns it) goes from the graph with either of them: the role removed
 * first, and its delete refused while it owns the database, a later revision that removed the database
 * too deleted the role first, refused again, and took another apply. So the edges stay with the spec
 * they were found for, as Terraform keeps each resource's dependencies in its state for its destroy.
 * Those kept are marked so (`RecordSnapshot.kept`): the graph never had them together with its own.
 */
function depsToStore(deps: readonly NodeId[], prev: NodeRecord | undefined, keeps: boolean, lingers: (id: NodeId) => boolean): StoredEdges {
  if (prev === undefined || !keeps) return { deps };
  const kept = storedEdges(prev).deps.filter((d) => lingers(d) && !deps.includes(d));
  return kept.length === 0 ? { deps } : { deps: [...deps, ...kept], kept };
}

/**
 * Whether `rec` keeps the spec `prev` stored: one is stored, and the applied digest it follows did not
 * change; unless `node`'s backend was renamed with the applied digest still at its managed digest (drift
 * reported, a failure held): a delete then goes to the backend by its name now, the old one gone.
 */
function keepsSpec<S extends NodeSpec>(prev: NodeRecord, rec: NodeRecord, node: DesiredNode<S>): boolean {
  if (storedSpec(prev) === undefined || prev.appliedDigest !== rec.appliedDigest) return false;
  return prev.backendId === rec.backendId || prev.appliedDigest === null || managedOf(prev.appliedDigest) !== (node.spec.managedDigest ?? node.spec.digest);
}

/**
 * The referenced outputs (`RecordSnapshot.refs`) a record keeps (`prev` the one it had): when the
 * node was just applied or found in sync at its goal (`applied`, the spec it was applied at, from which
 * `nextRecord` takes the applied digest too), those that spec was resolved with; else those kept with the
 * spec the record keeps (`keeps`, see `recordSnapshot`), none once that spec is the goal's, not applied yet.
 */
function snapshotRefs(prev: NodeRecord | undefined, keeps: boolean, applied: ResolvedAt | undefined): ReferencedOutputs | undefined {
  if (applied !== undefined) return applied.refs;
  return prev !== undefined && keeps ? storedRefs(prev) : undefined;
}

function sameRefs(a: ReferencedOutputs | undefined, b: ReferencedOutputs | undefined): boolean {
  if (a === b) return true;
  const ka = Object.keys(a ?? {});
  if (ka.length !== Object.keys(b ?? {}).length) return false;
  return ka.every((id) => b !== undefined && Object.hasOwn(b, id) && sameOutputs(a![id]!, b[id]!));
}

/**
 * Outputs as the delete of `r`, a node removed from the goals, reads them: its own as recorded, and for
 * the nodes its references name, what they read when it was last applied (`RecordSnapshot.refs`), so that
 * it is deleted as it was made, whatever became of those nodes since; for a record that kept none
 * (written before they were kept), what the state holds now (`current`).
 */
export function removedOutputsOf(r: NodeRecord, current: (id: NodeId) => Outputs | undefined): (id: NodeId) => Outputs | undefined {
  const refs = storedRefs(r);
  return (id) => (id === r.id ? (r.outputs ?? undefined) : refs !== undefined && Object.hasOwn(refs, id) ? refs[id] : current(id));
}

/** The node's own deletion policy as its record last kept it (records written before it was kept: the record's). */
export function declaredDeletionPolicy(r: NodeRecord): NodeRecord['deletionPolicy'] {
  return snapshotOf(r).deletionPolicy ?? r.deletionPolicy;
}

/**
 * Whether a stored record's snapshot already has this goal digest, these dependencies (those kept
 * too), this declared deletion policy, these referenced outputs (`snapshotRefs`) and these fields not
 * applied (`unappliedToStore`), and a spec (which follows the applied digest, compared by `sameRecord`).
 */
export function sameSnapshot(
  r: NodeRecord,
  goal: string | null,
  edges: StoredEdges,
  deletionPolicy: NodeRecord['deletionPolicy'],
  refs: ReferencedOutputs | undefined,
  unapplied: readonly string[] | undefined,
): boolean {
  const s = snapshotOf(r);
  return (
    s.spec !== undefined &&
    s.goal === goal &&
    sameDeps(s.deps, edges.deps) &&
    sameDeps(s.kept, edges.kept) &&
    declaredDeletionPolicy(r) === deletionPolicy &&
    sameRefs(s.refs, refs) &&
    sameDeps(s.unapplied, unapplied)
  );
}

/**
 * A record as users see it (`status --format json`, the daemon's `/status`): without the internal snapshot
 * and the backend's memo, and with as `appliedDigest` the digest of the goal spec it was applied at alone,
 * as before references were resolved: the spec as resolved (`digestAt`, after the slash) is the runtime's.
 */
export function shownRecord(r: NodeRecord): Omit<NodeRecord, 'snapshot' | 'memo'> {
  const { snapshot: _s, memo: _m, ...shown } = r;
  return r.appliedDigest === null ? shown : { ...shown, appliedDigest: goalDigestOf(r.appliedDigest) };
}

/** Equal in everything `status` and the store show, and in the backend's memo (not `updatedAt`, not the snapshot). */
export function sameRecord(a: NodeRecord, b: NodeRecord): boolean {
  return (
    a.status === b.status &&
    a.appliedDigest === b.appliedDigest &&
    a.managed === b.managed &&
    a.attempts === b.attempts &&
    a.retryAt === b.retryAt &&
    a.reason === b.reason &&
    a.goal === b.goal &&
    a.backendId === b.backendId &&
    a.deletionPolicy === b.deletionPolicy &&
    a.lastFault === b.lastFault &&
    sameOutputs(a.outputs, b.outputs) &&
    sameOutputs(a.memo, b.memo)
  );
}

function sameDeps(a: unknown, b: unknown): boolean {
  const x = (a ?? []) as readonly unknown[];
  const y = (b ?? []) as readonly unknown[];
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Equal outputs, or observation memos: the same keys with equal values, a list or a map compared
 * deep (an output may be any JSON: read again each pass, it is a new object equal to the recorded one).
 */
export function sameOutputs(a: Outputs | ObservationMemo | null, b: Outputs | ObservationMemo | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const x = a[k];
    const y = b[k];
    if (x !== y && (typeof x !== 'object' || x === null || !Object.hasOwn(b, k) || !jsonEqual(x, y))) return false;
  }
  return true;
}

/** The log message for each of `resourcesLetGo` (apply and the daemon). */
export const LET_GO = 'the node names another resource now; the one it managed before is left in place, not deleted';

/**
 * Per node of `graph`: the resource it managed when last applied, where its
 * goal now names another one (a path or a name was changed) and no node of
 * `graph` names the old one (see `NodeSpecCodec.resourceKey`). That resource
 * is let go: left in place, never deleted (prune deprovisions nodes removed
 * from the goals, and this node is not), and watched by nothing from now on,
 * which the caller says. Only records applied at another spec are decoded.
 */
export function resourcesLetGo<S extends NodeSpec>(graph: DesiredGraph<S>, records: Iterable<NodeRecord>, codec: NodeSpecCodec<S>): Map<NodeId, string> {
  const letGo = new Map<NodeId, string>();
  if (codec.resourceKey === undefined) return letGo;
  // Said as people read it (`describeResource`): the key may name the backend by a digest of its identity.
  const said = new Map<NodeId, string>();
  for (const r of records) {
    const node = graph.get(r.id);
    if (node === undefined || !r.managed || r.appliedDigest === null || appliedAtGoal(r, node)) continue;
    const before = removedNode(r, codec);
    const was = before === undefined ? undefined : codec.resourceKey(before.spec);
    const now = codec.resourceKey(node.spec);
    if (was === undefined || now === undefined || was === now) continue;
    letGo.set(r.id, was);
    said.set(r.id, codec.describeResource?.(before!.spec) ?? was);
  }
  for (const id of nodesNaming(graph, letGo, (n) => resourceKeys(codec, n.spec)).keys()) said.delete(id);
  return said;
}

/** The resource keys spec `spec` holds: its own (`resourceKey`) and the one a record written earlier may have for it (`formerKeys`). */
function resourceKeys<S extends NodeSpec>(codec: NodeSpecCodec<S>, spec: S): readonly (string | undefined)[] {
  return [codec.resourceKey?.(spec), codec.formerKeys?.(spec)?.resource];
}

/** For each id of `keys` whose key (`keysOf`) a node of `graph` has: the first such node. Keys are computed for the graph only when there is one to find. */
function nodesNaming<S extends NodeSpec>(graph: DesiredGraph<S>, keys: ReadonlyMap<NodeId, string>, keysOf: (node: DesiredNode<S>) => readonly (string | undefined)[]): Map<NodeId, NodeId> {
  const named = new Map<NodeId, NodeId>();
  if (keys.size === 0) return named;
  const wanted = new Map<string, NodeId[]>();
  for (const [id, key] of keys) wanted.set(key, [...(wanted.get(key) ?? []), id]);
  for (const node of graph.order) {
    for (const key of keysOf(node)) {
      for (const id of key === undefined ? [] : (wanted.get(key) ?? [])) if (!named.has(id)) named.set(id, node.id);
    }
  }
  return named;
}

/** What of the removed records a node of `graph` manages, or may manage (`goalsHolding`): each removed id with that node's id. */
interface HeldByGoals {
  /** By `NodeSpecCodec.resourceKey`: a node whose id changed, its resource the same. */
  readonly claimed: Map<NodeId, NodeId>;
  /**
   * Of the others, by `NodeSpecCodec.sameSpecKey`: a node whose backend and spec are theirs exactly, that
   * the state does not manage yet (new in the revision: the removed one's id changed). One managed already
   * has a resource of its own, which the removed node's is not (nodes of one spec whose commands key
   * their resources on the id: deleting one of them is what prune is for).
   */
  readonly sameSpec: Map<NodeId, NodeId>;
}

/**
 * The removed records whose resource a node of `graph` still manages, or
 * may: deleting them would, or might, delete what the goals declare. Keys
 * are computed for the graph only when a removed record has one.
 */
function goalsHolding<S extends NodeSpec>(graph: DesiredGraph<S>, removed: readonly NodeRecord[], codec: NodeSpecCodec<S>, manages: (id: NodeId) => boolean): HeldByGoals {
  const resources = new Map<NodeId, string>();
  const specs = new Map<NodeId, string>();
  if (codec.resourceKey === undefined && codec.sameSpecKey === undefined) return { claimed: new Map(), sameSpec: new Map() };
  for (const r of removed) {
    const spec = removedNode(r, codec)?.spec;
    const key = spec === undefined ? undefined : codec.resourceKey?.(spec);
    // A resource its backend names is that one, whatever the specs of other nodes.
    const same = spec === undefined || key !== undefined ? undefined : codec.sameSpecKey?.(spec);
    if (key !== undefined) resources.set(r.id, key);
    if (same !== undefined) specs.set(r.id, same);
  }
  return {
    claimed: nodesNaming(graph, resources, (n) => resourceKeys(codec, n.spec)),
    sameSpec: nodesNaming(graph, specs, (n) => (manages(n.id) ? [] : [codec.sameSpecKey?.(n.spec), codec.formerKeys?.(n.spec)?.sameSpec])),
  };
}

/** The log message for each of `RemovedSplit.sameSpec` (apply and the daemon), with the node of the goals as `sameSpecAs`. */
export const SAME_SPEC_KEPT =
  'removed from the goals but not deleted: a node new to the goals has its backend and spec exactly, and may manage the same resource; forgotten, its resource left in place (to delete it, remove it in a change that adds no node of its spec)';

/** Logs a removed node forgotten (apply and the daemon): one whose spec a node of the goals has (`RemovedSplit.sameSpec`) with a warning first. */
export function logOrphaned(log: Logger, r: NodeRecord, split: Pick<RemovedSplit, 'claimed' | 'sameSpec' | 'createCutShort'>): void {
  const sameSpecAs = split.sameSpec.get(r.id);
  if (sameSpecAs !== undefined) log.warn({ node: r.id, backend: r.backendId, sameSpecAs }, SAME_SPEC_KEPT);
  const fields = { node: r.id, backend: r.backendId, managedBy: split.claimed.get(r.id) };
  if (split.createCutShort?.has(r.id) === true) log.warn(fields, ORPHANED_CUT_SHORT);
  else log.info(fields, 'node orphaned: removed from the goals, resource left untouched');
}

/** The log message of a removed node forgotten with its create cut short (`RemovedSplit.createCutShort`), as a warning. */
const ORPHANED_CUT_SHORT = 'node orphaned: removed from the goals with its create cut short; what the create may have made is left untouched';

/** Mass-deletion guard: at most max(5, 10 %) of managed nodes in one revision. */
export function massDeletionLimit(managed: number): number {
  return Math.max(5, Math.floor(managed * 0.1));
}

/** What becomes of the stored nodes a goal revision no longer declares. */
export interface RemovedSplit {
  /** To deprovision, dependents first; when the guard refused, only those the declaration refuses (`splitRemoved`), met as refusals. */
  readonly toDelete: NodeRecord[];
  /** To forget, their resources left untouched. */
  readonly toOrphan: NodeRecord[];
  /** Removed ids whose resource a declared node still manages, each with that node's id. */
  readonly claimed: ReadonlyMap<NodeId, NodeId>;
  /**
   * Removed ids that their goal would delete but whose backend and spec a declared node has exactly
   * (`NodeSpecCodec.sameSpecKey`), each with that node's id: one resource or two, no one can tell,
   * so they are forgotten, not deleted, with a warning (`SAME_SPEC_KEPT`).
   */
  readonly sameSpec: ReadonlyMap<NodeId, NodeId>;
  /**
   * Of `toDelete`, the ids whose resource a node of the goals names (`NodeSpecCodec.namedResources`: a
   * group role in a kept role's `memberOf`), each with that node's id: deleted, it would take from that
   * node what its goal declares, and fail it on every pass after. Not deleted while it is named
   * (`reason`), but kept to delete: once no node names it, it goes as any other.
   */
  readonly namedBy: ReadonlyMap<NodeId, NamedBy>;
  /**
   * Orphaned ids that their goal would delete (prune with `Delete`) but that a policy held when last
   * seen, each with the hold's reason: the hold, not the goal, is why they are not deleted.
   */
  readonly keptByPolicy?: ReadonlyMap<NodeId, string>;
  /**
   * Of `toOrphan`, the ids whose create was cut short (`splitRemoved`): whatever it made, if anything, is left
   * untouched and no longer known to the state, which apply, plan and the daemon say.
   */
  readonly createCutShort?: ReadonlySet<NodeId>;
  /** Set when the mass-deletion guard refused: `nodes` are those it would have deleted, dependents first. */
  readonly refused?: { readonly count: number; readonly limit: number; readonly nodes: NodeRecord[] };
}

/**
 * Splits the records `graph` no longer declares into what to delete and what
 * to orphan, for the one-shot pass and the daemon alike. Deleted are only
 * nodes whose goal prunes (still, where the revision has it) with `Delete`, that the daemon manages or whose
 * create was cut short (`createCutShort`: a crash, its timeout, a shutdown; it may have made the resource,
 * which the read before the delete, told so, finds, `readRemoved`), that no
 * policy held, and whose resource no declared node claims, or may (`RemovedSplit.sameSpec`); the rest are
 * orphaned. An empty goal set deletes nothing: it is far more likely a
 * mistake than an intent. Past `massDeletionLimit`, nothing is deleted unless
 * `allowMassDeletion`; counted against it are only the deletes that would be attempted, not those
 * `refusedByDeclaration` refuses before any call (`byDeclaration`), which are met as refusals all the same.
 */
export function splitRemoved<S extends NodeSpec>(
  graph: DesiredGraph<S>,
  stored: Iterable<NodeRecord>,
  codec: NodeSpecCodec<S>,
  allowMassDeletion: boolean,
  refusedByDeclaration?: (node: DesiredNode<S>) => Fault | undefined,
  createCutShort: (id: NodeId) => boolean = () => false,
): RemovedSplit {
  if (graph.size === 0) return { toDelete: [], toOrphan: [], claimed: new Map(), sameSpec: new Map(), namedBy: new Map() };
  const removed: NodeRecord[] = [];
  const managedIds = new Set<NodeId>();
  for (const r of stored) {
    if (r.managed) managedIds.add(r.id);
    if (!graph.has(r.id) && r.status !== 'orphaned' && r.status !== 'deleted') removed.push(r);
  }
  const managed = managedIds.size;
  // A goal still in the revision decides by its prune now, with the node's own policy as last kept: prune
  // turned off in the revision that removes the node deletes nothing, turned on there deletes a node that
  // said Delete. For a goal removed whole, the record's policy decides (Delete only if it pruned then).
  const deletes = (r: NodeRecord): boolean => {
    const prunes = graph.prunes(r.goal);
    return prunes === undefined ? r.deletionPolicy === 'Delete' : prunes && declaredDeletionPolicy(r) === 'Delete';
  };
  const candidates = removed.filter((r) => (r.managed || createCutShort(r.id)) && !heldByPolicy(r) && deletes(r));
  const { claimed, sameSpec } = goalsHolding(graph, candidates, codec, (id) => managedIds.has(id));
  const toDelete = candidates.filter((r) => !claimed.has(r.id) && !sameSpec.has(r.id));
  const deleting = new Set(toDelete);
  const toOrphan = removed.filter((r) => !deleting.has(r));
  const keptByPolicy = new Map<NodeId, string>();
  for (const r of toOrphan) if (r.managed && heldByPolicy(r) && deletes(r)) keptByPolicy.set(r.id, r.reason!);
  const cutShort = new Set(toOrphan.filter((r) => !r.managed && createCutShort(r.id)).map((r) => r.id));
  const namedBy = namedByGoals(graph, toDelete, codec);
  const limit = massDeletionLimit(managed);
  const all = { toDelete: reverseDependencyOrder(toDelete), toOrphan, claimed, sameSpec, namedBy, keptByPolicy, createCutShort: cutShort };
  // Within the limit however many the declaration refuses: their specs are not decoded to count them.
  if (toDelete.length <= limit || allowMassDeletion) return all;
  const refusedNow = (r: NodeRecord): boolean => {
    const node = removedNode(r, codec);
    return node !== undefined && refusedByDeclaration?.(node) !== undefined;
  };
  const barred = new Set(refusedByDeclaration === undefined ? [] : toDelete.filter(refusedNow));
  const attempted = toDelete.filter((r) => !barred.has(r));
  if (attempted.length <= limit) return all;
  const refused = { count: attempted.length, limit, nodes: reverseDependencyOrder(attempted) };
  return { ...all, toDelete: reverseDependencyOrder([...barred]), refused };
}

/** A removed node a node of the goals names (`RemovedSplit.namedBy`): which one, and why it is not deleted, saying where. */
export interface NamedBy {
  readonly by: NodeId;
  readonly reason: string;
}

/** `RemovedSplit.namedBy`: of `removed`, those whose resource key a node of `graph` names. Names are read from the graph only when a removed record has a key. */
function namedByGoals<S extends NodeSpec>(graph: DesiredGraph<S>, removed: readonly NodeRecord[], codec: NodeSpecCodec<S>): Map<NodeId, NamedBy> {
  const named = new Map<NodeId, NamedBy>();
  if (codec.resourceKey === undefined || codec.namedResources === undefined) return named;
  const keys = new Map<string, NodeId>();
  for (const r of removed) {
    const spec = removedNode(r, codec)?.spec;
    const key = spec === undefined ? undefined : codec.resourceKey(spec);
    if (key !== undefined) keys.set(key, r.id);
  }
  if (keys.size === 0) return named;
  for (const node of graph.order) {
    for (const key of [...codec.namedResources(node.spec), ...(codec.formerKeys?.(node.spec)?.names ?? [])]) {
      const id = keys.get(key);
      if (id === undefined || named.has(id)) continue;
      const reason = `not deleted while ${node.id} (${formatLocation(node.source)}), which names its resource, is in the goals: take the name out of ${node.id}, or remove ${node.id} too`;
      named.set(id, { by: node.id, reason });
    }
  }
  return named;
}

/**
 * The edges removed records are deleted by: each one's stored dependencies among `records`, after
 * any cycle among them is broken, and the cycles that could not be. Edges stored at different times
 * can close a cycle no graph had: a removed role's edge to its group, kept while its delete failed,
 * a later explicit edge from the group to a database, and the database's edge to the role, kept
 * since the role left. Each waiting on another, none would ever be deleted. A cycle is broken at
 * edges kept for nodes that had left the goals (`RecordSnapshot.kept`), none of which the current
 * graph had, one at a time until it is gone (`breakAtKept`); one left among edges the graphs did
 * have is reported (`deleteCycleFault`), not waited on.
 */
export interface DeletionEdges {
  /** Each record's dependencies among the records, but those a cycle was broken at. */
  readonly depsOf: ReadonlyMap<NodeId, readonly NodeId[]>;
  /** For each record, the records that depend on it: what must be gone before it is deleted. */
  readonly dependents: ReadonlyMap<NodeId, readonly NodeId[]>;
  /** Each record on a cycle that is left, with the cycle (its first node again at its end). */
  readonly cycles: ReadonlyMap<NodeId, readonly NodeId[]>;
}

export function deletionEdges(records: Iterable<NodeRecord>): DeletionEdges {
  const stored = new Map<NodeId, StoredEdges>();
  for (const r of records) stored.set(r.id, storedEdges(r));
  const depsOf = new Map<NodeId, NodeId[]>();
  for (const [id, e] of stored) depsOf.set(id, [...new Set(e.deps)].filter((d) => stored.has(d)));
  const next = (id: NodeId): readonly NodeId[] => depsOf.get(id)!;
  const cycles = new Map<NodeId, readonly NodeId[]>();
  for (const component of cyclicComponents(stored.keys(), next).flatMap((c) => breakAtKept(c, stored, depsOf))) {
    // One cycle for all its nodes, from the least id, whatever order the records came in.
    const cycle = cycleThrough(component.reduce((a, b) => (a <= b ? a : b)), new Set(component), next);
    for (const id of component) cycles.set(id, [...cycle, cycle[0]!]);
  }
  const dependents = new Map<NodeId, NodeId[]>();
  for (const [id, deps] of depsOf) {
    for (const d of deps) {
      const list = dependents.get(d);
      if (list === undefined) dependents.set(d, [id]);
      else list.push(id);
    }
  }
  return { depsOf, dependents, cycles };
}

/**
 * Breaks the cycles of `component` (a cyclic component of `depsOf`) at its kept edges, one at a time,
 * the least by (from, to) id first, the components left cyclic found again after each: every kept
 * edge is one an earlier graph had, and each given up beyond those a cycle needs lets a dependency
 * go before its dependent (a role before the database it owns). Returns the components left cyclic,
 * among edges the graphs had. `depsOf` loses the edges given up.
 */
function breakAtKept(component: readonly NodeId[], stored: ReadonlyMap<NodeId, StoredEdges>, depsOf: Map<NodeId, NodeId[]>): NodeId[][] {
  const left: NodeId[][] = [];
  const work = [component];
  while (work.length > 0) {
    const members = new Set(work.pop());
    let least: readonly [NodeId, NodeId] | undefined;
    for (const from of members) {
      const kept = stored.get(from)!.kept ?? [];
      for (const to of depsOf.get(from)!) {
        if (members.has(to) && kept.includes(to) && (least === undefined || from < least[0] || (from === least[0] && to < least[1]))) least = [from, to];
      }
    }
    if (least === undefined) {
      left.push([...members]);
      continue;
    }
    const [from, to] = least;
    depsOf.set(from, depsOf.get(from)!.filter((d) => d !== to));
    work.push(...cyclicComponents(members, (id) => depsOf.get(id)!.filter((d) => members.has(d))));
  }
  return left;
}

/** The fault of a removed node on a cycle `deletionEdges` could not break: reported, as no order deletes it. */
export function deleteCycleFault(cycle: readonly NodeId[]): Fault {
  return fault('permanent', `not deleted: removed nodes depend on each other in a cycle, ${cycle.join(' -> ')}`, {
    code: 'delete-cycle',
    hint: 'declare one of them again with deletionPolicy: Orphan and remove it once more (it is let go, its resource left for you to delete by hand); the others are then deleted in order',
    notTheBackend: 'before-call',
  });
}

/**
 * What keeps a removed record from being deleted now, the one rule of apply, plan and the daemon: a hold
 * of its delete (`deleteHeld`: the fault policy gave up on it, or its read could not tell whether it
 * exists), which only `retry` ends, as for a node of the goals: it is neither read nor sent a delete
 * meanwhile; else a cycle `edges` could not break (it fails with `deleteCycleFault`), else a record that
 * depends on it and is not deleted yet (`left`), which it waits for. Undefined when nothing does. One
 * held waiting for what may come on its own (`waitsOnItsOwn`) is read again, and one held while in the
 * goals is deleted: its removal changed its goal.
 */
export type DeleteBar =
  | { readonly status: 'held'; readonly reason: string }
  | { readonly status: 'cycle'; readonly fault: Fault }
  | { readonly status: 'waits'; readonly waitsFor: NodeId };

export function deleteBar(r: NodeRecord, edges: DeletionEdges, left: (id: NodeId) => boolean): DeleteBar | undefined {
  if (heldOnDelete(r) && !waitsOnItsOwn(r)) return { status: 'held', reason: r.reason ?? 'held' };
  const cycle = edges.cycles.get(r.id);
  if (cycle !== undefined) return { status: 'cycle', fault: deleteCycleFault(cycle) };
  const waitsFor = edges.dependents.get(r.id)?.find((d) => left(d));
  return waitsFor === undefined ? undefined : { status: 'waits', waitsFor };
}

/**
 * `records`, dependents before their dependencies, by `edges` (made of these records, or of a set
 * holding them). A cycle left in `edges` is ordered as met: its nodes are reported, not deleted.
 */
export function reverseDependencyOrder(records: readonly NodeRecord[], edges: DeletionEdges = deletionEdges(records)): NodeRecord[] {
  const byId = new Map(records.map((r) => [r.id, r]));
  const seen = new Set<string>();
  const order: NodeRecord[] = [];
  const visit = (r: NodeRecord): void => {
    if (seen.has(r.id)) return;
    seen.add(r.id);
    for (const d of edges.depsOf.get(r.id) ?? []) {
      const dep = byId.get(d);
      if (dep !== undefined) visit(dep);
    }
    order.push(r);
  };
  for (const r of records) visit(r);
  return order.reverse();
}

/**
 * Runs `turn` for each of `records` (removed records; `edges` made of them or of a set holding them) once
 * the turns of those of `records` that depend on it are over, whatever order they come in: the deletes
 * that wait for no other run side by side (apply's, plan's foresight of them, the daemon's), bounded by
 * what the caller's `turn` waits for. One on a cycle `edges` left waits for none (it fails, sent no
 * delete), and one whose dependent's turn threw does not take its own. Settles once every turn is over,
 * rejected with the first that threw: a caller never goes on beside a delete still running.
 */
export async function inDeleteTurns(records: readonly NodeRecord[], edges: DeletionEdges, turn: (r: NodeRecord) => Promise<void>): Promise<void> {
  const byId = new Map(records.map((r) => [r.id, r]));
  const turns = new Map<NodeId, Promise<void>>();
  let threw: { readonly err: unknown } | undefined;
  const turnOf = (r: NodeRecord): Promise<void> => {
    const known = turns.get(r.id);
    if (known !== undefined) return known;
    // Its dependents' turns never wait on its own: a cycle among them is one `edges` left, whose nodes wait for none.
    const after = edges.cycles.has(r.id) ? [] : (edges.dependents.get(r.id) ?? []).flatMap((d) => (byId.has(d) ? [turnOf(byId.get(d)!)] : []));
    const mine = Promise.all(after)
      .then(() => turn(r))
      .catch((err: unknown) => {
        threw ??= { err };
        throw err;
      });
    turns.set(r.id, mine);
    return mine;
  };
  await Promise.allSettled(records.map(turnOf));
  if (threw !== undefined) throw threw.err;
}

/**
 * What a record keeps as applied for `node` observed against or provisioned at `at`: its goal's spec's
 * digest; where the provisioner resolved references (`ResolvedAt`), after a slash the digest of the
 * spec so resolved, so that the goal it was applied at stays known (`appliedAtGoal`); and after a `#`
 * the managed digest of that spec (`managedAt`), where it is not the last of these: for infrastructure
 * nodes, always (their managed digest names the backend by what it reaches, the goal's by its name).
 */
export function digestAt<S extends NodeSpec>(node: DesiredNode<S>, at: ResolvedAt): string {
  const applied = at.digest === undefined ? node.spec.digest : `${node.spec.digest}/${at.digest}`;
  const managed = managedAt(node, at);
  return managed === (at.digest ?? node.spec.digest) ? applied : `${applied}#${managed}`;
}

/** The managed digest (`NodeSpec.managedDigest`) of the spec `node` was observed against or provisioned at (`at`). */
function managedAt<S extends NodeSpec>(node: DesiredNode<S>, at: ResolvedAt): string {
  return at.digest === undefined ? (node.spec.managedDigest ?? node.spec.digest) : (at.managed ?? at.digest);
}

/** The managed digest a record's applied digest (`digestAt`) keeps: the part after the `#`, else its last digest. */
function managedOf(applied: string): string {
  const hash = applied.indexOf('#');
  if (hash >= 0) return applied.slice(hash + 1);
  return applied.slice(applied.indexOf('/') + 1);
}

/** The digest of the goal spec a record's applied digest (`digestAt`) was applied at: the part before the slash (or the `#`). */
export function goalDigestOf(applied: string): string {
  const end = applied.search(/[/#]/);
  return end < 0 ? applied : applied.slice(0, end);
}

/**
 * Whether `applied` (a record's applied digest) is `digestAt(node, at)`, without making that string:
 * asked of every node at every pass (`Controller.isSteady`).
 */
export function isDigestAt<S extends NodeSpec>(applied: string | null, node: DesiredNode<S>, at: ResolvedAt): boolean {
  if (applied === null || !appliedAtLegacy(applied, node, at, true)) return false;
  const end = at.digest === undefined ? node.spec.digest.length : node.spec.digest.length + 1 + at.digest.length;
  const managed = managedAt(node, at);
  if (managed === (at.digest ?? node.spec.digest)) return applied.length === end;
  return applied.length === end + 1 + managed.length && applied[end] === '#' && applied.endsWith(managed);
}

/**
 * Whether `applied` is what a version before managed digests wrote for `node` at `at`: the goal's
 * digest, and after a slash the resolved spec's where references were resolved (`prefix`: or begins so).
 */
function appliedAtLegacy<S extends NodeSpec>(applied: string, node: DesiredNode<S>, at: ResolvedAt, prefix = false): boolean {
  const goal = node.spec.digest;
  const end = at.digest === undefined ? goal.length : goal.length + 1 + at.digest.length;
  if ((prefix ? applied.length < end : applied.length !== end) || !applied.startsWith(goal)) return false;
  return at.digest === undefined || (applied[goal.length] === '/' && applied.startsWith(at.digest, goal.length + 1));
}

/** Whether `r` was last applied at the node's goal spec, whatever its references resolved to (`digestAt`): the spec its snapshot keeps is that one. */
function appliedAtGoal<S extends NodeSpec>(r: NodeRecord, node: DesiredNode<S>): boolean {
  return r.appliedDigest !== null && goalDigestOf(r.appliedDigest) === node.spec.digest;
}

/**
 * Whether `rec` says the node's resource was last applied at what the spec it
 * was just observed against (`at`: its references resolved, see `ResolvedAt`)
 * asks of it: the same managed digest (`NodeSpec.managedDigest`), whatever
 * else changed since (a read command's argv, a label). Then whatever differs
 * now — a field, or the resource itself gone — is drift (reported; corrected
 * only under selfHeal), not convergence toward a changed goal or a changed
 * output it references; unless one of `diffs` (what the resource was found
 * to differ in, `ignoreFields` left out) is in a field whose goal edit an
 * `ignoreFields` entry since dropped kept from being applied
 * (`RecordSnapshot.unapplied`): that edit is applied, as a goal change is.
 * A record written before the managed digest was kept
 * (or before the resolved spec's, holding the goal's alone) is judged as it
 * was then (a difference is drift, never an update the old version would not
 * have made) until it is next applied or found in sync, which writes the
 * digests of now.
 */
export function appliedAtSpec<S extends NodeSpec>(rec: NodeRecord | undefined, node: DesiredNode<S>, at: ResolvedAt, diffs: readonly FieldDiff[] = []): boolean {
  const applied = rec?.appliedDigest ?? null;
  if (applied === null) return false;
  if (managedOf(applied) !== managedAt(node, at) && !appliedAtLegacy(applied, node, at) && applied !== node.spec.digest) return false;
  const unapplied = snapshotOf(rec!).unapplied;
  return unapplied === undefined || !diffs.some((d) => ignoredBy(d.path, unapplied));
}

/**
 * What a provisioner was handed `node` at, as `ResolvedAt` says it: `spec` the spec it got
 * (`OperationContext.appliedAt`), the goal's own where no reference was resolved.
 */
export function handedAt<S extends NodeSpec>(node: DesiredNode<S>, spec: NodeSpec): ResolvedAt {
  return spec.digest === node.spec.digest ? {} : { digest: spec.digest, managed: spec.managedDigest };
}
