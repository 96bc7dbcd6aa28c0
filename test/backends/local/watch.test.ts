import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { InfraNode } from '../../../src/infra/index.ts';
import { dirNode, fileNode, log, opCtx, useSandbox } from './helpers.ts';

const sb = useSandbox();
let stops: (() => void)[] = [];
beforeEach(() => {
  stops = [];
});
// Before the sandbox's cleanup (registered first, so it runs last).
afterEach(() => {
  for (const stop of stops) stop();
});

/** How long a test waits for a change to be reported before it fails: a hang guard. */
const WAIT_MS = 10_000;

/**
 * Starts a watch and returns a function that waits for the next report naming `id`. Its timeout is a
 * hang guard, not a speed bar: how soon a change is reported is measured by bench/reconcile/files.ts.
 */
function watchFor(nodes: readonly InfraNode[]): { next: (id: string) => Promise<void>; reports: string[][] } {
  const reports: string[][] = [];
  const waiters: { id: string; resolve: () => void }[] = [];
  stops.push(
    sb.backend.watch(
      nodes,
      (ids) => {
        reports.push([...ids]);
        for (const w of [...waiters]) {
          if (ids.includes(w.id)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      },
      log,
    ),
  );
  return {
    reports,
    next: (id) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no change reported for ${id} within ${WAIT_MS} ms`)), WAIT_MS);
        waiters.push({ id, resolve: () => (clearTimeout(timer), resolve()) });
      }),
  };
}

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('local backend watch', () => {
  it.each([
    { name: 'a hand edit of the content', change: (p: string) => writeFile(p, 'edited by hand') },
    { name: 'a deletion', change: (p: string) => rm(p) },
    { name: 'a replacement by rename', change: async (p: string) => (await writeFile(`${p}.new`, 'x'), rename(`${p}.new`, p)) },
  ])('reports $name, and only for the node changed', async ({ change }) => {
    const node = fileNode('cfg', 'app/app.toml', 'port = 8080\n');
    const other = fileNode('other', 'app/other.toml', 'x');
    await sb.backend.create(node, opCtx());
    await sb.backend.create(other, opCtx());
    const w = watchFor([node, other]); // armed when it returns: fs.watch adds its inotify watch synchronously
    const waiting = w.next('cfg');
    await change(join(sb.root, 'app/app.toml'));
    await waiting;
    expect(w.reports.flat()).not.toContain('other');
  });

  it('batches a burst of edits into few reports', async () => {
    const nodes = Array.from({ length: 20 }, (_, i) => fileNode(`f${i}`, `d/f${i}.txt`, 'x'));
    for (const n of nodes) await sb.backend.create(n, opCtx());
    const w = watchFor(nodes);
    const waiting = Promise.all(nodes.map((n) => w.next(n.id)));
    for (let i = 0; i < 20; i++) await writeFile(join(sb.root, `d/f${i}.txt`), 'y');
    await waiting;
    expect(new Set(w.reports.flat())).toEqual(new Set(nodes.map((n) => n.id)));
    expect(w.reports.length).toBeLessThan(10);
  });

  it('notices a file whose directory did not exist when the watch started', async () => {
    const node = fileNode('late', 'later/deeper/file.txt', 'x');
    const w = watchFor([node]);
    // The new directories are reported as a change of the node, once its nearest existing ancestor's
    // watch has been moved down to them (the report comes after the re-arming).
    const rearmed = w.next('late');
    await mkdir(join(sb.root, 'later/deeper'), { recursive: true });
    await rearmed;
    const waiting = w.next('late');
    await writeFile(join(sb.root, 'later/deeper/file.txt'), 'by hand');
    await waiting;
  });

  it('notices a directory removed and recreated, then edits inside it', async () => {
    const dir = dirNode('dir', 'conf');
    const file = fileNode('file', 'conf/a.txt', 'x');
    await sb.backend.create(dir, opCtx());
    await sb.backend.create(file, opCtx());
    const w = watchFor([dir, file]);
    const gone = w.next('dir');
    await rm(join(sb.root, 'conf'), { recursive: true });
    await gone;
    // Recreated: reported for the file too, after its parent's watch is armed again.
    const rearmed = w.next('file');
    await mkdir(join(sb.root, 'conf'));
    await rearmed;
    const edited = w.next('file');
    await writeFile(join(sb.root, 'conf/a.txt'), 'by hand');
    await edited;
  });

  // A file's parent that is no node of the goals: nothing reports the directory's own return but the
  // watch that covers its path. Made again aside and renamed in, it is there whole when the watch looks.
  // Moved away, a directory above the parent takes the watched parent with it, telling its watcher nothing.
  const removed = (top: string) => rm(join(sb.root, top), { recursive: true });
  const movedAway = (top: string) => rename(join(sb.root, top), join(sb.root, 'old'));
  it.each([
    { name: 'removed with its parent', path: 'd/f.txt', top: 'd', go: removed },
    { name: 'removed with the directory above its parent', path: 'a/b/f.txt', top: 'a', go: removed },
    { name: 'moved away with the directory above its parent', path: 'a/b/f.txt', top: 'a', go: movedAway },
  ])('notices edits in a file whose directory was $name and made again', async ({ path, top, go }) => {
    const node = fileNode('f', path, 'x');
    await sb.backend.create(node, opCtx());
    const w = watchFor([node]);
    const gone = w.next('f');
    await go(top);
    await gone;
    const rearmed = w.next('f');
    await mkdir(join(sb.root, `new/${path}`, '..'), { recursive: true });
    await writeFile(join(sb.root, `new/${path}`), 'x');
    await rename(join(sb.root, `new/${top}`), join(sb.root, top));
    await rearmed;
    const edited = w.next('f');
    await writeFile(join(sb.root, path), 'by hand');
    await edited;
  });

  // Removed and made again before the watch looks, as the daemon may make it once the removal is reported:
  // the path is there, but the watcher is the removed directory's.
  it.each([
    { name: 'made again', replace: (root: string) => mkdirSync(join(root, 'd')) },
    { name: 'swapped for a symlink to a directory in the root', replace: (root: string) => symlinkSync('e', join(root, 'd')) },
  ])('notices edits in a file whose directory was removed and at once $name', async ({ replace }) => {
    const node = fileNode('f', 'd/f.txt', 'x');
    await sb.backend.create(node, opCtx());
    await sb.backend.create(fileNode('e', 'e/f.txt', 'x'), opCtx());
    const w = watchFor([node]);
    const replaced = w.next('f');
    rmSync(join(sb.root, 'd'), { recursive: true });
    replace(sb.root);
    await replaced;
    const edited = w.next('f');
    writeFileSync(join(sb.root, 'd/f.txt'), 'by hand');
    await edited;
  });

  // Watched through the link, as any directory on a node's path is: what the report leads to is an
  // observation, which refuses the path (it leaves the root through a symlink made by hand) and reads nothing there.
  it('reports a file whose directory was swapped for a symlink out of the root, and observing it reads nothing there', async () => {
    const node = fileNode('f', 'd/f.txt', 'x');
    await sb.backend.create(node, opCtx());
    mkdirSync(sb.outside);
    writeFileSync(join(sb.outside, 'f.txt'), 'outside');
    const w = watchFor([node]);
    const replaced = w.next('f');
    rmSync(join(sb.root, 'd'), { recursive: true });
    symlinkSync(sb.outside, join(sb.root, 'd'));
    await replaced;
    const edited = w.next('f');
    writeFileSync(join(sb.outside, 'f.txt'), 'outside, edited');
    await edited;
    expect((await sb.backend.observe([node], opCtx())).get('f')).toMatchObject({ status: 'failed', fault: { code: 'path-changed' } });
  });

  it('notices edits in a file whose directory was moved away and another put in its place', async () => {
    const node = fileNode('f', 'd/f.txt', 'x');
    await sb.backend.create(node, opCtx());
    const w = watchFor([node]);
    const replaced = w.next('f');
    renameSync(join(sb.root, 'd'), join(sb.root, 'old'));
    mkdirSync(join(sb.root, 'd'));
    await replaced;
    const edited = w.next('f');
    writeFileSync(join(sb.root, 'd/f.txt'), 'by hand');
    await edited;
    // The old directory is watched no more.
    const mark = w.reports.length;
    const other = fileNode('g', 'g.txt', 'x');
    await sb.backend.create(other, opCtx());
    const w2 = watchFor([other]);
    const otherEdited = w2.next('g');
    writeFileSync(join(sb.root, 'old/f.txt'), 'by hand');
    writeFileSync(join(sb.root, 'g.txt'), 'by hand');
    await otherEdited;
    expect(w.reports.slice(mark).flat()).not.toContain('f');
  });

  // The daemon watches the goals' nodes as written (`${nodes.p.outputs.dir}/f`, `$${f}`) and observes each
  // as resolved: the watch must wait on the file a template node reaches, not on its text.
  it('notices a hand edit of the file a node whose path is an escaped "${" reaches, as watched', async () => {
    const node = fileNode('esc', 'd/$${f}', 'x');
    await sb.backend.create(fileNode('esc', 'd/${f}', 'x'), opCtx());
    const w = watchFor([node]);
    const edited = w.next('esc');
    await writeFile(join(sb.root, 'd/${f}'), 'by hand');
    await edited;
  });

  it('notices a hand edit of the file a node whose path holds a reference reaches, once observed; an output changed, where it leads now', async () => {
    const resolved = (dir: string): InfraNode => fileNode('a', `${dir}/f`, 'x');
    const other = fileNode('other', 'd/other', 'x');
    for (const n of [resolved('d'), resolved('e'), other]) await sb.backend.create(n, opCtx());
    const w = watchFor([fileNode('a', '${nodes.p.outputs.dir}/f', 'x'), other]);
    await sb.backend.observe([resolved('d')], opCtx());
    const edited = w.next('a');
    await writeFile(join(sb.root, 'd/f'), 'by hand');
    await edited;

    // p's `dir` is `e` now: a's file there is watched, the one in `d` no longer is.
    await sb.backend.observe([resolved('e')], opCtx());
    const moved = w.next('a');
    await writeFile(join(sb.root, 'e/f'), 'by hand');
    await moved;
    const mark = w.reports.length;
    // One directory's events come in order: a report of d/f would come no later than d/other's.
    const otherEdited = w.next('other');
    await writeFile(join(sb.root, 'd/f'), 'by hand again');
    await writeFile(join(sb.root, 'd/other'), 'by hand');
    await otherEdited;
    expect(w.reports.slice(mark).flat()).not.toContain('a');
  });

  it('stops reporting once stopped, and close() stops every watch', async () => {
    const node = fileNode('f', 'f.txt', 'x');
    await sb.backend.create(node, opCtx());
    const w = watchFor([node]);
    await sb.backend.close();
    await writeFile(join(sb.root, 'f.txt'), 'after close');
    await settle(200); // time for a report that must not come
    expect(w.reports).toEqual([]);
  });

  // What a goal reload relies on (`Controller.setGraph` starts the new graph's watch, then stops the old):
  // a watcher on the same directory shares the old one's inotify watch, which stays, so an edit the old
  // one had not read yet (made just before the reload) reaches the new one. Stopped first, it was lost.
  it('a watch started before the one it replaces stops gets the edit that one had not read yet', async () => {
    const node = fileNode('f', 'd/f.txt', 'x');
    await sb.backend.create(node, opCtx());
    const stopOld = sb.backend.watch([node], () => undefined, log);
    writeFileSync(join(sb.root, 'd/f.txt'), 'edited by hand'); // no await after: the old watch reads nothing of it
    const w = watchFor([node]);
    const waiting = w.next('f');
    stopOld();
    await waiting;
  });
});
