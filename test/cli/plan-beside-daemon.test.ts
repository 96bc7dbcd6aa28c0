import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, shellResource, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// A `plan` while a daemon creates a resource: the daemon's pending create is running, not cut short
// by a crash, so plan's read is not told it was interrupted (an exec read may then answer "unknown",
// and the node would show held for a moment).
const daemons = trackDaemons();
const p = tempProject('ds-plan-beside-');
const script = shellResource(
  p.dir,
  `req=$(cat)
case "$1" in
  read)
    printf '%s\\n' "$req" >> "$dir/reads.log"
    echo '{"exists":false}' ;;
  create)
    touch "$dir/creating"
    while [ ! -f "$dir/go" ]; do sleep 0.05; done
    echo '{"outputs":{}}' ;;
esac
`,
);
p.write(
  'goals.yaml',
  `${execGoalHead({ config: `{ timeout: 60s }` })}    - id: slow
      type: generic.resource
      spec:
        commands: { read: [${JSON.stringify(script)}, read], create: [${JSON.stringify(script)}, create] }
        input: {}
`,
);

describe('plan beside a running daemon', () => {
  it("does not take the daemon's create in flight for an interrupted one", async () => {
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await eventually(() => existsSync(join(p.dir, 'creating')), 20_000, 'the create to start');
    const plan = await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(plan.code, plan.stderr).toBe(2);
    expect((JSON.parse(plan.stdout) as { entries: { id: string; planned: { action: string } }[] }).entries).toEqual([expect.objectContaining({ id: 'slow', planned: { action: 'create' } })]);
    const reads = readFileSync(join(p.dir, 'reads.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { interrupted?: boolean });
    expect(reads.at(-1)?.interrupted).toBeUndefined();
    writeFileSync(join(p.dir, 'go'), '');
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'slow');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});
