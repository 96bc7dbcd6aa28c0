import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cli, goalHead, localBackend, planBoth, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

/**
 * A node removed from the goals (prune, `Delete`) in the change that points its Backend elsewhere (another
 * root under the same name, or the implied `local` taking the name of a Backend `local` removed) was
 * deleted through the backend as now declared: a file at its path under the new root, one desiredstate
 * never made, was deleted, and the node's own left. Its delete is refused before any backend call, on
 * every apply and daemon pass while the backend points elsewhere; a Backend merely renamed still deletes.
 */
const daemons = trackDaemons();

type Project = ReturnType<typeof tempProject>;

/** Backend `name` at `root` (none: the implied `local`) and a Goal that prunes, with `k` and, unless `removed`, `f` (Delete). */
function write(p: Project, backend: { readonly name: string; readonly root: string } | undefined, removed: boolean): void {
  const f = removed ? '' : '    - { id: f, type: local.file, deletionPolicy: Delete, spec: { path: f.txt, content: "A\\n" } }\n';
  const head = backend === undefined ? '' : `${localBackend(backend.root, backend.name)}---\n`;
  const defaults = backend === undefined ? '' : `  defaults: { backend: ${backend.name} }\n`;
  p.write('app.yaml', `${head}${goalHead(`  prune: true\n${defaults}`)}${f}    - { id: k, type: local.file, spec: { path: k.txt, content: "K\\n" } }\n`);
}

/** A file desiredstate never made at `f.txt` under `root`. */
function plant(root: string): string {
  mkdirSync(root, { recursive: true });
  const file = join(root, 'f.txt');
  writeFileSync(file, 'precious\n');
  return file;
}

/** Backend `files` at `<dir>/rootA`, `f` and `k` applied; then pointed at `<dir>/rootB`, where `f.txt` is planted, and `f` removed. */
async function moved(prefix: string, legacy = false): Promise<{ p: Project; own: string; planted: string }> {
  const p = tempProject(prefix);
  write(p, { name: 'files', root: join(p.dir, 'rootA') }, false);
  const first = await cli(['apply', '--yes', ...p.args]);
  expect(first.code, first.stdout + first.stderr).toBe(0);
  if (legacy) forgetBackendKey(p, 'f');
  const planted = plant(join(p.dir, 'rootB'));
  write(p, { name: 'files', root: join(p.dir, 'rootB') }, true);
  return { p, own: join(p.dir, 'rootA', 'f.txt'), planted };
}

/** `id`'s record as a release before the backend's identity was stored with the spec wrote it. */
function forgetBackendKey(p: Project, id: string): void {
  const db = new Database(join(p.state, 'state.db'));
  try {
    const snapshot = JSON.parse((db.prepare('SELECT snapshot FROM nodes WHERE id = ?').get(id) as { snapshot: string }).snapshot) as { spec: Record<string, unknown> };
    expect(snapshot.spec.backendKey).toEqual(expect.any(String));
    delete snapshot.spec.backendKey;
    db.prepare('UPDATE nodes SET snapshot = ? WHERE id = ?').run(JSON.stringify(snapshot), id);
  } finally {
    db.close();
  }
}

/** The refusal of f's delete, its backend now at `root`; `was`, where it pointed when f was applied, where the record says. */
const refusal = (root: string, was?: string): string =>
  `node "f" on backend "files" cannot be deleted: backend "files" now points elsewhere (root ${root}) than when the node was applied${was === undefined ? '' : ` (root ${was})`}: ` +
  'its resource is where the backend pointed then, and a delete now would act on another one in its place';

describe('a node removed as its Backend is pointed elsewhere', () => {
  it.each([
    { name: 'its record keeps the identity it was applied at', legacy: false },
    { name: 'its record was written before it kept one (the state says the backend changed)', legacy: true },
  ])('plan shows the delete refused and every apply refuses it, the file there kept: $name', async ({ legacy }) => {
    const { p, own, planted } = await moved('ds-moved-delete-', legacy);
    // Where it pointed is known from a record that keeps the identity it was applied at.
    const was = legacy ? undefined : join(p.dir, 'rootA');
    const planned = await planBoth(p.args);
    expect(planned.code, planned.text).toBe(1);
    expect(planned.text).toContain(`  x f (local.file via files) error (permanent): ${refusal(join(p.dir, 'rootB'), was)} (hint: declare backend "files" as it was`);
    expect(planned.json.entries.find((e) => e.id === 'f')?.planned).toMatchObject({ action: 'error', fault: { class: 'permanent', code: 'delete-backend-moved' } });
    for (let i = 0; i < 2; i++) {
      const apply = await cli(['apply', '--yes', ...p.args]);
      expect(apply.code, apply.stdout + apply.stderr).toBe(1);
      expect(apply.stdout).toContain(`  x f: permanent: ${refusal(join(p.dir, 'rootB'), was)}`);
      expect(readFileSync(planted, 'utf8')).toBe('precious\n');
      expect(readFileSync(own, 'utf8')).toBe('A\n');
    }
  });

  it('declared again where it pointed, the backend deletes the node there', async () => {
    const { p, own, planted } = await moved('ds-moved-delete-back-');
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(1);
    write(p, { name: 'files', root: join(p.dir, 'rootA') }, true);
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('  - f: deleted');
    expect(existsSync(own)).toBe(false);
    expect(readFileSync(planted, 'utf8')).toBe('precious\n');
  });

  it('the Backend `local` removed with the node: the implied `local` does not delete its file', async () => {
    const p = tempProject('ds-moved-delete-implied-');
    write(p, { name: 'local', root: join(p.dir, 'rootA') }, false);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    const planted = plant(join(p.dir, '.desiredstate', 'local'));
    write(p, undefined, true);
    const planned = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(planned.code, planned.stdout + planned.stderr).toBe(1);
    expect(planned.stdout).toContain(`  x f (local.file via local) error (permanent): node "f" on backend "local" cannot be deleted: backend "local" now points elsewhere (root ${join(p.dir, '.desiredstate', 'local')}) than when the node was applied (root ${join(p.dir, 'rootA')})`);
    for (let i = 0; i < 2; i++) {
      const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
      expect(apply.code, apply.stdout + apply.stderr).toBe(1);
      expect(apply.stdout).toContain('  x f: permanent: node "f" on backend "local" cannot be deleted: backend "local" now points elsewhere');
    }
    expect(readFileSync(planted, 'utf8')).toBe('precious\n');
    expect(readFileSync(join(p.dir, 'rootA', 'f.txt'), 'utf8')).toBe('A\n');
  });

  it('a daemon keeps the record and logs the refusal, started again too', async () => {
    const { p, own, planted } = await moved('ds-moved-delete-daemon-');
    for (let i = 0; i < 2; i++) {
      const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
      const refused = await d.waitFor((l) => l.msg === 'delete failed' && l.node === 'f', 20_000);
      expect(refused).toMatchObject({ backend: 'files', fault: { code: 'delete-backend-moved', message: refusal(join(p.dir, 'rootB'), join(p.dir, 'rootA')) } });
      d.kill('SIGTERM');
      expect((await d.exited).code).toBe(0);
      expect(readFileSync(planted, 'utf8')).toBe('precious\n');
      expect(readFileSync(own, 'utf8')).toBe('A\n');
    }
    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args])).stdout) as { nodes: { id: string; reason: string | null }[] };
    expect(status.nodes.find((n) => n.id === 'f')?.reason).toContain(refusal(join(p.dir, 'rootB'), join(p.dir, 'rootA')));
  });

  it('a daemon refuses on each reload, spending no retry budget, and deletes at the reload that declares the backend back', async () => {
    const { p, own, planted } = await moved('ds-moved-delete-reload-');
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const refusals = (): number => d.lines.filter((l) => l.msg === 'delete failed' && l.node === 'f').length;
    await d.waitFor((l) => l.msg === 'delete failed' && l.node === 'f', 20_000);
    // More refusals than the permanent class's retry budget (3): none holds it.
    while (refusals() < 4) {
      const mark = d.lines.length;
      d.kill('SIGHUP');
      await d.waitFor((l) => l.msg === 'delete failed' && l.node === 'f', 20_000, mark);
    }
    expect(d.lines.filter((l) => l.node === 'f' && (l.msg === 'node held' || l.msg === 'delete held'))).toEqual([]);
    const refused = JSON.parse((await cli(['status', '--format', 'json', ...p.args])).stdout) as { nodes: { id: string; status: string; reason: string | null }[] };
    expect(refused.nodes.find((n) => n.id === 'f')).toMatchObject({ status: 'failed', reason: refusal(join(p.dir, 'rootB'), join(p.dir, 'rootA')) });
    write(p, { name: 'files', root: join(p.dir, 'rootA') }, true);
    const mark = d.lines.length;
    d.kill('SIGHUP');
    await d.waitFor((l) => l.msg === 'node deleted' && l.node === 'f', 20_000, mark);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(existsSync(own)).toBe(false);
    expect(readFileSync(planted, 'utf8')).toBe('precious\n');
  });

  it('refused by more applies than the retry budget, then declared back: a daemon started then deletes it', async () => {
    const { p, own } = await moved('ds-moved-delete-applies-');
    for (let i = 0; i < 4; i++) expect((await cli(['apply', '--yes', ...p.args])).code).toBe(1);
    write(p, { name: 'files', root: join(p.dir, 'rootA') }, true);
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    const seen = await d.waitFor((l) => l.node === 'f' && (l.msg === 'node deleted' || l.msg === 'delete held'), 20_000);
    expect(seen.msg).toBe('node deleted');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(existsSync(own)).toBe(false);
  });

  it('apply and a daemon record the refusal alike: failed, its attempts kept, and no retry due, one an earlier failure set too', async () => {
    const { p } = await moved('ds-moved-delete-record-');
    const shown = async (): Promise<Record<string, unknown>> => {
      const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args])).stdout) as { nodes: { id: string; updatedAt: number }[] };
      const { updatedAt: _, ...f } = status.nodes.find((n) => n.id === 'f')!;
      return f;
    };
    // As a daemon leaves a delete that failed and is retried on its backoff: one attempt spent, a retry set.
    const failedOnce = (): void => {
      const db = new Database(join(p.state, 'state.db'));
      try {
        db.prepare("UPDATE nodes SET status = 'failed', attempts = 1, retry_at = 1000 WHERE id = 'f'").run();
      } finally {
        db.close();
      }
    };
    failedOnce();
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(1);
    const applied = await shown();
    expect(applied).toMatchObject({ status: 'failed', attempts: 1, retryAt: null, lastFault: { code: 'delete-backend-moved', notTheBackend: 'declaration' } });
    failedOnce();
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await d.waitFor((l) => l.msg === 'delete failed' && l.node === 'f', 20_000);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(await shown()).toEqual(applied);
  });

  it('deletes refused as the Backend points elsewhere are not counted by the mass-deletion guard: planned and met as refusals', async () => {
    const p = tempProject('ds-moved-delete-mass-');
    const nodes = (ids: readonly string[]): string => ids.map((id) => `    - { id: ${id}, type: local.file, deletionPolicy: Delete, spec: { path: ${id}.txt, content: "A\\n" } }\n`).join('');
    const goals = (root: string, ids: readonly string[]): string => `${localBackend(join(p.dir, root), 'files')}---\n${goalHead('  prune: true\n  defaults: { backend: files }\n')}${nodes(ids)}`;
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'k'];
    p.write('app.yaml', goals('rootA', ids));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    p.write('app.yaml', goals('rootB', ['k']));
    const planned = await cli(['plan', ...p.args]);
    expect(planned.code, planned.stdout + planned.stderr).toBe(1);
    for (const id of ids.slice(0, 6)) expect(planned.stdout).toContain(`  x ${id} (local.file via files) error (permanent): node "${id}" on backend "files" cannot be deleted: backend "files" now points elsewhere`);
    expect(planned.stdout).not.toContain('mass-deletion guard');
    expect(planned.stdout).toContain('6 errors.');
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(1);
    for (const id of ids.slice(0, 6)) expect(apply.stdout).toContain(`  x ${id}: permanent: node "${id}" on backend "files" cannot be deleted: backend "files" now points elsewhere`);
    expect(apply.stdout + apply.stderr).not.toContain('mass deletion');
    for (const id of ids) expect(readFileSync(join(p.dir, 'rootA', `${id}.txt`), 'utf8')).toBe('A\n');
  });

  it.each([
    { name: 'started on the revision', reload: false },
    { name: 'reloading it', reload: true },
  ])('a daemon counts deletes against the mass-deletion guard as plan and apply do, without those refused as the Backend points elsewhere: $name', async ({ reload }) => {
    const p = tempProject('ds-moved-delete-mass-daemon-');
    // `a`–`c` through `files`, pointed elsewhere by the revision, `d`–`g` and `k` through `kept`: the revision's
    // 6 deletes are past the limit (5 of 7 managed), the 3 it would attempt are not.
    const node = (id: string, backend: string): string => `    - { id: ${id}, type: local.file, backend: ${backend}, deletionPolicy: Delete, spec: { path: ${id}.txt, content: "A\\n" } }\n`;
    const goals = (root: string, ids: readonly string[]): string =>
      `${localBackend(join(p.dir, root), 'files')}---\n${localBackend(join(p.dir, 'rootK'), 'kept')}---\n${goalHead('  prune: true\n')}${ids.map((id) => node(id, 'abc'.includes(id) ? 'files' : 'kept')).join('')}`;
    p.write('app.yaml', goals('rootA', ['a', 'b', 'c', 'd', 'e', 'g', 'k']));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    const revision = goals('rootB', ['k']);
    const args = [...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'];
    if (!reload) p.write('app.yaml', revision);
    const d = daemons.start(args, { cwd: p.dir });
    let mark = 0;
    if (reload) {
      await d.waitFor((l) => l.msg === 'goals loaded', 20_000);
      mark = d.lines.length;
      p.write('app.yaml', revision);
      d.kill('SIGHUP');
    }
    const seen = (msg: string, id: string): boolean => d.lines.slice(mark).some((l) => l.msg === msg && l.node === id);
    const massRefused = (): boolean => d.lines.slice(mark).some((l) => l.msg.startsWith('goal revision rejected (mass deletion)'));
    await eventually(() => massRefused() || ['a', 'b', 'c'].every((id) => seen('delete failed', id)) && ['d', 'e', 'g'].every((id) => seen('node deleted', id)), 20_000, 'the revision refused or its deletes met');
    expect(d.lines.slice(mark).filter((l) => l.msg.startsWith('goal revision rejected'))).toEqual([]);
    for (const id of ['a', 'b', 'c']) expect(d.lines.find((l) => l.msg === 'delete failed' && l.node === id)).toMatchObject({ fault: { code: 'delete-backend-moved' } });
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    for (const id of ['a', 'b', 'c']) expect(readFileSync(join(p.dir, 'rootA', `${id}.txt`), 'utf8')).toBe('A\n');
    for (const id of ['d', 'e', 'g']) expect(existsSync(join(p.dir, 'rootK', `${id}.txt`))).toBe(false);
    expect(readFileSync(join(p.dir, 'rootK', 'k.txt'), 'utf8')).toBe('A\n');
  });

  it('a Backend renamed, pointing where it did, deletes a node removed after', async () => {
    const p = tempProject('ds-moved-delete-rename-');
    const root = join(p.dir, 'rootA');
    write(p, { name: 'local', root }, false);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    write(p, { name: 'files', root }, false);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    write(p, { name: 'files', root }, true);
    const apply = await cli(['apply', '--yes', ...p.args]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('  - f: deleted');
    expect(existsSync(join(root, 'f.txt'))).toBe(false);
  });
});
