import { describe, expect, it } from 'vitest';
import { normalizeTimestamp, quoteIdent, quoteLiteral } from '../../../src/backends/postgres/index.ts';
import { alterRoleSql, createRoleSql, grantPrivileges, grantSql } from '../../../src/backends/postgres/sql.ts';
import { specSchemas } from '../../../src/infra/index.ts';
import type { InfraNodeSpecOf } from '../../../src/infra/index.ts';

const role = (spec: Record<string, unknown>): InfraNodeSpecOf<'postgres.role'> => ({ type: 'postgres.role', ...specSchemas['postgres.role'].parse(spec) });
const grant = (spec: Record<string, unknown>): InfraNodeSpecOf<'postgres.grant'> => ({ type: 'postgres.grant', ...specSchemas['postgres.grant'].parse(spec) });

describe('quoting', () => {
  it.each([
    { input: 'app', out: '"app"' },
    { input: 'x"; DROP ROLE admin;--', out: '"x""; DROP ROLE admin;--"' },
    { input: 'Mixed Case', out: '"Mixed Case"' },
    { input: 'back\\slash', out: '"back\\slash"' },
  ])('quoteIdent($input)', ({ input, out }) => {
    expect(quoteIdent(input)).toBe(out);
  });

  it.each([
    { input: 'plain', out: "'plain'" },
    { input: "it's", out: "'it''s'" },
    { input: "a\\'; DROP ROLE admin;--", out: "E'a\\\\''; DROP ROLE admin;--'" },
  ])('quoteLiteral($input)', ({ input, out }) => {
    expect(quoteLiteral(input)).toBe(out);
  });

  it.each([{ f: quoteIdent }, { f: quoteLiteral }])('refuses NUL characters', ({ f }) => {
    expect(() => f('a\0b')).toThrow();
  });

  it.each([
    { input: 'infinity', out: 'infinity' },
    { input: '2030-01-01', out: '2030-01-01T00:00:00.000Z' },
    { input: '2030-01-01T12:30:00', out: '2030-01-01T12:30:00.000Z' },
    { input: '2030-01-01T12:30:00+02:00', out: '2030-01-01T10:30:00.000Z' },
    { input: '2030-01-01 12:30:00-0230', out: '2030-01-01T15:00:00.000Z' },
    // An offset of hours alone, which Date.parse refuses and PostgreSQL takes.
    { input: '2031-06-15T10:20:30+05', out: '2031-06-15T05:20:30.000Z' },
    { input: '2030-01-01T00:30:00+01', out: '2029-12-31T23:30:00.000Z' },
    // Microseconds, which PostgreSQL keeps: not cut to milliseconds.
    { input: '2031-06-15T10:20:30.123456Z', out: '2031-06-15T10:20:30.123456Z' },
    { input: '2031-06-15T10:20:30.000001', out: '2031-06-15T10:20:30.000001Z' },
    { input: '2031-06-15T10:20:30.12', out: '2031-06-15T10:20:30.120Z' },
    { input: '2030-12-31T24:00:00Z', out: '2031-01-01T00:00:00.000Z' },
    { input: '0050-03-01', out: '0050-03-01T00:00:00.000Z' },
  ])('normalizeTimestamp($input) is UTC', ({ input, out }) => {
    expect(normalizeTimestamp(input)).toBe(out);
  });
});

describe('statements', () => {
  it('creates a role in one statement with every attribute and membership', () => {
    expect(createRoleSql(role({ name: 'app', login: true, connectionLimit: 10, memberOf: ['ro', 'x"y'] })).text).toBe(
      'CREATE ROLE "app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 10 IN ROLE "ro", "x""y"',
    );
  });

  it('marks a statement carrying a verifier as sensitive', () => {
    expect(createRoleSql(role({ name: 'a' }), 'SCRAM-SHA-256$4096:x$y:z').sensitive).toBe(true);
    expect(createRoleSql(role({ name: 'a' })).sensitive).toBe(false);
  });

  it.each([
    { fields: ['connectionLimit'] as const, text: 'ALTER ROLE "app" WITH CONNECTION LIMIT 10' },
    { fields: ['login', 'createdb'] as const, text: 'ALTER ROLE "app" WITH LOGIN NOCREATEDB' },
  ])('alters only $fields', ({ fields, text }) => {
    expect(alterRoleSql(role({ name: 'app', login: true, connectionLimit: 10 }), fields)?.text).toBe(text);
  });

  it('alters nothing when nothing differs', () => {
    expect(alterRoleSql(role({ name: 'app' }), [])).toBeUndefined();
  });

  it.each([
    { spec: { role: 'r', database: 'd', on: 'database', privileges: ['connect', 'TEMP'] }, text: 'GRANT CONNECT, TEMPORARY ON DATABASE "d" TO "r"' },
    { spec: { role: 'r', database: 'd', schema: 's', on: 'tables', privileges: ['select'] }, text: 'GRANT SELECT ON ALL TABLES IN SCHEMA "s" TO "r"' },
    { spec: { role: 'r', database: 'd', schema: 's', on: 'sequences', privileges: ['ALL PRIVILEGES'] }, text: 'GRANT ALL ON ALL SEQUENCES IN SCHEMA "s" TO "r"' },
    {
      spec: { role: 'r', database: 'd', schema: 's', on: 'defaultTables', privileges: ['SELECT'], forRole: 'o' },
      text: 'ALTER DEFAULT PRIVILEGES FOR ROLE "o" IN SCHEMA "s" GRANT SELECT ON TABLES TO "r"',
    },
  ])('grant: $text', ({ spec, text }) => {
    const g = grant(spec);
    // The privileges as create and update pass them: canonicalised by grantPrivileges.
    expect(grantSql(g, grantPrivileges(g.on, g.privileges)).text).toBe(text);
  });

  it.each([
    { on: 'database' as const, privileges: ['temp', 'connect'], want: ['CONNECT', 'TEMPORARY'] },
    { on: 'database' as const, privileges: ['TEMP', 'temporary', ' Connect '], want: ['CONNECT', 'TEMPORARY'] },
    { on: 'tables' as const, privileges: ['all  privileges'], want: ['ALL'] },
    { on: 'tables' as const, privileges: ['update', 'Select', 'SELECT'], want: ['SELECT', 'UPDATE'] },
  ])('grantPrivileges($on, $privileges): upper case, TEMP as TEMPORARY, ALL PRIVILEGES as ALL, once each, sorted', ({ on, privileges, want }) => {
    expect(grantPrivileges(on, privileges)).toEqual(want);
  });

  it('grantPrivileges refuses a privilege its object kind does not have', () => {
    expect(() => grantPrivileges('database', ['SELECT'])).toThrow('"SELECT" is not a privilege on database');
  });
});

describe('postgres.grant schema', () => {
  it.each([
    { name: 'a table privilege on a database', spec: { role: 'r', database: 'd', on: 'database', privileges: ['SELECT'] }, path: ['privileges', 0] },
    { name: 'SQL in a privilege', spec: { role: 'r', database: 'd', on: 'database', privileges: ['CONNECT ON DATABASE x TO y; --'] }, path: ['privileges', 0] },
    { name: 'tables without a schema', spec: { role: 'r', database: 'd', on: 'tables', privileges: ['SELECT'] }, path: ['schema'] },
    { name: 'forRole outside default privileges', spec: { role: 'r', database: 'd', schema: 's', on: 'schema', privileges: ['USAGE'], forRole: 'o' }, path: ['forRole'] },
    { name: 'an unknown field', spec: { role: 'r', database: 'd', on: 'database', privileges: ['CONNECT'], grantOption: true }, path: [] },
    // PostgreSQL takes the grantee "public" for PUBLIC, which is no role: made, never found, made again on every pass.
    { name: 'PUBLIC as the grantee', spec: { role: 'public', database: 'd', schema: 's', on: 'schema', privileges: ['USAGE'] }, path: ['role'] },
  ])('rejects $name', ({ spec, path }) => {
    const r = specSchemas['postgres.grant'].safeParse(spec);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(path);
  });

  it.each([
    { field: 'name', value: 'x'.repeat(64) },
    { field: 'name', value: 'é'.repeat(32) },
    { field: 'validUntil', value: 'next tuesday' },
    { field: 'password', value: 'inline-secret' },
  ])('postgres.role rejects $field = $value', ({ field, value }) => {
    expect(specSchemas['postgres.role'].safeParse({ name: 'r', [field]: value }).success).toBe(false);
  });
});
