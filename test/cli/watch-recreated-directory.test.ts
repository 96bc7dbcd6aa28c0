import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { goalHead, localBackend, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// The daemon puts back a managed file's directory, no node of the goals, that was removed by hand; the
// watch must follow it to the new directory, or hand edits there wait for the interval, an hour away.
describe('a managed file whose directory was removed by hand and made again by the daemon', () => {
  it('is watched there: a hand edit after is noticed and put right at once', async () => {
    const p = tempProject('ds-watch-recreated-');
    p.write('goal.yaml', `${localBackend(p.root)}---\n${goalHead()}    - { id: f, type: local.file, spec: { path: d/f.txt, content: "good\\n" } }\n`);
    const d = trackDaemons().start(['--listen', '127.0.0.1:0', '--interval', '1h', ...p.args], { cwd: p.dir });
    const file = join(p.root, 'd', 'f.txt');
    const good = (): boolean => existsSync(file) && readFileSync(file, 'utf8') === 'good\n';
    const driftOf = async (change: () => void): Promise<void> => {
      const mark = d.lines.length;
      change();
      await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'f', 10_000, mark);
      await eventually(good, 10_000, 'f.txt put right');
    };
    await eventually(good, 20_000, 'f.txt created');
    await driftOf(() => writeFileSync(file, 'hack1\n'));
    await driftOf(() => rmSync(join(p.root, 'd'), { recursive: true }));
    await driftOf(() => writeFileSync(file, 'hack2\n'));
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 60_000);
});
