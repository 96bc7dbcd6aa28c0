import { existsSync, readdirSync, statfsSync } from 'node:fs';
import { chmod, chown, lchown, link, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LOCAL_KINDS, LocalBackend, localBackendFactory, localConfigSchema } from '../../../src/backends/local/index.ts';
import { COARSE_RACY_MARGIN_MS, RACY_MARGIN_MS, racyMarginMs } from '../../../src/backends/local/client.ts';
import { classifyErrno, fsFault } from '../../../src/backends/local/errors.ts';
import type { InfraNode } from '../../../src/infra/index.ts';
import { FaultError, sha256 } from '../../../src/runtime/index.ts';
import type { Fault, Observation, ObservationMemo, ProvisionResult } from '../../../src/runtime/index.ts';
import { captureLogger } from '../../support/backend.ts';
import { canRunAsNobody, canSetImmutable, isRoot, NOBODY, runUnprivileged, setImmutable } from '../../support/privileges.ts';
import { warnSkipped } from '../../support/skip.ts';
import { dirNode, fileNode, linkNode, log, observeOne, opCtx, sandbox, useSandbox } from './helpers.ts';
import type { Sandbox } from './helpers.ts';

const sb = useSandbox();
const refusedChownChild = fileURLToPath(new URL('./refused-chown.child.ts', import.meta.url));
const refusedAccessChild = fileURLToPath(new URL('./refused-access.child.ts', import.meta.url));
if (!isRoot) warnSkipped(['SKIPPING the local backend tests that give a file or a link to another user:', 'only root can do that. CI runs them as root.']);
else if (!canRunAsNobody()) warnSkipped(['SKIPPING the local backend test of a refused chown: as root every chown succeeds,', `and a child process cannot run this checkout as nobody (uid ${NOBODY.uid}) here:`, 'make the checkout readable to others, or run the tests as a non-root user.']);
const observe = (node: InfraNode): Promise<Observation> => observeOne(sb.backend, node);

/** The fault of an operation (thrown as FaultError or returned as failed), or undefined on success. */
async function faultOf(call: () => Promise<ProvisionResult>): Promise<Fault | undefined> {
  try {
    const r = await call();
    return r.status === 'failed' ? r.fault : undefined;
  } catch (err) {
    if (err instanceof FaultError) return err.fault;
    throw err;
  }
}

async function listAll(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true })).sort();
  } catch {
    return [];
  }
}

function diffPaths(obs: Observation): string[] {
  return obs.status === 'drifted' ? obs.diffs.map((d) => d.path) : [];
}

describe('local backend factory', () => {
  it('provisions the three local kinds', () => {
    expect([...localBackendFactory.kinds]).toEqual([...LOCAL_KINDS]);
  });

  it.each([
    { name: 'empty config defaults the root', config: {}, ok: true, root: '.desiredstate/local' },
    { name: 'explicit root', config: { root: 'state/files' }, ok: true, root: 'state/files' },
    { name: 'unknown field is refused (strict)', config: { rootDir: 'x' }, ok: false, root: undefined },
    { name: 'empty root is refused', config: { root: '' }, ok: false, root: undefined },
    { name: 'rereadEvery as a duration', config: { rereadEvery: '30m' }, ok: true, root: '.desiredstate/local', reread: 1_800_000 },
    { name: 'rereadEvery: always', config: { rereadEvery: 'always' }, ok: true, root: '.desiredstate/local', reread: 'always' },
    { name: 'rereadEvery that is not a duration is refused', config: { rereadEvery: 'hourly' }, ok: false, root: undefined },
    { name: 'rereadEvery of zero is refused (say always)', config: { rereadEvery: '0s' }, ok: false, root: undefined },
  ])('config: $name', ({ config, ok, root, reread }) => {
    const r = localConfigSchema().safeParse(config);
    expect(r.success).toBe(ok);
    if (r.success) {
      expect(r.data.root).toBe(root);
      expect(r.data.rereadEvery).toBe(reread ?? 3_600_000);
    }
  });

  // References to other keys are compile errors (`${nodes.f.outputs.pth}`): the declaration must be what create and observe give.
  it.each([
    { kind: 'local.file', node: () => fileNode('f', 'f.txt', 'x') },
    { kind: 'local.directory', node: () => dirNode('d', 'd') },
    { kind: 'local.symlink', node: () => linkNode('l', 'l', 'f.txt') },
  ])('declares the outputs $kind is given on create and observe', async ({ kind, node }) => {
    const declared = localBackendFactory.outputs?.[kind as (typeof LOCAL_KINDS)[number]];
    const created = await sb.backend.create(node(), opCtx());
    const observed = await observe(node());
    expect(created.status === 'done' ? Object.keys(created.outputs) : created).toEqual(declared);
    expect(observed.status === 'upToDate' ? Object.keys(observed.outputs) : observed).toEqual(declared);
  });

  it('resolves the root against the context cwd', () => {
    const b = localBackendFactory.create(localConfigSchema().parse({ root: 'files' }), { id: 'local', cwd: '/srv/app', log, stateDir: '/tmp', env: {} });
    expect(b.type).toBe('local');
    expect((b as { root?: string }).root).toBe('/srv/app/files');
  });
});

describe('local backend lifecycle', () => {
  it('file: create (root made on the way), observe, update, delete', async () => {
    const node = fileNode('cfg', 'app/config/app.toml', 'port = 8080\n', { mode: '0640' });
    const path = join(sb.root, 'app/config/app.toml');
    expect(await observe(node)).toEqual({ status: 'absent' });
    expect(await sb.backend.create(node, opCtx())).toEqual({ status: 'done', outputs: { path, sha256: sha256('port = 8080\n') } });
    expect(await readFile(path, 'utf8')).toBe('port = 8080\n');
    expect((await stat(path)).mode & 0o777).toBe(0o640);
    // Just written: too recent for a memo (a write in the same timestamp tick could hide behind one).
    const fresh = await observe(node);
    expect(fresh).toEqual({ status: 'upToDate', outputs: { path, sha256: sha256('port = 8080\n') } });
    expect('memo' in fresh && fresh.memo !== undefined).toBe(false);
    // Create again: already exists is success and changes nothing.
    expect((await sb.backend.create(node, opCtx())).status).toBe('done');
    const changed = fileNode('cfg', 'app/config/app.toml', 'port = 9090\nhost = "::"\n', { mode: '0640' });
    expect(diffPaths(await observe(changed))).toEqual(['content']);
    expect((await sb.backend.update(changed, [], opCtx())).status).toBe('done');
    expect(await readFile(path, 'utf8')).toBe('port = 9090\nhost = "::"\n');
    expect((await observe(changed)).status).toBe('upToDate');
    expect(await sb.backend.delete(changed, opCtx())).toEqual({ status: 'done', outputs: {} });
    expect(await sb.backend.delete(changed, opCtx())).toEqual({ status: 'done', outputs: {} });
    expect(await observe(changed)).toEqual({ status: 'absent' });
  });

  it('directory: create recursively with its mode, observe, delete when empty', async () => {
    const node = dirNode('d', 'a/b/c', '0750');
    const path = join(sb.root, 'a/b/c');
    expect(await sb.backend.create(node, opCtx())).toEqual({ status: 'done', outputs: { path } });
    expect((await stat(path)).mode & 0o777).toBe(0o750);
    expect(await observe(node)).toEqual({ status: 'upToDate', outputs: { path } });
    expect((await sb.backend.delete(node, opCtx())).status).toBe('done');
    expect(await observe(node)).toEqual({ status: 'absent' });
    expect((await stat(join(sb.root, 'a/b'))).isDirectory()).toBe(true);
  });

  it('symlink: create, observe, retarget atomically, delete', async () => {
    await mkdir(join(sb.root, 'releases/v1'), { recursive: true });
    await mkdir(join(sb.root, 'releases/v2'), { recursive: true });
    const v1 = linkNode('current', 'current', 'releases/v1');
    const path = join(sb.root, 'current');
    expect(await sb.backend.create(v1, opCtx())).toEqual({ status: 'done', outputs: { path, target: 'releases/v1' } });
    expect(await readlink(path)).toBe('releases/v1');
    expect((await observe(v1)).status).toBe('upToDate');
    const v2 = linkNode('current', 'current', 'releases/v2');
    expect(await observe(v2)).toMatchObject({ status: 'drifted', diffs: [{ path: 'target', desired: 'releases/v2', actual: 'releases/v1' }] });
    expect((await sb.backend.update(v2, [], opCtx())).status).toBe('done');
    expect(await readlink(path)).toBe('releases/v2');
    expect(await listAll(sb.root)).not.toContainEqual(expect.stringMatching(/\.tmp$/));
    expect((await sb.backend.delete(v2, opCtx())).status).toBe('done');
    expect(await observe(v2)).toEqual({ status: 'absent' });
    expect((await stat(join(sb.root, 'releases/v2'))).isDirectory()).toBe(true);
  });
});

describe('observation memos (rereadEvery)', () => {
  const content = 'hello world\n';
  const later = (ms: number): void => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + ms);
  };
  afterEach(() => {
    vi.useRealTimers();
  });

  const observeWith = (node: InfraNode, memo: ObservationMemo | undefined, backend = sb.backend): Promise<Observation> =>
    observeOne(backend, node, { ...opCtx(), memoOf: (id) => (id === node.id ? memo : undefined) });
  const memoOf = (obs: Observation): ObservationMemo | undefined => (obs.status === 'upToDate' || obs.status === 'drifted' ? obs.memo : undefined);

  /** A file holding same-size content other than the desired, with a memo that (falsely) says it holds the desired content. */
  async function forged(seenAfterChangeMs: number): Promise<{ node: InfraNode; memo: ObservationMemo }> {
    const node = fileNode('f', 'f.txt', content);
    await sb.backend.create(node, opCtx());
    const path = join(sb.root, 'f.txt');
    await writeFile(path, 'jello world\n');
    const st = await lstat(path);
    const memo = { v: 1, dev: st.dev, ino: st.ino, size: st.size, mtime: st.mtimeMs, ctime: st.ctimeMs, sha256: sha256(content), seenAt: st.ctimeMs + seenAfterChangeMs };
    return { node, memo };
  }

  it('a memo that holds stands in for the read; rereadEvery: always, a racy memo, an old one or one from the future do not', async () => {
    // The memo is trusted exactly as far as this: it is what spares reading 10k unchanged files on every pass.
    const { node, memo } = await forged(5_000);
    later(10_000);
    expect(await observeWith(node, memo)).toMatchObject({ status: 'upToDate', memo });
    const always = new LocalBackend({ root: sb.root, rereadEvery: 'always' }, { id: 'local', cwd: sb.base, log });
    expect(diffPaths(await observeWith(node, memo, always))).toEqual(['content']);
    // Taken within RACY_MARGIN_MS of the file's last change: a write in the same timestamp tick could hide behind it.
    expect(diffPaths(await observeWith(node, { ...memo, seenAt: Number(memo.ctime) + RACY_MARGIN_MS - 1 }))).toEqual(['content']);
    // Older than rereadEvery (1h by default): read again.
    vi.setSystemTime(Number(memo.seenAt) + 3_600_001);
    expect(diffPaths(await observeWith(node, memo))).toEqual(['content']);
    // Taken "after" now (the clock went back): not trusted.
    vi.setSystemTime(Number(memo.seenAt) - 1);
    expect(diffPaths(await observeWith(node, memo))).toEqual(['content']);
  });

  it('the racy margin: ten clock ticks for sub-second timestamps, seconds for whole-second ones', () => {
    expect(racyMarginMs(1_763_830_000_123.456)).toBe(RACY_MARGIN_MS);
    expect(racyMarginMs(1_763_830_000_000)).toBe(COARSE_RACY_MARGIN_MS);
    expect(COARSE_RACY_MARGIN_MS).toBeGreaterThan(2000); // FAT's 2 s mtime
  });

  it('a memo of another file state is not trusted: content, size, times, inode each break it', async () => {
    const { node, memo } = await forged(5_000);
    later(10_000);
    for (const [field, value] of [['sha256', sha256('other')], ['size', 99], ['mtime', 1], ['ctime', 1], ['ino', 1], ['dev', 1], ['v', 2]] as const) {
      expect(diffPaths(await observeWith(node, { ...memo, [field]: value })), field).toEqual(['content']);
    }
  });

  it('an edit after a trusted memo is seen, even same-size with the mtime put back (ctime moves)', async () => {
    const node = fileNode('f', 'f.txt', content);
    await sb.backend.create(node, opCtx());
    const path = join(sb.root, 'f.txt');
    const stamp = new Date('2020-01-01T00:00:00Z');
    await utimes(path, stamp, stamp);
    // Read right after the change: no memo; read again later: one, with what it was read as.
    expect(memoOf(await observeWith(node, undefined))).toBeUndefined();
    later(5_000);
    const trusted = memoOf(await observeWith(node, undefined));
    const st = await lstat(path);
    expect(trusted).toEqual({ v: 1, dev: st.dev, ino: st.ino, size: st.size, mtime: st.mtimeMs, ctime: st.ctimeMs, sha256: sha256(content), seenAt: Date.now() });
    expect(memoOf(await observeWith(node, trusted))).toBe(trusted);
    vi.useRealTimers();
    await writeFile(path, 'jello world\n');
    await utimes(path, stamp, stamp);
    const obs = await observeWith(node, trusted);
    expect(diffPaths(obs)).toEqual(['content']);
    expect(obs.status === 'drifted' ? obs.diffs[0]?.detail : undefined).toContain('-jello world\n+hello world');
    // A chmod alone moves ctime too: the mode drift is reported and the content read again.
    await writeFile(path, content);
    await chmod(path, 0o600);
    const moded = await observeWith(node, trusted);
    expect(diffPaths(moded)).toEqual(['mode']);
    expect(memoOf(moded)).not.toEqual(trusted);
  });
});

describe('local backend drift', () => {
  it('catches a same-size edit even with the mtime restored', async () => {
    const node = fileNode('f', 'f.txt', 'hello world\n');
    await sb.backend.create(node, opCtx());
    const path = join(sb.root, 'f.txt');
    const stamp = new Date('2020-01-01T00:00:00Z');
    await utimes(path, stamp, stamp);
    const before = await stat(path);
    await writeFile(path, 'jello world\n');
    await utimes(path, stamp, stamp);
    const after = await stat(path);
    expect([after.size, after.mtimeMs]).toEqual([before.size, before.mtimeMs]);
    const obs = await observe(node);
    expect(diffPaths(obs)).toEqual(['content']);
    expect(obs.status === 'drifted' ? obs.diffs[0]?.detail : undefined).toContain('-jello world\n+hello world');
    await sb.backend.update(node, obs.status === 'drifted' ? obs.diffs : [], opCtx());
    expect(await readFile(path, 'utf8')).toBe('hello world\n');
  });

  it('reports mode drift and corrects it in place', async () => {
    const node = fileNode('f', 'f.txt', 'x', { mode: '0644' });
    await sb.backend.create(node, opCtx());
    await chmod(join(sb.root, 'f.txt'), 0o600);
    expect(await observe(node)).toMatchObject({ status: 'drifted', diffs: [{ path: 'mode', desired: '0644', actual: '0600' }] });
    await sb.backend.update(node, [], opCtx());
    expect((await observe(node)).status).toBe('upToDate');
  });

  it('reports directory mode drift', async () => {
    const node = dirNode('d', 'd', '0755');
    await sb.backend.create(node, opCtx());
    await chmod(join(sb.root, 'd'), 0o700);
    expect(await observe(node)).toMatchObject({ status: 'drifted', diffs: [{ path: 'mode', desired: '0755', actual: '0700' }] });
  });

  it('reports a hand-changed symlink target', async () => {
    const node = linkNode('l', 'l', 'a');
    await sb.backend.create(node, opCtx());
    await writeFile(join(sb.root, 'b'), '');
    const { rm } = await import('node:fs/promises');
    await rm(join(sb.root, 'l'));
    await symlink('b', join(sb.root, 'l'));
    expect(diffPaths(await observe(node))).toEqual(['target']);
  });
});

describe('local backend refuses, never deletes, the wrong kind', () => {
  it.each([
    { name: 'a directory where a file should be', node: fileNode('f', 'x', 'c'), prepare: (p: string) => mkdir(p) },
    { name: 'a file where a directory should be', node: dirNode('d', 'x'), prepare: (p: string) => writeFile(p, 'keep') },
    { name: 'a file where a symlink should be', node: linkNode('l', 'x', 'y'), prepare: (p: string) => writeFile(p, 'keep') },
    { name: 'a symlink where a file should be', node: fileNode('f', 'x', 'c'), prepare: (p: string) => symlink('y', p) },
  ])('$name', async ({ node, prepare }) => {
    await mkdir(sb.root, { recursive: true });
    const path = join(sb.root, 'x');
    await prepare(path);
    const kindBefore = await lstat(path);
    // Drift of its kind, which no update corrects (`cannotCorrect`): reported, never made right by deleting.
    expect(await observe(node)).toMatchObject({ status: 'drifted', diffs: [{ path: 'kind', cannotCorrect: expect.stringContaining('refusing to replace it') }] });
    for (const op of [() => sb.backend.create(node, opCtx()), () => sb.backend.update(node, [], opCtx())]) {
      expect(await faultOf(op)).toMatchObject({ class: 'permanent', code: 'wrong-kind', message: expect.stringContaining('refusing to replace it') });
    }
    // Worded for a delete: nothing is to take the place of what is there.
    expect(await faultOf(() => sb.backend.delete(node, opCtx()))).toMatchObject({ class: 'permanent', code: 'wrong-kind', message: expect.stringMatching(/the node made; refusing to delete it$/) });
    const kindAfter = await lstat(path);
    expect([kindAfter.isDirectory(), kindAfter.isFile(), kindAfter.isSymbolicLink()]).toEqual([kindBefore.isDirectory(), kindBefore.isFile(), kindBefore.isSymbolicLink()]);
  });

  it('does not delete a non-empty directory', async () => {
    const node = dirNode('d', 'd');
    await sb.backend.create(node, opCtx());
    await writeFile(join(sb.root, 'd/keep.txt'), 'keep');
    expect(await faultOf(() => sb.backend.delete(node, opCtx()))).toMatchObject({ class: 'permanent', code: 'directory-not-empty' });
    expect(await readFile(join(sb.root, 'd/keep.txt'), 'utf8')).toBe('keep');
  });
});

describe('local backend confinement', () => {
  // A symlink node whose *target* escapes is refused on create and update; deleting the link itself stays inside the root.
  // What the goal's text says (`..` out, an absolute path, a target that climbs out) is a permanent escape; a path
  // whose text stays in the root but that a symlink found there (made by hand) leads out of is a changed path,
  // transient: refused all the same, and checked again at the next pass (the link may be removed).
  type Case = { name: string; node: (sb: Sandbox) => InfraNode; prepare?: (sb: Sandbox) => Promise<void>; targetOnly?: boolean; byLink?: boolean };
  const linkOut = async (s: Sandbox): Promise<void> => {
    await mkdir(s.root, { recursive: true });
    await symlink(s.outside, join(s.root, 'link'));
  };
  const cases: Case[] = [
    { name: 'a path climbing out with ..', node: () => fileNode('f', '../outside/escape', 'x') },
    { name: 'a path climbing out after a subdirectory', node: () => fileNode('f', 'a/../../outside/escape', 'x') },
    // Back in only because the root is named `root`: refused as validate refuses it, knowing no root.
    { name: 'a path climbing out and back in', node: () => fileNode('f', '../root/escape', 'x') },
    { name: 'an absolute path', node: (s) => fileNode('f', join(s.outside, 'abs.txt'), 'x') },
    { name: 'a directory climbing out', node: () => dirNode('d', 'a/../../outside/dir') },
    { name: 'a file through a symlink in the root that points outside', node: () => fileNode('f', 'link/x', 'x'), prepare: linkOut, byLink: true },
    { name: 'a directory through a symlink that points outside', node: () => dirNode('d', 'link/sub/deeper'), prepare: linkOut, byLink: true },
    { name: 'a symlink placed through an escaping symlink', node: () => linkNode('l', 'link/l', 'x'), prepare: linkOut, byLink: true },
    { name: 'a symlink whose relative target climbs out', node: () => linkNode('l', 'a/l', '../../outside/x'), targetOnly: true },
    { name: 'a symlink whose absolute target is outside', node: (s) => linkNode('l', 'l', join(s.outside, 'x')), targetOnly: true },
    { name: 'a symlink whose target goes through an escaping symlink', node: () => linkNode('l', 'l', 'link/x'), prepare: linkOut, targetOnly: true, byLink: true },
    // Its text stays in the root read as text (`sub/m/../..` is the root), but its own `..` climbs out from where `m`, a
    // link to the root (the goals' as much as anyone's: inside the root), leads: the goal's doing, not a changed path.
    {
      name: "a symlink whose target's own .. climbs out from where a link inside the root leads",
      node: () => linkNode('l', 'sub/l', 'm/../..'),
      prepare: async (s) => {
        await mkdir(join(s.root, 'sub'), { recursive: true });
        await symlink('..', join(s.root, 'sub/m'));
      },
      targetOnly: true,
    },
  ];

  it.each(cases)('refuses $name and writes nothing', async ({ node, prepare, targetOnly, byLink }) => {
    await mkdir(sb.outside, { recursive: true });
    await prepare?.(sb);
    const n = node(sb);
    const rootBefore = await listAll(sb.root);
    // A changed path is about that path alone: no circuit breaker counts it (`Fault.notTheBackend`).
    const refused = byLink === true ? { class: 'transient', code: 'path-changed', notTheBackend: 'node-only' } : { class: 'permanent', code: 'path-escapes-root' };
    expect(await observe(n)).toMatchObject({ status: 'failed', fault: refused });
    const ops = [() => sb.backend.create(n, opCtx()), () => sb.backend.update(n, [], opCtx())];
    if (targetOnly !== true) ops.push(() => sb.backend.delete(n, opCtx()));
    for (const op of ops) {
      expect(await faultOf(op)).toMatchObject(refused);
    }
    if (targetOnly === true) expect(await faultOf(() => sb.backend.delete(n, opCtx()))).toBeUndefined();
    expect(await listAll(sb.outside)).toEqual([]);
    expect(await listAll(sb.root)).toEqual(rootBefore);
    expect(await listAll(sb.base)).toEqual([...new Set(['outside', ...rootBefore.map((p) => join('root', p)), ...(rootBefore.length > 0 ? ['root'] : [])])].sort());
  });

  it('a file under a directory made a symlink out of the root by hand is refused until the link goes, then made', async () => {
    const dir = dirNode('d', 'srv/config');
    const file = fileNode('f', 'srv/config/app.toml', 'x');
    expect((await sb.backend.create(dir, opCtx())).status).toBe('done');
    await mkdir(sb.outside, { recursive: true });
    await rm(join(sb.root, 'srv/config'), { recursive: true });
    await symlink(sb.outside, join(sb.root, 'srv/config'));
    expect(await observe(file)).toMatchObject({ status: 'failed', fault: { class: 'transient', code: 'path-changed', message: `path srv/config/app.toml leads out of the backend root: srv/config is a symlink that leads out of the root; nothing was read or written there` } });
    await unlink(join(sb.root, 'srv/config'));
    expect((await sb.backend.create(dir, opCtx())).status).toBe('done');
    expect(await observe(file)).toMatchObject({ status: 'absent' });
    expect((await sb.backend.create(file, opCtx())).status).toBe('done');
    expect(await readFile(join(sb.root, 'srv/config/app.toml'), 'utf8')).toBe('x');
    expect(await listAll(sb.outside)).toEqual([]);
  });

  it('allows a symlink inside the root that points to another place inside it', async () => {
    await mkdir(join(sb.root, 'real'), { recursive: true });
    await symlink('real', join(sb.root, 'alias'));
    const node = fileNode('f', 'alias/x.txt', 'inside');
    expect((await sb.backend.create(node, opCtx())).status).toBe('done');
    expect(await readFile(join(sb.root, 'real/x.txt'), 'utf8')).toBe('inside');
  });
});

describe('local backend: paths through links the goals manage and links made by hand', () => {
  // The links a goal manages (local.symlink nodes) can only point inside the root (their targets are
  // checked); one made by hand may point anywhere. A node path through either lands where the link
  // leads, if that is inside the root; one that a link made by hand leads out of is a changed path.
  const ESCAPES = { class: 'permanent', code: 'path-escapes-root' };
  const LEADS_OUT = { class: 'transient', code: 'path-changed', notTheBackend: 'node-only' };
  type Case = { name: string; managed?: InfraNode[]; byHand?: Record<string, string>; node: InfraNode; lands?: string; refused?: object };
  const cases: Case[] = [
    { name: 'a file through a managed link to inside', managed: [linkNode('cur', 'cur', 'releases/v2')], node: fileNode('f', 'cur/app.conf', 'x'), lands: 'releases/v2/app.conf' },
    { name: 'a file through a link made by hand to inside', byHand: { cur: 'releases/v2' }, node: fileNode('f', 'cur/app.conf', 'x'), lands: 'releases/v2/app.conf' },
    { name: 'a file through a managed link to the root', managed: [linkNode('m', 'sub/m', '..')], node: fileNode('f', 'sub/m/x', 'x'), lands: 'x' },
    { name: 'a link through a managed link to .. that climbs out from there', managed: [linkNode('m', 'sub/m', '..')], node: linkNode('l', 'sub/l', 'm/../..'), refused: ESCAPES },
    { name: 'a link through a link made by hand to .. that climbs out from there', byHand: { 'sub/m': '..' }, node: linkNode('l', 'sub/l', 'm/../..'), refused: ESCAPES },
    { name: 'a managed link to outside (never made)', node: linkNode('out', 'out', '../outside'), refused: ESCAPES },
    { name: 'a file through a link made by hand to outside', byHand: { out: '../outside' }, node: fileNode('f', 'out/x', 'x'), refused: LEADS_OUT },
    { name: 'a link through a link made by hand to outside', byHand: { out: '../outside' }, node: linkNode('l', 'l', 'out/x'), refused: LEADS_OUT },
  ];

  it.each(cases)('$name', async ({ managed = [], byHand = {}, node, lands, refused }) => {
    await mkdir(join(sb.root, 'releases/v2'), { recursive: true });
    await mkdir(join(sb.root, 'sub'));
    await mkdir(sb.outside);
    for (const link of managed) expect(await sb.backend.create(link, opCtx())).toMatchObject({ status: 'done' });
    for (const [path, target] of Object.entries(byHand)) await symlink(target, join(sb.root, path));
    if (lands !== undefined) {
      expect(await sb.backend.create(node, opCtx())).toMatchObject({ status: 'done' });
      expect(await readFile(join(sb.root, lands), 'utf8')).toBe('x');
    } else {
      expect(await observe(node)).toMatchObject({ status: 'failed', fault: refused });
      expect(await faultOf(() => sb.backend.create(node, opCtx()))).toMatchObject(refused!);
    }
    expect(await listAll(sb.outside)).toEqual([]);
  });

  it('a managed link pointed out of the root by hand: paths through it are refused until the link is put back', async () => {
    const link = linkNode('cur', 'cur', 'releases/v2');
    const file = fileNode('f', 'cur/app.conf', 'x');
    await mkdir(join(sb.root, 'releases/v2'), { recursive: true });
    await mkdir(sb.outside);
    expect(await sb.backend.create(link, opCtx())).toMatchObject({ status: 'done' });
    await unlink(join(sb.root, 'cur'));
    await symlink(sb.outside, join(sb.root, 'cur'));
    expect(await observe(file)).toMatchObject({ status: 'failed', fault: LEADS_OUT });
    expect(await faultOf(() => sb.backend.create(file, opCtx()))).toMatchObject(LEADS_OUT);
    expect(await observe(link)).toMatchObject({ status: 'drifted' });
    expect(await sb.backend.update(link, [], opCtx())).toMatchObject({ status: 'done' });
    expect(await sb.backend.create(file, opCtx())).toMatchObject({ status: 'done' });
    expect(await readFile(join(sb.root, 'releases/v2/app.conf'), 'utf8')).toBe('x');
    expect(await listAll(sb.outside)).toEqual([]);
  });
});

describe('local backend: a symlink whose target leads round a loop of symlinks', () => {
  // symlink() makes such a link all the same: made, it then failed every observation (ELOOP), for good.
  // It is not made, and read before, it is that fault (so plan shows what apply meets); one found in a loop
  // (made by hand) reaches nothing, and is observed as it is.
  const LOOP = { class: 'permanent', code: 'symlink-loop' };

  it('a link to itself is not made', async () => {
    const l5 = linkNode('l5', 'l5', 'l5');
    expect(await observe(l5)).toMatchObject({ status: 'failed', fault: LOOP });
    expect(await faultOf(() => sb.backend.create(l5, opCtx()))).toMatchObject(LOOP);
    expect(existsSync(join(sb.root, 'l5'))).toBe(false);
    expect(await observe(l5)).toMatchObject({ status: 'failed', fault: LOOP });
  });

  it('of two links each the other\'s target, the second is not made; made by hand, both are observed as they are, twice', async () => {
    const a = linkNode('a', 'a', 'b');
    const b = linkNode('b', 'b', 'a');
    expect(await sb.backend.create(a, opCtx())).toMatchObject({ status: 'done' });
    expect(await faultOf(() => sb.backend.create(b, opCtx()))).toMatchObject(LOOP);
    expect(await readdir(sb.root)).toEqual(['a']);
    for (let pass = 0; pass < 2; pass++) {
      expect(await observe(a)).toMatchObject({ status: 'upToDate' });
      expect(await observe(b)).toMatchObject({ status: 'failed', fault: LOOP });
    }
    await symlink('a', join(sb.root, 'b'));
    for (let pass = 0; pass < 2; pass++) {
      expect(await observe(a)).toMatchObject({ status: 'upToDate' });
      expect(await observe(b)).toMatchObject({ status: 'upToDate' });
    }
  });

  it.each([
    { name: 'missing', setup: async () => {} },
    { name: 'a link to elsewhere', setup: () => symlink('elsewhere', join(sb.root, 'c')) },
  ])('a link into a loop made by hand is read as the fault apply meets ($name), not as one to make; read for its delete, as it is', async ({ setup }) => {
    await mkdir(sb.root);
    await symlink('b', join(sb.root, 'a'));
    await symlink('a', join(sb.root, 'b'));
    await setup();
    const c = linkNode('c', 'c', 'a');
    const before = await readdir(sb.root);
    expect(await observe(c)).toMatchObject({ status: 'failed', fault: LOOP });
    expect(await faultOf(() => sb.backend.create(c, opCtx()))).toMatchObject(LOOP);
    expect(await readdir(sb.root)).toEqual(before);
    expect((await sb.backend.observe([c], { ...opCtx(), beforeDelete: true })).get('c')?.status).not.toBe('failed');
  });
});

describe('local backend writes', () => {
  it('leaves no temp file behind after creates and updates', async () => {
    for (let i = 0; i < 5; i++) await sb.backend.create(fileNode('f', 'd/f.txt', `v${i}`.repeat(i + 1)), opCtx());
    await sb.backend.create(fileNode('g', 'd/g.txt', 'g'), opCtx());
    expect(await listAll(sb.root)).toEqual(['d', 'd/f.txt', 'd/g.txt']);
  });

  it('writes a file and a symlink whose names take all of NAME_MAX (255 bytes, multibyte too): the temp name is cut, not refused', async () => {
    const names = ['n'.repeat(255), `${'é'.repeat(126)}x`, `l${'n'.repeat(254)}`];
    const file = fileNode('f', `d/${names[0]}`, 'one');
    const wide = fileNode('w', `d/${names[1]}`, 'two');
    const link = linkNode('l', `d/${names[2]}`, names[0]!);
    for (const node of [file, wide, link]) expect(await sb.backend.create(node, opCtx())).toMatchObject({ status: 'done' });
    // Again through a batch (staged temp files), with new content.
    const again = [fileNode('f', `d/${names[0]}`, 'one again'), fileNode('w', `d/${names[1]}`, 'two again')];
    for (const r of (await sb.backend.updateMany(again.map((node) => ({ node, diffs: [] })), opCtx())).values()) expect(r).toMatchObject({ status: 'done' });
    expect(await readFile(join(sb.root, 'd', names[0]!), 'utf8')).toBe('one again');
    expect(await readFile(join(sb.root, 'd', names[1]!), 'utf8')).toBe('two again');
    expect(await readlink(join(sb.root, 'd', names[2]!))).toBe(names[0]);
    expect(await listAll(join(sb.root, 'd'))).toEqual([...names].sort());
  });

  it('new content for a file with hard links: a warning names the path and the links left with the old content', async () => {
    const node = fileNode('f', 'd/f.txt', 'one\n');
    await sb.backend.create(node, opCtx());
    await mkdir(sb.outside, { recursive: true });
    await link(join(sb.root, 'd/f.txt'), join(sb.outside, 'other-name'));
    const { log: captured, lines } = captureLogger();
    const ctx = { ...opCtx(), log: captured };
    expect(await sb.backend.update(fileNode('f', 'd/f.txt', 'two\n'), [], ctx)).toMatchObject({ status: 'done' });
    expect(await readFile(join(sb.root, 'd/f.txt'), 'utf8')).toBe('two\n');
    expect(await readFile(join(sb.outside, 'other-name'), 'utf8')).toBe('one\n');
    const warned = lines.map((l) => JSON.parse(l) as { level: number; node?: string; links?: number; msg: string }).filter((l) => l.level === 40);
    expect(warned).toEqual([expect.objectContaining({ node: 'f', links: 2, msg: expect.stringContaining('has 2 hard links') })]);
    // A mode correction keeps the inode (and its links): nothing to warn of; nor for a file with one name.
    lines.length = 0;
    await chmod(join(sb.root, 'd/f.txt'), 0o600);
    await sb.backend.update(fileNode('f', 'd/f.txt', 'two\n'), [], ctx);
    await sb.backend.update(fileNode('g', 'd/g.txt', 'g\n'), [], ctx);
    await writeFile(join(sb.root, 'd/g.txt'), 'edited\n');
    await sb.backend.update(fileNode('g', 'd/g.txt', 'g\n'), [], ctx);
    expect(lines.filter((l) => l.includes('"level":40'))).toEqual([]);
  });

  it('writes nothing once the signal is aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    expect(await faultOf(() => sb.backend.create(fileNode('f', 'd/f.txt', 'x'), opCtx(ac.signal)))).toMatchObject({ class: 'transient', code: 'aborted' });
    expect(await listAll(sb.base)).toEqual([]);
  });

  it('chowns to a numeric owner and group when stated (to ourselves: always permitted)', async () => {
    const me = userInfo();
    const node = fileNode('f', 'f.txt', 'x', { owner: String(me.uid), group: String(me.gid) });
    expect((await sb.backend.create(node, opCtx())).status).toBe('done');
    expect((await observe(node)).status).toBe('upToDate');
  });

  it.skipIf(!isRoot)('a content change keeps an owner and group the node does not manage (the new file replaces the old one) (root only: a file given to another user)', async () => {
    const p = join(sb.root, 'f.txt');
    await sb.backend.create(fileNode('f', 'f.txt', 'one'), opCtx());
    await chown(p, 1, 1);
    expect(await sb.backend.update(fileNode('f', 'f.txt', 'two'), [], opCtx())).toMatchObject({ status: 'done' });
    expect(await stat(p)).toMatchObject({ uid: 1, gid: 1 });
    // Through a batch too; a managed owner is set, the unmanaged group kept.
    const node = fileNode('f', 'f.txt', 'three', { owner: '2' });
    expect((await sb.backend.updateMany([{ node, diffs: [] }], opCtx())).get('f')).toMatchObject({ status: 'done' });
    expect(await stat(p)).toMatchObject({ uid: 2, gid: 1 });
    expect(await readFile(p, 'utf8')).toBe('three');
  });

  it.skipIf(!isRoot)('a retargeted symlink keeps its owner and group (root only: a link given to another user)', async () => {
    const p = join(sb.root, 'current');
    await sb.backend.create(linkNode('current', 'current', 'releases/v1'), opCtx());
    await lchown(p, 1, 2);
    expect((await sb.backend.update(linkNode('current', 'current', 'releases/v2'), [], opCtx())).status).toBe('done');
    expect(await readlink(p)).toBe('releases/v2');
    expect(await lstat(p)).toMatchObject({ uid: 1, gid: 2 });
  });

  // GOAL-FORMAT.md: ignoreFields are "neither reported nor corrected". An update corrected them all
  // the same when it corrected another field: new content reset a hand-set mode to the goal's, and a
  // mode correction wrote the goal's content over a hand edit of an ignored content.
  it('an update leaves the fields the node ignores as they are found', async () => {
    const p = join(sb.root, 'f.txt');
    const ignoring = (node: InfraNode, ignoreFields: string[]): InfraNode => ({ ...node, settings: { ...node.settings, ignoreFields } });
    await sb.backend.create(fileNode('f', 'f.txt', 'one'), opCtx());
    await chmod(p, 0o600);
    // New content: the ignored mode is kept, on one update and through a batch.
    expect(await sb.backend.update(ignoring(fileNode('f', 'f.txt', 'two'), ['mode']), [], opCtx())).toMatchObject({ status: 'done' });
    expect(await readFile(p, 'utf8')).toBe('two');
    expect((await stat(p)).mode & 0o7777).toBe(0o600);
    expect((await sb.backend.updateMany([{ node: ignoring(fileNode('f', 'f.txt', 'three'), ['mode']), diffs: [] }], opCtx())).get('f')).toMatchObject({ status: 'done' });
    expect(await readFile(p, 'utf8')).toBe('three');
    expect((await stat(p)).mode & 0o7777).toBe(0o600);
    // The mode corrected: the ignored content, edited by hand, is not written; the output says what is there.
    await writeFile(p, 'edited by hand');
    const fixed = await sb.backend.update(ignoring(fileNode('f', 'f.txt', 'three'), ['content']), [], opCtx());
    expect(fixed).toMatchObject({ status: 'done', outputs: { sha256: sha256('edited by hand') } });
    expect(await readFile(p, 'utf8')).toBe('edited by hand');
    expect((await stat(p)).mode & 0o7777).toBe(0o644);
    // Nothing ignored: both corrected.
    await chmod(p, 0o600);
    expect(await sb.backend.update(fileNode('f', 'f.txt', 'three'), [], opCtx())).toMatchObject({ status: 'done', outputs: { sha256: sha256('three') } });
    expect(await readFile(p, 'utf8')).toBe('three');
    expect((await stat(p)).mode & 0o7777).toBe(0o644);
    // A missing file is made whole: ignoreFields never apply to a resource that is not there.
    await rm(p);
    await sb.backend.update(ignoring(fileNode('f', 'f.txt', 'four', { mode: '0640' }), ['content', 'mode']), [], opCtx());
    expect(await readFile(p, 'utf8')).toBe('four');
    expect((await stat(p)).mode & 0o7777).toBe(0o640);
  });

  it.skipIf(!isRoot)('an update leaves an ignored owner as it is found when new content replaces the file (root only: a file given to another user)', async () => {
    const p = join(sb.root, 'f.txt');
    await sb.backend.create(fileNode('f', 'f.txt', 'one', { owner: '0', group: '0' }), opCtx());
    await chown(p, 1, 1);
    const node = fileNode('f', 'f.txt', 'two', { owner: '0', group: '0' });
    expect(await sb.backend.update({ ...node, settings: { ...node.settings, ignoreFields: ['owner'] } }, [], opCtx())).toMatchObject({ status: 'done' });
    expect(await readFile(p, 'utf8')).toBe('two');
    expect(await stat(p)).toMatchObject({ uid: 1, gid: 0 });
  });

  // Root may chown anything: the refusal is what a daemon run as another user meets. The create runs
  // in a child process as an unprivileged user (nobody, when the tests run as root), in a sandbox it owns.
  it.skipIf(isRoot && !canRunAsNobody())('classifies a refused chown as auth, and writes nothing', async () => {
    if (isRoot) await chown(sb.base, NOBODY.uid, NOBODY.gid);
    const r = runUnprivileged(refusedChownChild, [sb.base]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { uid: number; fault: Fault | null; entries: string[] };
    expect(out.uid).not.toBe(0);
    expect(out.fault).toMatchObject({ class: 'auth', code: 'EPERM', hint: 'changing owner or group needs privileges (run as root or drop owner/group)' });
    expect(out.entries).toEqual([]);
  });

  // An EPERM of anything but a chown is no matter of privileges (root meets it too): a file or directory
  // made immutable (chattr +i), which only root can do. Its hint says so, not to drop owner/group.
  const chattr = canSetImmutable();
  if (!chattr) warnSkipped(['SKIPPING the tests of writes refused by an immutable file or directory: they need root, chattr and a filesystem with the flag.']);
  it.skipIf(!chattr)('a write or chmod refused by an immutable file or directory is not put down to owner or group', async () => {
    const dir = dirNode('d', 'd');
    const file = fileNode('f', 'd/f.txt', 'one');
    await sb.backend.create(dir, opCtx());
    await sb.backend.create(file, opCtx());
    const immutable = (path: string, on: boolean): void => {
      expect(setImmutable(path, on)).toBe(true);
    };
    const expected = { class: 'auth', code: 'EPERM', hint: expect.stringContaining('immutable or append-only') };
    immutable(join(sb.root, 'd/f.txt'), true);
    try {
      expect(await faultOf(() => sb.backend.update(fileNode('f', 'd/f.txt', 'one', { mode: '0600' }), [], opCtx()))).toMatchObject(expected);
    } finally {
      immutable(join(sb.root, 'd/f.txt'), false);
    }
    immutable(join(sb.root, 'd'), true);
    try {
      expect(await faultOf(() => sb.backend.create(fileNode('g', 'd/g.txt', 'two'), opCtx()))).toMatchObject(expected);
    } finally {
      immutable(join(sb.root, 'd'), false);
    }
  });

  // EACCES, which root never meets: in a child process as an unprivileged user, in a sandbox it owns.
  it.skipIf(isRoot && !canRunAsNobody())('a directory the daemon may not enter is the fault of the nodes under it alone; a root it may not write in is the backend\'s', async () => {
    const refused = (path: string): Fault | null => {
      const r = runUnprivileged(refusedAccessChild, [sb.base, path]);
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { uid: number; fault: Fault | null };
      expect(out.uid).not.toBe(0);
      return out.fault;
    };
    await mkdir(join(sb.root, 'locked'), { recursive: true });
    await chmod(join(sb.root, 'locked'), 0o700);
    if (isRoot) await chown(sb.base, NOBODY.uid, NOBODY.gid);
    if (isRoot) await chown(sb.root, NOBODY.uid, NOBODY.gid);
    // Not as root: the locked directory stays root's; as another user, its own, which it may not enter at mode 000.
    if (!isRoot) await chmod(join(sb.root, 'locked'), 0o000);
    try {
      expect(refused('locked/f.txt')).toMatchObject({ class: 'auth', code: 'EACCES', notTheBackend: 'node-only' });
      expect(refused('open.txt')).toBeNull();
      await chmod(sb.root, 0o555);
      const f = refused('g.txt');
      expect(f).toMatchObject({ class: 'auth', code: 'EACCES' });
      expect(f).not.toHaveProperty('notTheBackend');
    } finally {
      await chmod(sb.root, 0o755);
      await chmod(join(sb.root, 'locked'), 0o700);
    }
  });

  it('refuses an unknown user name', async () => {
    const node = fileNode('f', 'f.txt', 'x', { owner: 'no-such-user-ds' });
    expect(await faultOf(() => sb.backend.create(node, opCtx()))).toMatchObject({ class: 'permanent', code: 'unknown-user' });
    expect(await observe(node)).toMatchObject({ status: 'failed', fault: { code: 'unknown-user' } });
  });

  it('reads the account files again when they change: a group made after start is known without a restart, one made again with another id is told apart', async () => {
    const me = userInfo();
    const passwd = join(sb.base, 'passwd');
    const group = join(sb.base, 'group');
    await writeFile(passwd, `me:x:${me.uid}:${me.gid}::/:/bin/sh\n`);
    await writeFile(group, 'other:x:4242:\n');
    const backend = new LocalBackend({ root: 'root' }, { id: 'local', cwd: sb.base, log }, { passwd, group });
    try {
      const node = fileNode('f', 'f.txt', 'x', { owner: 'me', group: 'late' });
      expect(await faultOf(() => backend.create(node, opCtx()))).toMatchObject({ code: 'unknown-group', hint: 'create the group or use a numeric id' });
      expect(await observeOne(backend, node)).toMatchObject({ status: 'failed', fault: { code: 'unknown-group' } });
      // Made in place (the same inode, as an editor may) and then again by a rename (as groupadd does).
      await writeFile(group, `other:x:4242:\nlate:x:${me.gid}:\n`);
      expect((await backend.create(node, opCtx())).status).toBe('done');
      expect((await observeOne(backend, node)).status).toBe('upToDate');
      await writeFile(`${group}.new`, 'other:x:4242:\nlate:x:4243:\n');
      await rename(`${group}.new`, group);
      expect(await observeOne(backend, node)).toMatchObject({ status: 'drifted', diffs: [{ path: 'group', desired: 'late', actual: String(me.gid) }] });
    } finally {
      await backend.close();
    }
  });
});

describe('local backend observe at scale', () => {
  it('observes 2,000 files in a few directories, then catches one edit', async () => {
    const nodes = Array.from({ length: 2000 }, (_, i) => fileNode(`f${i}`, `d${i % 10}/f${i}.txt`, `content ${i}\n`));
    // Written by hand: 2,000 fsynced atomic creates would only measure the disk.
    for (let d = 0; d < 10; d++) await mkdir(join(sb.root, `d${d}`), { recursive: true });
    await Promise.all(nodes.map((_, i) => writeFile(join(sb.root, `d${i % 10}/f${i}.txt`), `content ${i}\n`, { mode: 0o644 })));
    await Promise.all(nodes.map((_, i) => chmod(join(sb.root, `d${i % 10}/f${i}.txt`), 0o644)));
    await writeFile(join(sb.root, 'd7/f1007.txt'), 'content 9999\n');
    const obs = await sb.backend.observe(nodes, opCtx());
    expect([...obs.values()].filter((o) => o.status !== 'upToDate').length).toBe(1);
    expect(obs.get('f1007')?.status).toBe('drifted');
  });
});

describe('local backend createMany', () => {
  it('creates a batch across nested, missing directories; each node has its own result', async () => {
    await mkdir(join(sb.root, 'taken'), { recursive: true });
    await mkdir(join(sb.root, 'b'), { recursive: true });
    await writeFile(join(sb.root, 'b/exists.txt'), 'old\n', { mode: 0o600 });
    const nodes = [
      ...Array.from({ length: 30 }, (_, i) => fileNode(`f${i}`, `a${i % 3}/deep/f${i}`, `file ${i}\n`)),
      fileNode('exists', 'b/exists.txt', 'new\n'), // already exists: corrected, as create's contract says
      fileNode('clash', 'taken', 'x'), // a directory is there: refused for this node only
      fileNode('escape', '../outside/x', 'x'), // confinement still applies per node
      linkNode('link', 'c/link', 'b/exists.txt'),
    ];
    const results = await sb.backend.createMany(nodes, opCtx());
    expect(results.size).toBe(nodes.length);
    const failed = [...results].filter(([, r]) => r.status === 'failed').map(([id]) => id);
    expect(failed.sort()).toEqual(['clash', 'escape']);
    for (let i = 0; i < 30; i++) expect(await readFile(join(sb.root, `a${i % 3}/deep/f${i}`), 'utf8')).toBe(`file ${i}\n`);
    expect(await readFile(join(sb.root, 'b/exists.txt'), 'utf8')).toBe('new\n');
    expect((await stat(join(sb.root, 'b/exists.txt'))).mode & 0o777).toBe(0o644);
    expect(await readlink(join(sb.root, 'c/link'))).toBe('b/exists.txt');
    expect((await listAll(sb.root)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const obs = await sb.backend.observe(nodes.filter((n) => !failed.includes(n.id)), opCtx());
    expect([...obs.values()].every((o) => o.status === 'upToDate')).toBe(true);
  });

  it('lets the event loop turn while it writes a large batch (its synchronous calls are paced)', async () => {
    // 3,000 files in one directory: after the first mkdir, every call of the batch is synchronous.
    // Were they not paced, the loop would turn only before the first temp file and after the last.
    const nodes = Array.from({ length: 3000 }, (_, i) => fileNode(`f${i}`, `d/f${i}`, `file ${i}\n`));
    const seen: number[] = [];
    let running = true;
    const look = (): void => {
      if (!running) return;
      const names = readdirSync(join(sb.root, 'd'));
      seen.push(names.filter((n) => n.endsWith('.tmp')).length);
      setImmediate(look);
    };
    await mkdir(join(sb.root, 'd'), { recursive: true });
    setImmediate(look);
    const results = await sb.backend.createMany(nodes, opCtx());
    running = false;
    expect([...results.values()].every((r) => r.status === 'done')).toBe(true);
    expect(seen.some((n) => n > 0 && n < nodes.length)).toBe(true);
    expect((await listAll(sb.root)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('an aborted batch writes nothing and fails every node', async () => {
    const ac = new AbortController();
    ac.abort();
    const results = await sb.backend.createMany([fileNode('a', 'a', 'x'), fileNode('b', 'b', 'y')], opCtx(ac.signal));
    expect([...results.values()].map((r) => r.status)).toEqual(['failed', 'failed']);
    expect(await listAll(sb.root)).toEqual([]);
  });
});

describe('local backend updateMany', () => {
  // 40 files cross the threshold where the batch is flushed with one syncfs; 5 take an fsync each.
  it.each([
    { files: 40, path: 'one filesystem flush for the batch' },
    { files: 5, path: 'an fsync per file' },
    { files: 40, path: 'an fsync per file when `sync -f` cannot run', noSync: true },
  ])('repairs content and mode edits of $files files ($path); each node has its own result', async ({ files, noSync }) => {
    const nodes = Array.from({ length: files }, (_, i) => fileNode(`f${i}`, `d${i % 2}/f${i}`, `file ${i}\n`));
    await sb.backend.createMany(nodes, opCtx());
    for (let i = 0; i < files; i += 2) await writeFile(join(sb.root, `d${i % 2}/f${i}`), `edited ${i}\n`);
    await chmod(join(sb.root, 'd1/f1'), 0o600);
    await mkdir(join(sb.root, 'd0/clash'), { recursive: true });
    const clash = fileNode('clash', 'd0/clash', 'x');
    const drifted = [...nodes.filter((_, i) => i % 2 === 0 || i === 1), clash];
    const path = process.env.PATH;
    if (noSync === true) process.env.PATH = join(sb.base, 'nothing-here');
    let results;
    try {
      results = await sb.backend.updateMany(
        drifted.map((node) => ({ node, diffs: [] })),
        opCtx(),
      );
    } finally {
      process.env.PATH = path;
    }
    expect(results.size).toBe(drifted.length);
    expect(results.get('clash')).toMatchObject({ status: 'failed', fault: { class: 'permanent' } });
    expect([...results].filter(([id, r]) => id !== 'clash' && r.status !== 'done')).toEqual([]);
    expect(results.get('f0')).toEqual({ status: 'done', outputs: { path: join(sb.root, 'd0/f0'), sha256: sha256('file 0\n') } });
    for (let i = 0; i < files; i++) expect(await readFile(join(sb.root, `d${i % 2}/f${i}`), 'utf8')).toBe(`file ${i}\n`);
    expect((await stat(join(sb.root, 'd1/f1'))).mode & 0o777).toBe(0o644);
    expect((await listAll(sb.root)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const obs = await sb.backend.observe(nodes, opCtx());
    expect([...obs.values()].every((o) => o.status === 'upToDate')).toBe(true);
  });

  // A fake `sync` first on PATH tells whether a batch was flushed with `sync -f` (a filesystem on disk)
  // or not at all (tmpfs: nothing to write back); either way the batch lands as desired.
  const memoryFs = (dir: string): boolean => [0x01021994, 0x858458f6].includes(statfsSync(dir).type);
  const onTmpfs = existsSync('/dev/shm') && memoryFs('/dev/shm');
  const onDisk = !memoryFs(tmpdir());
  if (!onTmpfs) warnSkipped(['SKIPPING the local backend test of a batch on tmpfs: /dev/shm is not a tmpfs here.']);
  if (!onDisk) warnSkipped([`SKIPPING the local backend test of a batch flushed to disk: ${tmpdir()} is in memory here.`]);
  async function repairBatchIn(parent: string): Promise<{ root: string; flushes: string[] }> {
    const box = await sandbox(parent);
    const path = process.env.PATH;
    try {
      const bin = join(box.base, 'bin');
      await mkdir(bin);
      const calls = join(box.base, 'sync-calls');
      await writeFile(join(bin, 'sync'), `#!/bin/sh\necho "$*" >> '${calls}'\nexit 0\n`, { mode: 0o755 });
      const nodes = Array.from({ length: 40 }, (_, i) => fileNode(`f${i}`, `f${i}`, `file ${i}\n`));
      await box.backend.createMany(nodes, opCtx());
      await rm(calls, { force: true });
      for (let i = 0; i < 40; i++) await writeFile(join(box.root, `f${i}`), `edited ${i}\n`);
      process.env.PATH = `${bin}:${path ?? ''}`;
      const results = await box.backend.updateMany(
        nodes.map((node) => ({ node, diffs: [] })),
        opCtx(),
      );
      expect([...results.values()].every((r) => r.status === 'done')).toBe(true);
      for (let i = 0; i < 40; i++) expect(await readFile(join(box.root, `f${i}`), 'utf8')).toBe(`file ${i}\n`);
      return { root: box.root, flushes: existsSync(calls) ? (await readFile(calls, 'utf8')).trim().split('\n') : [] };
    } finally {
      process.env.PATH = path;
      await box.cleanup();
    }
  }

  it.skipIf(!onTmpfs)('a batch of 40 repairs on a tmpfs (/dev/shm) lands without a flush: there is nothing to write back', async () => {
    expect((await repairBatchIn('/dev/shm')).flushes).toEqual([]);
  });

  it.skipIf(!onDisk)('a batch of 40 repairs on a filesystem on disk lands after one `sync -f` for the batch', async () => {
    const { root, flushes } = await repairBatchIn(tmpdir());
    expect(flushes).toEqual([`-f -- ${root}`]);
  });

  it('an aborted batch leaves the files as they were and no temp file', async () => {
    const nodes = Array.from({ length: 20 }, (_, i) => fileNode(`f${i}`, `f${i}`, `file ${i}\n`));
    await sb.backend.createMany(nodes, opCtx());
    for (let i = 0; i < 20; i++) await writeFile(join(sb.root, `f${i}`), `edited ${i}\n`);
    const ac = new AbortController();
    ac.abort();
    const results = await sb.backend.updateMany(
      nodes.map((node) => ({ node, diffs: [] })),
      opCtx(ac.signal),
    );
    expect([...results.values()].every((r) => r.status === 'failed' && r.fault.class === 'transient')).toBe(true);
    for (let i = 0; i < 20; i++) expect(await readFile(join(sb.root, `f${i}`), 'utf8')).toBe(`edited ${i}\n`);
    expect((await listAll(sb.root)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});

describe('local backend health', () => {
  it.each([
    { name: 'a root that can be created is healthy', prepare: async () => undefined, status: 'healthy' },
    { name: 'an existing writable root is healthy', prepare: (s: Sandbox) => mkdir(s.root), status: 'healthy' },
    { name: 'a file in place of the root is unhealthy', prepare: (s: Sandbox) => writeFile(s.root, ''), status: 'unhealthy' },
    {
      // /srv -> /data/srv: the backend writes through the link, so health looks through it too.
      name: 'a root that is a symlink to a directory is healthy',
      prepare: async (s: Sandbox) => {
        await mkdir(s.outside);
        await symlink(s.outside, s.root);
      },
      status: 'healthy',
    },
    { name: 'a root that is a dangling symlink is unhealthy', prepare: (s: Sandbox) => symlink(s.outside, s.root), status: 'unhealthy' },
  ])('$name', async ({ prepare, status }) => {
    await prepare(sb);
    expect((await sb.backend.health({ signal: new AbortController().signal, log })).status).toBe(status);
  });

  it('a missing root whose nearest existing ancestor is a symlink to a directory is healthy', async () => {
    await mkdir(sb.outside);
    await symlink(sb.outside, join(sb.base, 'link'));
    const backend = new LocalBackend({ root: 'link/missing/root' }, { id: 'local', cwd: sb.base, log });
    try {
      expect(await backend.health({ signal: new AbortController().signal, log })).toEqual({ status: 'healthy' });
    } finally {
      await backend.close();
    }
  });
});

describe('errno classification', () => {
  it.each([
    { code: 'EACCES', cls: 'auth' },
    { code: 'EPERM', cls: 'auth' },
    { code: 'ENOSPC', cls: 'transient' },
    { code: 'EIO', cls: 'transient' },
    { code: 'EBUSY', cls: 'transient' },
    { code: 'EAGAIN', cls: 'transient' },
    { code: 'EMFILE', cls: 'transient' },
    { code: 'ENOTDIR', cls: 'permanent' },
    { code: 'EISDIR', cls: 'permanent' },
    { code: 'ELOOP', cls: 'permanent' },
    { code: 'ENAMETOOLONG', cls: 'permanent' },
    { code: 'EROFS', cls: 'permanent' },
    { code: 'EFBIG', cls: 'permanent' },
    { code: 'EDQUOT', cls: 'transient' },
    { code: 'ETXTBSY', cls: 'transient' },
    { code: 'EXDEV', cls: 'unknown' },
    { code: undefined, cls: 'unknown' },
  ])('$code is $cls', ({ code, cls }) => {
    expect(classifyErrno(code)).toBe(cls);
  });

  it('a path longer than the filesystem allows is a permanent fault with a hint, not an unknown one retried forever (and counted by the circuit breaker)', async () => {
    for (const path of ['n'.repeat(256), `${'d'.repeat(200)}/`.repeat(21) + 'f']) {
      const node = fileNode('f', path, 'x');
      const expected = { class: 'permanent', code: 'ENAMETOOLONG', hint: expect.stringContaining('NAME_MAX') };
      // Observed absent (what cannot exist is not there); the create says why it cannot be made.
      expect(await faultOf(() => sb.backend.create(node, opCtx()))).toMatchObject(expected);
    }
  });

  it('a file where a directory of the path should be is a permanent ENOTDIR fault, not a directory changed meanwhile (transient, retried for ever)', async () => {
    await mkdir(sb.root, { recursive: true });
    await writeFile(join(sb.root, 'f'), 'hi\n');
    const node = fileNode('bad', 'f/x', 'x\n');
    const expected = { class: 'permanent', code: 'ENOTDIR', message: `${join(sb.root, 'f')} is not a directory`, hint: 'a path component is a file, not a directory' };
    expect(await observe(node)).toMatchObject({ status: 'failed', fault: expected });
    expect(await faultOf(() => sb.backend.create(node, opCtx()))).toMatchObject(expected);
    expect(await readFile(join(sb.root, 'f'), 'utf8')).toBe('hi\n');
  });

  it.each([
    { code: 'ENOSPC', hint: 'free disk space' },
    { code: 'EMFILE', hint: 'the daemon has too many files open: raise its limit (ulimit -n, systemd LimitNOFILE) or lower --concurrency' },
    { code: 'ENFILE', hint: 'the system has too many files open: raise fs.file-max or lower --concurrency' },
  ])('$code says what to do', ({ code, hint }) => {
    const f = fsFault(Object.assign(new Error(code), { code }), 'write', 'a.conf').fault;
    expect(f).toMatchObject({ class: 'transient', code, hint, message: `write a.conf failed: ${code}` });
  });

  it.each([
    { refused: 'an fchown in a write', syscall: 'fchown', action: 'write', hint: 'changing owner or group needs privileges (run as root or drop owner/group)' },
    { refused: 'a chown', syscall: undefined, action: 'chown', hint: 'changing owner or group needs privileges (run as root or drop owner/group)' },
    { refused: 'an open in a write', syscall: 'open', action: 'write', hint: expect.stringContaining('immutable or append-only') },
    { refused: 'a chmod', syscall: 'chmod', action: 'chmod', hint: expect.stringContaining('immutable or append-only') },
  ])('EPERM of $refused: its hint is by the call refused', ({ syscall, action, hint }) => {
    const f = fsFault(Object.assign(new Error('EPERM'), { code: 'EPERM', ...(syscall === undefined ? {} : { syscall }) }), action, 'a.conf').fault;
    expect(f).toMatchObject({ class: 'auth', code: 'EPERM', hint });
  });

  // One path's refusal is about that path: many nodes under one directory the daemon may not enter must not open the circuit for the rest.
  it.each([
    { code: 'EACCES', about: 'node-only' },
    { code: 'EPERM', about: 'node-only' },
    { code: 'ENOTDIR', about: 'node-only' },
    { code: 'EISDIR', about: 'node-only' },
    { code: 'ELOOP', about: 'node-only' },
    { code: 'ENAMETOOLONG', about: 'node-only' },
    { code: 'EFBIG', about: 'node-only' },
    { code: 'ETXTBSY', about: 'node-only' },
    { code: 'ENOSPC', about: undefined },
    { code: 'EDQUOT', about: undefined },
    { code: 'EROFS', about: undefined },
    { code: 'EIO', about: undefined },
    { code: 'EMFILE', about: undefined },
    { code: 'ENFILE', about: undefined },
    { code: 'EXDEV', about: undefined },
  ])('$code is about the backend: $about', ({ code, about }) => {
    expect(fsFault(Object.assign(new Error(code), { code }), 'write', 'a.conf').fault.notTheBackend).toBe(about);
  });
});

describe.skipIf(!canSetImmutable())('a directory the daemon may not write in (made immutable: EPERM even to root)', () => {
  afterEach(() => {
    setImmutable(join(sb.root, 'locked'), false);
    setImmutable(sb.root, false);
  });

  it('is the fault of the nodes under it alone, not counted against the backend; the same refusal at the root is the backend\'s', async () => {
    await mkdir(join(sb.root, 'locked'), { recursive: true });
    expect(setImmutable(join(sb.root, 'locked'), true)).toBe(true);
    const refused = { class: 'auth', code: 'EPERM', hint: expect.stringContaining('immutable') };
    for (const op of [() => sb.backend.create(fileNode('f', 'locked/f.txt', 'x'), opCtx()), () => sb.backend.create(dirNode('d', 'locked/d'), opCtx())]) {
      expect(await faultOf(op)).toEqual({ ...refused, message: expect.any(String), notTheBackend: 'node-only' });
    }
    setImmutable(join(sb.root, 'locked'), false);
    await writeFile(join(sb.root, 'gone.txt'), 'x');
    expect(setImmutable(sb.root, true)).toBe(true);
    // Every node of the backend is refused so: its breaker counts them.
    for (const op of [() => sb.backend.create(fileNode('g', 'g.txt', 'x'), opCtx()), () => sb.backend.delete(fileNode('gone', 'gone.txt', 'x'), opCtx())]) {
      const f = await faultOf(op);
      expect(f).toMatchObject(refused);
      expect(f).not.toHaveProperty('notTheBackend');
    }
  });
});
