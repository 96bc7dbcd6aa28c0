import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, goalHead, localBackend, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// Issue 3: "a revision with any compile error keeps the last good graph running". A daemon that
// starts (a reboot, a redeploy) on such a revision has no graph in memory: it runs the goals stored
// when they last compiled (the compiled-goal cache in the state directory), and says so; with none
// stored, it says that nothing is reconciled, rather than that a graph keeps running.
const daemons = trackDaemons();

const goals = (content: string): string => `${goalHead()}    - { id: conf, type: local.file, spec: { path: app.conf, content: ${JSON.stringify(content)} } }\n`;

describe('a daemon that starts on a goal revision that does not compile', () => {
  it('runs the last good goals stored for them: a hand edit is reported and repaired', async () => {
    const p = tempProject('ds-broken-start-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', goals('good\n'));
    const first = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await first.waitFor((l) => l.msg === 'node created' && l.node === 'conf');
    first.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);

    p.write('app.yaml', goals('next\n').replace('content:', 'contnet:'));
    writeFileSync(join(p.root, 'app.conf'), 'edited by hand\n');
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const rejected = await d.waitFor((l) => l.msg.startsWith('goal revision rejected'));
    expect(rejected.msg).toBe('goal revision rejected; the last good goals, stored when they last compiled, run instead');
    await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'conf');
    await eventually(() => readFileSync(join(p.root, 'app.conf'), 'utf8') === 'good\n', 5_000, 'the hand edit repaired');
    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.stdout).toContain('goal revision rejected; the last good graph keeps running:');
    expect(status.stdout).toMatch(/app\.yaml:\d+:\d+: error unknown-field/);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  it('with none stored, says that nothing is reconciled until a revision compiles, in the log and in status', async () => {
    const p = tempProject('ds-broken-start-none-');
    daemons.removeAfter(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', goals('next\n').replace('content:', 'contnet:'));
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const rejected = await d.waitFor((l) => l.msg.startsWith('goal revision rejected'));
    expect(rejected.msg).toBe('goal revision rejected; nothing is reconciled until a revision compiles (no last good goals are stored for them)');
    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.stdout).toContain('goal revision rejected; nothing is reconciled until a revision compiles');
    // Fixed: loaded, and the rejection is gone from status.
    const mark = d.lines.length;
    p.write('app.yaml', goals('next\n'));
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'conf', 10_000, mark);
    expect((await cli(['status', ...p.args], { cwd: p.dir })).stdout).not.toContain('goal revision rejected');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});
