import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBackend, memoryConfigSchema } from '../../src/backends/memory/index.ts';
import { InfraNodeProvisioner } from '../../src/infra/index.ts';
import { compileYaml, fileNode, goalYaml, harness } from '../support/controller-harness.ts';
import type { Harness } from '../support/controller-harness.ts';
import { expectSerialKeyTurns, gatedDeletes, turns } from '../support/gated-deletes.ts';
import type { GatedDeletes } from '../support/gated-deletes.ts';

/**
 * The daemon deleting nodes removed from the goals (prune + Delete) over a memory backend whose deletes
 * each wait for the test to answer them (`gatedDeletes`), or for the shutdown's abort.
 */
interface GatedDaemon extends GatedDeletes {
  readonly h: Harness;
}

const open: Harness[] = [];
/** Lets every delete through, those waiting and those to come: a test that failed half-way still closes its harness. */
const unblock: (() => void)[] = [];
afterEach(async () => {
  for (const u of unblock.splice(0)) u();
  for (const h of open.splice(0)) await h.close();
});

const KEEP = fileNode('stay', 'S');
const deletable = (id: string, dependsOn?: string[]): string => fileNode(id, id.toUpperCase(), { deletionPolicy: 'Delete', ...(dependsOn === undefined ? {} : { dependsOn }) });
const keepOnly = (): ReturnType<typeof compileYaml>['graph'] => compileYaml(goalYaml(KEEP, { prune: true })).graph;

/** Converges `removed` (YAML of nodes) beside a kept node, with `concurrency` slots; the deletes then wait for the test. */
async function gatedDaemon(removed: string, concurrency: number): Promise<GatedDaemon> {
  const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: pino({ level: 'silent' }) });
  const d = gatedDeletes(backend);
  unblock.push(d.letThrough);
  // The daemon's own provisioner, serial keys and all.
  const provisioner = new InfraNodeProvisioner({ backends: new Map([['mem', d.gated]]) });
  const h = harness({ backend, extra: { concurrency, provisioner } });
  open.push(h);
  await h.controller.setGraph(compileYaml(goalYaml(KEEP + removed, { prune: true })).graph);
  await h.settle();
  return { ...d, h };
}

describe('Controller: the deletes of removed nodes run side by side, up to --concurrency', () => {
  it('five independent nodes with three slots: three deletes in flight at once, never more; each slot freed starts the next', async () => {
    const ids = ['d1', 'd2', 'd3', 'd4', 'd5'];
    const d = await gatedDaemon(ids.map((id) => deletable(id)).join(''), 3);
    const reload = d.h.controller.setGraph(keepOnly());
    await vi.waitFor(() => expect(d.inFlight.size).toBe(3));
    await turns();
    expect(d.sent).toHaveLength(3);
    for (let left = 5; left > 0; left--) {
      const next = [...d.inFlight][0]!;
      d.finish(next);
      await vi.waitFor(() => expect(d.inFlight.has(next)).toBe(false));
      await vi.waitFor(() => expect(d.inFlight.size).toBe(Math.min(3, left - 1)));
    }
    await reload;
    expect(Math.max(...d.atSend.map((s) => s.length))).toBe(3);
    expect([...d.sent].sort()).toEqual(ids);
    expect([...d.h.backend.snapshot().keys()]).toEqual(['stay']);
    expect(d.h.store.listNodes().map((r) => r.id)).toEqual(['stay']);
  });

  it('a node is deleted only once every removed node that depends on it is: its dependents side by side first, and one whose dependent fails waits for it', async () => {
    // b and c depend on a, d on b: d and c go first, side by side; b once d is gone; a once b and c are.
    const d = await gatedDaemon(deletable('a') + deletable('b', ['a']) + deletable('c', ['a']) + deletable('d', ['b']) + deletable('w'), 10);
    const reload = d.h.controller.setGraph(keepOnly());
    await vi.waitFor(() => expect([...d.inFlight].sort()).toEqual(['c', 'd', 'w']));
    d.finish('w');
    d.finish('d');
    await vi.waitFor(() => expect([...d.inFlight].sort()).toEqual(['b', 'c']));
    d.fail('c');
    d.finish('b');
    await reload;
    // c's delete failed: a is not deleted while c is there, and waits for it.
    expect(d.sent).not.toContain('a');
    expect(d.h.store.getNode('a')?.reason).toMatch(/^not deleted while c, which depends on it, is not: /);
    expect(d.h.store.getNode('c')).toMatchObject({ status: 'failed', attempts: 1 });
    // c again on its backoff; a once it is gone.
    const retried = d.h.advance(60_000, 1000);
    await vi.waitFor(() => expect(d.inFlight).toEqual(new Set(['c'])));
    d.finish('c');
    await vi.waitFor(() => expect(d.inFlight).toEqual(new Set(['a'])));
    d.finish('a');
    await retried;
    expect(d.sent.slice(0, 3).sort()).toEqual(['c', 'd', 'w']);
    expect(d.sent.slice(3)).toEqual(['b', 'c', 'a']);
    expect([...d.h.backend.snapshot().keys()]).toEqual(['stay']);
    expect(d.h.store.listNodes().map((r) => r.id)).toEqual(['stay']);
  });

  it('deletes that share a serial key take their turns, one at a time, while the others run beside them', async () => {
    const d = await gatedDaemon(deletable('k1') + deletable('k2') + deletable('k3') + deletable('x1') + deletable('x2'), 3);
    await expectSerialKeyTurns(d, d.h.controller.setGraph(keepOnly()));
    expect([...d.h.backend.snapshot().keys()]).toEqual(['stay']);
  });

  it('a goal load during the deletes has the last word: a node declared again is not deleted when a slot frees', async () => {
    const d = await gatedDaemon(['d1', 'd2', 'd3', 'd4'].map((id) => deletable(id)).join(''), 2);
    const reload = d.h.controller.setGraph(keepOnly());
    await vi.waitFor(() => expect(d.inFlight.size).toBe(2));
    const waiting = ['d1', 'd2', 'd3', 'd4'].filter((id) => !d.inFlight.has(id));
    const running = [...d.inFlight];
    // The nodes not begun declared again, as they were.
    const again = d.h.controller.setGraph(compileYaml(goalYaml(KEEP + waiting.map((id) => deletable(id)).join(''), { prune: true })).graph);
    for (const id of running) d.finish(id);
    await reload;
    await again;
    await d.h.settle();
    expect([...d.sent].sort()).toEqual([...running].sort());
    expect([...d.h.backend.snapshot().keys()].sort()).toEqual(['stay', ...waiting].sort());
    expect(d.h.store.listNodes().map((r) => [r.id, r.status]).sort()).toEqual(['stay', ...waiting].sort().map((id) => [id, 'ready']));
  });

  it('a stop starts no delete not begun, and cuts off those in flight after its grace, left pending', async () => {
    const d = await gatedDaemon(['d1', 'd2', 'd3', 'd4', 'd5'].map((id) => deletable(id)).join(''), 3);
    const reload = d.h.controller.setGraph(keepOnly());
    await vi.waitFor(() => expect(d.inFlight.size).toBe(3));
    const running = [...d.inFlight].sort();
    const stopping = d.h.controller.stop(1000);
    // One answered within the grace: its slot starts no other delete.
    d.finish(running[0]!);
    await turns();
    await d.h.clock.advanceAsync(1000);
    await stopping;
    await reload;
    expect([...d.sent].sort()).toEqual(running);
    expect(d.h.store.pendingOperations().map((o) => `${o.node}:${o.op}`).sort()).toEqual(running.slice(1).map((id) => `${id}:delete`));
    expect(d.h.store.listNodes().map((r) => r.id).sort()).toEqual(['d1', 'd2', 'd3', 'd4', 'd5', 'stay'].filter((id) => id !== running[0]));
    expect(d.h.lines.filter((l) => l.msg === 'operation cut off by the shutdown; left pending')).toHaveLength(2);
  });
});

describe('Controller: a removed node whose delete failed', () => {
  it('queued again before its backoff (a hold on it released) waits that backoff out: no delete sent early', async () => {
    const d = await gatedDaemon(deletable('x'), 10);
    const reload = d.h.controller.setGraph(keepOnly());
    await vi.waitFor(() => expect(d.inFlight).toEqual(new Set(['x'])));
    d.fail('x');
    await reload;
    const { retryAt } = d.h.store.getNode('x')!;
    expect(retryAt).toBeGreaterThan(d.h.clock.now() + 100);
    d.letThrough();
    d.h.controller.hold('x', 'test: a command left running on it')();
    await d.h.settle();
    expect(d.sent).toEqual(['x']);
    await d.h.advance(retryAt! - d.h.clock.now() - 100, 100);
    expect(d.sent).toEqual(['x']);
    // Its backoff over: sent again.
    await d.h.advance(100);
    expect(d.sent).toEqual(['x', 'x']);
    expect(d.h.store.getNode('x')).toBeUndefined();
  });
});
