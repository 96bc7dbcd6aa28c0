import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStateStore } from '../../src/runtime/sqlite-state-store.ts';
import type { NodeRecord } from '../../src/runtime/state-store.ts';

// The state file holds drift reports (desired values), the operation journal and backends' memos:
// it and the files SQLite makes beside it are the owner's only, like compiled-goals.json.

let dir: string;
let dbPath: string;
const open: SqliteStateStore[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ds-store-modes-'));
  dbPath = join(dir, 'state', 'state.db');
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

function record(id: string): NodeRecord {
  return {
    id, goal: 'g', type: 'local.file', backendId: 'local', status: 'ready', appliedDigest: null, outputs: null, managed: true,
    lastFault: null, attempts: 0, retryAt: null, reason: null, snapshot: null, memo: null, deletionPolicy: 'Orphan', updatedAt: 1,
  };
}

function openWritten(): SqliteStateStore {
  const s = SqliteStateStore.open({ path: dbPath, lock: true });
  open.push(s);
  // A write, so that the WAL and shared-memory files exist.
  s.putNodes([record('a')]);
  return s;
}

describe('state file modes', () => {
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
    const ro = SqliteStateStore.open({ path: dbPath, readonly: true, lock: false });
    open.push(ro);
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
