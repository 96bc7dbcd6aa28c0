import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';
import type { CliResult } from '../support/cli.ts';
import { createdBy, eventually, trackDaemons } from '../support/daemon.ts';
import { warnSkipped } from '../support/skip.ts';
import { hasAnsible, oneLocalPlaybook } from '../backends/ansible/harness.ts';

/**
 * An edit that changes how a node's resource is provisioned, not what it is to be nor which it is
 * (an exec backend's timeout, output limit or env, a local backend's `rereadEvery`, a node's labels,
 * an extra argument to its read command), is no goal change: a resource edited by hand stays drift,
 * handled as `selfHeal` says. It was taken for a goal change of every node of the backend (the
 * backend's digest covered its whole config, a node's applied digest its whole spec): under `selfHeal:
 * false` the hand edit was written over, reported "reported" all the same, and a node without
 * `commands.update` failed `no-update-command` and was held. A genuine change (an input's value,
 * another working directory for the commands) still converges under `selfHeal: false`.
 */
const daemons = trackDaemons();

if (!hasAnsible) {
  warnSkipped(['SKIPPING the ansible timeout edit test: ansible-playbook is not on PATH.', 'Install it to run it:  apt-get install -y ansible-core ansible']);
}

interface Node {
  /** Whether the node has an update command. */
  readonly update?: boolean;
  readonly labels?: string;
  /** Arguments added to the read command. */
  readonly readExtra?: string;
  readonly size?: number;
}

/**
 * A project of one exec node `a` (goal `infra`, `selfHeal: false`, input `{ size }`) whose resource is `a.json` in
 * the commands' working directory (the backend's `cwd`, the project's directory unless given); each
 * call is logged as its verb in `calls.log` beside the script, and the `FOO` it was given in `foo.log`.
 */
function execProject() {
  const p = tempProject('ds-how-only-');
  const script = join(p.dir, 'resource');
  writeFileSync(
    script,
    `#!/bin/sh
set -eu
echo "$1" >> ${JSON.stringify(join(p.dir, 'calls.log'))}
echo "\${FOO-unset}" > ${JSON.stringify(join(p.dir, 'foo.log'))}
case "$1" in
  read) if [ -f a.json ]; then printf '{"exists":true,"state":%s}\\n' "$(cat a.json)"; else echo '{"exists":false}'; fi ;;
  *) cat | sed 's/.*"input":\\({[^}]*}\\).*/\\1/' > a.json; echo '{"outputs":{}}' ;;
esac
`,
    { mode: 0o755 },
  );
  const goal = (config: string, node: Node = {}): void => {
    const update = node.update === false ? '' : `, update: [${script}, update]`;
    p.write(
      'goals.yaml',
      `${execGoalHead({ selfHeal: false, config: `{ cwd: ${JSON.stringify(p.dir)}, ${config} }` })}    - id: a
      type: generic.resource
${node.labels === undefined ? '' : `      labels: ${node.labels}\n`}      spec:
        commands: { read: [${script}, read${node.readExtra ?? ''}], create: [${script}, create]${update} }
        input: { size: ${node.size ?? 1} }
`,
    );
  };
  return {
    ...p,
    goal,
    file: (dir = p.dir): string => readFileSync(join(dir, 'a.json'), 'utf8').trim(),
    edit: (text: string): void => writeFileSync(join(p.dir, 'a.json'), `${text}\n`),
    calls: (): string[] => readFileSync(join(p.dir, 'calls.log'), 'utf8').trim().split('\n'),
    foo: (): string => readFileSync(join(p.dir, 'foo.log'), 'utf8').trim(),
  };
}

type ExecProject = ReturnType<typeof execProject>;

/** Applied at `config` and `node`, then edited by hand to size 7: the apply that reports that drift, as a result. */
async function drifted(p: ExecProject, config: string, node: Node = {}): Promise<CliResult> {
  p.goal(config, node);
  const created = await cli(['apply', '--yes', ...p.args]);
  expect(created.code, created.stdout + created.stderr).toBe(0);
  p.edit('{"size":7}');
  const reported = await cli(['apply', '--yes', ...p.args]);
  expect(reported.stdout).toContain('! a: drift-reported');
  return reported;
}

interface DriftDoc {
  reports: { node: string; action: string }[];
}

describe('an edit of how a node is provisioned alone leaves selfHeal: false drift reported, never corrected', () => {
  const cases: { name: string; before: string; after: string; node?: Node; edited?: Node }[] = [
    { name: "the exec backend's timeout", before: 'timeout: 30s', after: 'timeout: 45s' },
    { name: "the exec backend's maxOutputBytes", before: 'maxOutputBytes: 100000', after: 'maxOutputBytes: 200000' },
    { name: "the exec backend's env", before: 'env: [PATH, HOME]', after: 'env: [PATH, HOME, LANG]' },
    { name: "the exec backend's timeout, for a node without commands.update (no-update-command, held)", before: 'timeout: 30s', after: 'timeout: 45s', node: { update: false } },
    { name: "the node's labels", before: 'timeout: 30s', after: 'timeout: 30s', edited: { labels: '{ team: web }' } },
    { name: "an argument added to the node's read command", before: 'timeout: 30s', after: 'timeout: 30s', edited: { readExtra: ', again' } },
  ];

  it.each(cases)('$name: apply', async ({ before, after, node = {}, edited = {} }) => {
    const p = execProject();
    const reported = await drifted(p, before, node);
    p.goal(after, { ...node, ...edited });
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.stdout, apply.stderr).toContain('! a: drift-reported');
    expect(apply.code).toBe(reported.code);
    expect(p.file()).toBe('{"size":7}');
    expect(p.calls()).toEqual(['read', 'create', 'read', 'read']);
    expect((JSON.parse((await cli(['drift', '--format', 'json', ...p.args])).stdout) as DriftDoc).reports.map((r) => r.action)).toEqual(['reported']);
    // Neither failed nor held; status shows the goal spec's digest alone, whatever else the record keeps.
    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args])).stdout) as { nodes: { status: string; appliedDigest: string }[] };
    expect(status.nodes).toEqual([expect.objectContaining({ status: 'drifted', appliedDigest: expect.stringMatching(/^[0-9a-f]{32}$/) })]);
  });

  it('a daemon started after such an edit reports the drift of a node without commands.update, and neither corrects nor holds it', async () => {
    const p = execProject();
    await drifted(p, 'timeout: 30s', { update: false });
    p.goal('timeout: 45s', { update: false, labels: '{ team: web }', readExtra: ', again' });
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    // Before the fix it updated the node (no drift report), or held the one without an update command.
    const seen = await d.waitFor((l) => l.node === 'a' && (['drift detected', 'node updated', 'node held'].includes(l.msg) || l.fault !== undefined), 20_000);
    expect(seen).toMatchObject({ msg: 'drift detected', action: 'reported' });
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(p.file()).toBe('{"size":7}');
    expect(p.calls()).not.toContain('update');
  });

  // The edit changes no node, yet the backend acts as now declared: its instance is made anew.
  it('a running daemon acts with the edited config once reloaded, and still corrects nothing', async () => {
    const p = execProject();
    await drifted(p, 'env: [PATH]');
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir, env: { FOO: 'bar' } });
    const port = await d.port();
    await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 20_000, 'the daemon ready');
    expect(p.foo()).toBe('unset');
    // A label edited too, so that the reload looks at the node at once.
    p.goal('env: [PATH, FOO]', { labels: '{ team: web }' });
    const mark = d.lines.length;
    d.kill('SIGHUP');
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'SIGHUP', 20_000, mark);
    await eventually(() => p.foo() === 'bar', 20_000, 'a read with the env now allowed');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(p.file()).toBe('{"size":7}');
    expect(p.calls()).not.toContain('update');
  });

  it("the local backend's rereadEvery: a file edited by hand is left as found", async () => {
    const p = tempProject('ds-how-only-local-');
    const goal = (every: string): void =>
      p.write(
        'app.yaml',
        `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: local }
spec: { type: local, config: { root: ${JSON.stringify(p.root)}, rereadEvery: ${every} } }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  selfHeal: false
  defaults: { backend: local }
  nodes:
    - { id: conf, type: local.file, spec: { path: app.conf, content: "hello\\n" } }
`,
      );
    goal('1h');
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    writeFileSync(join(p.root, 'app.conf'), 'edited by hand\n');
    expect((await cli(['apply', '--yes', ...p.args])).stdout).toContain('! conf: drift-reported');
    goal('always');
    const plan = await cli(['plan', '--format', 'json', ...p.args]);
    expect((JSON.parse(plan.stdout) as { entries: { id: string; planned: { action: string } }[] }).entries).toEqual([expect.objectContaining({ id: 'conf', planned: expect.objectContaining({ action: 'drift' }) })]);
    expect((await cli(['apply', '--yes', ...p.args])).stdout).toContain('! conf: drift-reported');
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('edited by hand\n');
  });
});

describe.skipIf(!hasAnsible)('an edit of the ansible backend\'s timeout alone', () => {
  it('leaves a selfHeal: false playbook\'s drift reported: the playbook is not run again', async () => {
    const p = tempProject('ds-how-only-ansible-');
    writeFileSync(
      join(p.dir, 'site.yml'),
      `- hosts: all
  gather_facts: false
  tasks:
    - name: configure
      ansible.builtin.copy: { dest: "{{ dir }}/app.conf", content: "ready\\n" }
`,
    );
    const goal = (timeout: string): void => p.write('goals.yaml', oneLocalPlaybook(p.dir, timeout).replace('spec:\n  nodes:', 'spec:\n  selfHeal: false\n  nodes:'));
    goal('60s');
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).stdout).toContain('+ web: created');
    writeFileSync(join(p.dir, 'app.conf'), 'edited by hand\n');
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).stdout).toContain('! web: drift-reported');
    goal('90s');
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.stdout, apply.stderr).toContain('! web: drift-reported');
    expect(readFileSync(join(p.dir, 'app.conf'), 'utf8')).toBe('edited by hand\n');
  });
});

describe('a change of what a node is to be, or of which resource it is, still converges under selfHeal: false', () => {
  it("an input's value edited: apply updates the resource to it", async () => {
    const p = execProject();
    await drifted(p, 'timeout: 30s');
    p.goal('timeout: 45s', { size: 2 });
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.stdout).toContain('~ a: updated');
    expect(p.file()).toBe('{"size":2}');
  });

  it("an input's value edited: a daemon updates the resource to it", async () => {
    const p = execProject();
    await drifted(p, 'timeout: 30s');
    p.goal('timeout: 30s', { size: 2, readExtra: ', again' });
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await d.waitFor((l) => l.msg === 'node updated' && l.node === 'a', 20_000);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(p.file()).toBe('{"size":2}');
  });

  it.each([
    { name: 'apply', daemon: false },
    { name: 'a daemon', daemon: true },
  ])('the commands run in another directory: $name creates the resource there, the one it managed left in place', async ({ daemon }) => {
    const p = execProject();
    await drifted(p, 'timeout: 30s');
    const other = join(p.dir, 'other');
    mkdirSync(other);
    p.write('goals.yaml', readFileSync(join(p.goals, 'goals.yaml'), 'utf8').replace(`cwd: ${JSON.stringify(p.dir)}`, `cwd: ${JSON.stringify(other)}`));
    await createdBy(daemons, daemon, p.args, 'a', p.dir);
    expect(p.file(other)).toBe('{"size":1}');
    expect(existsSync(join(p.dir, 'a.json'))).toBe(true);
  });
});
