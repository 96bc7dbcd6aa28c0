import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cli, memoryGoalHead, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// `retry NODE` releases a node held by the fault policy (or failed, waiting out its backoff). A node
// that is neither is left alone, through the daemon's API or the store: it used to be marked
// "released by operator" (and set pending offline), as if it had been held.
const p = tempProject('ds-retry-');
// `bad` fails every create (a permanent fault); the policy below holds it after the first.
p.write('app.yaml', `${memoryGoalHead('    faults: [{ node: bad, op: create, class: permanent }]\n')}    - id: good
      type: local.directory
      spec: { path: good }
    - id: bad
      type: local.directory
      spec: { path: bad }
`);
const faults = join(p.dir, 'faults.yaml');
writeFileSync(faults, 'retry: { permanent: { retryBudget: 1 } }\n');
const daemons = trackDaemons(p.dir);

interface Node {
  id: string;
  status: string;
  reason: string | null;
  updatedAt: number;
}

async function nodes(): Promise<Record<string, Node>> {
  const r = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
  return Object.fromEntries((JSON.parse(r.stdout) as { nodes: Node[] }).nodes.map((n) => [n.id, n]));
}

describe('retry', () => {
  // One state through both ways of asking: the daemon's API, then the store once it has stopped.
  it('releases a held node and leaves one that is not held alone, through the daemon and offline; unknown is exit 1', async () => {
    const d = daemons.start(['--listen', '127.0.0.1:0', '--fault-policy', faults, ...p.args], { cwd: p.dir });
    await d.port();
    await eventually(async () => (await nodes()).bad?.status === 'held' && (await nodes()).good?.status === 'ready', 15_000, 'bad held, good ready');
    const before = (await nodes()).good!;

    const notHeld = await cli(['retry', 'good', ...p.args], { cwd: p.dir });
    expect(notHeld).toMatchObject({ code: 0, stdout: 'good is not held (status ready); nothing to do\n' });
    const json = await cli(['retry', 'good', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(JSON.parse(json.stdout)).toEqual({ notHeld: 'good', status: 'ready', via: 'daemon' });
    const released = await cli(['retry', 'bad', ...p.args], { cwd: p.dir });
    expect(released).toMatchObject({ code: 0, stdout: 'released bad; the daemon reconciles it now\n' });
    const unknown = await cli(['retry', 'nope', ...p.args], { cwd: p.dir });
    expect(unknown).toMatchObject({ code: 1, stderr: 'unknown node "nope"\n' });
    // `bad` fails again and is held again; `good` was never touched.
    await eventually(async () => (await nodes()).bad?.status === 'held', 15_000, 'bad held again');
    expect((await nodes()).good).toEqual(before);

    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });

    // Offline, from the store.
    const offNotHeld = await cli(['retry', 'good', ...p.args], { cwd: p.dir });
    expect(offNotHeld).toMatchObject({ code: 0, stdout: 'good is not held (status ready); nothing to do\n' });
    expect((await nodes()).good).toEqual(before);
    const offReleased = await cli(['retry', 'bad', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(offReleased.code).toBe(0);
    expect(JSON.parse(offReleased.stdout)).toEqual({ released: 'bad', via: 'store' });
    expect((await nodes()).bad).toMatchObject({ status: 'pending', reason: 'released by operator' });
    const offUnknown = await cli(['retry', 'nope', ...p.args], { cwd: p.dir });
    expect(offUnknown).toMatchObject({ code: 1, stderr: 'unknown node "nope"\n' });
  });

  it('a node the goals declare but no pass has observed yet is not held, not unknown (exit 0); the goals are read only then', async () => {
    const q = tempProject('ds-retry-new-');
    const node = (id: string): string => `    - id: ${id}\n      type: local.directory\n      spec: { path: ${id} }\n`;
    q.write('app.yaml', `${memoryGoalHead('    {}\n')}${node('old')}`);
    expect((await cli(['apply', '--yes', ...q.args], { cwd: q.dir })).code).toBe(0);
    q.write('app.yaml', `${memoryGoalHead('    {}\n')}${node('old')}${node('added')}`);
    expect(await cli(['retry', 'added', ...q.args], { cwd: q.dir })).toMatchObject({ code: 0, stdout: 'added is not held (status pending); nothing to do\n' });
    const json = await cli(['retry', 'added', '--format', 'json', ...q.args], { cwd: q.dir });
    expect(JSON.parse(json.stdout)).toEqual({ notHeld: 'added', status: 'pending', via: 'store' });
    expect(await cli(['retry', 'nope', ...q.args], { cwd: q.dir })).toMatchObject({ code: 1, stderr: 'unknown node "nope"\n' });
    // Goals that do not compile declare nothing: retry still answers, from the state alone.
    q.write('broken.yaml', 'kind: [\n');
    expect(await cli(['retry', 'added', ...q.args], { cwd: q.dir })).toMatchObject({ code: 1, stderr: 'unknown node "added"\n' });
  });

  it('--all releases every node the fault policy holds, through the daemon and offline, and leaves what a policy holds', async () => {
    const q = tempProject('ds-retry-all-');
    q.write('app.yaml', `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: mem }
spec:
  type: memory
  config:
    faults: [{ node: bad1, op: create, class: auth }, { node: bad2, op: create, class: auth }]
---
apiVersion: desiredstate/v1
kind: Policy
metadata: { name: org }
spec:
  rules:
    - id: no-blocked
      description: Nothing is called blocked.
      types: [local.directory]
      require: "spec.path != 'blocked'"
      severity: { default: high }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: mem }
  nodes:
    - { id: good, type: local.directory, spec: { path: good } }
    - { id: bad1, type: local.directory, spec: { path: bad1 } }
    - { id: bad2, type: local.directory, spec: { path: bad2 } }
    - { id: blocked, type: local.directory, spec: { path: blocked } }
`);
    const qFaults = join(q.dir, 'faults.yaml');
    writeFileSync(qFaults, 'retry: { auth: { retryBudget: 1 } }\n');
    const status = async (): Promise<Record<string, string>> => {
      const r = await cli(['status', '--format', 'json', ...q.args], { cwd: q.dir });
      return Object.fromEntries((JSON.parse(r.stdout) as { nodes: Node[] }).nodes.map((n) => [n.id, n.status]));
    };
    const allHeld = async (): Promise<boolean> => {
      const s = await status();
      return s.bad1 === 'held' && s.bad2 === 'held' && s.blocked === 'held' && s.good === 'ready';
    };
    daemons.removeAfter(q.dir);
    const d = daemons.start(['--listen', '127.0.0.1:0', '--fault-policy', qFaults, ...q.args], { cwd: q.dir });
    await d.port();
    await eventually(allHeld, 15_000, 'bad1, bad2 and blocked held, good ready');
    // By name, a node a policy holds is not released either: offline it was set pending, its policy reason gone from status.
    const policyHeld = { code: 0, stdout: 'blocked is held by a policy, not the fault policy; nothing to do (see desiredstate status)\n' };
    expect(await cli(['retry', 'blocked', ...q.args], { cwd: q.dir })).toMatchObject(policyHeld);

    const released = await cli(['retry', '--all', ...q.args], { cwd: q.dir });
    expect(released).toMatchObject({ code: 0, stdout: 'released bad1; the daemon reconciles it now\nreleased bad2; the daemon reconciles it now\nreleased 2 node(s) (1 held by a policy: fix the finding, retry does not release them; see desiredstate status)\n' });
    await eventually(allHeld, 15_000, 'bad1 and bad2 held again');
    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });

    expect(await cli(['retry', 'blocked', ...q.args], { cwd: q.dir })).toMatchObject(policyHeld);
    const offline = await cli(['retry', '--all', '--format', 'json', ...q.args], { cwd: q.dir });
    expect(offline.code).toBe(0);
    expect(JSON.parse(offline.stdout)).toEqual({ released: ['bad1', 'bad2'], via: 'store', heldByPolicy: ['blocked'] });
    expect(await status()).toEqual({ good: 'ready', bad1: 'pending', bad2: 'pending', blocked: 'held' });
    // Each release is journalled, through the daemon as offline.
    const db = new Database(join(q.state, 'state.db'), { readonly: true });
    try {
      const releases = db.prepare("SELECT node, data FROM events WHERE kind = 'operator-retry' ORDER BY id").all() as { node: string; data: string }[];
      expect(releases.map((e) => [e.node, JSON.parse(e.data)])).toEqual([
        ['bad1', { previous: 'held' }],
        ['bad2', { previous: 'held' }],
        ['bad1', { previous: 'held' }],
        ['bad2', { previous: 'held' }],
      ]);
    } finally {
      db.close();
    }
    // It said "no node is held" while status listed blocked, held by a policy.
    const none = { code: 0, stdout: 'no node is held by the fault policy; nothing to do (1 held by a policy: fix the finding, retry does not release them; see desiredstate status)\n' };
    expect(await cli(['retry', '--all', ...q.args], { cwd: q.dir })).toMatchObject(none);
    expect(JSON.parse((await cli(['retry', '--all', '--format', 'json', ...q.args], { cwd: q.dir })).stdout)).toEqual({ released: [], via: 'store', heldByPolicy: ['blocked'] });
    expect(await cli(['retry', 'bad1', '--all', ...q.args], { cwd: q.dir })).toMatchObject({ code: 64, stderr: 'desiredstate retry: retry takes a node id or --all, not both\n' });
  });

  // While the backend's circuit is open, a released node is not tried before the circuit's probe: retry said
  // "the daemon reconciles it now", and the node stayed pending for the cool-down.
  it('says that a node released behind an open circuit waits for its probe, and when it is due', async () => {
    const q = tempProject('ds-retry-circuit-');
    const node = (id: string): string => `    - { id: ${id}, type: local.directory, spec: { path: ${id} } }\n`;
    q.write('app.yaml', `${memoryGoalHead("    faults: [{ node: 'w*', op: create, class: transient }]\n")}${node('w1')}${node('w2')}${node('w3')}`);
    // Each held after its first failure (the budget the file writes); the third opens the circuit for an hour.
    const qFaults = join(q.dir, 'faults.yaml');
    writeFileSync(qFaults, 'retry: { transient: { retryBudget: 1 } }\ncircuitBreaker: { failureThreshold: 3, coolDownMs: 3600000 }\n');
    daemons.removeAfter(q.dir);
    const d = daemons.start(['--listen', '127.0.0.1:0', '--fault-policy', qFaults, ...q.args], { cwd: q.dir });
    await d.port();
    const state = async (): Promise<{ nodes: Node[]; circuits: { backend: string; probeAt: number; fault: { class: string; message: string } }[] }> =>
      JSON.parse((await cli(['status', '--format', 'json', ...q.args], { cwd: q.dir })).stdout) as never;
    await eventually(async () => {
      const s = await state();
      return s.circuits.length === 1 && ['w1', 'w2', 'w3'].every((id) => s.nodes.find((n) => n.id === id)?.status === 'held');
    }, 15_000, 'w1, w2 and w3 held, the circuit open');
    const circuit = (await state()).circuits[0]!;
    expect(circuit).toMatchObject({ backend: 'mem', state: 'open', fault: { class: 'transient' } });
    const due = new Date(circuit.probeAt).toISOString();

    const text = await cli(['retry', 'w1', ...q.args], { cwd: q.dir });
    expect(text).toMatchObject({ code: 0, stdout: `released w1; backend mem's circuit is open (opened by transient: ${circuit.fault.message}): w1 waits for its probe, due at ${due}\n` });
    const json = await cli(['retry', 'w2', '--format', 'json', ...q.args], { cwd: q.dir });
    expect(JSON.parse(json.stdout)).toEqual({ released: 'w2', via: 'daemon', circuit });
    const all = await cli(['retry', '--all', '--format', 'json', ...q.args], { cwd: q.dir });
    expect(JSON.parse(all.stdout)).toEqual({ released: ['w3'], via: 'daemon', circuits: [{ ...circuit, nodes: ['w3'] }] });
    // As said: released, and not tried.
    expect((await state()).nodes.map((n) => n.status)).toEqual(['pending', 'pending', 'pending']);
    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
  });
});
