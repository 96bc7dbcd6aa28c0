import { readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { RACY_MARGIN_MS } from '../../src/backends/local/client.ts';
import { cli, oneFileGoal, tempProject } from '../support/cli.ts';

/**
 * The local backend's observation memo, end to end through the one-shot CLI
 * and its SQLite state: a file read well after it last changed is not read
 * again while its stat is unchanged — and any edit, however disguised, is
 * still found.
 */
describe('apply with observation memos (local backend)', () => {
  it('records a memo, trusts it while the file is unchanged, and still catches a same-size edit with the mtime put back', async () => {
    const p = tempProject('ds-memo-');
    p.write('app.yaml', oneFileGoal(p.root, 'port = 8080\n'));
    const file = join(p.root, 'app.conf');
    const memo = (): Record<string, unknown> | null => {
      const db = new Database(join(p.state, 'state.db'), { readonly: true });
      try {
        const row = db.prepare("SELECT memo FROM nodes WHERE id = 'conf'").get() as { memo: string | null };
        return row.memo === null ? null : (JSON.parse(row.memo) as Record<string, unknown>);
      } finally {
        db.close();
      }
    };

    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    expect(memo()).toBeNull(); // just written: nothing read yet
    const stamp = new Date('2020-01-01T00:00:00Z'); // whole seconds: utimes can put it back exactly
    utimesSync(file, stamp, stamp);
    // Read once the racy window has passed: this memo holds from now on.
    await new Promise((r) => setTimeout(r, RACY_MARGIN_MS + 100));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    const first = memo();
    expect(first).toMatchObject({ v: 1, size: 12, ino: statSync(file).ino, ctime: statSync(file).ctimeMs });
    expect(Number(first?.seenAt) - Number(first?.ctime)).toBeGreaterThanOrEqual(RACY_MARGIN_MS);
    // Steady: the memo holds, so the record (memo included) is not written again.
    const steady = await cli(['apply', '--yes', '--format', 'json', ...p.args]);
    expect(steady.code).toBe(0);
    expect(memo()).toEqual(first);
    // Internal to the state: `status --format json` shows neither the memo nor the snapshot.
    const shown = JSON.parse((await cli(['status', '--format', 'json', ...p.args])).stdout) as { nodes: Record<string, unknown>[] };
    expect(shown.nodes[0]).toMatchObject({ id: 'conf', status: 'ready' });
    expect(Object.keys(shown.nodes[0]!)).not.toContain('memo');
    expect(Object.keys(shown.nodes[0]!)).not.toContain('snapshot');

    // A hand edit of the same size with the old mtime restored: ctime still moves, the memo no longer holds.
    const st = statSync(file);
    writeFileSync(file, 'port = 9090\n');
    utimesSync(file, stamp, stamp);
    expect([statSync(file).size, statSync(file).mtimeMs]).toEqual([st.size, st.mtimeMs]);
    const repair = await cli(['apply', '--yes', ...p.args]);
    expect(repair.code).toBe(0);
    expect(repair.stderr).toContain('drift detected');
    expect(readFileSync(file, 'utf8')).toBe('port = 8080\n');
    expect(memo()).toBeNull(); // rewritten: read again next time
  }, 30_000);
});
