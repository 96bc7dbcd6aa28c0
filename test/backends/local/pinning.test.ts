import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PINS_HELD } from '../../../src/backends/local/backend.ts';
import { Confiner, ensureParent, inspectNode, inspectNodeSync, removeEntry, setAttributes, SYNC_READ_LIMIT, writeFileAtomic, writeSymlinkAtomic } from '../../../src/backends/local/client.ts';
import { OBSERVE_PARALLELISM } from '../../../src/backends/local/config.ts';
import { fileNode, opCtx, useSandbox } from './helpers.ts';
import type { IoPath, ReadPolicy } from '../../../src/backends/local/client.ts';
import { sha256 } from '../../../src/runtime/index.ts';

// A user who may write a directory inside the root swaps it for a symlink out of the root between the
// backend's confinement check and its write, chmod or chown (a root daemon's classic race: the
// audit reproduced a file written and a chmod made outside the root). Here the swap is made at that
// very moment, by the test, rather than won by a racing process now and then.
describe.skipIf(process.platform !== 'linux')('a pinning confiner: calls reach the directories that were checked, or nothing', () => {
  let base: string;
  let root: string;
  let outside: string;
  const signal = new AbortController().signal;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'ds-pinning-'));
    root = join(base, 'root');
    outside = join(base, 'outside');
    mkdirSync(join(root, 'user', 'sub'), { recursive: true });
    // Directories whose entries others may change (as a user's own directory in the root is to a root daemon).
    chmodSync(join(root, 'user'), 0o777);
    chmodSync(join(root, 'user', 'sub'), 0o777);
    mkdirSync(outside);
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  /** `root/user/sub` replaced by a symlink to `outside`, the directory itself moved aside. */
  const swap = (): void => {
    renameSync(join(root, 'user', 'sub'), join(root, 'user', 'sub.moved'));
    symlinkSync(outside, join(root, 'user', 'sub'));
  };

  it('a directory swapped for a symlink after the check is refused: nothing is written out of the root', async () => {
    const confiner = new Confiner(root, { pin: true });
    const at = confiner.node('user/sub/config');
    swap();
    expect(() => confiner.io(at)).toThrow(expect.objectContaining({ fault: expect.objectContaining({ code: 'path-changed', class: 'transient' }) }));
    await expect(ensureParent(confiner, at.real, signal)).rejects.toMatchObject({ fault: { code: 'path-changed' } });
    confiner.close();
    expect(readdirSync(outside)).toEqual([]);
  });

  it('one swapped after the call was pinned: the write lands in the directory that was checked, wherever it went', async () => {
    const confiner = new Confiner(root, { pin: true });
    const at = confiner.node('user/sub/config');
    const io = confiner.io(at);
    swap();
    await writeFileAtomic(io, { content: 'written by the daemon\n', mode: 0o644 }, signal);
    await writeSymlinkAtomic(confiner.io(confiner.node('user/sub/link')), 'config', signal);
    confiner.close();
    expect(readdirSync(outside)).toEqual([]);
    expect(readFileSync(join(root, 'user', 'sub.moved', 'config'), 'utf8')).toBe('written by the daemon\n');
    expect(readdirSync(join(root, 'user', 'sub.moved')).sort()).toEqual(['config', 'link']);
  });

  it('a file swapped for a symlink to a file out of the root: its chmod and chown are refused, the target untouched', () => {
    const victim = join(outside, 'victim');
    writeFileSync(victim, 'secret');
    chmodSync(victim, 0o600);
    writeFileSync(join(root, 'user', 'sub', 'f'), 'x');
    const confiner = new Confiner(root, { pin: true });
    const io = confiner.io(confiner.node('user/sub/f'));
    rmSync(join(root, 'user', 'sub', 'f'));
    symlinkSync(victim, join(root, 'user', 'sub', 'f'));
    expect(() => setAttributes(io, { mode: 0o777, uid: 0, gid: 0 }, signal, 'file')).toThrow(expect.objectContaining({ fault: expect.objectContaining({ code: 'wrong-kind' }) }));
    // Nor a directory's chmod through a symlink put in its place.
    mkdirSync(join(root, 'user', 'd'));
    const dir = confiner.io(confiner.node('user/d'));
    rmSync(join(root, 'user', 'd'), { recursive: true });
    symlinkSync(outside, join(root, 'user', 'd'));
    expect(() => setAttributes(dir, { mode: 0o777 }, signal, 'directory')).toThrow(expect.objectContaining({ fault: expect.objectContaining({ code: 'wrong-kind' }) }));
    confiner.close();
    expect(statSync(victim).mode & 0o7777).toBe(0o600);
    expect(statSync(outside).mode & 0o7777).not.toBe(0o777);
  });

  it('mkdir -p through a symlink made where a directory is made is refused', async () => {
    const confiner = new Confiner(root, { pin: true });
    const at = confiner.node('user/new/deeper/f');
    symlinkSync(outside, join(root, 'user', 'new'));
    await expect(ensureParent(confiner, at.real, signal)).rejects.toMatchObject({ fault: { code: 'path-changed' } });
    confiner.close();
    expect(readdirSync(outside)).toEqual([]);
  });

  it('an unlink goes to the directory that was checked', async () => {
    writeFileSync(join(root, 'user', 'sub', 'gone'), 'x');
    writeFileSync(join(outside, 'gone'), 'keep me');
    const confiner = new Confiner(root, { pin: true });
    const io = confiner.io(confiner.node('user/sub/gone'));
    swap();
    await removeEntry(io, signal);
    confiner.close();
    expect(existsSync(join(outside, 'gone'))).toBe(true);
    expect(existsSync(join(root, 'user', 'sub.moved', 'gone'))).toBe(false);
  });

  it('goes by path, at no cost, where only root and the daemon\'s user can change the directories on the way; through fds elsewhere', () => {
    mkdirSync(join(root, 'mine'));
    chmodSync(join(root, 'mine'), 0o755);
    const confiner = new Confiner(root, { pin: true });
    expect(confiner.io(confiner.node('mine/f'))).toEqual({ real: join(root, 'mine', 'f'), io: join(root, 'mine', 'f'), pinned: false });
    expect(confiner.io(confiner.node('user/sub/f'))).toMatchObject({ real: join(root, 'user', 'sub', 'f'), io: expect.stringMatching(/^\/proc\/self\/fd\/\d+\/f$/), pinned: true });
    // Below a directory others may write in, even a directory of the daemon's own is not sealed: its entry may be swapped.
    mkdirSync(join(root, 'user', 'sub', 'own'));
    chmodSync(join(root, 'user', 'sub', 'own'), 0o755);
    expect(confiner.io(confiner.node('user/sub/own/f')).pinned).toBe(true);
    confiner.close();
  });

  it('a directory reached through a symlink is judged by the directory the link leads to, not by the link or what it names on the way', () => {
    mkdirSync(join(root, 'mine'));
    chmodSync(join(root, 'mine'), 0o755);
    mkdirSync(join(root, 'user', 'own'));
    chmodSync(join(root, 'user', 'own'), 0o755);
    symlinkSync('mine', join(root, 'alias'));
    symlinkSync('user', join(root, 'shared'));
    // Names a directory of the daemon's own on the way, and ends in `user`, which others may write in.
    symlinkSync('user/own/..', join(root, 'up'));
    // A confiner each: one directory's verdict, once given, holds for the batch.
    const io = (path: string): IoPath => {
      const confiner = new Confiner(root, { pin: true });
      const p = confiner.io(confiner.node(path));
      confiner.close();
      return p;
    };
    expect(io('alias/f')).toEqual({ real: join(root, 'mine', 'f'), io: join(root, 'mine', 'f'), pinned: false });
    expect(io('shared/f')).toMatchObject({ real: join(root, 'user', 'f'), pinned: true });
    expect(io('up/f')).toMatchObject({ real: join(root, 'user', 'f'), pinned: true });
  });

  it('a missing root is made; calls through it work as through any directory, and leave no fd open', async () => {
    const fresh = join(base, 'fresh', 'root');
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    const confiner = new Confiner(fresh, { pin: true });
    const at = confiner.node('a/b/c');
    await ensureParent(confiner, at.real, signal);
    await writeFileAtomic(confiner.io(at), { content: 'c\n', mode: 0o640 }, signal);
    confiner.close();
    expect(fds()).toBe(before);
    expect(readFileSync(join(fresh, 'a', 'b', 'c'), 'utf8')).toBe('c\n');
    expect(statSync(join(fresh, 'a', 'b', 'c')).mode & 0o7777).toBe(0o640);
  });

  // Reads too: an observation that followed the swap would read a file out of the root (say a copy of
  // /etc/shadow's lines) and put them in a drift report, which is logged and stored.
  const policy = (desired: string): ReadPolicy => {
    const bytes = Buffer.from(desired);
    return { desiredSize: bytes.length, desired: { bytes, sha256: sha256(bytes) }, accounts: undefined, memo: undefined, rereadEveryMs: undefined, now: Date.now() };
  };

  it('a read through a directory swapped after the check is refused: nothing out of the root is read', async () => {
    writeFileSync(join(outside, 'config'), 'root:$6$secret-hash:19000:0:99999:7:::\n');
    writeFileSync(join(root, 'user', 'sub', 'config'), 'mine\n');
    const confiner = new Confiner(root, { pin: true });
    const at = confiner.node('user/sub/config');
    swap();
    const refused = expect.objectContaining({ fault: expect.objectContaining({ code: 'path-changed', class: 'transient' }) });
    expect(() => inspectNodeSync(confiner, at, policy('desired\n'))).toThrow(refused);
    await expect(inspectNode(confiner, at, policy('desired\n'))).rejects.toThrow(refused);
    confiner.close();
  });

  it('a read pinned before the swap reads the directory that was checked; a missing directory is nothing at the path', async () => {
    writeFileSync(join(outside, 'config'), 'outside\n');
    writeFileSync(join(root, 'user', 'sub', 'config'), 'inside\n');
    const confiner = new Confiner(root, { pin: true });
    const at = confiner.node('user/sub/config');
    expect(confiner.reading(at)).toMatch(/^\/proc\/self\/fd\/\d+\/config$/);
    swap();
    expect(inspectNodeSync(confiner, at, policy('desired\n'))).toMatchObject({ kind: 'file', text: 'inside\n' });
    expect(await inspectNode(confiner, at, policy('desired\n'))).toMatchObject({ kind: 'file', text: 'inside\n' });
    const gone = confiner.node('user/none/config');
    expect(confiner.reading(gone)).toBeUndefined();
    expect(inspectNodeSync(confiner, gone)).toEqual({ kind: 'missing' });
    confiner.close();
  });
});

// Files too large to read synchronously are read through the thread pool after the chunks: their
// directories were pinned until the observation ended, one fd each (EMFILE under a service's limit).
describe.skipIf(process.platform !== 'linux')('an observation of large files in directories others may write in', () => {
  const sb = useSandbox();

  it('holds no more pinned fds than a slice of them at a time', async () => {
    const content = 'x'.repeat(SYNC_READ_LIMIT + 1024);
    const nodes = Array.from({ length: 300 }, (_, i) => fileNode(`f${i}`, `home${i}/big`, content));
    for (let i = 0; i < nodes.length; i++) {
      mkdirSync(join(sb.root, `home${i}`), { recursive: true });
      chmodSync(join(sb.root, `home${i}`), 0o777);
      writeFileSync(join(sb.root, `home${i}`, 'big'), content);
    }
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    let most = before;
    const sampler = setInterval(() => (most = Math.max(most, fds())), 0);
    let observed;
    try {
      observed = await sb.backend.observe(nodes, opCtx());
    } finally {
      clearInterval(sampler);
    }
    expect([...observed.values()].filter((o) => o.status !== 'upToDate')).toEqual([]);
    // A slice's pins and the reads in flight; 300 pins (and more) without the slices.
    expect(most - before).toBeLessThan(PINS_HELD + OBSERVE_PARALLELISM + 16);
    expect(fds()).toBe(before);
  });
});
