import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cli, memoryGoalHead, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { warnSkipped } from '../support/skip.ts';

// `retry` asks the daemon serving the state; when the daemon did not release the node (its API
// refused the request, or did not answer), it wrote the release to the store instead, and said
// "released; it is reconciled on the next pass". The daemon keeps node state in memory and never
// read it: the node stayed held for good, while `status` showed it pending, released by operator.
// While a daemon holds the state, nothing is released behind its back: retry fails and says why.
const GOALS = `${memoryGoalHead('    faults: [{ node: bad, op: create, class: permanent }]\n')}    - { id: good, type: local.directory, spec: { path: good } }
    - { id: bad, type: local.directory, spec: { path: bad } }
`;
const daemons = trackDaemons();

/** A project whose `bad` is held after one permanent fault. */
function project(prefix: string): { args: string[]; dir: string; state: string; faults: string; write(file: string, text: string): void } {
  const p = tempProject(prefix);
  p.write('app.yaml', GOALS);
  const faults = join(p.dir, 'faults.yaml');
  writeFileSync(faults, 'retry: { permanent: { retryBudget: 1 } }\n');
  return { ...p, faults };
}

async function storedStatus(p: { args: string[]; dir: string }): Promise<Record<string, { status: string; reason: string | null }>> {
  const r = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
  return Object.fromEntries((JSON.parse(r.stdout) as { nodes: { id: string; status: string; reason: string | null }[] }).nodes.map((n) => [n.id, n]));
}

async function daemonStatus(base: string): Promise<Record<string, string>> {
  const body = (await (await fetch(`${base}/status`)).json()) as { nodes: { id: string; status: string }[] };
  return Object.fromEntries(body.nodes.map((n) => [n.id, n.status]));
}

/** Both ways of asking, refused the same way; nothing changes, in the daemon or the store. */
async function expectNothingReleased(p: { args: string[]; dir: string }, base: string, because: RegExp): Promise<void> {
  const one = await cli(['retry', 'bad', ...p.args], { cwd: p.dir });
  expect(one.code).toBe(1);
  expect(one.stdout).toBe('');
  expect(one.stderr).toMatch(because);
  expect(one.stderr).toMatch(/^desiredstate retry: nothing released: the daemon at \S+ \(process \d+\) did not release it \(.*\), and the state is its own while it runs: a release written beside it would never be seen\n$/);
  const json = await cli(['retry', 'bad', '--format', 'json', ...p.args], { cwd: p.dir });
  expect(json.code).toBe(1);
  expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'DS_STATE_LOCKED' } });
  const all = await cli(['retry', '--all', ...p.args], { cwd: p.dir });
  expect(all.code).toBe(1);
  expect(all.stderr).toMatch(because);
  expect((await storedStatus(p)).bad).toMatchObject({ status: 'held' });
  expect((await daemonStatus(base)).bad).toBe('held');
}

describe('retry when the daemon holding the state does not release the node', () => {
  it('releases nothing when the daemon does not answer at its address', async () => {
    const p = project('ds-retry-unanswered-');
    const d = daemons.start(['--listen', '127.0.0.1:0', '--fault-policy', p.faults, ...p.args], { cwd: p.dir });
    const base = `http://127.0.0.1:${await d.port()}`;
    await eventually(async () => (await daemonStatus(base)).bad === 'held', 15_000, 'bad held');
    // The address recorded answers nothing (as a daemon whose API is wedged): a port nobody listens on.
    const free = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const db = new Database(join(p.state, 'state.db'));
    db.pragma('busy_timeout = 5000');
    db.prepare("UPDATE meta SET value = ? WHERE key = 'daemon.listen'").run(`127.0.0.1:${free}`);
    db.close();
    await expectNothingReleased(p, base, /ECONNREFUSED/);
    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
  });

  // A daemon listening only on one of the machine's own addresses (not loopback) refused every
  // release with 403, as if from another host: `retry` on the same machine could not release anything.
  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && !a.internal && a.family === 'IPv4')?.address;
  if (external === undefined) warnSkipped(['SKIPPING the retry test through a daemon on a non-loopback address: this machine has none (IPv4).']);
  it.skipIf(external === undefined)('releases through a daemon listening only on a non-loopback address of this machine', async () => {
    const p = project('ds-retry-external-');
    // One fault: released, `bad` is created the second time.
    p.write('app.yaml', GOALS.replace('class: permanent }', 'class: permanent, times: 1 }'));
    const d = daemons.start(['--listen', `${external}:0`, '--fault-policy', p.faults, ...p.args], { cwd: p.dir });
    const base = `http://${external}:${await d.port()}`;
    await eventually(async () => (await daemonStatus(base)).bad === 'held', 15_000, 'bad held');
    const r = await cli(['retry', 'bad', ...p.args], { cwd: p.dir });
    expect(r).toMatchObject({ code: 0, stdout: 'released bad; the daemon reconciles it now\n' });
    await eventually(async () => (await daemonStatus(base)).bad === 'ready', 15_000, 'bad ready');
    const all = await cli(['retry', '--all', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(all.code).toBe(0);
    expect(JSON.parse(all.stdout)).toEqual({ released: [], via: 'daemon' });
    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
  });
});
