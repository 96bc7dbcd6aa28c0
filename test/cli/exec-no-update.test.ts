import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';
import { trackDaemons } from '../support/daemon.ts';

// An exec resource without commands.update: "without it drift is only reported" (desiredstate schema).
// Yet plan said "will be corrected", the drift report said corrected, the update failed with
// no-update-command, and the node was held and no longer observed. Its drift is now only reported,
// and said so; a resource deleted out of band is still made again (a create).
const daemons = trackDaemons();
const p = tempProject('ds-exec-no-update-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
const state = join(p.dir, 'bucket.json');
const goalIn = (dir: string): string => `${execGoalHead()}    - id: bucket
      type: generic.resource
      spec:
        commands:
          read: [/bin/sh, -c, 'cat > /dev/null; if [ -e ${dir}/bucket.json ]; then printf "{\\"exists\\":true,\\"state\\":%s}" "$(cat ${dir}/bucket.json)"; else echo "{\\"exists\\":false}"; fi']
          create: [/bin/sh, -c, 'cat > /dev/null; echo "{\\"retention\\":30}" > ${dir}/bucket.json; echo "{\\"outputs\\":{}}"']
        input: { retention: 30 }
`;
const goal = goalIn(p.dir);

describe('an exec resource without an update command', () => {
  it('reports its drift without correcting it, and re-creates it when it is deleted', async () => {
    p.write('goals.yaml', goal);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    writeFileSync(state, '{"retention":7}');

    const plan = await cli(['plan', ...p.args]);
    expect(plan.stdout).toContain('! bucket (generic.resource via exec) drifted, report only (no update command)');
    expect(plan.code).toBe(0);
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stderr).toMatch(/"action":"reported".*"msg":"drift detected"/);
    expect(apply.stderr).not.toContain('no-update-command');
    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args])).stdout) as { nodes: { id: string; status: string; reason: string | null }[] };
    expect(status.nodes.find((n) => n.id === 'bucket')).toMatchObject({ status: 'drifted', reason: 'drift reported (no update command)' });
    const drift = JSON.parse((await cli(['drift', '--format', 'json', ...p.args])).stdout) as { reports: { action: string }[] };
    expect(drift.reports.map((r) => r.action)).toEqual(['reported']);

    // Deleted out of band: made again under selfHeal, as any resource.
    rmSync(state);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    expect(existsSync(state)).toBe(true);
  });

  it('in the daemon: reported, the node drifted, not held, and re-created when deleted', async () => {
    const q = tempProject('ds-exec-no-update-run-');
    daemons.removeAfter(q.dir);
    q.write('goals.yaml', goalIn(q.dir));
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1s', ...q.args], { cwd: q.dir });
    await d.waitFor((l) => l.msg === 'node created', 20_000);
    writeFileSync(join(q.dir, 'bucket.json'), '{"retention":7}');
    expect(await d.waitFor((l) => l.msg === 'drift detected', 20_000)).toMatchObject({ action: 'reported', node: 'bucket' });
    const base = `http://127.0.0.1:${await d.port()}`;
    const nodes = ((await (await fetch(`${base}/status`)).json()) as { nodes: { id: string; status: string; reason: string | null }[] }).nodes;
    expect(nodes.find((n) => n.id === 'bucket')).toMatchObject({ status: 'drifted', reason: 'drift reported (no update command)' });
    rmSync(join(q.dir, 'bucket.json'));
    await d.waitFor((l) => l.msg === 'node created', 20_000, d.lines.findIndex((l) => l.msg === 'drift detected') + 1);
    expect(existsSync(join(q.dir, 'bucket.json'))).toBe(true);
    expect(d.lines.filter((l) => JSON.stringify(l).includes('no-update-command'))).toEqual([]);
    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
  });
});
