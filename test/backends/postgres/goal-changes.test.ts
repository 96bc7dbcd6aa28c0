import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresBackendFactory } from '../../../src/backends/postgres/index.ts';
import type { PostgresBackend } from '../../../src/backends/postgres/index.ts';
import type { BackendNode } from '../../../src/infra/index.ts';
import type { NodeId, Observation, ProvisionResult } from '../../../src/runtime/index.ts';
import { PG_VERSIONS, startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';
import { captureLogger, opContext, pgNode } from './helpers.ts';

// Goals changed the way a user changes them (a list shrinks, an owner moves),
// against a real server of each version the backend treats differently
// (PG_VERSIONS): the next pass must leave nothing behind, and then find the
// node up to date.
describe.each(PG_VERSIONS)('postgres goal changes against a real PostgreSQL %i', (version) => {
  const env: NodeJS.ProcessEnv = {};
  const logs = captureLogger();
  const ctx = opContext(logs.log);
  let server: TestPostgres;
  let backend: PostgresBackend;

  async function observeOne(node: BackendNode): Promise<Observation> {
    return (await backend.observe([node], ctx)).get(node.id)!;
  }

  /** One pass: observe, then create the absent or update the drifted. */
  async function pass(node: BackendNode): Promise<ProvisionResult | Observation> {
    const obs = await observeOne(node);
    if (obs.status === 'absent') return backend.create(node, ctx);
    if (obs.status === 'drifted') return backend.update(node, obs.diffs, ctx);
    return obs;
  }

  async function passAll(nodes: readonly BackendNode[]): Promise<Map<NodeId, string>> {
    const out = new Map<NodeId, string>();
    for (const n of nodes) out.set(n.id, (await pass(n)).status);
    return out;
  }

  beforeAll(async () => {
    server = await startTestPostgres({ version });
    env.PG_ADMIN_PASSWORD = server.password;
    const config = postgresBackendFactory.configSchema.parse({ host: server.host, port: server.port, user: server.user, password: { fromEnv: 'PG_ADMIN_PASSWORD' } });
    backend = postgresBackendFactory.create(config, { id: 'pg', cwd: tmpdir(), stateDir: tmpdir(), log: logs.log, env }) as PostgresBackend;
  });

  afterAll(async () => {
    await backend?.close();
    await server?.destroy();
  });

  // From PostgreSQL 16 a membership is kept once per grantor and each is revoked GRANTED BY it; before, it
  // is kept once, whoever granted it, and a plain REVOKE ends it.
  it('memberOf shrinking revokes the membership, also one another role granted (PostgreSQL 16+ keeps one per grantor)', async () => {
    const member = (memberOf: string[]): BackendNode => pgNode('member', 'postgres.role', { name: 'gc_member', memberOf });
    await passAll([pgNode('g1', 'postgres.role', { name: 'gc_g1' }), pgNode('g2', 'postgres.role', { name: 'gc_g2' }), pgNode('g3', 'postgres.role', { name: 'gc_g3' })]);
    expect((await pass(member(['gc_g1', 'gc_g2', 'gc_g3']))).status).toBe('done');
    // gc_g3 granted a second time by another admin, as one with ADMIN OPTION on it would.
    await server.sql('CREATE ROLE gc_admin CREATEROLE; GRANT gc_g3 TO gc_admin WITH ADMIN OPTION; SET ROLE gc_admin; GRANT gc_g3 TO gc_member');
    // And gc_g2 granted only by another admin.
    await server.sql('REVOKE gc_g2 FROM gc_member; GRANT gc_g2 TO gc_admin WITH ADMIN OPTION; SET ROLE gc_admin; GRANT gc_g2 TO gc_member');
    expect(await observeOne(member(['gc_g1', 'gc_g2', 'gc_g3']))).toMatchObject({ status: 'upToDate' });
    const grants = await server.sql<{ role: string; grantor: string }>(
      `SELECT g.rolname AS role, gr.rolname AS grantor FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles gr ON gr.oid = m.grantor
       WHERE m.member = 'gc_member'::regrole ORDER BY 1, 2`,
    );
    expect(grants).toEqual([
      { role: 'gc_g1', grantor: 'postgres' },
      { role: 'gc_g2', grantor: 'gc_admin' },
      ...(server.version >= 16 ? [{ role: 'gc_g3', grantor: 'gc_admin' }] : []),
      { role: 'gc_g3', grantor: 'postgres' },
    ]);

    // Each role once in the drift, however many grantors it has.
    expect(await observeOne(member(['gc_g1']))).toMatchObject({
      status: 'drifted',
      diffs: [{ path: 'memberOf', desired: ['gc_g1'], actual: ['gc_g1', 'gc_g2', 'gc_g3'] }],
    });
    expect(await pass(member(['gc_g1']))).toMatchObject({ status: 'done' });
    const left = await server.sql<{ role: string }>(
      `SELECT g.rolname AS role FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = 'gc_member'::regrole ORDER BY 1`,
    );
    expect(left.map((r) => r.role)).toEqual(['gc_g1']);
    expect(await observeOne(member(['gc_g1']))).toMatchObject({ status: 'upToDate' });
  });
});
