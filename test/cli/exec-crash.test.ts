import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, execGoalHead, shellResource, stateRows, tempProject } from '../support/cli.ts';
import { Daemon, eventually } from '../support/daemon.ts';

/**
 * Issue 5's "done when": an exec resource whose create dies half-way through
 * a daemon crash is adopted on restart, never repeated. The resource's create
 * writes its state, then stalls; the daemon is killed -9 while it stalls.
 * On restart the create, still running, is killed at its timeout (the
 * restarted daemon waits that long for it: see exec-leftover-process.test.ts),
 * then the pending create is resolved by `read` (it exists): adopted.
 */
const p = tempProject('ds-exec-crash-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

// A resource kept in a JSON file; every create is counted in creates.log.
const script = shellResource(
  p.dir,
  `state="$dir/resource.json"
req=$(cat)
case "$1" in
  read)
    if [ -f "$state" ]; then printf '{"exists":true,"state":%s,"outputs":{"id":"r-1"}}\\n' "$(cat "$state")"; else echo '{"exists":false}'; fi ;;
  create)
    echo create >> "$dir/creates.log"
    printf '{"size":"large"}' > "$state"
    # The resource exists now; the call itself takes long (a slow cloud API): the daemon is killed here.
    [ -f "$dir/fast" ] || sleep 30
    echo '{"outputs":{"id":"r-1"}}' ;;
  update)
    printf '{"size":"large"}' > "$state"
    echo '{"outputs":{"id":"r-1"}}' ;;
esac
`,
);
p.write(
  'goals.yaml',
  `${execGoalHead({ config: `{ timeout: 3s }` })}    - id: big-resource
      type: generic.resource
      spec:
        commands:
          read: [${JSON.stringify(script)}, read]
          create: [${JSON.stringify(script)}, create]
          update: [${JSON.stringify(script)}, update]
        input: { size: large }
`,
);

describe('exec resource: a create cut short by kill -9', () => {
  it('is adopted on restart, never created twice', async () => {
    const creates = join(p.dir, 'creates.log');
    const first = new Daemon([...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir });
    try {
      await eventually(() => existsSync(creates) && existsSync(join(p.dir, 'resource.json')), 20_000, 'the create to start');
    } finally {
      first.kill('SIGKILL');
      await first.exited;
    }
    writeFileSync(join(p.dir, 'fast'), '');

    const second = new Daemon([...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir });
    try {
      const port = await second.port();
      await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 20_000, '/readyz 200');
      await second.waitFor((l) => l.msg === 'interrupted operation resolved by observation: adopted' && l.node === 'big-resource', 10_000);
    } finally {
      second.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);
    }

    expect(readFileSync(creates, 'utf8').trim().split('\n')).toEqual(['create']);
    const ops = stateRows(p.state, "SELECT op, outcome FROM operations WHERE node = 'big-resource' ORDER BY id");
    expect(ops).toEqual([{ op: 'create', outcome: 'adopted' }]);
    const status = await cli(['status', '--format', 'json', ...p.args]);
    const nodes = (JSON.parse(status.stdout) as { nodes: { id: string; status: string }[] }).nodes;
    expect(nodes).toEqual([expect.objectContaining({ id: 'big-resource', status: 'ready' })]);
  }, 90_000);
});
