import { spawn } from 'node:child_process';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv, cli, execGoalHead, launcher, logLines, slowCreateResource, stateRows, tempProject } from '../support/cli.ts';
import { eventually, exitedWithin, killDuringCreate, trackDaemons } from '../support/daemon.ts';
import type { Daemon } from '../support/daemon.ts';
import { isAlive } from '../support/backend.ts';

/**
 * A daemon killed -9 during an exec create leaves the create's process group
 * running. Its successor must not observe the resource absent while that
 * create still runs and start a second one beside it: it waits for the group
 * (until the create's timeout), or kills it at that timeout, and only then
 * resolves the pending create by observing.
 */
const daemons = trackDaemons();

/** A project with one exec resource whose create takes `slow` seconds (unless `<dir>/fast` exists), its commands given `timeout`. */
function project(prefix: string, slow: number, timeout: string): ReturnType<typeof tempProject> & { log: () => string[] } {
  const p = tempProject(prefix);
  const script = slowCreateResource(p.dir, slow, '{"id":"r-1"}');
  p.write(
    'goals.yaml',
    `${execGoalHead({ config: `{ timeout: ${timeout} }` })}    - id: big-resource
      type: generic.resource
      spec:
        commands:
          read: [${JSON.stringify(script)}, read]
          create: [${JSON.stringify(script)}, create]
        input: { size: large }
`,
  );
  const log = (): string[] => logLines(join(p.dir, 'creates.log'));
  return { ...p, log };
}

/** Starts a daemon, waits for its create to be under way (sleeping), kills the daemon -9; the create's pid and its sleep's. */
async function crashDuringCreate(p: ReturnType<typeof project>): Promise<{ create: number; sleep: number }> {
  const sleep = await killDuringCreate(daemons, [...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir, sleepPidFile: join(p.dir, 'sleep.pid') });
  const create = Number(p.log()[0]?.split(' ')[1]);
  // Killing the daemon killed nothing of the create.
  expect(isAlive(create)).toBe(true);
  expect(isAlive(sleep)).toBe(true);
  return { create, sleep };
}

function operations(p: ReturnType<typeof project>): unknown[] {
  return stateRows(p.state, "SELECT op, outcome FROM operations WHERE node = 'big-resource' ORDER BY id");
}

async function stop(d: Daemon): Promise<void> {
  d.kill('SIGTERM');
  expect((await d.exited).code).toBe(0);
}

describe('exec create left running by a daemon killed -9', () => {
  it('is waited for by the restarted daemon, then adopted: one create, never two at once', async () => {
    const p = project('ds-leftover-wait-', 3, '30s');
    const { create, sleep } = await crashDuringCreate(p);

    const second = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir });
    // Adopted once the create left behind has finished; created, had a second create started beside it.
    const resolved = await second.waitFor((l) => (l.msg === 'interrupted operation resolved by observation: adopted' || l.msg === 'node created') && l.node === 'big-resource', 20_000);
    await stop(second);

    expect(p.log()).toEqual([`start ${create}`, `done ${create}`]);
    expect(resolved.msg).toBe('interrupted operation resolved by observation: adopted');
    const waiting = second.lines.find((l) => l.msg.startsWith('waiting for a command left running'));
    expect(waiting).toMatchObject({ pgid: create, node: 'big-resource', operation: 'create', program: 'resource' });
    expect(second.lines.some((l) => l.msg === 'a command left running by a stopped desiredstate has ended')).toBe(true);
    expect(isAlive(sleep)).toBe(false);
    expect(operations(p)).toEqual([{ op: 'create', outcome: 'adopted' }]);
    expect(readdirSync(join(p.state, 'processes'))).toEqual([]);
  }, 60_000);

  it('is killed, its whole group, at its timeout; only then is the resource observed absent and created once', async () => {
    const p = project('ds-leftover-kill-', 60, '2s');
    const { create, sleep } = await crashDuringCreate(p);
    writeFileSync(join(p.dir, 'fast'), '');

    const second = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir });
    await second.waitFor((l) => l.msg === 'node created' && l.node === 'big-resource', 20_000);
    // The old group was gone before anything was observed: the second create never overlapped the first.
    expect(isAlive(create)).toBe(false);
    expect(isAlive(sleep)).toBe(false);
    const killed = second.lines.findIndex((l) => l.msg.startsWith('killed a command left running'));
    expect(second.lines[killed]).toMatchObject({ pgid: create, node: 'big-resource', operation: 'create', program: 'resource', signal: 'SIGTERM' });
    expect(second.lines.findIndex((l) => l.msg === 'node created')).toBeGreaterThan(killed);
    await stop(second);

    const log = p.log();
    expect(log).toHaveLength(3);
    expect(log.filter((l) => l.startsWith('done'))).toHaveLength(1);
    expect(operations(p)).toEqual([
      { op: 'create', outcome: 'abandoned' },
      { op: 'create', outcome: 'done' },
    ]);
  }, 60_000);

  it('is waited for by a one-shot apply after the crash too', async () => {
    const p = project('ds-leftover-apply-', 3, '30s');
    const { create } = await crashDuringCreate(p);

    const applied = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(p.log()).toEqual([`start ${create}`, `done ${create}`]);
    expect(applied.code).toBe(0);
    expect(applied.stderr).toContain('waiting for a command left running');
    expect(operations(p)).toEqual([{ op: 'create', outcome: 'adopted' }]);
  }, 60_000);

  // An apply holds the lock through that wait, which may last a command's timeout: a lock removed meanwhile
  // let a daemon in, and the apply then went on beside it.
  it('an apply that waited for it, its lock removed meanwhile, applies nothing and says why', async () => {
    const p = project('ds-leftover-lost-', 120, '120s');
    const { create, sleep } = await crashDuringCreate(p);

    const apply = spawn(launcher, ['apply', '--yes', ...p.args], { cwd: p.dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    apply.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => apply.on('exit', (code) => resolve(code)));
    await eventually(() => stderr.includes('waiting for a command left running'), 20_000, 'apply to wait for the create');
    const lock = join(p.state, 'state.db.lock');
    rmSync(lock);
    // The create ends (its sleep killed): the wait is over, with the lock gone.
    process.kill(sleep, 'SIGKILL');
    expect(await exitedWithin(exited.then((code) => ({ code, signal: null })), 30_000)).toEqual({ code: 1, signal: null });
    expect(stderr).toContain(`lock file ${lock} was removed while apply waited for commands left running: another desiredstate may hold the state now; nothing was applied`);
    // Nothing observed nor recorded: the create left by the crash is still pending, for whoever holds the state.
    expect(p.log()).toEqual([`start ${create}`, `done ${create}`]);
    expect(operations(p)).toEqual([{ op: 'create', outcome: null }]);
  }, 60_000);
});
