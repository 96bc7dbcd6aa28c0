import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { startTestPostgres } from '../support/postgres.ts';
import type { TestPostgres } from '../support/postgres.ts';

/*
 * The daemon against a server that is up but refuses it: a wrong password
 * (read from a file, so it can be fixed while the daemon runs), and a
 * maintenance database that does not exist. The daemon keeps running,
 * names the server in its logs, never hot-loops, and recovers without a
 * restart: by `retry` for the auth fault it holds, by itself once the
 * database exists.
 */
let server: TestPostgres;
const daemons = trackDaemons();
const faults = (p: ReturnType<typeof tempProject>): string => {
  const file = join(p.dir, 'faults.yaml');
  // A short cool-down so that a recovery shows within the test; a circuit that opens at the first node
  // failing (the goal's other node waits for it: one node alone would never open the default's).
  writeFileSync(file, 'retry:\n  transient: { baseMs: 200, maxMs: 1000 }\n  auth: { baseMs: 100, maxMs: 500 }\ncircuitBreaker: { coolDownMs: 1000, failureThreshold: 1 }\n');
  return file;
};

function goals(p: ReturnType<typeof tempProject>, config: string, prefix: string): void {
  p.write(
    'goals.yaml',
    `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: pg }
spec:
  type: postgres
  config: { host: 127.0.0.1, port: ${server.port}, user: ${server.user}, sslmode: disable, connectTimeout: 2s, ${config} }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: pg }
  nodes:
    - id: owner
      type: postgres.role
      spec: { name: ${prefix}_owner }
    - id: db
      type: postgres.database
      dependsOn: [owner]
      spec: { name: ${prefix}_db, owner: ${prefix}_owner }
`,
  );
}

beforeAll(async () => {
  server = await startTestPostgres();
}, 120_000);
afterAll(async () => {
  await server?.destroy();
});

const exists = async (sql: string, name: string): Promise<boolean> => (await server.sql(sql, [name])).length === 1;

describe('a server that is up but refuses the daemon', () => {
  it('a wrong password: the node is held after a few auth faults naming the server; fixed and retried, it converges', async () => {
    const p = tempProject('ds-pg-refused-auth-');
    daemons.removeAfter(p.dir);
    const pwFile = join(p.dir, 'pgpassword');
    writeFileSync(pwFile, 'wrong-password\n');
    goals(p, `password: { fromFile: ${JSON.stringify(pwFile)} }`, 'ra');
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', '--fault-policy', faults(p), ...p.args], { cwd: p.dir });
    await d.port();
    const held = await d.waitFor((l) => l.msg === 'node held' && l.node === 'owner', 15_000);
    expect(held.fault).toMatchObject({ class: 'auth', code: '28P01', message: `the PostgreSQL server at 127.0.0.1:${server.port}: password authentication failed for user "postgres"` });
    // Held, not retried for ever: nothing more is tried for it while it is held.
    await new Promise((r) => setTimeout(r, 1500));
    const tries = d.lines.filter((l) => (l.msg === 'observe failed' || l.msg === 'node held') && l.node === 'owner').length;
    expect(tries).toBe(3);
    expect(d.child.exitCode).toBeNull();
    const status = await cli(['status', ...p.args], { cwd: p.dir });
    expect(status.stdout).toMatch(/owner .* held .*127\.0\.0\.1:\d+: password authentication failed .*authentication failed 3 times/);
    expect(d.stderr.includes('wrong-password')).toBe(false);

    writeFileSync(pwFile, `${server.password}\n`);
    expect((await cli(['retry', 'owner', ...p.args], { cwd: p.dir })).code).toBe(0);
    await eventually(async () => (await exists('SELECT 1 FROM pg_database WHERE datname = $1', 'ra_db')), 20_000, 'ra_db created');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(0);
  }, 60_000);

  it('a maintenance database that does not exist: retried with backoff (no hot loop), named with the server; recovers by itself once created', async () => {
    const p = tempProject('ds-pg-refused-db-');
    daemons.removeAfter(p.dir);
    const pwFile = join(p.dir, 'pgpassword');
    writeFileSync(pwFile, `${server.password}\n`);
    goals(p, `database: rd_maint, password: { fromFile: ${JSON.stringify(pwFile)} }`, 'rd');
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', '--fault-policy', faults(p), ...p.args], { cwd: p.dir });
    await d.port();
    const first = await d.waitFor((l) => l.msg === 'observe failed' && l.node === 'owner', 15_000);
    expect(first.fault).toMatchObject({ class: 'transient', code: '3D000', message: `the PostgreSQL server at 127.0.0.1:${server.port}: database "rd_maint" does not exist` });
    expect(String((first.fault as { hint: string }).hint)).toContain('config.database');
    await d.waitFor((l) => l.msg === 'backend circuit open' && l.backend === 'pg', 15_000);
    // `status` shows the open circuit, what opened it and when its nodes are tried again.
    await eventually(async () => /^backend pg: circuit open since \S+, its nodes wait; its probe (is due at \S+|is under way); opened by transient: .*database "rd_maint" does not exist/m.test((await cli(['status', ...p.args], { cwd: p.dir })).stdout), 5_000, 'status shows the open circuit');
    const shown = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { circuits: unknown[] };
    expect(shown.circuits).toEqual([expect.objectContaining({ backend: 'pg', state: 'open', fault: expect.objectContaining({ class: 'transient' }) })]);
    await new Promise((r) => setTimeout(r, 2000));
    // Backing off: a handful of attempts in ~2 s, not hundreds.
    expect(d.lines.filter((l) => l.msg === 'observe failed' && l.node === 'owner').length).toBeLessThan(15);
    expect(d.lines.some((l) => l.msg === 'node held')).toBe(false);

    await server.sql('CREATE DATABASE rd_maint');
    await eventually(async () => (await exists('SELECT 1 FROM pg_database WHERE datname = $1', 'rd_db')), 20_000, 'rd_db created');
    await d.waitFor((l) => l.msg === 'backend circuit closed' && l.backend === 'pg', 5_000);
    await eventually(async () => !(await cli(['status', ...p.args], { cwd: p.dir })).stdout.includes('circuit open'), 5_000, 'status no longer shows the circuit');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  }, 60_000);
});
