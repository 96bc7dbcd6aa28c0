import { describe, expect, it } from 'vitest';
import { cli, tempProject } from '../support/cli.ts';
import { postgresForProject } from '../support/postgres.ts';

/*
 * Nodes of one server that name each other (a database's owner, a role's groups, a grant's role,
 * database and schema) with no dependsOn: the first apply failed on every node made before what it
 * names ("database i_db does not exist … declare it in dependsOn"), and converged only on the third.
 * The names imply the order, as Terraform's references do.
 */
const p = tempProject('ds-pg-implied-');
const pgServer = postgresForProject(p);
const env = (): NodeJS.ProcessEnv => ({ PG_ADMIN_PW: pgServer().password });

// Declared in the worst order: every node before what it names.
const nodes = (prune: boolean, list: string): string => `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: implied }
spec:
  defaults: { backend: pg }
${prune ? '  prune: true\n' : ''}  nodes:
${list}`;
const all = `    - { id: grant, type: postgres.grant, deletionPolicy: Delete, spec: { role: i_member, database: i_db, schema: i_schema, on: schema, privileges: [USAGE] } }
    - { id: schema, type: postgres.schema, deletionPolicy: Delete, spec: { name: i_schema, database: i_db, owner: i_owner } }
    - { id: db, type: postgres.database, deletionPolicy: Delete, spec: { name: i_db, owner: i_owner } }
    - { id: member, type: postgres.role, deletionPolicy: Delete, spec: { name: i_member, memberOf: [i_owner] } }
    - { id: owner, type: postgres.role, deletionPolicy: Delete, spec: { name: i_owner } }
`;


describe('postgres nodes that name each other', () => {
  it('are ordered by those names: one apply converges, graph draws the edges, and removed they are deleted dependents first', async () => {
    p.write('app.yaml', nodes(false, all));
    const graph = await cli(['graph', ...p.args], { env: env() });
    for (const edge of ['"owner" -> "db" [style=dashed]', '"owner" -> "member" [style=dashed]', '"db" -> "schema" [style=dashed]', '"schema" -> "grant" [style=dashed]', '"member" -> "grant" [style=dashed]']) {
      expect(graph.stdout).toContain(edge);
    }
    const apply = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('5 created');
    expect((await cli(['plan', ...p.args], { env: env() })).code).toBe(0);
    expect(await pgServer().sql(`SELECT has_schema_privilege('i_member', 'i_schema', 'USAGE') AS usage`, [], 'i_db')).toEqual([{ usage: true }]);

    // Removed, all five: each deleted after what names it, in one pass.
    p.write('app.yaml', nodes(true, '    - { id: keep, type: postgres.role, spec: { name: i_keep } }\n'));
    const removed = await cli(['apply', '--yes', '--allow-mass-deletion', ...p.args], { env: env() });
    expect(removed.code, removed.stdout + removed.stderr).toBe(0);
    expect(removed.stdout).toContain('5 deleted');
    expect(await pgServer().sql(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'i\\_%' ORDER BY 1`)).toEqual([{ rolname: 'i_keep' }]);
  }, 60_000);

  // The owner's edge came from the graph alone: with the owner removed first (its delete refused while
  // it owns the database), the revision in between stored the database's edges without it, and removing
  // the database and schema too then dropped the role first (refused again), the rest after: exit 1,
  // and one more apply.
  it('removed after a refused delete of what they name, they are still deleted dependents first, in one pass', async () => {
    const keep = '    - { id: keep, type: postgres.role, spec: { name: d_keep } }\n';
    const owner = '    - { id: r-own, type: postgres.role, deletionPolicy: Delete, spec: { name: d_owner } }\n';
    const db = `    - { id: db, type: postgres.database, deletionPolicy: Delete, spec: { name: d_db, owner: d_owner } }
    - { id: sch, type: postgres.schema, deletionPolicy: Delete, spec: { name: s1, database: d_db, owner: d_owner } }
`;
    p.write('app.yaml', nodes(true, keep + owner + db));
    const made = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(made.code, made.stdout + made.stderr).toBe(0);

    p.write('app.yaml', nodes(true, keep + db));
    const refused = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/x r-own: permanent: role "d_owner" cannot be dropped/);
    // Each line about the node names its backend: the runtime's, and the postgres backend's own.
    const lines = refused.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const msg of ['operation failed', 'delete failed']) expect(lines.find((l) => l.msg === msg), msg).toMatchObject({ node: 'r-own', backend: 'pg' });

    p.write('app.yaml', nodes(true, keep));
    const removed = await cli(['apply', '--yes', '--allow-mass-deletion', ...p.args], { env: env() });
    expect(removed.code, removed.stdout + removed.stderr).toBe(0);
    expect(removed.stdout).toContain('3 deleted');
    expect(await pgServer().sql(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'd\\_%' UNION ALL SELECT datname FROM pg_database WHERE datname = 'd_db'`)).toEqual([{ rolname: 'd_keep' }]);
  }, 60_000);
});
