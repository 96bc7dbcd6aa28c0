import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, localBackend, ONE_DIRECTORY_GOAL, tempProject } from '../support/cli.ts';

// CLI.md: a bad invocation exits 64 with a one-line reason. A file given where a directory is
// expected is one: it used to be an internal error with a stack (plan: EEXIST from mkdir), "no
// state yet" with exit 0 (status), or "does not exist" (--goals).
const p = tempProject('ds-dirargs-');
p.write('backend.yaml', localBackend(p.root));
p.write('app.yaml', ONE_DIRECTORY_GOAL);
writeFileSync(join(p.dir, 'afile'), 'not a directory\n');
mkdirSync(join(p.dir, 'fine'));
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

const goals = ['--goals', p.goals];

describe.concurrent('a file named as a directory', () => {
  it.each([
    { name: 'plan --state FILE', args: ['plan', ...goals, '--state', './afile'], reason: '--state ./afile is not a directory' },
    { name: 'apply --state FILE', args: ['apply', ...goals, '--state', './afile'], reason: '--state ./afile is not a directory' },
    { name: 'run --state FILE', args: ['run', ...goals, '--state', './afile', '--listen', '127.0.0.1:0'], reason: '--state ./afile is not a directory' },
    { name: 'status --state FILE', args: ['status', '--state', './afile'], reason: '--state ./afile is not a directory' },
    { name: 'history --state FILE', args: ['history', '--state', 'afile'], reason: '--state afile is not a directory' },
    { name: 'drift --state FILE', args: ['drift', '--state', 'afile'], reason: '--state afile is not a directory' },
    { name: 'retry --state FILE', args: ['retry', 'web-root', '--state', 'afile'], reason: '--state afile is not a directory' },
    { name: '$DESIREDSTATE_STATE a file', args: ['status'], env: { DESIREDSTATE_STATE: 'afile' }, reason: '$DESIREDSTATE_STATE afile is not a directory' },
    { name: 'plan --state under a file', args: ['plan', ...goals, '--state', 'afile/state'], reason: 'cannot create --state afile/state: a path above it is not a directory' },
    { name: 'validate --goals FILE', args: ['validate', '--goals', './afile'], reason: '--goals ./afile is not a directory' },
    { name: 'plan --goals FILE', args: ['plan', '--goals', 'afile', '--state', 'fine'], reason: '--goals afile is not a directory' },
  ])('$name: exit 64, one line', async ({ args, env, reason }) => {
    const r = await cli(args, { cwd: p.dir, env });
    expect(r.stderr).toBe(`desiredstate ${args[0]}: ${reason}\n`);
    expect(r.code).toBe(64);
    // Nothing was made of it.
    expect(readdirSync(join(p.dir, 'fine'))).toEqual([]);
  });
});
