import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { goalHead, localBackend, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// A goal reload replaces the local backend's watch. A hand edit made just before it was lost with the
// old watch (its debounce, or its event not yet read), and an unchanged node keeps its schedule: the
// drift waited for the interval, an hour here, where the README promises well under a second.
describe('a hand edit made just before a goal reload', () => {
  const goals = (root: string, other: string): string =>
    `${localBackend(root)}---\n${goalHead()}    - { id: f, type: local.file, spec: { path: f.txt, content: "good\\n" } }\n    - { id: o, type: local.file, spec: { path: o.txt, content: ${JSON.stringify(other)} } }\n`;

  it.each([
    { reload: 'SIGHUP', why: 'SIGHUP' },
    { reload: 'a goal-file edit of another node', why: 'goals changed' },
  ])('is noticed and put right at once, the reload by $reload', async ({ reload, why }) => {
    const p = tempProject('ds-watch-reload-');
    p.write('goal.yaml', goals(p.root, 'other\n'));
    // No goal debounce: the reload follows the goal-file edit within the local watch's debounce (50 ms).
    const d = trackDaemons().start(['--listen', '127.0.0.1:0', '--interval', '1h', '--debounce', '0ms', ...p.args], { cwd: p.dir });
    const file = join(p.root, 'f.txt');
    const good = (): boolean => existsSync(file) && readFileSync(file, 'utf8') === 'good\n';
    await eventually(good, 20_000, 'f.txt created');
    await eventually(() => existsSync(join(p.root, 'o.txt')), 20_000, 'o.txt created');
    await d.waitFor((l) => l.msg === 'goals loaded', 20_000);
    const mark = d.lines.length;
    writeFileSync(file, 'hand edit\n');
    if (reload === 'SIGHUP') d.kill('SIGHUP');
    else p.write('goal.yaml', goals(p.root, 'other, edited\n'));
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === why, 10_000, mark);
    await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'f', 10_000, mark);
    await eventually(good, 10_000, 'f.txt put right');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 60_000);
});
