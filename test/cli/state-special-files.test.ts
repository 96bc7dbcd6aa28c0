import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, oneFileGoal, tempProject } from '../support/cli.ts';

// Something other than a regular file where the state directory keeps state.db, its lineage or its lock:
// a FIFO made commands wait for a writer forever, a directory at the lock was an internal error (exit 70).
const p = tempProject('ds-special-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
p.write('goals.yaml', oneFileGoal(p.root, 'port = 8080\n'));

/** A state directory `name` made by an apply, with `file` in it replaced by what `make` puts there. */
async function stateWith(name: string, file: string, make: (path: string) => void): Promise<{ dir: string; path: string }> {
  const dir = join(p.dir, name);
  expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
  const path = join(dir, file);
  rmSync(path, { force: true });
  make(path);
  return { dir, path };
}

const fifo = (path: string): void => void execFileSync('mkfifo', [path]);
const commands = [['status'], ['drift'], ['history'], ['plan', '--goals', p.goals], ['apply', '--yes', '--goals', p.goals], ['retry', '--all']];

describe('special files in the state directory', () => {
  it('a FIFO at state.db is refused by plan and apply without waiting, nothing written beside it', async () => {
    const dir = join(p.dir, 'fifo-db');
    mkdirSync(dir);
    const db = join(dir, 'state.db');
    fifo(db);
    for (const args of [['plan'], ['apply', '--yes']]) {
      const r = await cli([...args, '--goals', p.goals, '--state', dir], { cwd: p.dir });
      expect(r, args[0]).toMatchObject({ code: 1, stderr: `desiredstate ${args[0]}: DS_STATE_STORE: state file ${db} is a FIFO, not a regular file\n` });
    }
    expect(readdirSync(dir)).toEqual(['state.db']);
  });

  // status said "no state yet", apply only "unable to open database file".
  it('a link to nothing at state.db is said to be one, by what reads and what writes', async () => {
    const { dir, path } = await stateWith('dangling-db', 'state.db', (path) => symlinkSync(join(p.dir, 'gone.db'), path));
    for (const args of [['status'], ['apply', '--yes', '--goals', p.goals]]) {
      const r = await cli([...args, '--state', dir], { cwd: p.dir });
      expect(r, args[0]).toMatchObject({ code: 1, stderr: `desiredstate ${args[0]}: DS_STATE_STORE: state file ${path} is a link to nothing (${join(p.dir, 'gone.db')}): restore what it points to, or remove it\n` });
    }
  });

  it('a FIFO at the lineage file is refused by every command without waiting', async () => {
    const { dir, path } = await stateWith('fifo-lineage', 'lineage', fifo);
    for (const args of commands) {
      const r = await cli([...args, '--state', dir], { cwd: p.dir });
      expect(r, args[0]).toMatchObject({ code: 1, stderr: `desiredstate ${args[0]}: DS_STATE_STORE: cannot read the lineage file ${path}: it is a FIFO, not a regular file\n` });
    }
  });

  it.each([
    { name: 'a FIFO', make: fifo, what: 'a FIFO' },
    { name: 'a directory', make: (path: string) => mkdirSync(path), what: 'a directory' },
    { name: 'a dangling link', make: (path: string) => symlinkSync(join(p.dir, 'nowhere'), path), what: 'a link to nothing' },
  ])('$name at state.db.lock is refused naming it, exit 1, by every command that looks at the lock', async ({ name, make, what }) => {
    const { dir, path } = await stateWith(`lock-${name.replace(/\W/g, '')}`, 'state.db.lock', make);
    // status and drift look at the lock only where a daemon recorded itself.
    for (const args of [...commands.slice(2), ['run', '--listen', '127.0.0.1:0', '--goals', p.goals]]) {
      const r = await cli([...args, '--state', dir], { cwd: p.dir });
      expect(r, args[0]).toMatchObject({ code: 1, stderr: `desiredstate ${args[0]}: DS_STATE_STORE: lock file ${path} is ${what}, not a regular file; remove it\n` });
    }
  });
});
