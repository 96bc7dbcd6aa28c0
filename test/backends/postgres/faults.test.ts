import { describe, expect, it } from 'vitest';
import { classifyPgError, isDuplicate } from '../../../src/backends/postgres/index.ts';
import { DesiredStateError, ErrorCodes, FaultError } from '../../../src/runtime/index.ts';

/** A server error as pg builds it: a message and a SQLSTATE `code`. */
function pgError(code: string, message = `server error ${code}`): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR' });
}

function errno(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, errno: -111, syscall: 'connect' });
}

describe('classifyPgError', () => {
  it.each([
    { name: 'connection refused', err: errno('ECONNREFUSED'), cls: 'transient', code: 'ECONNREFUSED' },
    { name: 'connection reset', err: errno('ECONNRESET'), cls: 'transient', code: 'ECONNRESET' },
    { name: 'socket timeout', err: errno('ETIMEDOUT'), cls: 'transient', code: 'ETIMEDOUT' },
    { name: 'localhost tried on every address', err: Object.assign(new AggregateError([errno('ECONNREFUSED'), errno('ECONNREFUSED')]), { code: 'ECONNREFUSED' }), cls: 'transient', code: 'ECONNREFUSED' },
    { name: 'pg connect timeout (no code)', err: new Error('timeout expired'), phase: 'connect' as const, cls: 'transient', code: 'connect-failed' },
    { name: 'connection lost mid-query (no code)', err: new Error('Connection terminated unexpectedly'), cls: 'transient', code: 'connection-lost' },
    { name: 'admin shutdown', err: pgError('57P01'), cls: 'transient', code: '57P01' },
    { name: 'server starting up', err: pgError('57P03'), cls: 'transient', code: '57P03' },
    { name: 'connection exception class 08', err: pgError('08006'), cls: 'transient', code: '08006' },
    { name: 'serialization failure', err: pgError('40001'), cls: 'transient', code: '40001' },
    { name: 'too many connections', err: pgError('53300'), cls: 'throttled', code: '53300' },
    { name: 'insufficient privilege', err: pgError('42501'), cls: 'auth', code: '42501' },
    { name: 'password authentication failed', err: pgError('28P01'), cls: 'auth', code: '28P01' },
    { name: 'invalid authorization', err: pgError('28000'), cls: 'auth', code: '28000' },
    { name: 'dependent objects on drop', err: pgError('2BP01'), cls: 'permanent', code: '2BP01' },
    { name: 'duplicate object outside create', err: pgError('42710'), cls: 'permanent', code: '42710' },
    { name: 'syntax error', err: pgError('42601'), cls: 'permanent', code: '42601' },
    { name: 'invalid parameter value', err: pgError('22023'), cls: 'permanent', code: '22023' },
    { name: 'feature not supported', err: pgError('0A000'), cls: 'permanent', code: '0A000' },
    { name: 'missing database (dependency not ready)', err: pgError('3D000'), cls: 'transient', code: '3D000' },
    { name: 'missing role (dependency not ready)', err: pgError('42704'), cls: 'transient', code: '42704' },
    // Retried for ever, with the hint to declare a dependency: no retry mends a name no server knows.
    { name: 'an encoding no server knows', err: pgError('42704', 'FOO is not a valid encoding name'), cls: 'permanent', code: '42704' },
    { name: 'database in use', err: pgError('55006'), cls: 'transient', code: '55006' },
    // Unknown, so retried without end: PostgreSQL refuses the same membership every time.
    { name: 'a circle of memberships', err: pgError('0LP01', 'role "a" is a member of role "b"'), cls: 'permanent', code: '0LP01' },
    { name: 'an invalid grantor', err: pgError('0L000'), cls: 'permanent', code: '0L000' },
    { name: 'internal error', err: pgError('XX000'), cls: 'unknown', code: 'XX000' },
    { name: 'unknown SQLSTATE class', err: pgError('HV000'), cls: 'unknown', code: 'HV000' },
    { name: 'TLS certificate rejected', err: Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), cls: 'permanent', code: 'DEPTH_ZERO_SELF_SIGNED_CERT' },
    { name: 'TLS required, server offers none', err: new Error('The server does not support SSL connections'), phase: 'connect' as const, cls: 'permanent', code: 'tls-not-offered' },
    { name: 'missing secret', err: new DesiredStateError(ErrorCodes.SecretUnavailable, 'secret environment variable X is not set'), cls: 'permanent', code: ErrorCodes.SecretUnavailable },
    { name: 'abort', err: Object.assign(new Error('aborted'), { name: 'AbortError' }), cls: 'transient', code: 'aborted' },
    { name: 'written after the socket closed', err: Object.assign(new Error('Cannot call write after a stream was destroyed'), { code: 'ERR_STREAM_DESTROYED' }), cls: 'transient', code: 'connection-lost' },
    { name: 'a module that does not load', err: Object.assign(new Error("Cannot find module '@mongodb-js/saslprep'"), { code: 'MODULE_NOT_FOUND' }), cls: 'unknown', code: 'MODULE_NOT_FOUND' },
    { name: 'out of file descriptors', err: Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE', syscall: 'open' }), cls: 'unknown', code: 'EMFILE' },
    { name: 'a bug of ours', err: new TypeError('x is undefined'), cls: 'unknown', code: undefined },
    { name: 'a thrown string', err: 'boom', cls: 'unknown', code: undefined },
  ])('$name → $cls', ({ err, phase, cls, code }) => {
    const f = classifyPgError(err, phase ?? 'query');
    expect(f.class).toBe(cls);
    expect(f.code).toBe(code);
  });

  it('keeps the class of an already classified fault', () => {
    const f = { class: 'auth' as const, message: 'no', code: 'x' };
    expect(classifyPgError(new FaultError(f))).toBe(f);
  });

  it.each([
    { code: '2BP01', hint: 'REASSIGN OWNED' },
    { code: '53300', hint: 'max_connections' },
  ])('gives an operator hint for $code', ({ code, hint }) => {
    expect(classifyPgError(pgError(code)).hint).toContain(hint);
  });

  it('carries a retry-after hint when throttled', () => {
    expect(classifyPgError(pgError('53300')).retryAfterMs).toBeGreaterThan(0);
  });

  it('names the dependents of an object that cannot be dropped, the first five', () => {
    const detail = ['owner of database app', 'owner of schema app', 'owner of table app.t1', 'owner of table app.t2', 'owner of table app.t3', 'privileges for database other', 'owner of sequence app.s'].join('\n');
    const err = Object.assign(pgError('2BP01', 'role "app_owner" cannot be dropped because some objects depend on it'), { detail });
    expect(classifyPgError(err).message).toBe(
      'role "app_owner" cannot be dropped because some objects depend on it (owner of database app; owner of schema app; owner of table app.t1; owner of table app.t2; owner of table app.t3; and 2 more)',
    );
    expect(classifyPgError(pgError('2BP01', 'cannot drop')).message).toBe('cannot drop');
  });

  it('withholds a syntax error message of a statement that carries a password', () => {
    const f = classifyPgError(pgError('42601', `syntax error at or near "SCRAM-SHA-256$4096:abc"`), 'query', { redact: true });
    expect(f.message).not.toContain('SCRAM');
  });

  it.each([
    { code: '42710', dup: true },
    { code: '42P04', dup: true },
    { code: '42P06', dup: true },
    { code: '42704', dup: false },
  ])('$code is "already exists": $dup', ({ code, dup }) => {
    expect(isDuplicate(pgError(code))).toBe(dup);
    expect(isDuplicate(new FaultError(classifyPgError(pgError(code))))).toBe(dup);
  });
});
