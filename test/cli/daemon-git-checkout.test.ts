import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { goalHead, localBackend } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { git } from '../support/git.ts';
import { warnSkipped } from '../support/skip.ts';

/*
 * A `git checkout` writes the goal files one by one, holding the index lock meanwhile, for as long as
 * its smudge filters (git-lfs, git-crypt) take. Here a filter holds b.yaml back until the test lets it
 * go: the checkout stops half-way, a.yaml new and b.yaml not yet, and a node moving from one to the other
 * is in neither. A daemon that reloaded then would delete it (prune: true, deletionPolicy: Delete) and
 * create it again once the checkout ends: a new file, for a real resource its data gone.
 */
const hasGit = spawnSync('git', ['--version']).status === 0;
if (!hasGit) warnSkipped(['git is not installed: the daemon-beside-a-git-checkout tests are skipped']);

const daemons = trackDaemons();

/** A Goal `name` that prunes, with `nodes` (YAML list items, indented under `nodes:`). */
function goal(name: string, nodes: readonly string[]): string {
  return `${goalHead('  prune: true\n  defaults: { backend: local }\n').replace('name: app', `name: ${name}`)}${nodes.length === 0 ? '    []\n' : nodes.join('')}`;
}

const db = '    - { id: db, type: local.file, deletionPolicy: Delete, spec: { path: db.txt, content: "precious\\n" } }\n';
const web = (v: string): string => `    - { id: web, type: local.file, deletionPolicy: Delete, spec: { path: web.txt, content: "${v}\\n" } }\n`;

/**
 * A repository on `main` (db in a.yaml, web v1 in b.yaml, keep in c.yaml), with a branch `alt` where db has moved to
 * b.yaml beside web v2; checking out a b.yaml waits for `gate` to exist.
 */
function repository(): { base: string; repo: string; root: string; gate: string } {
  const base = mkdtempSync(join(tmpdir(), 'ds-git-checkout-'));
  daemons.removeAfter(base);
  const repo = join(base, 'repo');
  const root = join(base, 'root');
  const gate = join(base, 'gate');
  mkdirSync(join(repo, 'goals'), { recursive: true });
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'goals/00-backend.yaml'), localBackend(root));
  writeFileSync(join(repo, 'goals/a.yaml'), goal('a', [db]));
  writeFileSync(join(repo, 'goals/b.yaml'), goal('b', [web('v1')]));
  // Not touched by the checkout: the goals read half-way are not empty (which the daemon would refuse).
  writeFileSync(join(repo, 'goals/c.yaml'), goal('c', ['    - { id: keep, type: local.file, spec: { path: keep.txt, content: "k\\n" } }\n']));
  git(repo, 'add', '.');
  git(repo, 'commit', '-qm', 'main');
  git(repo, 'checkout', '-q', '-b', 'alt');
  writeFileSync(join(repo, 'goals/a.yaml'), goal('a', []));
  writeFileSync(join(repo, 'goals/b.yaml'), goal('b', [web('v2'), db]));
  git(repo, 'commit', '-qam', 'db moves to b.yaml');
  git(repo, 'checkout', '-q', 'main');
  const filter = join(base, 'gate.sh');
  writeFileSync(filter, `case "$1" in *b.yaml) while [ ! -e '${gate}' ]; do sleep 0.05; done;; esac\nexec cat\n`);
  writeFileSync(join(repo, '.git/info/attributes'), '*.yaml filter=gate\n');
  git(repo, 'config', 'filter.gate.smudge', `sh '${filter}' %f`);
  git(repo, 'config', 'filter.gate.clean', 'cat');
  return { base, repo, root, gate };
}

describe.skipIf(!hasGit)('a daemon beside a git checkout', () => {
  it('does not reload the goals while git is writing the work tree: a node moving between goal files is neither deleted nor made again', async () => {
    const { base, repo, root, gate } = repository();
    const d = daemons.start(['--goals', 'goals', '--state', join(base, 'state'), '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: repo });
    await d.port();
    await eventually(() => existsSync(join(root, 'db.txt')) && existsSync(join(root, 'web.txt')), 10_000, 'db and web created');
    const inode = statSync(join(root, 'db.txt')).ino;
    const mark = d.lines.length;
    const checkout = spawn('git', ['checkout', '-q', 'alt'], { cwd: repo, stdio: 'ignore' });
    const checkedOut = new Promise<number | null>((resolve) => checkout.on('exit', resolve));
    // Half-way: a.yaml without db is in place, b.yaml (with it) held back by its filter (the old one removed).
    await eventually(() => !readFileSync(join(repo, 'goals/a.yaml'), 'utf8').includes('db.txt'), 10_000, 'a.yaml checked out');
    expect(existsSync(join(repo, 'goals/b.yaml')) && readFileSync(join(repo, 'goals/b.yaml'), 'utf8').includes('db.txt')).toBe(false);
    const seen = await d.waitFor((l) => l.msg === 'reload deferred: git is writing the work tree' || l.msg === 'node deleted', 10_000, mark);
    expect(seen).toMatchObject({ msg: 'reload deferred: git is writing the work tree', lock: join(repo, '.git/index.lock') });
    writeFileSync(gate, '');
    expect(await checkedOut).toBe(0);
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'goals changed', 10_000, mark);
    await eventually(() => readFileSync(join(root, 'web.txt'), 'utf8') === 'v2\n', 10_000, 'web updated from the new b.yaml');
    expect(d.lines.slice(mark).filter((l) => l.msg === 'node deleted' || l.msg === 'goals loaded')).toEqual([expect.objectContaining({ msg: 'goals loaded', nodes: 3 })]);
    expect(statSync(join(root, 'db.txt')).ino).toBe(inode);
  });
});
