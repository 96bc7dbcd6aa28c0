import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgClient, postgresConfigSchema } from '../../../src/backends/postgres/index.ts';
import type { SslMode } from '../../../src/backends/postgres/index.ts';
import { FaultError } from '../../../src/runtime/index.ts';
import { hasOpenssl, selfSignedCertificate, startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';
import { captureLogger } from './helpers.ts';
import { warnSkipped } from '../../support/skip.ts';

// Two real servers: one that offers TLS (a self-signed certificate made by openssl) and one that does not.
const opensslMissing = !hasOpenssl();
if (opensslMissing) warnSkipped(['SKIPPING the postgres TLS tests: they need `openssl` on PATH (apt-get install openssl; .ci/run installs it).']);

let dir: string;
let tls: TestPostgres;
let plain: TestPostgres;
const tlsLog: string[] = [];
const plainLog: string[] = [];
const open: PgClient[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ds-pg-tls-'));
  if (opensslMissing) return;
  [tls, plain] = await Promise.all([startTestPostgres({ tls: true, socket: true, log: (l) => tlsLog.push(l) }), startTestPostgres({ logConnections: true, log: (l) => plainLog.push(l) })]);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(open.map((c) => c.close()));
  await Promise.allSettled([tls?.destroy(), plain?.destroy()]);
  await rm(dir, { recursive: true, force: true });
});

function client(server: TestPostgres, sslmode: SslMode, extra: Record<string, unknown> = {}): PgClient {
  const config = postgresConfigSchema().parse({ host: server.host, port: server.port, user: server.user, password: { fromEnv: 'PG_PASSWORD' }, sslmode, connectTimeout: '3s', ...extra });
  const c = new PgClient({ config, env: { PG_PASSWORD: server.password }, cwd: dir, log: captureLogger().log });
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

/** TCP connections the server without TLS received so far, authorized or not (a refused TLS request is one). */
function plainConnectionsReceived(): number {
  return plainLog.join('\n').match(/connection received: host=127\.0\.0\.1/g)?.length ?? 0;
}

function plainConnectionsAuthorized(): number {
  return plainLog.join('\n').match(/connection authorized: user=postgres/g)?.length ?? 0;
}

describe.skipIf(opensslMissing)('postgres sslmode against real servers, with and without TLS', () => {
  it('prefer: TLS when the server offers it, on the first connection (no separate probe)', async () => {
    const before = acceptedConnections();
    expect(await usesTls(client(tls, 'prefer'))).toBe(true);
    expect(acceptedConnections() - before).toBe(1);
  });

  it('prefer: a plain connection when the server does not offer TLS, on the same socket that asked (as libpq)', async () => {
    const [received, authorized] = [plainConnectionsReceived(), plainConnectionsAuthorized()];
    const c = client(plain, 'prefer');
    expect(await usesTls(c)).toBe(false);
    expect(await usesTls(c)).toBe(false);
    // The server's log is read as it comes: once the authorization is in, every earlier line is too.
    await expect.poll(() => plainConnectionsAuthorized() - authorized).toBe(1);
    // One TCP connection: the refused TLS request did not cost a second one (nor a second server process).
    expect(plainConnectionsReceived() - received).toBe(1);
  });

  it('prefer: many first queries at once, more than the pool holds, all fall back to plain (none left waiting)', async () => {
    const c = client(plain, 'prefer', { poolSize: 2 });
    const results = await Promise.all(Array.from({ length: 12 }, () => usesTls(c)));
    expect(results).toEqual(Array.from({ length: 12 }, () => false));
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

  it('verify-full with sslRootCert: trusts the authorities in that file (relative to the working directory), and nothing else', async () => {
    await writeFile(join(dir, 'server-ca.pem'), tls.certificate!);
    expect(await usesTls(client(tls, 'verify-full', { sslRootCert: 'server-ca.pem' }))).toBe(true);
    // Another authority's certificate: refused.
    await writeFile(join(dir, 'other-ca.pem'), readFileSync(selfSignedCertificate(dir, 'other', 'someone else').cert, 'utf8'));
    const other = await usesTls(client(tls, 'verify-full', { sslRootCert: 'other-ca.pem' })).catch((e: unknown) => e);
    expect((other as FaultError).fault).toMatchObject({ class: 'permanent', hint: 'check sslmode and the server certificate' });
    // A file that is not there: a permanent fault naming it.
    const missing = await usesTls(client(tls, 'verify-full', { sslRootCert: 'nope.pem' })).catch((e: unknown) => e);
    expect((missing as FaultError).fault).toMatchObject({ class: 'permanent', code: 'ssl-root-cert', message: expect.stringContaining(join(dir, 'nope.pem')) });
  });

  it('a Unix socket host: sslmode does not apply (as in libpq), so every mode connects, in plain, on the first connection', async () => {
    for (const sslmode of ['prefer', 'require', 'verify-full'] as const) {
      const before = acceptedConnections();
      const c = client(tls, sslmode, { host: tls.socketDir });
      const rows = await c.query<{ local: boolean; ssl: boolean }>('SELECT inet_server_addr() IS NULL AS local, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()', [], { signal: AbortSignal.timeout(10_000) });
      expect(rows[0], sslmode).toEqual({ local: true, ssl: false });
      expect(acceptedConnections() - before, sslmode).toBe(1);
    }
  });

  it('sslRootCert with any other sslmode is a configuration error', () => {
    const r = postgresConfigSchema().safeParse({ host: '127.0.0.1', sslmode: 'require', sslRootCert: 'ca.pem' });
    expect(r.success).toBe(false);
    expect(r.error?.issues).toEqual([expect.objectContaining({ path: ['sslRootCert'], message: 'sslRootCert is only used with sslmode: verify-full (sslmode is require)' })]);
  });
});
