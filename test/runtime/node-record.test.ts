import { describe, expect, it } from 'vitest';
import { DesiredGraph } from '../../src/runtime/graph.ts';
import { appliedAtSpec, deleteCycleFault, deletionEdges, digestAt, goalDigestOf, handedAt, heldByPolicy, inDeleteTurns, isDigestAt, policyHoldReason, reverseDependencyOrder, sameOutputs, splitRemoved } from '../../src/runtime/node-record.ts';
import { NODE_SPEC } from '../../src/runtime/node-spec.ts';
import type { DesiredNode, NodeSpec, NodeSpecCodec } from '../../src/runtime/node-spec.ts';
import type { NodeRecord } from '../../src/runtime/state-store.ts';

const record = (status: NodeRecord['status'], reason: string | null): NodeRecord => ({
  id: 'a',
  goal: 'g',
  type: 'local.file',
  backendId: 'local',
  status,
  appliedDigest: null,
  outputs: null,
  managed: true,
  lastFault: null,
  attempts: 0,
  retryAt: null,
  reason,
  snapshot: null,
  memo: null,
  deletionPolicy: 'Delete',
  updatedAt: 0,
});

describe('a node held by a policy gate', () => {
  it('is told by its reason, as written now and as records written before 2026-11-24 have it', () => {
    expect(policyHoldReason('naming:name (high, org)')).toBe('held by policy: naming:name (high, org)');
    expect(heldByPolicy(record('held', policyHoldReason('naming:name (high, org)')))).toBe(true);
    expect(heldByPolicy(record('held', 'policy: held by policy: naming:name (high, org)'))).toBe(true);
  });

  it('is not a node held by the fault policy, nor one no longer held', () => {
    expect(heldByPolicy(record('held', 'auth: password authentication failed (budget spent)'))).toBe(false);
    expect(heldByPolicy(record('ready', policyHoldReason('naming:name (high, org)')))).toBe(false);
    expect(heldByPolicy(record('held', null))).toBe(false);
  });
});

// A list or map output is read anew at every observation: a new object equal to the one recorded. Compared
// by identity, the node never looked steady, and its record was written again on every pass.
describe('sameOutputs', () => {
  it('compares lists and maps by value, key order aside', () => {
    expect(sameOutputs({ tags: ['a', 'b'], ep: { host: 'h', port: 5 } }, { ep: { port: 5, host: 'h' }, tags: ['a', 'b'] })).toBe(true);
    expect(sameOutputs({ tags: ['a', 'b'] }, { tags: ['b', 'a'] })).toBe(false);
    expect(sameOutputs({ ep: { host: 'h' } }, { ep: { host: 'h', port: 5 } })).toBe(false);
    expect(sameOutputs({ tags: [] }, { other: [] })).toBe(false);
    expect(sameOutputs({ n: 1, s: 'x' }, { n: 1, s: 'x' })).toBe(true);
    expect(sameOutputs({ n: 1 }, { n: '1' })).toBe(false);
  });
});

/** A removed node's record with the dependencies it stored (`kept`: those kept for nodes that had left the goals). */
const removed = (id: string, deps: string[], kept?: string[]): NodeRecord => ({ ...record('failed', null), id, snapshot: { spec: {}, deps, ...(kept === undefined ? {} : { kept }) } });

// Stored at three revisions: r's edge to g (r's delete refused since), d's to r (kept once r left), g's to d
// (written after). Each waited on the next for ever.
describe('deleting removed nodes whose stored edges close a cycle', () => {
  it('breaks it at the kept edge: dependents first by the edges the graphs had', () => {
    const records = [removed('d', ['r'], ['r']), removed('g', ['d']), removed('x', ['r']), removed('r', ['g'])];
    const edges = deletionEdges(records);
    expect(edges.cycles.size).toBe(0);
    expect(edges.depsOf.get('d')).toEqual([]);
    expect(edges.dependents.get('r')).toEqual(['x']);
    expect(reverseDependencyOrder(records).map((r) => r.id)).toEqual(['x', 'r', 'g', 'd']);
  });

  // Every kept edge is one an earlier graph had: each given up beyond those the cycle needs let a dependency go
  // before its dependent (a role dropped while it still owned a database).
  it('gives up one of two kept edges that close a cycle between two nodes, and orders them by the other', () => {
    const records = [removed('b', ['a'], ['a']), removed('a', ['b'], ['b'])];
    const edges = deletionEdges(records);
    expect(edges.cycles.size).toBe(0);
    expect(edges.depsOf.get('a')).toEqual([]);
    expect(edges.depsOf.get('b')).toEqual(['a']);
    expect(reverseDependencyOrder(records, edges).map((r) => r.id)).toEqual(['b', 'a']);
  });

  it('gives up no more kept edges than the cycle needs: one that breaks it, the other still ordering its pair', () => {
    const records = [removed('c', ['a']), removed('b', ['c'], ['c']), removed('a', ['b'], ['b'])];
    const edges = deletionEdges(records);
    expect(edges.cycles.size).toBe(0);
    expect(edges.depsOf.get('a')).toEqual([]);
    expect(edges.depsOf.get('b')).toEqual(['c']);
    expect(reverseDependencyOrder(records, edges).map((r) => r.id)).toEqual(['b', 'c', 'a']);
  });

  it('reports one left among edges the graphs had, the same cycle for each of its nodes, and orders the rest', () => {
    const records = [removed('d', ['r']), removed('g', ['d']), removed('x', ['r']), removed('r', ['g']), removed('e', [], [])];
    const edges = deletionEdges(records);
    expect([...edges.cycles.keys()].sort()).toEqual(['d', 'g', 'r']);
    for (const id of ['d', 'g', 'r']) expect(edges.cycles.get(id)).toEqual(['d', 'r', 'g', 'd']);
    expect(reverseDependencyOrder(records, edges).map((r) => r.id)).toEqual(['e', 'x', 'd', 'r', 'g']);
    expect(deleteCycleFault(edges.cycles.get('d')!)).toMatchObject({ class: 'permanent', code: 'delete-cycle', message: 'not deleted: removed nodes depend on each other in a cycle, d -> r -> g -> d' });
  });
});

/** Turns that each wait for the test (`end`, `fail`), recording those begun. */
function gatedTurns(): { begun: string[]; turn: (r: NodeRecord) => Promise<void>; end: (id: string) => void; fail: (id: string, err: Error) => void } {
  const begun: string[] = [];
  const answers = new Map<string, { end: () => void; fail: (err: Error) => void }>();
  const turn = (r: NodeRecord): Promise<void> =>
    new Promise<void>((end, fail) => {
      begun.push(r.id);
      answers.set(r.id, { end, fail });
    });
  return { begun, turn, end: (id) => answers.get(id)!.end(), fail: (id, err) => answers.get(id)!.fail(err) };
}

/** Lets the event loop turn a few times: what would begin on its own has begun. */
async function settled(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe('inDeleteTurns: each removed node takes its turn once those that depend on it have had theirs', () => {
  it('whatever order the records come in: those that wait for none side by side, a cycle left waiting for none', async () => {
    // b and c depend on a, d on b; p and q on each other, a cycle no kept edge breaks.
    const records = [removed('a', []), removed('b', ['a']), removed('c', ['a']), removed('d', ['b']), removed('p', ['q']), removed('q', ['p'])];
    const t = gatedTurns();
    let over = false;
    const all = inDeleteTurns(records, deletionEdges(records), t.turn).then(() => (over = true));
    await settled();
    expect([...t.begun].sort()).toEqual(['c', 'd', 'p', 'q']);
    t.end('d');
    await settled();
    expect(t.begun.slice(4)).toEqual(['b']);
    t.end('b');
    await settled();
    // a waits for c too.
    expect(t.begun).toHaveLength(5);
    t.end('c');
    await settled();
    expect(t.begun.slice(5)).toEqual(['a']);
    for (const id of ['a', 'p']) t.end(id);
    await settled();
    expect(over).toBe(false);
    t.end('q');
    await all;
  });

  it('a turn that throws: what it depends on takes no turn, the others end theirs, and then the throw is met', async () => {
    const records = [removed('b', ['a']), removed('a', []), removed('e', [])];
    const t = gatedTurns();
    let outcome: unknown;
    const all = inDeleteTurns(records, deletionEdges(records), t.turn).catch((err: unknown) => (outcome = err));
    await settled();
    expect([...t.begun].sort()).toEqual(['b', 'e']);
    const err = new Error('database or disk is full');
    t.fail('b', err);
    await settled();
    expect(outcome).toBeUndefined();
    t.end('e');
    await all;
    expect(outcome).toBe(err);
    expect(t.begun).not.toContain('a');
  });
});

// The applied digest is `<goal>/<resolved>#<managed>` (`digestAt`), the `/<resolved>` only where references were resolved and the
// `#<managed>` only where it is not the digest before it; isDigestAt answers `=== digestAt(...)` without making the string.
describe('applied digests', () => {
  const nodeAt = (digest: string, managedDigest?: string): DesiredNode => ({
    id: 'a',
    goal: 'g',
    spec: { [NODE_SPEC]: true, type: 'test.thing', backendId: 'b', digest, ...(managedDigest === undefined ? {} : { managedDigest }) },
    settings: { selfHeal: true, prune: false, deletionPolicy: 'Orphan', ignoreFields: [] },
    source: { file: 'g.yaml', line: 1, col: 1 },
    dependsOn: [],
  });
  const node = nodeAt('goal1');

  it('isDigestAt agrees with digestAt, with and without a resolved digest and a managed one', () => {
    const ats = [{}, { digest: 'res1' }, { digest: 'res2' }, { digest: '' }, { digest: 'res1', managed: 'm1' }, { digest: 'res1', managed: 'res1' }];
    const applied = [null, 'goal1', 'goal1/res1', 'goal1/res2', 'goal1/', 'goal2/res1', 'goal1/res1x', 'goal1xres1', 'goal1/res1/res1', 'goal', 'goal1#m1', 'goal1/res1#m1', 'goal1/res1#m', 'goal1/res1#m1x', 'goal1/res1xm1'];
    for (const n of [node, nodeAt('goal1', 'm1'), nodeAt('goal1', 'goal1')]) for (const at of ats) for (const a of applied) expect(isDigestAt(a, n, at)).toBe(a === digestAt(n, at));
  });

  it('goalDigestOf is the goal part, before the slash or the #', () => {
    expect(goalDigestOf('goal1')).toBe('goal1');
    expect(goalDigestOf(digestAt(node, { digest: 'res1' }))).toBe('goal1');
    expect(goalDigestOf(digestAt(node, { digest: 'res1', managed: 'm1' }))).toBe('goal1');
    expect(goalDigestOf(digestAt(nodeAt('goal1', 'm1'), {}))).toBe('goal1');
    expect(goalDigestOf('goal1/')).toBe('goal1');
  });

  // Applied at: what differs is drift, never convergence toward a changed goal. A spec edited only where it says how
  // the resource is provisioned (its managed digest the same) is still applied at; a record an older version wrote,
  // which holds no managed digest, is judged as then: by the goal's digest and the resolved spec's.
  const at = (applied: string | null, n: DesiredNode, resolved: { digest?: string; managed?: string } = {}): boolean => appliedAtSpec({ ...record('ready', null), appliedDigest: applied }, n, resolved);
  it.each([
    { name: 'the same spec', applied: digestAt(nodeAt('goal1', 'm1'), {}), now: nodeAt('goal1', 'm1'), expected: true },
    { name: 'only how it is provisioned edited', applied: digestAt(nodeAt('goal1', 'm1'), {}), now: nodeAt('goal2', 'm1'), expected: true },
    { name: 'what it is to be edited', applied: digestAt(nodeAt('goal1', 'm1'), {}), now: nodeAt('goal2', 'm2'), expected: false },
    { name: 'a spec with nothing but what it is to be, edited', applied: digestAt(nodeAt('goal1'), {}), now: nodeAt('goal2'), expected: false },
    { name: 'a spec with nothing but what it is to be, the same', applied: digestAt(nodeAt('goal1'), {}), now: nodeAt('goal1'), expected: true },
    { name: 'resolved: only how edited', applied: digestAt(node, { digest: 'res1', managed: 'm1' }), now: nodeAt('goal2'), resolved: { digest: 'res2', managed: 'm1' }, expected: true },
    { name: 'resolved: an output it references changed', applied: digestAt(node, { digest: 'res1', managed: 'm1' }), now: node, resolved: { digest: 'res2', managed: 'm2' }, expected: false },
    { name: 'an older record, the goal the same', applied: 'goal1', now: nodeAt('goal1', 'm1'), expected: true },
    { name: 'an older record, resolved, the same', applied: 'goal1/res1', now: node, resolved: { digest: 'res1', managed: 'm1' }, expected: true },
    { name: 'an older record, the goal edited', applied: 'goal1', now: nodeAt('goal2', 'm1'), expected: false },
    { name: 'never applied', applied: null, now: node, expected: false },
  ])('appliedAtSpec: $name', ({ applied, now, resolved, expected }) => {
    expect(at(applied, now, resolved)).toBe(expected);
  });

  // `OperationContext.appliedAt` is asked with the spec a backend was handed (a script's per-run approval rests on it).
  it('handedAt carries the managed digest of a resolved spec, so a backend asking is answered as the pass decides', () => {
    const applied = digestAt(node, { digest: 'res1', managed: 'm1' });
    expect(at(applied, nodeAt('goal2'), handedAt(nodeAt('goal2'), nodeAt('res2', 'm1').spec))).toBe(true);
    expect(at(applied, node, handedAt(node, nodeAt('res2', 'm2').spec))).toBe(false);
    expect(handedAt(node, node.spec)).toEqual({});
  });
});

/**
 * A spec whose resource is named by its `path` (`resourceKey`), or, where its backend says nothing but
 * the spec and the id tells it (`bySpec`), may be keyed on `input` alone (`sameSpecKey`). A spec read
 * back from the store has a same-spec key whatever its backend, as the infra codec's does.
 */
interface ThingSpec extends NodeSpec {
  readonly input: string;
  readonly path?: string;
  readonly sameSpec?: string;
}
const thing = (input: string, options: { path?: string; bySpec?: boolean } = {}): ThingSpec => ({
  [NODE_SPEC]: true,
  type: 'test.thing',
  backendId: 'b',
  digest: input,
  input,
  ...(options.path === undefined ? {} : { path: options.path }),
  ...(options.bySpec === true ? { sameSpec: `b:${input}` } : {}),
});
const thingCodec: NodeSpecCodec<ThingSpec> = {
  encode: (s) => ({ input: s.input, path: s.path }),
  decode: (json) => {
    const { input, path } = json as { input: string; path?: string };
    return { ...thing(input, { path }), sameSpec: `b:${input}` };
  },
  resourceKey: (s) => s.path,
  sameSpecKey: (s) => s.sameSpec,
};
/** A node of goal `g`, which prunes unless told otherwise. */
const declared = (id: string, spec: ThingSpec, prune = true): DesiredNode<ThingSpec> => ({
  id,
  goal: 'g',
  spec,
  settings: { selfHeal: true, prune, deletionPolicy: 'Delete', ignoreFields: [] },
  source: { file: 'g.yaml', line: 1, col: 7 },
  dependsOn: [],
});
/** The record of a node applied at `spec` under `deletionPolicy: Delete`, removed from the goals since. */
const applied = (id: string, spec: ThingSpec, deletionPolicy: NodeRecord['deletionPolicy'] = 'Delete'): NodeRecord => ({
  ...record('ready', null),
  id,
  deletionPolicy,
  snapshot: { spec: thingCodec.encode(spec), deps: [], ...(deletionPolicy === 'Delete' ? { deletionPolicy } : {}) },
});
const graphOf = (...nodes: DesiredNode<ThingSpec>[]): DesiredGraph<ThingSpec> => {
  const r = DesiredGraph.build(nodes);
  if (!r.ok) throw new Error('no graph');
  return r.graph;
};

// An exec command may key its resource on its input alone: a node renamed, its commands and input the same,
// adopts the resource under its new id, and deleting the old id deleted it. It may as well key it on the id,
// so one such spec is no reason to refuse two nodes, and no proof that they share one resource: let go.
describe('splitRemoved: a removed node whose backend and spec a node of the goals has', () => {
  it('is forgotten, not deleted, with the node that has its spec; one that no node is like is deleted', () => {
    const graph = graphOf(declared('logs-bucket', thing('logs', { bySpec: true })), declared('other', thing('other', { bySpec: true })));
    const split = splitRemoved(graph, [applied('logs', thing('logs')), applied('tmp', thing('tmp'))], thingCodec, false);
    expect(split.toDelete.map((r) => r.id)).toEqual(['tmp']);
    expect(split.toOrphan.map((r) => r.id)).toEqual(['logs']);
    expect([...split.sameSpec]).toEqual([['logs', 'logs-bucket']]);
    expect(split.claimed.size).toBe(0);
  });

  // Commands that key their resources on the node's id, one spec for all nodes: a node the state manages has a
  // resource of its own, so pruning another of that spec deletes the other's, as prune says.
  it('is deleted where the node of its spec is one the state manages already: only a new node may be it renamed', () => {
    const graph = graphOf(declared('kept', thing('same', { bySpec: true })), declared('fresh', thing('fresh', { bySpec: true })));
    const split = splitRemoved(graph, [applied('kept', thing('same')), applied('gone', thing('same')), applied('moved', thing('fresh'))], thingCodec, false);
    expect(split.toDelete.map((r) => r.id)).toEqual(['gone']);
    expect([...split.sameSpec]).toEqual([['moved', 'fresh']]);
  });

  it('is deleted where the node of the goals is on a backend that names its resources, or keys them by id', () => {
    const graph = graphOf(declared('logs-bucket', thing('logs')));
    const split = splitRemoved(graph, [applied('logs', thing('logs'))], thingCodec, false);
    expect(split.toDelete.map((r) => r.id)).toEqual(['logs']);
    expect(split.sameSpec.size).toBe(0);
  });

  it('whose resource is named is claimed by the node that names it, or deleted, whatever the specs', () => {
    const graph = graphOf(declared('conf2', thing('x', { path: 'a.conf', bySpec: true })), declared('y', thing('y', { path: 'y.conf', bySpec: true })));
    const split = splitRemoved(graph, [applied('conf', thing('x', { path: 'a.conf' })), applied('old', thing('y', { path: 'old.conf' }))], thingCodec, false);
    expect([...split.claimed]).toEqual([['conf', 'conf2']]);
    expect(split.sameSpec.size).toBe(0);
    expect(split.toDelete.map((r) => r.id)).toEqual(['old']);
  });

  it('is not named where it would not be deleted anyway: its goal does not prune, or it said Orphan', () => {
    const kept = (prune: boolean, deletionPolicy: NodeRecord['deletionPolicy']): ReturnType<typeof splitRemoved> =>
      splitRemoved(graphOf(declared('logs-bucket', thing('logs', { bySpec: true }), prune)), [applied('logs', thing('logs'), deletionPolicy)], thingCodec, false);
    for (const split of [kept(false, 'Delete'), kept(true, 'Orphan')]) {
      expect(split.toDelete).toEqual([]);
      expect(split.toOrphan.map((r) => r.id)).toEqual(['logs']);
      expect(split.sameSpec.size).toBe(0);
    }
  });
});

// A create cut short (a crash, its timeout, a shutdown) was never recorded done: its record is not managed, yet
// the create may have made the resource. Forgotten unread, that resource leaked.
describe('splitRemoved: a removed node whose create was cut short', () => {
  const cutShort = (id: string, deletionPolicy: NodeRecord['deletionPolicy'] = 'Delete'): NodeRecord => ({ ...applied(id, thing(id), deletionPolicy), status: 'pending', managed: false });

  it('is deleted (read first) under prune + Delete, as a managed one, and counted by the mass-deletion guard', () => {
    const graph = graphOf(declared('k', thing('k')));
    const removed = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => cutShort(id));
    expect(splitRemoved(graph, removed.slice(0, 1), thingCodec, false, undefined, (id) => id === 'a')).toMatchObject({ toDelete: [{ id: 'a' }], toOrphan: [] });
    expect(splitRemoved(graph, removed, thingCodec, false, undefined, () => true).refused).toMatchObject({ count: 6, limit: 5 });
  });

  it('is forgotten under Orphan, or without a create cut short, and said so where its create was', () => {
    const graph = graphOf(declared('k', thing('k')));
    const split = splitRemoved(graph, [cutShort('a', 'Orphan'), cutShort('b')], thingCodec, false, undefined, (id) => id === 'a');
    expect(split.toDelete).toEqual([]);
    expect(split.toOrphan.map((r) => r.id)).toEqual(['a', 'b']);
    expect([...(split.createCutShort ?? [])]).toEqual(['a']);
  });
});
