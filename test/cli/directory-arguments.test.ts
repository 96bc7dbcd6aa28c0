import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, localBackend, ONE_DIRECTORY_GOAL, tempProject } from '../support/cli.ts';
import { warnSkipped } from '../support/skip.ts';

// CLI.md: a bad invocation exits 64 with a one-line reason. A file given where a directory is
// expected is one: it used to be an internal error with a stack (plan: EEXIST from mkdir), "no
// state yet" with exit 0 (status), or "does not exist" (--goals).
const p = tempProject('ds-dirargs-');
p.write('backend.yaml', localBackend(p.root));
p.write('app.yaml', ONE_DIRECTORY_GOAL);
writeFileSync(join(p.dir, 'afile'), 'not a directory\n');
mkdirSync(join(p.dir, 'fine'));
/** `immutable/`, made immutable with chattr +i (root on a filesystem that has the flag), or false. */
const immutable = ((): boolean => {
  const dir = join(p.dir, 'immutable');
  mkdirSync(dir);
  const made = spawnSync('chattr', ['+i', dir]).status === 0;
  if (!made) warnSkipped(['SKIPPING the CLI test of a state directory under an immutable one:', 'chattr +i needs root and a filesystem with the flag (ext4, xfs). CI runs it as root on ext4.']);
  return made;
})();
afterAll(() => {
  if (immutable) spawnSync('chattr', ['-i', join(p.dir, 'immutable')]);
  rmSync(p.dir, { recursive: true, force: true });
});

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
    // Node's own recursive mkdir loops for ever there (a parent that exists, one below it that cannot be made).
    ...(existsSync('/proc/self') ? [{ name: 'apply --state under /proc', args: ['apply', ...goals, '--state', '/proc/ds-nonexistent/state'], reason: 'cannot create --state /proc/ds-nonexistent/state: a directory above it cannot be made there' }] : []),
    // EPERM: an immutable directory above it (as root on ext4; where chattr cannot, the case is left out, and said).
    ...(immutable ? [{ name: 'plan --state under an immutable directory', args: ['plan', ...goals, '--state', 'immutable/state'], reason: 'cannot create --state immutable/state: permission denied' }] : []),
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

// `--goals "$GOALS"` with the variable unset named the working directory: read recursively, every YAML
// file under it taken for goals (a Helm chart, a CI config). An empty flag is a bad invocation; an
// empty variable is unset, as for a shell's `VAR= cmd` or a unit file's `Environment=VAR=`.
describe.concurrent('an empty directory name', () => {
  it.each([
    { name: 'validate --goals ""', args: ['validate', '--goals', ''], reason: '--goals is empty; name a directory (. for the working directory)' },
    { name: 'apply --goals=', args: ['apply', '--goals=', '--state', 'fine'], reason: '--goals is empty; name a directory (. for the working directory)' },
    { name: 'status --state ""', args: ['status', '--state', ''], reason: '--state is empty; name a directory (. for the working directory)' },
    // The one path flag naming a file: it said "fault policy file … is a directory", the working directory.
    { name: 'run --fault-policy ""', args: ['run', ...goals, '--state', 'fine/state', '--listen', '127.0.0.1:0', '--fault-policy', ''], reason: '--fault-policy is empty; name a file' },
    { name: 'run --fault-policy=', args: ['run', ...goals, '--state', 'fine/state', '--listen', '127.0.0.1:0', '--fault-policy='], reason: '--fault-policy is empty; name a file' },
  ])('$name: exit 64, one line, nothing read or written', async ({ args, reason }) => {
    const r = await cli(args, { cwd: p.dir });
    expect(r.stderr).toBe(`desiredstate ${args[0]}: ${reason}\n`);
    expect(r.code).toBe(64);
    expect(readdirSync(join(p.dir, 'fine'))).toEqual([]);
  });

  it('an empty $DESIREDSTATE_GOALS or $DESIREDSTATE_STATE is the default', async () => {
    const q = tempProject('ds-dirargs-env-');
    q.write('app.yaml', ONE_DIRECTORY_GOAL);
    // A YAML file in the working directory that is no goal: read only if the empty variable meant ".".
    writeFileSync(join(q.dir, 'ci.yaml'), 'stages: [test]\n');
    try {
      const env = { DESIREDSTATE_GOALS: '', DESIREDSTATE_STATE: '', DESIREDSTATE_LOG_FORMAT: '', DESIREDSTATE_LOG_LEVEL: '' };
      const r = await cli(['validate'], { cwd: q.dir, env });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const a = await cli(['apply', '--yes'], { cwd: q.dir, env });
      expect(a.code, a.stderr).toBe(0);
      // The default state directory, and the implicit local backend's root inside it.
      expect(readdirSync(q.dir).sort()).toEqual(['.desiredstate', 'ci.yaml', 'goals']);
      expect(readdirSync(join(q.dir, '.desiredstate', 'local'))).toEqual(['www']);
    } finally {
      rmSync(q.dir, { recursive: true, force: true });
    }
  });
});

// retry and scripts read the goals only at times (retry: for a node the state does not know; scripts:
// for the trust bar of list, show, trust and approve-run) and do without them: a missing goal directory
// named on the command line was passed over. Named, it is a bad invocation where the goals are read, as
// for every command that reads them; where they are not (retry of a node the state knows, retry --all,
// scripts approve and reject, a bar given with --bar), it is not looked at; the default goals/ missing is
// still no goals.
describe('a goal directory named that is not there, for retry and scripts', () => {
  const q = tempProject('ds-dirargs-goals-');
  q.write('backend.yaml', localBackend(q.root));
  q.write('app.yaml', ONE_DIRECTORY_GOAL);
  const state = ['--state', q.state];
  const missing = join(q.dir, 'nope');
  const known = (): Promise<unknown> => cli(['status', '--format', 'json', ...state], { cwd: q.dir }).then((r) => JSON.parse(r.stdout));

  it('where the goals are read: exits 64 with one line, and releases nothing', async () => {
    expect((await cli(['apply', '--yes', ...q.args], { cwd: q.dir })).code).toBe(0);
    const before = await known();
    for (const { args, env } of [
      { args: ['retry', 'not-in-state', '--goals', './nope'] },
      { args: ['retry', 'not-in-state'], env: { DESIREDSTATE_GOALS: 'nope' } },
      { args: ['scripts', 'list', '--goals', './nope'] },
      { args: ['scripts', 'trust', '--goals', './nope'] },
      { args: ['scripts', 'show', 'abcdef12', '--goals', './nope'] },
      { args: ['scripts', 'approve-run', 'abcdef12', '--node', 'web-root', '--goals', './nope'] },
    ]) {
      const r = await cli([...args, ...state], { cwd: q.dir, env });
      expect(r, args.join(' ')).toMatchObject({ code: 64, stdout: '', stderr: `desiredstate ${args[0]}: goal directory ${missing} does not exist\n` });
    }
    const file = await cli(['retry', 'not-in-state', '--goals', './backend.yaml', ...state], { cwd: join(q.dir, 'goals') });
    expect(file).toMatchObject({ code: 64, stderr: 'desiredstate retry: --goals ./backend.yaml is not a directory\n' });
    expect(await known()).toEqual(before);
  });

  it('where they are not read, it is not looked at', async () => {
    expect((await cli(['apply', '--yes', ...q.args], { cwd: q.dir })).code).toBe(0);
    const nope = ['--goals', './nope'];
    expect(await cli(['retry', 'web-root', ...nope, ...state], { cwd: q.dir })).toMatchObject({ code: 0, stdout: 'web-root is not held (status ready); nothing to do\n' });
    expect(await cli(['retry', 'web-root', ...state], { cwd: q.dir, env: { DESIREDSTATE_GOALS: 'nope' } })).toMatchObject({ code: 0, stdout: 'web-root is not held (status ready); nothing to do\n' });
    expect(await cli(['retry', '--all', ...nope, ...state], { cwd: q.dir })).toMatchObject({ code: 0, stdout: 'no node is held; nothing to do\n' });
    // An unknown script (exit 1), not a bad invocation: approve and reject judge no trust.
    for (const sub of ['approve', 'reject']) {
      expect(await cli(['scripts', sub, 'abcdef12', ...nope, ...state], { cwd: q.dir }), sub).toMatchObject({ code: 1, stderr: 'desiredstate scripts: DS_NOT_FOUND: no script abcdef12\n' });
    }
    expect(await cli(['scripts', 'trust', '--bar', '0.5', '--format', 'json', ...nope, ...state], { cwd: q.dir })).toMatchObject({ code: 0, stdout: `${JSON.stringify({ bar: 0.5, quantile: 0.05, scripts: [] }, null, 2)}\n` });
  });

  it('the default goals/ missing is no goals: retry answers from the state, scripts lists', async () => {
    const elsewhere = join(q.dir, 'fine');
    mkdirSync(elsewhere, { recursive: true });
    expect(await cli(['retry', 'web-root', ...state], { cwd: elsewhere })).toMatchObject({ code: 0, stdout: 'web-root is not held (status ready); nothing to do\n' });
    expect(await cli(['retry', 'nope', ...state], { cwd: elsewhere })).toMatchObject({ code: 1, stderr: 'unknown node "nope"\n' });
    expect((await cli(['scripts', 'list', ...state], { cwd: elsewhere })).code).toBe(0);
  });
});
