import { tmpdir } from 'node:os';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseScramVerifier, PgClient, postgresBackendFactory, scramVerifier, verifyPassword } from '../../../src/backends/postgres/index.ts';
import type { PostgresBackend } from '../../../src/backends/postgres/index.ts';
import type { BackendNode, InfraBackend } from '../../../src/infra/index.ts';
import type { NodeId, Observation, ObservationMemo, Outputs, ProvisionResult } from '../../../src/runtime/index.ts';
import { PG_VERSIONS, startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';
import { captureLogger, opContext, pgNode } from './helpers.ts';

// Every test runs against each PostgreSQL version the backend treats differently (PG_VERSIONS): one
// real server per version, for the whole of its block.
describe.each(PG_VERSIONS)('postgres backend against a real PostgreSQL %i', (version) => {
  // Secrets live in this env object, which the backend reads through its context, so a test can
  // "rotate" one.
  const APP_PASSWORD = `s3cr'et\\pa"ss; --DROP-${Date.now()}`;
  const env: NodeJS.ProcessEnv = { APP_PASSWORD };
  const serverLog: string[] = [];
  const logs = captureLogger();
  let server: TestPostgres;
  let backend: PostgresBackend;
  const outputs = new Map<NodeId, Outputs>();
  const memos = new Map<NodeId, ObservationMemo>();
  const ctx = opContext(logs.log, outputs, undefined, memos);

  function makeBackend(config: Record<string, unknown>, id = 'pg'): PostgresBackend {
    const parsed = postgresBackendFactory.configSchema.parse(config);
    return postgresBackendFactory.create(parsed, { id, cwd: tmpdir(), stateDir: tmpdir(), log: logs.log, env }) as PostgresBackend;
  }

  async function observeOne(node: BackendNode, b: InfraBackend = backend): Promise<Observation> {
    return (await b.observe([node], ctx)).get(node.id)!;
  }

  function done(result: ProvisionResult): Outputs {
    if (result.status !== 'done') throw new Error(`expected done, got ${JSON.stringify(result)}`);
    return result.outputs;
  }

  /** One reconcile pass as the reconciler does it: observe all, create the absent, update the drifted; outputs and memos recorded (an operation's memo replaces the observation's; none clears it). */
  async function converge(nodes: readonly BackendNode[], b: InfraBackend = backend): Promise<Map<NodeId, ProvisionResult | Observation>> {
    const out = new Map<NodeId, ProvisionResult | Observation>();
    for (const n of nodes) {
      // Dependencies first: the nodes are given in dependency order.
      const obs = await observeOne(n, b);
      let r: ProvisionResult | Observation = obs;
      if (obs.status === 'absent') r = await b.create(n, ctx);
      else if (obs.status === 'drifted') r = await b.update(n, obs.diffs, ctx);
      if ((r.status === 'done' || r.status === 'upToDate' || r.status === 'drifted') && 'outputs' in r) outputs.set(n.id, r.outputs);
      if (r.status === 'done' || r.status === 'upToDate' || r.status === 'drifted') {
        if (r.memo === undefined) memos.delete(n.id);
        else memos.set(n.id, r.memo);
      }
      out.set(n.id, r);
    }
    return out;
  }

  async function roleNames(): Promise<string[]> {
    return (await server.sql<{ rolname: string }>('SELECT rolname FROM pg_roles ORDER BY 1')).map((r) => r.rolname);
  }

  beforeAll(async () => {
    server = await startTestPostgres({ version, log: (l) => serverLog.push(l) });
    env.PG_ADMIN_PASSWORD = server.password;
    backend = makeBackend({ host: server.host, port: server.port, user: server.user, password: { fromEnv: 'PG_ADMIN_PASSWORD' }, connectTimeout: '2s' });
  });

  afterAll(async () => {
    await backend?.close();
    await server?.destroy();
  });

  const owner = pgNode('app-owner', 'postgres.role', { name: 'app_owner', login: true, connectionLimit: 10, password: { fromEnv: 'APP_PASSWORD' } });
  const readonly = pgNode('app-ro', 'postgres.role', { name: 'app_ro', memberOf: [] });
  const reader = pgNode('app-reader', 'postgres.role', { name: 'app_reader', login: true, memberOf: ['app_ro'], validUntil: '2099-01-01' });
  const db = pgNode('app-db', 'postgres.database', { name: 'app', owner: 'app_owner', connectionLimit: 20 });
  const schema = pgNode('app-schema', 'postgres.schema', { name: 'app', database: 'app', owner: 'app_owner' });
  const connect = pgNode('grant-connect', 'postgres.grant', { role: 'app_ro', database: 'app', on: 'database', privileges: ['CONNECT', 'temp'] });
  const usage = pgNode('grant-usage', 'postgres.grant', { role: 'app_ro', database: 'app', schema: 'app', on: 'schema', privileges: ['USAGE'] });
  const tables = pgNode('grant-tables', 'postgres.grant', { role: 'app_ro', database: 'app', schema: 'app', on: 'tables', privileges: ['SELECT'] });
  const seqs = pgNode('grant-seqs', 'postgres.grant', { role: 'app_ro', database: 'app', schema: 'app', on: 'sequences', privileges: ['ALL'] });
  const defaults = pgNode('grant-default', 'postgres.grant', {
    role: 'app_ro', database: 'app', schema: 'app', on: 'defaultTables', privileges: ['select'], forRole: 'app_owner',
  });
  const ext = pgNode('ext-citext', 'postgres.extension', { name: 'citext', database: 'app', schema: 'app' });
  const all = [owner, readonly, reader, db, schema, connect, usage, tables, seqs, defaults, ext];

  it('creates every kind, then observes all of them up to date', async () => {
    const first = await converge(all);
    // All tables / sequences of an empty schema: nothing to grant on yet, so nothing differs.
    for (const [id, r] of first) expect(r.status, id).toBe(id === 'grant-tables' || id === 'grant-seqs' ? 'upToDate' : 'done');
    // Tables created after the grant (by the owner) for the tables / sequences / default grants.
    await server.sql('SET ROLE app_owner; CREATE TABLE app.t1 (id serial primary key); CREATE TABLE app.t2 (x int)', [], 'app');
    const second = await converge(all);
    // The explicit tables / sequences grants now have objects to cover and are repaired once.
    expect([...second.values()].every((r) => r.status === 'upToDate' || r.status === 'done')).toBe(true);
    const steady = await backend.observe(all, ctx);
    for (const n of all) expect(steady.get(n.id)?.status, n.id).toBe('upToDate');
    expect(outputs.get('app-owner')).toMatchObject({ name: 'app_owner', oid: expect.any(Number) });
    expect(outputs.get('app-db')).toMatchObject({ name: 'app', owner: 'app_owner', oid: expect.any(Number) });
    expect(outputs.get('ext-citext')).toMatchObject({ name: 'citext', schema: 'app' });
    // The default privileges really apply to a table the owner creates later.
    await server.sql('SET ROLE app_owner; CREATE TABLE app.t3 (x int)', [], 'app');
    const rows = await server.sql<{ ok: boolean }>(`SELECT has_table_privilege('app_ro', 'app.t3', 'SELECT') AS ok`, [], 'app');
    expect(rows[0]?.ok).toBe(true);
  });

  it('observes each kind with one catalog query per database, not one per node', async () => {
    const spy = vi.spyOn(PgClient.prototype, 'query');
    try {
      const roles = Array.from({ length: 30 }, (_, i) => pgNode(`r${i}`, 'postgres.role', { name: `batch_${i}` }));
      await backend.observe([...roles, ...all], ctx);
      // roles (1) + databases (1) + per database "app": schemas, grants, extensions (3).
      expect(spy.mock.calls.length).toBe(5);
    } finally {
      spy.mockRestore();
    }
  });

  it('as a superuser, creates a schema in one round trip: it has every role, and asks which it lacks only once, not per operation', async () => {
    const schemaIn = (name: string): BackendNode => pgNode(name, 'postgres.schema', { name, database: 'postgres', owner: 'postgres' });
    done(await backend.create(schemaIn('rt_first'), ctx));
    const queries = vi.spyOn(PgClient.prototype, 'query');
    const executes = vi.spyOn(PgClient.prototype, 'execute');
    try {
      done(await backend.create(schemaIn('rt_second'), ctx));
      expect(queries.mock.calls.length + executes.mock.calls.length).toBe(1);
    } finally {
      queries.mockRestore();
      executes.mockRestore();
    }
    for (const name of ['rt_first', 'rt_second']) expect((await backend.delete(schemaIn(name), ctx)).status).toBe('done');
  });

  it('reports an out-of-band ALTER ROLE as a field diff and corrects it', async () => {
    await server.sql('ALTER ROLE app_owner CONNECTION LIMIT 50 CREATEDB');
    const obs = await observeOne(owner);
    expect(obs).toMatchObject({ status: 'drifted' });
    const diffs = obs.status === 'drifted' ? obs.diffs : [];
    expect(diffs).toContainEqual({ path: 'connectionLimit', desired: 10, actual: 50 });
    expect(diffs).toContainEqual({ path: 'createdb', desired: false, actual: true });
    done(await backend.update(owner, diffs, ctx));
    expect((await observeOne(owner)).status).toBe('upToDate');
  });

  it('reports REPLICATION and BYPASSRLS given out of band (an app role made able to read every row), and takes them back', async () => {
    await server.sql('ALTER ROLE app_reader REPLICATION BYPASSRLS');
    const obs = await observeOne(reader);
    expect(obs).toMatchObject({ status: 'drifted', diffs: [{ path: 'replication', desired: false, actual: true }, { path: 'bypassRls', desired: false, actual: true }] });
    done(await backend.update(reader, obs.status === 'drifted' ? obs.diffs : [], ctx));
    expect(await server.sql(`SELECT rolreplication, rolbypassrls FROM pg_roles WHERE rolname = 'app_reader'`)).toEqual([{ rolreplication: false, rolbypassrls: false }]);
    expect((await observeOne(reader)).status).toBe('upToDate');
    // Stated, they are made and kept.
    const replicator = pgNode('replicator', 'postgres.role', { name: 'app_replicator', login: true, replication: true, bypassRls: true });
    await converge([replicator]);
    expect(await server.sql(`SELECT rolreplication, rolbypassrls FROM pg_roles WHERE rolname = 'app_replicator'`)).toEqual([{ rolreplication: true, rolbypassrls: true }]);
    expect((await observeOne(replicator)).status).toBe('upToDate');
    done(await backend.delete(replicator, ctx));
  });

  it('reports memberships and validUntil changed out of band, and corrects them', async () => {
    await server.sql(`REVOKE app_ro FROM app_reader; GRANT app_owner TO app_reader; ALTER ROLE app_reader VALID UNTIL '2030-01-01'`);
    const obs = await observeOne(reader);
    const diffs = obs.status === 'drifted' ? obs.diffs : [];
    expect(diffs).toContainEqual({ path: 'memberOf', desired: ['app_ro'], actual: ['app_owner'] });
    expect(diffs).toContainEqual({ path: 'validUntil', desired: '2099-01-01', actual: '2030-01-01T00:00:00.000Z' });
    done(await backend.update(reader, diffs, ctx));
    expect((await observeOne(reader)).status).toBe('upToDate');
  });

  // A grant made by hand WITH ADMIN OPTION (the member may grant the group to anyone) or, from
  // PostgreSQL 16, WITH INHERIT FALSE (the member loses the group's privileges) left the membership
  // list as declared, and nothing was reported; nor was a role made NOINHERIT whose grant still inherits.
  // Before 16 a membership has ADMIN alone (INHERIT is the role's, SET does not exist): only that is read.
  it(`manages the options of the memberships it declares: ADMIN, and INHERIT and SET per grant from PostgreSQL 16, as drift corrected`, async () => {
    const pg16 = server.version >= 16;
    await server.sql(`GRANT app_ro TO app_reader WITH ADMIN OPTION`);
    if (pg16) await server.sql(`GRANT app_ro TO app_reader WITH INHERIT FALSE, SET FALSE`);
    const obs = await observeOne(reader);
    expect(obs).toMatchObject({
      status: 'drifted',
      diffs: [
        { path: 'memberOf.app_ro.admin', desired: false, actual: true },
        ...(pg16 ? [{ path: 'memberOf.app_ro.inherit', desired: true, actual: false }, { path: 'memberOf.app_ro.set', desired: true, actual: false }] : []),
      ],
    });
    expect(obs.status === 'drifted' && obs.diffs).toHaveLength(pg16 ? 3 : 1);
    done(await backend.update(reader, obs.status === 'drifted' ? obs.diffs : [], ctx));
    expect((await observeOne(reader)).status).toBe('upToDate');
    const grants = await server.sql(`SELECT m.admin_option FROM pg_auth_members m WHERE m.member = 'app_reader'::regrole AND m.roleid = 'app_ro'::regrole`);
    expect(grants).toEqual([{ admin_option: false }]);
    expect(await server.sql(`SELECT pg_has_role('app_reader', 'app_ro', 'USAGE') AS uses`)).toEqual([{ uses: true }]);
    // The goal makes the role NOINHERIT. From 16 its existing grant is made anew to match, not only the
    // role (the grant's INHERIT decides); before, the role's attribute is all there is.
    const noinherit = pgNode('app-reader', 'postgres.role', { name: 'app_reader', login: true, inherit: false, memberOf: ['app_ro'], validUntil: '2099-01-01' });
    const changed = await observeOne(noinherit);
    expect(changed).toMatchObject({ status: 'drifted', diffs: [{ path: 'inherit', desired: false, actual: true }, ...(pg16 ? [{ path: 'memberOf.app_ro.inherit', desired: false, actual: true }] : [])] });
    expect(changed.status === 'drifted' && changed.diffs).toHaveLength(pg16 ? 2 : 1);
    done(await backend.update(noinherit, changed.status === 'drifted' ? changed.diffs : [], ctx));
    expect(await server.sql(`SELECT pg_has_role('app_reader', 'app_ro', 'USAGE') AS uses`)).toEqual([{ uses: false }]);
    expect((await observeOne(noinherit)).status).toBe('upToDate');
    // And back.
    const back = await observeOne(reader);
    done(await backend.update(reader, back.status === 'drifted' ? back.diffs : [], ctx));
    expect(await server.sql(`SELECT pg_has_role('app_reader', 'app_ro', 'USAGE') AS uses`)).toEqual([{ uses: true }]);
    expect((await observeOne(reader)).status).toBe('upToDate');
  });

  it("reads validUntil 'infinity' and '-infinity' (JSON has none: the server writes them as strings)", async () => {
    const forever = pgNode('forever', 'postgres.role', { name: 'forever', login: true, validUntil: 'infinity' });
    const dated = pgNode('dated', 'postgres.role', { name: 'dated', login: true, validUntil: '2099-01-01' });
    await converge([forever, dated]);
    expect(Array.from((await backend.observe([forever, dated], ctx)).values(), (o) => o.status)).toEqual(['upToDate', 'upToDate']);
    await server.sql(`ALTER ROLE forever VALID UNTIL '-infinity'; ALTER ROLE dated VALID UNTIL 'infinity'`);
    const obs = await backend.observe([forever, dated], ctx);
    expect(obs.get(forever.id)).toMatchObject({ status: 'drifted', diffs: [{ path: 'validUntil', desired: 'infinity', actual: '-infinity' }] });
    expect(obs.get(dated.id)).toMatchObject({ status: 'drifted', diffs: [{ path: 'validUntil', desired: '2099-01-01', actual: 'infinity' }] });
  });

  // Cut to milliseconds, a validUntil with microseconds was drift for ever ("corrected" to the millisecond), and one
  // with an offset of hours alone (+05) was refused, both of which PostgreSQL takes.
  it('keeps validUntil to the microsecond, and takes an offset of hours alone', async () => {
    const micro = pgNode('micro', 'postgres.role', { name: 'micro', validUntil: '2031-06-15T10:20:30.123456Z' });
    const offset = pgNode('offset', 'postgres.role', { name: 'offset_hours', validUntil: '2031-06-15T10:20:30+05' });
    await converge([micro, offset]);
    const held = "SELECT rolname, to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS until FROM pg_roles WHERE rolname IN ('micro', 'offset_hours') ORDER BY 1";
    expect(await server.sql(held)).toEqual([
      { rolname: 'micro', until: '2031-06-15 10:20:30.123456' },
      { rolname: 'offset_hours', until: '2031-06-15 05:20:30.000000' },
    ]);
    expect(Array.from((await backend.observe([micro, offset], ctx)).values(), (o) => o.status)).toEqual(['upToDate', 'upToDate']);
    // A microsecond off by hand is drift, and shown as the server holds it.
    await server.sql(`ALTER ROLE micro VALID UNTIL '2031-06-15T10:20:30.123457Z'`);
    const obs = await observeOne(micro);
    expect(obs).toMatchObject({ status: 'drifted', diffs: [{ path: 'validUntil', desired: '2031-06-15T10:20:30.123456Z', actual: '2031-06-15T10:20:30.123457Z' }] });
    done(await backend.update(micro, obs.status === 'drifted' ? obs.diffs : [], ctx));
    expect(await server.sql(held)).toContainEqual({ rolname: 'micro', until: '2031-06-15 10:20:30.123456' });
    expect((await observeOne(micro)).status).toBe('upToDate');
  });

  it.each([
    { name: 'REVOKE on the database', node: connect, sql: 'REVOKE CONNECT ON DATABASE app FROM app_ro', db: 'postgres', desired: ['CONNECT', 'TEMPORARY'], actual: ['TEMPORARY'] },
    { name: 'REVOKE on one table of the schema', node: tables, sql: 'REVOKE SELECT ON app.t2 FROM app_ro', db: 'app', desired: ['SELECT'], actual: [] },
    { name: 'an extra GRANT on the schema', node: usage, sql: 'GRANT CREATE ON SCHEMA app TO app_ro', db: 'app', desired: ['USAGE'], actual: ['CREATE', 'USAGE'] },
    { name: 'REVOKE of a default privilege', node: defaults, sql: 'ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app REVOKE SELECT ON TABLES FROM app_ro; ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app GRANT INSERT ON TABLES TO app_ro', db: 'app', desired: ['SELECT'], actual: ['INSERT'] },
  ])('detects $name as drift of privileges and corrects it', async ({ node, sql, db: database, desired, actual }) => {
    await server.sql(sql, [], database);
    const obs = await observeOne(node);
    expect(obs.status).toBe('drifted');
    const diffs = obs.status === 'drifted' ? obs.diffs : [];
    expect(diffs[0]).toMatchObject({ path: 'privileges', desired, actual });
    done(await backend.update(node, diffs, ctx));
    expect((await observeOne(node)).status).toBe('upToDate');
  });

  it('detects database and schema owner drift and corrects it', async () => {
    await server.sql('ALTER DATABASE app OWNER TO postgres; ALTER DATABASE app CONNECTION LIMIT 5');
    await server.sql('ALTER SCHEMA app OWNER TO postgres', [], 'app');
    const [d, s] = [await observeOne(db), await observeOne(schema)];
    expect(d.status === 'drifted' && d.diffs).toEqual([
      { path: 'owner', desired: 'app_owner', actual: 'postgres' },
      { path: 'connectionLimit', desired: 20, actual: 5 },
    ]);
    expect(s.status === 'drifted' && s.diffs).toEqual([{ path: 'owner', desired: 'app_owner', actual: 'postgres' }]);
    done(await backend.update(db, d.status === 'drifted' ? d.diffs : [], ctx));
    done(await backend.update(schema, s.status === 'drifted' ? s.diffs : [], ctx));
    expect((await backend.observe([db, schema], ctx)).get(db.id)?.status).toBe('upToDate');
  });

  // With `ignoreFields: [connectionLimit]` the runtime hands the update only the owner's diff: the
  // update set the whole spec all the same, so the ignored limit set by hand was reset with the owner.
  it('corrects only the database fields that differ: an ignored one keeps its value', async () => {
    await server.sql('ALTER DATABASE app OWNER TO postgres; ALTER DATABASE app CONNECTION LIMIT 5');
    const d = await observeOne(db);
    const diffs = d.status === 'drifted' ? d.diffs.filter((x) => x.path !== 'connectionLimit') : [];
    expect(diffs).toEqual([{ path: 'owner', desired: 'app_owner', actual: 'postgres' }]);
    done(await backend.update(db, diffs, ctx));
    expect(await server.sql("SELECT pg_get_userbyid(datdba) AS owner, datconnlimit FROM pg_database WHERE datname = 'app'")).toEqual([{ owner: 'app_owner', datconnlimit: 5 }]);
    const again = await observeOne(db);
    expect(again.status === 'drifted' && again.diffs).toEqual([{ path: 'connectionLimit', desired: 20, actual: 5 }]);
    done(await backend.update(db, again.status === 'drifted' ? again.diffs : [], ctx));
    expect((await observeOne(db)).status).toBe('upToDate');
  });

  it('treats create of an existing object as success and brings it to desired', async () => {
    await server.sql('CREATE ROLE pre_existing NOLOGIN CONNECTION LIMIT 3');
    const node = pgNode('pre', 'postgres.role', { name: 'pre_existing', login: true, connectionLimit: 7 });
    expect(done(await backend.create(node, ctx))).toMatchObject({ name: 'pre_existing', oid: expect.any(Number) });
    expect(done(await backend.create(node, ctx))).toMatchObject({ name: 'pre_existing' });
    expect((await observeOne(node)).status).toBe('upToDate');
    expect(done(await backend.create(db, ctx))).toMatchObject({ name: 'app' });
    expect(done(await backend.create(schema, ctx))).toMatchObject({ name: 'app' });
    expect(done(await backend.create(ext, ctx))).toMatchObject({ name: 'citext' });
  });

  it('an update that cannot read its object back (dropped out of band, nothing left to alter) still gives every declared output, null', async () => {
    // A key left out would be one the node does not give: a reference to it a permanent fault, where null waits.
    const gone = [
      { node: pgNode('gone-role', 'postgres.role', { name: 'gone_role' }), outputs: { name: 'gone_role', oid: null } },
      { node: pgNode('gone-db', 'postgres.database', { name: 'gone_db' }), outputs: { name: 'gone_db', oid: null, owner: null } },
      { node: pgNode('gone-schema', 'postgres.schema', { name: 'gone_schema', database: 'postgres' }), outputs: { name: 'gone_schema', database: 'postgres', oid: null, owner: null } },
      { node: pgNode('gone-ext', 'postgres.extension', { name: 'citext', database: 'postgres' }), outputs: { name: 'citext', database: 'postgres', oid: null, version: null, schema: null } },
    ];
    for (const { node } of gone) expect((await observeOne(node)).status, node.id).toBe('absent');
    const given = await Promise.all(gone.map(async ({ node }) => done(await backend.update(node, [], ctx))));
    expect(given).toEqual(gone.map((g) => g.outputs));
    // Roles in one transaction read their oids back together.
    const [role] = gone;
    expect(done((await backend.updateMany([{ node: role!.node, diffs: [] }], ctx)).get(role!.node.id)!)).toEqual(role!.outputs);
  });

  it.each([
    { kind: 'role', hostile: 'x"; DROP ROLE admin;--' },
    { kind: 'role', hostile: "y'; DROP ROLE admin; SELECT '" },
    { kind: 'role', hostile: 'z\\"; DROP ROLE admin;--' },
  ])('creates a $kind named $hostile with exactly that name and nothing else happens', async ({ hostile }) => {
    await server.sql('DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $q$admin$q$) THEN CREATE ROLE admin; END IF; END $$');
    const before = await roleNames();
    const node = pgNode(`hostile-${before.length}`, 'postgres.role', { name: hostile, login: true, connectionLimit: 1, memberOf: ['app_ro'] });
    done(await backend.create(node, ctx));
    const after = await roleNames();
    expect(after).toContain('admin');
    expect(after).toContain(hostile);
    expect(after.length).toBe(before.length + 1);
    expect(after.filter((r) => !before.includes(r))).toEqual([hostile]);
    expect((await observeOne(node)).status).toBe('upToDate');
    done(await backend.delete(node, ctx));
    expect(await roleNames()).toEqual(before);
  });

  it('creates a database and a schema with hostile names exactly, dropping nothing else', async () => {
    await server.sql('CREATE DATABASE victim');
    await server.sql('CREATE SCHEMA victim', [], 'app');
    const dbName = 'd"; DROP DATABASE victim;--';
    const schemaName = 's"; DROP SCHEMA victim CASCADE;--';
    const hostileDb = pgNode('hostile-db', 'postgres.database', { name: dbName, force: true });
    const hostileSchema = pgNode('hostile-schema', 'postgres.schema', { name: schemaName, database: 'app' });
    const hostileGrant = pgNode('hostile-grant', 'postgres.grant', { role: 'x"; DROP ROLE admin;--', database: dbName, on: 'database', privileges: ['CONNECT'] });
    done(await backend.create(hostileDb, ctx));
    done(await backend.create(hostileSchema, ctx));
    const dbs = (await server.sql<{ datname: string }>('SELECT datname FROM pg_database')).map((r) => r.datname);
    expect(dbs).toEqual(expect.arrayContaining(['victim', dbName, 'app']));
    const schemas = (await server.sql<{ nspname: string }>('SELECT nspname FROM pg_namespace', [], 'app')).map((r) => r.nspname);
    expect(schemas).toEqual(expect.arrayContaining(['victim', schemaName, 'app']));
    // A grant to a role that does not exist is absent, and its create fails cleanly.
    expect((await observeOne(hostileGrant)).status).toBe('absent');
    expect(await backend.create(hostileGrant, ctx)).toMatchObject({ status: 'failed', fault: { code: '42704' } });
    done(await backend.delete(hostileSchema, ctx));
    done(await backend.delete(hostileDb, ctx));
    expect((await server.sql('SELECT 1 FROM pg_database WHERE datname = $1', ['victim'])).length).toBe(1);
  });

  describe('passwords', () => {
    it('sets the password without sending it: the role logs in with it, and it appears in no log, output or server log', async () => {
      const c = new pg.Client({ host: server.host, port: server.port, user: 'app_owner', password: APP_PASSWORD, database: 'app' });
      await c.connect();
      await c.end();
      expect(JSON.stringify([...outputs])).not.toContain(APP_PASSWORD);
      expect(logs.text()).not.toContain(APP_PASSWORD);
      expect(logs.text()).not.toContain('SCRAM-SHA-256$');
      expect(serverLog.join('')).not.toContain(APP_PASSWORD);
      // Tracked in the private memo, never in outputs (shown by status and /status).
      expect(memos.get('app-owner')?.passwordDigest).toMatch(/^[0-9a-f]{16}:[0-9a-f]{64}$/);
      expect(outputs.get('app-owner')).toEqual({ name: 'app_owner', oid: expect.any(Number) });
    });

    it('detects a password changed out of band (superuser reads the SCRAM verifier) and restores it', async () => {
      expect((await observeOne(owner)).status).toBe('upToDate');
      await server.sql(`ALTER ROLE app_owner PASSWORD 'changed-by-hand'`);
      const obs = await observeOne(owner);
      expect(obs).toMatchObject({ status: 'drifted', diffs: [{ path: 'password', masked: true, desired: '<secret>', actual: '<secret>' }] });
      done(await backend.update(owner, obs.status === 'drifted' ? obs.diffs : [], ctx));
      expect((await observeOne(owner)).status).toBe('upToDate');
      expect(logs.text()).not.toContain(APP_PASSWORD);
    });

    it('checks a verifier PostgreSQL computed itself', async () => {
      await server.sql(`CREATE ROLE verifier_check PASSWORD 'pencil'`);
      const rows = await server.sql<{ rolpassword: string }>(`SELECT rolpassword FROM pg_authid WHERE rolname = 'verifier_check'`);
      const rolpassword = rows[0]!.rolpassword;
      expect(await verifyPassword('pencil', rolpassword, 'verifier_check')).toBe(true);
      expect(await verifyPassword('pencil2', rolpassword, 'verifier_check')).toBe(false);
    });

    // PostgreSQL hashes SASLprep's form of a password (pg_saslprep), or the password as given when
    // SASLprep refuses it: the verifier we send must be the one the server would compute, or a
    // client that prepares the password the same way (libpq) cannot log in.
    it.each([
      { name: 'ASCII, as given', password: 'pencil ~\t' },
      { name: 'a ligature and a no-break space, mapped and normalised', password: 'ﬁ\u00a0x' },
      { name: 'a soft hyphen, mapped to nothing', password: 'I\u00adX' },
      { name: 'a Roman numeral, normalised', password: 'Ⅸ-pw' },
      { name: 'right-to-left throughout', password: '\u0627\u0031\u0628' },
      { name: 'an emoji (unassigned in SASLprep): as given, ligature and all', password: '😀ﬁ' },
      { name: 'a private-use character: as given', password: '\ue000ﬁ' },
      { name: 'mixed directions: as given', password: 'ﬁ\u0627' },
      { name: 'nothing left after mapping: as given', password: '\u00ad' },
    ])('computes the verifier PostgreSQL would for $name', async ({ password }) => {
      await server.sql(`DROP ROLE IF EXISTS saslprep_check`);
      await server.sql(`CREATE ROLE saslprep_check PASSWORD '${password.replaceAll("'", "''")}'`);
      const stored = (await server.sql<{ rolpassword: string }>(`SELECT rolpassword FROM pg_authid WHERE rolname = 'saslprep_check'`))[0]!.rolpassword;
      const parsed = parseScramVerifier(stored)!;
      expect(await scramVerifier(password, { salt: parsed.salt, iterations: parsed.iterations })).toBe(stored);
      expect(await verifyPassword(password, stored, 'saslprep_check')).toBe(true);
    });

    it('without pg_authid access, sets the password once, tracks it by digest and notices a rotated secret', async () => {
      await server.sql(`CREATE ROLE limited_admin LOGIN CREATEROLE PASSWORD 'limited-pw'`);
      env.LIMITED_PASSWORD = 'limited-pw';
      env.SVC_PASSWORD = 'first-secret';
      const limited = makeBackend({ host: server.host, port: server.port, user: 'limited_admin', password: { fromEnv: 'LIMITED_PASSWORD' }, sslmode: 'disable' }, 'pg-limited');
      try {
        const svc = pgNode('svc', 'postgres.role', { name: 'svc', login: true, password: { fromEnv: 'SVC_PASSWORD' } });
        expect((await converge([svc], limited)).get('svc')?.status).toBe('done');
        // The create's result carries the digest in its memo, which the next observation is handed.
        expect(memos.get('svc')?.passwordDigest).toEqual(expect.any(String));
        expect((await converge([svc], limited)).get('svc')?.status).toBe('upToDate');
        expect((await observeOne(svc, limited)).status).toBe('upToDate');
        // State lost: the password cannot be verified, so it is set once more and tracked again.
        outputs.delete('svc');
        memos.delete('svc');
        const unknown = await observeOne(svc, limited);
        expect(unknown).toMatchObject({ status: 'drifted', diffs: [{ path: 'password', masked: true }] });
        expect((await converge([svc], limited)).get('svc')).toMatchObject({ status: 'done' });
        expect((await observeOne(svc, limited)).status).toBe('upToDate');
        env.SVC_PASSWORD = 'rotated-secret';
        expect(await observeOne(svc, limited)).toMatchObject({ status: 'drifted', diffs: [{ path: 'password', masked: true }] });
        await converge([svc], limited);
        expect((await observeOne(svc, limited)).status).toBe('upToDate');
        const c = new pg.Client({ host: server.host, port: server.port, user: 'svc', password: 'rotated-secret', database: 'postgres' });
        await c.connect();
        await c.end();
        expect(logs.text()).not.toContain('rotated-secret');
      } finally {
        await limited.close();
      }
    });

    it('reports a missing secret as a permanent fault naming the reference, not a value', async () => {
      const node = pgNode('no-secret', 'postgres.role', { name: 'no_secret', login: true, password: { fromEnv: 'NOT_SET_ANYWHERE' } });
      const r = await backend.create(node, ctx);
      expect(r).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: 'DS_SECRET_UNAVAILABLE' } });
      expect((await roleNames()).includes('no_secret')).toBe(false);
    });
  });

  it("refuses to correct the backend's own role out of what it needs (SUPERUSER, LOGIN, CREATEROLE): a permanent fault naming them", async () => {
    // The superuser the backend connects as, declared without superuser: true.
    const self = pgNode('self', 'postgres.role', { name: server.user, login: true });
    const obs = await observeOne(self);
    expect(obs).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: 'self-lockout', message: expect.stringContaining('would take SUPERUSER, CREATEROLE from the role this backend connects as'), hint: expect.stringContaining('superuser: true') } });
    expect((await observeOne(pgNode('self', 'postgres.role', { name: server.user, login: true, superuser: true, createrole: true, createdb: true, replication: true, bypassRls: true }))).status).toBe('upToDate');

    // A non-superuser admin: CREATEROLE and LOGIN are what it manages roles with.
    await server.sql(`CREATE ROLE lockout_admin LOGIN CREATEROLE PASSWORD 'lockout-pw'`);
    env.LOCKOUT_PASSWORD = 'lockout-pw';
    const admin = makeBackend({ host: server.host, port: server.port, user: 'lockout_admin', password: { fromEnv: 'LOCKOUT_PASSWORD' }, sslmode: 'disable' }, 'pg-lockout');
    try {
      const demoted = await observeOne(pgNode('admin', 'postgres.role', { name: 'lockout_admin', login: false }), admin);
      expect(demoted).toMatchObject({ status: 'failed', fault: { code: 'self-lockout', message: expect.stringContaining('would take LOGIN, CREATEROLE from') } });
      // Another role's demotion, and its own drift in a field that locks nothing, are corrected as ever.
      const own = pgNode('admin', 'postgres.role', { name: 'lockout_admin', login: true, createrole: true, connectionLimit: 5 });
      expect(await observeOne(own, admin)).toMatchObject({ status: 'drifted', diffs: [{ path: 'connectionLimit' }] });
      await server.sql(`CREATE ROLE lockout_other LOGIN CREATEROLE`);
      expect(await observeOne(pgNode('other', 'postgres.role', { name: 'lockout_other' }), admin)).toMatchObject({ status: 'drifted' });
    } finally {
      await admin.close();
      await server.sql('DROP ROLE IF EXISTS lockout_other');
      await server.sql('DROP ROLE lockout_admin');
    }
  });

  // Applied, each shut the backend out: every command then failed with "password authentication failed".
  it("refuses to give the backend's own role an expiry already past, or another password than the one it connects with", async () => {
    const all = { login: true, superuser: true, createrole: true, createdb: true, replication: true, bypassRls: true };
    const expired = await observeOne(pgNode('self', 'postgres.role', { name: server.user, ...all, validUntil: '2001-01-01' }));
    expect(expired).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: 'self-lockout', message: expect.stringContaining('would set a validUntil already past (2001-01-01) on the role this backend connects as') } });
    // In the future it is a change like any other.
    expect(await observeOne(pgNode('self', 'postgres.role', { name: server.user, ...all, validUntil: '2999-01-01' }))).toMatchObject({ status: 'drifted', diffs: [{ path: 'validUntil' }] });

    env.OTHER_ADMIN_PASSWORD = 'not-the-one-it-connects-with';
    const other = await observeOne(pgNode('self', 'postgres.role', { name: server.user, ...all, password: { fromEnv: 'OTHER_ADMIN_PASSWORD' } }));
    expect(other).toMatchObject({ status: 'failed', fault: { code: 'self-lockout', message: expect.stringContaining('would set another password (env:OTHER_ADMIN_PASSWORD) than the one it connects with (env:PG_ADMIN_PASSWORD)') } });
    // Its own reference: the password it connects with, up to date.
    expect((await observeOne(pgNode('self', 'postgres.role', { name: server.user, ...all, password: { fromEnv: 'PG_ADMIN_PASSWORD' } }))).status).toBe('upToDate');
    expect(JSON.stringify(other)).not.toContain('not-the-one-it-connects-with');
  });

  it('maps insufficient privilege to an auth fault', async () => {
    const limited = makeBackend({ host: server.host, port: server.port, user: 'limited_admin', password: { fromEnv: 'LIMITED_PASSWORD' }, sslmode: 'disable' }, 'pg-limited2');
    try {
      const r = await limited.create(pgNode('su', 'postgres.role', { name: 'wants_super', superuser: true }), ctx);
      expect(r).toMatchObject({ status: 'failed', fault: { class: 'auth', code: '42501' } });
    } finally {
      await limited.close();
    }
  });

  it('an extension version the server does not have is a permanent fault that says where to find the versions it has', async () => {
    const bad = pgNode('ext-bad', 'postgres.extension', { name: 'citext', database: 'app', schema: 'app', version: '9.9' });
    const r = await backend.update(bad, [{ path: 'version', desired: '9.9', actual: '1.6' }], ctx);
    expect(r).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: '22023', hint: "the versions this server has for it: SELECT version FROM pg_available_extension_versions WHERE name = 'citext'" } });
    expect((await observeOne(ext)).status).toBe('upToDate');
  });

  it("a grant to a role that owns objects under it: the owner's own privileges are no drift and are never revoked", async () => {
    // app_owner owns app.t1..t3 (the first test); a table of another owner sits beside them.
    await server.sql('CREATE TABLE app.not_theirs (x int)', [], 'app');
    const has = async (table: string, privilege: string): Promise<boolean> =>
      (await server.sql<{ ok: boolean }>(`SELECT has_table_privilege('app_owner', $1, $2) AS ok`, [table, privilege], 'app'))[0]!.ok;
    const onTables = pgNode('owner-tables', 'postgres.grant', { role: 'app_owner', database: 'app', schema: 'app', on: 'tables', privileges: ['SELECT'] });
    const onDb = pgNode('owner-db', 'postgres.grant', { role: 'app_owner', database: 'app', on: 'database', privileges: ['CONNECT'] });
    try {
      await converge([onTables, onDb]);
      // Its TRUNCATE, INSERT … on its own tables, CREATE on its own database: an owner's, not drift (they were, and were revoked).
      for (const n of [onTables, onDb]) expect((await observeOne(n)).status, n.id).toBe('upToDate');
      // More than the grant lists on a table it does not own is drift, corrected there alone.
      await server.sql('GRANT INSERT ON app.not_theirs TO app_owner', [], 'app');
      const obs = await observeOne(onTables);
      expect(obs).toMatchObject({ status: 'drifted', diffs: [{ path: 'privileges', desired: ['SELECT'], actual: ['INSERT', 'SELECT'] }] });
      done(await backend.update(onTables, obs.status === 'drifted' ? obs.diffs : [], ctx));
      expect(await has('app.not_theirs', 'INSERT')).toBe(false);
      expect(await has('app.t1', 'TRUNCATE')).toBe(true);
      expect((await observeOne(onTables)).status).toBe('upToDate');
      // Deleting the grants takes what they gave, on what the role does not own.
      done(await backend.delete(onTables, ctx));
      done(await backend.delete(onDb, ctx));
      expect(await has('app.not_theirs', 'SELECT')).toBe(false);
      expect(await has('app.t1', 'SELECT')).toBe(true);
      expect(await has('app.t1', 'TRUNCATE')).toBe(true);
      const dbPrivileges = await server.sql<{ ok: boolean }>(`SELECT has_database_privilege('app_owner', 'app', 'CREATE') AND has_database_privilege('app_owner', 'app', 'CONNECT') AS ok`, [], 'app');
      expect(dbPrivileges[0]!.ok).toBe(true);
    } finally {
      await server.sql('DROP TABLE app.not_theirs', [], 'app');
    }
  });

  // The delete revoked on a database or schema whatever its owner: pruning a grant to the owner took
  // its own USAGE on its schema (its tables unreadable) and CREATE on its database.
  it("deleting a grant to the owner of its database or schema leaves the owner's own privileges there", async () => {
    const role = pgNode('own-owner', 'postgres.role', { name: 'own_owner', login: true });
    const ownDb = pgNode('own-db', 'postgres.database', { name: 'own_db', owner: 'own_owner', force: true });
    const ownSchema = pgNode('own-schema', 'postgres.schema', { name: 'app', database: 'own_db', owner: 'own_owner' });
    const onSchema = pgNode('own-g-schema', 'postgres.grant', { role: 'own_owner', database: 'own_db', schema: 'app', on: 'schema', privileges: ['USAGE'] });
    const onDb = pgNode('own-g-db', 'postgres.grant', { role: 'own_owner', database: 'own_db', on: 'database', privileges: ['ALL'] });
    await converge([role, ownDb, ownSchema, onSchema, onDb]);
    for (const n of [onSchema, onDb]) expect((await observeOne(n)).status, n.id).toBe('upToDate');
    await server.sql('SET ROLE own_owner; CREATE TABLE app.t (id int); INSERT INTO app.t VALUES (1)', [], 'own_db');
    done(await backend.delete(onSchema, ctx));
    done(await backend.delete(onDb, ctx));
    // As the owner, on a connection of its own: its schema and its database are still usable.
    await server.sql("ALTER ROLE own_owner PASSWORD 'own-owner-pw'");
    const c = new pg.Client({ host: server.host, port: server.port, user: 'own_owner', password: 'own-owner-pw', database: 'own_db' });
    await c.connect();
    try {
      expect((await c.query('SELECT id FROM app.t')).rows).toEqual([{ id: 1 }]);
      await c.query('CREATE SCHEMA s2; CREATE TEMP TABLE scratch (x int)');
    } finally {
      await c.end();
    }
    done(await backend.delete(ownDb, ctx));
    await server.sql('DROP ROLE own_owner');
  });

  it('a grant whose tables differ each their own way: the report shows what differs (never the desired list), and one update corrects them all', async () => {
    await server.sql('CREATE ROLE g_mig; CREATE SCHEMA mig', [], 'app');
    const onTables = pgNode('mig-tables', 'postgres.grant', { role: 'g_mig', database: 'app', schema: 'mig', on: 'tables', privileges: ['SELECT', 'INSERT'] });
    try {
      await server.sql('CREATE TABLE mig.a (x int); CREATE TABLE mig.b (x int); CREATE TABLE mig.mine (x int); ALTER TABLE mig.mine OWNER TO g_mig', [], 'app');
      await converge([onTables]);
      // One table lacks INSERT, another holds DELETE besides.
      await server.sql('REVOKE INSERT ON mig.a FROM g_mig; GRANT DELETE ON mig.b TO g_mig', [], 'app');
      const obs = await observeOne(onTables);
      expect(obs).toMatchObject({ status: 'drifted', diffs: [{ path: 'privileges', desired: ['INSERT', 'SELECT'], actual: ['DELETE', 'INSERT', 'SELECT'], detail: '2 of 3 objects differ: a [SELECT]; b [DELETE, INSERT, SELECT]' }] });
      done(await backend.update(onTables, obs.status === 'drifted' ? obs.diffs : [], ctx));
      expect((await observeOne(onTables)).status).toBe('upToDate');
      // Each lacks another one: what they all hold.
      await server.sql('REVOKE INSERT ON mig.a FROM g_mig; REVOKE SELECT ON mig.b FROM g_mig', [], 'app');
      const again = await observeOne(onTables);
      expect(again).toMatchObject({ status: 'drifted', diffs: [{ path: 'privileges', desired: ['INSERT', 'SELECT'], actual: [], detail: '2 of 3 objects differ: a [SELECT]; b [INSERT]' }] });
      done(await backend.update(onTables, again.status === 'drifted' ? again.diffs : [], ctx));
      expect((await observeOne(onTables)).status).toBe('upToDate');
    } finally {
      await server.sql('DROP SCHEMA mig CASCADE; DROP OWNED BY g_mig; DROP ROLE g_mig', [], 'app');
    }
  });

  // MAINTAIN (VACUUM, ANALYZE, REINDEX, … of a table) is a privilege from PostgreSQL 17: before, a grant
  // listing it would fail its GRANT on every pass, so its observation fails first, naming what the server
  // has; ALL is the server's own set either way.
  it("a grant of MAINTAIN is made from PostgreSQL 17 and refused before with the server's privileges; ALL is the server's set", async () => {
    const pg17 = server.version >= 17;
    const held = async (table: string): Promise<string[]> =>
      (await server.sql<{ p: string[] }>(`SELECT COALESCE(array_agg(a.privilege_type::text ORDER BY a.privilege_type::text), '{}') AS p FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1::regclass AND a.grantee = 'g_maint'::regrole`, [table], 'app'))[0]!.p;
    const maintain = pgNode('maint-tables', 'postgres.grant', { role: 'g_maint', database: 'app', schema: 'app', on: 'tables', privileges: ['SELECT', 'maintain'] });
    const byDefault = pgNode('maint-default', 'postgres.grant', { role: 'g_maint', database: 'app', schema: 'app', on: 'defaultTables', privileges: ['MAINTAIN'], forRole: 'app_owner' });
    const allTables = pgNode('maint-all', 'postgres.grant', { role: 'g_maint', database: 'app', schema: 'app', on: 'tables', privileges: ['ALL'] });
    await server.sql('CREATE ROLE g_maint');
    try {
      if (pg17) {
        for (const [id, r] of await converge([maintain, byDefault])) expect(r.status, id).toBe('done');
        expect(await held('app.t1')).toEqual(['MAINTAIN', 'SELECT']);
        for (const n of [maintain, byDefault]) expect((await observeOne(n)).status, n.id).toBe('upToDate');
        await server.sql('SET ROLE app_owner; CREATE TABLE app.t_later (x int)', [], 'app');
        expect(await held('app.t_later')).toEqual(['MAINTAIN']);
        for (const n of [maintain, byDefault]) done(await backend.delete(n, ctx));
        await server.sql('DROP TABLE app.t_later', [], 'app');
      } else {
        for (const [n, on] of [[maintain, 'tables'], [byDefault, 'defaultTables']] as const) {
          expect(await observeOne(n)).toMatchObject({
            status: 'failed',
            fault: {
              class: 'permanent',
              code: 'unsupported-privilege',
              message: `MAINTAIN is not a privilege on ${on} on this PostgreSQL server`,
              hint: "this server's privileges there: DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE (MAINTAIN came with PostgreSQL 17)",
            },
          });
        }
        expect(await held('app.t1')).toEqual([]);
      }
      expect((await converge([allTables])).get(allTables.id)?.status).toBe('done');
      const serverAll = ['DELETE', 'INSERT', ...(pg17 ? ['MAINTAIN'] : []), 'REFERENCES', 'SELECT', 'TRIGGER', 'TRUNCATE', 'UPDATE'];
      expect(await held('app.t1')).toEqual(serverAll);
      expect(await observeOne(allTables)).toMatchObject({ status: 'upToDate' });
      done(await backend.delete(allTables, ctx));
      expect(await held('app.t1')).toEqual([]);
    } finally {
      await server.sql('DROP OWNED BY g_maint; DROP ROLE g_maint', [], 'app');
    }
  });

  it('a grant option is managed: one given by hand is drift and revoked; withGrantOption gives it and restores it', async () => {
    const option = async (sql: string): Promise<boolean> => (await server.sql<{ ok: boolean }>(`SELECT ${sql} AS ok`, [], 'app'))[0]!.ok;
    // On one table of three, by hand: drift on that one, revoked there; SELECT stays.
    await server.sql('GRANT SELECT ON app.t2 TO app_ro WITH GRANT OPTION', [], 'app');
    let obs = await observeOne(tables);
    expect(obs).toMatchObject({ status: 'drifted', diffs: [{ path: 'withGrantOption', desired: false, actual: true, detail: '1 of 3 objects differ: t2 [SELECT]' }] });
    done(await backend.update(tables, obs.status === 'drifted' ? obs.diffs : [], ctx));
    expect(await option(`has_table_privilege('app_ro', 'app.t2', 'SELECT WITH GRANT OPTION')`)).toBe(false);
    expect(await option(`has_table_privilege('app_ro', 'app.t2', 'SELECT')`)).toBe(true);
    expect((await observeOne(tables)).status).toBe('upToDate');

    // Default privileges, by hand.
    await server.sql('ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app GRANT SELECT ON TABLES TO app_ro WITH GRANT OPTION', [], 'app');
    obs = await observeOne(defaults);
    expect(obs).toMatchObject({ status: 'drifted', diffs: [{ path: 'withGrantOption', desired: false, actual: true }] });
    done(await backend.update(defaults, obs.status === 'drifted' ? obs.diffs : [], ctx));
    expect((await observeOne(defaults)).status).toBe('upToDate');

    // withGrantOption: true gives it; taken away by hand, it is drift and given back; delete takes both.
    const passOn = pgNode('grant-pass-on', 'postgres.grant', { role: 'app_reader', database: 'app', on: 'database', privileges: ['CONNECT'], withGrantOption: true });
    await converge([passOn]);
    expect(await option(`has_database_privilege('app_reader', 'app', 'CONNECT WITH GRANT OPTION')`)).toBe(true);
    await server.sql('REVOKE GRANT OPTION FOR CONNECT ON DATABASE app FROM app_reader', [], 'app');
    obs = await observeOne(passOn);
    expect(obs).toMatchObject({ status: 'drifted', diffs: [{ path: 'withGrantOption', desired: true, actual: false }] });
    done(await backend.update(passOn, obs.status === 'drifted' ? obs.diffs : [], ctx));
    expect(await option(`has_database_privilege('app_reader', 'app', 'CONNECT WITH GRANT OPTION')`)).toBe(true);
    expect((await observeOne(passOn)).status).toBe('upToDate');
    done(await backend.delete(passOn, ctx));
    expect(await option(`EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = 'app' AND a.grantee = 'app_reader'::regrole)`)).toBe(false);
  });

  // The update granted the whole list whatever differed: with `ignoreFields: [privileges]`, correcting
  // the grant option put back a privilege taken away by hand (the runtime hands the update no
  // privileges diff then, as here).
  it('a grant whose privileges are ignored: a correction of its grant option leaves the privileges as found', async () => {
    const privilege = async (sql: string): Promise<boolean> => (await server.sql<{ ok: boolean }>(`SELECT ${sql} AS ok`, [], 'app'))[0]!.ok;
    const optionOnly = async (n: BackendNode): Promise<void> => {
      const obs = await observeOne(n);
      expect(obs.status === 'drifted' && obs.diffs.map((x) => x.path)).toEqual(['privileges', 'withGrantOption']);
      done(await backend.update(n, obs.status === 'drifted' ? obs.diffs.filter((x) => x.path !== 'privileges') : [], ctx));
    };
    await server.sql('CREATE ROLE ign_m');
    const onDb = pgNode('ign-db', 'postgres.grant', { role: 'ign_m', database: 'app', on: 'database', privileges: ['CONNECT', 'TEMPORARY'] });
    const passOn = pgNode('ign-db', 'postgres.grant', { role: 'ign_m', database: 'app', on: 'database', privileges: ['CONNECT', 'TEMPORARY'], withGrantOption: true });
    const onTables = pgNode('ign-tables', 'postgres.grant', { role: 'ign_m', database: 'app', schema: 'app', on: 'tables', privileges: ['INSERT', 'SELECT'], withGrantOption: true });
    try {
      await converge([onDb]);
      // withGrantOption false: the option given by hand is taken back, TEMPORARY stays revoked.
      await server.sql('REVOKE TEMPORARY ON DATABASE app FROM ign_m; GRANT CONNECT ON DATABASE app TO ign_m WITH GRANT OPTION', [], 'app');
      await optionOnly(onDb);
      expect(await privilege(`has_database_privilege('ign_m', 'app', 'CONNECT WITH GRANT OPTION')`)).toBe(false);
      expect(await privilege(`has_database_privilege('ign_m', 'app', 'CONNECT')`)).toBe(true);
      expect(await privilege(`EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = 'app' AND a.grantee = 'ign_m'::regrole AND a.privilege_type = 'TEMPORARY')`)).toBe(false);
      // withGrantOption true: the option is given on what the role holds, and TEMPORARY still not granted.
      await optionOnly(passOn);
      expect(await privilege(`has_database_privilege('ign_m', 'app', 'CONNECT WITH GRANT OPTION')`)).toBe(true);
      expect(await privilege(`EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = 'app' AND a.grantee = 'ign_m'::regrole AND a.privilege_type = 'TEMPORARY')`)).toBe(false);
      // Per table: INSERT taken from t2 by hand stays taken; the option comes back on what is held.
      await converge([onTables]);
      await server.sql('REVOKE INSERT ON app.t2 FROM ign_m; REVOKE GRANT OPTION FOR SELECT ON app.t1 FROM ign_m', [], 'app');
      await optionOnly(onTables);
      expect(await privilege(`has_table_privilege('ign_m', 'app.t1', 'SELECT WITH GRANT OPTION')`)).toBe(true);
      expect(await privilege(`has_table_privilege('ign_m', 'app.t2', 'SELECT WITH GRANT OPTION')`)).toBe(true);
      expect(await privilege(`has_table_privilege('ign_m', 'app.t2', 'INSERT')`)).toBe(false);
      const after = await observeOne(onTables);
      expect(after.status === 'drifted' && after.diffs.map((x) => x.path)).toEqual(['privileges']);
    } finally {
      await server.sql('DROP OWNED BY ign_m; DROP ROLE ign_m', [], 'app');
    }
  });

  it('refuses to drop a database that holds a table without force, with a hint; drops it with force', async () => {
    await server.sql('CREATE DATABASE keep_data');
    await server.sql('CREATE TABLE precious (id int)', [], 'keep_data');
    const keep = pgNode('keep', 'postgres.database', { name: 'keep_data' });
    // Open our own pool on it first: the drop must close it.
    expect((await observeOne(pgNode('keep-schema', 'postgres.schema', { name: 'public', database: 'keep_data' }))).status).not.toBe('failed');
    const r = await backend.delete(keep, ctx);
    expect(r).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: 'database-not-empty', hint: expect.stringContaining('force: true') } });
    expect((await observeOne(keep)).status).toBe('upToDate');
    done(await backend.delete(pgNode('keep', 'postgres.database', { name: 'keep_data', force: true }), ctx));
    expect((await observeOne(keep)).status).toBe('absent');
    done(await backend.delete(keep, ctx));
  });

  it.each([
    { name: 'a large object', sql: "SELECT lo_from_bytea(424242, 'scans')" },
    { name: 'a sequence', sql: 'CREATE SEQUENCE invoice_no START 1000' },
    { name: 'a function', sql: "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'" },
    { name: 'a view', sql: 'CREATE VIEW v AS SELECT 1 AS one' },
    { name: 'an enum type', sql: "CREATE TYPE mood AS ENUM ('ok')" },
  ])('refuses to drop a database whose only object is $name without force (tables alone were counted)', async ({ sql }) => {
    await server.sql('CREATE DATABASE held_data');
    try {
      await server.sql(sql, [], 'held_data');
      const r = await backend.delete(pgNode('held', 'postgres.database', { name: 'held_data' }), ctx);
      expect(r).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: 'database-not-empty', message: expect.stringContaining('still holds 1 object(s)') } });
      expect((await observeOne(pgNode('held', 'postgres.database', { name: 'held_data' }))).status).toBe('upToDate');
    } finally {
      done(await backend.delete(pgNode('held', 'postgres.database', { name: 'held_data', force: true }), ctx));
    }
  });

  // Observing the template's extension left our own idle pool on it, and PostgreSQL copies no database
  // that has other sessions: "source database is being accessed by other users", on every retry.
  it('creates a database from a template the backend works in; another session on the template is a transient fault naming pg_stat_activity', async () => {
    const tmpl = pgNode('tmpl', 'postgres.database', { name: 'tmpl_db', force: true });
    const tmplExt = pgNode('tmpl-ext', 'postgres.extension', { name: 'citext', database: 'tmpl_db' });
    const child = pgNode('child', 'postgres.database', { name: 'child_db', template: 'tmpl_db', force: true });
    const other = pgNode('child-2', 'postgres.database', { name: 'child2_db', template: 'tmpl_db', force: true });
    await converge([tmpl, tmplExt]);
    expect((await observeOne(tmplExt)).status).toBe('upToDate');
    try {
      done(await backend.create(child, ctx));
      expect((await observeOne(pgNode('child-ext', 'postgres.extension', { name: 'citext', database: 'child_db' }))).status).toBe('upToDate');
      const someoneElse = await server.client('tmpl_db');
      try {
        expect(await backend.create(other, ctx)).toMatchObject({
          status: 'failed',
          fault: { class: 'transient', code: '55006', message: expect.stringContaining('"tmpl_db"'), hint: expect.stringContaining("pg_stat_activity WHERE datname = 'tmpl_db'") },
        });
      } finally {
        await someoneElse.end();
      }
    } finally {
      for (const n of [other, child, tmpl]) done(await backend.delete(n, ctx));
    }
  });

  // PostgreSQL reads `unicode` as UTF8 and reports UTF8: the alias was drift no update corrects, for ever.
  it('a database created with an encoding alias PostgreSQL knows (unicode) is then up to date', async () => {
    const aliased = pgNode('enc-alias', 'postgres.database', { name: 'enc_unicode', encoding: 'unicode' });
    try {
      done(await backend.create(aliased, ctx));
      expect(await server.sql("SELECT pg_encoding_to_char(encoding) AS encoding FROM pg_database WHERE datname = 'enc_unicode'")).toEqual([{ encoding: 'UTF8' }]);
      expect((await observeOne(aliased)).status).toBe('upToDate');
    } finally {
      done(await backend.delete(aliased, ctx));
    }
  });

  // The goal names no locale: a database takes its template's, and a UTF-8 one holds only UTF8. The fault
  // said only "encoding LATIN1 does not match locale C.UTF-8"; the hint says the way out, which works.
  it('an encoding the template\'s locale cannot hold is refused with a hint that says how to make a template for it', async () => {
    const latin1 = pgNode('enc-latin1', 'postgres.database', { name: 'enc_latin1', encoding: 'latin1' });
    const r = await backend.create(latin1, ctx);
    expect(r).toMatchObject({
      status: 'failed',
      fault: { class: 'permanent', code: '22023', hint: expect.stringContaining(`CREATE DATABASE "latin1_template" TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C') and name it in template`) },
    });
    await server.sql(`CREATE DATABASE "latin1_template" TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'`);
    const templated = pgNode('enc-latin1', 'postgres.database', { name: 'enc_latin1', encoding: 'latin1', template: 'latin1_template' });
    try {
      done(await backend.create(templated, ctx));
      expect((await observeOne(templated)).status).toBe('upToDate');
    } finally {
      done(await backend.delete(templated, ctx));
      await server.sql('DROP DATABASE latin1_template');
    }
  });

  it("drops without force a database that holds only an extension's objects", async () => {
    await server.sql('CREATE DATABASE ext_only');
    await server.sql('CREATE EXTENSION citext', [], 'ext_only');
    done(await backend.delete(pgNode('ext-only', 'postgres.database', { name: 'ext_only' }), ctx));
    expect((await observeOne(pgNode('ext-only', 'postgres.database', { name: 'ext_only' }))).status).toBe('absent');
  });

  it('refuses to drop a schema holding objects without force, and a role that owns objects, with hints', async () => {
    const s = await backend.delete(schema, ctx);
    expect(s).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: '2BP01', hint: expect.stringContaining('force: true') } });
    const r = await backend.delete(owner, ctx);
    expect(r).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: '2BP01', hint: expect.stringContaining('REASSIGN OWNED') } });
    // The dependents are named: what the operator reassigns or drops.
    expect(r.status === 'failed' && r.fault.message).toMatch(/cannot be dropped because some objects depend on it \(.*owner of (database app|schema app|table app\.t1)/);
    expect((await observeOne(owner)).status).toBe('upToDate');
  });

  it('refuses to drop an extension a column uses, with a hint about those objects (not the roles\' REASSIGN OWNED)', async () => {
    await server.sql('CREATE TABLE app.emails (address app.citext)', [], 'app');
    try {
      const r = await backend.delete(ext, ctx);
      expect(r).toMatchObject({ status: 'failed', fault: { class: 'permanent', code: '2BP01', message: expect.stringContaining('column address of table app.emails') } });
      const hint = r.status === 'failed' ? r.fault.hint : undefined;
      expect(hint).toBe('objects in database "app" use the extension (named above): drop or change them first; to drop them with it, data and all, DROP EXTENSION "citext" CASCADE by hand');
      expect((await observeOne(ext)).status).toBe('upToDate');
    } finally {
      await server.sql('DROP TABLE app.emails', [], 'app');
    }
  });

  it('deletes roles and grants; absent is success', async () => {
    const gone = pgNode('gone', 'postgres.role', { name: 'gone' });
    done(await backend.create(gone, ctx));
    done(await backend.delete(gone, ctx));
    done(await backend.delete(gone, ctx));
    expect((await observeOne(gone)).status).toBe('absent');
    done(await backend.delete(usage, ctx));
    expect((await observeOne(usage)).status).toBe('absent');
    done(await backend.create(usage, ctx));
  });

  it('creates 1,000 login roles in one batch, finds them all up to date, and creates more one by one on a warm pool', async () => {
    // Timings are bench/postgres's; the query count of a pass is the next test's.
    const nodes = Array.from({ length: 1000 }, (_, i) => pgNode(`bulk-${i}`, 'postgres.role', { name: `bulk_${i}`, login: true, connectionLimit: 5 }));
    const created = await backend.createMany(nodes, ctx);
    expect([...created.values()].every((r) => r.status === 'done')).toBe(true);
    const steady = await backend.observe(nodes, ctx);
    expect([...steady.values()].every((o) => o.status === 'upToDate')).toBe(true);
    // Per-node creates on a warm pool, as the reconciler issues them.
    const more = Array.from({ length: 200 }, (_, i) => pgNode(`single-${i}`, 'postgres.role', { name: `single_${i}`, login: true, connectionLimit: 5 }));
    const singles = await Promise.all(more.map((n) => backend.create(n, ctx)));
    expect(singles.every((r) => r.status === 'done')).toBe(true);
    expect([...(await backend.observe(more, ctx)).values()].every((o) => o.status === 'upToDate')).toBe(true);
  });

  it('a pass over roles is one query: the verifier privilege is asked only when some role has a managed password', async () => {
    const nodes = Array.from({ length: 1000 }, (_, i) => pgNode(`bulk-${i}`, 'postgres.role', { name: `bulk_${i}`, login: true, connectionLimit: 5 }));
    const queries = vi.spyOn(pg.Client.prototype, 'query');
    const fresh = makeBackend({ host: server.host, port: server.port, user: server.user, password: { fromEnv: 'PG_ADMIN_PASSWORD' }, sslmode: 'disable' }, 'pg-count');
    try {
      const steady = await fresh.observe(nodes, ctx);
      expect([...steady.values()].every((o) => o.status === 'upToDate')).toBe(true);
      expect(queries).toHaveBeenCalledTimes(1);
      queries.mockClear();
      const withPassword = pgNode('pw-role', 'postgres.role', { name: 'bulk_1', login: true, connectionLimit: 5, password: { fromEnv: 'PG_ADMIN_PASSWORD' } });
      await fresh.observe([...nodes.slice(2), withPassword], ctx);
      const texts = queries.mock.calls.map(([q]) => (typeof q === 'string' ? q : (q as { text: string }).text));
      expect(texts).toHaveLength(2);
      expect(texts[0]).toContain('has_table_privilege');
    } finally {
      queries.mockRestore();
      await fresh.close();
    }
  });

  it('repairs 100 out-of-band ALTER ROLEs in one transaction; a batch that fails goes role by role', async () => {
    const nodes = Array.from({ length: 1000 }, (_, i) => pgNode(`bulk-${i}`, 'postgres.role', { name: `bulk_${i}`, login: true, connectionLimit: 5 }));
    await server.sql(Array.from({ length: 100 }, (_, i) => `ALTER ROLE bulk_${i * 10} CONNECTION LIMIT 50`).join(';'));
    const obs = await backend.observe(nodes, ctx);
    const drifted = nodes.flatMap((node) => {
      const o = obs.get(node.id);
      return o?.status === 'drifted' ? [{ node, diffs: o.diffs }] : [];
    });
    expect(drifted).toHaveLength(100);
    expect(drifted[0]!.diffs).toEqual([{ path: 'connectionLimit', desired: 5, actual: 50 }]);
    const t = performance.now();
    const repaired = await backend.updateMany(drifted, ctx);
    const repairMs = performance.now() - t;
    expect([...repaired.values()].every((r) => r.status === 'done')).toBe(true);
    expect(logs.text()).toContain('"op":"update","nodes":100,"msg":"provisioned in one transaction"');
    expect([...(await backend.observe(nodes, ctx)).values()].every((o) => o.status === 'upToDate')).toBe(true);
    console.log(`postgres: updateMany 100 roles ${repairMs.toFixed(0)} ms`);

    // One correction PostgreSQL refuses (a membership in a role that does not exist) fails the
    // transaction: nothing of it is applied, then each role gets its own update and result.
    await server.sql('ALTER ROLE bulk_1 CONNECTION LIMIT 7; ALTER ROLE bulk_2 CONNECTION LIMIT 7');
    const bad = pgNode('bulk-2', 'postgres.role', { name: 'bulk_2', login: true, connectionLimit: 5, memberOf: ['no_such_group'] });
    const mixed = await backend.updateMany(
      [
        { node: nodes[1]!, diffs: [{ path: 'connectionLimit', desired: 5, actual: 7 }] },
        { node: bad, diffs: [{ path: 'connectionLimit', desired: 5, actual: 7 }, { path: 'memberOf', desired: ['no_such_group'], actual: [] }] },
      ],
      ctx,
    );
    expect(mixed.get('bulk-1')).toMatchObject({ status: 'done', outputs: { name: 'bulk_1' } });
    expect(mixed.get('bulk-2')).toMatchObject({ status: 'failed', fault: { code: '42704' } }); // undefined_object
    expect(logs.text()).toContain('batch failed; going one by one');
    const after = await backend.observe(nodes.slice(1, 3), ctx);
    expect(after.get('bulk-1')?.status).toBe('upToDate');
    expect(after.get('bulk-2')).toMatchObject({ status: 'drifted', diffs: [{ path: 'connectionLimit', desired: 5, actual: 7 }] });
  });

  it('returns transient faults while the server is down (bounded, no throw) and recovers when it returns', async () => {
    await server.stop();
    try {
      const t = performance.now();
      const obs = await backend.observe(all, ctx);
      for (const n of all) expect(obs.get(n.id), n.id).toMatchObject({ status: 'failed', fault: { class: 'transient' } });
      const created = await backend.create(pgNode('during-outage', 'postgres.role', { name: 'during_outage' }), ctx);
      expect(created).toMatchObject({ status: 'failed', fault: { class: 'transient' } });
      expect(await backend.health({ signal: ctx.signal, log: logs.log })).toMatchObject({ status: 'unhealthy' });
      expect(performance.now() - t).toBeLessThan(10_000);
    } finally {
      await server.start();
    }
    const after = await backend.observe(all, ctx);
    for (const n of all) expect(after.get(n.id)?.status, n.id).toBe('upToDate');
    expect(await backend.health({ signal: ctx.signal, log: logs.log })).toEqual({ status: 'healthy' });
  });

  it('never logged a password', () => {
    expect(logs.text()).not.toContain(APP_PASSWORD);
    expect(logs.text()).not.toContain('first-secret');
    expect(logs.text()).not.toContain(server.password);
    expect(serverLog.join('')).not.toContain(APP_PASSWORD);
  });
});
