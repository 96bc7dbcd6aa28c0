import { describe, expect, it } from 'vitest';
import { cli, tempProject } from '../support/cli.ts';
import { trackDaemons } from '../support/daemon.ts';
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
const daemons = trackDaemons();

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


/**
 * Applies a group role `grp` (`PREFIX_grp`, Delete) and a member `m` (`PREFIX_m`), then takes the group
 * out of the goals, the member still naming it. Returns the goal with the member's memberOf as given.
 */
async function groupRemovedUnderMember(grp: string, m: string, prefix: string): Promise<(memberOf: string) => string> {
  const group = `    - { id: ${grp}, type: postgres.role, deletionPolicy: Delete, spec: { name: ${prefix}_grp } }\n`;
  const keep = '    - { id: keep, type: postgres.role, spec: { name: n_keep } }\n';
  const goal = (groups: string, memberOf: string): string => nodes(true, `${keep}${groups}    - { id: ${m}, type: postgres.role, spec: { name: ${prefix}_m, memberOf: [${memberOf}] } }\n`);
  p.write('app.yaml', goal(group, `${prefix}_grp`));
  const made = await cli(['apply', '--yes', ...p.args], { env: env() });
  expect(made.code, made.stdout + made.stderr).toBe(0);
  p.write('app.yaml', goal('', `${prefix}_grp`));
  return (memberOf) => goal('', memberOf);
}

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

  // The owner's edge came from the graph alone: with the owner removed first (its delete put off while
  // the database names it), the revision in between stored the database's edges without it, and removing
  // the database and schema too then dropped the role first (refused by the server), the rest after:
  // exit 1, and one more apply.
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
    expect(refused.stdout).toContain(`⊘ r-own: blocked: not deleted while db (${p.dir}/goals/app.yaml:9:13), which names its resource, is in the goals`);
    const lines = refused.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.msg === 'delete put off: a node that depends on it was not deleted, or one of the goals names it')).toMatchObject({ node: 'r-own', backend: 'pg', waitsFor: 'db' });

    p.write('app.yaml', nodes(true, keep));
    const removed = await cli(['apply', '--yes', '--allow-mass-deletion', ...p.args], { env: env() });
    expect(removed.code, removed.stdout + removed.stderr).toBe(0);
    expect(removed.stdout).toContain('3 deleted');
    expect(await pgServer().sql(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'd\\_%' UNION ALL SELECT datname FROM pg_database WHERE datname = 'd_db'`)).toEqual([{ rolname: 'd_keep' }]);
  }, 60_000);

  // A group role removed while a kept role still lists it in memberOf was dropped (its membership
  // silently gone), apply exited 0, and every apply after failed on the kept role: "role … does not exist".
  it('a removed node whose resource a kept node names is not deleted while it does: plan and apply say which node, and where; deleted once the name is gone', async () => {
    const member = await groupRemovedUnderMember('grp', 'm', 'n');
    const why = `not deleted while m (${p.dir}/goals/app.yaml:9:13), which names its resource, is in the goals: take the name out of m, or remove m too`;
    const plan = await cli(['plan', ...p.args], { env: env() });
    expect(plan.stdout).toContain(`⊘ grp (postgres.role via pg) blocked: ${why}`);
    const kept = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(kept.code).toBe(1);
    expect(kept.stdout).toContain(`⊘ grp: blocked: ${why}`);
    expect(await pgServer().sql(`SELECT pg_has_role('n_m', 'n_grp', 'MEMBER') AS member`)).toEqual([{ member: true }]);
    const again = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(again.stdout).not.toContain('x m');
    const status = await cli(['status', '--format', 'json', ...p.args], { env: env() });
    expect((JSON.parse(status.stdout) as { nodes: { id: string; reason: string | null }[] }).nodes.find((n) => n.id === 'grp')?.reason).toBe(why);

    // The name taken out: the group goes, after the membership, in one apply.
    p.write('app.yaml', member(''));
    const removed = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(removed.code, removed.stdout + removed.stderr).toBe(0);
    expect(removed.stdout).toContain('1 deleted');
    expect(await pgServer().sql(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'n\\_%' ORDER BY 1`)).toEqual([{ rolname: 'n_keep' }, { rolname: 'n_m' }]);
  }, 60_000);

  it('the daemon does not delete it either while a kept node names it, and deletes it at the goal load where none does', async () => {
    const member = await groupRemovedUnderMember('dgrp', 'dm', 'dn');
    const d = daemons.start(['--listen', '127.0.0.1:0', '--interval', '60s', ...p.args], { cwd: p.dir, env: env() });
    const putOff = await d.waitFor((l) => l.msg === 'delete put off: a node of the goals names it', 30_000);
    expect(putOff).toMatchObject({ node: 'dgrp', backend: 'pg', namedBy: 'dm' });
    await d.waitFor((l) => l.msg === 'goals loaded', 30_000);
    expect(await pgServer().sql(`SELECT pg_has_role('dn_m', 'dn_grp', 'MEMBER') AS member`)).toEqual([{ member: true }]);

    const mark = d.lines.length;
    p.write('app.yaml', member(''));
    await d.waitFor((l) => l.msg === 'node deleted' && l.node === 'dgrp', 30_000, mark);
    expect(await pgServer().sql(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'dn\\_%' ORDER BY 1`)).toEqual([{ rolname: 'dn_m' }]);
    d.kill('SIGTERM');
    expect(await d.exitedWithin(40_000)).toEqual({ code: 0, signal: null });
  }, 90_000);
});
