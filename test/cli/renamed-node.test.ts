import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tempProject } from '../support/cli.ts';
import { trackDaemons } from '../support/daemon.ts';
import { startTestPostgres } from '../support/postgres.ts';
import type { TestPostgres } from '../support/postgres.ts';

/*
 * A node renamed in the goals (its id changed, its resource the same) under
 * prune with deletionPolicy Delete. The old id has left the goals, but its
 * resource has not: the new id adopts it. Deleting the old id's resource
 * would drop what the goals still declare (here a schema, with force: true,
 * and the table in it). Nothing is deleted without an explicit goal: the old
 * id is let go (orphaned, the resource left to the new id).
 */
let server: TestPostgres;
const daemons = trackDaemons();

beforeAll(async () => {
  server = await startTestPostgres();
}, 120_000);
afterAll(async () => {
  await server?.destroy();
});

function goals(p: ReturnType<typeof tempProject>, prefix: string, schemaId: string, roleId: string): void {
  p.write(
    'goals.yaml',
    `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: pg }
spec:
  type: postgres
  config: { host: 127.0.0.1, port: ${server.port}, user: ${server.user}, password: { fromEnv: PG_PASSWORD }, sslmode: disable }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  prune: true
  defaults: { backend: pg }
  nodes:
    - { id: ${roleId}, type: postgres.role, deletionPolicy: Delete, spec: { name: ${prefix}_reader } }
    - { id: ${schemaId}, type: postgres.schema, deletionPolicy: Delete, spec: { name: ${prefix}_data, database: postgres, force: true } }
    - { id: keep, type: postgres.role, deletionPolicy: Delete, spec: { name: ${prefix}_keep } }
`,
  );
}

const env = (): NodeJS.ProcessEnv => ({ PG_PASSWORD: server.password });

describe('a node renamed under prune + Delete', () => {
  it('apply: plan shows no delete, the schema and its table and the role survive; the old ids are let go', async () => {
    const p = tempProject('ds-rename-apply-');
    daemons.removeAfter(p.dir);
    goals(p, 'rn', 'data', 'reader');
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env: env() })).code).toBe(0);
    await server.sql('CREATE TABLE rn_data.orders (id int PRIMARY KEY)');
    await server.sql('INSERT INTO rn_data.orders VALUES (1), (2)');

    goals(p, 'rn', 'app-data', 'app-reader');
    const plan = await cli(['plan', ...p.args], { cwd: p.dir, env: env() });
    expect(plan.stdout).not.toMatch(/^ {2}- /m);
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env: env() });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/0 deleted/);
    expect(await server.sql('SELECT count(*)::int AS n FROM rn_data.orders')).toEqual([{ n: 2 }]);
    expect(await server.sql("SELECT rolname FROM pg_roles WHERE rolname IN ('rn_reader', 'rn_keep') ORDER BY 1")).toEqual([{ rolname: 'rn_keep' }, { rolname: 'rn_reader' }]);
    const status = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
    expect((JSON.parse(status.stdout) as { nodes: { id: string }[] }).nodes.map((n) => n.id).sort()).toEqual(['app-data', 'app-reader', 'keep']);

    // A node really goaled away is still deleted.
    p.write('goals.yaml', (await import('node:fs')).readFileSync(`${p.goals}/goals.yaml`, 'utf8').replace(/ {4}- \{ id: keep,.*\n/, ''));
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env: env() })).code).toBe(0);
    expect(await server.sql("SELECT rolname FROM pg_roles WHERE rolname = 'rn_keep'")).toEqual([]);
    expect((await cli(['plan', ...p.args], { cwd: p.dir, env: env() })).code).toBe(0);
  }, 60_000);

  it('the daemon: a reload with the renamed ids drops nothing', async () => {
    const p = tempProject('ds-rename-run-');
    daemons.removeAfter(p.dir);
    goals(p, 'rd', 'data', 'reader');
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env: env() })).code).toBe(0);
    await server.sql('CREATE TABLE rd_data.orders (id int PRIMARY KEY)');
    goals(p, 'rd', 'app-data', 'app-reader');
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', ...p.args], { cwd: p.dir, env: env() });
    await d.port();
    await d.waitFor((l) => l.msg === 'node orphaned: removed from the goals, resource left untouched' && l.node === 'data', 15_000);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(d.lines.some((l) => l.msg === 'node deleted')).toBe(false);
    expect(await server.sql("SELECT to_regclass('rd_data.orders') IS NOT NULL AS t")).toEqual([{ t: true }]);
    expect(await server.sql("SELECT rolname FROM pg_roles WHERE rolname = 'rd_reader'")).toEqual([{ rolname: 'rd_reader' }]);
  }, 60_000);
});
