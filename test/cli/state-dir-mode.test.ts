import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv, launcher, oneFileGoal, tempProject } from '../support/cli.ts';

// The state directory holds the lock and files that are the owner's only, but a command made it, and the
// parents it lacked, with the default mode less the umask: 0777 under umask 000, 0755 under 022.

/** `desiredstate args` under umask 000, as a service manager or a container may run it. */
function underUmask000(args: readonly string[], cwd: string): { status: number | null; stderr: string } {
  const r = spawnSync('sh', ['-c', 'umask 000 && exec "$@"', 'sh', launcher, ...args], { cwd, env: cleanEnv(), encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

const mode = (path: string): number => statSync(path).mode & 0o7777;
const warnings = (stderr: string): string[] => stderr.split('\n').filter((l) => l.includes('is writable by'));

describe('the state directory a command creates', () => {
  it.each([['apply', '--yes'], ['plan']])('%s makes it and the parents it lacks 0700, whatever the umask', (...command) => {
    const p = tempProject('ds-state-mode-');
    p.write('app.yaml', oneFileGoal(p.root, 'hello\n'));
    const state = join(p.dir, 'st', 'deep');
    const r = underUmask000([...command, '--goals', p.goals, '--state', state], p.dir);
    expect(r.status, r.stderr).toBe(command[0] === 'plan' ? 2 : 0);
    expect(mode(join(p.dir, 'st')).toString(8)).toBe('700');
    expect(mode(state).toString(8)).toBe('700');
    expect(warnings(r.stderr)).toEqual([]);
  });

  it('leaves one that is there as it is, and warns once when others may write in it', () => {
    const p = tempProject('ds-state-shared-');
    p.write('app.yaml', oneFileGoal(p.root, 'hello\n'));
    mkdirSync(p.state);
    chmodSync(p.state, 0o777);
    const r = underUmask000(['apply', '--yes', ...p.args], p.dir);
    expect(r.status, r.stderr).toBe(0);
    expect(mode(p.state).toString(8)).toBe('777');
    const [line, ...more] = warnings(r.stderr);
    expect(more).toEqual([]);
    expect(JSON.parse(line ?? '{}')).toMatchObject({
      level: 40,
      stateDir: p.state,
      mode: '0777',
      msg: `state directory ${p.state} (mode 0777) is writable by its group and others, who may remove or replace the state and its lock; chmod go-w it`,
    });
    // Its own: nothing to say.
    chmodSync(p.state, 0o700);
    expect(warnings(underUmask000(['apply', '--yes', ...p.args], p.dir).stderr)).toEqual([]);
    // Sticky, as /tmp or a tmpfs's root: only a file's owner may remove or replace it.
    chmodSync(p.state, 0o1777);
    expect(warnings(underUmask000(['apply', '--yes', ...p.args], p.dir).stderr)).toEqual([]);
  });
});
