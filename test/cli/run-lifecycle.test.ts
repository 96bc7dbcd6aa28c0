import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import type { AddressInfo, Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { holdsWithin, isAlive } from '../support/backend.ts';
import { cleanEnv, cli, oneFileGoal, repoRoot, tempProject } from '../support/cli.ts';
import { eventually, exitedWithin, trackDaemons } from '../support/daemon.ts';
import type { Daemon, Exit } from '../support/daemon.ts';
import { warnSkipped } from '../support/skip.ts';

// `desiredstate run` starts and stops as CLI.md says: exit 0 on SIGTERM/SIGINT whenever they come,
// and a bad --listen is a bad invocation (exit 64) that changes nothing.
const daemons = trackDaemons();

function project(): ReturnType<typeof tempProject> {
  const p = tempProject('ds-run-life-');
  p.write('app.yaml', oneFileGoal(p.root, 'hello\n'));
  daemons.removeAfter(p.dir);
  return p;
}

function daemon(p: ReturnType<typeof tempProject>, args: readonly string[]): Daemon {
  return daemons.start([...args, ...p.args], { cwd: p.dir });
}

describe('desiredstate run: signals', () => {
  it.each([
    { name: 'SIGTERM twice, 5 ms apart (timeout, systemd)', signal: 'SIGTERM' as const },
    { name: 'SIGINT twice, 5 ms apart (Ctrl-C under npm start: npm and node both get it)', signal: 'SIGINT' as const },
  ])('exits 0 on $name', async ({ signal }) => {
    const p = project();
    const d = daemon(p, ['--listen', '127.0.0.1:0']);
    await d.port();
    d.kill(signal);
    await new Promise((r) => setTimeout(r, 5));
    d.kill(signal);
    expect(await d.exitedWithin(15_000)).toEqual({ code: 0, signal: null });
  });

  it.skipIf(process.platform === 'win32')('exits 0 on a SIGTERM that comes while it starts, before it listens, and touches nothing', async () => {
    const p = project();
    // The fault policy file is a FIFO: the daemon's start-up waits in reading it until we write it,
    // and our open for writing returns once the daemon has opened it: a SIGTERM sent then is
    // certain to come during start-up. It stops at once, the file never written: the read waited in
    // the thread pool, where no signal ended it (with no writer, so did the open: forever).
    const fifo = join(p.dir, 'faults.yaml');
    execFileSync('mkfifo', [fifo]);
    const d = daemon(p, ['--listen', '127.0.0.1:0', '--fault-policy', fifo]);
    const writer = await open(fifo, 'w');
    d.kill('SIGTERM');
    expect(await d.exitedWithin(15_000)).toEqual({ code: 0, signal: null });
    await writer.close();
    expect(d.lines.map((l) => l.msg)).not.toContain('listening');
    expect(existsSync(p.state)).toBe(false);
    expect(existsSync(p.root)).toBe(false);
  });

  it('runs and exits 0 on SIGTERM with the options before `run` (desiredstate --goals G --state S run)', async () => {
    const p = project();
    const d = daemons.start(['--listen', '127.0.0.1:0'], { cwd: p.dir, before: [...p.args, '--log-level', 'info'] });
    await d.port();
    await eventually(() => existsSync(join(p.root, 'app.conf')) && readFileSync(join(p.root, 'app.conf'), 'utf8') === 'hello\n', 15_000, 'app.conf written');
    d.kill('SIGTERM');
    expect(await d.exitedWithin(15_000)).toEqual({ code: 0, signal: null });
  });
});

// A daemon whose lock or state was removed under it went on reconciling against an unlinked file, its
// history lost, while a second daemon or an apply was let in beside it; and exited 0 at last.
describe('desiredstate run: its state taken away while it runs', () => {
  /** Waits for the fatal line naming `file`, saying `what` became of it, and the exit 1 after it. */
  async function stopsOnLoss(d: Daemon, file: string, what: string): Promise<void> {
    const line = await d.waitFor((l) => l.level === 60, 20_000);
    expect(line).toMatchObject({ file, msg: expect.stringMatching(/another desiredstate may hold the state now; stopping \(exit 1\)$/) as string });
    expect(line.msg).toContain(`lock file ${file} was ${what} while the daemon ran`);
    expect(await d.exitedWithin(20_000)).toEqual({ code: 1, signal: null });
    expect(d.lines.map((l) => l.msg)).not.toContain('shutting down');
  }

  it('stops with exit 1 when its lock file is removed, leaving the state to the daemon that took it', async () => {
    const p = project();
    const first = daemon(p, ['--listen', '127.0.0.1:0']);
    await first.port();
    const lock = join(p.state, 'state.db.lock');
    rmSync(lock);
    const second = daemon(p, ['--listen', '127.0.0.1:0']);
    await second.port();
    await stopsOnLoss(first, lock, `replaced (now held by process ${second.child.pid} on ${hostname()})`);
    // The second's record in the shared state is left as it is: `status` finds it running.
    expect((await cli(['status', ...p.args])).stdout).toContain(`daemon: running (pid ${second.child.pid}`);
    second.kill('SIGTERM');
    expect(await second.exitedWithin(15_000)).toEqual({ code: 0, signal: null });
  });

  it('stops with exit 1 when its state directory is removed', async () => {
    const p = project();
    const d = daemon(p, ['--listen', '127.0.0.1:0']);
    await d.port();
    rmSync(p.state, { recursive: true });
    await stopsOnLoss(d, join(p.state, 'state.db.lock'), 'removed');
  });
});

const hasNpm = spawnSync('npm', ['--version'], { stdio: 'ignore' }).status === 0;
if (!hasNpm) warnSkipped(['SKIPPING the `npm start` test (the daemon under npm, as the README runs it):', 'npm is not on PATH.']);

describe('npm start: the daemon under npm, as the README runs it', () => {
  it.skipIf(!hasNpm || process.platform === 'win32')('a SIGTERM to npm alone (a service manager, kill PID) stops the daemon and npm exits 0, leaving no process behind', async () => {
    const p = project();
    // npm runs the script through sh: without exec the shell died of the SIGTERM npm forwards, npm
    // exited 143, and the daemon went on running as an orphan, holding the state's lock.
    const child = spawn('npm', ['start', '--', '--listen', '127.0.0.1:0', ...p.args], { cwd: repoRoot, env: cleanEnv({ DESIREDSTATE_LOG_FORMAT: 'json' }), stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<Exit>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    let stderr = '';
    const listening = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "listening" line in 30 s: ${stderr}`)), 30_000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString('utf8');
        const line = stderr.split('\n').find((l) => l.includes('"msg":"listening"'));
        if (line === undefined) return;
        clearTimeout(timer);
        resolve((JSON.parse(line) as { pid: number }).pid);
      });
    });
    const pid = await listening;
    try {
      child.kill('SIGTERM');
      expect(await exitedWithin(exited, 15_000)).toEqual({ code: 0, signal: null });
      await holdsWithin(() => !isAlive(pid), 5_000);
      expect(isAlive(pid)).toBe(false);
    } finally {
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});

describe('desiredstate run --listen', () => {
  let taken: Server | undefined;
  afterAll(() => taken?.close());

  it('exits 64 with a one-line reason, at once and changing nothing, when the address is in use', async () => {
    taken = createServer();
    const port = await new Promise<number>((resolve) => taken!.listen(0, '127.0.0.1', () => resolve((taken!.address() as AddressInfo).port)));
    const p = project();
    const d = daemon(p, ['--listen', `127.0.0.1:${port}`]);
    expect(await d.exitedWithin(10_000)).toEqual({ code: 64, signal: null });
    expect(d.stderr.trim()).toBe(`desiredstate run: cannot listen on 127.0.0.1:${port}: the address is already in use (another desiredstate running?)`);
    // Nothing provisioned, no state opened.
    expect(existsSync(join(p.root, 'app.conf'))).toBe(false);
    expect(existsSync(p.state)).toBe(false);
  });

  it('exits 64 with a one-line reason for a host that does not resolve', async () => {
    const p = project();
    const d = daemon(p, ['--listen', 'no-such-host.invalid:7474']);
    expect(await d.exitedWithin(15_000)).toEqual({ code: 64, signal: null });
    expect(d.stderr.trim()).toMatch(/^desiredstate run: cannot listen on no-such-host\.invalid:7474: (unknown host|the host name cannot be resolved)$/);
    expect(existsSync(p.state)).toBe(false);
  });

  it.each(['[fe80::1]:0', '[ff02::1]:0', '[fe80::1%nosuch]:0'])('exits 64 with a one-line reason, not an internal error, for %s', async (address) => {
    const p = project();
    const d = daemon(p, ['--listen', address]);
    expect(await d.exitedWithin(10_000)).toEqual({ code: 64, signal: null });
    // Without IPv6 at all the reason is that one.
    expect(d.stderr.trim()).toMatch(new RegExp(`^desiredstate run: cannot listen on ${address.replace(/[[\]]/g, '\\$&')}: (not an address to listen on \\(|this machine has no IPv6)[^\\n]*$`));
    expect(existsSync(p.state)).toBe(false);
  });
});

describe('desiredstate run --fault-policy', () => {
  it('exits 64 with a one-line reason, changing nothing, when the path is a directory', async () => {
    const p = project();
    const d = daemon(p, ['--listen', '127.0.0.1:0', '--fault-policy', p.goals]);
    expect(await d.exitedWithin(10_000)).toEqual({ code: 64, signal: null });
    expect(d.stderr.trim()).toBe(`desiredstate run: fault policy file ${p.goals} is a directory`);
    expect(existsSync(p.state)).toBe(false);
    expect(existsSync(p.root)).toBe(false);
  });
});

describe('desiredstate run: a backend declared otherwise', () => {
  it('a new local root is a goal change: the file is written there at once, not after an interval, and no drift is reported', async () => {
    const p = project();
    const d = daemon(p, ['--listen', '127.0.0.1:0', '--interval', '1h', '--debounce', '50ms']);
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'conf');
    const root2 = join(p.dir, 'root2');
    const mark = d.lines.length;
    p.write('app.yaml', oneFileGoal(root2, 'hello\n'));
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'conf', 15_000, mark);
    expect(readFileSync(join(root2, 'app.conf'), 'utf8')).toBe('hello\n');
    expect(d.lines.slice(mark).filter((l) => l.msg === 'drift detected')).toEqual([]);
    expect(d.lines.slice(mark).some((l) => l.msg.startsWith('backend declarations changed') && JSON.stringify(l.backends) === '["local"]')).toBe(true);
    // The old root's file is left where it was: nothing is deleted without an explicit goal.
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('hello\n');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});
