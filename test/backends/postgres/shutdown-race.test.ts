import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { postgresBackendFactory } from '../../../src/backends/postgres/index.ts';
import type { PostgresBackend } from '../../../src/backends/postgres/index.ts';
import { startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';
import { captureLogger, opContext, pgNode } from './helpers.ts';

/*
 * A server shutting down can send its FATAL 57P01 in the very packet that
 * makes a new connection ready (ReadyForQuery, then ErrorResponse). pg parses
 * both at once: the pool hands the client over, and the error is emitted
 * before our code has run to listen for it. An 'error' event no one listens
 * to ends the process: the daemon died where it should back off. A proxy in
 * front of a real server does that to the first connection.
 */

let server: TestPostgres;
let proxy: Server;
let port = 0;
let sabotaged = 0;
const sockets = new Set<Socket>();
const env: NodeJS.ProcessEnv = {};

/** ErrorResponse: severity FATAL, SQLSTATE 57P01, as a server under `pg_ctl stop -m fast` sends it. */
function shutdownMessage(): Buffer {
  const fields = Buffer.concat(
    [['S', 'FATAL'], ['V', 'FATAL'], ['C', '57P01'], ['M', 'terminating connection due to administrator command']].map(([k, v]) => Buffer.from(`${k}${v}\0`)),
  );
  const body = Buffer.concat([fields, Buffer.from([0])]);
  const head = Buffer.alloc(5);
  head.write('E', 0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

beforeAll(async () => {
  server = await startTestPostgres();
  env.PG_PW = server.password;
  proxy = createServer((client) => {
    const upstream = connect(server.port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    const first = sabotaged++ === 0;
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      if (!first) return void client.write(chunk);
      // Whole messages forwarded as they come (authentication takes round trips); the first
      // ReadyForQuery goes out with the shutdown after it, in one write.
      pending = Buffer.concat([pending, chunk]);
      let at = 0;
      while (pending.length - at >= 5) {
        const len = pending.readInt32BE(at + 1);
        if (pending.length - at < 1 + len) break;
        const type = String.fromCharCode(pending[at]!);
        at += 1 + len;
        if (type === 'Z') {
          client.end(Buffer.concat([pending.subarray(0, at), shutdownMessage()]));
          upstream.destroy();
          return;
        }
      }
      client.write(pending.subarray(0, at));
      pending = pending.subarray(at);
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  port = (proxy.address() as { port: number }).port;
}, 120_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => proxy?.close(resolve));
  await server?.destroy();
});

it('a shutdown in the packet that makes a connection ready is a transient fault, not the end of the process', async () => {
  const config = postgresBackendFactory.configSchema.parse({ host: '127.0.0.1', port, user: server.user, password: { fromEnv: 'PG_PW' }, sslmode: 'disable' });
  const logs = captureLogger();
  const backend = postgresBackendFactory.create(config, { id: 'pg', cwd: '/', stateDir: '/', log: logs.log, env }) as PostgresBackend;
  try {
    const role = pgNode('r', 'postgres.role', { name: 'race_role' });
    const first = (await backend.observe([role], opContext(logs.log))).get(role.id);
    expect(first).toMatchObject({ status: 'failed', fault: { class: 'transient' } });
    // The next connection is a plain one: the backend goes on.
    expect((await backend.observe([role], opContext(logs.log))).get(role.id)).toEqual({ status: 'absent' });
    expect(sabotaged).toBeGreaterThanOrEqual(2);
  } finally {
    await backend.close();
  }
});
