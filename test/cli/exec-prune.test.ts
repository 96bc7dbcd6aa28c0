import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';

/**
 * prune + Delete on an exec resource that has no delete command: the delete
 * cannot run. `apply` must say so, and `status` must keep showing the node
 * as failed with the reason until it is resolved, not as ready.
 */
const p = tempProject('ds-exec-prune-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

const node = (id: string): string => `    - id: ${id}
      type: generic.resource
      deletionPolicy: Delete
      spec:
        commands:
          read: [/bin/sh, -c, 'cat > /dev/null; if [ -e ${p.dir}/${id} ]; then echo "{\\"exists\\":true,\\"state\\":{}}"; else echo "{\\"exists\\":false}"; fi']
          create: [/bin/sh, -c, 'cat > /dev/null; touch ${p.dir}/${id}; echo "{\\"outputs\\":{}}"']
`;
const goal = (ids: readonly string[]): string => `${execGoalHead({ prune: true })}${ids.map(node).join('')}`;

describe('exec resource removed under prune + Delete without a delete command', () => {
  it('apply reports the failed delete and status shows the node failed with the reason', async () => {
    const env = { DESIREDSTATE_LOG_LEVEL: 'silent' };
    p.write('goals.yaml', goal(['keep', 'gone']));
    expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    p.write('goals.yaml', goal(['keep']));
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain('x gone: permanent: no delete command');
    const status = await cli(['status', '--format', 'json', ...p.args], { env });
    const nodes = (JSON.parse(status.stdout) as { nodes: { id: string; status: string; reason: string | null }[] }).nodes;
    expect(nodes.find((n) => n.id === 'gone')).toMatchObject({ status: 'failed', reason: 'no delete command' });
    expect(nodes.find((n) => n.id === 'keep')).toMatchObject({ status: 'ready' });
  });
});
