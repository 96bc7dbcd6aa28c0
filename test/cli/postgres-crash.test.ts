import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRng } from '../../src/runtime/index.ts';
import { bin, cleanEnv, cli, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { startTestPostgres } from '../support/postgres.ts';
import type { TestPostgres } from '../support/postgres.ts';

/*
 * Crash safety against a real PostgreSQL: `apply` and `run` killed -9 at
 * random moments while they create databases, roles with passwords,
 * schemas, extensions and grants, then a last pass. No create is repeated
 * after one settled, none fails, nothing is held, the state file is intact
 * and `plan` is empty. And the server stopped while the daemon is creating,
 * started again on the same port: the daemon rides it out and converges.
 */
const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
const rng = seededRng(seed);
const APP_PASSWORD = 'crash-App-Secret-3e9d';
let server: TestPostgres;
const daemons = trackDaemons();

function goal(prefix: string, apps: number): string {
  const nodes: string[] = [];
  for (let a = 0; a < apps; a++) {
    const o = `${prefix}_owner_${a}`;
    const db = `${prefix}_db_${a}`;
    nodes.push(`    - { id: owner-${a}, type: postgres.role, spec: { name: ${o}, login: true, password: { fromEnv: APP_PASSWORD } } }`);
    nodes.push(`    - { id: db-${a}, type: postgres.database, dependsOn: [owner-${a}], spec: { name: ${db}, owner: ${o} } }`);
    nodes.push(`    - { id: schema-${a}, type: postgres.schema, dependsOn: [db-${a}], spec: { name: app, database: ${db}, owner: ${o} } }`);
    nodes.push(`    - { id: ext-${a}, type: postgres.extension, dependsOn: [db-${a}], spec: { name: pgcrypto, database: ${db}, schema: public } }`);
    for (let u = 0; u < 3; u++) {
      const user = `${prefix}_user_${a}_${u}`;
      nodes.push(`    - { id: user-${a}-${u}, type: postgres.role, spec: { name: ${user}, login: true, connectionLimit: 5, password: { fromEnv: APP_PASSWORD } } }`);
      nodes.push(`    - { id: usage-${a}-${u}, type: postgres.grant, dependsOn: [schema-${a}, user-${a}-${u}], spec: { role: ${user}, database: ${db}, schema: app, on: schema, privileges: [USAGE] } }`);
      nodes.push(`    - { id: connect-${a}-${u}, type: postgres.grant, dependsOn: [db-${a}, user-${a}-${u}], spec: { role: ${user}, database: ${db}, on: database, privileges: [CONNECT] } }`);
    }
  }
  return `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: pg }
spec:
  type: postgres
  config: { host: 127.0.0.1, port: ${server.port}, user: ${server.user}, password: { fromEnv: PG_PASSWORD }, sslmode: disable, connectTimeout: 2s }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: crash }
spec:
  defaults: { backend: pg }
  nodes:
${nodes.join('\n')}
`;
}

const env = (): NodeJS.ProcessEnv => ({ PG_PASSWORD: server.password, APP_PASSWORD });

beforeAll(async () => {
  server = await startTestPostgres();
}, 120_000);
afterAll(async () => {
  await server?.destroy();
});

/** Starts the CLI, kills it -9 after `ms`; whether it had created anything by then. */
async function killAfter(args: readonly string[], cwd: string, ms: number): Promise<boolean> {
  const child = spawn(process.execPath, [bin, ...args], { cwd, env: cleanEnv({ ...env(), DESIREDSTATE_LOG_LEVEL: 'info' }), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise((r) => setTimeout(r, ms));
  child.kill('SIGKILL');
  await exited;
  return stderr.includes('"node created"');
}

/**
 * The operations invariants: no create begun after one settled (done or adopted), every node settled,
 * nothing pending, every node ready. `failedCreates`: whether a create may have failed (the server went away during it).
 */
function checkOperations(state: string, nodes: number, failedCreates = false): void {
  const db = new Database(join(state, 'state.db'), { readonly: true });
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const ops = db.prepare("SELECT id, node, outcome, detail FROM operations WHERE op = 'create' ORDER BY id").all() as { id: number; node: string; outcome: string | null; detail: string | null }[];
    const settled = new Map<string, number>();
    for (const op of ops) {
      expect(settled.get(op.node), `seed ${seed}: create ${op.id} of ${op.node} begun after one had settled`).toBeUndefined();
      if (!failedCreates) expect(op.outcome, `seed ${seed}: create ${op.id} of ${op.node}: ${op.detail}`).not.toBe('failed');
      if (op.outcome === 'done' || op.outcome === 'adopted') settled.set(op.node, op.id);
    }
    expect(settled.size).toBe(nodes);
    expect(db.prepare('SELECT count(*) AS n FROM operations WHERE finished_at IS NULL').get()).toEqual({ n: 0 });
    expect(db.prepare("SELECT count(*) AS n FROM nodes WHERE status <> 'ready'").get()).toEqual({ n: 0 });
  } finally {
    db.close();
  }
}

describe('postgres: kill -9 of apply and run while creating', () => {
  it('never creates twice nor fails a second create; the last pass converges and plan is empty', async () => {
    const p = tempProject('ds-pg-crash-');
    daemons.removeAfter(p.dir);
    p.write('goals.yaml', goal('kc', 3));
    const nodes = 3 * (4 + 3 * 3);
    let midWork = 0;
    for (let k = 0; k < 10; k++) {
      const args = k % 2 === 0 ? ['apply', '--yes', ...p.args] : ['run', '--listen', '127.0.0.1:0', '--interval', '60s', ...p.args];
      if (await killAfter(args, p.dir, 250 + Math.floor(rng() * 900))) midWork++;
    }
    expect(midWork, `seed ${seed}`).toBeGreaterThan(0);

    const last = await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env: env() });
    expect(last.code, `seed ${seed}: ${last.stdout}${last.stderr}`).toBe(0);
    expect(last.stdout).toMatch(/0 failed, 0 blocked, 0 held/);
    checkOperations(p.state, nodes);
    const plan = await cli(['plan', ...p.args], { cwd: p.dir, env: env() });
    expect(plan.code, plan.stdout).toBe(0);
    expect(plan.stdout).toContain(`${nodes} unchanged`);
    // The passwords are the goal's: a user logs in with it.
    const c = new (await import('pg')).default.Client({ host: '127.0.0.1', port: server.port, user: 'kc_user_2_2', password: APP_PASSWORD, database: 'kc_db_2' });
    await c.connect();
    await c.end();
  }, 120_000);

  it('the server stopped while the daemon creates and started again: it keeps running, names the server, converges without a restart', async () => {
    const p = tempProject('ds-pg-outage-');
    daemons.removeAfter(p.dir);
    p.write('goals.yaml', goal('ko', 3));
    const nodes = 3 * (4 + 3 * 3);
    const policy = join(p.dir, 'faults.yaml');
    (await import('node:fs')).writeFileSync(policy, 'retry:\n  transient: { baseMs: 200, maxMs: 1000 }\ncircuitBreaker: { coolDownMs: 1000 }\n');
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', '--fault-policy', policy, ...p.args], { cwd: p.dir, env: env() });
    const port = await d.port();
    await d.waitFor((l) => l.msg === 'node created', 20_000);
    await server.stop();
    const open = await d.waitFor((l) => l.msg === 'backend circuit open', 20_000);
    expect(JSON.stringify(open.fault)).toContain(`127.0.0.1:${server.port}`);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    await server.start();
    await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 30_000, '/readyz 200');
    await eventually(
      async () => (JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { nodes: { status: string }[] }).nodes.every((n) => n.status === 'ready'),
      30_000,
      'every node ready',
    );
    expect(d.lines.some((l) => l.msg === 'node held')).toBe(false);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    checkOperations(p.state, nodes, true);
    expect((await cli(['plan', ...p.args], { cwd: p.dir, env: env() })).code).toBe(0);
  }, 120_000);
});

describe('postgres: prune with Delete while the server is down', () => {
  it('the daemon retries the failed delete with backoff and deletes once the server is back, without a restart or reload', async () => {
    const p = tempProject('ds-pg-prune-outage-');
    daemons.removeAfter(p.dir);
    const backend = goal('kp', 0).split('---')[0]!;
    const nodes = (ids: readonly string[]): string =>
      `${backend}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: prune }
spec:
  prune: true
  defaults: { backend: pg }
  nodes:
${ids.map((id) => `    - { id: ${id}, type: postgres.role, deletionPolicy: Delete, spec: { name: kp_${id} } }`).join('\n')}
`;
    p.write('goals.yaml', nodes(['keep', 'gone']));
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env: env() })).code).toBe(0);
    p.write('goals.yaml', nodes(['keep']));
    const policy = join(p.dir, 'faults.yaml');
    (await import('node:fs')).writeFileSync(policy, 'retry:\n  transient: { baseMs: 200, maxMs: 1000 }\ncircuitBreaker: { coolDownMs: 1000 }\n');

    await server.stop();
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', '--fault-policy', policy, ...p.args], { cwd: p.dir, env: env() });
    try {
      const failed = await d.waitFor((l) => l.msg === 'delete failed' && l.node === 'gone', 20_000);
      expect(JSON.stringify(failed.fault)).toContain(`127.0.0.1:${server.port}`);
      await d.port();
    } finally {
      await server.start();
    }
    await d.waitFor((l) => l.msg === 'node deleted' && l.node === 'gone', 20_000);
    // Backed off meanwhile: a handful of attempts, not a hot loop.
    expect(d.lines.filter((l) => l.msg === 'delete failed').length).toBeLessThan(20);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(await server.sql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'kp\\_%' ORDER BY 1")).toEqual([{ rolname: 'kp_keep' }]);
    const db = new Database(join(p.state, 'state.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT id FROM nodes').all()).toEqual([{ id: 'keep' }]);
      expect(db.prepare('SELECT count(*) AS n FROM operations WHERE finished_at IS NULL').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  }, 90_000);
});
