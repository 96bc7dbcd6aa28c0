import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, goalHead, localBackend, ONE_DIRECTORY_GOAL, tempProject } from '../support/cli.ts';
import { canRunAsNobody, isRoot, NOBODY } from '../support/privileges.ts';
import { warnSkipped } from '../support/skip.ts';

// A goal or state directory the user may not read was an internal error (EACCES from a scandir, a
// stat or a read, a stack trace, exit 70), or read as no state at all. Root reads anything: run as
// root, the commands run as nobody in a project given to nobody; run as another user, as that user.
// Either way what is chmod 000 cannot be read.
const user = isRoot ? NOBODY : undefined;
const cannotDrop = isRoot && !canRunAsNobody();
if (cannotDrop) warnSkipped(['SKIPPING the tests of unreadable goal and state directories:', 'they run the CLI as nobody, who cannot load this checkout. CI runs them.']);

/** A temp project (`tempProject`) with `files` in its goal directory, given to `user`. */
function project(prefix: string, files: Readonly<Record<string, string>>): ReturnType<typeof tempProject> {
  const p = tempProject(prefix);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(join(p.goals, file, '..'), { recursive: true });
    p.write(file, text);
  }
  if (isRoot) execFileSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, p.dir]);
  return p;
}

/** Runs `fn` with `path` at mode 000, then gives it back its mode (so that the project can be removed). */
async function unreadable<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const mode = statSync(path).mode & 0o7777;
  chmodSync(path, 0o000);
  try {
    return await fn();
  } finally {
    chmodSync(path, mode);
  }
}

describe.skipIf(cannotDrop)('a goal directory that cannot be read', () => {
  const p = project('ds-unreadable-goals-', { 'backend.yaml': localBackend('root'), 'app.yaml': ONE_DIRECTORY_GOAL });
  // The goal directory beneath one that cannot be entered: it was said not to exist.
  const closed = join(p.dir, 'closed');
  beforeAll(() => {
    mkdirSync(join(closed, 'goals'), { recursive: true });
    mkdirSync(p.state); // retry: no state.db, so the goals are read for the node
    chmodSync(p.goals, 0o000);
    chmodSync(closed, 0o000);
  });
  afterAll(() => {
    chmodSync(p.goals, 0o755);
    chmodSync(closed, 0o755);
  });

  it.each([['validate'], ['plan'], ['apply', '--yes'], ['graph'], ['check'], ['backends'], ['validate', '--format', 'json'], ['retry', 'web-root']])(
    '%s: a bad invocation, exit 64 with one line naming it',
    async (...args) => {
      const r = await cli([...args, ...p.args], { cwd: p.dir, user });
      expect(r).toEqual({ code: 64, stdout: '', stderr: `desiredstate ${args[0]}: cannot read goal directory ${p.goals}: permission denied\n` });
      const under = await cli([...args, '--goals', join(closed, 'goals'), '--state', p.state], { cwd: p.dir, user });
      expect(under).toEqual({ code: 64, stdout: '', stderr: `desiredstate ${args[0]}: cannot read goal directory ${join(closed, 'goals')}: permission denied\n` });
    },
  );
});

describe.skipIf(cannotDrop)('a directory below the goal directory that cannot be read', () => {
  // The goal in sub/ prunes: read as removed, its file would be deleted.
  const pruned = `${goalHead('  prune: true\n  defaults: { backend: local, deletionPolicy: Delete }\n').replace('name: app', 'name: pruned')}    - { id: conf, type: local.file, spec: { path: app.conf, content: "x\\n" } }\n`;
  const p = project('ds-unreadable-sub-', { 'backend.yaml': localBackend('root'), 'app.yaml': ONE_DIRECTORY_GOAL, 'sub/pruned.yaml': pruned });
  const diagnostic = 'goals/sub: error unreadable-directory: cannot read goal directory: permission denied (EACCES)';

  it('is an error at that directory: validate, plan and apply refuse the goals, and nothing is deleted', async () => {
    const first = await cli(['apply', '--yes', ...p.args], { cwd: p.dir, user });
    expect(first.code, first.stderr).toBe(0);
    expect(existsSync(join(p.root, 'app.conf'))).toBe(true);
    await unreadable(join(p.goals, 'sub'), async () => {
      for (const command of ['validate', 'plan', 'apply']) {
        const r = await cli([command, '--yes', ...p.args].filter((a) => command === 'apply' || a !== '--yes'), { cwd: p.dir, user });
        expect(r.code, `${command}: ${r.stderr}`).toBe(1);
        expect(`${r.stdout}${r.stderr}`, command).toContain(diagnostic);
        expect(r.stderr, command).not.toContain('internal error');
      }
      const json = await cli(['validate', '--format', 'json', ...p.args], { cwd: p.dir, user });
      expect(JSON.parse(json.stdout)).toMatchObject({ valid: false, diagnostics: [{ file: 'goals/sub', line: 0, col: 0, severity: 'error', code: 'unreadable-directory' }] });
    });
    expect(existsSync(join(p.root, 'app.conf'))).toBe(true);
  });

  it('a symbolic link to a directory that cannot be read is one too', async () => {
    const q = project('ds-unreadable-link-', { 'app.yaml': ONE_DIRECTORY_GOAL });
    mkdirSync(join(q.dir, 'elsewhere/inner'), { recursive: true });
    writeFileSync(join(q.dir, 'elsewhere/inner/more.yaml'), ONE_DIRECTORY_GOAL);
    symlinkSync(join(q.dir, 'elsewhere/inner'), join(q.goals, 'linked'));
    await unreadable(join(q.dir, 'elsewhere'), async () => {
      const r = await cli(['validate', ...q.args], { cwd: q.dir, user });
      expect(r).toMatchObject({ code: 1, stdout: 'goals/linked: error unreadable-directory: cannot read goal directory: permission denied (EACCES)\n' });
    });
  });
});

// A state another user made (root's 0600 files, a 0700 directory) is the state store's failure: exit 1
// with DS_STATE_STORE, as a state file that cannot be opened always was; never an internal error.
describe.skipIf(cannotDrop)('a state that cannot be read', () => {
  const p = project('ds-unreadable-state-', { 'backend.yaml': localBackend('root'), 'app.yaml': ONE_DIRECTORY_GOAL });
  beforeAll(async () => {
    const r = await cli(['apply', '--yes', ...p.args], { cwd: p.dir, user });
    expect(r.code, r.stderr).toBe(0);
  });
  const commands = [['status'], ['history'], ['drift'], ['retry', 'web-root'], ['scripts', 'list'], ['plan'], ['apply', '--yes'], ['run', '--listen', '127.0.0.1:0']];
  const refused = async (reason: string): Promise<void> => {
    for (const args of commands) {
      const r = await cli([...args, ...p.args], { cwd: p.dir, user });
      expect(r, args.join(' ')).toEqual({ code: 1, stdout: '', stderr: `desiredstate ${args[0]}: DS_STATE_STORE: ${reason}\n` });
    }
    const json = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir, user });
    expect(JSON.parse(json.stdout)).toEqual({ error: { code: 'DS_STATE_STORE', message: reason } });
  };

  it('its lineage file', async () => {
    const lineage = join(p.state, 'lineage');
    await unreadable(lineage, () => refused(`cannot read the lineage file ${lineage}: permission denied (EACCES)`));
  });

  it('its state file', async () => {
    const db = join(p.state, 'state.db');
    await unreadable(db, () => refused(`cannot open state file ${db}: permission denied (EACCES)`));
  });

  // status, history and retry took a state directory they could not enter for none at all: "no state
  // yet" (and no daemon, while one ran), "no runs recorded", an unknown node.
  it('its directory', async () => {
    await unreadable(p.state, () => refused(`cannot read state file ${join(p.state, 'state.db')}: permission denied (EACCES)`));
  });

  it('the directory it is in: a bad invocation, as a state directory that cannot be made there', async () => {
    await unreadable(p.dir, async () => {
      for (const args of [['status'], ['history'], ['drift']]) {
        const r = await cli([...args, ...p.args], { cwd: '/', user });
        expect(r, args.join(' ')).toEqual({ code: 64, stdout: '', stderr: `desiredstate ${args[0]}: cannot read --state ${p.state}: permission denied\n` });
      }
    });
  });
});

// A state this user may read but not write: what only reads it works, or says what it needs; what it leaves
// behind never stops a writing command once the state is writable again.
describe.skipIf(cannotDrop)('a state that can be read but not written', () => {
  /** A project applied once: its state.db, closed (no -wal, no -shm beside it). */
  const applied = async (prefix: string): Promise<{ p: ReturnType<typeof project>; db: string }> => {
    const p = project(prefix, { 'backend.yaml': localBackend('root'), 'app.yaml': ONE_DIRECTORY_GOAL });
    const r = await cli(['apply', '--yes', ...p.args], { cwd: p.dir, user });
    expect(r.code, r.stderr).toBe(0);
    return { p, db: join(p.state, 'state.db') };
  };

  // SQLite makes -wal and -shm with state.db's mode: status run while it was 0400 left them 0400, and apply and
  // run failed after (SQLITE_READONLY on the -shm) though state.db was writable again.
  it('a read-only command run while state.db was 0400 leaves nothing that stops apply once it is writable again', async () => {
    const { p, db } = await applied('ds-readonly-db-');
    chmodSync(db, 0o400);
    try {
      const status = await cli(['status', ...p.args], { cwd: p.dir, user });
      expect(status.code, status.stderr).toBe(0);
    } finally {
      chmodSync(db, 0o600);
    }
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir, user });
    expect(apply.code, apply.stderr).toBe(0);
    for (const f of [db, `${db}-wal`, `${db}-shm`]) if (existsSync(f)) expect((statSync(f).mode & 0o777).toString(8), f).toBe('600');
  });

  // It said "cannot write the state file …: read-only (SQLITE_READONLY_DIRECTORY); nothing of this write was
  // recorded" for commands that write nothing.
  it('in a directory this user may not write, status, drift and history say what reading needs, as on a read-only mount', async () => {
    const { p, db } = await applied('ds-readonly-dir-');
    const mode = statSync(p.state).mode & 0o7777;
    chmodSync(p.state, 0o555);
    try {
      for (const command of ['status', 'drift', 'history']) {
        const r = await cli([command, ...p.args], { cwd: p.dir, user });
        expect(r, command).toEqual({
          code: 1,
          stdout: '',
          stderr: `desiredstate ${command}: DS_STATE_STORE: cannot read state file ${db} (SQLITE_READONLY_DIRECTORY): reading it needs ${db}-shm beside it (the state is kept in WAL mode), and its directory is not writable (a read-only mount?); copy the state directory somewhere writable to read it\n`,
        });
      }
    } finally {
      chmodSync(p.state, mode);
    }
  });
});
