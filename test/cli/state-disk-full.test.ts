import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { git as gitIn } from '../support/git.ts';
import { cli, localBackend, stateRows } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import type { LogLine } from '../support/daemon.ts';
import { warnSkipped } from '../support/skip.ts';

// A real full filesystem under the state directory: a small tmpfs, filled up. Mounting needs root
// (the CI machine runs the tests as root); elsewhere these tests are skipped, and say why.
const base = mkdtempSync(join(tmpdir(), 'ds-disk-full-'));
const probe = join(base, 'probe');
mkdirSync(probe);
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]);
const canMount = mounted.status === 0;
if (canMount) execFileSync('umount', [probe]);
else warnSkipped(['SKIPPING the state-disk-full tests: they need root, to mount a tmpfs, and this mount failed:', `${mounted.stderr.toString().trim() || mounted.error?.message}`]);


/** A project whose state directory is a 2 MiB tmpfs, unmounted (and removed) after the file's tests. */
function project(name: string): { goals: string; state: string; root: string; args: string[]; fill(leaveBytes?: number): void; free(): void; goal(ids: readonly string[], content?: string): void } {
  const dir = join(base, name);
  const goals = join(dir, 'goals');
  const state = join(dir, 'state');
  const root = join(dir, 'root');
  for (const d of [goals, state, root]) mkdirSync(d, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', state]);
  mounts.push(state);
  writeFileSync(join(goals, 'backend.yaml'), localBackend(root));
  const filler = join(state, 'filler');
  return {
    goals,
    state,
    root,
    args: ['--goals', goals, '--state', state],
    // Every block the filesystem has left but `leaveBytes`: a write that needs more fails with ENOSPC.
    fill: (leaveBytes = 0) => {
      spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4096']);
      if (leaveBytes > 0) truncateSync(filler, statSync(filler).size - leaveBytes);
    },
    free: () => rmSync(filler, { force: true }),
    goal: (ids, content = 'hello') =>
      writeFileSync(
        join(goals, 'app.yaml'),
        `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: local }
  nodes:
${ids.map((id) => `    - { id: ${id}, type: local.file, spec: { path: ${id}.conf, content: ${JSON.stringify(content)}, mode: "0644" } }`).join('\n')}
`,
      ),
  };
}

const mounts: string[] = [];
// Registered before trackDaemons' hook, so it runs after it (hooks unwind as a stack): the daemons are gone.
afterAll(() => {
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  rmSync(base, { recursive: true, force: true });
});
const daemons = trackDaemons();

function integrity(state: string): string {
  const db = new Database(join(state, 'state.db'), { readonly: true });
  try {
    return (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check).join('\n');
  } finally {
    db.close();
  }
}

describe.skipIf(!canMount)('a full state filesystem', () => {
  it('apply: exits 1 with a one-line reason, creates nothing it could not record, keeps state.db intact, and works once there is room', async () => {
    const p = project('apply');
    p.goal(['a']);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    // What only reads writes the shared memory beside the state: it said "cannot write the state file …
    // nothing of this write was recorded", as if it wrote.
    p.fill();
    const status = await cli(['status', ...p.args]);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(/^desiredstate status: DS_STATE_STORE: cannot read state file \S+state\.db: reading it writes \S+state\.db-shm beside it \(the state is kept in WAL mode\), and .*; nothing was changed\n$/);
    p.free();
    // Room for the compiled goals (written before the state is opened) and the lock file, not for the
    // pending create in the WAL (SQLite reports it as an I/O error).
    p.fill(2 * 4096);
    p.goal(['a', 'b']);
    const r = await cli(['apply', '--yes', ...p.args]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^desiredstate apply: DS_STATE_STORE: cannot write the state file \S+state\.db: .*nothing of this write was recorded\n$/);
    // A condition of the machine, not a bug of ours: no "internal error", no stack trace.
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    // b's create could not be recorded as pending: it was not sent.
    expect(existsSync(join(p.root, 'b.conf'))).toBe(false);
    // Checked once there is room again (a reader needs the shared-memory file), before anything writes.
    p.free();
    expect(integrity(p.state)).toBe('ok');
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    expect(readFileSync(join(p.root, 'b.conf'), 'utf8')).toBe('hello');

    // No room at all: the lock file is made (an inode) but its content cannot be written. The
    // command fails saying so, and leaves no empty lock file behind for the next one to puzzle over.
    p.fill();
    const none = await cli(['apply', '--yes', ...p.args]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('ENOSPC');
    expect(readdirSync(p.state).filter((f) => f.includes('lock'))).toEqual([]);
    p.free();
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
  }, 15_000);

  it('run: the daemon stays up, says why, sends nothing it cannot record, and catches up when there is room', async () => {
    const p = project('run');
    p.goal(['a']);
    const d = daemons.start([...p.args, '--interval', '1s', '--listen', '127.0.0.1:0', '--log-level', 'debug'], { cwd: base });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'a');
    p.fill();
    const a = join(p.root, 'a.conf');
    // A drift to correct: its update cannot be recorded as pending, so it is not made.
    writeFileSync(a, 'edited by hand');
    const storeError = (l: LogLine): boolean => l.level === 50 && (l.err as { code?: unknown } | undefined)?.code === 'DS_STATE_STORE';
    await d.waitFor(storeError);
    // A goal revision while full: rejected for now, not fatal.
    const mark = d.lines.length;
    p.goal(['a', 'b']);
    d.kill('SIGHUP');
    await d.waitFor(storeError, 10_000, mark);
    // Loads that keep failing (the goal poll retries every few seconds) are said once, not each time:
    // once both SIGHUPs' loads have failed, one error line, the rest at debug level.
    d.kill('SIGHUP');
    const failedLoad = (l: LogLine): boolean => l.reason === 'SIGHUP' && (l.msg.startsWith('goals cannot be loaded') || l.msg === 'goals still cannot be loaded');
    await eventually(() => d.lines.slice(mark).filter(failedLoad).length === 2, 10_000, 'both SIGHUPs to have been tried');
    expect(d.lines.slice(mark).filter((l) => l.msg.startsWith('goals cannot be loaded'))).toHaveLength(1);
    expect(readFileSync(a, 'utf8')).toBe('edited by hand');
    expect(existsSync(join(p.root, 'b.conf'))).toBe(false);
    expect(d.child.exitCode).toBeNull();
    // Past the failed batch's back-off (5 s), its update has been tried again and refused again:
    // still one line for the whole outage, and the refusal is not taken for a failed batch.
    const notStarted = (l: LogLine): boolean => l.msg === 'operations not started: they cannot be recorded as pending' && (l.nodes as string[]).includes('a');
    await eventually(() => d.lines.filter(notStarted).length >= 2, 15_000, "a's update to have been refused twice");
    expect(d.lines.filter((l) => l.msg.startsWith('state store write failed'))).toHaveLength(1);
    expect(d.lines.filter((l) => l.msg === 'reconcile batch failed')).toEqual([]);
    // Put back by hand meanwhile: once there is room the node is ready, not stuck mid-update.
    writeFileSync(a, 'hello');
    p.free();
    d.kill('SIGHUP');
    await eventually(() => existsSync(join(p.root, 'b.conf')), 10_000, 'b created after the space came back');
    const statuses = async (): Promise<Record<string, string>> => {
      const r = await cli(['status', '--format', 'json', ...p.args]);
      return Object.fromEntries((JSON.parse(r.stdout) as { nodes: { id: string; status: string }[] }).nodes.map((n) => [n.id, n.status]));
    };
    // a is looked at again after the failed batch's back-off (5 s) and found as it should be.
    await eventually(async () => JSON.stringify(await statuses()) === JSON.stringify({ a: 'ready', b: 'ready' }), 8_000, 'a and b ready in the store');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(integrity(p.state)).toBe('ok');
  }, 30_000);

  it('run: stopped while the disk is still full, says that what it kept in memory is lost', async () => {
    const p = project('stop-full');
    p.goal(['a']);
    const d = daemons.start([...p.args, '--interval', '1s', '--listen', '127.0.0.1:0'], { cwd: base });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'a');
    p.fill();
    // A drift: its report waits in memory, as does the node's record, while the store refuses writes.
    writeFileSync(join(p.root, 'a.conf'), 'edited by hand');
    await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'a');
    await d.waitFor((l) => l.level === 50 && (l.err as { code?: unknown } | undefined)?.code === 'DS_STATE_STORE');
    const mark = d.lines.length;
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    const lost = d.lines.slice(mark).find((l) => l.msg.startsWith('state store still refuses writes at shutdown'));
    expect(lost).toBeDefined();
    expect(lost!.level).toBe(50);
    expect(lost!.writes as number).toBeGreaterThan(0);
    p.free();
    expect(integrity(p.state)).toBe('ok');
  }, 30_000);

  it('run: a git commit while the disk is full is the commit drift is reported under, and is journalled once there is room', async () => {
    const p = project('commit');
    p.goal(['a']);
    const dir = join(p.goals, '..');
    const git = (...args: string[]): string => gitIn(dir, ...args);
    writeFileSync(join(dir, '.gitignore'), 'state/\nroot/\n');
    git('init', '-q', '-b', 'main');
    git('add', '.');
    git('commit', '-qm', 'goals');
    const d = daemons.start([...p.args, '--interval', '1h', '--listen', '127.0.0.1:0'], { cwd: dir });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'a');
    p.fill();
    // A commit beside the goals: the commit watch (every 5 s) records it, and the journal cannot be written.
    writeFileSync(join(dir, 'README'), 'docs\n');
    git('add', 'README');
    git('commit', '-qm', 'docs');
    const moved = git('rev-parse', 'HEAD');
    await d.waitFor((l) => l.msg === 'goals commit changed' && l.to === moved, 20_000);
    const mark = d.lines.length;
    writeFileSync(join(p.root, 'a.conf'), 'edited by hand');
    expect((await d.waitFor((l) => l.msg === 'drift detected', 10_000, mark)).commit).toBe(moved);
    expect(d.child.exitCode).toBeNull();
    p.free();
    // The next write (a reload's) has the journal's line with it.
    d.kill('SIGHUP');
    await d.waitFor((l) => l.msg === 'state store writable again; the records kept meanwhile are written', 10_000, mark);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(stateRows(p.state, "SELECT data FROM events WHERE kind = 'goals-commit'")).toEqual([{ data: JSON.stringify({ commit: moved }) }]);
  }, 60_000);
});
