import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_DEADLINE_MARGIN_MS, PgClient, postgresBackendFactory, postgresConfigSchema } from '../../../src/backends/postgres/index.ts';
import type { PostgresBackend, PostgresConfig } from '../../../src/backends/postgres/index.ts';
import { FaultError } from '../../../src/runtime/index.ts';
import { startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';
import { captureLogger, opContext, pgNode } from './helpers.ts';

/*
 * A server that stops answering once the connection is made (a hung server, a proxy, a network that
 * drops what it carries): the statement_timeout sent to the server cannot end a statement the server
 * never received. The backend gives up on its own a margin after statementTimeout, and on the
 * operation's signal, and drops the connection.
 */
let server: TestPostgres;
let dir: string;

beforeAll(async () => {
  server = await startTestPostgres();
  dir = await mkdtemp(join(tmpdir(), 'ds-pg-unanswered-'));
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  await rm(dir, { recursive: true, force: true });
});

/** Message types a client sends to run a statement: simple Query ('Q'), Parse ('P') of the extended protocol. */
const QUERY_MESSAGES = new Set([0x51, 0x50]);
/** ReadyForQuery, idle: login is over. */
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5]);

interface SwallowingProxy {
  readonly port: number;
  /** How many connections were made through it. */
  readonly connections: () => number;
  /** Resolves when the first connection's first statement has been swallowed. */
  readonly swallowed: Promise<void>;
  /** Resolves when the connection that statement came on is closed by the client. */
  readonly frozenClosed: Promise<void>;
  close(): Promise<void>;
}

/** A TCP proxy to the test server that passes the first connection's login, then swallows its first statement and everything after; later connections pass through. */
async function swallowingProxy(): Promise<SwallowingProxy> {
  let count = 0;
  const sockets = new Set<Socket>();
  let onSwallowed!: () => void;
  let onFrozenClosed!: () => void;
  const swallowed = new Promise<void>((r) => (onSwallowed = r));
  const frozenClosed = new Promise<void>((r) => (onFrozenClosed = r));
  const proxy: Server = createServer((c) => {
    const first = ++count === 1;
    const u = connect(server.port, server.host);
    sockets.add(c).add(u);
    let frozen = false;
    let started = false;
    c.on('data', (d) => {
      if (frozen) return;
      if (first && started && QUERY_MESSAGES.has(d[0] ?? 0)) {
        frozen = true;
        onSwallowed();
        return;
      }
      u.write(d);
    });
    u.on('data', (d) => {
      if (frozen) return;
      c.write(d);
      if (d.includes(READY_FOR_QUERY)) started = true;
    });
    c.on('close', () => {
      u.destroy();
      if (frozen) onFrozenClosed();
    });
    u.on('close', () => c.destroy());
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  return {
    port: (proxy.address() as AddressInfo).port,
    connections: () => count,
    swallowed,
    frozenClosed,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => proxy.close(r));
    },
  };
}

const open: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((o) => o.close()));
});

function config(port: number, statementTimeout: number): PostgresConfig {
  return postgresConfigSchema().parse({ host: server.host, port, user: server.user, password: { fromEnv: 'PGPW' }, sslmode: 'disable', connectTimeout: '3s', statementTimeout, lockTimeout: 200 });
}

describe('a server that stops answering after the connection is made', () => {
  it('an observation fails as a transient fault naming the server, a margin after statementTimeout; the next one runs on a new connection', async () => {
    const proxy = await swallowingProxy();
    open.push(proxy);
    const b = postgresBackendFactory.create(config(proxy.port, 300), { id: 'pg', cwd: dir, stateDir: dir, log: captureLogger().log, env: { PGPW: server.password } }) as PostgresBackend;
    open.push(b);
    const role = pgNode('r', 'postgres.role', { name: 'unanswered_role' });

    const first = (await b.observe([role], opContext(captureLogger().log))).get(role.id);
    expect(first?.status).toBe('failed');
    const f = first?.status === 'failed' ? first.fault : undefined;
    expect(f).toMatchObject({ class: 'transient', code: 'no-answer' });
    expect(f?.message).toBe(`the PostgreSQL server at 127.0.0.1:${proxy.port} did not answer within ${300 + CLIENT_DEADLINE_MARGIN_MS} ms (statementTimeout and a ${CLIENT_DEADLINE_MARGIN_MS} ms margin): the connection is dropped`);
    expect(f?.hint).toContain('statementTimeout');
    // Dropped, not handed back to the pool: the next observation would wait on it again.
    await proxy.frozenClosed;
    expect((await b.observe([role], opContext(captureLogger().log))).get(role.id)).toEqual({ status: 'absent' });
    expect(proxy.connections()).toBe(2);
  }, 30_000);

  it("the operation's signal (a shutdown) ends the wait at once, with no statementTimeout to bound it, and drops the connection", async () => {
    const proxy = await swallowingProxy();
    open.push(proxy);
    const c = new PgClient({ config: config(proxy.port, 0), env: { PGPW: server.password }, cwd: dir, log: captureLogger().log });
    open.push(c);
    const stop = new AbortController();
    const pending = c.query('SELECT 1', [], { signal: stop.signal }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await proxy.swallowed;
    stop.abort();
    const err = await pending;
    expect(err).toBeInstanceOf(FaultError);
    expect((err as FaultError).fault).toMatchObject({ class: 'transient', code: 'aborted' });
    await proxy.frozenClosed;
    expect(await c.query<{ one: number }>('SELECT 1 AS one', [], { signal: AbortSignal.timeout(10_000) })).toEqual([{ one: 1 }]);
    expect(proxy.connections()).toBe(2);
  }, 30_000);
});
