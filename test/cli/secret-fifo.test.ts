import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv, execGoalHead, launcher, tempProject } from '../support/cli.ts';
import type { CliResult } from '../support/cli.ts';

/**
 * A `fromFile` secret at a FIFO with no writer blocked its open() in libuv's thread pool: plan, apply
 * and run hung, and apply ignored SIGTERM (shutdown waited for that open). It is refused unread, a
 * permanent fault naming the reference and the file.
 */
const p = tempProject('ds-secret-fifo-');
execFileSync('mkfifo', [join(p.dir, 'fifo')]);
p.write(
  'goals.yaml',
  `${execGoalHead()}    - id: s1
      type: generic.resource
      spec:
        commands: { read: [/bin/cat], create: [/bin/cat] }
        input: { token: { fromFile: fifo } }
`,
);

/** The CLI's result, or a failure if it is still running after `deadline` ms (then killed -9: it ignored SIGTERM). */
function cliWithin(args: readonly string[], deadline: number): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(launcher, args, { cwd: p.dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`desiredstate ${args.join(' ')} still running after ${deadline} ms`));
    }, deadline);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(process.platform === 'win32')('a fromFile secret at a FIFO', () => {
  it.each([
    ['plan', []],
    ['apply', ['--yes']],
  ])('%s ends with the fault, naming the reference and the file', async (command, extra) => {
    const r = await cliWithin([command, ...extra, ...p.args], 20_000);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stdout + r.stderr).toContain(`secret file fifo (${join(p.dir, 'fifo')}: relative paths are to the working directory) cannot be read: it is a FIFO, not a regular file`);
  }, 30_000);
});
