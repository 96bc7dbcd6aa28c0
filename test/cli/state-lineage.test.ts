import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, oneFileGoal, tempProject } from '../support/cli.ts';

// Issue 3, item 5: a state file from another lineage is refused. The lineage a state directory's
// state.db was made with is kept beside it (`lineage`), so a state.db copied in from another
// deployment is told apart from the one that belongs there.
const p = tempProject('ds-lineage-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
p.write('goals.yaml', oneFileGoal(p.root, 'port = 8080\n'));

describe('state lineage', () => {
  it('apply and run refuse a state.db copied in from another deployment; deleting the lineage file adopts it', async () => {
    const here = join(p.dir, 'here');
    const there = join(p.dir, 'there');
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', here], { cwd: p.dir })).code).toBe(0);
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', there], { cwd: p.dir })).code).toBe(0);
    const lineage = readFileSync(join(here, 'lineage'), 'utf8').trim();
    expect(lineage).toMatch(/^[0-9a-f-]{36}$/);
    expect(readFileSync(join(there, 'lineage'), 'utf8').trim()).not.toBe(lineage);

    copyFileSync(join(there, 'state.db'), join(here, 'state.db'));
    for (const args of [['apply', '--yes'], ['run', '--listen', '127.0.0.1:0']]) {
      const r = await cli([...args, '--goals', p.goals, '--state', here], { cwd: p.dir });
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr).toContain(`belongs to lineage`);
      expect(r.stderr).toContain(`not the expected ${lineage}`);
      expect(r.stderr).toContain(`; the directory keeps the lineage it was made with in ${join(here, 'lineage')}: put its own state.db back, or delete ${join(here, 'lineage')} to adopt this one`);
      expect(r.stderr.split(lineage).length - 1).toBe(1);
    }
    // plan would list the other deployment's nodes as removed from the goals: refused as apply refuses; retry
    // would release them.
    for (const args of [['plan'], ['retry', 'conf'], ['retry', '--all']]) {
      const r = await cli([...args, '--goals', p.goals, '--state', here], { cwd: p.dir });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toContain(`not the expected ${lineage}`);
    }
    // Reading it is harmless: status, drift and history still show what it holds, with a warning that names
    // what refuses it (it said "apply, run and plan", and retry refused it too).
    for (const command of ['status', 'drift', 'history']) {
      const r = await cli([command, '--state', here], { cwd: p.dir });
      expect(r.code, command).toBe(0);
      expect(r.stderr, command).toContain(`not the one its directory was made with (${join(here, 'lineage')}): it was copied in from another deployment, or replaced; every command that changes the state or plans from it refuses it`);
    }

    rmSync(join(here, 'lineage'));
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', here], { cwd: p.dir })).code).toBe(0);
    expect(readFileSync(join(here, 'lineage'), 'utf8').trim()).toBe(readFileSync(join(there, 'lineage'), 'utf8').trim());
  });

  it('a state directory from before the lineage file gets one at its next apply; a state.db deleted on purpose starts anew', async () => {
    const dir = join(p.dir, 'older');
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
    rmSync(join(dir, 'lineage'));
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
    expect(existsSync(join(dir, 'lineage'))).toBe(true);
    expect(statSync(join(dir, 'lineage')).mode & 0o777).toBe(0o600);
    for (const f of ['state.db', 'state.db-wal', 'state.db-shm']) rmSync(join(dir, f), { force: true });
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
  });

  // Another program's SQLite file: status advised migrating it with apply; apply refused it, but had made it
  // 0600, switched it to WAL (its header rewritten) and written the compiled goals beside it first. One with a
  // schema version (1 to 8) but not our application_id was all of that, and status advised migrating it.
  it.each([
    { name: 'with tables but no schema version', make: (db: Database.Database) => db.exec('CREATE TABLE t (x)'), why: 'it has tables but no schema version' },
    {
      name: 'with a schema version but not our mark',
      make: (db: Database.Database) => db.exec('CREATE TABLE foo (x); PRAGMA user_version = 3'),
      why: "schema version 3 without desiredstate's application_id",
    },
  ])("another program's SQLite file ($name) at state.db is refused untouched by status, plan and apply, nothing written beside it", async ({ name, make, why }) => {
    const dir = join(p.dir, `foreign-${name.replace(/\W/g, '')}`);
    mkdirSync(dir);
    const db = join(dir, 'state.db');
    const other = new Database(db);
    make(other);
    other.close();
    chmodSync(db, 0o644);
    const bytes = readFileSync(db);
    for (const args of [['status'], ['drift'], ['history'], ['plan'], ['apply', '--yes']]) {
      const r = await cli([...args, '--goals', p.goals, '--state', dir], { cwd: p.dir });
      expect(r, args[0]).toMatchObject({ code: 1, stderr: `desiredstate ${args[0]}: DS_STATE_STORE: ${db} is not a desiredstate state file (${why})\n` });
    }
    expect(readFileSync(db).equals(bytes)).toBe(true);
    expect(statSync(db).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['state.db']);
  });

  // plan and apply wrote the compiled goals beside a state.db they then refused: the header alone shows it.
  it('a state.db that is no database, of a newer schema, cut short, a directory or a link to nothing is refused by plan and apply with nothing written beside it', async () => {
    const garbage = join(p.dir, 'not-a-database');
    mkdirSync(garbage);
    writeFileSync(join(garbage, 'state.db'), 'not a database\n');
    const newer = join(p.dir, 'newer');
    const made = join(p.dir, 'made');
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', made], { cwd: p.dir })).code).toBe(0);
    const truncated = join(p.dir, 'truncated');
    mkdirSync(truncated);
    copyFileSync(join(made, 'state.db'), join(truncated, 'state.db'));
    truncateSync(join(truncated, 'state.db'), 2 * 4096);
    const raw = new Database(join(made, 'state.db'));
    raw.pragma('user_version = 999');
    raw.close();
    mkdirSync(newer);
    copyFileSync(join(made, 'state.db'), join(newer, 'state.db'));
    // A state.db cut short (its header whole), a directory or a link to nothing: apply wrote the compiled goals
    // beside it, then SQLite refused it (or said only "unable to open database file").
    const directory = join(p.dir, 'directory');
    mkdirSync(join(directory, 'state.db'), { recursive: true });
    const dangling = join(p.dir, 'dangling');
    mkdirSync(dangling);
    symlinkSync(join(p.dir, 'nowhere.db'), join(dangling, 'state.db'));
    const refusals = [
      { dir: garbage, why: 'is not a database, or is damaged (SQLITE_NOTADB)' },
      { dir: newer, why: 'has schema version 999, newer than the' },
      { dir: truncated, why: 'is not a database, or is damaged (SQLITE_CORRUPT)' },
      { dir: directory, why: 'is a directory, not a regular file' },
      { dir: dangling, why: `is a link to nothing (${join(p.dir, 'nowhere.db')}): restore what it points to, or remove it` },
    ];
    for (const { dir, why } of refusals) {
      for (const args of [['plan'], ['apply', '--yes']]) {
        const r = await cli([...args, '--goals', p.goals, '--state', dir], { cwd: p.dir });
        expect(r.code, `${args[0]} ${dir}`).toBe(1);
        expect(r.stderr).toContain(`desiredstate ${args[0]}: DS_STATE_STORE: state file ${join(dir, 'state.db')} ${why}`);
      }
      expect(readdirSync(dir)).toEqual(['state.db']);
    }
  });

  // A damaged page past those the open reads was an "internal error" (exit 70, a stack trace).
  it('a state.db damaged inside (a data page overwritten) is said to be damaged, exit 1, never an internal error', async () => {
    const dir = join(p.dir, 'damaged');
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
    for (const f of ['state.db-wal', 'state.db-shm']) rmSync(join(dir, f), { force: true });
    const db = join(dir, 'state.db');
    // The nodes table's root page, found as SQLite finds it, overwritten with garbage.
    const reader = new Database(db, { readonly: true });
    const root = reader.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'nodes'").pluck().get() as number;
    const pageSize = reader.pragma('page_size', { simple: true }) as number;
    reader.close();
    const fd = openSync(db, 'r+');
    writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (root - 1) * pageSize);
    closeSync(fd);
    for (const command of ['status', 'plan']) {
      const r = await cli([command, '--goals', p.goals, '--state', dir], { cwd: p.dir });
      expect(r.code, command).toBe(1);
      expect(r.stderr, command).toMatch(/DS_STATE_STORE: .*damaged \(SQLITE_CORRUPT/);
      expect(r.stderr, command).not.toContain('internal error');
    }
  });

  it('an emptied state.db (0 bytes) is refused as a truncation, by what reads and what writes, and left as it is; deleted with its lineage file, it starts anew', async () => {
    const dir = join(p.dir, 'emptied');
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
    const lineage = readFileSync(join(dir, 'lineage'), 'utf8').trim();
    for (const f of ['state.db-wal', 'state.db-shm']) rmSync(join(dir, f), { force: true });
    writeFileSync(join(dir, 'state.db'), '');
    for (const args of [['status'], ['plan', '--goals', p.goals], ['apply', '--yes', '--goals', p.goals]]) {
      const r = await cli([...args, '--state', dir], { cwd: p.dir });
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr, args[0]).toContain(`state file ${join(dir, 'state.db')} is empty (0 bytes)`);
      expect(statSync(join(dir, 'state.db')).size, args[0]).toBe(0);
    }
    const apply = await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir });
    expect(apply.stderr).toContain(`though its directory was made with lineage ${lineage}: truncated, or emptied? Restore it from a backup; to start a new state instead, delete it and the lineage file beside it`);
    rmSync(join(dir, 'state.db'));
    rmSync(join(dir, 'lineage'));
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
  });

  // A state.db that is a SQLite header and no tables (a copy taken without its -wal while a daemon ran, the
  // state all in the WAL; a first write the disk had no room for) was minted a new lineage by apply, then
  // refused as another deployment's; status advised migrating it.
  it('a state.db holding no tables where the directory keeps a lineage is refused as a truncation by every command, and left as it is', async () => {
    const dir = join(p.dir, 'header-only');
    expect((await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir })).code).toBe(0);
    const lineage = readFileSync(join(dir, 'lineage'), 'utf8').trim();
    for (const f of ['state.db', 'state.db-wal', 'state.db-shm']) rmSync(join(dir, f), { force: true });
    const db = join(dir, 'state.db');
    const empty = new Database(db);
    empty.pragma('journal_mode = WAL');
    empty.close();
    const bytes = readFileSync(db);
    expect(bytes.length).toBeGreaterThan(0);
    const listing = readdirSync(dir);
    const advice = `: truncated, or emptied? Restore it from a backup; to start a new state instead, delete it and the lineage file beside it. A copy of state.db taken without its state.db-wal while a daemon ran is one: take backups with sqlite3 ${db} ".backup FILE", or with the daemon stopped`;
    for (const args of [['status'], ['drift'], ['history'], ['plan', '--goals', p.goals], ['apply', '--yes', '--goals', p.goals], ['retry', '--all']]) {
      const r = await cli([...args, '--state', dir], { cwd: p.dir });
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr, args[0]).toContain(`DS_STATE_STORE: state file ${db} holds no state (a SQLite database without tables)`);
      expect(r.stderr, args[0]).toContain(advice);
      expect(readFileSync(db).equals(bytes), args[0]).toBe(true);
    }
    const apply = await cli(['apply', '--yes', '--goals', p.goals, '--state', dir], { cwd: p.dir });
    expect(apply.stderr).toContain(`tables), though its directory was made with lineage ${lineage}${advice}`);
    expect(readFileSync(join(dir, 'lineage'), 'utf8').trim()).toBe(lineage);
    expect(readdirSync(dir)).toEqual(listing);
  });
});
