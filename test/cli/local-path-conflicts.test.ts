import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, goalHead, localBackend, oneFileGoal, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import type { Daemon, LogLine } from '../support/daemon.ts';

// A managed file replaced by hand with a directory: drift of its kind, which the local backend never
// corrects (it deletes nothing to make room). Reported like any drift, with why; left as found; and
// not converged, so apply and plan exit 1, as they do for a node that fails.
describe('something of another kind at a managed path', () => {
  it('is a drift report naming it, never a correction; apply and plan exit 1; put right by hand, it converges', async () => {
    const p = tempProject('ds-wrong-kind-');
    p.write('app.yaml', oneFileGoal(p.root, 'port = 1\n'));
    expect((await cli(['apply', ...p.args])).code).toBe(0);
    rmSync(join(p.root, 'app.conf'));
    mkdirSync(join(p.root, 'app.conf'));
    writeFileSync(join(p.root, 'app.conf', 'data'), 'kept');

    const plan = await cli(['plan', ...p.args]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain('kind: "directory" → "file" (not corrected: ');

    const apply = await cli(['apply', ...p.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toMatch(/! conf: drift-reported: .*app\.conf is a directory, not a file; refusing to replace it/);
    expect(apply.stdout).toContain('not converged: 1 drift(s) no update can correct, left as found');
    expect(statSync(join(p.root, 'app.conf')).isDirectory()).toBe(true);
    expect(readdirSync(join(p.root, 'app.conf'))).toEqual(['data']);

    const drift = JSON.parse((await cli(['drift', ...p.args, '--format', 'json'])).stdout) as { reports: { node: string; action: string; diffs: { path: string; desired: unknown; actual: unknown }[] }[] };
    expect(drift.reports).toEqual([expect.objectContaining({ node: 'conf', action: 'reported', diffs: [expect.objectContaining({ path: 'kind', desired: 'file', actual: 'directory' })] })]);
    const status = JSON.parse((await cli(['status', ...p.args, '--format', 'json'])).stdout) as { nodes: { id: string; status: string; reason: string }[] };
    expect(status.nodes.find((n) => n.id === 'conf')).toMatchObject({ status: 'drifted', reason: expect.stringContaining('refusing to replace it') });

    // The operator moves it away: the file is made again (drift of a missing resource), and all is well.
    rmSync(join(p.root, 'app.conf'), { recursive: true });
    expect((await cli(['apply', ...p.args])).code).toBe(0);
    expect(statSync(join(p.root, 'app.conf')).isFile()).toBe(true);
  });

  it('a goal whose path something of another kind already holds fails at plan and apply, naming it', async () => {
    const p = tempProject('ds-wrong-kind-new-');
    mkdirSync(join(p.root, 'app.conf'), { recursive: true });
    p.write('app.yaml', oneFileGoal(p.root, 'port = 1\n'));
    const plan = await cli(['plan', ...p.args]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain('x conf (local.file via local) error (permanent): kind is "directory", not "file", and no update can change it: ');
    const apply = await cli(['apply', ...p.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain('x conf: permanent: kind is "directory", not "file", and no update can change it');
    expect(statSync(join(p.root, 'app.conf')).isDirectory()).toBe(true);
  });
});

describe('a managed directory made a symlink by hand', () => {
  // The directory's drift (its kind) cannot be corrected: what lies in it waits for it, blocked, as the
  // daemon has it; nothing is read or written through the link, even one that leads inside the root.
  it('blocks the files in it at plan and apply until the link goes; then they are made', async () => {
    const p = tempProject('ds-dir-link-');
    p.write('app.yaml', `${localBackend(p.root)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: local }
  nodes:
    - { id: dir, type: local.directory, spec: { path: conf, mode: "0755" } }
    - { id: file, type: local.file, spec: { path: conf/app.toml, content: "a = 1\\n", mode: "0644" } }
`);
    expect((await cli(['apply', ...p.args])).code).toBe(0);
    rmSync(join(p.root, 'conf'), { recursive: true });
    mkdirSync(join(p.root, 'other'));
    symlinkSync('other', join(p.root, 'conf'));

    const plan = await cli(['plan', ...p.args]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toMatch(/⊘ file .*dependency dir is not ready/);
    const apply = await cli(['apply', ...p.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toMatch(/⊘ file: .*dependency dir is not ready/);
    expect(readdirSync(join(p.root, 'other'))).toEqual([]);

    rmSync(join(p.root, 'conf'));
    expect((await cli(['apply', ...p.args])).code).toBe(0);
    expect(statSync(join(p.root, 'conf')).isDirectory()).toBe(true);
    expect(existsSync(join(p.root, 'conf/app.toml'))).toBe(true);
  });
});

/** An exec command giving `realdir` as output `dir` (for a path `${nodes.p.outputs.dir}/f`). */
const giveRealdir = `[/bin/sh, -c, 'cat > /dev/null; echo "{\\"exists\\":true,\\"state\\":{},\\"outputs\\":{\\"dir\\":\\"realdir\\"}}"']`;

/** Why two nodes reaching one file fail: through a symlink, or by the same path. */
const THROUGH_SYMLINK = 'their paths lead to one file through a symlink the goals do not manage';
const SAME_PATH = 'their paths resolve to the same path (one written with a ${nodes…} reference, known only when it runs: validate cannot compare it)';

/** A project whose root holds `realdir/` and, made by hand, `alias`: a symlink to it that the goals do not manage. */
function linkedProject(prefix: string): ReturnType<typeof tempProject> {
  const p = tempProject(prefix);
  mkdirSync(join(p.root, 'realdir'), { recursive: true });
  symlinkSync('realdir', join(p.root, 'alias'));
  return p;
}

describe('two nodes reaching one file by different paths', () => {
  it('through a symlink the goals do not manage: both fail, naming each other, and neither writes it', async () => {
    const p = linkedProject('ds-shared-file-');
    p.write('app.yaml', `${localBackend(p.root)}---
${goalHead()}    - { id: a, type: local.file, spec: { path: realdir/f, content: "A\\n" } }
    - { id: b, type: local.file, spec: { path: alias/f, content: "B\\n" } }
`);
    const apply = await cli(['apply', ...p.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain(`x a: permanent: ${join(p.root, 'realdir', 'f')} is managed by node "b" too`);
    expect(apply.stdout).toContain(`x b: permanent: ${join(p.root, 'realdir', 'f')} is managed by node "a" too`);
    expect(existsSync(join(p.root, 'realdir', 'f'))).toBe(false);
  });

  it('a level apart (apply observes a level at a time): the later fails naming the earlier, and only the earlier writes it, on every apply', async () => {
    const p = linkedProject('ds-shared-file-levels-');
    // a lies in the directory node d, a level after it; b, through the link, is of the first level.
    p.write('app.yaml', `${localBackend(p.root)}---
${goalHead()}    - { id: d, type: local.directory, spec: { path: realdir } }
    - { id: a, type: local.file, spec: { path: realdir/f, content: "A\\n" } }
    - { id: b, type: local.file, spec: { path: alias/f, content: "B\\n" } }
`);
    const first = await cli(['apply', ...p.args]);
    expect(first.code).toBe(1);
    expect(first.stdout).toContain('+ b: created');
    expect(first.stdout).toContain(`x a: permanent: ${join(p.root, 'realdir', 'f')} is managed by node "b" too`);
    const again = await cli(['apply', ...p.args]);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain(`x a: permanent: ${join(p.root, 'realdir', 'f')} is managed by node "b" too`);
    expect(again.stdout).toContain('0 created, 0 updated');
    expect(readFileSync(join(p.root, 'realdir', 'f'), 'utf8')).toBe('B\n');
  });

  it('one by a path with a reference that resolves to the other\'s, written out (a level apart): the later fails naming the earlier, and only the earlier writes it', async () => {
    const p = linkedProject('ds-same-path-template-');
    p.write('app.yaml', `${localBackend(p.root)}---
${execGoalHead()}    - { id: p, type: generic.resource, spec: { commands: { read: ${giveRealdir}, create: ${giveRealdir} } } }
    - { id: a, type: local.file, backend: local, spec: { path: "\${nodes.p.outputs.dir}/f", content: "A\\n" } }
    - { id: b, type: local.file, backend: local, spec: { path: realdir/f, content: "B\\n" } }
`);
    const apply = await cli(['apply', ...p.args]);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain('+ b: created');
    expect(apply.stdout).toContain(`x a: permanent: ${join(p.root, 'realdir', 'f')} is managed by node "b" too: ${SAME_PATH}`);
    expect(readFileSync(join(p.root, 'realdir', 'f'), 'utf8')).toBe('B\n');
  });
});

describe('one file through two local backends whose roots are one directory through a symlink', () => {
  // validate compares the roots as written (`root`, `rootlink`): apply finds them one, and refuses the
  // later node, on every apply, rather than the two writing the file in turn.
  it('the later node fails naming the earlier and its backend, on every apply; the file keeps the earlier\'s content', async () => {
    const p = tempProject('ds-shared-root-');
    mkdirSync(p.root, { recursive: true });
    symlinkSync('root', join(p.dir, 'rootlink'));
    p.write('app.yaml', `${localBackend(p.root)}---
apiVersion: desiredstate/v1
kind: Backend
metadata: { name: l3 }
spec: { type: local, config: { root: ${JSON.stringify(join(p.dir, 'rootlink'))} } }
---
${goalHead()}    - { id: a, type: local.file, backend: local, spec: { path: sub/f, content: "1" } }
    - { id: c, type: local.file, backend: l3, spec: { path: sub/f, content: "3" } }
`);
    expect((await cli(['validate', ...p.args])).code).toBe(0);
    const file = join(p.root, 'sub', 'f');
    const contents = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const apply = await cli(['apply', ...p.args]);
      expect(apply.code).toBe(1);
      expect(apply.stdout).toMatch(/x [ac]: permanent: .* is managed by node "[ac]" of backend "(local|l3)" too: the roots of their backends lead to one directory/);
      expect(apply.stdout).not.toMatch(/~ [ac]\b/);
      contents.add(readFileSync(file, 'utf8'));
    }
    expect(contents.size).toBe(1);
  });
});

describe('nodes no apply can make as the goals have them', () => {
  // validate passed them: apply made a loop of links that then failed every pass, or made x/y and then
  // failed the file x for good. Refused at validate, pointing into the goal file; apply changes nothing.
  it('a loop of links, and a file where another node\'s path needs a directory, are compile errors naming both nodes', async () => {
    const p = tempProject('ds-unmakeable-');
    p.write('app.yaml', `${localBackend(p.root)}---
${goalHead()}    - { id: a, type: local.symlink, spec: { path: a, target: b } }
    - { id: b, type: local.symlink, spec: { path: b, target: a } }
    - { id: parent, type: local.file, spec: { path: x, content: "1" } }
    - { id: child, type: local.file, spec: { path: x/y, content: "2" } }
`);
    const validate = await cli(['validate', ...p.args]);
    expect(validate.code).toBe(1);
    expect(validate.stdout).toContain('app.yaml:13:62: error symlink-loop: node "a": its target leads round a loop of symlinks back to it (nodes "a", "b")');
    expect(validate.stdout).toContain('app.yaml:14:62: error symlink-loop: node "b"');
    expect(validate.stdout).toMatch(/app\.yaml:16:52: error path-conflict: node "child": its path x\/y lies inside x, which node "parent" manages as a file: .* \(node "parent": .*app\.yaml:15:53\)/);
    expect((await cli(['apply', ...p.args])).code).not.toBe(0);
    expect(existsSync(p.root) ? readdirSync(p.root) : []).toEqual([]);
  });

  it('so through two backends with one root, written apart; a file inside a directory of the other depends on it', async () => {
    const p = tempProject('ds-unmakeable-two-');
    p.write('app.yaml', `${localBackend(p.root)}---
apiVersion: desiredstate/v1
kind: Backend
metadata: { name: l2 }
spec: { type: local, config: { root: ${JSON.stringify(`${p.root}/./`)} } }
---
${goalHead()}    - { id: parent, type: local.file, backend: local, spec: { path: x, content: "1" } }
    - { id: child, type: local.file, backend: l2, spec: { path: x/y, content: "2" } }
    - { id: d, type: local.directory, backend: l2, spec: { path: d } }
    - { id: inside, type: local.file, backend: local, spec: { path: d/f, content: "3" } }
`);
    const validate = await cli(['validate', ...p.args]);
    expect(validate.code).toBe(1);
    expect(validate.stdout).toMatch(/app\.yaml:19:65: error path-conflict: node "child": its path x\/y lies inside x, which node "parent" manages as a file: .* \(node "parent": .*app\.yaml:18:69\)/);
    p.write('app.yaml', readFileSync(join(p.goals, 'app.yaml'), 'utf8').replace(/.*id: child.*\n/, ''));
    expect((await cli(['validate', ...p.args])).code).toBe(0);
    const graph = JSON.parse((await cli(['graph', ...p.args, '--format', 'json'])).stdout) as { nodes: { id: string; dependsOn: string[] }[] };
    expect(graph.nodes.find((n) => n.id === 'inside')?.dependsOn).toEqual(['d']);
  });

  // validate said valid: each root was checked alone, and apply failed one of them confusingly.
  it('so through two backends whose roots are one inside the other (written relative, apart), naming both backends', async () => {
    const p = tempProject('ds-unmakeable-nested-');
    const backend = (name: string, root: string): string => `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: ${name} }\nspec: { type: local, config: { root: ${root} } }\n---\n`;
    p.write('app.yaml', `${backend('a', 'out')}${backend('b', './out/sub/')}${goalHead()}    - { id: x5, type: local.file, backend: a, spec: { path: sub/ff, content: "1" } }
    - { id: x6, type: local.file, backend: b, spec: { path: ff/inner, content: "2" } }
    - { id: x7, type: local.file, backend: b, spec: { path: g, content: "3" } }
    - { id: x8, type: local.directory, backend: a, spec: { path: sub/g/h } }
`);
    const validate = await cli(['validate', ...p.args], { cwd: p.dir });
    expect(validate.code).toBe(1);
    const out = join(p.dir, 'out');
    expect(validate.stdout).toContain(
      `app.yaml:17:61: error path-conflict: node "x6": its path ff/inner through backend "b" lies inside ${out}/sub/ff, which node "x5" manages as a file through backend "a" (path sub/ff): ${out}/sub/ff would have to be a directory; one of them must go (node "x5": `,
    );
    expect(validate.stdout).toContain(`app.yaml:19:66: error path-conflict: node "x8": its path sub/g/h through backend "a" lies inside ${out}/sub/g, which node "x7" manages as a file through backend "b" (path g): `);
    expect((await cli(['apply', ...p.args], { cwd: p.dir })).code).not.toBe(0);
    expect(existsSync(out)).toBe(false);
    // Apart, the roots are no conflict.
    p.write('app.yaml', readFileSync(join(p.goals, 'app.yaml'), 'utf8').replace('./out/sub/', './other/'));
    expect((await cli(['validate', ...p.args], { cwd: p.dir })).code).toBe(0);
  });
});

/** A Goal named `id` whose one node `id` is a local file at `path`, holding `id`. */
const fileGoal = (id: string, path: string): string => `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: ${id} }
spec:
  nodes:
    - { id: ${id}, type: local.file, spec: { path: ${path}, content: "${id}\\n" } }
`;

/**
 * A daemon over a `linkedProject` (its goals written by the caller before `start`), each node held at its
 * first permanent failure: what the daemon does next waits for the test, not for a backoff. `file` is `realdir/f`.
 */
function linkedDaemon(prefix: string): { p: ReturnType<typeof linkedProject>; file: string; start: () => Daemon } {
  const p = linkedProject(prefix);
  const faults = join(p.dir, 'faults.yaml');
  writeFileSync(faults, 'retry: { permanent: { retryBudget: 1 } }\n');
  const daemons = trackDaemons(p.dir);
  return { p, file: join(p.root, 'realdir', 'f'), start: () => daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', '--fault-policy', faults, ...p.args], { cwd: p.dir }) };
}

/** The daemon's line for node `id` held for sharing `file` with node `other` (through a symlink, or by the same path). */
const heldSharingLine = (file: string, id: string, other: string, why = THROUGH_SYMLINK) => (l: LogLine): boolean =>
  l.msg === 'node held' && l.node === id && (l.fault as { code?: string; message?: string } | undefined)?.code === 'duplicate-resource' && (l.fault as { message: string }).message === `${file} is managed by node "${other}" too: ${why}`;

/** The daemon's lines from `from` on that tell of a file written, or about to be. */
const writes = (d: Daemon, from: number): LogLine[] => d.lines.slice(from).filter((l) => l.msg === 'drift detected' || l.msg === 'node updated' || l.msg === 'node created');

describe('desiredstate run: two nodes reaching one file by different paths', () => {
  // The daemon observes the nodes due, a few at a time: a node added to the goals is observed alone,
  // never in one call with the node it shares a file with. Each must find the other all the same.
  const { p, file, start } = linkedDaemon('ds-daemon-shared-file-');
  p.write('backend.yaml', localBackend(p.root));
  p.write('a.yaml', fileGoal('a', 'realdir/f'));

  it('both are held naming each other, the file is not rewritten; either removed from the goals, or the symlink removed by hand, releases them', async () => {
    const d = start();
    const port = await d.port();
    const statusOf = async (): Promise<Record<string, { status: string; reason: string | null }>> => {
      const nodes = ((await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { nodes: { id: string; status: string; reason: string | null }[] }).nodes;
      return Object.fromEntries(nodes.map((n) => [n.id, n]));
    };
    const heldSharing = async (): Promise<boolean> => {
      const s = await statusOf();
      return s.a?.status === 'held' && s.b?.status === 'held';
    };
    const sharing = (id: string, other: string): ((l: LogLine) => boolean) => heldSharingLine(file, id, other);
    await eventually(() => existsSync(file) && readFileSync(file, 'utf8') === 'a\n', 20_000, 'a converged');

    // b comes with a revision of its own: observed alone, it finds a; a is told, and finds b.
    let mark = d.lines.length;
    p.write('b.yaml', fileGoal('b', 'alias/f'));
    await d.waitFor(sharing('b', 'a'), 10_000, mark);
    await d.waitFor(sharing('a', 'b'), 10_000, mark);
    await eventually(heldSharing, 10_000, 'a and b held');
    expect(readFileSync(file, 'utf8')).toBe('a\n');
    expect(writes(d, mark)).toEqual([]);

    // b removed from the goals: its claim goes with it, and a, released, is as it should be.
    mark = d.lines.length;
    rmSync(join(p.goals, 'b.yaml'));
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'goals changed', 10_000, mark);
    expect(await cli(['retry', 'a', ...p.args], { cwd: p.dir })).toMatchObject({ code: 0 });
    await eventually(async () => (await statusOf()).a?.status === 'ready', 10_000, 'a ready');

    // b back: held again, each naming the other.
    mark = d.lines.length;
    p.write('b.yaml', fileGoal('b', 'alias/f'));
    await d.waitFor(sharing('a', 'b'), 10_000, mark);
    await eventually(heldSharing, 10_000, 'a and b held again');
    // The symlink removed by hand: a, released alone, finds b's path leads elsewhere now; then b is made at its own.
    unlinkSync(join(p.root, 'alias'));
    expect(await cli(['retry', 'a', ...p.args], { cwd: p.dir })).toMatchObject({ code: 0 });
    await eventually(async () => (await statusOf()).a?.status === 'ready', 10_000, 'a ready');
    expect(await cli(['retry', 'b', ...p.args], { cwd: p.dir })).toMatchObject({ code: 0 });
    await eventually(async () => (await statusOf()).b?.status === 'ready', 10_000, 'b ready');
    expect(readFileSync(file, 'utf8')).toBe('a\n');
    expect(readFileSync(join(p.root, 'alias', 'f'), 'utf8')).toBe('b\n');
    expect(writes(d, mark).map((l) => l.node)).toEqual(['b']);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 90_000);
});

describe('desiredstate run: a file passed from a removed node to a new one through a symlink', () => {
  // The new graph's nodes are observed while removed ones are still being deleted (a command can take
  // seconds): by then the backend must know the removed node is gone, or the new one is held for ever,
  // named as sharing its file with a node no longer in the goals.
  const { p, file, start } = linkedDaemon('ds-daemon-file-passed-');
  const started = join(p.dir, 'delete-started');
  const release = join(p.dir, 'delete-release');
  // A delete that waits for the test (bounded: a test that fails leaves no loop behind for long).
  const slow = `${execGoalHead({ prune: true })}    - id: slow
      type: generic.resource
      deletionPolicy: Delete
      spec:
        commands:
          read: [/bin/sh, -c, 'cat > /dev/null; echo "{\\"exists\\":true,\\"state\\":{}}"']
          create: [/bin/sh, -c, 'cat > /dev/null; echo "{\\"outputs\\":{}}"']
          delete: [/bin/sh, -c, 'cat > /dev/null; touch ${started}; i=0; while [ ! -e ${release} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done']
`;
  /** The exec Backend alone: declared as before, so that the daemon keeps its backend instances (and what they know). */
  const execBackend = slow.slice(0, slow.indexOf('---\n') + 4);
  p.write('goals.yaml', `${localBackend(p.root)}---\n${slow}---\n${fileGoal('x', 'realdir/f')}`);

  it('the new node is not held naming the removed one while another removed node\'s delete is under way; it takes the file over', async () => {
    const d = start();
    try {
      const port = await d.port();
      const ready = async (): Promise<boolean> => {
        const nodes = ((await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { nodes: { id: string; status: string }[] }).nodes;
        return nodes.length === 2 && nodes.every((n) => n.status === 'ready');
      };
      await eventually(ready, 20_000, 'x and slow ready');
      expect(readFileSync(file, 'utf8')).toBe('x\n');
      const mark = d.lines.length;
      // x and slow removed in one revision; b reaches x's file through the link.
      p.write('goals.yaml', `${localBackend(p.root)}---\n${execBackend}${fileGoal('b', 'alias/f')}`);
      await eventually(() => existsSync(started), 10_000, 'slow\'s delete under way');
      const outcome = await d.waitFor((l) => l.node === 'b' && ['node held', 'node created', 'node updated'].includes(l.msg), 10_000, mark);
      // Still under way: b was observed meanwhile.
      expect(d.lines.slice(mark).filter((l) => l.node === 'slow' && l.msg === 'node deleted')).toEqual([]);
      expect({ msg: outcome.msg, fault: outcome.fault }).toEqual({ msg: expect.stringMatching(/^node (created|updated)$/), fault: undefined });
      expect(readFileSync(file, 'utf8')).toBe('b\n');
    } finally {
      writeFileSync(release, '');
    }
    await d.waitFor((l) => l.msg === 'node deleted' && l.node === 'slow', 10_000);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 60_000);
});

describe('desiredstate run: a node whose path is a template, and another reaching its file', () => {
  // The daemon watches the goals' nodes as written (`${nodes.p.outputs.dir}/f`) and observes each as
  // resolved (`realdir/f`): a, observed, must claim the file it reaches, and keep it in the next graph.
  /** A daemon over a `linkedDaemon` whose goals hold exec node p, giving `realdir` as its output `dir`, and a at `${nodes.p.outputs.dir}/f`. */
  const templateDaemon = (prefix: string): ReturnType<typeof linkedDaemon> => {
    const daemon = linkedDaemon(prefix);
    daemon.p.write('backend.yaml', localBackend(daemon.p.root));
    daemon.p.write('a.yaml', `${execGoalHead({ name: 'a' })}    - { id: p, type: generic.resource, spec: { commands: { read: ${giveRealdir}, create: ${giveRealdir} } } }
    - { id: a, type: local.file, backend: local, spec: { path: "\${nodes.p.outputs.dir}/f", content: "a\\n" } }
`);
    return daemon;
  };
  const linked = templateDaemon('ds-daemon-shared-template-');
  const same = templateDaemon('ds-daemon-same-template-');
  const edited = templateDaemon('ds-daemon-template-edited-');

  it.each([
    { name: 'through a symlink', daemon: linked, path: 'alias/f', why: THROUGH_SYMLINK },
    { name: 'by the path it resolves to, written out', daemon: same, path: 'realdir/f', why: SAME_PATH },
  ])('$name: both are held naming each other, and the file is not rewritten', async ({ daemon: { p, file, start }, path, why }) => {
    const d = start();
    const port = await d.port();
    await eventually(() => existsSync(file) && readFileSync(file, 'utf8') === 'a\n', 20_000, 'a converged');
    const mark = d.lines.length;
    p.write('b.yaml', fileGoal('b', path));
    await d.waitFor(heldSharingLine(file, 'b', 'a', why), 10_000, mark);
    await d.waitFor(heldSharingLine(file, 'a', 'b', why), 10_000, mark);
    const nodes = ((await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { nodes: { id: string; status: string }[] }).nodes;
    expect(Object.fromEntries(nodes.map((n) => [n.id, n.status]))).toEqual({ p: 'ready', a: 'held', b: 'held' });
    expect(writes(d, mark)).toEqual([]);
    expect(readFileSync(file, 'utf8')).toBe('a\n');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 60_000);

  it('its file edited by hand is noticed by the watch and put right, the interval an hour away', async () => {
    const { file, start } = edited;
    const d = start();
    await eventually(() => existsSync(file) && readFileSync(file, 'utf8') === 'a\n', 20_000, 'a converged');
    const mark = d.lines.length;
    writeFileSync(file, 'by hand\n');
    await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'a', 10_000, mark);
    await eventually(() => readFileSync(file, 'utf8') === 'a\n', 10_000, 'a put right');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 60_000);
});
