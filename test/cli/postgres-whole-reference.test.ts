import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, goalHead, shellResource, tempProject } from '../support/cli.ts';
import { postgresForProject } from '../support/postgres.ts';

/*
 * A typed list field takes a whole reference to a list output: a role's memberOf from the names an
 * exec node prints. `validate` refused it ("expected a list, got the string …"), though an exec
 * command's outputs may be any JSON and a generic.resource input key took the same list. Now the
 * list goes in whole, is checked against the field's type once the output is known, and a list the
 * type refuses fails the node that references it, before PostgreSQL is asked anything.
 */
const p = tempProject('ds-pg-whole-ref-');
const pgServer = postgresForProject(p);
const env = (): NodeJS.ProcessEnv => ({ PG_ADMIN_PW: pgServer().password, DESIREDSTATE_LOG_LEVEL: 'silent' });

// `groups` prints what `outputs.json` holds, at create and at every read.
const script = shellResource(
  p.dir,
  `cat > /dev/null
case "$1" in
  read) if [ -f "$dir/made" ]; then printf '{"exists":true,"state":{},"outputs":%s}\\n' "$(cat "$dir/outputs.json")"; else echo '{"exists":false}'; fi ;;
  create) touch "$dir/made"; printf '{"outputs":%s}\\n' "$(cat "$dir/outputs.json")" ;;
esac
`,
);
const outputs = (names: readonly string[]): void => writeFileSync(join(p.dir, 'outputs.json'), JSON.stringify({ names, ids: [1, 2] }));

const goal = (extra = ''): string => `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: exec }
spec: { type: exec }
---
${goalHead('  defaults: { backend: pg }\n')}    - id: groups
      type: generic.resource
      backend: exec
      spec: { commands: { read: [${script}, read], create: [${script}, create] } }
    - { id: readers, type: postgres.role, spec: { name: wr_readers } }
    - { id: writers, type: postgres.role, spec: { name: wr_writers } }
    - id: member
      type: postgres.role
      dependsOn: [readers, writers]
      spec: { name: wr_member, memberOf: "\${nodes.groups.outputs.names}" }
${extra}`;

async function memberships(role: string): Promise<string[]> {
  const rows = await pgServer().sql<{ group: string }>(
    `SELECT g.rolname AS group FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1 ORDER BY 1`,
    [role],
  );
  return rows.map((r) => r.group);
}


describe('a role whose memberOf is one reference to a list output', () => {
  it('validates; apply grants the memberships the output names, a second apply does nothing, and a changed output revokes', async () => {
    outputs(['wr_readers', 'wr_writers']);
    p.write('app.yaml', goal());
    const valid = await cli(['validate', ...p.args], { env: env() });
    expect(valid.code, valid.stdout + valid.stderr).toBe(0);

    const first = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toContain('4 created');
    expect(await memberships('wr_member')).toEqual(['wr_readers', 'wr_writers']);

    const second = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).toContain('0 created, 0 updated, 0 deleted, 4 unchanged');

    // memberOf is exact: a group the output no longer names is revoked.
    outputs(['wr_readers']);
    const third = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(third.code, third.stdout + third.stderr).toBe(0);
    expect(third.stdout).toContain('1 updated');
    expect(await memberships('wr_member')).toEqual(['wr_readers']);
  }, 60_000);

  it('a list of numbers fails that node, permanently, naming it, the field and the reference; the role is never created', async () => {
    p.write('app.yaml', goal('    - { id: bad, type: postgres.role, spec: { name: wr_bad, memberOf: "${nodes.groups.outputs.ids}" } }\n'));
    // Only the output can tell: validate takes it.
    expect((await cli(['validate', ...p.args], { env: env() })).code).toBe(0);
    const apply = await cli(['apply', '--yes', ...p.args], { env: env() });
    expect(apply.code, apply.stdout + apply.stderr).toBe(1);
    const status = await cli(['status', '--format', 'json', ...p.args], { env: env() });
    const nodes = (JSON.parse(status.stdout) as { nodes: { id: string; status: string; lastFault: { class: string; message: string } | null }[] }).nodes;
    expect(nodes.find((n) => n.id === 'bad')?.lastFault).toMatchObject({
      class: 'permanent',
      message: 'node "bad": spec.memberOf[0]: expected a string, got the number 1 (from ${nodes.groups.outputs.ids}); spec.memberOf[1]: expected a string, got the number 2 (from ${nodes.groups.outputs.ids})',
    });
    expect(await pgServer().sql(`SELECT rolname FROM pg_roles WHERE rolname = 'wr_bad'`)).toEqual([]);
    // The others are as they were.
    expect(nodes.filter((n) => n.id !== 'bad').map((n) => n.status)).toEqual(['ready', 'ready', 'ready', 'ready']);
  }, 60_000);

  it('validate still refuses text around the reference, and a literal that is no list, each at its file:line:col', async () => {
    p.write(
      'app.yaml',
      goal(`    - { id: around, type: postgres.role, spec: { name: wr_a, memberOf: "x\${nodes.groups.outputs.names}" } }
    - { id: literal, type: postgres.role, spec: { name: wr_l, memberOf: 5 } }
`),
    );
    const r = await cli(['validate', ...p.args], { env: env() });
    expect(r.code).toBe(1);
    const file = join(p.goals, 'app.yaml');
    expect(r.stderr + r.stdout).toContain(`${file}:22:72: error invalid-type: spec.memberOf: expected a list, got the string "x\${nodes.groups.outputs.names}"`);
    expect(r.stderr + r.stdout).toContain(`${file}:23:73: error invalid-type: spec.memberOf: expected a list, got the number 5`);
  });
});
