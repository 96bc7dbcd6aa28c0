import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Confiner, discardStaged, inspect, inspectSync, removeDirectory, removeStaleTemps, renameStaged, stageFile, SYNC_READ_LIMIT, syncDirectory, writeFileAtomic } from '../../../src/backends/local/client.ts';
import type { IoPath, ReadPolicy } from '../../../src/backends/local/client.ts';

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

  it('a directory holding only such debris is deleted; a live writer\'s temp file, or real content, keeps it', async () => {
    const d = join(dir, 'conf.d');
    await mkdir(d);
    await writeFile(join(d, temp(deadPid())), 'half writ');
    await writeFile(join(d, temp(deadPid(), 'b.conf')), '');
    await removeDirectory(unpinned(d), () => d, new AbortController().signal);
    await expect(readdir(dir)).resolves.toEqual([]);

    // A temp file of a process that lives (this one, pid 1) is another writer's, at work.
    await mkdir(d);
    await writeFile(join(d, temp(process.pid)), 'x');
    await writeFile(join(d, temp(1)), 'x');
    await expect(removeDirectory(unpinned(d), () => d, new AbortController().signal)).rejects.toMatchObject({ fault: { code: 'directory-not-empty' } });
    expect((await readdir(d)).sort()).toEqual([temp(1), temp(process.pid)].sort());

    // Real content: refused, as ever (the debris beside it is gone all the same).
    await rm(d, { recursive: true });
    await mkdir(d);
    await writeFile(join(d, 'kept.txt'), 'data');
    await writeFile(join(d, temp(deadPid())), 'x');
    await expect(removeDirectory(unpinned(d), () => d, new AbortController().signal)).rejects.toMatchObject({ fault: { code: 'directory-not-empty' } });
    expect(await readdir(d)).toEqual(['kept.txt']);
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
