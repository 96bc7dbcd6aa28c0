import { getEventListeners } from 'node:events';
import { tmpdir } from 'node:os';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PgClient, postgresBackendFactory } from '../../../src/backends/postgres/index.ts';
import type { PostgresBackend, PostgresConfig } from '../../../src/backends/postgres/index.ts';
import { BORROW_QUERY } from '../../../src/backends/postgres/sql.ts';
import type { BackendNode } from '../../../src/infra/index.ts';
import type { Observation, ProvisionResult } from '../../../src/runtime/index.ts';
import { eventually } from '../../support/daemon.ts';
import { PG_VERSIONS, startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';
import { captureLogger, opContext, pgNode } from './helpers.ts';

// examples/postgres/README.md: the backend's user "must be a superuser, or hold CREATEROLE and
// CREATEDB". Such a user may create a database or schema for an owner, grant on what the owner owns
// or set its default privileges only as the owner's member (from PostgreSQL 16 with INHERIT and
// SET): the database of a role it had just created failed with `must be able to SET ROLE` (before
// 16, `must be member of role`). It borrows the membership for each operation's transaction only.
describe.each(PG_VERSIONS)('a backend user with CREATEROLE and CREATEDB, not a superuser, on PostgreSQL %i', (version) => {
  const env: NodeJS.ProcessEnv = { ADMIN_PASSWORD: 'createrole-admin-pw' };
  const logs = captureLogger();
  const ctx = opContext(logs.log);
  let server: TestPostgres;
  let backend: PostgresBackend;
  let config: PostgresConfig;

  /** One pass over `nodes`, in order: observe, then create the absent or update the drifted. */
  async function pass(nodes: readonly BackendNode[]): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const n of nodes) {
      const obs = (await backend.observe([n], ctx)).get(n.id)!;
      let r: ProvisionResult | Observation = obs;
      if (obs.status === 'absent') r = await backend.create(n, ctx);
      else if (obs.status === 'drifted') r = await backend.update(n, obs.diffs, ctx);
      out[n.id] = r.status === 'failed' ? `failed: ${r.fault.message} (${r.fault.hint ?? ''})` : r.status;
    }
    return out;
  }

  async function statuses(nodes: readonly BackendNode[]): Promise<Record<string, string>> {
    const observed = await backend.observe(nodes, ctx);
    return Object.fromEntries(nodes.map((n) => [n.id, observed.get(n.id)!.status]));
  }

  /** The memberships the backend user holds beyond the ADMIN OPTION that PostgreSQL 16 gives it on each role it creates. */
  async function borrowedLeft(): Promise<unknown[]> {
    return server.sql(`SELECT roleid::regrole::text AS role, grantor::regrole::text AS grantor FROM pg_auth_members WHERE member = 'cr_admin'::regrole AND NOT admin_option`);
  }

  beforeAll(async () => {
    server = await startTestPostgres({ version });
    await server.sql(`CREATE ROLE cr_admin LOGIN CREATEROLE CREATEDB PASSWORD '${env.ADMIN_PASSWORD!}'`);
    config = postgresBackendFactory.configSchema.parse({ host: server.host, port: server.port, user: 'cr_admin', password: { fromEnv: 'ADMIN_PASSWORD' }, sslmode: 'disable' });
    backend = postgresBackendFactory.create(config, { id: 'pg', cwd: tmpdir(), stateDir: tmpdir(), log: logs.log, env }) as PostgresBackend;
  });

  afterAll(async () => {
    await backend?.close();
    await server?.destroy();
  });

  const roles = [
    pgNode('owner', 'postgres.role', { name: 'cr_owner' }),
    pgNode('owner2', 'postgres.role', { name: 'cr_owner2' }),
    pgNode('reader', 'postgres.role', { name: 'cr_reader' }),
    pgNode('app', 'postgres.role', { name: 'cr_app', login: true, memberOf: ['cr_reader'] }),
  ];
  const objects = (owner: string): BackendNode[] => [
    pgNode('db', 'postgres.database', { name: 'cr_db', owner }),
    pgNode('schema', 'postgres.schema', { name: 'cr_schema', database: 'cr_db', owner }),
    pgNode('ext', 'postgres.extension', { name: 'citext', database: 'cr_db', schema: 'cr_schema' }),
    pgNode('connect', 'postgres.grant', { role: 'cr_reader', database: 'cr_db', on: 'database', privileges: ['CONNECT'] }),
    pgNode('usage', 'postgres.grant', { role: 'cr_reader', database: 'cr_db', schema: 'cr_schema', on: 'schema', privileges: ['USAGE'] }),
    pgNode('tables', 'postgres.grant', { role: 'cr_reader', database: 'cr_db', schema: 'cr_schema', on: 'tables', privileges: ['SELECT'] }),
    pgNode('defaults', 'postgres.grant', { role: 'cr_reader', database: 'cr_db', schema: 'cr_schema', on: 'defaultTables', forRole: owner, privileges: ['SELECT'] }),
  ];

  it('creates a database, schema, extension and grants for roles it created, corrects their owners, and deletes them; it is left holding no membership', async () => {
    const all = [...roles, ...objects('cr_owner')];
    // The tables grant has no tables to cover yet: up to date as it is.
    expect(await pass(all)).toEqual({ ...Object.fromEntries(all.map((n) => [n.id, 'done'])), tables: 'upToDate' });
    expect(await server.sql(`SELECT datname, datdba::regrole::text AS owner FROM pg_database WHERE datname = 'cr_db'`)).toEqual([{ datname: 'cr_db', owner: 'cr_owner' }]);
    // A table of another role: the tables grant has one to cover (granted as its owner). One the owner
    // makes, the default privileges cover.
    await server.sql('CREATE TABLE cr_schema.t1 (x int); ALTER TABLE cr_schema.t1 OWNER TO cr_owner2', [], 'cr_db');
    expect((await pass(all)).tables).toBe('done');
    await server.sql('SET ROLE cr_owner; CREATE TABLE cr_schema.t2 (x int)', [], 'cr_db');
    expect(Object.values(await statuses(all)).every((s) => s === 'upToDate')).toBe(true);
    expect(await server.sql(`SELECT has_table_privilege('cr_reader', 'cr_schema.t1', 'SELECT') AND has_table_privilege('cr_reader', 'cr_schema.t2', 'SELECT') AS reads`, [], 'cr_db')).toEqual([
      { reads: true },
    ]);

    // Given to another owner: ALTER … OWNER as the owner it has and the one it gets.
    const moved = objects('cr_owner2');
    await server.sql('ALTER TABLE cr_schema.t2 OWNER TO cr_owner2', [], 'cr_db');
    const again = await pass(moved);
    expect([again.db, again.schema]).toEqual(['done', 'done']);
    expect(Object.values(await statuses([...roles, ...moved])).every((s) => s === 'upToDate')).toBe(true);
    expect(await server.sql(`SELECT datdba::regrole::text AS owner FROM pg_database WHERE datname = 'cr_db'`)).toEqual([{ owner: 'cr_owner2' }]);
    expect(await borrowedLeft()).toEqual([]);

    // Deleted, dependents first (the tables first: a database holding data is kept without force).
    await server.sql('DROP TABLE cr_schema.t1, cr_schema.t2', [], 'cr_db');
    for (const n of [...moved].reverse()) expect((await backend.delete(n, ctx)).status, n.id).toBe('done');
    expect(await server.sql(`SELECT datname FROM pg_database WHERE datname = 'cr_db'`)).toEqual([]);
    expect(await borrowedLeft()).toEqual([]);
    for (const role of ['cr_owner', 'cr_owner2']) {
      expect(await server.sql(`SELECT pg_has_role('cr_admin', $1, 'USAGE') AS usage`, [role])).toEqual([{ usage: false }]);
    }
  });

  it('a database it may drop only as its owner is not given to it while sessions it cannot end are on it: the drop fails and the owner keeps it', async () => {
    const dropper = pgNode('dropper', 'postgres.role', { name: 'cr_dropper', login: true });
    const db = (force: boolean): BackendNode => pgNode('busy', 'postgres.database', { name: 'cr_busy', owner: 'cr_dropper', force });
    expect(Object.values(await pass([dropper, db(false)])).every((s) => s === 'done' || s === 'upToDate')).toBe(true);
    const owned = async (): Promise<unknown[]> =>
      server.sql(`SELECT datdba::regrole::text AS owner, has_database_privilege('cr_dropper', 'cr_busy', 'CREATE') AS creates FROM pg_database WHERE datname = 'cr_busy'`);

    // An application connected (here the superuser's session): PostgreSQL would refuse the drop.
    const app = await server.client('cr_busy');
    try {
      for (const force of [false, true]) {
        const r = await backend.delete(db(force), ctx);
        expect(r, `force: ${force}`).toMatchObject({ status: 'failed', fault: { class: 'transient', code: '55006', message: 'database "cr_busy" is being accessed by other users' } });
        expect(await owned()).toEqual([{ owner: 'cr_dropper', creates: true }]);
      }
    } finally {
      await app.end();
    }

    // With force, a session of the owner is ended (as the owner, borrowed) and the database dropped.
    await server.sql(`ALTER ROLE cr_dropper PASSWORD 'dropper-pw'`);
    const ownerSession = new pg.Client({ host: server.host, port: server.port, user: 'cr_dropper', password: 'dropper-pw', database: 'cr_busy' });
    ownerSession.on('error', () => undefined);
    await ownerSession.connect();
    try {
      expect(await backend.delete(db(true), ctx)).toMatchObject({ status: 'done' });
    } finally {
      await ownerSession.end().catch(() => undefined);
    }
    expect(await owned()).toEqual([]);
    expect(await borrowedLeft()).toEqual([]);
  });

  it('a database whose hand-over to its owner fails (the owner dropped meanwhile) is dropped again, not left the backend user\'s', async () => {
    expect(await pass([pgNode('gone', 'postgres.role', { name: 'cr_gone' })])).toEqual({ gone: 'done' });
    // The owner dropped out of band between CREATE DATABASE and the hand-over: right before the latter.
    const original = PgClient.prototype.execute;
    const execute = vi.spyOn(PgClient.prototype, 'execute').mockImplementation(async function (this: PgClient, statements, options) {
      if (statements.some((st) => st.text.startsWith('ALTER DATABASE "cr_gone_db" OWNER TO "cr_gone"'))) await server.sql('DROP ROLE cr_gone');
      return original.call(this, statements, options);
    });
    try {
      const r = await backend.create(pgNode('gone-db', 'postgres.database', { name: 'cr_gone_db', owner: 'cr_gone' }), ctx);
      expect(r).toMatchObject({ status: 'failed', fault: { class: 'transient', code: '42704' } });
    } finally {
      execute.mockRestore();
    }
    expect(await server.sql(`SELECT datname FROM pg_database WHERE datname = 'cr_gone_db'`)).toEqual([]);
    expect(await borrowedLeft()).toEqual([]);
  });

  /**
   * Runs `run` with the operation's signal aborted as a statement starting with `at` is sent (the
   * operation's timeout, a shutdown): that statement fails for it.
   */
  async function abortedAt<T>(at: string, run: (signalled: typeof ctx) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const original = PgClient.prototype.execute;
    const execute = vi.spyOn(PgClient.prototype, 'execute').mockImplementation(async function (this: PgClient, statements, options) {
      if (statements.some((st) => st.text.startsWith(at))) controller.abort();
      return original.call(this, statements, options);
    });
    try {
      return await run(opContext(logs.log, undefined, controller.signal));
    } finally {
      execute.mockRestore();
    }
  }

  it('a database whose hand-over to its owner fails for the operation\'s abort is still dropped again', async () => {
    expect(await pass([pgNode('late', 'postgres.role', { name: 'cr_late' })])).toEqual({ late: 'done' });
    const r = await abortedAt('ALTER DATABASE "cr_late_db" OWNER TO "cr_late"', (signalled) =>
      backend.create(pgNode('late-db', 'postgres.database', { name: 'cr_late_db', owner: 'cr_late' }), signalled),
    );
    expect(r).toMatchObject({ status: 'failed', fault: { class: 'transient', code: 'aborted' } });
    expect(await server.sql(`SELECT datname FROM pg_database WHERE datname = 'cr_late_db'`)).toEqual([]);
    expect(await borrowedLeft()).toEqual([]);
  });

  it('a database whose drop fails for the operation\'s abort still goes back to its owner', async () => {
    const db = pgNode('kept-db', 'postgres.database', { name: 'cr_kept_db', owner: 'cr_kept' });
    expect(await pass([pgNode('kept', 'postgres.role', { name: 'cr_kept' }), db])).toEqual({ kept: 'done', 'kept-db': 'done' });
    const r = await abortedAt('DROP DATABASE "cr_kept_db"', (signalled) => backend.delete(db, signalled));
    expect(r).toMatchObject({ status: 'failed', fault: { class: 'transient', code: 'aborted' } });
    expect(await server.sql(`SELECT datdba::regrole::text AS owner, has_database_privilege('cr_kept', 'cr_kept_db', 'CREATE') AS creates FROM pg_database WHERE datname = 'cr_kept_db'`)).toEqual([
      { owner: 'cr_kept', creates: true },
    ]);
    expect(await borrowedLeft()).toEqual([]);
  });

  it('an operation aborted while it asks whether the backend user is a superuser fails none of the operations asking at once', async () => {
    expect(await pass([pgNode('asked', 'postgres.role', { name: 'cr_asked' })])).toEqual({ asked: 'done' });
    // A backend of its own: one that has not read it yet.
    const fresh = postgresBackendFactory.create(config, { id: 'pg', cwd: tmpdir(), stateDir: tmpdir(), log: logs.log, env }) as PostgresBackend;
    try {
      const aborted = new AbortController();
      aborted.abort();
      const db = (name: string): BackendNode => pgNode(name, 'postgres.database', { name: `cr_${name}`, owner: 'cr_asked' });
      const [first, second] = await Promise.all([fresh.create(db('asked_a'), opContext(logs.log, undefined, aborted.signal)), fresh.create(db('asked_b'), ctx)]);
      expect(first).toMatchObject({ status: 'failed', fault: { code: 'aborted' } });
      expect(second).toMatchObject({ status: 'done' });
    } finally {
      await fresh.close();
    }
    expect(await server.sql(`SELECT datname, datdba::regrole::text AS owner FROM pg_database WHERE datname LIKE 'cr_asked%'`)).toEqual([{ datname: 'cr_asked_b', owner: 'cr_asked' }]);
  });

  it('a membership in the owner granted to it between the borrow query and the borrow fails the borrow (retried), and survives: the revoke does not end it', async () => {
    expect(await pass([pgNode('lent', 'postgres.role', { name: 'cr_lent' })])).toEqual({ lent: 'done' });
    const db = pgNode('lent-db', 'postgres.database', { name: 'cr_lent_db', owner: 'cr_lent' });
    // From 16, the membership the borrow's revoke would end is the backend user's own grant (as the
    // role handler makes for a backend user declared with memberOf); before, any.
    const grant = `GRANT cr_lent TO cr_admin${server.version >= 16 ? ' GRANTED BY cr_admin' : ''}`;
    const member = async (): Promise<string[]> => (await borrowedLeft()).map((r) => (r as { role: string }).role);
    const original = PgClient.prototype.query;
    let granted = false;
    const query = vi.spyOn(PgClient.prototype, 'query').mockImplementation(async function (this: PgClient, text, values, options) {
      const rows = await original.call(this, text, values, options);
      if (text === BORROW_QUERY && !granted) {
        granted = true;
        await server.sql(grant);
      }
      return rows as never;
    });
    try {
      expect(await backend.create(db, ctx)).toMatchObject({ status: 'failed', fault: { class: 'transient', code: '40001' } });
    } finally {
      query.mockRestore();
    }
    expect(granted).toBe(true);
    expect(await member()).toEqual(['cr_lent']);
    expect(await server.sql(`SELECT datname FROM pg_database WHERE datname = 'cr_lent_db'`)).toEqual([]);

    // Once it is gone, the retry borrows it.
    await server.sql(`REVOKE cr_lent FROM cr_admin${server.version >= 16 ? ' GRANTED BY cr_admin' : ''}`);
    expect(await pass([db])).toEqual({ 'lent-db': 'done' });
    expect(await server.sql(`SELECT datdba::regrole::text AS owner FROM pg_database WHERE datname = 'cr_lent_db'`)).toEqual([{ owner: 'cr_lent' }]);
    expect(await member()).toEqual([]);
  });

  /** How many of the backend user's sessions wait for a lock (on the table `on`, if given). */
  async function waiting(on?: string): Promise<number> {
    const [row] = await server.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE NOT l.granted AND a.usename = 'cr_admin' AND ($1::text IS NULL OR l.relation = to_regclass($1))`,
      [on ?? null],
    );
    return row!.n;
  }

  it('a change of its own memberships asked for while a borrow of the same role is under way waits its turn: both succeed, and the goal\'s membership is left', async () => {
    expect(await pass([pgNode('mine', 'postgres.role', { name: 'cr_mine' })])).toEqual({ mine: 'done' });
    // The backend user's own role, made a member of the owner.
    const self = pgNode('self', 'postgres.role', { name: 'cr_admin', login: true, createdb: true, createrole: true, memberOf: ['cr_mine'] });
    const own = new AbortController();
    let change: Promise<ProvisionResult> | undefined;
    let changed = false;
    const sent = new Set<AbortSignal>();
    const [query, execute] = [PgClient.prototype.query, PgClient.prototype.execute];
    vi.spyOn(PgClient.prototype, 'execute').mockImplementation(async function (this: PgClient, statements, options) {
      sent.add(options.signal);
      return execute.call(this, statements, options);
    });
    // Right after the database's borrow query (the owner is not held: to be borrowed), the change is
    // asked for, and has its way before the borrow goes on, unless it waits its turn: listening to its
    // signal (which would drop it from the queue) before it has sent anything.
    vi.spyOn(PgClient.prototype, 'query').mockImplementation(async function (this: PgClient, text, values, options) {
      sent.add(options.signal);
      const rows = await query.call(this, text, values, options);
      if (text === BORROW_QUERY && change === undefined) {
        change = backend.update(self, [{ path: 'memberOf', desired: ['cr_mine'], actual: [] }], opContext(logs.log, undefined, own.signal));
        void change.finally(() => (changed = true));
        await eventually(() => changed || (getEventListeners(own.signal, 'abort').length > 0 && !sent.has(own.signal)), 10_000, 'the change done, or waiting its turn');
      }
      return rows as never;
    });
    try {
      const made = await backend.create(pgNode('mine-db', 'postgres.database', { name: 'cr_mine_db', owner: 'cr_mine' }), ctx);
      expect(change).toBeDefined();
      expect([made, await change]).toMatchObject([{ status: 'done' }, { status: 'done' }]);
      expect(await server.sql(`SELECT datdba::regrole::text AS owner FROM pg_database WHERE datname = 'cr_mine_db'`)).toEqual([{ owner: 'cr_mine' }]);
      // The goal's membership, granted by the backend user: not ended by the borrow's revoke.
      expect(await borrowedLeft()).toEqual([{ role: 'cr_mine', grantor: 'cr_admin' }]);
    } finally {
      vi.restoreAllMocks();
      await server.sql(`REVOKE cr_mine FROM cr_admin${server.version >= 16 ? ' GRANTED BY cr_admin' : ''}`);
    }
  });

  it('two operations that borrow the same owner at once neither see nor end each other\'s membership: the second\'s grant waits for the first\'s transaction, and both succeed', async () => {
    const db = 'cr_pair_db';
    expect(await pass([pgNode('pair', 'postgres.role', { name: 'cr_pair' }), pgNode('pair-db', 'postgres.database', { name: db, owner: 'cr_pair' })])).toEqual({ pair: 'done', 'pair-db': 'done' });
    const schema = (name: string): BackendNode => pgNode(name, 'postgres.schema', { name: `cr_${name}`, database: db, owner: 'cr_pair' });
    // The first stops at its CREATE SCHEMA, its membership granted: a session of the superuser is
    // creating that schema. The second's grant then waits for the first's transaction (on the row it
    // wrote before 16; on the role, which a grant locks, from 16).
    const blocker = await server.client(db);
    try {
      await blocker.query('BEGIN');
      await blocker.query('CREATE SCHEMA cr_first');
      const first = backend.create(schema('first'), ctx);
      await eventually(async () => (await waiting()) === 1, 10_000, 'the first waiting at its CREATE SCHEMA');
      const second = backend.create(schema('second'), ctx);
      await eventually(async () => (await waiting()) === 2, 10_000, 'the second waiting for the first');
      await blocker.query('ROLLBACK');
      expect(await Promise.all([first, second])).toMatchObject([{ status: 'done' }, { status: 'done' }]);
    } finally {
      await blocker.end();
    }
    expect(await server.sql(`SELECT nspname, nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname IN ('cr_first', 'cr_second') ORDER BY 1`, [], db)).toEqual([
      { nspname: 'cr_first', owner: 'cr_pair' },
      { nspname: 'cr_second', owner: 'cr_pair' },
    ]);
    expect(await borrowedLeft()).toEqual([]);
  });

  /**
   * Creates a schema of `cr_taken` (borrowed) while the borrow's grant waits on a lock held by a session
   * of the superuser, which then runs `grant` and commits: a membership granted after every read the
   * borrow makes, as its own grant runs.
   */
  async function grantedAtTheGrant(grant: string): Promise<ProvisionResult> {
    const db = 'cr_taken_db';
    const made = await pass([pgNode('taken', 'postgres.role', { name: 'cr_taken' }), pgNode('taken-db', 'postgres.database', { name: db, owner: 'cr_taken' })]);
    expect(Object.values(made).every((s) => s === 'done' || s === 'upToDate'), JSON.stringify(made)).toBe(true);
    const locker = await server.client();
    try {
      await locker.query('BEGIN');
      // Reads of the memberships go on; a GRANT (ROW EXCLUSIVE) waits.
      await locker.query('LOCK TABLE pg_auth_members IN SHARE MODE');
      const schema = backend.create(pgNode('taken-schema', 'postgres.schema', { name: 'cr_taken_schema', database: db, owner: 'cr_taken' }), ctx);
      await eventually(async () => (await waiting('pg_auth_members')) === 1, 10_000, 'the borrow\'s grant waiting');
      await locker.query(grant);
      await locker.query('COMMIT');
      const r = await schema;
      expect(await server.sql(`SELECT nspname FROM pg_namespace WHERE nspname = 'cr_taken_schema'`, [], db)).toEqual([]);
      return r;
    } finally {
      await locker.end();
    }
  }

  const takenFault = { class: 'transient', code: '40001', message: 'role "cr_taken" was granted to "cr_admin" meanwhile: not borrowed, lest the revoke that ends the borrowing end that membership' };
  const takenGrant = `SELECT roleid::regrole::text AS role, grantor::regrole::text AS grantor, to_jsonb(m) ->> 'inherit_option' AS inherit
    FROM pg_auth_members m WHERE member = 'cr_admin'::regrole AND roleid = 'cr_taken'::regrole AND NOT admin_option`;

  it('a membership in the owner granted to it as the borrow grants it (after the borrow\'s reads) fails the borrow, and survives: the revoke does not end it', async () => {
    // From 16, the membership the borrow's revoke would end is the backend user's own grant; before, any.
    const by = server.version >= 16 ? ' GRANTED BY cr_admin' : '';
    expect(await grantedAtTheGrant(`GRANT cr_taken TO cr_admin${by}`)).toMatchObject({ status: 'failed', fault: takenFault });
    expect(await server.sql(takenGrant)).toMatchObject([{ role: 'cr_taken', grantor: server.version >= 16 ? 'cr_admin' : server.user }]);
    await server.sql(`REVOKE cr_taken FROM cr_admin${by}`);
  });

  it.skipIf(version < 16)('from PostgreSQL 16, one granted with other options as the borrow grants it is neither changed nor revoked: the borrow fails', async () => {
    expect(await grantedAtTheGrant('GRANT cr_taken TO cr_admin WITH INHERIT FALSE GRANTED BY cr_admin')).toMatchObject({ status: 'failed', fault: takenFault });
    expect(await server.sql(takenGrant)).toEqual([{ role: 'cr_taken', grantor: 'cr_admin', inherit: 'false' }]);
    await server.sql('REVOKE cr_taken FROM cr_admin GRANTED BY cr_admin');
  });

  it('its own role, made a member of a role it created, is steady: the ADMIN OPTION PostgreSQL 16 gives it as that role\'s creator is neither drift nor revoked', async () => {
    const self = pgNode('self', 'postgres.role', { name: 'cr_admin', login: true, createdb: true, createrole: true, memberOf: ['cr_joined'] });
    expect(await pass([pgNode('joined', 'postgres.role', { name: 'cr_joined' })])).toEqual({ joined: 'done' });
    // Stated a member of nothing, it is as the goal has it: that ADMIN OPTION is no membership.
    expect(await statuses([pgNode('self', 'postgres.role', { name: 'cr_admin', login: true, createdb: true, createrole: true })])).toEqual({ self: 'upToDate' });
    expect(await pass([self])).toEqual({ self: 'done' });
    expect(await backend.observe([self], ctx)).toEqual(new Map([['self', expect.objectContaining({ status: 'upToDate' })]]));
    const grants = await server.sql(`SELECT grantor::regrole::text AS grantor, admin_option AS admin FROM pg_auth_members WHERE member = 'cr_admin'::regrole AND roleid = 'cr_joined'::regrole ORDER BY admin_option`);
    expect(grants).toEqual(server.version >= 16 ? [{ grantor: 'cr_admin', admin: false }, { grantor: server.user, admin: true }] : [{ grantor: 'cr_admin', admin: false }]);
  });

  it('an owner it may not act as (a superuser) is refused with a hint that says what to grant', async () => {
    await server.sql('CREATE ROLE cr_super SUPERUSER');
    const r = await backend.create(pgNode('db-super', 'postgres.database', { name: 'cr_super_db', owner: 'cr_super' }), ctx);
    const grant = `GRANT "cr_super" TO "cr_admin"${server.version >= 16 ? ' WITH INHERIT TRUE, SET TRUE' : ''}`;
    expect(r).toMatchObject({ status: 'failed', fault: { class: 'auth', code: '42501', hint: expect.stringContaining(grant) } });
    expect(await server.sql(`SELECT datname FROM pg_database WHERE datname = 'cr_super_db'`)).toEqual([]);
  });
});
