import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Confiner, discardStaged, inspect, inspectSync, readSmallFileSync, removeDirectory, removeStaleTemps, renameStaged, stageFile, SYNC_READ_LIMIT, syncDirectory, writeFileAtomic } from '../../../src/backends/local/client.ts';
import type { IoPath, ReadPolicy } from '../../../src/backends/local/client.ts';
import { FaultError, processStat } from '../../../src/runtime/index.ts';
import { warnSkipped } from '../../support/skip.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ds-local-client-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A path acted on by itself, not through a pinned directory. */
const unpinned = (real: string): IoPath => ({ real, io: real, pinned: false });
const hash = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
const policyFor = (desired: string): ReadPolicy => ({ desiredSize: Buffer.byteLength(desired), desired: { bytes: Buffer.from(desired), sha256: hash(desired) }, now: Date.now() });

describe('inspectSync reads what inspect reads', () => {
  const big = 'x'.repeat(10_000);
  const cases: { name: string; setup: (p: string) => Promise<void>; policy?: ReadPolicy }[] = [
    { name: 'missing path', setup: async () => {} },
    { name: 'equal content: the desired hash, no text diff lost', setup: (p) => writeFile(p, 'file 1\n'), policy: policyFor('file 1\n') },
    { name: 'same size, other content: hashed', setup: (p) => writeFile(p, 'file 2\n'), policy: policyFor('file 1\n') },
    { name: 'small file of another size: read for the diff', setup: (p) => writeFile(p, 'longer text\n'), policy: policyFor('file 1\n') },
    { name: 'large file of another size: not read', setup: (p) => writeFile(p, big), policy: policyFor(`${big}y`) },
    { name: 'no policy: metadata only', setup: (p) => writeFile(p, 'a') },
    { name: 'directory', setup: (p) => mkdir(p) },
    { name: 'symlink', setup: (p) => symlink('elsewhere', p) },
  ];
  it.each(cases)('$name', async ({ setup, policy }) => {
    const p = join(dir, 'entry');
    await setup(p);
    expect(inspectSync(p, policy)).toEqual(await inspect(p, policy));
  });

  it('leaves a file larger than SYNC_READ_LIMIT of the desired size to inspect (undefined)', async () => {
    const content = 'y'.repeat(SYNC_READ_LIMIT + 1);
    const p = join(dir, 'large');
    await writeFile(p, content);
    expect(inspectSync(p, policyFor(content))).toBeUndefined();
    expect(await inspect(p, policyFor(content))).toMatchObject({ kind: 'file', sha256: hash(content) });
  });
});

describe('readSmallFileSync', () => {
  it.each([
    { name: 'the size lstat found', content: 'abcde', size: 5 },
    { name: 'shrunk since lstat', content: 'abc', size: 5 },
    { name: 'grown since lstat: read to its end, once', content: 'abcdefgh', size: 5 },
  ])('$name', async ({ content, size }) => {
    const p = join(dir, 'f');
    await writeFile(p, content);
    expect(readSmallFileSync(p, size).toString()).toBe(content);
  });
});

describe('syncDirectory (group commit)', () => {
  it('resolves every caller of a burst, each after an fsync that started after its call', async () => {
    const calls = Array.from({ length: 50 }, () => syncDirectory(dir));
    await expect(Promise.all(calls)).resolves.toHaveLength(50);
    // And again once idle: a fresh fsync, not a settled promise from before.
    await expect(syncDirectory(dir)).resolves.toBeUndefined();
  });

  it('rejects the callers when the directory cannot be synced', async () => {
    const gone = join(dir, 'gone');
    await expect(Promise.all([syncDirectory(gone), syncDirectory(gone)])).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('concurrent atomic writes into one directory all land, with no temp file left', async () => {
    const signal = new AbortController().signal;
    const confiner = new Confiner(dir, { pin: true });
    await Promise.all(Array.from({ length: 40 }, (_, i) => writeFileAtomic(confiner.io(confiner.node(`f${i}`)), { content: `file ${i}\n`, mode: 0o640 }, signal)));
    confiner.close();
    for (let i = 0; i < 40; i++) expect(inspectSync(join(dir, `f${i}`), policyFor(`file ${i}\n`))).toMatchObject({ kind: 'file', sha256: hash(`file ${i}\n`), mode: 0o100640 });
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});

describe('temp files a writer killed mid-write left behind', () => {
  /** The pid of a process that has exited (a child run and waited for). */
  const deadPid = (): number => {
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    return Number(r.stdout);
  };
  const temp = (pid: number, name = 'app.conf'): string => `.${name}.ds-${pid}-deadbeef0.tmp`;
  /** This process's start time, which it writes in its temp names (none where there is no /proc). */
  const start = processStat(process.pid)?.start;
  /** A temp name as this process writes it. */
  const ours = start === undefined ? temp(process.pid) : `.app.conf.ds-${process.pid}-${start}-deadbeef0.tmp`;

  it('a directory holding only such debris is deleted; a live writer\'s temp file, or real content, keeps it', async () => {
    const d = join(dir, 'conf.d');
    await mkdir(d);
    await writeFile(join(d, temp(deadPid())), 'half writ');
    await writeFile(join(d, temp(deadPid(), 'b.conf')), '');
    await removeDirectory(unpinned(d), () => d, new AbortController().signal);
    await expect(readdir(dir)).resolves.toEqual([]);

    // A temp file of a process that lives (this one, pid 1) is another writer's, at work.
    await mkdir(d);
    await writeFile(join(d, ours), 'x');
    await writeFile(join(d, temp(1)), 'x');
    await expect(removeDirectory(unpinned(d), () => d, new AbortController().signal)).rejects.toMatchObject({ fault: { code: 'directory-not-empty' } });
    expect((await readdir(d)).sort()).toEqual([temp(1), ours].sort());

    // Real content: refused, as ever (the debris beside it is gone all the same).
    await rm(d, { recursive: true });
    await mkdir(d);
    await writeFile(join(d, 'kept.txt'), 'data');
    await writeFile(join(d, temp(deadPid())), 'x');
    await expect(removeDirectory(unpinned(d), () => d, new AbortController().signal)).rejects.toMatchObject({ fault: { code: 'directory-not-empty' } });
    expect(await readdir(d)).toEqual(['kept.txt']);
  });

  if (start === undefined) warnSkipped(['SKIPPING the test of temp names with start times: this system has no /proc to read them from.']);
  it.skipIf(start === undefined)('a writer is told by its pid and start time: a temp file of a pid given to another process since is debris', async () => {
    if (start === undefined) return;
    // What this process writes carries its start time.
    const staged = stageFile(unpinned(join(dir, 'a.conf')), { content: 'x\n', mode: 0o644, found: { missing: true } }, new AbortController().signal);
    expect(await readdir(dir)).toEqual([expect.stringMatching(new RegExp(`^\\.a\\.conf\\.ds-${process.pid}-${start}-[0-9a-f]{8}[0-9a-z]+\\.tmp$`))]);
    discardStaged(staged);

    const d = join(dir, 'd');
    await mkdir(d);
    const named = (pid: number, since: string): string => `.f.txt.ds-${pid}-${since}-deadbeef0.tmp`;
    const other = String(Number(start) + 1);
    // This very pid, or pid 1, at another start time: what an earlier process (a container's pid 1 before its restart) left.
    await writeFile(join(d, named(process.pid, other)), 'x');
    await writeFile(join(d, named(1, other)), 'x');
    // An older version's (no start time) of this pid: not this process's, which writes its start time in every name.
    await writeFile(join(d, temp(process.pid)), 'x');
    // This process's own, and an older version's of another pid alive: at work, kept.
    await writeFile(join(d, named(process.pid, start)), 'x');
    await writeFile(join(d, temp(1)), 'x');
    await expect(removeStaleTemps(d)).resolves.toBe(3);
    expect((await readdir(d)).sort()).toEqual([named(process.pid, start), temp(1)].sort());
  });

  it('a directory written into is swept of it; a directory, or a name with no pid, merely named like one is left', async () => {
    const d = join(dir, 'swept');
    await mkdir(d);
    const dead = temp(deadPid());
    const subdir = temp(deadPid(), 'sub');
    await writeFile(join(d, dead), 'half');
    await mkdir(join(d, subdir));
    await writeFile(join(d, '.app.conf.ds-notapid.tmp'), 'not ours');
    await writeFileAtomic(unpinned(join(d, 'app.conf')), { content: 'new\n', mode: 0o644 }, new AbortController().signal);
    expect((await readdir(d)).sort()).toEqual(['.app.conf.ds-notapid.tmp', 'app.conf', subdir].sort());
    await expect(removeStaleTemps(d)).resolves.toBe(0);
  });
});

describe('a correction written over a hand edit made meanwhile', () => {
  const signal = new AbortController().signal;
  const foundAt = async (p: string): Promise<{ ino: number; size: number; ctimeMs: number }> => {
    const st = await lstat(p);
    return { ino: st.ino, size: st.size, ctimeMs: st.ctimeMs };
  };

  it('is given up, the edit kept and no temp file left, when the file changed after it was read', async () => {
    const p = join(dir, 'app.conf');
    await writeFile(p, '');
    const found = await foundAt(p);
    await appendFile(p, 'HANDEDIT\n');
    await expect(writeFileAtomic(unpinned(p), { content: 'desired\n', mode: 0o644, found }, signal)).rejects.toMatchObject({ fault: { class: 'transient', code: 'changed-meanwhile' } });
    expect(await readFile(p, 'utf8')).toBe('HANDEDIT\n');
    expect(await readdir(dir)).toEqual(['app.conf']);
  });

  it('in a batch: the staged rename is refused the same way', async () => {
    const p = join(dir, 'b.conf');
    await writeFile(p, 'old\n');
    const staged = stageFile(unpinned(p), { content: 'desired\n', mode: 0o644, found: await foundAt(p) }, signal);
    await writeFile(p, 'hand\n');
    expect(() => renameStaged(staged)).toThrow(expect.objectContaining({ fault: expect.objectContaining({ code: 'changed-meanwhile' }) }));
    discardStaged(staged);
    expect(await readFile(p, 'utf8')).toBe('hand\n');
    expect(await readdir(dir)).toEqual(['b.conf']);
  });

  it('a file made by hand where there was none is not written over either; an unchanged one is replaced', async () => {
    const p = join(dir, 'new.conf');
    const staged = stageFile(unpinned(p), { content: 'desired\n', mode: 0o644, found: { missing: true } }, signal);
    await writeFile(p, 'made by hand\n');
    expect(() => renameStaged(staged)).toThrow(expect.objectContaining({ fault: expect.objectContaining({ code: 'changed-meanwhile' }) }));
    discardStaged(staged);
    expect(await readFile(p, 'utf8')).toBe('made by hand\n');
    await writeFileAtomic(unpinned(p), { content: 'desired\n', mode: 0o644, found: await foundAt(p) }, signal);
    expect(await readFile(p, 'utf8')).toBe('desired\n');
  });
});

describe('Confiner: where a path leads, on a real tree of symlinks', () => {
  // `dir` holds `root/` and `outside/` beside it. A node path or a link target either lands inside
  // the root (its real path given here relative to `dir`), or is refused: as an escape when the
  // goal's text leads out (permanent), as a changed path when a symlink found on the way leads out
  // (made by hand: the goals make none that does; transient), or as a loop of links: a link whose target
  // leads round one is observed as it is (it reaches nothing, out of the root neither), but not made.
  const ESCAPES = 'path-escapes-root, permanent';
  const LEADS_OUT = 'path-changed, transient';
  const LOOP = 'ELOOP, permanent';
  const MAKES_LOOP = 'symlink-loop, permanent';
  const NOT_DIR = 'ENOTDIR, permanent';
  /** `l/l/…/l`, `n` times (`l` is a link to `.`). */
  const lLinks = (n: number): string => Array.from({ length: n }, () => 'l').join('/');
  /** The links of the tree, by path in `dir`: a target starting `@` is absolute, `@` standing for `dir`. */
  const links: Record<string, string> = {
    'root/a/in-abs': '@/root/b',
    'root/a/in-rel': '../b',
    'root/out-abs': '@/outside',
    'root/out-rel': '../outside',
    // A chain that ends outside, and one that stays in.
    'root/chain': 'chain2',
    'root/chain2': 'a/chain3',
    'root/a/chain3': '../../outside',
    'root/chain-in': 'a/chain-in2',
    'root/a/chain-in2': 'in-rel',
    // `m` leads to the root: `sub/m/..` is the root's parent, though `sub/m/..` read as text is `sub`.
    'root/sub/m': '..',
    'root/loop': 'loop2',
    'root/loop2': 'loop',
    'root/dangling': 'nowhere',
    'root/dangling-out': '../outside/nowhere',
    // Dangling until the link checked, `made`, is there.
    'root/back': 'made',
    rootlink: 'root',
  };
  // As many links in a chain as Linux follows (40), and one more.
  for (let i = 1; i <= 41; i++) links[`root/hop${i}`] = i === 41 ? 'b' : `hop${i + 1}`;
  // Links one after the other rather than nested: Linux counts them all the same (`l/l/…/l`, 41 of them, is ELOOP).
  links['root/l'] = '.';
  links['root/seq39'] = lLinks(39);
  links['root/seq40'] = lLinks(40);
  beforeEach(async () => {
    for (const d of ['root/a', 'root/b', 'root/sub', 'outside']) await mkdir(join(dir, d), { recursive: true });
    await writeFile(join(dir, 'root/file'), '');
    for (const [path, target] of Object.entries(links)) await symlink(target.replace(/^@/, dir), join(dir, path));
  });

  /** What `f` gives: the real path it returns (relative to `dir`; 'inside' for none), or the code and class of its fault. */
  const outcome = (f: () => string | void): string => {
    try {
      const real = f();
      return real === undefined ? 'inside' : relative(dir, real);
    } catch (err) {
      if (!(err instanceof FaultError)) throw err;
      return `${err.fault.code ?? '?'}, ${err.fault.class}`;
    }
  };

  it.each([
    { name: 'a plain path', path: 'a/x', leads: 'root/a/x' },
    { name: 'a path in a directory not made yet', path: 'new/deeper/x', leads: 'root/new/deeper/x' },
    { name: '.. that stays inside', path: 'a/../b/x', leads: 'root/b/x' },
    { name: '.. that leaves the root', path: 'a/../../outside/x', leads: ESCAPES },
    { name: '.. that leaves the root and comes back', path: '../root/x', leads: ESCAPES },
    { name: 'an absolute path', path: '@/root/x', leads: ESCAPES },
    { name: 'a link to inside, absolute', path: 'a/in-abs/x', leads: 'root/b/x' },
    { name: 'a link to inside, relative', path: 'a/in-rel/x', leads: 'root/b/x' },
    { name: 'a link to outside, absolute', path: 'out-abs/x', leads: LEADS_OUT },
    { name: 'a link to outside, relative', path: 'out-rel/x', leads: LEADS_OUT },
    { name: 'a chain of links that ends outside', path: 'chain/x', leads: LEADS_OUT },
    { name: 'a chain of links that stays inside', path: 'chain-in/x', leads: 'root/b/x' },
    { name: 'as many links in a chain as Linux follows', path: 'hop2/x', leads: 'root/b/x' },
    { name: 'one more link in the chain', path: 'hop1/x', leads: LOOP },
    { name: 'a link to 39 links, one after the other (40 in all)', path: 'seq39/x', leads: 'root/x' },
    { name: 'a link to 40 links, one after the other (41 in all)', path: 'seq40/x', leads: LOOP },
    { name: 'a link to the root', path: 'sub/m/x', leads: 'root/x' },
    // Node paths are read as text first (one resource, one text): `sub/m/..` is `sub`, whatever `m` is.
    { name: 'm/.. beside a link m to ..', path: 'sub/m/../x', leads: 'root/sub/x' },
    { name: 'a loop of links', path: 'loop/x', leads: LOOP },
    { name: 'a dangling link to inside', path: 'dangling/x', leads: 'root/nowhere/x' },
    { name: 'a dangling link to outside', path: 'dangling-out/x', leads: LEADS_OUT },
    // Inside: the call made there fails (ENOTDIR).
    { name: 'a file on the way', path: 'file/x', leads: 'root/file/x' },
    // The last component is the node's own: a link there is what a link node manages, not followed.
    { name: 'a link to outside as the last component', path: 'out-abs', leads: 'root/out-abs' },
    { name: 'a looping link as the last component', path: 'loop', leads: 'root/loop' },
  ])('node path: $name ($path)', ({ path, leads }) => {
    const confiner = new Confiner(join(dir, 'root'));
    expect(outcome(() => confiner.node(path.replace(/^@/, dir)).real)).toBe(leads);
  });

  it.each([
    { name: 'a plain target', from: '.', target: 'b', leads: 'inside' },
    { name: 'a target not there (yet)', from: 'a', target: 'nowhere/x', leads: 'inside' },
    { name: '.. that stays inside', from: 'a', target: '../b', leads: 'inside' },
    { name: '.. that leaves the root', from: 'a', target: '../../outside', leads: ESCAPES },
    { name: '.. to the root\'s parent', from: '.', target: '..', leads: ESCAPES },
    { name: 'an absolute target inside', from: 'a', target: '@/root/b', leads: 'inside' },
    { name: 'an absolute target outside', from: 'a', target: '@/outside', leads: ESCAPES },
    { name: 'through a link to inside, absolute', from: '.', target: 'a/in-abs/x', leads: 'inside' },
    { name: 'through a link to inside, relative', from: 'a', target: 'in-rel/x', leads: 'inside' },
    { name: 'through a link to outside, absolute', from: '.', target: 'out-abs/x', leads: LEADS_OUT },
    { name: 'through a link to outside, relative', from: '.', target: 'out-rel', leads: LEADS_OUT },
    { name: 'a chain of links that ends outside', from: '.', target: 'chain', leads: LEADS_OUT },
    { name: 'a chain of links that stays inside', from: 'sub', target: '../chain-in', leads: 'inside' },
    { name: 'one more link in a chain than Linux follows', from: '.', target: 'hop1', leads: MAKES_LOOP },
    { name: 'as many links one after the other as Linux follows', from: '.', target: lLinks(40), leads: 'inside' },
    { name: 'one more link one after the other', from: '.', target: lLinks(41), leads: MAKES_LOOP },
    // The case the text alone cannot tell: `m` (anyone's, inside the root) leads to the root, and the
    // target's own `..` climbs out from there. The goal's doing: an escape, not a changed path.
    { name: 'm/../.. beside a link m to ..', from: 'sub', target: 'm/../..', leads: ESCAPES },
    { name: 'm/.. beside a link m to ..', from: 'sub', target: 'm/..', leads: ESCAPES },
    { name: 'm/../root beside a link m to .. (out and back in)', from: 'sub', target: 'm/../root/b', leads: 'inside' },
    { name: 'climbing out past a missing directory reached through m', from: 'sub', target: 'm/nowhere/../..', leads: ESCAPES },
    { name: 'through m, then a link to outside', from: 'sub', target: 'm/out-abs', leads: LEADS_OUT },
    { name: 'a loop of links', from: '.', target: 'loop', leads: MAKES_LOOP },
    { name: 'into a loop of links', from: 'a', target: '../loop/x', leads: MAKES_LOOP },
    // The link as it will be: symlink() makes a link to itself, and one that closes a loop, all the same.
    { name: 'the link itself', from: '.', target: 'made', leads: MAKES_LOOP },
    { name: 'the link itself, through its own directory', from: 'a', target: '../a/made', leads: MAKES_LOOP },
    { name: 'a link back to the link', from: '.', target: 'back', leads: MAKES_LOOP },
    { name: 'a link back to the link, reached through its directory', from: '.', target: 'back/x', leads: MAKES_LOOP },
    { name: 'a dangling link to inside', from: '.', target: 'dangling', leads: 'inside' },
    { name: 'a dangling link to outside', from: '.', target: 'dangling-out', leads: LEADS_OUT },
    { name: 'a file on the way', from: '.', target: 'file/x', leads: NOT_DIR },
    { name: 'the root through a link to it, absolute', from: 'a', target: '@/rootlink/b', leads: 'inside' },
    { name: 'the root\'s parent through a link to the root', from: 'a', target: '@/rootlink/..', leads: ESCAPES },
  ])('link target: $name ($target in $from)', ({ from, target, leads }) => {
    const confiner = new Confiner(join(dir, 'root'));
    const link = confiner.node(join(from, 'made')).real;
    expect(outcome(() => confiner.target(link, target.replace(/^@/, dir), 'make'))).toBe(leads);
    // Observed, a link in a loop is as good as a dangling one: it reaches nothing.
    expect(outcome(() => confiner.target(link, target.replace(/^@/, dir), 'observe'))).toBe(leads === MAKES_LOOP ? 'inside' : leads);
  });

  // Only a symlink in the root can lead two nodes to one file (`FileClaims`): the root's own way to its
  // real path (`/home` a link to `/data/home`) is the operator's setup, and counts for none.
  it.each([
    { name: 'a plain path', path: 'a/x', linked: false },
    { name: 'a path in a directory not made yet', path: 'new/deeper/x', linked: false },
    { name: 'a link on the way', path: 'a/in-rel/x', linked: true },
    { name: 'a directory not made yet past a link', path: 'a/in-rel/new/x', linked: true },
    { name: 'a link to the root on the way', path: 'sub/m/x', linked: true },
    { name: 'a link as the last component (the node\'s own)', path: 'out-abs', linked: false },
  ])('whether a node path leads through a symlink in the root: $name ($path), under the root and under a link to it', ({ path, linked }) => {
    for (const root of ['root', 'rootlink']) expect(new Confiner(join(dir, root)).node(path).linked, root).toBe(linked);
  });

  it('a root reached through a symlink: paths and targets resolve in the real root, by its name and by the link\'s', () => {
    const confiner = new Confiner(join(dir, 'rootlink'));
    expect(confiner.realRoot()).toMatchObject({ real: join(dir, 'root'), exists: true });
    expect(confiner.node('a/in-rel/x')).toEqual({ rel: 'a/in-rel/x', abs: join(dir, 'rootlink/a/in-rel/x'), real: join(dir, 'root/b/x'), dir: join(dir, 'root/b'), linked: true });
    const link = confiner.node('a/l').real;
    expect(link).toBe(join(dir, 'root/a/l'));
    for (const target of ['../b', join(dir, 'rootlink/b'), join(dir, 'root/b'), '../../rootlink/b']) expect(outcome(() => confiner.target(link, target, 'make')), target).toBe('inside');
    for (const target of ['../../outside', join(dir, 'outside'), join(dir, 'rootlink/../outside')]) expect(outcome(() => confiner.target(link, target, 'make')), target).toBe(ESCAPES);
    expect(outcome(() => confiner.node('out-rel/x').real)).toBe(LEADS_OUT);
    expect(outcome(() => confiner.target(link, '../out-rel', 'make'))).toBe(LEADS_OUT);
  });
});
