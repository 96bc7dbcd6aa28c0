import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, filesProject, stateRows } from '../support/cli.ts';
import type { FilesProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import type { Daemon } from '../support/daemon.ts';

/*
 * A daemon started on goals that prune a node (deletionPolicy: Delete) deletes it in its first load,
 * before it listens. Meanwhile it holds the state: `status` says it is starting, and an apply is told
 * it is the daemon. A delete that does not end (here: until `go` exists) is in-flight work like any
 * other: SIGTERM cuts it off after the 10 s grace and the daemon exits 0, the delete left pending and
 * the node kept, and the next start deletes it.
 */
const daemons = trackDaemons();

function project(): FilesProject & { release(): void } {
  const p = filesProject(
    'ds-daemon-start-delete-',
    `    while [ ! -e "$dir/go" ]; do sleep 0.1; done
    rm "$dir/res-$id"`,
  );
  daemons.removeAfter(p.dir);
  return Object.assign(p, { release: () => writeFileSync(join(p.dir, 'go'), '') });
}

const args = ['--listen', '127.0.0.1:0', '--interval', '60s'];

async function daemonStatus(p: FilesProject): Promise<{ json: unknown; line: string | undefined }> {
  const json = (JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { daemon: unknown }).daemon;
  const line = (await cli(['status', ...p.args], { cwd: p.dir })).stdout.split('\n')[0];
  return { json, line };
}

/** Applies k and a, takes a out of the goals, and starts a daemon: resolves once its first load has begun a's delete. */
async function daemonDeletingA(p: ReturnType<typeof project>): Promise<Daemon> {
  p.goal(['k', 'a']);
  expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
  p.goal(['k']);
  const d = daemons.start([...args, ...p.args], { cwd: p.dir });
  try {
    await eventually(() => p.calls().includes('delete a'), 20_000, 'the delete of a to begin');
  } catch (err) {
    p.release();
    throw err;
  }
  return d;
}

describe('desiredstate run: a first load that deletes a pruned node', () => {
  it('is starting for status meanwhile; SIGTERM cuts the delete off within the grace and exits 0; the node is kept, its delete pending, and the next start deletes it', async () => {
    const p = project();
    const d = await daemonDeletingA(p);
    try {
      expect(await daemonStatus(p)).toEqual({ json: { running: true, starting: true, pid: d.child.pid }, line: `daemon: starting (pid ${d.child.pid}: loading the goals, not listening yet)` });
      const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
      expect(apply.code).toBe(1);
      expect(apply.stderr).toContain(`is locked by process ${d.child.pid}, the daemon serving it, still starting (loading the goals)`);
      d.kill('SIGTERM');
      // A hang guard: the grace is 10 s, the delete would never end.
      expect(await d.exitedWithin(40_000)).toEqual({ code: 0, signal: null });
    } finally {
      p.release();
    }
    expect(await daemonStatus(p)).toEqual({ json: { running: false }, line: 'daemon: not running' });
    expect(d.lines.filter((l) => l.msg === 'operation cut off by the shutdown; left pending')).toMatchObject([{ node: 'a', op: 'delete' }]);
    expect(d.lines.map((l) => l.msg)).not.toContain('delete failed');
    expect(p.calls().filter((c) => c === 'delete a')).toHaveLength(1);
    expect(stateRows(p.state, 'SELECT node, op FROM operations WHERE finished_at IS NULL')).toEqual([{ node: 'a', op: 'delete' }]);
    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { nodes: { id: string; reason: string | null }[] };
    expect(status.nodes.find((n) => n.id === 'a')).toMatchObject({ reason: 'delete cut off by the shutdown; read again at the next start, and deleted if still there' });

    const again = daemons.start([...args, ...p.args], { cwd: p.dir });
    const port = await again.port();
    expect(await daemonStatus(p)).toEqual({ json: { running: true, pid: again.child.pid, listen: `127.0.0.1:${port}` }, line: `daemon: running (pid ${again.child.pid}, API on 127.0.0.1:${port})` });
    again.kill('SIGTERM');
    expect(await again.exitedWithin(40_000)).toEqual({ code: 0, signal: null });
    expect(p.calls().filter((c) => c === 'delete a')).toHaveLength(2);
    expect(stateRows(p.state, 'SELECT id FROM nodes')).toEqual([{ id: 'k' }]);
    expect(stateRows(p.state, "SELECT outcome, detail FROM operations WHERE node = 'a' AND op = 'delete' ORDER BY id")).toEqual([
      { outcome: 'abandoned', detail: 'interrupted; deleted again' },
      { outcome: 'done', detail: null },
    ]);
  }, 90_000);

  it('killed -9 while it starts, is not running for status: the pid it left names no live lock holder', async () => {
    const p = project();
    const d = await daemonDeletingA(p);
    try {
      expect((await daemonStatus(p)).json).toEqual({ running: true, starting: true, pid: d.child.pid });
      d.kill('SIGKILL');
      await d.exited;
    } finally {
      p.release();
    }
    expect(stateRows(p.state, "SELECT value FROM meta WHERE key = 'daemon.pid'")).toEqual([{ value: String(d.child.pid) }]);
    expect(await daemonStatus(p)).toEqual({ json: { running: false }, line: 'daemon: not running' });
  }, 60_000);
});
