import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, execGoalHead, shellResource, tempProject } from '../support/cli.ts';
import { eventually } from '../support/daemon.ts';

/*
 * Prune with deletionPolicy Delete, cut short by kill -9 in the middle of its
 * deletes (each delete is slow), for apply and for the daemon. Only what was
 * goaled away is ever deleted, what stays in the goals is never touched,
 * and the next pass finishes the job.
 */
const KEEP = ['a', 'b', 'f'];
const GONE = ['c', 'd', 'e'];

function project(prefix: string): ReturnType<typeof tempProject> & { goal(ids: readonly string[]): void } {
  const p = tempProject(prefix);
  const script = shellResource(
    p.dir,
    `id=$(cat | sed -n 's/.*"id":"\\([a-z]*\\)".*/\\1/p')
case "$1" in
  read) if [ -f "$dir/res-$id" ]; then echo '{"exists":true,"state":{}}'; else echo '{"exists":false}'; fi ;;
  create) touch "$dir/res-$id"; echo '{"outputs":{}}' ;;
  delete)
    echo "$id" >> "$dir/deletes.log"
    [ -f "$dir/fast" ] || sleep 1
    rm -f "$dir/res-$id" ;;
esac
`,
  );
  const goal = (ids: readonly string[]): void =>
    p.write(
      'goals.yaml',
      `${execGoalHead({ name: 'app', prune: true })}${ids.map((id) => `    - { id: ${id}, type: generic.resource, deletionPolicy: Delete, spec: { commands: { read: [${JSON.stringify(script)}, read], create: [${JSON.stringify(script)}, create], delete: [${JSON.stringify(script)}, delete] }, input: {} } }`).join('\n')}
`,
    );
  return Object.assign(p, { goal });
}

const projects: string[] = [];
afterAll(() => {
  for (const d of projects) rmSync(d, { recursive: true, force: true });
});

function deletes(dir: string): string[] {
  return existsSync(join(dir, 'deletes.log')) ? readFileSync(join(dir, 'deletes.log'), 'utf8').trim().split('\n') : [];
}

async function killDuringDeletes(args: readonly string[], dir: string): Promise<void> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: dir, env: cleanEnv(), stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    // The second delete has begun: one is done, one in flight, one not begun.
    await eventually(() => deletes(dir).length >= 2, 20_000, 'two deletes begun');
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

describe.each([
  { how: 'apply', args: ['apply', '--yes'] },
  { how: 'the daemon', args: ['run', '--listen', '127.0.0.1:0', '--interval', '60s'] },
])('prune with Delete, $how killed -9 mid-deletes', ({ how, args }) => {
  it('deletes only what left the goals; the next pass finishes; nothing kept is touched', async () => {
    const p = project(`ds-prune-crash-${how === 'apply' ? 'apply' : 'run'}-`);
    projects.push(p.dir);
    p.goal([...KEEP, ...GONE]);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    p.goal(KEEP);

    await killDuringDeletes([...args, ...p.args], p.dir);
    for (const id of KEEP) expect(existsSync(join(p.dir, `res-${id}`)), id).toBe(true);
    writeFileSync(join(p.dir, 'fast'), '');

    const last = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(last.code, last.stdout + last.stderr).toBe(0);
    for (const id of KEEP) expect(existsSync(join(p.dir, `res-${id}`)), id).toBe(true);
    for (const id of GONE) expect(existsSync(join(p.dir, `res-${id}`)), id).toBe(false);
    // Only the removed nodes were ever asked to delete (the one cut short, again).
    expect(new Set(deletes(p.dir))).toEqual(new Set(GONE));
    const db = new Database(join(p.state, 'state.db'), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.prepare('SELECT id FROM nodes ORDER BY id').all()).toEqual(KEEP.map((id) => ({ id })));
      expect(db.prepare('SELECT count(*) AS n FROM operations WHERE finished_at IS NULL').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
    expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(0);
  }, 60_000);
});
