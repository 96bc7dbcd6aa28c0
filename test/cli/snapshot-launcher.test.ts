import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanEnv, launcher, localBackend, repoRoot, tempProject } from '../support/cli.ts';

// bin/desiredstate starts Node from the start-up snapshot that `npm ci` / `npm run build` make
// (dist/desiredstate.blob, src/cli/snapshot.ts), and hands over to bin/desiredstate.js whenever
// the snapshot is not this install's program from these sources. Most CLI tests run through it
// (test/support/cli.ts); these check the launcher itself.

const blob = join(repoRoot, 'dist/desiredstate.blob');
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string; pid: number | undefined } {
  const r = spawnSync(command, args, { encoding: 'utf8', env: cleanEnv(env) });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, pid: r.pid };
}

/** An install with only a launcher of its own: its bin/desiredstate.js prints what it was started with. */
function fakeInstall(): string {
  const root = mkdtempSync(join(tmpdir(), 'ds-launcher-'));
  temps.push(root);
  mkdirSync(join(root, 'bin'));
  copyFileSync(launcher, join(root, 'bin/desiredstate'));
  writeFileSync(join(root, 'bin/desiredstate.js'), "process.stdout.write(JSON.stringify({ from: 'bin/desiredstate.js', argv: process.argv.slice(2), pid: process.pid }));\n");
  return root;
}

describe('bin/desiredstate (the start-up snapshot)', () => {
  it('was built by the build, for the pinned Node', () => {
    expect(existsSync(blob), `${blob} is missing: npm run build makes it (see its output for why not)`).toBe(true);
    expect(existsSync(join(repoRoot, 'dist/node'))).toBe(true);
  });

  it('starts the program from the snapshot, and each process draws its own random ids and reads this boot', () => {
    const a = run(launcher, ['--snapshot-self-test']);
    const b = run(launcher, ['--snapshot-self-test']);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const [x, y] = [JSON.parse(a.stdout) as { uuid: string; boot: string | null; pid: number }, JSON.parse(b.stdout) as { uuid: string; boot: string | null; pid: number }];
    expect(x.uuid).not.toBe(y.uuid);
    expect(x.pid).toBe(a.pid);
    const boot = existsSync('/proc/sys/kernel/random/boot_id') ? readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() : null;
    expect(x.boot).toBe(boot);
  });

  it('skips the rehash of the snapshot and sizes the heap for a one-shot command, never for the daemon', () => {
    // The snapshot is built on this machine under its own random hash seed; `run`, which lives long and answers HTTP, draws a fresh one.
    const flags = (args: string[], env: NodeJS.ProcessEnv = {}): string[] => {
      const r = run(launcher, ['--snapshot-self-test', ...args], env);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { execArgv: string[] }).execArgv;
    };
    expect(flags([])).toContain('--no-rehash-snapshot');
    expect(flags(['apply', '--goals', 'goals'])).toContain('--no-rehash-snapshot');
    // A one-shot command's young generation stays small (what it loads lives until it exits); the daemon's is V8's.
    expect(flags(['apply', '--goals', 'goals'])).toContain('--max-semi-space-size=2');
    // …and its old generation starts large enough that loading them starts no full collection.
    expect(flags(['apply', '--goals', 'goals'])).toContain('--initial-old-space-size=128');
    for (const daemon of [['run'], ['--goals', 'goals', 'run', '--interval', '30s']]) {
      expect(flags(daemon)).toContain('--rehash-snapshot');
      expect(flags(daemon)).not.toContain('--no-rehash-snapshot');
      expect(flags(daemon).some((f) => f.startsWith('--max-semi-space-size') || f.startsWith('--initial-old-space-size'))).toBe(false);
    }
    // An install copied to many machines shares its seed: this draws a fresh one for every command.
    expect(flags(['apply'], { DESIREDSTATE_REHASH_SNAPSHOT: '1' })).toContain('--rehash-snapshot');
    expect(flags(['apply'], { DESIREDSTATE_REHASH_SNAPSHOT: '1' })).not.toContain('--no-rehash-snapshot');
  });

  it('runs commands as the JavaScript launcher does', () => {
    const viaSnapshot = run(launcher, ['validate', '--goals', join(repoRoot, 'goals')]);
    const viaJs = run(process.execPath, [join(repoRoot, 'bin/desiredstate.js'), 'validate', '--goals', join(repoRoot, 'goals')]);
    expect(viaSnapshot.code).toBe(0);
    expect(viaSnapshot.stdout).toBe(viaJs.stdout);
    const bad = run(launcher, ['frobnicate']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('unknown command "frobnicate"');
  });

  it('applies a batch of local files (one syncfs for the batch, through a program it runs)', () => {
    const p = tempProject('ds-snapshot-files-');
    const files = Array.from({ length: 20 }, (_, i) => `    - { id: f${i}, type: local.file, spec: { path: "f${i}", content: "file ${i}\\n" } }`);
    p.write('goals.yaml', [localBackend(p.root), '---', 'apiVersion: desiredstate/v1', 'kind: Goal', 'metadata: { name: files, environment: dev }', 'spec:', '  defaults: { backend: local }', '  nodes:', ...files].join('\n'));
    const r = run(launcher, ['apply', '--yes', ...p.args]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('20 created');
    expect(readFileSync(join(p.root, 'f19'), 'utf8')).toBe('file 19\n');
  });

  // The snapshot held the warm-up's timer lists (the pg pool's 5 s and 30 s), timed by the build's
  // clock and armed for no platform timer: a timer of 5 s or more in a command from the snapshot
  // never fired, and a plan waited for ever on a command past its timeout.
  it('fires a command\'s timeout of 5 s and more (timers after the warm-up\'s), as from source', () => {
    const p = tempProject('ds-snapshot-timer-');
    p.write(
      'goals.yaml',
      [
        'apiVersion: desiredstate/v1',
        'kind: Backend',
        'metadata: { name: exec }',
        'spec: { type: exec, config: { timeout: 6s } }',
        '---',
        'apiVersion: desiredstate/v1',
        'kind: Goal',
        'metadata: { name: slow }',
        'spec:',
        '  nodes:',
        '    - { id: slow, type: generic.resource, backend: exec, spec: { commands: { read: [sleep, "60"], create: ["true"] } } }',
      ].join('\n'),
    );
    const started = Date.now();
    const r = spawnSync(launcher, ['plan', ...p.args], { encoding: 'utf8', env: cleanEnv({}), timeout: 30_000 });
    expect(r.signal, 'plan was still waiting after 30 s').toBeNull();
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('read command timed out after 6000 ms');
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 40_000);

  it('starts Node with the huge-page tunable, and passes on neither it nor its marker; a caller\'s own GLIBC_TUNABLES is kept', () => {
    const p = tempProject('ds-snapshot-tunables-');
    // The command records its own environment (allowlisted: what the daemon's has), and Node's as it started.
    const script = join(p.dir, 'record.sh');
    writeFileSync(
      script,
      [
        'tr "\\0" "\\n" < /proc/$PPID/environ | grep "^GLIBC_TUNABLES=" > "$1/node.env"',
        'env | grep -E "^(GLIBC_TUNABLES|DESIREDSTATE_SET_TUNABLES)=" > "$1/command.env"',
        'echo \'{"exists": false}\'',
      ].join('\n'),
    );
    p.write('goals.yaml', [
      'apiVersion: desiredstate/v1',
      'kind: Backend',
      'metadata: { name: ex }',
      'spec: { type: exec, config: { env: [PATH, GLIBC_TUNABLES, DESIREDSTATE_SET_TUNABLES] } }',
      '---',
      'apiVersion: desiredstate/v1',
      'kind: Goal',
      'metadata: { name: env, environment: dev }',
      'spec:',
      '  nodes:',
      `    - { id: x, type: generic.resource, backend: ex, spec: { commands: { read: [sh, ${JSON.stringify(script)}, ${JSON.stringify(p.dir)}], create: ["true"] } } }`,
    ].join('\n'));
    const seen = (file: string): string => (existsSync(join(p.dir, file)) ? readFileSync(join(p.dir, file), 'utf8') : '');
    const { GLIBC_TUNABLES: _, ...withoutTunables } = cleanEnv();
    const r = spawnSync(launcher, ['plan', ...p.args], { encoding: 'utf8', env: withoutTunables });
    expect(r.status, r.stderr).toBe(2);
    expect(seen('node.env')).toBe('GLIBC_TUNABLES=glibc.malloc.hugetlb=1\n');
    expect(seen('command.env')).toBe('');
    const own = run(launcher, ['plan', ...p.args], { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' });
    expect(own.code, own.stderr).toBe(2);
    expect(seen('node.env')).toBe('GLIBC_TUNABLES=glibc.malloc.arena_max=2\n');
    expect(seen('command.env')).toBe('GLIBC_TUNABLES=glibc.malloc.arena_max=2\n');
  });

  it('DESIREDSTATE_FROM_SOURCE=1 takes the JavaScript launcher (which knows no self-test)', () => {
    const r = run(launcher, ['--snapshot-self-test'], { DESIREDSTATE_FROM_SOURCE: '1' });
    expect(r.code).toBe(64);
    expect(r.stdout).toBe('');
  });

  it('hands over to that install’s bin/desiredstate.js, same process, same arguments, when the snapshot is not its program', () => {
    const root = fakeInstall();
    const r = run(process.execPath, ['--snapshot-blob', blob, '--', root, 'plan', '--goals', 'g', '--', '--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ from: 'bin/desiredstate.js', argv: ['plan', '--goals', 'g', '--', '--version'], pid: r.pid });
  });

  it('without a snapshot for its Node, the launcher runs bin/desiredstate.js with the arguments as given', () => {
    const root = fakeInstall();
    // No dist/ at all, and no node_modules/node: the Node on the PATH.
    const r = run(join(root, 'bin/desiredstate'), ['--version', 'a b'], { PATH: `${dirname(process.execPath)}:/usr/bin:/bin` });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ from: 'bin/desiredstate.js', argv: ['--version', 'a b'] });
    // A snapshot made by another Node binary (dist/node is not the Node it would run) is not used either.
    mkdirSync(join(root, 'dist'));
    copyFileSync(blob, join(root, 'dist/desiredstate.blob'));
    writeFileSync(join(root, 'dist/node'), '');
    const other = run(join(root, 'bin/desiredstate'), ['x'], { PATH: `${dirname(process.execPath)}:/usr/bin:/bin` });
    expect(JSON.parse(other.stdout)).toMatchObject({ from: 'bin/desiredstate.js', argv: ['x'] });
  });
});
