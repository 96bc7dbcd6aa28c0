import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, oneFileGoal, tempProject } from '../support/cli.ts';
import { warnSkipped } from '../support/skip.ts';

// CLI.md: human output on a terminal, structured JSON log lines (pino) when not on one.
const p = tempProject('ds-log-format-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));
const args = ['apply', ...p.args, '--yes', '--log-level', 'debug'];

// `script` (util-linux) runs a command on a pseudo-terminal.
const hasScript = spawnSync('script', ['--version']).status === 0;
if (!hasScript) warnSkipped(['SKIPPING the terminal log-format test: `script` (util-linux) is not on PATH.']);

describe('log format', () => {
  it('a pipe gets one JSON object per line', async () => {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ level: expect.any(Number), msg: expect.any(String) });
  });

  it('DESIREDSTATE_LOG_FORMAT=pretty gets human lines; a bad value is a usage error', async () => {
    const r = await cli(args, { env: { DESIREDSTATE_LOG_FORMAT: 'pretty' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] DEBUG: /m);
    expect(r.stderr).not.toContain('{"level"');
    const bad = await cli(args, { env: { DESIREDSTATE_LOG_FORMAT: 'xml' } });
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('DESIREDSTATE_LOG_FORMAT must be json or pretty');
  });

  it('a bad level is blamed on where it came from: the flag, or DESIREDSTATE_LOG_LEVEL', async () => {
    const fromEnv = await cli(['validate', '--goals', 'goals'], { env: { DESIREDSTATE_LOG_LEVEL: 'nope' } });
    expect(fromEnv.code).toBe(64);
    expect(fromEnv.stderr).toBe('desiredstate validate: $DESIREDSTATE_LOG_LEVEL (nope) must be one of fatal, error, warn, info, debug, trace, silent\n');
    const fromFlag = await cli(['validate', '--goals', 'goals', '--log-level', 'nope'], { env: { DESIREDSTATE_LOG_LEVEL: 'info' } });
    expect(fromFlag.code).toBe(64);
    expect(fromFlag.stderr).toBe('desiredstate validate: --log-level must be one of fatal, error, warn, info, debug, trace, silent\n');
  });

  it.skipIf(!hasScript)('a terminal gets human lines', () => {
    const command = [process.execPath, bin, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env: cleanEnv() });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toContain('DEBUG');
    expect(r.stdout).not.toContain('{"level"');
  });

  // https://no-color.org: a terminal still gets human lines, without colour, when NO_COLOR is set (and not empty).
  it.skipIf(!hasScript).each([
    { name: 'colours on a terminal', env: {}, colours: true },
    { name: 'no colour with NO_COLOR=1', env: { NO_COLOR: '1' }, colours: false },
    { name: 'colours with NO_COLOR empty', env: { NO_COLOR: '' }, colours: true },
  ])('$name', ({ env, colours }) => {
    const command = [process.execPath, bin, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env: cleanEnv(env) });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toContain('DEBUG');
    expect(r.stdout.includes('\u001b['), r.stdout).toBe(colours);
  });
});
