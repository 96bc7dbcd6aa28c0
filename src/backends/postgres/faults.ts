import { isIP } from 'node:net';
import { fault, FaultError } from '../../runtime/index.ts';
import type { Fault } from '../../runtime/index.ts';
import { UnsafeSqlValueError } from './sql.ts';
import { secretUnavailableFault } from '../../infra/index.ts';

/**
 * Failure classification, once, at the backend boundary. Pure: it reads the
 * SQLSTATE (`code` of a pg `DatabaseError`) or the socket errno, never the
 * message text, except for the few pg client errors that carry no code.
 */

/** SQLSTATEs that mean "already exists": success on create. */
export const DUPLICATE_OBJECT_CODES: ReadonlySet<string> = new Set(['42710', '42P04', '42P06', '42P07']);

/**
 * A unique violation on a system catalog (23505 in `pg_catalog`, for example
 * `pg_authid_rolname_index`): the same object was created by another session
 * at the same moment — the session of a process killed mid-create whose
 * statement the server still finished, or another replica. The object
 * exists: for a create it is "already exists", found the other way round.
 */
export const CONCURRENT_CREATE_CODE = 'concurrent-create';

const SOCKET_ERRNOS: ReadonlySet<string> = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'EADDRNOTAVAIL',
]);

/** Back off this long before retrying when the server is out of connection slots. */
export const THROTTLE_RETRY_MS = 5_000;

const DEPENDENT_HINT =
  'other objects depend on it: reassign or drop them first (REASSIGN OWNED BY … TO …; DROP OWNED BY …), or remove the dependents from the goal';

interface Entry {
  readonly class: Fault['class'];
  readonly hint?: string;
  readonly retryAfterMs?: number;
}

/** Exact SQLSTATEs, checked before their class (the first two characters). */
const BY_CODE: Readonly<Record<string, Entry>> = {
  '57P01': { class: 'transient', hint: 'the server is shutting down (admin shutdown)' },
  '57P02': { class: 'transient', hint: 'the server crashed and is restarting' },
  '57P03': { class: 'transient', hint: 'the server is starting up, shutting down or in recovery' },
  '57014': { class: 'transient', hint: 'the statement was cancelled: it ran longer than the backend\'s statementTimeout, or someone cancelled it (pg_cancel_backend)' },
  '53300': { class: 'throttled', hint: 'the server has no free connection slots; lower poolSize or raise max_connections', retryAfterMs: THROTTLE_RETRY_MS },
  '40001': { class: 'transient' },
  '40P01': { class: 'transient' },
  '55P03': {
    class: 'transient',
    hint: "another session held a lock on the object longer than the backend's lockTimeout (an open transaction?): see who in pg_locks and pg_stat_activity; retried",
  },
  '55006': { class: 'transient', hint: 'the object is in use by other sessions (for a database: connected clients)' },
  '25006': { class: 'transient', hint: 'connected to a read-only server (a standby?)' },
  '42501': { class: 'auth', hint: 'the backend user lacks the privilege; grant it or connect as a role that has it' },
  '2BP01': { class: 'permanent', hint: DEPENDENT_HINT },
  '3D000': { class: 'transient', hint: 'the database does not exist (yet): declare it in dependsOn' },
  '3F000': { class: 'transient', hint: 'the schema does not exist (yet): declare it in dependsOn' },
  '42704': { class: 'transient', hint: 'a referenced object (role, owner, extension) does not exist (yet): declare it in dependsOn' },
  '0A000': { class: 'permanent', hint: 'not supported by this PostgreSQL server' },
  '0LP01': { class: 'permanent', hint: 'memberships cannot form a circle: a role cannot be a member of itself, directly or through the roles it is a member of' },
  XX000: { class: 'unknown' },
};

/** SQLSTATE classes (first two characters). */
const BY_CLASS: Readonly<Record<string, Entry>> = {
  '08': { class: 'transient', hint: 'the connection to the server failed' },
  '28': { class: 'auth', hint: 'authentication failed: check user and password' },
  '53': { class: 'transient', hint: 'the server is short of resources' },
  '57': { class: 'transient' },
  '58': { class: 'unknown' },
  '40': { class: 'transient' },
  '22': { class: 'permanent' },
  '23': { class: 'permanent' },
  '2B': { class: 'permanent', hint: DEPENDENT_HINT },
  '42': { class: 'permanent' },
  '0A': { class: 'permanent' },
  // Invalid grantor or grant operation: the same grant is refused again on every try.
  '0L': { class: 'permanent' },
  '55': { class: 'transient' },
  XX: { class: 'unknown' },
};

/** What the classifier reads: a pg `DatabaseError`, a socket error, or anything else thrown. */
interface ErrorShape {
  readonly code?: unknown;
  readonly message?: unknown;
  readonly name?: unknown;
  readonly errors?: unknown;
  /** The system call a socket error came from (`connect`). */
  readonly syscall?: unknown;
  /** The schema of the object a server error is about (pg's DatabaseError). */
  readonly schema?: unknown;
  /** The server's DETAIL (pg's DatabaseError): for dependent objects, one line per dependent. */
  readonly detail?: unknown;
}

function shape(err: unknown): ErrorShape {
  return typeof err === 'object' && err !== null ? (err as ErrorShape) : {};
}

/** The SQLSTATE of a server error, if `err` is one. */
export function sqlState(err: unknown): string | undefined {
  const code = shape(err).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function errnoOf(err: unknown): string | undefined {
  const s = shape(err);
  if (typeof s.code === 'string' && SOCKET_ERRNOS.has(s.code)) return s.code;
  // A Unix socket that is not there (no server, or a wrong directory or port) or not ours to open.
  if ((s.code === 'ENOENT' || s.code === 'EACCES') && s.syscall === 'connect') return s.code;
  // Connecting to "localhost" tries each address and fails with an AggregateError.
  if (Array.isArray(s.errors)) for (const e of s.errors) if (errnoOf(e) !== undefined) return errnoOf(e);
  return undefined;
}

/** pg's error for a server that answers a TLS request with no (it carries no code, only this message). */
function refusesTls(err: unknown): boolean {
  return err instanceof Error && /does not support SSL/i.test(err.message);
}

function isTlsError(err: unknown): boolean {
  const code = shape(err).code;
  return typeof code === 'string' && (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SELF_SIGNED/.test(code));
}

/** The message of a server or client error, shortened to its first line. */
function messageOf(err: unknown): string {
  const m = shape(err).message;
  return typeof m === 'string' && m.length > 0 ? m.split('\n')[0]! : String(err);
}

/**
 * Where the error happened: `connect` (acquiring a connection) or `query`.
 * A pg client error with no code during connect is a connection failure
 * (for example "timeout expired"); during a query it is a lost connection
 * ("Connection terminated unexpectedly").
 */
export type Phase = 'connect' | 'query';

/** A `host` that is a directory holding the server's Unix socket (as in libpq: it starts with `/`), not a network host. */
export function isSocketHost(host: string): boolean {
  return host.startsWith('/');
}

/**
 * Where a client connects, as an operator would look it up: `host:port`
 * (`[addr]:port` for IPv6), or the socket file for a Unix socket directory
 * (`/run/postgresql/.s.PGSQL.5432`, as libpq names it).
 */
export function serverAddress(host: string, port: number): string {
  if (isSocketHost(host)) return `${host.replace(/\/+$/, '')}/.s.PGSQL.${port}`;
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface ClassifyOptions {
  /** Replace the server's message where it could quote a sensitive statement. */
  readonly redact?: boolean | undefined;
  /** The server's address (`serverAddress`), named in connection-level faults. */
  readonly server?: string | undefined;
  /** The connection was to the backend's own database (`config.database`), not to one a node names. */
  readonly maintenance?: boolean | undefined;
}

/**
 * Whether a server error is about the server or the connection (refused
 * login, shutdown, no free slot, no such database to connect to) rather
 * than about the statement: those name the server, as socket errors do.
 */
function aboutServer(state: string, phase: Phase): boolean {
  if (phase === 'connect') return true;
  const cls = state.slice(0, 2);
  return cls === '08' || cls === '28' || (cls === '57' && state !== '57014') || state === '53300';
}

/**
 * The fault for anything thrown by pg, a socket, or our own code.
 * Connection-level faults (socket errors, TLS, pg's own connection errors)
 * name the server when `options.server` is given: a refused port or an
 * unknown host is only actionable with the address that was tried.
 */
export function classifyPgError(err: unknown, phase: Phase = 'query', options: ClassifyOptions = {}): Fault {
  if (err instanceof FaultError) return err.fault;
  const secret = secretUnavailableFault(err);
  if (secret !== undefined) return secret;
  if (err instanceof UnsafeSqlValueError) return fault('permanent', err.message, { code: 'unsafe-value' });
  if (shape(err).name === 'AbortError') return fault('transient', 'operation aborted', { code: 'aborted' });

  if (isConcurrentCreate(err)) {
    return fault('transient', messageOf(err), {
      code: CONCURRENT_CREATE_CODE,
      hint: 'another session created the same object at the same moment (a process killed mid-create, another replica); it is observed again',
    });
  }
  const state = sqlState(err);
  if (state !== undefined) {
    const entry = { ...(BY_CODE[state] ?? BY_CLASS[state.slice(0, 2)] ?? { class: 'unknown' as const }) };
    let message = options.redact === true && state === '42601' ? 'syntax error in a statement that carries a password (message withheld)' : messageOf(err);
    if (options.server !== undefined && aboutServer(state, phase)) message = `the PostgreSQL server at ${options.server}: ${message}`;
    if (state === '2BP01') message += dependents(shape(err).detail);
    if (state === '42704' && /is not a valid encoding name/.test(messageOf(err))) {
      // Not an object that is not made yet: a name no server knows, which no retry mends.
      entry.class = 'permanent';
      entry.hint = 'a database encoding PostgreSQL knows: UTF8, SQL_ASCII, LATIN1 … (SELECT pg_encoding_to_char(i) FROM generate_series(0, 41) i)';
    }
    if (state === '3D000' && phase === 'connect' && options.maintenance === true) {
      // Not a node's database that is not made yet: the one the backend itself connects to.
      entry.hint = 'the backend connects to this database (config.database): create it, or set config.database to one that exists';
    }
    return fault(entry.class, message, {
      code: state,
      ...(entry.hint === undefined ? {} : { hint: entry.hint }),
      ...(entry.retryAfterMs === undefined ? {} : { retryAfterMs: entry.retryAfterMs }),
    });
  }
  const server = options.server === undefined ? 'the PostgreSQL server' : `the PostgreSQL server at ${options.server}`;
  const errno = errnoOf(err);
  if (errno !== undefined) {
    return fault('transient', `cannot reach ${server} (${errno})`, { code: errno, hint: 'check host and port, and that the server is running' });
  }
  if (isTlsError(err)) {
    return fault('permanent', `TLS with ${server} failed: ${messageOf(err)}`, { code: String(shape(err).code), hint: 'check sslmode and the server certificate' });
  }
  if (refusesTls(err)) {
    // sslmode require or verify-full against a server without TLS: retrying changes nothing.
    return fault('permanent', `${server}: ${messageOf(err)}`, { code: 'tls-not-offered', hint: 'the server does not offer TLS: turn ssl on in the server, or set sslmode to prefer or disable' });
  }
  const code = shape(err).code;
  if (reportsLostConnection(err, code)) {
    return fault('transient', phase === 'connect' ? `cannot connect to ${server}: ${messageOf(err)}` : `connection to ${server} lost: ${messageOf(err)}`, {
      code: phase === 'connect' ? 'connect-failed' : 'connection-lost',
    });
  }
  // Anything else is ours or Node's (a module that does not load, a descriptor limit): said as it is, never as a lost connection.
  return fault('unknown', messageOf(err), typeof code === 'string' ? { code } : {});
}

/**
 * pg's own connection errors ("timeout expired", "Connection terminated
 * unexpectedly") carry no code; a socket written after it closed throws
 * Node's ERR_STREAM_* or ERR_SOCKET_*. A coded error of any other kind
 * (MODULE_NOT_FOUND, EMFILE) or a bug (TypeError and kin) is not a
 * connection failure.
 */
function reportsLostConnection(err: unknown, code: unknown): boolean {
  if (!(err instanceof Error) || err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError || err instanceof ReferenceError) return false;
  return code === undefined || (typeof code === 'string' && (code.startsWith('ERR_STREAM_') || code.startsWith('ERR_SOCKET_')));
}

/** The most dependents a fault names; the server's log has them all. */
const MAX_DEPENDENTS = 5;

/**
 * What depends on an object that cannot be dropped, from the server's
 * DETAIL (one per line: `owner of table app.t1`, `privileges for database
 * app`), as ` (…; …)` for the fault's message: the object names are what
 * an operator acts on. Empty without one.
 */
function dependents(detail: unknown): string {
  if (typeof detail !== 'string') return '';
  const lines = detail.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length === 0) return '';
  const more = lines.length > MAX_DEPENDENTS ? `; and ${lines.length - MAX_DEPENDENTS} more` : '';
  return ` (${lines.slice(0, MAX_DEPENDENTS).join('; ')}${more})`;
}

/** A unique violation on a system catalog: see CONCURRENT_CREATE_CODE. */
function isConcurrentCreate(err: unknown): boolean {
  return sqlState(err) === '23505' && shape(err).schema === 'pg_catalog';
}

/** True for a classified fault (or a raw error) that says the object already exists. */
export function isDuplicate(err: unknown): boolean {
  const code = err instanceof FaultError ? err.fault.code : isConcurrentCreate(err) ? CONCURRENT_CREATE_CODE : sqlState(err);
  return code !== undefined && (DUPLICATE_OBJECT_CODES.has(code) || code === CONCURRENT_CREATE_CODE);
}

