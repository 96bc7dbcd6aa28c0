import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { applyWithEdits, cli, oneFileGoal, tempProject } from '../support/cli.ts';

// `history --limit N` and `drift --limit N`: the N most recent, in each command's own order.
const p = tempProject('ds-limits-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
p.write('goals.yaml', oneFileGoal(p.root, 'port = 8080\n'));

describe('--limit', () => {
  it('history and drift list the N most recent; a limit that is not a whole number from 1 is a usage error', async () => {
    // Three hand edits, each found (and put back) by its own apply: three runs more, three drift reports.
    await applyWithEdits(p, ['edited a\n', 'edited b\n', 'edited c\n']);
    const runs = (JSON.parse((await cli(['history', '--format', 'json', ...p.args])).stdout) as { runs: { id: number }[] }).runs.map((r) => r.id);
    expect(runs).toHaveLength(4);
    const limited = JSON.parse((await cli(['history', '--limit', '2', '--format', 'json', ...p.args])).stdout) as { runs: { id: number }[] };
    expect(limited.runs.map((r) => r.id)).toEqual(runs.slice(0, 2));

    const all = JSON.parse((await cli(['drift', '--format', 'json', ...p.args])).stdout) as { reports: { detectedAt: number }[] };
    expect(all.reports).toHaveLength(3);
    const last = JSON.parse((await cli(['drift', '--limit', '2', '--format', 'json', ...p.args])).stdout) as typeof all;
    expect(last.reports).toEqual(all.reports.slice(1));

    for (const bad of ['0', '-1', '1.5', 'ten', '0x10']) {
      const r = await cli(['history', `--limit=${bad}`, ...p.args]);
      expect(r).toMatchObject({ code: 64, stderr: `desiredstate history: --limit takes a whole number from 1 to 1000000 (got "${bad}")\n` });
    }
    expect(await cli(['drift', '--limit', 'all', ...p.args])).toMatchObject({ code: 64 });
    // A node the state has no record of (a typo): said so, exit 0 as CLI.md has drift.
    expect(await cli(['drift', '--node', 'nosuch', ...p.args])).toMatchObject({ code: 0, stdout: 'no drift recorded for nosuch, which the state has no node of\n' });
  });
});
