import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, localBackend, ONE_DIRECTORY_GOAL, tempProject } from '../support/cli.ts';

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
