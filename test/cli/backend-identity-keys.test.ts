import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cli, goalHead, localBackend, planBoth, tempProject } from '../support/cli.ts';
import { trackDaemons } from '../support/daemon.ts';

/**
 * A node's resource is named by the identity of the Backend it reaches (`InfraDesiredNodeSpec.backendKey`),
 * not by the Backend's name. Keyed by the name, a node whose id and Backend changed in one change (to another
 * Backend reaching the same root) was not seen to hold the removed node's resource: the removed node was
 * deleted, its file with it, which the kept node manages; and a removed directory a kept file on another
 * Backend lies in was deleted rather than blocked. Keyed by identity, a root changed under one name is not
 * the same resource either.
 */
const daemons = trackDaemons();

type Project = ReturnType<typeof tempProject>;

/** Backends (name and root) and a Goal that prunes, with `nodes` (each: id, backend, path). */
function write(p: Project, backends: readonly (readonly [string, string])[], nodes: readonly (readonly [string, string, string])[], defaults?: string): void {
  const head = backends.map(([name, root]) => `${localBackend(root, name)}---\n`).join('');
  const lines = nodes.map(([id, backend, path]) => `    - { id: ${id}, type: local.file, backend: ${backend}, deletionPolicy: Delete, spec: { path: ${path}, content: "one\\n" } }\n`);
  p.write('app.yaml', `${head}${goalHead(`  prune: true\n${defaults === undefined ? '' : `  defaults: { backend: ${defaults} }\n`}`)}${lines.join('')}`);
}

/** `id`'s record as a release before the backend's identity was stored with the spec wrote it. */
function forgetBackendKey(p: Project, id: string): void {
  const db = new Database(join(p.state, 'state.db'));
  try {
    const snapshot = JSON.parse((db.prepare('SELECT snapshot FROM nodes WHERE id = ?').get(id) as { snapshot: string }).snapshot) as { spec: Record<string, unknown> };
    delete snapshot.spec.backendKey;
    db.prepare('UPDATE nodes SET snapshot = ? WHERE id = ?').run(JSON.stringify(snapshot), id);
  } finally {
    db.close();
  }
}

/** Backends `a` and `b` at one root, `old` applied on `a`; then renamed `new` and moved to `b`. */
async function movedToTwin(prefix: string, legacy = false): Promise<{ p: Project; file: string }> {
  const p = tempProject(prefix);
  const root = join(p.dir, 'r');
  const backends = [['a', root], ['b', root]] as const;
  write(p, backends, [['old', 'a', 'conf']]);
  const first = await cli(['apply', '--yes', ...p.args]);
  expect(first.code, first.stdout + first.stderr).toBe(0);
  if (legacy) forgetBackendKey(p, 'old');
  write(p, backends, [['new', 'b', 'conf']]);
  return { p, file: join(root, 'conf') };
}

describe('resources keyed by the identity of their Backend', () => {
  it.each([
    { name: 'its record keeps the identity it was applied at', legacy: false },
    { name: 'its record was written before it kept one', legacy: true },
  ])('a node renamed and moved to another Backend at the same root: the old one is forgotten, its file kept ($name)', async ({ legacy }) => {
    const { p, file } = await movedToTwin('ds-identity-twin-', legacy);
    const planned = await planBoth(p.args);
    expect(planned.text).toContain('  ○ old (local.file via a) removed from the goals: forgotten, its resource now managed by new');
    expect(planned.json.entries.find((e) => e.id === 'old')?.planned.action).not.toBe('delete');
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('one\n');
    const again = await cli(['plan', ...p.args]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
  });

  it('a daemon forgets the old node too, its file kept', async () => {
    const { p, file } = await movedToTwin('ds-identity-twin-daemon-');
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const orphaned = await d.waitFor((l) => l.msg.startsWith('node orphaned') && l.node === 'old', 20_000);
    expect(orphaned).toMatchObject({ managedBy: 'new' });
    expect(d.lines.some((l) => l.msg === 'node deleted')).toBe(false);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('one\n');
  });

  it('the Backend renamed and the node renamed in one change: the old node is forgotten, not refused or deleted', async () => {
    const p = tempProject('ds-identity-rename-both-');
    const root = join(p.dir, 'r');
    write(p, [['local', root]], [['f1', 'local', 'f1']]);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    write(p, [['main', root]], [['f1b', 'main', 'f1']], 'main');
    const planned = await cli(['plan', ...p.args]);
    expect(planned.stdout).toContain('  ○ f1 (local.file via local) removed from the goals: forgotten, its resource now managed by f1b');
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(readFileSync(join(root, 'f1'), 'utf8')).toBe('one\n');
  });

  it('a Backend renamed: its kept nodes let nothing go', async () => {
    const p = tempProject('ds-identity-rename-kept-');
    const root = join(p.dir, 'r');
    write(p, [['a', root]], [['f2', 'a', 'f2']], 'a');
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    write(p, [['b', root]], [['f2', 'b', 'f2']], 'b');
    const apply = await cli(['apply', '--yes', ...p.args, '--log-level', 'warn']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stderr).not.toContain('the one it managed before is left in place');
  });

  it('a Backend renamed as a node on it is removed: the node is deleted through the new name, which reaches its file', async () => {
    const p = tempProject('ds-identity-rename-delete-');
    const root = join(p.dir, 'r');
    write(p, [['a', root]], [['f1', 'a', 'f1'], ['f2', 'a', 'f2']], 'a');
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    write(p, [['b', root]], [['f2', 'b', 'f2']], 'b');
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('  - f1: deleted');
    expect(existsSync(join(root, 'f1'))).toBe(false);
    expect(readFileSync(join(root, 'f2'), 'utf8')).toBe('one\n');
  });

  it('a Backend removed with a node on it: the refused delete says how to go on', async () => {
    const p = tempProject('ds-identity-undeclared-');
    write(p, [['a', join(p.dir, 'r')], ['b', join(p.dir, 'r2')]], [['f1', 'a', 'f1'], ['f2', 'b', 'f2']]);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    write(p, [['b', join(p.dir, 'r2')]], [['f2', 'b', 'f2']]);
    const planned = await cli(['plan', ...p.args]);
    expect(planned.stdout).toContain('  x f1 (local.file via a) error (permanent): backend "a" is not configured (hint: declare backend "a" again as it was when node "f1" was applied');
    expect(existsSync(join(p.dir, 'r', 'f1'))).toBe(true);
  });

  it('a removed directory a kept file on another Backend at the same root lies in is blocked, not failed', async () => {
    const p = tempProject('ds-identity-dir-');
    const root = join(p.dir, 'r');
    const backends = [['a', root], ['b', root]] as const;
    const dir = '    - { id: d, type: local.directory, backend: a, deletionPolicy: Delete, spec: { path: d } }\n';
    const file = '    - { id: f, type: local.file, backend: b, dependsOn: [DEP], spec: { path: d/f, content: "one\\n" } }\n';
    const head = backends.map(([name, r]) => `${localBackend(r, name)}---\n`).join('');
    p.write('app.yaml', `${head}${goalHead('  prune: true\n')}${dir}${file.replace('DEP', 'd')}`);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    p.write('app.yaml', `${head}${goalHead('  prune: true\n')}${file.replace('dependsOn: [DEP], ', '')}`);
    const planned = await cli(['plan', ...p.args]);
    expect(planned.stdout).toContain('  ⊘ d (local.directory via a) blocked: not deleted while f');
    expect(readFileSync(join(root, 'd', 'f'), 'utf8')).toBe('one\n');
  });

  it('a root changed and the node renamed in one change: the old node is not forgotten as if its file were kept', async () => {
    const p = tempProject('ds-identity-root-');
    write(p, [['local', join(p.dir, 'r')]], [['f1', 'local', 'f1']]);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    write(p, [['local', join(p.dir, 'r2')]], [['f1b', 'local', 'f1']]);
    const planned = await cli(['plan', ...p.args]);
    expect(planned.stdout).not.toContain('forgotten, its resource now managed by f1b');
    expect(planned.stdout).toContain('  x f1 (local.file via local) error (permanent): node "f1" on backend "local" cannot be deleted: backend "local" now points elsewhere');
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(1);
    expect(existsSync(join(p.dir, 'r', 'f1'))).toBe(true);
  });
});
