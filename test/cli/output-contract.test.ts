import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyWithEdits, cli, oneFileGoal, stateRows, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';

// What a script reads (CLI.md: `--format json` for machines, the exit status table): stdout holds
// exactly one JSON document, whatever the outcome, and nothing a human needed to see is lost from it.

/** The one JSON document on stdout (throws, failing the test, on anything else). */
const doc = (stdout: string): Record<string, unknown> => JSON.parse(stdout) as Record<string, unknown>;

describe('backends when the goals do not compile', () => {
  const p = tempProject('ds-out-backends-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  // The Backend document is broken: it used to vanish from the list (the implied `local` shown healthy), exit 0.
  p.write('backend.yaml', 'apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: pg }\nspec:\n  type: postgres\n  config: { host: 127.0.0.1, port: "abc", user: postgres }\n');

  it('text: the errors on stderr as file:line:col, exit 1', async () => {
    const r = await cli(['backends', ...p.args], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^goals\/backend\.yaml:6:\d+: error invalid-type: spec\.config\.port/m);
  });

  it('json: the errors in the document, exit 1', async () => {
    const r = await cli(['backends', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(1);
    const d = doc(r.stdout);
    expect(d).toMatchObject({ backends: expect.any(Array), diagnostics: [expect.objectContaining({ severity: 'error', code: 'invalid-type', file: 'goals/backend.yaml' })] });
  });
});

describe('plan and apply --format json keep the goal warnings', () => {
  const p = tempProject('ds-out-warnings-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  // A low finding is a warning: the text output prints it on stderr, the JSON output printed it nowhere.
  p.write('policy.yaml', 'apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: p }\nspec:\n  blockAt: high\n  requiredLabels:\n    - key: team\n      severity: { default: low }\n');
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));
  const env = { DESIREDSTATE_GOAL_CACHE: 'off' };

  it.each([{ name: 'plan', args: [] }, { name: 'apply', args: ['--yes'] }])('$name', async ({ name, args }) => {
    const r = await cli([name, ...args, '--format', 'json', ...p.args], { env });
    expect(r.code === 0 || r.code === 2, r.stderr).toBe(true);
    expect(doc(r.stdout).diagnostics).toEqual([expect.objectContaining({ severity: 'warning', code: 'policy-finding' })]);
  });

  it('and an empty list when there is none', async () => {
    const q = tempProject('ds-out-nowarnings-');
    try {
      q.write('app.yaml', oneFileGoal(q.root, 'v1\n'));
      const r = await cli(['plan', '--format', 'json', ...q.args], { env });
      expect(r.code, r.stderr).toBe(2);
      expect(doc(r.stdout)).toMatchObject({ entries: expect.any(Array), counts: expect.any(Object), diagnostics: [] });
    } finally {
      rmSync(q.dir, { recursive: true, force: true });
    }
  });
});

// The README has `diagnostics` as validate's, warnings included: backends kept only the errors, in both formats.
describe('backends keeps the goal warnings', () => {
  const p = tempProject('ds-out-backends-warnings-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  p.write('policy.yaml', 'apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: p }\nspec:\n  blockAt: high\n  requiredLabels:\n    - key: team\n      severity: { default: low }\n');
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));
  const env = { DESIREDSTATE_GOAL_CACHE: 'off' };

  it('json: in the document; a warning alone exits 0', async () => {
    const r = await cli(['backends', '--format', 'json', ...p.args], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(doc(r.stdout).diagnostics).toEqual([expect.objectContaining({ severity: 'warning', code: 'policy-finding' })]);
  });

  it('text: on stderr, as validate prints it', async () => {
    const validate = await cli(['validate', ...p.args], { env });
    const warning = validate.stdout.split('\n').find((l) => l.includes(': warning policy-finding'));
    expect(warning, validate.stdout).toBeDefined();
    const r = await cli(['backends', ...p.args], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split('\n')).toContain(warning);
  });
});

// One after another, each backend's check could wait its whole timeout: ten unreachable servers took ten of them.
describe('backends checks the backends at once', () => {
  const p = tempProject('ds-out-backends-parallel-');
  const open = new Set<Socket>();
  let most = 0;
  // A server that takes connections and answers nothing until both backends are connected at once; then it hangs up on them.
  const server = createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    most = Math.max(most, open.size);
    if (open.size === 2) for (const s of open) s.destroy();
  });
  beforeAll(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
  afterAll(async () => {
    for (const s of open) s.destroy();
    await new Promise((resolve) => server.close(resolve));
    rmSync(p.dir, { recursive: true, force: true });
  });

  it('both connected at the same time, and listed in the order they are declared', async () => {
    const port = (server.address() as AddressInfo).port;
    for (const name of ['pgb', 'pga']) {
      p.write(`${name}.yaml`, `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: ${name} }\nspec:\n  type: postgres\n  config: { host: 127.0.0.1, port: ${port}, user: postgres, sslmode: disable, connectTimeout: 30s }\n`);
    }
    const r = await cli(['backends', '--format', 'json', ...p.args]);
    expect(r.code, r.stderr).toBe(1);
    expect(most).toBe(2);
    // As they are declared, which the checks one after another listed them in too.
    expect((doc(r.stdout).backends as { id: string }[]).map((b) => b.id)).toEqual(['pga', 'pgb', 'local']);
  });
});

describe('drift --since and --node', () => {
  const p = tempProject('ds-out-drift-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));

  beforeAll(() => applyWithEdits(p, ['edited\n']));

  const count = async (...args: string[]): Promise<number> => {
    const r = await cli(['drift', '--format', 'json', ...args, ...p.args]);
    expect(r.code, r.stderr).toBe(0);
    return (doc(r.stdout).reports as unknown[]).length;
  };

  it.each([
    { since: '1h', reports: 1 },
    { since: '30m', reports: 1 },
    { since: '2d', reports: 1 },
    { since: '1h30m', reports: 1 },
    { since: '2000-01-01', reports: 1 },
    { since: '2000-01-01T00:00:00Z', reports: 1 },
    { since: '2000-01-01T00:00:00.000+02:00', reports: 1 },
    { since: '2999-01-01T00:00:00Z', reports: 0 },
    { since: '2000-02-29', reports: 1 },
  ])('--since $since: $reports report(s)', async ({ since, reports }) => {
    expect(await count('--since', since)).toBe(reports);
  });

  // Date.parse takes almost anything: `5` (a unit forgotten) was 1 May 2001, `Nov 23` was 2001 too: every report, silently;
  // and it rolls a day past the month's end over (`2026-11-31` was 1 December: no report, silently).
  it.each(['5', '0', '12', 'Nov 23', '1w', '-1h', 'yesterday', '2026-13-45', '2026-11-31', '2026-02-30', '2026-02-29T10:00:00Z'])('--since %s is a bad invocation (exit 64)', async (since) => {
    const r = await cli(['drift', `--since=${since}`, '--format', 'json', ...p.args]);
    expect(r.code).toBe(64);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^desiredstate drift: --since takes a duration such as 1h or an ISO 8601 timestamp/);
  });

  it('--node filters, an unknown node has no reports, and the empty answer is still a document', async () => {
    expect(await count('--node', 'conf')).toBe(1);
    expect(await count('--node', 'nope')).toBe(0);
    const text = await cli(['drift', '--node', 'nope', ...p.args]);
    expect(text).toMatchObject({ code: 0, stdout: 'no drift recorded for nope, which the state has no node of\n' });
  });
});

describe('retry --format json for an unknown node', () => {
  const p = tempProject('ds-out-retry-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));

  it('exit 1 with a document on stdout, the reason on stderr', async () => {
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    const r = await cli(['retry', 'nope', '--format', 'json', ...p.args]);
    expect(r.code).toBe(1);
    expect(doc(r.stdout)).toEqual({ unknown: 'nope', via: 'store' });
    expect(r.stderr).toBe('unknown node "nope"\n');
  });
});

describe('--format json on every command that takes it', () => {
  const p = tempProject('ds-out-every-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));

  beforeAll(() => applyWithEdits(p, ['edited\n']));

  // Debug logging on, so that a log line written to stdout would break the document.
  // `logs`: whether the command logs at debug here (plan and apply: the compiled goals taken from the
  // cache); the others log nothing, and their stderr is checked to be empty.
  it.each([
    { name: 'validate', args: ['validate'], code: 0, logs: false },
    { name: 'plan', args: ['plan'], code: 0, logs: true },
    { name: 'apply --yes', args: ['apply', '--yes'], code: 0, logs: true },
    { name: 'status', args: ['status'], code: 0, logs: false },
    { name: 'drift', args: ['drift'], code: 0, logs: false },
    { name: 'history', args: ['history'], code: 0, logs: false },
    { name: 'retry conf', args: ['retry', 'conf'], code: 0, logs: false },
    { name: 'retry --all', args: ['retry', '--all'], code: 0, logs: false },
    { name: 'graph', args: ['graph'], code: 0, logs: false },
    { name: 'check', args: ['check'], code: 0, logs: false },
    { name: 'schema', args: ['schema'], code: 0, logs: false },
    { name: 'backends', args: ['backends'], code: 0, logs: false },
    { name: 'scripts list', args: ['scripts', 'list'], code: 0, logs: false },
  ])('$name: one JSON document on stdout, JSON log lines on stderr', async ({ args, code, logs }) => {
    const r = await cli([...args, '--format', 'json', '--log-level', 'debug', ...p.args]);
    expect(r.code, r.stderr).toBe(code);
    expect(typeof doc(r.stdout)).toBe('object');
    const lines = r.stderr.split('\n').filter((x) => x !== '');
    expect(lines.length > 0, `stderr: ${r.stderr}`).toBe(logs);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ level: expect.any(Number), msg: expect.any(String) });
  });

  // Every timestamp in the documents is epoch milliseconds (a number, or null when there is none);
  // ISO 8601 strings are for humans: the text output and the log lines.
  it('timestamps are epoch milliseconds in status, drift and history', async () => {
    const stamps: [string, unknown][] = [];
    const walk = (v: unknown, key: string): void => {
      if (/(?:At|^firstSeen)$/.test(key)) stamps.push([key, v]);
      if (Array.isArray(v)) v.forEach((x) => walk(x, key));
      else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, k);
    };
    for (const command of ['status', 'drift', 'history']) walk(doc((await cli([command, '--format', 'json', ...p.args])).stdout), '');
    expect(new Set(stamps.map(([k]) => k))).toEqual(new Set(['updatedAt', 'retryAt', 'firstSeen', 'detectedAt', 'startedAt', 'finishedAt']));
    for (const [key, v] of stamps) expect(v === null || (Number.isInteger(v) && (v as number) > 1.6e12), `${key}: ${String(v)}`).toBe(true);
  });

  it('status before any run has the same keys, and every document is printed the same way', async () => {
    const q = tempProject('ds-out-empty-');
    try {
      const [empty, full] = await Promise.all([cli(['status', '--format', 'json', ...q.args.slice(0, 2)], { cwd: q.dir }), cli(['status', '--format', 'json', ...p.args])]);
      expect(empty.code, empty.stderr).toBe(0);
      expect(doc(empty.stdout)).toEqual({ nodes: [], goalErrors: null, emptyGoals: false, daemon: { running: false }, circuits: [] });
      expect(Object.keys(doc(empty.stdout))).toEqual(Object.keys(doc(full.stdout)));
      // Indented as every other document (jq does not mind, a human reading a CI log does).
      expect(empty.stdout).toBe(`${JSON.stringify(doc(empty.stdout), null, 2)}\n`);
    } finally {
      rmSync(q.dir, { recursive: true, force: true });
    }
  });

  it('history with no run says so', async () => {
    const q = tempProject('ds-out-nohistory-');
    try {
      const r = await cli(['history', ...q.args.slice(0, 2)], { cwd: q.dir });
      expect(r).toMatchObject({ code: 0, stdout: 'no runs recorded\n' });
      expect(doc((await cli(['history', '--format', 'json'], { cwd: q.dir })).stdout)).toEqual({ runs: [] });
    } finally {
      rmSync(q.dir, { recursive: true, force: true });
    }
  });
});

// CLI.md's exit status table, at its edges.
describe('exit status at the edges', () => {
  const p = tempProject('ds-out-exit-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  const policy = (team: string): string =>
    `apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: p }\nspec:\n  blockAt: high\n  requiredLabels:\n    - key: team\n      severity: { default: ${team} }\n    - key: owner\n      severity: { default: low }\n`;
  const code = async (args: string[]): Promise<number | null> => {
    const r = await cli([...args, ...p.args], { cwd: p.dir });
    return r.code;
  };

  it('only warnings: validate, check, graph 0; plan 2 with a create pending', async () => {
    p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));
    p.write('policy.yaml', policy('medium'));
    expect(await code(['validate'])).toBe(0);
    expect(await code(['check'])).toBe(0);
    expect(await code(['graph'])).toBe(0);
    expect(await code(['plan'])).toBe(2);
  });

  it('only blocked nodes: plan 1 (apply cannot converge them: not "nothing to do"), apply 1 (not converged), check 1, validate 1', async () => {
    p.write('policy.yaml', policy('high'));
    const plan = await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(plan.code, plan.stderr).toBe(1);
    // Counted under one name by plan and apply (plan had it as `blocked`, apply as `held`).
    expect(doc(plan.stdout).counts).toMatchObject({ held: 1, blocked: 0, create: 0 });
    const apply = await cli(['apply', '--yes', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(apply.code, apply.stderr).toBe(1);
    expect(doc(apply.stdout).summary).toMatchObject({ held: 1, blocked: 0 });
    expect(await code(['check'])).toBe(1);
    expect(await code(['validate'])).toBe(1);
  });

  it('graph with errors: 1, in every format', async () => {
    p.write('policy.yaml', policy('low'));
    p.write('broken.yaml', 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: broken }\nspec:\n  nodes:\n    - id: x\n      type: local.directory\n      dependsOn: [nope]\n      spec: { path: x }\n');
    try {
      for (const format of ['dot', 'mermaid', 'json']) expect(await code(['graph', '--format', format])).toBe(1);
    } finally {
      rmSync(`${p.goals}/broken.yaml`);
    }
  });

  it('backends with one unhealthy (PostgreSQL on a closed port): 1, naming the server', async () => {
    p.write('pg.yaml', 'apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: pg }\nspec:\n  type: postgres\n  config: { host: 127.0.0.1, port: 1, user: postgres, database: postgres, connectTimeout: 2s }\n');
    try {
      const r = await cli(['backends', '--format', 'json', ...p.args], { cwd: p.dir });
      expect(r.code, r.stderr).toBe(1);
      expect(doc(r.stdout).backends).toEqual([
        { id: 'local', type: 'local', health: 'healthy' },
        { id: 'pg', type: 'postgres', health: 'unhealthy', message: expect.stringContaining('127.0.0.1:1') },
      ]);
    } finally {
      rmSync(`${p.goals}/pg.yaml`);
    }
  });
});

// A script backend's command generator is looked for, never run, by `backends`: one that cannot be
// started was reported healthy, and every node of the backend then failed on its first generation.
describe('backends with a script backend whose generator is a command', () => {
  const p = tempProject('ds-out-generator-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));
  writeFileSync(join(p.dir, 'gen.sh'), '#!/bin/sh\ncat >/dev/null\n', { mode: 0o755 });
  writeFileSync(join(p.dir, 'gen.txt'), '#!/bin/sh\n', { mode: 0o644 });
  const scriptBackend = (command: string): string =>
    `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: gen }\nspec:\n  type: script\n  config: { root: scripts, generator: { type: command, command: ${command} } }\n`;

  it.each([
    { name: 'a program on PATH', command: '[sh, -c, cat]', health: 'healthy', message: undefined },
    { name: 'an executable file by its path', command: '[./gen.sh]', health: 'healthy', message: undefined },
    { name: 'a program on no PATH directory', command: '[no-such-generator-ds, --model, x]', health: 'unhealthy', message: 'the generator command cannot be run: no-such-generator-ds is not found on PATH' },
    { name: 'a path to nothing', command: '[./missing/gen]', health: 'unhealthy', message: `the generator command cannot be run: ${join(p.dir, 'missing/gen')} does not exist` },
    { name: 'a file that is not executable', command: '[./gen.txt]', health: 'unhealthy', message: `the generator command cannot be run: ${join(p.dir, 'gen.txt')} is not executable` },
    { name: 'a directory', command: '[./scripts-dir/]', health: 'unhealthy', message: `the generator command cannot be run: ${join(p.dir, 'scripts-dir')} is not a file` },
  ])('$name: $health', async ({ command, health, message }) => {
    mkdirSync(join(p.dir, 'scripts-dir'), { recursive: true });
    p.write('gen.yaml', scriptBackend(command));
    const r = await cli(['backends', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(health === 'healthy' ? 0 : 1);
    const gen = (doc(r.stdout).backends as { id: string }[]).find((b) => b.id === 'gen');
    expect(gen).toEqual({ id: 'gen', type: 'script', health, ...(message === undefined ? {} : { message: expect.stringContaining(message) }) });
  });
});

describe('graph --format mermaid with ids Mermaid would not take as its own', () => {
  const p = tempProject('ds-out-mermaid-');
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
  // Dots and dashes end a Mermaid id or start an edge (`a-->b`, `a.b`), and `end` closes a subgraph.
  p.write('app.yaml', `${oneFileGoal(p.root, 'v1\n')}    - id: web.v2-end
      type: local.directory
      spec: { path: web }
    - id: end
      type: local.file
      dependsOn: [web.v2-end, conf]
      spec: { path: web/x, content: "x" }
`);

  it('names every node n<i> and keeps the id in its quoted label', async () => {
    const r = await cli(['graph', '--format', 'mermaid', ...p.args]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('flowchart LR');
    for (const l of lines.slice(1)) expect(l).toMatch(/^ {2}(?:n\d+\["[a-z0-9._-]+<br\/>[a-z0-9.]+"\]|n\d+ (?:-->|-\.->) n\d+)$/);
    for (const id of ['conf', 'web.v2-end', 'end']) expect(r.stdout).toContain(`["${id}<br/>`);
    expect(lines.filter((l) => l.includes('-->'))).toHaveLength(2);
  });
});

// The resolved spec's digest that a record keeps after a slash, for a node with references, is the runtime's.
describe('status and /status: appliedDigest is the digest of the goal spec the node was applied at', () => {
  const p = tempProject('ds-out-digest-');
  p.write(
    'app.yaml',
    `${oneFileGoal(p.root, 'v1\n')}    - id: copy
      type: local.file
      spec: { path: copy.conf, content: "\${nodes.conf.outputs.path}", mode: "0644" }
`,
  );
  const daemons = trackDaemons(p.dir);

  it('for a node whose spec references another node too, in status --format json and the daemon\'s /status', async () => {
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    const stored = Object.fromEntries(
      (stateRows(p.state, 'SELECT id, applied_digest, snapshot FROM nodes') as { id: string; applied_digest: string; snapshot: string }[]).map((r) => [r.id, { applied: r.applied_digest, goal: (JSON.parse(r.snapshot) as { goal: string }).goal }]),
    );
    // The record keeps both digests for the referencing node, the goal spec's first, and after a `#` the
    // managed one (`digestAt`: it names the backend by what it reaches, not by name, so it is never the goal's).
    expect(stored.copy!.applied).toMatch(new RegExp(`^${stored.copy!.goal}/[0-9a-f]{32}#[0-9a-f]{32}$`));
    expect(stored.conf!.applied).toMatch(new RegExp(`^${stored.conf!.goal}#[0-9a-f]{32}$`));
    const expected = [
      ['conf', stored.conf!.goal],
      ['copy', stored.copy!.goal],
    ];
    const shown = (nodes: { id: string; appliedDigest: string }[]): string[][] => nodes.map((n) => [n.id, n.appliedDigest]).sort();
    const status = await cli(['status', '--format', 'json', ...p.args]);
    expect(shown((doc(status.stdout) as { nodes: { id: string; appliedDigest: string }[] }).nodes)).toEqual(expected);

    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...p.args], { cwd: p.dir });
    const base = `http://127.0.0.1:${await d.port()}`;
    await eventually(async () => (await fetch(`${base}/readyz`)).status === 200, 20_000, 'the daemon ready');
    const live = (await (await fetch(`${base}/status`)).json()) as { nodes: { id: string; appliedDigest: string }[] };
    expect(shown(live.nodes)).toEqual(expected);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});

// A failure that ends a command before its document (the state locked by a daemon, an unknown script)
// used to leave stdout empty: jq reads that as no input and exits 0.
describe('--format json when the command fails before its document', () => {
  const p = tempProject('ds-out-failed-');
  p.write('app.yaml', oneFileGoal(p.root, 'v1\n'));
  const daemons = trackDaemons(p.dir);

  it('apply while a daemon holds the state: exit 1, {error: {code, message}}', async () => {
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', ...p.args], { cwd: p.dir });
    await d.port();
    const r = await cli(['apply', '--yes', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(1);
    expect(doc(r.stdout)).toEqual({ error: { code: 'DS_STATE_LOCKED', message: expect.any(String) } });
    expect(r.stderr).toContain('desiredstate apply: ');
    const text = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(text.code).toBe(1);
    expect(text.stdout).toBe('');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  it.each([
    { name: 'scripts show of an unknown hash, no state yet', state: false, args: ['scripts', 'show', 'abcdef'] },
    { name: 'scripts approve of an unknown hash, no state yet', state: false, args: ['scripts', 'approve', 'abcdef'] },
    { name: 'scripts show of an unknown hash', state: true, args: ['scripts', 'show', 'abcdef'] },
  ])('$name: exit 1, {error: {code: DS_NOT_FOUND}}', async ({ state, args }) => {
    const q = tempProject('ds-out-scripts-');
    try {
      // An empty state directory (no state.db yet), or the state of one apply.
      if (state) expect((await cli(['apply', '--yes', ...p.args.slice(0, 2), ...q.args.slice(2)])).code).toBe(0);
      else mkdirSync(q.state);
      const r = await cli([...args, '--format', 'json', ...q.args]);
      expect(r.code, r.stderr).toBe(1);
      expect(doc(r.stdout)).toEqual({ error: { code: 'DS_NOT_FOUND', message: 'no script abcdef' } });
      expect(r.stderr).toBe('desiredstate scripts: DS_NOT_FOUND: no script abcdef\n');
    } finally {
      rmSync(q.dir, { recursive: true, force: true });
    }
  });

  it('scripts list and trust with no state yet: the documents they have once there is state', async () => {
    const q = tempProject('ds-out-scripts-empty-');
    mkdirSync(q.state);
    try {
      expect(doc((await cli(['scripts', 'list', '--format', 'json', ...q.args])).stdout)).toEqual({ scripts: [] });
      expect(doc((await cli(['scripts', 'trust', '--format', 'json', ...q.args])).stdout)).toEqual({ bar: 0.94, quantile: 0.05, scripts: [] });
    } finally {
      rmSync(q.dir, { recursive: true, force: true });
    }
  });
});
