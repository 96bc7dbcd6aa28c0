import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { locateProgram, runProcess } from '../../src/infra/index.ts';

// locateProgram (a health check's "can this command start?") finds what runProcess would start, and
// nothing it would not: checked against runProcess itself, on the same program, cwd and environment.
const dir = mkdtempSync(join(tmpdir(), 'ds-locate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const bin = join(dir, 'bin');
mkdirSync(bin);
mkdirSync(join(dir, 'a-directory'));
writeFileSync(join(bin, 'ds-only-here'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
writeFileSync(join(dir, 'local-tool'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
writeFileSync(join(dir, 'not-executable'), '#!/bin/sh\nexit 0\n', { mode: 0o644 });

describe('locateProgram agrees with runProcess', () => {
  it.each<{ name: string; program: string; env: Record<string, string>; found: boolean }>([
    { name: 'a program on PATH', program: 'sh', env: { PATH: '/usr/bin:/bin' }, found: true },
    { name: 'a program in a PATH directory of its own', program: 'ds-only-here', env: { PATH: `/usr/bin:${bin}` }, found: true },
    { name: 'a program in no PATH directory', program: 'ds-only-here', env: { PATH: '/usr/bin:/bin' }, found: false },
    { name: 'no PATH at all: /usr/bin and /bin are searched', program: 'sh', env: {}, found: true },
    { name: 'no PATH at all: nothing else is', program: 'ds-only-here', env: {}, found: false },
    { name: 'an empty PATH entry is the working directory', program: 'local-tool', env: { PATH: `/usr/bin:` }, found: true },
    { name: 'a relative path, against the working directory', program: './local-tool', env: { PATH: '/usr/bin' }, found: true },
    { name: 'a relative path to nothing', program: './missing', env: { PATH: '/usr/bin' }, found: false },
    { name: 'a file without the execute bit', program: './not-executable', env: { PATH: '/usr/bin' }, found: false },
    { name: 'a directory', program: './a-directory', env: { PATH: '/usr/bin' }, found: false },
  ])('$name', async ({ program, env, found }) => {
    const where = await locateProgram(program, { cwd: dir, env });
    const run = await runProcess({ argv: [program], cwd: dir, env, timeoutMs: 10_000, maxOutputBytes: 1024 });
    expect('found' in where).toBe(found);
    expect(run.status !== 'spawnFailed').toBe(found);
  });

  it('names what it looked for when it finds nothing', async () => {
    expect(await locateProgram('ds-only-here', { cwd: dir, env: { PATH: '/usr/bin:/bin' } })).toEqual({ missing: 'ds-only-here is not found on PATH (/usr/bin:/bin)' });
    expect(await locateProgram('./not-executable', { cwd: dir, env: {} })).toEqual({ missing: `${join(dir, 'not-executable')} is not executable` });
    expect(await locateProgram('', { cwd: dir, env: {} })).toEqual({ missing: 'the command is empty' });
  });
});
