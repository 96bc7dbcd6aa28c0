import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';
import { Daemon, eventually } from '../support/daemon.ts';

/**
 * prune + Delete on an exec resource whose delete command fails: `apply`
 * must say so, and `status` must keep showing the node as failed with the
 * reason until it is resolved, not as ready. A node that says Delete but
 * can never be deleted (no delete command, a playbook) is a goal error.
 */
const p = tempProject('ds-exec-prune-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

/** A resource that is a file `id` in `dir`, and a `delete` command (shell) that is given the file's path. */
const resourceNode = (dir: string, id: string, remove: (file: string) => string): string => `    - id: ${id}
      type: generic.resource
      deletionPolicy: Delete
      spec:
        commands:
          read: [/bin/sh, -c, 'cat > /dev/null; if [ -e ${dir}/${id} ]; then echo "{\\"exists\\":true,\\"state\\":{}}"; else echo "{\\"exists\\":false}"; fi']
          create: [/bin/sh, -c, 'cat > /dev/null; touch ${dir}/${id}; echo "{\\"outputs\\":{}}"']
          delete: [/bin/sh, -c, 'cat > /dev/null; ${remove(`${dir}/${id}`)}']
`;
const node = (id: string): string => resourceNode(p.dir, id, () => 'echo "bucket is not empty" >&2; exit 1');
const goal = (ids: readonly string[]): string => `${execGoalHead({ prune: true })}${ids.map(node).join('')}`;

describe('exec resource removed under prune + Delete whose delete fails', () => {
  it('apply reports the failed delete and status shows the node failed with the reason', async () => {
    const env = { DESIREDSTATE_LOG_LEVEL: 'silent' };
    p.write('goals.yaml', goal(['keep', 'gone']));
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    p.write('goals.yaml', goal(['keep']));
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain('x gone: permanent: bucket is not empty');
    const status = await cli(['status', '--format', 'json', ...p.args], { env });
    const nodes = (JSON.parse(status.stdout) as { nodes: { id: string; status: string; reason: string | null }[] }).nodes;
    expect(nodes.find((n) => n.id === 'gone')).toMatchObject({ status: 'failed', reason: 'bucket is not empty' });
    expect(nodes.find((n) => n.id === 'keep')).toMatchObject({ status: 'ready' });
  });
});

describe('deletionPolicy: Delete on a node its backend can never delete', () => {
  const q = tempProject('ds-not-deletable-');
  afterAll(() => rmSync(q.dir, { recursive: true, force: true }));

  it('is a validate error at the node, for an exec resource without a delete command and for a playbook, and apply changes nothing', async () => {
    q.write(
      'goals.yaml',
      `${execGoalHead({ prune: true })}    - id: bucket
      type: generic.resource
      deletionPolicy: Delete
      spec:
        commands: { read: [./bucket, read], create: [./bucket, create] }
---
apiVersion: desiredstate/v1
kind: Backend
metadata: { name: ansible }
spec: { type: ansible }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: hosts }
spec:
  defaults: { backend: ansible, deletionPolicy: Delete }
  nodes:
    - id: web
      type: ansible.playbook
      spec: { playbook: site.yml }
`,
    );
    const validate = await cli(['validate', ...q.args]);
    expect(validate.code).toBe(1);
    expect(validate.stdout + validate.stderr).toContain('goals.yaml:15:23: error not-deletable: deletionPolicy: Delete, but it has no commands.delete (add one)');
    expect(validate.stdout + validate.stderr).toContain('goals.yaml:30:7: error not-deletable: deletionPolicy: Delete, but a playbook run cannot be undone');
    expect((await cli(['apply', '--yes', ...q.args])).code).toBe(1);
    expect(existsSync(join(q.state, 'state.db'))).toBe(false);
  });
});

describe('a removed node whose delete the daemon gave up on', () => {
  const r = tempProject('ds-exec-retry-delete-');
  afterAll(() => rmSync(r.dir, { recursive: true, force: true }));
  const blocked = join(r.dir, 'not-empty');
  const node = (id: string): string => resourceNode(r.dir, id, (file) => `if [ -e ${blocked} ]; then echo "bucket is not empty" >&2; exit 1; fi; rm ${file}`);

  it('is deleted at once by retry NODE once its cause is fixed, not only at the next restart', async () => {
    const env = { DESIREDSTATE_LOG_LEVEL: 'silent' };
    r.write('goals.yaml', `${execGoalHead({ prune: true })}${node('keep')}${node('gone')}`);
    // From the daemon's working directory, the exec backend's cwd: from another, gone's delete would be refused for that.
    expect((await cli(['apply', '--yes', ...r.args], { env, cwd: r.dir })).code).toBe(0);
    writeFileSync(blocked, '');
    r.write('goals.yaml', `${execGoalHead({ prune: true })}${node('keep')}`);
    const daemon = new Daemon([...r.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: r.dir });
    try {
      await daemon.port();
      // A permanent fault: held after its retry budget.
      await daemon.waitFor((l) => l.msg === 'delete failed' && l.node === 'gone' && typeof l.reason === 'string');
      // Shown held, as any node the fault policy gave up on, with the cause first.
      await eventually(
        async () => {
          const status = JSON.parse((await cli(['status', '--format', 'json', ...r.args], { cwd: r.dir })).stdout) as { nodes: { id: string; status: string; reason: string | null; retryAt: number | null }[] };
          const gone = status.nodes.find((n) => n.id === 'gone');
          return gone?.status === 'held' && gone.retryAt === null && gone.reason?.startsWith('bucket is not empty') === true;
        },
        5000,
        'gone held',
      );
      rmSync(blocked);
      const retry = await cli(['retry', 'gone', ...r.args], { cwd: r.dir });
      expect(retry.code, retry.stdout + retry.stderr).toBe(0);
      await daemon.waitFor((l) => l.msg === 'node deleted' && l.node === 'gone');
      expect(existsSync(join(r.dir, 'gone'))).toBe(false);
    } finally {
      daemon.kill('SIGTERM');
      expect((await daemon.exited).code).toBe(0);
    }
    await eventually(async () => !(await cli(['status', '--format', 'json', ...r.args], { cwd: r.dir })).stdout.includes('"gone"'), 5000, 'gone forgotten');
  }, 60_000);
});
