import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, memoryGoalHead, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// A daemon killed outright (SIGKILL, the OOM killer) cannot clear the API address it recorded, nor
// remove its lock. The next process to take the lock (here a slow apply) is not that daemon: `status`
// named it as the daemon, serving its API at the dead daemon's address.
const p = tempProject('ds-daemon-killed-');
// Every memory call takes a while: the apply below holds the lock long enough to be seen holding it.
p.write('app.yaml', `${memoryGoalHead('    latencyMs: 1500\n')}    - { id: dir, type: local.directory, spec: { path: dir } }
`);
const daemons = trackDaemons(p.dir);

async function daemonStatus(): Promise<unknown> {
  const r = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
  return (JSON.parse(r.stdout) as { daemon: unknown }).daemon;
}

/** `history`'s CHANGES column, by run id. */
async function changes(): Promise<Record<string, string>> {
  const r = await cli(['history', ...p.args], { cwd: p.dir });
  return Object.fromEntries(r.stdout.trim().split('\n').slice(1).map((l) => {
    const cols = l.split(/ {2,}/);
    return [cols[0]!, cols[4] ?? ''];
  }));
}

const lockPid = (): number => Number(readFileSync(join(p.state, 'state.db.lock'), 'utf8').split('\n')[0]);

describe('a daemon killed with SIGKILL', () => {
  it('is not running for status, also while an apply holds the lock it left, and its run is interrupted for history; apply and run start again without cleanup', async () => {
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...p.args], { cwd: p.dir });
    const port = await d.port();
    expect(await daemonStatus()).toEqual({ running: true, pid: d.child.pid, listen: `127.0.0.1:${port}` });
    await eventually(async () => (await changes())['1'] === '+1 ~0 -0 !0 x0 ⊘0 so far', 15_000, 'the daemon\'s run with its first change');
    d.kill('SIGKILL');
    await d.exited;
    expect(await daemonStatus()).toEqual({ running: false });
    // Its run never finishes; it is not going on either.
    expect(await changes()).toEqual({ 1: '+1 ~0 -0 !0 x0 ⊘0 (interrupted)' });

    const apply = spawn(process.execPath, [bin, 'apply', '--yes', ...p.args], { cwd: p.dir, env: cleanEnv(), stdio: 'ignore' });
    const applied = new Promise<number | null>((resolve) => apply.on('exit', (code) => resolve(code)));
    try {
      await eventually(() => {
        try {
          return lockPid() === apply.pid;
        } catch {
          return false;
        }
      }, 15_000, 'the apply holding the lock');
      // The apply is not a daemon, and nothing answers at the address the killed one left.
      expect(await daemonStatus()).toEqual({ running: false });
      const text = await cli(['status', ...p.args], { cwd: p.dir });
      expect(text.stdout.split('\n')[0]).toBe('daemon: not running');
      expect((await changes())['1']).toBe('+1 ~0 -0 !0 x0 ⊘0 (interrupted)');
    } finally {
      expect(await applied).toBe(0);
    }

    const again = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...p.args], { cwd: p.dir });
    const againPort = await again.port();
    expect(await daemonStatus()).toEqual({ running: true, pid: again.child.pid, listen: `127.0.0.1:${againPort}` });
    await eventually(async () => (await changes())['3'] !== undefined, 15_000, 'the second daemon\'s run');
    expect(await changes()).toEqual({ 3: expect.stringMatching(/^(running, nothing done yet|\+.* so far)$/), 2: expect.stringMatching(/^\+\d+ ~\d+ -\d+ !\d+ x\d+ ⊘\d+$/), 1: '+1 ~0 -0 !0 x0 ⊘0 (interrupted)' });
    again.kill('SIGTERM');
    expect(await again.exited).toEqual({ code: 0, signal: null });
    expect(await daemonStatus()).toEqual({ running: false });
  });
});
