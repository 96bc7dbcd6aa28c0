import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PendingDigests } from '../../../src/backends/postgres/pending-digests.ts';
import { captureLogger } from './helpers.ts';

let dir: string;
const file = (): string => join(dir, 'postgres', 'pg.pending-password-digests.json');
const onDisk = (): Record<string, string> => (JSON.parse(readFileSync(file(), 'utf8')) as { digests: Record<string, string> }).digests;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ds-pg-pending-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function pending(log = captureLogger()): PendingDigests {
  return new PendingDigests({ stateDir: dir, backendId: 'pg', log: log.log });
}

describe('PendingDigests', () => {
  it('records digests for another process to read, in a file only the owner can read', async () => {
    await pending().record(new Map([['a', 's1:d1'], ['b', 's2:d2']]));
    expect(statSync(file()).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'postgres')).mode & 0o777).toBe(0o700);
    expect([...(await pending().all())]).toEqual([['a', 's1:d1'], ['b', 's2:d2']]);
  });

  it('merges into the file as it is on disk: another process\'s entries survive', async () => {
    const mine = pending();
    await mine.all();
    await pending().record(new Map([['theirs', 's:t']]));
    await mine.record(new Map([['mine', 's:m']]));
    expect(onDisk()).toEqual({ theirs: 's:t', mine: 's:m' });
  });

  it('forgets an entry only while it holds the digest confirmed; the file goes with the last entry', async () => {
    const p = pending();
    await p.record(new Map([['a', 's:old']]));
    await pending().record(new Map([['a', 's:new']]));
    // This process saw s:old confirmed, but another one has since set s:new: it stays.
    await p.forget(new Map([['a', 's:old']]));
    expect(onDisk()).toEqual({ a: 's:new' });
    await pending().forget(new Map([['a', undefined]]));
    expect(existsSync(file())).toBe(false);
  });

  it('many changes at once make few writes, and each lands', async () => {
    const p = pending();
    await Promise.all(Array.from({ length: 200 }, (_, i) => p.record(new Map([[`n${i}`, `s:${i}`]]))));
    expect(Object.keys(onDisk())).toHaveLength(200);
  });

  it('ignores an unreadable file, with a warning, and replaces it at the next write', async () => {
    mkdirSync(join(dir, 'postgres'));
    writeFileSync(file(), '{not json');
    const log = captureLogger();
    const p = pending(log);
    expect((await p.all()).size).toBe(0);
    expect(log.text()).toContain('pending password digests unreadable');
    await p.record(new Map([['a', 's:d']]));
    expect(onDisk()).toEqual({ a: 's:d' });
  });
});
