import { describe, expect, it } from 'vitest';
import { jsonEqual } from '../../../src/runtime/index.ts';
import { inputDiffs, parseRead } from '../../../src/backends/exec/index.ts';
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

  it('"unknown" is an indeterminate observation: the node is held, never created blindly', () => {
    expect(toObservation({ a: 1 }, parseRead('{"exists":"unknown","reason":"id lost"}'))).toEqual({ status: 'indeterminate', reason: 'read: id lost' });
  });
});
