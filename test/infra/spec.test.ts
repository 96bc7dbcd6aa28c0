import { describe, expect, it } from 'vitest';
import { compileText } from '../support/compile.ts';

const goal = (nodes: string): string => `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  nodes:
${nodes}`;

// A NUL byte in a path validated, then every observe failed with a raw NUL in the fault
// message (and apply recorded a run): the system cannot name such a file. validate says so.
describe('infra specs: paths the system cannot name', () => {
  it.each([
    { name: 'a file path', node: '    - { id: f, type: local.file, spec: { path: "a\\0b", content: x } }', line: 'goals/test.yaml:6:48: error invalid-value: spec.path: a path cannot contain a NUL character' },
    { name: 'a directory path', node: '    - { id: d, type: local.directory, spec: { path: "d\\0" } }', line: 'goals/test.yaml:6:53: error invalid-value: spec.path: a path cannot contain a NUL character' },
    { name: 'a link target', node: '    - { id: l, type: local.symlink, spec: { path: l, target: "t\\0" } }', line: 'goals/test.yaml:6:62: error invalid-value: spec.target: a path cannot contain a NUL character' },
  ])('$name with a NUL is refused at its position', ({ node, line }) => {
    const r = compileText(goal(`${node}\n`));
    expect(r.lines).toEqual([line]);
    expect(r.graph).toBeUndefined();
  });

  // `a/./b//c/` on a file made the regular file a/b/c: a trailing slash names a directory. A name over
  // NAME_MAX bytes validated and failed only when planned (ENAMETOOLONG). validate says so of both.
  const long = 'n'.repeat(256);
  it.each([
    { name: 'a file path ending in "/"', node: '    - { id: f, type: local.file, spec: { path: "a/./b//c/", content: x } }', line: 'goals/test.yaml:6:48: error invalid-value: spec.path: a path ending in "/" names a directory: write the path of the file or link without it' },
    { name: 'a symlink path ending in "/"', node: '    - { id: l, type: local.symlink, spec: { path: "l/", target: t } }', line: 'goals/test.yaml:6:51: error invalid-value: spec.path: a path ending in "/" names a directory: write the path of the file or link without it' },
    {
      name: 'a name over 255 bytes',
      node: `    - { id: d, type: local.directory, spec: { path: "d/${long}/e" } }`,
      line: `goals/test.yaml:6:53: error invalid-value: spec.path: a name in a path is at most 255 bytes (NAME_MAX): ${'n'.repeat(20)}… is 256`,
    },
    { name: 'a name of 128 two-byte characters', node: `    - { id: f, type: local.file, spec: { path: "${'é'.repeat(128)}", content: x } }`, line: `goals/test.yaml:6:48: error invalid-value: spec.path: a name in a path is at most 255 bytes (NAME_MAX): ${'é'.repeat(20)}… is 256` },
  ])('$name is refused at its position', ({ node, line }) => {
    const r = compileText(goal(`${node}\n`));
    expect(r.lines).toEqual([line]);
    expect(r.graph).toBeUndefined();
  });

  it('a directory path may end in "/", a name may be 255 bytes, and one a reference makes is not judged by its text', () => {
    const r = compileText(
      goal(`    - { id: d, type: local.directory, spec: { path: "d/" } }
    - { id: f, type: local.file, spec: { path: "d/${'n'.repeat(255)}", content: x } }
    - { id: g, type: local.file, spec: { path: "d/\${nodes.d.outputs.path}${'n'.repeat(250)}", content: x } }
`),
    );
    expect(r.lines).toEqual([]);
  });
});

/** A postgres Backend document `pg`, for the goal after it. */
const pg = `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: pg }
spec: { type: postgres, config: { host: db, user: u, database: d } }
---
`;

// PostgreSQL's CONNECTION LIMIT is a 32-bit integer: a larger one validated and failed at every apply.
describe('infra specs: numbers PostgreSQL takes', () => {
  it.each([
    { name: 'a role', node: '    - { id: r, type: postgres.role, backend: pg, spec: { name: r, connectionLimit: 3000000000 } }', line: 'goals/test.yaml:11:84: error invalid-value: spec.connectionLimit: a connection limit is at most 2147483647 (-1 for no limit)' },
    { name: 'a database', node: '    - { id: d, type: postgres.database, backend: pg, spec: { name: d, connectionLimit: 2147483648 } }', line: 'goals/test.yaml:11:88: error invalid-value: spec.connectionLimit: a connection limit is at most 2147483647 (-1 for no limit)' },
  ])('$name with a connection limit past 2^31-1 is refused', ({ node, line }) => {
    expect(compileText(pg + goal(`${node}\n`)).lines).toEqual([line]);
  });
});

// The encoding was checked against a pattern only: a name no server knows validated and failed at
// every apply, and a client-only one (SJIS) too, which CREATE DATABASE refuses as "not a valid encoding name".
describe('infra specs: database encodings', () => {
  const node = (encoding: string): string => `    - { id: d, type: postgres.database, backend: pg, spec: { name: d, encoding: "${encoding}" } }\n`;
  it.each([
    { encoding: 'UTF-9', line: 'goals/test.yaml:11:81: error invalid-value: spec.encoding: "UTF-9" is not an encoding PostgreSQL knows: UTF8, LATIN1 … SQL_ASCII, or an alias of one (unicode, ISO-8859-1 …)' },
    { encoding: 'shift_jis', line: 'goals/test.yaml:11:81: error invalid-value: spec.encoding: SJIS is an encoding only a client may use: a database cannot have it (UTF8 holds every character)' },
  ])('$encoding is refused at its position', ({ encoding, line }) => {
    expect(compileText(pg + goal(node(encoding))).lines).toEqual([line]);
  });

  it.each(['unicode', 'ISO-8859-1', 'latin1', 'utf_8', 'Windows-1252', 'sql_ascii'])('%s, a name PostgreSQL knows, is valid', (encoding) => {
    expect(compileText(pg + goal(node(encoding))).lines).toEqual([]);
  });
});

// Memberships PostgreSQL never grants validated, then failed on every pass (one as "unknown", one
// as a dependency not ready), retried without end.
describe('infra specs: memberships PostgreSQL refuses', () => {
  it.each([
    { name: 'the role itself', memberOf: '[readers, selfish]', line: 'goals/test.yaml:11:93: error invalid-value: spec.memberOf[1]: a role cannot be a member of itself ("selfish")' },
    { name: 'PUBLIC', memberOf: '[public]', line: 'goals/test.yaml:11:84: error invalid-value: spec.memberOf[0]: PUBLIC is not a role one can be a member of: every role holds what is granted to PUBLIC already' },
  ])('$name is refused at its position', ({ memberOf, line }) => {
    const node = `    - { id: r, type: postgres.role, backend: pg, spec: { name: selfish, memberOf: ${memberOf} } }\n`;
    expect(compileText(pg + goal(node)).lines).toEqual([line]);
  });

  // Validated, with only one of the two implied edges drawn: apply failed on one role and blocked the other.
  it('two roles each a member of the other are a dependency cycle at spec.memberOf', () => {
    const nodes = `    - { id: a, type: postgres.role, backend: pg, spec: { name: cyc_a, memberOf: [cyc_b] } }
    - { id: b, type: postgres.role, backend: pg, spec: { name: cyc_b, memberOf: [cyc_a] } }\n`;
    expect(compileText(pg + goal(nodes)).lines).toEqual([
      'goals/test.yaml:11:81: error dependency-cycle: dependency cycle: a -> b (goals/test.yaml:11:81: a member of role cyc_b) -> a (goals/test.yaml:12:81: a member of role cyc_a)',
    ]);
  });
});

// Names PostgreSQL 18 refuses whoever asks validated, then failed on every pass ('role name "pg_app" is
// reserved', 'unacceptable schema name "pg_x"', 'role "public" does not exist'), retried without end.
describe('infra specs: names PostgreSQL reserves', () => {
  const at = (col: number, rest: string): string => `goals/test.yaml:11:${col}: error invalid-value: ${rest}`;
  const pgPrefix = 'role names beginning with "pg_" are reserved for PostgreSQL\'s own roles (pg_monitor, pg_read_all_data …): it creates none, and alters none of its own; grant one through memberOf';
  const none = '"none" is reserved: PostgreSQL refuses it wherever a role is named, so no role has that name';
  it.each([
    { name: 'a role named pg_…', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: pg_app } }', line: at(64, `spec.name: ${pgPrefix}`) },
    { name: 'a role named pg_ alone', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: pg_ } }', line: at(64, `spec.name: ${pgPrefix}`) },
    { name: 'a built-in role declared as a node (PostgreSQL alters none of them)', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: pg_read_all_data } }', line: at(64, `spec.name: ${pgPrefix}`) },
    { name: 'a role named pg_… through ${goal.name}', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: "pg_${goal.name}" } }', line: at(64, `spec.name: ${pgPrefix}`) },
    { name: 'a role named public', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: public } }', line: at(64, 'spec.name: "public" is reserved: PostgreSQL reads it as PUBLIC, every role') },
    { name: 'a role named none', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: none } }', line: at(64, 'spec.name: "none" is reserved: PostgreSQL refuses it wherever a role is named') },
    { name: 'a membership of none', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: r, memberOf: [none] } }', line: at(78, `spec.memberOf[0]: ${none}`) },
    { name: 'a grant to none', node: '{ id: g, type: postgres.grant, backend: pg, spec: { role: none, database: d, on: database, privileges: [CONNECT] } }', line: at(65, `spec.role: ${none}`) },
    { name: 'default privileges for none', node: '{ id: g, type: postgres.grant, backend: pg, spec: { role: r, database: d, on: defaultTables, forRole: none, privileges: [SELECT] } }', line: at(109, `spec.forRole: ${none}`) },
    { name: 'default privileges for public', node: '{ id: g, type: postgres.grant, backend: pg, spec: { role: r, database: d, on: defaultTables, forRole: public, privileges: [SELECT] } }', line: at(109, 'spec.forRole: PUBLIC (every role) creates no objects: name the role whose new objects get these privileges') },
    { name: 'a database owned by none', node: '{ id: d, type: postgres.database, backend: pg, spec: { name: d, owner: none } }', line: at(78, `spec.owner: ${none}`) },
    { name: 'a database owned by public', node: '{ id: d, type: postgres.database, backend: pg, spec: { name: d, owner: public } }', line: at(78, 'spec.owner: PUBLIC (every role) cannot own a database: name a role') },
    { name: 'a schema owned by public', node: '{ id: s, type: postgres.schema, backend: pg, spec: { name: s, database: d, owner: public } }', line: at(89, 'spec.owner: PUBLIC (every role) cannot own a schema: name a role') },
    { name: 'a schema named pg_…', node: '{ id: s, type: postgres.schema, backend: pg, spec: { name: pg_app, database: d } }', line: at(66, 'spec.name: schema names beginning with "pg_" are reserved for PostgreSQL\'s own schemas (pg_catalog, pg_toast …): it creates none') },
  ])('$name is refused at its position', ({ node, line }) => {
    expect(compileText(pg + goal(`    - ${node}\n`)).lines).toEqual([line]);
  });

  // What PostgreSQL takes: names compared as written (the backend quotes them), its own roles named
  // by other nodes, and databases (CREATE DATABASE pg_x, public or none succeeds).
  it.each([
    { name: 'roles whose names only look reserved', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: PG_app } }\n    - { id: r2, type: postgres.role, backend: pg, spec: { name: PUBLIC } }\n    - { id: r3, type: postgres.role, backend: pg, spec: { name: NONE } }\n    - { id: r4, type: postgres.role, backend: pg, spec: { name: pg } }' },
    { name: 'roles named as SQL\'s special roles (quoted, they are names)', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: current_user } }\n    - { id: r2, type: postgres.role, backend: pg, spec: { name: session_user } }\n    - { id: r3, type: postgres.role, backend: pg, spec: { name: user } }\n    - { id: r4, type: postgres.role, backend: pg, spec: { name: all } }\n    - { id: r5, type: postgres.role, backend: pg, spec: { name: current_role } }' },
    { name: 'a membership of a built-in role', node: '{ id: r, type: postgres.role, backend: pg, spec: { name: reporting, memberOf: [pg_read_all_data, pg_monitor] } }' },
    { name: 'built-in roles as owner, grantee and forRole', node: '{ id: d, type: postgres.database, backend: pg, spec: { name: d, owner: pg_database_owner } }\n    - { id: g, type: postgres.grant, backend: pg, spec: { role: pg_read_all_data, database: d, on: database, privileges: [CONNECT] } }\n    - { id: g2, type: postgres.grant, backend: pg, spec: { role: r, database: d, on: defaultTables, forRole: pg_database_owner, privileges: [SELECT] } }' },
    { name: 'a schema whose name only looks reserved', node: '{ id: s, type: postgres.schema, backend: pg, spec: { name: PG_app, database: d } }' },
    { name: 'a grant on, and an extension in, a schema of PostgreSQL\'s own', node: '{ id: g, type: postgres.grant, backend: pg, spec: { role: r, database: d, schema: pg_catalog, on: schema, privileges: [USAGE] } }\n    - { id: e, type: postgres.extension, backend: pg, spec: { name: plpgsql, database: d, schema: pg_catalog } }' },
    { name: 'databases', node: '{ id: d1, type: postgres.database, backend: pg, spec: { name: pg_app } }\n    - { id: d2, type: postgres.database, backend: pg, spec: { name: public } }\n    - { id: d3, type: postgres.database, backend: pg, spec: { name: none } }\n    - { id: d4, type: postgres.database, backend: pg, spec: { name: template1 } }' },
  ])('$name are valid', ({ node }) => {
    expect(compileText(pg + goal(`    - ${node}\n`)).lines).toEqual([]);
  });
});

// JavaScript's Date rolls 2030-02-30 over to 2 March: it validated, and the role expired on another day
// than the one written, where PostgreSQL itself refuses the date.
describe('infra specs: validUntil on the calendar', () => {
  const node = (validUntil: string): string => `    - { id: r, type: postgres.role, backend: pg, spec: { name: r, validUntil: "${validUntil}" } }\n`;
  const at = 'goals/test.yaml:11:79: error invalid-value: spec.validUntil: validUntil is not a valid date';
  it.each([
    { validUntil: '2030-02-30', why: '2030-02 has 28 days' },
    { validUntil: '2030-02-29', why: '2030-02 has 28 days' },
    { validUntil: '2100-02-29T10:00:00Z', why: '2100-02 has 28 days' },
    { validUntil: '2030-04-31', why: '2030-04 has 30 days' },
    { validUntil: '2030-13-01', why: 'there is no month 13' },
    { validUntil: '2030-00-10', why: 'there is no month 00' },
    { validUntil: '2030-01-00', why: '2030-01 has 31 days' },
    { validUntil: '0000-01-01', why: 'there is no year 0000 (the year before 0001 is 1 BC)' },
    { validUntil: '2030-01-01T24:00:01Z', why: 'an hour is 00 to 23 (24:00:00 is the end of the day)' },
    { validUntil: '2030-01-01T10:60', why: 'minutes are 00 to 59' },
    { validUntil: '2030-01-01T10:00:00+16:00', why: 'a time zone offset is at most 15:59 either way' },
  ])('$validUntil is refused at its position: $why', ({ validUntil, why }) => {
    expect(compileText(pg + goal(node(validUntil))).lines).toEqual([`${at}: ${why}`]);
  });

  it.each(['2028-02-29', '2000-02-29', '2030-12-31 23:59:59.999999', '2030-01-01T24:00:00Z', '2030-01-01T10:00:00+15:59', '2030-01-01T10:00+0530', '2031-06-15T10:20:30+05', '2031-06-15T10:20:30-05', 'infinity'])(
    '%s, which PostgreSQL accepts, is valid',
    (validUntil) => {
      expect(compileText(pg + goal(node(validUntil))).lines).toEqual([]);
    },
  );
});

// An empty program name or a NUL in an argument validated, then failed at every run (spawn refuses both).
describe('infra specs: exec commands that cannot run', () => {
  const exec = `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: exec }
spec: { type: exec }
---
`;
  it.each([
    { name: 'an empty program', commands: '{ read: [x], create: ["", a] }', line: 'goals/test.yaml:11:95: error invalid-value: spec.commands.create[0]: the program (the first item) cannot be empty' },
    { name: 'a NUL in an argument', commands: '{ read: [x, "a\\0"], create: [x] }', line: 'goals/test.yaml:11:85: error invalid-value: spec.commands.read[1]: an argument cannot contain a NUL character' },
  ])('$name is refused at its position', ({ commands, line }) => {
    const node = `    - { id: g, type: generic.resource, backend: exec, spec: { commands: ${commands}, input: {} } }`;
    expect(compileText(exec + goal(`${node}\n`)).lines).toEqual([line]);
  });
});

// A misspelt key of a secret reference was "a secret reference is { fromEnv: NAME } or { fromFile: path }",
// at the reference: the key written and the one meant went unsaid, where every other misspelt field is
// told with its suggestion (GOAL-FORMAT.md). It is a key of the secret reference, not of the node's type
// or the backend's config: the reference's forms are said with it.
describe('infra specs: a misspelt secret reference', () => {
  const pg = (password: string): string => `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: pg }
spec: { type: postgres, config: { host: db, password: ${password} } }
---
`;
  const role = (password: string): string => goal(`    - { id: r, type: postgres.role, backend: pg, spec: { name: r, password: ${password} } }\n`);
  it.each([
    { name: 'fromFil in a node', text: pg('{ fromEnv: P }') + role('{ fromFil: pw }'), line: 'goals/test.yaml:11:79: error unknown-field: spec.password.fromFil: a secret reference is { fromEnv: NAME } or { fromFile: path } (did you mean "fromFile"?)' },
    { name: 'fromEnvv in a node', text: pg('{ fromEnv: P }') + role('{ fromEnvv: A }'), line: 'goals/test.yaml:11:79: error unknown-field: spec.password.fromEnvv: a secret reference is { fromEnv: NAME } or { fromFile: path } (did you mean "fromEnv"?)' },
    { name: 'from_env in a node', text: pg('{ fromEnv: P }') + role('{ from_env: PW }'), line: 'goals/test.yaml:11:79: error unknown-field: spec.password.from_env: a secret reference is { fromEnv: NAME } or { fromFile: path } (did you mean "fromEnv"?)' },
    { name: 'FromEnv in a backend config', text: pg('{ FromEnv: P }') + role('{ fromEnv: PW }'), line: 'goals/test.yaml:4:57: error unknown-field: spec.config.password.FromEnv: a secret reference is { fromEnv: NAME } or { fromFile: path } (did you mean "fromEnv"?)' },
    // Nothing close, or both forms at once: the forms it takes.
    { name: 'no key close to either form', text: pg('{ fromEnv: P }') + role('{ value: PW }'), line: 'goals/test.yaml:11:77: error invalid-value: spec.password: a secret reference is { fromEnv: NAME } or { fromFile: path }' },
    { name: 'both forms', text: pg('{ fromEnv: P }') + role('{ fromEnv: PW, fromFile: pw }'), line: 'goals/test.yaml:11:77: error invalid-value: spec.password: a secret reference is { fromEnv: NAME } or { fromFile: path }' },
  ])('$name', ({ text, line }) => {
    expect(compileText(text).lines).toEqual([line]);
  });
});

// GOAL-FORMAT.md: exec input is any JSON, and ansible extraVars are free-form too. A number JSON cannot
// carry as written (a 19-digit id, .inf) was sent changed in silence; the one check of both refuses it
// where it is written.
describe('infra specs: numbers in free-form maps that JSON cannot carry', () => {
  it('an ansible extra var, at its position', () => {
    const r = compileText(`apiVersion: desiredstate/v1
kind: Backend
metadata: { name: ans }
spec: { type: ansible }
---
${goal('    - id: p\n      type: ansible.playbook\n      backend: ans\n      spec: { playbook: site.yml, extraVars: { ok: 1, ids: [12345678901234567890], ratio: .inf } }\n')}`);
    expect(r.lines).toEqual([
      'goals/test.yaml:14:61: error invalid-value: spec.extraVars.ids[0]: a whole number beyond ±9007199254740991 (2^53−1) may not be the one written: past there a number is read as the nearest double (9007199254740993 as 9007199254740992), so its digits are not sure to reach the command; this one is read as 12345678901234567000; quote it ("…") to send it as a string, as written',
      'goals/test.yaml:14:91: error invalid-value: spec.extraVars.ratio: .inf (or a number too large for a double, such as 1e400) is no number JSON can carry (written as JSON it is null: on stdin, in plan, in the state): quote it to send it as a string',
    ]);
  });
});
