import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, oneFileGoal, tempProject } from '../support/cli.ts';
import { Daemon } from '../support/daemon.ts';

const p = tempProject('ds-history-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

const goal = oneFileGoal(p.root, 'v1\n');

const json = async (args: string[]): Promise<Record<string, unknown[]>> => {
  const r = await cli([...args, ...p.args, '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown[]>;
};

describe('history retention (apply --history)', () => {
  it('keeps history by default, forgets what is older than --history, never the latest run', async () => {
    p.write('app.yaml', goal);
    for (let i = 0; i < 3; i++) {
      if (i > 0) writeFileSync(join(p.root, 'app.conf'), `edited ${i}\n`);
      const r = await cli(['apply', ...p.args, '--yes']);
      expect(r.code, r.stderr).toBe(0);
    }
    expect((await json(['history'])).runs).toHaveLength(3);
    expect((await json(['drift'])).reports).toHaveLength(2);

    await new Promise((r) => setTimeout(r, 20));
    const pruned = await cli(['apply', ...p.args, '--yes', '--history', '10ms', '--log-level', 'info']);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stderr).toContain('"msg":"history pruned"');
    // The runs before this one and their operations and drift reports are gone; this run stays.
    expect((await json(['history'])).runs).toHaveLength(1);
    expect((await json(['drift'])).reports).toHaveLength(0);
    expect((await cli(['plan', ...p.args])).code).toBe(0);
  });

  it.each(['0s', 'soon', '-1d'])('refuses --history %s with a usage error, changing nothing', async (bad) => {
    const before = (await json(['history'])).runs;
    const r = await cli(['apply', ...p.args, '--yes', `--history=${bad}`]);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('--history takes a duration');
    expect((await json(['history'])).runs).toEqual(before);
  });

  it('--history forever keeps everything', async () => {
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 2; i++) expect((await cli(['apply', ...p.args, '--yes', '--history', 'forever'])).code).toBe(0);
    expect((await json(['history'])).runs).toHaveLength(3);
  });

  it('the daemon prunes at start with its --history', async () => {
    expect((await json(['history'])).runs!.length).toBeGreaterThan(1);
    await new Promise((r) => setTimeout(r, 20));
    const d = new Daemon([...p.args, '--listen', '127.0.0.1:0', '--history', '10ms'], { cwd: p.dir });
    try {
      const line = await d.waitFor((l) => l.msg === 'history pruned', 20_000);
      expect(Number(line.runs)).toBeGreaterThan(0);
      await d.port();
    } finally {
      d.kill('SIGTERM');
      expect((await d.exited).code).toBe(0);
    }
  });
});
