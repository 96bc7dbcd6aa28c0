import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, stateRows, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { hasAnsible, oneLocalPlaybook } from '../backends/ansible/harness.ts';
import { warnSkipped } from '../support/skip.ts';

if (!hasAnsible) {
  warnSkipped([
    'SKIPPING the ansible run-cut-short tests: ansible-playbook is not on PATH.',
    'Install it to run it:  apt-get install -y ansible-core ansible',
  ]);
}

/**
 * A playbook never applied, whose run is cut short during its shell task: by a kill -9 of the apply or
 * the daemon (the run goes on to the end, and the next apply or daemon waits for it), by the backend's
 * timeout, or by a stop. The playbook can then neither be called converged (check mode skips the shell
 * task) nor run again blindly (the shell task would run twice): the node is held for an operator;
 * `retry` releases it, and the next apply runs the playbook again, once.
 */
/**
 * A project whose playbook's shell task logs each run to runs.log, then sleeps `sleep` seconds unless
 * `fast` exists; `timeout`: the backend's, for each run.
 */
function project(prefix: string, options: { sleep: number; timeout?: string }): ReturnType<typeof tempProject> {
  const p = tempProject(prefix);
  writeFileSync(
    join(p.dir, 'site.yml'),
    `- hosts: all
  gather_facts: false
  tasks:
    - name: initialise
      ansible.builtin.shell: "echo run >> runs.log; [ -f fast ] || sleep ${options.sleep}"
      args: { chdir: "{{ dir }}" }
    - name: configure
      ansible.builtin.copy: { dest: "{{ dir }}/app.conf", content: "ready\\n" }
`,
  );
  p.write('goals.yaml', oneLocalPlaybook(p.dir, options.timeout));
  return p;
}

const applyProject = project('ds-ansible-crash-apply-', { sleep: 4 });
const daemonProject = project('ds-ansible-crash-run-', { sleep: 4 });
// A timeout long enough for a check run on a busy machine (it skips the shell task), far short of the sleep.
const timeoutApplyProject = project('ds-ansible-timeout-apply-', { sleep: 60, timeout: '4s' });
const timeoutDaemonProject = project('ds-ansible-timeout-run-', { sleep: 60, timeout: '4s' });
const stopApplyProject = project('ds-ansible-stop-apply-', { sleep: 60 });

function runs(p: { dir: string }): string[] {
  return existsSync(join(p.dir, 'runs.log')) ? readFileSync(join(p.dir, 'runs.log'), 'utf8').trim().split('\n') : [];
}

async function webStatus(p: ReturnType<typeof tempProject>): Promise<{ status: string; reason: string | null } | undefined> {
  const status = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
  return (JSON.parse(status.stdout) as { nodes: { id: string; status: string; reason: string | null }[] }).nodes.find((n) => n.id === 'web');
}

/** Starts an apply, and sends it `signal` once the shell task has begun. */
async function signalApplyDuringRun(p: ReturnType<typeof tempProject>, signal: NodeJS.Signals): Promise<void> {
  const child = spawn(process.execPath, [bin, 'apply', '--yes', ...p.args], { cwd: p.dir, env: cleanEnv(), stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await eventually(() => runs(p).length > 0, 30_000, 'the shell task to start');
  } finally {
    child.kill(signal);
    await exited;
  }
}

const daemons = trackDaemons(...[applyProject, daemonProject, timeoutApplyProject, timeoutDaemonProject, stopApplyProject].map((p) => p.dir));

const HELD_REASON = /^cannot tell whether it exists: a run of the playbook was cut short.*"initialise".*desiredstate retry web/;

describe.skipIf(!hasAnsible)('ansible playbook run cut short by kill -9', () => {
  it('apply: is waited for, then held (never run a second time unasked); retry releases it to run once more', async () => {
    const p = applyProject;
    await signalApplyDuringRun(p, 'SIGKILL');

    const again = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    // The leftover run was waited for: it finished the playbook.
    expect(again.stderr).toContain('waiting for a command left running');
    expect(readFileSync(join(p.dir, 'app.conf'), 'utf8')).toBe('ready\n');
    expect(again.code, again.stdout + again.stderr).toBe(1);
    expect(again.stdout).toMatch(/1 held/);
    expect(again.stdout + again.stderr).toContain('check mode cannot tell whether its tasks "initialise"');
    expect(runs(p)).toEqual(['run']);
    expect(await webStatus(p)).toMatchObject({ status: 'held', reason: expect.stringMatching(HELD_REASON) });
    // Held: the next apply leaves it alone too.
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(1);
    expect(runs(p)).toEqual(['run']);

    // The operator has looked and wants the playbook run again.
    writeFileSync(join(p.dir, 'fast'), '');
    expect((await cli(['retry', 'web', ...p.args], { cwd: p.dir })).code).toBe(0);
    const last = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(last.code, last.stdout + last.stderr).toBe(0);
    expect(runs(p)).toEqual(['run', 'run']);
    expect(stateRows(p.state, "SELECT op, outcome, detail FROM operations WHERE node = 'web' ORDER BY id")).toEqual([
      { op: 'create', outcome: 'abandoned', detail: 'released by operator' },
      { op: 'create', outcome: 'done', detail: null },
    ]);
    expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(0);
  }, 120_000);

  it('daemon: the restarted daemon waits for the run, then holds the node; retry releases it to run once more', async () => {
    const p = daemonProject;
    const args = [...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'];
    const first = daemons.start(args, { cwd: p.dir });
    try {
      await eventually(() => runs(p).length > 0, 30_000, 'the shell task to start');
    } finally {
      first.kill('SIGKILL');
      await first.exited;
    }

    const second = daemons.start(args, { cwd: p.dir });
    try {
      const held = await second.waitFor((l) => l.msg === 'node held: existence indeterminate' && l.node === 'web', 40_000);
      expect(String(held.reason)).toContain('check mode cannot tell whether its tasks "initialise"');
      expect(second.lines.some((l) => l.msg === 'a command left running by a stopped desiredstate has ended')).toBe(true);
      expect(readFileSync(join(p.dir, 'app.conf'), 'utf8')).toBe('ready\n');
      expect(runs(p)).toEqual(['run']);
      expect(await webStatus(p)).toMatchObject({ status: 'held', reason: expect.stringMatching(HELD_REASON) });

      writeFileSync(join(p.dir, 'fast'), '');
      const retry = await cli(['retry', 'web', ...p.args], { cwd: p.dir });
      expect(retry.code, retry.stderr).toBe(0);
      await eventually(async () => (await webStatus(p))?.status === 'ready', 30_000, 'web ready');
    } finally {
      second.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);
    }
    expect(runs(p)).toEqual(['run', 'run']);
  }, 120_000);
});

/** The next plan and apply hold the node, never running the playbook again; `retry` releases it to run once more. */
async function heldUntilRetry(p: ReturnType<typeof tempProject>): Promise<void> {
  const plan = await cli(['plan', ...p.args], { cwd: p.dir });
  expect(plan.code, plan.stdout + plan.stderr).toBe(1);
  expect(plan.stdout).toMatch(/⊘ web .*held: a run of the playbook was cut short.*"initialise".*a retry runs the whole playbook again/);
  const again = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
  expect(again.code, again.stdout + again.stderr).toBe(1);
  expect(again.stdout).toMatch(/1 held/);
  expect(runs(p)).toEqual(['run']);
  expect(await webStatus(p)).toMatchObject({ status: 'held', reason: expect.stringMatching(HELD_REASON) });

  writeFileSync(join(p.dir, 'fast'), '');
  expect((await cli(['retry', 'web', ...p.args], { cwd: p.dir })).code).toBe(0);
  const last = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
  expect(last.code, last.stdout + last.stderr).toBe(0);
  expect(runs(p)).toEqual(['run', 'run']);
}

describe.skipIf(!hasAnsible)('ansible playbook run cut short by its timeout or a stop', () => {
  it('apply: a run killed at its timeout fails; the node is then held, never run again unasked', async () => {
    const p = timeoutApplyProject;
    const first = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(first.code, first.stdout + first.stderr).toBe(1);
    expect(first.stdout).toContain('ansible-playbook timed out after 4000 ms');
    expect(runs(p)).toEqual(['run']);
    await heldUntilRetry(p);
  }, 120_000);

  it('apply: a run stopped by SIGTERM to the apply leaves the node held, never run again unasked', async () => {
    const p = stopApplyProject;
    await signalApplyDuringRun(p, 'SIGTERM');
    expect(runs(p)).toEqual(['run']);
    await heldUntilRetry(p);
  }, 120_000);

  it('daemon: a run killed at its timeout is not run again when its backoff ends: the node is held', async () => {
    const p = timeoutDaemonProject;
    const daemon = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir });
    try {
      const held = await daemon.waitFor((l) => l.msg === 'node held: existence indeterminate' && l.node === 'web', 60_000);
      expect(String(held.reason)).toContain('check mode cannot tell whether its tasks "initialise"');
      expect(daemon.lines.some((l) => l.msg === 'create failed' && JSON.stringify(l.fault).includes('timed out'))).toBe(true);
      expect(runs(p)).toEqual(['run']);
      expect(await webStatus(p)).toMatchObject({ status: 'held', reason: expect.stringMatching(HELD_REASON) });
    } finally {
      daemon.kill('SIGTERM');
      expect((await daemon.exited).code).toBe(0);
    }
    expect(runs(p)).toEqual(['run']);
  }, 120_000);
});
