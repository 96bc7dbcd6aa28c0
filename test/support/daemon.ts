import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, expect } from 'vitest';
import { cleanEnv, cli, launcher } from './cli.ts';

export type LogLine = Record<string, unknown> & { msg: string };

/** The real daemon (`desiredstate run`) as a child process, its JSON log lines collected from stderr. */
export class Daemon {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<Exit>;
  private buffer = '';
  private waiters = new Set<() => void>();

  /** `options.before`: arguments given before `run` (options every command takes, as `desiredstate --goals G run`). */
  constructor(args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv; before?: readonly string[] }) {
    this.child = spawn(launcher, [...(options.before ?? []), 'run', ...args], { cwd: options.cwd, env: cleanEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.resume();
    this.child.stderr.on('data', (d: Buffer) => {
      const text = d.toString('utf8');
      this.stderr += text;
      this.buffer += text;
      const parts = this.buffer.split('\n');
      this.buffer = parts.pop() ?? '';
      for (const l of parts) {
        if (!l.startsWith('{')) continue;
        try {
          this.lines.push(JSON.parse(l) as LogLine);
        } catch {
          // a line cut by a kill: ignore
        }
      }
      for (const w of this.waiters) w();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Resolves with the first line (from `from` on) that matches, or rejects after `timeoutMs`. */
  waitFor(match: (l: LogLine) => boolean, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.lines.slice(from).find(match);
        if (found === undefined) return false;
        this.waiters.delete(onLine);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const onLine = (): void => void check();
      const timer = setTimeout(() => {
        this.waiters.delete(onLine);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr:\n${this.stderr.slice(-4000)}`));
      }, timeoutMs);
      this.waiters.add(onLine);
      check();
    });
  }

  /** The `listening` line's port. */
  async port(timeoutMs = 20_000): Promise<number> {
    const l = await this.waitFor((x) => x.msg === 'listening', timeoutMs);
    return Number(String(l.address).split(':').at(-1));
  }

  /** How it exited, or 'still running' after `ms`: a hang guard, never a measure of speed. */
  exitedWithin(ms: number): Promise<Exit | 'still running'> {
    return exitedWithin(this.exited, ms);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

/** How a process exited. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** `exited` (a process's exit), or 'still running' after `ms`: a hang guard, never a measure of speed. */
export function exitedWithin(exited: Promise<Exit>, ms: number): Promise<Exit | 'still running'> {
  return Promise.race([exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), ms).unref())]);
}

/** The daemons a test file starts, and the directories they work in: see `trackDaemons`. */
export interface DaemonTracker {
  /** Starts `desiredstate run` (as `new Daemon`), killed after the file's tests. */
  start(args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv; before?: readonly string[] }): Daemon;
  /** Removes `dir` after the file's tests, once its daemons have exited. */
  removeAfter(dir: string): void;
}

/**
 * Tracks the daemons of a test file: one afterAll kills each still running
 * (SIGKILL: a test that failed half-way must not leave one behind), awaits
 * its exit, then removes `dirs` and any given to `removeAfter`. Call it at the
 * file's top level.
 */
export function trackDaemons(...dirs: string[]): DaemonTracker {
  const daemons: Daemon[] = [];
  const remove = [...dirs];
  afterAll(async () => {
    for (const d of daemons) {
      d.kill('SIGKILL');
      await d.exited;
    }
    for (const dir of remove) rmSync(dir, { recursive: true, force: true });
  });
  return {
    start(args, options) {
      const d = new Daemon(args, options);
      daemons.push(d);
      return d;
    },
    removeAfter(dir) {
      remove.push(dir);
    },
  };
}

/**
 * Has node `id` created by one `apply` on `args` (its line `+ id: created`), or with `daemon` by a daemon
 * started on them in `cwd` (interval 1h) until its `node created` line, then stopped: a change converged
 * either way.
 */
export async function createdBy(daemons: DaemonTracker, daemon: boolean, args: readonly string[], id: string, cwd: string): Promise<void> {
  if (!daemon) {
    expect((await cli(['apply', '--yes', ...args])).stdout).toContain(`+ ${id}: created`);
    return;
  }
  const d = daemons.start([...args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd });
  await d.waitFor((l) => l.msg === 'node created' && l.node === id, 20_000);
  d.kill('SIGTERM');
  expect((await d.exited).code).toBe(0);
}

/** Polls `fn` until it returns true, or throws after `timeoutMs`. */
export async function eventually(fn: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts a daemon with `args`, waits until its slow create has written its sleep's pid to `sleepPidFile`
 * (the create is under way), and kills the daemon -9, as a crash or the OOM killer would: what the
 * create started runs on without it. Resolves with the sleep's pid once the daemon is gone.
 */
export async function killDuringCreate(daemons: DaemonTracker, args: readonly string[], options: { cwd: string; sleepPidFile: string }): Promise<number> {
  const first = daemons.start(args, { cwd: options.cwd });
  const hasPid = (): boolean => existsSync(options.sleepPidFile) && readFileSync(options.sleepPidFile, 'utf8').trim() !== '';
  try {
    await eventually(hasPid, 20_000, 'the create to start');
  } finally {
    first.kill('SIGKILL');
    await first.exited;
  }
  return Number(readFileSync(options.sleepPidFile, 'utf8'));
}
