import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBackend, memoryConfigSchema } from '../../src/backends/memory/index.ts';
import { InfraNodeProvisioner, infraSpecCodec } from '../../src/infra/index.ts';
import type { InfraBackend } from '../../src/infra/index.ts';
import { CIRCUITS_META, DEFAULT_FAULT_POLICY, DesiredGraph, fault, GONE_ALREADY, GOALS_EMPTY_META, Reconciler, SqliteStateStore, storedEdges, storedRefs } from '../../src/runtime/index.ts';
import type { FieldDiff, NodeRecord, Observation, ObservationMemo, ProvisionResult, StateStore } from '../../src/runtime/index.ts';
import type { InfraDesiredNodeSpec } from '../../src/infra/index.ts';
import { capturingLogger, compileYaml, fileNode, goalYaml, harness, wrapMemory } from '../support/controller-harness.ts';
import { counted, refusing } from '../support/store-commits.ts';
import type { Harness, HarnessOptions } from '../support/controller-harness.ts';

/**
 * Takes from node `id`'s record, in the state in `dir`, the referenced outputs kept with it
 * (`RecordSnapshot.refs`); `goalDigestOnly`: and from its applied digest the resolved spec's (after the
 * slash), as a version that kept neither wrote it.
 */
function withoutRefs(dir: string, id: string, { goalDigestOnly }: { goalDigestOnly: boolean }): void {
  const db = new Database(join(dir, 'state.db'));
  try {
    const { snapshot, applied_digest: digest } = db.prepare('SELECT snapshot, applied_digest FROM nodes WHERE id = ?').get(id) as { snapshot: string; applied_digest: string };
    const { refs: _refs, ...without } = JSON.parse(snapshot) as Record<string, unknown>;
    db.prepare('UPDATE nodes SET snapshot = ?, applied_digest = ? WHERE id = ?').run(JSON.stringify(without), goalDigestOnly ? digest.split('/')[0] : digest, id);
  } finally {
    db.close();
  }
}

const open: Harness[] = [];
function start(options: HarnessOptions = {}): Harness {
  const h = harness(options);
  open.push(h);
  return h;
}
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

const MIN = 60_000;
const abc = goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }) + fileNode('c', 'C'));

function statusOf(h: Harness, id: string): string | undefined {
  return h.store.getNode(id)?.status;
}

function contentOf(h: Harness, id: string): unknown {
  return (h.backend.snapshot().get(id)?.spec as { content?: unknown } | undefined)?.content;
}

async function converged(yaml = abc, options: HarnessOptions = {}): Promise<Harness> {
  const h = start(options);
  const { graph, gates } = compileYaml(yaml);
  await h.controller.setGraph(graph, { gates });
  await h.settle();
  return h;
}

describe('Controller: convergence and steady state', () => {
  it('converges from nothing: every node created exactly once, dependencies first', async () => {
    const h = await converged();
    for (const id of ['a', 'b', 'c']) {
      expect(h.backend.createCount(id)).toBe(1);
      expect(statusOf(h, id)).toBe('ready');
    }
    expect(h.calls.created.indexOf('a')).toBeLessThan(h.calls.created.indexOf('b'));
    expect(h.controller.ready).toBe(true);
  });

  it("a converge from nothing counts no node blocked in its run (history's ⊘): waiting for a dependency being made is not being blocked", async () => {
    const chain = goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }) + fileNode('c', 'C', { dependsOn: ['b'] }) + fileNode('d', 'D', { dependsOn: ['c'] }));
    const h = await converged(chain);
    expect(h.calls.created).toEqual(['a', 'b', 'c', 'd']);
    expect(h.store.listRuns(1)[0]?.summary).toMatchObject({ created: 4, blocked: 0 });
  });

  it('steady state re-observes on the interval and writes nothing to the store', async () => {
    const h = await converged();
    const before = h.store.listNodes();
    h.calls.reset();
    await h.advance(5 * MIN, 10_000);
    // Observed about once a minute each, never changed.
    expect(h.calls.observed.filter((id) => id === 'a').length).toBeGreaterThanOrEqual(4);
    expect(h.calls.created.length + h.calls.updated.length).toBe(0);
    expect(h.store.listNodes()).toEqual(before);
    expect(h.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
  });

  it('steady re-observations of many nodes come in a few batches per interval, not one backend call per node', async () => {
    // Per-node jitter spreads the nodes' due times; each due time observed alone costs a batch per node
    // (a 300-file daemon spent ~100 ms of CPU a pass, 30× what one batch of them costs).
    let seed = 7;
    const rng = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    let batches = 0;
    const nodes = Array.from({ length: 500 }, (_, i) => fileNode(`n${i}`, 'x')).join('');
    const h = await converged(goalYaml(nodes), {
      rng,
      wrap: (b) =>
        wrapMemory(b, 'memory', {
          observe: (list, ctx) => {
            batches++;
            return b.observe(list, ctx);
          },
        }),
    });
    h.calls.reset();
    batches = 0;
    await h.advance(10 * MIN, 1000);
    // Every node still observed about once an interval (±10 % jitter)…
    const n0 = h.calls.observed.filter((id) => id === 'n0').length;
    expect(n0).toBeGreaterThanOrEqual(9);
    expect(n0).toBeLessThanOrEqual(12);
    // …in a bounded number of batches per interval, whatever the number of nodes: at most one per
    // schedule slot (50 an interval) and worker loop (2 at the default concurrency), ~4,750 (one per node) before.
    expect(batches).toBeLessThanOrEqual(10 * 50 * 2);
  });
});

/** The memory backend, each diff of a drifted node it observes changed by `mark`. */
const markingDiffs =
  (mark: (d: FieldDiff) => FieldDiff) =>
  (b: MemoryBackend): InfraBackend =>
    wrapMemory(b, 'memory', {
      observe: async (list, ctx) => {
        const out = new Map(await b.observe(list, ctx));
        for (const [id, obs] of out) if (obs.status === 'drifted') out.set(id, { ...obs, diffs: obs.diffs.map(mark) });
        return out;
      },
    });

/** The memory backend, its diffs of `content` marked as a rotated secret (as a backend keeping a digest of the secret it last set says). */
const rotatingContent = markingDiffs((d) => (d.path === 'content' ? { ...d, cause: 'secret-rotated' as const } : d));

describe('Controller: a slow operation holds up only its own node', () => {
  it('a batch-mate done with is given back at once: its dependent is made while the slow create still runs, and a hand edit corrected', async () => {
    let releaseSlow: () => void = () => undefined;
    const slowGate = new Promise<void>((resolve) => (releaseSlow = resolve));
    const wrap = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        create: async (n, ctx) => {
          if (n.id === 'slow') await slowGate;
          return b.create(n, ctx);
        },
      });
    const h = start({ wrap });
    // One batch at the start: slow and fast are made together; dep waits for fast.
    const { graph, gates } = compileYaml(goalYaml(fileNode('slow', 'S') + fileNode('fast', 'F') + fileNode('dep', 'D', { dependsOn: ['fast'] })));
    await h.controller.setGraph(graph, { gates });
    const turn = async (): Promise<void> => {
      await h.clock.advanceAsync(100);
      await new Promise((r) => setImmediate(r));
    };
    try {
      for (let i = 0; i < 30 && contentOf(h, 'dep') !== 'D'; i++) await turn();
      expect(contentOf(h, 'fast')).toBe('F');
      expect(contentOf(h, 'dep')).toBe('D');
      expect(contentOf(h, 'slow')).toBeUndefined();
      // A hand edit meanwhile, the slow create still running: corrected now, not after it.
      h.backend.tamper('fast', { content: 'hand' });
      for (let i = 0; i < 30 && contentOf(h, 'fast') !== 'F'; i++) await turn();
      expect(contentOf(h, 'fast')).toBe('F');
    } finally {
      releaseSlow();
    }
    await h.settle();
    expect(contentOf(h, 'slow')).toBe('S');
    expect(h.calls.created.sort()).toEqual(['dep', 'fast', 'slow']);
    expect(h.calls.updated).toEqual(['fast']);
  });
});

describe('Controller: drift no update can correct (FieldDiff.cannotCorrect)', () => {
  /** The memory backend, its `mode` diffs marked as no update can correct. */
  const fixedMode = markingDiffs((d) => (d.path === 'mode' ? { ...d, cannotCorrect: 'fixed at creation' } : d));

  it('alone: reported once, never handed to update, the node drifted with why', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A')), { wrap: fixedMode });
    h.backend.tamper('a', { mode: '0600' });
    await h.advance(3 * MIN, 10_000);
    expect(h.calls.updated).toEqual([]);
    expect(h.store.listDrift()).toEqual([expect.objectContaining({ node: 'a', action: 'reported', diffs: [expect.objectContaining({ path: 'mode', cannotCorrect: 'fixed at creation' })] })]);
    expect(h.lines.filter((l) => l.msg === 'drift detected')).toHaveLength(1);
    expect(h.store.getNode('a')).toMatchObject({ status: 'drifted', reason: 'drift reported (fixed at creation)' });
  });

  it('beside drift it can correct: the update gets only that, and the node stays drifted with why', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A')), { wrap: fixedMode });
    h.backend.tamper('a', { mode: '0600', content: 'hand' });
    await h.settle();
    expect(h.calls.updated).toEqual(['a']);
    expect(contentOf(h, 'a')).toBe('A');
    expect(h.store.listDrift()).toEqual([expect.objectContaining({ node: 'a', action: 'corrected' })]);
    expect(h.store.getNode('a')).toMatchObject({ status: 'drifted', reason: 'drift reported (fixed at creation)' });
  });

  it('asked for by a changed goal: the node fails, permanently, naming the field, with no backend call', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A')), { wrap: fixedMode });
    const { graph, gates } = compileYaml(goalYaml(fileNode('a', 'A', { mode: '0600' })));
    await h.controller.setGraph(graph, { gates });
    await h.settle();
    expect(h.calls.updated).toEqual([]);
    expect(h.store.getNode('a')?.lastFault).toMatchObject({ class: 'permanent', code: 'cannot-correct', message: 'mode is "0644", not "0600", and no update can change it: fixed at creation' });
  });
});

describe('Controller: a drifted dependency and its dependents', () => {
  /**
   * The memory backend, its `mode` diffs marked as no update can correct and as making the resource unusable to
   * its dependents (as the local backend marks a symlink where a managed directory should be), and `b` failing
   * permanently to be observed while `a`'s mode is not 0644 (a file under a directory that is a symlink now) or
   * `failing.always`.
   */
  const unusable = (d: FieldDiff): FieldDiff => (d.path === 'mode' ? { ...d, cannotCorrect: 'fixed at creation', blocksDependents: true } : d);
  const brokenUnder =
    (failing: { always: boolean } = { always: false }) =>
    (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        observe: async (list, ctx) => {
          const out = new Map(await b.observe(list, ctx));
          for (const [id, obs] of out) if (obs.status === 'drifted') out.set(id, { ...obs, diffs: obs.diffs.map(unusable) });
          const aMode = (b.snapshot().get('a')?.spec as { mode?: string } | undefined)?.mode;
          if ((failing.always || aMode !== '0644') && out.has('b')) out.set('b', { status: 'failed', fault: fault('permanent', 'a is broken') });
          return out;
        },
      });
  const ab = (extra = ''): string => goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }) + extra);

  it('drift that makes it unusable to them (blocksDependents) blocks its dependents (no attempt spent) until it is put right; then they are looked at at once', async () => {
    const h = await converged(ab(), { wrap: brokenUnder() });
    h.backend.tamper('a', { mode: '0600' });
    h.backend.tamper('b', { content: 'hand' });
    await h.advance(5 * MIN, 10_000);
    expect(h.store.getNode('a')).toMatchObject({ status: 'drifted', reason: 'drift reported (fixed at creation)' });
    expect(h.store.getNode('b')).toMatchObject({ status: 'blocked', reason: 'waiting for a', attempts: 0 });
    expect(h.calls.updated).toEqual([]);
    // Put right by hand: its dependent goes on at once, not on its interval.
    h.calls.reset();
    h.backend.tamper('a', { mode: '0644' });
    await h.settle();
    expect(h.store.getNode('a')?.status).toBe('ready');
    expect(h.store.getNode('b')).toMatchObject({ status: 'ready', attempts: 0 });
    expect(h.calls.updated).toEqual(['b']);
    expect(contentOf(h, 'b')).toBe('B');
    await h.controller.stop(1000);
    expect(h.store.listRuns(1)[0]?.summary).toMatchObject({ blocked: 1 });
  });

  it('drift no update can correct that leaves it usable (a database\'s encoding) blocks nothing: its dependent\'s drift is corrected, a new dependent made', async () => {
    // As the postgres backend marks a database's encoding: cannotCorrect, and the schemas in it work as ever.
    const h = await converged(ab(), { wrap: markingDiffs((d) => (d.path === 'mode' ? { ...d, cannotCorrect: 'fixed at creation' } : d)) });
    h.backend.tamper('a', { mode: '0600' });
    await h.settle();
    expect(h.store.getNode('a')).toMatchObject({ status: 'drifted', reason: 'drift reported (fixed at creation)' });
    h.backend.tamper('b', { content: 'hand' });
    await h.settle();
    expect(h.calls.updated).toEqual(['b']);
    expect(h.store.getNode('b')).toMatchObject({ status: 'ready', attempts: 0 });
    expect(contentOf(h, 'b')).toBe('B');
    const { graph, gates } = compileYaml(ab(fileNode('c', 'C', { dependsOn: ['a'] })));
    await h.controller.setGraph(graph, { gates });
    await h.settle();
    expect(h.store.getNode('c')?.status).toBe('ready');
    expect(contentOf(h, 'c')).toBe('C');
    await h.controller.stop(1000);
    expect(h.store.listRuns(1)[0]?.summary).toMatchObject({ blocked: 0 });
  });

  it('a flapping dependency waiting out its backoff blocks nothing: its dependent\'s drift is corrected meanwhile', async () => {
    const h = await converged(ab());
    h.backend.tamper('a', { content: 'theirs' });
    await h.settle();
    h.backend.tamper('a', { content: 'theirs' });
    await h.settle();
    expect(h.store.getNode('a')).toMatchObject({ status: 'drifted', reason: expect.stringMatching(/^flapping drift; next correction in/) });
    h.calls.reset();
    h.backend.tamper('b', { content: 'hand' });
    await h.settle();
    expect(h.calls.updated).toEqual(['b']);
    expect(h.store.getNode('b')).toMatchObject({ status: 'ready' });
    expect(h.store.getNode('a')?.status).toBe('drifted');
  });

  it('a desired change applied beside drift that blocks (a rotated secret): the drift left, not what was applied, keeps the dependents waiting', async () => {
    const h = await converged(ab(), { wrap: markingDiffs((d) => (d.path === 'content' ? { ...d, cause: 'secret-rotated' as const } : unusable(d))) });
    h.backend.tamper('a', { content: 'old', mode: '0600' });
    h.backend.tamper('b', { content: 'hand' });
    await h.settle();
    expect(h.calls.updated).toEqual(['a']);
    expect(contentOf(h, 'a')).toBe('A');
    expect(h.store.getNode('a')).toMatchObject({ status: 'drifted', reason: 'drift reported (fixed at creation)' });
    expect(h.store.getNode('b')).toMatchObject({ status: 'blocked', reason: 'waiting for a' });
    expect(contentOf(h, 'b')).toBe('hand');
  });

  it('after a restart, a dependency stored drifted is looked at before its dependents act: they are blocked again, nothing done to them', async () => {
    // What blocks is known in memory only (`blockingDrift`): the first look at the dependency says it again.
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-restart-'));
    const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: capturingLogger().log });
    const { graph, gates } = compileYaml(ab());
    const first = harness({ dir, backend, wrap: brokenUnder() });
    let second: Harness | undefined;
    try {
      await first.controller.setGraph(graph, { gates });
      await first.settle();
      backend.tamper('a', { mode: '0600' });
      await first.advance(2 * MIN, 10_000);
      expect(first.store.getNode('b')?.status).toBe('blocked');
      await first.close();
      // Meanwhile b is edited by hand, and is observed without failing (a file under a symlink that leads inside the root).
      backend.tamper('b', { content: 'hand' });
      second = harness({ dir, backend, wrap: markingDiffs(unusable) });
      await second.controller.setGraph(graph, { gates });
      await second.settle();
      expect(second.calls.updated).toEqual([]);
      expect(second.store.getNode('a')?.status).toBe('drifted');
      expect(second.store.getNode('b')).toMatchObject({ status: 'blocked', reason: 'waiting for a' });
      expect(contentOf(second, 'b')).toBe('hand');
    } finally {
      await second?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /**
   * The memory backend, a resource's `path` output standing in for an output that follows what is there, hand
   * edits too, as the local backend's `sha256` follows a file's content: it is the content as it is.
   */
  const contentOutput = (b: MemoryBackend): InfraBackend => {
    const withPath = <T extends Observation | ProvisionResult>(id: string, r: T): T =>
      'outputs' in r && 'path' in r.outputs ? { ...r, outputs: { ...r.outputs, path: (b.snapshot().get(id)?.spec as { content?: string } | undefined)?.content ?? null } } : r;
    return wrapMemory(b, 'memory', {
      observe: async (list, ctx) => new Map([...(await b.observe(list, ctx))].map(([id, obs]) => [id, withPath(id, obs)])),
      create: async (n, ctx) => withPath(n.id, await b.create(n, ctx)),
      update: async (n, d, ctx) => withPath(n.id, await b.update(n, d, ctx)),
    });
  };
  /** `b`'s content is `a`'s (`contentOutput`). */
  const referencing = (settings: { selfHeal?: boolean; ignoreFields?: string[] } = {}): string =>
    goalYaml(fileNode('a', 'A', settings.ignoreFields === undefined ? {} : { ignoreFields: settings.ignoreFields }) + fileNode('b', '${nodes.a.outputs.path}'), { selfHeal: settings.selfHeal ?? true });

  it('a flapping dependency waiting out its backoff keeps the outputs it was applied with: its dependent is never rewritten to the hand edit, nor back', async () => {
    const h = await converged(referencing(), { wrap: contentOutput, intervalMs: 5000 });
    expect(contentOf(h, 'b')).toBe('A');
    h.calls.reset();
    // Something else rewrites a every second for a minute, while b is looked at every five seconds.
    let waited = 0;
    for (let s = 0; s < 60; s++) {
      h.backend.tamper('a', { content: `loop ${s}` });
      await h.advance(1000, 1000);
      if (/^flapping drift; next correction in/.test(h.store.getNode('a')?.reason ?? '')) waited++;
      expect(h.store.getNode('a')?.outputs).toMatchObject({ path: 'A' });
    }
    expect(waited).toBeGreaterThan(10);
    expect(h.calls.updated.filter((id) => id === 'a').length).toBeGreaterThan(1);
    // Left alone, a is corrected once its backoff is over: nothing changes for b either.
    await h.advance(5 * MIN, 10_000);
    expect(h.store.getNode('a')).toMatchObject({ status: 'ready', outputs: { path: 'A' } });
    expect(contentOf(h, 'a')).toBe('A');
    expect(h.calls.updated.filter((id) => id === 'b')).toEqual([]);
    expect(h.store.getNode('b')).toMatchObject({ status: 'ready' });
    expect(contentOf(h, 'b')).toBe('A');
    expect(h.store.listDrift().map((r) => r.node)).not.toContain('b');
  });

  // The outputs read are those of what is there, and stays: an output that changed, applied as a goal change.
  it.each([
    { left: 'selfHeal: false', settings: { selfHeal: false } },
    { left: 'ignoreFields', settings: { ignoreFields: ['content'] } },
  ])('drift left as it is ($left) gives the outputs read: its dependent is updated to them', async ({ settings }) => {
    const h = await converged(referencing(settings), { wrap: contentOutput });
    h.calls.reset();
    h.backend.tamper('a', { content: 'hand' });
    await h.advance(2 * MIN, 10_000);
    expect(contentOf(h, 'a')).toBe('hand');
    expect(h.store.getNode('a')?.outputs).toMatchObject({ path: 'hand' });
    expect(h.calls.updated).toEqual(['b']);
    expect(h.store.getNode('b')).toMatchObject({ status: 'ready' });
    expect(contentOf(h, 'b')).toBe('hand');
  });

  it('drift only reported (selfHeal: false) blocks nothing: the dependent is reconciled as usual', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }), { selfHeal: false }));
    h.backend.tamper('a', { content: 'hand' });
    await h.settle();
    expect(h.store.getNode('a')?.status).toBe('drifted');
    h.backend.tamper('b', { content: 'other' });
    await h.settle();
    expect(h.store.getNode('b')).toMatchObject({ status: 'drifted', reason: 'drift reported (selfHeal: false)' });
    expect(h.store.listDrift().map((r) => r.node)).toEqual(['a', 'b']);
  });

  it('a dependent that failed while its dependency was not ready is looked at as soon as the dependency is ready, not after its backoff', async () => {
    const failing = { always: false };
    // Its failure waits long (10 min at the harness's mid-range jitter) before its retry.
    const slow = { baseMs: 20 * MIN, maxMs: 20 * MIN, retryBudget: Number.POSITIVE_INFINITY, holdAfterBudget: false };
    const h = await converged(ab(), { wrap: brokenUnder(failing), faultPolicy: { ...DEFAULT_FAULT_POLICY, permanent: slow }, intervalMs: 60 * MIN });
    // b is looked at alone and fails, then a is found drifted.
    failing.always = true;
    h.controller.notifyChanged(['b']);
    await h.settle();
    expect(h.store.getNode('b')).toMatchObject({ status: 'failed', retryAt: h.clock.now() + 10 * MIN });
    h.backend.tamper('a', { mode: '0600' });
    await h.settle();
    expect(h.store.getNode('a')?.status).toBe('drifted');
    // a put right: b goes on now.
    failing.always = false;
    h.backend.tamper('a', { mode: '0644' });
    await h.settle();
    expect(h.store.getNode('a')?.status).toBe('ready');
    expect(h.store.getNode('b')).toMatchObject({ status: 'ready', retryAt: null, attempts: 0 });
  });
});

describe('Controller: the run counts nodes', () => {
  it('a node failing at every retry counts once as failed, as the other columns count nodes', async () => {
    const wrap = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', { create: async (n, ctx) => (n.id === 'a' ? { status: 'failed', fault: fault('transient', 'down') } : b.create(n, ctx)) });
    const h = await converged(goalYaml(fileNode('a', 'A') + fileNode('b', 'B')), { wrap });
    await h.advance(10 * MIN, 10_000);
    expect(h.calls.created.filter((id) => id === 'a').length).toBeGreaterThanOrEqual(3);
    await h.controller.stop(1000);
    expect(h.store.listRuns(10).at(-1)?.summary).toMatchObject({ created: 1, failed: 1 });
  });
});

describe('Controller: an operation the shutdown cuts off', () => {
  it('is left pending, as after a crash, and the node is not recorded as failed', async () => {
    const wrap = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        // Runs until it is told to stop (an update past the shutdown's grace).
        update: (_n, _diffs, ctx) =>
          new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve({ status: 'failed', fault: fault('transient', 'update command aborted', { code: 'aborted' }) }), { once: true })),
      });
    const h = await converged(goalYaml(fileNode('a', 'A')), { wrap });
    h.backend.tamper('a', { content: 'hand' });
    await h.clock.advanceAsync(100);
    await new Promise((r) => setImmediate(r));
    expect(h.store.pendingOperations().map((o) => `${o.node}:${o.op}`)).toEqual(['a:update']);
    const stopping = h.controller.stop(1000);
    await h.clock.advanceAsync(1000);
    await stopping;
    expect(h.store.pendingOperations().map((o) => `${o.node}:${o.op}`)).toEqual(['a:update']);
    expect(h.store.getNode('a')).toMatchObject({ status: 'pending', reason: 'update cut off by the shutdown; observed again at the next start', lastFault: null });
    expect(h.lines.filter((l) => l.msg === 'update failed')).toEqual([]);
    expect(h.lines.filter((l) => l.msg === 'operation cut off by the shutdown; left pending')).toHaveLength(1);
  });

  it('so is a create cut short: no attempt spent, the node pending and its create left pending for the next read', async () => {
    const wrap = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        // Runs until it is told to stop, then is killed mid-way (an exec create past the shutdown's grace).
        create: (_n, ctx) =>
          new Promise((resolve) =>
            ctx.signal.addEventListener('abort', () => resolve({ status: 'failed', fault: fault('transient', 'create command aborted', { code: 'aborted', cutShort: true }) }), { once: true }),
          ),
      });
    const h = start({ wrap });
    await h.controller.setGraph(compileYaml(goalYaml(fileNode('a', 'A'))).graph);
    await vi.waitFor(() => expect(h.store.pendingOperations().map((o) => `${o.node}:${o.op}`)).toEqual(['a:create']));
    const stopping = h.controller.stop(1000);
    await h.clock.advanceAsync(1000);
    await stopping;
    expect(h.store.pendingOperations().map((o) => `${o.node}:${o.op}`)).toEqual(['a:create']);
    expect(h.store.getNode('a')).toMatchObject({ status: 'pending', reason: 'create cut off by the shutdown; observed again at the next start', lastFault: null, attempts: 0 });
    expect(h.lines.filter((l) => l.msg === 'create failed')).toEqual([]);
    expect(h.lines.filter((l) => l.msg === 'operation cut off by the shutdown; left pending')).toMatchObject([{ node: 'a', op: 'create' }]);
  });

  it('so is the delete of a removed node that a goal load runs (setGraph): within the grace, the node kept, and deleted at the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-cut-delete-'));
    const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: capturingLogger().log });
    const pruned = compileYaml(goalYaml(fileNode('k', 'K'), { prune: true })).graph;
    // Runs until it is told to stop (a delete past the shutdown's grace).
    const endless = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        delete: (_n, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve({ status: 'failed', fault: fault('transient', 'delete command aborted', { code: 'aborted' }) }), { once: true })),
      });
    const first = harness({ dir, backend, wrap: endless });
    let second: Harness | undefined;
    try {
      await first.controller.setGraph(compileYaml(goalYaml(fileNode('k', 'K') + fileNode('a', 'A', { deletionPolicy: 'Delete' }), { prune: true })).graph);
      await first.settle();
      const loading = first.controller.setGraph(pruned);
      // Begun once a's read before its delete has found it.
      await vi.waitFor(() => expect(first.store.pendingOperations().map((o) => `${o.node}:${o.op}`)).toEqual(['a:delete']));
      const stopping = first.controller.stop(1000);
      await first.clock.advanceAsync(1000);
      await stopping;
      // Cut off and recorded by the stop itself, not whenever the load's delete would have ended.
      expect(first.store.pendingOperations().map((o) => `${o.node}:${o.op}`)).toEqual(['a:delete']);
      expect(first.store.getNode('a')).toMatchObject({ reason: 'delete cut off by the shutdown; read again at the next start, and deleted if still there', lastFault: null, attempts: 0 });
      expect(first.lines.filter((l) => l.msg === 'delete failed')).toEqual([]);
      expect(first.lines.filter((l) => l.msg === 'operation cut off by the shutdown; left pending')).toMatchObject([{ node: 'a', op: 'delete' }]);
      await loading;
      await first.close();

      second = harness({ dir, backend });
      await second.controller.setGraph(pruned);
      await second.settle();
      expect(second.calls.deleted).toEqual(['a']);
      expect(backend.snapshot().has('a')).toBe(false);
      expect(second.store.getNode('a')).toBeUndefined();
      expect(second.store.pendingOperations()).toEqual([]);
      const db = new Database(join(dir, 'state.db'), { readonly: true });
      try {
        expect(db.prepare("SELECT outcome, detail FROM operations WHERE node = 'a' AND op = 'delete' ORDER BY id").all()).toEqual([
          { outcome: 'abandoned', detail: 'interrupted; deleted again' },
          { outcome: 'done', detail: null },
        ]);
      } finally {
        db.close();
      }
    } finally {
      await second?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Controller: a record\'s updatedAt', () => {
  it('moves when a drift is corrected, though the record reads as before, and not on a steady pass', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A')));
    const created = h.store.getNode('a')!.updatedAt;
    await h.advance(120_000, 10_000);
    expect(h.store.getNode('a')!.updatedAt).toBe(created);
    h.backend.tamper('a', { content: 'evil' });
    await h.advance(10_000, 1000);
    expect(h.calls.updated).toEqual(['a']);
    expect(h.store.getNode('a')).toMatchObject({ status: 'ready' });
    expect(h.store.getNode('a')!.updatedAt).toBeGreaterThanOrEqual(created + 120_000);
    await h.close();
  });
});

describe('Controller: an output that changes is a change of the goal of the nodes that reference it, not drift', () => {
  /** `a` at `path`, and `b` whose content is `a`'s path output (the memory backend outputs a spec's path). */
  const referencing = (path: string, selfHeal: boolean): string =>
    goalYaml(
      `    - id: a
      type: local.file
      spec: { path: ${path}, content: A, mode: "0644" }
    - id: b
      type: local.file
      spec: { path: b.txt, content: "\${nodes.a.outputs.path}", mode: "0644" }
`,
      { selfHeal },
    );

  it.each([{ selfHeal: false }, { selfHeal: true }])('selfHeal: $selfHeal: the referencing node is updated, never reported as drift', async ({ selfHeal }) => {
    const h = await converged(referencing('a.txt', selfHeal));
    expect(contentOf(h, 'b')).toBe('a.txt');
    h.calls.reset();
    const { graph, gates } = compileYaml(referencing('a2.txt', selfHeal));
    await h.controller.setGraph(graph, { gates });
    await h.settle();
    expect(contentOf(h, 'b')).toBe('a2.txt');
    expect(h.calls.updated).toEqual(['a', 'b']);
    expect(statusOf(h, 'b')).toBe('ready');
    expect(h.store.listDrift()).toEqual([]);
    expect(h.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
    // Recorded at what it was applied at: the next passes are steady.
    h.calls.reset();
    await h.advance(2 * MIN, 10_000);
    expect(h.calls.updated).toEqual([]);
    expect(h.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
  });

  // The daemon does not hold back an up-to-date node's success for a dependency in flight: the producer's
  // new outputs may be recorded while the node's observation, resolved with the old ones, is under way.
  it('a producer given new outputs while a referencing node is observed: the node never keeps them beside the digest of the old ones', async () => {
    let path = 'a.txt';
    let holdB = false;
    let entered = (): void => undefined;
    const bEntered = new Promise<void>((resolve) => (entered = resolve));
    let release = (): void => undefined;
    const bReleased = new Promise<void>((resolve) => (release = resolve));
    // a's observations say its path output is `path`; b's first observation once `holdB` waits for `release`.
    const wrap = (m: MemoryBackend): InfraBackend =>
      wrapMemory(m, 'memory', {
        observe: async (list, ctx) => {
          if (holdB && list.some((n) => n.id === 'b')) {
            holdB = false;
            entered();
            await bReleased;
          }
          const out = new Map(await m.observe(list, ctx));
          const a = out.get('a');
          if (a !== undefined && 'outputs' in a) out.set('a', { ...a, outputs: { ...a.outputs, path } });
          return out;
        },
      });
    // Every record of b the store is given.
    const written: NodeRecord[] = [];
    const wrapStore = (store: SqliteStateStore): StateStore =>
      new Proxy(store, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (typeof value !== 'function') return value;
          const method = (value as (...a: unknown[]) => unknown).bind(target);
          if (prop !== 'putNodes') return method;
          return (records: readonly NodeRecord[]) => {
            written.push(...records.filter((r) => r.id === 'b'));
            return method(records);
          };
        },
      });
    const h = await converged(goalYaml(fileNode('a', 'A', { interval: '1h' }) + fileNode('b', '${nodes.a.outputs.path}', { interval: '1m' })), { wrap, wrapStore });
    const before = h.store.getNode('b')!.appliedDigest;
    try {
      holdB = true;
      // b's interval comes (its due time rounded up to a schedule slot); a's is an hour.
      await h.clock.advanceAsync(2 * MIN);
      await bEntered;
      // Meanwhile the other worker reads a, whose outputs changed.
      path = 'a-new.txt';
      const all = h.controller.reconcileAll();
      await vi.waitFor(() => expect(h.store.getNode('a')?.outputs).toMatchObject({ path: 'a-new.txt' }));
      release();
      await all;
      await h.settle();
    } finally {
      release();
    }
    // b is updated to the new output, recorded at its new digest with it.
    expect(contentOf(h, 'b')).toBe('a-new.txt');
    const after = h.store.getNode('b')!.appliedDigest;
    expect(after).not.toBe(before);
    const madeWith = new Map([
      [before, 'a.txt'],
      [after, 'a-new.txt'],
    ]);
    // Each record written pairs a digest with the output it was resolved with: the old digest never
    // with the new output (its delete would be handed what it was not made with).
    const applied = written.filter((r) => r.appliedDigest !== null);
    expect(applied.map((r) => [r.appliedDigest, storedRefs(r)?.a?.path])).toEqual(applied.map((r) => [r.appliedDigest, madeWith.get(r.appliedDigest)]));
  });

  it('a hand edit of the referencing node is still drift (only reported under selfHeal: false)', async () => {
    const h = await converged(referencing('a.txt', false));
    h.backend.tamper('b', { content: 'hand' });
    await h.advance(2 * MIN, 10_000);
    expect(contentOf(h, 'b')).toBe('hand');
    expect(statusOf(h, 'b')).toBe('drifted');
    expect(h.store.listDrift()).toEqual([expect.objectContaining({ node: 'b', action: 'reported', diffs: [{ path: 'content', desired: 'a.txt', actual: 'hand' }] })]);
  });
});

describe('Controller: a rotated secret is a change to apply, not drift', () => {
  it.each([{ selfHeal: false }, { selfHeal: true }])('selfHeal: $selfHeal: rotations in a row are each applied, never reported, never a flap', async ({ selfHeal }) => {
    const h = await converged(goalYaml(fileNode('a', 'A'), { selfHeal }), { wrap: rotatingContent });
    for (let i = 0; i < 5; i++) {
      h.backend.tamper('a', { content: `old ${i}` });
      await h.advance(10_000, 1000);
      expect(contentOf(h, 'a')).toBe('A');
    }
    expect(h.calls.updated).toEqual(['a', 'a', 'a', 'a', 'a']);
    expect(h.store.listDrift()).toEqual([]);
    expect(h.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
    expect(h.lines.filter((l) => l.msg === 'secret rotated; applying')).toHaveLength(5);
    expect(statusOf(h, 'a')).toBe('ready');
    // A drift after them is a first occurrence, not a flap of the rotations.
    h.backend.tamper('a', { mode: '0600' });
    await h.advance(10_000, 1000);
    expect(h.store.listDrift()).toEqual([expect.objectContaining({ node: 'a', flapping: false, action: selfHeal ? 'corrected' : 'reported' })]);
  });

  it('with drift beside it under selfHeal: false: the rotation is applied, the drift reported once and left', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A'), { selfHeal: false }), { wrap: rotatingContent });
    h.backend.tamper('a', { content: 'old', mode: '0600' });
    await h.settle();
    expect(h.calls.updated).toEqual(['a']);
    expect(statusOf(h, 'a')).toBe('drifted');
    expect(h.store.getNode('a')?.reason).toBe('drift reported (selfHeal: false)');
    const reports = h.store.listDrift();
    expect(reports).toEqual([expect.objectContaining({ node: 'a', action: 'reported', diffs: [{ path: 'mode', desired: '0644', actual: '0600' }] })]);
    // Still the same occurrence while it lasts: not reported again within the interval. (The memory backend
    // rewrites the whole resource on an update, as `update` may: the drift is put back as a backend that
    // corrects only the fields it is handed, the rotation here, would have left it.)
    h.backend.tamper('a', { mode: '0600' });
    await h.advance(30_000, 1000);
    expect(h.store.listDrift()).toHaveLength(1);
  });
});

describe('Controller: bounded concurrency', () => {
  it.each([3, 10, 20])('never has more operations in flight than its concurrency (%i), across all its worker loops', async (concurrency) => {
    let inFlight = 0;
    let most = 0;
    const slow = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        create: async (n, ctx) => {
          most = Math.max(most, ++inFlight);
          for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
          inFlight--;
          return b.create(n, ctx);
        },
      });
    const h = await converged(goalYaml(Array.from({ length: 60 }, (_, i) => fileNode(`n${i}`, 'x')).join('')), { wrap: slow, extra: { concurrency } });
    expect(h.backend.snapshot().size).toBe(60);
    // As many as it may, and no more: the worker loops (up to 4) share the one bound.
    expect(most).toBe(concurrency);
  });
});

describe('Controller: drift', () => {
  it('a batch commits to the store twice however many nodes drifted: drift reports with the pending operations, then the rest', async () => {
    let commits: ReturnType<typeof counted> | undefined;
    // Concurrency 5: one worker loop, so the ten drifted nodes make one batch.
    const options = { wrapStore: (s: SqliteStateStore) => (commits = counted(s)).store, extra: { concurrency: 5 } };
    const h = await converged(goalYaml(Array.from({ length: 20 }, (_, i) => fileNode(`n${i}`, `N${i}`)).join('')), options);
    h.calls.reset();
    commits!.reset();
    for (let i = 0; i < 20; i += 2) h.backend.tamper(`n${i}`, { content: 'evil' });
    await h.settle();
    expect(h.calls.updated).toHaveLength(10);
    expect(h.store.listDrift()).toHaveLength(10);
    expect(h.store.pendingOperations()).toEqual([]);
    expect(commits!.commits()).toBe(2);
  });

  it('a tampered field is logged as `drift detected`, stored, and corrected', async () => {
    const h = await converged();
    h.backend.tamper('a', { content: 'evil' });
    await h.settle();
    const lines = h.lines.filter((l) => l.msg === 'drift detected');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ node: 'a', backend: 'mem', goal: 'app', action: 'corrected', flapping: false, diffs: [{ path: 'content', desired: 'A', actual: 'evil' }] });
    expect(h.store.listDrift({ node: 'a' })).toEqual([expect.objectContaining({ node: 'a', goal: 'app', backendId: 'mem', action: 'corrected', flapping: false, diffs: [expect.objectContaining({ path: 'content', desired: 'A', actual: 'evil' })] })]);
    expect(contentOf(h, 'a')).toBe('A');
    expect(h.backend.createCount('a')).toBe(1);
    expect(statusOf(h, 'a')).toBe('ready');
  });

  it('once a corrected drift is over, the node is steady again: re-observed on the interval, its dependents left alone', async () => {
    const h = await converged();
    h.backend.tamper('a', { content: 'evil' });
    await h.settle();
    expect(contentOf(h, 'a')).toBe('A');
    await h.advance(2 * MIN, 10_000); // the first observation after the correction ends the occurrence
    h.calls.reset();
    await h.advance(5 * MIN, 10_000);
    // As in a steady state that never drifted: about once a minute each; b is not re-woken by a.
    const observed = (id: string): number => h.calls.observed.filter((x) => x === id).length;
    expect(observed('a')).toBeGreaterThanOrEqual(4);
    expect(observed('a')).toBeLessThanOrEqual(6);
    expect(observed('b')).toBeLessThanOrEqual(6);
    expect(h.calls.updated).toEqual([]);
  });

  it('selfHeal: false reports once and never corrects', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A'), { selfHeal: false }));
    h.backend.tamper('a', { content: 'evil' });
    await h.settle();
    await h.advance(10 * MIN, 30_000);
    expect(contentOf(h, 'a')).toBe('evil');
    expect(h.calls.updated).toEqual([]);
    expect(statusOf(h, 'a')).toBe('drifted');
    const reports = h.store.listDrift({ node: 'a' });
    expect(reports).toHaveLength(1);
    expect(reports[0]!.action).toBe('reported');
    expect(h.lines.filter((l) => l.msg === 'drift detected')[0]).toMatchObject({ node: 'a', action: 'reported' });
  });

  it('selfHeal: false, across a restart: the outstanding drift is neither reported again nor first seen anew; a new value is', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-drift-restart-'));
    try {
      const yaml = goalYaml(fileNode('a', 'A'), { selfHeal: false });
      const first = await converged(yaml, { dir });
      first.backend.tamper('a', { content: 'evil' });
      await first.settle();
      const [reported] = first.store.listDrift({ node: 'a' });
      expect(reported).toMatchObject({ action: 'reported' });
      await first.advance(2 * MIN, 30_000);
      await first.close();

      const second = await converged(yaml, { dir, backend: first.backend });
      await second.advance(2 * MIN, 30_000);
      expect(second.store.listDrift({ node: 'a' })).toEqual([reported]);
      expect(second.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
      // Another value of the same field, past the interval: reported, first seen when the drift began.
      second.backend.tamper('a', { content: 'worse' });
      await second.advance(2 * MIN, 30_000);
      const reports = second.store.listDrift({ node: 'a' });
      expect(reports).toHaveLength(2);
      expect(reports[1]).toMatchObject({ firstSeen: reported!.firstSeen, diffs: [expect.objectContaining({ actual: 'worse' })] });
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a correction that fails leaves its report saying so; the retry that corrects it, corrected', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A')), { memory: { faults: [{ op: 'update', node: 'a', class: 'transient', times: 1 }] } });
    h.backend.tamper('a', { content: 'evil' });
    await h.settle();
    expect(statusOf(h, 'a')).toBe('failed');
    expect(h.store.listDrift({ node: 'a' })).toEqual([expect.objectContaining({ action: 'correction-failed' })]);
    await h.advance(2 * MIN, 1000);
    expect(contentOf(h, 'a')).toBe('A');
    expect(h.store.listDrift({ node: 'a' })).toEqual([expect.objectContaining({ action: 'corrected' })]);
  });

  it('a drift only reported, corrected once selfHeal is switched on: its report says corrected', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A'), { selfHeal: false }));
    h.backend.tamper('a', { content: 'evil' });
    await h.settle();
    expect(h.store.listDrift({ node: 'a' })).toEqual([expect.objectContaining({ action: 'reported' })]);
    const { graph, gates } = compileYaml(goalYaml(fileNode('a', 'A')));
    await h.controller.setGraph(graph, { gates });
    await h.advance(2 * MIN, 1000);
    expect(contentOf(h, 'a')).toBe('A');
    expect(h.store.listDrift({ node: 'a' })).toEqual([expect.objectContaining({ action: 'corrected' })]);
  });

  /** A converged `a` whose second hand edit in a row flaps: its correction waits out the backoff. */
  async function flappingNow(options: HarnessOptions = {}): Promise<Harness> {
    const h = await converged(goalYaml(fileNode('a', 'A')), options);
    h.backend.tamper('a', { content: 'theirs' });
    await h.settle();
    h.backend.tamper('a', { content: 'again' });
    await h.settle();
    expect(h.store.getNode('a')).toMatchObject({ status: 'drifted', reason: expect.stringMatching(/^flapping drift; next correction in/) });
    return h;
  }

  it('a flapping drift waiting out its backoff is reported, not corrected, until its correction runs: then corrected', async () => {
    const h = await flappingNow();
    expect(contentOf(h, 'a')).toBe('again');
    expect(h.store.listDrift({ node: 'a' }).at(-1)).toMatchObject({ action: 'reported', flapping: true });
    expect(h.lines.filter((l) => l.msg === 'drift detected').at(-1)).toMatchObject({ action: 'reported', flapping: true });
    await h.advance(10_000, 1000);
    expect(contentOf(h, 'a')).toBe('A');
    expect(h.store.listDrift({ node: 'a' }).map((r) => [r.action, r.flapping])).toEqual([
      ['corrected', false],
      ['corrected', true],
    ]);
  });

  it.each([
    { name: 'selfHeal is switched off', yaml: goalYaml(fileNode('a', 'A'), { selfHeal: false }), status: 'drifted' },
    { name: 'the field is ignored', yaml: goalYaml(fileNode('a', 'A', { ignoreFields: ['content'] })), status: 'ready' },
  ])('a flapping drift whose correction is dropped while it waits ($name) is left as found, and its report says reported', async ({ yaml, status }) => {
    const h = await flappingNow();
    const { graph, gates } = compileYaml(yaml);
    await h.controller.setGraph(graph, { gates });
    await h.advance(2 * MIN, 1000);
    expect(contentOf(h, 'a')).toBe('again');
    expect(statusOf(h, 'a')).toBe(status);
    expect(h.calls.updated).toEqual(['a']);
    expect(h.store.listDrift({ node: 'a' }).map((r) => [r.action, r.flapping])).toEqual([
      ['corrected', false],
      ['reported', true],
    ]);
  });

  it.each([
    { selfHeal: false, content: 'again', action: 'reported' },
    { selfHeal: true, content: 'A', action: 'corrected' },
  ])('a flapping drift still waiting when the daemon stops is not reported again by the next (selfHeal: $selfHeal): its report is resumed', async ({ selfHeal, content, action }) => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-flap-restart-'));
    try {
      const first = await flappingNow({ dir });
      const yaml = goalYaml(fileNode('a', 'A'), { selfHeal });
      const { graph, gates } = compileYaml(yaml);
      await first.controller.setGraph(graph, { gates });
      await first.settle();
      const waiting = first.store.listDrift({ node: 'a' }).at(-1)!;
      await first.close();

      const second = await converged(yaml, { dir, backend: first.backend });
      await second.advance(2 * MIN, 1000);
      expect(contentOf(second, 'a')).toBe(content);
      expect(second.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
      expect(second.store.listDrift({ node: 'a' }).at(-1)).toEqual({ ...waiting, action });
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('selfHeal: false: a drift the daemon reported is not reported again by the apply after it, nor first seen anew', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-drift-apply-'));
    try {
      const yaml = goalYaml(fileNode('a', 'A'), { selfHeal: false });
      const { graph } = compileYaml(yaml);
      const daemon = await converged(yaml, { dir });
      daemon.backend.tamper('a', { content: 'evil' });
      await daemon.settle();
      const [reported] = daemon.store.listDrift({ node: 'a' });
      await daemon.close();

      const store = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      try {
        const provisioner = new InfraNodeProvisioner({ backends: new Map([['mem', daemon.backend]]) });
        const reconciler = new Reconciler<InfraDesiredNodeSpec>({ provisioner, store, log: capturingLogger().log, codec: infraSpecCodec });
        await reconciler.apply(graph, { signal: AbortSignal.timeout(30_000), allowDeletions: true });
        expect(store.listDrift({ node: 'a' })).toEqual([reported]);
      } finally {
        store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('selfHeal: false with a value that keeps changing: reported again at most once an interval, with the latest value', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A'), { selfHeal: false }));
    // Something else writes a new value every second for ten simulated minutes (the interval is a minute).
    for (let s = 0; s < 600; s++) {
      h.backend.tamper('a', { content: `theirs ${s}` });
      await h.advance(1000, 1000);
    }
    expect(h.calls.updated).toEqual([]);
    const reports = h.store.listDrift({ node: 'a' });
    expect(reports.length).toBeGreaterThanOrEqual(9);
    expect(reports.length).toBeLessThanOrEqual(11);
    expect(h.lines.filter((l) => l.msg === 'drift detected')).toHaveLength(reports.length);
    expect(reports.every((r) => r.action === 'reported')).toBe(true);
    // Each a minute or more after the one before, all of one occurrence.
    const at = reports.map((r) => r.detectedAt).sort((x, y) => x - y);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(60_000);
    expect(new Set(reports.map((r) => r.firstSeen)).size).toBe(1);
  });

  it.each([
    { name: 'an ignored field drifts silently', tamper: { mode: '0600' }, reported: false },
    { name: 'a managed field next to it is still reported', tamper: { content: 'evil' }, reported: true },
  ])('ignoreFields: $name', async ({ tamper, reported }) => {
    const h = await converged(goalYaml(fileNode('a', 'A', { ignoreFields: ['mode'] })));
    h.backend.tamper('a', tamper);
    await h.settle();
    await h.advance(2 * MIN, 30_000);
    expect(h.lines.some((l) => l.msg === 'drift detected')).toBe(reported);
    expect(h.calls.updated.length > 0).toBe(reported);
    expect(h.store.listDrift().length > 0).toBe(reported);
  });

  // Found in sync under ignoreFields, the node was recorded as applied at the edited goal: once ignoreFields
  // was dropped, the goal's own edit, never applied, was logged as drift and left (selfHeal: false).
  it('a goal edit ignoreFields held back is applied once it is dropped, not reported as drift (selfHeal: false)', async () => {
    const yaml = (content: string, ignoreFields: string[]): string => goalYaml(fileNode('a', content, { ignoreFields }), { selfHeal: false });
    const h = await converged(yaml('A', ['content']));
    h.calls.reset();
    await h.controller.setGraph(compileYaml(yaml('B', ['content'])).graph);
    await h.settle();
    expect(contentOf(h, 'a')).toBe('A');
    expect(h.calls.updated).toEqual([]);
    await h.controller.setGraph(compileYaml(yaml('B', [])).graph);
    await h.settle();
    expect(h.calls.updated).toEqual(['a']);
    expect(contentOf(h, 'a')).toBe('B');
    expect(h.store.getNode('a')?.status).toBe('ready');
    expect(h.lines.some((l) => l.msg === 'drift detected')).toBe(false);
    expect(h.store.listDrift()).toEqual([]);
  });

  it('a hand edit of a field ignoreFields silenced, the goal unchanged, is drift once it is dropped: reported, left (selfHeal: false)', async () => {
    const yaml = (ignoreFields: string[]): string => goalYaml(fileNode('a', 'A', { ignoreFields }), { selfHeal: false });
    const h = await converged(yaml(['content']));
    h.calls.reset();
    h.backend.tamper('a', { content: 'hand' });
    await h.advance(2 * MIN, 30_000);
    expect(h.store.listDrift()).toEqual([]);
    await h.controller.setGraph(compileYaml(yaml([])).graph);
    await h.settle();
    expect(h.calls.updated).toEqual([]);
    expect(contentOf(h, 'a')).toBe('hand');
    expect(h.store.getNode('a')?.status).toBe('drifted');
    expect(h.store.listDrift()).toMatchObject([{ node: 'a', action: 'reported' }]);
  });

  it('flapping drift is corrected with a growing delay and flagged, never in a hot loop', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A')));
    h.calls.reset();
    const correctedAt: number[] = [];
    // Something else rewrites the field every second for ten simulated minutes.
    for (let s = 0; s < 600; s++) {
      h.backend.tamper('a', { content: 'theirs' });
      const n = h.calls.updated.length;
      await h.advance(1000, 1000);
      if (h.calls.updated.length > n) correctedAt.push(h.clock.now());
    }
    // 600 re-drifts; without the backoff that would be ~600 updates.
    expect(h.calls.updated.length).toBeLessThanOrEqual(12);
    expect(h.calls.updated.length).toBeGreaterThanOrEqual(5);
    const gaps = correctedAt.slice(1).map((t, i) => t - correctedAt[i]!);
    for (let i = 2; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThanOrEqual(gaps[i - 1]!);
    expect(gaps.at(-1)!).toBeGreaterThanOrEqual(60_000);
    const reports = h.store.listDrift({ node: 'a' });
    expect(reports[0]!.flapping).toBe(false);
    expect(reports.slice(1).every((r) => r.flapping)).toBe(true);
    // One report per occurrence, not one per observation (the last one may still wait for its correction).
    expect(reports.length - h.calls.updated.length).toBeGreaterThanOrEqual(0);
    expect(reports.length - h.calls.updated.length).toBeLessThanOrEqual(1);
    expect(h.lines.filter((l) => l.msg === 'drift detected' && l.flapping === true).length).toBeGreaterThan(0);
  });

  it('flapping drift whose value changes every time is reported once per correction, not once per change (bounded log volume)', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A')));
    h.calls.reset();
    // Something else writes a new value every second for ten simulated minutes (a counter, a timestamp).
    for (let s = 0; s < 600; s++) {
      h.backend.tamper('a', { content: `theirs ${s}` });
      await h.advance(1000, 1000);
    }
    expect(h.calls.updated.length).toBeLessThanOrEqual(12);
    const reports = h.store.listDrift({ node: 'a' });
    // Each occurrence (one per correction, the last perhaps still waiting) is one line and one row, whatever the value does meanwhile.
    expect(reports.length - h.calls.updated.length).toBeLessThanOrEqual(1);
    expect(h.lines.filter((l) => l.msg === 'drift detected')).toHaveLength(reports.length);
    expect(reports.slice(1).every((r) => r.flapping)).toBe(true);
  });

  it('a resource deleted out of band is drift: reported as a diff on `exists` (desired true, actual false), stored, counted, then re-created', async () => {
    const h = await converged();
    h.calls.reset();
    expect(h.backend.remove('a')).toBe(true);
    await h.advance(2 * MIN, 10_000);
    const lines = h.lines.filter((l) => l.msg === 'drift detected');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ node: 'a', action: 'corrected', flapping: false, diffs: [{ path: 'exists', desired: true, actual: false }] });
    expect(h.store.listDrift({ node: 'a' })).toEqual([expect.objectContaining({ action: 'corrected', diffs: [{ path: 'exists', desired: true, actual: false }] })]);
    expect(h.calls.created).toEqual(['a']);
    expect(contentOf(h, 'a')).toBe('A');
    expect(statusOf(h, 'a')).toBe('ready');
    // The daemon's run (finished when it stops) counts the drift it found, corrections included.
    await h.controller.stop(1000);
    expect(h.store.listRuns(10).at(-1)?.summary).toMatchObject({ drifted: 1 });
  });

  it("a running daemon's run shows what it has done so far (history on a live daemon), with no write on a steady pass", async () => {
    let c: ReturnType<typeof counted> | undefined;
    const h = await converged(goalYaml(fileNode('a', 'A')), { wrapStore: (s) => (c = counted(s)).store });
    h.backend.tamper('a', { content: 'evil' });
    await h.settle();
    // Still running: not finished, but its counts are on disk for `desiredstate history` (and survive a crash).
    const run = h.store.listRuns(1)[0]!;
    expect(run.finishedAt).toBeNull();
    expect(run.summary).toMatchObject({ created: 1, updated: 1, drifted: 1 });
    c!.reset();
    await h.advance(5 * MIN, 30_000);
    expect(c!.commits()).toBe(0);
    expect(h.store.listRuns(1)[0]).toEqual(run);
  });

  it.each([
    { what: 'deleted (prune, Delete)', prune: true, counts: { deleted: 4, orphaned: 0 } },
    { what: 'forgotten (no prune)', prune: false, counts: { deleted: 0, orphaned: 4 } },
  ])("a running daemon's run whose only changes are nodes $what shows them so far", async ({ prune, counts }) => {
    const nodes = (n: number): string => Array.from({ length: n }, (_, i) => fileNode(`n${i}`, 'x', { deletionPolicy: 'Delete' })).join('');
    const h = await converged(goalYaml(nodes(6), { prune }), { extra: { allowMassDeletion: true } });
    await h.controller.setGraph(compileYaml(goalYaml(nodes(2), { prune })).graph);
    await h.settle();
    expect(h.calls.deleted.length).toBe(counts.deleted);
    // Still running, and no other change: the counts are on disk all the same (history, and a crash keeps them).
    const run = h.store.listRuns(1)[0]!;
    expect(run).toMatchObject({ trigger: 'daemon-reload', finishedAt: null });
    expect(run.summary).toMatchObject(counts);
  });

  it.each([
    { what: 'deleted (prune, Delete)', prune: true },
    { what: 'forgotten (no prune)', prune: false },
  ])('nodes $what while the store refuses every write (a full disk): the new graph runs, nothing is deleted unrecorded, and they leave the store once it writes again', async ({ prune }) => {
    let refuse = false;
    let fillOnWatch = false;
    const nodes = (ids: readonly string[]): string => ids.map((id) => fileNode(id, 'x', { deletionPolicy: 'Delete' })).join('');
    const h = await converged(goalYaml(nodes(['a', 'b', 'c']), { prune }), {
      wrapStore: (store) => refusing(store, () => refuse),
      // The disk fills as the new graph goes in: once its watch starts, every write is refused.
      extra: {
        watch: () => {
          refuse ||= fillOnWatch;
          return () => undefined;
        },
      },
    });
    const old = h.controller.currentGraph;
    const next = compileYaml(goalYaml(nodes(['a', 'b']), { prune })).graph;
    // Full before it starts: setGraph throws before anything changes (its caller then puts back what it changed for it).
    refuse = true;
    await expect(h.controller.setGraph(next)).rejects.toThrow('database or disk is full');
    expect(h.controller.currentGraph).toBe(old);
    refuse = false;
    // Full once its graph is in: nothing is thrown. Before, the delete's pending record, refused, was
    // thrown out of setGraph, and the daemon's loader put the previous backends back under the new graph.
    fillOnWatch = true;
    await h.controller.setGraph(next);
    expect(refuse).toBe(true);
    expect(h.controller.currentGraph).toBe(next);
    await h.settle();
    // Never a delete sent without its pending record: tried again (by the batch loop) while refused, and not sent.
    await h.advance(MIN, 5000);
    expect(h.calls.deleted).toEqual([]);
    expect(h.backend.snapshot().has('c')).toBe(true);
    const notStarted = h.lines.filter((l) => l.msg === 'operations not started: they cannot be recorded as pending' && (l.nodes as string[]).includes('c'));
    // In setGraph, then from the batch loop.
    expect(Math.min(notStarted.length, 2)).toBe(prune ? 2 : 0);
    expect(h.lines.filter((l) => l.msg === 'reconcile batch failed')).toEqual([]);
    expect(h.store.getNode('c')).toBeDefined();
    expect(h.controller.nodes().map((n) => n.id).sort()).toEqual(prune ? ['a', 'b', 'c'] : ['a', 'b']);
    refuse = false;
    await h.advance(MIN, 5000);
    expect(h.calls.deleted).toEqual(prune ? ['c'] : []);
    expect(h.backend.snapshot().has('c')).toBe(!prune);
    expect(h.store.getNode('c')).toBeUndefined();
    expect(h.store.listNodes().map((n) => n.id).sort()).toEqual(['a', 'b']);
    expect(h.store.pendingOperations()).toEqual([]);
    expect(h.controller.nodes().map((n) => n.id).sort()).toEqual(['a', 'b']);
  });

  it('a store that refused a pending write and writes again by the stop: nothing is said lost, since nothing is', async () => {
    let refuse = false;
    let fillOnWatch = false;
    const nodes = (ids: readonly string[]): string => ids.map((id) => fileNode(id, 'x', { deletionPolicy: 'Delete' })).join('');
    const h = await converged(goalYaml(nodes(['a', 'b', 'c']), { prune: true }), {
      wrapStore: (store) => refusing(store, () => refuse),
      extra: {
        watch: () => {
          refuse ||= fillOnWatch;
          return () => undefined;
        },
      },
    });
    fillOnWatch = true;
    await h.controller.setGraph(compileYaml(goalYaml(nodes(['a', 'b']), { prune: true })).graph);
    expect(h.lines.some((l) => l.msg === 'operations not started: they cannot be recorded as pending')).toBe(true);
    refuse = false;
    await h.controller.stop();
    expect(h.lines.filter((l) => l.msg.startsWith('state store still refuses writes at shutdown'))).toEqual([]);
    expect(h.calls.deleted).toEqual([]);
  });

  it("a daemon's run counts each node found unchanged once, however many passes find it so", async () => {
    // b and c in sync from the start; a created by this run, then in sync.
    const h = start();
    const { graph, gates } = compileYaml(abc);
    h.backend.preload([graph.get('b')!, graph.get('c')!]);
    await h.controller.setGraph(graph, { gates });
    await h.settle();
    h.calls.reset();
    await h.advance(10 * MIN, 20_000);
    // Ten passes or so observed each node again.
    expect(h.calls.observed.filter((id) => id === 'c').length).toBeGreaterThanOrEqual(5);
    await h.controller.stop(1000);
    expect(h.store.listRuns(10).at(-1)?.summary).toMatchObject({ created: 1, unchanged: 3, drifted: 0 });
  });

  it('selfHeal: false: a resource deleted out of band is reported once and never re-created', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A'), { selfHeal: false }));
    h.calls.reset();
    h.backend.remove('a');
    await h.advance(10 * MIN, 30_000);
    expect(h.calls.created).toEqual([]);
    expect(h.backend.snapshot().has('a')).toBe(false);
    expect(statusOf(h, 'a')).toBe('drifted');
    expect(h.store.getNode('a')?.reason).toContain('resource missing');
    const reports = h.store.listDrift({ node: 'a' });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ action: 'reported', diffs: [{ path: 'exists', desired: true, actual: false }] });
    // Put back by hand: the occurrence is over, the node is ready again.
    h.backend.preload([h.controller.currentGraph!.get('a')!]);
    await h.advance(2 * MIN, 30_000);
    expect(statusOf(h, 'a')).toBe('ready');
  });

  it('a node and its dependency deleted together: the dependency is re-created first, the dependent waits for it, never races it', async () => {
    const h = await converged();
    h.calls.reset();
    // b depends on a; the dependent's change event comes first.
    h.backend.remove('b');
    h.backend.remove('a');
    await h.settle();
    expect(h.calls.created).toEqual(['a', 'b']);
    expect(h.store.listDrift().map((r) => r.node).sort()).toEqual(['a', 'b']);
    expect([statusOf(h, 'a'), statusOf(h, 'b')]).toEqual(['ready', 'ready']);
  });

  it('a node deleted out of band has its dependencies looked at first, though no change was heard of them (rm -rf of a tree)', async () => {
    // `gone`: deleted behind the backend's watch (no change event), as a directory removed with the files in it may be.
    const gone = new Set<string>();
    const silent = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        observe: async (nodes, ctx) => {
          const seen = await b.observe(nodes, ctx);
          return new Map([...seen].map(([id, obs]) => [id, gone.has(id) ? ({ status: 'absent' } as Observation) : obs]));
        },
        create: (n, ctx) => {
          gone.delete(n.id);
          return b.create(n, ctx);
        },
      });
    const h = await converged(abc, { wrap: silent });
    h.calls.reset();
    gone.add('a');
    h.backend.remove('b');
    await h.settle();
    // a made again first (a directory with its own mode, say), then b inside it.
    expect(h.calls.created).toEqual(['a', 'b']);
    expect([statusOf(h, 'a'), statusOf(h, 'b')]).toEqual(['ready', 'ready']);
    // Looked at once for this absence: a second one looks again, a steady pass never does.
    h.calls.reset();
    await h.advance(5 * MIN, 10_000);
    expect(h.calls.created).toEqual([]);
  });

  it('a resource deleted again and again is flapping drift: re-created with a growing delay', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A')));
    h.calls.reset();
    for (let s = 0; s < 300; s++) {
      h.backend.remove('a');
      await h.advance(1000, 1000);
    }
    expect(h.calls.created.length).toBeLessThanOrEqual(10);
    expect(h.calls.created.length).toBeGreaterThanOrEqual(3);
    expect(h.store.listDrift({ node: 'a' }).slice(1).every((r) => r.flapping)).toBe(true);
  });

  it('a drift put back by hand and repeated later is reported again', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A'), { selfHeal: false }));
    h.backend.tamper('a', { content: 'x' });
    await h.settle();
    h.backend.tamper('a', { content: 'A' });
    await h.settle();
    h.backend.tamper('a', { content: 'x' });
    await h.settle();
    expect(h.store.listDrift({ node: 'a' })).toHaveLength(2);
  });
});

describe('Controller: fault policy', () => {
  it('a transient fault is retried with exponential backoff', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A')), { memory: { faults: [{ node: 'a', op: 'create', class: 'transient', times: 2 }] } });
    expect(h.calls.created).toEqual(['a']);
    const rec = h.store.getNode('a')!;
    expect(rec.status).toBe('failed');
    expect(rec.lastFault?.class).toBe('transient');
    // rng 0.5: the first delay is half of 1 s, the second half of 2 s.
    expect(rec.retryAt! - h.clock.now()).toBe(500);
    await h.advance(400, 100);
    expect(h.calls.created).toHaveLength(1);
    await h.advance(200, 100);
    expect(h.calls.created).toHaveLength(2);
    await h.advance(800, 100);
    expect(h.calls.created).toHaveLength(2);
    await h.advance(300, 100);
    expect(h.calls.created).toHaveLength(3);
    expect(statusOf(h, 'a')).toBe('ready');
    expect(h.backend.createCount('a')).toBe(1);
  });

  it('an auth fault holds the node after its budget; only an operator retry releases it', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A') + fileNode('z', 'Z')), { memory: { faults: [{ node: 'a', op: 'create', class: 'auth', times: 3 }] } });
    await h.advance(10 * MIN, 5_000);
    expect(h.calls.created.filter((id) => id === 'a')).toHaveLength(3);
    const rec = h.store.getNode('a')!;
    expect(rec.status).toBe('held');
    expect(rec.reason).toMatch(/authentication failed 3 times/);
    expect(rec.reason).toContain(rec.lastFault!.message);
    expect(h.lines.some((l) => l.msg === 'node held' && l.node === 'a')).toBe(true);
    // Held means held: simulated time brings no more attempts.
    await h.advance(30 * MIN, 60_000);
    expect(h.calls.created.filter((id) => id === 'a')).toHaveLength(3);
    expect(h.controller.ready).toBe(true);
    // A node that is not held is left exactly as it is.
    const z = h.store.getNode('z');
    expect(h.controller.operatorRetry('z')).toEqual({ status: 'not-held', current: 'ready' });
    expect(h.store.getNode('z')).toEqual(z);
    expect(h.controller.operatorRetry('a')).toEqual({ status: 'released' });
    await h.settle();
    expect(statusOf(h, 'a')).toBe('ready');
    expect(h.controller.operatorRetry('nope')).toEqual({ status: 'unknown' });
  });

  it('a restart resumes each node in its stored state: held stays held until the store says otherwise', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-restart-'));
    try {
      const yaml = goalYaml(fileNode('a', 'A') + fileNode('z', 'Z'));
      const first = await converged(yaml, { dir, memory: { faults: [{ node: 'a', op: 'create', class: 'auth', times: 3 }] } });
      await first.advance(10 * MIN, 5_000);
      expect(statusOf(first, 'a')).toBe('held');
      await first.close();

      // The same state and backend in a new process: the node is still held, and nothing is attempted.
      const second = await converged(yaml, { dir, backend: first.backend });
      await second.advance(5 * MIN, 30_000);
      expect(statusOf(second, 'a')).toBe('held');
      expect(second.calls.created).toEqual([]);
      await second.close();

      // `desiredstate retry a` with no daemon running writes the record's status; the next start takes it from there.
      const store = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      store.putNodes([{ ...store.getNode('a')!, status: 'pending', attempts: 0, retryAt: null, lastFault: null, reason: 'released by operator' }]);
      store.close();
      const third = await converged(yaml, { dir, backend: first.backend });
      expect(third.calls.created).toEqual(['a']);
      expect(statusOf(third, 'a')).toBe('ready');
      expect(first.backend.createCount('a')).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Applies try a failing node again each run; the daemon started after them made one attempt more before it
  // held the node ("permanent fault after 4 attempts"), though the budget of 3 was spent.
  it('a daemon started after applies spent a node\'s retry budget holds it without another attempt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-spent-'));
    try {
      const yaml = goalYaml(fileNode('a', 'A') + fileNode('z', 'Z'));
      const { log } = capturingLogger();
      const backend = new MemoryBackend(memoryConfigSchema().parse({ faults: [{ node: 'a', op: 'create', class: 'permanent' }] }), { id: 'mem', log });
      const store = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      const reconciler = new Reconciler<InfraDesiredNodeSpec>({ provisioner: new InfraNodeProvisioner({ backends: new Map([['mem', backend]]) }), store, log, codec: infraSpecCodec });
      const { graph } = compileYaml(yaml);
      for (let run = 0; run < 3; run++) await reconciler.apply(graph, { signal: AbortSignal.timeout(30_000), allowDeletions: true });
      expect(store.getNode('a')).toMatchObject({ status: 'failed', attempts: 3 });
      store.close();

      const h = await converged(yaml, { dir, backend });
      expect(h.calls.created).toEqual([]);
      expect(h.store.getNode('a')).toMatchObject({
        status: 'held',
        attempts: 3,
        retryAt: null,
        reason: expect.stringMatching(/\(permanent fault after 3 attempts; held until its goal \(the node's spec\) changes or `desiredstate retry NODE`\)$/),
      });
      expect(h.lines.filter((l) => l.msg === 'node held')).toEqual([expect.objectContaining({ node: 'a', attempts: 3 })]);
      await h.advance(10 * MIN, 30_000);
      expect(h.calls.created).toEqual([]);
      expect(statusOf(h, 'z')).toBe('ready');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a failing node's dependents are blocked, never removed, and an independent branch converges", async () => {
    const yaml = goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }) + fileNode('c', 'C', { dependsOn: ['b'] }) + fileNode('d', 'D'));
    const h = await converged(yaml, { memory: { faults: [{ node: 'a', op: 'create', class: 'permanent' }] } });
    await h.advance(10 * MIN, 10_000);
    expect(statusOf(h, 'a')).toBe('held');
    expect(statusOf(h, 'b')).toBe('blocked');
    expect(statusOf(h, 'c')).toBe('blocked');
    expect(statusOf(h, 'd')).toBe('ready');
    expect(h.controller.currentGraph?.size).toBe(4);
    expect(h.calls.created).not.toContain('b');
    expect(h.calls.created).not.toContain('c');
    expect(h.calls.deleted).toEqual([]);
    // The run says so (history's ⊘): the held node and its two blocked dependents.
    expect(h.store.listRuns(1)[0]?.summary).toMatchObject({ held: 1, blocked: 2 });
  });

  it('the circuit breaker opens after K consecutive failures and lets one probe through after its cool-down', async () => {
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'].map((id) => fileNode(id, id)).join('');
    const h = await converged(goalYaml(nodes), { memory: { faults: [{ op: 'observe', class: 'transient' }] } });
    expect(h.calls.observed).toHaveLength(6);
    // Their backoffs (≤ 1 s) expire long before the 30 s cool-down: the open circuit keeps them off the backend.
    await h.advance(29_000, 500);
    expect(h.calls.observed).toHaveLength(6);
    await h.advance(6_000, 500);
    expect(h.calls.observed).toHaveLength(7);
  });

  // Any answer from the backend closes its circuit, whatever the node does next: a probe answered but
  // not counted left it half-open for another whole cool-down, every node of the backend waiting.
  it.each([
    { name: 'cannot tell whether it exists (held)', answer: { status: 'indeterminate', reason: 'cannot tell' } as Observation },
    { name: 'is absent (and created)', answer: undefined },
  ])('a probe whose node $name closes the circuit at once', async ({ answer }) => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
    let phase: 'down' | 'back' = 'down';
    let probe: string | undefined;
    const h = await converged(goalYaml(ids.map((id) => fileNode(id, id)).join('')), {
      wrap: (b) =>
        wrapMemory(b, 'memory', {
          observe: async (list, ctx) => {
            if (phase === 'down') return new Map(list.map((n) => [n.id, { status: 'failed', fault: { class: 'transient', message: 'connection refused' } } as Observation]));
            const out = new Map(await b.observe(list, ctx));
            // The first node observed once the backend is back is the probe: it answers as the case says.
            if (phase === 'back' && probe === undefined) {
              probe = list[0]!.id;
              if (answer !== undefined) out.set(probe, answer);
            }
            return out;
          },
        }),
    });
    // From the start every observation fails, and the circuit opens.
    expect(h.lines.filter((l) => l.msg === 'backend circuit open')).toHaveLength(1);
    phase = 'back';
    h.calls.reset();
    await h.advance(35_000, 500); // past the 30 s cool-down: the probe, then every other node
    expect(probe).toBeDefined();
    expect(h.lines.filter((l) => l.msg === 'backend circuit closed')).toHaveLength(1);
    for (const id of ids.filter((i) => i !== probe)) {
      expect(h.calls.observed, id).toContain(id);
      expect(statusOf(h, id), id).toBe('ready');
    }
  });

  // The probe is the whole node operation: a read that answers and a create that fails after it closed the
  // circuit, every node's create failing on its own backoff after it, and it never opened again.
  it('a probe whose read answers but whose write fails opens the circuit again: a backend that reads but cannot write is kept off', async () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const h = await converged(goalYaml(ids.map((id) => fileNode(id, id)).join('')), { memory: { faults: [{ op: 'create', class: 'transient' }] } });
    expect(h.lines.filter((l) => l.msg === 'backend circuit open')).toHaveLength(1);
    const mark = h.lines.length;
    const since = (msg: string): unknown[] => h.lines.slice(mark).filter((l) => l.msg === msg);
    await h.advance(31_000, 500); // past the 30 s cool-down: one probe, read and create
    expect(since('create failed')).toHaveLength(1);
    expect(since('backend circuit open')).toHaveLength(1);
    expect(since('backend circuit closed')).toEqual([]);
    expect(h.controller.circuits()).toEqual([expect.objectContaining({ state: 'open' })]);
    // One probe a cool-down (from the probe's failure, a second into the first advance), no more.
    await h.advance(28_000, 500);
    expect(since('create failed')).toHaveLength(1);
    await h.advance(4_000, 500);
    expect(since('create failed')).toHaveLength(2);
    expect(since('backend circuit closed')).toEqual([]);
    expect(h.controller.circuits()).toEqual([expect.objectContaining({ state: 'open' })]);
  });

  it("a removed node's delete that is a probe is judged with its read: a delete that fails after a read that answers opens the circuit again", async () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const nodes = (list: readonly string[]): string => list.map((id) => fileNode(id, id, { deletionPolicy: 'Delete' })).join('');
    const h = await converged(goalYaml(nodes([...ids, 'keep']), { prune: true }), { memory: { faults: [{ op: 'delete', class: 'transient' }] } });
    await h.controller.setGraph(compileYaml(goalYaml(nodes(['keep']), { prune: true })).graph);
    await h.settle();
    expect(h.controller.circuits()).toEqual([expect.objectContaining({ state: 'open' })]);
    const mark = h.lines.length;
    const failed = (): unknown[] => h.lines.slice(mark).filter((l) => l.msg === 'delete failed');
    await h.advance(31_000, 500);
    expect(failed()).toHaveLength(1);
    expect(h.lines.slice(mark).filter((l) => l.msg === 'backend circuit closed')).toEqual([]);
    expect(h.controller.circuits()).toEqual([expect.objectContaining({ state: 'open' })]);
  });

  it('a probe whose write is done closes the circuit, and one no write follows is judged by its read', async () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const h = await converged(goalYaml(ids.map((id) => fileNode(id, id)).join('')), { memory: { faults: [{ op: 'create', class: 'transient', times: 5 }] } });
    expect(h.lines.filter((l) => l.msg === 'backend circuit open')).toHaveLength(1);
    await h.advance(35_000, 500);
    expect(h.lines.filter((l) => l.msg === 'backend circuit closed')).toHaveLength(1);
    expect(h.controller.circuits()).toEqual([]);
    for (const id of ids) expect(statusOf(h, id), id).toBe('ready');
  });

  it("a delete that is an open circuit's probe, not sent because the store will not record it (a full disk), gives the probe back: the backend's other nodes wait no other cool-down", async () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const nodes = (list: readonly string[]): string => list.map((id) => fileNode(id, id, { deletionPolicy: 'Delete' })).join('');
    let down = false;
    let refuse = false;
    let fillOnWatch = false;
    const h = await converged(goalYaml(nodes([...ids, 'c']), { prune: true }), {
      wrap: (b) =>
        wrapMemory(b, 'memory', {
          observe: async (list, ctx) => (down ? new Map(list.map((n) => [n.id, { status: 'failed', fault: { class: 'transient', message: 'connection refused' } } as Observation])) : b.observe(list, ctx)),
        }),
      wrapStore: (store) => refusing(store, () => refuse),
      extra: {
        watch: () => {
          refuse ||= fillOnWatch;
          return () => undefined;
        },
      },
    });
    down = true;
    h.controller.notifyChanged([...ids, 'c']);
    await h.settle();
    expect(h.controller.circuits()).toEqual([expect.objectContaining({ state: 'open' })]);
    // Held back, the other nodes leave c's delete to be the probe once the cool-down (30 s) is over.
    const holds = ids.map((id) => h.controller.hold(id, 'kept off the backend'));
    down = false;
    fillOnWatch = true;
    await h.controller.setGraph(compileYaml(goalYaml(nodes(ids), { prune: true })).graph);
    await h.advance(31_000, 500);
    expect(h.lines.filter((l) => l.msg === 'operations not started: they cannot be recorded as pending' && (l.nodes as string[]).includes('c'))).not.toEqual([]);
    h.calls.reset();
    for (const release of holds) release();
    await h.advance(2000, 500);
    // Before: the probe was left unanswered, and the circuit let none through for another 30 s.
    expect(h.calls.observed).toEqual(expect.arrayContaining(ids));
    expect(h.controller.circuits()).toEqual([]);
    expect(h.calls.deleted).toEqual([]);
  });

  /**
   * A converged harness whose node `p` gives outputs without `path` (as an exec command that never prints a
   * key a reference names) while `gives.path` is false, and each of `consumers` refers to `${nodes.p.outputs.path}`.
   */
  const withoutPath = (consumers: readonly string[], gives = { path: false }): ReturnType<typeof converged> => {
    const strip = <T extends Observation | ProvisionResult>(id: string, r: T): T => (id === 'p' && !gives.path && 'outputs' in r ? { ...r, outputs: { id: 'p' } } : r);
    const nodes = fileNode('p', 'P') + fileNode('ok', 'ok') + consumers.map((id) => fileNode(id, '${nodes.p.outputs.path}')).join('');
    return converged(goalYaml(nodes), {
      wrap: (b) =>
        wrapMemory(b, 'memory', {
          observe: async (list, ctx) => new Map([...(await b.observe(list, ctx))].map(([id, obs]) => [id, strip(id, obs)])),
          create: async (n, ctx) => strip(n.id, await b.create(n, ctx)),
        }),
    });
  };

  // They waited as for an output not given yet: retried for ever, every five minutes at most, though nothing
  // could change until the goal or the producer did.
  it('nodes referring to an output their producer does not give fail permanently and are held once their budget is spent; they never called the backend, nor open the circuit, and an unrelated node is repaired at once', async () => {
    const consumers = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
    const h = await withoutPath(consumers);
    await h.advance(60_000, 500);
    expect(h.lines.filter((l) => l.msg === 'backend circuit open')).toEqual([]);
    expect(h.controller.circuits()).toEqual([]);
    h.backend.tamper('ok', { content: 'evil' });
    await h.advance(1_000, 100);
    expect(contentOf(h, 'ok')).toBe('ok');
    for (const id of consumers) {
      expect(h.calls.created, id).not.toContain(id);
      expect(h.store.getNode(id), id).toMatchObject({
        status: 'held',
        attempts: 3,
        lastFault: {
          class: 'permanent',
          code: 'output-unknown',
          notTheBackend: 'before-call',
          message: `node "${id}": spec.content: \${nodes.p.outputs.path}: node "p" gives no output "path" (it gives: id)`,
          hint: expect.stringContaining(`desiredstate retry ${id}`),
        },
      });
    }
    // Held: looked at no more, however long it is left.
    h.calls.reset();
    await h.advance(30 * 60_000, 60_000);
    for (const id of consumers) expect(h.calls.observed, id).not.toContain(id);
  });

  // The producer's outputs as recorded are those of its last observation, up to an interval old: the node
  // released was refused again on them, and held again within seconds, before its producer was next read.
  it('the producer fixed, retry releases a held node, which looks at its producer first and converges at once; one not released stays held', async () => {
    const gives = { path: false };
    const h = await withoutPath(['c1', 'c2'], gives);
    await h.advance(60_000, 500);
    expect([statusOf(h, 'c1'), statusOf(h, 'c2')]).toEqual(['held', 'held']);
    // Its command fixed: the producer gives the key from its next read on, not yet recorded.
    gives.path = true;
    expect(h.store.getNode('p')?.outputs).not.toHaveProperty('path');
    h.calls.reset();
    expect(h.controller.operatorRetry('c1')).toEqual({ status: 'released' });
    await h.settle();
    // Refused on the outputs recorded, it waited for its producer to be read again, then was looked at anew.
    expect(h.calls.observed.slice(0, 3)).toEqual(['c1', 'p', 'c1']);
    expect(h.store.getNode('c1')).toMatchObject({ status: 'ready', attempts: 0 });
    expect(contentOf(h, 'c1')).toBe('p.txt');
    expect(statusOf(h, 'c2')).toBe('held');
  });

  /** A converged harness whose nodes in `failing` time out on every observation from now on (their resource's fault, not the backend's). */
  const withFailingNodes = (failing: ReadonlySet<string>, ids: readonly string[]): ReturnType<typeof converged> =>
    converged(goalYaml(ids.map((id) => fileNode(id, id)).join('')), {
      wrap: (b) =>
        wrapMemory(b, 'memory', {
          observe: async (list, ctx) => {
            const out = new Map(await b.observe(list, ctx));
            for (const n of list) if (failing.has(n.id)) out.set(n.id, { status: 'failed', fault: { class: 'transient', message: 'this resource times out' } });
            return out;
          },
        }),
    });

  it('fewer nodes than the threshold failing on their own, however often, never open the circuit: a hand edit of a healthy node is repaired at once', async () => {
    const failing = new Set(['f1', 'f2', 'f3', 'f4']);
    const h = await withFailingNodes(failing, [...failing, 'ok1', 'ok2']);
    // Four nodes retried on their backoff, some twenty failures in all.
    await h.advance(60_000, 500);
    expect(h.lines.filter((l) => l.msg === 'backend circuit open')).toEqual([]);
    h.backend.tamper('ok1', { content: 'evil' });
    await h.advance(1_000, 100);
    expect(contentOf(h, 'ok1')).toBe('ok1');
    for (const id of failing) expect(statusOf(h, id), id).toBe('failed');
  });

  it('a circuit opened by nodes failing on their own probes with a node that was ready: the healthy ones wait one cool-down, not more', async () => {
    const failing = new Set(['f1', 'f2', 'f3', 'f4', 'f5', 'f6']);
    const h = await withFailingNodes(failing, [...failing, 'ok1', 'ok2']);
    // The failing nodes' retries open the circuit within seconds.
    await h.advance(10_000, 500);
    expect(h.lines.filter((l) => l.msg === 'backend circuit open').length).toBeGreaterThanOrEqual(1);
    h.backend.tamper('ok1', { content: 'evil' });
    // One cool-down (30 s) and a little: the probe goes to a ready node, answers, and closes the circuit.
    await h.advance(33_000, 500);
    expect(contentOf(h, 'ok1')).toBe('ok1');
    expect(h.lines.filter((l) => l.msg === 'backend circuit closed').length).toBeGreaterThanOrEqual(1);
    for (const id of failing) expect(statusOf(h, id), id).toBe('failed');
  });

  it('an open circuit is shown (status, the journal) while it is open, with what opened it and when its probe is due; gone once closed', async () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
    let down = true;
    const h = await converged(goalYaml(ids.map((id) => fileNode(id, id)).join('')), {
      wrap: (b) =>
        wrapMemory(b, 'memory', {
          observe: async (list, ctx) =>
            down ? new Map(list.map((n) => [n.id, { status: 'failed', fault: { class: 'transient', message: 'connection refused' } } as Observation])) : b.observe(list, ctx),
        }),
    });
    const open = h.lines.find((l) => l.msg === 'backend circuit open')!;
    const shown = [{ backend: 'mem', state: 'open', since: expect.any(Number), probeAt: expect.any(Number), fault: { class: 'transient', message: 'connection refused' } }];
    expect(h.controller.circuits()).toEqual(shown);
    const [circuit] = h.controller.circuits();
    expect(circuit!.probeAt! - circuit!.since).toBe(30_000);
    expect(circuit!.probeAt! - h.clock.now()).toBe(Number(open.probeInMs));
    // What another process (`desiredstate status`) reads: the same.
    expect(JSON.parse(h.store.getMeta(CIRCUITS_META)!)).toEqual(shown);
    expect(h.store.listEvents().filter((e) => e.kind.startsWith('circuit-'))).toEqual([expect.objectContaining({ kind: 'circuit-opened', data: { backend: 'mem', fault: 'connection refused' } })]);
    down = false;
    await h.advance(35_000, 500);
    expect(h.controller.circuits()).toEqual([]);
    expect(h.store.getMeta(CIRCUITS_META)).toBeUndefined();
    expect(h.store.listEvents().filter((e) => e.kind.startsWith('circuit-')).map((e) => e.kind)).toEqual(expect.arrayContaining(['circuit-opened', 'circuit-closed']));
  });

  it('a circuit a daemon left open when it died is not shown by the next one, whose circuits start closed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-circuits-'));
    try {
      const yaml = goalYaml(fileNode('n1', 'n1'));
      const first = await converged(yaml, { dir });
      first.store.setMeta(CIRCUITS_META, JSON.stringify([{ backend: 'mem', state: 'open', since: 0, probeAt: 30_000, fault: null }]));
      await first.close();
      const second = await converged(yaml, { dir, backend: first.backend });
      expect(second.store.getMeta(CIRCUITS_META)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says once when a backend circuit opens and once when it closes again', async () => {
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'].map((id) => fileNode(id, id)).join('');
    const h = await converged(goalYaml(nodes), { memory: { faults: [{ op: 'observe', class: 'transient', times: 6 }] } });
    await h.advance(2 * MIN, 1_000);
    expect(h.lines.filter((l) => l.msg === 'backend circuit open')).toEqual([expect.objectContaining({ backend: 'mem' })]);
    expect(h.lines.filter((l) => l.msg === 'backend circuit closed')).toEqual([expect.objectContaining({ backend: 'mem' })]);
    expect(h.lines.findIndex((l) => l.msg === 'backend circuit open')).toBeLessThan(h.lines.findIndex((l) => l.msg === 'backend circuit closed'));
    for (const id of ['n1', 'n6']) expect(statusOf(h, id)).toBe('ready');
  });
});

describe('Controller: goal changes', () => {
  it('re-converges a changed node at once; unchanged nodes keep their schedule', async () => {
    const h = await converged();
    await h.advance(20_000, 10_000);
    h.calls.reset();
    const changed = compileYaml(goalYaml(fileNode('a', 'A') + fileNode('b', 'B2', { dependsOn: ['a'] }) + fileNode('c', 'C')));
    await h.controller.setGraph(changed.graph);
    await h.settle();
    expect(h.calls.observed).toEqual(['b']);
    expect(h.calls.updated).toEqual(['b']);
    expect(contentOf(h, 'b')).toBe('B2');
    // a and c come up at their old time (one interval after their last look), not now.
    await h.advance(30_000, 10_000);
    expect(h.calls.observed.filter((id) => id !== 'b')).toEqual([]);
    await h.advance(20_000, 10_000);
    expect(h.calls.observed).toEqual(expect.arrayContaining(['a', 'c']));
  });

  it('a blocked node whose dependency is taken out of its dependsOn (or out of the goals) goes ahead at once', async () => {
    const yaml = goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }) + fileNode('c', 'C', { dependsOn: ['a'] }));
    const h = await converged(yaml, { memory: { faults: [{ node: 'a', op: 'create', class: 'permanent' }] } });
    await h.advance(10 * MIN, 10_000);
    expect(statusOf(h, 'a')).toBe('held');
    expect(statusOf(h, 'b')).toBe('blocked');
    // b no longer depends on a; c stays behind it. The same spec: only the edge went.
    await h.controller.setGraph(compileYaml(goalYaml(fileNode('a', 'A') + fileNode('b', 'B') + fileNode('c', 'C', { dependsOn: ['a'] }))).graph);
    await h.settle();
    expect(statusOf(h, 'b')).toBe('ready');
    expect(h.calls.created).toContain('b');
    expect(statusOf(h, 'c')).toBe('blocked');
    // a leaves the goals: nothing holds c back any more.
    await h.controller.setGraph(compileYaml(goalYaml(fileNode('b', 'B') + fileNode('c', 'C'))).graph);
    await h.settle();
    expect(statusOf(h, 'c')).toBe('ready');
    expect(h.controller.ready).toBe(true);
  });

  it('a changed interval override applies at once, not after one more of the old interval', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A', { interval: '1h' }) + fileNode('z', 'Z', { interval: '1h' })));
    await h.advance(MIN, 10_000);
    h.calls.reset();
    await h.controller.setGraph(compileYaml(goalYaml(fileNode('a', 'A', { interval: '1m' }) + fileNode('z', 'Z', { interval: '1h' }))).graph);
    await h.settle();
    await h.advance(5 * MIN, 10_000);
    // About once a minute from now on; z, unchanged, keeps its hour.
    expect(h.calls.observed.filter((id) => id === 'a').length).toBeGreaterThanOrEqual(4);
    expect(h.calls.observed).not.toContain('z');
  });

  it('a drift reported under selfHeal: false is corrected as soon as the goal says selfHeal: true', async () => {
    const nodes = fileNode('a', 'A');
    const h = await converged(goalYaml(nodes, { selfHeal: false }));
    h.backend.tamper('a', { content: 'evil' });
    await h.controller.reconcileAll();
    expect(statusOf(h, 'a')).toBe('drifted');
    h.calls.reset();
    await h.controller.setGraph(compileYaml(goalYaml(nodes, { selfHeal: true })).graph);
    await h.settle();
    expect(h.calls.updated).toEqual(['a']);
    expect(contentOf(h, 'a')).toBe('A');
    expect(statusOf(h, 'a')).toBe('ready');
  });

  it('a node removed from the goals is orphaned by default: forgotten, its resource untouched', async () => {
    const h = await converged();
    await h.controller.setGraph(compileYaml(goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }))).graph);
    await h.settle();
    expect(h.store.getNode('c')).toBeUndefined();
    expect(h.backend.snapshot().has('c')).toBe(true);
    expect(h.calls.deleted).toEqual([]);
    expect(h.lines.some((l) => l.msg.startsWith('node orphaned') && l.node === 'c')).toBe(true);
  });

  it('prune + deletionPolicy: Delete deprovisions in reverse dependency order', async () => {
    const keep = Array.from({ length: 10 }, (_, i) => fileNode(`k${i}`, 'K')).join('');
    const chain = fileNode('x', 'X', { deletionPolicy: 'Delete' }) + fileNode('y', 'Y', { dependsOn: ['x'], deletionPolicy: 'Delete' }) + fileNode('z', 'Z', { dependsOn: ['y'], deletionPolicy: 'Delete' });
    const h = await converged(goalYaml(chain + keep, { prune: true }));
    await h.controller.setGraph(compileYaml(goalYaml(keep, { prune: true })).graph);
    await h.settle();
    expect(h.calls.deleted).toEqual(['z', 'y', 'x']);
    for (const id of ['x', 'y', 'z']) {
      expect(h.backend.snapshot().has(id)).toBe(false);
      expect(h.store.getNode(id)).toBeUndefined();
    }
  });

  // A steady node is written only when something changed: one whose record lacks them must still get them.
  it('a record with the resolved digest but without what its references read (as written before they were kept beside it) gains them once, though steady', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-refs-'));
    try {
      const nodes = fileNode('a', 'A') + fileNode('b', '${nodes.a.outputs.path}');
      const first = await converged(goalYaml(nodes), { dir });
      const digest = first.store.getNode('b')!.appliedDigest;
      expect(digest).toContain('/');
      await first.close();
      withoutRefs(dir, 'b', { goalDigestOnly: false });

      const second = await converged(goalYaml(nodes), { dir, backend: first.backend });
      expect(second.calls.updated).toEqual([]);
      expect(second.store.getNode('b')).toMatchObject({ appliedDigest: digest });
      expect(storedRefs(second.store.getNode('b')!)).toEqual({ a: { path: 'a.txt' } });
      // Then steady: no later pass writes it again.
      const written = second.store.listNodes();
      await second.advance(3 * MIN, 10_000);
      expect(second.calls.observed.filter((id) => id === 'b').length).toBeGreaterThanOrEqual(3);
      expect(second.store.listNodes()).toEqual(written);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Its delete reads its references so once it leaves the goals (the node they name may be forgotten by then).
  it('a record an older version wrote (its goal digest alone, nothing of what its references read) is written anew at its next observation, nothing updated; its delete reads what they read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-refs-'));
    try {
      const nodes = fileNode('k', 'K') + fileNode('a', 'A') + fileNode('b', '${nodes.a.outputs.path}', { deletionPolicy: 'Delete' });
      const first = await converged(goalYaml(nodes, { prune: true }), { dir });
      expect(storedRefs(first.store.getNode('b')!)).toEqual({ a: { path: 'a.txt' } });
      const digest = first.store.getNode('b')!.appliedDigest;
      await first.close();
      withoutRefs(dir, 'b', { goalDigestOnly: true });

      const second = await converged(goalYaml(nodes, { prune: true }), { dir, backend: first.backend });
      expect(second.calls.updated).toEqual([]);
      expect(second.store.getNode('b')).toMatchObject({ appliedDigest: digest });
      expect(storedRefs(second.store.getNode('b')!)).toEqual({ a: { path: 'a.txt' } });
      // a forgotten (Orphan) as b is removed: b's delete has what it needs all the same.
      await second.controller.setGraph(compileYaml(goalYaml(fileNode('k', 'K'), { prune: true })).graph);
      await second.settle();
      expect(second.calls.deleted).toEqual(['b']);
      expect(second.store.getNode('b')).toBeUndefined();
      expect(second.backend.snapshot().has('a')).toBe(true);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a removed node whose dependent removed with it failed to delete waits for that delete: never deleted first, deleted once it is', async () => {
    const keep = fileNode('k', 'K');
    const chain = fileNode('x', 'X', { deletionPolicy: 'Delete' }) + fileNode('y', 'Y', { dependsOn: ['x'], deletionPolicy: 'Delete' });
    const h = await converged(goalYaml(chain + keep, { prune: true }), { memory: { faults: [{ node: 'y', op: 'delete', class: 'transient', times: 3 }] } });
    await h.controller.setGraph(compileYaml(goalYaml(keep, { prune: true })).graph);
    await h.settle();
    expect(h.calls.deleted).toEqual(['y']);
    expect(h.backend.snapshot().has('x')).toBe(true);
    expect(h.store.getNode('x')?.reason).toMatch(/^not deleted while y, which depends on it, is not: /);
    // y's retries, on its backoff: x only after y is gone.
    await h.advance(2 * MIN, 1_000);
    expect(h.calls.deleted.filter((id) => id === 'y').length).toBe(4);
    expect(h.calls.deleted.at(-1)).toBe('x');
    expect(h.calls.deleted.indexOf('x')).toBeGreaterThan(h.calls.deleted.lastIndexOf('y'));
    for (const id of ['x', 'y']) {
      expect(h.backend.snapshot().has(id), id).toBe(false);
      expect(h.store.getNode(id), id).toBeUndefined();
    }
  });

  // y's edge to x left the graph with x (y's dependsOn had to go with it); y, removed in turn, was deleted
  // after x, whose delete failed again while y was there, as a role's is while a database it owns is.
  it('a node removed after what it depended on, whose delete failed meanwhile, is still deleted first', async () => {
    const keep = fileNode('k', 'K');
    const x = fileNode('x', 'X', { deletionPolicy: 'Delete' });
    // x cannot go while y is there (a role that owns a database).
    const refusesX = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        delete: (n, ctx) => (n.id === 'x' && b.snapshot().has('y') ? Promise.resolve({ status: 'failed', fault: fault('permanent', 'y depends on x') }) : b.delete(n, ctx)),
      });
    const h = await converged(goalYaml(keep + x + fileNode('y', 'Y', { dependsOn: ['x'], deletionPolicy: 'Delete' }), { prune: true }), { wrap: refusesX });
    await h.controller.setGraph(compileYaml(goalYaml(keep + fileNode('y', 'Y', { deletionPolicy: 'Delete' }), { prune: true })).graph);
    await h.settle();
    expect(h.calls.deleted).toEqual(['x']);
    expect(h.backend.snapshot().has('x')).toBe(true);
    h.calls.reset();
    await h.controller.setGraph(compileYaml(goalYaml(keep, { prune: true })).graph);
    await h.settle();
    expect(h.calls.deleted).toEqual(['y', 'x']);
    for (const id of ['x', 'y']) expect(h.store.getNode(id), id).toBeUndefined();
  });

  // Edges stored at three revisions closed a cycle no graph had: r (its delete refused) kept its edge to g,
  // d kept its edge to r once r left, and g then depended on d. Removed together, each waited on the next.
  it('removed nodes whose stored edges close a cycle through a kept edge are all deleted, the kept edge given up', async () => {
    let refuseR = true;
    const refusing = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        delete: (n, ctx) => (n.id === 'r' && refuseR ? Promise.resolve({ status: 'failed', fault: fault('permanent', 'r is in use') }) : b.delete(n, ctx)),
      });
    const keep = fileNode('k', 'K');
    const r = fileNode('r', 'R', { dependsOn: ['g'], deletionPolicy: 'Delete' });
    const h = await converged(goalYaml(keep + r + fileNode('g', 'G', { deletionPolicy: 'Delete' }) + fileNode('d', 'D', { dependsOn: ['r'], deletionPolicy: 'Delete' }), { prune: true }), { wrap: refusing });
    await h.controller.setGraph(compileYaml(goalYaml(keep + fileNode('g', 'G', { deletionPolicy: 'Delete' }) + fileNode('d', 'D', { deletionPolicy: 'Delete' }), { prune: true })).graph);
    await h.settle();
    await h.controller.setGraph(compileYaml(goalYaml(keep + fileNode('g', 'G', { dependsOn: ['d'], deletionPolicy: 'Delete' }) + fileNode('d', 'D', { deletionPolicy: 'Delete' }), { prune: true })).graph);
    await h.settle();
    expect(h.backend.snapshot().has('r')).toBe(true);
    expect(['r', 'g', 'd'].map((id) => storedEdges(h.store.getNode(id)!))).toEqual([{ deps: ['g'] }, { deps: ['d'] }, { deps: ['r'], kept: ['r'] }]);
    h.calls.reset();
    refuseR = false;
    await h.controller.setGraph(compileYaml(goalYaml(keep, { prune: true })).graph);
    await h.settle();
    expect(h.calls.deleted).toEqual(['r', 'g', 'd']);
    for (const id of ['r', 'g', 'd']) expect(h.store.getNode(id), id).toBeUndefined();
  });

  it('a backend declared otherwise is a goal change for its nodes: held ones are released, and what they find is converged, not reported as drift', async () => {
    const yaml = goalYaml(fileNode('a', 'A') + fileNode('b', 'B'), { selfHeal: false });
    const h = await converged(yaml, { memory: { faults: [{ node: 'a', op: 'create', class: 'auth', times: 3 }] } });
    await h.advance(10 * MIN, 5_000);
    expect(statusOf(h, 'a')).toBe('held');
    // b's resource is not where the backend now points (as files under a new root are not).
    h.backend.remove('b');
    h.calls.reset();
    const { graph } = compileYaml(yaml);
    await h.controller.setGraph(graph, { changedBackends: new Set(['mem']) });
    await h.settle();
    expect(h.calls.created.sort()).toEqual(['a', 'b']); // b under selfHeal: false, yet created: a goal change, not drift
    expect(h.store.listDrift({ node: 'b' })).toEqual([]);
    expect(statusOf(h, 'a')).toBe('ready');
    // The same graph with the same backends: unchanged nodes keep their schedule.
    h.calls.reset();
    await h.controller.setGraph(graph);
    await h.settle();
    expect(h.calls.observed).toEqual([]);
  });

  it('a node removed from the goals while its update runs is deleted once the update is over, never at the same time', async () => {
    const keep = Array.from({ length: 10 }, (_, i) => fileNode(`k${i}`, 'K')).join('');
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const events: string[] = [];
    const h = await converged(goalYaml(keep + fileNode('x', 'X', { deletionPolicy: 'Delete' }), { prune: true }), {
      wrap: (b) =>
        wrapMemory(b, 'memory', {
          update: async (n, d, ctx) => {
            events.push(`update ${n.id} starts`);
            await Promise.race([gate, new Promise((r) => ctx.signal.addEventListener('abort', r))]);
            const r = await b.update(n, d, ctx);
            events.push(`update ${n.id} ends`);
            return r;
          },
          delete: async (n, ctx) => {
            events.push(`delete ${n.id}`);
            return b.delete(n, ctx);
          },
        }),
    });
    h.backend.tamper('x', { content: 'theirs' });
    await h.clock.advanceAsync(0);
    await vi.waitFor(() => expect(events).toEqual(['update x starts']));
    const reload = h.controller.setGraph(compileYaml(goalYaml(keep, { prune: true })).graph);
    await h.clock.advanceAsync(0);
    expect(events).toEqual(['update x starts']);
    release();
    await reload;
    await h.settle();
    expect(events).toEqual(['update x starts', 'update x ends', 'delete x']);
    expect(h.backend.snapshot().has('x')).toBe(false);
    expect(h.store.getNode('x')).toBeUndefined();
  });

  it('a node pruned by a reload is deleted once: its interval coming round while the delete runs starts no second one, and it never comes back', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const h = await converged(goalYaml(fileNode('k', 'K') + fileNode('a', 'A', { deletionPolicy: 'Delete' }), { prune: true }), {
      wrap: (b) =>
        wrapMemory(b, 'memory', {
          // Slow, and fails on a resource already gone, as `sleep 10; rm` does.
          delete: async (n, ctx) => {
            await Promise.race([gate, new Promise((r) => ctx.signal.addEventListener('abort', r))]);
            return b.snapshot().has(n.id) ? b.delete(n, ctx) : { status: 'failed', fault: fault('permanent', `rm: cannot remove ${n.id}`) };
          },
        }),
    });
    h.calls.reset();
    const reload = h.controller.setGraph(compileYaml(goalYaml(fileNode('k', 'K'), { prune: true })).graph);
    try {
      // a's interval comes round (k's with it) while its delete waits: k is looked at, a is left to that delete.
      await h.clock.advanceAsync(2 * MIN);
      await vi.waitFor(() => expect(h.calls.observed.includes('k') || h.calls.deleted.length > 1).toBe(true));
      expect(h.calls.deleted).toEqual(['a']);
    } finally {
      release();
    }
    await reload;
    await h.advance(2 * MIN, 10_000);
    expect(h.calls.deleted).toEqual(['a']);
    expect(h.backend.snapshot().has('a')).toBe(false);
    expect(h.store.getNode('a')).toBeUndefined();
    expect(h.controller.nodes().map((r) => r.id)).toEqual(['k']);
    expect(h.lines.filter((l) => l.msg === 'node deleted')).toHaveLength(1);
    expect(h.lines.filter((l) => l.msg === 'delete failed')).toEqual([]);
  });

  it('a node removed from the goals while its first create runs leaves no record behind: created, then deleted (prune + Delete) or let go', async () => {
    const keep = Array.from({ length: 10 }, (_, i) => fileNode(`k${i}`, 'K')).join('');
    for (const policy of ['Delete', 'Orphan'] as const) {
      let release: () => void = () => {};
      const gate = new Promise<void>((r) => (release = r));
      const h = await converged(goalYaml(keep, { prune: true }), {
        wrap: (b) =>
          wrapMemory(b, 'memory', {
            create: async (n, ctx) => {
              if (n.id === 'y') await Promise.race([gate, new Promise((r) => ctx.signal.addEventListener('abort', r))]);
              return b.create(n, ctx);
            },
          }),
      });
      h.calls.reset();
      const adding = h.controller.setGraph(compileYaml(goalYaml(keep + fileNode('y', 'Y', { deletionPolicy: policy }), { prune: true })).graph);
      await adding;
      await h.clock.advanceAsync(0);
      await vi.waitFor(() => expect(h.calls.created).toEqual(['y']));
      const removing = h.controller.setGraph(compileYaml(goalYaml(keep, { prune: true })).graph);
      release();
      await removing;
      await h.settle();
      expect(h.store.getNode('y'), policy).toBeUndefined();
      expect(h.controller.nodes().map((r) => r.id)).not.toContain('y');
      expect(h.backend.snapshot().has('y'), policy).toBe(policy === 'Orphan');
      expect(h.calls.deleted, policy).toEqual(policy === 'Delete' ? ['y'] : []);
    }
  });

  it('a node deleted by prune and declared again is a new node: its old drift does not make its first drift a flap', async () => {
    const keep = Array.from({ length: 10 }, (_, i) => fileNode(`k${i}`, 'K')).join('');
    const withX = goalYaml(keep + fileNode('x', 'X', { deletionPolicy: 'Delete' }), { prune: true });
    const h = await converged(withX);
    h.backend.tamper('x', { content: 'theirs' });
    await h.settle();
    expect(h.calls.updated).toEqual(['x']);
    await h.controller.setGraph(compileYaml(goalYaml(keep, { prune: true })).graph);
    await h.settle();
    expect(h.calls.deleted).toEqual(['x']);
    // Back in the goals a minute later (well inside the flap window), created afresh, then edited once.
    await h.advance(MIN, 30_000);
    await h.controller.setGraph(compileYaml(withX).graph);
    await h.settle();
    h.calls.reset();
    h.backend.tamper('x', { content: 'theirs' });
    await h.settle();
    expect(h.calls.updated).toEqual(['x']); // corrected at once, not after a flap's backoff
    expect(h.store.listDrift({ node: 'x' }).at(-1)?.flapping).toBe(false);
  });

  it.each([
    { name: '6 of 20 is more than max(5, 10 %): refused', total: 20, removed: 6, refused: true },
    { name: '5 of 20 is within max(5, 10 %): deleted', total: 20, removed: 5, refused: false },
    { name: '11 of 100 is more than 10 %: refused', total: 100, removed: 11, refused: true },
    { name: '10 of 100 is within 10 %: deleted', total: 100, removed: 10, refused: false },
  ])('mass-deletion guard: $name', async ({ total, removed, refused }) => {
    const nodes = (n: number): string => Array.from({ length: n }, (_, i) => fileNode(`n${i}`, 'N', { deletionPolicy: 'Delete' })).join('');
    const h = await converged(goalYaml(nodes(total), { prune: true }));
    await h.controller.setGraph(compileYaml(goalYaml(nodes(total - removed), { prune: true })).graph);
    await h.settle();
    expect(h.calls.deleted.length).toBe(refused ? 0 : removed);
    expect(h.backend.snapshot().size).toBe(refused ? total : total - removed);
    expect(h.lines.some((l) => l.msg === 'mass deletion refused')).toBe(refused);
  });

  it('an empty graph never deletes anything', async () => {
    const h = await converged(goalYaml(fileNode('a', 'A', { deletionPolicy: 'Delete' }), { prune: true }));
    const empty = DesiredGraph.build<InfraDesiredNodeSpec>([]);
    if (!empty.ok) throw new Error('empty graph');
    await h.controller.setGraph(empty.graph);
    await h.settle();
    expect(h.calls.deleted).toEqual([]);
    expect(h.backend.snapshot().has('a')).toBe(true);
    expect(h.store.getNode('a')?.managed).toBe(true);
    // Said, not silent: a warning with how many are kept, and the state says so for `status`.
    expect(h.lines.find((l) => l.msg === 'the goals hold no nodes: the nodes managed so far are kept as they are, neither reconciled nor deleted')).toMatchObject({ kept: 1 });
    expect(h.controller.emptyGoals).toBe(true);
    expect(h.store.getMeta(GOALS_EMPTY_META)).toBe('1');
    // Goals with nodes again: no longer said.
    await h.controller.setGraph(compileYaml(goalYaml(fileNode('a', 'A', { deletionPolicy: 'Delete' }), { prune: true })).graph);
    expect(h.controller.emptyGoals).toBe(false);
    expect(h.store.getMeta(GOALS_EMPTY_META)).toBeUndefined();
  });

  it('a held node proceeds, with its dependents, once the gate goes (policy fixed), and again after a goal fix', async () => {
    const two = (mode: string): string => goalYaml(fileNode('a', 'A', { mode }) + fileNode('b', 'B', { dependsOn: ['a'] }));
    const h = start();
    const gated = new Map([['a', { reason: 'private (high, org)' }]]);
    await h.controller.setGraph(compileYaml(two('0644')).graph, { gates: gated });
    await h.settle();
    expect([statusOf(h, 'a'), statusOf(h, 'b')]).toEqual(['held', 'blocked']);
    // The policy is relaxed: the same goal, no gate.
    await h.controller.setGraph(compileYaml(two('0644')).graph);
    await h.settle();
    expect([statusOf(h, 'a'), statusOf(h, 'b')]).toEqual(['ready', 'ready']);
    expect(h.backend.createCount('a')).toBe(1);
    // Tightened again: held, never touched; then the goal is fixed (a new spec, no gate): updated.
    await h.controller.setGraph(compileYaml(two('0644')).graph, { gates: gated });
    await h.settle();
    expect(statusOf(h, 'a')).toBe('held');
    await h.controller.setGraph(compileYaml(two('0600')).graph);
    await h.settle();
    expect([statusOf(h, 'a'), statusOf(h, 'b')]).toEqual(['ready', 'ready']);
    expect((h.backend.snapshot().get('a')?.spec as { mode?: string } | undefined)?.mode).toBe('0600');
  });

  // Audit finding 5: after a policy-only change (the goal's spec the same), status kept the old rule as the reason, even across a restart.
  it('a held node takes the reason of the gate now in force when only the policy changed, running and after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-gate-reason-'));
    try {
      const yaml = goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] }));
      const first = await converged(yaml, { dir });
      await first.controller.setGraph(compileYaml(yaml).graph, { gates: new Map([['a', { reason: 'no-forbidden (high, acme)' }]]) });
      await first.settle();
      expect(first.store.getNode('a')).toMatchObject({ status: 'held', reason: 'held by policy: no-forbidden (high, acme)' });
      // The policy renames the rule and raises it: the same goal, another gate.
      await first.controller.setGraph(compileYaml(yaml).graph, { gates: new Map([['a', { reason: 'renamed-rule (critical, acme)' }]]) });
      await first.settle();
      expect(first.store.getNode('a')).toMatchObject({ status: 'held', reason: 'held by policy: renamed-rule (critical, acme)' });
      await first.close();

      // Edited again while the daemon was down: its next start says the new reason.
      const second = start({ dir, backend: first.backend });
      await second.controller.setGraph(compileYaml(yaml).graph, { gates: new Map([['a', { reason: 'third-rule (critical, acme)' }]]) });
      await second.settle();
      expect(second.store.getNode('a')).toMatchObject({ status: 'held', reason: 'held by policy: third-rule (critical, acme)' });
      expect(second.calls.updated).toEqual([]);
      expect(second.calls.deleted).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a node held by a policy gate is never created, and never deleted', async () => {
    const yaml = goalYaml(fileNode('a', 'A', { deletionPolicy: 'Delete' }) + fileNode('b', 'B', { dependsOn: ['a'] }) + fileNode('c', 'C', { deletionPolicy: 'Delete' }), { prune: true });
    const h = start();
    const gates = new Map([['a', { reason: 'naming: a is not a good name' }]]);
    await h.controller.setGraph(compileYaml(yaml).graph, { gates });
    await h.settle();
    await h.advance(5 * MIN, 30_000);
    expect(h.calls.created).not.toContain('a');
    expect(h.store.getNode('a')).toMatchObject({ status: 'held', reason: 'held by policy: naming: a is not a good name' });
    expect(statusOf(h, 'b')).toBe('blocked');
    expect(statusOf(h, 'c')).toBe('ready');
    // Now c is gated, then removed with prune + Delete: it stays.
    await h.controller.setGraph(compileYaml(yaml).graph, { gates: new Map([...gates, ['c', { reason: 'frozen' }]]) });
    await h.settle();
    expect(statusOf(h, 'c')).toBe('held');
    await h.controller.setGraph(compileYaml(goalYaml(fileNode('b', 'B'), { prune: true })).graph);
    await h.settle();
    expect(h.calls.deleted).toEqual([]);
    expect(h.calls.created).not.toContain('a');
    expect(h.backend.snapshot().has('c')).toBe(true);
  });
});

describe('Controller: nodes held back by the caller (a command left running on them)', () => {
  it('a held node is neither observed nor changed and says why; its dependents wait, the rest converges, readiness does not wait; released, it is looked at at once', async () => {
    const h = start();
    const release = h.controller.hold('a', 'waiting for its create left running');
    await h.controller.setGraph(compileYaml(abc).graph);
    await h.settle();
    expect(h.calls.observed).not.toContain('a');
    expect(h.store.getNode('a')).toMatchObject({ status: 'blocked', reason: 'waiting for its create left running' });
    expect(h.store.getNode('b')).toMatchObject({ status: 'blocked', reason: 'waiting for a' });
    expect(statusOf(h, 'c')).toBe('ready');
    expect(h.controller.ready).toBe(true);
    // Not the operator's to release: it goes as soon as what holds it is over.
    expect(h.controller.operatorRetry('a')).toEqual({ status: 'not-held', current: 'blocked' });
    // A reload, even one that changes the node, keeps it held; so do intervals.
    await h.controller.setGraph(compileYaml(abc.replace('"A"', '"A2"')).graph);
    await h.advance(3 * MIN, 30_000);
    expect(h.calls.observed).not.toContain('a');
    expect(h.calls.created).toEqual(['c']);
    expect(h.store.getNode('a')).toMatchObject({ status: 'blocked', reason: 'waiting for its create left running' });

    release();
    release(); // twice: harmless
    await h.settle();
    expect([statusOf(h, 'a'), statusOf(h, 'b')]).toEqual(['ready', 'ready']);
    expect(h.store.getNode('a')?.reason).toBeNull();
    expect(h.calls.created).toEqual(['c', 'a', 'b']);
    expect(contentOf(h, 'a')).toBe('A2');
  });

  it('a node held twice waits for both, showing the reasons left', async () => {
    const h = await converged();
    const first = h.controller.hold('c', 'one');
    const second = h.controller.hold('c', 'two');
    await h.settle();
    expect(h.store.getNode('c')).toMatchObject({ status: 'blocked', reason: 'one; two' });
    h.calls.reset();
    first();
    await h.settle();
    expect(h.store.getNode('c')).toMatchObject({ status: 'blocked', reason: 'two' });
    expect(h.calls.observed).not.toContain('c');
    second();
    await h.settle();
    expect(h.calls.observed).toContain('c');
    expect(h.store.getNode('c')).toMatchObject({ status: 'ready', reason: null });
  });

  it('a held node removed from the goals (prune, Delete) is deleted only once released', async () => {
    const yaml = goalYaml(fileNode('a', 'A', { deletionPolicy: 'Delete' }) + fileNode('c', 'C'), { prune: true });
    const h = await converged(yaml);
    const release = h.controller.hold('a', 'waiting');
    await h.controller.setGraph(compileYaml(goalYaml(fileNode('c', 'C'), { prune: true })).graph);
    await h.advance(2 * MIN, 30_000);
    expect(h.calls.deleted).toEqual([]);
    expect(h.backend.snapshot().has('a')).toBe(true);
    release();
    await h.settle();
    expect(h.calls.deleted).toEqual(['a']);
    expect(h.store.getNode('a')).toBeUndefined();
  });
});

// As Terraform refreshes before it destroys: a delete is sent only to what its read finds (an exec `delete`
// command need not succeed on what is not there).
describe('Controller: a node removed from the goals is read before its delete', () => {
  const both = goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { deletionPolicy: 'Delete' }), { prune: true });
  const onlyA = compileYaml(goalYaml(fileNode('a', 'A'), { prune: true })).graph;

  /**
   * A backend whose read of b before its delete (`OperationContext.beforeDelete`) answers `read()` while that
   * is defined; each such read noted in `reads` (the ids of one call, and whether b's was told of a create cut short).
   */
  const readingB =
    (read: () => Observation | undefined, reads: { ids: string[]; interrupted: boolean }[]) =>
    (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        observe: async (list, ctx) => {
          if (ctx.beforeDelete !== true) return b.observe(list, ctx);
          reads.push({ ids: list.map((n) => n.id), interrupted: ctx.interrupted?.('b') === true });
          const observed = new Map(await b.observe(list, ctx));
          const r = read();
          if (r !== undefined) observed.set('b', r);
          return observed;
        },
      });

  it('found gone: forgotten with no delete sent, counted forgotten; a node found there is deleted, all read in one call', async () => {
    const reads: { ids: string[]; interrupted: boolean }[] = [];
    // Gone by hand (the backend's watch would not hear of it before the load).
    const h = await converged(goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { deletionPolicy: 'Delete' }) + fileNode('c', 'C', { deletionPolicy: 'Delete' }), { prune: true }), { wrap: readingB(() => ({ status: 'absent' }), reads) });
    h.calls.reset();
    await h.controller.setGraph(onlyA);
    await h.settle();
    expect(reads.map((r) => [...r.ids].sort())).toEqual([['b', 'c']]);
    expect(h.calls.deleted).toEqual(['c']);
    expect(h.store.getNode('b')).toBeUndefined();
    expect(h.store.getNode('c')).toBeUndefined();
    expect(h.lines.filter((l) => l.msg === GONE_ALREADY)).toMatchObject([{ node: 'b', backend: 'mem' }]);
    expect(h.store.listRuns(1)[0]?.summary).toMatchObject({ deleted: 1, orphaned: 1 });
  });

  it("a read that fails is a failed delete, retried on the fault policy's backoff, never a delete sent blindly; deleted once a read finds it", async () => {
    let down = true;
    const connectionRefused: Observation = { status: 'failed', fault: { class: 'transient', message: 'connection refused' } };
    const h = await converged(both, { wrap: readingB(() => (down ? connectionRefused : undefined), []) });
    h.calls.reset();
    await h.controller.setGraph(onlyA);
    await h.settle();
    expect(h.calls.deleted).toEqual([]);
    expect(h.store.getNode('b')).toMatchObject({ status: 'failed', reason: 'connection refused', attempts: 1 });
    expect(h.lines.filter((l) => l.msg === 'delete failed')).toMatchObject([{ node: 'b', retryInMs: expect.any(Number) }]);
    down = false;
    await h.advance(2 * MIN, 5000);
    expect(h.calls.deleted).toEqual(['b']);
    expect(h.store.getNode('b')).toBeUndefined();
  });

  it('a read that cannot tell whether it exists holds it, not deleted, until `retry`, which ends the create cut short it was told of', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-read-held-'));
    const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: capturingLogger().log });
    try {
      const first = harness({ dir, backend });
      await first.controller.setGraph(compileYaml(both).graph);
      await first.settle();
      await first.close();
      const crashed = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      crashed.beginOperation('b', 'create', null);
      crashed.close();
      const reads: { ids: string[]; interrupted: boolean }[] = [];
      // What a read says of a resource a create cut short may have made and no one can find.
      const h = start({ dir, backend, wrap: readingB(() => (reads.at(-1)?.interrupted === true ? { status: 'indeterminate', reason: 'a create was cut short' } : undefined), reads) });
      await h.controller.setGraph(onlyA);
      await h.settle();
      expect(reads).toEqual([{ ids: ['b'], interrupted: true }]);
      expect(h.calls.deleted).toEqual([]);
      expect(h.store.getNode('b')).toMatchObject({ status: 'held', reason: 'cannot tell whether it exists: a create was cut short; check it and run `desiredstate retry b`' });
      expect(h.lines.filter((l) => l.msg === 'delete held: existence indeterminate')).toMatchObject([{ node: 'b' }]);
      await h.advance(2 * MIN, 10_000);
      expect(reads).toHaveLength(1);
      expect(h.controller.operatorRetry('b')).toEqual({ status: 'released' });
      await h.settle();
      expect(reads).toEqual([{ ids: ['b'], interrupted: true }, { ids: ['b'], interrupted: false }]);
      expect(h.calls.deleted).toEqual(['b']);
      expect(h.store.getNode('b')).toBeUndefined();
      expect(h.store.pendingOperations()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Controller: a removed node whose delete is held', () => {
  const keep = fileNode('k', 'K');
  const chain = fileNode('x', 'X', { deletionPolicy: 'Delete' }) + fileNode('y', 'Y', { dependsOn: ['x'], deletionPolicy: 'Delete' });
  const onlyK = goalYaml(keep, { prune: true });

  // Each goal load and each start read it and sent its delete again, however often the policy had given up on it.
  it('stays held through goal loads and restarts, neither read nor sent a delete, what it depends on waiting unread; `retry` deletes it, then what waited', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-held-delete-'));
    const backend = new MemoryBackend(memoryConfigSchema().parse({ faults: [{ node: 'y', op: 'delete', class: 'permanent', times: 3 }] }), { id: 'mem', log: capturingLogger().log });
    try {
      const first = await converged(goalYaml(keep + chain, { prune: true }), { dir, backend });
      await first.controller.setGraph(compileYaml(onlyK).graph);
      await first.advance(10 * MIN, 5_000);
      expect(first.calls.deleted).toEqual(['y', 'y', 'y']);
      expect(first.store.getNode('y')).toMatchObject({ status: 'held', attempts: 3, reason: expect.stringMatching(/\(permanent fault after 3 attempts; held until its goal \(the node's spec\) changes or `desiredstate retry NODE`\)$/) });
      expect(first.store.getNode('x')?.reason).toMatch(/^not deleted while y, which depends on it, is not: /);
      // Another revision of the goals.
      first.calls.reset();
      await first.controller.setGraph(compileYaml(goalYaml(keep + fileNode('m', 'M'), { prune: true })).graph);
      await first.advance(2 * MIN, 10_000);
      expect(first.calls.deleted).toEqual([]);
      expect(first.calls.observed.filter((id) => id === 'x' || id === 'y')).toEqual([]);
      await first.close();

      const second = await converged(goalYaml(keep + fileNode('m', 'M'), { prune: true }), { dir, backend });
      await second.advance(2 * MIN, 10_000);
      expect(second.calls.deleted).toEqual([]);
      expect(second.calls.observed.filter((id) => id === 'x' || id === 'y')).toEqual([]);
      expect(second.store.getNode('y')).toMatchObject({ status: 'held', attempts: 3 });
      expect(second.store.getNode('x')?.reason).toMatch(/^not deleted while y, which depends on it, is not: /);
      expect(second.controller.operatorRetry('y')).toEqual({ status: 'released' });
      await second.settle();
      expect(second.calls.deleted).toEqual(['y', 'x']);
      for (const id of ['x', 'y']) {
        expect(second.store.getNode(id), id).toBeUndefined();
        expect(backend.snapshot().has(id), id).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // As for a node of the goals: applies try its delete again each run, and their attempts count.
  it("a daemon started after applies spent a removed node's retry budget holds its delete without another attempt, or a read", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-spent-delete-'));
    try {
      const { log } = capturingLogger();
      const backend = new MemoryBackend(memoryConfigSchema().parse({ faults: [{ node: 'y', op: 'delete', class: 'permanent' }] }), { id: 'mem', log });
      const store = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      const reconciler = new Reconciler<InfraDesiredNodeSpec>({ provisioner: new InfraNodeProvisioner({ backends: new Map([['mem', backend]]) }), store, log, codec: infraSpecCodec });
      await reconciler.apply(compileYaml(goalYaml(keep + chain, { prune: true })).graph, { signal: AbortSignal.timeout(30_000), allowDeletions: true });
      for (let run = 0; run < 3; run++) await reconciler.apply(compileYaml(onlyK).graph, { signal: AbortSignal.timeout(30_000), allowDeletions: true });
      expect(store.getNode('y')).toMatchObject({ status: 'failed', attempts: 3 });
      store.close();

      const h = await converged(onlyK, { dir, backend });
      await h.advance(10 * MIN, 30_000);
      expect(h.calls.deleted).toEqual([]);
      expect(h.calls.observed.filter((id) => id === 'x' || id === 'y')).toEqual([]);
      expect(h.store.getNode('y')).toMatchObject({ status: 'held', attempts: 3, retryAt: null, reason: expect.stringMatching(/\(permanent fault after 3 attempts; held until its goal \(the node's spec\) changes or `desiredstate retry NODE`\)$/) });
      expect(h.lines.filter((l) => l.msg === 'delete held')).toEqual([expect.objectContaining({ node: 'y', attempts: 3 })]);
      expect(h.store.getNode('x')?.reason).toMatch(/^not deleted while y, which depends on it, is not: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A hold is until the goal changes: removing the node is such a change.
  it('a node held while in the goals (an update given up on) is deleted once removed', async () => {
    const h = await converged(goalYaml(keep + fileNode('y', 'Y', { deletionPolicy: 'Delete' }), { prune: true }), { memory: { faults: [{ node: 'y', op: 'update', class: 'permanent' }] } });
    await h.controller.setGraph(compileYaml(goalYaml(keep + fileNode('y', 'Y2', { deletionPolicy: 'Delete' }), { prune: true })).graph);
    await h.advance(10 * MIN, 5_000);
    expect(h.store.getNode('y')).toMatchObject({ status: 'held', attempts: 3 });
    await h.controller.setGraph(compileYaml(onlyK).graph);
    await h.settle();
    expect(h.calls.deleted).toEqual(['y']);
    expect(h.store.getNode('y')).toBeUndefined();
  });

  it('a node declared again while its delete was held is no longer held: looked at as a changed goal', async () => {
    const withY = goalYaml(keep + fileNode('y', 'Y', { deletionPolicy: 'Delete' }), { prune: true });
    const h = await converged(withY, { memory: { faults: [{ node: 'y', op: 'delete', class: 'permanent' }] } });
    await h.controller.setGraph(compileYaml(onlyK).graph);
    await h.advance(10 * MIN, 5_000);
    expect(h.store.getNode('y')).toMatchObject({ status: 'held', attempts: 3 });
    await h.controller.setGraph(compileYaml(withY).graph);
    await h.settle();
    expect(h.store.getNode('y')).toMatchObject({ status: 'ready', attempts: 0, reason: null });
  });

  it('held because its read could not tell whether it exists: held at a restart too, unread, until `retry --all`', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-controller-held-unsure-'));
    const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: capturingLogger().log });
    let unsure = true;
    const wrap = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memory', {
        observe: async (list, ctx) => {
          const observed = new Map(await b.observe(list, ctx));
          if (ctx.beforeDelete === true && unsure && observed.has('y')) observed.set('y', { status: 'indeterminate', reason: 'the API does not say' });
          return observed;
        },
      });
    try {
      const first = await converged(goalYaml(keep + chain, { prune: true }), { dir, backend, wrap });
      await first.controller.setGraph(compileYaml(onlyK).graph);
      await first.settle();
      expect(first.store.getNode('y')).toMatchObject({ status: 'held', reason: 'cannot tell whether it exists: the API does not say; check it and run `desiredstate retry y`' });
      await first.close();

      unsure = false;
      const second = await converged(onlyK, { dir, backend, wrap });
      await second.advance(2 * MIN, 10_000);
      expect(second.calls.observed.filter((id) => id === 'x' || id === 'y')).toEqual([]);
      expect(second.calls.deleted).toEqual([]);
      expect(second.store.getNode('y')).toMatchObject({ status: 'held' });
      expect(second.controller.operatorRetryAll()).toEqual({ released: ['y'], circuits: [] });
      await second.settle();
      expect(second.calls.deleted).toEqual(['y', 'x']);
      expect(second.store.getNode('y')).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Controller: crash recovery and uncertainty', () => {
  it.each([
    { name: 'a resource that exists is adopted, never created again', present: true, outcome: 'adopted', creates: 0 },
    { name: 'a resource that does not exist is created once', present: false, outcome: 'abandoned', creates: 1 },
  ])('a pending create left by a crash: $name', async ({ present, outcome, creates }) => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-crash-'));
    try {
      const { graph } = compileYaml(goalYaml(fileNode('a', 'A')));
      // The crashed process: the create was recorded as pending, maybe sent, never finished.
      const crashed = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      crashed.beginOperation('a', 'create', null);
      crashed.close();
      const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: (await import('pino')).default({ level: 'silent' }) });
      if (present) backend.preload([graph.get('a')!]);
      const h = start({ dir, backend });
      await h.controller.setGraph(graph);
      await h.settle();
      expect(backend.createCount('a')).toBe(creates);
      expect(statusOf(h, 'a')).toBe('ready');
      const db = new Database(join(dir, 'state.db'), { readonly: true });
      try {
        const ops = db.prepare("SELECT op, outcome FROM operations WHERE node = 'a' ORDER BY id").all();
        expect(ops[0]).toEqual({ op: 'create', outcome });
        expect(ops.filter((o) => (o as { outcome: string }).outcome === 'done').length).toBe(creates);
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    { name: 'found not done is abandoned, not taken for done, and done again', done: false, outcomes: ['abandoned', 'done'], updates: ['a'] },
    { name: 'found done (as it was to write) is adopted, not done again', done: true, outcomes: ['adopted'], updates: [] },
  ])('a pending update left by a crash: $name', async ({ done, outcomes, updates }) => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-crash-'));
    try {
      const before = compileYaml(goalYaml(fileNode('a', 'A'))).graph;
      const after = compileYaml(goalYaml(fileNode('a', 'A2'))).graph;
      const first = start({ dir });
      await first.controller.setGraph(before);
      await first.settle();
      await first.close();
      // The crashed process: the goal changed, the update was recorded as pending, maybe sent, never finished.
      const crashed = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      crashed.beginOperation('a', 'update', null);
      crashed.close();
      const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: (await import('pino')).default({ level: 'silent' }) });
      backend.preload([(done ? after : before).get('a')!]);
      const h = start({ dir, backend });
      await h.controller.setGraph(after);
      await h.settle();
      expect(h.calls.updated).toEqual(updates);
      expect(contentOf(h, 'a')).toBe('A2');
      expect(statusOf(h, 'a')).toBe('ready');
      expect(h.lines.filter((l) => l.msg.startsWith('interrupted operation resolved by observation')).map((l) => [l.msg, l.op])).toEqual([[`interrupted operation resolved by observation: ${outcomes[0]}`, 'update']]);
      const db = new Database(join(dir, 'state.db'), { readonly: true });
      try {
        const ops = db.prepare("SELECT outcome FROM operations WHERE node = 'a' AND op = 'update' ORDER BY id").all();
        expect(ops).toEqual(outcomes.map((outcome) => ({ outcome })));
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Its delete cut short stayed pending for good beside the one that replaced it; or, the crash after the delete
  // did its work, was sent again to a resource gone (an exec command that fails on what is not there).
  it.each([
    { what: 'still there: abandoned when it is deleted again', there: true, deletes: ['b'], outcomes: ['abandoned', 'done'], orphaned: 0 },
    { what: 'gone: found done (adopted) by the read before the delete, forgotten, no second delete sent', there: false, deletes: [], outcomes: ['adopted'], orphaned: 1 },
  ])('a pending delete left by a crash, its node removed with Delete, its resource $what, never left pending', async ({ there, deletes, outcomes, orphaned }) => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-crash-'));
    try {
      const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: capturingLogger().log });
      const both = compileYaml(goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { deletionPolicy: 'Delete' }), { prune: true })).graph;
      const first = start({ dir, backend });
      await first.controller.setGraph(both);
      await first.settle();
      await first.close();
      const crashed = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      crashed.beginOperation('b', 'delete', null);
      crashed.close();
      if (!there) backend.remove('b');
      const h = start({ dir, backend });
      await h.controller.setGraph(compileYaml(goalYaml(fileNode('a', 'A'), { prune: true })).graph);
      await h.settle();
      expect(h.calls.deleted).toEqual(deletes);
      expect(h.store.getNode('b')).toBeUndefined();
      expect(h.lines.filter((l) => l.msg === GONE_ALREADY).map((l) => l.node)).toEqual(there ? [] : ['b']);
      // Forgotten, as a node its goal no longer deletes is: counted so in the run (history's ○).
      expect(h.store.listRuns(1)[0]?.summary).toMatchObject({ deleted: there ? 1 : 0, orphaned });
      const db = new Database(join(dir, 'state.db'), { readonly: true });
      try {
        expect(db.prepare("SELECT outcome FROM operations WHERE node = 'b' AND op = 'delete' ORDER BY id").all()).toEqual(outcomes.map((outcome) => ({ outcome })));
        expect(db.prepare('SELECT count(*) AS n FROM operations WHERE outcome IS NULL').get()).toEqual({ n: 0 });
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Drift only reported leaves the node as it is, but the operation is over: left pending, nothing would ever end it.
  it('a pending update left by a crash, its resource found gone under selfHeal: false: abandoned, though nothing is made again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-crash-'));
    try {
      const { graph } = compileYaml(goalYaml(fileNode('a', 'A'), { selfHeal: false }));
      const first = start({ dir });
      await first.controller.setGraph(graph);
      await first.settle();
      await first.close();
      const crashed = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      crashed.beginOperation('a', 'update', null);
      crashed.close();
      // The resource is gone: a fresh backend holds nothing.
      const h = start({ dir });
      await h.controller.setGraph(graph);
      await h.settle();
      expect(statusOf(h, 'a')).toBe('drifted');
      expect(h.backend.createCount('a')).toBe(0);
      expect(h.store.pendingOperations()).toEqual([]);
      expect(h.lines.filter((l) => l.msg.startsWith('interrupted operation resolved by observation')).map((l) => [l.msg, l.op])).toEqual([['interrupted operation resolved by observation: abandoned', 'update']]);
      const db = new Database(join(dir, 'state.db'), { readonly: true });
      try {
        expect(db.prepare("SELECT outcome, detail FROM operations WHERE node = 'a' AND op = 'update'").all()).toEqual([{ outcome: 'abandoned', detail: 'not found done after an interrupted update; the node is observed again' }]);
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a node stored mid-operation (`creating`) by a crashed process starts over and converges', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-crash-'));
    try {
      const { graph } = compileYaml(goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] })));
      const crashed = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
      crashed.putNodes([
        { id: 'a', goal: 'app', type: 'local.file', backendId: 'mem', status: 'creating', appliedDigest: graph.get('a')!.spec.digest, outputs: null, managed: true, lastFault: null, attempts: 0, retryAt: null, reason: null, snapshot: null, memo: null, deletionPolicy: 'Orphan', updatedAt: 0 },
      ]);
      crashed.close();
      const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: (await import('pino')).default({ level: 'silent' }) });
      backend.preload([graph.get('a')!]);
      const h = start({ dir, backend });
      await h.controller.setGraph(graph);
      await h.settle();
      expect(statusOf(h, 'a')).toBe('ready');
      expect(statusOf(h, 'b')).toBe('ready');
      expect(backend.createCount('a')).toBe(0);
      expect(h.controller.ready).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps each node's observation memo: stored, handed back at the next observation, unchanged writes nothing, cleared by an update that returns none", async () => {
    // A backend that remembers a version per node: a new memo only when the resource's content changed.
    const seen: (ObservationMemo | undefined)[] = [];
    const memoing = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'memoing', {
        observe: async (nodes, ctx) => {
          const inner = await b.observe(nodes, ctx);
          return new Map(
            [...inner].map(([id, obs]) => {
              if (id !== 'a' || (obs.status !== 'upToDate' && obs.status !== 'drifted')) return [id, obs];
              seen.push(ctx.memoOf?.(id));
              return [id, { ...obs, memo: { content: (b.snapshot().get(id)?.spec as { content?: string } | undefined)?.content ?? null } }];
            }),
          );
        },
      });
    const h = await converged(goalYaml(fileNode('a', 'A')), { wrap: memoing });
    // Two interval observations (each due up to a schedule slot, 1/50 of the interval, after the minute).
    await h.advance(2 * MIN + 30_000, 30_000);
    expect(h.store.getNode('a')?.memo).toEqual({ content: 'A' });
    expect(seen.at(-1)).toEqual({ content: 'A' }); // handed back
    const written = h.store.getNode('a')!.updatedAt;
    await h.advance(3 * MIN, 30_000);
    expect(h.store.getNode('a')?.updatedAt).toBe(written); // same memo: the steady path writes nothing
    const before = seen.length;
    h.backend.tamper('a', { content: 'evil' });
    await h.advance(2 * MIN, 30_000);
    expect(contentOf(h, 'a')).toBe('A');
    // The update returned no memo, so it cleared the one observed before it: the next observation got none, and recorded a fresh one.
    expect(seen.slice(before)).toEqual([{ content: 'A' }, undefined, ...seen.slice(before + 2)]);
    expect(h.store.getNode('a')?.memo).toEqual({ content: 'A' });
  });

  it('stores the memo a create or update returns and hands it back at the next observation', async () => {
    const written = (b: MemoryBackend, id: string): string | null => (b.snapshot().get(id)?.spec as { content?: string } | undefined)?.content ?? null;
    // A backend that notes what it wrote: a create's or update's result carries a memo, an observation keeps the one it is handed.
    const seen: (ObservationMemo | undefined)[] = [];
    const noting = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'noting', {
        observe: async (nodes, ctx) => {
          const inner = await b.observe(nodes, ctx);
          return new Map(
            [...inner].map(([id, obs]): [string, Observation] => {
              if (obs.status !== 'upToDate' && obs.status !== 'drifted') return [id, obs];
              const memo = ctx.memoOf?.(id);
              seen.push(memo);
              return [id, memo === undefined ? obs : { ...obs, memo }];
            }),
          );
        },
        create: async (n, ctx) => {
          const r = await b.create(n, ctx);
          return r.status === 'done' ? { ...r, memo: { by: 'create', content: written(b, n.id) } } : r;
        },
        update: async (n, d, ctx) => {
          const r = await b.update(n, d, ctx);
          return r.status === 'done' ? { ...r, memo: { by: 'update', content: written(b, n.id) } } : r;
        },
      });
    const h = start({ wrap: noting });
    const { graph, gates } = compileYaml(goalYaml(fileNode('a', 'A')));
    await h.controller.setGraph(graph, { gates });
    await h.settle();
    expect(h.store.getNode('a')?.memo).toEqual({ by: 'create', content: 'A' });
    await h.advance(2 * MIN, 30_000);
    expect(seen[0]).toEqual({ by: 'create', content: 'A' }); // the first observation after the create is handed the create's memo
    const at = h.store.getNode('a')!.updatedAt;
    await h.advance(2 * MIN, 30_000);
    expect(h.store.getNode('a')?.updatedAt).toBe(at); // observed with the same memo: the steady path writes nothing

    h.backend.tamper('a', { content: 'evil' });
    await h.advance(2 * MIN, 30_000);
    expect(contentOf(h, 'a')).toBe('A');
    expect(h.calls.updated).toContain('a');
    expect(h.store.getNode('a')?.memo).toEqual({ by: 'update', content: 'A' });
    expect(seen.at(-1)).toEqual({ by: 'update', content: 'A' }); // handed back after the update
    expect(h.store.getNode('a')?.status).toBe('ready');
  });

  it('an indeterminate observation holds the node: no create, no guess', async () => {
    const unsure = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'unsure', {
        observe: async (nodes, ctx) => {
          const inner = await b.observe(nodes, ctx);
          return new Map([...inner].map(([id, obs]) => [id, id === 'a' ? { status: 'indeterminate', reason: 'a create may be in flight' } : obs]));
        },
      });
    const h = await converged(goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] })), { wrap: unsure });
    await h.advance(5 * MIN, 30_000);
    expect(h.calls.created).toEqual([]);
    expect(h.store.getNode('a')).toMatchObject({ status: 'held', reason: expect.stringContaining('desiredstate retry a') });
    expect(statusOf(h, 'b')).toBe('blocked');
    // Held until an operator's retry: never looked at again on its own.
    h.calls.reset();
    await h.advance(5 * MIN, 30_000);
    expect(h.calls.observed).not.toContain('a');
  });

  // A prod node held for a per-run approval stayed held once its script had earned the trust to run
  // alone: nothing looked at it again without `retry`.
  it('a node held by an observation that waits (a script awaiting trust) is looked at again on its interval, and goes on once it may', async () => {
    let mayRun = false;
    const gated = (b: MemoryBackend): InfraBackend =>
      wrapMemory(b, 'gated', {
        observe: async (nodes, ctx) => {
          const inner = await b.observe(nodes, ctx);
          return new Map([...inner].map(([id, obs]) => [id, id === 'a' && !mayRun ? { status: 'indeterminate', reason: 'script needs a per-run approval', waiting: true } : obs]));
        },
      });
    const h = await converged(goalYaml(fileNode('a', 'A') + fileNode('b', 'B', { dependsOn: ['a'] })), { wrap: gated });
    expect(h.store.getNode('a')).toMatchObject({ status: 'held', reason: 'script needs a per-run approval' });
    mayRun = true;
    await h.advance(2 * MIN, 10_000);
    expect(h.calls.created).toEqual(['a', 'b']);
    expect(statusOf(h, 'a')).toBe('ready');
    expect(statusOf(h, 'b')).toBe('ready');
  });
});

