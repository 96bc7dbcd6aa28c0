import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PgClient, postgresConfigSchema } from '../../../src/backends/postgres/index.ts';
import { FaultError } from '../../../src/runtime/index.ts';
import { captureLogger } from './helpers.ts';

// sslmode prefer's negotiation against servers that answer the TLS request wrongly or not at all.
// Real sockets on 127.0.0.1; real PostgreSQL servers, with and without TLS, are in tls.test.ts.

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

interface Scripted {
  readonly port: number;
  /** What the server read on each connection, in order. */
  readonly received: Buffer[];
  /** Resolves once every connection the server accepted has been closed by the client. */
  closed(): Promise<void>;
}

const servers: Server[] = [];
const clients: PgClient[] = [];

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  await Promise.allSettled(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A server that answers the first bytes of each connection with `answer` (nothing at all when undefined). */
async function scripted(answer: Buffer | undefined): Promise<Scripted> {
  const received: Buffer[] = [];
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.once('data', (chunk) => {
      received.push(chunk);
      if (answer !== undefined) socket.write(answer);
    });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const closed = async (): Promise<void> => {
    await Promise.all(sockets.filter((s) => !s.closed).map((s) => once(s, 'close')));
  };
  return { port: (server.address() as AddressInfo).port, received, closed };
}

function client(port: number, connectTimeout = '3s'): PgClient {
  const config = postgresConfigSchema().parse({ host: '127.0.0.1', port, user: 'postgres', sslmode: 'prefer', connectTimeout });
  const c = new PgClient({ config, env: {}, cwd: process.cwd(), log: captureLogger().log });
  clients.push(c);
  return c;
}

async function failure(c: PgClient): Promise<FaultError> {
  const err = await c.query('SELECT 1', [], { signal: AbortSignal.timeout(10_000) }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(FaultError);
  return err as FaultError;
}

describe('sslmode prefer: the answer to the TLS request', () => {
  it('asks for TLS first: the first bytes on the socket are the SSLRequest', async () => {
    const s = await scripted(Buffer.from('E'));
    await failure(client(s.port));
    expect(s.received[0]).toEqual(SSL_REQUEST);
  });

  it.each([
    { name: "'N' with bytes after it", answer: Buffer.from('Nxyz') },
    // Unencrypted bytes before the handshake could be injected on the wire (libpq refuses them too, CVE-2021-23222).
    { name: "'S' with bytes after it", answer: Buffer.concat([Buffer.from('S'), Buffer.from([0x16, 0x03, 0x01])]) },
  ])('$name: refused, the socket closed, nothing sent after the request', async ({ answer }) => {
    const s = await scripted(answer);
    const err = await failure(client(s.port));
    expect(err.fault).toMatchObject({
      class: 'transient',
      code: 'connect-failed',
      message: `cannot connect to the PostgreSQL server at 127.0.0.1:${s.port}: the server sent more than its one-byte answer to the TLS request (refused: it could be injected on the wire)`,
    });
    await s.closed();
    expect(s.received).toEqual([SSL_REQUEST]);
  });

  it('an error instead of an answer: a connection fault, the socket closed', async () => {
    const s = await scripted(Buffer.from('E'));
    const err = await failure(client(s.port));
    expect(err.fault).toMatchObject({ class: 'transient', code: 'connect-failed', message: expect.stringContaining('There was an error establishing an SSL connection') });
    await s.closed();
  });

  it('no answer at all: the connect timeout ends the wait, and the socket', async () => {
    const s = await scripted(undefined);
    const started = Date.now();
    const err = await failure(client(s.port, '300ms'));
    expect(err.fault).toMatchObject({ class: 'transient', code: 'connect-failed', message: expect.stringContaining('connection timeout') });
    expect(Date.now() - started).toBeLessThan(5_000);
    await s.closed();
  });

  it('the connection closed before any answer: a connection fault at once, not at the connect timeout', async () => {
    const server = createServer((socket) => socket.destroy());
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const started = Date.now();
    const err = await failure(client((server.address() as AddressInfo).port, '20s'));
    expect(err.fault).toMatchObject({ class: 'transient', code: 'connect-failed', message: expect.stringContaining('closed the connection before answering the TLS request') });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("'S', then the connection closed during the TLS handshake: a connection fault at once", async () => {
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end('S'));
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const started = Date.now();
    const err = await failure(client((server.address() as AddressInfo).port, '20s'));
    expect(err.fault).toMatchObject({ class: 'transient' });
    expect(err.fault.message).toMatch(/^cannot (connect to|reach) the PostgreSQL server at 127\.0\.0\.1:\d+/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("'N': the startup message follows on the same socket", async () => {
    // The server reads the startup message, then closes: the client fails to connect, having sent it where it asked.
    const received: Buffer[] = [];
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (chunk) => {
        received.push(chunk);
        if (received.length === 1) socket.write('N');
        else socket.destroy();
      });
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const err = await failure(client((server.address() as AddressInfo).port));
    expect(err.fault.code).toBe('connect-failed');
    expect(received[0]).toEqual(SSL_REQUEST);
    // The startup message: length, protocol 3.0, then user and database.
    expect(received[1]!.readUInt32BE(4)).toBe(196608);
    expect(received[1]!.toString('latin1')).toContain('user\0postgres\0');
  });
});
