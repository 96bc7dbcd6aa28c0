import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_SECRET_FILE_BYTES, resolveSecret, secretRefsIn, unreadableSecretRefs } from '../../src/infra/secret.ts';
import { DesiredStateError, ErrorCodes } from '../../src/runtime/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'ds-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function failure(p: Promise<unknown>): Promise<DesiredStateError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DesiredStateError);
  expect((err as DesiredStateError).code).toBe(ErrorCodes.SecretUnavailable);
  return err as DesiredStateError;
}

describe('resolveSecret', () => {
  it('reads an environment variable, and names it when it is not set', async () => {
    expect(await resolveSecret({ fromEnv: 'PG_PASS' }, { env: { PG_PASS: 's3cret' } })).toBe('s3cret');
    expect((await failure(resolveSecret({ fromEnv: 'PG_PASS' }, { env: {} }))).message).toBe('secret environment variable PG_PASS is not set');
  });

  // A plain object (and process.env) inherits these: `{ fromEnv: constructor }` gave a function for the secret, which failed far away ("The "data" argument must be of type string").
  it.each(['constructor', 'toString', 'valueOf', 'hasOwnProperty'])('a variable named %s that is not set is not set, not what the environment object inherits', async (name) => {
    expect((await failure(resolveSecret({ fromEnv: name }, { env: {} }))).message).toBe(`secret environment variable ${name} is not set`);
    expect((await failure(resolveSecret({ fromEnv: name }, { env: process.env }))).message).toBe(`secret environment variable ${name} is not set`);
    expect(await resolveSecret({ fromEnv: name }, { env: { [name]: 's3cret' } })).toBe('s3cret');
  });

  // An empty value is no secret: a variable set to nothing, a file not yet written. PostgreSQL took it
  // for "no password" (the role's password was cleared, with no word said), Ansible for an empty var.
  it('refuses an empty variable and an empty file (or one holding only a line break) as unavailable', async () => {
    expect((await failure(resolveSecret({ fromEnv: 'PG_PASS' }, { env: { PG_PASS: '' } }))).message).toBe('secret environment variable PG_PASS is empty');
    writeFileSync(join(dir, 'empty'), '');
    writeFileSync(join(dir, 'newline'), '\n');
    expect((await failure(resolveSecret({ fromFile: 'empty' }, { cwd: dir }))).message).toBe('secret file empty is empty');
    expect((await failure(resolveSecret({ fromFile: 'newline' }, { cwd: dir }))).message).toBe('secret file newline is empty');
    writeFileSync(join(dir, 'space'), ' \n');
    expect(await resolveSecret({ fromFile: 'space' }, { cwd: dir })).toBe(' ');
  });

  it('reads a file relative to the working directory, without its final line break', async () => {
    writeFileSync(join(dir, 'crlf'), 'p@ss word\r\n');
    writeFileSync(join(dir, 'lines'), 'line1\nline2\n\n');
    expect(await resolveSecret({ fromFile: 'crlf' }, { cwd: dir })).toBe('p@ss word');
    expect(await resolveSecret({ fromFile: 'lines' }, { cwd: dir })).toBe('line1\nline2\n');
  });

  // A FIFO with no writer blocked the open in libuv's thread pool: plan, apply and run hung, and no
  // SIGTERM ended them. What is no regular file is refused unread, as a goal file that is one is.
  it('refuses a FIFO (with no writer) and a device at once, naming the file', async () => {
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    expect((await failure(resolveSecret({ fromFile: 'fifo' }, { cwd: dir }))).message).toBe(`secret file fifo (${join(dir, 'fifo')}: relative paths are to the working directory) cannot be read: it is a FIFO, not a regular file`);
    expect((await failure(resolveSecret({ fromFile: '/dev/zero' }))).message).toBe('secret file /dev/zero cannot be read: it is a device, not a regular file');
  });

  it('refuses a missing file, a directory and a file past the limit, naming the file and never a value', async () => {
    // A relative path is to the working directory (not the goal file's): said, with the path it came to and why.
    expect((await failure(resolveSecret({ fromFile: 'nope' }, { cwd: dir }))).message).toBe(`secret file nope (${join(dir, 'nope')}: relative paths are to the working directory) cannot be read: ENOENT`);
    expect((await failure(resolveSecret({ fromFile: '.' }, { cwd: dir }))).message).toBe(`secret file . (${dir}: relative paths are to the working directory) cannot be read: it is a directory, not a regular file`);
    expect((await failure(resolveSecret({ fromFile: join(dir, 'nope') }))).message).toBe(`secret file ${join(dir, 'nope')} cannot be read: ENOENT`);
    writeFileSync(join(dir, 'big'), Buffer.alloc(MAX_SECRET_FILE_BYTES + 1, 'x'));
    expect((await failure(resolveSecret({ fromFile: join(dir, 'big') }))).message).toBe(`secret file ${join(dir, 'big')} holds more than ${MAX_SECRET_FILE_BYTES} bytes`);
  });
});

describe('unreadableSecretRefs', () => {
  it('names each reference at any depth that cannot be read, with why, and never a value read', async () => {
    writeFileSync(join(dir, 'present'), 'file-secret-value\n');
    const spec = {
      name: 'svc',
      password: { fromEnv: 'SET_PW' },
      nested: [{ token: { fromEnv: 'UNSET_PW' } }, { key: { fromFile: 'present' } }, { key: { fromFile: 'absent' } }],
      empty: { fromEnv: 'EMPTY_PW' },
      // A map that only looks like one (two keys) is data, not a reference.
      notARef: { fromEnv: 'X', other: 1 },
    };
    const found = await unreadableSecretRefs(spec, { env: { SET_PW: 'env-secret-value', EMPTY_PW: '' }, cwd: dir });
    expect(found).toEqual([
      { ref: 'env:UNSET_PW', reason: 'secret environment variable UNSET_PW is not set' },
      { ref: 'file:absent', reason: `secret file absent (${join(dir, 'absent')}: relative paths are to the working directory) cannot be read: ENOENT` },
      { ref: 'env:EMPTY_PW', reason: 'secret environment variable EMPTY_PW is empty' },
    ]);
    expect(JSON.stringify(found)).not.toMatch(/secret-value/);
    expect(secretRefsIn(spec)).toEqual([{ fromEnv: 'SET_PW' }, { fromEnv: 'UNSET_PW' }, { fromFile: 'present' }, { fromFile: 'absent' }, { fromEnv: 'EMPTY_PW' }]);
    expect(await unreadableSecretRefs({ name: 'no secrets' }, { env: {}, cwd: dir })).toEqual([]);
  });
});
