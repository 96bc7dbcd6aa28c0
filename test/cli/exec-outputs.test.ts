import { readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';

/**
 * The request's `outputs` are "the outputs recorded at the last
 * create/update" (GOAL-FORMAT.md). A read may identify its resource by them
 * (a server-assigned id) and print no outputs of its own: the id must still
 * be there at the next read, or the resource looks gone and is made twice.
 */
const p = tempProject('ds-exec-outputs-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

const script = join(p.dir, 'vm');
writeFileSync(
  script,
  `#!/bin/sh
req=$(cat)
case "$1" in
  read) if printf '%s' "$req" | grep -q '"rid":"vm-1"'; then echo '{"exists":true,"state":{}}'; else echo '{"exists":false}'; fi ;;
  create) echo create >> ${p.dir}/creates.log; echo '{"outputs":{"rid":"vm-1"}}' ;;
esac
`,
);
chmodSync(script, 0o755);
p.write(
  'goals.yaml',
  `${execGoalHead()}    - id: vm
      type: generic.resource
      spec: { commands: { read: [${script}, read], create: [${script}, create] } }
`,
);

describe('a read that prints no outputs', () => {
  it('keeps the outputs create recorded: three applies create once', async () => {
    const env = { DESIREDSTATE_LOG_LEVEL: 'silent' };
    for (let i = 0; i < 3; i++) expect((await cli(['apply', '--yes', ...p.args], { env })).code).toBe(0);
    expect(readFileSync(join(p.dir, 'creates.log'), 'utf8').trim().split('\n')).toEqual(['create']);
    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { env })).stdout) as { nodes: { id: string; outputs: unknown }[] };
    expect(status.nodes[0]).toMatchObject({ id: 'vm', outputs: { rid: 'vm-1' } });
  });
});
