import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStateStore } from '../../src/runtime/index.ts';
import type { DriftReport } from '../../src/runtime/index.ts';
import { cli, goalHead, localBackend, tempProject } from '../support/cli.ts';

/** A report-only goal (`selfHeal: false`) with one file node `s1`. */
function reportOnlyProject(): ReturnType<typeof tempProject> {
  const p = tempProject('ds-drift-reports-');
  p.write('app.yaml', `${localBackend(p.root)}---\n${goalHead('  defaults: { backend: local }\n  selfHeal: false\n')}    - id: s1\n      type: local.file\n      spec: { path: s1, content: "A\\n" }\n`);
  return p;
}

async function reports(args: readonly string[]): Promise<DriftReport[]> {
  const r = await cli(['drift', '--format', 'json', ...args]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { reports: DriftReport[] }).reports;
}

describe('drift reports', () => {
  it('selfHeal: false: the same drift found by three applies is one report, first seen when it began', async () => {
    const p = reportOnlyProject();
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    writeFileSync(join(p.root, 's1'), 'hand\n');
    for (let i = 0; i < 3; i++) expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    const found = await reports(p.args);
    expect(found).toEqual([expect.objectContaining({ node: 's1', action: 'reported' })]);
    expect(found[0]!.firstSeen).toBe(found[0]!.detectedAt);
  });

  it('text: a report of a drift that began before it says when it was first seen; one that began with it does not', async () => {
    const p = reportOnlyProject();
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    const store = SqliteStateStore.open({ path: join(p.state, 'state.db'), lock: false });
    const report = (detectedAt: number): DriftReport => ({ goal: 'app', node: 's1', backendId: 'local', diffs: [{ path: 'mode', desired: '0644', actual: '0600' }], firstSeen: Date.parse('2026-11-25T07:11:52Z'), detectedAt, action: 'reported', flapping: false, commit: null });
    try {
      store.recordDrift(report(Date.parse('2026-11-25T07:11:52Z')));
      store.recordDrift(report(Date.parse('2026-11-25T08:00:00Z')));
    } finally {
      store.close();
    }
    const r = await cli(['drift', ...p.args]);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('2026'))).toEqual([
      '2026-11-25T07:11:52.000Z  s1 (app, local)  reported',
      '2026-11-25T08:00:00.000Z  s1 (app, local)  reported, first seen 2026-11-25T07:11:52.000Z',
    ]);
  });
});
