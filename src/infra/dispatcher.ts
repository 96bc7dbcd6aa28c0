import { DELETE_OUTPUTS_UNKNOWN, fault, forEachKeyedLimit, formatPath, hasReferences, jsonEqual, OUTPUT_UNKNOWN, OUTPUTS_MISSING, resolveReferences, suggestion, toFault } from '../runtime/index.ts';
import type { Fault, FieldDiff, NodeId, NodeProvisioner, Observation, OperationContext, OutputValue, ProvisionResult, ReferencedOutputs, ResolvedAt, UnknownOutput, UpdateRequest } from '../runtime/index.ts';
import type { BackendUpdate, InfraBackend } from './backend.ts';
import { resolvedNodeSpec } from './desired.ts';
import type { InfraDesiredNodeSpec, InfraNode } from './desired.ts';
import { checkResolvedSpec } from './resolved-spec.ts';
import { SECRET_MASK } from './secret.ts';
import { secretFields } from './spec.ts';
import type { InfraNodeSpec } from './spec.ts';

/**
 * The runtime's only view of infrastructure: dispatches each node to the
 * backend registered under its `backendId`, resolves `${nodes…}` references
 * first (and checks the resolved spec against its type: no backend sees one
 * the type refuses), turns anything thrown into a classified fault, and
 * masks secrets in every diff that leaves it.
 */
export class InfraNodeProvisioner implements NodeProvisioner<InfraDesiredNodeSpec> {
  private backends: ReadonlyMap<string, InfraBackend>;
  private declared: DeclaredBackends | undefined;

  constructor(options: { backends: ReadonlyMap<string, InfraBackend>; declared?: DeclaredBackends | undefined }) {
    this.backends = options.backends;
    this.declared = options.declared;
  }

  /** What the backends now reach (a goal revision loaded): a removed node is deleted only through the one it was applied at. Returns what it replaces. */
  declare(declared: DeclaredBackends | undefined): DeclaredBackends | undefined {
    const old = this.declared;
    this.declared = declared;
    return old;
  }

  /** Swaps the backend instances (a goal revision changed the Backend documents); returns the old ones to close. */
  replaceBackends(backends: ReadonlyMap<string, InfraBackend>): ReadonlyMap<string, InfraBackend> {
    const old = this.backends;
    this.backends = backends;
    return old;
  }

  backend(id: string): InfraBackend | undefined {
    return this.backends.get(id);
  }

  async observe(nodes: readonly InfraNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>> {
    const out = new Map<NodeId, Observation>();
    const groups = new Map<string, InfraNode[]>();
    for (const node of nodes) {
      const resolved = this.resolve(this.reachedThrough(node), ctx);
      if ('fault' in resolved) {
        out.set(node.id, { status: 'failed', fault: resolved.fault });
        continue;
      }
      let g = groups.get(resolved.node.spec.backendId);
      if (g === undefined) groups.set(resolved.node.spec.backendId, (g = []));
      g.push(resolved.node);
    }
    await Promise.all(
      [...groups].map(async ([backendId, group]) => {
        const backend = this.backends.get(backendId);
        if (backend === undefined) {
          for (const n of group) out.set(n.id, { status: 'failed', fault: notCalled('permanent', `backend "${backendId}" is not configured`) });
          return;
        }
        try {
          const observed = await backend.observe(group, forBackend(ctx, backendId));
          for (const n of group) {
            const obs = observed.get(n.id) ?? { status: 'failed', fault: fault('unknown', `backend "${backendId}" returned no observation`) };
            const masked = obs.status === 'drifted' ? { ...obs, diffs: maskDiffs(n.spec.spec, obs.diffs) } : obs;
            out.set(n.id, resolvedAt(masked, n));
          }
        } catch (err) {
          const f = toFault(err);
          for (const n of group) out.set(n.id, { status: 'failed', fault: f });
        }
      }),
    );
    return out;
  }

  create(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    return this.call(node, ctx, (b, n, c) => b.create(n, c));
  }

  /**
   * Creates a level's nodes with one `createMany` call per backend that
   * offers it (and has more than one node to create); every other node gets
   * its own `create`, at most `concurrency` at a time.
   */
  createMany(nodes: readonly InfraNode[], ctx: OperationContext, concurrency: number): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    return this.many(
      nodes.map((node) => ({ node, diffs: [] })),
      ctx,
      concurrency,
      (backend, c) => backend.createMany && ((items) => backend.createMany!(items.map((i) => i.node), c)),
      (item) => this.create(item.node, ctx),
    );
  }

  update(node: InfraNode, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult> {
    return this.call(node, ctx, (b, n, c) => b.update(n, diffs, c));
  }

  /** `createMany`'s batching for updates: one `updateMany` call per backend that offers it. */
  updateMany(items: readonly UpdateRequest<InfraDesiredNodeSpec>[], ctx: OperationContext, concurrency: number): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    return this.many(
      items,
      ctx,
      concurrency,
      (backend, c) => backend.updateMany && ((group) => backend.updateMany!(group, c)),
      (item) => this.update(item.node, item.diffs, ctx),
    );
  }

  /**
   * Groups the items by backend; a backend with a batch call (`batchOf`)
   * and more than one item gets them in one call (references resolved
   * first), every other item its own `single` call, at most `concurrency`
   * at a time. One result per item; a batch that throws fails its items.
   */
  private async many(
    items: readonly BackendUpdate[],
    ctx: OperationContext,
    concurrency: number,
    batchOf: (backend: InfraBackend, ctx: OperationContext) => BatchCall | undefined,
    single: (item: BackendUpdate) => Promise<ProvisionResult>,
  ): Promise<ReadonlyMap<NodeId, ProvisionResult>> {
    const out = new Map<NodeId, ProvisionResult>();
    const batches = new Map<InfraBackend, Batch>();
    const singles: BackendUpdate[] = [];
    // Asked once per backend (with its own logger), not per item.
    const calls = new Map<InfraBackend, BatchCall | undefined>();
    const callOf = (backend: InfraBackend): BatchCall | undefined => {
      if (!calls.has(backend)) calls.set(backend, batchOf(backend, forBackend(ctx, backend.id)));
      return calls.get(backend);
    };
    for (const item of items) {
      const backend = this.backends.get(item.node.spec.backendId);
      const call = backend && callOf(backend);
      if (backend === undefined || call === undefined) {
        singles.push(item);
        continue;
      }
      const resolved = this.resolve(item.node, ctx);
      if ('fault' in resolved) {
        out.set(item.node.id, { status: 'failed', fault: resolved.fault });
        continue;
      }
      let b = batches.get(backend);
      if (b === undefined) batches.set(backend, (b = { call, group: [] }));
      b.group.push({ node: resolved.node, diffs: item.diffs });
    }
    const failAll = (group: readonly BackendUpdate[], f: Fault): void => {
      for (const i of group) out.set(i.node.id, { status: 'failed', fault: f });
    };
    const batch = async ([backend, { call, group }]: [InfraBackend, Batch]): Promise<void> => {
      if (ctx.signal.aborted) return failAll(group, notCalled('transient', 'operation aborted before it started'));
      try {
        const done = await call(group);
        for (const i of group) {
          const r = done.get(i.node.id) ?? { status: 'failed', fault: fault('unknown', `backend "${backend.id}" returned no result`) };
          out.set(i.node.id, resolvedAt(r, i.node));
        }
      } catch (err) {
        failAll(group, toFault(err));
      }
    };
    // A batch of one is an ordinary call (with the original, unresolved node: `single` resolves it).
    const unbatched = [...batches].filter(([, b]) => b.group.length === 1);
    for (const [backend] of unbatched) batches.delete(backend);
    const byId = new Map(items.map((i) => [i.node.id, i]));
    singles.push(...unbatched.map(([, b]) => byId.get(b.group[0]!.node.id)!));
    // Changes that would wait for each other's turn in their backend wait here instead, as one of `concurrency`.
    const keys = await Promise.all(singles.map((i) => this.serialKey(i.node, ctx)));
    await Promise.all([
      ...[...batches].map(batch),
      forEachKeyedLimit(singles, concurrency, (_, i) => keys[i], async (i) => {
        out.set(i.node.id, await single(i));
      }),
    ]);
    return out;
  }

  /** A node removed from the goals: its references read what `ctx` gives them, and nothing comes by waiting (`undeletableFault`). */
  delete(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    return this.call(node, ctx, (b, n, c) => b.delete(n, c), true);
  }

  /** The backend's `serialKey` for the node as it is sent; undefined where it would fail before any call. */
  async serialKey(node: InfraNode, ctx: OperationContext): Promise<string | undefined> {
    // Most backends name none: no resolution of the node's references to learn it.
    if (this.backends.get(this.reachedThrough(node).spec.backendId)?.serialKey === undefined) return undefined;
    const ready = this.beforeCall(node, ctx, false);
    if ('fault' in ready) return undefined;
    try {
      return await ready.backend.serialKey!(ready.node);
    } catch {
      // No turn to take: the operation itself meets, and reports, what the backend could not name.
      return undefined;
    }
  }

  /** What `delete` fails the node with before calling its backend, by `delete`'s own checks (`beforeCall`). */
  refusedDelete(node: InfraNode, ctx: OperationContext): Promise<Fault | undefined> {
    const ready = this.beforeCall(node, ctx, true);
    return Promise.resolve('fault' in ready ? ready.fault : undefined);
  }

  /**
   * What `delete` fails the node with for how its backend is declared now (`movedFault`), or as `declared`
   * says: a daemon judges a revision's deletes before it declares the revision's backends.
   */
  refusedByDeclaration(node: InfraNode, declared = this.declared): Fault | undefined {
    return movedFault(node, declared);
  }

  private async call(
    node: InfraNode,
    ctx: OperationContext,
    op: (backend: InfraBackend, node: InfraNode, ctx: OperationContext) => Promise<ProvisionResult>,
    deleting = false,
  ): Promise<ProvisionResult> {
    const ready = this.beforeCall(node, ctx, deleting);
    if ('fault' in ready) return { status: 'failed', fault: ready.fault };
    try {
      if (ctx.signal.aborted) return { status: 'failed', fault: notCalled('transient', 'operation aborted before it started') };
      const result = await op(ready.backend, ready.node, forBackend(ctx, ready.node.spec.backendId));
      return resolvedAt(result, ready.node);
    } catch (err) {
      return { status: 'failed', fault: toFault(err) };
    }
  }

  /** The node's backend and the node as it is sent (`resolve`), or the fault it fails with before any call. */
  private beforeCall(node: InfraNode, ctx: OperationContext, deleting: boolean): { backend: InfraBackend; node: InfraNode } | { fault: Fault } {
    const sent = this.reachedThrough(node);
    const backend = this.backends.get(sent.spec.backendId);
    if (backend === undefined) return { fault: deleting ? undeclaredFault(node) : notCalled('permanent', `backend "${node.spec.backendId}" is not configured`) };
    const moved = deleting ? movedFault(sent, this.declared) : undefined;
    if (moved !== undefined) return { fault: moved };
    const resolved = this.resolve(sent, ctx, deleting);
    return 'fault' in resolved ? resolved : { backend, node: resolved.node };
  }

  /**
   * A node as it is sent (a removed one observed and deleted): to the backend it was applied at,
   * or, that name declared no more (the Backend renamed in the change that removed the node), to one
   * declared now with the identity it was applied at (`InfraDesiredNodeSpec.backendKey`): the same place
   * under another name.
   */
  private reachedThrough(node: InfraNode): InfraNode {
    const { backendId, backendKey } = node.spec;
    if (this.backends.has(backendId) || backendKey === backendId || this.declared === undefined) return node;
    const keys = this.declared.keys;
    const now = Object.keys(keys).find((id) => keys[id] === backendKey && this.backends.has(id));
    return now === undefined ? node : { ...node, spec: { ...node.spec, backendId: now } };
  }

  /**
   * The node with `${nodes.<id>.outputs.<key>}` replaced and checked
   * against its type's schema; a transient fault while an output is
   * missing (its node has given no outputs yet), a permanent one when its
   * node gave outputs without the key, or when the resolved spec is not one
   * the type allows (the backend is never called with it). `deleting`: any
   * output without a value is a permanent fault (`undeletableFault`).
   */
  private resolve(node: InfraNode, ctx: OperationContext, deleting = false): { node: InfraNode } | { fault: Fault } {
    if (!hasReferencesCached(node.spec.spec)) return { node };
    // The same outputs resolve to the same node object (or the same fault): backends cache work per spec
    // object (content hashes, fingerprints), and a pass resolves a node for observe and again to provision it.
    const cached = resolvedCache.get(node);
    // A list or map output is read anew each pass: equal, not the same object.
    if (cached !== undefined && cached.used.every(([id, key, v]) => jsonEqual(ctx.outputsOf(id)?.[key], v))) return cached.result;
    const { value, missing, unknown, used, references, embedded } = resolveReferences(node.spec.spec, ctx.outputsOf);
    if (deleting && unknown.length + missing.length > 0) return { fault: undeletableFault(node, used.filter(([, , v]) => v === undefined || v === null)) };
    // Not cached: the producer's next outputs may have the key.
    if (unknown.length > 0) return { fault: unknownOutputFault(node.id, unknown) };
    if (missing.length > 0) {
      return { fault: notCalled('transient', `waiting for outputs ${[...new Set(missing)].join(', ')}`, { code: OUTPUTS_MISSING }) };
    }
    const checked = checkResolvedSpec(node.id, value, references, embedded);
    const result = 'fault' in checked ? { fault: { ...checked.fault, notTheBackend: 'before-call' as const } } : { node: resolvedTo(node, checked.spec, used) };
    resolvedCache.set(node, { used, result });
    return result;
  }
}

/**
 * Per node as `resolve` made it: the digest of its resolved spec and the values it was resolved with
 * (`ResolvedAt`), for what the backend answers of it. Kept with the resolved node, so that every call
 * path says it the same way and a node without references (sent as it is) has none.
 */
const resolutions = new WeakMap<InfraNode, ResolvedAt>();

/** `node` with its spec resolved to `spec` from the (node, key, value) triples `used`, its resolution noted (`resolutions`). */
function resolvedTo(node: InfraNode, spec: InfraNodeSpec, used: readonly (readonly [NodeId, string, OutputValue | undefined])[]): InfraNode {
  const resolved = { ...node, spec: resolvedNodeSpec(node.spec, spec) };
  const at = { digest: resolved.spec.digest, managed: resolved.spec.managedDigest };
  resolutions.set(resolved, used.length === 0 ? at : { ...at, refs: referencedValues(used) });
  return resolved;
}

/**
 * The values a resolution read, per node and key (`ResolvedAt.refs`): every one has a value, else the
 * node was not resolved. Built once per resolution (`resolvedCache`), not on every observation.
 */
function referencedValues(used: readonly (readonly [NodeId, string, OutputValue | undefined])[]): ReferencedOutputs {
  const read = new Map<NodeId, [string, OutputValue][]>();
  for (const [id, key, value] of used) {
    const values = read.get(id);
    if (values === undefined) read.set(id, [[key, value!]]);
    else values.push([key, value!]);
  }
  // From entries: an id or a key may be `__proto__` or `constructor`, kept as its own property.
  return Object.fromEntries([...read].map(([id, values]) => [id, Object.fromEntries(values)]));
}

/**
 * The backend's observation or result of `sent`, the node as the backend got it: where `resolve` made
 * it, with the digest of the spec it was made at and the values it was resolved with (`ResolvedAt`).
 */
function resolvedAt<T extends Observation | ProvisionResult>(r: T, sent: InfraNode): T {
  const at = resolutions.get(sent);
  return at === undefined || r.status === 'failed' || r.status === 'indeterminate' ? r : { ...r, ...at };
}

/**
 * A fault of the dispatcher's own, raised before any backend call (`Fault.notTheBackend`: `before-call`):
 * a circuit breaker, which guards a backend that fails, does not count it.
 */
function notCalled(cls: Fault['class'], message: string, extra: Omit<Fault, 'class' | 'message' | 'notTheBackend'> = {}): Fault {
  return fault(cls, message, { ...extra, notTheBackend: 'before-call' });
}

/** How many of a producer's output keys a fault lists: an exec command may print hundreds. */
const LISTED_KEYS = 20;

/**
 * The fault of a node with references to keys their producer's outputs lack, as Terraform says of an
 * attribute a resource does not have: the producer gave its outputs, so waiting changes nothing until
 * the goal or the producer does. Permanent (held once its budget is spent), and raised before any call.
 */
function unknownOutputFault(id: NodeId, unknown: readonly UnknownOutput[]): Fault {
  const problems = unknown.map((r) => {
    const listed = r.keys.slice(0, LISTED_KEYS).join(', ') + (r.keys.length > LISTED_KEYS ? ` … (${r.keys.length - LISTED_KEYS} more)` : '');
    const has = r.keys.length === 0 ? 'it gives no outputs' : `it gives: ${listed}`;
    return `${formatPath(['spec', ...r.path])}: \${nodes.${r.node}.outputs.${r.key}}: node "${r.node}" gives no output "${r.key}" (${has})${suggestion(r.key, r.keys)}`;
  });
  const producers = [...new Set(unknown.map((r) => r.node))];
  return notCalled('permanent', `node "${id}": ${[...new Set(problems)].join('; ')}`, {
    code: OUTPUT_UNKNOWN,
    hint: `fix the reference, or have ${producers.map((p) => `node "${p}"`).join(', ')} output the key (an exec command prints it, as null until it has a value); then run \`desiredstate retry ${id}\` (a change of the goal releases it too)`,
  });
}

/**
 * The fault of a removed node whose references (each a node and key) have no value in the state: none
 * kept with its record (one written before they were kept) and none held now by the nodes they name
 * (forgotten, or without the key). Nothing comes by waiting, and no value is guessed: deleting with
 * another than the one it was made with could delete something else. Permanent, with the ways out.
 */
function undeletableFault(node: InfraNode, unresolved: readonly (readonly [NodeId, string, unknown])[]): Fault {
  const named = [...new Set(unresolved.map(([id, key]) => `\${nodes.${id}.outputs.${key}}`))].join(', ');
  const producers = [...new Set(unresolved.map(([id]) => id))];
  const nodes = `${producers.length === 1 ? 'node' : 'nodes'} ${producers.map((id) => `"${id}"`).join(', ')}`;
  return notCalled(
    'permanent',
    `node "${node.id}" on backend "${node.spec.backendId}" cannot be deleted: the state keeps no value for ${named}, which its spec references ` +
      `(none kept with its record, written before they were, and ${nodes} forgotten since or without that output): ` +
      `declare ${nodes} again (apply records the outputs), or delete the resource by hand and apply once with prune: false on goal "${node.goal}" to forget node "${node.id}"`,
    { code: DELETE_OUTPUTS_UNKNOWN },
  );
}

/**
 * The fault of a removed node whose backend is declared no more, by its name or (`reachedThrough`) by
 * the identity it was applied at: no backend is known to reach its resource. Permanent, with the ways out.
 */
function undeclaredFault(node: InfraNode): Fault {
  const id = node.spec.backendId;
  return notCalled('permanent', `backend "${id}" is not configured`, {
    hint: `declare backend "${id}" again as it was when node "${node.id}" was applied and apply to delete the resource, or delete it by hand and apply once with prune: false on goal "${node.goal}" to forget node "${node.id}"`,
  });
}

/**
 * What the backends of the goals loaded reach, for the deletes of removed nodes: per backend id its
 * identity (`BackendRegistry.identityKey`) and where it now points, said to people (`root /srv/app`);
 * and `changed`, those declared otherwise than the state last recorded (the CLI's `changedBackends`).
 */
export interface DeclaredBackends {
  readonly keys: Readonly<Record<string, string>>;
  readonly at: Readonly<Record<string, string | undefined>>;
  readonly changed: ReadonlySet<string>;
  /** Where each identity known points (by `identityKey`), these and those goals were applied at before: where a refused delete's resource is. */
  readonly places: Readonly<Record<string, string>>;
}

/** The code of `movedFault`. */
export const DELETE_BACKEND_MOVED = 'delete-backend-moved';

/**
 * The fault of a removed node whose backend now reaches other resources than the one it was applied
 * at (another root, cwd or server under the same name, or the implied `local` taking the name of a
 * Backend removed): its delete would act on a resource at the same name there, one it never made, and
 * leave its own. Permanent, raised before any call, on every pass while the backend points elsewhere;
 * a condition of the declaration, not a fault of the resource (`byDeclaration`): it spends no retry
 * budget and never holds the node, which is deleted once the backend is declared as it was. The
 * record keeps the identity it was applied at (`InfraDesiredNodeSpec.backendKey`, stored with its
 * spec). A record written before it was stored (its key its backend's name) is judged by `changed`,
 * the state's record of the declarations last applied or loaded: refused while that still says the
 * backend changed, deleted as before once it no longer does (a daemon records the declarations it
 * loads at once; apply only once every node reached them, which a refused delete keeps from happening).
 * A backend merely renamed has the identity it had: its nodes are deleted.
 */
function movedFault(node: InfraNode, declared: DeclaredBackends | undefined): Fault | undefined {
  const id = node.spec.backendId;
  const now = declared?.keys[id];
  if (declared === undefined || now === undefined) return undefined;
  const kept = node.spec.backendKey !== id;
  if (kept ? node.spec.backendKey === now : !declared.changed.has(id)) return undefined;
  const at = declared.at[id];
  const was = kept ? declared.places[node.spec.backendKey] : undefined;
  return fault(
    'permanent',
    `node "${node.id}" on backend "${id}" cannot be deleted: backend "${id}" now points elsewhere${at === undefined ? '' : ` (${at})`} than when the node was applied${was === undefined ? '' : ` (${was})`}: ` +
      `its resource is where the backend pointed then, and a delete now would act on another one in its place`,
    {
      code: DELETE_BACKEND_MOVED,
      hint: `declare backend "${id}" as it was when the node was applied and apply to delete the resource there, or delete it by hand and apply once with prune: false on goal "${node.goal}" to forget node "${node.id}"`,
      notTheBackend: 'declaration',
    },
  );
}

/**
 * `ctx` as a backend instance gets it: its logger names the instance (`backend`, the Backend
 * document's name), so that a backend's own lines about a node (`operation failed`, `observe failed`)
 * say which server or root they are about, as the runtime's lines about the node do.
 */
function forBackend(ctx: OperationContext, backendId: string): OperationContext {
  return { ...ctx, log: ctx.log.child({ backend: backendId }) };
}

type BatchCall = (group: BackendUpdate[]) => Promise<ReadonlyMap<NodeId, ProvisionResult>>;
/** One backend's share of a batch: its batch call and the items (references resolved) it gets. */
interface Batch {
  readonly call: BatchCall;
  readonly group: BackendUpdate[];
}

/** Per graph node: its resolved form (or why it has none) and the output values it was resolved with. */
const resolvedCache = new WeakMap<InfraNode, { readonly used: readonly (readonly [NodeId, string, OutputValue | undefined])[]; readonly result: { node: InfraNode } | { fault: Fault } }>();

const referenceCache = new WeakMap<object, boolean>();

/** Whether a (frozen) spec holds `${…}` references, computed once per spec object: this is on every observation's path. */
function hasReferencesCached(spec: InfraNodeSpec): boolean {
  let has = referenceCache.get(spec);
  if (has === undefined) referenceCache.set(spec, (has = hasReferences(spec)));
  return has;
}

/** Secret fields never leave as values: only the fact that they differ (and why, a rotation). */
export function maskDiffs(spec: InfraNodeSpec, diffs: readonly FieldDiff[]): FieldDiff[] {
  const secret = secretFields[spec.type] ?? [];
  return diffs.map((d) =>
    secret.some((f) => d.path === f || d.path.startsWith(`${f}.`)) ? { path: d.path, desired: SECRET_MASK, actual: SECRET_MASK, masked: true, ...(d.cause === undefined ? {} : { cause: d.cause }) } : d,
  );
}
