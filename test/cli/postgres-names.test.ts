import { describe, expect, it } from 'vitest';
import { cli, tempProject } from '../support/cli.ts';
import { postgresForProject } from '../support/postgres.ts';

/*
 * Goals that validated and then failed, or never settled, on every pass against a real server:
 * two grants of one role's default privileges, one of them naming in `forRole` the user the backend
 * connects as (what the other, without forRole, sets too), each revoking the other's privileges at
 * every apply; and names PostgreSQL refuses whoever asks ('role name "pg_app" is reserved',
 * 'unacceptable schema name "pg_app"'). validate refuses both, naming where, and changes nothing.
 */
const p = tempProject('ds-pg-names-');
const pgServer = postgresForProject(p);
const env = (): NodeJS.ProcessEnv => ({ PG_ADMIN_PW: pgServer().password });
const goal = (nodes: string): string => `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: names }
spec:
  defaults: { backend: pg }
  nodes:
${nodes}`;

/** The error lines a command printed. */
const errors = (r: { stdout: string; stderr: string }): string[] => `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes(': error '));

/** The default privileges on tables `grantee` holds, per role whose new tables get them, from the catalog. */
async function defaultTablePrivileges(grantee: string): Promise<Record<string, string[]>> {
  const rows = await pgServer().sql<{ creator: string; privileges: string[] }>(
    `SELECT pg_get_userbyid(d.defaclrole) AS creator, array_agg(a.privilege_type ORDER BY a.privilege_type) AS privileges
     FROM pg_default_acl d CROSS JOIN LATERAL aclexplode(d.defaclacl) a
     WHERE d.defaclobjtype = 'r' AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1) GROUP BY 1 ORDER BY 1`,
    [grantee],
  );
  return Object.fromEntries(rows.map((r) => [r.creator, r.privileges]));
}

describe('postgres goals PostgreSQL never settles', () => {
  it('default privileges without forRole and with forRole naming the backend user: refused by validate and apply, naming both; nothing is made', async () => {
    const user = pgServer().user;
    p.write(
      'app.yaml',
      goal(`    - { id: reader, type: postgres.role, spec: { name: n_reader } }
    - { id: def-a, type: postgres.grant, spec: { role: n_reader, database: postgres, schema: public, on: defaultTables, privileges: [SELECT] } }
    - { id: def-b, type: postgres.grant, spec: { role: n_reader, database: postgres, schema: public, on: defaultTables, forRole: ${user}, privileges: [INSERT] } }
`),
    );
    const file = `${p.goals}/app.yaml`;
    const line = `${file}:9:56: error duplicate-resource: node "def-b" manages grant on defaultTables in schema public of database postgres to role n_reader, as node "def-a" does (${file}:8:56); one of them must go`;
    const validate = await cli(['validate', ...p.args]);
    expect(validate.code).toBe(1);
    expect(errors(validate)).toEqual([line]);
    const apply = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(apply.code).toBe(1);
    expect(errors(apply)).toEqual([line]);
    expect(await pgServer().sql(`SELECT rolname FROM pg_roles WHERE rolname = 'n_reader'`)).toEqual([]);
  }, 60_000);

  it("the backend user's default privileges and another role's, to one grantee: two resources, both made, and plan settles", async () => {
    p.write(
      'app.yaml',
      goal(`    - { id: reader, type: postgres.role, spec: { name: l_reader } }
    - { id: owner, type: postgres.role, spec: { name: l_owner } }
    - { id: def-a, type: postgres.grant, spec: { role: l_reader, database: postgres, schema: public, on: defaultTables, privileges: [SELECT] } }
    - { id: def-b, type: postgres.grant, spec: { role: l_reader, database: postgres, schema: public, on: defaultTables, forRole: l_owner, privileges: [INSERT] } }
`),
    );
    expect((await cli(['validate', ...p.args])).code).toBe(0);
    const apply = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(await defaultTablePrivileges('l_reader')).toEqual({ [pgServer().user]: ['SELECT'], l_owner: ['INSERT'] });
    // Neither undoes the other: the next pass finds nothing to do.
    const plan = await cli(['plan', ...p.args], { env: env() });
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    expect((await cli(['apply', '--yes', ...p.args], { env: env() })).stdout).toContain('0 created, 0 updated');
    expect(await defaultTablePrivileges('l_reader')).toEqual({ [pgServer().user]: ['SELECT'], l_owner: ['INSERT'] });
  }, 60_000);

  it('a role or schema named as PostgreSQL reserves: refused by validate at each name, saying why; nothing is made', async () => {
    p.write(
      'app.yaml',
      goal(`    - { id: app, type: postgres.role, spec: { name: pg_app } }
    - { id: nobody, type: postgres.role, spec: { name: none } }
    - { id: sch, type: postgres.schema, spec: { name: pg_app, database: postgres } }
    - { id: grp, type: postgres.role, spec: { name: r_member, memberOf: [none] } }
`),
    );
    const file = `${p.goals}/app.yaml`;
    const validate = await cli(['validate', ...p.args]);
    expect(validate.code).toBe(1);
    expect(errors(validate)).toEqual([
      `${file}:7:53: error invalid-value: spec.name: role names beginning with "pg_" are reserved for PostgreSQL's own roles (pg_monitor, pg_read_all_data …): it creates none, and alters none of its own; grant one through memberOf`,
      `${file}:8:56: error invalid-value: spec.name: "none" is reserved: PostgreSQL refuses it wherever a role is named`,
      `${file}:9:55: error invalid-value: spec.name: schema names beginning with "pg_" are reserved for PostgreSQL's own schemas (pg_catalog, pg_toast …): it creates none`,
      `${file}:10:74: error invalid-value: spec.memberOf[0]: "none" is reserved: PostgreSQL refuses it wherever a role is named, so no role has that name`,
    ]);
    expect((await cli(['apply', '--yes', ...p.args], { env: env() })).code).toBe(1);
    expect(await pgServer().sql(`SELECT rolname FROM pg_roles WHERE rolname IN ('pg_app', 'r_member')`)).toEqual([]);
    expect(await pgServer().sql(`SELECT nspname FROM pg_namespace WHERE nspname = 'pg_app'`)).toEqual([]);
  }, 60_000);

  it("one of PostgreSQL's own roles named as a group (memberOf), a grantee and a database owner: made, and plan settles", async () => {
    p.write(
      'app.yaml',
      goal(`    - { id: reporting, type: postgres.role, spec: { name: r_reporting, login: true, memberOf: [pg_read_all_data, pg_monitor] } }
    - { id: db, type: postgres.database, spec: { name: r_db, owner: pg_database_owner } }
    - { id: connect, type: postgres.grant, spec: { role: pg_read_all_data, database: r_db, on: database, privileges: [CONNECT] } }
`),
    );
    const apply = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(
      await pgServer().sql(
        `SELECT pg_has_role('r_reporting', 'pg_read_all_data', 'MEMBER') AS reads, pg_has_role('r_reporting', 'pg_monitor', 'MEMBER') AS monitors,
          (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'r_db') AS owner, has_database_privilege('pg_read_all_data', 'r_db', 'CONNECT') AS connect`,
      ),
    ).toEqual([{ reads: true, monitors: true, owner: 'pg_database_owner', connect: true }]);
    const plan = await cli(['plan', ...p.args], { env: env() });
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
  }, 60_000);
});
