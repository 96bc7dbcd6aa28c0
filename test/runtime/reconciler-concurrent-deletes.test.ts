import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBackend, memoryConfigSchema } from '../../src/backends/memory/index.ts';
import { InfraNodeProvisioner, infraSpecCodec } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec, InfraNode } from '../../src/infra/index.ts';
import { Reconciler, SqliteStateStore } from '../../src/runtime/index.ts';
import type { ApplyResult, Fault, OperationContext } from '../../src/runtime/index.ts';
import { compileYaml, fileNode, goalYaml } from '../support/controller-harness.ts';
import { expectSerialKeyTurns, gatedDeletes, turns } from '../support/gated-deletes.ts';
import type { GatedDeletes } from '../support/gated-deletes.ts';

/**
 * `apply` deleting nodes removed from the goals (prune + Delete) through the real dispatcher, over a memory
 * backend whose deletes each wait for the test to answer them (`gatedDeletes`), or for the pass's abort.
 */
interface GatedApply extends GatedDeletes {
  readonly reconciler: Reconciler<InfraDesiredNodeSpec>;
  readonly sqlite: SqliteStateStore;
  readonly backend: MemoryBackend;
  /** How many times the dispatcher was asked `refusedDelete`, per node, since the nodes were applied. */
  readonly refusalsAsked: Map<string, number>;
}

const dirs: string[] = [];
const stores: SqliteStateStore[] = [];
/** Lets every delete through, those waiting and those to come: a test that failed half-way still ends its apply. */
const unblock: (() => void)[] = [];
afterEach(() => {
  for (const u of unblock.splice(0)) u();
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const KEEP = fileNode('stay', 'S');
const deletable = (id: string, dependsOn?: string[]): string => fileNode(id, id.toUpperCase(), { deletionPolicy: 'Delete', ...(dependsOn === undefined ? {} : { dependsOn }) });
const keepOnly = (): ReturnType<typeof compileYaml>['graph'] => compileYaml(goalYaml(KEEP, { prune: true })).graph;
const pass = { signal: AbortSignal.timeout(30_000), allowDeletions: true };

/** The dispatcher, counting what it is asked of `refusedDelete`. */
class CountingRefusals extends InfraNodeProvisioner {
  readonly asked = new Map<string, number>();
  override refusedDelete(node: InfraNode, ctx: OperationContext): Promise<Fault | undefined> {
    this.asked.set(node.id, (this.asked.get(node.id) ?? 0) + 1);
    return super.refusedDelete(node, ctx);
  }
}

/** Applies `removed` (YAML of nodes) beside a kept node with a reconciler of `concurrency`; the deletes of the next apply wait for the test. */
async function gatedApply(removed: string, concurrency: number): Promise<GatedApply> {
  const dir = mkdtempSync(join(tmpdir(), 'ds-reconciler-deletes-'));
  dirs.push(dir);
  const sqlite = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
  stores.push(sqlite);
  const log = pino({ level: 'silent' });
  const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log });
  const d = gatedDeletes(backend);
  unblock.push(d.letThrough);
  const provisioner = new CountingRefusals({ backends: new Map([['mem', d.gated]]) });
  const reconciler = new Reconciler<InfraDesiredNodeSpec>({ provisioner, store: sqlite, log, codec: infraSpecCodec, concurrency });
  await reconciler.apply(compileYaml(goalYaml(KEEP + removed, { prune: true })).graph, pass);
  provisioner.asked.clear();
  return { ...d, reconciler, sqlite, backend, refusalsAsked: provisioner.asked };
}

/** What `plan` lists of the removed nodes, in its order. */
async function plannedDeletes(a: GatedApply): Promise<[string, string][]> {
  return (await a.reconciler.plan(keepOnly(), pass)).filter((e) => e.id !== 'stay').map((e) => [e.id, e.planned.action]);
}

describe('Reconciler: apply deletes removed nodes side by side, up to its concurrency', () => {
  it('five independent nodes with three slots: three deletes in flight at once, never more; each slot freed starts the next; outcomes listed in plan order', async () => {
    const ids = ['d1', 'd2', 'd3', 'd4', 'd5'];
    const a = await gatedApply(ids.map((id) => deletable(id)).join(''), 3);
    const planned = await plannedDeletes(a);
    const applying = a.reconciler.apply(keepOnly(), pass);
    await vi.waitFor(() => expect(a.inFlight.size).toBe(3));
    await turns();
    expect(a.sent).toHaveLength(3);
    // Answered last first: what ends first is not what is listed first.
    for (let left = 5; left > 0; left--) {
      const next = [...a.inFlight].at(-1)!;
      a.finish(next);
      await vi.waitFor(() => expect(a.inFlight.has(next)).toBe(false));
      await vi.waitFor(() => expect(a.inFlight.size).toBe(Math.min(3, left - 1)));
    }
    const result = await applying;
    expect(Math.max(...a.atSend.map((s) => s.length))).toBe(3);
    expect([...a.sent].sort()).toEqual(ids);
    expect([...a.backend.snapshot().keys()]).toEqual(['stay']);
    expect(a.sqlite.listNodes().map((r) => r.id)).toEqual(['stay']);
    expect(a.sqlite.pendingOperations()).toEqual([]);
    expect(removedOutcomes(result)).toEqual(planned.map(([id]) => [id, 'deleted']));
  });

  it('a node is deleted only once every removed node that depends on it is: its dependents side by side first, and one whose dependent fails is blocked, said why', async () => {
    // b and c depend on a, d on b: d, c and w go first, side by side; b once d is gone; a once b and c are.
    const a = await gatedApply(deletable('a') + deletable('b', ['a']) + deletable('c', ['a']) + deletable('d', ['b']) + deletable('w'), 10);
    const planned = await plannedDeletes(a);
    const applying = a.reconciler.apply(keepOnly(), pass);
    await vi.waitFor(() => expect([...a.inFlight].sort()).toEqual(['c', 'd', 'w']));
    await turns();
    expect([...a.inFlight].sort()).toEqual(['c', 'd', 'w']);
    a.finish('d');
    await vi.waitFor(() => expect([...a.inFlight].sort()).toEqual(['b', 'c', 'w']));
    a.finish('b');
    a.finish('w');
    await turns();
    // a still waits for c.
    expect([...a.inFlight]).toEqual(['c']);
    a.fail('c');
    const result = await applying;
    expect(a.sent).not.toContain('a');
    expect(result.outcomes.get('a')).toEqual({ status: 'blocked', reason: 'not deleted while c, which depends on it, is not' });
    expect(result.outcomes.get('c')).toMatchObject({ status: 'failed', fault: { message: 'delete command failed' } });
    expect(a.sqlite.getNode('a')?.reason).toBe('not deleted while c, which depends on it, is not');
    expect(removedOutcomes(result).map(([id]) => id)).toEqual(planned.map(([id]) => id));
    expect([...a.backend.snapshot().keys()].sort()).toEqual(['a', 'c', 'stay']);
    // c's delete done at the next apply: a after it.
    const again = a.reconciler.apply(keepOnly(), pass);
    await vi.waitFor(() => expect([...a.inFlight]).toEqual(['c']));
    a.finish('c');
    await vi.waitFor(() => expect([...a.inFlight]).toEqual(['a']));
    a.finish('a');
    await again;
    expect(a.sent.slice(0, 3).sort()).toEqual(['c', 'd', 'w']);
    expect(a.sent.slice(3)).toEqual(['b', 'c', 'a']);
    expect([...a.backend.snapshot().keys()]).toEqual(['stay']);
  });

  it('deletes that share a serial key take their turns, one at a time, while the others run beside them', async () => {
    const a = await gatedApply(deletable('k1') + deletable('k2') + deletable('k3') + deletable('x1') + deletable('x2'), 3);
    await expectSerialKeyTurns(a, a.reconciler.apply(keepOnly(), pass));
    expect([...a.backend.snapshot().keys()]).toEqual(['stay']);
  });

  it('a signal starts no delete not begun: those in flight are cut off (their commands killed) and left pending, the others are sent nothing, all stay recorded', async () => {
    const ids = ['d1', 'd2', 'd3', 'd4', 'd5'];
    const a = await gatedApply(ids.map((id) => deletable(id)).join(''), 3);
    const abort = new AbortController();
    const applying = a.reconciler.apply(keepOnly(), { signal: abort.signal, allowDeletions: true });
    await vi.waitFor(() => expect(a.inFlight.size).toBe(3));
    const running = [...a.inFlight].sort();
    const waiting = ids.filter((id) => !running.includes(id));
    // The three slots it frees start nothing.
    abort.abort();
    const result = await applying;
    expect([...a.sent].sort()).toEqual(running);
    for (const id of running) expect(result.outcomes.get(id), id).toMatchObject({ status: 'failed', fault: { message: 'delete command aborted' } });
    for (const id of waiting) expect(result.outcomes.get(id), id).toMatchObject({ status: 'failed', fault: { message: 'operation aborted before it started' } });
    expect([...a.backend.snapshot().keys()].sort()).toEqual(['stay', ...ids].sort());
    expect(a.sqlite.listNodes().map((r) => r.id).sort()).toEqual(['stay', ...ids].sort());
    // Those cut off are left pending, read again before a delete at the next run, as after a crash; those never sent are over.
    expect(a.sqlite.pendingOperations().map((op) => [op.node, op.op]).sort()).toEqual(running.map((id) => [id, 'delete']));
  });
});

describe('Reconciler: what apply will delete is asked refusedDelete once a node', () => {
  it('by plan, which reads each node it is not refused, and by the question apply asks first, which does not', async () => {
    const a = await gatedApply(deletable('a') + deletable('b', ['a']) + deletable('c'), 10);
    expect(await plannedDeletes(a)).toEqual([
      ['c', 'delete'],
      ['b', 'delete'],
      ['a', 'delete'],
    ]);
    expect(Object.fromEntries(a.refusalsAsked)).toEqual({ a: 1, b: 1, c: 1 });
    a.refusalsAsked.clear();
    expect(await a.reconciler.plannedDeletions(keepOnly(), pass)).toEqual({ attempted: ['c', 'b', 'a'], refused: [] });
    expect(Object.fromEntries(a.refusalsAsked)).toEqual({ a: 1, b: 1, c: 1 });
  });
});

/** The outcomes of the removed nodes, in the order the result lists them (apply's output, its JSON). */
function removedOutcomes(result: ApplyResult): [string, string][] {
  return [...result.outcomes].filter(([id]) => id !== 'stay').map(([id, o]) => [id, o.status]);
}
