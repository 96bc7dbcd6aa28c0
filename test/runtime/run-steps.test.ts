import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { KeyedSerializer, KeyedSlots } from '../../src/runtime/index.ts';
import { runSteps } from '../../src/runtime/reconciler.ts';
import type { ProvisionStep } from '../../src/runtime/reconciler.ts';
import type { DesiredNode, FieldDiff, NodeId, NodeProvisioner, NodeSpec, Observation, OperationContext, ProvisionResult, UpdateRequest } from '../../src/runtime/index.ts';

const ctx: OperationContext = { signal: new AbortController().signal, log: pino({ level: 'silent' }), outputsOf: () => undefined };

const node = (id: string): DesiredNode<NodeSpec> => ({ id, spec: {} as NodeSpec, dependsOn: [] }) as unknown as DesiredNode<NodeSpec>;
const diff = (id: string): FieldDiff[] => [{ path: 'content', desired: id, actual: '' }];
const create = (id: string): ProvisionStep<NodeSpec> => ({ node: node(id), op: 'create', diffs: [] });
const update = (id: string): ProvisionStep<NodeSpec> => ({ node: node(id), op: 'update', diffs: diff(id) });

/** Records how each node reached it; the batch calls are optional, and may leave a node out. */
class Recorder implements NodeProvisioner<NodeSpec> {
  readonly calls: string[] = [];
  readonly updateDiffs = new Map<NodeId, readonly FieldDiff[]>();
  createMany?: NodeProvisioner<NodeSpec>['createMany'];
  updateMany?: NodeProvisioner<NodeSpec>['updateMany'];
  serialKey?: NodeProvisioner<NodeSpec>['serialKey'];

  constructor(batching: boolean, drop?: NodeId) {
    if (!batching) return;
    const answer = (ids: NodeId[]): Map<NodeId, ProvisionResult> => new Map(ids.filter((id) => id !== drop).map((id) => [id, { status: 'done', outputs: { via: 'batch' } }]));
    this.createMany = (nodes) => {
      this.calls.push(`createMany ${nodes.map((n) => n.id).join(',')}`);
      return Promise.resolve(answer(nodes.map((n) => n.id)));
    };
    this.updateMany = (items: readonly UpdateRequest<NodeSpec>[]) => {
      this.calls.push(`updateMany ${items.map((i) => i.node.id).join(',')}`);
      for (const i of items) this.updateDiffs.set(i.node.id, i.diffs);
      return Promise.resolve(answer(items.map((i) => i.node.id)));
    };
  }

  observe(): Promise<ReadonlyMap<NodeId, Observation>> {
    return Promise.resolve(new Map());
  }
  create(n: DesiredNode<NodeSpec>): Promise<ProvisionResult> {
    this.calls.push(`create ${n.id}`);
    return Promise.resolve({ status: 'done', outputs: { via: 'single' } });
  }
  update(n: DesiredNode<NodeSpec>, diffs: readonly FieldDiff[]): Promise<ProvisionResult> {
    this.calls.push(`update ${n.id}`);
    this.updateDiffs.set(n.id, diffs);
    return Promise.resolve({ status: 'done', outputs: { via: 'single' } });
  }
  delete(): Promise<ProvisionResult> {
    return Promise.resolve({ status: 'done', outputs: {} });
  }
}

const via = (results: ProvisionResult[]): string[] => results.map((r) => (r.status === 'done' ? String(r.outputs.via) : r.fault.class));

describe('runSteps', () => {
  it('sends creates through createMany and updates through updateMany, each with its diffs; results stay in step order', async () => {
    const p = new Recorder(true);
    const results = await runSteps(p, [update('u1'), create('c1'), update('u2'), create('c2'), create('c3')], ctx, 4);
    expect(p.calls.sort()).toEqual(['createMany c1,c2,c3', 'updateMany u1,u2']);
    expect(p.updateDiffs.get('u2')).toEqual(diff('u2'));
    expect(via(results)).toEqual(['batch', 'batch', 'batch', 'batch', 'batch']);
  });

  it('a single create or update takes the ordinary call', async () => {
    const p = new Recorder(true);
    const results = await runSteps(p, [update('u1'), create('c1')], ctx, 4);
    expect(p.calls.sort()).toEqual(['create c1', 'update u1']);
    expect(p.updateDiffs.get('u1')).toEqual(diff('u1'));
    expect(via(results)).toEqual(['single', 'single']);
  });

  it('without batch calls every step is its own call', async () => {
    const p = new Recorder(false);
    const results = await runSteps(p, [update('u1'), update('u2'), create('c1'), create('c2')], ctx, 2);
    expect(p.calls.sort()).toEqual(['create c1', 'create c2', 'update u1', 'update u2']);
    expect(via(results)).toEqual(['single', 'single', 'single', 'single']);
  });

  it('a node a batch left out fails as unknown, never silently done', async () => {
    const p = new Recorder(true, 'u2');
    const results = await runSteps(p, [update('u1'), update('u2'), create('c1'), create('c2')], ctx, 2);
    expect(via(results)).toEqual(['batch', 'unknown', 'batch', 'batch']);
  });

  it.each([
    { name: "with shared slots (the daemon's), a step with a serialKey goes alone: a batch call would hold its slots while it waits", slots: true, calls: ['create f1', 'create f2', 'createMany c1,c2', 'update f3'] },
    { name: 'without (apply), the batch calls take every step', slots: false, calls: ['createMany f1,c1,f2,c2', 'update f3'] },
  ])('$name', async ({ slots, calls }) => {
    const p = new Recorder(true);
    p.serialKey = (n) => Promise.resolve(n.id.startsWith('f') ? 'app.json' : undefined);
    const results = await runSteps(p, [create('f1'), create('c1'), create('f2'), create('c2'), update('f3')], ctx, 4, slots ? new KeyedSlots(4) : undefined);
    expect(p.calls.sort()).toEqual(calls);
    expect(results.every((r) => r.status === 'done')).toBe(true);
  });

  it('steps that share a serialKey run one after another as one of the concurrency: the others never wait behind them', async () => {
    // As the script backend does for a file's edits: one key's creates take turns in the provisioner itself.
    const turns = new KeyedSerializer();
    const log: string[] = [];
    let otherStarted = (): void => undefined;
    const other = new Promise<void>((r) => (otherStarted = r));
    const p: NodeProvisioner<NodeSpec> = {
      observe: () => Promise.resolve(new Map()),
      update: () => Promise.resolve({ status: 'done', outputs: {} }),
      delete: () => Promise.resolve({ status: 'done', outputs: {} }),
      serialKey: (n) => Promise.resolve(n.id === 'other' ? undefined : 'app.json'),
      create: async (n) => {
        if (n.id === 'other') {
          log.push('start other');
          otherStarted();
          return { status: 'done', outputs: {} };
        }
        return turns.run('app.json', async () => {
          log.push(`start ${n.id}`);
          // The first holds its turn until the other node starts, or a turn of the event loop has passed.
          if (n.id === 'f1') await Promise.race([other, new Promise((r) => setImmediate(r))]);
          log.push(`end ${n.id}`);
          return { status: 'done', outputs: {} };
        });
      },
    };
    const files = ['f1', 'f2', 'f3', 'f4', 'f5', 'f6'];
    const results = await runSteps(p, [...files.map(create), create('other')], ctx, 2, new KeyedSlots(2));
    expect(results.every((r) => r.status === 'done')).toBe(true);
    expect(log.indexOf('start other')).toBeLessThan(log.indexOf('end f1'));
    expect(log.filter((l) => l !== 'start other')).toEqual(files.flatMap((f) => [`start ${f}`, `end ${f}`]));
  });
});
