import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgClient, postgresConfigSchema } from '../../../src/backends/postgres/index.ts';
import type { SslMode } from '../../../src/backends/postgres/index.ts';
import { FaultError } from '../../../src/runtime/index.ts';
import { hasOpenssl, startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';
import { captureLogger } from './helpers.ts';

// Two real servers: one that offers TLS (a self-signed certificate made by openssl) and one that does not.
const opensslMissing = !hasOpenssl();
if (opensslMissing) console.warn('\n*** SKIPPED: postgres TLS tests need `openssl` on the PATH (apt-get install openssl; .ci/run installs it) ***\n');

let tls: TestPostgres;
let plain: TestPostgres;
const tlsLog: string[] = [];
const open: PgClient[] = [];

beforeAll(async () => {
  if (opensslMissing) return;
  [tls, plain] = await Promise.all([startTestPostgres({ tls: true, log: (l) => tlsLog.push(l) }), startTestPostgres()]);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(open.map((c) => c.close()));
  await Promise.allSettled([tls?.destroy(), plain?.destroy()]);
});

function client(server: TestPostgres, sslmode: SslMode): PgClient {
  const config = postgresConfigSchema.parse({ host: server.host, port: server.port, user: server.user, password: { fromEnv: 'PG_PASSWORD' }, sslmode, connectTimeout: '3s' });
  const c = new PgClient({ config, env: { PG_PASSWORD: server.password }, cwd: process.cwd(), log: captureLogger().log });
  open.push(c);
  return c;
}

/** Whether the connection the query ran on uses TLS, as the server sees it. */
async function usesTls(c: PgClient): Promise<boolean> {
  const rows = await c.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()', [], { signal: AbortSignal.timeout(10_000) });
  return rows[0]!.ssl;
}

/** Connections the TLS server accepted so far (it logs each). */
function acceptedConnections(): number {
  return tlsLog.join('\n').match(/connection authorized: user=postgres/g)?.length ?? 0;
}

describe.skipIf(opensslMissing)('postgres sslmode against real servers, with and without TLS', () => {
  it('prefer: TLS when the server offers it, on the first connection (no separate probe)', async () => {
    const before = acceptedConnections();
    expect(await usesTls(client(tls, 'prefer'))).toBe(true);
    expect(acceptedConnections() - before).toBe(1);
  });

  it('prefer: a plain connection when the server does not offer TLS', async () => {
    const c = client(plain, 'prefer');
    expect(await usesTls(c)).toBe(false);
    expect(await usesTls(c)).toBe(false);
  });

  it('require: TLS, whatever the certificate; refused, as a permanent fault, by a server without TLS', async () => {
    expect(await usesTls(client(tls, 'require'))).toBe(true);
    const err = await usesTls(client(plain, 'require')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FaultError);
    expect((err as FaultError).fault).toMatchObject({ class: 'permanent', hint: expect.stringContaining('sslmode') });
  });

  it('disable: never TLS, even when offered', async () => {
    expect(await usesTls(client(tls, 'disable'))).toBe(false);
  });

  it('verify-full: a certificate nobody vouches for is refused, as a permanent fault naming sslmode and the certificate', async () => {
    const err = await usesTls(client(tls, 'verify-full')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FaultError);
    expect((err as FaultError).fault).toMatchObject({ class: 'permanent', hint: 'check sslmode and the server certificate' });
  });
});
