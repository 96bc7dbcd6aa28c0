import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { INFRA_NODE_TYPES, specSchemas } from '../../infra/index.ts';
import type { BackendContext, BackendHealth, BackendNode, ChangeListener, InfraBackend, InfraNodeSpec, OutputDeclarations } from '../../infra/index.ts';
import { FaultError, fault, lazyRecord, seededRng, stableStringify } from '../../runtime/index.ts';
import type { FieldDiff, NodeId, Observation, OperationContext, Outputs, ProvisionResult } from '../../runtime/index.ts';
import type { MemoryConfig, MemoryOp } from './config.ts';
import { FaultInjector } from './faults.ts';
import { diffFields } from './observe.ts';

/** One resource held by the memory backend. */
export interface MemoryResource {
  readonly type: InfraNodeSpec['type'];
  readonly spec: InfraNodeSpec;
  readonly outputs: Outputs;
}

interface Stored extends MemoryResource {
  /** Canonical JSON of `spec`: equal strings mean equal specs, so observe diffs only on a mismatch. */
  readonly fingerprint: string;
}

/** Counters of calls that reached the backend, faulted ones included. */
export type MemoryCallCounts = { readonly [K in MemoryOp]: number };

/**
 * Canonical JSON per spec object. Graph nodes are frozen and reused from
 * pass to pass, so the cost is paid once per spec, not once per observe.
 */
const fingerprints = new WeakMap<object, string>();

function fingerprintOf(spec: InfraNodeSpec): string {
  let f = fingerprints.get(spec);
  if (f === undefined) {
    f = stableStringify(spec);
    fingerprints.set(spec, f);
  }
  return f;
}

/** The spec fields a resource's outputs copy, where its kind has them (both `MEMORY_OUTPUTS` and `outputsFor` read this list). */
const COPIED_SPEC_FIELDS = ['name', 'path'] as const;

/** The keys `outputsFor` gives each kind: the node id and type, and the spec's `name` and `path` where it has them. */
export const MEMORY_OUTPUTS: OutputDeclarations = lazyRecord(
  Object.fromEntries(INFRA_NODE_TYPES.map((t) => [t, () => ['id', 'type', ...COPIED_SPEC_FIELDS.filter((f) => Object.hasOwn(specSchemas[t].shape, f))]])),
);

/** A resource's outputs: its node id and type, and the copied spec fields it has. */
export function outputsFor(id: NodeId, spec: InfraNodeSpec): Outputs {
  const out: Record<string, string> = { id, type: spec.type };
  const fields: Readonly<Record<string, unknown>> = spec;
  for (const f of COPIED_SPEC_FIELDS) if (typeof fields[f] === 'string') out[f] = fields[f];
  return out;
}

/**
 * An in-process backend for every node type: resources live in a Map. For
 * the runtime's own tests and for benchmarks, with seeded fault injection,
 * latency, and helpers to change the world behind the reconciler's back.
 */
export class MemoryBackend implements InfraBackend {
  readonly id: string;
  readonly type = 'memory';
  private readonly counts: { -readonly [K in MemoryOp]: number } = { observe: 0, create: 0, update: 0, delete: 0 };
  private observed = 0;

  private readonly resources = new Map<NodeId, Stored>();
  private readonly createCounts = new Map<NodeId, number>();
  private readonly listeners = new Set<{ readonly ids: ReadonlySet<NodeId>; readonly onChange: ChangeListener }>();
  private readonly injector: FaultInjector;
  private readonly random: () => number;
  private readonly latency: MemoryConfig['latencyMs'];
  private readonly log: Logger;

  constructor(config: MemoryConfig, ctx: Pick<BackendContext, 'id' | 'log'>) {
    this.id = ctx.id;
    this.log = ctx.log;
    this.latency = config.latencyMs;
    this.random = seededRng(config.seed);
    this.injector = new FaultInjector(config.faults, seededRng(config.seed ^ 0x5bd1e995));
  }

  /** Compares each stored spec with the desired one: canonical JSON first, field by field only when they differ. */
  async observe(nodes: readonly BackendNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>> {
    this.counts.observe++;
    this.observed += nodes.length;
    await this.delay(ctx.signal);
    const checkFaults = this.injector.targets('observe');
    const out = new Map<NodeId, Observation>();
    for (const node of nodes) {
      if (checkFaults) {
        const f = this.injector.next('observe', node.id);
        if (f !== undefined) {
          out.set(node.id, { status: 'failed', fault: f });
          continue;
        }
      }
      const stored = this.resources.get(node.id);
      if (stored === undefined) {
        out.set(node.id, { status: 'absent' });
        continue;
      }
      const desired = node.spec.spec;
      if (stored.fingerprint === fingerprintOf(desired)) {
        out.set(node.id, { status: 'upToDate', outputs: stored.outputs });
        continue;
      }
      const diffs = diffFields(desired, stored.spec);
      // Different JSON but no differing field (for example key order in a tampered spec): equal.
      out.set(node.id, diffs.length === 0 ? { status: 'upToDate', outputs: stored.outputs } : { status: 'drifted', diffs, outputs: stored.outputs });
    }
    return out;
  }

  /** Stores the desired spec; an existing resource is overwritten (already exists is success). */
  async create(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult> {
    await this.enter('create', node, ctx);
    const outputs = this.store(node.id, node.spec.spec);
    this.createCounts.set(node.id, (this.createCounts.get(node.id) ?? 0) + 1);
    this.log.debug({ node: node.id }, 'memory resource created');
    return { status: 'done', outputs };
  }

  /** Stores the desired spec over an existing resource; a vanished one is a transient `not-found` fault. */
  async update(node: BackendNode, _diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult> {
    await this.enter('update', node, ctx);
    if (!this.resources.has(node.id)) {
      throw new FaultError(fault('transient', `memory resource ${node.id} vanished before update`, { code: 'not-found' }));
    }
    const outputs = this.store(node.id, node.spec.spec);
    this.log.debug({ node: node.id }, 'memory resource updated');
    return { status: 'done', outputs };
  }

  /** Removes the resource; absent is success. */
  async delete(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult> {
    await this.enter('delete', node, ctx);
    this.resources.delete(node.id);
    return { status: 'done', outputs: {} };
  }

  /** Always healthy: nothing to reach. */
  health(_ctx: { signal: AbortSignal; log: Logger }): Promise<BackendHealth> {
    return Promise.resolve({ status: 'healthy' });
  }

  /** Reports out-of-band changes made through `tamper` and `remove`. */
  watch(nodes: readonly BackendNode[], onChange: ChangeListener, _log: Logger): () => void {
    const entry = { ids: new Set(nodes.map((n) => n.id)), onChange };
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  /** Stops all watches. */
  close(): Promise<void> {
    this.listeners.clear();
    return Promise.resolve();
  }

  // ---- test and benchmark helpers ----

  /** Calls per operation that reached the backend, faulted ones included (observe counts batches). */
  get calls(): MemoryCallCounts {
    return this.counts;
  }

  /** Nodes handed to observe so far, over all its batches (faulted ones included). */
  get observedNodes(): number {
    return this.observed;
  }

  /** Shallow-merges `patch` into a stored spec behind the reconciler's back. Throws if the node is not stored. */
  tamper(nodeId: NodeId, patch: Readonly<Record<string, unknown>>): void {
    const stored = this.resources.get(nodeId);
    if (stored === undefined) throw new Error(`memory backend holds no resource for node "${nodeId}"`);
    const spec = Object.freeze({ ...stored.spec, ...patch }) as InfraNodeSpec;
    this.resources.set(nodeId, { ...stored, spec, fingerprint: stableStringify(spec) });
    this.notify(nodeId);
  }

  /** Deletes a resource behind the reconciler's back; true when one was there. */
  remove(nodeId: NodeId): boolean {
    const had = this.resources.delete(nodeId);
    if (had) this.notify(nodeId);
    return had;
  }

  /** Stores nodes as if created, without counting calls or injecting faults (to seed benchmarks). */
  preload(nodes: readonly BackendNode[]): void {
    for (const node of nodes) this.store(node.id, node.spec.spec);
  }

  /** A copy of everything stored. */
  snapshot(): ReadonlyMap<NodeId, MemoryResource> {
    return new Map([...this.resources].map(([id, r]) => [id, { type: r.type, spec: r.spec, outputs: r.outputs }]));
  }

  /** How many create calls succeeded for the node (more than one means a duplicate creation). */
  createCount(nodeId: NodeId): number {
    return this.createCounts.get(nodeId) ?? 0;
  }

  /** Resets the call counters and the per-node create counts. */
  resetCounters(): void {
    for (const op of Object.keys(this.counts) as MemoryOp[]) this.counts[op] = 0;
    this.observed = 0;
    this.createCounts.clear();
  }

  // ---- internals ----

  private store(id: NodeId, spec: InfraNodeSpec): Outputs {
    const outputs = Object.freeze(outputsFor(id, spec));
    this.resources.set(id, { type: spec.type, spec, outputs, fingerprint: fingerprintOf(spec) });
    return outputs;
  }

  /** Counts the call, waits the configured latency, honours the signal, then injects a fault if a rule fires. */
  private async enter(op: Exclude<MemoryOp, 'observe'>, node: BackendNode, ctx: OperationContext): Promise<void> {
    this.counts[op]++;
    await this.delay(ctx.signal);
    if (ctx.signal.aborted) throw new FaultError(fault('transient', `${op} aborted`, { code: 'aborted' }));
    const f = this.injector.next(op, node.id);
    if (f !== undefined) throw new FaultError(f);
  }

  private async delay(signal: AbortSignal): Promise<void> {
    const ms = typeof this.latency === 'number' ? this.latency : this.latency.min + this.random() * (this.latency.max - this.latency.min);
    if (ms <= 0) return;
    try {
      await sleep(ms, undefined, { signal });
    } catch (cause) {
      throw new FaultError(fault('transient', 'operation aborted', { code: 'aborted' }), { cause });
    }
  }

  private notify(nodeId: NodeId): void {
    for (const l of this.listeners) if (l.ids.has(nodeId)) l.onChange([nodeId]);
  }
}
