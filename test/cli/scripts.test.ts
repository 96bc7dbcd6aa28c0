import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { escapeRegex, SqliteStateStore } from '../../src/runtime/index.ts';
import { cli as runCli } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import type { Daemon } from '../support/daemon.ts';
import type { CliResult } from '../support/cli.ts';
import { warnSkipped } from '../support/skip.ts';

// The real CLI (this Node 24) against a temp goal set and state directory.
const hasJq = spawnSync('jq', ['--version']).status === 0;
if (!hasJq) warnSkipped(['SKIPPING the scripts CLI tests: jq is not on PATH (install jq to run them).']);

/** The CLI in `cwd`'s project, as user ana (approvals record who). */
function cli(cwd: string, args: readonly string[]): Promise<CliResult> {
  return runCli([...args, '--goals', join(cwd, 'goals'), '--state', join(cwd, 'state')], { cwd, env: { HOME: cwd, USER: 'ana', DESIREDSTATE_LOG_LEVEL: 'silent' } });
}

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
// Registered after the removal above, so it runs first (hooks unwind as a stack): the daemons are gone before their directories.
const daemons = trackDaemons();

const MOTD = `    - id: motd
      type: generic.resource
      spec:
        input: { path: etc/motd, content: "hello\\n" }
`;

/** A project with one script Backend (`config`) and a goal in `environment` holding `nodes` (YAML list items). */
function projectIn(environment: string, config = '{ root: root }', nodes = MOTD): string {
  const dir = mkdtempSync(join(tmpdir(), 'ds-scripts-cli-'));
  made.push(dir);
  mkdirSync(join(dir, 'goals'));
  writeFileSync(
    join(dir, 'goals/app.yaml'),
    `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: scripts }
spec:
  type: script
  config: ${config}
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app, environment: ${environment} }
spec:
  defaults: { backend: scripts }
  nodes:
${nodes}`,
  );
  return dir;
}

const json = (text: string): Record<string, unknown> => JSON.parse(text) as Record<string, unknown>;

/** A dev project whose daemon runs, motd held for its unreviewed script: the project, the daemon, the script's hash. */
async function daemonHoldingMotd(): Promise<{ dir: string; d: Daemon; hash: string }> {
  const dir = projectIn('dev');
  const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', '--goals', join(dir, 'goals'), '--state', join(dir, 'state')], { cwd: dir, env: { HOME: dir, USER: 'ana' } });
  await d.port();
  await d.waitFor((l) => l.msg === 'script held' && l.node === 'motd');
  await eventually(async () => (json((await cli(dir, ['status', '--format', 'json'])).stdout) as { nodes: { id: string; status: string }[] }).nodes[0]?.status === 'held', 10_000, 'motd held');
  const hash = (json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash;
  return { dir, d, hash };
}

describe.skipIf(!hasJq)('desiredstate scripts', () => {
  it('generate → held for review → approve → runs in dev; list, show, trust', async () => {
    const dir = projectIn('dev');
    // --state names a directory that is not there yet: nothing has run with it (a warning, silenced here), nothing made.
    const missing = await cli(dir, ['scripts', 'list']);
    expect(missing.code).toBe(0);
    expect(missing.stdout).toContain('no scripts yet');
    expect(existsSync(join(dir, 'state'))).toBe(false);
    mkdirSync(join(dir, 'state'));
    expect((await cli(dir, ['scripts', 'list'])).stdout).toContain('no scripts yet');

    const first = await cli(dir, ['apply', '--yes']);
    expect(first.code).toBe(1);
    expect(first.stdout).toMatch(/⊘ motd: held: script [0-9a-f]{12} awaits review: desiredstate scripts show [0-9a-f]{12}/);
    // Waiting for a review, not a resource whose existence is unknown: `scripts approve` releases it, no retry.
    expect(first.stdout).not.toMatch(/cannot tell whether it exists|desiredstate retry/);

    const list = json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string; gate: string }[] };
    expect(list.scripts).toHaveLength(1);
    const hash = list.scripts[0]!.hash;
    expect(list.scripts[0]!.gate).toBe('unreviewed');

    const show = await cli(dir, ['scripts', 'show', hash.slice(0, 8)]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`script ${hash}`);
    expect(show.stdout).toContain('#!/bin/sh');

    const heldAt = (json((await cli(dir, ['status', '--format', 'json'])).stdout) as { nodes: { updatedAt: number }[] }).nodes[0]!.updatedAt;
    const approve = await cli(dir, ['scripts', 'approve', hash.slice(0, 12), '--note', 'read it']);
    expect(approve.code).toBe(0);
    expect(approve.stdout).toContain(`script ${hash.slice(0, 12)} approved by ana`);
    expect(approve.stdout).toContain('released motd');
    // Released now: the record says so, not the time it was held.
    const released = (json((await cli(dir, ['status', '--format', 'json'])).stdout) as { nodes: { status: string; updatedAt: number }[] }).nodes[0]!;
    expect(released.status).toBe('pending');
    expect(released.updatedAt).toBeGreaterThan(heldAt);

    const second = await cli(dir, ['apply', '--yes']);
    expect(second.code).toBe(0);
    expect(readFileSync(join(dir, 'root/etc/motd'), 'utf8')).toBe('hello\n');

    const trust = json((await cli(dir, ['scripts', 'trust', '--format', 'json'])).stdout) as { bar: number; scripts: { successes: number; failures: number; lower: number; gate: string }[] };
    expect(trust.bar).toBe(0.94);
    expect(trust.scripts[0]).toMatchObject({ successes: 1, failures: 0, gate: 'needs-approval' });
    expect(trust.scripts[0]!.lower).toBeCloseTo(Math.sqrt(0.05), 6);
    const text = (await cli(dir, ['scripts', 'trust'])).stdout;
    expect(text).toMatch(/SCRIPT\s+KIND\s+SUCCESSES\s+FAILURES\s+MEAN\s+P5\s+GATE/);

    // The same script found again for another input shape of its kind: the kind is listed once.
    const store = SqliteStateStore.open({ path: join(dir, 'state/state.db'), lock: false });
    const kind = ((): string => {
      try {
        const [script] = store.artifacts.list();
        store.artifacts.put({ kind: script!.keys[0]!.kind, shape: 'another shape', origin: script!.origin, content: script!.content });
        expect(store.artifacts.get(script!.hash)!.keys).toHaveLength(2);
        return script!.keys[0]!.kind;
      } finally {
        store.close();
      }
    })();
    const kinds = (await cli(dir, ['scripts', 'trust'])).stdout.split('\n')[1]!.split(/\s+/)[1];
    expect(kinds).toBe(kind);
  });

  it('show masks a secret of the backend\'s environment that the generated script quotes, in text and JSON', async () => {
    const dir = projectIn('dev', '{ root: root, env: [PATH, HOME, API_TOKEN], generator: { type: command, command: [sh, gen.sh] } }');
    writeFileSync(join(dir, 'gen.sh'), 'cat > /dev/null\nprintf \'#!/bin/sh\\ncurl -H "Authorization: Bearer %s" https://api.example\\n\' "$API_TOKEN"\n');
    const withToken = (args: readonly string[]): Promise<CliResult> =>
      runCli([...args, '--goals', join(dir, 'goals'), '--state', join(dir, 'state')], { cwd: dir, env: { HOME: dir, USER: 'ana', DESIREDSTATE_LOG_LEVEL: 'silent', API_TOKEN: 'tok-3f9a8b7c6d5e4f' } });
    await withToken(['plan']);
    const hash = (json((await withToken(['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash;
    const text = await withToken(['scripts', 'show', hash]);
    expect(text.stdout).toContain('curl -H "Authorization: Bearer <secret>" https://api.example');
    const doc = await withToken(['scripts', 'show', hash, '--format', 'json']);
    expect((json(doc.stdout) as { content: string }).content).toBe('#!/bin/sh\ncurl -H "Authorization: Bearer <secret>" https://api.example\n');
    expect(`${text.stdout}${doc.stdout}`).not.toContain('tok-3f9a8b7c6d5e4f');
  });

  it('plan shows a script node\'s create with what looks like a secret in its input masked, in text and JSON', async () => {
    const dir = projectIn('dev', '{ root: root }', MOTD.replace('etc/motd', 'app.env').replace('hello', 'DB_PASSWORD=hunter2secret'));
    await cli(dir, ['plan']);
    const hash = (json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash;
    expect((await cli(dir, ['scripts', 'approve', hash])).code).toBe(0);
    const text = await cli(dir, ['plan']);
    expect(text.stdout).toContain('DB_PASSWORD=<secret>');
    const doc = await cli(dir, ['plan', '--format', 'json']);
    expect(doc.stdout).toContain('DB_PASSWORD=<secret>');
    expect(`${text.stdout}${doc.stdout}`).not.toContain('hunter2secret');
  });

  it('a script changed in state.db after approval: show warns, approve refuses, apply never runs it', async () => {
    const dir = projectIn('dev');
    mkdirSync(join(dir, 'state'));
    await cli(dir, ['apply', '--yes']);
    const hash = (json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash;
    expect((await cli(dir, ['scripts', 'approve', hash])).code).toBe(0);
    const db = new Database(join(dir, 'state/state.db'));
    db.prepare('UPDATE artifacts SET content = ? WHERE hash = ?').run(`#!/bin/sh\necho pwned > ${join(dir, 'pwned')}\necho '{"exists":false}'\n`, hash);
    db.close();
    const apply = await cli(dir, ['apply', '--yes']);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toMatch(/x motd: permanent: script [0-9a-f]{12}: the stored text does not match its hash/);
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
    expect((await cli(dir, ['scripts', 'show', hash])).stdout).toMatch(/^WARNING: this text does not match the hash/);
    const approve = await cli(dir, ['scripts', 'approve', hash]);
    expect(approve.code).toBe(1);
    expect(approve.stderr).toMatch(/^desiredstate scripts: DS_REFUSED: script [0-9a-f]{12}: the stored text does not match its hash; it cannot be approved/);
    // With --format json, the refusal is a document too.
    const refusedJson = await cli(dir, ['scripts', 'approve', hash, '--format', 'json']);
    expect(refusedJson.code).toBe(1);
    expect(json(refusedJson.stdout)).toMatchObject({ error: { code: 'DS_REFUSED' } });
  });

  it('with a daemon running, approve releases the held node in the daemon: it runs now, not after a restart', async () => {
    const { dir, d, hash } = await daemonHoldingMotd();
    const approve = await cli(dir, ['scripts', 'approve', hash.slice(0, 12)]);
    expect(approve.code, approve.stderr).toBe(0);
    expect(approve.stdout).toBe(`script ${hash.slice(0, 12)} approved by ana\nreleased motd; the daemon reconciles it now\n`);
    await eventually(() => existsSync(join(dir, 'root/etc/motd')), 10_000, 'motd written by the daemon');
    expect(readFileSync(join(dir, 'root/etc/motd'), 'utf8')).toBe('hello\n');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  // The daemon did not release the node (its API refused, or did not answer at its address): nothing is
  // released behind its back (it would never see it), and approve says the verdict is recorded all the same.
  it('with a daemon running that does not answer, approve records the verdict, releases nothing and says so', async () => {
    const { dir, d, hash } = await daemonHoldingMotd();
    // A port nobody listens on.
    const free = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const db = new Database(join(dir, 'state/state.db'));
    db.pragma('busy_timeout = 5000');
    db.prepare("UPDATE meta SET value = ? WHERE key = 'daemon.listen'").run(`127.0.0.1:${free}`);
    db.close();
    const approve = await cli(dir, ['scripts', 'approve', hash.slice(0, 12)]);
    expect(approve.code).toBe(1);
    expect(approve.stderr).toMatch(new RegExp(`^desiredstate scripts: script ${hash.slice(0, 12)} approved by ana; motd: nothing released: the daemon at 127\\.0\\.0\\.1:${free} \\(process \\d+\\) did not release it \\(ECONNREFUSED\\)`));
    expect((json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { gate: string }[] }).scripts[0]!.gate).not.toBe('unreviewed');
    expect((json((await cli(dir, ['status', '--format', 'json'])).stdout) as { nodes: { status: string }[] }).nodes[0]!.status).toBe('held');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  it('with no daemon, approve while an apply holds the state records the verdict but releases nothing, and says so', async () => {
    const dir = projectIn('dev');
    expect((await cli(dir, ['apply', '--yes'])).code).toBe(1);
    const hash = (json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash;
    // Another process holding the lock, as a running apply does (it writes its node records at the end of its pass).
    const apply = SqliteStateStore.open({ path: join(dir, 'state/state.db'), lock: true });
    try {
      const approve = await cli(dir, ['scripts', 'approve', hash.slice(0, 12)]);
      expect(approve.code).toBe(1);
      expect(approve.stderr).toMatch(new RegExp(`^desiredstate scripts: script ${hash.slice(0, 12)} approved by ana; nothing released: state \\S+ is locked by process ${process.pid}`));
      expect(apply.getNode('motd')?.status).toBe('held');
      expect(apply.artifacts.latestReview(hash)?.verdict).toBe('approved');
    } finally {
      apply.close();
    }
  });

  // An update that exited 0 and changed nothing was reported "updated" on every apply, and its 51
  // "successes" made the script run alone in prod.
  it('a script whose update exits 0 but leaves the drift: apply reports the node failed, and the script earns no trust', async () => {
    const scripts = mkdtempSync(join(tmpdir(), 'ds-scripts-lazy-'));
    made.push(scripts);
    const script = join(scripts, 'lazy.sh');
    writeFileSync(script, `#!/bin/sh\ncat > /dev/null\ncase "$1" in read) echo '{"exists": true, "state": {"name": "WRONG"}}';; update) echo '{"outputs": {}}';; esac\n`);
    const dir = projectIn(
      'dev',
      `{ root: root, generator: { type: command, command: [sh, -c, 'cat > /dev/null; cat "$0"', ${JSON.stringify(script)}] } }`,
      '    - { id: devnode, type: generic.resource, spec: { input: { name: right } } }\n',
    );
    await cli(dir, ['plan']);
    const hash = (json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash;
    expect((await cli(dir, ['scripts', 'approve', hash])).code).toBe(0);
    for (let i = 0; i < 3; i++) {
      const apply = await cli(dir, ['apply', '--yes']);
      expect(apply.code).toBe(1);
      expect(apply.stdout).not.toMatch(/~ devnode/);
      expect(apply.stdout).toContain('0 updated');
      expect(apply.stdout).toMatch(/x devnode: permanent: script [0-9a-f]{12}: update exited 0 but did not do it: its read afterwards still finds input\.name "WRONG", not "right"/);
    }
    const trust = json((await cli(dir, ['scripts', 'trust', '--format', 'json'])).stdout) as { scripts: { successes: number; failures: number; gate: string }[] };
    expect(trust.scripts[0]).toMatchObject({ successes: 0, failures: 3 });
  });

  it('scripts trust shows the bar the goals configure on their script backend', async () => {
    const dir = projectIn('dev', '{ root: root, trust: { bar: 0.5, quantile: 0.05 } }');
    await cli(dir, ['plan']);
    const trust = json((await cli(dir, ['scripts', 'trust', '--format', 'json'])).stdout) as { bar: number; scripts: unknown[] };
    expect(trust.bar).toBe(0.5);
    expect(trust.scripts).toHaveLength(1);
    // --bar still wins over the configured one.
    expect((json((await cli(dir, ['scripts', 'trust', '--bar', '0.9', '--format', 'json'])).stdout) as { bar: number }).bar).toBe(0.9);
  });

  it('in prod below the bar: approve-run grants exactly one run; trusted scripts then run alone', async () => {
    const dir = projectIn('prod');
    await cli(dir, ['plan']);
    const store = SqliteStateStore.open({ path: join(dir, 'state/state.db'), lock: false, readonly: true });
    const hash = store.artifacts.list()[0]!.hash;
    store.close();
    expect((await cli(dir, ['scripts', 'approve', hash.slice(0, 12)])).code).toBe(0);
    const held = await cli(dir, ['apply', '--yes']);
    expect(held.code).toBe(1);
    expect(held.stdout).toContain(`needs a per-run approval to create motd in prod`);
    expect(held.stdout).toContain(`desiredstate scripts approve-run ${hash.slice(0, 12)} --node motd`);

    const grant = await cli(dir, ['scripts', 'approve-run', hash.slice(0, 12), '--node', 'motd']);
    expect(grant.code).toBe(0);
    expect(grant.stdout).toContain(`one create of motd by script ${hash.slice(0, 12)} approved by ana`);
    expect(grant.stdout).toContain('released motd');
    expect((await cli(dir, ['apply', '--yes'])).code).toBe(0);
    expect(readFileSync(join(dir, 'root/etc/motd'), 'utf8')).toBe('hello\n');

    // Hand edit: the correction needs another approval…
    writeFileSync(join(dir, 'root/etc/motd'), 'edited');
    expect((await cli(dir, ['plan'])).stdout).toContain('needs a per-run approval');
    // …unless the script has earned trust (seeded here: 48 more successes).
    const rw = SqliteStateStore.open({ path: join(dir, 'state/state.db'), lock: false });
    for (let i = 0; i < 48; i++) rw.artifacts.recordRun({ hash, subject: 'seed', action: 'create', outcome: 'success', counted: true, exitCode: 0, detail: null, durationMs: 1, grantId: null });
    rw.close();
    expect((await cli(dir, ['scripts', 'trust'])).stdout).toMatch(/49\s+0\s+0\.98\d+\s+0\.94\d+\s+runs-alone/);
    const healed = await cli(dir, ['apply', '--yes']);
    expect(healed.code).toBe(0);
    expect(readFileSync(join(dir, 'root/etc/motd'), 'utf8')).toBe('hello\n');
  });

  it('approve-run says the input it permits; a goal changed after it runs nothing until approved again', async () => {
    const dir = projectIn('prod', '{ root: root }', MOTD.replace('hello', 'version one DB_PASSWORD=hunter2secret'));
    await cli(dir, ['plan']);
    const hash = (json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash.slice(0, 12);
    expect((await cli(dir, ['scripts', 'approve', hash])).code).toBe(0);
    expect((await cli(dir, ['apply', '--yes'])).code).toBe(1);
    // What it would permit, read before it is given.
    const waiting = '{"path":"etc/motd","content":"version one DB_PASSWORD=<secret>\\n"}';
    expect((await cli(dir, ['scripts', 'show', hash])).stdout).toMatch(new RegExp(`^waiting  motd create since \\S+, with input ${escapeRegex(waiting)}: desiredstate scripts approve-run ${hash} --node motd$`, 'm'));
    expect((json((await cli(dir, ['scripts', 'show', hash, '--format', 'json'])).stdout) as { requests: unknown[] }).requests).toEqual([expect.objectContaining({ subject: 'motd', action: 'create', input: waiting })]);
    const grant = await cli(dir, ['scripts', 'approve-run', hash, '--node', 'motd', '--format', 'json']);
    expect(grant.code).toBe(0);
    expect((json(grant.stdout).grant as { input: string }).input).toBe('{"path":"etc/motd","content":"version one DB_PASSWORD=<secret>\\n"}');
    expect(grant.stdout).not.toContain('hunter2secret');

    const goals = join(dir, 'goals/app.yaml');
    writeFileSync(goals, readFileSync(goals, 'utf8').replace('version one', 'version TWO'));
    const held = await cli(dir, ['apply', '--yes']);
    expect(held.code).toBe(1);
    expect(held.stdout).toMatch(/the input changed since ana approved a run at .*: that approval is void/);
    expect(existsSync(join(dir, 'root/etc/motd'))).toBe(false);
    const again = await cli(dir, ['scripts', 'approve-run', hash, '--node', 'motd']);
    expect(again.stdout).toContain(`one create of motd by script ${hash} approved by ana, with input {"path":"etc/motd","content":"version TWO DB_PASSWORD=<secret>\\n"}`);
    expect((await cli(dir, ['apply', '--yes'])).code).toBe(0);
    expect(readFileSync(join(dir, 'root/etc/motd'), 'utf8')).toBe('version TWO DB_PASSWORD=hunter2secret\n');
  });

  it('approve-run releases a delete that waits for it in a running daemon: the node removed under prune is deleted at once', async () => {
    const dir = projectIn('prod');
    const goals = (approvalIn: string, ids: readonly string[]): string => `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: scripts }
spec: { type: script, config: { root: root, requireApprovalBelowTrust: ${approvalIn} } }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app, environment: prod }
spec:
  prune: true
  defaults: { backend: scripts, deletionPolicy: Delete }
  nodes:
${ids.map((id) => `    - { id: ${id}, type: generic.resource, spec: { input: { path: etc/${id}, content: "hello\\n" } } }\n`).join('')}`;
    // Created where no approval is asked for; then prod asks for one, and motd leaves the goals.
    writeFileSync(join(dir, 'goals/app.yaml'), goals('[]', ['motd', 'issue']));
    await cli(dir, ['plan']);
    const hash = (json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash.slice(0, 12);
    expect((await cli(dir, ['scripts', 'approve', hash])).code).toBe(0);
    expect((await cli(dir, ['apply', '--yes'])).code).toBe(0);
    writeFileSync(join(dir, 'goals/app.yaml'), goals('[prod]', ['issue']));

    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '1h', '--goals', join(dir, 'goals'), '--state', join(dir, 'state')], { cwd: dir, env: { HOME: dir, USER: 'ana' } });
    await d.port();
    // Its retry budget spent: the delete waits for the approval.
    await d.waitFor((l) => l.msg === 'delete failed' && l.node === 'motd' && typeof l.reason === 'string', 20_000);
    const grant = await cli(dir, ['scripts', 'approve-run', hash, '--node', 'motd']);
    expect(grant.code).toBe(0);
    expect(grant.stdout).toContain('released motd');
    await d.waitFor((l) => l.msg === 'node deleted' && l.node === 'motd');
    expect(existsSync(join(dir, 'root/etc/motd'))).toBe(false);
  }, 60_000);

  // Accepted for a node that was ready, the grant stayed open, and days later a drift was "corrected" with it, no one asked.
  it('approve-run for a node that waits for no approval exits 1 and grants nothing: a later drift still waits for one', async () => {
    const dir = projectIn('prod');
    await cli(dir, ['plan']);
    const hash = (json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash.slice(0, 12);
    expect((await cli(dir, ['scripts', 'approve', hash])).code).toBe(0);
    expect((await cli(dir, ['apply', '--yes'])).code).toBe(1);
    expect((await cli(dir, ['scripts', 'approve-run', hash, '--node', 'motd'])).code).toBe(0);
    expect((await cli(dir, ['apply', '--yes'])).code).toBe(0);

    const again = await cli(dir, ['scripts', 'approve-run', hash, '--node', 'motd']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^desiredstate scripts: DS_REFUSED: motd is not waiting for a per-run approval of script [0-9a-f]{12} \(it is ready\): nothing to approve/);
    expect((json((await cli(dir, ['scripts', 'show', hash, '--format', 'json'])).stdout) as { grants: { usedAt: number | null; voidedAt: number | null }[] }).grants.filter((g) => g.usedAt === null && g.voidedAt === null)).toEqual([]);
    writeFileSync(join(dir, 'root/etc/motd'), '{"name":"tampered"}');
    expect((await cli(dir, ['plan'])).stdout).toContain('needs a per-run approval to update motd in prod');
    const apply = await cli(dir, ['apply', '--yes']);
    expect(apply.code).toBe(1);
    expect(readFileSync(join(dir, 'root/etc/motd'), 'utf8')).toBe('{"name":"tampered"}');
  });

  it('approve-run for a node the state does not know (a typo) exits 1 and grants nothing', async () => {
    const dir = projectIn('prod');
    await cli(dir, ['plan']);
    const hash = (json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash.slice(0, 12);
    expect((await cli(dir, ['scripts', 'approve', hash])).code).toBe(0);
    expect((await cli(dir, ['apply', '--yes'])).code).toBe(1);
    const typo = await cli(dir, ['scripts', 'approve-run', hash, '--node', 'mtod']);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/^desiredstate scripts: DS_NOT_FOUND: no node mtod in the state/);
    expect((json((await cli(dir, ['scripts', 'show', hash, '--format', 'json'])).stdout) as { grants: unknown[] }).grants).toEqual([]);
  });

  it.each([
    { name: 'reject records the verdict', args: (h: string) => ['scripts', 'reject', h, '--note', 'no'], code: 0, out: /rejected by ana/ },
    { name: 'an unknown hash exits 1', args: () => ['scripts', 'show', 'abcdef012345'], code: 1, err: /^desiredstate scripts: DS_NOT_FOUND: no script abcdef012345\n$/ },
    { name: 'a non-hex hash is a usage error', args: () => ['scripts', 'show', 'zzz'], code: 64, err: /not a script hash/ },
    { name: 'an unknown subcommand is a usage error', args: () => ['scripts', 'frobnicate'], code: 64, err: /unknown subcommand "frobnicate" of scripts; it has list, show/ },
    { name: 'a misspelt subcommand gets a suggestion', args: () => ['scripts', 'aprove'], code: 64, err: /unknown subcommand "aprove" of scripts; .*\(did you mean "approve"\?\)/ },
    { name: 'no subcommand is a usage error', args: () => ['scripts'], code: 64, err: /scripts needs a subcommand: list, show/ },
    { name: 'approve-run without --node is a usage error', args: (h: string) => ['scripts', 'approve-run', h], code: 64, err: /--node/ },
    { name: 'approve-run of an unreviewed script exits 1', args: (h: string) => ['scripts', 'approve-run', h, '--node', 'motd'], code: 1, err: /^desiredstate scripts: DS_REFUSED: script [0-9a-f]{12} is unreviewed: review it first/ },
  ])('$name', async ({ args, code, out, err }) => {
    const dir = projectIn('dev');
    await cli(dir, ['plan']);
    const list = json((await cli(dir, ['scripts', 'list', '--format', 'json'])).stdout) as { scripts: { hash: string }[] };
    const r = await cli(dir, args(list.scripts[0]!.hash.slice(0, 12)));
    expect(r.code).toBe(code);
    if (out !== undefined) expect(r.stdout).toMatch(out);
    if (err !== undefined) expect(r.stderr).toMatch(err);
  });

  /** `validate` over the project of `projectIn('dev')` with goals/more.yaml holding `nodes` (a Goal's node list, on the scripts backend): exit 1, stdout and stderr together. */
  const validateMore = async (nodes: string): Promise<string> => {
    const dir = projectIn('dev');
    writeFileSync(join(dir, 'goals/more.yaml'), `apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: more }\nspec:\n  defaults: { backend: scripts }\n  nodes:\n${nodes}`);
    const r = await cli(dir, ['validate']);
    expect(r.code).toBe(1);
    return r.stdout + r.stderr;
  };

  it('validate refuses commands on a script node and an input no template fits', async () => {
    const all = await validateMore(`    - id: odd
      type: generic.resource
      spec:
        commands: { read: [x], create: [x] }
        input: { colour: blue }
`);
    expect(all).toMatch(/more\.yaml:\d+:\d+: error unsupported-spec: a script backend generates its own script: remove commands/);
    expect(all).toMatch(/error unsupported-spec: no built-in template fits input \{"colour":"string"\}; templates: file \{path, content\}, json-key \{file, key, value\}/);
  });

  // A reference reached the script as the map itself, and the resource was set to it.
  it('validate refuses a secret reference in a script node\'s input, and a map meant as one that is not one anywhere', async () => {
    const all = await validateMore(`    - id: secretive
      type: generic.resource
      spec:
        input: { path: etc/pw, content: { fromEnv: MY_SECRET } }
    - id: malformed
      type: generic.resource
      spec:
        input: { path: etc/x, content: { fromEnv: "lower case" } }
`);
    expect(all).toMatch(/more\.yaml:10:16: error unsupported-spec: a script backend reads no secrets: a \{ fromEnv \} or \{ fromFile \} reference would reach the script as the map itself/);
    expect(all).toMatch(/more\.yaml:14:40: error invalid-value: spec\.input\.content: fromEnv names an environment variable \(letters, digits and _, not starting with a digit\), not "lower case": as it is, the map would be sent as data and no secret read/);
  });
});
