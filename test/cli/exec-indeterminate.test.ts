import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, execGoalHead, tempProject } from '../support/cli.ts';
import { Daemon, eventually } from '../support/daemon.ts';

/**
 * An exec resource whose read command cannot tell after a crash: its id is
 * made by create (a cloud API's server-assigned id) and known to the daemon
 * only from create's outputs, which a kill -9 mid-create never records. The
 * request says the create was interrupted; read answers `"exists":
 * "unknown"`. The node is held with the reason, never created a second
 * time; `retry` releases it once an operator has resolved it (here: told
 * the script which id the half-made resource has).
 */

/** The resource script: `res-<id>.json` files, every create counted in creates.log. */
function resourceScript(dir: string): string {
  const script = join(dir, 'resource');
  writeFileSync(
    script,
    `#!${process.execPath}
const fs = require('node:fs');
const dir = ${JSON.stringify(dir)};
const req = JSON.parse(fs.readFileSync(0, 'utf8'));
const file = (id) => dir + '/res-' + id + '.json';
switch (process.argv[2]) {
  case 'read': {
    // An operator who resolved an interruption by hand names the resource here.
    const known = req.outputs?.rid ?? (fs.existsSync(dir + '/adopt-id') ? fs.readFileSync(dir + '/adopt-id', 'utf8').trim() : undefined);
    if (known !== undefined && fs.existsSync(file(known))) {
      console.log(JSON.stringify({ exists: true, state: JSON.parse(fs.readFileSync(file(known), 'utf8')), outputs: { rid: known } }));
    } else if (req.interrupted === true) {
      console.log(JSON.stringify({ exists: 'unknown', reason: 'a create was interrupted; its resource id is known only to create' }));
    } else console.log(JSON.stringify({ exists: false }));
    break;
  }
  case 'create': {
    fs.appendFileSync(dir + '/creates.log', 'create\\n');
    const id = Math.random().toString(36).slice(2, 10);
    fs.writeFileSync(file(id), JSON.stringify(req.input));
    fs.writeFileSync(dir + '/last-id', id);
    // The resource exists now; the call itself is slow: the process is killed here.
    if (!fs.existsSync(dir + '/fast')) setTimeout(() => console.log(JSON.stringify({ outputs: { rid: id } })), 30000);
    else console.log(JSON.stringify({ outputs: { rid: id } }));
    break;
  }
}
`,
  );
  chmodSync(script, 0o755);
  return script;
}

function project(prefix: string, timeout = '60s'): ReturnType<typeof tempProject> {
  const p = tempProject(prefix);
  const script = resourceScript(p.dir);
  p.write(
    'goals.yaml',
    `${execGoalHead({ config: `{ timeout: ${timeout} }` })}    - id: vm
      type: generic.resource
      backend: exec
      spec:
        commands:
          read: [${JSON.stringify(script)}, read]
          create: [${JSON.stringify(script)}, create]
        input: { size: large }
`,
  );
  return p;
}

// The create left running by the kill is waited for by the next daemon or apply until its timeout
// (3 s), then killed: the resource exists by then, its id known only to the killed create.
const daemonProject = project('ds-exec-unknown-run-', '3s');
const applyProject = project('ds-exec-unknown-apply-', '3s');
// The create outlives its timeout (2 s): the daemon kills it mid-way, as a crash would have.
const timeoutDaemonProject = project('ds-exec-timeout-run-', '2s');
const timeoutApplyProject = project('ds-exec-timeout-apply-', '2s');
// Released by `retry` while failed, waiting out the backoff that follows the timeout.
const retryDaemonProject = project('ds-exec-timeout-retry-run-', '2s');
const retryApplyProject = project('ds-exec-timeout-retry-apply-', '2s');
const retryAllApplyProject = project('ds-exec-timeout-retry-all-', '2s');
afterAll(() => {
  for (const p of [daemonProject, applyProject, timeoutDaemonProject, timeoutApplyProject, retryDaemonProject, retryApplyProject, retryAllApplyProject]) rmSync(p.dir, { recursive: true, force: true });
});

function creates(dir: string): string[] {
  return readFileSync(join(dir, 'creates.log'), 'utf8').trim().split('\n');
}

function operations(state: string): unknown[] {
  const db = new Database(join(state, 'state.db'), { readonly: true });
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    return db.prepare("SELECT op, outcome, detail FROM operations WHERE node = 'vm' ORDER BY id").all();
  } finally {
    db.close();
  }
}

async function statusOf(p: ReturnType<typeof tempProject>): Promise<{ id: string; status: string; reason: string | null }> {
  const r = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
  return (JSON.parse(r.stdout) as { nodes: { id: string; status: string; reason: string | null }[] }).nodes.find((n) => n.id === 'vm')!;
}

describe('exec resource whose read cannot tell after a create cut short by kill -9', () => {
  it('the daemon holds it with the reason, never creates it again; retry releases it once resolved', async () => {
    const p = daemonProject;
    const args = [...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'];
    const first = new Daemon(args, { cwd: p.dir });
    try {
      await eventually(() => existsSync(join(p.dir, 'last-id')), 20_000, 'the create to start');
    } finally {
      first.kill('SIGKILL');
      await first.exited;
    }
    writeFileSync(join(p.dir, 'fast'), '');

    const second = new Daemon(args, { cwd: p.dir });
    try {
      await second.port();
      const held = await second.waitFor((l) => l.msg === 'node held: existence indeterminate' && l.node === 'vm');
      expect(String(held.reason)).toContain('a create was interrupted');
      const rec = await statusOf(p);
      expect(rec.status).toBe('held');
      expect(rec.reason).toMatch(/^cannot tell whether it exists: .*a create was interrupted.*desiredstate retry vm/);
      expect(creates(p.dir)).toEqual(['create']);

      // The operator finds the half-made resource and tells the script its id, then releases the node.
      writeFileSync(join(p.dir, 'adopt-id'), readFileSync(join(p.dir, 'last-id'), 'utf8'));
      const retry = await cli(['retry', 'vm', ...p.args], { cwd: p.dir });
      expect(retry.code, retry.stderr).toBe(0);
      await eventually(async () => (await statusOf(p)).status === 'ready', 10_000, 'vm ready');
    } finally {
      second.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);
    }
    expect(creates(p.dir)).toEqual(['create']);
    expect(operations(p.state)).toEqual([{ op: 'create', outcome: 'abandoned', detail: 'released by operator' }]);
  }, 60_000);

  it('apply holds it too (exit 1, the reason printed); an offline retry releases it, and a release with nothing left to find creates it once', async () => {
    const p = applyProject;
    const child = spawn(process.execPath, [bin, 'apply', '--yes', ...p.args], { cwd: p.dir, env: cleanEnv(), stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      await eventually(() => existsSync(join(p.dir, 'last-id')), 20_000, 'the create to start');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    writeFileSync(join(p.dir, 'fast'), '');

    const again = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/1 held/);
    expect(again.stdout + again.stderr).toContain('a create was interrupted');
    expect(creates(p.dir)).toEqual(['create']);
    // Held for this goal: the next pass leaves it alone rather than guessing.
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(1);
    expect(creates(p.dir)).toEqual(['create']);

    // The operator deleted the half-made resource: released, the next pass creates it (once).
    rmSync(join(p.dir, `res-${readFileSync(join(p.dir, 'last-id'), 'utf8')}.json`));
    expect((await cli(['retry', 'vm', ...p.args], { cwd: p.dir })).code).toBe(0);
    const last = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(last.code, last.stdout + last.stderr).toBe(0);
    expect(creates(p.dir)).toEqual(['create', 'create']);
    expect(operations(p.state)).toEqual([
      { op: 'create', outcome: 'abandoned', detail: 'released by operator' },
      { op: 'create', outcome: 'done', detail: null },
    ]);
    expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(0);
  }, 60_000);
});

describe('exec resource whose create is killed at its timeout', () => {
  it('the daemon tells the next read the create was interrupted: held, never created a second time', async () => {
    const p = timeoutDaemonProject;
    const daemon = new Daemon([...p.args, '--listen', '127.0.0.1:0', '--interval', '60s'], { cwd: p.dir });
    try {
      await daemon.port();
      const held = await daemon.waitFor((l) => l.msg === 'node held: existence indeterminate' && l.node === 'vm');
      expect(String(held.reason)).toContain('a create was interrupted');
      expect((await statusOf(p)).status).toBe('held');
      expect(creates(p.dir)).toEqual(['create']);
    } finally {
      daemon.kill('SIGTERM');
      expect((await daemon.exited).code).toBe(0);
    }
    expect(operations(p.state)).toEqual([{ op: 'create', outcome: null, detail: null }]);
  }, 60_000);

  it('apply fails with the timeout, and the next apply holds the node rather than creating it again', async () => {
    const p = timeoutApplyProject;
    const first = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(first.code).toBe(1);
    expect(first.stdout).toContain('create command timed out after 2000 ms');
    const again = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/1 held/);
    expect(again.stdout + again.stderr).toContain('a create was interrupted');
    expect(creates(p.dir)).toEqual(['create']);
  }, 60_000);
});

// `retry` of a node failed in its backoff after its create was killed at its timeout ended the pending
// create, as if an operator had checked what it made: the next read was not told the create was
// interrupted, answered that nothing exists, and a second create ran beside the resource of the first.
describe('exec resource released by retry in the backoff after its create is killed at its timeout', () => {
  it.each([
    { retry: 'vm', p: retryApplyProject },
    { retry: '--all', p: retryAllApplyProject },
  ])('retry $retry skips the backoff only: the next apply is told the create was interrupted and holds the node', async ({ retry, p }) => {
    const first = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(first.stdout).toContain('create command timed out after 2000 ms');
    expect((await statusOf(p)).status).toBe('failed');
    const released = await cli(['retry', retry, ...p.args], { cwd: p.dir });
    expect(released.code, released.stderr).toBe(0);
    writeFileSync(join(p.dir, 'fast'), '');

    const again = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(again.code, again.stdout + again.stderr).toBe(1);
    expect(again.stdout).toMatch(/1 held/);
    expect(again.stdout + again.stderr).toContain('a create was interrupted');
    expect(creates(p.dir)).toEqual(['create']);

    // Held because the read could not tell: the operator adopts the half-made resource, and retry ends the interruption.
    writeFileSync(join(p.dir, 'adopt-id'), readFileSync(join(p.dir, 'last-id'), 'utf8'));
    expect((await cli(['retry', retry, ...p.args], { cwd: p.dir })).code).toBe(0);
    const last = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(last.code, last.stdout + last.stderr).toBe(0);
    expect(creates(p.dir)).toEqual(['create']);
    expect(operations(p.state)).toEqual([{ op: 'create', outcome: 'abandoned', detail: 'released by operator' }]);
  }, 60_000);

  it('the daemon, released over its API, tells the next read the create was interrupted and holds the node', async () => {
    const p = retryDaemonProject;
    // A backoff no test outlasts: the node is observed again only once released.
    const faults = join(p.dir, 'faults.yaml');
    writeFileSync(faults, 'retry: { transient: { baseMs: 2000000000, maxMs: 2000000000 } }\n');
    const daemon = new Daemon([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h', '--fault-policy', faults], { cwd: p.dir });
    try {
      await daemon.port();
      await daemon.waitFor((l) => l.msg === 'create failed' && l.node === 'vm');
      expect((await statusOf(p)).status).toBe('failed');
      writeFileSync(join(p.dir, 'fast'), '');
      const from = daemon.lines.length;
      const released = await cli(['retry', 'vm', '--format', 'json', ...p.args], { cwd: p.dir });
      expect(released.code, released.stderr).toBe(0);
      expect(JSON.parse(released.stdout)).toMatchObject({ released: 'vm', via: 'daemon' });

      const next = await daemon.waitFor((l) => l.node === 'vm' && (l.msg === 'node held: existence indeterminate' || l.msg === 'node created'), 10_000, from);
      expect(next.msg).toBe('node held: existence indeterminate');
      expect(creates(p.dir)).toEqual(['create']);

      // Held because the read could not tell: retry ends the interruption once the operator adopted the resource.
      writeFileSync(join(p.dir, 'adopt-id'), readFileSync(join(p.dir, 'last-id'), 'utf8'));
      expect((await cli(['retry', 'vm', ...p.args], { cwd: p.dir })).code).toBe(0);
      await eventually(async () => (await statusOf(p)).status === 'ready', 10_000, 'vm ready');
    } finally {
      daemon.kill('SIGTERM');
      expect((await daemon.exited).code).toBe(0);
    }
    expect(creates(p.dir)).toEqual(['create']);
    expect(operations(p.state)).toEqual([{ op: 'create', outcome: 'abandoned', detail: 'released by operator' }]);
  }, 60_000);
});
