import type { Logger } from 'pino';
import type { z } from 'zod';
import type { FieldDiff, NodeId, Observation, OperationContext, Outputs, ProvisionResult } from '../runtime/index.ts';
import type { InfraNode } from './desired.ts';
import type { InfraNodeSpec, InfraNodeType } from './spec.ts';

/** A node as a backend sees it: references to other nodes' outputs already resolved. */
export type BackendNode = InfraNode;

/** The health of a backend instance, for `desiredstate backends` and /readyz. */
export type BackendHealth = { readonly status: 'healthy' } | { readonly status: 'unhealthy'; readonly message: string };

/** Called by a backend that noticed a change to what it manages (for example a file event). */
export type ChangeListener = (nodeIds: readonly NodeId[]) => void;

/**
 * One configured backend instance (HOW). Every method is blocking and
 * idempotent, takes the operation context (AbortSignal, logger), and may
 * throw a `FaultError` to report a classified failure; anything else thrown
 * is an `unknown` fault. "Already exists" on create is success.
 */
export interface InfraBackend {
  /** The instance id (the Backend document's metadata.name). */
  readonly id: string;
  /** The implementation (`local`, `memory`, `postgres` …). */
  readonly type: string;
  /** Observes many nodes at once; one entry per node. Batching backends make one query per kind. */
  observe(nodes: readonly BackendNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>>;
  /**
   * Creates the resource; resolves with its outputs and, optionally, a memo
   * of what it made, which its next observation is handed (see
   * `ObservationMemo`; without one the node's memo is cleared).
   */
  create(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult>;
  /**
   * Optional batch create, for backends that can make many resources in one
   * round trip (one SQL transaction for 1,000 roles). Same contract as
   * `create` for each node; one entry per node given. A backend falls back
   * to one create per node itself when the batch as a whole fails, so each
   * node gets its own result.
   */
  createMany?(nodes: readonly BackendNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, ProvisionResult>>;
  /** Corrects the fields in `diffs` (and anything else that differs); resolves as `create` does (outputs, optional memo). */
  update(node: BackendNode, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult>;
  /**
   * Optional batch update (one transaction for 100 `ALTER ROLE`s, one
   * filesystem flush for 1,000 rewritten files). Same contract as `update`
   * for each node; one entry per node given.
   */
  updateMany?(items: readonly BackendUpdate[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, ProvisionResult>>;
  /** Deletes the resource; absent is success. */
  delete(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult>;
  /** Optional: what the node's changes rewrite that others' may too, which the backend runs one after another (`NodeProvisioner.serialKey`). */
  serialKey?(node: BackendNode): Promise<string | undefined>;
  /** Cheap reachability check. */
  health?(ctx: { signal: AbortSignal; log: Logger }): Promise<BackendHealth>;
  /**
   * Starts watching the given nodes' resources; returns a function that stops watching. The daemon
   * gives every node of the instance in the goals, anew with each graph and before observing any of
   * them (the previous watch stopped first; none when none is left), which a backend may take as the
   * nodes it manages now; `apply` watches nothing.
   */
  watch?(nodes: readonly BackendNode[], onChange: ChangeListener, log: Logger): () => void;
  /** Releases connections and watchers. */
  close(): Promise<void>;
}

/** One update of a batch, as a backend receives it (references resolved). */
export interface BackendUpdate {
  readonly node: BackendNode;
  readonly diffs: readonly FieldDiff[];
}

/** What a backend implementation gets at construction. */
export interface BackendContext {
  readonly id: string;
  /** Directory relative paths resolve against (the working directory). */
  readonly cwd: string;
  readonly log: Logger;
  /** The state directory, for backends that keep files of their own. */
  readonly stateDir: string;
  readonly env: NodeJS.ProcessEnv;
}

/** Per kind, the output keys its resources have, or `'any'` for open-ended outputs. */
export type OutputDeclarations = { readonly [K in InfraNodeType]?: readonly string[] | 'any' };

/** A problem with one node's spec that only its backend can see (a field it needs or refuses). */
export interface SpecIssue {
  /** Path inside the node's `spec`, for example `['commands']`. */
  readonly path: readonly (string | number)[];
  readonly message: string;
  /** The diagnostic's code, where the backend has a more precise one than `unsupported-spec` (the code of the fault it would raise). */
  readonly code?: string | undefined;
  /** `warning` for what may still work (the filesystem decides); an error otherwise. */
  readonly severity?: 'warning' | undefined;
}

/** A node as `BackendFactory.relations` sees it: its id and its spec (references left in place). */
export interface ImpliedDependencyNode {
  readonly id: NodeId;
  readonly spec: InfraNodeSpec;
}

/** One backend instance's nodes, as `BackendFactory.conflictsAcross` is given them. */
export interface BackendNodes<C> {
  readonly backend: string;
  readonly config: C;
  readonly nodes: readonly ImpliedDependencyNode[];
}

/** An edge a backend implies: `from` depends on `on` (see `BackendFactory.relations`). */
export interface ImpliedDependency {
  readonly from: NodeId;
  readonly on: NodeId;
  readonly why: string;
  readonly path: readonly string[];
}

/**
 * Two nodes of one instance that reach one resource by different names (see
 * `BackendFactory.relations`): `node`, and `other`, declared before it.
 */
export interface SharedResource {
  readonly node: NodeId;
  /** What `node` manages and how it gets there, in words: `path current/app.conf, which is releases/v2/app.conf through symlink node "current"`. */
  readonly what: string;
  readonly other: NodeId;
  /** The same of `other`. */
  readonly otherWhat: string;
  /** The field of `node`'s spec that names it, where the error points. */
  readonly path: readonly string[];
}

/**
 * A node of one instance that others of it, or its own spec, leave no way to make (local: a file where
 * another node's path needs a directory; a symlink whose target leads round a loop of symlinks), which
 * `resourceKey` cannot see (see `BackendFactory.relations`): a compile error at `node`.
 */
export interface NodeConflict {
  readonly node: NodeId;
  /** The diagnostic's code (`path-conflict`, `symlink-loop`). */
  readonly code: string;
  /** Why, in words, naming `other` where there is one: `its path x/y lies inside x, which node "parent" manages as a file`. */
  readonly message: string;
  /** The node it conflicts with, whose place in the goals the error names; none when its own spec is the whole story. */
  readonly other?: NodeId | undefined;
  /** The field of `node`'s spec the error points at, and of `other`'s spec the place it names. */
  readonly path: readonly string[];
}

/** What a backend sees among the nodes of one instance, without I/O (`BackendFactory.relations`). */
export interface NodeRelations {
  /**
   * Orderings the resources themselves imply (a file inside a directory
   * another node manages is made after it, and deleted before it): each
   * becomes an implicit edge, `from` depending on `on`. `why` says so in
   * words; `path` is the field of `from`'s spec that implies it, where a
   * cycle diagnostic points.
   */
  readonly implied: readonly ImpliedDependency[];
  /**
   * Nodes that reach one resource by different names, which `resourceKey`
   * cannot see (local: a file under a managed symlink, and the same file
   * under the link's target): each pair is a compile error, as two nodes
   * with one key are.
   */
  readonly shared: readonly SharedResource[];
  /** Nodes that cannot be made as the goals have them (see `NodeConflict`): each a compile error. */
  readonly conflicts?: readonly NodeConflict[] | undefined;
}

/**
 * A backend implementation, registered by type. Its static half (`kinds`,
 * `configSchema`) is enough to validate goals without connecting. Its
 * compile-time checks (`checkSpec`, `cannotDelete`, `cannotUpdate`,
 * `resourceKey`, `relations`, `placeOf`) see a spec as its goal writes it,
 * `${nodes…}` references in place: a whole one (`isWholeReference`) even
 * where the type takes a number, a list or a map, whose value, checked
 * against the type, comes only at run time.
 */
export interface BackendFactory<C = unknown> {
  readonly type: string;
  /** The node types this implementation can provision. */
  readonly kinds: readonly InfraNodeType[];
  /** Validates the Backend document's `spec.config`. */
  readonly configSchema: z.ZodType<C>;
  /**
   * Checks a node's spec against what this implementation needs, at compile
   * time, without I/O. Each issue becomes a goal error; absent means any
   * valid spec of a supported kind is fine.
   */
  checkSpec?(spec: InfraNodeSpec, config: C, where?: { readonly cwd: string }): readonly SpecIssue[];
  /**
   * Why this implementation can never delete a node of this spec (a playbook
   * cannot be un-run; a resource without a delete command), without I/O;
   * undefined when it can. A node that says `deletionPolicy: Delete` is then
   * a goal error: removed under prune, its delete would fail on every pass.
   */
  cannotDelete?(spec: InfraNodeSpec, config: C): string | undefined;
  /**
   * Why this implementation can never correct drift of a node of this spec (a resource without an
   * update command), without I/O; undefined when it can. Its drift is then only reported, and said so
   * by plan, the drift report and status, rather than an update that fails and holds the node.
   */
  cannotUpdate?(spec: InfraNodeSpec, config: C): string | undefined;
  /**
   * Why `ignoreFields` can match none of this implementation's drift, in words after "reports drift"
   * (ansible: one diff per changed task, never a field of the spec); undefined where each diff's path
   * is a spec field. An entry on one of its nodes is then a goal error, not a silence that never comes.
   */
  readonly driftNotByField?: string;
  /**
   * What names the real resource a node manages within one instance of this
   * backend, in words (`path conf/app.toml`, `role app`), without I/O: two
   * nodes of one instance with the same key are a compile error, as each
   * would undo the other's work on every pass; and a node removed from the
   * goals whose key a node of the goals still has (its id was changed) is let
   * go, never deleted (the key is kept with the node's stored spec, as
   * `InfraDesiredNodeSpec.resource`). Undefined when the kind has none; a
   * key whose `path` holds a `${nodes…}` reference (not known before
   * running) is dropped by the compiler, whatever the backend says.
   * `path` is the spec field that names it, where the error points.
   */
  resourceKey?(spec: InfraNodeSpec, config: C): { readonly key: string; readonly path: readonly string[] } | undefined;
  /**
   * The other resources of this instance a spec names, and so needs while it is in the goals (a
   * role's groups, a database's owner), each keyed as `resourceKey` keys that resource, whether or
   * not a node of the goals manages it: a node removed from the goals whose resource a node of the
   * goals names is not deleted while it does (kept with the node as `InfraDesiredNodeSpec.names`).
   * A key that holds a `${nodes…}` reference is dropped by the compiler.
   */
  namedResources?(spec: InfraNodeSpec, config: C): readonly string[];
  /**
   * Set where nothing but a node's spec and its id tells its resource from
   * another, and `resourceKey` names none (exec: a command is handed the id
   * and the input, and may key the resource on either). A node removed from
   * the goals whose stored spec a node of the goals on the same backend has
   * exactly may then manage that node's resource (its id was changed): it is
   * let go, never deleted (`InfraDesiredNodeSpec.sameSpec`). Two such nodes
   * in the goals are no error, as they may as well manage two resources.
   */
  readonly identifiedBySpecAndId?: boolean;
  /**
   * The spec fields (besides `type`) that `checkSpec`, `cannotDelete` and
   * `resourceKey` read. Declared, those three also run on a spec with errors
   * in other fields, given `type` and these fields only, so that a bad `mode`
   * does not hide a path that escapes the root or a second node on one path:
   * every problem at once. They do not run when one of these fields has an
   * error itself. Undeclared, they run on valid specs only.
   * (test/infra/spec-fields.test.ts holds each declaration to what they read.)
   */
  readonly specFields?: readonly string[];
  /**
   * The config fields that `checkSpec`, `cannotDelete`, `resourceKey`,
   * `relations`, `conflictsAcross` and `placeOf` read (`[]`: none). Declared, they also run for
   * the nodes of a Backend document with errors, given a config of these
   * fields alone (each parsed on its own, its default in place), so that a
   * bad or misspelt `rereadEvery` does not hide a path that escapes the root,
   * or a second node on one path, until it is fixed: every problem at once.
   * They do not run when one of these fields has an error itself, or is
   * absent where an unknown key may stand for it. Undeclared, they run under
   * a valid config only. (test/infra/spec-fields.test.ts holds each
   * declaration to what they read.)
   */
  readonly configFields?: readonly string[];
  /**
   * What the resources of one instance of this backend imply among its
   * nodes, without I/O: the orderings (implicit edges), the resources two
   * nodes reach by different names and the nodes that cannot be made as
   * written (see `NodeRelations`). One call, so that
   * what both read (the local backend: each path, through the links the
   * goals manage) is worked out once. Given every built node of the
   * instance (of every instance of this type with one `location`: two local
   * backends with one root are one namespace), and the working directory
   * where it is known.
   */
  relations?(nodes: readonly ImpliedDependencyNode[], config: C, where?: { readonly cwd: string }): NodeRelations;
  /**
   * The nodes that cannot be made as the goals have them for a node of another instance of this type
   * whose place holds theirs, or lies in it (local: roots one inside the other, `out` and `out/sub`),
   * which no one instance's `relations` sees; without I/O. Given every instance of the type, each with
   * its nodes, where the working directory is known (places compare resolved). Each conflict's `other`
   * is a node of another instance, and its message names both backends.
   */
  conflictsAcross?(instances: readonly BackendNodes<C>[], where: { readonly cwd: string }): readonly NodeConflict[];
  /**
   * The output keys this implementation gives each kind's resources: what a
   * `${nodes.<id>.outputs.<key>}` may read, checked at compile time.
   * `'any'` where they are open-ended (a user's script prints them). A kind
   * left out, or no declaration at all, accepts any key.
   */
  readonly outputs?: OutputDeclarations;
  /**
   * Where an instance acts, when its config names a place relative to the
   * working directory (local's `root`): the place resolved, without I/O. The
   * same config from another directory acts on other resources, which is a
   * backend declared otherwise (its nodes are goal changes: what is missing
   * there is created, not reported as deleted). Undefined: the config alone
   * says where.
   */
  location?(config: C, where: { readonly cwd: string }): string;
  /**
   * What of an instance's config names the resources it acts on, without I/O (local: its root
   * resolved; postgres: the server; exec: the commands' working directory), as plain JSON; the rest
   * says how it acts (timeouts, output limits, the environment passed on). Another identity is a
   * backend declared otherwise: its nodes are changed goals, converged whatever `selfHeal` says. An
   * edit of the rest alone is none: what differs from a node's goal then is drift, handled as its
   * `selfHeal` says. Undefined: the whole config and `location`, as a backend that does not say
   * cannot tell one from the other.
   */
  identity?(config: C, where: { readonly cwd: string }): unknown;
  /**
   * Where a node's resource lives, absolute, without I/O, where instances
   * of this type can reach one resource (local: the file's path under the
   * root resolved, so that two backends whose roots overlap, `out` and
   * `out/sub`, are seen writing one file): two nodes of two instances with
   * one place are a compile error, as two of one instance with one
   * `resourceKey` are. Undefined when there is none or it is not known
   * before running.
   */
  placeOf?(spec: InfraNodeSpec, config: C, where: { readonly cwd: string }): string | undefined;
  /** Builds an instance. Must not do I/O that can fail slowly; connect lazily. */
  create(config: C, ctx: BackendContext): InfraBackend;
  /** Short description, for `desiredstate schema` and `backends`. */
  readonly description: string;
}

export type { Outputs };
