import { describe, expect, it } from 'vitest';
import { MemoryBackend, diffFields, memoryBackendFactory, memoryConfigSchema } from '../../../src/backends/memory/index.ts';
import { INFRA_NODE_TYPES } from '../../../src/infra/index.ts';
import type { InfraNode } from '../../../src/infra/index.ts';
import { FaultError } from '../../../src/runtime/index.ts';
import type { Fault, ProvisionResult } from '../../../src/runtime/index.ts';
import { log, nodeOf, opCtx, specOf } from './helpers.ts';

function backend(config: Record<string, unknown> = {}): MemoryBackend {
  return new MemoryBackend(memoryConfigSchema().parse(config), { id: 'mem', log });
}

const roleNode = nodeOf('role-app', specOf('postgres.role', { name: 'app', login: true, memberOf: ['readers', 'writers'] }));
const bucketNode = nodeOf('bucket-logs', specOf('aws.s3.bucket', { name: 'logs-bucket', region: 'eu-west-1', tags: { owner: 'data' } }));
const fileNode = nodeOf('app-config', specOf('local.file', { path: 'app/app.toml', content: 'port = 8080\n' }));

/** The fault a call reported, whether thrown (create/update/delete) or returned. */
async function faultOf(call: Promise<ProvisionResult>): Promise<Fault | undefined> {
  try {
    const r = await call;
    return r.status === 'failed' ? r.fault : undefined;
  } catch (err) {
    if (err instanceof FaultError) return err.fault;
    throw err;
  }
}

describe('memory backend factory', () => {
  it('supports every infra node type', () => {
    expect([...memoryBackendFactory.kinds].sort()).toEqual([...INFRA_NODE_TYPES].sort());
  });

  it.each([
    { name: 'empty config takes defaults', config: {}, ok: true },
    { name: 'fixed latency', config: { latencyMs: 5 }, ok: true },
    { name: 'latency range', config: { latencyMs: { min: 1, max: 3 } }, ok: true },
    { name: 'range with min above max is refused', config: { latencyMs: { min: 5, max: 1 } }, ok: false },
    { name: 'unknown top-level field is refused (strict)', config: { latency: 5 }, ok: false },
    { name: 'unknown fault-rule field is refused (strict)', config: { faults: [{ class: 'transient', every: 2 }] }, ok: false },
    { name: 'rate above 1 is refused', config: { faults: [{ class: 'transient', rate: 2 }] }, ok: false },
    { name: 'unknown fault class is refused', config: { faults: [{ class: 'flaky' }] }, ok: false },
    { name: 'a complete rule', config: { faults: [{ node: 'db-*', op: 'create', class: 'throttled', rate: 0.5, times: 3, retryAfterMs: 100 }], seed: 7 }, ok: true },
  ])('config: $name', ({ config, ok }) => {
    expect(memoryConfigSchema().safeParse(config).success).toBe(ok);
  });

  it('builds a MemoryBackend through the factory', () => {
    const b = memoryBackendFactory.create(memoryConfigSchema().parse({}), { id: 'mem', cwd: '/', log, stateDir: '/tmp', env: {} });
    expect(b).toBeInstanceOf(MemoryBackend);
    expect(b.type).toBe('memory');
  });
});

describe('memory backend lifecycle', () => {
  it.each([
    { name: 'a postgres role', node: roleNode, outputs: { id: 'role-app', type: 'postgres.role', name: 'app' } },
    { name: 'an s3 bucket', node: bucketNode, outputs: { id: 'bucket-logs', type: 'aws.s3.bucket', name: 'logs-bucket' } },
    { name: 'a local file', node: fileNode, outputs: { id: 'app-config', type: 'local.file', path: 'app/app.toml' } },
  ])('create → observe → update → delete: $name', async ({ node, outputs }) => {
    const b = backend();
    const ctx = opCtx();
    expect((await b.observe([node], ctx)).get(node.id)).toEqual({ status: 'absent' });
    expect(await b.create(node, ctx)).toEqual({ status: 'done', outputs });
    expect((await b.observe([node], ctx)).get(node.id)).toEqual({ status: 'upToDate', outputs });
    expect(await b.update(node, [], ctx)).toEqual({ status: 'done', outputs });
    expect(await b.delete(node, ctx)).toEqual({ status: 'done', outputs: {} });
    expect((await b.observe([node], ctx)).get(node.id)).toEqual({ status: 'absent' });
    expect(await b.delete(node, ctx)).toEqual({ status: 'done', outputs: {} });
    expect(b.calls).toEqual({ observe: 3, create: 1, update: 1, delete: 2 });
    expect(b.createCount(node.id)).toBe(1);
  });

  it.each([
    { name: 'string field', node: fileNode, patch: { content: 'port = 9090\n' }, paths: ['content'] },
    { name: 'map entry', node: bucketNode, patch: { tags: { owner: 'ops' } }, paths: ['tags.owner'] },
    { name: 'added map entry', node: bucketNode, patch: { tags: { owner: 'data', extra: 'x' } }, paths: ['tags.extra'] },
    { name: 'array element', node: roleNode, patch: { memberOf: ['readers', 'admins'] }, paths: ['memberOf[1]'] },
    { name: 'two fields', node: roleNode, patch: { login: false, connectionLimit: 5 }, paths: ['connectionLimit', 'login'] },
  ])('tamper → drifted with field paths: $name', async ({ node, patch, paths }) => {
    const b = backend();
    await b.create(node, opCtx());
    b.tamper(node.id, patch);
    const obs = (await b.observe([node], opCtx())).get(node.id);
    expect(obs?.status).toBe('drifted');
    expect(obs?.status === 'drifted' ? obs.diffs.map((d) => d.path) : []).toEqual(paths);
    await b.update(node, [], opCtx());
    expect((await b.observe([node], opCtx())).get(node.id)?.status).toBe('upToDate');
  });

  it('remove() makes a node absent behind the reconciler', async () => {
    const b = backend();
    await b.create(fileNode, opCtx());
    expect(b.remove(fileNode.id)).toBe(true);
    expect(b.remove(fileNode.id)).toBe(false);
    expect((await b.observe([fileNode], opCtx())).get(fileNode.id)).toEqual({ status: 'absent' });
  });

  it('update of a vanished resource is a transient not-found fault', async () => {
    const f = await faultOf(backend().update(fileNode, [], opCtx()));
    expect(f).toMatchObject({ class: 'transient', code: 'not-found' });
  });

  it('create of an existing resource succeeds and is counted per node', async () => {
    const b = backend();
    await b.create(fileNode, opCtx());
    await b.create(fileNode, opCtx());
    expect(b.createCount(fileNode.id)).toBe(2);
    expect(b.createCount(roleNode.id)).toBe(0);
    b.resetCounters();
    expect(b.createCount(fileNode.id)).toBe(0);
    expect(b.calls.create).toBe(0);
  });

  it('snapshot() is a copy of what is stored', async () => {
    const b = backend();
    await b.create(roleNode, opCtx());
    const snap = b.snapshot();
    b.remove(roleNode.id);
    expect(snap.get(roleNode.id)).toMatchObject({ type: 'postgres.role', spec: { name: 'app' } });
    expect(b.snapshot().size).toBe(0);
  });

  it('watch() reports tamper and remove for watched nodes only', async () => {
    const b = backend();
    await b.create(fileNode, opCtx());
    await b.create(roleNode, opCtx());
    const seen: string[][] = [];
    const stop = b.watch([fileNode], (ids) => seen.push([...ids]), log);
    b.tamper(fileNode.id, { content: 'x' });
    b.tamper(roleNode.id, { login: false });
    b.remove(fileNode.id);
    stop();
    await b.create(fileNode, opCtx());
    b.tamper(fileNode.id, { content: 'y' });
    expect(seen).toEqual([[fileNode.id], [fileNode.id]]);
  });

  it('tamper() of an unknown node throws', () => {
    expect(() => backend().tamper('nope', {})).toThrow(/nope/);
  });
});

describe('memory backend fault injection', () => {
  const nodes = ['db-a', 'db-b', 'web-a'].map((id) => nodeOf(id, specOf('k8s.namespace', { name: id })));

  type Case = { name: string; faults: Record<string, unknown>[]; op: 'create' | 'delete'; failing: string[][] };
  const cases: Case[] = [
    { name: 'rate 1 fails every matching call', faults: [{ class: 'transient' }], op: 'create', failing: [['db-a', 'db-b', 'web-a'], ['db-a', 'db-b', 'web-a']] },
    { name: 'rate 0 never fails', faults: [{ class: 'transient', rate: 0 }], op: 'create', failing: [[], []] },
    { name: 'times fails only the first N calls', faults: [{ class: 'transient', times: 2 }], op: 'create', failing: [['db-a', 'db-b'], []] },
    { name: 'node glob picks nodes', faults: [{ class: 'permanent', node: 'db-*' }], op: 'create', failing: [['db-a', 'db-b'], ['db-a', 'db-b']] },
    { name: 'exact node id', faults: [{ class: 'permanent', node: 'web-a' }], op: 'create', failing: [['web-a'], ['web-a']] },
    { name: 'op filter leaves other ops alone', faults: [{ class: 'transient', op: 'delete' }], op: 'create', failing: [[], []] },
    { name: 'op filter hits its op', faults: [{ class: 'transient', op: 'delete', node: 'db-?' }], op: 'delete', failing: [['db-a', 'db-b'], ['db-a', 'db-b']] },
  ];

  it.each(cases)('$name', async ({ faults, op, failing }) => {
    const b = backend({ faults });
    for (const expected of failing) {
      const failed: string[] = [];
      for (const n of nodes) if ((await faultOf(b[op](n, opCtx()))) !== undefined) failed.push(n.id);
      expect(failed).toEqual(expected);
    }
  });

  it('carries class, code and retry-after hint', async () => {
    const b = backend({ faults: [{ class: 'throttled', retryAfterMs: 250 }] });
    expect(await faultOf(b.create(nodes[0] as InfraNode, opCtx()))).toMatchObject({ class: 'throttled', code: 'injected', retryAfterMs: 250 });
  });

  it('observe faults are per-node failed observations, not a failed batch', async () => {
    const b = backend({ faults: [{ class: 'transient', op: 'observe', node: 'db-b' }] });
    const obs = await b.observe(nodes, opCtx());
    expect([...obs.values()].map((o) => o.status)).toEqual(['absent', 'failed', 'absent']);
  });

  it('a fractional rate is deterministic for a seed and roughly that rate', async () => {
    const pattern = async (seed: number): Promise<boolean[]> => {
      const b = backend({ faults: [{ class: 'transient', rate: 0.3 }], seed });
      const out: boolean[] = [];
      for (let i = 0; i < 200; i++) out.push((await faultOf(b.create(nodes[0] as InfraNode, opCtx()))) !== undefined);
      return out;
    };
    const a = await pattern(42);
    expect(await pattern(42)).toEqual(a);
    expect(await pattern(43)).not.toEqual(a);
    const rate = a.filter(Boolean).length / a.length;
    expect(rate).toBeGreaterThan(0.15);
    expect(rate).toBeLessThan(0.45);
  });

  it('a failed create stores nothing', async () => {
    const b = backend({ faults: [{ class: 'unknown', times: 1 }] });
    const n = nodes[0] as InfraNode;
    expect(await faultOf(b.create(n, opCtx()))).toMatchObject({ class: 'unknown' });
    expect(b.snapshot().size).toBe(0);
    expect(b.createCount(n.id)).toBe(0);
    expect(b.calls.create).toBe(1);
  });
});

describe('memory backend latency', () => {
  it.each([
    { name: 'fixed', latencyMs: 40, atLeast: 35 },
    { name: 'range', latencyMs: { min: 30, max: 50 }, atLeast: 25 },
  ])('delays each call: $name', async ({ latencyMs, atLeast }) => {
    const b = backend({ latencyMs });
    const t = performance.now();
    await b.create(fileNode, opCtx());
    expect(performance.now() - t).toBeGreaterThanOrEqual(atLeast);
  });

  it('an abort during the delay is a transient fault and writes nothing', async () => {
    const b = backend({ latencyMs: 5_000 });
    const ac = new AbortController();
    const call = faultOf(b.create(fileNode, opCtx(ac.signal)));
    ac.abort();
    expect(await call).toMatchObject({ class: 'transient', code: 'aborted' });
    expect(b.snapshot().size).toBe(0);
  });
});

describe('memory backend at scale', () => {
  it('observes 100k nodes in one pass', async () => {
    const nodes = Array.from({ length: 100_000 }, (_, i) => nodeOf(`n${i}`, specOf('local.file', { path: `d/f${i}`, content: `c${i}` })));
    const b = backend();
    b.preload(nodes);
    b.tamper('n7', { content: 'changed' });
    const obs = await b.observe(nodes, opCtx());
    expect(obs.size).toBe(100_000);
    expect(obs.get('n7')?.status).toBe('drifted');
    expect(obs.get('n8')?.status).toBe('upToDate');
  });
});

describe('diffFields', () => {
  it.each([
    { name: 'equal scalars', desired: 1, actual: 1, diffs: [] },
    { name: 'changed scalar at top level', desired: { a: 1 }, actual: { a: 2 }, diffs: [{ path: 'a', desired: 1, actual: 2 }] },
    { name: 'nested map key', desired: { tags: { owner: 'x' } }, actual: { tags: { owner: 'y' } }, diffs: [{ path: 'tags.owner', desired: 'x', actual: 'y' }] },
    { name: 'missing key counts as undefined', desired: { a: 1 }, actual: {}, diffs: [{ path: 'a', desired: 1, actual: undefined }] },
    // Not what a plain object inherits under that name (a function).
    { name: 'a missing key named like an inherited member counts as undefined', desired: { toString: { x: 1 } } as unknown, actual: {}, diffs: [{ path: 'toString', desired: { x: 1 }, actual: undefined }] },
    { name: 'a key named like an inherited member, added', desired: {}, actual: { valueOf: 1 } as unknown, diffs: [{ path: 'valueOf', desired: undefined, actual: 1 }] },
    { name: 'array element', desired: { m: ['a', 'b'] }, actual: { m: ['a', 'c'] }, diffs: [{ path: 'm[1]', desired: 'b', actual: 'c' }] },
    { name: 'longer array', desired: { m: ['a'] }, actual: { m: ['a', 'b'] }, diffs: [{ path: 'm[1]', desired: undefined, actual: 'b' }] },
    { name: 'object versus scalar', desired: { v: { x: 1 } }, actual: { v: 3 }, diffs: [{ path: 'v', desired: { x: 1 }, actual: 3 }] },
    { name: 'keys in sorted order', desired: { b: 1, a: 1 }, actual: { b: 2, a: 2 }, diffs: [{ path: 'a', desired: 1, actual: 2 }, { path: 'b', desired: 1, actual: 2 }] },
  ])('$name', ({ desired, actual, diffs }) => {
    expect(diffFields(desired, actual)).toEqual(diffs);
  });
});
