import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, logLines, slowCreateResource, stateRows, tempProject } from '../support/cli.ts';
import { killDuringCreate, trackDaemons } from '../support/daemon.ts';
import { isAlive } from '../support/backend.ts';

/**
 * The script backend's runs are leased as exec commands are: a daemon killed -9 during a script's
 * create leaves the script running, and the next `apply` waits for it (until its timeout) before it
 * observes the node. Unleased, the node was observed absent while the first create still worked,
 * a second create ran beside it, and the first then overwrote what the second had made.
 */
const daemons = trackDaemons();

function project(): ReturnType<typeof tempProject> & { log: () => string[] } {
  const p = tempProject('ds-script-leftover-');
  // The generated script (a generator command prints it): a slow create, logged.
  const script = slowCreateResource(p.dir, 3, '{}');
  p.write(
    'goals.yaml',
    `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: scripts }
spec:
  type: script
  config:
    root: root
    timeout: 30s
    generator: { type: command, command: [sh, -c, 'cat > /dev/null; cat "$0"', ${JSON.stringify(script)}] }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app, environment: dev }
spec:
  defaults: { backend: scripts }
  nodes:
    - id: big-resource
      type: generic.resource
      spec:
        input: { size: large }
`,
  );
  return { ...p, log: () => logLines(join(p.dir, 'creates.log')) };
}

describe('script create left running by a daemon killed -9', () => {
  it('is waited for by the next apply, then adopted: one create, never two at once', async () => {
    const p = project();
    // Held for review: the script is generated, stored, and waits.
    expect((await cli(['plan', ...p.args], { cwd: p.dir })).stdout).toContain('awaits review');
    const hash = (stateRows(p.state, 'SELECT hash FROM artifacts') as { hash: string }[])[0]!.hash;
    expect((await cli(['scripts', 'approve', hash, ...p.args], { cwd: p.dir })).code).toBe(0);

    const sleep = await killDuringCreate(daemons, [...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir, sleepPidFile: join(p.dir, 'sleep.pid') });
    const create = Number(p.log()[0]?.split(' ')[1]);
    // Killing the daemon killed nothing of the create; its run is recorded for the next holder of the state.
    expect(isAlive(create)).toBe(true);
    expect(isAlive(sleep)).toBe(true);
    expect(readdirSync(join(p.state, 'processes'))).toHaveLength(1);

    const applied = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(applied.code, applied.stderr).toBe(0);
    expect(p.log()).toEqual([`start ${create}`, `done ${create}`]);
    expect(applied.stderr).toContain('waiting for a command left running');
    expect(stateRows(p.state, "SELECT op, outcome FROM operations WHERE node = 'big-resource' ORDER BY id")).toEqual([{ op: 'create', outcome: 'adopted' }]);
    expect(readdirSync(join(p.state, 'processes'))).toEqual([]);
  }, 60_000);
});
