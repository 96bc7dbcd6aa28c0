import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, localBackend, repoRoot, tempProject } from '../support/cli.ts';
import { formatDiagnostic } from '../../src/runtime/index.ts';
import type { Diagnostic } from '../../src/runtime/index.ts';

const GOAL = `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app, environment: dev }
spec:
  nodes:
    - id: app-dir
      type: local.directory
      spec: { path: app, mode: "0755" }
    - id: app-config
      type: local.file
      dependsOn: [app-dir]
      spec: { path: app/app.toml, mode: "0640", content: "port = 8080\\n" }
    - id: motd
      type: local.file
      spec: { path: motd, mode: "0644", content: "hello\\n" }
`;

const p = tempProject('ds-cli-');
p.write('backend.yaml', localBackend(p.root));
p.write('app.yaml', GOAL);
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

const commands = ['validate', 'plan', 'apply', 'run', 'status', 'drift', 'history', 'retry', 'graph', 'schema', 'backends'];

describe('desiredstate CLI, end to end on a temp directory', () => {
  // One lifecycle, in order: each step starts from the state the previous one left.
  it('validate → plan (+, exit 2) → apply (exit 0) → plan (exit 0) → hand edit shows as ! → apply restores it', async () => {
    const v = await cli(['validate', ...p.args]);
    expect(v).toMatchObject({ code: 0 });
    expect(v.stdout).toContain('valid: 1 goal(s), 3 node(s)');

    const plan1 = await cli(['plan', ...p.args]);
    expect(plan1.code).toBe(2);
    expect(plan1.stdout).toMatch(/^ {2}\+ app-dir \(local\.directory via local\)$/m);
    expect(plan1.stdout).toMatch(/^ {2}\+ app-config \(local\.file via local\)$/m);
    expect(plan1.stdout).toMatch(/^ {2}\+ motd /m);

    const apply1 = await cli(['apply', ...p.args]);
    expect(apply1.code).toBe(0);
    expect(readFileSync(join(p.root, 'app/app.toml'), 'utf8')).toBe('port = 8080\n');
    expect(statSync(join(p.root, 'app/app.toml')).mode & 0o777).toBe(0o640);
    expect(statSync(join(p.root, 'app')).isDirectory()).toBe(true);

    const plan2 = await cli(['plan', ...p.args]);
    expect(plan2.code).toBe(0);
    expect(plan2.stdout).toContain('0 to create, 0 to update, 0 to delete, 0 drifted, 3 unchanged');

    writeFileSync(join(p.root, 'app/app.toml'), 'port = 1\n');
    const plan3 = await cli(['plan', ...p.args]);
    expect(plan3.code).toBe(2);
    expect(plan3.stdout).toMatch(/^ {2}! app-config \(local\.file via local\) drifted/m);
    expect(plan3.stdout).toMatch(/^ {6}content: /m);

    const apply2 = await cli(['apply', ...p.args]);
    expect(apply2.code).toBe(0);
    expect(readFileSync(join(p.root, 'app/app.toml'), 'utf8')).toBe('port = 8080\n');
    expect((await cli(['plan', ...p.args])).code).toBe(0);

    // The state commands after apply.
    const status = await cli(['status', '--format', 'json', ...p.args]);
    expect(status.code).toBe(0);
    const nodes = (JSON.parse(status.stdout) as { nodes: { id: string; status: string }[] }).nodes;
    expect(nodes.map((n) => [n.id, n.status]).sort()).toEqual([['app-config', 'ready'], ['app-dir', 'ready'], ['motd', 'ready']]);
    const drift = await cli(['drift', '--format', 'json', ...p.args]);
    expect(drift.code).toBe(0);
    expect((JSON.parse(drift.stdout) as { reports: { node: string; diffs: { path: string }[] }[] }).reports).toEqual([
      expect.objectContaining({ node: 'app-config', diffs: [expect.objectContaining({ path: 'content' })] }),
    ]);
    const driftText = await cli(['drift', '--node', 'motd', ...p.args]);
    expect(driftText.stdout.trim()).toBe('no drift recorded for motd');
    // Drift there is, but not since then: said so, not "no drift recorded".
    expect((await cli(['drift', '--since', '2099-01-01', ...p.args])).stdout.trim()).toBe('no drift recorded since 2099-01-01');
    const history = await cli(['history', ...p.args]);
    expect(history.code).toBe(0);
    expect(history.stdout.split('\n').filter((l) => /\bapply\b/.test(l))).toHaveLength(2);
  });

  it.each([
    { name: 'validate', args: ['validate', '--format', 'json'], code: 0, key: 'valid' },
    { name: 'plan', args: ['plan', '--format', 'json'], code: 0, key: 'entries' },
  ])('--format json on $name prints JSON', async ({ args, code, key }) => {
    const r = await cli([...args, ...p.args]);
    expect(r.code).toBe(code);
    expect(JSON.parse(r.stdout)).toHaveProperty(key);
  });

  it('takes the options every command takes before the command too, as git and kubectl do', async () => {
    const [before, after] = await Promise.all([cli([...p.args, '--format', 'json', 'status']), cli(['status', '--format=json', ...p.args])]);
    expect(before.code, before.stderr).toBe(0);
    expect(JSON.parse(before.stdout)).toEqual(JSON.parse(after.stdout));
    const plan = await cli(['--format=json', ...p.args, 'plan', '--all']);
    expect(plan.code, plan.stderr).toBe(0);
    expect((JSON.parse(plan.stdout) as { counts: { none: number } }).counts.none).toBe(3);
  });

  it('validate exits 1 with file:line:col lines for a bad goal set, and as JSON', async () => {
    const bad = tempProject('ds-cli-bad-');
    try {
      bad.write('a.yaml', GOAL.replace('content:', 'contnet:'));
      const r = await cli(['validate', ...bad.args], { cwd: bad.dir });
      expect(r.code).toBe(1);
      // One error: the misspelt field, not also the "missing" field it was meant to be.
      expect(r.stdout.trim().split('\n')).toEqual(['goals/a.yaml:12:49: error unknown-field: spec.contnet is not a field of local.file (did you mean "content"?)']);
      const j = await cli(['validate', '--format', 'json', ...bad.args], { cwd: bad.dir });
      expect(j.code).toBe(1);
      expect(JSON.parse(j.stdout)).toMatchObject({ valid: false, diagnostics: expect.arrayContaining([expect.objectContaining({ code: 'unknown-field', line: 12, col: 49 })]) });
    } finally {
      rmSync(bad.dir, { recursive: true, force: true });
    }
  });

  it.each([
    { name: 'dot', check: (out: string) => out.startsWith('digraph desiredstate {') && out.includes('"app-dir" -> "app-config";') },
    { name: 'mermaid', check: (out: string) => out.startsWith('flowchart LR') && /n\d+ --> n\d+/.test(out) },
  ])('graph --format $name', async ({ name, check }) => {
    const r = await cli(['graph', '--format', name, ...p.args]);
    expect(r.code).toBe(0);
    expect(check(r.stdout)).toBe(true);
  });

  it('retry of an unknown node exits 1', async () => {
    const r = await cli(['retry', 'no-such-node', ...p.args]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown node "no-such-node"');
  });

  it('retry --format json answers a JSON document', async () => {
    const ids = (JSON.parse((await cli(['status', '--format', 'json', ...p.args])).stdout) as { nodes: { id: string }[] }).nodes.map((n) => n.id);
    const r = await cli(['retry', ids[0]!, '--format', 'json', ...p.args]);
    expect(r.code, r.stderr).toBe(0);
    // Every node is ready: nothing to release (test/cli/retry.test.ts has held ones).
    expect(JSON.parse(r.stdout)).toEqual({ notHeld: ids[0], status: 'ready', via: 'store' });
  });
});

// Stateless invocations: each spawns its own process, so they run side by side.
describe.concurrent('desiredstate CLI: invocations', () => {
  it.each([
    // Node's parseArgs text ran on over two sentences with a quote left open: one clean line instead.
    { name: 'an unknown flag', args: ['plan', '--bogus'], stderr: /^desiredstate plan: unknown option --bogus\n$/ },
    { name: 'an unknown short flag', args: ['apply', '-q'], stderr: /^desiredstate apply: unknown option -q\n$/ },
    { name: 'a flag without its value', args: ['plan', '--goals'], stderr: /^desiredstate plan: --goals needs a value\n$/ },
    { name: 'a flag followed by another flag', args: ['plan', '--goals', '--all'], stderr: /^desiredstate plan: --goals needs a value\n$/ },
    { name: 'a value for a switch', args: ['apply', '--yes=1'], stderr: /^desiredstate apply: --yes takes no value\n$/ },
    { name: 'help for an unknown command', args: ['--help', 'bogus'], stderr: /^desiredstate: unknown command "bogus"; run desiredstate --help\n$/ },
    { name: 'an unknown command', args: ['bogus'], stderr: /unknown command "bogus"/ },
    // A name a plain object inherits was taken for a command: exit 70, `command.run is not a function`, or help reading "undefined".
    { name: 'a command named like an inherited member', args: ['constructor'], stderr: /^desiredstate: unknown command "constructor"; run desiredstate --help\n$/ },
    { name: 'a command named toString', args: ['toString'], stderr: /^desiredstate: unknown command "toString"; run desiredstate --help\n$/ },
    { name: 'help for a command named __proto__', args: ['help', '__proto__'], stderr: /^desiredstate: unknown command "__proto__"; run desiredstate --help\n$/ },
    { name: 'a missing goals directory', args: ['validate', '--goals', '/nonexistent/goals'], stderr: /goal directory .* does not exist/ },
    { name: 'a bad --format', args: ['plan', '--format', 'yaml'], stderr: /--format must be one of text, json/ },
    { name: 'a bad --format for schema', args: ['schema', '--format', 'yaml'], stderr: /--format must be one of json/ },
    { name: 'no command at all', args: [], stderr: /^desiredstate: no command given; run desiredstate --help/ },
    // The value was given, only parseArgs would not take it: say how to write it.
    { name: 'a value starting with "-"', args: ['run', '--interval', '-5s'], stderr: /^desiredstate run: --interval needs a value; for one starting with "-", write --interval=-5s\n$/ },
    // --since=-1h would be refused too: --since counts back from now, so the hint is the duration alone.
    { name: 'a --since written as negative', args: ['drift', '--since', '-1h'], stderr: /^desiredstate drift: --since needs a value; it counts back from now: write --since 1h\n$/ },
    { name: 'a negative --interval', args: ['run', '--interval=-5s'], stderr: /^desiredstate run: --interval takes a duration such as 500ms, 30s or 5m \(got "-5s"\)\n$/ },
    // Number() took hex, exponents and blanks (`0x10`, `1e20`: a pool of 10^20 workers).
    { name: 'a --concurrency in hex', args: ['apply', '--concurrency', '0x10'], stderr: /^desiredstate apply: --concurrency takes a whole number from 1 to 1000 \(got "0x10"\)\n$/ },
    { name: 'a --concurrency past any pool', args: ['run', '--concurrency', '1e20'], stderr: /^desiredstate run: --concurrency takes a whole number from 1 to 1000 \(got "1e20"\)\n$/ },
    // One platform timer, which fires at once past 24.8 days: a reload on every goal file event.
    { name: 'a --debounce longer than a timer takes', args: ['run', '--debounce', '30d'], stderr: /^desiredstate run: --debounce takes a duration such as 300ms, at most 24d \(got "30d"\)\n$/ },
    // What the user typed is quoted into the reason: a newline in it (`--goals "$(…)"`) split the reason over lines.
    { name: 'a --goals with a newline in it', args: ['validate', '--goals', 'a\nb'], stderr: /^desiredstate validate: goal directory \S*a\\nb does not exist\n$/ },
    { name: 'an unknown command with a newline in it', args: ['pl\nan'], stderr: /^desiredstate: unknown command "pl\\nan"; run desiredstate --help\n$/ },
    { name: 'help, a newline in the command', args: ['help', 'pl\nan'], stderr: /^desiredstate: unknown command "pl\\nan"; run desiredstate --help\n$/ },
    { name: 'an unknown flag with a newline in it', args: ['plan', '--x\ny'], stderr: /^desiredstate plan: unknown option --x\\ny\n$/ },
    // Before the command, only the options every command takes: a command's own option there is refused by name.
    { name: "a command's own option before the command", args: ['--yes', 'apply'], stderr: /^desiredstate: --yes cannot come before the command \(only --goals, --state, --format and --log-level can\); run desiredstate --help\n$/ },
    { name: 'options and no command', args: ['--goals', 'goals', '--format=json'], stderr: /^desiredstate: no command given; run desiredstate --help/ },
    { name: 'an unknown command after options', args: ['--goals', 'goals', 'bogus'], stderr: /^desiredstate: unknown command "bogus"; run desiredstate --help\n$/ },
    { name: 'a bad option of the command after options', args: ['--state', 'x', 'plan', '--bogus'], stderr: /^desiredstate plan: unknown option --bogus\n$/ },
    { name: 'an --interval under 100ms', args: ['run', '--interval', '1ms'], stderr: /^desiredstate run: --interval is at least 100ms: every node read again sooner is a busy loop \(got "1ms"\)\n$/ },
    // A duration all the same, too short as 99ms is: it was told it is no duration.
    { name: 'an --interval of 0s', args: ['run', '--interval', '0s'], stderr: /^desiredstate run: --interval is at least 100ms: every node read again sooner is a busy loop \(got "0s"\)\n$/ },
    { name: 'an empty --node', args: ['drift', '--node', ''], stderr: /^desiredstate drift: --node takes a node id \(got an empty one\)\n$/ },
    // Parsing kept the last of a repeated option, dropping the others unsaid: `drift --node a --node b` listed b's alone.
    { name: 'a --node given twice', args: ['drift', '--node', 'f1', '--node', 'f2'], stderr: /^desiredstate drift: --node is given more than once \("f1", then "f2"\): it takes one value\n$/ },
    { name: 'a --state given before the command and after it', args: ['--state', 'a', 'status', '--state', 'b'], stderr: /^desiredstate status: --state is given more than once \("a", then "b"\): it takes one value\n$/ },
    { name: 'an empty node to retry', args: ['retry', ''], stderr: /^desiredstate retry: retry takes a node id \(got an empty one\)\n$/ },
    // Every subcommand of scripts took two arguments and every option of scripts, and ignored what it had no use for.
    { name: 'an argument scripts list does not take', args: ['scripts', 'list', 'extra'], stderr: /^desiredstate scripts: unexpected argument "extra"\n$/ },
    { name: 'an argument scripts trust does not take', args: ['scripts', 'trust', 'extra'], stderr: /^desiredstate scripts: unexpected argument "extra"\n$/ },
    { name: 'an option scripts list does not take', args: ['scripts', 'list', '--node', 'x'], stderr: /^desiredstate scripts: scripts list takes no --node\n$/ },
    { name: 'an option scripts approve does not take', args: ['scripts', 'approve', 'abcdef', '--bar', '0.5'], stderr: /^desiredstate scripts: scripts approve takes no --bar\n$/ },
    { name: 'an option scripts show does not take', args: ['scripts', 'show', 'abcdef', '--note', 'x'], stderr: /^desiredstate scripts: scripts show takes no --note\n$/ },
  ])('exit 64 on a bad invocation: $name', async ({ args, stderr }) => {
    const r = await cli(args, { cwd: p.dir });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(stderr);
    // A one-line reason.
    expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(1);
  });

  it('takes an option given twice with one value once (an alias that names the state, and a command line that names it again)', async () => {
    const r = await cli(['--state', 'st', 'status', '--state', 'st'], { cwd: p.dir });
    expect(r.stderr).not.toContain('more than once');
    expect(r.code).toBe(0);
  });

  it.each(commands.map((c) => ({ name: c })))('$name --help exits 0', async ({ name }) => {
    const r = await cli([name, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: desiredstate ${name}`);
  });

  it.each([
    { name: '--help plan', args: ['--help', 'plan'] },
    { name: 'help plan', args: ['help', 'plan'] },
    { name: '-h plan', args: ['-h', 'plan'] },
  ])('$name shows plan\'s help, as plan --help does', async ({ args }) => {
    const [r, own] = await Promise.all([cli(args), cli(['plan', '--help'])]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: desiredstate plan');
    expect(r.stdout).toBe(own.stdout);
  });

  it.each([
    { command: 'status', empty: { nodes: [], goalErrors: null, emptyGoals: false, daemon: { running: false }, circuits: [] } },
    { command: 'drift', empty: { reports: [] } },
    { command: 'history', empty: { runs: [] } },
  ])('$command on a state directory nothing has run with yet: exit 0, the empty document, the missing directory said on stderr', async ({ command, empty }) => {
    // CLI.md: status, drift and history exit 0. A named one that is not there was a bad invocation (64),
    // while the default one was empty: a script asking before the first apply got no document.
    const r = await cli([command, '--state', join(p.dir, 'not-yet'), '--format', 'json'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(empty);
    expect(r.stderr).toContain(`state directory ${join(p.dir, 'not-yet')} does not exist: nothing has run with it yet`);
    expect(existsSync(join(p.dir, 'not-yet'))).toBe(false);
  });

  it('retry on a state directory nothing has run with yet: an unknown node (exit 1), the missing directory said once', async () => {
    const r = await cli(['retry', 'some-node', '--state', join(p.dir, 'not-yet')], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain('unknown node "some-node"');
    expect(r.stderr.split('does not exist: nothing has run with it yet').length - 1).toBe(1);
  });

  it('--help among options given before any command shows the main help', async () => {
    const r = await cli(['--goals', 'goals', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: desiredstate COMMAND [options]');
  });

  it('schema prints a JSON Schema that parses', async () => {
    const r = await cli(['schema']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(typeof schema).toBe('object');
    expect(JSON.stringify(schema)).toContain('local.file');
  });

});

// `validate` runs from the repo root, so the paths in expected.txt are relative to it.
const badRoot = join(repoRoot, 'test/fixtures/bad');
// A handful through the real binary (the whole corpus runs in process in test/runtime/bad-fixtures.test.ts):
// one per family of mistake, so that the CLI's printing and exit status are covered without a process start per case.
const HANDFUL = ['unknown-field', 'many-errors', 'dependency-cycle', 'one-bad-file', 'mode-unquoted', 'non-utf8', 'alias-bomb', 'inline-secret', 'unknown-backend-type', 'unknown-keys-hide-nothing', 'backend-config-list'];
const badCases = readdirSync(badRoot, { withFileTypes: true })
  .filter((e) => e.isDirectory() && HANDFUL.includes(e.name))
  .map((e) => ({ name: e.name }));

describe.concurrent('desiredstate validate on the bad-goal fixtures', () => {
  it('has the handful', () => {
    expect(badCases.map((c) => c.name).sort()).toEqual([...HANDFUL].sort());
  });

  it.each(badCases)('$name: prints expected.txt exactly and exits 1', async ({ name }) => {
    const expected = readFileSync(join(badRoot, name, 'expected.txt'), 'utf8');
    const r = await cli(['validate', '--goals', `test/fixtures/bad/${name}`]);
    expect(r.stdout.split('\n').filter((l) => l !== '')).toEqual(expected.split('\n').filter((l) => l !== ''));
    expect(r.code).toBe(1);
  });

  // GOAL-FORMAT.md, Errors: "--format json gives the same as JSON": every diagnostic the text prints, each field for field.
  it('--format json gives the same diagnostics as the text', async () => {
    const name = 'unknown-keys-hide-nothing';
    const expected = readFileSync(join(badRoot, name, 'expected.txt'), 'utf8').split('\n').filter((l) => l !== '');
    const r = await cli(['validate', '--format', 'json', '--goals', `test/fixtures/bad/${name}`]);
    expect(r.code).toBe(1);
    const json = JSON.parse(r.stdout) as { valid: boolean; diagnostics: Diagnostic[] };
    expect(json.valid).toBe(false);
    expect(json.diagnostics.map(formatDiagnostic)).toEqual(expected);
  });
});
