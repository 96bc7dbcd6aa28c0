import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LEASE_TOKEN_ENV, leaseLeftover, leftoverHoldReason, procTable, runProcess, settleLeftoverProcesses, startSettlingLeftoverProcesses } from '../../src/infra/index.ts';
import type { Leftover, ProcessLease, ProcessTable } from '../../src/infra/index.ts';
import { bootId, processStat } from '../../src/runtime/index.ts';
import type { ProcessStat } from '../../src/runtime/index.ts';
import { captureLogger, holdsWithin, isAlive } from '../support/backend.ts';

const dir = mkdtempSync(join(tmpdir(), 'ds-lease-'));
const started: number[] = [];
afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

const linux = processStat(process.pid) !== undefined;

function lease(over: Partial<ProcessLease> = {}): ProcessLease {
  return {
    version: 1,
    token: 'tok-1',
    leader: { pid: 100, start: '5000' },
    boot: 'boot-1',
    // A start time this process does not have: an owner that is gone.
    owner: { pid: process.pid, start: '0' },
    node: 'web',
    operation: 'create',
    program: 'resource',
    startedAt: 0,
    deadline: 0,
    ...over,
  };
}

function table(procs: readonly ProcessStat[], tokens: Readonly<Record<number, string>> = {}): ProcessTable {
  return {
    stat: (pid) => procs.find((p) => p.pid === pid),
    list: () => procs,
    token: (pid) => tokens[pid],
  };
}

const p = (pid: number, pgrp: number, start: string, state = 'S'): ProcessStat => ({ pid, pgrp, start, state });

describe('leaseLeftover: what of a leased group still runs, and whether it is ours', () => {
  const cases: { name: string; lease: ProcessLease; table: ProcessTable; want: Leftover }[] = [
    {
      name: 'the leader runs (its start time is the recorded one): the whole group is ours',
      lease: lease(),
      table: table([p(100, 100, '5000'), p(101, 100, '5003'), p(7, 7, '10')]),
      want: { status: 'running', pids: [100, 101], group: true },
    },
    {
      name: 'the pid was reused by an unrelated process (another start time): not ours, nothing to kill',
      lease: lease(),
      table: table([p(100, 100, '9999'), p(101, 100, '10000')]),
      want: { status: 'reused' },
    },
    {
      name: 'the pid was reused, even by a process carrying nothing of ours in its group',
      lease: lease(),
      table: table([p(100, 55, '9999')]),
      want: { status: 'reused' },
    },
    {
      name: 'the leader ended; what it forked still runs with the token in its environment: those',
      lease: lease(),
      table: table([p(101, 100, '5003'), p(102, 100, '5004')], { 101: 'tok-1' }),
      want: { status: 'running', pids: [101], group: false },
    },
    {
      name: 'the leader is a zombie: only its token-carrying children count, and the group is not signalled as one',
      lease: lease(),
      table: table([p(100, 100, '5000', 'Z'), p(101, 100, '5003')], { 101: 'tok-1' }),
      want: { status: 'running', pids: [101], group: false },
    },
    {
      name: 'a group of that id without our token (a stranger that led a new group under the pid, since gone): not ours',
      lease: lease(),
      table: table([p(101, 100, '9000')], { 101: 'someone-else' }),
      want: { status: 'gone' },
    },
    {
      name: 'nothing of it runs',
      lease: lease(),
      table: table([p(7, 7, '10')]),
      want: { status: 'gone' },
    },
    {
      name: 'written in another boot: nothing of it can run',
      lease: lease({ boot: 'boot-0' }),
      table: table([p(100, 100, '5000')]),
      want: { status: 'gone' },
    },
    {
      name: 'no start time was recorded (no /proc): it cannot be told',
      lease: lease({ leader: { pid: 100, start: null } }),
      table: table([p(100, 100, '5000')]),
      want: { status: 'unknown' },
    },
  ];
  it.each(cases)('$name', ({ lease: l, table: t, want }) => {
    expect(leaseLeftover(l, t, 'boot-1')).toEqual(want);
  });
});

/** A process group like a command's: `sh` leading it, a `sleep` forked by it; returns the leader's pid and the sleep's. */
async function group(seconds: number, token = 'tok-real'): Promise<{ leader: number; child: number }> {
  const pidFile = join(dir, `child-${Date.now()}-${Math.random()}`);
  const sh = spawn('sh', ['-c', `sleep ${seconds} & echo $! > ${pidFile}; wait`], { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH ?? '', [LEASE_TOKEN_ENV]: token } });
  sh.unref();
  if (sh.pid === undefined) throw new Error('no pid');
  started.push(sh.pid);
  expect(await holdsWithin(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '')).toBe(true);
  return { leader: sh.pid, child: Number(readFileSync(pidFile, 'utf8')) };
}

function leaseDir(name: string, leases: readonly ProcessLease[]): string {
  const d = join(dir, name);
  mkdirSync(d);
  for (const l of leases) writeFileSync(join(d, `${l.token}.json`), JSON.stringify(l));
  return d;
}

function realLease(leader: number, over: Partial<ProcessLease> = {}): ProcessLease {
  return lease({ token: 'tok-real', leader: { pid: leader, start: processStat(leader)?.start ?? null }, boot: bootId() ?? null, ...over });
}

describe.skipIf(!linux)('settleLeftoverProcesses, on real processes', () => {
  it('leaves alone a process that took a leased pid (its start time differs), and drops the lease', async () => {
    const g = await group(30);
    const d = leaseDir('reused', [realLease(g.leader, { leader: { pid: g.leader, start: '1' }, deadline: 0 })]);
    const logs = captureLogger();
    const settled = await settleLeftoverProcesses(d, { log: logs.log, signal: new AbortController().signal, graceMs: 200 });
    expect([...settled.values()]).toEqual(['reused']);
    expect(isAlive(g.leader)).toBe(true);
    expect(isAlive(g.child)).toBe(true);
    expect(readdirSync(d)).toEqual([]);
    process.kill(-g.leader, 'SIGKILL');
  });

  it('kills a leftover group past its deadline, what it forked too, and says so', async () => {
    const g = await group(30);
    const d = leaseDir('killed', [realLease(g.leader, { deadline: Date.now() - 1 })]);
    const logs = captureLogger();
    const settled = await settleLeftoverProcesses(d, { log: logs.log, signal: new AbortController().signal, graceMs: 2000, pollMs: 20 });
    expect([...settled.values()]).toEqual(['killed']);
    expect(isAlive(g.leader)).toBe(false);
    expect(isAlive(g.child)).toBe(false);
    expect(readdirSync(d)).toEqual([]);
    const line = logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => String(l.msg).startsWith('killed a command'));
    expect(line).toMatchObject({ pgid: g.leader, node: 'web', operation: 'create', program: 'resource', signal: 'SIGTERM' });
  });

  it('waits for a leftover group that ends before its deadline, and kills nothing', async () => {
    const g = await group(0.4);
    const d = leaseDir('ended', [realLease(g.leader, { deadline: Date.now() + 20_000 })]);
    const logs = captureLogger();
    const t0 = Date.now();
    const settled = await settleLeftoverProcesses(d, { log: logs.log, signal: new AbortController().signal, pollMs: 20 });
    expect([...settled.values()]).toEqual(['ended']);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(logs.text()).toContain('waiting for a command left running');
    expect(logs.text()).toContain('has ended');
  });

  it('keeps waiting after the leader ended while what it forked (with the token) runs on', async () => {
    const g = await group(0.6);
    process.kill(g.leader, 'SIGKILL');
    expect(await holdsWithin(() => !isAlive(g.leader))).toBe(true);
    expect(isAlive(g.child)).toBe(true);
    // The start time recorded at its spawn; the leader is gone, so nothing to compare it with.
    const d = leaseDir('orphans', [realLease(g.leader, { leader: { pid: g.leader, start: '123' }, deadline: Date.now() + 20_000 })]);
    // The leader's pid as gone for good: on a busy machine (pid_max 32768) another process may take it
    // meanwhile, which is the 'reused' case above, not this one.
    const gone: ProcessTable = { ...procTable, stat: (pid) => (pid === g.leader ? undefined : procTable.stat(pid)), list: () => procTable.list().filter((p) => p.pid !== g.leader) };
    const settled = await settleLeftoverProcesses(d, { log: captureLogger().log, signal: new AbortController().signal, pollMs: 20, table: gone });
    expect([...settled.values()]).toEqual(['ended']);
    expect(isAlive(g.child)).toBe(false);
  });

  it('leaves the leases of a live owner (a plan beside the daemon) alone', async () => {
    const g = await group(30);
    const d = leaseDir('owner', [realLease(g.leader, { owner: { pid: process.pid, start: processStat(process.pid)?.start ?? null }, deadline: 0 })]);
    const settled = await settleLeftoverProcesses(d, { log: captureLogger().log, signal: new AbortController().signal, graceMs: 200 });
    expect([...settled.values()]).toEqual(['owner running']);
    expect(isAlive(g.leader)).toBe(true);
    expect(readdirSync(d)).toEqual(['tok-real.json']);
    process.kill(-g.leader, 'SIGKILL');
  });

  it('says at once which groups still run (their nodes to hold back), and settles them in the background', async () => {
    const g = await group(30);
    const d = leaseDir('background', [realLease(g.leader, { token: 'tok-running', deadline: Date.now() + 60_000 }), realLease(999_999_999, { token: 'tok-gone', leader: { pid: 999_999_999, start: '1' }, node: null })]);
    const leftovers = startSettlingLeftoverProcesses(d, { log: captureLogger().log, signal: new AbortController().signal, pollMs: 20 });
    const byToken = new Map(leftovers.map((l) => [l.lease.token, l]));
    expect(byToken.get('tok-running')).toMatchObject({ running: true, lease: { node: 'web', leader: { pid: g.leader } } });
    expect(byToken.get('tok-gone')?.running).toBe(false);
    expect(await byToken.get('tok-gone')?.settled).toBe('gone');
    // It returned without waiting for the group, which still runs, its settling still pending.
    const running = byToken.get('tok-running')!.settled;
    expect(await Promise.race([running, new Promise((r) => setTimeout(() => r('pending'), 200))])).toBe('pending');
    expect(isAlive(g.leader)).toBe(true);
    expect(readdirSync(d)).toEqual(['tok-running.json']);
    // Once the group ends, its lease settles as ended and is dropped.
    process.kill(-g.leader, 'SIGKILL');
    expect(await running).toBe('ended');
    expect(readdirSync(d)).toEqual([]);
  });

  it('names the command and its deadline in the reason a held node shows', () => {
    const l = lease({ leader: { pid: 4242, start: '1' }, operation: 'create', program: 'resource', deadline: Date.UTC(2030, 0, 2, 3, 4, 5) });
    expect(leftoverHoldReason(l)).toBe('waiting for its create left running by a stopped desiredstate (resource, pgid 4242) to end, until 2030-01-02T03:04:05.000Z at most (its timeout: then it is killed)');
  });

  it('stops waiting when aborted, and keeps the lease for the next start', async () => {
    const g = await group(30);
    const d = leaseDir('aborted', [realLease(g.leader, { deadline: Date.now() + 60_000 })]);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 200);
    const settled = await settleLeftoverProcesses(d, { log: captureLogger().log, signal: abort.signal, pollMs: 20 });
    expect([...settled.values()]).toEqual(['aborted']);
    expect(isAlive(g.leader)).toBe(true);
    expect(readdirSync(d)).toEqual(['tok-real.json']);
    process.kill(-g.leader, 'SIGKILL');
  });
});

describe('runProcess with a lease', () => {
  const base = { cwd: dir, env: { PATH: process.env.PATH ?? '' }, timeoutMs: 10_000, maxOutputBytes: 4096 };

  it('records the run while it runs (node, operation, program; the token in its environment) and removes the record after', async () => {
    const d = join(dir, 'run-leases');
    const run = runProcess({ ...base, argv: ['sh', '-c', `echo "$${LEASE_TOKEN_ENV}"; sleep 0.3`], lease: { dir: d, node: 'web', operation: 'create' } });
    expect(await holdsWithin(() => existsSync(d) && readdirSync(d).length === 1)).toBe(true);
    const [file] = readdirSync(d);
    const recorded = JSON.parse(readFileSync(join(d, file ?? ''), 'utf8')) as ProcessLease;
    expect(recorded).toMatchObject({ node: 'web', operation: 'create', program: 'sh', owner: { pid: process.pid } });
    expect(recorded.deadline - recorded.startedAt).toBe(10_000);
    const outcome = await run;
    expect(outcome).toMatchObject({ status: 'exited', exitCode: 0, stdout: `${recorded.token}\n` });
    expect(readdirSync(d)).toEqual([]);
  });

  it('adds nothing to the environment of a run without one', async () => {
    const outcome = await runProcess({ ...base, argv: ['sh', '-c', `echo "[$${LEASE_TOKEN_ENV}]"`] });
    expect(outcome).toMatchObject({ status: 'exited', stdout: '[]\n' });
  });

  it('does not let a run it cannot record go on', async () => {
    const notADir = join(dir, 'a-file');
    writeFileSync(notADir, '');
    const marker = join(dir, 'ran');
    const outcome = await runProcess({ ...base, argv: ['sh', '-c', `sleep 0.3; touch ${marker}`], lease: { dir: join(notADir, 'leases'), operation: 'create' } });
    expect(outcome).toMatchObject({ status: 'spawnFailed', code: 'ELEASE', message: expect.stringContaining('ENOTDIR') });
    await new Promise((r) => setTimeout(r, 600));
    expect(existsSync(marker)).toBe(false);
  });
});
