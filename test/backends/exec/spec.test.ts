import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../../src/backends/index.ts';
import { BackendRegistry, InfraSpecFactory } from '../../../src/infra/index.ts';
import { formatDiagnostic, GoalCompiler, parseGoalText } from '../../../src/runtime/index.ts';

/**
 * `generic.resource`'s `input` is a map whose values are any JSON: the exec
 * protocol's drift rule (GOAL-FORMAT.md) is "every key of input whose value
 * differs from the same key in state", and `state` is an object, so an input
 * without keys could never drift. A list or scalar is refused where it is
 * written rather than accepted and never corrected.
 */

const registry = new BackendRegistry(builtinBackendFactories);

function compile(input: string): { lines: string[]; spec: unknown } {
  const text = `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: exec }
spec: { type: exec }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: g }
spec:
  nodes:
    - id: n
      type: generic.resource
      backend: exec
      spec:
        commands: { read: [r], create: [c] }
        input: ${input}
`;
  const parsed = parseGoalText('g.yaml', text);
  const result = new GoalCompiler({ factory: new InfraSpecFactory({ registry }) }).compile(parsed.documents, parsed.diagnostics);
  return { lines: result.diagnostics.map(formatDiagnostic), spec: result.graph?.get('n')?.spec.spec };
}

describe('generic.resource input', () => {
  it('is a map whose values may be any JSON', () => {
    const r = compile('{ name: logs, days: 30, on: true, none: null, tags: [a, b], nested: { deep: [{ x: 1 }] } }');
    expect(r.lines).toEqual([]);
    expect(r.spec).toMatchObject({ input: { name: 'logs', days: 30, on: true, none: null, tags: ['a', 'b'], nested: { deep: [{ x: 1 }] } } });
  });

  it.each([
    { name: 'a list', input: '[1]', got: 'a list' },
    { name: 'a number', input: '5', got: 'the number 5' },
    { name: 'a string', input: 'logs', got: 'the string "logs"' },
  ])('refuses $name, at the value, since drift compares its keys', ({ input, got }) => {
    expect(compile(input).lines).toEqual([`g.yaml:16:16: error invalid-type: spec.input: expected a map, got ${got}`]);
  });
});

// GOAL-FORMAT.md: input is "any JSON". A number JSON cannot carry as written was changed in silence on
// its way to the command (and in plan, the state and the digest): 12345678901234567890 arrived as
// 12345678901234567000, .inf and 1e400 as null, while validate said nothing. Refused where written.
describe('generic.resource input numbers', () => {
  const big = 'a whole number beyond ±9007199254740991 (2^53−1) may not be the one written: past there a number is read as the nearest double (9007199254740993 as 9007199254740992), so its digits are not sure to reach the command';
  it.each([
    // The fast YAML path reads this file (integers only); the next ones go to the full parser (floats).
    { name: 'a 20-digit id', input: '{ id: 12345678901234567890 }', lines: [`g.yaml:16:22: error invalid-value: spec.input.id: ${big}; this one is read as 12345678901234567000; quote it ("…") to send it as a string, as written`] },
    { name: '2^53, one past the largest exact integer', input: '{ id: -9007199254740992, ok: 9007199254740991 }', lines: [`g.yaml:16:22: error invalid-value: spec.input.id: ${big}; this one is read as -9007199254740992; quote it ("…") to send it as a string, as written`] },
    // Exact, yet refused: the double read cannot tell them from a number written that it rounds (2^53 + 1
    // is read as 2^53); the message said they "would be sent as" a rounded value.
    { name: '2^53 itself', input: '{ id: 9007199254740992 }', lines: [`g.yaml:16:22: error invalid-value: spec.input.id: ${big}; this one is read as 9007199254740992; quote it ("…") to send it as a string, as written`] },
    { name: '1e20, written with an exponent', input: '{ id: 1e20 }', lines: [`g.yaml:16:22: error invalid-value: spec.input.id: ${big}; this one is read as 100000000000000000000; quote it ("…") to send it as a string, as written`] },
    { name: 'a 21-digit id, under 1e21', input: '{ id: 123456789012345678901 }', lines: [`g.yaml:16:22: error invalid-value: spec.input.id: ${big}; this one is read as 123456789012345680000; quote it ("…") to send it as a string, as written`] },
    {
      name: '.inf, an overflowing literal and .nan, at any depth',
      input: '{ inf: .inf, huge: 1e400, deep: { list: [1.5, -.inf, .nan] } }',
      lines: [
        'g.yaml:16:23: error invalid-value: spec.input.inf: .inf (or a number too large for a double, such as 1e400) is no number JSON can carry (written as JSON it is null: on stdin, in plan, in the state): quote it to send it as a string',
        'g.yaml:16:35: error invalid-value: spec.input.huge: .inf (or a number too large for a double, such as 1e400) is no number JSON can carry (written as JSON it is null: on stdin, in plan, in the state): quote it to send it as a string',
        'g.yaml:16:62: error invalid-value: spec.input.deep.list[1]: -.inf (or a number too large for a double, such as -1e400) is no number JSON can carry (written as JSON it is null: on stdin, in plan, in the state): quote it to send it as a string',
        'g.yaml:16:69: error invalid-value: spec.input.deep.list[2]: .nan is no number JSON can carry (written as JSON it is null: on stdin, in plan, in the state): quote it to send it as a string',
      ],
    },
  ])('refuses $name, at the value', ({ input, lines }) => {
    const r = compile(input);
    expect(r.lines).toEqual(lines);
    expect(r.spec).toBeUndefined();
  });

  // From 1e21 on the double read cannot tell a whole number written in digits from a float written with an
  // exponent (1e21, taken as one): 1234567890123456789012 went to the command as 1.2345678901234568e+21.
  // The text it was written as can: refused where it is written, by the parser (in any field: no field path).
  it.each([
    { name: 'a 22-digit id', input: '{ id: 1234567890123456789012 }', col: 22, written: '1234567890123456789012', read: '1.2345678901234568e+21' },
    { name: '10^21 written in digits, exact as a double', input: '{ id: 1000000000000000000000 }', col: 22, written: '1000000000000000000000', read: '1e+21' },
    { name: 'a negative one, in a list', input: '{ ids: [1, -1000000000000000000000] }', col: 27, written: '-1000000000000000000000', read: '-1e+21' },
    { name: 'one written in hexadecimal', input: '{ id: 0x3635C9ADC5DEA00000 }', col: 22, written: '0x3635C9ADC5DEA00000', read: '1e+21' },
    { name: 'one tagged !!int', input: '{ id: !!int 1000000000000000000000 }', col: 28, written: '1000000000000000000000', read: '1e+21' },
  ])('refuses a whole number written in digits from 1e21 on: $name', ({ input, col, written, read }) => {
    const r = compile(input);
    expect(r.lines).toEqual([
      `g.yaml:16:${col}: error invalid-value: ${written} is a whole number beyond ±9007199254740991 (2^53−1), read as the nearest double, ${read}, which may not be the number written: a string ("${written}") keeps it as written`,
    ]);
    expect(r.spec).toBeUndefined();
  });

  it('takes the same values quoted, and numbers JSON carries exactly', () => {
    // From 1e21 on, JSON writes an exponent (1e+21): the same double, read as a float.
    // Written as a float (an exponent, a fraction), it is taken as one.
    const r = compile(
      '{ id: "12345678901234567890", big: "1234567890123456789012", inf: ".inf", max: 9007199254740991, min: -9007199254740991, f: 2.5e15, tiny: 5e-324, frac: 4503599627370495.5, e21: 1e21, e300: -1.5e300, f21: 1000000000000000000000.0 }',
    );
    expect(r.lines).toEqual([]);
    expect(r.spec).toMatchObject({
      input: { id: '12345678901234567890', big: '1234567890123456789012', inf: '.inf', max: 9007199254740991, min: -9007199254740991, f: 2.5e15, tiny: 5e-324, frac: 4503599627370495.5, e21: 1e21, e300: -1.5e300, f21: 1e21 },
    });
  });
});
