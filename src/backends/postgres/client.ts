import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import type pg from 'pg';
import type { Logger } from 'pino';
import { resolveSecret, secretUnavailableFault } from '../../infra/index.ts';
import { fault, FaultError, MAX_TIMER_MS, systemClock } from '../../runtime/index.ts';
import type { PostgresConfig } from './config.ts';
import { classifyPgError, isSocketHost, serverAddress, sqlState } from './faults.ts';
import { PreferTlsStream } from './prefer-tls.ts';
import type { Phase } from './faults.ts';
import type { Statement } from './sql.ts';

/** How many per-database pools stay open at once; the least recently used is closed beyond it. */
export const MAX_DATABASE_POOLS = 8;

export interface PgClientOptions {
  readonly config: PostgresConfig;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly log: Logger;
  readonly maxDatabasePools?: number | undefined;
  /**
   * Connects through this stream instead of the network, with no TLS: the
   * start-up snapshot's warm-up (src/cli/warm-up.ts), which runs where no
   * server is, talks to a recorded one.
   */
  readonly stream?: (() => Duplex) | undefined;
}

export interface QueryOptions {
  /** The database to run in; absent: the maintenance database. */
  readonly database?: string | undefined;
  readonly signal: AbortSignal;
}

/**
 * `pg` is loaded on the first connection, not at start-up: every command
 * (validate, schema, a goal set with no postgres backend) would otherwise
 * pay for its import.
 */
let pgModule: Promise<typeof pg> | undefined;
function loadPg(): Promise<typeof pg> {
  pgModule ??= import('pg').then((m) => m.default);
  return pgModule;
}

/** What `ownSignal` allows a statement beyond connecting, at least (the lockTimeout when longer). */
const OWN_STATEMENT_MS = 5_000;

/**
 * How long past `statementTimeout` a round trip waits for the server's answer before giving it up
 * on our side: the server's own cancellation, sent as the timeout expires, has this long to arrive.
 * A server (or a proxy, a network) that stopped answering once the connection was made is otherwise
 * waited for for ever: plan and apply never returned.
 */
export const CLIENT_DEADLINE_MARGIN_MS = 5_000;

/** How long TCP waits on a silent connection before it probes whether the peer is still there. */
const KEEPALIVE_DELAY_MS = 60_000;

class AbortError extends Error {
  constructor() {
    super('operation aborted');
    this.name = 'AbortError';
  }
}

/**
 * The backend's only I/O: one pg pool for the maintenance database and one
 * per other database, created on first use (nothing connects before the
 * first query) and bounded in number. Every failure leaves here as a
 * `FaultError` carrying a classified fault and its cause.
 */
export class PgClient {
  private readonly config: PostgresConfig;
  private readonly env: NodeJS.ProcessEnv;
  private readonly cwd: string;
  private readonly log: Logger;
  private readonly maxPools: number;
  private readonly stream: (() => Duplex) | undefined;
  /** Insertion order is recency: a use moves the entry to the end. */
  private readonly pools = new Map<string, pg.Pool>();
  /** How many operations hold each pool (from handing it out to releasing its client): never closed by `evict` meanwhile. */
  private readonly users = new Map<pg.Pool, number>();
  private closed = false;

  constructor(options: PgClientOptions) {
    this.config = options.config;
    this.env = options.env;
    this.cwd = options.cwd;
    this.log = options.log;
    this.maxPools = options.maxDatabasePools ?? MAX_DATABASE_POOLS;
    this.stream = options.stream;
  }

  /** Where this client connects (`host:port`, or the Unix socket file), as faults name it. */
  get address(): string {
    return serverAddress(this.config.host, this.config.port);
  }

  /** The database roles and databases are managed through. */
  get maintenanceDatabase(): string {
    return this.config.database;
  }

  /**
   * A signal for a statement that must not end with the operation that asked for it (a clean-up after
   * a failed step, which often failed because the operation's signal fired: its timeout, a shutdown):
   * bounded by a connection and a lock wait instead, so that it cannot hang either.
   */
  ownSignal(): AbortSignal {
    return AbortSignal.timeout(Math.min(MAX_TIMER_MS, this.config.connectTimeout + Math.max(this.config.lockTimeout, OWN_STATEMENT_MS)));
  }

  /** The rows of one parameterised statement. */
  async query<R>(text: string, values: readonly unknown[], options: QueryOptions): Promise<R[]> {
    const res = await this.run(options, (c) => c.query({ text, values: [...values] }), false, 1);
    return res.rows as R[];
  }

  /**
   * Runs statements in one round trip and returns the rows of the last one.
   * Several statements sent together run as one implicit transaction: all
   * or nothing. (CREATE / DROP DATABASE cannot be sent with others.)
   */
  async execute(statements: readonly Statement[], options: QueryOptions): Promise<Record<string, unknown>[]> {
    if (statements.length === 0) return [];
    const sensitive = statements.some((s) => s.sensitive === true);
    const text = statements.map((s) => s.text).join(';\n');
    const res: pg.QueryResult | pg.QueryResult[] = await this.run(options, (c) => c.query(text), sensitive, statements.length);
    if (!sensitive) this.log.debug({ database: options.database ?? this.config.database, sql: text }, 'statements executed');
    const last = Array.isArray(res) ? res[res.length - 1] : res;
    return (last?.rows ?? []) as Record<string, unknown>[];
  }

  /** Closes the pool of one database (before dropping it or copying it as a template: PostgreSQL does neither while it has other sessions, ours included). */
  async closeDatabase(database: string): Promise<void> {
    const pool = this.pools.get(database);
    if (pool === undefined) return;
    this.pools.delete(database);
    await pool.end();
  }

  /** Closes every pool. Later calls fail with a transient fault. */
  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map((p) => p.end()));
  }

  /** `op`, sending `statements` statements in one round trip, on a client of the pool of `options.database`. */
  private async run<T>(options: QueryOptions, op: (c: pg.PoolClient) => Promise<T>, sensitive: boolean, statements: number): Promise<T> {
    const { signal } = options;
    let phase: Phase = 'connect';
    try {
      if (this.closed) throw new FaultError({ class: 'transient', message: 'the postgres backend is closed', code: 'closed' });
      if (signal.aborted) throw new AbortError();
      const pool = await this.pool(options.database ?? this.config.database);
      try {
        return await this.runOn(pool, op, signal, statements, () => (phase = 'query'));
      } finally {
        this.unuse(pool);
      }
    } catch (err) {
      if (err instanceof FaultError) throw err;
      const maintenance = (options.database ?? this.config.database) === this.config.database;
      throw new FaultError(classifyPgError(err, phase, { redact: sensitive, server: this.address, maintenance }), { cause: sensitive ? undefined : err });
    }
  }

  /**
   * `op` on a client of `pool`, released after (destroyed if the connection broke, the op was aborted
   * or the server did not answer in time: its statement may still be running, or the connection is dead).
   */
  private async runOn<T>(pool: pg.Pool, op: (c: pg.PoolClient) => Promise<T>, signal: AbortSignal, statements: number, connected: () => void): Promise<T> {
    const client = await abortable(pool.connect(), signal, (c) => c.release());
    connected();
    let broken: Error | undefined;
    // A checked-out client has no pool listener: a server shutdown (57P01) or a reset arriving
    // between our queries would be an unhandled 'error' event and kill the daemon.
    const onError = (err: Error): void => {
      broken ??= err;
    };
    client.on('error', onError);
    const deadline = this.deadline(signal, statements);
    try {
      return await abortable(op(client), deadline?.signal ?? signal, undefined, () => {
        // The statement may still be running, or the server may answer nothing more: released
        // broken, pg ends the connection at once (its socket destroyed, with a query outstanding).
        broken = new AbortError();
      });
    } catch (err) {
      if (deadline?.expired() === true) throw this.unanswered(deadline.ms, err);
      broken ??= isConnectionError(err) ? (err as Error) : undefined;
      throw err;
    } finally {
      deadline?.done();
      client.off('error', onError);
      client.release(broken);
    }
  }

  /**
   * `signal`, also fired when a round trip of `statements` statements has gone unanswered past what
   * the server itself allows them (`statementTimeout` each: PostgreSQL times each statement of a
   * round trip on its own) and `CLIENT_DEADLINE_MARGIN_MS`; none when statementTimeout is 0 (the
   * server's own setting, which we do not know). Not `AbortSignal.any`: its FinalizationRegistry
   * cannot be in the start-up snapshot, whose warm-up runs statements.
   */
  private deadline(signal: AbortSignal, statements: number): { signal: AbortSignal; ms: number; expired: () => boolean; done: () => void } | undefined {
    if (this.config.statementTimeout === 0) return undefined;
    const ms = statements * this.config.statementTimeout + CLIENT_DEADLINE_MARGIN_MS;
    const controller = new AbortController();
    let expired = false;
    const timer = systemClock.setTimeout(() => {
      expired = true;
      controller.abort();
    }, ms);
    const forward = (): void => controller.abort();
    if (signal.aborted) forward();
    else signal.addEventListener('abort', forward, { once: true });
    return {
      signal: controller.signal,
      ms,
      expired: () => expired,
      done: () => {
        timer.cancel();
        signal.removeEventListener('abort', forward);
      },
    };
  }

  private unanswered(ms: number, cause: unknown): FaultError {
    return new FaultError(
      fault('transient', `the PostgreSQL server at ${this.address} did not answer within ${ms} ms (statementTimeout and a ${CLIENT_DEADLINE_MARGIN_MS} ms margin): the connection is dropped`, {
        code: 'no-answer',
        hint: "the server, or something between it and us (a proxy, the network), stopped answering; retried on a new connection. A statement that needs longer needs a longer statementTimeout",
      }),
      { cause },
    );
  }

  /**
   * The pool of `database`, counted as in use until `unuse`: handed out and then closed by another
   * operation's `evict` before this one connected, it failed with "Cannot use a pool after calling end
   * on the pool" (more databases than `maxPools` observed at once: a one-shot apply never converged).
   */
  private async pool(database: string): Promise<pg.Pool> {
    const existing = this.pools.get(database);
    if (existing !== undefined) {
      this.pools.delete(database);
      this.pools.set(database, existing);
      return this.use(existing);
    }
    const { Pool, Client } = await loadPg();
    const again = this.pools.get(database);
    if (again !== undefined) return this.use(again);
    const pool = new Pool({ ...this.clientConfig(database), Client: closedOnFailedConnect(Client), max: this.config.poolSize, idleTimeoutMillis: 30_000, allowExitOnIdle: true });
    // Every client listens for errors its whole life. The pool's own listener is off while a client is
    // checked out, and ours (runOn) is on only once our code runs: a server shutting down (57P01) in
    // the very packet that made a new connection ready is parsed before then, and an 'error' event
    // no one listens to ends the daemon. runOn's listener still marks the connection broken.
    pool.on('connect', (client) => client.on('error', ignoreClientError));
    pool.on('error', (err) => {
      // An idle connection died (server restart, network). The pool drops it; the next query reconnects.
      this.log.warn({ database, code: (err as { code?: unknown }).code }, 'idle connection lost');
    });
    this.pools.set(database, pool);
    this.use(pool);
    this.evict();
    return pool;
  }

  private use(pool: pg.Pool): pg.Pool {
    this.users.set(pool, (this.users.get(pool) ?? 0) + 1);
    return pool;
  }

  private unuse(pool: pg.Pool): void {
    const n = (this.users.get(pool) ?? 1) - 1;
    if (n > 0) {
      this.users.set(pool, n);
      return;
    }
    this.users.delete(pool);
    // Pools kept open past the limit while in use are closed once they are not.
    this.evict();
  }

  /** Closes the least recently used pools beyond `maxPools` (the maintenance database's aside), none in use. */
  private evict(): void {
    for (const [name, pool] of this.pools) {
      if (this.pools.size <= this.maxPools + 1) return;
      if (name === this.config.database || this.users.has(pool)) continue;
      this.pools.delete(name);
      pool.end().catch((err: unknown) => this.log.warn({ database: name, err }, 'closing pool failed'));
    }
  }

  private clientConfig(database: string): pg.PoolConfig {
    return {
      ...this.tlsOption(),
      host: this.config.host,
      port: this.config.port,
      user: this.config.user,
      database,
      // Asked for only when the server asks for a password; resolved at each new connection, never kept by us.
      password: () => this.password(),
      connectionTimeoutMillis: this.config.connectTimeout,
      // The server ends a statement stuck behind another session's lock, or running on: a one-shot apply
      // waited for ever behind an open ALTER ROLE, and its statement stayed waiting after it was killed.
      // Startup parameters: 0 sends none (a pooler such as PgBouncer refuses them unless told to ignore them).
      ...(this.config.lockTimeout > 0 ? { lock_timeout: this.config.lockTimeout } : {}),
      ...(this.config.statementTimeout > 0 ? { statement_timeout: this.config.statementTimeout } : {}),
      keepAlive: true,
      // Without it the system's default applies: two hours before a dead peer is even probed.
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
      application_name: 'desiredstate',
      // A commit lost in a server crash is found absent by the next observe and made again.
      ...(this.config.synchronousCommit ? {} : { options: '-c synchronous_commit=off' }),
    };
  }

  /**
   * The password the server asks for, or a fault saying why there is none. Left to pg, a missing one
   * failed in its SCRAM step ("client password must be a string"), a connection fault retried for ever.
   */
  private async password(): Promise<string> {
    const ref = this.config.password;
    if (ref === undefined) {
      throw new FaultError(
        fault('auth', `the PostgreSQL server at ${this.address} asks for a password for user "${this.config.user}", and the backend's config gives none`, {
          code: 'no-password',
          hint: 'set config.password to a secret reference ({ fromEnv: NAME } or { fromFile: PATH }), or let the server trust this user without one (pg_hba.conf)',
        }),
      );
    }
    try {
      return await resolveSecret(ref, { env: this.env, cwd: this.cwd });
    } catch (err) {
      const unavailable = secretUnavailableFault(err);
      if (unavailable === undefined) throw err;
      throw new FaultError({ ...unavailable, message: `the password for the PostgreSQL server at ${this.address} (config.password): ${unavailable.message}` }, { cause: err });
    }
  }

  /** `sslRootCert`'s certificate authorities, read at each new pool (a renewed file is picked up). */
  private trustedAuthorities(): { ca?: string } {
    const file = this.config.sslRootCert;
    if (file === undefined) return {};
    const path = resolve(this.cwd, file);
    try {
      return { ca: readFileSync(path, 'utf8') };
    } catch (err) {
      throw new FaultError(
        fault('permanent', `cannot read sslRootCert ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
          code: 'ssl-root-cert',
          hint: 'check sslRootCert (relative to the working directory)',
        }),
        { cause: err },
      );
    }
  }

  /**
   * What pg is told about TLS, per sslmode. `prefer` negotiates in a stream
   * of ours (TLS, unverified, when offered; plain on the same socket when
   * not), as libpq does; pg itself would need a second connection.
   */
  private tlsOption(): Pick<pg.ClientConfig, 'ssl' | 'stream'> {
    if (this.stream !== undefined) return { ssl: false, stream: this.stream };
    // A Unix socket (a directory as host): sslmode does not apply, as in libpq; the server offers no TLS there.
    if (isSocketHost(this.config.host)) return { ssl: false };
    switch (this.config.sslmode) {
      case 'disable':
        return { ssl: false };
      case 'prefer':
        return { ssl: false, stream: () => new PreferTlsStream({ rejectUnauthorized: false }) };
      case 'require':
        return { ssl: { rejectUnauthorized: false } };
      case 'verify-full':
        // SNI takes a host name, never an address (the certificate's IP SAN is still checked).
        return { ssl: { rejectUnauthorized: true, ...(isIP(this.config.host) === 0 ? { servername: this.config.host } : {}), ...this.trustedAuthorities() } };
      default:
        return this.config.sslmode satisfies never;
    }
  }
}

/**
 * pg's Client, its socket closed when connecting fails on our side. A password that cannot be given
 * (the `password` callback or the SCRAM step throwing) only fails the connect callback: the socket
 * stayed open, half logged in, and pg-pool dropped the client without ending it, until the server's
 * authentication_timeout (60 s) closed it; a one-shot command waited that long to exit, and the
 * daemon held one such connection per attempt.
 */
function closedOnFailedConnect(Client: typeof pg.Client): typeof pg.Client {
  return class extends Client {
    override connect(): Promise<pg.Client>;
    override connect(callback: (err: Error | null, client?: pg.Client) => void): void;
    override connect(callback?: (err: Error | null, client?: pg.Client) => void): Promise<pg.Client> | void {
      if (callback === undefined) {
        return super.connect().catch((err: unknown) => {
          this.connection.stream.destroy();
          throw err;
        });
      }
      super.connect((err: Error | null, client?: pg.Client) => {
        if (err !== null) this.connection.stream.destroy();
        callback(err, client);
      });
    }
  };
}

/** Whether a failed query may have left the connection unusable (anything but an ordinary server error). */
function isConnectionError(err: unknown): boolean {
  const state = sqlState(err);
  return state === undefined || state.startsWith('08') || state.startsWith('57');
}

/** See `pool`: the error is the pool's (idle) or `runOn`'s (checked out) to act on; this one only keeps it from being unhandled. */
function ignoreClientError(): void {}

/**
 * Resolves with `p`, or rejects with an AbortError as soon as `signal`
 * aborts. A value that arrives after the abort goes to `late` (to release
 * a connection that nobody will use).
 */
function abortable<T>(p: Promise<T>, signal: AbortSignal, late?: (value: T) => void, onAbort?: () => void): Promise<T> {
  if (signal.aborted) {
    void p.then(late, () => undefined);
    return Promise.reject(new AbortError());
  }
  return new Promise<T>((resolve, reject) => {
    let aborted = false;
    const abort = (): void => {
      aborted = true;
      onAbort?.();
      reject(new AbortError());
    };
    signal.addEventListener('abort', abort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        if (aborted) late?.(v);
        else resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', abort);
        if (!aborted) reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
