import { isUtf8 } from 'node:buffer';
import { spawn } from 'node:child_process';
import { constants, existsSync, statSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { errorMessage, ownValue, readRegularSync } from '../runtime/index.ts';
import { LEASE_TOKEN_ENV, leaseToken, removeLease, writeLease } from './process-lease.ts';
import type { ProcessLeaseOptions } from './process-lease.ts';

/**
 * Runs external programs for backends that wrap a tool (ansible, exec …):
 * argv only, never a shell; an explicit environment; a timeout and an
 * AbortSignal that kill the whole process group; stdout capped in size.
 */

/** What to run. `env` is the child's whole environment: nothing is inherited. */
export interface RunProcessOptions {
  /** Program and arguments; the program is looked up on `env.PATH` unless it contains a slash. */
  readonly argv: readonly string[];
  /** Working directory; a program path with a slash resolves against it. */
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** Written to the child's stdin, which is then closed. Without it stdin is empty. */
  readonly stdin?: string | undefined;
  readonly timeoutMs: number;
  /** Stdout beyond this many bytes kills the process group (outcome `outputTooLarge`). */
  readonly maxOutputBytes: number;
  /** Stderr is kept as its last this-many bytes (default 64 KiB); it never fails a run. */
  readonly maxStderrBytes?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  /**
   * Records the run in a lease file while it runs (and `LEASE_TOKEN_ENV` in its environment), so that
   * after a crash the next holder of the state finds it (see process-lease.ts). A lease that cannot be
   * written kills the run at once: outcome `spawnFailed`.
   */
  readonly lease?: ProcessLeaseOptions | undefined;
}

/** How a run ended. Failure is a value, not a throw. */
export type ProcessOutcome =
  | {
      readonly status: 'exited';
      readonly exitCode: number;
      /** Decoded as UTF-8; an invalid sequence became U+FFFD, and `stdoutInvalidUtf8` says so. */
      readonly stdout: string;
      /** The bytes on stdout were not valid UTF-8 (JSON must be): the text above is not what the program printed. */
      readonly stdoutInvalidUtf8: boolean;
      readonly stderr: string;
      readonly durationMs: number;
    }
  | { readonly status: 'signaled'; readonly signal: string; readonly stdout: string; readonly stderr: string; readonly durationMs: number }
  | { readonly status: 'timedOut'; readonly timeoutMs: number; readonly stderr: string; readonly durationMs: number }
  | { readonly status: 'outputTooLarge'; readonly maxOutputBytes: number; readonly stderr: string; readonly durationMs: number }
  | { readonly status: 'aborted'; readonly stderr: string; readonly durationMs: number }
  /** The program could not be started (`ENOENT`, `EACCES` …). */
  | { readonly status: 'spawnFailed'; readonly code: string; readonly message: string; readonly durationMs: number };

/** How long to wait for the pipes to close once the program itself has exited. */
const PIPE_GRACE_MS = 1000;

/** Runs one program to completion. Never rejects. */
export function runProcess(options: RunProcessOptions): Promise<ProcessOutcome> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  const maxStderr = options.maxStderrBytes ?? 64 * 1024;
  const [program, ...args] = options.argv;
  if (program === undefined || program === '') {
    return Promise.resolve({ status: 'spawnFailed', code: 'EINVAL', message: 'empty command', durationMs: 0 });
  }
  if (options.signal?.aborted === true) return Promise.resolve({ status: 'aborted', stderr: '', durationMs: 0 });

  return new Promise<ProcessOutcome>((resolve) => {
    const token = options.lease === undefined ? undefined : (options.lease.token ?? leaseToken());
    let child;
    try {
      child = spawn(program, args, {
        cwd: options.cwd,
        env: token === undefined ? { ...options.env } : { ...options.env, [LEASE_TOKEN_ENV]: token },
        stdio: ['pipe', 'pipe', 'pipe'],
        // Its own process group, so a timeout or abort kills everything it started.
        detached: true,
        shell: false,
        windowsHide: true,
      });
    } catch (err) {
      resolve(spawnFailure(err, program, options.cwd, elapsed()));
      return;
    }

    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = Buffer.alloc(0);
    let ending: 'timedOut' | 'outputTooLarge' | 'aborted' | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;

    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    const stop = (why: 'timedOut' | 'outputTooLarge' | 'aborted'): void => {
      if (ending !== undefined || settled) return;
      ending = why;
      killGroup();
    };
    const onAbort = (): void => stop('aborted');
    const timer = setTimeout(() => stop('timedOut'), options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });

    // Written at once, in the same turn as the spawn: a crash before it is one between two statements.
    let leasePath: string | undefined;
    let leaseFailure: ProcessOutcome | undefined;
    if (options.lease !== undefined && token !== undefined && child.pid !== undefined) {
      try {
        leasePath = writeLease(options.lease, { token, pid: child.pid, program, timeoutMs: options.timeoutMs });
      } catch (err) {
        // Not recorded, not run: a crash now would leave it running unseen. It has had microseconds. Its own
        // code: the errno's (ENOENT, ENOTDIR) would send the reader to the program or its cwd; the message names it.
        leaseFailure = { status: 'spawnFailed', code: 'ELEASE', message: `cannot record the command in ${options.lease.dir}: ${errorMessage(err)}`, durationMs: 0 };
        ending = 'aborted';
        killGroup();
      }
    }

    const finish = (outcome: ProcessOutcome): void => {
      if (settled) return;
      settled = true;
      if (leasePath !== undefined) removeLease(leasePath);
      clearTimeout(timer);
      if (graceTimer !== undefined) clearTimeout(graceTimer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const settle = (): void => {
      if (exit === undefined) return;
      if (leaseFailure !== undefined) return finish({ ...leaseFailure, durationMs: elapsed() });
      const err = stderr.toString('utf8');
      const durationMs = elapsed();
      switch (ending) {
        case 'timedOut':
          return finish({ status: 'timedOut', timeoutMs: options.timeoutMs, stderr: err, durationMs });
        case 'outputTooLarge':
          return finish({ status: 'outputTooLarge', maxOutputBytes: options.maxOutputBytes, stderr: err, durationMs });
        case 'aborted':
          return finish({ status: 'aborted', stderr: err, durationMs });
        case undefined:
          break;
      }
      const bytes = Buffer.concat(stdout);
      const out = bytes.toString('utf8');
      if (exit.code !== null) return finish({ status: 'exited', exitCode: exit.code, stdout: out, stdoutInvalidUtf8: !isUtf8(bytes), stderr: err, durationMs });
      return finish({ status: 'signaled', signal: exit.signal ?? 'unknown', stdout: out, stderr: err, durationMs });
    };

    child.stdout.on('data', (chunk: Buffer) => {
      if (ending !== undefined) return;
      stdoutBytes += chunk.length;
      if (stdoutBytes > options.maxOutputBytes) return stop('outputTooLarge');
      stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = Buffer.concat([stderr, chunk]);
      if (stderr.length > maxStderr) stderr = stderr.subarray(stderr.length - maxStderr);
    });
    // A child that exits without reading its stdin makes the write fail with EPIPE: not our failure.
    child.stdin.on('error', () => undefined);
    child.stdout.on('error', () => undefined);
    child.stderr.on('error', () => undefined);

    child.once('error', (err) => {
      // Emitted when spawning fails (no 'exit' follows) or, rarely, when killing fails.
      if (child.pid === undefined || exit === undefined) finish(spawnFailure(err, program, options.cwd, elapsed()));
    });
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      // A grandchild may keep the pipes open; do not wait for it beyond a grace period, and do not
      // leave it behind: whatever of the group still holds our pipes then is killed (a program that
      // means to outlive the run detaches from them, and from the group, as daemons do).
      graceTimer = setTimeout(() => {
        killGroup();
        child.stdout.destroy();
        child.stderr.destroy();
        settle();
      }, PIPE_GRACE_MS);
    });
    child.once('close', () => settle());

    child.stdin.end(options.stdin ?? '');
  });
}

function spawnFailure(err: unknown, program: string, cwd: string, durationMs: number): ProcessOutcome {
  const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : 'ESPAWN';
  // A working directory that is missing fails the spawn with the program's name and ENOENT ("spawn /bin/cat
  // ENOENT"), which sends the reader to look for a program that is there. Say which it is (not ENOENT: the
  // hints for a missing program would mislead too).
  if (code === 'ENOENT' && !isDirectory(cwd)) return { status: 'spawnFailed', code: 'ENOTDIR', message: `the working directory ${cwd} does not exist (or is not a directory)`, durationMs };
  // So does a script whose `#!` names an interpreter that is not there (the program is found, its
  // interpreter is not), most often one saved with Windows line endings: the kernel looks for `/bin/sh\r`.
  const interpreter = code === 'ENOENT' && program.includes('/') ? missingInterpreter(resolve(cwd, program)) : undefined;
  if (interpreter !== undefined) return { status: 'spawnFailed', code: 'ENOINTERPRETER', message: `${program} is there, but ${interpreter}`, durationMs };
  // A directory named as the program fails as one without execute permission does ("spawn ./bin EACCES"): say which.
  if (code === 'EACCES' && program.includes('/') && isDirectory(resolve(cwd, program))) return { status: 'spawnFailed', code: 'EISDIR', message: `${program} is a directory, not a program`, durationMs };
  return { status: 'spawnFailed', code, message: errorMessage(err), durationMs };
}

/** Why the interpreter a script's `#!` line names cannot be found, or undefined when `path` has no such line or it is there. */
function missingInterpreter(path: string): string | undefined {
  let head: Buffer | { readonly special: string };
  try {
    head = readRegularSync(path, 256);
  } catch {
    return undefined;
  }
  if (!Buffer.isBuffer(head)) return undefined;
  const line = head.toString('latin1').split('\n', 1)[0]!;
  if (!line.startsWith('#!')) return undefined;
  // The kernel reads the interpreter up to a blank or the newline: a `\r` before it is part of its name.
  const named = line.slice(2).replace(/^[ \t]+/, '').split(/[ \t]/, 1)[0]!;
  if (named.endsWith('\r')) return `its #! line ends in a carriage return (Windows line endings): the interpreter looked for is ${JSON.stringify(named)}`;
  if (named === '' || existsSync(named)) return undefined;
  return `the interpreter its #! line names is not: ${named}`;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The search path of a spawn whose environment has no PATH (execvp's default, as Node's spawn uses). */
const DEFAULT_SEARCH_PATH = '/usr/bin:/bin';

/**
 * Where `runProcess` would find `program`, or why it could not start it, without running anything
 * (a backend's health check): a program with a slash resolves against `cwd`, any other is looked up
 * on `env.PATH` (/usr/bin:/bin when the environment has none); the first executable regular file wins.
 */
export async function locateProgram(program: string, where: { readonly cwd: string; readonly env: Readonly<Record<string, string>> }): Promise<{ readonly found: string } | { readonly missing: string }> {
  if (program === '') return { missing: 'the command is empty' };
  if (program.includes('/')) {
    const path = resolve(where.cwd, program);
    const why = await notRunnable(path);
    return why === undefined ? { found: path } : { missing: `${path} ${why}` };
  }
  const searchPath = where.env.PATH ?? DEFAULT_SEARCH_PATH;
  for (const dir of searchPath.split(':')) {
    // An empty entry is the working directory, as for execvp.
    const path = resolve(where.cwd, dir, program);
    if ((await notRunnable(path)) === undefined) return { found: path };
  }
  return { missing: `${program} is not found on PATH (${searchPath === '' ? 'empty' : searchPath})` };
}

/** Why `path` cannot be run as a program, or undefined when it can. */
async function notRunnable(path: string): Promise<string | undefined> {
  try {
    if (!(await stat(path)).isFile()) return 'is not a file';
    await access(path, constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'does not exist';
    if (code === 'EACCES') return 'is not executable';
    return `cannot be run (${code ?? errorMessage(err)})`;
  }
}

/** The last `maxLines` non-empty lines of `text`, at most `maxChars` characters (for fault messages). */
export function tailLines(text: string, maxLines = 10, maxChars = 2000): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l !== '');
  const tail = lines.slice(-maxLines).join('\n');
  return tail.length > maxChars ? `…${tail.slice(tail.length - maxChars + 1)}` : tail;
}

/** An environment variable name (a secret's `fromEnv`, an allowlist entry). */
export const envNameSchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name');

/** A backend's environment allowlist: the daemon's variables its processes see; nothing else is. */
export function envAllowlistSchema(what: string) {
  return z.array(envNameSchema).default(['PATH', 'HOME', 'LANG']).describe(`Names of the daemon's environment variables passed to ${what}; nothing else is.`);
}

/** Picks the allowlisted variables out of an environment (absent names are skipped). */
export function allowlistedEnv(source: NodeJS.ProcessEnv, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = ownValue(source, name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}
