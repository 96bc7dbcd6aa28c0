import { describe, expect, it } from 'vitest';
import { FaultError, jsonEqual } from '../../../src/runtime/index.ts';
import { inputDiffs, parseApply, parseRead } from '../../../src/backends/exec/index.ts';
import { toObservation } from '../../../src/infra/index.ts';

describe('jsonEqual', () => {
  it.each([
    { name: 'key order does not matter', a: { x: 1, y: [1, { z: 2 }] }, b: { y: [1, { z: 2 }], x: 1 }, equal: true },
    { name: 'array order does', a: [1, 2], b: [2, 1], equal: false },
    { name: 'a number is not its string', a: 1, b: '1', equal: false },
    { name: 'null is not absent', a: null, b: undefined, equal: false },
    { name: 'an array is not an object with index keys', a: [1], b: { 0: 1 }, equal: false },
    { name: 'an extra key differs', a: { x: 1 }, b: { x: 1, y: 2 }, equal: false },
  ])('$name', ({ a, b, equal }) => {
    expect(jsonEqual(a, b)).toBe(equal);
  });
});

describe('inputDiffs', () => {
  it('compares only the keys of input, each as input.<key>', () => {
    expect(inputDiffs({ a: 1, b: { c: [1] }, missing: 'x' }, { a: 1, b: { c: [2] }, other: true })).toEqual([
      { path: 'input.b', desired: { c: [1] }, actual: { c: [2] } },
      { path: 'input.missing', desired: 'x', actual: undefined },
    ]);
  });

  // A key set to null drifted for ever against a state that leaves it out, and was "corrected" on every pass.
  it('a key set to null matches a state without it, not a state with a value', () => {
    expect(inputDiffs({ tag: null }, {})).toEqual([]);
    expect(inputDiffs({ tag: null }, { tag: null })).toEqual([]);
    expect(inputDiffs({ tag: null }, { tag: 'x' })).toEqual([{ path: 'input.tag', desired: null, actual: 'x' }]);
    expect(inputDiffs({ tag: 'x' }, {})).toEqual([{ path: 'input.tag', desired: 'x', actual: undefined }]);
  });

  // A plain object inherits these: `state.valueOf` was a function, "absent → null" on every read, and an update on every pass.
  it.each(['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__'])('a key named %s is read from the state itself, not from what a plain object inherits', (key) => {
    const read = parseRead('{"exists":true,"state":{}}');
    expect(toObservation(JSON.parse(`{"${key}":null}`) as Record<string, unknown>, read)).toEqual({ status: 'upToDate', outputs: {} });
    expect(inputDiffs(JSON.parse(`{"${key}":"x"}`) as Record<string, unknown>, {})).toEqual([{ path: `input.${key}`, desired: 'x', actual: undefined }]);
  });

  // `ignoreFields: [input.nested.x]` never matched the one diff of the key, `input.nested`: a hand-set x was drift, and "corrected".
  const input = { nested: { x: 1, y: 2, deep: { z: 'a' } }, list: [1, 2] };
  it.each([
    { name: 'only the ignored key differs: no drift', ignore: ['input.nested.x'], state: { nested: { x: 99, y: 2, deep: { z: 'a' } }, list: [1, 2] }, diffs: [] },
    { name: 'the ignored key is missing from the state: no drift', ignore: ['input.nested.x'], state: { nested: { y: 2, deep: { z: 'a' } }, list: [1, 2] }, diffs: [] },
    {
      name: 'another key of it differs too: drift, shown without the ignored key on either side',
      ignore: ['input.nested.x'],
      state: { nested: { x: 99, y: 3, deep: { z: 'a' } }, list: [1, 2] },
      diffs: [{ path: 'input.nested', desired: { y: 2, deep: { z: 'a' } }, actual: { y: 3, deep: { z: 'a' } } }],
    },
    { name: 'deeper, and a list item', ignore: ['input.nested.deep.z', 'input.list[1]'], state: { nested: { x: 1, y: 2, deep: { z: 'by hand' } }, list: [1, 7] }, diffs: [] },
    {
      name: 'a list item ignored: the others still compared',
      ignore: ['input.list[1]'],
      state: { nested: { x: 1, y: 2, deep: { z: 'a' } }, list: [5, 7] },
      diffs: [{ path: 'input.list', desired: [1], actual: [5] }],
    },
    {
      name: 'a path into another key leaves this one whole',
      ignore: ['input.other.x', 'input.nestedx'],
      state: { nested: { x: 99, y: 2, deep: { z: 'a' } }, list: [1, 2] },
      diffs: [{ path: 'input.nested', desired: input.nested, actual: { x: 99, y: 2, deep: { z: 'a' } } }],
    },
    {
      name: 'the key itself ignored: still reported here, for the runtime to drop as for any backend',
      ignore: ['input.nested'],
      state: { nested: { x: 99, y: 2, deep: { z: 'a' } }, list: [1, 2] },
      diffs: [{ path: 'input.nested', desired: input.nested, actual: { x: 99, y: 2, deep: { z: 'a' } } }],
    },
  ])('ignoreFields inside a key: $name', ({ ignore, state, diffs }) => {
    expect(inputDiffs(input, state, ignore)).toEqual(diffs);
  });

  it('a read that differs only in an ignored key inside the input is up to date', () => {
    const read = parseRead('{"exists":true,"state":{"nested":{"x":99,"y":2}}}');
    expect(toObservation({ nested: { x: 1, y: 2 } }, read, undefined, ['input.nested.x'])).toEqual({ status: 'upToDate', outputs: {} });
  });
});

describe('parseRead', () => {
  it.each([
    { name: 'absent', out: '{"exists":false}\n', read: { exists: false } },
    { name: 'present without outputs', out: '{"exists":true,"state":{"a":1}}', read: { exists: true, state: { a: 1 }, outputs: {} } },
    { name: 'present without a state', out: '{"exists":true}', read: { exists: true, state: undefined, outputs: {} } },
    { name: 'present with outputs', out: '{"exists":true,"state":{},"outputs":{"arn":"x","n":1,"ok":true,"none":null}}', read: { exists: true, state: {}, outputs: { arn: 'x', n: 1, ok: true, none: null } } },
    { name: 'cannot tell, with a reason', out: '{"exists":"unknown","reason":"create was cut short"}', read: { exists: 'unknown', reason: 'create was cut short' } },
    { name: 'cannot tell, without a reason', out: '{"exists":"unknown"}', read: { exists: 'unknown', reason: 'the read command cannot tell' } },
  ])('$name', ({ out, read }) => {
    expect(parseRead(out)).toEqual(read);
  });

  it.each(['{"exists":"maybe"}', '{"exists":null}', '{"exists":"unknown","reason":7}'])('refuses %s as bad output', (out) => {
    expect(() => parseRead(out)).toThrow(/read command printed/);
  });

  it.each([
    { name: 'a read without outputs keeps the recorded ones', out: '{"exists":true,"state":{}}', outputs: { rid: 'vm-1' } },
    { name: 'a read\'s own outputs are laid over them', out: '{"exists":true,"state":{},"outputs":{"ip":"10.0.0.2","rid":"vm-2"}}', outputs: { rid: 'vm-2', ip: '10.0.0.2' } },
  ])('$name', ({ out, outputs }) => {
    expect(toObservation({}, parseRead(out), { rid: 'vm-1' })).toEqual({ status: 'upToDate', outputs });
  });

  it('present without a state: bad output where there is an input to compare (not drift on every key, corrected every pass); fine with an empty input', () => {
    const read = parseRead('{"exists":true,"outputs":{"rid":"vm-1"}}');
    expect(toObservation({ size: 2 }, read)).toEqual({
      status: 'failed',
      fault: expect.objectContaining({ class: 'permanent', code: 'bad-output', message: 'read command printed {"exists": true} without the "state" to compare the input with' }) as unknown,
    });
    expect(toObservation({}, read)).toEqual({ status: 'upToDate', outputs: { rid: 'vm-1' } });
  });

  it('masks what looks like a secret in a drifted text value, both sides, yet compares them as read', () => {
    // Two passwords that mask alike still differ: the drift is found, only its values are shown masked.
    const read = parseRead(JSON.stringify({ exists: true, state: { env: 'DB_PASSWORD=handwritten1\n', size: 2, note: 'hi' }, outputs: { env: 'DB_PASSWORD=handwritten1\n' } }));
    expect(toObservation({ env: 'DB_PASSWORD=fromgoal22\n', size: 3, note: 'hello' }, read)).toEqual({
      status: 'drifted',
      diffs: [
        { path: 'input.env', desired: 'DB_PASSWORD=<secret>\n', actual: 'DB_PASSWORD=<secret>\n' },
        { path: 'input.size', desired: 3, actual: 2 },
        { path: 'input.note', desired: 'hello', actual: 'hi' },
      ],
      // Outputs are data handed on, not a drift shown: left as printed (SecretMask.outputs masks known secrets in them).
      outputs: { env: 'DB_PASSWORD=handwritten1\n' },
    });
  });

  // A hand edit may write a secret into any value a read reports, under a key that says what it is: shown masked
  // by that key, at any depth; the values still compared as read.
  it.each([
    {
      name: 'a top-level key that says secret, whole',
      input: { db_password: 'fromgoal', port: 5432 },
      state: { db_password: 'HANDWRITTEN-hunter2', port: 5433 },
      diffs: [
        { path: 'input.db_password', desired: '<secret>', actual: '<secret>' },
        { path: 'input.port', desired: 5432, actual: 5433 },
      ],
    },
    {
      name: 'a nested map: its secret-named value masked, the others shown',
      input: { db: { user: 'app', password: 'fromgoal' } },
      state: { db: { user: 'app', password: 'HANDWRITTEN-hunter2' } },
      diffs: [{ path: 'input.db', desired: { user: 'app', password: '<secret>' }, actual: { user: 'app', password: '<secret>' } }],
    },
    {
      name: 'a list of maps, a non-secret nested value still shown',
      input: { users: [{ name: 'ana', apiKey: 'k-fromgoal', pin: 1234 }] },
      state: { users: [{ name: 'bob', apiKey: 'k-HANDWRITTEN', pin: 4321, admin: true }] },
      diffs: [{ path: 'input.users', desired: [{ name: 'ana', apiKey: '<secret>', pin: 1234 }], actual: [{ name: 'bob', apiKey: '<secret>', pin: 4321, admin: true }] }],
    },
    {
      name: "a list's items under its key; a setting word and null kept",
      input: { secrets: ['s-fromgoal'], token: null, secret: 'none' },
      state: { secrets: ['s-HANDWRITTEN', 's-2'], token: 'off', secret: 'HANDWRITTEN-s' },
      diffs: [
        { path: 'input.secrets', desired: ['<secret>'], actual: ['<secret>', '<secret>'] },
        { path: 'input.token', desired: null, actual: 'off' },
        { path: 'input.secret', desired: 'none', actual: '<secret>' },
      ],
    },
    {
      name: 'a text under another key, nested: what looks like a secret in it',
      input: { files: { env: 'PORT=1\n' } },
      state: { files: { env: 'PORT=1\nDB_PASSWORD=HANDWRITTEN-hunter2\n' } },
      diffs: [{ path: 'input.files', desired: { env: 'PORT=1\n' }, actual: { env: 'PORT=1\nDB_PASSWORD=<secret>\n' } }],
    },
  ])('masks a drifted value by the key it is under: $name', ({ input, state, diffs }) => {
    const obs = toObservation(input, parseRead(JSON.stringify({ exists: true, state, outputs: { db_password: 'HANDWRITTEN-hunter2' } })));
    // Outputs are data handed on, not a drift shown: left as printed.
    expect(obs).toEqual({ status: 'drifted', diffs, outputs: { db_password: 'HANDWRITTEN-hunter2' } });
  });

  it('"unknown" is an indeterminate observation: the node is held, never created blindly', () => {
    expect(toObservation({ a: 1 }, parseRead('{"exists":"unknown","reason":"id lost"}'))).toEqual({ status: 'indeterminate', reason: 'read: id lost' });
  });
});

// JSON.parse reads a number of 20 digits as the nearest double: an id a command printed so was recorded, and
// handed to the nodes that refer to it, as another number, without a word. The text printed says which it was.
describe('output numbers JSON cannot carry as printed', () => {
  const FAULT = 'numbers that JSON cannot carry as printed, a whole number beyond ±9007199254740991 (2^53−1) or one too large for a double';
  it.each([
    { name: 'a 20-digit id', outputs: '{"id":12345678901234567890}', found: 'outputs.id: 12345678901234567890 (read as 12345678901234567000)' },
    { name: '2^53, exact but not to be told from 2^53 + 1', outputs: '{"n":9007199254740992}', found: 'outputs.n: 9007199254740992 (read as 9007199254740992)' },
    { name: 'a 22-digit id, past 1e21', outputs: '{"id":-1234567890123456789012}', found: 'outputs.id: -1234567890123456789012 (read as -1.2345678901234568e+21)' },
    { name: '1e20, a whole number written with an exponent', outputs: '{"n":1e20}', found: 'outputs.n: 1e20 (read as 100000000000000000000)' },
    { name: 'one too large for a double', outputs: '{"n":1E400}', found: 'outputs.n: 1E400 (too large for a double)' },
    {
      name: 'at any depth, each named',
      outputs: '{"ok":1,"ids":[1,23456789012345678901],"ep":{"port":443,"serial":98765432109876543210}}',
      found: 'outputs.ids[1]: 23456789012345678901 (read as 23456789012345680000); outputs.ep.serial: 98765432109876543210 (read as 98765432109876540000)',
    },
  ])('$name: bad output, from read, create and update alike', ({ outputs, found }) => {
    const cases = [
      { command: 'read', parse: () => parseRead(`{"exists":true,"state":{},"outputs":${outputs}}`) },
      { command: 'create', parse: () => parseApply('create', `{"outputs":${outputs}}`) },
      { command: 'update', parse: () => parseApply('update', `{"outputs":${outputs}}`) },
    ];
    for (const { command, parse } of cases) {
      let thrown: unknown;
      try {
        parse();
      } catch (err) {
        thrown = err;
      }
      expect(thrown, command).toBeInstanceOf(FaultError);
      const f = (thrown as FaultError).fault;
      expect(f, command).toMatchObject({
        class: 'permanent',
        code: 'bad-output',
        message: `${command} command printed ${FAULT}: ${found}`,
        hint: expect.stringMatching(/^print each as a string \("[^"]+"\): a node that refers to it would get another number$/),
      });
      // A create that printed them has made its resource: the next read is told it was interrupted.
      expect(f.cutShort, command).toBe(command === 'create' ? true : undefined);
    }
  });

  it('takes every number JSON carries as printed, and those elsewhere than in the outputs', () => {
    const outputs = { max: 9007199254740991, min: -9007199254740991, f: 0.1, e21: 1e21, e300: -1.5e300, tiny: 5e-324, id: '12345678901234567890' };
    const text = '{"max":9007199254740991,"min":-9007199254740991,"f":0.1,"e21":1e21,"e300":-1.5e300,"tiny":5e-324,"id":"12345678901234567890"}';
    expect(parseApply('create', `{"outputs":${text}}`)).toEqual(outputs);
    // A state is compared with the input, which holds no such number (validate refuses it), and is not handed on.
    expect(parseRead(`{"exists":true,"state":{"big":12345678901234567890},"outputs":${text}}`)).toEqual({ exists: true, state: { big: JSON.parse('12345678901234567890') as number }, outputs });
  });
});
