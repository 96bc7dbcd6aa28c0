import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv, goalHead, launcher, localBackend, tempProject } from '../support/cli.ts';
import { warnSkipped } from '../support/skip.ts';

/**
 * Reads and writes in a directory that others may change go through an fd held on it (README, local
 * backend). A root daemon managing a file in each of thousands of such directories (users' homes)
 * must not hold one fd per directory for a whole pass: under a limit of a few hundred open files,
 * as many systems give a service, that pass would fail with EMFILE. An observation lets go of them
 * chunk by chunk.
 */
const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;
if (!hasPrlimit) warnSkipped(['SKIPPING the open-files limit test of pinned directories: prlimit (util-linux) is not on PATH.']);

describe.skipIf(process.platform !== 'linux' || !hasPrlimit)('pinned directories under a low open-files limit', () => {
  it('plan and apply observe and correct 600 files in 600 directories others may write in, with at most 200 files open', () => {
    const p = tempProject('ds-fd-limit-');
    const dirs = 600;
    let nodes = '';
    for (let i = 0; i < dirs; i++) {
      const dir = join(p.root, `home${i}`);
      mkdirSync(dir, { recursive: true });
      // Writable by others: not sealed, so each is reached through a pinned fd.
      chmodSync(dir, 0o777);
      writeFileSync(join(dir, 'profile'), `user ${i}\n`);
      nodes += `    - id: profile-${i}\n      type: local.file\n      spec: { path: home${i}/profile, content: "user ${i}\\n" }\n`;
    }
    p.write('backend.yaml', localBackend(p.root));
    p.write('app.yaml', `${goalHead('  defaults: { backend: local }\n')}${nodes}`);
    const r = spawnSync('prlimit', ['--nofile=200:200', launcher, 'plan', ...p.args], { cwd: p.dir, env: cleanEnv(), encoding: 'utf8' });
    expect(r.stderr).not.toContain('EMFILE');
    // Every file found as desired: nothing to do.
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/600 unchanged/);

    // And a pass that writes in all of them: 600 hand edits corrected, a batch in waves.
    const adopted = spawnSync('prlimit', ['--nofile=200:200', launcher, 'apply', '--yes', ...p.args], { cwd: p.dir, env: cleanEnv(), encoding: 'utf8' });
    expect(adopted.status, adopted.stdout + adopted.stderr).toBe(0);
    for (let i = 0; i < dirs; i++) writeFileSync(join(p.root, `home${i}`, 'profile'), `edited by hand ${i}\n`);
    const repaired = spawnSync('prlimit', ['--nofile=200:200', launcher, 'apply', '--yes', ...p.args], { cwd: p.dir, env: cleanEnv(), encoding: 'utf8' });
    expect(repaired.stderr).not.toContain('EMFILE');
    expect(repaired.status, repaired.stdout + repaired.stderr).toBe(0);
    for (let i = 0; i < dirs; i++) expect(readFileSync(join(p.root, `home${i}`, 'profile'), 'utf8')).toBe(`user ${i}\n`);
    expect(readdirSync(join(p.root, 'home7'))).toEqual(['profile']);
  });
});
