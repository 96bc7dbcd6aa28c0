import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../src/runtime/clock.ts';
import { DesiredStateError, ErrorCodes } from '../../src/runtime/errors.ts';
import type { Migration, SqliteStateStoreOptions } from '../../src/runtime/sqlite-state-store.ts';
import { MIGRATIONS, SqliteStateStore } from '../../src/runtime/sqlite-state-store.ts';
import { ArtifactLedger } from '../../src/runtime/artifact-ledger.ts';
import type { ArtifactGrant } from '../../src/runtime/artifact-ledger.ts';
import type { DriftReport, NodeRecord } from '../../src/runtime/state-store.ts';
import { warnSkipped } from '../support/skip.ts';

let dir: string;
let dbPath: string;
const open: SqliteStateStore[] = [];

function openStore(options: Partial<SqliteStateStoreOptions> = {}): SqliteStateStore {
  const s = SqliteStateStore.open({ path: dbPath, lock: true, ...options });
  open.push(s);
  return s;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof DesiredStateError) return err.code;
    throw err;
  }
  return undefined;
}

function errorOf(fn: () => unknown): DesiredStateError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DesiredStateError) return err;
    throw err;
  }
  throw new Error('expected a DesiredStateError');
}

function node(id: string, extra: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id,
    goal: 'g',
    type: 'local.file',
    backendId: 'local',
    status: 'ready',
    appliedDigest: 'sha256:abc',
    outputs: { path: `/tmp/${id}`, size: 3, ok: true, none: null },
    managed: true,
    lastFault: null,
    attempts: 0,
    retryAt: null,
    reason: null,
    snapshot: { status: 'active', value: 'ready', historyValue: {}, context: {}, children: {} },
    memo: { v: 1, ino: 42, ctime: 1763830000123.4568, sha256: 'abc', trusted: true, none: null },
    deletionPolicy: 'Delete',
    updatedAt: 1000,
    ...extra,
  };
}

function drift(nodeId: string, detectedAt: number, extra: Partial<DriftReport> = {}): DriftReport {
  return {
    goal: 'g',
    node: nodeId,
    backendId: 'local',
    diffs: [{ path: 'mode', desired: '0644', actual: '0600' }],
    firstSeen: detectedAt,
    detectedAt,
    action: 'reported',
    flapping: false,
    commit: 'abc123',
    ...extra,
  };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ds-store-'));
  dbPath = join(dir, 'state', 'state.db');
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('opening', () => {
  it('creates a WAL file with the pragmas, the schema and a lineage', () => {
    const s = openStore();
    expect(s.schemaVersion).toBe(MIGRATIONS.length);
    expect(s.lineage).toMatch(/^[0-9a-f-]{36}$/);
    expect(s.integrityCheck()).toBe('ok');
    const raw = new Database(dbPath, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    const tables = (raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    expect(tables).toEqual(['artifact_grants', 'artifact_keys', 'artifact_requests', 'artifact_reviews', 'artifact_runs', 'artifacts', 'drift', 'events', 'meta', 'nodes', 'operations', 'runs']);
    raw.close();
  });

  it('keeps data and lineage across close and reopen', () => {
    const s = openStore();
    s.putNodes([node('a'), node('b')]);
    s.setMeta('lastGood', 'rev1');
    const lineage = s.lineage;
    s.close();
    expect(existsSync(`${dbPath}.lock`)).toBe(false);
    const again = openStore({ expectedLineage: lineage });
    expect(again.lineage).toBe(lineage);
    expect(again.listNodes().map((n) => n.id)).toEqual(['a', 'b']);
    expect(again.getMeta('lastGood')).toBe('rev1');
  });

  it.each([
    { name: 'lineage of another deployment', options: { expectedLineage: '00000000-0000-4000-8000-000000000000' }, message: /lineage .* not the expected/ },
    { name: 'lock together with readonly', options: { readonly: true, lock: true }, message: /read-only/ },
  ])('refuses $name with DS_STATE_STORE', ({ options, message }) => {
    openStore().close();
    const err = errorOf(() => openStore(options));
    expect(err.code).toBe(ErrorCodes.StateStore);
    expect(err.message).toMatch(message);
  });

  it.each([
    { name: 'readonly', options: { readonly: true, lock: false } },
    { name: 'must-exist', options: { lineage: 'must-exist' as const } },
  ])('refuses a missing file when $name', ({ options }) => {
    const err = errorOf(() => openStore(options));
    expect(err.code).toBe(ErrorCodes.StateStore);
    expect(err.message).toContain('no state file');
    expect(existsSync(`${dbPath}.lock`)).toBe(false); // a failed open releases the lock
  });

  it('refuses a SQLite file that is not a state file', () => {
    writeFileSync(join(dir, 'other.db'), '');
    const other = new Database(join(dir, 'other.db'));
    other.exec('CREATE TABLE mine (x)');
    other.close();
    const err = errorOf(() => SqliteStateStore.open({ path: join(dir, 'other.db'), lock: false }));
    expect(err.code).toBe(ErrorCodes.StateStore);
    expect(err.message).toContain('not a desiredstate state file');
  });

  // Another program's SQLite file was made 0600 and switched to WAL (its header rewritten) before it was
  // refused; a read-only open advised migrating it with apply, which then refused it.
  it.each([
    { name: 'with tables but no schema version', make: (db: Database.Database) => db.exec('CREATE TABLE t (x)'), why: 'it has tables but no schema version' },
    { name: "marked as another program's", make: (db: Database.Database) => db.pragma('application_id = 42'), why: 'application_id 42' },
    // A schema version without our mark was migrated as a state file of that version, or advised to be.
    { name: 'with a schema version but not our mark', make: (db: Database.Database) => db.exec('CREATE TABLE foo (x); PRAGMA user_version = 3'), why: "schema version 3 without desiredstate's application_id" },
  ])('refuses a SQLite file $name untouched, read-only too: its bytes, its mode, nothing beside it', ({ make, why }) => {
    const stateDir = join(dir, 'foreign');
    mkdirSync(stateDir);
    const path = join(stateDir, 'state.db');
    const db = new Database(path);
    make(db);
    db.close();
    chmodSync(path, 0o644);
    const bytes = readFileSync(path);
    for (const options of [{ lock: true }, { lock: false, readonly: true }]) {
      const err = errorOf(() => SqliteStateStore.open({ path, ...options }));
      expect(err.code).toBe(ErrorCodes.StateStore);
      expect(err.message).toBe(`${path} is not a desiredstate state file (${why})`);
    }
    expect(readFileSync(path).equals(bytes)).toBe(true);
    expect((statSync(path).mode & 0o777).toString(8)).toBe('644');
    expect(readdirSync(stateDir)).toEqual(['state.db']);
  });

  // A copy of state.db taken while a store has it open, before its first checkpoint, is a SQLite header and
  // no tables (the state is all in the -wal): a writing open where its lineage is known minted a new one in
  // it, then refused it as another deployment's; a read-only open advised migrating it.
  it('a copy of state.db taken without its -wal while a store has it open is refused as holding no state, untouched', () => {
    const store = openStore({ lock: false });
    store.putNodes([node('a')]);
    const copyDir = join(dir, 'copy');
    mkdirSync(copyDir);
    const copy = join(copyDir, 'state.db');
    copyFileSync(dbPath, copy);
    chmodSync(copy, 0o644);
    const bytes = readFileSync(copy);
    const noState = `state file ${copy} holds no state (a SQLite database without tables)`;
    for (const options of [{ lock: true, expectedLineage: store.lineage }, { lock: false, readonly: true, expectedLineage: store.lineage }]) {
      const err = errorOf(() => SqliteStateStore.open({ path: copy, ...options }));
      expect(err.code).toBe(ErrorCodes.StateStore);
      expect(err.message).toContain(`${noState}, though its directory was made with lineage ${store.lineage}: truncated, or emptied?`);
    }
    expect(errorOf(() => SqliteStateStore.open({ path: copy, lock: false, readonly: true })).message).toContain(`${noState}: truncated, or emptied?`);
    expect(readFileSync(copy).equals(bytes)).toBe(true);
    expect((statSync(copy).mode & 0o777).toString(8)).toBe('644');
    expect(readdirSync(copyDir)).toEqual(['state.db']);
  });

  // What its header cannot tell (a WAL beside it may hold what it does not show yet) SQLite is asked, and says the same.
  it('a read-only open of a WAL-mode SQLite file with tables but no schema version says it is not a state file, not to migrate it', () => {
    const path = join(dir, 'foreign-wal.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (x)');
    const err = errorOf(() => SqliteStateStore.open({ path, lock: false, readonly: true }));
    db.close();
    expect(err.message).toBe(`${path} is not a desiredstate state file (it has tables but no schema version)`);
  });

  // A file that is no SQLite database at all (a copy gone wrong, another program's file) was an
  // unclassified SqliteError: the CLI printed "internal error" and a stack trace (exit 70).
  it.each([
    { name: 'read-write', options: { lock: true } },
    { name: 'read-only', options: { readonly: true, lock: false } },
  ])('refuses a file that is not a database ($name) with DS_STATE_STORE, releasing the lock', ({ options }) => {
    const path = join(dir, 'garbage.db');
    writeFileSync(path, 'garbage garbage garbage garbage garbage garbage\n');
    const err = errorOf(() => SqliteStateStore.open({ path, ...options }));
    expect(err.code).toBe(ErrorCodes.StateStore);
    expect(err.message).toBe(`state file ${path} is not a database, or is damaged (SQLITE_NOTADB)`);
    expect(existsSync(`${path}.lock`)).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe('garbage garbage garbage garbage garbage garbage\n');
  });

  // A directory said "disk I/O error" or "unable to open database file"; a FIFO made status wait
  // forever in SQLite's open. Neither is opened.
  it.each([
    { name: 'a directory', make: (path: string) => mkdirSync(path), what: 'a directory' },
    { name: 'a FIFO', make: (path: string) => spawnSync('mkfifo', [path]), what: 'a FIFO' },
  ])('refuses $name where the state file should be, read-only too, without opening it', ({ make, what }) => {
    const path = join(dir, `special-${what.replace(/\W/g, '')}.db`);
    make(path);
    for (const options of [{ lock: true }, { readonly: true, lock: false }]) {
      const err = errorOf(() => SqliteStateStore.open({ path, ...options }));
      expect(err.code).toBe(ErrorCodes.StateStore);
      expect(err.message).toBe(`state file ${path} is ${what}, not a regular file`);
    }
  });

  // A directory or FIFO at the WAL or the shared memory was SQLite's "disk I/O error", naming neither.
  it.each([
    { name: 'a directory', make: (path: string) => mkdirSync(path), what: 'a directory' },
    { name: 'a FIFO', make: (path: string) => spawnSync('mkfifo', [path]), what: 'a FIFO' },
  ])('refuses $name at state.db-wal or state.db-shm, naming it', ({ make, what }) => {
    openStore({ lock: false }).close();
    for (const suffix of ['-wal', '-shm']) {
      const file = `${dbPath}${suffix}`;
      rmSync(file, { force: true });
      make(file);
      for (const options of [{ lock: true }, { readonly: true, lock: false }]) {
        const err = errorOf(() => SqliteStateStore.open({ path: dbPath, ...options }));
        expect(err.code).toBe(ErrorCodes.StateStore);
        expect(err.message).toBe(`state file ${file} is ${what}, not a regular file`);
      }
      rmSync(file, { recursive: true });
    }
  });

  // A state on a read-only mount (a backup, a snapshot) was refused as "cannot write the state file …
  // nothing of this write was recorded", for a command that writes nothing.
  const canMount = process.platform === 'linux' && spawnSync('unshare', ['-m', 'true']).status === 0;
  if (!canMount) warnSkipped(['SKIPPING the read-only mount test of the state store: it needs `unshare -m` (Linux, root).']);
  it.skipIf(!canMount)('on a read-only mount, a read says why it cannot read (the WAL needs its -shm file), not that a write failed', () => {
    openStore({ lock: false }).close();
    const script = `
      import { SqliteStateStore } from ${JSON.stringify(join(process.cwd(), 'src/runtime/sqlite-state-store.ts'))};
      try { SqliteStateStore.open({ path: ${JSON.stringify(dbPath)}, lock: false, readonly: true }).listNodes(); console.log('READ'); }
      catch (err) { console.log(err.code, err.message); }
    `;
    const child = spawnSync(
      'unshare',
      ['-m', 'sh', '-c', `mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$1" --input-type=module -e "$2"`, dir, process.execPath, script],
      { encoding: 'utf8', cwd: process.cwd() },
    );
    expect(child.stdout).toContain(ErrorCodes.StateStore);
    expect(child.stdout).toContain(`cannot read state file ${dbPath} (SQLITE_CANTOPEN): reading it needs ${dbPath}-shm beside it`);
    expect(child.stdout).not.toContain('write');
  });

  it('opens read-only for status commands while the daemon holds the lock', () => {
    const w = openStore();
    w.putNodes([node('a')]);
    const r = openStore({ readonly: true, lock: false });
    expect(r.listNodes().map((n) => n.id)).toEqual(['a']);
    expect(r.lineage).toBe(w.lineage);
    expect(() => r.setMeta('x', 'y')).toThrow(/readonly/);
  });
});

describe('migrations', () => {
  const v1: Migration = MIGRATIONS[0]!;
  const v2: Migration = { description: 'two', sql: 'CREATE TABLE extra (x INTEGER) STRICT;' };
  const broken: Migration = { description: 'broken', sql: 'CREATE TABLE extra2 (x); THIS IS NOT SQL;' };

  it('migrates an older file in one step, keeping its lineage', () => {
    const s1 = openStore({ migrations: [v1] });
    const lineage = s1.lineage;
    expect(s1.schemaVersion).toBe(1);
    s1.close();
    const s2 = openStore({ migrations: [v1, v2] });
    expect(s2.schemaVersion).toBe(2);
    expect(s2.lineage).toBe(lineage);
    s2.close();
    const raw = new Database(dbPath, { readonly: true });
    expect(raw.prepare("SELECT name FROM sqlite_master WHERE name = 'extra'").get()).toBeDefined();
    raw.close();
  });

  it('keeps the node records of a file made before observation memos (schema 3), with no memo', () => {
    const s3 = openStore({ migrations: MIGRATIONS.slice(0, 3) });
    const raw = new Database(dbPath);
    raw
      .prepare("INSERT INTO nodes (id, goal, type, backend_id, status, applied_digest, outputs, managed, attempts, deletion_policy, updated_at) VALUES ('a', 'g', 'local.file', 'local', 'ready', 'd1', '{\"path\":\"/x\"}', 1, 0, 'Orphan', 5)")
      .run();
    raw.close();
    s3.close();
    const s = openStore();
    expect(s.schemaVersion).toBe(MIGRATIONS.length);
    expect(s.getNode('a')).toMatchObject({ status: 'ready', appliedDigest: 'd1', outputs: { path: '/x' }, memo: null });
    s.putNodes([{ ...s.getNode('a')!, memo: { v: 1, seenAt: 7 } }]);
    expect(s.getNode('a')?.memo).toEqual({ v: 1, seenAt: 7 });
  });

  it('keeps the grants of a file made before grants named their action (schema 5): open ones permit no action, and are voided once settled', () => {
    const s5 = openStore({ migrations: MIGRATIONS.slice(0, 5) });
    const raw = new Database(dbPath);
    raw.prepare("INSERT INTO artifacts (hash, origin, content, created_at) VALUES ('h', 'template/v1', 'x', 1)").run();
    raw.prepare("INSERT INTO artifact_grants (hash, subject, actor, at, note) VALUES ('h', 'n1', 'ana', 2, NULL)").run();
    raw.close();
    s5.close();
    const s = openStore();
    expect(s.artifacts.grants('h')).toEqual([expect.objectContaining({ subject: 'n1', action: null, usedAt: null, voidedAt: null })]);
    for (const verb of ['create', 'update', 'delete']) expect(s.artifacts.takeGrant('h', 'n1', { action: verb, inputDigest: 'd' }), verb).toBeUndefined();
    expect(s.artifacts.settle('h', 'n1')).toBe(1);
    expect(s.artifacts.grants('h')[0]?.voidedAt).toEqual(expect.any(Number));
  });

  it('keeps the grants of a file made before grants named their input (schema 6): open ones permit no input, and are voided by the next hold; requests are asked again', () => {
    const s6 = openStore({ migrations: MIGRATIONS.slice(0, 6) });
    const raw = new Database(dbPath);
    raw.prepare("INSERT INTO artifacts (hash, origin, content, created_at) VALUES ('h', 'template/v1', 'x', 1)").run();
    raw.prepare("INSERT INTO artifact_grants (hash, subject, action, actor, at, note) VALUES ('h', 'n1', 'create', 'ana', 2, NULL)").run();
    raw.prepare("INSERT INTO artifact_requests (hash, subject, action, at) VALUES ('h', 'n2', 'create', 3)").run();
    raw.close();
    s6.close();
    const s = openStore();
    expect(s.artifacts.grants('h')).toEqual([expect.objectContaining({ subject: 'n1', action: 'create', inputDigest: null, input: null, usedAt: null, voidedAt: null })]);
    expect(s.artifacts.takeGrant('h', 'n1', { action: 'create', inputDigest: 'd' })).toBeUndefined();
    expect(s.artifacts.openRequest('h', 'n2')).toBeUndefined();
    expect(s.artifacts.voidOtherInputs('h', 'n1', 'd')).toBe(1);
    expect(s.artifacts.grants('h')[0]?.voidedAt).toEqual(expect.any(Number));
  });

  // A release of schema 8 read an applied digest `goal#managed` as a changed goal and updated a hand-edited
  // node under selfHeal: false; the schema step makes it refuse the file as newer, as it refuses any.
  const beforeManaged = MIGRATIONS.findIndex((m) => m.description.includes('managed digests'));

  it('marks a file whose records may hold managed digests with a schema version that a release before them refuses as newer', () => {
    expect(beforeManaged).toBeGreaterThan(0);
    const s = openStore();
    expect(s.schemaVersion).toBeGreaterThan(beforeManaged);
    s.putNodes([node('a', { appliedDigest: 'g1#m1' })]);
    s.close();
    const err = errorOf(() => openStore({ migrations: MIGRATIONS.slice(0, beforeManaged) }));
    expect(err.code).toBe(ErrorCodes.StateStore);
    expect(err.message).toContain(`schema version ${MIGRATIONS.length}, newer than the ${beforeManaged} this desiredstate knows: it was written by a newer release`);
  });

  it('keeps the node records of a file made before managed digests, whose applied digests are read as before', () => {
    expect(beforeManaged).toBeGreaterThan(0);
    const old = openStore({ migrations: MIGRATIONS.slice(0, beforeManaged) });
    old.putNodes([node('a', { appliedDigest: 'g1' }), node('b', { appliedDigest: 'g2/r2' })]);
    const before = old.listNodes();
    old.close();
    const s = openStore();
    expect(s.schemaVersion).toBe(MIGRATIONS.length);
    expect(s.listNodes()).toEqual(before);
    s.putNodes([{ ...s.getNode('a')!, appliedDigest: 'g1#m1' }]);
    expect(s.getNode('a')?.appliedDigest).toBe('g1#m1');
  });

  // Two approve-runs at once read the open request before either granted it, and both granted: the spare grant later ran a retry unapproved.
  it('answers one request with one grant: a grant from another connection between the first one\'s start and its write leaves it nothing to answer', () => {
    const s = openStore();
    const use = { action: 'create', inputDigest: 'd', input: '{}' };
    const { hash } = s.artifacts.put({ kind: 'generic.resource', shape: '{}', origin: 'template/v1', content: 'x' });
    s.artifacts.request(hash, 'n1', use);
    const other = SqliteStateStore.open({ path: dbPath, lock: false });
    open.push(other);
    const raw = new Database(dbPath);
    let second: ArtifactGrant | undefined;
    const racing = new ArtifactLedger({
      statement: (sql) => raw.prepare(sql),
      clock: new FakeClock(10),
      // The other approval lands just before this one's write transaction begins.
      transaction: (fn) => {
        second ??= other.artifacts.grant(hash, 'n1', 'bob', null);
        return raw.transaction(fn).immediate();
      },
    });
    const first = racing.grant(hash, 'n1', 'ana', null);
    raw.close();
    expect(second).toMatchObject({ by: 'bob', action: 'create', inputDigest: 'd' });
    expect(first).toBeUndefined();
    expect(s.artifacts.grants(hash).map((g) => g.by)).toEqual(['bob']);
  });

  it('refuses a file of a newer schema with a clear message', () => {
    openStore({ migrations: [v1, v2] }).close();
    const err = errorOf(() => openStore({ migrations: [v1] }));
    expect(err.code).toBe(ErrorCodes.StateStore);
    expect(err.message).toMatch(/schema version 2, newer than the 1 this desiredstate knows/);
    expect(err.context).toMatchObject({ schemaVersion: 2, knownVersion: 1 });
  });

  it('rolls a failed migration back entirely', () => {
    openStore({ migrations: [v1] }).close();
    const err = errorOf(() => openStore({ migrations: [v1, v2, broken] }));
    expect(err.code).toBe(ErrorCodes.StateStore);
    expect(err.message).toContain('schema version 3 (broken)');
    expect(err.cause).toBeDefined();
    const raw = new Database(dbPath, { readonly: true });
    expect(raw.pragma('user_version', { simple: true })).toBe(1);
    expect(raw.prepare("SELECT name FROM sqlite_master WHERE name IN ('extra', 'extra2')").all()).toEqual([]);
    raw.close();
  });

  it('refuses to migrate a read-only open', () => {
    openStore({ migrations: [v1] }).close();
    const err = errorOf(() => openStore({ migrations: [v1, v2], readonly: true, lock: false }));
    expect(err.message).toMatch(/older than 2/);
  });
});

describe('the lock', () => {
  it('refuses a second open in the same process, naming the PID and path', () => {
    openStore();
    const err = errorOf(() => openStore());
    expect(err.code).toBe(ErrorCodes.StateLocked);
    expect(err.message).toContain(`process ${process.pid}`);
    expect(err.message).toContain(`${dbPath}.lock`);
    expect(err.context).toMatchObject({ pid: process.pid });
  });

  it('refuses an open from another process while held', () => {
    openStore();
    const script = `
      import { SqliteStateStore } from ${JSON.stringify(join(process.cwd(), 'src/runtime/sqlite-state-store.ts'))};
      try { SqliteStateStore.open({ path: ${JSON.stringify(dbPath)}, lock: true }); console.log('OPENED'); }
      catch (err) { console.log(err.code, err.message); }
    `;
    const child = spawnSync('npx', ['node', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: process.cwd() });
    expect(child.stdout).toContain(ErrorCodes.StateLocked);
    expect(child.stdout).toContain(`process ${process.pid}`);
  });

  it('takes over a stale lock left by a killed process', () => {
    // A child that took the lock and died without releasing it (as after kill -9).
    const script = `
      import { SqliteStateStore } from ${JSON.stringify(join(process.cwd(), 'src/runtime/sqlite-state-store.ts'))};
      SqliteStateStore.open({ path: ${JSON.stringify(dbPath)}, lock: true });
      process.kill(process.pid, 'SIGKILL');
    `;
    spawnSync('npx', ['node', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: process.cwd() });
    const stale = readFileSync(`${dbPath}.lock`, 'utf8');
    expect(Number(stale.split('\n')[0])).not.toBe(process.pid);
    const s = openStore();
    expect(readFileSync(`${dbPath}.lock`, 'utf8').split('\n')[0]).toBe(String(process.pid));
    s.close();
    expect(existsSync(`${dbPath}.lock`)).toBe(false);
  });

  it.skipIf(process.platform !== 'linux')('takes over a lock written in another boot, whatever its pid names now (a power cut, a reboot)', () => {
    openStore().close();
    // A live process of another program, whose pid the lock happens to name.
    const other = spawn('sleep', ['30']);
    try {
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      writeFileSync(`${dbPath}.lock`, `${other.pid}\n${hostname()}\nsome-token\n00000000-0000-0000-0000-000000000000\n`);
      expect(SqliteStateStore.lockHolder(dbPath)).toMatchObject({ pid: other.pid, alive: false });
      const s = openStore();
      const myStart = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[19];
      expect(readFileSync(`${dbPath}.lock`, 'utf8').split('\n')).toEqual([String(process.pid), hostname(), expect.any(String), boot, myStart, '']);
      s.close();
      // Written in this boot, or by a release that wrote no boot id: the pid's process holds it.
      for (const line of [`${boot}\n`, '']) {
        writeFileSync(`${dbPath}.lock`, `${other.pid}\n${hostname()}\nsome-token\n${line}`);
        expect(codeOf(() => openStore())).toBe(ErrorCodes.StateLocked);
      }
    } finally {
      other.kill('SIGKILL');
    }
  });

  // A daemon killed as pid 1 of a container and restarted there as pid 1 again found its own pid in
  // the lock, alive, for ever. The pid's process now is told apart by when it started.
  it.skipIf(process.platform !== 'linux')('takes over a lock whose pid now names a process started after it was written (pid 1 again in a restarted container, a pid reused)', () => {
    openStore().close();
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const other = spawn('sleep', ['30']);
    try {
      const start = readFileSync(`/proc/${other.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;
      // Written by the process running under that pid: held.
      writeFileSync(`${dbPath}.lock`, `${other.pid}\n${hostname()}\nsome-token\n${boot}\n${start}\n`);
      expect(SqliteStateStore.lockHolder(dbPath)).toMatchObject({ pid: other.pid, alive: true });
      expect(codeOf(() => openStore())).toBe(ErrorCodes.StateLocked);
      // Written by an earlier process under the same pid (ours, here, as pid 1 restarted would be): stale.
      for (const pid of [other.pid!, process.pid]) {
        writeFileSync(`${dbPath}.lock`, `${pid}\n${hostname()}\nsome-token\n${boot}\n${Number(start) - 1}\n`);
        expect(SqliteStateStore.lockHolder(dbPath)).toMatchObject({ pid, alive: false });
        openStore().close();
      }
    } finally {
      other.kill('SIGKILL');
    }
  });

  it.skipIf(process.platform !== 'linux')('takes over a lock held by a zombie (killed, not yet reaped by its parent)', async () => {
    openStore().close();
    // sh starts a child that exits at once, then becomes sleep, which never reaps it: a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
      // A deadline, not a bar: on a loaded machine the child's exit can take more than waitFor's default second.
      await vi.waitFor(() => expect(readFileSync(`/proc/${zombie}/stat`, 'utf8')).toMatch(/\) Z /), { timeout: 20_000, interval: 20 });
      writeFileSync(`${dbPath}.lock`, `${zombie}\n${hostname()}\nsome-token\n`);
      expect(SqliteStateStore.lockHolder(dbPath)).toMatchObject({ pid: zombie, alive: false });
      openStore().close();
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('takes over a garbage lock file', () => {
    openStore().close();
    writeFileSync(`${dbPath}.lock`, 'not a pid');
    expect(codeOf(() => openStore())).toBeUndefined();
  });

  it('lets a read-only open ignore the lock', () => {
    openStore();
    expect(codeOf(() => openStore({ readonly: true, lock: false }))).toBeUndefined();
  });

  // A daemon whose lock or state file was removed under it wrote on unseen to a file no one reads again,
  // while a second writer took the state: it looks with lostOwnership, and stops.
  describe('lostOwnership: whether the holder still owns the state', () => {
    it('says nothing while the lock and the file are as opened, nor for a store without the lock', () => {
      const s = openStore();
      s.putNodes([node('a')]);
      expect(s.lostOwnership()).toBeUndefined();
      expect(openStore({ readonly: true, lock: false }).lostOwnership()).toBeUndefined();
    });

    it('names the lock file removed, or taken by another process', () => {
      const s = openStore();
      rmSync(`${dbPath}.lock`);
      expect(s.lostOwnership()).toEqual({ file: `${dbPath}.lock`, reason: `lock file ${dbPath}.lock was removed` });
      const other = openStore();
      expect(s.lostOwnership()).toEqual({ file: `${dbPath}.lock`, reason: `lock file ${dbPath}.lock was replaced (now held by process ${process.pid} on ${hostname()})` });
      expect(other.lostOwnership()).toBeUndefined();
    });

    it('names the state file removed, or replaced by another', () => {
      const s = openStore();
      rmSync(dbPath);
      expect(s.lostOwnership()).toEqual({ file: dbPath, reason: `state file ${dbPath} was removed` });
      writeFileSync(dbPath, '');
      expect(s.lostOwnership()).toEqual({ file: dbPath, reason: `state file ${dbPath} was replaced` });
    });

    it('names the lock file when the whole state directory is removed', () => {
      const s = openStore();
      rmSync(join(dir, 'state'), { recursive: true });
      expect(s.lostOwnership()).toEqual({ file: `${dbPath}.lock`, reason: `lock file ${dbPath}.lock was removed` });
    });

    it('names the lock file when the state directory is made a file, or the lock something that is no file', () => {
      const s = openStore();
      rmSync(`${dbPath}.lock`);
      mkdirSync(`${dbPath}.lock`);
      expect(s.lostOwnership()).toEqual({ file: `${dbPath}.lock`, reason: `lock file ${dbPath}.lock was replaced by a directory` });
      rmSync(join(dir, 'state'), { recursive: true });
      writeFileSync(join(dir, 'state'), '');
      expect(s.lostOwnership()).toEqual({ file: `${dbPath}.lock`, reason: `lock file ${dbPath}.lock was removed: a path above it is no directory now` });
    });
  });
});

describe('nodes', () => {
  it('round-trips records, JSON fields included', () => {
    const s = openStore();
    const records = [
      node('a'),
      node('b', { status: 'failed', lastFault: { class: 'throttled', message: 'slow down', retryAfterMs: 500 }, attempts: 2, retryAt: 5000, outputs: null, snapshot: null, memo: null, managed: false, deletionPolicy: 'Orphan', reason: 'backoff' }),
    ];
    expect(s.countNodes()).toBe(0);
    s.putNodes(records);
    expect(s.countNodes()).toBe(2);
    expect(s.getNode('a')).toEqual(records[0]);
    expect(s.getNode('b')).toEqual(records[1]);
    expect(s.getNode('missing')).toBeUndefined();
    s.putNodes([node('a', { status: 'drifted', attempts: 1 })]);
    expect(s.getNode('a')?.status).toBe('drifted');
    s.removeNodes(['a']);
    expect(s.listNodes().map((n) => n.id)).toEqual(['b']);
    expect(s.countNodes()).toBe(1);
  });

  // A previous release said "no circuit breaker counts this fault" with one of two flags; a state file
  // it wrote is read (by status, too, which opens it read-only) as `notTheBackend` says it now.
  it('reads a fault a previous release stored with beforeCall or nodeOnly as notTheBackend says it', () => {
    const w = openStore();
    w.putNodes([node('waiting', { status: 'failed' }), node('changed', { status: 'failed' }), node('plain', { status: 'failed' })]);
    const raw = new Database(dbPath);
    const setFault = raw.prepare('UPDATE nodes SET last_fault = ? WHERE id = ?');
    setFault.run('{"class":"transient","message":"waiting for outputs p.name","code":"outputs-missing","beforeCall":true}', 'waiting');
    setFault.run('{"class":"transient","message":"path a leads out of the backend root","code":"path-changed","hint":"remove it","nodeOnly":true}', 'changed');
    setFault.run('{"class":"auth","message":"permission denied"}', 'plain');
    raw.close();
    for (const s of [w, openStore({ readonly: true, lock: false })]) {
      expect(s.getNode('waiting')?.lastFault).toStrictEqual({ class: 'transient', message: 'waiting for outputs p.name', code: 'outputs-missing', notTheBackend: 'before-call' });
      expect(s.listNodes().find((n) => n.id === 'changed')?.lastFault).toStrictEqual({ class: 'transient', message: 'path a leads out of the backend root', code: 'path-changed', hint: 'remove it', notTheBackend: 'node-only' });
      expect(s.getNode('plain')?.lastFault).toStrictEqual({ class: 'auth', message: 'permission denied' });
    }
  });

  it('writes and reads back 100k records in one transaction', () => {
    // Speed is measured in bench/, not here: this checks that a large batch is one write that round-trips.
    const s = openStore();
    const records = Array.from({ length: 100_000 }, (_, i) => node(`n${String(i).padStart(6, '0')}`, { updatedAt: i }));
    s.putNodes(records);
    s.putNodes(records.map((r) => ({ ...r, status: 'drifted' as const })));
    const all = s.listNodes();
    expect(all).toHaveLength(100_000);
    expect(all[0]?.id).toBe('n000000');
    expect(all[99_999]?.status).toBe('drifted');
  });
});

describe('operations', () => {
  it('records pending operations durably and finishes them once', () => {
    const clock = new FakeClock(10_000);
    const s = openStore({ clock });
    const run = s.startRun('apply', 'abc');
    const create = s.beginOperation('a', 'create', run);
    clock.advance(5);
    const update = s.beginOperation('b', 'update', null);
    expect(s.pendingOperations()).toEqual([
      { id: create, node: 'a', op: 'create', runId: run, startedAt: 10_000 },
      { id: update, node: 'b', op: 'update', runId: null, startedAt: 10_005 },
    ]);
    s.finishOperation(create, 'done');
    expect(s.pendingOperations().map((o) => o.id)).toEqual([update]);
    expect(codeOf(() => s.finishOperation(create, 'failed'))).toBe(ErrorCodes.StateStore);
    s.beginOperation('a', 'create', run);
    expect(s.countOperations('a', 'create')).toBe(2);
    expect(s.countOperations('a', 'delete')).toBe(0);
  });

  it('keeps a pending operation across a crash (reopen without close)', () => {
    const s = openStore();
    const id = s.beginOperation('a', 'create', null);
    // Simulate a crash: reopen from another connection without finishing.
    const r = SqliteStateStore.open({ path: dbPath, lock: false, readonly: true });
    expect(r.pendingOperations().map((o) => o.id)).toEqual([id]);
    r.close();
  });

  it('refuses an operation naming a run that does not exist', () => {
    const s = openStore();
    expect(() => s.beginOperation('a', 'create', 999)).toThrow(/FOREIGN KEY/);
  });
});

describe('runs', () => {
  it('lists runs newest first with their summary', () => {
    const clock = new FakeClock(1000);
    const s = openStore({ clock });
    const first = s.startRun('apply', 'c1');
    clock.advance(10);
    const summary = { created: 1, updated: 2, deleted: 0, unchanged: 3, failed: 0, blocked: 0, held: 0, drifted: 1 };
    s.finishRun(first, summary);
    const second = s.startRun('daemon', null);
    expect(s.listRuns()).toEqual([
      { id: second, startedAt: 1010, finishedAt: null, trigger: 'daemon', commit: null, summary: null },
      { id: first, startedAt: 1000, finishedAt: 1010, trigger: 'apply', commit: 'c1', summary },
    ]);
    expect(s.listRuns(1).map((r) => r.id)).toEqual([second]);
  });
});

describe('history retention', () => {
  it('forgets old finished history; keeps pending operations, the latest run and the runs recent operations point to', () => {
    const clock = new FakeClock(1000);
    const s = openStore({ clock });
    const summary = { created: 0, updated: 0, deleted: 0, unchanged: 0, failed: 0, blocked: 0, held: 0, drifted: 0 };
    // t=1000: an old run with a finished and a never-finished (crashed) operation.
    const oldRun = s.startRun('apply', null);
    s.finishOperation(s.beginOperation('a', 'create', oldRun), 'done');
    const crashed = s.beginOperation('b', 'create', oldRun);
    s.finishRun(oldRun, summary);
    // t=1000: an old run with only a finished operation, and old drift and events.
    const oldRun2 = s.startRun('apply', null);
    s.finishOperation(s.beginOperation('c', 'update', oldRun2), 'done');
    s.finishRun(oldRun2, summary);
    s.recordDrift(drift('a', 1000));
    s.appendEvent({ at: 1000, node: null, kind: 'goals-rejected', data: {} });
    clock.advance(10_000);
    // t=11000: recent history.
    const recent = s.startRun('daemon', null);
    s.finishOperation(s.beginOperation('d', 'update', recent), 'done');
    s.finishRun(recent, summary);
    s.recordDrift(drift('d', 11_000));
    s.appendEvent({ at: 11_000, node: 'd', kind: 'operator-retry', data: {} });

    expect(s.pruneHistory(5_000)).toEqual({ operations: 2, runs: 1, drift: 1, events: 1 });
    expect(s.pendingOperations().map((o) => o.id)).toEqual([crashed]);
    expect(s.listRuns().map((r) => r.id)).toEqual([recent, oldRun]); // oldRun: its pending operation points to it
    expect(s.listDrift().map((d) => d.node)).toEqual(['d']);
    expect(s.listEvents().map((e) => e.kind)).toEqual(['operator-retry']);
    expect(s.countOperations('d', 'update')).toBe(1);
    // Nothing is old enough: nothing goes; everything old: the latest run still stays.
    expect(s.pruneHistory(5_000)).toEqual({ operations: 0, runs: 0, drift: 0, events: 0 });
    expect(s.pruneHistory(Number.MAX_SAFE_INTEGER)).toEqual({ operations: 1, runs: 0, drift: 1, events: 1 });
    expect(s.listRuns().map((r) => r.id)).toEqual([recent, oldRun]);
    expect(s.pendingOperations().map((o) => o.id)).toEqual([crashed]);
  });

  it('deletes a large backlog in chunks', () => {
    const s = openStore();
    s.transaction(() => {
      for (let i = 0; i < 12_345; i++) s.recordDrift(drift(`n${i % 10}`, i));
    });
    expect(s.pruneHistory(12_000).drift).toBe(12_000);
    expect(s.listDrift()).toHaveLength(345);
  });
});

describe('drift and events', () => {
  it.each([
    { name: 'no filter: all, oldest first', filter: {}, expected: [['a', 100], ['b', 200], ['a', 300], ['b', 400]] },
    { name: 'since is inclusive', filter: { since: 200 }, expected: [['b', 200], ['a', 300], ['b', 400]] },
    { name: 'by node', filter: { node: 'a' }, expected: [['a', 100], ['a', 300]] },
    { name: 'by node and since', filter: { node: 'b', since: 300 }, expected: [['b', 400]] },
    { name: 'limit keeps the most recent', filter: { limit: 2 }, expected: [['a', 300], ['b', 400]] },
    { name: 'unknown node', filter: { node: 'zz' }, expected: [] },
  ])('filters drift: $name', ({ filter, expected }) => {
    const s = openStore();
    for (const [n, at] of [['a', 100], ['b', 200], ['a', 300], ['b', 400]] as const) s.recordDrift(drift(n, at));
    expect(s.listDrift(filter).map((d) => [d.node, d.detectedAt])).toEqual(expected);
  });

  it("sets the action of a node's latest report only: what its correction came to", () => {
    const s = openStore();
    for (const [n, at] of [['a', 100], ['b', 200], ['a', 300]] as const) s.recordDrift(drift(n, at, { action: 'corrected' }));
    s.setDriftAction('a', 'correction-failed');
    expect(s.listDrift().map((d) => [d.node, d.detectedAt, d.action])).toEqual([['a', 100, 'corrected'], ['b', 200, 'corrected'], ['a', 300, 'correction-failed']]);
  });

  it('keeps the drift reports of a file from before `correction-failed`, which it then takes', () => {
    const old = openStore({ migrations: MIGRATIONS.slice(0, MIGRATIONS.findIndex((m) => m.description.includes('correction-failed'))) });
    old.recordDrift(drift('a', 100));
    const before = old.listDrift();
    old.close();
    const s = openStore();
    expect(s.listDrift()).toEqual(before);
    s.setDriftAction('a', 'correction-failed');
    expect(s.listDrift({ node: 'a' })[0]?.action).toBe('correction-failed');
    expect(s.listDrift({ node: 'a', since: 100 })).toHaveLength(1);
  });

  it('round-trips a drift report with masked diffs unchanged (the store never sees a secret)', () => {
    const s = openStore();
    const report = drift('db-role', 500, {
      action: 'corrected',
      flapping: true,
      firstSeen: 400,
      diffs: [
        { path: 'password', desired: '***', actual: '***', masked: true },
        { path: 'connectionLimit', desired: 10, actual: 5 },
        { path: 'memberOf[1]', desired: ['a'], actual: null, detail: '--- a\n+++ b' },
      ],
    });
    s.recordDrift(report);
    const [stored] = s.listDrift();
    expect(stored).toEqual({ ...report, id: stored?.id });
    const raw = readFileSync(dbPath, 'latin1') + (existsSync(`${dbPath}-wal`) ? readFileSync(`${dbPath}-wal`, 'latin1') : '');
    expect(raw).toContain('"masked":true');
  });

  it.each([
    { name: 'since', filter: { since: 20 }, expected: ['reload', 'fault'] },
    { name: 'node', filter: { node: 'a' }, expected: ['op', 'fault'] },
    { name: 'limit', filter: { limit: 1 }, expected: ['fault'] },
  ])('filters events: $name', ({ filter, expected }) => {
    const s = openStore();
    s.appendEvent({ at: 10, node: 'a', kind: 'op', data: { op: 'create' } });
    s.appendEvent({ at: 20, node: null, kind: 'reload', data: { files: 2 } });
    s.appendEvent({ at: 30, node: 'a', kind: 'fault', data: { class: 'transient' } });
    expect(s.listEvents(filter).map((e) => e.kind)).toEqual(expected);
    expect(s.listEvents({ node: 'a' })[0]).toEqual({ id: expect.any(Number), at: 10, node: 'a', kind: 'op', data: { op: 'create' } });
  });
});

describe('meta and maintenance', () => {
  it('sets, replaces and deletes keys, and refuses reserved ones', () => {
    const s = openStore();
    s.setMeta('k', 'v1');
    s.setMeta('k', 'v2');
    expect(s.getMeta('k')).toBe('v2');
    s.setMeta('k', null);
    expect(s.getMeta('k')).toBeUndefined();
    expect(codeOf(() => s.setMeta('store.lineage', 'forged'))).toBe(ErrorCodes.StateStore);
  });

  it('checkpoints and passes the integrity check', () => {
    const s = openStore();
    s.putNodes(Array.from({ length: 1000 }, (_, i) => node(`n${i}`)));
    const r = s.checkpoint();
    expect(r.busy).toBe(false);
    expect(r.checkpointedFrames).toBe(r.logFrames);
    expect(s.integrityCheck()).toBe('ok');
    s.close();
    s.close(); // idempotent
    expect(existsSync(`${dbPath}-wal`) ? readFileSync(`${dbPath}-wal`).length : 0).toBe(0);
  });
});

describe('transaction', () => {
  it.each([
    { name: 'commits every write of a successful transaction', fail: false, nodes: ['a', 'b'], pending: 1, meta: 'v' },
    { name: 'rolls every write back when fn throws', fail: true, nodes: [], pending: 0, meta: undefined },
  ])('$name', ({ fail, nodes, pending, meta }) => {
    const s = openStore();
    const run = () =>
      s.transaction(() => {
        s.beginOperation('a', 'create', null);
        s.putNodes([node('a')]);
        s.transaction(() => s.putNodes([node('b')])); // nested: joins
        s.setMeta('k', 'v');
        if (fail) throw new Error('boom');
        return 42;
      });
    if (fail) expect(run).toThrow('boom');
    else expect(run()).toBe(42);
    expect(s.listNodes().map((n) => n.id)).toEqual(nodes);
    expect(s.pendingOperations()).toHaveLength(pending);
    expect(s.getMeta('k')).toBe(meta);
  });
});

// The state file holds drift reports (desired values), the operation journal and backends' memos:
// it and the files SQLite makes beside it are the owner's only, like compiled-goals.json.
describe('state file modes', () => {
  function mode(path: string): number {
    return statSync(path).mode & 0o777;
  }

  function openWritten(): SqliteStateStore {
    const s = openStore();
    // A write, so that the WAL and shared-memory files exist.
    s.putNodes([node('a')]);
    return s;
  }

  it('a fresh store: state.db, -wal, -shm and the lock file are 0600', () => {
    openWritten();
    for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`, `${dbPath}.lock`]) {
      expect(existsSync(f), f).toBe(true);
      expect(mode(f).toString(8), f).toBe('600');
    }
    // The directory the store creates is the owner's too.
    expect(mode(join(dir, 'state')).toString(8)).toBe('700');
  });

  it('tightens a world-readable state file an older release made, with the WAL files beside it', () => {
    const s = openWritten();
    s.close();
    open.length = 0;
    for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) if (existsSync(f)) chmodSync(f, 0o644);
    openWritten();
    for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) expect(mode(f).toString(8), f).toBe('600');
  });

  it('leaves the mode alone when opening read-only', () => {
    openWritten().close();
    open.length = 0;
    chmodSync(dbPath, 0o640);
    const ro = openStore({ readonly: true, lock: false });
    expect(ro.getNode('a')?.id).toBe('a');
    expect(mode(dbPath).toString(8)).toBe('640');
  });

  it('keeps an existing empty file usable (created, then the process stopped before SQLite wrote to it)', () => {
    mkdirSync(join(dir, 'state'), { recursive: true });
    writeFileSync(dbPath, '', { mode: 0o644 });
    expect(openWritten().getNode('a')?.id).toBe('a');
    expect(mode(dbPath).toString(8)).toBe('600');
  });
});
