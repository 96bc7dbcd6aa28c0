import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { InfraNode } from '../../../src/infra/index.ts';
import type { Observation } from '../../../src/runtime/index.ts';
import { LocalBackend } from '../../../src/backends/local/index.ts';
import { Confiner } from '../../../src/backends/local/client.ts';
import { FileClaims } from '../../../src/backends/local/file-claims.ts';
import { fileNode, log, opCtx, useSandbox } from './helpers.ts';

// Two nodes whose paths lead to one file through a symlink made by hand (the goals do not manage it,
// so `validate` cannot see it) would overwrite each other for ever. The daemon observes the nodes due,
// a few at a time: the two are seldom in one observe call, and each must still find the other.
// Its cleanup closes the backend, which stops the watches.
const sb = useSandbox();

/** `realdir/` and, made by hand, `alias` and `other` leading to it. */
async function linkedDirs(): Promise<void> {
  await mkdir(join(sb.root, 'realdir'), { recursive: true });
  await symlink('realdir', join(sb.root, 'alias'));
  await symlink('realdir', join(sb.root, 'other'));
}

/** What `watch` told of, call by call (the daemon's controller: observe those nodes now). */
function watchAll(nodes: readonly InfraNode[]): { told: string[][]; stop: () => void } {
  const told: string[][] = [];
  return { told, stop: sb.backend.watch(nodes, (ids) => told.push([...ids]), log) };
}

async function observeAlone(node: InfraNode): Promise<Observation> {
  const observed = await sb.backend.observe([node], opCtx());
  expect([...observed.keys()]).toEqual([node.id]);
  return observed.get(node.id)!;
}

/** The duplicate-resource failure naming `other`, at the real file `realdir/<name>`. */
const sharedWith = (other: string, name = 'f'): Record<string, unknown> => ({
  status: 'failed',
  fault: {
    class: 'permanent',
    code: 'duplicate-resource',
    message: `${join(sb.root, 'realdir', name)} is managed by node ${JSON.stringify(other)} too: their paths lead to one file through a symlink the goals do not manage`,
  },
});

describe('two nodes reaching one file, observed in separate calls', () => {
  // `alone`: what the first finds, observed alone. Shared only when it leads through a symlink to the
  // other's own path, which the watch has noted from the goals; otherwise nothing tells it of the other yet.
  const cases = [
    { name: 'a plain path, then one through a symlink (daemon: watched)', first: ['a', 'realdir/f'], second: ['b', 'alias/f'], watched: true, alone: 'absent' },
    { name: 'a path through a symlink, then a plain one (daemon: watched)', first: ['b', 'alias/f'], second: ['a', 'realdir/f'], watched: true, alone: 'shared' },
    { name: 'two paths through two symlinks (daemon: watched)', first: ['b', 'alias/f'], second: ['c', 'other/f'], watched: true, alone: 'absent' },
    { name: 'a plain path, then one through a symlink (apply, levels apart: no watch)', first: ['a', 'realdir/f'], second: ['b', 'alias/f'], watched: false, alone: 'absent' },
    { name: 'a path through a symlink, then a plain one (apply, levels apart: no watch)', first: ['b', 'alias/f'], second: ['a', 'realdir/f'], watched: false, alone: 'absent' },
  ] as const;

  it.each(cases)('$name: both fail naming each other, and only the first ever writes the file', async ({ first: [firstId, firstPath], second: [secondId, secondPath], watched, alone }) => {
    await linkedDirs();
    const first = fileNode(firstId, firstPath, `${firstId}\n`);
    const second = fileNode(secondId, secondPath, `${secondId}\n`);
    const watch = watched ? watchAll([first, second]) : undefined;

    // The first, alone: found absent, it is made as the daemon would.
    if (alone === 'absent') {
      expect(await observeAlone(first)).toEqual({ status: 'absent' });
      expect(await sb.backend.create(first, opCtx())).toMatchObject({ status: 'done' });
    } else {
      expect(await observeAlone(first)).toMatchObject(sharedWith(secondId));
    }

    expect(await observeAlone(second)).toMatchObject(sharedWith(firstId));
    expect(await observeAlone(first)).toMatchObject(sharedWith(secondId));
    expect(await observeAlone(second)).toMatchObject(sharedWith(firstId));
    // Watched, the node not observed when the other was found is told to look now, rather than at its
    // next interval; once: each failure after finds the other failing already.
    if (watch !== undefined) expect(watch.told).toEqual([[alone === 'absent' ? firstId : secondId]]);

    const f = join(sb.root, 'realdir', 'f');
    if (alone === 'absent') expect(readFileSync(f, 'utf8')).toBe(`${firstId}\n`);
    else expect(existsSync(f)).toBe(false);
  });

  it('in one call, as before: both fail naming each other', async () => {
    await linkedDirs();
    const a = fileNode('a', 'realdir/f', 'a\n');
    const b = fileNode('b', 'alias/f', 'b\n');
    const observed = await sb.backend.observe([a, b], opCtx());
    expect(observed.get('a')).toMatchObject(sharedWith('b'));
    expect(observed.get('b')).toMatchObject(sharedWith('a'));
  });
});

describe('a node whose path is a template, watched as the daemon has it', () => {
  // The daemon watches the goals' nodes as written (`${nodes.p.outputs.dir}/f`) and observes each as
  // resolved (`realdir/f`): the file a template node reaches is known only once it is observed.
  /** Node `id` as the goals hold it (`template`) and as observed (`resolved`). */
  const templateNode = (id: string, template: string, resolved: string): { goals: InfraNode; resolved: (path?: string) => InfraNode } => ({
    goals: fileNode(id, template, `${id}\n`),
    resolved: (path = resolved) => fileNode(id, path, `${id}\n`),
  });
  const cases = [
    { name: 'a reference to an output', a: ['${nodes.p.outputs.dir}/f', 'realdir/f'], b: ['alias/f', 'alias/f'], file: 'f' },
    { name: 'an escaped "${" (both)', a: ['realdir/$${f}', 'realdir/${f}'], b: ['alias/$${f}', 'alias/${f}'], file: '${f}' },
  ] as const;

  it.each(cases)('$name: observed first, it is found by the other through a symlink; both fail naming each other', async ({ a: [aTemplate, aPath], b: [bTemplate, bPath], file }) => {
    await linkedDirs();
    const a = templateNode('a', aTemplate, aPath);
    const b = templateNode('b', bTemplate, bPath);
    const watch = watchAll([a.goals, b.goals]);
    expect(await observeAlone(a.resolved())).toEqual({ status: 'absent' });
    expect(await sb.backend.create(a.resolved(), opCtx())).toMatchObject({ status: 'done' });
    expect(await observeAlone(b.resolved())).toMatchObject(sharedWith('a', file));
    expect(await observeAlone(a.resolved())).toMatchObject(sharedWith('b', file));
    expect(watch.told).toEqual([['a']]);
    expect(readFileSync(join(sb.root, 'realdir', file), 'utf8')).toBe('a\n');
  });

  it('its output changed, it leads to another file: the one it reached before is no longer claimed', async () => {
    await linkedDirs();
    const a = templateNode('a', '${nodes.p.outputs.dir}/f', 'realdir/f');
    const b = fileNode('b', 'alias/f', 'b\n');
    watchAll([a.goals, b]);
    expect(await observeAlone(a.resolved())).toEqual({ status: 'absent' });
    expect(await observeAlone(b)).toMatchObject(sharedWith('a'));
    // p's `dir` is `elsewhere` now.
    expect(await observeAlone(a.resolved('elsewhere/f'))).toEqual({ status: 'absent' });
    expect(await observeAlone(b)).toEqual({ status: 'absent' });
    // Back where it was: the two find each other again.
    expect(await observeAlone(a.resolved())).toMatchObject(sharedWith('b'));
    expect(await observeAlone(b)).toMatchObject(sharedWith('a'));
  });

  it('a new graph keeps its claim while it is written as before; written otherwise, or removed from the goals, it leaves none', async () => {
    await linkedDirs();
    const a = templateNode('a', '${nodes.p.outputs.dir}/f', 'realdir/f');
    const b = fileNode('b', 'alias/f', 'b\n');
    let watch = watchAll([a.goals, b]);
    expect(await observeAlone(a.resolved())).toEqual({ status: 'absent' });
    /** The daemon's controller stops the old watch and watches the new graph's nodes. */
    const newGraph = (nodes: readonly InfraNode[]): void => {
      watch.stop();
      watch = watchAll(nodes);
    };
    // Each time b, observed before a, finds what a reached when last observed, or nothing.
    newGraph([a.goals, b]);
    expect(await observeAlone(b)).toMatchObject(sharedWith('a'));
    newGraph([fileNode('a', '${nodes.p.outputs.dir}/g', 'a\n'), b]);
    expect(await observeAlone(b)).toEqual({ status: 'absent' });
    newGraph([a.goals, b]);
    expect(await observeAlone(a.resolved())).toMatchObject(sharedWith('b'));
    newGraph([b]);
    expect(await observeAlone(b)).toEqual({ status: 'absent' });
  });
});

describe('a node whose path is a template resolving to the path another node has', () => {
  // `validate` refuses two equal paths written out, but not one known only when its node runs: the
  // two would overwrite each other for ever, one node's content, then the other's.
  /** The duplicate-resource failure naming `other`, at `realdir/f`, reached by the same path. */
  const samePathAs = (other: string): Record<string, unknown> => ({
    status: 'failed',
    fault: {
      class: 'permanent',
      code: 'duplicate-resource',
      message: `${join(sb.root, 'realdir', 'f')} is managed by node ${JSON.stringify(other)} too: their paths resolve to the same path (one written with a \${nodes…} reference, known only when it runs: validate cannot compare it)`,
    },
  });
  const template = (id: string): InfraNode => fileNode(id, '${nodes.p.outputs.dir}/f', `${id}\n`);
  const resolved = (id: string, dir = 'realdir'): InfraNode => fileNode(id, `${dir}/f`, `${id}\n`);
  // `alone`: what the first, a, finds observed alone. Shared only when the other's path is plain text,
  // which the watch has noted from the goals; otherwise nothing tells it of the other yet.
  const cases = [
    { name: 'a template, then a plain path (daemon: watched)', goals: [template('a'), resolved('b')], watched: true, alone: 'shared' },
    { name: 'a plain path, then a template (daemon: watched)', goals: [resolved('a'), template('b')], watched: true, alone: 'absent' },
    { name: 'two templates (daemon: watched)', goals: [template('a'), template('b')], watched: true, alone: 'absent' },
    // Out of the root as written, `../realdir/f` once normalised; inside once resolved (dir: realdir/x).
    { name: 'a template that climbs, then a plain path (daemon: watched)', goals: [fileNode('a', '${nodes.p.outputs.dir}/../../realdir/f', 'a\n'), resolved('b')], watched: true, alone: 'shared' },
    { name: 'a template, then a plain path (apply, levels apart: no watch)', goals: [template('a'), resolved('b')], watched: false, alone: 'absent' },
    { name: 'two templates (apply, levels apart: no watch)', goals: [template('a'), template('b')], watched: false, alone: 'absent' },
  ] as const;

  it.each(cases)('$name: observed in separate calls, both fail naming each other, and only the first ever writes the file', async ({ goals, watched, alone }) => {
    await mkdir(join(sb.root, 'realdir'), { recursive: true });
    const watch = watched ? watchAll(goals) : undefined;
    if (alone === 'absent') {
      expect(await observeAlone(resolved('a'))).toEqual({ status: 'absent' });
      expect(await sb.backend.create(resolved('a'), opCtx())).toMatchObject({ status: 'done' });
    } else {
      expect(await observeAlone(resolved('a'))).toMatchObject(samePathAs('b'));
    }
    expect(await observeAlone(resolved('b'))).toMatchObject(samePathAs('a'));
    expect(await observeAlone(resolved('a'))).toMatchObject(samePathAs('b'));
    expect(await observeAlone(resolved('b'))).toMatchObject(samePathAs('a'));
    // Watched, the node not observed when the other was found is told to look now; once.
    if (watch !== undefined) expect(watch.told).toEqual([[alone === 'absent' ? 'a' : 'b']]);
    const f = join(sb.root, 'realdir', 'f');
    if (alone === 'absent') expect(readFileSync(f, 'utf8')).toBe('a\n');
    else expect(existsSync(f)).toBe(false);
  });

  it('in one call: both fail naming each other', async () => {
    const observed = await sb.backend.observe([resolved('a'), resolved('b')], opCtx());
    expect(observed.get('a')).toMatchObject(samePathAs('b'));
    expect(observed.get('b')).toMatchObject(samePathAs('a'));
  });

  it('its output changed, it leads elsewhere: the other is observed as it is; back, the two find each other again', async () => {
    watchAll([template('a'), resolved('b')]);
    expect(await observeAlone(resolved('a'))).toMatchObject(samePathAs('b'));
    expect(await observeAlone(resolved('a', 'elsewhere'))).toEqual({ status: 'absent' });
    expect(await observeAlone(resolved('b'))).toEqual({ status: 'absent' });
    expect(await observeAlone(resolved('a'))).toMatchObject(samePathAs('b'));
    expect(await observeAlone(resolved('b'))).toMatchObject(samePathAs('a'));
  });

  it('two templates, one led elsewhere: the one left has the path, and a node through a symlink to it still finds it', async () => {
    await linkedDirs();
    watchAll([template('a'), template('b'), fileNode('c', 'alias/f', 'c\n')]);
    expect(await observeAlone(resolved('a'))).toEqual({ status: 'absent' });
    expect(await observeAlone(resolved('b'))).toMatchObject(samePathAs('a'));
    expect(await observeAlone(resolved('a', 'elsewhere'))).toEqual({ status: 'absent' });
    expect(await observeAlone(resolved('b'))).toEqual({ status: 'absent' });
    expect(await observeAlone(fileNode('c', 'alias/f', 'c\n'))).toMatchObject(sharedWith('b'));
  });

  it('a new graph keeps the claim of a template written as before, beside the plain node with its path', async () => {
    let watch = watchAll([template('a'), resolved('b')]);
    expect(await observeAlone(resolved('a'))).toMatchObject(samePathAs('b'));
    watch.stop();
    watch = watchAll([template('a'), resolved('b')]);
    expect(await observeAlone(resolved('b'))).toMatchObject(samePathAs('a'));
    watch.stop();
    watchAll([resolved('b')]);
    expect(await observeAlone(resolved('b'))).toEqual({ status: 'absent' });
  });
});

describe('a root given through a symlink', () => {
  it('every path leads through it: only the two that reach one file fail', async () => {
    await linkedDirs();
    await symlink('root', join(sb.base, 'rootlink'));
    const backend = new LocalBackend({ root: 'rootlink' }, { id: 'local', cwd: sb.base, log });
    try {
      const a = fileNode('a', 'realdir/f', 'a\n');
      const b = fileNode('b', 'alias/f', 'b\n');
      const c = fileNode('c', 'realdir/g', 'c\n');
      backend.watch([a, b, c], () => undefined, log);
      expect((await backend.observe([a, c], opCtx())).get('c')).toEqual({ status: 'absent' });
      // Named by its real path: under `root`, where the root's link leads.
      const file = join(sb.base, 'root', 'realdir', 'f');
      const shared = (other: string): Record<string, unknown> => ({ status: 'failed', fault: { code: 'duplicate-resource', message: expect.stringContaining(`${file} is managed by node "${other}" too`) } });
      expect((await backend.observe([b], opCtx())).get('b')).toMatchObject(shared('a'));
      const again = await backend.observe([c, a], opCtx());
      expect(again.get('a')).toMatchObject(shared('b'));
      expect(again.get('c')).toEqual({ status: 'absent' });
    } finally {
      await backend.close();
    }
  });
});

describe('two backends whose roots are one directory, or one inside the other, through a symlink', () => {
  // `validate` compares roots as written (`root`, `rootlink`): only the filesystem says they are one. Each
  // backend keeps its own claims, and finds the other's node there, as two nodes of one backend find each other.
  const otherRoot = (other: string, backend: string, file: string): Record<string, unknown> => ({
    status: 'failed',
    fault: { class: 'permanent', code: 'duplicate-resource', message: expect.stringContaining(`${file} is managed by node "${other}" of backend "${backend}" too: the roots of their backends lead to one directory`) },
  });
  const cases = [
    { name: 'one directory (watched: the daemon)', root: 'rootlink', path: 'sub/f', watched: true },
    { name: 'one directory (not watched: apply)', root: 'rootlink', path: 'sub/f', watched: false },
    { name: 'one inside the other (watched: the daemon)', root: 'sublink', path: 'f', watched: true },
  ] as const;

  it.each(cases)('$name: the later node fails naming the earlier, which fails in turn; the file is written once', async ({ root, path, watched }) => {
    await mkdir(join(sb.root, 'sub'), { recursive: true });
    await symlink('root', join(sb.base, 'rootlink'));
    await symlink(join('root', 'sub'), join(sb.base, 'sublink'));
    const l3 = new LocalBackend({ root }, { id: 'l3', cwd: sb.base, log });
    try {
      const a = fileNode('a', 'sub/f', '1\n');
      const c = fileNode('c', path, '3\n');
      const told: string[] = [];
      if (watched) {
        sb.backend.watch([a], (ids) => told.push(...ids), log);
        l3.watch([c], (ids) => told.push(...ids), log);
      }
      const file = join(sb.root, 'sub', 'f');
      expect(await observeAlone(a)).toEqual({ status: 'absent' });
      expect(await sb.backend.create(a, opCtx())).toMatchObject({ status: 'done' });
      expect((await l3.observe([c], opCtx())).get('c')).toMatchObject(otherRoot('a', 'local', file));
      if (watched) {
        // a's backend is told to look at once, and a, observed, finds c: both fail, and neither writes.
        expect(told).toEqual(['a']);
        expect(await observeAlone(a)).toMatchObject(otherRoot('c', 'l3', file));
        expect((await l3.observe([c], opCtx())).get('c')).toMatchObject(otherRoot('a', 'local', file));
        expect(told).toEqual(['a']);
      }
      expect(readFileSync(file, 'utf8')).toBe('1\n');
      // Closed, a backend's claims go: the other's node is observed as it is.
      await l3.close();
      expect(await observeAlone(a)).toMatchObject({ status: 'upToDate' });
    } finally {
      await l3.close();
    }
  });
});

describe('FileClaims under a root given through a symlink', () => {
  // The root's own way to its real path (`/home` a link to `/data/home`) leads no two nodes to one file:
  // its plain nodes are kept and looked at as under a plain root, pass after pass, not as linked nodes each.
  it.each([
    { name: 'watched (daemon: the goals tracked)', watched: true },
    { name: 'not watched (apply)', watched: false },
  ])('$name: no plain node is noted as linked, and one through a link in the root still finds the other', async ({ watched }) => {
    await linkedDirs();
    await symlink('root', join(sb.base, 'rootlink'));
    // `a` and plain nodes in the real directory, in a plain one not made yet, and at the root.
    const plain = [{ id: 'a', rel: 'realdir/f' }, ...Array.from({ length: 30 }, (_, i) => ({ id: `n${i}`, rel: [`realdir/n${i}`, `new/n${i}`, `n${i}`][i % 3]! }))];
    const b = { id: 'b', rel: 'alias/f' };
    const claims = new FileClaims('local');
    if (watched) claims.track([...plain, b], () => undefined);
    const confiner = new Confiner(join(sb.base, 'rootlink'));
    const reach = ({ id, rel }: { id: string; rel: string }): string | undefined => claims.reach(id, confiner.node(rel), confiner)?.other;
    for (let pass = 0; pass < 2; pass++) {
      expect(plain.map(reach).filter((other) => other !== undefined)).toEqual([]);
      expect(claims.linkedNodes).toBe(0);
    }
    expect(reach(b)).toBe('a');
    expect(reach(plain[0]!)).toBe('b');
    expect(claims.linkedNodes).toBe(1);
  });
});

describe('what releases two nodes found reaching one file', () => {
  it('one removed from the goals (a new watch without it) leaves no claim behind: the other is observed as it is', async () => {
    await linkedDirs();
    const a = fileNode('a', 'realdir/f', 'a\n');
    const b = fileNode('b', 'alias/f', 'b\n');
    const before = watchAll([a, b]);
    expect(await observeAlone(b)).toMatchObject(sharedWith('a'));
    expect(await observeAlone(a)).toMatchObject(sharedWith('b'));
    // The daemon's controller stops the old watch and watches the new graph's nodes.
    before.stop();
    watchAll([a]);
    expect(await observeAlone(a)).toEqual({ status: 'absent' });
  });

  it('the symlink removed by hand: each is observed as it is, the other not observed again meanwhile', async () => {
    await linkedDirs();
    const a = fileNode('a', 'realdir/f', 'a\n');
    const b = fileNode('b', 'alias/f', 'b\n');
    watchAll([a, b]);
    expect(await observeAlone(b)).toMatchObject(sharedWith('a'));
    expect(await observeAlone(a)).toMatchObject(sharedWith('b'));
    await rm(join(sb.root, 'alias'));
    expect(await observeAlone(a)).toEqual({ status: 'absent' });
    expect(await observeAlone(b)).toEqual({ status: 'absent' });
  });
});

// A node removed from the goals is read before its delete (`OperationContext.beforeDelete`): it is no node of the
// goals, and shares no file with one. Noted as one, it made a node of the goals that reaches its file by another
// path fail as a duplicate, for good once it was forgotten.
describe('a node read before its delete', () => {
  it('claims no file: a node of the goals reaching it through another path is found as ever', async () => {
    await linkedDirs();
    const a = fileNode('a', 'realdir/f', 'a\n');
    const removed = fileNode('old', 'alias/f', 'a\n');
    const watch = watchAll([a]);
    expect(await sb.backend.create(a, opCtx())).toMatchObject({ status: 'done' });
    expect((await sb.backend.observe([removed], { ...opCtx(), beforeDelete: true })).get('old')).toMatchObject({ status: 'upToDate' });
    expect(await observeAlone(a)).toMatchObject({ status: 'upToDate' });
    expect(watch.told).toEqual([]);
  });
});
