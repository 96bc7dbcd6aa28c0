import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend, memoryConfigSchema } from '../../src/backends/memory/index.ts';
import { InfraNodeProvisioner, infraSpecCodec } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec, InfraNode } from '../../src/infra/index.ts';
import { deleteHeld, GONE_ALREADY, Reconciler, releaseStoredNode, SqliteStateStore } from '../../src/runtime/index.ts';
import type { FieldDiff, NodeGate, NodeId, NodeProvisioner, Observation, ObservationMemo, OperationContext, ProvisionResult } from '../../src/runtime/index.ts';
import { capturingLogger, compileYaml, fileNode, goalYaml } from '../support/controller-harness.ts';
import type { LogLine } from '../support/controller-harness.ts';
import { counted } from '../support/store-commits.ts';

interface Setup {
  readonly path: string;
  readonly sqlite: SqliteStateStore;
  readonly store: ReturnType<typeof counted>;
  readonly backend: MemoryBackend;
  readonly reconciler: Reconciler<InfraDesiredNodeSpec>;
  readonly lines: LogLine[];
}

const dirs: string[] = [];
const stores: SqliteStateStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** What a test wants to see or do as calls reach the dispatcher. */
interface Hooks {
  /** Before a create, update or delete reaches the backend. */
  readonly beforeCall?: (node: InfraNode, op: 'create' | 'update' | 'delete') => void;
  /** Before an observation reaches the backend. */
  readonly beforeObserve?: (nodes: readonly InfraNode[]) => void;
  /** What the reconciler is given in place of the hooked dispatcher (to change its answers). */
  readonly wrap?: (inner: NodeProvisioner<InfraDesiredNodeSpec>) => NodeProvisioner<InfraDesiredNodeSpec>;
}

/** The real dispatcher, with the test's hooks in front. */
class Hooked implements NodeProvisioner<InfraDesiredNodeSpec> {
  readonly #inner: NodeProvisioner<InfraDesiredNodeSpec>;
  readonly #hooks: Hooks;
  constructor(inner: NodeProvisioner<InfraDesiredNodeSpec>, hooks: Hooks) {
    this.#inner = inner;
    this.#hooks = hooks;
  }
  observe(nodes: readonly InfraNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>> {
    this.#hooks.beforeObserve?.(nodes);
    return this.#inner.observe(nodes, ctx);
  }
  create(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    this.#hooks.beforeCall?.(node, 'create');
    return this.#inner.create(node, ctx);
  }
  update(node: InfraNode, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult> {
    this.#hooks.beforeCall?.(node, 'update');
    return this.#inner.update(node, diffs, ctx);
  }
  delete(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    this.#hooks.beforeCall?.(node, 'delete');
    return this.#inner.delete(node, ctx);
  }
}

/** A Reconciler over the memory backend and a SQLite store in a temp dir. */
function setup(hooks: Hooks = {}, now: () => number = Date.now, memory: Record<string, unknown> = {}): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'ds-reconciler-'));
  dirs.push(dir);
  const path = join(dir, 'state.db');
  const { log, lines } = capturingLogger();
  const sqlite = SqliteStateStore.open({ path, lock: false });
  stores.push(sqlite);
  const store = counted(sqlite);
  const backend = new MemoryBackend(memoryConfigSchema().parse(memory), { id: 'mem', log });
  const hooked = new Hooked(new InfraNodeProvisioner({ backends: new Map([['mem', backend]]) }), hooks);
  const provisioner = hooks.wrap?.(hooked) ?? hooked;
  const reconciler = new Reconciler<InfraDesiredNodeSpec>({ provisioner, store: store.store, log, codec: infraSpecCodec, now });
  return { path, sqlite, store, backend, reconciler, lines };
}

/** Drift reports stored, read through a connection of its own. */
function driftOnDisk(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM drift').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Operations not finished, as `node:op`, read through a connection of its own (what a crash would leave). */
function pendingOnDisk(path: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare("SELECT node || ':' || op AS o FROM operations WHERE finished_at IS NULL ORDER BY node").all() as { o: string }[]).map((r) => r.o);
  } finally {
    db.close();
  }
}

// a and c on the first dependency level, b (on a) on the second.
const abc = compileYaml(goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }) + fileNode('c', 'C'))).graph;
const pass = { signal: AbortSignal.timeout(30_000), allowDeletions: true };

describe('Reconciler: store writes per pass', () => {
  it('commits once before each level that calls the backend and once at the end, never outside a transaction', async () => {
    const s = setup();
    const converge = await s.reconciler.apply(abc, pass);
    expect(converge.summary).toMatchObject({ created: 3 });
    expect(s.store.commits()).toBe(3);

    s.store.reset();
    const steady = await s.reconciler.apply(abc, pass);
    expect(steady.summary).toMatchObject({ created: 0, updated: 0, unchanged: 3 });
    expect(s.store.commits()).toBe(1); // the run, written with its summary

    s.backend.tamper('a', { content: 'evil' });
    s.backend.tamper('c', { content: 'evil' });
    s.store.reset();
    const repair = await s.reconciler.apply(abc, pass);
    expect(repair.summary).toMatchObject({ updated: 2, unchanged: 1 });
    expect(s.store.commits()).toBe(2); // drift reports with the pending operations, then the rest
    expect(s.sqlite.listDrift().map((d) => d.node).sort()).toEqual(['a', 'c']);
    // The same line as the daemon's: one per drifted node, with every field of the report.
    const drift = s.lines.filter((l) => l.msg === 'drift detected');
    expect(drift.map((l) => l.node).sort()).toEqual(['a', 'c']);
    expect(drift[0]).toMatchObject({ backend: 'mem', goal: 'app', action: 'corrected', flapping: false, commit: null, firstSeen: expect.any(String), diffs: [expect.objectContaining({ path: 'content', actual: 'evil' })] });
  });

  it('a repaired node\'s record is written with the time of its update, though it reads as before; a steady pass writes none', async () => {
    let t = 1_000_000;
    const s = setup({}, () => t);
    await s.reconciler.apply(abc, pass);
    expect(s.sqlite.getNode('a')?.updatedAt).toBe(1_000_000);
    t += 5_000;
    await s.reconciler.apply(abc, pass);
    expect(s.sqlite.getNode('a')?.updatedAt).toBe(1_000_000);
    t += 5_000;
    s.backend.tamper('a', { content: 'evil' });
    const repair = await s.reconciler.apply(abc, pass);
    expect(repair.summary).toMatchObject({ updated: 1 });
    expect(s.sqlite.getNode('a')).toMatchObject({ status: 'ready', updatedAt: 1_010_000 });
    expect(s.sqlite.getNode('c')?.updatedAt).toBe(1_000_000);
  });

  it('leaves nothing pending, and records every run with its summary and the time it started', async () => {
    let t = 1_000_000;
    const s = setup({}, () => t);
    await s.reconciler.apply(abc, pass);
    t += 5_000;
    const steady = await s.reconciler.apply(abc, pass);
    expect(s.sqlite.pendingOperations()).toEqual([]);
    const runs = s.sqlite.listRuns();
    expect(runs).toHaveLength(2);
    expect(runs[0]).toMatchObject({ id: steady.runId, startedAt: 1_005_000, summary: expect.objectContaining({ unchanged: 3 }) });
    expect(runs[0]!.finishedAt).not.toBeNull();
    const db = new Database(s.path, { readonly: true });
    try {
      const ops = db.prepare('SELECT node, op, outcome, run_id FROM operations ORDER BY id').all();
      expect(ops).toEqual([
        expect.objectContaining({ op: 'create', outcome: 'done', run_id: runs[1]!.id }),
        expect.objectContaining({ op: 'create', outcome: 'done', run_id: runs[1]!.id }),
        { node: 'b', op: 'create', outcome: 'done', run_id: runs[1]!.id },
      ]);
    } finally {
      db.close();
    }
  });

  it.each([
    { name: 'found not done is abandoned and done again', done: false, outcomes: ['abandoned', 'done'], updated: 1 },
    { name: 'found done is adopted, not done again', done: true, outcomes: ['adopted'], updated: 0 },
  ])('an update a crash left pending, as the daemon resolves it: $name', async ({ done, outcomes, updated }) => {
    const s = setup();
    await s.reconciler.apply(abc, pass);
    const changed = compileYaml(goalYaml(fileNode('a', 'A2') + fileNode('b', 'B', { dependsOn: ['a'] }) + fileNode('c', 'C'))).graph;
    s.sqlite.beginOperation('a', 'update', null);
    if (done) s.backend.tamper('a', { content: 'A2' });
    const result = await s.reconciler.apply(changed, pass);
    expect(result.summary).toMatchObject({ updated });
    expect(s.sqlite.pendingOperations()).toEqual([]);
    const db = new Database(s.path, { readonly: true });
    try {
      expect(db.prepare("SELECT outcome FROM operations WHERE node = 'a' AND op = 'update' ORDER BY id").all()).toEqual(outcomes.map((outcome) => ({ outcome })));
    } finally {
      db.close();
    }
  });

  it('two operations a crash left pending on one node: each is resolved by its observation, none left pending', async () => {
    const s = setup();
    await s.reconciler.apply(abc, pass);
    const changed = compileYaml(goalYaml(fileNode('a', 'A2') + fileNode('b', 'B', { dependsOn: ['a'] }) + fileNode('c', 'C'))).graph;
    s.sqlite.beginOperation('a', 'update', null);
    s.sqlite.beginOperation('a', 'update', null);
    const result = await s.reconciler.apply(changed, pass);
    expect(result.summary).toMatchObject({ updated: 1 });
    expect(s.sqlite.pendingOperations()).toEqual([]);
    const db = new Database(s.path, { readonly: true });
    try {
      expect(db.prepare("SELECT outcome FROM operations WHERE node = 'a' AND op = 'update' ORDER BY id").all()).toEqual(['abandoned', 'abandoned', 'done'].map((outcome) => ({ outcome })));
    } finally {
      db.close();
    }
  });

  it('has each operation on disk as pending, and the drift it corrects, before its backend call', async () => {
    const pendingAtCall: string[][] = [];
    const driftAtCall: number[] = [];
    const s: Setup = setup({
      beforeCall: () => {
        pendingAtCall.push(pendingOnDisk(s.path));
        driftAtCall.push(driftOnDisk(s.path));
      },
    });
    await s.reconciler.apply(abc, pass);
    // Level one (a and c) together; b's level after a and c were recorded done.
    expect(pendingAtCall).toEqual([['a:create', 'c:create'], ['a:create', 'c:create'], ['b:create']]);
    s.backend.tamper('b', { content: 'evil' });
    pendingAtCall.length = 0;
    await s.reconciler.apply(abc, pass);
    expect(pendingAtCall).toEqual([['b:update']]);
    expect(driftAtCall).toEqual([0, 0, 0, 1]);
    expect(pendingOnDisk(s.path)).toEqual([]);
  });

  it('leaves a node held for its current goal alone, even one never applied, until the goal changes', async () => {
    const calls: string[] = [];
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`) });
    await s.reconciler.apply(abc, pass);
    // As the daemon leaves a node whose create kept failing with an auth fault: held, never applied.
    const b = s.sqlite.getNode('b')!;
    const held = { ...b, status: 'held' as const, appliedDigest: null, managed: false, lastFault: { class: 'auth' as const, message: 'permission denied' }, reason: 'held: auth' };
    s.sqlite.putNodes([held]);
    s.backend.tamper('b', { content: 'evil' });
    calls.length = 0;
    const again = await s.reconciler.apply(abc, pass);
    expect(again.outcomes.get('b')).toEqual({ status: 'held', reason: 'held: auth' });
    expect(calls).toEqual([]);
    // A new goal for b releases it.
    const changed = compileYaml(goalYaml(fileNode('a', 'A') + fileNode('b', 'B2', { dependsOn: ['a'] }) + fileNode('c', 'C'))).graph;
    await s.reconciler.apply(changed, pass);
    expect(calls).toEqual(['b:update']);
  });

  it('a node held by an observation that waits (a script awaiting trust or review) is looked at again by the next pass, never held for good', async () => {
    const calls: string[] = [];
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`) });
    await s.reconciler.apply(abc, pass);
    const b = s.sqlite.getNode('b')!;
    s.backend.remove('b');
    const reason = 'script 0123456789ab needs a per-run approval in prod (trust 0.0500 < 0.94)';
    s.sqlite.putNodes([{ ...b, status: 'held', lastFault: { class: 'permanent', message: reason, code: 'waiting' }, reason }]);
    calls.length = 0;
    const again = await s.reconciler.apply(abc, pass);
    expect(calls).toEqual(['b:create']);
    expect(again.outcomes.get('b')).toEqual({ status: 'created' });
  });

  it('deletes nodes removed from the goals (prune, Delete) from their stored spec, and refuses one whose stored spec cannot be read', async () => {
    const pruned = (nodes: string): ReturnType<typeof compileYaml>['graph'] => compileYaml(goalYaml(nodes, { prune: true })).graph;
    const three = fileNode('a', 'A') + fileNode('b', 'B', { deletionPolicy: 'Delete' }) + fileNode('c', 'C', { deletionPolicy: 'Delete' });
    const calls: string[] = [];
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`) });
    await s.reconciler.apply(pruned(three), pass);
    // c's stored spec is damaged: nothing can say what to delete.
    const c = s.sqlite.getNode('c')!;
    s.sqlite.putNodes([{ ...c, snapshot: { ...(c.snapshot as object), spec: { spec: { type: 'local.file' } } } }]);
    calls.length = 0;
    const result = await s.reconciler.apply(pruned(fileNode('a', 'A')), pass);
    expect(calls).toEqual(['b:delete']);
    expect(result.outcomes.get('b')).toEqual({ status: 'deleted' });
    expect(result.outcomes.get('c')).toEqual({ status: 'failed', fault: expect.objectContaining({ class: 'permanent', message: expect.stringContaining('stored spec cannot be read') }) });
    expect(s.backend.snapshot().has('b')).toBe(false);
    expect(s.backend.snapshot().has('c')).toBe(true);
    expect(s.sqlite.getNode('b')).toBeUndefined();
    expect(s.sqlite.getNode('c')).toBeDefined();
    expect(pendingOnDisk(s.path)).toEqual([]);
  });

  // A group role dropped under a member whose own delete failed: the member silently lost its membership.
  it('does not delete a node while a removed node that depends on it is left undeleted (its delete failed): put off, said why, done once that one is', async () => {
    const pruned = (nodes: string): ReturnType<typeof compileYaml>['graph'] => compileYaml(goalYaml(nodes, { prune: true })).graph;
    const chain = fileNode('keep', 'K') + fileNode('x', 'X', { deletionPolicy: 'Delete' }) + fileNode('y', 'Y', { dependsOn: ['x'], deletionPolicy: 'Delete' }) + fileNode('z', 'Z', { dependsOn: ['y'], deletionPolicy: 'Delete' });
    const calls: string[] = [];
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`) }, Date.now, { faults: [{ node: 'z', op: 'delete', class: 'permanent', times: 1 }] });
    await s.reconciler.apply(pruned(chain), pass);
    calls.length = 0;
    const first = await s.reconciler.apply(pruned(fileNode('keep', 'K')), pass);
    expect(calls).toEqual(['z:delete']);
    expect(first.outcomes.get('z')).toMatchObject({ status: 'failed' });
    expect(first.outcomes.get('y')).toEqual({ status: 'blocked', reason: 'not deleted while z, which depends on it, is not' });
    expect(first.outcomes.get('x')).toEqual({ status: 'blocked', reason: 'not deleted while y, which depends on it, is not' });
    for (const id of ['x', 'y', 'z']) expect(s.backend.snapshot().has(id), id).toBe(true);
    expect(s.sqlite.getNode('y')?.reason).toBe('not deleted while z, which depends on it, is not');
    // z's fault gone: all three go, in order.
    calls.length = 0;
    const second = await s.reconciler.apply(pruned(fileNode('keep', 'K')), pass);
    expect(calls).toEqual(['z:delete', 'y:delete', 'x:delete']);
    for (const id of ['x', 'y', 'z']) expect(second.outcomes.get(id), id).toEqual({ status: 'deleted' });
  });

  it('keeps, for a later delete, the spec last applied: a failed update leaves it, a successful one replaces it', async () => {
    const s = setup({}, Date.now, { faults: [{ node: 'b', op: 'update', class: 'permanent', times: 1 }] });
    await s.reconciler.apply(abc, pass);
    const specOf = (id: string): unknown => (s.sqlite.getNode(id)!.snapshot as { spec?: { spec?: { content?: unknown } } }).spec?.spec?.content;
    expect(specOf('b')).toBe('B');
    const changed = compileYaml(goalYaml(fileNode('a', 'A') + fileNode('b', 'B2', { dependsOn: ['a'] }) + fileNode('c', 'C'))).graph;
    const failed = await s.reconciler.apply(changed, pass);
    expect(failed.outcomes.get('b')).toMatchObject({ status: 'failed' });
    expect(specOf('b')).toBe('B');
    await s.reconciler.apply(changed, pass);
    expect(specOf('b')).toBe('B2');
  });

  // Its delete resolves its references so once it leaves the goals, whatever became of the nodes they name.
  it('keeps, for a later delete, what its references read when last applied: a failed update leaves it, a successful one replaces it', async () => {
    const s = setup({}, Date.now, { faults: [{ node: 'b', op: 'update', class: 'permanent', times: 1 }] });
    const graph = (path: string): ReturnType<typeof compileYaml>['graph'] =>
      compileYaml(goalYaml(`    - id: a\n      type: local.file\n      spec: { path: ${path}, content: A, mode: "0644" }\n${fileNode('b', '${nodes.a.outputs.path}')}`)).graph;
    const refsOf = (): unknown => (s.sqlite.getNode('b')!.snapshot as { refs?: unknown }).refs;
    await s.reconciler.apply(graph('a.txt'), pass);
    expect(refsOf()).toEqual({ a: { path: 'a.txt' } });
    const failed = await s.reconciler.apply(graph('a2.txt'), pass);
    expect(failed.outcomes.get('b')).toMatchObject({ status: 'failed' });
    expect(refsOf()).toEqual({ a: { path: 'a.txt' } });
    const updated = await s.reconciler.apply(graph('a2.txt'), pass);
    expect(updated.outcomes.get('b')).toEqual({ status: 'updated' });
    expect(refsOf()).toEqual({ a: { path: 'a2.txt' } });
  });

  it('a pass cut short by a throw still records the outcome of the calls it made', async () => {
    const s = setup({
      beforeObserve: (nodes) => {
        if (nodes.some((n) => n.id === 'b')) throw new Error('backend crashed while observing b');
      },
    });
    await expect(s.reconciler.apply(abc, pass)).rejects.toThrow('backend crashed while observing b');
    expect(pendingOnDisk(s.path)).toEqual([]);
    expect(s.sqlite.countOperations('a', 'create')).toBe(1);
    expect(s.backend.createCount('a')).toBe(1);
  });
});

/**
 * Notes memos as a backend that remembers what it wrote would: a create's or
 * update's result carries one; an up-to-date observation returns the memo it
 * is handed, a drifted one a memo of its own. What each call was handed is kept.
 */
class Noting implements NodeProvisioner<InfraDesiredNodeSpec> {
  readonly observed: (ObservationMemo | undefined)[] = [];
  readonly updated: (ObservationMemo | undefined)[] = [];
  readonly #inner: NodeProvisioner<InfraDesiredNodeSpec>;
  constructor(inner: NodeProvisioner<InfraDesiredNodeSpec>) {
    this.#inner = inner;
  }
  async observe(nodes: readonly InfraNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>> {
    const inner = await this.#inner.observe(nodes, ctx);
    return new Map(
      [...inner].map(([id, obs]): [NodeId, Observation] => {
        if (obs.status === 'drifted') return [id, { ...obs, memo: { by: 'observe' } }];
        if (obs.status !== 'upToDate') return [id, obs];
        const memo = ctx.memoOf?.(id);
        this.observed.push(memo);
        return [id, memo === undefined ? obs : { ...obs, memo }];
      }),
    );
  }
  async create(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    const r = await this.#inner.create(node, ctx);
    return r.status === 'done' ? { ...r, memo: { by: 'create' } } : r;
  }
  async update(node: InfraNode, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult> {
    this.updated.push(ctx.memoOf?.(node.id));
    const r = await this.#inner.update(node, diffs, ctx);
    return r.status === 'done' ? { ...r, memo: { by: 'update' } } : r;
  }
  delete(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    return this.#inner.delete(node, ctx);
  }
}

describe('Reconciler: observation memos', () => {
  it('stores the memo a create or update returns, and hands it back at the next observation (the next process, for `apply`)', async () => {
    let noting: Noting | undefined;
    const s = setup({ wrap: (inner) => (noting = new Noting(inner)) });
    const one = compileYaml(goalYaml(fileNode('a', 'A'))).graph;
    await s.reconciler.apply(one, pass);
    expect(s.sqlite.getNode('a')?.memo).toEqual({ by: 'create' });

    s.store.reset();
    expect((await s.reconciler.apply(one, pass)).summary).toMatchObject({ unchanged: 1 });
    expect(noting!.observed).toEqual([{ by: 'create' }]);
    expect(s.store.commits()).toBe(1); // the same memo observed: only the run is written

    // The update is handed the memo of the observation that found the drift, in the same pass, and its own replaces it.
    s.backend.tamper('a', { content: 'evil' });
    expect((await s.reconciler.apply(one, pass)).summary).toMatchObject({ updated: 1 });
    expect(noting!.updated).toEqual([{ by: 'observe' }]);
    expect(s.sqlite.getNode('a')?.memo).toEqual({ by: 'update' });
    await s.reconciler.apply(one, pass);
    expect(noting!.observed.at(-1)).toEqual({ by: 'update' });
  });

  it('an update that returns no memo clears the one observed before it', async () => {
    const s = setup();
    const one = compileYaml(goalYaml(fileNode('a', 'A'))).graph;
    await s.reconciler.apply(one, pass);
    s.sqlite.putNodes([{ ...s.sqlite.getNode('a')!, memo: { by: 'observe' } }]);
    s.backend.tamper('a', { content: 'evil' });
    expect((await s.reconciler.apply(one, pass)).summary).toMatchObject({ updated: 1 });
    expect(s.sqlite.getNode('a')?.memo).toBeNull();
  });
});

/** The real dispatcher, with what it observes changed by `mark` (each diff of a drifted node), and each update's diffs recorded. */
class Marking implements NodeProvisioner<InfraDesiredNodeSpec> {
  readonly updates: (readonly FieldDiff[])[] = [];
  readonly #inner: NodeProvisioner<InfraDesiredNodeSpec>;
  readonly #mark: (d: FieldDiff) => FieldDiff;
  constructor(inner: NodeProvisioner<InfraDesiredNodeSpec>, mark: (d: FieldDiff) => FieldDiff) {
    this.#inner = inner;
    this.#mark = mark;
  }
  async observe(nodes: readonly InfraNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>> {
    const out = new Map(await this.#inner.observe(nodes, ctx));
    for (const [id, obs] of out) if (obs.status === 'drifted') out.set(id, { ...obs, diffs: obs.diffs.map(this.#mark) });
    return out;
  }
  create(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    return this.#inner.create(node, ctx);
  }
  update(node: InfraNode, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult> {
    this.updates.push(diffs);
    return this.#inner.update(node, diffs, ctx);
  }
  delete(node: InfraNode, ctx: OperationContext): Promise<ProvisionResult> {
    return this.#inner.delete(node, ctx);
  }
}

/** Diffs of `content` marked as a rotated secret (as a backend keeping a digest of the secret it last set says). */
const markRotated = (d: FieldDiff): FieldDiff => (d.path === 'content' ? { ...d, cause: 'secret-rotated' as const } : d);
/** Diffs of `mode` marked as no update can correct (`FieldDiff.cannotCorrect`). */
const markFixed = (d: FieldDiff): FieldDiff => (d.path === 'mode' ? { ...d, cannotCorrect: 'fixed at creation' } : d);

describe('Reconciler: a rotated secret is a change to apply, not drift', () => {
  const rotatedContent = { path: 'content', desired: 'A', actual: 'old', cause: 'secret-rotated' };

  it.each([{ selfHeal: false }, { selfHeal: true }])('selfHeal: $selfHeal: plan shows an update; apply makes it, with no drift report', async ({ selfHeal }) => {
    let rotating: Marking | undefined;
    const s = setup({ wrap: (inner) => (rotating = new Marking(inner, markRotated)) });
    const graph = compileYaml(goalYaml(fileNode('a', 'A'), { selfHeal })).graph;
    await s.reconciler.apply(graph, pass);
    s.backend.tamper('a', { content: 'old' });
    expect((await s.reconciler.plan(graph, pass))[0]?.planned).toEqual({ action: 'update', diffs: [rotatedContent] });
    const r = await s.reconciler.apply(graph, pass);
    expect(r.outcomes.get('a')).toEqual({ status: 'updated' });
    expect(r.summary).toMatchObject({ updated: 1, drifted: 0 });
    expect(rotating!.updates).toEqual([[rotatedContent]]);
    expect(s.sqlite.listDrift()).toEqual([]);
    expect(s.sqlite.getNode('a')).toMatchObject({ status: 'ready', reason: null });
    expect(s.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
    expect(s.lines.filter((l) => l.msg === 'secret rotated; applying')).toEqual([expect.objectContaining({ node: 'a', fields: ['content'] })]);
  });

  it('with drift beside it under selfHeal: false: the rotation alone is applied, the drift reported and left, the node drifted', async () => {
    let rotating: Marking | undefined;
    const s = setup({ wrap: (inner) => (rotating = new Marking(inner, markRotated)) });
    const graph = compileYaml(goalYaml(fileNode('a', 'A'), { selfHeal: false })).graph;
    await s.reconciler.apply(graph, pass);
    s.backend.tamper('a', { content: 'old', mode: '0600' });
    const drift = { path: 'mode', desired: '0644', actual: '0600' };
    expect((await s.reconciler.plan(graph, pass))[0]?.planned).toEqual({ action: 'drift', diffs: [rotatedContent, drift], correct: false, reportOnly: 'selfHeal: false' });
    const r = await s.reconciler.apply(graph, pass);
    expect(r.outcomes.get('a')).toEqual({ status: 'updated' });
    expect(r.summary).toMatchObject({ updated: 1, drifted: 1 });
    expect(rotating!.updates).toEqual([[rotatedContent]]);
    expect(s.sqlite.listDrift()).toEqual([expect.objectContaining({ node: 'a', action: 'reported', diffs: [drift] })]);
    expect(s.sqlite.getNode('a')).toMatchObject({ status: 'drifted', reason: 'drift reported (selfHeal: false)' });
  });

  it('with drift beside it under selfHeal: true: both applied in one update, the drift alone reported', async () => {
    let rotating: Marking | undefined;
    const s = setup({ wrap: (inner) => (rotating = new Marking(inner, markRotated)) });
    const graph = compileYaml(goalYaml(fileNode('a', 'A'))).graph;
    await s.reconciler.apply(graph, pass);
    s.backend.tamper('a', { content: 'old', mode: '0600' });
    const drift = { path: 'mode', desired: '0644', actual: '0600' };
    await s.reconciler.apply(graph, pass);
    expect(rotating!.updates).toEqual([[rotatedContent, drift]]);
    expect(s.sqlite.listDrift()).toEqual([expect.objectContaining({ node: 'a', action: 'corrected', diffs: [drift] })]);
    expect(s.sqlite.getNode('a')).toMatchObject({ status: 'ready' });
  });
});

describe('Reconciler: drift no update can correct', () => {
  it('beside drift it can: plan shows both, apply hands update only the rest, and its outcome says what is left and why', async () => {
    let fixed: Marking | undefined;
    const s = setup({ wrap: (inner) => (fixed = new Marking(inner, markFixed)) });
    await s.reconciler.apply(abc, pass);
    s.backend.tamper('a', { content: 'evil', mode: '0600' });
    const plan = await s.reconciler.plan(abc, pass);
    expect(plan.find((e) => e.id === 'a')?.planned).toMatchObject({ action: 'drift', correct: true, diffs: expect.arrayContaining([expect.objectContaining({ path: 'mode', cannotCorrect: 'fixed at creation' })]) });
    const r = await s.reconciler.apply(abc, pass);
    expect(fixed!.updates.map((d) => d.map((x) => x.path))).toEqual([['content']]);
    expect(r.outcomes.get('a')).toEqual({ status: 'updated', uncorrectable: 'fixed at creation' });
    expect(s.sqlite.getNode('a')).toMatchObject({ status: 'drifted', reason: 'drift reported (fixed at creation)' });
    // Alone, it is reported, never handed to update.
    s.backend.tamper('c', { mode: '0600' });
    const alone = await s.reconciler.apply(abc, pass);
    expect(alone.outcomes.get('c')).toMatchObject({ status: 'drift-reported' });
    expect(fixed!.updates).toHaveLength(1);
  });
});

describe('Reconciler: a drifted dependency and its dependents, at plan and at apply alike', () => {
  /** `mode` no update can correct; `unusable`: and the resource unusable to its dependents meanwhile (`blocksDependents`). */
  const markMode = (unusable: boolean) => (d: FieldDiff): FieldDiff => (d.path === 'mode' ? { ...markFixed(d), ...(unusable ? { blocksDependents: true as const } : {}) } : d);
  const planned = async (s: Setup): Promise<Record<string, unknown>> => Object.fromEntries((await s.reconciler.plan(abc, pass)).map((e) => [e.id, e.planned]));

  it.each([
    { name: 'alone', tamper: { mode: '0600' }, a: { status: 'drift-reported' } },
    // The rotation applied beside it: the outcome is `updated`, and what stays is what blocks (or not), and what
    // `apply` says is not converged (its exit code reads it), as `plan` does.
    { name: 'beside a rotated secret', tamper: { content: 'old', mode: '0600' }, a: { status: 'updated', uncorrectable: 'fixed at creation' } },
  ])('drift no update can correct, $name: blocks the dependents where it makes the resource unusable to them, else lets them converge', async ({ tamper, a }) => {
    for (const unusable of [true, false]) {
      const s = setup({ wrap: (inner) => new Marking(inner, (d) => markMode(unusable)(markRotated(d))) });
      await s.reconciler.apply(abc, pass);
      s.backend.tamper('a', tamper);
      s.backend.tamper('b', { content: 'hand' });
      const plan = await planned(s);
      const r = await s.reconciler.apply(abc, pass);
      if (unusable) {
        expect(plan['b']).toEqual({ action: 'blocked', reason: 'dependency a is not ready' });
        expect(r.outcomes.get('b')).toEqual({ status: 'blocked', reason: 'dependency a is not ready' });
        expect((s.backend.snapshot().get('b')?.spec as { content?: string }).content).toBe('hand');
      } else {
        expect(plan['b']).toMatchObject({ action: 'update' });
        expect(r.outcomes.get('b')).toEqual({ status: 'updated' });
        expect((s.backend.snapshot().get('b')?.spec as { content?: string }).content).toBe('B');
      }
      expect(r.outcomes.get('a')).toMatchObject(a);
    }
  });
});

describe('Reconciler: a resource deleted out of band', () => {
  it('is drift, not a first create: planned as `!`, reported and stored as a diff on `exists` (desired true, actual false), counted, then re-created', async () => {
    const s = setup();
    await s.reconciler.apply(abc, pass);
    s.backend.remove('c');
    const planned = await s.reconciler.plan(abc, pass);
    expect(planned.find((e) => e.id === 'c')?.planned).toEqual({ action: 'drift', diffs: [{ path: 'exists', desired: true, actual: false }], correct: true });
    const repair = await s.reconciler.apply(abc, pass);
    expect(repair.summary).toMatchObject({ created: 1, drifted: 1, unchanged: 2 });
    expect(s.backend.createCount('c')).toBe(2);
    expect(s.sqlite.listDrift()).toEqual([expect.objectContaining({ node: 'c', action: 'corrected', diffs: [{ path: 'exists', desired: true, actual: false }] })]);
    expect(s.lines.filter((l) => l.msg === 'drift detected')).toEqual([expect.objectContaining({ node: 'c', action: 'corrected', diffs: [{ path: 'exists', desired: true, actual: false }] })]);
    // A first create is not drift.
    expect((await s.reconciler.apply(compileYaml(goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }) + fileNode('c', 'C') + fileNode('d', 'D'))).graph, pass)).summary).toMatchObject({ created: 1, drifted: 0 });
  });

  it('selfHeal: false: reported, left missing, and the pass still converges', async () => {
    const s = setup();
    const graph = compileYaml(goalYaml(fileNode('a', 'A'), { selfHeal: false })).graph;
    await s.reconciler.apply(graph, pass);
    s.backend.remove('a');
    expect((await s.reconciler.plan(graph, pass))[0]?.planned).toEqual({ action: 'drift', diffs: [{ path: 'exists', desired: true, actual: false }], correct: false, reportOnly: 'selfHeal: false' });
    const r = await s.reconciler.apply(graph, pass);
    expect(r.outcomes.get('a')).toEqual({ status: 'drift-reported', diffs: [{ path: 'exists', desired: true, actual: false }] });
    expect(r.summary).toMatchObject({ created: 0, drifted: 1 });
    expect(s.backend.snapshot().has('a')).toBe(false);
    expect(s.sqlite.getNode('a')).toMatchObject({ status: 'drifted', reason: expect.stringContaining('resource missing') });
    expect(s.sqlite.listDrift()).toEqual([expect.objectContaining({ node: 'a', action: 'reported' })]);
  });
});

/**
 * The real dispatcher, but node `id`'s read before its delete (`OperationContext.beforeDelete`) answers
 * `read`, and each such read is noted in `reads` (the ids of one observe call).
 */
function readBeforeDeleteAs(inner: NodeProvisioner<InfraDesiredNodeSpec>, id: NodeId, read: Observation | undefined | (() => Observation | undefined), reads: NodeId[][]): NodeProvisioner<InfraDesiredNodeSpec> {
  return {
    observe: async (nodes, ctx) => {
      if (ctx.beforeDelete !== true) return inner.observe(nodes, ctx);
      reads.push(nodes.map((n) => n.id));
      const observed = new Map(await inner.observe(nodes, ctx));
      const answer = typeof read === 'function' ? read() : read;
      if (answer !== undefined && observed.has(id)) observed.set(id, answer);
      return observed;
    },
    create: (node, ctx) => inner.create(node, ctx),
    update: (node, diffs, ctx) => inner.update(node, diffs, ctx),
    delete: (node, ctx) => inner.delete(node, ctx),
  };
}

// As Terraform refreshes before it destroys: a delete is sent only to what its read finds. An exec `delete`
// command need not succeed on what is not there, and failed on every apply once its resource was gone.
describe('Reconciler: a node removed from the goals is read before its delete', () => {
  const pruned = (nodes: string): typeof abc => compileYaml(goalYaml(nodes, { prune: true })).graph;
  const kept = fileNode('k', 'K');
  const planned = async (s: Setup, graph: typeof abc): Promise<Record<string, unknown>> => Object.fromEntries((await s.reconciler.plan(graph, pass)).map((e) => [e.id, e.planned]));

  it.each([
    { found: 'there', change: (_: MemoryBackend) => undefined, read: undefined, plan: { action: 'delete' }, outcome: { status: 'deleted' }, deletes: ['b'], left: undefined },
    { found: 'there, drifted', change: (m: MemoryBackend) => m.tamper('b', { content: 'by hand' }), read: undefined, plan: { action: 'delete' }, outcome: { status: 'deleted' }, deletes: ['b'], left: undefined },
    { found: 'gone', change: (m: MemoryBackend) => void m.remove('b'), read: undefined, plan: { action: 'orphan', gone: true }, outcome: { status: 'orphaned' }, deletes: [], left: undefined },
    {
      found: 'unreadable (the read fails)',
      change: (_: MemoryBackend) => undefined,
      read: { status: 'failed', fault: { class: 'transient', message: 'connection refused' } } as Observation,
      plan: { action: 'error', fault: { class: 'transient', message: 'connection refused' } },
      outcome: { status: 'failed', fault: { class: 'transient', message: 'connection refused' } },
      deletes: [],
      left: { status: 'failed', reason: 'connection refused', attempts: 1 },
    },
    {
      found: 'unknown (the read cannot tell)',
      change: (_: MemoryBackend) => undefined,
      read: { status: 'indeterminate', reason: 'a create was cut short' } as Observation,
      plan: { action: 'held', reason: 'cannot tell whether it exists: a create was cut short; check it and run `desiredstate retry b`' },
      outcome: { status: 'held', reason: 'cannot tell whether it exists: a create was cut short; check it and run `desiredstate retry b`' },
      deletes: [],
      left: { status: 'held', reason: 'cannot tell whether it exists: a create was cut short; check it and run `desiredstate retry b`' },
    },
  ])('found $found: plan says what apply does, and a delete is sent only to what is there', async ({ change, read, plan, outcome, deletes, left }) => {
    const calls: string[] = [];
    const reads: NodeId[][] = [];
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`), wrap: (inner) => readBeforeDeleteAs(inner, 'b', read, reads) });
    await s.reconciler.apply(pruned(kept + fileNode('b', 'B', { deletionPolicy: 'Delete' })), pass);
    change(s.backend);
    calls.length = 0;
    expect((await planned(s, pruned(kept)))['b']).toEqual(plan);
    const result = await s.reconciler.apply(pruned(kept), pass);
    expect(result.outcomes.get('b')).toEqual(outcome);
    // Read once by plan and once by apply, before any delete, with what its delete would be handed.
    expect(reads).toEqual([['b'], ['b']]);
    expect(calls.filter((c) => c.endsWith(':delete')).map((c) => c.split(':')[0])).toEqual(deletes);
    if (left === undefined) expect(s.sqlite.getNode('b')).toBeUndefined();
    else expect(s.sqlite.getNode('b')).toMatchObject(left);
    expect(s.lines.filter((l) => l.msg === GONE_ALREADY).map((l) => l.node)).toEqual(outcome.status === 'orphaned' ? ['b'] : []);
    expect(result.summary).toMatchObject({ deleted: deletes.length, orphaned: outcome.status === 'orphaned' ? 1 : 0 });
    expect(pendingOnDisk(s.path)).toEqual([]);
  });

  it('reads the removed nodes it deletes in one observe call, and no other node; dependents are deleted first, a dependency found gone is no bar', async () => {
    const reads: NodeId[][] = [];
    const calls: string[] = [];
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`), wrap: (inner) => readBeforeDeleteAs(inner, 'x', undefined, reads) });
    const chain = fileNode('x', 'X', { deletionPolicy: 'Delete' }) + fileNode('y', 'Y', { dependsOn: ['x'], deletionPolicy: 'Delete' }) + fileNode('z', 'Z', { dependsOn: ['y'], deletionPolicy: 'Delete' });
    // o: removed, but its goal keeps it (Orphan): forgotten, never read.
    await s.reconciler.apply(pruned(kept + chain + fileNode('o', 'O')), pass);
    s.backend.remove('y');
    calls.length = 0;
    const result = await s.reconciler.apply(pruned(kept), pass);
    expect(reads.map((ids) => [...ids].sort())).toEqual([['x', 'y', 'z']]);
    expect(calls).toEqual(['z:delete', 'x:delete']);
    expect(Object.fromEntries(['o', 'x', 'y', 'z'].map((id) => [id, result.outcomes.get(id)?.status]))).toEqual({ o: 'orphaned', x: 'deleted', y: 'orphaned', z: 'deleted' });
    expect(s.sqlite.listNodes().map((r) => r.id)).toEqual(['k']);
  });

  // Every apply read it and sent its delete again, then marked it failed, no longer held; plan showed it `-`.
  it.each([
    {
      why: 'the fault policy gave up on its delete (a daemon)',
      reason: "refused (permanent fault after 3 attempts; held until its goal (the node's spec) changes or `desiredstate retry NODE`)",
      read: undefined,
    },
    { why: 'its read could not tell whether it exists (an apply)', reason: 'cannot tell whether it exists: the API does not say; check it and run `desiredstate retry y`', read: { status: 'indeterminate', reason: 'the API does not say' } },
  ] as const)('a node whose delete is held because $why is neither read nor deleted by plan or apply, what it depends on waiting; once `retry` releases it, both are deleted', async ({ reason, read }) => {
    const reads: NodeId[][] = [];
    const calls: string[] = [];
    let unsure = read !== undefined;
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`), wrap: (inner) => readBeforeDeleteAs(inner, 'y', () => (unsure ? read : undefined), reads) });
    await s.reconciler.apply(pruned(kept + fileNode('x', 'X', { deletionPolicy: 'Delete' }) + fileNode('y', 'Y', { dependsOn: ['x'], deletionPolicy: 'Delete' })), pass);
    if (read === undefined) s.sqlite.putNodes([deleteHeld(s.sqlite.getNode('y')!, { attempts: 3, lastFault: { class: 'permanent', message: 'refused' }, reason, updatedAt: Date.now() })]);
    else expect((await s.reconciler.apply(pruned(kept), pass)).outcomes.get('y')).toEqual({ status: 'held', reason });
    const held = s.sqlite.getNode('y');
    expect(held).toMatchObject({ status: 'held', reason });
    unsure = false;
    reads.length = 0;
    calls.length = 0;
    expect(await planned(s, pruned(kept))).toMatchObject({ y: { action: 'held', reason }, x: { action: 'blocked', reason: 'not deleted while y, which depends on it, is not' } });
    const result = await s.reconciler.apply(pruned(kept), pass);
    expect(result.outcomes.get('y')).toEqual({ status: 'held', reason });
    expect(result.outcomes.get('x')).toEqual({ status: 'blocked', reason: 'not deleted while y, which depends on it, is not' });
    expect(result.summary).toMatchObject({ held: 1, blocked: 1, deleted: 0 });
    expect(reads).toEqual([]);
    expect(calls).toEqual([]);
    expect(s.sqlite.getNode('y')).toEqual(held);

    expect(releaseStoredNode(s.sqlite, 'y', Date.now())).toEqual({ status: 'released' });
    const released = await s.reconciler.apply(pruned(kept), pass);
    expect(reads.map((ids) => [...ids].sort())).toEqual([['x', 'y']]);
    expect(calls).toEqual(['y:delete', 'x:delete']);
    expect([released.outcomes.get('x'), released.outcomes.get('y')]).toEqual([{ status: 'deleted' }, { status: 'deleted' }]);
    expect(s.sqlite.listNodes().map((r) => r.id)).toEqual(['k']);
  });

  // A hold is until the goal changes: removing the node is such a change.
  it('a node held while in the goals (an update given up on) is deleted once removed', async () => {
    const calls: string[] = [];
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`) });
    await s.reconciler.apply(pruned(kept + fileNode('y', 'Y', { deletionPolicy: 'Delete' })), pass);
    // As a daemon leaves it.
    s.sqlite.putNodes([{ ...s.sqlite.getNode('y')!, status: 'held', attempts: 3, lastFault: { class: 'permanent', message: 'refused' }, reason: "refused (permanent fault after 3 attempts; held until its goal (the node's spec) changes or `desiredstate retry NODE`)" }]);
    calls.length = 0;
    expect((await planned(s, pruned(kept)))['y']).toEqual({ action: 'delete' });
    const result = await s.reconciler.apply(pruned(kept), pass);
    expect(result.outcomes.get('y')).toEqual({ status: 'deleted' });
    expect(calls).toEqual(['y:delete']);
  });

  it('a node declared again while its delete was held is no longer held: looked at as a changed goal', async () => {
    const s = setup();
    const withY = pruned(kept + fileNode('y', 'Y', { deletionPolicy: 'Delete' }));
    await s.reconciler.apply(withY, pass);
    s.sqlite.putNodes([deleteHeld(s.sqlite.getNode('y')!, { attempts: 3, lastFault: { class: 'permanent', message: 'refused' }, reason: 'refused (held)', updatedAt: Date.now() })]);
    expect((await planned(s, withY))['y']).toEqual({ action: 'none' });
    const result = await s.reconciler.apply(withY, pass);
    expect(result.outcomes.get('y')).toEqual({ status: 'unchanged' });
    expect(s.sqlite.getNode('y')).toMatchObject({ status: 'ready', attempts: 0, reason: null });
  });

  // A delete that did its work, the process killed before its outcome was on disk: sent again, it failed on what was gone.
  it.each([
    { what: 'gone: found done (adopted), no delete sent again', there: false, outcomes: [['adopted', 'found done after an interrupted delete']], deletes: [] },
    { what: 'still there: deleted again, the one cut short abandoned', there: true, outcomes: [['abandoned', 'interrupted; deleted again'], ['done', null]], deletes: ['b'] },
  ])('a delete a crash left pending, its resource $what', async ({ there, outcomes, deletes }) => {
    const calls: string[] = [];
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`) });
    await s.reconciler.apply(pruned(kept + fileNode('b', 'B', { deletionPolicy: 'Delete' })), pass);
    s.sqlite.beginOperation('b', 'delete', null);
    if (!there) s.backend.remove('b');
    calls.length = 0;
    const result = await s.reconciler.apply(pruned(kept), pass);
    expect(result.outcomes.get('b')).toEqual({ status: there ? 'deleted' : 'orphaned' });
    expect(calls.filter((c) => c.endsWith(':delete')).map((c) => c.split(':')[0])).toEqual(deletes);
    expect(s.sqlite.getNode('b')).toBeUndefined();
    const db = new Database(s.path, { readonly: true });
    try {
      expect(db.prepare("SELECT outcome, detail FROM operations WHERE node = 'b' AND op = 'delete' ORDER BY id").all()).toEqual(outcomes.map(([outcome, detail]) => ({ outcome, detail })));
    } finally {
      db.close();
    }
  });
});

/** The real dispatcher, with `path` taken out of node `id`'s outputs as observed and created: a producer whose command printed no such key, until an update. */
function withoutPath(inner: NodeProvisioner<InfraDesiredNodeSpec>, id: NodeId): NodeProvisioner<InfraDesiredNodeSpec> {
  const strip = <T extends Observation | ProvisionResult>(of: NodeId, r: T): T => {
    if (of !== id || !('outputs' in r)) return r;
    const { path: _, ...rest } = r.outputs;
    return { ...r, outputs: rest };
  };
  return {
    observe: async (nodes, ctx) => new Map([...(await inner.observe(nodes, ctx))].map(([of, obs]) => [of, strip(of, obs)])),
    create: async (node, ctx) => strip(node.id, await inner.create(node, ctx)),
    update: (node, diffs, ctx) => inner.update(node, diffs, ctx),
    delete: (node, ctx) => inner.delete(node, ctx),
  };
}

describe('Reconciler: plan says what apply will do', () => {
  const planned = async (s: Setup, graph: typeof abc, options: Partial<Parameters<Setup['reconciler']['plan']>[1]> = {}): Promise<Record<string, unknown>> =>
    Object.fromEntries((await s.reconciler.plan(graph, { ...pass, ...options })).map((e) => [e.id, e.planned]));

  // Its outputs so far lack the key: judged on them alone, the dependent would be an error (`output-unknown`),
  // though the update that comes first in the same pass may give it. Planned as apply makes it: after it.
  it('a node referring to an output its producer lacks so far, the producer updated in the same pass, is created after it', async () => {
    const s = setup({ wrap: (inner) => withoutPath(inner, 'p') });
    await s.reconciler.apply(compileYaml(goalYaml(fileNode('p', 'one'))).graph, pass);
    expect(s.sqlite.getNode('p')?.outputs).not.toHaveProperty('path');
    const two = compileYaml(goalYaml(fileNode('p', 'two') + fileNode('c', '${nodes.p.outputs.path}'))).graph;
    expect(await planned(s, two)).toMatchObject({ p: { action: 'update' }, c: { action: 'create' } });
    const applied = await s.reconciler.apply(two, pass);
    expect(applied.outcomes.get('c')).toEqual({ status: 'created' });
    expect(s.backend.snapshot().get('c')).toMatchObject({ spec: { content: 'p.txt' } });
    // Steady now, p's outputs as observed lacking the key: the dependent is refused, naming it (with its producer's keys).
    expect((await planned(s, two))['c']).toMatchObject({ action: 'error', fault: { class: 'permanent', code: 'output-unknown' } });
  });

  it('a node held by the fault policy for its goal, even one never applied, is held; its dependents are blocked', async () => {
    const s = setup();
    await s.reconciler.apply(abc, pass);
    const a = s.sqlite.getNode('a')!;
    s.sqlite.putNodes([{ ...a, status: 'held', appliedDigest: null, managed: false, lastFault: { class: 'auth', message: 'permission denied' }, reason: 'held: auth' }]);
    const p = await planned(s, abc);
    expect(p).toMatchObject({ a: { action: 'held', reason: 'held: auth' }, b: { action: 'blocked', reason: 'dependency a is not ready' }, c: { action: 'none' } });
    const applied = await s.reconciler.apply(abc, pass);
    expect(applied.outcomes.get('a')).toEqual({ status: 'held', reason: 'held: auth' });
    expect(applied.outcomes.get('b')).toEqual({ status: 'blocked', reason: 'dependency a is not ready' });
  });

  it('a node a policy holds is planned held, as the pass holds it; its dependents are blocked, not planned for create', async () => {
    const s = setup();
    const gates = new Map<NodeId, NodeGate>([['a', { reason: 'says no' }]]);
    const p = await planned(s, abc, { gates });
    expect(p).toMatchObject({ a: { action: 'held', reason: 'held by policy: says no' }, b: { action: 'blocked', reason: 'dependency a is not ready' }, c: { action: 'create' } });
    const applied = await s.reconciler.apply(abc, { ...pass, gates });
    // Held in the plan as in the pass (the plan had it `blocked`, counted apart from apply's `held`).
    expect(applied.outcomes.get('a')).toEqual({ status: 'held', reason: 'held by policy: says no' });
    expect(applied.outcomes.get('b')).toEqual({ status: 'blocked', reason: 'dependency a is not ready' });
  });

  it('a node held by a policy gate and then removed from the goals (prune, Delete) is orphaned, never deleted, as the daemon does', async () => {
    const pruned = (nodes: string): typeof abc => compileYaml(goalYaml(nodes, { prune: true })).graph;
    const two = fileNode('a', 'A') + fileNode('b', 'B', { deletionPolicy: 'Delete' });
    const calls: string[] = [];
    const s = setup({ beforeCall: (node, op) => calls.push(`${node.id}:${op}`) });
    await s.reconciler.apply(pruned(two), pass);
    await s.reconciler.apply(pruned(two), { ...pass, gates: new Map([['b', { reason: 'file-owned (high, org)' }]]) });
    expect(s.sqlite.getNode('b')).toMatchObject({ status: 'held' });
    calls.length = 0;
    // Shown as forgotten, never as a delete, with the hold that keeps it from being deleted.
    expect((await planned(s, pruned(fileNode('a', 'A'))))['b']).toEqual({ action: 'orphan', policyHold: 'held by policy: file-owned (high, org)' });
    const result = await s.reconciler.apply(pruned(fileNode('a', 'A')), pass);
    expect(calls.filter((c) => c.endsWith(':delete'))).toEqual([]);
    expect(result.outcomes.get('b')).toEqual({ status: 'orphaned' });
    expect(s.backend.snapshot().has('b')).toBe(true);
    expect(s.sqlite.getNode('b')).toBeUndefined();
  });

  it('deletions over the mass-deletion limit are listed, marked refused', async () => {
    const s = setup();
    const nodes = Array.from({ length: 8 }, (_, i) => fileNode(`n${i}`, `N${i}`, { deletionPolicy: 'Delete' })).join('');
    await s.reconciler.apply(compileYaml(goalYaml(nodes, { prune: true })).graph, pass);
    const two = compileYaml(goalYaml(fileNode('n0', 'N0', { deletionPolicy: 'Delete' }) + fileNode('n1', 'N1', { deletionPolicy: 'Delete' }), { prune: true })).graph;
    const p = await planned(s, two);
    for (let i = 2; i < 8; i++) expect(p[`n${i}`]).toEqual({ action: 'delete', refused: expect.stringContaining('6 nodes removed from the goals, over the limit of 5') });
    expect((await s.reconciler.apply(two, pass)).refusedDeletions).toEqual({ count: 6, limit: 5 });
    // Allowed: plain deletes.
    expect((await planned(s, two, { allowMassDeletion: true }))['n2']).toEqual({ action: 'delete' });
  });
});


describe('Reconciler: drift reports across applies', () => {
  const reportOnly = compileYaml(goalYaml(fileNode('a', 'A'), { selfHeal: false })).graph;
  const selfHealing = compileYaml(goalYaml(fileNode('a', 'A'))).graph;

  it('selfHeal: false: the same drift found by apply after apply is reported once, first seen when it began; a new value past the interval keeps that first seen', async () => {
    let t = 1_000_000;
    const s = setup({}, () => t);
    await s.reconciler.apply(reportOnly, pass);
    s.backend.tamper('a', { content: 'hand' });
    const began = (t += 1_000);
    for (let i = 0; i < 3; i++) {
      const run = await s.reconciler.apply(reportOnly, pass);
      // Each run found it (history's `!`), but it is one occurrence.
      expect(run.summary.drifted).toBe(1);
      t += 1_000;
    }
    expect(s.sqlite.listDrift()).toEqual([expect.objectContaining({ node: 'a', firstSeen: began, detectedAt: began, action: 'reported' })]);
    expect(s.lines.filter((l) => l.msg === 'drift detected')).toHaveLength(1);

    s.backend.tamper('a', { content: 'worse' });
    t += 2 * 60_000;
    await s.reconciler.apply(reportOnly, pass);
    const reports = s.sqlite.listDrift();
    expect(reports).toHaveLength(2);
    expect(reports[1]).toMatchObject({ firstSeen: began, detectedAt: t, diffs: [expect.objectContaining({ actual: 'worse' })] });
  });

  it('a drift put back by hand is over: the next one is first seen anew', async () => {
    let t = 1_000_000;
    const s = setup({}, () => t);
    await s.reconciler.apply(reportOnly, pass);
    s.backend.tamper('a', { content: 'hand' });
    t += 1_000;
    await s.reconciler.apply(reportOnly, pass);
    s.backend.tamper('a', { content: 'A' });
    t += 1_000;
    await s.reconciler.apply(reportOnly, pass);
    s.backend.tamper('a', { content: 'hand' });
    const again = (t += 1_000);
    await s.reconciler.apply(reportOnly, pass);
    expect(s.sqlite.listDrift().map((r) => r.firstSeen)).toEqual([1_001_000, again]);
  });

  it('a correction that fails leaves the report saying so, not corrected', async () => {
    const s = setup({}, Date.now, { faults: [{ op: 'update', node: 'a', class: 'permanent' }] });
    await s.reconciler.apply(selfHealing, pass);
    s.backend.tamper('a', { content: 'hand' });
    s.store.reset();
    const run = await s.reconciler.apply(selfHealing, pass);
    expect(run.outcomes.get('a')?.status).toBe('failed');
    expect(s.sqlite.listDrift()).toEqual([expect.objectContaining({ node: 'a', action: 'correction-failed' })]);
    // The report before the update, what it came to with the outcome: no commit more.
    expect(s.store.commits()).toBe(2);
  });

  it('a drift only reported, corrected once selfHeal is switched on: its report says corrected', async () => {
    const s = setup();
    await s.reconciler.apply(reportOnly, pass);
    s.backend.tamper('a', { content: 'hand' });
    await s.reconciler.apply(reportOnly, pass);
    expect(s.sqlite.listDrift()).toEqual([expect.objectContaining({ action: 'reported' })]);
    const run = await s.reconciler.apply(selfHealing, pass);
    expect(run.outcomes.get('a')?.status).toBe('updated');
    expect(s.sqlite.listDrift()).toEqual([expect.objectContaining({ node: 'a', action: 'corrected' })]);
  });
});
