import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { hasAnsible, oneLocalPlaybook } from '../backends/ansible/harness.ts';
import { warnSkipped } from '../support/skip.ts';

if (!hasAnsible) {
  warnSkipped([
    'SKIPPING the ansible-playbook-left-running test: ansible-playbook is not',
    'on PATH. Install it to run it:  apt-get install -y ansible-core ansible',
  ]);
}

/**
 * A daemon killed -9 during a playbook run leaves ansible-playbook (and the
 * task it forked) running. Its successor must not start a second run against
 * the same hosts beside it: it waits for the run (until its timeout), and
 * only then checks the playbook, which the finished run has converged.
 */
const daemons = trackDaemons();

describe.skipIf(!hasAnsible)('ansible-playbook left running by a daemon killed -9', () => {
  it('is waited for by the restarted daemon: one run, never two at once', async () => {
    const p = tempProject('ds-leftover-ansible-');
    // A slow task: every run of it is logged with its start and end; the marker says it has run.
    writeFileSync(
      join(p.dir, 'site.yml'),
      `- hosts: all
  gather_facts: false
  tasks:
    - name: slow setup
      ansible.builtin.shell: "echo start >> runs.log; sleep 3; echo done >> runs.log; touch marker"
      args: { chdir: "{{ dir }}", creates: "{{ dir }}/marker" }
`,
    );
    p.write('goals.yaml', oneLocalPlaybook(p.dir));
    const runs = (): string[] => (existsSync(join(p.dir, 'runs.log')) ? readFileSync(join(p.dir, 'runs.log'), 'utf8').trim().split('\n') : []);
    const args = [...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'];

    const first = daemons.start(args, { cwd: p.dir });
    try {
      await eventually(() => runs().includes('start'), 30_000, 'the playbook run to start');
    } finally {
      first.kill('SIGKILL');
      await first.exited;
    }

    const second = daemons.start(args, { cwd: p.dir });
    // Adopted once the run left behind has finished; created, had a second run started beside it.
    const resolved = await second.waitFor((l) => (l.msg === 'interrupted operation resolved by observation: adopted' || l.msg === 'node created') && l.node === 'web', 40_000);
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);

    expect(runs()).toEqual(['start', 'done']);
    expect(resolved.msg).toBe('interrupted operation resolved by observation: adopted');
    const waiting = second.lines.find((l) => l.msg.startsWith('waiting for a command left running'));
    expect(waiting).toMatchObject({ node: 'web', operation: 'apply', program: 'ansible-playbook' });
    expect(second.lines.some((l) => l.msg === 'a command left running by a stopped desiredstate has ended')).toBe(true);
    expect(readdirSync(join(p.state, 'processes'))).toEqual([]);
  }, 90_000);
});
