import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, localBackend, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { canSetImmutable, setImmutable } from '../support/privileges.ts';

const goal = (content: string): string => `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: site }
spec:
  nodes:
    - id: www
      type: local.directory
      spec: { path: www, mode: "0755" }
    - id: index
      type: local.file
      dependsOn: [www]
      spec: { path: www/index.html, mode: "0644", content: ${JSON.stringify(content)} }
`;

const extra = `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: extra }
spec:
  nodes:
    - id: robots
      type: local.file
      spec: { path: www/robots.txt, mode: "0644", content: "User-agent: *\\n" }
`;

const p = tempProject('ds-daemon-');
p.write('backend.yaml', localBackend(p.root));
p.write('site.yaml', goal('<h1>hi</h1>\n'));
const daemons = trackDaemons(p.dir);

const index = join(p.root, 'www/index.html');

async function readyz(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
  } catch {
    return 0;
  }
}

describe('desiredstate run: the real daemon', () => {
  // One daemon through its life; each step depends on the previous one.
  it('converges, repairs hand edits, rejects broken goals, reloads, refuses a second daemon, exits 0 on SIGTERM', async () => {
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', ...p.args], { cwd: p.dir });
    const port = await d.port();
    expect(port).toBeGreaterThan(0);
    await eventually(async () => (await readyz(port)) === 200, 20_000, '/readyz 200');
    expect(readFileSync(index, 'utf8')).toBe('<h1>hi</h1>\n');
    expect(((await fetch(`http://127.0.0.1:${port}/healthz`)).status)).toBe(200);

    // A hand edit is noticed through the backend's watch, well before the 60 s interval.
    let mark = d.lines.length;
    writeFileSync(index, 'defaced\n');
    const drift = await d.waitFor((l) => l.msg === 'drift detected', 5_000, mark);
    expect(drift).toMatchObject({ node: 'index', backend: 'local', goal: 'site', action: 'corrected' });
    expect(drift.diffs).toEqual([expect.objectContaining({ path: 'content' })]);
    await eventually(() => readFileSync(index, 'utf8') === '<h1>hi</h1>\n', 5_000, 'the file restored');

    // Deleted by hand: drift too (`exists`), not a silent re-create.
    mark = d.lines.length;
    rmSync(index);
    const gone = await d.waitFor((l) => l.msg === 'drift detected', 5_000, mark);
    expect(gone).toMatchObject({ node: 'index', action: 'corrected', diffs: [{ path: 'exists', desired: true, actual: false }] });
    await eventually(() => existsSync(index) && readFileSync(index, 'utf8') === '<h1>hi</h1>\n', 5_000, 'the file re-created');

    // A broken revision is logged with file:line and changes nothing.
    mark = d.lines.length;
    p.write('extra.yaml', extra.replace('content:', 'contnet:'));
    const rejected = await d.waitFor((l) => l.msg.startsWith('goal revision rejected'), 10_000, mark);
    expect(rejected.level).toBe(50);
    expect(d.lines.slice(mark).some((l) => l.msg === 'goal error' && String(l.file).endsWith('extra.yaml') && typeof l.line === 'number')).toBe(true);
    expect(existsSync(join(p.root, 'www/robots.txt'))).toBe(false);
    expect(readFileSync(index, 'utf8')).toBe('<h1>hi</h1>\n');
    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^daemon: running \(pid \d+, API on 127\.0\.0\.1:\d+\)$/m);
    expect(status.stdout).toContain('goal revision rejected; the last good graph keeps running');
    expect(status.stdout).toMatch(/extra\.yaml:\d+:\d+: error unknown-field/);
    // The API's /status says so too (not only the state file): a dashboard must not show all green.
    const apiStatus = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { goalErrors: string[] | null };
    expect(apiStatus.goalErrors).toEqual(expect.arrayContaining([expect.stringMatching(/extra\.yaml:\d+:\d+: error unknown-field/)]));

    // Fixed: reloaded, the new node converges, the errors are gone from status.
    mark = d.lines.length;
    p.write('extra.yaml', extra);
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'goals changed', 10_000, mark);
    await eventually(() => existsSync(join(p.root, 'www/robots.txt')), 10_000, 'robots.txt created');
    expect((await cli(['status', ...p.args], { cwd: p.dir })).stdout).not.toContain('goal revision rejected');
    expect(((await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { goalErrors: unknown }).goalErrors).toBeNull();

    // A second daemon on the same state refuses to start.
    const second = await cli(['run', '--listen', '127.0.0.1:0', ...p.args], { cwd: p.dir });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/^desiredstate run: state \S*state\.db is locked by process \d+, the daemon serving it \(API on 127\.0\.0\.1:\d+\); stop it first \(SIGTERM\), or use status, drift, history and retry, which work beside it\n$/);
    // apply is refused the same way.
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code).toBe(1);
    expect(apply.stderr).toMatch(/^desiredstate apply: state \S*state\.db is locked by process \d+, the daemon serving it/);

    // SIGHUP reloads.
    mark = d.lines.length;
    d.kill('SIGHUP');
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'SIGHUP', 10_000, mark);

    // SIGTERM: exit 0; the state says every node is ready.
    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
    const final = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { nodes: { id: string; status: string }[]; daemon: unknown };
    expect(final.daemon).toEqual({ running: false });
    expect((await cli(['status', ...p.args], { cwd: p.dir })).stdout).toMatch(/^daemon: not running$/m);
    expect(final.nodes.map((n) => `${n.id}:${n.status}`).sort()).toEqual(['index:ready', 'robots:ready', 'www:ready']);
    expect(statSync(index).mode & 0o777).toBe(0o644);
    const driftCmd = await cli(['drift', '--node', 'index', ...p.args], { cwd: p.dir });
    expect(driftCmd.stdout).toContain('index (site, local)  corrected');
  }, 120_000);

  it('notices goal files replaced by a rename (git checkout, sed -i, editors) every time, and a replaced goal directory by polling', async () => {
    const q = tempProject('ds-daemon-replace-');
    daemons.removeAfter(q.dir);
    q.write('backend.yaml', localBackend(q.root));
    q.write('site.yaml', goal('v0\n'));
    const file = join(q.root, 'www/index.html');
    // What `sed -i` and git do: write a new file beside the old one, rename it over.
    const replace = (dir: string, name: string, text: string): void => {
      const tmp = join(dir, `.${name}.tmp`);
      writeFileSync(tmp, text);
      renameSync(tmp, join(dir, name));
    };
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', '--debounce', '50ms', ...q.args], { cwd: q.dir });
    await d.port();
    await eventually(() => existsSync(file) && readFileSync(file, 'utf8') === 'v0\n', 20_000, 'converged');
    for (const v of ['v1', 'v2', 'v3']) {
      const mark = d.lines.length;
      replace(q.goals, 'site.yaml', goal(`${v}\n`));
      await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'goals changed', 4_000, mark);
      await eventually(() => readFileSync(file, 'utf8') === `${v}\n`, 5_000, `${v} applied`);
    }

    // A new subdirectory, and a goal file renamed into it.
    let mark = d.lines.length;
    mkdirSync(join(q.goals, 'more'));
    replace(join(q.goals, 'more'), 'extra.yaml', extra);
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'goals changed', 4_000, mark);
    await eventually(() => existsSync(join(q.root, 'www/robots.txt')), 5_000, 'robots.txt created');

    // The whole directory swapped for another (a deploy tool's symlink flip or rename): the old
    // directory's watch sees nothing of the new one; the poll does.
    mark = d.lines.length;
    const next = `${q.goals}.next`;
    cpSync(q.goals, next, { recursive: true });
    writeFileSync(join(next, 'site.yaml'), goal('v4\n'));
    renameSync(q.goals, `${q.goals}.old`);
    renameSync(next, q.goals);
    await d.waitFor((l) => l.msg === 'goals loaded' && l.reason === 'goals changed', 15_000, mark);
    await eventually(() => readFileSync(file, 'utf8') === 'v4\n', 5_000, 'v4 applied');
    // Events on files that are not goal files reload nothing.
    mark = d.lines.length;
    writeFileSync(join(q.goals, 'notes.txt'), 'hello');
    await new Promise((r) => setTimeout(r, 500));
    expect(d.lines.slice(mark).filter((l) => l.msg === 'goals loaded')).toEqual([]);

    d.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 0, signal: null });
  }, 90_000);
});

/**
 * A project whose goal `tree` manages the directory srv/conf (0750) and app.toml and app.env in it, and
 * with `srv` the directory srv (0755) too.
 */
function confTreeProject(prefix: string, options: { srv: boolean }): ReturnType<typeof tempProject> {
  const q = tempProject(prefix);
  q.write('backend.yaml', localBackend(q.root));
  const srv = options.srv ? '    - { id: srv, type: local.directory, spec: { path: srv, mode: "0755" } }\n' : '';
  q.write('tree.yaml', `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: tree }
spec:
  nodes:
${srv}    - { id: conf, type: local.directory, spec: { path: srv/conf, mode: "0750" } }
    - { id: app, type: local.file, spec: { path: srv/conf/app.toml, mode: "0640", content: "port = 8080\\n" } }
    - { id: env, type: local.file, spec: { path: srv/conf/app.env, mode: "0600", content: "A=1\\n" } }
`);
  return q;
}

describe('desiredstate run: a tree deleted by hand', () => {
  const q = confTreeProject('ds-daemon-tree-', { srv: true });
  const qd = trackDaemons(q.dir);

  it('rm -rf: each directory is made again with its own mode before the files in it, every node reported as gone', async () => {
    const d = qd.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...q.args], { cwd: q.dir });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'env', 20_000);
    await eventually(() => existsSync(join(q.root, 'srv/conf/app.env')), 5_000, 'converged');
    const mark = d.lines.length;
    rmSync(join(q.root, 'srv'), { recursive: true });
    await eventually(() => d.lines.slice(mark).filter((l) => l.msg === 'node created').length === 4, 10_000, 'all four made again');
    expect(statSync(join(q.root, 'srv/conf')).mode & 0o7777).toBe(0o750);
    const created = d.lines.slice(mark).filter((l) => l.msg === 'node created').map((l) => l.node);
    expect(created.indexOf('srv')).toBeLessThan(created.indexOf('conf'));
    expect(created.indexOf('conf')).toBeLessThan(Math.min(created.indexOf('app'), created.indexOf('env')));
    // Each reported as deleted out of band, none as a directory made for a file with the wrong mode.
    const drift = d.lines.slice(mark).filter((l) => l.msg === 'drift detected') as unknown as { node: string; diffs: { path: string }[] }[];
    expect(drift.map((l) => `${l.node} ${l.diffs.map((x) => x.path).join(',')}`).sort()).toEqual(['app exists', 'conf exists', 'env exists', 'srv exists']);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 40_000);
});

describe('desiredstate run: a managed directory made a symlink out of the root by hand', () => {
  const q = confTreeProject('ds-daemon-link-', { srv: false });
  const qd = trackDaemons(q.dir);

  it('blocks the files in it (never held) while the link is there, and makes them again at once when it goes', async () => {
    const d = qd.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...q.args], { cwd: q.dir });
    const port = await d.port();
    await eventually(() => existsSync(join(q.root, 'srv/conf/app.env')) && existsSync(join(q.root, 'srv/conf/app.toml')), 20_000, 'converged');
    const statusOf = async (): Promise<Record<string, string>> => {
      const nodes = ((await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { nodes: { id: string; status: string }[] }).nodes;
      return Object.fromEntries(nodes.map((n) => [n.id, n.status]));
    };
    const outside = join(q.dir, 'elsewhere');
    mkdirSync(outside);
    const mark = d.lines.length;
    rmSync(join(q.root, 'srv/conf'), { recursive: true });
    symlinkSync(outside, join(q.root, 'srv/conf'));
    const drift = await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'conf', 10_000, mark);
    expect(drift.diffs).toEqual([expect.objectContaining({ path: 'kind', desired: 'directory', actual: 'symlink' })]);
    // Its files wait for it: blocked, not failing until held.
    await eventually(async () => {
      const s = await statusOf();
      return s.app === 'blocked' && s.env === 'blocked';
    }, 20_000, 'app and env blocked');
    unlinkSync(join(q.root, 'srv/conf'));
    await eventually(() => existsSync(join(q.root, 'srv/conf/app.env')) && existsSync(join(q.root, 'srv/conf/app.toml')), 10_000, 'the files made again');
    expect(readFileSync(join(q.root, 'srv/conf/app.toml'), 'utf8')).toBe('port = 8080\n');
    expect(statSync(join(q.root, 'srv/conf')).isDirectory()).toBe(true);
    await eventually(async () => Object.values(await statusOf()).every((s) => s === 'ready'), 10_000, 'all ready');
    const after = d.lines.slice(mark);
    expect(after.filter((l) => l.msg === 'node held')).toEqual([]);
    expect(after.filter((l) => (l.fault as { code?: string } | undefined)?.code === 'path-escapes-root')).toEqual([]);
    expect(readdirSync(outside)).toEqual([]);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 60_000);
});

const SUBTREE_FILES = ['f1', 'f2', 'f3', 'f4', 'f5', 'f6'];

/** A project of six files under srv/sub (no directory node manages it, so nothing drifts to block on) and other.txt, and its daemons. */
function subtreeProject(prefix: string): { q: ReturnType<typeof tempProject>; qd: ReturnType<typeof trackDaemons> } {
  const q = tempProject(prefix);
  q.write('backend.yaml', localBackend(q.root));
  q.write('tree.yaml', `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: tree }
spec:
  nodes:
${SUBTREE_FILES.map((f) => `    - { id: ${f}, type: local.file, spec: { path: srv/sub/${f}.txt, mode: "0644", content: "${f}\\n" } }`).join('\n')}
    - { id: other, type: local.file, spec: { path: other.txt, mode: "0644", content: "other\\n" } }
`);
  return { q, qd: trackDaemons(q.dir) };
}

/**
 * Runs a daemon on a `subtreeProject` until converged, then `spoil`s srv/sub: each file under it fails at
 * least once with the fault `code`, each on its own backoff; the backend circuit stays closed, and a hand
 * edit of other.txt is still corrected at once. `restore` undoes `spoil`, whatever came of it.
 */
async function expectSubtreeFailsAlone({ q, qd }: ReturnType<typeof subtreeProject>, code: string, spoil: (sub: string) => void, restore: (sub: string) => void = () => undefined): Promise<void> {
  const d = qd.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...q.args], { cwd: q.dir });
  const port = await d.port();
  await eventually(() => SUBTREE_FILES.every((f) => existsSync(join(q.root, `srv/sub/${f}.txt`))) && existsSync(join(q.root, 'other.txt')), 20_000, 'converged');
  const sub = join(q.root, 'srv/sub');
  const mark = d.lines.length;
  try {
    spoil(sub);
    await eventually(
      () => SUBTREE_FILES.every((f) => d.lines.slice(mark).some((l) => l.node === f && (l.fault as { code?: string } | undefined)?.code === code)),
      20_000,
      `each file failed with ${code}`,
    );
    const edit = d.lines.length;
    writeFileSync(join(q.root, 'other.txt'), 'hand\n');
    await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'other', 10_000, edit);
    await eventually(() => readFileSync(join(q.root, 'other.txt'), 'utf8') === 'other\n', 10_000, 'other.txt corrected');
    expect(d.lines.slice(mark).filter((l) => l.msg === 'backend circuit open')).toEqual([]);
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { circuits?: unknown[] };
    expect(status.circuits ?? []).toEqual([]);
  } finally {
    restore(sub);
  }
  d.kill('SIGTERM');
  expect((await d.exited).code).toBe(0);
}

describe.skipIf(!canSetImmutable())('desiredstate run: a subdirectory the daemon may not write in (immutable: EPERM even to root)', () => {
  // As EACCES of a directory a non-root daemon may not enter: a refusal of that path alone.
  const project = subtreeProject('ds-daemon-locked-');

  it('its files fail on their own, the backend circuit stays closed, and an unrelated file is still corrected at once', async () => {
    // Removed by hand, and made again into a directory that refuses them.
    const spoil = (sub: string): void => {
      for (const f of SUBTREE_FILES) unlinkSync(join(sub, `${f}.txt`));
      expect(setImmutable(sub, true)).toBe(true);
    };
    await expectSubtreeFailsAlone(project, 'EPERM', spoil, (sub) => setImmutable(sub, false));
  }, 60_000);
});

describe('desiredstate run: a plain subdirectory made a symlink out of the root by hand', () => {
  const project = subtreeProject('ds-daemon-sublink-');
  const outside = join(project.q.dir, 'elsewhere');

  it('its files fail on their own (a changed path), the backend circuit stays closed, and an unrelated file is still corrected at once', async () => {
    mkdirSync(outside);
    const spoil = (sub: string): void => {
      rmSync(sub, { recursive: true });
      symlinkSync(outside, sub);
    };
    await expectSubtreeFailsAlone(project, 'path-changed', spoil);
    expect(readdirSync(outside)).toEqual([]);
  }, 60_000);
});
