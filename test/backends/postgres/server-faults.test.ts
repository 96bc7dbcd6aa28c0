import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgClient, postgresBackendFactory, postgresConfigSchema } from '../../../src/backends/postgres/index.ts';
import type { PostgresBackend } from '../../../src/backends/postgres/index.ts';
import { FaultError } from '../../../src/runtime/index.ts';
import type { Fault } from '../../../src/runtime/index.ts';
import { startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';
import { captureLogger, opContext, pgNode } from './helpers.ts';

/*
 * A server that answers, but refuses the backend: a wrong password, a role
 * or a maintenance database that does not exist, an administrator ending
 * its sessions. Each fault names the server (an operator with several
 * needs to know which one), and the class decides what the fault policy
 * does: auth is held after a few attempts, the rest is retried.
 */
let server: TestPostgres;
let dir: string;
const open: PostgresBackend[] = [];

beforeAll(async () => {
  server = await startTestPostgres();
  dir = await mkdtemp(join(tmpdir(), 'ds-pg-server-faults-'));
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(open.map((b) => b.close()));
  await server?.destroy();
  await rm(dir, { recursive: true, force: true });
});

function backend(config: Record<string, unknown>, env: NodeJS.ProcessEnv = { PGPW: server.password }): PostgresBackend {
  const parsed = postgresBackendFactory.configSchema.parse({
    host: server.host,
    port: server.port,
    user: server.user,
    password: { fromEnv: 'PGPW' },
    sslmode: 'disable',
    connectTimeout: '3s',
    ...config,
  });
  const b = postgresBackendFactory.create(parsed, { id: 'pg', cwd: dir, stateDir: dir, log: captureLogger().log, env }) as PostgresBackend;
  open.push(b);
  return b;
}

const role = pgNode('r', 'postgres.role', { name: 'sf_role' });

/** Polls pg_stat_activity until a session of the backend's (application_name 'desiredstate') matches `where`; fails after 10 s. */
async function waitForSession(where: string, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const rows = await server.sql(`SELECT pid FROM pg_stat_activity WHERE application_name = 'desiredstate' AND ${where}`);
    if (rows.length > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no session of the backend's ${what} within 10 s`);
}

/**
 * Polls pg_stat_activity until no session is still logging in (state 'starting'); fails after 10 s. A
 * connection given up during its login and left open stays so until the server's authentication_timeout
 * (60 s): a one-shot command waited that long to exit.
 */
async function waitForNoLoginInProgress(): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const rows = await server.sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'starting'");
    if (rows.length === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('a connection still logging in after 10 s: given up by the backend, and left open');
}

async function observeFault(b: PostgresBackend): Promise<Fault> {
  const obs = (await b.observe([role], opContext(captureLogger().log))).get(role.id);
  expect(obs?.status).toBe('failed');
  return (obs as { fault: Fault }).fault;
}

describe('faults of a server that answers but refuses', () => {
  const address = (): string => `127.0.0.1:${server.port}`;

  it('a wrong password: an auth fault naming the server and the user, never the password', async () => {
    const f = await observeFault(backend({}, { PGPW: 'not-the-password' }));
    expect(f).toMatchObject({ class: 'auth', code: '28P01' });
    expect(f.message).toBe(`the PostgreSQL server at ${address()}: password authentication failed for user "postgres"`);
    expect(JSON.stringify(f)).not.toContain('not-the-password');
  });

  it('a password secret that cannot be read: a permanent fault naming the reference, and the connection is closed at once', async () => {
    const f = await observeFault(backend({ password: { fromEnv: 'SF_NOPE_SECRET_ENV' } }, {}));
    expect(f).toMatchObject({ class: 'permanent', code: 'DS_SECRET_UNAVAILABLE' });
    expect(f.message).toBe(`the password for the PostgreSQL server at ${address()} (config.password): secret environment variable SF_NOPE_SECRET_ENV is not set`);
    await waitForNoLoginInProgress();
  });

  it('a server that asks for a password the backend is not given: an auth fault saying so, and the connection is closed at once', async () => {
    const f = await observeFault(backend({ password: undefined }, {}));
    expect(f).toMatchObject({ class: 'auth', code: 'no-password' });
    expect(f.message).toBe(`the PostgreSQL server at ${address()} asks for a password for user "postgres", and the backend's config gives none`);
    expect(f.hint).toContain('config.password');
    await waitForNoLoginInProgress();
  });

  it('a role that does not exist: an auth fault naming the server', async () => {
    const f = await observeFault(backend({ user: 'sf_nobody' }));
    expect(f.class).toBe('auth');
    expect(f.message).toMatch(new RegExp(`^the PostgreSQL server at ${address()}: .*"sf_nobody"`));
  });

  it('a maintenance database that does not exist: transient (it may be being restored), naming the server and config.database', async () => {
    const f = await observeFault(backend({ database: 'sf_missing' }));
    expect(f).toMatchObject({ class: 'transient', code: '3D000' });
    expect(f.message).toBe(`the PostgreSQL server at ${address()}: database "sf_missing" does not exist`);
    expect(f.hint).toContain('config.database');
    expect(f.hint).not.toContain('dependsOn');
  });

  it('a schema in a database that does not exist yet is absent, as before', async () => {
    const schema = pgNode('s', 'postgres.schema', { name: 'app', database: 'sf_not_yet' });
    const obs = (await backend({}).observe([schema], opContext(captureLogger().log))).get(schema.id);
    expect(obs).toEqual({ status: 'absent' });
  });

  // prefer connects through a stream of ours (prefer-tls.ts): a session ended under it must reach pg the same way.
  it.each(['disable', 'prefer'] as const)('a statement whose session an administrator ends (57P01, as a fast shutdown does): transient, naming the server; the next query reconnects (sslmode %s)', async (sslmode) => {
    const config = postgresConfigSchema().parse({ host: server.host, port: server.port, user: server.user, password: { fromEnv: 'PGPW' }, sslmode, connectTimeout: '3s' });
    const c = new PgClient({ config, env: { PGPW: server.password }, cwd: dir, log: captureLogger().log });
    try {
      const signal = AbortSignal.timeout(20_000);
      const slow = c.query("SELECT pg_sleep(10) AS slept", [], { signal }).then(
        () => undefined,
        (err: unknown) => err,
      );
      // Wait until the statement runs, then end its session.
      await waitForSession("query LIKE 'SELECT pg_sleep(10)%' AND state = 'active'", 'running the sleep');
      await server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(10)%' AND application_name = 'desiredstate'");
      const err = await slow;
      expect(err).toBeInstanceOf(FaultError);
      const f = (err as FaultError).fault;
      expect(f).toMatchObject({ class: 'transient', code: '57P01' });
      expect(f.message).toBe(`the PostgreSQL server at ${address()}: terminating connection due to administrator command`);
      expect(await c.query<{ one: number }>('SELECT 1 AS one', [], { signal })).toEqual([{ one: 1 }]);
    } finally {
      await c.close();
    }
  });

  it('more databases at once than pools kept open: every query succeeds (a pool handed out was closed under it), and the pools are trimmed after', async () => {
    const names = Array.from({ length: 6 }, (_, i) => `sf_pools_${i}`);
    for (const n of names) await server.sql(`CREATE DATABASE ${n}`);
    const config = postgresConfigSchema().parse({ host: server.host, port: server.port, user: server.user, password: { fromEnv: 'PGPW' }, sslmode: 'disable' });
    const c = new PgClient({ config, env: { PGPW: server.password }, cwd: dir, log: captureLogger().log, maxDatabasePools: 2 });
    try {
      const signal = AbortSignal.timeout(30_000);
      for (let round = 0; round < 3; round++) {
        // All at once, as a pass reads schemas, grants and extensions of every database.
        const answers = await Promise.allSettled(names.flatMap((database) => [1, 2].map(() => c.query<{ db: string }>('SELECT current_database() AS db', [], { database, signal }))));
        expect(answers.filter((a) => a.status === 'rejected').map((a) => String((a as PromiseRejectedResult).reason))).toEqual([]);
        expect(answers.map((a) => (a as PromiseFulfilledResult<{ db: string }[]>).value[0]?.db)).toEqual(names.flatMap((n) => [n, n]));
      }
      // Past the limit only while in use: two databases and the maintenance one stay open.
      expect((c as unknown as { pools: Map<string, unknown> }).pools.size).toBeLessThanOrEqual(3);
    } finally {
      await c.close();
      for (const n of names) await server.sql(`DROP DATABASE ${n}`);
    }
  });

  it('an ordinary statement error is about the statement, not the server: its message is left as PostgreSQL wrote it', async () => {
    const b = backend({});
    const r = await b.create(pgNode('g', 'postgres.grant', { role: 'sf_nobody', database: 'postgres', on: 'database', privileges: ['CONNECT'] }), opContext(captureLogger().log));
    expect(r.status).toBe('failed');
    expect((r as { fault: Fault }).fault.message).toBe('role "sf_nobody" does not exist');
  });
});

describe('a create racing the same create still in flight (a session of a process killed mid-create, another replica)', () => {
  it.each([
    { kind: 'role', node: () => pgNode('rr', 'postgres.role', { name: 'sf_race_role', login: true, password: { fromEnv: 'PGPW' } }), make: 'CREATE ROLE sf_race_role LOGIN' },
    { kind: 'schema', node: () => pgNode('rs', 'postgres.schema', { name: 'sf_race_schema', database: 'postgres' }), make: 'CREATE SCHEMA sf_race_schema' },
  ])('$kind: the create that loses is the other one adopted, not a failed second create', async ({ node, make }) => {
    const other = await server.client();
    try {
      // The other session's create is not committed yet: ours finds nothing, then waits on the catalog's unique index.
      await other.query('BEGIN');
      await other.query(make);
      const b = backend({});
      const n = node();
      expect((await b.observe([n], opContext(captureLogger().log))).get(n.id)?.status).toBe('absent');
      const ours = b.create(n, opContext(captureLogger().log));
      // Committed only once ours waits on the other's row: the unique violation (23505) path. Sent after
      // the commit, ours would meet the plain "already exists" (42710) instead, and test nothing new.
      await waitForSession("wait_event_type = 'Lock'", 'waiting on a lock');
      await other.query('COMMIT');
      const r = await ours;
      expect(r, JSON.stringify(r)).toMatchObject({ status: 'done' });
      expect((await b.observe([n], opContext(captureLogger().log))).get(n.id)?.status).toBe('upToDate');
    } finally {
      await other.end();
    }
  });
});

// No lock or statement timeout: a one-shot apply waited for ever behind another session's open ALTER
// ROLE (killed, its statement stayed waiting on the server, and committed later).
describe("a statement behind another session's lock", () => {
  it('gives up after lockTimeout, or is cancelled after statementTimeout: transient faults whose hints name the setting; once the lock is let go it goes through', async () => {
    await server.sql('CREATE ROLE sf_locked NOLOGIN');
    const node = pgNode('locked', 'postgres.role', { name: 'sf_locked', login: true });
    const diffs = [{ path: 'login', desired: true, actual: false }];
    // Without the timeouts the update waits until this signal ends it ("operation aborted").
    const ctx = (): ReturnType<typeof opContext> => ({ ...opContext(captureLogger().log), signal: AbortSignal.timeout(30_000) });
    const other = await server.client();
    try {
      await other.query('BEGIN');
      await other.query('ALTER ROLE sf_locked CONNECTION LIMIT 3');
      expect(await backend({ lockTimeout: '1s' }).update(node, diffs, ctx())).toMatchObject({
        status: 'failed',
        fault: { class: 'transient', code: '55P03', hint: expect.stringContaining("the backend's lockTimeout") },
      });
      expect(await backend({ statementTimeout: '1s' }).update(node, diffs, ctx())).toMatchObject({
        status: 'failed',
        fault: { class: 'transient', code: '57014', hint: expect.stringContaining("the backend's statementTimeout") },
      });
    } finally {
      await other.query('ROLLBACK');
      await other.end();
    }
    expect(await backend({ lockTimeout: '1s' }).update(node, diffs, ctx())).toMatchObject({ status: 'done' });
    expect(await server.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'sf_locked'")).toEqual([{ rolcanlogin: true }]);
  }, 90_000);

  // A pooler such as PgBouncer refuses lock_timeout and statement_timeout as startup parameters unless
  // told to ignore them: 0 sends none, and the server's own setting (here the role's) applies.
  it('0 sends no timeout: the setting the server has for the role applies', async () => {
    await server.sql('CREATE ROLE sf_locked0 NOLOGIN');
    const node = pgNode('locked0', 'postgres.role', { name: 'sf_locked0', login: true });
    const diffs = [{ path: 'login', desired: true, actual: false }];
    const other = await server.client();
    await server.sql(`ALTER ROLE ${server.user} SET lock_timeout = '1500ms'`);
    try {
      await other.query('BEGIN');
      await other.query('ALTER ROLE sf_locked0 CONNECTION LIMIT 3');
      const ctx = { ...opContext(captureLogger().log), signal: AbortSignal.timeout(6_000) };
      // The role's 1.5 s, not the default lockTimeout's 10 s (which the signal would end first, "aborted").
      expect(await backend({ lockTimeout: 0, statementTimeout: 0 }).update(node, diffs, ctx)).toMatchObject({ status: 'failed', fault: { code: '55P03' } });
    } finally {
      await other.query('ROLLBACK');
      await other.end();
      await server.sql(`ALTER ROLE ${server.user} RESET lock_timeout`);
    }
    expect(postgresConfigSchema().parse({ host: 'h', lockTimeout: 0, statementTimeout: 0 })).toMatchObject({ lockTimeout: 0, statementTimeout: 0 });
    expect(() => postgresConfigSchema().parse({ host: 'h', lockTimeout: -1 })).toThrow();
  }, 60_000);
});
