import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, execGoalHead, logLines, slowCreateResource, stateRows, tempProject } from '../support/cli.ts';
import { eventually } from '../support/daemon.ts';

/**
 * An apply interrupted (Ctrl-C, SIGTERM) while a command runs: it exited 1 as for any failure, the
 * command's abort counted as a failed attempt of the node (its retry budget spent by an operator's
 * Ctrl-C), and `history` showed the run finished. It exits 130 (143 for SIGTERM), spends no attempt,
 * leaves the operation pending as the daemon's shutdown does, and the run is shown interrupted; the
 * next apply resolves the create by observing, as after a crash.
 */
describe.each([
  { signal: 'SIGINT', code: 130 },
  { signal: 'SIGTERM', code: 143 },
] as const)('apply interrupted by $signal during a create', ({ signal, code }) => {
  it(`exits ${code}, spends no attempt, and the run is interrupted; the next apply resolves the create`, async () => {
    const p = tempProject(`ds-apply-${signal}-`);
    const script = slowCreateResource(p.dir, 60, '{"id":"r-1"}');
    p.write('goals.yaml', `${execGoalHead()}    - id: big
      type: generic.resource
      spec:
        commands: { read: [${JSON.stringify(script)}, read], create: [${JSON.stringify(script)}, create] }
        input: { size: large }
`);
    const child = spawn(process.execPath, [bin, 'apply', '--yes', ...p.args], { cwd: p.dir, env: cleanEnv() });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    await eventually(() => logLines(join(p.dir, 'creates.log')).length > 0, 20_000, 'the create under way');
    child.kill(signal);
    expect(await exited).toBe(code);
    expect(stdout).toContain(`  interrupted (${signal}): the operations cut off are left pending, resolved by observing at the next apply or daemon start\n`);

    // No attempt spent: the node is not recorded failed.
    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { nodes: { id: string; attempts: number }[] };
    expect(status.nodes.find((n) => n.id === 'big')?.attempts ?? 0).toBe(0);
    expect((await cli(['history', ...p.args], { cwd: p.dir })).stdout).toMatch(/^1 .* apply .*\(interrupted\)$/m);
    expect(stateRows(p.state, 'SELECT op, outcome FROM operations')).toEqual([{ op: 'create', outcome: null }]);

    writeFileSync(join(p.dir, 'fast'), '');
    const again = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(stateRows(p.state, 'SELECT op, outcome FROM operations ORDER BY id')).toEqual([
      { op: 'create', outcome: 'abandoned' },
      { op: 'create', outcome: 'done' },
    ]);
  });
});
