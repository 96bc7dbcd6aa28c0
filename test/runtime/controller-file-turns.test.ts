import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBackend, memoryConfigSchema } from '../../src/backends/memory/index.ts';
import { InfraNodeProvisioner } from '../../src/infra/index.ts';
import type { BackendNode, InfraBackend } from '../../src/infra/index.ts';
import { KeyedSerializer } from '../../src/runtime/index.ts';
import type { OperationContext, ProvisionResult } from '../../src/runtime/index.ts';
import { compileYaml, fileNode, goalYaml, harness, wrapMemory } from '../support/controller-harness.ts';
import type { Harness } from '../support/controller-harness.ts';

/**
 * The daemon over nodes some of which rewrite one shared file, as the script backend's built-in templates
 * do (`json-key`): the nodes whose id starts with `k` name it as their `serialKey`, and their changes take
 * turns at it in the backend itself, as the script backend's `fileTurns` does. Every other node's changes
 * run side by side. Each change's way through is in `events`: `<verb> <id> asked` when the backend is
 * called, `<verb> <id> in turn` once it has the file, `key <id>` when its key is asked for.
 */
interface SharedFile {
  readonly h: Harness;
  readonly events: string[];
  /** From now on, a change that gets the file keeps it until `open`. */
  close(): void;
  open(): void;
}

const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

/** Converges `yaml` over a shared file with `concurrency` slots (a worker loop per five), through the real dispatcher. */
async function sharedFile(yaml: string, concurrency: number): Promise<SharedFile> {
  const events: string[] = [];
  let gate = Promise.resolve();
  let opened = (): void => undefined;
  const turns = new KeyedSerializer();
  const keyOf = (n: BackendNode): string | undefined => (n.id.startsWith('k') ? '/srv/app.json' : undefined);
  const backend = new MemoryBackend(memoryConfigSchema().parse({}), { id: 'mem', log: pino({ level: 'silent' }) });
  const change = (verb: string, n: BackendNode, ctx: OperationContext, call: () => Promise<ProvisionResult>): Promise<ProvisionResult> => {
    events.push(`${verb} ${n.id} asked`);
    const key = keyOf(n);
    if (key === undefined) return call();
    return turns.run(
      key,
      async () => {
        events.push(`${verb} ${n.id} in turn`);
        await gate;
        return call();
      },
      ctx.signal,
    );
  };
  const shared: InfraBackend = {
    ...wrapMemory(backend, 'memory', {
      create: (n, ctx) => change('create', n, ctx, () => backend.create(n, ctx)),
      update: (n, diffs, ctx) => change('update', n, ctx, () => backend.update(n, diffs, ctx)),
      delete: (n, ctx) => change('delete', n, ctx, () => backend.delete(n, ctx)),
    }),
    serialKey: (n) => {
      events.push(`key ${n.id}`);
      return Promise.resolve(keyOf(n));
    },
  };
  // The daemon's own provisioner (batch calls and all), not the harness's counting one.
  const provisioner = new InfraNodeProvisioner({ backends: new Map([['mem', shared]]) });
  const h = harness({ backend, extra: { concurrency, provisioner } });
  open.push(h);
  const { graph, gates } = compileYaml(yaml);
  await h.controller.setGraph(graph, { gates });
  await h.settle();
  events.length = 0;
  return {
    h,
    events,
    close: () => void (gate = new Promise((r) => (opened = r))),
    open: () => opened(),
  };
}

const deletable = (id: string): string => fileNode(id, 'K', { deletionPolicy: 'Delete' });

describe('Controller: changes that take turns at one file hold no --concurrency slot while they wait', () => {
  it('a delete waiting for its turn at the file holds no slot: the other nodes are corrected meanwhile', async () => {
    const others = ['u1', 'u2', 'u3', 'u4', 'u5'];
    const kept = others.map((id) => fileNode(id, 'U')).join('');
    // Six slots: two worker loops.
    const s = await sharedFile(goalYaml(deletable('k1') + deletable('k2') + kept, { prune: true }), 6);
    // k2's delete put off by a hold, to come from a worker loop while the reload's delete of k1 has the file.
    const release = s.h.controller.hold('k2', 'test: deleted later, from a worker loop');
    await s.h.settle();
    s.close();
    const reload = s.h.controller.setGraph(compileYaml(goalYaml(kept, { prune: true })).graph);
    try {
      await vi.waitFor(() => expect(s.events).toContain('delete k1 in turn'));
      release();
      // On its way: its key asked, or the backend called with it (and waiting there for the file).
      await vi.waitFor(() => expect(s.events.filter((e) => e === 'key k2' || e === 'delete k2 asked')).not.toEqual([]));
      // Five hand edits elsewhere, one batch of the other worker loop: five of the six slots. One holds
      // k1's delete, which has the file; k2's, waiting for it, must not hold another.
      for (const id of others) s.h.backend.tamper(id, { content: 'theirs' });
      await vi.waitFor(() => expect(s.events.filter((e) => e.startsWith('update ')).sort()).toEqual(others.map((id) => `update ${id} asked`)));
      expect(s.events).not.toContain('delete k2 in turn');
    } finally {
      s.open();
    }
    await reload;
    await s.h.settle();
    expect([...s.h.backend.snapshot().keys()].sort()).toEqual(others);
    expect(s.h.store.listNodes().map((r) => [r.id, r.status])).toEqual(others.map((id) => [id, 'ready']));
  });

  it("a correction meeting another pass's at the file waits for its turn holding no slot: the other nodes are corrected meanwhile", async () => {
    const others = Array.from({ length: 10 }, (_, i) => `u${i}`);
    // Eleven slots: three worker loops, one for each pass below.
    const s = await sharedFile(goalYaml(fileNode('k1', 'K') + fileNode('k2', 'K') + others.map((id) => fileNode(id, 'U')).join('')), 11);
    s.close();
    try {
      s.h.backend.tamper('k1', { content: 'theirs' });
      await vi.waitFor(() => expect(s.events).toContain('update k1 in turn'));
      s.h.backend.tamper('k2', { content: 'theirs' });
      await vi.waitFor(() => expect(s.events.filter((e) => e === 'key k2' || e === 'update k2 asked')).not.toEqual([]));
      // Ten hand edits elsewhere, one batch of the third worker loop: ten of the eleven slots.
      for (const id of others) s.h.backend.tamper(id, { content: 'theirs' });
      await vi.waitFor(() => expect(s.events.filter((e) => e.startsWith('update u')).sort()).toEqual(others.map((id) => `update ${id} asked`).sort()));
      expect(s.events).not.toContain('update k2 in turn');
    } finally {
      s.open();
    }
    await s.h.settle();
    for (const id of ['k1', 'k2']) expect(s.h.backend.snapshot().get(id)?.spec).toMatchObject({ content: 'K' });
    expect(s.h.store.listNodes().every((r) => r.status === 'ready')).toBe(true);
  });

  it('the corrections of one pass at the file take one slot between them, also where the pass batches them: a delete elsewhere goes on meanwhile', async () => {
    const keys = ['k1', 'k2', 'k3', 'k4', 'k5'];
    const kept = keys.map((id) => fileNode(id, 'K')).join('');
    // Five slots: one worker loop, whose batch of five corrections would take them all as one batch call.
    const s = await sharedFile(goalYaml(kept + deletable('x'), { prune: true }), 5);
    s.close();
    for (const id of keys) s.h.backend.tamper(id, { content: 'theirs' });
    let reload: Promise<void> | undefined;
    try {
      await vi.waitFor(() => expect(s.events.filter((e) => e.endsWith(' in turn'))).toHaveLength(1));
      reload = s.h.controller.setGraph(compileYaml(goalYaml(kept, { prune: true })).graph);
      await vi.waitFor(() => expect(s.events).toContain('delete x asked'));
      // The file's corrections still wait for the first: the delete did not wait for them.
      expect(s.events.filter((e) => e.endsWith(' in turn'))).toHaveLength(1);
    } finally {
      s.open();
    }
    await reload;
    await s.h.settle();
    expect([...s.h.backend.snapshot().keys()].sort()).toEqual(keys);
    for (const id of keys) expect(s.h.backend.snapshot().get(id)?.spec).toMatchObject({ content: 'K' });
    expect(s.h.store.listNodes().map((r) => r.status)).toEqual(keys.map(() => 'ready'));
  });
});
