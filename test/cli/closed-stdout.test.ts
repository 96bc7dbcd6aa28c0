import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, launcher, localBackend, ONE_DIRECTORY_GOAL, tempProject } from '../support/cli.ts';

// `desiredstate history | head -1`: the reader goes away before the command has written everything.
// Like other Unix tools it stops quietly: no 'write EPIPE' stack, no failure status.
const p = tempProject('ds-epipe-');
p.write('backend.yaml', localBackend(p.root));
p.write('app.yaml', ONE_DIRECTORY_GOAL);
beforeAll(async () => {
  // Some state for status and history to print.
  expect((await cli(['apply', ...p.args], { cwd: p.dir })).code).toBe(0);
});
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

/** Runs the CLI with its stdout a pipe whose reading end is closed before it writes anything. */
function withClosedStdout(args: readonly string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: p.dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

describe.concurrent('a closed stdout', () => {
  it.each([
    { name: 'history', args: ['history', ...p.args] },
    { name: 'status', args: ['status', ...p.args] },
    { name: 'schema', args: ['schema'] },
    { name: 'graph', args: ['graph', ...p.args] },
    { name: 'validate', args: ['validate', ...p.args] },
    { name: '--help', args: ['--help'] },
  ])('$name stops quietly, exit 0', async ({ args }) => {
    const r = await withClosedStdout(args);
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ code: 0, signal: null });
  });
});

/** Runs the CLI through bin/desiredstate, as users do, under sh with `redirect` on its command line. */
function redirected(args: readonly string[], redirect: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `"$0" "$@" ${redirect}`, launcher, ...args], { cwd: p.dir, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

// A full disk threw from the stdout error handler (an uncaught ENOSPC, a stack trace, exit 1), and a
// stdout closed by the caller exited 0 having written nothing: both are one line and EX_IOERR (74).
describe.concurrent('output that cannot be written', () => {
  it.skipIf(!existsSync('/dev/full')).each([
    { name: 'status', args: ['status', ...p.args] },
    { name: 'schema', args: ['schema'] },
  ])('$name > /dev/full: one line, exit 74', async ({ name, args }) => {
    expect(await redirected(args, '>/dev/full')).toEqual({ code: 74, stderr: `desiredstate ${name}: cannot write to stdout: ENOSPC: no space left on device, write\n` });
  });

  it.each([
    { name: 'schema', args: ['schema'] },
    { name: 'history', args: ['history', ...p.args, '--format', 'json'] },
  ])('$name with stdout closed (>&-): one line, exit 74', async ({ name, args }) => {
    expect(await redirected(args, '>&-')).toEqual({ code: 74, stderr: `desiredstate ${name}: cannot write to stdout: it is closed (EBADF)\n` });
  });
});
