/**
 * The brand that makes a value a runtime `NodeSpec`. Only a domain's wrapper
 * constructor (for infrastructure: `desiredNodeSpec()` in src/infra) sets it,
 * so a bare domain spec cannot be put on a `DesiredNode` by accident.
 */
export const NODE_SPEC: unique symbol = Symbol.for('desiredstate.NodeSpec');

/**
 * What the runtime knows of a node's spec: that it was built by a domain's
 * wrapper (the brand), its type name and a stable digest of its content.
 * Everything else is opaque to the runtime and handled by the provisioner.
 */
export interface NodeSpec {
  readonly [NODE_SPEC]: true;
  /** The type name, for example `local.file`. */
  readonly type: string;
  /** Which provisioner instance handles the node (for breakers and batching). */
  readonly backendId: string;
  /** A stable digest of the spec's content (secret values excluded), to notice goal changes. */
  readonly digest: string;
  /**
   * A digest of what the spec says the resource is and is to be, leaving out what only says how it
   * is provisioned (a command's argv, labels no backend applies) and naming its backend by what it
   * reaches rather than by its name (infra: `InfraDesiredNodeSpec.backendKey`): a node applied at a spec with the
   * same one is applied at what its goal asks, so what differs is drift, never convergence toward a
   * changed goal. Absent: `digest`, every field counts.
   */
  readonly managedDigest?: string | undefined;
}

/** Node ids: `[a-z0-9][a-z0-9._-]*`, unique across a goal set. */
export type NodeId = string;

export const NODE_ID_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;

/** Where something was declared, for error messages (`file:line:col`). */
export interface SourceLocation {
  readonly file: string;
  /** 1-based; 0 when the location is the whole file or directory (line and column then mean nothing). */
  readonly line: number;
  readonly col: number;
}

/** `file:line:col`, or only `file` for a whole file or directory (line 0). */
export function formatLocation(loc: SourceLocation): string {
  return loc.line === 0 ? loc.file : `${loc.file}:${loc.line}:${loc.col}`;
}

export type DeletionPolicy = 'Orphan' | 'Delete';

/** The daemon's default time between two observations of a node (`run --interval`, a node's `interval`). */
export const DEFAULT_INTERVAL_MS = 60_000;

/** Per-node reconcile settings, resolved from the goal and the node. */
export interface NodeSettings {
  /** Correct drift (true) or only report it (false). */
  readonly selfHeal: boolean;
  /** Deprovision the node when it is removed from the goals (goal's `prune`). */
  readonly prune: boolean;
  readonly deletionPolicy: DeletionPolicy;
  /** Spec paths whose drift is neither reported nor corrected. */
  readonly ignoreFields: readonly string[];
  /** Re-observe interval override in milliseconds. */
  readonly intervalMs?: number | undefined;
  /**
   * Why the node's backend can never correct its drift (an exec resource without an update command):
   * its drift is then only reported, whatever `selfHeal` says. A resource deleted out of band is still
   * made again under `selfHeal`: that is a create.
   */
  readonly cannotUpdate?: string | undefined;
}

/** Whether drift of a resource that exists (not a deleted one) is corrected: `selfHeal`, and the backend can. */
export function correctsDrift(settings: NodeSettings): boolean {
  return settings.selfHeal && settings.cannotUpdate === undefined;
}

/** Why drift of a resource that exists is only reported (see `correctsDrift`). */
export function reportOnlyReason(settings: NodeSettings): string {
  return settings.selfHeal && settings.cannotUpdate !== undefined ? settings.cannotUpdate : 'selfHeal: false';
}

/** An edge of the graph: `from` depends on `to`. */
export interface Dependency {
  readonly on: NodeId;
  /** Where the edge was declared (a `dependsOn` entry, a `${nodes...}` reference, or the field that implies it). */
  readonly source: SourceLocation;
  readonly implicit: boolean;
  /**
   * Why the domain implies the edge (see `NodeSpecFactory.impliedEdges`), for a cycle it closes; absent for one
   * the goal writes (a `dependsOn` or a reference), which is how an implied edge is told from those.
   */
  readonly why?: string | undefined;
}

/** One node of the desired graph. `S` must be a branded NodeSpec. */
export interface DesiredNode<S extends NodeSpec = NodeSpec> {
  readonly id: NodeId;
  readonly goal: string;
  readonly spec: S;
  readonly dependsOn: readonly Dependency[];
  readonly settings: NodeSettings;
  readonly source: SourceLocation;
}

/** Turns a domain spec into JSON for the state store and back (to delete a node no longer in the goals). */
export interface NodeSpecCodec<S extends NodeSpec> {
  encode(spec: S): unknown;
  decode(json: unknown): S | undefined;
  /**
   * Optional: a key naming the real resource a spec manages (for example its
   * backend, kind and identifying fields), or undefined when it cannot say.
   * Two specs with one key manage one resource: a node removed from the goals
   * whose resource a node of the goals still manages (its id was changed) is
   * let go, never deleted.
   */
  resourceKey?(spec: S): string | undefined;
  /**
   * Optional: the keys (as `resourceKey` writes them) of the other resources a spec names, and so
   * needs (a role's groups, an owner): a node removed from the goals whose resource a node of the
   * goals names is not deleted while it does (`RemovedSplit.namedBy`).
   */
  namedResources?(spec: S): readonly string[];
  /**
   * Optional: where nothing but a spec and the node's id tells its resource
   * from another (an exec command is handed both, and may key the resource
   * on its input alone, or on the id), a key of the spec (with its backend);
   * undefined otherwise. Unlike `resourceKey`, two specs with one key may
   * manage one resource or two, so it is never a conflict, and a node whose
   * key changed still manages its own. But a node removed from the goals
   * whose key a node of the goals has is let go, never deleted: its delete
   * may destroy what that node manages (see `splitRemoved`).
   */
  sameSpecKey?(spec: S): string | undefined;
  /**
   * Optional: the keys a record written earlier may have for what a spec of the goals manages, names
   * and is (`resourceKey`, `namedResources`, `sameSpecKey` as they were then), where they are not its
   * own: a removed record keyed so is held by that node as by its own keys, never deleted for the mismatch.
   */
  formerKeys?(spec: S): { readonly resource?: string | undefined; readonly names?: readonly string[]; readonly sameSpec?: string | undefined } | undefined;
  /** Optional: `resourceKey` as people read it (in plans and logs), where the key itself is not. */
  describeResource?(spec: S): string | undefined;
}
