import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from 'pino';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { MemoryBackend, memoryConfigSchema } from '../../src/backends/memory/index.ts';
import { BackendRegistry, InfraNodeProvisioner, InfraSpecFactory, infraSpecCodec } from '../../src/infra/index.ts';
import type { InfraBackend, InfraDesiredNodeSpec, InfraNode } from '../../src/infra/index.ts';
import { Controller } from '../../src/runtime/controller.ts';
import type { ControllerOptions } from '../../src/runtime/controller.ts';
import { FakeClock, GoalCompiler, SqliteStateStore, formatDiagnostic, parseGoalText } from '../../src/runtime/index.ts';
import type { DesiredGraph, FaultPolicy, FieldDiff, NodeGate, NodeId, NodeProvisioner, Observation, OperationContext, ProvisionResult, StateStore } from '../../src/runtime/index.ts';

/** A JSON log line as pino writes it. */
export type LogLine = Record<string, unknown> & { msg: string; level: number };

/** A pino logger whose lines land in an array. */
export function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  // sync: a line is in the array as soon as the call returns.
  return { log: pino({ level: 'debug' }, pino.multistream([{ level: 'debug', stream }])), lines };
}

/** Compiles goal YAML (one text, possibly several documents) the way `load.ts` does, without touching the disk. */
export function compileYaml(text: string): { graph: DesiredGraph<InfraDesiredNodeSpec>; gates: ReadonlyMap<NodeId, NodeGate> } {
  const { documents, diagnostics } = parseGoalText('goals/test.yaml', text);
  const factory = new InfraSpecFactory({ registry: new BackendRegistry(builtinBackendFactories) });
  const result = new GoalCompiler({ factory }).compile(documents, diagnostics);
  if (result.graph === undefined) throw new Error(`goals do not compile:\n${result.diagnostics.map(formatDiagnostic).join('\n')}`);
  return { graph: result.graph, gates: result.gates };
}

/** A Backend document for the memory backend named `mem`. */
export const MEM_BACKEND = `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: mem }
spec: { type: memory }
`;

/** One Goal document over the `mem` backend; `nodes` is the YAML of `spec.nodes` items, indented by 4. */
export function goalYaml(nodes: string, options: { name?: string; selfHeal?: boolean; prune?: boolean } = {}): string {
  return `${MEM_BACKEND}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: ${options.name ?? 'app'} }
spec:
  selfHeal: ${options.selfHeal ?? true}
  prune: ${options.prune ?? false}
  defaults: { backend: mem }
  nodes:
${nodes}`;
}

/** A `generic.resource`-free, backend-agnostic node: a `local.file` spec (the memory backend holds any type). */
export function fileNode(id: string, content: string, extra: { dependsOn?: string[]; deletionPolicy?: 'Delete' | 'Orphan'; ignoreFields?: string[]; mode?: string; interval?: string } = {}): string {
  const lines = [`    - id: ${id}`, '      type: local.file'];
  if (extra.interval !== undefined) lines.push(`      interval: ${extra.interval}`);
  if (extra.dependsOn !== undefined) lines.push(`      dependsOn: [${extra.dependsOn.join(', ')}]`);
  if (extra.deletionPolicy !== undefined) lines.push(`      deletionPolicy: ${extra.deletionPolicy}`);
  if (extra.ignoreFields !== undefined) lines.push(`      ignoreFields: [${extra.ignoreFields.join(', ')}]`);
  lines.push(`      spec: { path: ${id}.txt, content: ${JSON.stringify(content)}, mode: "${extra.mode ?? '0644'}" }`);
  return `${lines.join('\n')}\n`;
}

/**
 * Counts what reaches the backend, per node, on the way through the real
 * dispatcher (an observer, not a stand-in: every call is delegated).
 */
export class CountingProvisioner implements NodeProvisioner<InfraDesiredNodeSpec> {
  readonly observed: NodeId[] = [];
  readonly created: NodeId[] = [];
  readonly updated: NodeId[] = [];
  readonly deleted: NodeId[] = [];
  private readonly inner: InfraNodeProvisioner;
  constructor(inner: InfraNodeProvisioner) {
    this.inner = inner;
  }
  observe(nodes: readonly InfraNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>> {
    this.observed.push(...nodes.map((n) => n.id));
    return this.inner.observe(nodes, ctx);
  }
  create(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    this.created.push(node.id);
    return this.inner.create(node, ctx);
  }
  update(node: InfraNode, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult> {
    this.updated.push(node.id);
    return this.inner.update(node, diffs, ctx);
  }
  delete(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    this.deleted.push(node.id);
    return this.inner.delete(node, ctx);
  }
  reset(): void {
    for (const a of [this.observed, this.created, this.updated, this.deleted]) a.length = 0;
  }
}

export interface Harness {
  readonly dir: string;
  readonly clock: FakeClock;
  readonly store: SqliteStateStore;
  readonly backend: MemoryBackend;
  readonly calls: CountingProvisioner;
  readonly controller: Controller<InfraDesiredNodeSpec>;
  readonly lines: LogLine[];
  /** Moves simulated time forward in steps, letting the controller drain after each. */
  advance(ms: number, stepMs?: number): Promise<void>;
  /** Lets queued work finish. */
  settle(): Promise<void>;
  /** Stops the controller, closes the store, removes the temp dir. */
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly memory?: Record<string, unknown>;
  readonly faultPolicy?: FaultPolicy;
  readonly intervalMs?: number;
  readonly rng?: () => number;
  readonly dir?: string;
  readonly backend?: MemoryBackend;
  /** Puts a fake backend in front of the memory backend (for answers it never gives, such as `indeterminate`). */
  readonly wrap?: (backend: MemoryBackend) => InfraBackend;
  readonly extra?: Partial<ControllerOptions<InfraDesiredNodeSpec>>;
  /** What the controller is given instead of the store itself (to watch its calls). */
  readonly wrapStore?: (store: SqliteStateStore) => StateStore;
}

/** A Controller over a MemoryBackend (through InfraNodeProvisioner) and a SqliteStateStore in a temp dir, on a FakeClock. */
export function harness(options: HarnessOptions = {}): Harness {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'ds-controller-'));
  const clock = new FakeClock();
  const { log, lines } = capturingLogger();
  const store = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false, clock });
  const backend = options.backend ?? new MemoryBackend(memoryConfigSchema().parse(options.memory ?? {}), { id: 'mem', log });
  const calls = new CountingProvisioner(new InfraNodeProvisioner({ backends: new Map([['mem', options.wrap?.(backend) ?? backend]]) }));
  const controller = new Controller<InfraDesiredNodeSpec>({
    provisioner: calls,
    store: options.wrapStore?.(store) ?? store,
    log,
    codec: infraSpecCodec,
    clock,
    // Mid-range jitter: delays are exactly the computed caps' halves and intervals exact.
    rng: options.rng ?? (() => 0.5),
    intervalMs: options.intervalMs ?? 60_000,
    ...(options.faultPolicy === undefined ? {} : { faultPolicy: options.faultPolicy }),
    watch: (nodes, onChange) => backend.watch(nodes, onChange, log),
    ...options.extra,
  });
  controller.start();
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      await clock.advanceAsync(0);
      await controller.whenIdle();
    }
  };
  return {
    dir,
    clock,
    store,
    backend,
    calls,
    controller,
    lines,
    settle,
    async advance(ms, stepMs = 1000) {
      for (let t = 0; t < ms; t += stepMs) {
        await clock.advanceAsync(Math.min(stepMs, ms - t));
        await settle();
      }
    },
    async close() {
      await controller.stop(0);
      store.close();
      if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `b` seen through an InfraBackend of another `type`, with `overrides` in
 * place of some of its calls; the others pass through to `b`.
 */
export function wrapMemory(b: MemoryBackend, type: string, overrides: Partial<Pick<InfraBackend, 'observe' | 'create' | 'update' | 'delete'>>): InfraBackend {
  return {
    id: b.id,
    type,
    observe: (nodes, ctx) => b.observe(nodes, ctx),
    create: (n, ctx) => b.create(n, ctx),
    update: (n, d, ctx) => b.update(n, d, ctx),
    delete: (n, ctx) => b.delete(n, ctx),
    close: () => b.close(),
    ...overrides,
  };
}
