import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { desiredNodeSpec, InfraNodeProvisioner } from '../../src/infra/index.ts';
import type { BackendNode, BackendUpdate, InfraBackend, InfraNode } from '../../src/infra/index.ts';
import { fault, FaultError } from '../../src/runtime/index.ts';
import type { FieldDiff, NodeId, Observation, OperationContext, ProvisionResult, ResolvedAt } from '../../src/runtime/index.ts';

const log = pino({ level: 'silent' });
const ctx: OperationContext = { signal: new AbortController().signal, log, outputsOf: () => undefined };

/** A fake backend that records which nodes reached it through which call. */
class RecordingBackend implements InfraBackend {
  readonly type = 'fake';
  readonly id: string;
  readonly single: NodeId[] = [];
  readonly batches: NodeId[][] = [];
  inFlight = 0;
  maxInFlight = 0;
  readonly diffs = new Map<NodeId, readonly FieldDiff[]>();
  createMany?: (nodes: readonly BackendNode[], ctx: OperationContext) => Promise<ReadonlyMap<NodeId, ProvisionResult>>;
  updateMany?: (items: readonly BackendUpdate[], ctx: OperationContext) => Promise<ReadonlyMap<NodeId, ProvisionResult>>;

  constructor(id: string, batch: 'none' | 'ok' | 'throws' | 'drops-one') {
    this.id = id;
    if (batch === 'none') return;
    const many = async (nodes: readonly BackendNode[]): Promise<ReadonlyMap<NodeId, ProvisionResult>> => {
      this.batches.push(nodes.map((n) => n.id));
      if (batch === 'throws') throw new FaultError(fault('transient', 'connection reset'));
      const out = new Map<NodeId, ProvisionResult>(nodes.map((n) => [n.id, { status: 'done', outputs: { via: 'batch' } }]));
      if (batch === 'drops-one') out.delete(nodes[0]!.id);
      return out;
    };
    this.createMany = many;
    this.updateMany = (items) => {
      for (const i of items) this.diffs.set(i.node.id, i.diffs);
      return many(items.map((i) => i.node));
    };
  }

  observe(): Promise<ReadonlyMap<NodeId, Observation>> {
    return Promise.resolve(new Map());
  }
  async create(node: BackendNode): Promise<ProvisionResult> {
    return this.one(node);
  }
  async one(node: BackendNode): Promise<ProvisionResult> {
    this.single.push(node.id);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((r) => setTimeout(r, 1));
    this.inFlight--;
    return { status: 'done', outputs: { via: 'single' } };
  }
  update(node: BackendNode, diffs: readonly FieldDiff[]): Promise<ProvisionResult> {
    this.diffs.set(node.id, diffs);
    return this.one(node);
  }
  delete(): Promise<ProvisionResult> {
    return Promise.resolve({ status: 'done', outputs: {} });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const role = (id: string, backendId: string, name = id): InfraNode => ({
  id,
  goal: 'g',
  spec: desiredNodeSpec({ type: 'postgres.role', name, login: true, superuser: false, createdb: false, createrole: false, inherit: true, replication: false, bypassRls: false, memberOf: [] }, backendId, {}),
  dependsOn: [],
  settings: { selfHeal: true, prune: false, deletionPolicy: 'Orphan', ignoreFields: [] },
  source: { file: 'g.yaml', line: 1, col: 1 },
});

const diff = (id: string): FieldDiff[] => [{ path: 'connectionLimit', desired: 10, actual: id.length }];

/** The same batching for both calls: `createMany` with the nodes, `updateMany` with each node and its diffs. */
const calls = {
  create: (p: InfraNodeProvisioner, nodes: InfraNode[], concurrency: number) => p.createMany(nodes, ctx, concurrency),
  update: (p: InfraNodeProvisioner, nodes: InfraNode[], concurrency: number) =>
    p.updateMany(
      nodes.map((node) => ({ node, diffs: diff(node.id) })),
      ctx,
      concurrency,
    ),
};

describe.each(['create', 'update'] as const)('InfraNodeProvisioner.%sMany', (op) => {
  it('sends the nodes of a batching backend in one call and the others one by one, within the concurrency', async () => {
    const batching = new RecordingBackend('pg', 'ok');
    const plain = new RecordingBackend('plain', 'none');
    const p = new InfraNodeProvisioner({ backends: new Map<string, InfraBackend>([['pg', batching], ['plain', plain]]) });
    const nodes = [role('a', 'pg'), role('b', 'pg'), role('c', 'pg'), ...Array.from({ length: 12 }, (_, i) => role(`p${i}`, 'plain'))];
    const out = await calls[op](p, nodes, 3);
    expect(batching.batches).toEqual([['a', 'b', 'c']]);
    if (op === 'update') for (const id of ['a', 'b', 'p0']) expect((batching.diffs.get(id) ?? plain.diffs.get(id))).toEqual(diff(id));
    expect(batching.single).toEqual([]);
    expect(plain.single).toHaveLength(12);
    expect(plain.maxInFlight).toBeLessThanOrEqual(3);
    expect(out.size).toBe(15);
    expect(out.get('a')).toEqual({ status: 'done', outputs: { via: 'batch' } });
    expect(out.get('p0')).toEqual({ status: 'done', outputs: { via: 'single' } });
  });

  const cases: { name: string; backends: [string, RecordingBackend][]; nodes: InfraNode[]; expected: Record<string, ProvisionResult['status'] | string> }[] = [
    {
      name: 'a lone node of a batching backend takes the ordinary call',
      backends: [['pg', new RecordingBackend('pg', 'ok')]],
      nodes: [role('a', 'pg')],
      expected: { a: 'done' },
    },
    {
      name: 'a batch that throws fails each of its nodes with the classified fault (the runtime retries them)',
      backends: [['pg', new RecordingBackend('pg', 'throws')]],
      nodes: [role('a', 'pg'), role('b', 'pg')],
      expected: { a: 'transient', b: 'transient' },
    },
    {
      name: 'a node the batch left out fails as unknown, never silently done',
      backends: [['pg', new RecordingBackend('pg', 'drops-one')]],
      nodes: [role('a', 'pg'), role('b', 'pg')],
      expected: { a: 'unknown', b: 'done' },
    },
    {
      name: 'a node on an unconfigured backend fails as permanent',
      backends: [['pg', new RecordingBackend('pg', 'ok')]],
      nodes: [role('a', 'pg'), role('b', 'pg'), role('x', 'nowhere')],
      expected: { a: 'done', b: 'done', x: 'permanent' },
    },
    {
      name: 'a node whose referenced output is missing fails as transient and stays out of the batch',
      backends: [['pg', new RecordingBackend('pg', 'ok')]],
      nodes: [role('a', 'pg'), role('b', 'pg'), role('r', 'pg', '${nodes.z.outputs.name}')],
      expected: { a: 'done', b: 'done', r: 'transient' },
    },
  ];

  it.each(cases)('$name', async ({ backends, nodes, expected }) => {
    const p = new InfraNodeProvisioner({ backends: new Map<string, InfraBackend>(backends) });
    for (const [, b] of backends) b.batches.length = 0;
    const out = await calls[op](p, nodes, 10);
    const got = Object.fromEntries([...out].map(([id, r]) => [id, r.status === 'done' ? 'done' : r.fault.class]));
    expect(got).toEqual(expected);
    for (const [, b] of backends) for (const batch of b.batches) expect(batch).not.toContain('r');
  });
});

describe('InfraNodeProvisioner reference resolution', () => {
  // A record keeps both, from this one resolution: the values are never another moment's outputs.
  it('says at what each call resolved a node: the digest of its spec so resolved, with the values read per node and key; nothing for a node without references', async () => {
    const backend = new RecordingBackend('pg', 'ok');
    backend.observe = (nodes?: readonly BackendNode[]) => Promise.resolve(new Map((nodes ?? []).map((n) => [n.id, { status: 'upToDate', outputs: {} } as const])));
    const p = new InfraNodeProvisioner({ backends: new Map<string, InfraBackend>([['pg', backend]]) });
    const outputs: Record<NodeId, Record<string, string>> = { z: { name: 'app', other: 'unread' }, y: { suffix: 'ro' } };
    const c: OperationContext = { ...ctx, outputsOf: (id) => outputs[id] };
    const nodes = [role('r1', 'pg', '${nodes.z.outputs.name}'), role('r2', 'pg', '${nodes.z.outputs.name}_${nodes.y.outputs.suffix}_${nodes.z.outputs.name}'), role('p', 'pg')];
    const expected = {
      r1: { digest: role('r1', 'pg', 'app').spec.digest, refs: { z: { name: 'app' } } },
      r2: { digest: role('r2', 'pg', 'app_ro_app').spec.digest, refs: { z: { name: 'app' }, y: { suffix: 'ro' } } },
      p: { digest: undefined, refs: undefined },
    };
    const at = (r: Observation | ProvisionResult | undefined): ResolvedAt => (r !== undefined && 'outputs' in r ? { digest: r.digest, refs: r.refs } : {});
    const observed = await p.observe(nodes, c);
    const batched = await p.createMany(nodes, c, 10);
    expect(backend.batches).toEqual([['r1', 'r2', 'p']]);
    for (const node of nodes) {
      expect(at(observed.get(node.id)), `observe ${node.id}`).toEqual(expected[node.id as keyof typeof expected]);
      expect(at(batched.get(node.id)), `createMany ${node.id}`).toEqual(expected[node.id as keyof typeof expected]);
      expect(at(await p.create(node, c)), `create ${node.id}`).toEqual(expected[node.id as keyof typeof expected]);
    }
  });

  it('hands a backend the same resolved node while the referenced outputs are unchanged, a new one when they change', async () => {
    const seen: BackendNode[] = [];
    const done = (): Promise<ProvisionResult> => Promise.resolve({ status: 'done', outputs: {} });
    const backend: InfraBackend = {
      id: 'pg',
      type: 'fake',
      observe: (nodes) => {
        seen.push(...nodes);
        return Promise.resolve(new Map());
      },
      create: done,
      update: done,
      delete: done,
      close: () => Promise.resolve(),
    };
    const p = new InfraNodeProvisioner({ backends: new Map<string, InfraBackend>([['pg', backend]]) });
    const node = role('r', 'pg', '${nodes.z.outputs.name}');
    let outputs: Record<string, string> = { name: 'one' };
    const c: OperationContext = { ...ctx, outputsOf: (id) => (id === 'z' ? outputs : undefined) };
    await p.observe([node], c);
    await p.observe([node], c);
    outputs = { name: 'two' };
    await p.observe([node], c);
    expect(seen.map((n) => (n.spec.spec as { name: string }).name)).toEqual(['one', 'one', 'two']);
    expect(seen[1]).toBe(seen[0]);
    expect(seen[2]).not.toBe(seen[1]);
  });
});
