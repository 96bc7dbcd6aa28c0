import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyPgError, postgresBackendFactory } from '../../../src/backends/postgres/index.ts';
import type { PostgresBackend } from '../../../src/backends/postgres/index.ts';
import { freePort } from '../../support/postgres.ts';
import { captureLogger, opContext, pgNode } from './helpers.ts';

// No server at all: each case points the backend at an address where none listens.
let dir: string;
let closedPort: number;
const open: PostgresBackend[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ds-pg-unreachable-'));
  closedPort = await freePort();
});

afterAll(async () => {
  await Promise.allSettled(open.map((b) => b.close()));
  await rm(dir, { recursive: true, force: true });
});

function backend(host: string, port: number, sslmode: 'disable' | 'prefer'): PostgresBackend {
  const config = postgresBackendFactory.configSchema.parse({ host, port, connectTimeout: '3s', sslmode });
  const b = postgresBackendFactory.create(config, { id: 'orders', cwd: dir, stateDir: dir, log: captureLogger().log, env: {} }) as PostgresBackend;
  open.push(b);
  return b;
}

// prefer goes through a stream of ours that asks for TLS first (see prefer-tls.ts): the same faults.
describe.each(['disable', 'prefer'] as const)('connection faults name the server that was tried (sslmode %s)', (sslmode) => {
  const role = pgNode('orders-owner', 'postgres.role', { name: 'orders_owner', login: true }, 'orders');

  it.each([
    { name: 'a closed port', at: () => ({ host: '127.0.0.1', port: closedPort }), address: () => `127.0.0.1:${closedPort}`, codes: ['ECONNREFUSED'] },
    // No DNS in a sandbox answers EAI_AGAIN instead of ENOTFOUND: either says "cannot reach".
    { name: 'a host that does not resolve', at: () => ({ host: 'no-such-host.invalid', port: 5432 }), address: () => 'no-such-host.invalid:5432', codes: ['ENOTFOUND', 'EAI_AGAIN'] },
    { name: 'a socket directory with no server in it', at: () => ({ host: dir, port: 5999 }), address: () => `${dir}/.s.PGSQL.5999`, codes: ['ENOENT'] },
  ])('$name: a transient fault with the address, the errno and the hint', async ({ at, address, codes }) => {
    const { host, port } = at();
    const b = backend(host, port, sslmode);
    const obs = (await b.observe([role], opContext(captureLogger().log))).get(role.id);
    expect(obs?.status).toBe('failed');
    const f = obs?.status === 'failed' ? obs.fault : undefined;
    expect(f?.class).toBe('transient');
    expect(codes).toContain(f?.code);
    expect(f?.message).toBe(`cannot reach the PostgreSQL server at ${address()} (${f?.code})`);
    expect(f?.hint).toContain('check host and port');
    // The backend id is the caller's to add (apply prints the node, logs carry the backend): not repeated here.
    expect(f?.message).not.toContain('orders');
    expect(await b.health({ signal: AbortSignal.timeout(5000), log: captureLogger().log })).toEqual({ status: 'unhealthy', message: f?.message });
  });
});

describe('connection fault messages', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', syscall: 'connect' });
  it.each([
    { name: 'IPv6 in brackets', err: refused, server: '[::1]:5432', message: 'cannot reach the PostgreSQL server at [::1]:5432 (ECONNREFUSED)' },
    { name: 'pg connect timeout', err: new Error('timeout expired'), phase: 'connect' as const, server: 'db:5432', message: 'cannot connect to the PostgreSQL server at db:5432: timeout expired' },
    { name: 'lost mid-query', err: new Error('Connection terminated unexpectedly'), server: 'db:5432', message: 'connection to the PostgreSQL server at db:5432 lost: Connection terminated unexpectedly' },
    { name: 'without an address (a caller that has none)', err: refused, server: undefined, message: 'cannot reach the PostgreSQL server (ECONNREFUSED)' },
  ])('$name', ({ err, phase, server, message }) => {
    expect(classifyPgError(err, phase ?? 'query', { server }).message).toBe(message);
  });
});
